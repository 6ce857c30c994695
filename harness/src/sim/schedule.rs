//! Fault schedules for `stasis sim`, drawn from a seed.
//!
//! A schedule is a list of faults, each active over a window of simulated time. It is a
//! plain value (serialized into test.json) so a failing schedule can be replayed and
//! shrunk fault by fault. Which nodes a partition separates may depend on who leads when
//! it starts (`Shape::IsolateLeader`, `Shape::LeaderMinority`); that is resolved by the
//! world at the start time, deterministically.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use node::storage::file::FsOp;

use crate::nemesis::membership;

/// The kinds `--faults all` selects: every kind but those in [`NAMED`], which are asked
/// for by name (`--faults all,reconfig`). Keeping them out keeps the schedules every seed
/// drew before they existed (a kind is drawn by its index in the list, so a new kind in
/// `all` would change every seed's schedule; recorded failing seeds still replay).
pub const ALL: &[&str] = &[
    "crash",
    "pause",
    "partition",
    "net",
    "drift",
    "clock",
    "bounce",
    "churn",
    "transition",
];

/// Kinds outside `all`, selected by name. `reconfig`: a membership change with no spare
/// node can only remove a voter and add it back, and it came after `all` was fixed.
/// `persist`: kills at storage events and slow syncs, added after `all` was fixed.
/// `stall`: nodes that stop reading for a while and then handle what queued as one
/// batch, added after `all` was fixed. `torn`: power losses on a disk with no ordering
/// guarantees, and `freeze`: several nodes paused and resumed at the same instant (a host
/// or hypervisor freeze), both added after `all` was fixed. `tcp`: the runtime transport's
/// connections (see [`FaultKind::Tcp`]), a property of the whole run rather than a drawn
/// fault, so a schedule with it is the schedule without it plus the transport model.
/// `outage`: several nodes losing power at one instant (see [`FaultKind::Outage`]).
/// `lag`: one node's links slow by a fixed step (see [`FaultKind::Lag`]). `apply`:
/// crashes right after a node's state machine advanced (see [`FaultKind::Apply`]).
pub const NAMED: &[&str] = &[
    "reconfig", "persist", "stall", "torn", "freeze", "tcp", "outage", "lag", "apply",
];

/// Fault kinds `--faults` can select: [`ALL`], then [`NAMED`].
pub const KINDS: &[&str] = &concat::<{ ALL.len() + NAMED.len() }>(ALL, NAMED);

/// `a` then `b` as one array (`KINDS` from `ALL` and `NAMED`, so they cannot disagree).
const fn concat<const N: usize>(a: &[&'static str], b: &[&'static str]) -> [&'static str; N] {
    let mut out = [""; N];
    let mut i = 0;
    while i < a.len() {
        out[i] = a[i];
        i += 1;
    }
    let mut j = 0;
    while j < b.len() {
        out[i + j] = b[j];
        j += 1;
    }
    out
}

/// The kinds `stasis selftest --sim` swarms over ([`swarm`]: each attempt a subset drawn
/// from its seed): every kind but `reconfig`, which the plans with spare nodes always
/// add. Before swarming, every attempt drew the seven kinds crash..bounce, and kinds that
/// need long stretches to themselves (a lagging leader, an outage) were averaged away
/// (measured in docs/BENCHMARKS.md, "Deterministic simulation").
pub const SELFTEST_KINDS: &[&str] = &[
    "crash",
    "pause",
    "partition",
    "net",
    "drift",
    "clock",
    "bounce",
    "churn",
    "transition",
    "persist",
    "stall",
    "torn",
    "freeze",
    "tcp",
    "outage",
    "lag",
    "apply",
];

/// How a partition splits the nodes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Shape {
    /// One node (by index) cut off from all others.
    IsolateNode(u64),
    /// The node leading at the start cut off from all others.
    IsolateLeader,
    /// The leader plus a minority on one side, the majority on the other.
    LeaderMinority,
    /// A random split into two halves (by a permutation seed).
    Halves(u64),
    /// `bridge` sees both sides, which cannot see each other.
    Bridge(u64),
    /// Traffic from `from` to `to` is dropped, the reverse direction flows.
    OneWay { from: u64, to: u64 },
    /// Each node sees only its two ring neighbours.
    Ring,
    /// Every node alone, then the links come back one pair at a time, in a random order
    /// at random moments, until the fault ends (FoundationDB's swizzle): every shape of
    /// partial connectivity in turn, after a phase where nobody can commit.
    Swizzle,
}

/// One fault.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum FaultKind {
    /// The node's process dies; with `power_loss` its unsynced writes are lost too.
    /// Restarted when the fault ends. Node 0 (here and below) is the node leading when
    /// the fault starts.
    Crash { node: u64, power_loss: bool },
    /// The node stops (SIGSTOP): no ticks, no input handled until the fault ends.
    Pause { node: u64 },
    /// The node's process is killed and restarted at once, every `every_ms`, until the
    /// fault ends (a restart storm: whatever it keeps only in memory is lost again and
    /// again, at every stage of an election or a replication).
    Bounce { node: u64, every_ms: u64 },
    /// Cluster-wide churn: at random moments (mean gap `gap_ms`) a random running node is
    /// killed (with `power_loss`, its unsynced writes lost too) and restarted after up to
    /// `down_ms`, as long as fewer than half the nodes are down; several nodes may be down
    /// at once, and every node, voters and leaders alike, dies at any stage of an election
    /// or a replication.
    Churn {
        gap_ms: u64,
        down_ms: u64,
        power_loss: bool,
    },
    /// Crashes at state transitions: whenever a node's role, term or vote changes (it
    /// campaigns, votes, wins, steps down), with probability `pct`% it is killed within
    /// `within_us` (before or after its messages of that step arrive) and restarted
    /// after up to `down_ms`, as long as fewer than half the nodes are down. Crash testing
    /// at the moments a protocol's safety rests on what it made durable.
    Transition {
        pct: u32,
        within_us: u64,
        down_ms: u64,
    },
    /// Crashes at state-machine steps, keyed to nothing protocol-specific: whenever a
    /// node applies committed entries (its applied index advances: a leader that just
    /// decided a commit, a follower that just learned one, a snapshot installed), with
    /// probability `pct`% it is killed within `within_us` (with `power_loss`, its unsynced
    /// writes lost too) and restarted after up to `down_ms`, as long as fewer than half
    /// the nodes are down. The moment between a leader's commit decision and its peers
    /// learning of it is where a commit rule that counts the wrong replicas, or a commit
    /// index that runs ahead of what is durable, loses what it acknowledged; a transition
    /// fault kills at elections, this one at commits.
    Apply {
        pct: u32,
        within_us: u64,
        down_ms: u64,
        power_loss: bool,
    },
    /// A network partition. With `hold`, messages across the cut are held and delivered
    /// when it heals (TCP retransmitting through a partition that drops packets);
    /// otherwise they are lost (connections reset).
    Partition {
        shape: Shape,
        #[serde(default)]
        hold: bool,
    },
    /// Every message: lost with `loss`, duplicated with `dup`, delayed up to `delay_ms`
    /// (which also reorders).
    Net { loss: f64, dup: f64, delay_ms: u64 },
    /// The node's tick runs at `permille`/1000 of the nominal rate.
    Drift { node: u64, permille: u64 },
    /// The node's wall clock jumps by `ms` (and back when the fault ends).
    Clock { node: u64, ms: i64 },
    /// A membership change through the leader, as the membership nemesis makes it: the
    /// voter set the leader reports becomes one with a spare added, a voter removed or
    /// two or more voters replaced ([`membership::plan`] picks the nodes when the fault
    /// starts); changed back when the fault ends. At most one at a time.
    Reconfig { change: membership::Change },
    /// Durable-state stress on the nodes of the fault pool, keyed to storage events (not
    /// to any protocol's code): every sync takes `sync_us` of simulated time, and input
    /// that arrives meanwhile is handled as one batch before the next persist (as the
    /// runtime's driver reads everything queued); and every file-system operation of kind
    /// `op` kills its node with probability `pct`%. `op` is a write, a sync, a file created
    /// (a WAL segment roll, a snapshot or rewrite file), a rename (a snapshot saved or
    /// installed, a compaction rewrite), a removal, a truncation (a log cut) or a
    /// directory sync. With `during` the process dies right after that operation: the rest
    /// of its batch fails and nothing the batch would send leaves the node (a crash
    /// between a write and its sync, or half way through a rewrite); otherwise it is
    /// killed within `within_us` after the batch, its messages sent. With `power_loss` the
    /// unsynced writes are lost too. Restarted after up to `down_ms`, as long as fewer
    /// than half the nodes are down. At most one at a time.
    Persist {
        op: FsOp,
        pct: u32,
        during: bool,
        within_us: u64,
        power_loss: bool,
        down_ms: u64,
        sync_us: u64,
    },
    /// Stalls of the nodes of the fault pool, keyed to nothing protocol-specific: after a
    /// batch, with probability `pct`%, the node stops reading for `hold_us` (a GC pause, a
    /// starved thread, a slow disk under the runtime's loop); what arrives meanwhile is
    /// handled as ONE batch, as the runtime's driver handles everything its channel holds,
    /// with the messages of different senders interleaved in a drawn order (each sender's
    /// own order kept: one TCP connection each) and client requests anywhere among them.
    /// What the stalled batch sent has already left. At most one at a time.
    Stall { pct: u32, hold_us: u64 },
    /// A disk with no ordering guarantees, keyed to nothing protocol-specific: while the
    /// fault lasts, every power loss (of a crash, churn, transition or persist fault)
    /// keeps, per file, a random prefix of the unsynced tail in which each 512-byte
    /// sector survives or reads as zeros, and per directory a random subset of the
    /// unsynced entry changes ([`node::storage::file::SimFs::crash_torn`]), instead of
    /// none of them. What a node synced always survives. Under a `persist` fault's slow
    /// syncs, a power loss while a node's last fsync is under way finds it unfinished
    /// ([`node::storage::file::SimFs::crash_torn_in_sync`]). At most one at a time.
    Torn {},
    /// A group freeze (a host, hypervisor or container runtime that stops several
    /// processes at once, as a VM pause, a live migration or a stalled host does): `nodes`
    /// nodes of the fault pool, picked when it starts by the permutation seed `pick` (the
    /// leader among them with `leader`, else outside them if the rest leaves room), stop
    /// together (no ticks, no input handled) and resume at the same instant. On resume
    /// each catches up the ticks it missed and then handles everything that queued for it
    /// as ONE batch, its senders interleaved in a drawn order (as the runtime reads its
    /// whole channel after SIGCONT). So their timers expire together (elections of the
    /// same term, started within no message delay of each other) and what several peers
    /// sent them during the freeze meets in one batch: coincidences that independent
    /// faults make rare. At most one crash, pause, bounce, churn or freeze at a time.
    Freeze { nodes: u64, pick: u64, leader: bool },
    /// A power outage (a rack, a PDU, a data centre; the disk nemesis's `lose-unfsynced`
    /// on several nodes): `nodes` running nodes of the fault pool, picked when it starts as
    /// a freeze's are (`pick`, `leader`), lose power at the same instant, so each loses
    /// what it had not synced (torn under a `torn` fault); they restart together when the
    /// fault ends. One node losing power is a `crash`; what only an outage tests is
    /// whether what a majority acknowledged survives when that majority loses power at
    /// once. At most one crash, pause, bounce, churn, freeze or outage at a time.
    Outage { nodes: u64, pick: u64, leader: bool },
    /// Slow links of one node (a congested NIC or switch port, a saturated uplink, the net
    /// nemesis's delay step scoped to one node as `--net-scopes leader` does): every
    /// message to or from `node` takes `delay_ms` more, plus up to `jitter_pct`% of that
    /// drawn per message, while the other links keep their latency (a `net` fault delays
    /// every link alike). Under `tcp` each connection keeps its order. So one node hears
    /// and is heard late by a step its peers' timers do not expect, while its peers hear
    /// each other at once: leases, heartbeats and elections judged by a node whose view
    /// is a step old.
    Lag {
        node: u64,
        delay_ms: u64,
        jitter_pct: u64,
    },
    /// The network as the runtime's transport (node/src/runtime/transport.rs) makes it,
    /// keyed to nothing protocol-specific: one connection per directed link, in order
    /// (FIFO: a message is never delivered before one sent earlier on the same
    /// connection); a connection is to one incarnation of the receiver and dies with it,
    /// which the sender learns only by writing (what it writes into the dead connection
    /// until the reset comes back is lost, and the write that fails too); it then
    /// reconnects at once and, while the receiver is down, every 20 ms doubling to
    /// 500 ms, dropping what is queued when an attempt fails and writing what queued
    /// during the wait on the next connection: to the receiver's NEXT incarnation. A
    /// sender's queue dies with it, but what it already wrote is delivered after its
    /// death (the kernel sends it), unless it lost power. Drawn once, over the whole run
    /// (until the other faults end), when `tcp` is selected.
    Tcp {},
}

/// Whether every batch does one of these operations (so a kill per operation must be
/// rarer).
fn frequent(op: FsOp) -> bool {
    matches!(op, FsOp::Write | FsOp::Sync)
}

impl FaultKind {
    /// The name `--faults` uses for this kind.
    pub fn family(&self) -> &'static str {
        match self {
            FaultKind::Crash { .. } => "crash",
            FaultKind::Pause { .. } => "pause",
            FaultKind::Bounce { .. } => "bounce",
            FaultKind::Churn { .. } => "churn",
            FaultKind::Transition { .. } => "transition",
            FaultKind::Apply { .. } => "apply",
            FaultKind::Partition { .. } => "partition",
            FaultKind::Net { .. } => "net",
            FaultKind::Drift { .. } => "drift",
            FaultKind::Clock { .. } => "clock",
            FaultKind::Reconfig { .. } => "reconfig",
            FaultKind::Persist { .. } => "persist",
            FaultKind::Stall { .. } => "stall",
            FaultKind::Torn {} => "torn",
            FaultKind::Freeze { .. } => "freeze",
            FaultKind::Outage { .. } => "outage",
            FaultKind::Lag { .. } => "lag",
            FaultKind::Tcp {} => "tcp",
        }
    }
}

/// A fault active over `[start_ns, stop_ns)` of simulated time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Fault {
    pub start_ns: u64,
    pub stop_ns: u64,
    #[serde(flatten)]
    pub kind: FaultKind,
}

/// Parses `--faults` (comma-separated kinds, `all`, or `none`).
pub fn parse_faults(s: &str) -> Result<Vec<&'static str>, String> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        if part == "all" {
            for k in ALL {
                if !out.contains(k) {
                    out.push(*k);
                }
            }
            continue;
        }
        if part == "none" {
            continue;
        }
        match KINDS.iter().find(|k| **k == part) {
            Some(k) if !out.contains(k) => out.push(*k),
            Some(_) => {}
            None => {
                return Err(format!(
                    "--faults {part:?} is unknown; choose from all, none, {}",
                    KINDS.join(", ")
                ));
            }
        }
    }
    Ok(out)
}

/// Swarm testing (Groce, Zhang, Eide, Chen and Regehr, ISSTA 2012): the subset of
/// `kinds` one schedule draws from, chosen by its seed: each kind kept with probability
/// 1/2, at least one, in the order of `kinds`. A schedule of few kinds lets each act for
/// long stretches that the others would interrupt (a lagging leader's lease, an outage's
/// lost writes), where every schedule drawing every kind averages them away.
pub fn swarm<'a>(seed: u64, kinds: &[&'a str]) -> Vec<&'a str> {
    if kinds.is_empty() {
        return Vec::new();
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5a4a_12e5_5a4a_12e5);
    let mut out: Vec<&str> = kinds
        .iter()
        .copied()
        .filter(|_| rng.random_bool(0.5))
        .collect();
    if out.is_empty() {
        out.push(kinds[rng.random_range(0..kinds.len())]);
    }
    out
}

/// Draws a schedule for `nodes` nodes over `sim_ns` of simulated time: faults start in
/// the first 80% and end by 90%, so the cluster has time to recover before the end.
/// At most one crash or pause at a time keeps a majority alive most of the time; the
/// other kinds overlap freely. `tcp` is not drawn: it is one fault over the whole run
/// (until the horizon), appended last, so the other faults are those drawn without it.
pub fn draw(seed: u64, nodes: u64, sim_ns: u64, kinds: &[&str]) -> Vec<Fault> {
    let mut out = draw_faults(seed, nodes, sim_ns, kinds);
    if nodes > 0 && kinds.contains(&"tcp") {
        out.push(Fault {
            start_ns: 0,
            stop_ns: sim_ns / 10 * 9,
            kind: FaultKind::Tcp {},
        });
    }
    out
}

/// The drawn faults of [`draw`] (every kind but `tcp`).
fn draw_faults(seed: u64, nodes: u64, sim_ns: u64, kinds: &[&str]) -> Vec<Fault> {
    let kinds: Vec<&str> = kinds.iter().copied().filter(|k| *k != "tcp").collect();
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_fa17_5eed_fa17);
    let mut out = Vec::new();
    if kinds.is_empty() || nodes == 0 {
        return out;
    }
    let ms = 1_000_000u64;
    let horizon = sim_ns / 10 * 9;
    // Mean gap between fault starts: a few hundred milliseconds.
    let mut t = rng.random_range(100 * ms..600 * ms);
    // Membership changes: the first a replacement, then shuffled bags (as the nemesis).
    let mut changes = membership::Kinds::default();
    while t < sim_ns / 10 * 8 {
        let kind = kinds[rng.random_range(0..kinds.len())];
        let node = rng.random_range(1..=nodes);
        // The leader (0) or a node picked now.
        let target = if rng.random_bool(0.4) { 0 } else { node };
        // Bounces (a crash or pause shorter than an election round trip), short faults
        // (under an election timeout) and long ones (several).
        let len = match rng.random_range(0..10u32) {
            0..=2 => rng.random_range(ms..40 * ms),
            3..=5 => rng.random_range(40 * ms..400 * ms),
            _ => rng.random_range(400 * ms..3000 * ms),
        };
        let kind = match kind {
            "crash" => FaultKind::Crash {
                node: target,
                power_loss: rng.random_bool(0.5),
            },
            "pause" => FaultKind::Pause { node: target },
            "bounce" => FaultKind::Bounce {
                node: target,
                every_ms: rng.random_range(5..200),
            },
            "churn" => FaultKind::Churn {
                gap_ms: [20, 50, 150, 400][rng.random_range(0..4)],
                down_ms: [5, 50, 300, 1500][rng.random_range(0..4)],
                power_loss: rng.random_bool(0.5),
            },
            "transition" => FaultKind::Transition {
                pct: [10, 30, 100][rng.random_range(0..3)],
                within_us: [200, 1000, 3000, 20_000][rng.random_range(0..4)],
                down_ms: [5, 50, 300][rng.random_range(0..3)],
            },
            "apply" => FaultKind::Apply {
                pct: [5, 20, 100][rng.random_range(0..3)],
                within_us: [200, 1000, 3000, 20_000][rng.random_range(0..4)],
                down_ms: [5, 50, 300][rng.random_range(0..3)],
                power_loss: rng.random_bool(0.5),
            },
            "partition" => FaultKind::Partition {
                hold: rng.random_bool(0.5),
                shape: match rng.random_range(0..8u32) {
                    7 => Shape::Swizzle,
                    0 => Shape::IsolateNode(node),
                    1 | 2 => Shape::IsolateLeader,
                    3 => Shape::LeaderMinority,
                    4 => Shape::Halves(rng.random_range(0..u64::MAX)),
                    5 => Shape::Bridge(node),
                    _ => {
                        let to = (node % nodes) + 1;
                        if rng.random_bool(0.5) {
                            Shape::OneWay { from: node, to }
                        } else if nodes >= 4 {
                            Shape::Ring
                        } else {
                            Shape::OneWay { from: to, to: node }
                        }
                    }
                },
            },
            "net" => FaultKind::Net {
                loss: [0.0, 0.05, 0.2, 0.5][rng.random_range(0..4)],
                dup: [0.0, 0.05, 0.2][rng.random_range(0..3)],
                delay_ms: [0, 5, 50, 200, 1000][rng.random_range(0..5)],
            },
            "drift" => FaultKind::Drift {
                node,
                permille: rng.random_range(950..=1050),
            },
            "reconfig" => FaultKind::Reconfig {
                change: changes.next(&mut rng),
            },
            "persist" => {
                let op = FsOp::ALL[rng.random_range(0..FsOp::ALL.len())];
                let pct = if frequent(op) {
                    [1, 5, 20][rng.random_range(0..3)]
                } else {
                    [20, 50, 100][rng.random_range(0..3)]
                };
                FaultKind::Persist {
                    op,
                    pct,
                    during: rng.random_bool(0.5),
                    within_us: [0, 200, 2000][rng.random_range(0..3)],
                    power_loss: rng.random_bool(0.5),
                    down_ms: [5, 50, 300][rng.random_range(0..3)],
                    sync_us: [0, 200, 2000, 10_000][rng.random_range(0..4)],
                }
            }
            "stall" => FaultKind::Stall {
                pct: [20, 50, 100][rng.random_range(0..3)],
                hold_us: [1_000, 5_000, 20_000, 50_000][rng.random_range(0..4)],
            },
            "torn" => FaultKind::Torn {},
            "lag" => FaultKind::Lag {
                node: target,
                delay_ms: [20, 100, 400, 900][rng.random_range(0..4)],
                jitter_pct: [0, 10, 50][rng.random_range(0..3)],
            },
            "freeze" => FaultKind::Freeze {
                nodes: rng.random_range(2..=nodes.max(2)),
                pick: rng.random_range(0..u64::MAX),
                leader: rng.random_bool(0.5),
            },
            // Every node a third of the time (as the disk nemesis), else any number.
            "outage" => FaultKind::Outage {
                nodes: if rng.random_bool(1.0 / 3.0) {
                    nodes
                } else {
                    rng.random_range(1..=nodes)
                },
                pick: rng.random_range(0..u64::MAX),
                leader: rng.random_bool(0.5),
            },
            _ => FaultKind::Clock {
                node: target,
                ms: [-60_000i64, -5_000, -500, 500, 5_000, 60_000][rng.random_range(0..6)],
            },
        };
        out.push(Fault {
            start_ns: t,
            stop_ns: (t + len).min(horizon),
            kind,
        });
        t += rng.random_range(50 * ms..800 * ms);
    }
    // One crash, pause, bounce or churn at a time (they would otherwise often take down a
    // majority; churn keeps a majority up by itself).
    let (mut busy_until, mut reconfig_until, mut persist_until) = (0, 0, 0);
    let (mut stall_until, mut torn_until) = (0, 0);
    out.retain(|f| match f.kind {
        FaultKind::Torn {} => {
            if f.start_ns < torn_until {
                false
            } else {
                torn_until = f.stop_ns;
                true
            }
        }
        FaultKind::Stall { .. } => {
            if f.start_ns < stall_until {
                false
            } else {
                stall_until = f.stop_ns;
                true
            }
        }
        FaultKind::Persist { .. } => {
            if f.start_ns < persist_until {
                false
            } else {
                persist_until = f.stop_ns;
                true
            }
        }
        // One membership change at a time (each is undone before the next starts).
        FaultKind::Reconfig { .. } => {
            if f.start_ns < reconfig_until {
                false
            } else {
                reconfig_until = f.stop_ns;
                true
            }
        }
        FaultKind::Crash { .. }
        | FaultKind::Pause { .. }
        | FaultKind::Bounce { .. }
        | FaultKind::Churn { .. }
        | FaultKind::Freeze { .. }
        | FaultKind::Outage { .. } => {
            if f.start_ns < busy_until {
                false
            } else {
                busy_until = f.stop_ns;
                true
            }
        }
        _ => true,
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_schedule_and_different_seeds_differ() {
        let kinds = KINDS.to_vec();
        let a = draw(7, 5, 20_000_000_000, &kinds);
        assert_eq!(a, draw(7, 5, 20_000_000_000, &kinds));
        assert_ne!(a, draw(8, 5, 20_000_000_000, &kinds));
        assert!(a.len() > 5, "{a:?}");
        for f in &a {
            assert!(
                f.start_ns < f.stop_ns && f.stop_ns <= 18_000_000_000,
                "{f:?}"
            );
        }
        let only = draw(7, 5, 20_000_000_000, &["pause"]);
        assert!(only.iter().all(|f| f.kind.family() == "pause"));
        assert!(draw(7, 5, 20_000_000_000, &[]).is_empty());
    }

    #[test]
    fn membership_changes_start_with_a_replacement_and_never_overlap() {
        let s = draw(3, 3, 20_000_000_000, &["reconfig", "crash"]);
        let changes: Vec<&Fault> = s.iter().filter(|f| f.kind.family() == "reconfig").collect();
        assert!(changes.len() > 3, "{s:?}");
        assert_eq!(
            changes[0].kind,
            FaultKind::Reconfig {
                change: membership::Change::Replace
            }
        );
        for w in changes.windows(2) {
            assert!(w[0].stop_ns <= w[1].start_ns, "{w:?}");
        }
    }

    #[test]
    fn kinds_are_all_then_the_named_ones() {
        assert_eq!(KINDS.len(), ALL.len() + NAMED.len());
        assert_eq!(&KINDS[..ALL.len()], ALL);
        assert_eq!(&KINDS[ALL.len()..], NAMED);
        for k in NAMED {
            assert!(!ALL.contains(k), "{k}");
        }
        for k in SELFTEST_KINDS {
            assert!(KINDS.contains(k) && *k != "reconfig", "{k}");
        }
        assert_eq!(SELFTEST_KINDS.len(), KINDS.len() - 1);
        let mut unique = KINDS.to_vec();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), KINDS.len());
    }

    #[test]
    fn persist_faults_never_overlap_and_leave_old_schedules_alone() {
        let s = draw(5, 5, 20_000_000_000, &["persist", "net"]);
        let p: Vec<&Fault> = s.iter().filter(|f| f.kind.family() == "persist").collect();
        assert!(p.len() > 3, "{s:?}");
        for w in p.windows(2) {
            assert!(w[0].stop_ns <= w[1].start_ns, "{w:?}");
        }
        // A kind outside `all` draws nothing unless named: `all` schedules are as before.
        assert!(
            draw(5, 5, 20_000_000_000, ALL)
                .iter()
                .all(|f| f.kind.family() != "persist")
        );
        let json = serde_json::to_string(p[0]).unwrap();
        let back: Fault = serde_json::from_str(&json).unwrap();
        assert_eq!(&back, p[0]);
        assert!(json.contains("\"kind\":\"persist\""), "{json}");
    }

    #[test]
    fn freezes_take_two_or_more_nodes_one_at_a_time_and_leave_old_schedules_alone() {
        let s = draw(11, 5, 20_000_000_000, &["freeze", "pause", "net"]);
        let f: Vec<&Fault> = s
            .iter()
            .filter(|f| matches!(f.kind.family(), "freeze" | "pause"))
            .collect();
        assert!(
            f.iter().filter(|f| f.kind.family() == "freeze").count() > 2,
            "{s:?}"
        );
        for w in f.windows(2) {
            assert!(w[0].stop_ns <= w[1].start_ns, "{w:?}");
        }
        for x in &f {
            if let FaultKind::Freeze { nodes, .. } = x.kind {
                assert!((2..=5).contains(&nodes), "{x:?}");
            }
        }
        assert_eq!(s, draw(11, 5, 20_000_000_000, &["freeze", "pause", "net"]));
        // Outside `all`: schedules of `all` (and their seeds) are as before.
        assert!(
            draw(11, 5, 20_000_000_000, ALL)
                .iter()
                .all(|f| f.kind.family() != "freeze")
        );
        let json = serde_json::to_string(f[0]).unwrap();
        let back: Fault = serde_json::from_str(&json).unwrap();
        assert_eq!(&back, f[0]);
    }

    #[test]
    fn swarm_draws_a_nonempty_ordered_subset_per_seed() {
        let kinds = KINDS.to_vec();
        let mut sizes = std::collections::BTreeSet::new();
        let mut seen = std::collections::BTreeSet::new();
        for seed in 0..200 {
            let sub = swarm(seed, &kinds);
            assert!(!sub.is_empty());
            assert_eq!(sub, swarm(seed, &kinds), "seed {seed}: not deterministic");
            // A subsequence of `kinds`: same order, no repeats.
            let mut at = 0;
            for k in &sub {
                at += kinds[at..].iter().position(|x| x == k).expect("in order") + 1;
            }
            sizes.insert(sub.len());
            seen.extend(sub);
        }
        assert!(sizes.len() > 5, "{sizes:?}");
        assert_eq!(seen.len(), kinds.len(), "every kind drawn by some seed");
        assert_eq!(swarm(3, &["crash"]), vec!["crash"]);
        assert!(swarm(3, &[]).is_empty());
    }

    /// `tcp` is one fault over the whole run, appended to exactly the faults drawn
    /// without it (so with and without it compare the same schedules).
    #[test]
    fn tcp_spans_the_run_and_leaves_the_drawn_faults_alone() {
        let kinds = ["crash", "bounce", "partition"];
        let without = draw(9, 3, 20_000_000_000, &kinds);
        let with = draw(
            9,
            3,
            20_000_000_000,
            &["crash", "tcp", "bounce", "partition"],
        );
        assert!(!without.is_empty());
        assert_eq!(&with[..without.len()], &without[..]);
        assert_eq!(with.len(), without.len() + 1);
        assert_eq!(
            with[without.len()],
            Fault {
                start_ns: 0,
                stop_ns: 18_000_000_000,
                kind: FaultKind::Tcp {}
            }
        );
        assert_eq!(draw(9, 3, 20_000_000_000, &["tcp"]).len(), 1);
        assert!(
            draw(9, 3, 20_000_000_000, ALL)
                .iter()
                .all(|f| f.kind.family() != "tcp")
        );
        let json = serde_json::to_string(&with[without.len()]).unwrap();
        assert!(json.contains("\"kind\":\"tcp\""), "{json}");
        let back: Fault = serde_json::from_str(&json).unwrap();
        assert_eq!(back, with[without.len()]);
    }

    #[test]
    fn faults_parse_with_one_line_errors() {
        assert_eq!(
            parse_faults("crash,pause,crash").unwrap(),
            vec!["crash", "pause"]
        );
        assert_eq!(parse_faults("all").unwrap(), ALL.to_vec());
        assert!(NAMED.iter().all(|k| !ALL.contains(k)));
        let mut with = ALL.to_vec();
        with.push("reconfig");
        assert_eq!(parse_faults("all,reconfig").unwrap(), with);
        with.push("persist");
        assert_eq!(parse_faults("all,reconfig,persist").unwrap(), with);
        with.push("stall");
        assert_eq!(parse_faults("all,reconfig,persist,stall").unwrap(), with);
        with.push("torn");
        assert_eq!(
            parse_faults("all,reconfig,persist,stall,torn").unwrap(),
            with
        );
        with.push("freeze");
        assert_eq!(
            parse_faults("all,reconfig,persist,stall,torn,freeze").unwrap(),
            with
        );
        with.push("tcp");
        assert_eq!(
            parse_faults("all,reconfig,persist,stall,torn,freeze,tcp").unwrap(),
            with
        );
        with.extend(["outage", "lag", "apply"]);
        assert_eq!(
            parse_faults("all,reconfig,persist,stall,torn,freeze,tcp,outage,lag,apply").unwrap(),
            with
        );
        assert_eq!(
            parse_faults("apply,lag,outage,tcp,freeze,torn,stall,reconfig,persist,all")
                .unwrap()
                .len(),
            KINDS.len()
        );
        assert!(parse_faults("none").unwrap().is_empty());
        let e = parse_faults("crash,bogus").unwrap_err();
        assert!(e.contains("bogus") && !e.contains('\n'), "{e}");
    }
}

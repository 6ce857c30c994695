//! The nemesis: a seeded schedule of faults, each a start/stop pair with a heal.
//!
//! Faults really happen and are checked: a kill must produce a new PID on restart, a pause
//! must put the process in state `T`, a partition must make exactly the cut pairs
//! unreachable (probed with TCP connects inside the namespaces), and a clock bump must
//! show in the node's own reading of its wall clock. A fault that cannot be applied or
//! verified aborts the run (exit 3): a run whose faults did not happen proves nothing.
//! Membership changes are the exception: they are operations on the system, whose
//! refusals and timeouts are recorded as outcomes (see [`membership`]).
//!
//! With spare nodes present (`--spares`), kill, pause, partition and clock faults draw
//! their nodes from the current voters (the leader's `STATUS`; the initial voters when no
//! leader answers): spares outside the voter set are idle, so faulting them tests nothing.
//! Spares are not partitioned off and keep reaching every node.

pub mod disk;
pub mod membership;
pub mod net;
pub mod partition;
pub mod targeted;

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::cluster::Cluster;
use partition::Shape;

/// Fault families a user can enable with `--nemesis`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Family {
    Kill,
    Pause,
    Partition,
    Clock,
    /// Combined faults for `stasis selftest` (not selectable with `--nemesis`).
    Targeted,
    Membership,
    /// Disk faults (see [`disk`]); not part of `all`: it mounts a FUSE filesystem.
    Disk,
    /// Slow, lossy, duplicating, reordering, narrow links (see [`net`]).
    Net,
}

impl Family {
    pub const ALL: [Family; 6] = [
        Family::Kill,
        Family::Pause,
        Family::Partition,
        Family::Clock,
        Family::Membership,
        Family::Net,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Family::Kill => "kill",
            Family::Pause => "pause",
            Family::Partition => "partition",
            Family::Clock => "clock",
            Family::Targeted => "targeted",
            Family::Membership => "membership",
            Family::Disk => "disk",
            Family::Net => "net",
        }
    }

    /// Parses a comma-separated list: `kill,pause`, `all`, or `none`.
    pub fn parse_list(s: &str) -> Result<Vec<Family>, String> {
        let mut out = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part {
                "all" => out.extend(Family::ALL),
                "none" => {}
                "disk" => out.push(Family::Disk),
                k if disk::Kind::parse(k).is_some() => out.push(Family::Disk),
                _ => match Family::ALL.iter().find(|f| f.name() == part) {
                    Some(f) => out.push(*f),
                    None => {
                        return Err(format!(
                            "unknown nemesis {part:?}: use kill, pause, partition, clock, membership, net, all, none, disk or a disk kind (lose-unfsynced, lose-unfsynced-torn, corrupt, disk-full, slow-disk)"
                        ));
                    }
                },
            }
        }
        let mut seen = Vec::new();
        out.retain(|f| {
            let first = !seen.contains(f);
            seen.push(*f);
            first
        });
        Ok(out)
    }
}

/// Which nodes a kill or pause hits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Target {
    One,
    Leader,
    Minority,
    All,
}

impl Target {
    pub const ALL: [Target; 4] = [Target::One, Target::Leader, Target::Minority, Target::All];

    pub fn name(self) -> &'static str {
        match self {
            Target::One => "one",
            Target::Leader => "leader",
            Target::Minority => "minority",
            Target::All => "all",
        }
    }

    /// Parses a comma-separated list such as `one,leader`.
    pub fn parse_list(s: &str) -> Result<Vec<Target>, String> {
        let mut out = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match Target::ALL.iter().find(|t| t.name() == part) {
                Some(t) => out.push(*t),
                None => {
                    return Err(format!(
                        "unknown target {part:?}: use one, leader, minority or all"
                    ));
                }
            }
        }
        if out.is_empty() {
            return Err("give at least one target".into());
        }
        Ok(out)
    }
}

/// One fault.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Fault {
    Kill {
        target: Target,
    },
    Pause {
        target: Target,
    },
    Partition {
        shape: Shape,
    },
    /// Move chosen nodes' wall clocks by `offset_ms` (reset on stop).
    ClockBump {
        offset_ms: i64,
    },
    /// Flip chosen nodes' wall clocks between real time and `offset_ms` every `period_ms`.
    ClockStrobe {
        offset_ms: i64,
        period_ms: u64,
    },
    /// A combined fault (see [`targeted`]).
    Targeted {
        combo: targeted::Scenario,
    },
    /// Change the voter set (the nodes are drawn at start from the current voters and
    /// the spares); changed back on stop.
    Reconfig {
        change: membership::Change,
    },
    /// A disk fault through the node's FUSE mount.
    Disk {
        disk: disk::Kind,
    },
    /// Delay, loss, duplication, reordering or a bandwidth cap on some links.
    Net {
        net: net::NetFault,
    },
}

impl Fault {
    pub fn family(&self) -> Family {
        match self {
            Fault::Kill { .. } => Family::Kill,
            Fault::Pause { .. } => Family::Pause,
            Fault::Partition { .. } => Family::Partition,
            Fault::ClockBump { .. } | Fault::ClockStrobe { .. } => Family::Clock,
            Fault::Targeted { .. } => Family::Targeted,
            Fault::Reconfig { .. } => Family::Membership,
            Fault::Disk { .. } => Family::Disk,
            Fault::Net { .. } => Family::Net,
        }
    }

    /// The history's nemesis function name (`start-kill`, `stop-clock`, ...).
    pub fn event(&self, phase: &str) -> String {
        format!("{phase}-{}", self.family().name())
    }
}

/// One scheduled fault: when it starts (seconds into the fault phase), how long it is
/// held, and the seed for its random choices (targets).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Planned {
    /// Milliseconds into the fault phase.
    pub at_ms: u64,
    /// How long the fault is held, ms.
    pub hold_ms: u64,
    pub fault: Fault,
    pub pick: u64,
}

/// The share of kills, pauses and partitions that are short (0.15-1 s).
pub const SHORT_FAULTS: f64 = 0.3;

/// Builds the whole fault schedule from the seed, before the run starts (so it can be
/// stored in test.json and replayed). Faults do not overlap: each is healed before the
/// next quiet gap. Most last 0.8-1.6 times `interval`; a share ([`SHORT_FAULTS`]) of
/// kills, pauses and partitions last 0.15-1 s instead.
pub fn schedule(
    families: &[Family],
    targets: &[Target],
    shapes: &[Shape],
    phase: Duration,
    interval: Duration,
    nodes: usize,
    seed: u64,
) -> Vec<Planned> {
    let mut out = Vec::new();
    let families: Vec<Family> = families
        .iter()
        .copied()
        .filter(|f| *f != Family::Targeted)
        .collect();
    if families.is_empty() {
        return out;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x006e_656d_6573_6973);
    // A stream of its own decides which kills, pauses and partitions are short: a
    // partition that heals inside a check-quorum window (no new election, the old leader's
    // messages arrive late), a pause shorter than an election timeout (a leader that never
    // noticed it was gone), a node killed and restarted at once (recovery in the middle of
    // replication). The main stream, and so every other draw, is the same as without it.
    let mut short = ChaCha8Rng::seed_from_u64(seed ^ 0x0073_686f_7274_6661);
    let mean = interval.as_secs_f64().max(0.5);
    let mut t = rng.random_range(0.2..0.6) * mean;
    let end = phase.as_secs_f64();
    let mut order: Vec<Family> = Vec::new();
    let mut changes = membership::Kinds::default();
    while t < end {
        // Cycle through the families in shuffled rounds, so every enabled family shows up
        // early even in short runs.
        if order.is_empty() {
            order = families.to_vec();
            order.shuffle(&mut rng);
        }
        let family = order.pop().expect("non-empty");
        let mut hold = (rng.random_range(0.8..1.6) * mean).min((end - t).max(1.0));
        if matches!(family, Family::Kill | Family::Pause | Family::Partition)
            && short.random_bool(SHORT_FAULTS)
        {
            hold = short.random_range(0.15..1.0);
        }
        let fault = match family {
            Family::Kill => Fault::Kill {
                target: *targets.choose(&mut rng).unwrap_or(&Target::One),
            },
            Family::Pause => {
                // Pausing every node is indistinguishable from a stopped clock for the
                // whole cluster; kill covers "all".
                let pausable: Vec<Target> = targets
                    .iter()
                    .copied()
                    .filter(|t| *t != Target::All)
                    .collect();
                Fault::Pause {
                    target: *pausable.choose(&mut rng).unwrap_or(&Target::One),
                }
            }
            Family::Partition => {
                let usable: Vec<Shape> = shapes
                    .iter()
                    .copied()
                    .filter(|s| *s != Shape::Bridge || nodes >= 3)
                    .collect();
                Fault::Partition {
                    shape: *usable.choose(&mut rng).unwrap_or(&Shape::IsolateOne),
                }
            }
            // Never drawn (filtered out above): targeted faults are scheduled by selftest.
            Family::Targeted => Fault::Kill {
                target: Target::Leader,
            },
            Family::Clock => {
                let secs = rng.random_range(2..=60i64) * if rng.random_bool(0.5) { 1 } else { -1 };
                if rng.random_bool(0.5) {
                    Fault::ClockBump {
                        offset_ms: secs * 1000,
                    }
                } else {
                    Fault::ClockStrobe {
                        offset_ms: secs * 1000,
                        period_ms: rng.random_range(20..=200),
                    }
                }
            }
            Family::Membership => Fault::Reconfig {
                change: changes.next(&mut rng),
            },
            Family::Disk => Fault::Disk {
                disk: *disk::Kind::ALL.choose(&mut rng).expect("non-empty"),
            },
            Family::Net => Fault::Net {
                net: net::NetFault::draw(&mut rng, &net::Kind::ALL),
            },
        };
        out.push(Planned {
            at_ms: (t * 1000.0) as u64,
            hold_ms: (hold * 1000.0) as u64,
            fault,
            pick: rng.random(),
        });
        t += hold + rng.random_range(0.5..1.0) * mean;
    }
    out
}

/// What an active fault did, so it can be undone and reported.
pub struct Active {
    pub planned: Planned,
    pub nodes: Vec<usize>,
    pub grudge: Option<partition::Grudge>,
    strobe: Option<(
        std::sync::Arc<std::sync::atomic::AtomicBool>,
        std::thread::JoinHandle<()>,
    )>,
    pub(crate) old_pids: Vec<u32>,
    /// The voter set a membership change started from (restored on stop).
    voters_before: Option<Vec<usize>>,
    /// Human-readable evidence that the fault took effect.
    pub evidence: Vec<String>,
}

/// Asks every running node (not the auxiliary processes) who leads; returns the index of
/// a node that says it does.
pub fn find_leader(cluster: &Cluster<'_>) -> Option<usize> {
    (0..cluster.len()).find(|&i| {
        !cluster.is_aux(i)
            && cluster
                .protocol
                .is_leader(cluster.info(i).client_addr(), Duration::from_millis(500))
                .unwrap_or(false)
    })
}

/// A completed nemesis action, for results.json and the summary.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FaultRecord {
    pub family: Family,
    pub fault: Fault,
    pub start_ns: u64,
    pub stop_ns: u64,
    pub value: Value,
    pub evidence: Vec<String>,
    /// Membership faults: whether either of the two changes took effect (acknowledged,
    /// or shown by the leader's STATUS).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub changed: bool,
    /// Milliseconds from the nemesis deciding to start the fault to the fault applied and
    /// verified (locally or over ssh: what a remote host costs), and the same for healing
    /// it. 0 in records written before they were measured.
    #[serde(default)]
    pub apply_ms: f64,
    #[serde(default)]
    pub heal_ms: f64,
}

/// The nodes kill, pause, partition and clock faults draw from: every node, or with
/// spares present the current voters (the initial ones when no leader answers).
pub(crate) fn fault_pool(cluster: &Cluster<'_>) -> Vec<usize> {
    if !cluster.has_spares() {
        return (0..cluster.len()).collect();
    }
    match membership::leader_view(cluster) {
        Ok(v) if !v.voters.is_empty() => v.voters,
        _ => cluster.initial_voters(),
    }
}

/// Renames a grudge drawn over positions in `pool` to cluster indices.
fn onto_pool(g: partition::Grudge, pool: &[usize]) -> partition::Grudge {
    g.into_iter()
        .map(|(x, ys)| (pool[x], ys.into_iter().map(|y| pool[y]).collect()))
        .collect()
}

fn pick_nodes(
    target: Target,
    cluster: &Cluster<'_>,
    pool: &[usize],
    rng: &mut ChaCha8Rng,
) -> Result<Vec<usize>> {
    let n = pool.len();
    let mut all: Vec<usize> = pool.to_vec();
    all.shuffle(rng);
    Ok(match target {
        Target::One => vec![all[0]],
        Target::Leader => match find_leader(cluster) {
            Some(l) => vec![l],
            // No leader right now (an election is under way): hit one node instead.
            None => vec![all[0]],
        },
        Target::Minority => {
            let k = rng.random_range(1..=((n - 1) / 2).max(1));
            all.truncate(k);
            all
        }
        Target::All => all,
    })
}

pub(crate) fn names(cluster: &Cluster<'_>, nodes: &[usize]) -> Value {
    json!(
        nodes
            .iter()
            .map(|&i| cluster.info(i).name.clone())
            .collect::<Vec<_>>()
    )
}

/// Applies a fault and verifies it took effect. Returns what was done and the value to
/// record in the history's `start-*` event.
pub fn start(cluster: &mut Cluster<'_>, planned: &Planned) -> Result<(Active, Value)> {
    let mut rng = ChaCha8Rng::seed_from_u64(planned.pick);
    let mut active = Active {
        planned: planned.clone(),
        nodes: Vec::new(),
        grudge: None,
        strobe: None,
        old_pids: Vec::new(),
        voters_before: None,
        evidence: Vec::new(),
    };
    let pool = match planned.fault {
        Fault::Reconfig { .. } => Vec::new(),
        _ => fault_pool(cluster),
    };
    let value = match &planned.fault {
        Fault::Kill { target } => {
            active.nodes = pick_nodes(*target, cluster, &pool, &mut rng)?;
            for &i in &active.nodes {
                if let Some(pid) = cluster.kill(i)? {
                    active.old_pids.push(pid);
                    active
                        .evidence
                        .push(format!("{} pid {pid} killed", cluster.info(i).name));
                }
            }
            names(cluster, &active.nodes)
        }
        Fault::Pause { target } => {
            active.nodes = pick_nodes(*target, cluster, &pool, &mut rng)?;
            for &i in &active.nodes {
                let pid = cluster.pause(i)?;
                active
                    .evidence
                    .push(format!("{} pid {pid} in state T", cluster.info(i).name));
            }
            names(cluster, &active.nodes)
        }
        Fault::Partition { shape } => {
            let leader = if *shape == Shape::IsolateLeader {
                find_leader(cluster)
            } else {
                None
            };
            // The shape is drawn over the pool; grudge indices are then cluster indices.
            let in_pool = leader.and_then(|l| pool.iter().position(|&p| p == l));
            let shape = if *shape == Shape::IsolateLeader && in_pool.is_none() {
                Shape::IsolateOne
            } else {
                *shape
            };
            let g = onto_pool(
                partition::grudge(shape, pool.len(), in_pool, &mut rng)?,
                &pool,
            );
            let infos = cluster.infos();
            let netns: Vec<String> = infos.iter().map(|i| i.netns.clone()).collect();
            let addrs: Vec<_> = infos.iter().map(|i| i.addr).collect();
            partition::apply(&g, &netns, &addrs)?;
            let peers: Vec<SocketAddr> = infos.iter().map(|i| i.peer_addr()).collect();
            let want = partition::expected_unreachable(&g, infos.len());
            crate::firewall::verify_reachability(&netns, &peers, &want)
                .with_context(|| format!("partition {} did not take effect", shape.name()))?;
            active.evidence.push(format!(
                "{} ordered pairs unreachable, as intended",
                want.len()
            ));
            let names: Vec<String> = infos.iter().map(|i| i.name.clone()).collect();
            let v = json!({"shape": shape.name(), "grudge": partition::describe(&g, &names)});
            active.grudge = Some(g);
            v
        }
        Fault::ClockBump { offset_ms } => {
            require_faketime(cluster)?;
            active.nodes = pick_nodes(Target::Minority, cluster, &pool, &mut rng)?;
            for &i in &active.nodes {
                cluster.set_clock(i, *offset_ms as f64 / 1000.0, 1.0)?;
            }
            for &i in &active.nodes {
                let seen = verify_clock(cluster, i, *offset_ms)?;
                active.evidence.push(seen);
            }
            json!({"nodes": names(cluster, &active.nodes), "offset_ms": offset_ms})
        }
        Fault::ClockStrobe {
            offset_ms,
            period_ms,
        } => {
            require_faketime(cluster)?;
            active.nodes = pick_nodes(Target::Minority, cluster, &pool, &mut rng)?;
            let files: Vec<_> = active
                .nodes
                .iter()
                .map(|&i| cluster.clock_control(i))
                .collect();
            // Prove the offset reaches the node before strobing.
            for (k, &i) in active.nodes.iter().enumerate() {
                files[k].write(*offset_ms as f64 / 1000.0, 1.0)?;
                let seen = verify_clock(cluster, i, *offset_ms)?;
                active.evidence.push(seen);
            }
            let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            let s = stop.clone();
            let (off, period) = (*offset_ms as f64 / 1000.0, *period_ms);
            let handle = std::thread::spawn(move || {
                let mut on = false;
                while !s.load(std::sync::atomic::Ordering::Relaxed) {
                    for f in &files {
                        let _ = f.write(if on { off } else { 0.0 }, 1.0);
                    }
                    on = !on;
                    std::thread::sleep(Duration::from_millis(period));
                }
            });
            active.strobe = Some((stop, handle));
            json!({"nodes": names(cluster, &active.nodes), "offset_ms": offset_ms, "period_ms": period_ms})
        }
        Fault::Targeted { combo } => targeted::start(cluster, combo, &mut rng, &mut active)?,
        Fault::Disk { disk: kind } => disk::start(cluster, *kind, &mut rng, &mut active)?,
        Fault::Net { net } => net::start(cluster, net, &pool, &mut rng, &mut active.evidence)?,
        Fault::Reconfig { change } => {
            let m = cluster
                .membership
                .clone()
                .context("the membership nemesis needs the system spec's [membership] section")?;
            let s = membership::start(cluster, &m, *change, &mut rng);
            active.voters_before = s.before;
            active.evidence.push(s.evidence);
            s.value
        }
    };
    Ok((active, value))
}

/// Undoes a fault (heal) and verifies the heal. Returns the `stop-*` event value.
pub fn stop(cluster: &mut Cluster<'_>, active: &mut Active) -> Result<Value> {
    match &active.planned.fault {
        Fault::Kill { .. } => {
            for (k, &i) in active.nodes.iter().enumerate() {
                let pid = cluster.start(i)?;
                if active.old_pids.get(k) == Some(&pid) {
                    bail!("{} restarted with its old pid {pid}", cluster.info(i).name);
                }
                active
                    .evidence
                    .push(format!("{} restarted as pid {pid}", cluster.info(i).name));
            }
            // A node that dies right away (bad data dir, port in use) fails the run.
            std::thread::sleep(Duration::from_millis(200));
            for &i in &active.nodes {
                if !cluster.is_running(i) {
                    bail!(
                        "{} exited right after its restart; see {}",
                        cluster.info(i).name,
                        cluster.info(i).log_path().display()
                    );
                }
            }
        }
        Fault::Pause { .. } => {
            for &i in &active.nodes {
                cluster.resume(i)?;
            }
        }
        Fault::Partition { .. } => {
            heal_network(cluster)?;
        }
        Fault::Net { net } => {
            net::stop(cluster, net, &mut active.evidence)?;
        }
        Fault::ClockBump { .. } | Fault::ClockStrobe { .. } => {
            if let Some((flag, handle)) = active.strobe.take() {
                flag.store(true, std::sync::atomic::Ordering::Relaxed);
                let _ = handle.join();
            }
            for &i in &active.nodes {
                cluster.set_clock(i, 0.0, 1.0)?;
            }
            for &i in &active.nodes {
                let seen = verify_clock(cluster, i, 0)?;
                active.evidence.push(format!("reset: {seen}"));
            }
        }
        Fault::Targeted { combo } => {
            let combo = combo.clone();
            targeted::stop(cluster, &combo, active)?;
        }
        Fault::Disk { disk: kind } => {
            let kind = *kind;
            return disk::stop(cluster, kind, active);
        }
        Fault::Reconfig { .. } => {
            let m = cluster
                .membership
                .clone()
                .context("the membership nemesis needs the system spec's [membership] section")?;
            let (value, evidence) = membership::stop(cluster, &m, active.voters_before.as_deref());
            active.evidence.push(evidence);
            return Ok(value);
        }
    }
    let nodes = names(cluster, &active.nodes);
    Ok(match active.planned.fault.family() {
        Family::Partition | Family::Net => json!("healed"),
        _ => nodes,
    })
}

/// Flushes partition rules everywhere and checks every pair can talk again.
pub fn heal_network(cluster: &Cluster<'_>) -> Result<()> {
    let infos = cluster.infos();
    let netns: Vec<String> = infos.iter().map(|i| i.netns.clone()).collect();
    partition::heal(&netns)?;
    if let Some(shaper) = &cluster.shaper {
        shaper.clear_faults()?;
    }
    let peers: Vec<SocketAddr> = infos.iter().map(|i| i.peer_addr()).collect();
    crate::firewall::verify_reachability(&netns, &peers, &Default::default())
        .context("the network did not heal")
}

fn require_faketime(cluster: &Cluster<'_>) -> Result<()> {
    if !cluster.has_faketime() {
        bail!(
            "the clock nemesis needs the nodes to run under libfaketime, and this system's spec says its binary cannot (Go binaries bypass libc's clock)"
        );
    }
    Ok(())
}

fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Reads node `i`'s wall clock from its STATUS and checks it is off by `offset_ms`
/// (within 1.5 s). Retries briefly: the node may be busy.
pub fn verify_clock(cluster: &Cluster<'_>, i: usize, offset_ms: i64) -> Result<String> {
    let info = cluster.info(i);
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut last = String::from("no reading");
    while Instant::now() < deadline {
        let before = wall_ms();
        match cluster
            .protocol
            .wall_clock_ms(info.client_addr(), Duration::from_secs(1))
        {
            Ok(node_ms) => {
                let after = wall_ms();
                let seen = node_ms - (before + after) / 2;
                if (seen - offset_ms).abs() <= 1500 {
                    return Ok(format!(
                        "{} clock reads {:+.1} s (wanted {:+.1} s)",
                        info.name,
                        seen as f64 / 1000.0,
                        offset_ms as f64 / 1000.0
                    ));
                }
                last = format!("offset {:+.1} s", seen as f64 / 1000.0);
            }
            Err(e) => last = e,
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!(
        "{}: clock offset did not become {:+.1} s ({last})",
        info.name,
        offset_ms as f64 / 1000.0
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn family_lists() {
        assert_eq!(Family::parse_list("all").unwrap(), Family::ALL.to_vec());
        assert_eq!(Family::parse_list("none").unwrap(), vec![]);
        assert_eq!(
            Family::parse_list("kill, pause").unwrap(),
            vec![Family::Kill, Family::Pause]
        );
        let e = Family::parse_list("kill,boom").unwrap_err();
        assert!(e.contains("unknown nemesis \"boom\""), "{e}");
    }

    #[test]
    fn schedules_are_seeded_non_overlapping_and_cover_families() {
        let fams = Family::ALL.to_vec();
        let a = schedule(
            &fams,
            &Target::ALL,
            &Shape::ALL,
            Duration::from_secs(60),
            Duration::from_secs(5),
            3,
            9,
        );
        let b = schedule(
            &fams,
            &Target::ALL,
            &Shape::ALL,
            Duration::from_secs(60),
            Duration::from_secs(5),
            3,
            9,
        );
        assert_eq!(a, b);
        assert_ne!(
            a,
            schedule(
                &fams,
                &Target::ALL,
                &Shape::ALL,
                Duration::from_secs(60),
                Duration::from_secs(5),
                3,
                10
            )
        );
        for w in a.windows(2) {
            assert!(w[0].at_ms + w[0].hold_ms < w[1].at_ms, "{w:?}");
        }
        // Short kills, pauses and partitions (0.15-1 s) over many seeds, near their share,
        // and never of another family.
        let (mut short, mut eligible) = (0, 0);
        for seed in 0..200 {
            let s = schedule(
                &fams,
                &Target::ALL,
                &Shape::ALL,
                Duration::from_secs(60),
                Duration::from_secs(5),
                3,
                seed,
            );
            for p in &s {
                let fam = p.fault.family();
                let is_short = p.hold_ms < 1000;
                if matches!(fam, Family::Kill | Family::Pause | Family::Partition) {
                    eligible += 1;
                    short += usize::from(is_short);
                    if is_short {
                        assert!(p.hold_ms >= 150, "{p:?}");
                    }
                } else {
                    assert!(!is_short, "{p:?}");
                }
            }
        }
        let share = short as f64 / eligible as f64;
        assert!(
            (SHORT_FAULTS - 0.05..SHORT_FAULTS + 0.05).contains(&share),
            "{share}"
        );
        for f in Family::ALL {
            assert!(a.iter().any(|p| p.fault.family() == f), "{f:?} missing");
        }
        // The first round covers all families within five faults.
        let first: std::collections::HashSet<Family> = a
            .iter()
            .take(Family::ALL.len())
            .map(|p| p.fault.family())
            .collect();
        assert_eq!(first.len(), Family::ALL.len());
        assert!(
            schedule(
                &[],
                &Target::ALL,
                &Shape::ALL,
                Duration::from_secs(60),
                Duration::from_secs(5),
                3,
                9
            )
            .is_empty()
        );
    }

    #[test]
    fn targets_restrict_kill_and_pause() {
        let t = Target::parse_list("leader").unwrap();
        let s = schedule(
            &[Family::Kill, Family::Pause],
            &t,
            &Shape::ALL,
            Duration::from_secs(60),
            Duration::from_secs(3),
            3,
            4,
        );
        assert!(s.len() > 5);
        for p in &s {
            match p.fault {
                Fault::Kill { target } | Fault::Pause { target } => {
                    assert_eq!(target, Target::Leader)
                }
                _ => panic!("{p:?}"),
            }
        }
        assert!(
            Target::parse_list("one,boss")
                .unwrap_err()
                .contains("unknown target")
        );
    }

    #[test]
    fn shapes_restrict_partitions() {
        let only = Shape::parse_list("isolate-one").unwrap();
        let s = schedule(
            &[Family::Partition],
            &Target::ALL,
            &only,
            Duration::from_secs(60),
            Duration::from_secs(3),
            3,
            4,
        );
        assert!(!s.is_empty());
        assert!(s.iter().all(|p| p.fault
            == Fault::Partition {
                shape: Shape::IsolateOne
            }));
        assert!(
            Shape::parse_list("ring")
                .unwrap_err()
                .contains("unknown partition shape")
        );
    }

    #[test]
    fn partitions_over_a_pool_leave_the_others_connected() {
        // Voters n2, n4, n5 of five nodes: isolate the pool's first member (n2).
        let mut g = partition::Grudge::new();
        g.insert(0, [1, 2].into());
        g.insert(1, [0].into());
        g.insert(2, [0].into());
        let g = onto_pool(g, &[1, 3, 4]);
        let cut = partition::expected_unreachable(&g, 5);
        assert!(cut.contains(&(1, 3)) && cut.contains(&(4, 1)));
        assert_eq!(cut.len(), 4, "{cut:?}");
        assert!(
            cut.iter()
                .all(|&(a, b)| a != 0 && b != 0 && a != 2 && b != 2)
        );
    }

    #[test]
    fn membership_faults_are_scheduled_and_serialized() {
        let s = schedule(
            &[Family::Membership],
            &Target::ALL,
            &Shape::ALL,
            Duration::from_secs(60),
            Duration::from_secs(3),
            3,
            5,
        );
        assert!(s.len() > 5);
        assert_eq!(
            s[0].fault,
            Fault::Reconfig {
                change: membership::Change::Replace
            }
        );
        assert!(s.iter().all(|p| p.fault.family() == Family::Membership));
        assert_eq!(s[0].fault.event("start"), "start-membership");
        let text = serde_json::to_string(&s[0].fault).unwrap();
        assert_eq!(text, r#"{"kind":"reconfig","change":"replace"}"#);
        assert_eq!(
            Family::parse_list("membership,kill").unwrap(),
            vec![Family::Membership, Family::Kill]
        );
    }

    #[test]
    fn schedule_round_trips_through_json() {
        let a = schedule(
            &Family::ALL,
            &Target::ALL,
            &Shape::ALL,
            Duration::from_secs(30),
            Duration::from_secs(3),
            5,
            1,
        );
        let text = serde_json::to_string(&a).unwrap();
        let b: Vec<Planned> = serde_json::from_str(&text).unwrap();
        assert_eq!(a, b);
    }
}

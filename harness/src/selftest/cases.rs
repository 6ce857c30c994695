//! The selftest cases: one per seeded bug, plus the correct builds.
//!
//! Each case has one or more *plans*: a nemesis (the ordinary scheduler's families,
//! targets and shapes, or a targeted schedule of combined faults), node flags (faster
//! ticks, lease reads, ...), a workload and the length of one attempt. A case's attempts
//! cycle through its plans. The correct builds of a protocol cycle through the plans of
//! every bug case of that protocol, so a schedule that "finds bugs" in correct code shows.

use std::time::Duration;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::nemesis::targeted::Scenario;
use crate::nemesis::{Fault, Planned};

/// A schedule of targeted faults, drawn from the attempt's seed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScenarioSchedule {
    /// Isolate the leader and move its wall clock back by 20 to 40 s.
    IsolateLeaderClockBack,
    /// Make a node vote twice in one term across a restart (three nodes, no pre-vote).
    DoubleVote,
    /// Replace two voters with two spares in one change and cut the leaving two off
    /// (after the spares became learners when `pause_spares`, else first).
    SplitReplace { pause_spares: bool },
    /// Isolate the leader until a new one is elected, then cut only the two leaders apart.
    IsolateThenCutPair,
    /// The Raft paper's Figure 8 on five nodes (one entry per append message).
    Figure8,
}

impl ScenarioSchedule {
    /// Faults back to back over `phase`: held `hold`, then a quiet gap of `gap` (both
    /// jittered by the seed) so a new leader settles before the next one. `election_ms`
    /// is the nodes' minimum election timeout ([`Plan::election_ms`]).
    pub fn schedule(self, phase: Duration, seed: u64, election_ms: u64) -> Vec<Planned> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x7461_7267_6574);
        let (hold, gap) = match self {
            ScenarioSchedule::IsolateLeaderClockBack => (1300..2000, 600..1000),
            // The fault's own steps take up to two election timeouts before the hold.
            ScenarioSchedule::DoubleVote => (2000..3000, 5000..6000),
            ScenarioSchedule::SplitReplace { .. } => (3000..4000, 1500..2500),
            ScenarioSchedule::IsolateThenCutPair => (1500..2500, 3000..4000),
            // Held while the three elect a leader that replaces the entry and clients
            // read it; the gap lets the healed cluster settle.
            ScenarioSchedule::Figure8 => (4000..5000, 4000..5000),
        };
        let end = phase.as_millis() as u64;
        let mut t = rng.random_range(300..800);
        let mut out = Vec::new();
        while t + 500 < end {
            let hold_ms = rng.random_range(hold.clone());
            let combo = match self {
                ScenarioSchedule::IsolateLeaderClockBack => Scenario::IsolateLeaderClock {
                    offset_ms: -rng.random_range(20..=40) * 1000,
                },
                ScenarioSchedule::DoubleVote => Scenario::DoubleVote { election_ms },
                ScenarioSchedule::SplitReplace { pause_spares } => {
                    Scenario::SplitReplace { pause_spares }
                }
                ScenarioSchedule::IsolateThenCutPair => {
                    Scenario::IsolateThenCutPair { wait_ms: 3500 }
                }
                ScenarioSchedule::Figure8 => Scenario::Figure8 { election_ms },
            };
            out.push(Planned {
                at_ms: t,
                hold_ms,
                fault: Fault::Targeted { combo },
                pick: rng.random(),
            });
            t += hold_ms + rng.random_range(gap.clone());
        }
        out
    }

    /// Whether the nodes must run under libfaketime.
    pub fn needs_clock(self) -> bool {
        matches!(self, ScenarioSchedule::IsolateLeaderClockBack)
    }
}

/// One way to attack a case: nemesis, node flags, workload and attempt length.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// Short label shown in the table (`pause:leader`, `isolate-leader+clock-back`, ...).
    pub name: &'static str,
    pub nodes: u8,
    /// Spare nodes (`--spares`) for membership changes.
    pub spares: u8,
    /// Node flags given to the buggy and the correct build alike.
    pub node_args: &'static [&'static str],
    /// `--nemesis`, `--target`, `--shapes`, `--nemesis-interval` of the ordinary scheduler
    /// (ignored for the schedule when `targeted` is set).
    pub nemesis: &'static str,
    pub target: &'static str,
    pub shapes: &'static str,
    pub interval: &'static str,
    pub targeted: Option<ScenarioSchedule>,
    /// `--net-faults`: the kinds the net nemesis draws.
    pub net_faults: &'static str,
    /// `--net-delay`: the range of a delay fault's mean (`None`: the default range).
    pub net_delay: Option<&'static str>,
    /// `--net-jitter`: a delay fault's jitter in percent of its mean (`None`: 80%).
    pub net_jitter: Option<&'static str>,
    /// `--net-scopes`: the links a network fault covers (`None`: the default draw).
    pub net_scopes: Option<&'static str>,
    /// `--client-routing`: where each operation goes first.
    pub client_routing: &'static str,
    /// Workload length of one attempt (warm-up and faults included).
    pub attempt: Duration,
    pub keys: usize,
    pub rate: u32,
    pub write_pct: u32,
    pub cas_pct: u32,
    pub concurrency: usize,
    pub op_timeout: &'static str,
}

impl Plan {
    /// The nodes' minimum election timeout in milliseconds, from the plan's node flags
    /// (`--tick-ms` x `--election-ticks`, stasis-node's defaults 10 and 30 when absent).
    pub fn election_ms(&self) -> u64 {
        let flag = |name: &str, default: u64| {
            self.node_args
                .windows(2)
                .find(|w| w[0] == name)
                .and_then(|w| w[1].parse().ok())
                .unwrap_or(default)
        };
        flag("--tick-ms", 10) * flag("--election-ticks", 30)
    }

    /// The fixed fault schedule of a targeted plan over `phase` (`None` for the ordinary
    /// scheduler).
    pub fn schedule(&self, phase: Duration, seed: u64) -> Option<Vec<Planned>> {
        self.targeted
            .map(|t| t.schedule(phase, seed, self.election_ms()))
    }
}

/// Short timeouts: 10 ms ticks, election timeout 60-120 ticks (0.6-1.2 s), heartbeats
/// every 100 ms. An isolated leader steps down 0.6-1.2 s after losing its quorum, and
/// the others elect a new leader after 0.6-1.2 s (with five nodes, usually near 0.7 s),
/// so for a while two nodes believe they lead.
const FAST: &[&str] = &[
    "--tick-ms",
    "10",
    "--election-ticks",
    "60",
    "--heartbeat-ticks",
    "10",
];

const BASE: Plan = Plan {
    name: "",
    nodes: 5,
    spares: 0,
    node_args: FAST,
    nemesis: "none",
    target: "leader",
    shapes: "isolate-leader",
    interval: "1200ms",
    targeted: None,
    net_faults: "all",
    net_delay: None,
    net_jitter: None,
    net_scopes: None,
    client_routing: "sticky",
    attempt: Duration::from_secs(15),
    keys: 6,
    rate: 300,
    write_pct: 30,
    cas_pct: 5,
    concurrency: 15,
    op_timeout: "250ms",
};

/// A selftest case.
#[derive(Clone, Debug, PartialEq)]
pub struct Case {
    /// `raft/stale-read`, `multipaxos/correct`, ...
    pub id: &'static str,
    /// `--sut` (and the node's `--protocol`).
    pub protocol: &'static str,
    /// The node's `--bug NAME`, or `None` for the correct build.
    pub bug: Option<&'static str>,
    /// Node flags only the buggy build gets (a correct node refuses them).
    pub bug_args: &'static [&'static str],
    pub plans: Vec<Plan>,
}

impl Case {
    pub fn is_bug(&self) -> bool {
        self.bug.is_some()
    }

    /// The nemesis column of the table: the plans' names.
    pub fn nemesis_label(&self) -> String {
        if !self.is_bug() {
            return format!("the {} {} plans above", self.plans.len(), self.protocol);
        }
        let names: Vec<&str> = self.plans.iter().map(|p| p.name).collect();
        names.join(" | ")
    }

    /// `raft-stale-read`: the test name of its runs (a run dir component).
    pub fn test_name(&self) -> String {
        self.id.replace('/', "-")
    }

    /// The `stasis test` arguments of one attempt (store, node binary and seed excluded).
    pub fn test_argv(&self, plan: &Plan, attempt: Duration) -> Vec<String> {
        let mut a: Vec<String> = [
            "--sut",
            self.protocol,
            "--nemesis",
            plan.nemesis,
            "--target",
            plan.target,
            "--shapes",
            plan.shapes,
            "--nemesis-interval",
            plan.interval,
            "--net-faults",
            plan.net_faults,
            "--op-timeout",
            plan.op_timeout,
            "--client-routing",
            plan.client_routing,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if let Some(d) = plan.net_delay {
            a.extend(["--net-delay".into(), d.to_string()]);
        }
        if let Some(j) = plan.net_jitter {
            a.extend(["--net-jitter".into(), j.to_string()]);
        }
        if let Some(sc) = plan.net_scopes {
            a.extend(["--net-scopes".into(), sc.to_string()]);
        }
        a.extend([
            "--nodes".into(),
            plan.nodes.to_string(),
            "--spares".into(),
            plan.spares.to_string(),
            "--time-limit".into(),
            format!("{}ms", attempt.as_millis()),
            "--concurrency".into(),
            plan.concurrency.to_string(),
            "--rate".into(),
            plan.rate.to_string(),
            "--keys".into(),
            plan.keys.to_string(),
            "--write-pct".into(),
            plan.write_pct.to_string(),
            "--cas-pct".into(),
            plan.cas_pct.to_string(),
            "--name".into(),
            self.test_name(),
            // A hard history must not eat the case's budget: past this the verdict is
            // `unknown`, which is not a catch.
            "--check-timeout".into(),
            "30s".into(),
        ]);
        let mut node_args: Vec<&str> = plan.node_args.to_vec();
        if let Some(bug) = self.bug {
            node_args.extend(["--bug", bug]);
            node_args.extend(self.bug_args);
        }
        for n in node_args {
            a.push("--node-arg".into());
            a.push(n.into());
        }
        a
    }
}

fn plan(name: &'static str, f: impl FnOnce(&mut Plan)) -> Plan {
    let mut p = BASE.clone();
    p.name = name;
    f(&mut p);
    p
}

/// Every bug case, in table order.
pub fn bug_cases() -> Vec<Case> {
    // The workhorse: cut the leader off (held 1-2 s, a little more than an election
    // timeout plus a step-down) again and again. Five nodes elect a replacement sooner
    // than three (the first of four randomized timeouts fires), which widens the window in
    // which the old leader still believes it leads.
    let isolate5 = plan("partition:isolate-leader", |p| {
        p.nemesis = "partition";
        p.shapes = "isolate-leader";
    });
    // Three nodes: an isolated leader alone is "one ack early" of a majority of two.
    let isolate3 = plan("partition:isolate-leader (3 nodes)", |p| {
        p.nemesis = "partition";
        p.shapes = "isolate-leader";
        p.nodes = 3;
    });
    // Multi-Paxos stale leaders: a check-quorum ten election timeouts long keeps the old
    // leader (and its ballot) through the cut, the election and the narrowing or heal, so
    // its phase 2 reaches acceptors that promised a higher ballot.
    const LONG_CHECK_QUORUM: &[&str] = &[
        "--tick-ms",
        "10",
        "--election-ticks",
        "60",
        "--heartbeat-ticks",
        "10",
        "--check-quorum-ticks",
        "600",
    ];
    // Partitions that heal about when the new leader is elected (0.5-1.1 s), while the
    // old one still believes it leads.
    let isolate5_short = plan("partition:isolate-leader (short, long check-quorum)", |p| {
        p.nemesis = "partition";
        p.shapes = "isolate-leader";
        p.interval = "700ms";
        p.node_args = LONG_CHECK_QUORUM;
    });
    // The cut is narrowed to old<->new leader right after the election; the old leader
    // keeps leading (check-quorum 6 s) and proposes to the acceptors it still reaches.
    let cut_pair = plan("isolate-leader, then cut only old<->new leader", |p| {
        p.nemesis = "partition";
        p.targeted = Some(ScenarioSchedule::IsolateThenCutPair);
        p.attempt = Duration::from_secs(20);
        p.node_args = LONG_CHECK_QUORUM;
    });
    // Power losses from the generic disk nemesis only: kill nodes (one, a minority, or
    // every node), drop what they did not fsync, restart them; every 2 s on 3 nodes.
    let power_loss = plan("disk:lose-unfsynced (3 nodes)", |p| {
        p.nemesis = "lose-unfsynced";
        p.nodes = 3;
        p.interval = "2s";
        p.attempt = Duration::from_secs(20);
    });
    let pause5 = plan("pause:leader", |p| {
        p.nemesis = "pause";
        p.target = "leader";
    });
    let kill5 = plan("kill:leader", |p| {
        p.nemesis = "kill";
        p.target = "leader";
        p.interval = "1s";
    });
    let lease_clock = plan("isolate-leader+clock-back (lease reads)", |p| {
        p.nemesis = "clock";
        p.targeted = Some(ScenarioSchedule::IsolateLeaderClockBack);
        p.node_args = &[
            "--tick-ms",
            "10",
            "--election-ticks",
            "60",
            "--heartbeat-ticks",
            "10",
            "--read-mode",
            "lease",
        ];
    });
    // Three nodes without pre-vote (etcd's `--pre-vote=false`), elections of 1.5-3 s so
    // the fault's pause/kill/reconnect steps fit inside one candidacy.
    let double_vote = plan("double-vote (3 nodes, --pre-vote off)", |p| {
        p.nemesis = "partition";
        p.nodes = 3;
        p.targeted = Some(ScenarioSchedule::DoubleVote);
        p.attempt = Duration::from_secs(30);
        p.node_args = &[
            "--tick-ms",
            "10",
            "--election-ticks",
            "150",
            "--heartbeat-ticks",
            "10",
            "--pre-vote",
            "off",
        ];
    });
    // One entry per append message and one message in flight let a leader hand a voter
    // an old entry without the first entry of its own term; writes wait up to 20 s for
    // a leader that commits them.
    let figure8 = plan("figure8 (5 nodes, one entry in flight)", |p| {
        p.nemesis = "partition";
        p.targeted = Some(ScenarioSchedule::Figure8);
        p.attempt = Duration::from_secs(30);
        p.node_args = &[
            "--tick-ms",
            "10",
            "--election-ticks",
            "60",
            "--heartbeat-ticks",
            "10",
            "--max-msg-entries",
            "1",
            "--max-inflight-msgs",
            "1",
            "--request-timeout-ms",
            "20000",
        ];
        p.op_timeout = "20s";
        // Many keys, mostly reads: after the entry is replaced, the first operation on
        // its key is then most likely a read, which sees the write gone.
        p.keys = 24;
        p.write_pct = 10;
        p.cas_pct = 2;
    });
    let split_replace = plan("split+replace-two (3 voters, 2 spares)", |p| {
        p.nemesis = "partition";
        p.nodes = 3;
        p.spares = 2;
        p.targeted = Some(ScenarioSchedule::SplitReplace { pause_spares: true });
        p.attempt = Duration::from_secs(20);
    });
    // Network faults only (the generic net nemesis): delay steps on every link to and
    // from the current leader, drawn 400-900 ms with at most 10% jitter, so its
    // heartbeats stop reaching the followers for longer than an election timeout (300-600
    // ms) all at once while their last acknowledgements reach it late. Each worker
    // starts at its own node (`home`), so a deposed leader that has not heard of its
    // successor still gets reads while the successor's workers write. Check-quorum of
    // 2 s: a leader that hears nothing for the length of the delay keeps leading.
    let net_leader_step = plan("net:delay-step on the leader's links (3 nodes)", |p| {
        p.nemesis = "net";
        p.nodes = 3;
        p.interval = "1s";
        p.net_faults = "delay";
        p.net_delay = Some("400ms-900ms");
        p.net_jitter = Some("0-10");
        p.net_scopes = Some("leader");
        p.client_routing = "home";
        p.attempt = Duration::from_secs(20);
        p.node_args = &[
            "--tick-ms",
            "10",
            "--election-ticks",
            "30",
            "--heartbeat-ticks",
            "5",
            "--check-quorum-ticks",
            "200",
            "--read-mode",
            "lease",
        ];
    });
    vec![
        Case {
            id: "raft/stale-read",
            protocol: "raft",
            bug: Some("stale-read"),
            bug_args: &[],
            plans: vec![isolate5.clone()],
        },
        Case {
            id: "raft/forget-vote",
            protocol: "raft",
            bug: Some("forget-vote"),
            bug_args: &[],
            plans: vec![double_vote],
        },
        Case {
            id: "raft/commit-minority",
            protocol: "raft",
            bug: Some("commit-minority"),
            bug_args: &[],
            plans: vec![isolate3.clone()],
        },
        Case {
            id: "raft/figure8",
            protocol: "raft",
            bug: Some("figure8"),
            bug_args: &[],
            plans: vec![figure8],
        },
        Case {
            id: "raft/lease-wallclock",
            protocol: "raft",
            bug: Some("lease-wallclock"),
            bug_args: &[],
            plans: vec![lease_clock],
        },
        Case {
            id: "multipaxos/ignore-accepted",
            protocol: "multipaxos",
            bug: Some("ignore-accepted"),
            bug_args: &[],
            plans: vec![kill5, pause5.clone()],
        },
        Case {
            id: "multipaxos/no-fencing",
            protocol: "multipaxos",
            bug: Some("no-fencing"),
            bug_args: &[],
            plans: vec![cut_pair, isolate5_short],
        },
        Case {
            id: "multipaxos/disjoint-quorums",
            protocol: "multipaxos",
            bug: Some("disjoint-quorums"),
            bug_args: &["--quorum", "flexible:2,1"],
            plans: vec![isolate3],
        },
        Case {
            id: "raft/unsafe-reconfig",
            protocol: "raft",
            bug: Some("unsafe-reconfig"),
            bug_args: &[],
            plans: vec![split_replace.clone()],
        },
        Case {
            id: "raft/lease-from-ack",
            protocol: "raft",
            bug: Some("lease-from-ack"),
            bug_args: &[],
            plans: vec![net_leader_step],
        },
        Case {
            id: "raft/ack-before-fsync",
            protocol: "raft",
            bug: Some("ack-before-fsync"),
            bug_args: &[],
            plans: vec![power_loss.clone()],
        },
        Case {
            id: "multipaxos/ack-before-fsync",
            protocol: "multipaxos",
            bug: Some("ack-before-fsync"),
            bug_args: &[],
            plans: vec![power_loss],
        },
        Case {
            id: "multipaxos/unsafe-reconfig",
            protocol: "multipaxos",
            bug: Some("unsafe-reconfig"),
            bug_args: &[],
            // The Multi-Paxos leader switches without a catch-up stage: cut, then ask.
            plans: vec![Plan {
                name: "split+replace-two, cut first (3 voters, 2 spares)",
                targeted: Some(ScenarioSchedule::SplitReplace {
                    pause_spares: false,
                }),
                ..split_replace
            }],
        },
    ]
}

/// Every case: the bug cases, then one correct build per protocol that cycles through
/// the plans of that protocol's bug cases (each plan once).
pub fn all_cases() -> Vec<Case> {
    let bugs = bug_cases();
    let mut out = bugs.clone();
    for protocol in ["raft", "multipaxos"] {
        let mut plans: Vec<Plan> = Vec::new();
        for c in bugs.iter().filter(|c| c.protocol == protocol) {
            for p in &c.plans {
                if !plans.contains(p) {
                    plans.push(p.clone());
                }
            }
        }
        out.push(Case {
            id: if protocol == "raft" {
                "raft/correct"
            } else {
                "multipaxos/correct"
            },
            protocol,
            bug: None,
            bug_args: &[],
            plans,
        });
    }
    out
}

/// The cases named by `--case` (all when none is named), in table order, each once.
pub fn select(names: &[String]) -> Result<Vec<Case>, String> {
    let all = all_cases();
    if names.is_empty() {
        return Ok(all);
    }
    for n in names {
        if !all.iter().any(|c| c.id == n) {
            let ids: Vec<&str> = all.iter().map(|c| c.id).collect();
            return Err(format!(
                "unknown case {n:?}: use one of {} (repeat --case for several)",
                ids.join(", ")
            ));
        }
    }
    Ok(all
        .into_iter()
        .filter(|c| names.iter().any(|n| n == c.id))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        args: crate::run::TestArgs,
    }

    #[test]
    fn every_bug_has_a_case_and_ids_are_unique() {
        let all = all_cases();
        let ids: Vec<&str> = all.iter().map(|c| c.id).collect();
        for want in [
            "raft/stale-read",
            "raft/forget-vote",
            "raft/commit-minority",
            "raft/figure8",
            "raft/lease-wallclock",
            "raft/lease-from-ack",
            "multipaxos/ignore-accepted",
            "multipaxos/no-fencing",
            "multipaxos/disjoint-quorums",
            "raft/unsafe-reconfig",
            "multipaxos/unsafe-reconfig",
            "raft/ack-before-fsync",
            "multipaxos/ack-before-fsync",
            "raft/correct",
            "multipaxos/correct",
        ] {
            assert!(ids.contains(&want), "{want} missing from {ids:?}");
        }
        let mut sorted = ids.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), ids.len(), "{ids:?}");
        for c in &all {
            assert!(!c.plans.is_empty(), "{}", c.id);
            assert!(c.id.starts_with(c.protocol), "{}", c.id);
            assert_eq!(c.id.ends_with("/correct"), c.bug.is_none(), "{}", c.id);
        }
    }

    #[test]
    fn correct_builds_cycle_through_their_protocols_plans() {
        let all = all_cases();
        for protocol in ["raft", "multipaxos"] {
            let correct = all
                .iter()
                .find(|c| c.protocol == protocol && !c.is_bug())
                .unwrap();
            for c in all.iter().filter(|c| c.protocol == protocol && c.is_bug()) {
                for p in &c.plans {
                    assert!(
                        correct.plans.contains(p),
                        "{} plan {} missing",
                        c.id,
                        p.name
                    );
                }
            }
            assert!(correct.bug_args.is_empty());
        }
    }

    #[test]
    fn every_plan_is_a_valid_stasis_test_command_line() {
        for c in all_cases() {
            for p in &c.plans {
                let argv = c.test_argv(p, p.attempt);
                let t = T::try_parse_from(std::iter::once("stasis-test".to_owned()).chain(argv))
                    .unwrap_or_else(|e| panic!("{} / {}: {e}", c.id, p.name));
                assert_eq!(t.args.sut, c.protocol);
                assert_eq!(t.args.nodes, p.nodes);
                let bug_flag = t.args.node_args.iter().position(|a| a == "--bug");
                match c.bug {
                    Some(b) => {
                        assert_eq!(t.args.node_args[bug_flag.unwrap() + 1], b, "{}", c.id)
                    }
                    None => assert!(bug_flag.is_none(), "{}", c.id),
                }
                if let Some(tk) = p.targeted {
                    assert_eq!(
                        tk.needs_clock(),
                        t.args.families().contains(&crate::nemesis::Family::Clock),
                        "{}: libfaketime is loaded only with the clock family",
                        p.name
                    );
                }
            }
        }
    }

    #[test]
    fn selection_keeps_table_order_and_rejects_unknown_names() {
        let got = select(&["raft/correct".into(), "raft/stale-read".into()]).unwrap();
        let ids: Vec<&str> = got.iter().map(|c| c.id).collect();
        assert_eq!(ids, ["raft/stale-read", "raft/correct"]);
        assert_eq!(select(&[]).unwrap().len(), all_cases().len());
        let e = select(&["raft/stale-reads".into()]).unwrap_err();
        assert!(
            e.starts_with("unknown case \"raft/stale-reads\": use one of raft/stale-read,"),
            "{e}"
        );
        assert!(!e.contains('\n'));
    }

    #[test]
    fn double_vote_faults_carry_the_plan_nodes_election_timeout() {
        let case = bug_cases()
            .into_iter()
            .find(|c| c.id == "raft/forget-vote")
            .unwrap();
        let plan = &case.plans[0];
        // --tick-ms 10 x --election-ticks 150.
        assert_eq!(plan.election_ms(), 1500);
        let faults = plan.schedule(Duration::from_secs(30), 3).unwrap();
        assert!(!faults.is_empty());
        for f in faults {
            assert_eq!(
                f.fault,
                Fault::Targeted {
                    combo: Scenario::DoubleVote { election_ms: 1500 }
                }
            );
        }
        // Node defaults when a plan gives no timing flags.
        let mut bare = plan.clone();
        bare.node_args = &[];
        assert_eq!(bare.election_ms(), 300);
        assert_eq!(BASE.schedule(Duration::from_secs(30), 3), None);
    }

    #[test]
    fn targeted_schedules_are_seeded_and_do_not_overlap() {
        for tk in [
            ScenarioSchedule::IsolateLeaderClockBack,
            ScenarioSchedule::DoubleVote,
            ScenarioSchedule::SplitReplace { pause_spares: true },
            ScenarioSchedule::IsolateThenCutPair,
            ScenarioSchedule::Figure8,
        ] {
            let a = tk.schedule(Duration::from_secs(60), 5, 600);
            assert_eq!(a, tk.schedule(Duration::from_secs(60), 5, 600));
            assert_ne!(a, tk.schedule(Duration::from_secs(60), 6, 600));
            assert!(a.len() >= 5, "{tk:?}: {}", a.len());
            for w in a.windows(2) {
                assert!(w[0].at_ms + w[0].hold_ms < w[1].at_ms, "{w:?}");
            }
            assert!(a.last().unwrap().at_ms < 60_000);
            assert!(a.iter().all(|p| matches!(p.fault, Fault::Targeted { .. })));
        }
        match &ScenarioSchedule::IsolateLeaderClockBack.schedule(Duration::from_secs(5), 1, 600)[0]
            .fault
        {
            Fault::Targeted {
                combo: Scenario::IsolateLeaderClock { offset_ms },
            } => assert!((-40_000..=-20_000).contains(offset_ms)),
            f => panic!("{f:?}"),
        }
    }
}

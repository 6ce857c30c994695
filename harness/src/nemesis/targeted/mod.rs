//! Targeted faults: combinations the ordinary scheduler never produces (it never overlaps
//! faults), built to expose specific consensus bugs quickly. `stasis selftest` schedules
//! them; they are applied, verified, recorded (`start-targeted` / `stop-targeted`, the
//! value saying what was done) and healed like every other fault.
//!
//! One file per scenario: `isolate_leader_clock`, `double_vote`, `figure8`,
//! `isolate_then_cut_pair`, `split_replace`; the steps they share are in `steps`.
//!
//! The `start-targeted` event is recorded when the fault's setup is complete (for
//! `double-vote` and `figure8`, after its last step); the value carries the times of its
//! steps.

mod double_vote;
mod figure8;
mod isolate_leader_clock;
mod isolate_then_cut_pair;
mod split_replace;
mod steps;

use std::time::Duration;

use anyhow::{Result, bail};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Active, verify_clock};
use crate::cluster::Cluster;

/// One targeted fault.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "combo", rename_all = "kebab-case")]
pub enum Scenario {
    /// Isolate the leader and move its wall clock by `offset_ms`.
    IsolateLeaderClock { offset_ms: i64 },
    /// Make one node vote twice in a term across restarts (see the module docs);
    /// `election_ms` is the nodes' minimum election timeout.
    DoubleVote { election_ms: u64 },
    /// The Raft paper's Figure 8 on five nodes (see the module docs); `election_ms` is
    /// the nodes' minimum election timeout.
    Figure8 { election_ms: u64 },
    /// Isolate the leader until another node leads (at most `wait_ms`), then let the old
    /// leader reach everyone except the new leader.
    IsolateThenCutPair { wait_ms: u64 },
    /// Replace two voters other than the leader with two spares in one change, cutting
    /// the two leaving voters off once the spares are learners; the voters are changed
    /// back (after the heal) at stop. Without `pause_spares` the cut comes first and the
    /// request right after it (enough for a leader that needs no catch-up stage).
    SplitReplace {
        #[serde(default)]
        pause_spares: bool,
    },
}

impl Scenario {
    pub fn name(&self) -> &'static str {
        match self {
            Scenario::IsolateLeaderClock { .. } => "isolate-leader-clock",
            Scenario::DoubleVote { .. } => "double-vote",
            Scenario::Figure8 { .. } => "figure8",
            Scenario::SplitReplace { .. } => "split-replace",
            Scenario::IsolateThenCutPair { .. } => "isolate-then-cut-pair",
        }
    }

    /// Whether the nodes must run under libfaketime for this fault.
    pub fn needs_clock(&self) -> bool {
        matches!(self, Scenario::IsolateLeaderClock { .. })
    }
}

/// Applies `combo`; fills `active` (nodes, grudge, evidence) and returns the event value.
pub fn start(
    cluster: &mut Cluster<'_>,
    combo: &Scenario,
    rng: &mut ChaCha8Rng,
    active: &mut Active,
) -> Result<Value> {
    match combo {
        Scenario::IsolateLeaderClock { offset_ms } => {
            isolate_leader_clock::isolate_leader_clock(cluster, offset_ms, rng, active)
        }
        Scenario::DoubleVote { election_ms } => {
            double_vote::double_vote(cluster, *election_ms, rng, active)
        }
        Scenario::Figure8 { election_ms } => figure8::figure8(cluster, *election_ms, rng, active),
        Scenario::SplitReplace { pause_spares } => {
            split_replace::split_replace(cluster, *pause_spares, rng, active)
        }
        Scenario::IsolateThenCutPair { wait_ms } => {
            isolate_then_cut_pair::isolate_then_cut_pair(cluster, *wait_ms, rng, active)
        }
    }
}

/// Undoes `combo` and verifies the heal.
pub fn stop(cluster: &mut Cluster<'_>, combo: &Scenario, active: &mut Active) -> Result<()> {
    match combo {
        Scenario::IsolateLeaderClock { .. } => {
            super::heal_network(cluster)?;
            reset_clocks(cluster, active)?;
        }
        Scenario::IsolateThenCutPair { .. } => super::heal_network(cluster)?,
        Scenario::SplitReplace { .. } => {
            super::heal_network(cluster)?;
            if let Some(m) = cluster.membership.clone() {
                let (_, evidence) =
                    super::membership::stop(cluster, &m, active.voters_before.as_deref());
                active.evidence.push(evidence);
            }
        }
        Scenario::DoubleVote { .. } | Scenario::Figure8 { .. } => {
            super::heal_network(cluster)?;
            for i in 0..cluster.len() {
                if cluster.is_paused(i) {
                    cluster.resume(i)?;
                }
            }
            for i in 0..cluster.len() {
                if !cluster.is_running(i) {
                    let pid = cluster.start(i)?;
                    active
                        .evidence
                        .push(format!("{} restarted as pid {pid}", cluster.info(i).name));
                }
            }
            std::thread::sleep(Duration::from_millis(200));
            for i in 0..cluster.len() {
                if !cluster.is_running(i) {
                    bail!(
                        "{} exited right after its restart; see {}",
                        cluster.info(i).name,
                        cluster.info(i).log_path().display()
                    );
                }
            }
        }
    }
    Ok(())
}

fn reset_clocks(cluster: &Cluster<'_>, active: &mut Active) -> Result<()> {
    for &i in &active.nodes {
        cluster.set_clock(i, 0.0, 1.0)?;
    }
    for &i in &active.nodes {
        let seen = verify_clock(cluster, i, 0)?;
        active.evidence.push(format!("reset: {seen}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combos_round_trip_inside_a_fault() {
        let f = super::super::Fault::Targeted {
            combo: Scenario::IsolateLeaderClock { offset_ms: -30_000 },
        };
        let text = serde_json::to_string(&f).unwrap();
        assert_eq!(
            text,
            r#"{"kind":"targeted","combo":{"combo":"isolate-leader-clock","offset_ms":-30000}}"#
        );
        let back: super::super::Fault = serde_json::from_str(&text).unwrap();
        assert_eq!(back, f);
        assert_eq!(f.event("start"), "start-targeted");
        assert!(Scenario::IsolateLeaderClock { offset_ms: 1 }.needs_clock());
        assert!(!Scenario::DoubleVote { election_ms: 1 }.needs_clock());
    }
}

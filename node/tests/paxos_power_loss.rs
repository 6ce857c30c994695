//! Power-loss tests of the Multi-Paxos core over real `PaxosStorage` on `SimFs`, driven by
//! the shared driver in `common` (crashes keep only fsynced data, optionally a torn prefix
//! of the unsynced tail, and also hit in the middle of a persist batch). Random proposals
//! on a 3-node cluster. Checked:
//!
//! - no chosen value changes: every node applies the same value at every slot;
//! - no promise is forgotten: after recovery an acceptor's promise is at least every ballot
//!   it acknowledged (Promise, Accepted, HeartbeatAck) before the crash, and every vote it
//!   acknowledged is still there (or was compacted into its snapshot) at a ballot at least
//!   as high;
//! - no acknowledged write is lost.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use common::{Protocol, boot_addrs, run_seed, seeds};
use node::core::{ConsensusCore, NodeId};
use node::paxos::storage::PaxosStorage;
use node::paxos::{Ballot, Message, Paxos, PaxosConfig};
use node::quorum::QuorumSpec;
use node::storage::file::Fs;

/// What each acceptor acknowledged before a crash.
#[derive(Default)]
struct Acked {
    /// The highest ballot this node acknowledged to anyone.
    promise: Ballot,
    /// Votes it acknowledged: slot -> ballot.
    votes: BTreeMap<u64, Ballot>,
}

struct PaxosProto {
    spec: QuorumSpec,
    acked: BTreeMap<NodeId, Acked>,
    recoveries_checked: u64,
}

fn config(id: NodeId, seed: u64, spec: QuorumSpec) -> PaxosConfig {
    let mut c = PaxosConfig::new(id, spec);
    c.election_ticks = 10;
    c.heartbeat_ticks = 2;
    c.seed = seed;
    c
}

impl Protocol for PaxosProto {
    type Core = Paxos;
    type Storage = PaxosStorage;
    type Rank = Ballot;

    fn start(
        &mut self,
        id: NodeId,
        seed: u64,
        fs: Arc<dyn Fs>,
        dir: &Path,
        restart: bool,
    ) -> (PaxosStorage, Paxos) {
        let (storage, rec) =
            PaxosStorage::open(fs, dir).expect("storage recovers after power loss");
        if restart {
            let acked = self.acked.entry(id).or_default();
            assert!(
                rec.promised >= acked.promise,
                "n{id} forgot its promise: recovered {}, acknowledged {}",
                rec.promised,
                acked.promise
            );
            let base = rec.snapshot.as_ref().map_or(0, |s| s.meta.index);
            for (&slot, &b) in acked.votes.range(base + 1..) {
                let got = rec.votes.get(&slot).map(|a| a.ballot);
                assert!(
                    got.is_some_and(|g| g >= b),
                    "n{id} lost its vote at slot {slot} (ballot {b}), recovered {got:?}"
                );
            }
            self.recoveries_checked += 1;
        }
        let core = Paxos::new(config(id, seed, self.spec), Some(boot_addrs()), rec);
        (storage, core)
    }

    fn on_send(&mut self, from: NodeId, _to: NodeId, m: &Message) {
        let n = self.acked.entry(from).or_default();
        match m {
            Message::Promise { ballot, .. } | Message::HeartbeatAck { ballot, .. } => {
                n.promise = n.promise.max(*ballot);
            }
            Message::Accepted { ballot, slots, .. } => {
                n.promise = n.promise.max(*ballot);
                for s in slots {
                    let e = n.votes.entry(*s).or_default();
                    *e = (*e).max(*ballot);
                }
            }
            _ => {}
        }
    }

    fn rank(core: &Paxos) -> Ballot {
        core.ballot()
    }

    fn maybe_compact(core: &mut Paxos, applied: u64, sm: &[Vec<u8>]) {
        if applied.is_multiple_of(20) && applied > 0 {
            core.compact(applied, postcard::to_allocvec(sm).unwrap());
        }
    }
}

/// Default seeds per test.
const SEEDS: u64 = 40;

fn run(seed: u64, torn: bool, spec: QuorumSpec) -> (usize, u64, u64) {
    let proto = PaxosProto {
        spec,
        acked: BTreeMap::new(),
        recoveries_checked: 0,
    };
    let c = run_seed(proto, seed, torn, 0x5eed);
    (c.acked.len(), c.crashes, c.proto.recoveries_checked)
}

fn soak(torn: bool, spec: QuorumSpec) {
    let (mut acked, mut crashes, mut checked) = (0, 0, 0);
    for seed in 0..seeds(SEEDS) {
        let (a, k, r) = run(seed, torn, spec);
        acked += a;
        crashes += k;
        checked += r;
    }
    assert!(
        acked > 30 * seeds(SEEDS) as usize,
        "the workload acknowledged too few writes ({acked}) to mean anything"
    );
    assert!(crashes > 3 * seeds(SEEDS), "too few crashes ({crashes})");
    assert!(
        checked > 3 * seeds(SEEDS),
        "too few recoveries checked ({checked})"
    );
}

#[test]
fn chosen_values_promises_and_votes_survive_power_loss() {
    soak(false, QuorumSpec::Majority);
}

#[test]
fn torn_unsynced_tails_lose_nothing_acknowledged() {
    soak(true, QuorumSpec::Majority);
}

#[test]
fn flexible_quorums_survive_power_loss() {
    // 3 nodes, phase 1 needs all three, phase 2 one: every vote must survive, or a value
    // chosen by a single acceptor would be lost.
    soak(false, QuorumSpec::Flexible { q1: 3, q2: 1 });
}

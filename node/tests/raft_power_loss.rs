//! Power-loss tests: the Raft core driven over real `RaftStorage` on `SimFs` by the shared
//! driver in `common` (crashes keep only fsynced data, optionally a torn unsynced tail,
//! and also hit in the middle of a persist batch). Checked: no acknowledged write is lost,
//! no node grants two different votes in one term, and every node applies the same entry
//! at every index.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use common::{Protocol, boot_addrs, run_seed, seeds};
use node::core::{ConsensusCore, NodeId};
use node::raft::storage::RaftStorage;
use node::raft::{Body, Membership, Message, Raft, RaftConfig};
use node::storage::file::Fs;

#[derive(Default)]
struct RaftProto {
    /// (voter, term) -> candidate it granted its vote to.
    votes: BTreeMap<(NodeId, u64), NodeId>,
}

fn config(id: NodeId, seed: u64) -> RaftConfig {
    let mut c = RaftConfig::new(id);
    c.election_ticks = 10;
    c.heartbeat_ticks = 2;
    c.lease_margin_ticks = 2;
    c.seed = seed;
    c
}

impl Protocol for RaftProto {
    type Core = Raft;
    type Storage = RaftStorage;
    type Rank = u64;

    fn start(
        &mut self,
        id: NodeId,
        seed: u64,
        fs: Arc<dyn Fs>,
        dir: &Path,
        _restart: bool,
    ) -> (RaftStorage, Raft) {
        let (storage, rec) = RaftStorage::open(fs, dir).expect("storage recovers after power loss");
        let boot = Membership::new(boot_addrs());
        (storage, Raft::new(config(id, seed), Some(boot), rec))
    }

    fn on_send(&mut self, from: NodeId, to: NodeId, m: &Message) {
        if let Body::VoteResp { granted: true } = m.body {
            let prev = *self.votes.entry((from, m.term)).or_insert(to);
            assert_eq!(prev, to, "n{from} granted two votes in term {}", m.term);
        }
    }

    fn rank(core: &Raft) -> u64 {
        core.term()
    }

    fn maybe_compact(core: &mut Raft, applied: u64, sm: &[Vec<u8>]) {
        if applied >= core.log().base_index + 20 && applied <= core.log().applied {
            core.compact(applied, postcard::to_allocvec(sm).unwrap());
        }
    }
}

/// Default seeds per test.
const SEEDS: u64 = 60;

fn run(seed: u64, torn: bool) -> (usize, u64) {
    let c = run_seed(RaftProto::default(), seed, torn, 0xabcdef);
    (c.acked.len(), c.crashes)
}

#[test]
fn acknowledged_writes_and_votes_survive_power_loss() {
    let mut acked = 0;
    let mut crashes = 0;
    for seed in 0..seeds(SEEDS) {
        let (a, k) = run(seed, false);
        acked += a;
        crashes += k;
    }
    assert!(
        acked > 30 * seeds(SEEDS) as usize,
        "the workload acknowledged too few writes ({acked}) to mean anything"
    );
    assert!(crashes > 3 * seeds(SEEDS), "too few crashes ({crashes})");
}

#[test]
fn torn_tails_never_lose_acknowledged_writes() {
    let mut acked = 0;
    for seed in 100_000..100_000 + seeds(SEEDS) {
        acked += run(seed, true).0;
    }
    assert!(
        acked > 30 * seeds(SEEDS) as usize,
        "too few acknowledged writes ({acked})"
    );
}

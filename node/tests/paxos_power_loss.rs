//! Power-loss tests of the Multi-Paxos core over real `PaxosStorage` on `SimFs`, which keeps
//! only fsynced data (optionally a torn prefix of the unsynced tail) when a node crashes;
//! crashes also hit in the middle of a persist batch (injected I/O failure). Random
//! proposals on a 3-node cluster. Checked:
//!
//! - no chosen value changes: every node applies the same value at every slot;
//! - no promise is forgotten: after recovery an acceptor's promise is at least every ballot
//!   it acknowledged (Promise, Accepted, HeartbeatAck) before the crash, and every vote it
//!   acknowledged is still there (or was compacted into its snapshot) at a ballot at least
//!   as high;
//! - no acknowledged write is lost.

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::sync::Arc;

use node::core::{Apply, ConsensusCore, NodeId, Role};
use node::paxos::storage::PaxosStorage;
use node::paxos::{Ballot, Message, Paxos, PaxosConfig, Recovered};
use node::quorum::QuorumSpec;
use node::storage::file::{Fs, SimFs};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

struct Node {
    fs: Arc<SimFs>,
    storage: Option<PaxosStorage>,
    core: Paxos,
    up: bool,
    sm: Vec<Vec<u8>>,
    applied: u64,
    proposals: BTreeMap<u64, (u64, Vec<u8>)>,
    /// The highest ballot this node acknowledged to anyone.
    acked_promise: Ballot,
    /// Votes it acknowledged: slot -> ballot.
    acked_votes: BTreeMap<u64, Ballot>,
}

struct Cluster {
    nodes: BTreeMap<NodeId, Node>,
    queue: VecDeque<(NodeId, NodeId, Message)>,
    rng: ChaCha8Rng,
    spec: QuorumSpec,
    chosen: BTreeMap<u64, (u64, Option<Vec<u8>>)>,
    acked: Vec<Vec<u8>>,
    next: u64,
    crashes: u64,
    recoveries_checked: u64,
}

fn boot() -> BTreeMap<NodeId, String> {
    (1..=3).map(|i| (i, format!("127.0.0.1:{i}"))).collect()
}

fn config(id: NodeId, seed: u64, spec: QuorumSpec) -> PaxosConfig {
    let mut c = PaxosConfig::new(id, spec);
    c.election_ticks = 10;
    c.heartbeat_ticks = 2;
    c.seed = seed;
    c
}

fn open(fs: &Arc<SimFs>) -> (PaxosStorage, Recovered) {
    let dynfs: Arc<dyn Fs> = fs.clone();
    PaxosStorage::open(dynfs, Path::new("/data")).expect("storage recovers after power loss")
}

impl Cluster {
    fn new(seed: u64, torn: bool, spec: QuorumSpec) -> Cluster {
        let mut nodes = BTreeMap::new();
        for id in 1..=3 {
            let fs = Arc::new(if torn {
                SimFs::with_torn_writes(seed * 31 + id)
            } else {
                SimFs::new()
            });
            let (storage, rec) = open(&fs);
            let core = Paxos::new(config(id, seed + id, spec), Some(boot()), rec);
            nodes.insert(
                id,
                Node {
                    fs,
                    storage: Some(storage),
                    core,
                    up: true,
                    sm: Vec::new(),
                    applied: 0,
                    proposals: BTreeMap::new(),
                    acked_promise: Ballot::ZERO,
                    acked_votes: BTreeMap::new(),
                },
            );
        }
        let mut c = Cluster {
            nodes,
            queue: VecDeque::new(),
            rng: ChaCha8Rng::seed_from_u64(seed),
            spec,
            chosen: BTreeMap::new(),
            acked: Vec::new(),
            next: 0,
            crashes: 0,
            recoveries_checked: 0,
        };
        for id in 1..=3 {
            c.process(id);
        }
        c
    }

    fn crash(&mut self, id: NodeId) {
        let n = self.nodes.get_mut(&id).unwrap();
        if !n.up {
            return;
        }
        self.crashes += 1;
        n.up = false;
        n.storage = None;
        n.fs.fail_after(None);
        n.fs.crash();
        n.proposals.clear();
        self.queue.retain(|(f, t, _)| *f != id && *t != id);
    }

    fn restart(&mut self, id: NodeId) {
        let seed = self.rng.random_range(0..u64::MAX);
        let spec = self.spec;
        let n = self.nodes.get_mut(&id).unwrap();
        let (storage, rec) = open(&n.fs);
        assert!(
            rec.promised >= n.acked_promise,
            "n{id} forgot its promise: recovered {}, acknowledged {}",
            rec.promised,
            n.acked_promise
        );
        let base = rec.snapshot.as_ref().map_or(0, |s| s.meta.index);
        for (&slot, &b) in n.acked_votes.range(base + 1..) {
            let got = rec.votes.get(&slot).map(|a| a.ballot);
            assert!(
                got.is_some_and(|g| g >= b),
                "n{id} lost its vote at slot {slot} (ballot {b}), recovered {got:?}"
            );
        }
        self.recoveries_checked += 1;
        n.core = Paxos::new(config(id, seed, spec), Some(boot()), rec);
        n.storage = Some(storage);
        n.up = true;
        n.sm.clear();
        n.applied = 0;
        self.process(id);
    }

    fn leader(&self) -> Option<NodeId> {
        self.nodes
            .iter()
            .filter(|(_, n)| n.up && n.core.status().role == Role::Leader)
            .max_by_key(|(_, n)| n.core.ballot())
            .map(|(&id, _)| id)
    }

    fn process(&mut self, id: NodeId) {
        loop {
            let n = self.nodes.get_mut(&id).unwrap();
            if !n.up {
                return;
            }
            let ready = n.core.take_ready();
            if ready.is_empty() {
                return;
            }
            if let Some(p) = ready.persist {
                let storage = n.storage.as_mut().expect("up nodes have storage");
                if storage.write(p).is_err() {
                    // The machine died in the middle of the batch: nothing was sent.
                    self.crash(id);
                    return;
                }
            }
            for (to, m) in ready.messages {
                match &m {
                    Message::Promise { ballot, .. } | Message::HeartbeatAck { ballot, .. } => {
                        n.acked_promise = n.acked_promise.max(*ballot);
                    }
                    Message::Accepted { ballot, slots, .. } => {
                        n.acked_promise = n.acked_promise.max(*ballot);
                        for s in slots {
                            let e = n.acked_votes.entry(*s).or_default();
                            *e = (*e).max(*ballot);
                        }
                    }
                    _ => {}
                }
                self.queue.push_back((id, to, m));
            }
            for a in ready.apply {
                match a {
                    Apply::Snapshot { index, data } => {
                        n.sm = postcard::from_bytes(&data).unwrap();
                        n.applied = index;
                    }
                    Apply::Entry { index, term, data } => {
                        assert_eq!(index, n.applied + 1);
                        n.applied = index;
                        let prev = self.chosen.entry(index).or_insert((term, data.clone()));
                        assert_eq!(
                            *prev,
                            (term, data.clone()),
                            "the value chosen at slot {index} changed (seen on n{id})"
                        );
                        if let Some(d) = &data {
                            n.sm.push(d.clone());
                        }
                        if let Some((t, d)) = n.proposals.remove(&index)
                            && t == term
                            && Some(&d) == data.as_ref()
                        {
                            self.acked.push(d);
                        }
                    }
                }
            }
            if n.applied.is_multiple_of(20) && n.applied > 0 {
                let data = postcard::to_allocvec(&n.sm).unwrap();
                let idx = n.applied;
                n.core.compact(idx, data);
            }
        }
    }

    fn deliver_one(&mut self) -> bool {
        if self.queue.is_empty() {
            return false;
        }
        let i = self.rng.random_range(0..self.queue.len().min(4));
        let (from, to, m) = self.queue.remove(i).unwrap();
        if self.rng.random_bool(0.02) {
            return true;
        }
        if self.nodes[&to].up {
            self.nodes.get_mut(&to).unwrap().core.step(from, m);
            self.process(to);
        }
        true
    }

    fn tick_all(&mut self) {
        for id in 1..=3 {
            if self.nodes[&id].up {
                self.nodes.get_mut(&id).unwrap().core.tick();
                self.process(id);
            }
        }
    }

    fn propose(&mut self, id: NodeId) {
        self.next += 1;
        let data = format!("w{}", self.next).into_bytes();
        let n = self.nodes.get_mut(&id).unwrap();
        if let Ok(p) = n.core.propose(data.clone()) {
            n.proposals.insert(p.index, (p.term, data));
            self.process(id);
        }
    }
}

fn run_seed(seed: u64, torn: bool, spec: QuorumSpec) -> (usize, u64, u64) {
    let mut c = Cluster::new(seed, torn, spec);
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed);
    for _ in 0..1500 {
        match rng.random_range(0..100) {
            0..45 => {
                if let Some(l) = c.leader() {
                    c.propose(l);
                }
            }
            45..48 => {
                // Power loss, sometimes in the middle of the node's next persist batch.
                let v = rng.random_range(1..=3);
                if rng.random_bool(0.5) {
                    c.crash(v);
                } else if c.nodes[&v].up {
                    let k = rng.random_range(0..8);
                    c.nodes[&v].fs.fail_after(Some(k));
                }
            }
            48..56 => {
                let down: Vec<NodeId> = (1..=3).filter(|i| !c.nodes[i].up).collect();
                if let Some(&v) = down.first() {
                    c.restart(v);
                }
            }
            _ => {}
        }
        c.tick_all();
        for _ in 0..rng.random_range(0..30) {
            if !c.deliver_one() {
                break;
            }
        }
    }
    for id in 1..=3 {
        c.nodes[&id].fs.fail_after(None);
        if !c.nodes[&id].up {
            c.restart(id);
        }
    }
    let mut leader = None;
    for _ in 0..3000 {
        c.tick_all();
        while c.deliver_one() {}
        if let Some(l) = c.leader() {
            leader = Some(l);
            break;
        }
    }
    let l = leader.expect("a leader is elected after recovery");
    c.propose(l);
    for _ in 0..200 {
        c.tick_all();
        while c.deliver_one() {}
    }
    let sm = c.nodes[&l].sm.clone();
    for id in 1..=3 {
        assert_eq!(c.nodes[&id].sm, sm, "seed {seed}: n{id} diverged");
    }
    for w in &c.acked {
        assert!(
            sm.contains(w),
            "seed {seed}: acknowledged write {} lost",
            String::from_utf8_lossy(w)
        );
    }
    (c.acked.len(), c.crashes, c.recoveries_checked)
}

/// STASIS_POWER_LOSS_SEEDS=N runs N seeds per test (default 40) for longer soak runs.
fn seeds() -> u64 {
    std::env::var("STASIS_POWER_LOSS_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(40)
}

fn soak(torn: bool, spec: QuorumSpec) {
    let (mut acked, mut crashes, mut checked) = (0, 0, 0);
    for seed in 0..seeds() {
        let (a, k, r) = run_seed(seed, torn, spec);
        acked += a;
        crashes += k;
        checked += r;
    }
    assert!(
        acked > 30 * seeds() as usize,
        "the workload acknowledged too few writes ({acked}) to mean anything"
    );
    assert!(crashes > 3 * seeds(), "too few crashes ({crashes})");
    assert!(
        checked > 3 * seeds(),
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

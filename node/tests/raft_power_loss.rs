//! Power-loss tests: the Raft core driven over real `RaftStorage` on `SimFs`, which keeps
//! only fsynced data (optionally a torn prefix of the unsynced tail) when a node crashes.
//! Crashes also hit in the middle of a persist batch (injected I/O failure). Checked:
//! no acknowledged write is lost, no node grants two different votes in one term, and
//! every node applies the same entry at every index.

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::sync::Arc;

use node::core::{Apply, ConsensusCore, NodeId, Role};
use node::raft::storage::RaftStorage;
use node::raft::{Body, Membership, Message, Raft, RaftConfig};
use node::storage::file::{Fs, SimFs};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

struct Node {
    fs: Arc<SimFs>,
    storage: Option<RaftStorage>,
    raft: Raft,
    up: bool,
    sm: Vec<Vec<u8>>,
    applied: u64,
    proposals: BTreeMap<u64, (u64, Vec<u8>)>,
}

struct Cluster {
    nodes: BTreeMap<NodeId, Node>,
    queue: VecDeque<(NodeId, NodeId, Message)>,
    rng: ChaCha8Rng,
    bootstrap: Membership,
    /// (voter, term) -> candidate it granted its vote to.
    votes: BTreeMap<(NodeId, u64), NodeId>,
    applied: BTreeMap<u64, (u64, Option<Vec<u8>>)>,
    acked: Vec<Vec<u8>>,
    next: u64,
    crashes: u64,
}

fn config(id: NodeId, seed: u64) -> RaftConfig {
    let mut c = RaftConfig::new(id);
    c.election_ticks = 10;
    c.heartbeat_ticks = 2;
    c.lease_margin_ticks = 2;
    c.seed = seed;
    c
}

fn open(fs: &Arc<SimFs>) -> (RaftStorage, node::raft::Recovered) {
    let dynfs: Arc<dyn Fs> = fs.clone();
    RaftStorage::open(dynfs, Path::new("/data")).expect("storage recovers after power loss")
}

impl Cluster {
    fn new(n: u64, seed: u64, torn: bool) -> Cluster {
        let bootstrap = Membership::new((1..=n).map(|i| (i, format!("127.0.0.1:{i}"))).collect());
        let mut c = Cluster {
            nodes: BTreeMap::new(),
            queue: VecDeque::new(),
            rng: ChaCha8Rng::seed_from_u64(seed),
            bootstrap,
            votes: BTreeMap::new(),
            applied: BTreeMap::new(),
            acked: Vec::new(),
            next: 0,
            crashes: 0,
        };
        for id in 1..=n {
            let fs = Arc::new(if torn {
                SimFs::with_torn_writes(seed * 31 + id)
            } else {
                SimFs::new()
            });
            let (storage, rec) = open(&fs);
            let raft = Raft::new(config(id, seed + id), Some(c.bootstrap.clone()), rec);
            c.nodes.insert(
                id,
                Node {
                    fs,
                    storage: Some(storage),
                    raft,
                    up: true,
                    sm: Vec::new(),
                    applied: 0,
                    proposals: BTreeMap::new(),
                },
            );
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
        let boot = self.bootstrap.clone();
        let n = self.nodes.get_mut(&id).unwrap();
        let (storage, rec) = open(&n.fs);
        n.raft = Raft::new(config(id, seed), Some(boot), rec);
        n.storage = Some(storage);
        n.up = true;
        n.sm.clear();
        n.applied = 0;
        self.process(id);
    }

    fn leader(&self) -> Option<NodeId> {
        self.nodes
            .iter()
            .filter(|(_, n)| n.up && n.raft.status().role == Role::Leader)
            .max_by_key(|(_, n)| n.raft.term())
            .map(|(&id, _)| id)
    }

    fn process(&mut self, id: NodeId) {
        loop {
            let n = self.nodes.get_mut(&id).unwrap();
            if !n.up {
                return;
            }
            let ready = n.raft.take_ready();
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
                if let Body::VoteResp { granted: true } = m.body {
                    let prev = *self.votes.entry((id, m.term)).or_insert(to);
                    assert_eq!(prev, to, "n{id} granted two votes in term {}", m.term);
                }
                self.queue.push_back((id, to, m));
            }
            let n = self.nodes.get_mut(&id).unwrap();
            for a in ready.apply {
                match a {
                    Apply::Snapshot { index, data } => {
                        n.sm = postcard::from_bytes(&data).unwrap();
                        n.applied = index;
                    }
                    Apply::Entry { index, term, data } => {
                        assert_eq!(index, n.applied + 1);
                        n.applied = index;
                        let prev = self.applied.entry(index).or_insert((term, data.clone()));
                        assert_eq!(
                            *prev,
                            (term, data.clone()),
                            "safety violated at {index} on n{id}"
                        );
                        if let Some(d) = &data {
                            n.sm.push(d.clone());
                        }
                        if let Some((t, d)) = n.proposals.remove(&index)
                            && t == term
                        {
                            self.acked.push(d);
                        }
                    }
                }
            }
            if n.applied >= n.raft.log().base_index + 20 && n.applied <= n.raft.log().applied {
                let data = postcard::to_allocvec(&n.sm).unwrap();
                let idx = n.applied;
                n.raft.compact(idx, data);
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
            self.nodes.get_mut(&to).unwrap().raft.step(from, m);
            self.process(to);
        }
        true
    }

    fn tick_all(&mut self) {
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        for id in ids {
            if self.nodes[&id].up {
                self.nodes.get_mut(&id).unwrap().raft.tick();
                self.process(id);
            }
        }
    }

    fn propose(&mut self, id: NodeId) {
        self.next += 1;
        let data = format!("w{}", self.next).into_bytes();
        let n = self.nodes.get_mut(&id).unwrap();
        if let Ok(p) = n.raft.propose(data.clone()) {
            n.proposals.insert(p.index, (p.term, data));
            self.process(id);
        }
    }
}

fn run_seed(seed: u64, torn: bool) -> (usize, u64) {
    let mut c = Cluster::new(3, seed, torn);
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xabcdef);
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
                let down: Vec<NodeId> = c
                    .nodes
                    .iter()
                    .filter(|(_, n)| !n.up)
                    .map(|(&i, _)| i)
                    .collect();
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
    (c.acked.len(), c.crashes)
}

/// STASIS_POWER_LOSS_SEEDS=N runs N seeds per test (default 60) for longer soak runs.
fn seeds() -> u64 {
    std::env::var("STASIS_POWER_LOSS_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60)
}

#[test]
fn acknowledged_writes_and_votes_survive_power_loss() {
    let mut acked = 0;
    let mut crashes = 0;
    for seed in 0..seeds() {
        let (a, k) = run_seed(seed, false);
        acked += a;
        crashes += k;
    }
    assert!(
        acked > 30 * seeds() as usize,
        "the workload acknowledged too few writes ({acked}) to mean anything"
    );
    assert!(crashes > 3 * seeds(), "too few crashes ({crashes})");
}

#[test]
fn torn_tails_never_lose_acknowledged_writes() {
    let mut acked = 0;
    for seed in 100_000..100_000 + seeds() {
        acked += run_seed(seed, true).0;
    }
    assert!(
        acked > 30 * seeds() as usize,
        "too few acknowledged writes ({acked})"
    );
}

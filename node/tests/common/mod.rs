//! The power-loss driver shared by the Raft and Multi-Paxos power-loss tests.
//!
//! A 3-node cluster of a [`ConsensusCore`] over its real storage on `SimFs`, which keeps
//! only fsynced data (optionally a torn prefix of the unsynced tail) when a node crashes.
//! Crashes also hit in the middle of a persist batch (injected I/O failure). The driver
//! checks what holds for every protocol: every node applies the same value at every index,
//! no acknowledged write is lost, all nodes converge after recovery. A [`Protocol`] adds
//! its own checks on sent messages and on recovered state.

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::sync::Arc;

use node::core::{Apply, ConsensusCore, CoreStorage, NodeId, Role};
use node::storage::file::{Fs, SimFs};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Nodes in the cluster.
pub const NODES: u64 = 3;

/// What a protocol plugs into the driver.
pub trait Protocol {
    type Core: ConsensusCore;
    type Storage: CoreStorage<<Self::Core as ConsensusCore>::Persist>;
    /// Orders leaders: the highest-ranked up leader is "the" leader.
    type Rank: Ord;

    /// Opens node `id`'s storage in `dir` on `fs` and builds its core; `restart` is false
    /// at the cluster's start. The protocol checks the recovered state here.
    fn start(
        &mut self,
        id: NodeId,
        seed: u64,
        fs: Arc<dyn Fs>,
        dir: &Path,
        restart: bool,
    ) -> (Self::Storage, Self::Core);
    /// Node `from` sends `m` (after its batch was persisted).
    fn on_send(&mut self, from: NodeId, to: NodeId, m: &<Self::Core as ConsensusCore>::Message);
    fn rank(core: &Self::Core) -> Self::Rank;
    /// Compacts `core` if the protocol's test policy says so; `sm` is the state at `applied`.
    fn maybe_compact(core: &mut Self::Core, applied: u64, sm: &[Vec<u8>]);
}

pub struct Node<P: Protocol> {
    pub fs: Arc<SimFs>,
    pub storage: Option<P::Storage>,
    pub core: P::Core,
    pub up: bool,
    pub sm: Vec<Vec<u8>>,
    pub applied: u64,
    pub proposals: BTreeMap<u64, (u64, Vec<u8>)>,
}

pub struct Cluster<P: Protocol> {
    pub proto: P,
    pub nodes: BTreeMap<NodeId, Node<P>>,
    queue: VecDeque<(NodeId, NodeId, <P::Core as ConsensusCore>::Message)>,
    rng: ChaCha8Rng,
    /// index -> (term, value) first applied there.
    chosen: BTreeMap<u64, (u64, Option<Vec<u8>>)>,
    pub acked: Vec<Vec<u8>>,
    next: u64,
    pub crashes: u64,
}

fn data_dir() -> &'static Path {
    Path::new("/data")
}

impl<P: Protocol> Cluster<P> {
    pub fn new(mut proto: P, seed: u64, torn: bool) -> Cluster<P> {
        let mut nodes = BTreeMap::new();
        for id in 1..=NODES {
            let fs = Arc::new(if torn {
                SimFs::with_torn_writes(seed * 31 + id)
            } else {
                SimFs::new()
            });
            let dynfs: Arc<dyn Fs> = fs.clone();
            let (storage, core) = proto.start(id, seed + id, dynfs, data_dir(), false);
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
                },
            );
        }
        let mut c = Cluster {
            proto,
            nodes,
            queue: VecDeque::new(),
            rng: ChaCha8Rng::seed_from_u64(seed),
            chosen: BTreeMap::new(),
            acked: Vec::new(),
            next: 0,
            crashes: 0,
        };
        for id in 1..=NODES {
            c.process(id);
        }
        c
    }

    pub fn crash(&mut self, id: NodeId) {
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

    pub fn restart(&mut self, id: NodeId) {
        let seed = self.rng.random_range(0..u64::MAX);
        let n = self.nodes.get_mut(&id).unwrap();
        let dynfs: Arc<dyn Fs> = n.fs.clone();
        let (storage, core) = self.proto.start(id, seed, dynfs, data_dir(), true);
        n.core = core;
        n.storage = Some(storage);
        n.up = true;
        n.sm.clear();
        n.applied = 0;
        self.process(id);
    }

    pub fn leader(&self) -> Option<NodeId> {
        self.nodes
            .iter()
            .filter(|(_, n)| n.up && n.core.status().role == Role::Leader)
            .max_by_key(|(_, n)| P::rank(&n.core))
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
                if storage.persist(p).is_err() {
                    // The machine died in the middle of the batch: nothing was sent.
                    self.crash(id);
                    return;
                }
            }
            for (to, m) in ready.messages {
                self.proto.on_send(id, to, &m);
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
                        let prev = self.chosen.entry(index).or_insert((term, data.clone()));
                        assert_eq!(
                            *prev,
                            (term, data.clone()),
                            "safety violated: the value chosen at index {index} changed \
                             (seen on n{id})"
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
            P::maybe_compact(&mut n.core, n.applied, &n.sm);
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
        for id in 1..=NODES {
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

/// Runs one seed: 1500 steps of random proposals, power losses (some in the middle of a
/// persist batch) and restarts with the network dropping and reordering; then recovers
/// every node, elects a leader and checks that all nodes converge on one state holding
/// every acknowledged write. `workload_salt` seeds the fault schedule (`seed ^ salt`).
/// Returns the cluster for the protocol's own totals.
pub fn run_seed<P: Protocol>(proto: P, seed: u64, torn: bool, workload_salt: u64) -> Cluster<P> {
    let mut c = Cluster::new(proto, seed, torn);
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ workload_salt);
    for _ in 0..1500 {
        match rng.random_range(0..100) {
            0..45 => {
                if let Some(l) = c.leader() {
                    c.propose(l);
                }
            }
            45..48 => {
                // Power loss, sometimes in the middle of the node's next persist batch.
                let v = rng.random_range(1..=NODES);
                if rng.random_bool(0.5) {
                    c.crash(v);
                } else if c.nodes[&v].up {
                    let k = rng.random_range(0..8);
                    c.nodes[&v].fs.fail_after(Some(k));
                }
            }
            48..56 => {
                let down: Vec<NodeId> = (1..=NODES).filter(|i| !c.nodes[i].up).collect();
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
    for id in 1..=NODES {
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
    for id in 1..=NODES {
        assert_eq!(c.nodes[&id].sm, sm, "seed {seed}: n{id} diverged");
    }
    for w in &c.acked {
        assert!(
            sm.contains(w),
            "seed {seed}: acknowledged write {} lost",
            String::from_utf8_lossy(w)
        );
    }
    c
}

/// STASIS_POWER_LOSS_SEEDS=N runs N seeds per test (default `default`) for longer soaks.
pub fn seeds(default: u64) -> u64 {
    std::env::var("STASIS_POWER_LOSS_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// The addresses of the bootstrap voters 1..=NODES.
pub fn boot_addrs() -> BTreeMap<NodeId, String> {
    (1..=NODES).map(|i| (i, format!("127.0.0.1:{i}"))).collect()
}

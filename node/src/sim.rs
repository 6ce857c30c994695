//! A deterministic in-memory network over any [`ConsensusCore`], for core tests.
//!
//! Nodes are cores plus an in-memory store of what they persisted (a [`SimStore`]); the
//! network is a seeded queue that can drop, duplicate, reorder, cut links, or drop by a
//! message filter. Every `Ready` is handled in the runtime's order (persist, send, apply,
//! reads). The replicated state machine is a hash chain over applied entries, so the
//! network checks state-machine safety globally: every node applies the same entry at every
//! index (snapshots carry the chain value and are checked against it too).
//!
//! The network itself ([`Network`]) and the delivery loop ([`Driver`]) are shared with the
//! Raft test harness (`raft/sim.rs`), which keeps only its Raft-specific invariant checks.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::core::{Apply, ConsensusCore, Event, NodeId, Ready, ReadyHandler, drain_ready};

/// What a node persisted (its durable state across simulated crashes).
pub trait SimStore<P>: Default {
    fn persist(&mut self, p: P);
}

/// One applied entry: (term, data). The chain value after each index is checked globally.
pub type Applied = (u64, Option<Vec<u8>>);

pub struct SimNode<C: ConsensusCore, S> {
    pub core: C,
    pub store: S,
    pub up: bool,
    pub applied: u64,
    /// Hash chain over applied entries.
    pub chain: u64,
    /// Applied commands in order (after the last snapshot restore).
    pub sm: Vec<(u64, Vec<u8>)>,
    /// Reads confirmed here: (read id, read index, applied index at confirmation).
    pub reads: Vec<(u64, u64)>,
    pub failed_reads: Vec<u64>,
    pub events: Vec<Event>,
}

/// Decides whether a message (from, to, message) is lost.
pub type Filter<M> = Box<dyn Fn(NodeId, NodeId, &M) -> bool>;
/// Builds a core from a node's durable state (at start and after a crash).
pub type Factory<C, S> = Box<dyn Fn(NodeId, &S) -> C>;

/// A seeded in-memory network: a queue that can drop, duplicate, reorder, cut links, or
/// drop by a message filter.
pub struct Network<M> {
    pub queue: VecDeque<(NodeId, NodeId, M)>,
    pub rng: ChaCha8Rng,
    /// Blocked directed links.
    pub cut: BTreeSet<(NodeId, NodeId)>,
    pub drop_prob: f64,
    pub dup_prob: f64,
    pub reorder: bool,
    pub filter: Option<Filter<M>>,
}

impl<M: Clone> Network<M> {
    pub fn new(seed: u64) -> Self {
        Network {
            queue: VecDeque::new(),
            rng: ChaCha8Rng::seed_from_u64(seed),
            cut: BTreeSet::new(),
            drop_prob: 0.0,
            dup_prob: 0.0,
            reorder: false,
            filter: None,
        }
    }

    fn lost(&mut self, from: NodeId, to: NodeId, m: &M) -> bool {
        if self.cut.contains(&(from, to)) {
            return true;
        }
        if self.filter.as_ref().is_some_and(|f| f(from, to, m)) {
            return true;
        }
        self.drop_prob > 0.0 && self.rng.random_bool(self.drop_prob)
    }

    /// Takes the next message (a random one of the first 8 if reordering): `None` if the
    /// queue is empty, `Some(None)` if the message is lost or its destination is down,
    /// otherwise the message to deliver (possibly also queued again as a duplicate).
    pub fn next(&mut self, up: impl Fn(NodeId) -> bool) -> Option<Option<(NodeId, NodeId, M)>> {
        let i = if self.reorder && self.queue.len() > 1 {
            self.rng.random_range(0..self.queue.len().min(8))
        } else {
            0
        };
        let (from, to, m) = self.queue.remove(i)?;
        if self.lost(from, to, &m) || !up(to) || !up(from) {
            return Some(None);
        }
        if self.dup_prob > 0.0 && self.rng.random_bool(self.dup_prob) {
            self.queue.push_back((from, to, m.clone()));
        }
        Some(Some((from, to, m)))
    }

    /// Power loss at `id`: in-flight messages to and from it vanish.
    pub fn crash(&mut self, id: NodeId) {
        self.queue.retain(|(f, t, _)| *f != id && *t != id);
    }

    /// Cuts every link between `group` and the other nodes of `all` (both directions).
    pub fn partition(&mut self, all: impl IntoIterator<Item = NodeId>, group: &[NodeId]) {
        let ids: Vec<NodeId> = all.into_iter().collect();
        for &a in group {
            for &b in &ids {
                if !group.contains(&b) {
                    self.cut.insert((a, b));
                    self.cut.insert((b, a));
                }
            }
        }
    }

    pub fn heal(&mut self) {
        self.cut.clear();
    }
}

/// The delivery loop shared by the test harnesses: a harness says how a node takes a
/// message or a tick (and handles its `Ready` batches with its own checks).
pub trait Driver {
    type Msg: Clone;
    /// `deliver_all` panics after this many deliveries without the queue running dry.
    const STORM: usize = 10_000_000;
    fn network(&mut self) -> &mut Network<Self::Msg>;
    fn ids(&self) -> Vec<NodeId>;
    fn is_up(&self, id: NodeId) -> bool;
    /// `to` handles `m` from `from`, then its `Ready` batches.
    fn step_node(&mut self, from: NodeId, to: NodeId, m: Self::Msg);
    /// `id` advances its clock one tick, then handles its `Ready` batches.
    fn tick_node(&mut self, id: NodeId);

    /// Delivers one queued message. False if none.
    fn deliver_one(&mut self) -> bool {
        let ids = self.ids();
        let up: BTreeSet<NodeId> = ids.into_iter().filter(|&id| self.is_up(id)).collect();
        match self.network().next(|id| up.contains(&id)) {
            None => false,
            Some(None) => true,
            Some(Some((from, to, m))) => {
                self.step_node(from, to, m);
                true
            }
        }
    }

    fn deliver_all(&mut self) {
        let mut n = 0;
        while self.deliver_one() {
            n += 1;
            assert!(n < Self::STORM, "message storm");
        }
    }

    fn tick_all(&mut self) {
        for id in self.ids() {
            if self.is_up(id) {
                self.tick_node(id);
            }
        }
    }

    /// Ticks and delivers for `ticks` rounds.
    fn run(&mut self, ticks: u64) {
        for _ in 0..ticks {
            self.tick_all();
            self.deliver_all();
        }
    }
}

pub struct Net<C: ConsensusCore, S> {
    pub nodes: BTreeMap<NodeId, SimNode<C, S>>,
    pub net: Network<C::Message>,
    factory: Factory<C, S>,
    /// index -> (chain value after it, entry): the one history every node must follow.
    pub history: BTreeMap<u64, (u64, Applied)>,
}

fn chain(prev: u64, index: u64, term: u64, data: &Option<Vec<u8>>) -> u64 {
    // FNV-1a over the entry, seeded with the previous value.
    let mut h = prev ^ 0xcbf2_9ce4_8422_2325;
    let mut eat = |b: u8| {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    };
    for b in index.to_le_bytes().iter().chain(term.to_le_bytes().iter()) {
        eat(*b);
    }
    match data {
        None => eat(0xff),
        Some(d) => d.iter().for_each(|b| eat(*b)),
    }
    h
}

/// Snapshot payload of the simulated state machine: index and chain value.
pub fn snapshot_data(index: u64, chain: u64) -> Vec<u8> {
    let mut v = index.to_le_bytes().to_vec();
    v.extend_from_slice(&chain.to_le_bytes());
    v
}

impl<C, S> Net<C, S>
where
    C: ConsensusCore,
    C::Message: Clone,
    S: SimStore<C::Persist>,
{
    pub fn new(ids: &[NodeId], seed: u64, factory: Factory<C, S>) -> Self {
        let mut nodes = BTreeMap::new();
        for &id in ids {
            let store = S::default();
            let core = factory(id, &store);
            nodes.insert(
                id,
                SimNode {
                    core,
                    store,
                    up: true,
                    applied: 0,
                    chain: 0,
                    sm: Vec::new(),
                    reads: Vec::new(),
                    failed_reads: Vec::new(),
                    events: Vec::new(),
                },
            );
        }
        let mut net = Net {
            nodes,
            net: Network::new(seed),
            factory,
            history: BTreeMap::new(),
        };
        for id in ids {
            net.process(*id);
        }
        net
    }

    pub fn core(&self, id: NodeId) -> &C {
        &self.nodes[&id].core
    }

    pub fn core_mut(&mut self, id: NodeId) -> &mut C {
        &mut self.nodes.get_mut(&id).expect("node").core
    }

    /// Handles one node's `Ready` batches until it has nothing more to do, in the order of
    /// [`crate::core::drain_ready`].
    pub fn process(&mut self, id: NodeId) {
        let Ok(()) = drain_ready(&mut NodeDrain { net: self, id });
    }

    /// Power loss: in-flight messages to and from it vanish, the core restarts from its store.
    pub fn crash(&mut self, id: NodeId) {
        self.net.crash(id);
        self.nodes.get_mut(&id).expect("node").up = false;
    }

    pub fn restart(&mut self, id: NodeId) {
        let core = {
            let n = &self.nodes[&id];
            (self.factory)(id, &n.store)
        };
        let n = self.nodes.get_mut(&id).expect("node");
        n.core = core;
        n.up = true;
        n.applied = 0;
        n.chain = 0;
        n.sm.clear();
        self.process(id);
    }

    /// Cuts every link between `group` and the other nodes (both directions).
    pub fn partition(&mut self, group: &[NodeId]) {
        self.net.partition(self.nodes.keys().copied(), group);
    }

    pub fn heal(&mut self) {
        self.net.heal();
    }

    pub fn up(&self) -> Vec<NodeId> {
        self.nodes
            .iter()
            .filter(|(_, n)| n.up)
            .map(|(&id, _)| id)
            .collect()
    }
}

/// One node of a [`Net`], for the length of one drain.
struct NodeDrain<'a, C: ConsensusCore, S> {
    net: &'a mut Net<C, S>,
    id: NodeId,
}

impl<C, S> NodeDrain<'_, C, S>
where
    C: ConsensusCore,
{
    fn node(&mut self) -> &mut SimNode<C, S> {
        self.net.nodes.get_mut(&self.id).expect("node")
    }
}

impl<C, S> ReadyHandler<C::Message, C::Persist> for NodeDrain<'_, C, S>
where
    C: ConsensusCore,
    C::Message: Clone,
    S: SimStore<C::Persist>,
{
    type Error = std::convert::Infallible;

    fn take_ready(&mut self) -> Option<Ready<C::Message, C::Persist>> {
        let node = self.node();
        node.up.then(|| node.core.take_ready())
    }

    fn persist(&mut self, p: C::Persist) -> Result<(), Self::Error> {
        self.node().store.persist(p);
        Ok(())
    }

    fn send(&mut self, to: NodeId, msg: C::Message) {
        self.net.net.queue.push_back((self.id, to, msg));
    }

    fn apply(&mut self, a: Apply) -> Result<(), Self::Error> {
        let id = self.id;
        let node = self.net.nodes.get_mut(&id).expect("node");
        let history = &mut self.net.history;
        match a {
            Apply::Snapshot { index, data } => {
                let mut i = [0u8; 8];
                let mut c = [0u8; 8];
                i.copy_from_slice(&data[..8]);
                c.copy_from_slice(&data[8..16]);
                assert_eq!(u64::from_le_bytes(i), index, "snapshot index");
                let c = u64::from_le_bytes(c);
                if let Some((want, _)) = history.get(&index) {
                    assert_eq!(*want, c, "n{id}: snapshot at {index} diverges");
                }
                node.applied = index;
                node.chain = c;
                node.sm.clear();
            }
            Apply::Entry { index, term, data } => {
                assert_eq!(index, node.applied + 1, "n{id}: applied out of order");
                node.chain = chain(node.chain, index, term, &data);
                node.applied = index;
                match history.get(&index) {
                    Some((want, e)) => assert_eq!(
                        *want,
                        node.chain,
                        "n{id}: applied {:?} at {index}, others applied {e:?}",
                        (term, &data)
                    ),
                    None => {
                        history.insert(index, (node.chain, (term, data.clone())));
                    }
                }
                if let Some(d) = data {
                    node.sm.push((index, d));
                }
            }
        }
        Ok(())
    }

    fn reads(&mut self, confirmed: Vec<(u64, u64)>, failed: Vec<u64>) {
        let node = self.node();
        node.reads.extend(confirmed);
        node.failed_reads.extend(failed);
    }

    fn events(&mut self, events: Vec<Event>) {
        self.node().events.extend(events);
    }
}

impl<C, S> Driver for Net<C, S>
where
    C: ConsensusCore,
    C::Message: Clone,
    S: SimStore<C::Persist>,
{
    type Msg = C::Message;

    fn network(&mut self) -> &mut Network<C::Message> {
        &mut self.net
    }

    fn ids(&self) -> Vec<NodeId> {
        self.nodes.keys().copied().collect()
    }

    fn is_up(&self, id: NodeId) -> bool {
        self.nodes.get(&id).is_some_and(|n| n.up)
    }

    fn step_node(&mut self, from: NodeId, to: NodeId, m: C::Message) {
        self.core_mut(to).step(from, m);
        self.process(to);
    }

    fn tick_node(&mut self, id: NodeId) {
        self.core_mut(id).tick();
        self.process(id);
    }
}

impl<C: ConsensusCore, S> std::ops::Deref for Net<C, S> {
    type Target = Network<C::Message>;
    fn deref(&self) -> &Network<C::Message> {
        &self.net
    }
}

impl<C: ConsensusCore, S> std::ops::DerefMut for Net<C, S> {
    fn deref_mut(&mut self) -> &mut Network<C::Message> {
        &mut self.net
    }
}

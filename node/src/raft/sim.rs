//! Deterministic in-memory network for testing the Raft core, with global invariant checks:
//! election safety (one leader per term), state-machine safety (every node applies the same
//! entry at an index), leader completeness (a new leader holds every applied entry), and
//! ReadIndex freshness (a confirmed read index covers every write acknowledged before it).

//!
//! The network and the delivery loop are the generic ones of [`crate::sim`].

use std::collections::BTreeMap;

use rand::RngExt;

use super::*;
use crate::core::{ReadyHandler, drain_ready};
pub use crate::sim::Driver;
use crate::sim::Network;

/// Storage that keeps everything persisted (the core's view of durable state).
#[derive(Clone, Debug, Default)]
pub struct MemStore {
    pub hs: HardState,
    pub snapshot: Option<Snapshot>,
    pub entries: Vec<Entry>,
}

impl MemStore {
    pub fn persist(&mut self, p: RaftPersist) {
        for op in p.ops {
            match op {
                PersistOp::HardState(hs) => self.hs = hs,
                PersistOp::Append(es) => {
                    if let Some(first) = es.first() {
                        self.entries.retain(|e| e.index < first.index);
                        self.entries.extend(es);
                    }
                }
                PersistOp::Snapshot {
                    snapshot,
                    hard_state,
                    entries,
                } => {
                    self.snapshot = Some(snapshot);
                    self.hs = hard_state;
                    self.entries = entries;
                }
            }
        }
    }

    pub fn recovered(&self) -> Recovered {
        Recovered {
            hard_state: self.hs,
            snapshot: self.snapshot.clone(),
            entries: self.entries.clone(),
        }
    }
}

pub struct SimNode {
    pub raft: Raft,
    /// Bootstraps with the initial configuration (false: a joiner).
    pub boot: bool,
    pub store: MemStore,
    pub up: bool,
    /// The replicated state machine: applied commands in order.
    pub sm: Vec<Vec<u8>>,
    pub applied: u64,
    /// Client writes proposed here: index -> (term, data).
    pub proposals: BTreeMap<u64, (u64, Vec<u8>)>,
    /// Reads issued here: id -> write index acknowledged anywhere before the read started.
    pub reads: BTreeMap<u64, u64>,
}

pub struct Sim {
    pub nodes: BTreeMap<NodeId, SimNode>,
    pub net: Network<Message>,
    pub cfg: RaftConfig,
    pub bootstrap: Membership,
    /// index -> (term, data) of every applied entry (data None for internal entries).
    pub applied: BTreeMap<u64, (u64, Option<Vec<u8>>)>,
    pub leaders: BTreeMap<u64, NodeId>,
    /// Writes acknowledged to clients: data -> index.
    pub acked: BTreeMap<Vec<u8>, u64>,
    pub max_acked_index: u64,
    pub events: Vec<(NodeId, Event)>,
    pub confirmed_reads: usize,
    pub snapshot_every: u64,
    next_id: u64,
    pub restarts: u64,
    /// Per-node wall-clock offset in ms (a clock nemesis); wall clocks otherwise advance
    /// `tick_ms` per tick from a common epoch.
    pub wall_skew: BTreeMap<NodeId, i64>,
}

pub fn addr(id: NodeId) -> String {
    format!("127.0.0.1:{}", 9000 + id)
}

pub fn membership_of(ids: &[NodeId]) -> Membership {
    Membership::new(ids.iter().map(|&i| (i, addr(i))).collect())
}

impl Sim {
    pub fn new(n: u64, seed: u64) -> Sim {
        let ids: Vec<NodeId> = (1..=n).collect();
        Sim::with_config(&ids, &ids, seed, |_| {})
    }

    /// `voters` bootstrap the cluster; other ids in `all` start empty (joiners).
    pub fn with_config(
        all: &[NodeId],
        voters: &[NodeId],
        seed: u64,
        tweak: impl Fn(&mut RaftConfig),
    ) -> Sim {
        let mut cfg = RaftConfig::new(0);
        cfg.election_ticks = 10;
        cfg.heartbeat_ticks = 2;
        cfg.lease_margin_ticks = 2;
        tweak(&mut cfg);
        let mut sim = Sim {
            nodes: BTreeMap::new(),
            net: Network::new(seed),
            cfg,
            bootstrap: membership_of(voters),
            applied: BTreeMap::new(),
            leaders: BTreeMap::new(),
            acked: BTreeMap::new(),
            max_acked_index: 0,
            events: Vec::new(),
            confirmed_reads: 0,
            snapshot_every: 0,
            next_id: 0,
            restarts: 0,
            wall_skew: BTreeMap::new(),
        };
        for &id in all {
            let boot = voters.contains(&id).then(|| sim.bootstrap.clone());
            let raft = sim.make_raft(id, boot, Recovered::default());
            sim.nodes.insert(
                id,
                SimNode {
                    raft,
                    boot: voters.contains(&id),
                    store: MemStore::default(),
                    up: true,
                    sm: Vec::new(),
                    applied: 0,
                    proposals: BTreeMap::new(),
                    reads: BTreeMap::new(),
                },
            );
        }
        sim
    }

    fn make_raft(&mut self, id: NodeId, boot: Option<Membership>, rec: Recovered) -> Raft {
        let mut cfg = self.cfg.clone();
        cfg.id = id;
        cfg.seed = self.net.rng.random_range(0..u64::MAX);
        Raft::new(cfg, boot, rec)
    }

    pub fn raft(&self, id: NodeId) -> &Raft {
        &self.nodes[&id].raft
    }

    pub fn raft_mut(&mut self, id: NodeId) -> &mut Raft {
        &mut self.nodes.get_mut(&id).expect("node exists").raft
    }

    pub fn leader(&self) -> Option<NodeId> {
        self.nodes
            .iter()
            .filter(|(_, n)| n.up && n.raft.role == Role::Leader)
            .max_by_key(|(_, n)| n.raft.term)
            .map(|(&id, _)| id)
    }

    /// Isolates `group` from every other node (both directions).
    pub fn partition(&mut self, group: &[NodeId]) {
        self.net.partition(self.nodes.keys().copied(), group);
    }

    pub fn heal(&mut self) {
        self.net.heal();
    }

    pub fn crash(&mut self, id: NodeId) {
        let n = self.nodes.get_mut(&id).expect("node exists");
        n.up = false;
        n.proposals.clear();
        n.reads.clear();
        self.net.crash(id);
    }

    pub fn restart(&mut self, id: NodeId) {
        self.restarts += 1;
        let rec = self.nodes[&id].store.recovered();
        let boot = self.nodes[&id].boot.then(|| self.bootstrap.clone());
        let raft = self.make_raft(id, boot, rec);
        let n = self.nodes.get_mut(&id).expect("node exists");
        n.raft = raft;
        n.up = true;
        n.sm.clear();
        n.applied = 0;
        self.process(id);
    }

    pub fn propose(&mut self, id: NodeId) -> Option<Vec<u8>> {
        self.next_id += 1;
        let data = format!("w{}", self.next_id).into_bytes();
        let n = self.nodes.get_mut(&id)?;
        if !n.up {
            return None;
        }
        let p = n.raft.propose(data.clone()).ok()?;
        n.proposals.insert(p.index, (p.term, data.clone()));
        self.process(id);
        Some(data)
    }

    pub fn read(&mut self, id: NodeId) -> bool {
        self.next_id += 1;
        let rid = self.next_id;
        let floor = self.max_acked_index;
        let n = self.nodes.get_mut(&id).expect("node exists");
        if !n.up || n.raft.read(rid).is_err() {
            return false;
        }
        n.reads.insert(rid, floor);
        self.process(id);
        true
    }

    /// Drains the node's ready batches in the order of [`crate::core::drain_ready`],
    /// checking invariants as entries are applied.
    pub fn process(&mut self, id: NodeId) {
        let Ok(()) = drain_ready(&mut NodeDrain { sim: self, id });
        self.check_leader(id);
    }

    fn check_leader(&mut self, id: NodeId) {
        let r = &self.nodes[&id].raft;
        if r.role != Role::Leader {
            return;
        }
        if let Some(&prev) = self.leaders.get(&r.term) {
            assert_eq!(prev, id, "two leaders in term {}", r.term);
            return;
        }
        // Leader completeness: a leader of the highest term so far holds every entry
        // committed (applied anywhere) before it was elected.
        let newest = self.leaders.keys().next_back().is_none_or(|&t| t < r.term);
        self.leaders.insert(r.term, id);
        if !newest {
            return;
        }
        for (&index, (term, _)) in self.applied.range(r.log.base_index + 1..) {
            assert_eq!(
                r.log.term(index),
                Some(*term),
                "leader n{id} (term {}) lacks applied entry {index}",
                r.term
            );
        }
    }

    /// Runs until some node is leader (and has committed its no-op), or panics.
    pub fn elect(&mut self) -> NodeId {
        for _ in 0..2000 {
            self.run(1);
            if let Some(l) = self.leader() {
                let r = self.raft(l);
                if r.log.term(r.log.commit) == Some(r.term) {
                    return l;
                }
            }
        }
        panic!("no leader elected:\n{}", self.dump());
    }

    /// All up nodes applied the same commands.
    /// One line per node: what it believes (for failure messages).
    pub fn dump(&self) -> String {
        let mut out = String::new();
        for (id, n) in &self.nodes {
            let r = &n.raft;
            out.push_str(&format!(
                "n{id} up={} role={:?} term={} vote={:?} leader={:?} last=({}, {}) commit={} base={} elapsed={} cfg@{}={:?}\n",
                n.up,
                r.role,
                r.term,
                r.vote,
                r.leader,
                r.log.last_index(),
                r.log.last_term(),
                r.log.commit,
                r.log.base_index,
                r.election_elapsed,
                r.membership_index,
                (&r.membership.voters, &r.membership.outgoing, &r.membership.learners),
            ));
        }
        out
    }

    /// Makes nodes forget any leader and their start-up grace period, so they grant votes.
    pub fn forget_leaders(&mut self, ids: &[NodeId]) {
        for &id in ids {
            let r = self.raft_mut(id);
            r.leader = None;
            r.leader_heard = None;
            r.ticks = r.ticks.max(1000);
            r.election_elapsed = 1000;
        }
    }

    /// Starts a real (not pre-vote) election at `id`.
    pub fn force_campaign(&mut self, id: NodeId) {
        self.raft_mut(id).campaign(false);
        self.process(id);
    }

    /// All up members of the newest leader's configuration applied the same commands.
    pub fn assert_converged(&self) {
        let members = self.leader().map(|l| self.raft(l).membership.members());
        let ups: Vec<&SimNode> = self
            .nodes
            .iter()
            .filter(|(id, n)| n.up && members.as_ref().is_none_or(|m| m.contains(id)))
            .map(|(_, n)| n)
            .collect();
        let first = ups.first().expect("some node is up");
        for n in &ups {
            if n.applied != first.applied {
                eprintln!("{}", self.dump());
            }
            assert_eq!(
                n.applied, first.applied,
                "applied index differs on n{}",
                n.raft.cfg.id
            );
            assert_eq!(n.sm, first.sm, "state machines differ");
        }
        for (data, _) in self.acked.iter() {
            assert!(
                first.sm.contains(data),
                "acknowledged write {:?} lost",
                String::from_utf8_lossy(data)
            );
        }
    }
}

/// One node of a [`Sim`], for the length of one drain.
struct NodeDrain<'a> {
    sim: &'a mut Sim,
    id: NodeId,
}

impl NodeDrain<'_> {
    fn node(&mut self) -> &mut SimNode {
        self.sim.nodes.get_mut(&self.id).expect("node exists")
    }
}

impl ReadyHandler<Message, RaftPersist> for NodeDrain<'_> {
    type Error = std::convert::Infallible;

    fn take_ready(&mut self) -> Option<Ready<Message, RaftPersist>> {
        let n = self.node();
        n.up.then(|| n.raft.take_ready())
    }

    fn persist(&mut self, p: RaftPersist) -> Result<(), Self::Error> {
        self.node().store.persist(p);
        Ok(())
    }

    fn send(&mut self, to: NodeId, msg: Message) {
        self.sim.net.queue.push_back((self.id, to, msg));
    }

    fn apply(&mut self, a: Apply) -> Result<(), Self::Error> {
        let id = self.id;
        let sim = &mut *self.sim;
        let n = sim.nodes.get_mut(&id).expect("node exists");
        match a {
            Apply::Snapshot { index, data } => {
                let sm: Vec<Vec<u8>> = postcard::from_bytes(&data).expect("sim snapshot decodes");
                n.sm = sm;
                n.applied = index;
            }
            Apply::Entry { index, term, data } => {
                assert_eq!(index, n.applied + 1, "n{id} applied out of order");
                n.applied = index;
                match sim.applied.get(&index) {
                    Some(prev) => assert_eq!(
                        prev,
                        &(term, data.clone()),
                        "state machine safety violated at index {index} on n{id}"
                    ),
                    None => {
                        sim.applied.insert(index, (term, data.clone()));
                    }
                }
                if let Some(d) = data.clone() {
                    n.sm.push(d);
                }
                if let Some((pt, pd)) = n.proposals.remove(&index)
                    && pt == term
                {
                    assert_eq!(Some(pd.clone()), data);
                    sim.acked.insert(pd, index);
                    sim.max_acked_index = sim.max_acked_index.max(index);
                }
            }
        }
        Ok(())
    }

    fn reads(&mut self, confirmed: Vec<(u64, u64)>, failed: Vec<u64>) {
        let id = self.id;
        let sim = &mut *self.sim;
        let n = sim.nodes.get_mut(&id).expect("node exists");
        for (rid, index) in confirmed {
            if let Some(floor) = n.reads.remove(&rid) {
                assert!(
                    index >= floor,
                    "stale read on n{id}: read index {index} < acknowledged write {floor}"
                );
                sim.confirmed_reads += 1;
            }
        }
        for rid in failed {
            n.reads.remove(&rid);
        }
    }

    fn events(&mut self, events: Vec<Event>) {
        let id = self.id;
        self.sim.events.extend(events.into_iter().map(|e| (id, e)));
    }

    /// The test's snapshot policy: compact once `snapshot_every` entries were applied.
    fn batch_done(&mut self) -> Result<(), Self::Error> {
        let every = self.sim.snapshot_every;
        let n = self.node();
        if every > 0
            && n.applied >= n.raft.log.base_index + every
            && n.applied <= n.raft.log.applied
        {
            let data = postcard::to_allocvec(&n.sm).expect("encode");
            let idx = n.applied;
            n.raft.compact(idx, data);
        }
        Ok(())
    }
}

impl Driver for Sim {
    type Msg = Message;
    const STORM: usize = 1_000_000;

    fn network(&mut self) -> &mut Network<Message> {
        &mut self.net
    }

    fn ids(&self) -> Vec<NodeId> {
        self.nodes.keys().copied().collect()
    }

    fn is_up(&self, id: NodeId) -> bool {
        self.nodes.get(&id).is_some_and(|n| n.up)
    }

    fn step_node(&mut self, from: NodeId, to: NodeId, m: Message) {
        self.raft_mut(to).step(from, m);
        self.process(to);
    }

    fn tick_node(&mut self, id: NodeId) {
        let skew = self.wall_skew.get(&id).copied().unwrap_or(0);
        let r = self.raft_mut(id);
        let wall = 1_700_000_000_000 + (r.ticks + 1) * r.cfg.tick_ms;
        r.wall_clock(wall.saturating_add_signed(skew));
        r.tick();
        self.process(id);
    }
}

impl std::ops::Deref for Sim {
    type Target = Network<Message>;
    fn deref(&self) -> &Network<Message> {
        &self.net
    }
}

impl std::ops::DerefMut for Sim {
    fn deref_mut(&mut self) -> &mut Network<Message> {
        &mut self.net
    }
}

//! Sans-IO Multi-Paxos core with flexible quorums.
//!
//! [`Paxos`] implements [`ConsensusCore`] so the runtime, storage, RESP server and KV state
//! machine of the Raft node drive it unchanged. One concept per module:
//!
//! - [`ballot`]: `(round, node)` ballots, the logical time;
//! - [`acceptor`]: promise and accepted `(slot, ballot, value)` triples, fencing;
//! - [`leader`]: phase-1 merge (adopt the highest accepted ballot, fill holes with no-ops)
//!   and the StartWorking rule against ghost re-appearance;
//! - [`storage`]: durable acceptor state over the WAL and the snapshot store;
//! - [`crate::quorum`]: the quorum systems (`majority`, `flexible`, `grid`, `even`, joint).
//!
//! Protocol: a candidate picks a ballot above everything it saw and runs phase 1 once for
//! every slot after its chosen prefix. Once a phase-1 quorum promised, it proposes in its
//! ballot the adopted value (or a no-op) for every slot up to the highest reported one,
//! then `StartWorking(ballot)`, then client commands; it skips phase 1 while its ballot
//! stands, pipelines phase 2 and learns a slot chosen when a phase-2 quorum accepted it.
//! Slots may be chosen out of order and are applied strictly in order. Reads wait for the
//! leader's StartWorking to be chosen and are then confirmed by a phase-2 quorum of
//! heartbeat acknowledgements at the leader's ballot (no acceptor had promised a higher
//! ballot, so nothing newer can have been chosen). Followers learn chosen slots from the
//! leader's commit index (for slots they accepted in the leader's ballot) or by catch-up
//! (`Learn` batches, or the snapshot when the leader compacted what they miss).
//!
//! Membership: configurations are log values; the quorums for every undecided slot are
//! those of the configuration at the chosen prefix *and* of every configuration value
//! proposed after it (joint consensus: `C_old,new` needs both, then `C_new`). A candidate
//! also needs a phase-1 quorum of every configuration its promises reveal.

pub mod acceptor;
pub mod ballot;
pub mod leader;
pub mod storage;

#[cfg(test)]
mod bug_tests;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tracing::{debug, info};

use crate::core::{
    Apply, Bugs, CheckQuorum, ConsensusCore, CoreStatus, Event, NodeId, NotLeader, Proposed, Ready,
    ReconfigError, Role, fmt_id,
};
use crate::quorum::{Joint, QuorumSpec, QuorumSystem};
use acceptor::{Accepted, Acceptor, Report};
pub use ballot::Ballot;
use leader::Merge;

/// Tuning knobs. Times are in ticks of the runtime's monotonic clock.
#[derive(Clone, Debug)]
pub struct PaxosConfig {
    pub id: NodeId,
    /// Minimum election timeout; the actual one is random in `[e, 2e)` (back-off).
    pub election_ticks: u64,
    pub heartbeat_ticks: u64,
    /// Slots per Accept/Learn message.
    pub max_batch: usize,
    /// Entries handed to the runtime per `take_ready`.
    pub max_apply: usize,
    pub quorum: QuorumSpec,
    /// When a leader without a phase-2 quorum's acks steps down.
    pub check_quorum: CheckQuorum,
    pub seed: u64,
    pub bugs: Bugs,
}

impl PaxosConfig {
    pub fn new(id: NodeId, quorum: QuorumSpec) -> PaxosConfig {
        PaxosConfig {
            id,
            election_ticks: 30,
            heartbeat_ticks: 5,
            max_batch: 512,
            max_apply: 4096,
            quorum,
            check_quorum: CheckQuorum::ElectionTimeout,
            seed: id,
            bugs: Bugs::default(),
        }
    }
}

/// A configuration: voters with peer addresses; during a change `outgoing` holds C_old.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigValue {
    pub voters: BTreeMap<NodeId, String>,
    pub outgoing: BTreeMap<NodeId, String>,
}

impl ConfigValue {
    pub fn new(voters: BTreeMap<NodeId, String>) -> ConfigValue {
        ConfigValue {
            voters,
            outgoing: BTreeMap::new(),
        }
    }

    pub fn is_joint(&self) -> bool {
        !self.outgoing.is_empty()
    }

    pub fn is_voter(&self, id: NodeId) -> bool {
        self.voters.contains_key(&id) || self.outgoing.contains_key(&id)
    }

    /// The quorum systems of this configuration (two while joint). `bugs` matter only for
    /// `disjoint-quorums`, which lets a non-intersecting flexible system be used as is.
    fn parts(&self, spec: QuorumSpec, bugs: &Bugs) -> Vec<QuorumSystem> {
        [&self.voters, &self.outgoing]
            .into_iter()
            .filter(|m| !m.is_empty())
            .map(|m| {
                let ids: BTreeSet<NodeId> = m.keys().copied().collect();
                // Configurations are validated before they enter the log; one that does not
                // fit the spec (a node started with other flags) needs everyone.
                QuorumSystem::fitted_with(spec, &ids, bugs)
                    .unwrap_or_else(|_| QuorumSystem::unanimous(&ids))
            })
            .collect()
    }
}

/// A log value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Value {
    /// Fills a hole.
    Noop,
    /// The first value of a new leader, in its own ballot: older unfinished values behind
    /// it are dead (see [`leader`]).
    StartWorking(Ballot),
    /// A client command, with the ballot of the leader that first proposed it.
    Command {
        origin: Ballot,
        data: Vec<u8>,
    },
    Config(ConfigValue),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotMeta {
    pub index: u64,
    /// The configuration in effect after `index`.
    pub config: ConfigValue,
    /// The largest StartWorking epoch at or before `index`.
    pub epoch: Ballot,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub meta: SnapshotMeta,
    pub data: Vec<u8>,
}

/// One durable write, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PersistOp {
    /// The initial configuration of a fresh node.
    Bootstrap(ConfigValue),
    Promise(Ballot),
    /// Votes; each replaces any earlier vote at its slot.
    Accept(Vec<(u64, Accepted)>),
    /// Save the snapshot, then replace the log by the promise and the votes after it.
    Snapshot {
        snapshot: Snapshot,
        promised: Ballot,
        votes: Vec<(u64, Accepted)>,
    },
}

/// The durable writes of one `Ready`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PaxosPersist {
    pub ops: Vec<PersistOp>,
}

/// What storage recovered at startup.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovered {
    pub bootstrap: Option<ConfigValue>,
    pub promised: Ballot,
    pub snapshot: Option<Snapshot>,
    /// Votes after the snapshot.
    pub votes: BTreeMap<u64, Accepted>,
}

impl Recovered {
    pub fn is_empty(&self) -> bool {
        self.bootstrap.is_none()
            && self.promised == Ballot::ZERO
            && self.snapshot.is_none()
            && self.votes.is_empty()
    }
}

/// Peer messages.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// Pre-vote: would the receiver promise `ballot`? Changes no state, so a node that
    /// campaigns while cut off does not raise ballots and depose a live leader on return.
    PrePrepare {
        ballot: Ballot,
    },
    /// `promised` lets a refused pre-candidate pick a higher ballot next time.
    PrePromise {
        ballot: Ballot,
        granted: bool,
        promised: Ballot,
    },
    /// Phase 1a for every slot `>= from`.
    Prepare {
        ballot: Ballot,
        from: u64,
    },
    /// Phase 1b; carries the snapshot when the acceptor compacted slots `>= from`.
    Promise {
        ballot: Ballot,
        reports: Vec<(u64, Report)>,
        snapshot: Option<Snapshot>,
    },
    /// `ballot` was refused because the acceptor promised `promised`.
    Nack {
        ballot: Ballot,
        promised: Ballot,
    },
    /// Phase 2a; `commit` is the leader's chosen prefix.
    Accept {
        ballot: Ballot,
        entries: Vec<(u64, Value)>,
        commit: u64,
    },
    /// Phase 2b.
    Accepted {
        ballot: Ballot,
        slots: Vec<u64>,
        commit: u64,
    },
    Heartbeat {
        ballot: Ballot,
        commit: u64,
        ctx: u64,
    },
    /// The sender has not promised above `ballot`; `commit` is its chosen prefix.
    HeartbeatAck {
        ballot: Ballot,
        ctx: u64,
        commit: u64,
    },
    /// Chosen values for a lagging node.
    Learn {
        ballot: Ballot,
        entries: Vec<(u64, Value)>,
    },
    InstallSnapshot {
        ballot: Ballot,
        snapshot: Snapshot,
    },
}

#[derive(Clone, Debug)]
struct Reconfig {
    id: u64,
    target: BTreeMap<NodeId, String>,
}

/// The Multi-Paxos state machine.
pub struct Paxos {
    cfg: PaxosConfig,
    rng: ChaCha8Rng,
    acc: Acceptor,
    persisted_promised: Ballot,
    base_config: ConfigValue,
    base_epoch: Ballot,
    snapshot: Option<Snapshot>,
    /// The configuration in effect after the chosen prefix.
    config: ConfigValue,
    commit: u64,
    applied: u64,
    role: Role,
    leader: Option<NodeId>,
    /// Our ballot as candidate or leader.
    ballot: Ballot,
    /// The highest ballot heard of.
    seen: Ballot,
    ticks: u64,
    election_elapsed: u64,
    timeout: u64,
    last_heard: Option<u64>,
    // Pre-candidate and candidate.
    pre_granted: BTreeSet<NodeId>,
    merge: Merge,
    promised_by: BTreeSet<NodeId>,
    prepared: BTreeSet<NodeId>,
    // Leader.
    next_slot: u64,
    sent_upto: u64,
    acks: BTreeMap<u64, BTreeSet<NodeId>>,
    /// Configuration values this leader proposed, by slot.
    leader_configs: BTreeMap<u64, ConfigValue>,
    sw_slot: u64,
    heartbeat_elapsed: u64,
    quorum_elapsed: u64,
    peer_ack_tick: BTreeMap<NodeId, u64>,
    hb_ctx: u64,
    hb_in_batch: bool,
    hb_acked: BTreeMap<NodeId, u64>,
    /// Tick at which a snapshot was last sent to each peer.
    snapshot_sent: BTreeMap<NodeId, u64>,
    /// Per lagging peer, the last slot of the newest Learn sent and the tick it was sent:
    /// one catch-up exchange in flight per peer. Every HeartbeatAck of a lagging peer asks
    /// for a Learn and every Learn is answered with a HeartbeatAck, so without this each
    /// heartbeat started another exchange that lived until the peer caught up; with small
    /// batches and a slow link the exchanges outnumbered what the peer could absorb and
    /// grew without bound (`stasis sim --protocol multipaxos --seed 113`: a million
    /// messages queued after 8 simulated seconds).
    learn_sent: BTreeMap<NodeId, (u64, u64)>,
    /// (ctx, read id, read index).
    pending_reads: Vec<(u64, u64, u64)>,
    waiting_reads: Vec<u64>,
    reconfig: Option<Reconfig>,
    // Output.
    ops: Vec<PersistOp>,
    msgs: Vec<(NodeId, Message)>,
    apply_snapshot: Option<Apply>,
    ready_reads: Vec<(u64, u64)>,
    failed_reads: Vec<u64>,
    events: Vec<Event>,
}

impl Paxos {
    /// Creates the core from recovered storage. A fresh node with a `bootstrap` voter set
    /// persists it as its initial configuration; a fresh node without one waits to be added.
    pub fn new(
        cfg: PaxosConfig,
        bootstrap: Option<BTreeMap<NodeId, String>>,
        recovered: Recovered,
    ) -> Paxos {
        let mut ops = Vec::new();
        let fresh = recovered.is_empty();
        let (base, base_config, base_epoch) = match &recovered.snapshot {
            Some(s) => (s.meta.index, s.meta.config.clone(), s.meta.epoch),
            None => {
                let c = match (&recovered.bootstrap, bootstrap) {
                    (Some(c), _) => c.clone(),
                    (None, Some(b)) if fresh && !b.is_empty() => {
                        let c = ConfigValue::new(b);
                        ops.push(PersistOp::Bootstrap(c.clone()));
                        c
                    }
                    _ => ConfigValue::default(),
                };
                (0, c, Ballot::ZERO)
            }
        };
        let mut acc = Acceptor {
            promised: recovered.promised,
            base,
            ..Acceptor::default()
        };
        for (s, a) in recovered.votes.into_iter().filter(|(s, _)| *s > base) {
            acc.slots.entry(s).or_default().accepted = Some(a);
        }
        let apply_snapshot = recovered.snapshot.as_ref().map(|s| Apply::Snapshot {
            index: s.meta.index,
            data: s.data.clone(),
        });
        let mut p = Paxos {
            rng: ChaCha8Rng::seed_from_u64(cfg.seed),
            persisted_promised: acc.promised,
            seen: acc.promised,
            acc,
            config: base_config.clone(),
            base_config,
            base_epoch,
            snapshot: recovered.snapshot,
            commit: base,
            applied: base,
            role: Role::Follower,
            leader: None,
            ballot: Ballot::ZERO,
            ticks: 0,
            election_elapsed: 0,
            timeout: cfg.election_ticks,
            // Like a node that just heard from a leader: give an existing one time to
            // reach us before we campaign or promise to someone else.
            last_heard: Some(0),
            pre_granted: BTreeSet::new(),
            merge: Merge::default(),
            promised_by: BTreeSet::new(),
            prepared: BTreeSet::new(),
            next_slot: base + 1,
            sent_upto: base + 1,
            acks: BTreeMap::new(),
            leader_configs: BTreeMap::new(),
            sw_slot: 0,
            heartbeat_elapsed: 0,
            quorum_elapsed: 0,
            peer_ack_tick: BTreeMap::new(),
            hb_ctx: 0,
            hb_in_batch: false,
            hb_acked: BTreeMap::new(),
            snapshot_sent: BTreeMap::new(),
            learn_sent: BTreeMap::new(),
            pending_reads: Vec::new(),
            waiting_reads: Vec::new(),
            reconfig: None,
            ops,
            msgs: Vec::new(),
            apply_snapshot,
            ready_reads: Vec::new(),
            failed_reads: Vec::new(),
            events: Vec::new(),
            cfg,
        };
        p.reset_timeout();
        p
    }

    pub fn role(&self) -> Role {
        self.role.reported(self.config.is_voter(self.cfg.id))
    }

    pub fn leader(&self) -> Option<NodeId> {
        self.leader
    }

    pub fn promised(&self) -> Ballot {
        self.acc.promised
    }

    pub fn ballot(&self) -> Ballot {
        self.ballot
    }

    pub fn commit(&self) -> u64 {
        self.commit
    }

    pub fn config(&self) -> &ConfigValue {
        &self.config
    }

    /// The chosen value at `slot`, if known and not compacted.
    pub fn chosen(&self, slot: u64) -> Option<&Value> {
        self.acc.chosen(slot)
    }

    /// This acceptor's vote at `slot`.
    pub fn vote(&self, slot: u64) -> Option<&Accepted> {
        self.acc.slots.get(&slot).and_then(|s| s.accepted.as_ref())
    }

    /// The slot of this leader's StartWorking value (0 if not leader).
    pub fn start_working_slot(&self) -> u64 {
        if self.role == Role::Leader {
            self.sw_slot
        } else {
            0
        }
    }

    fn id(&self) -> NodeId {
        self.cfg.id
    }

    /// Seeded bug `no-fencing`: false lets phase-2 messages of a ballot below the promise
    /// through: accepts (see [`Acceptor::accept`]) and heartbeats (empty phase 2a).
    fn fencing(&self) -> bool {
        !self.cfg.bugs.no_fencing
    }

    /// Seeded bug `ignore-accepted`: true makes a new leader propose its own value (a
    /// no-op) where phase 1 reported an accepted one (see [`Merge::finish`]).
    fn ignore_accepted(&self) -> bool {
        self.cfg.bugs.ignore_accepted
    }

    fn reset_timeout(&mut self) {
        let e = self.cfg.election_ticks.max(1);
        self.timeout = self.rng.random_range(e..2 * e);
        self.election_elapsed = 0;
    }

    fn send(&mut self, to: NodeId, m: Message) {
        if to != self.id() {
            self.msgs.push((to, m));
        }
    }

    /// The configuration values this leader proposed (its own or adopted in phase 1) that
    /// are not chosen yet, in slot order.
    fn undecided_configs(&self) -> impl DoubleEndedIterator<Item = &ConfigValue> {
        self.leader_configs.range(self.commit + 1..).map(|(_, c)| c)
    }

    /// Configurations every decision about an undecided slot must satisfy.
    fn joint(&self) -> Joint {
        let spec = self.cfg.quorum;
        let bugs = &self.cfg.bugs;
        let mut parts = self.config.parts(spec, bugs);
        match self.role {
            Role::Candidate => {
                for c in self.merge.configs(self.commit) {
                    parts.extend(c.parts(spec, bugs));
                }
            }
            Role::Leader if bugs.unsafe_reconfig => {
                // Seeded bug `unsafe-reconfig`: the newest configuration this leader
                // proposed replaces the one in effect at once; the old voters' quorums
                // stop counting.
                if let Some(c) = self.undecided_configs().next_back() {
                    parts = c.parts(spec, bugs);
                }
            }
            Role::Leader => {
                for c in self.undecided_configs() {
                    parts.extend(c.parts(spec, bugs));
                }
            }
            _ => {}
        }
        Joint::new(parts)
    }

    fn peers(&self) -> BTreeSet<NodeId> {
        let mut m = self.joint().members();
        m.remove(&self.id());
        m
    }

    /// Largest StartWorking epoch in the chosen prefix.
    fn prefix_epoch(&self) -> Ballot {
        let mut e = self.base_epoch;
        for st in self.acc.slots.range(..=self.commit).map(|(_, s)| s) {
            if let Some(Value::StartWorking(b)) = &st.chosen {
                e = e.max(*b);
            }
        }
        e
    }

    fn config_at(&self, index: u64) -> ConfigValue {
        let mut c = &self.base_config;
        for st in self.acc.slots.range(..=index).map(|(_, s)| s) {
            if let Some(Value::Config(x)) = &st.chosen {
                c = x;
            }
        }
        c.clone()
    }

    fn epoch_at(&self, index: u64) -> Ballot {
        let mut e = self.base_epoch;
        for st in self.acc.slots.range(..=index).map(|(_, s)| s) {
            if let Some(Value::StartWorking(b)) = &st.chosen {
                e = e.max(*b);
            }
        }
        e
    }

    // ---- roles ----

    /// A voter of the configuration in effect, or of a configuration value this acceptor
    /// accepted after it (which may be chosen without its knowing). Who runs phase 1 does
    /// not matter for safety, only the quorums do; this keeps a cluster live when the old
    /// leader leaves before the new voters learned that the change was chosen.
    fn may_campaign(&self) -> bool {
        let id = self.id();
        self.config.is_voter(id)
            || self
                .acc
                .slots
                .range(self.commit + 1..)
                .any(|(_, s)| matches!(&s.accepted, Some(Accepted { value: Value::Config(c), .. }) if c.is_voter(id)))
    }

    fn step_down(&mut self, seen: Ballot) {
        self.seen = self.seen.max(seen);
        if self.role == Role::Leader {
            info!(node = %fmt_id(self.id()), ballot = %self.ballot, "stepping down");
            self.events.push(Event::SteppedDown);
            self.failed_reads
                .extend(self.pending_reads.drain(..).map(|(_, id, _)| id));
            self.failed_reads.append(&mut self.waiting_reads);
            if let Some(r) = self.reconfig.take() {
                self.events.push(Event::ReconfigAborted {
                    id: r.id,
                    definite: false,
                });
            }
        }
        if self.role != Role::Follower {
            self.role = Role::Follower;
            self.leader = None;
            self.acks.clear();
            self.leader_configs.clear();
            self.promised_by.clear();
            self.merge = Merge::default();
        }
        self.reset_timeout();
    }

    /// A message from the current leader of `ballot` (already checked not to be stale):
    /// follow it, unless this node is that leader.
    fn heed_leader(&mut self, ballot: Ballot) {
        if ballot != self.ballot || self.role != Role::Leader {
            self.follow(ballot);
        }
    }

    fn follow(&mut self, ballot: Ballot) {
        if self.role == Role::PreCandidate || (ballot > self.ballot && self.role != Role::Follower)
        {
            self.step_down(ballot);
        }
        self.seen = self.seen.max(ballot);
        if self.role == Role::Follower {
            self.leader = Some(ballot.node);
            self.last_heard = Some(self.ticks);
            self.election_elapsed = 0;
        }
    }

    /// Whether a live leader other than `node` was heard from within an election timeout.
    fn bound_to_other_leader(&self, node: NodeId) -> bool {
        self.last_heard
            .is_some_and(|t| self.ticks < t + self.cfg.election_ticks)
            && self.leader.is_some()
            && self.leader != Some(node)
    }

    fn pre_campaign(&mut self) {
        let b = self.acc.promised.next_for(self.seen, self.id());
        self.role = Role::PreCandidate;
        self.leader = None;
        self.ballot = b;
        self.pre_granted = BTreeSet::from([self.id()]);
        self.reset_timeout();
        for p in self.peers() {
            self.send(p, Message::PrePrepare { ballot: b });
        }
        self.maybe_pre_win();
    }

    fn maybe_pre_win(&mut self) {
        if self.role == Role::PreCandidate && self.joint().is_phase1_quorum(&self.pre_granted) {
            self.campaign();
        }
    }

    fn campaign(&mut self) {
        let b = self.acc.promised.next_for(self.seen, self.id());
        self.acc
            .prepare(b)
            .expect("a ballot above the promise is always accepted");
        self.seen = b;
        self.ballot = b;
        self.role = Role::Candidate;
        self.leader = None;
        self.merge = Merge::default();
        self.merge.add(self.acc.report(self.commit + 1));
        self.promised_by = BTreeSet::from([self.id()]);
        self.prepared.clear();
        self.reset_timeout();
        debug!(node = %fmt_id(self.id()), ballot = %b, "phase 1");
        self.send_prepares();
        self.maybe_win();
    }

    fn send_prepares(&mut self) {
        let from = self.commit + 1;
        for p in self.peers() {
            if self.prepared.insert(p) {
                self.send(
                    p,
                    Message::Prepare {
                        ballot: self.ballot,
                        from,
                    },
                );
            }
        }
    }

    fn maybe_win(&mut self) {
        if self.role == Role::Candidate && self.joint().is_phase1_quorum(&self.promised_by) {
            self.become_leader();
        }
    }

    fn become_leader(&mut self) {
        let merge = std::mem::take(&mut self.merge);
        let adopted = merge.finish(self.commit, self.prefix_epoch(), self.ignore_accepted());
        self.role = Role::Leader;
        self.leader = Some(self.id());
        self.acks.clear();
        self.leader_configs.clear();
        self.peer_ack_tick.clear();
        self.hb_acked.clear();
        self.heartbeat_elapsed = 0;
        self.quorum_elapsed = 0;
        info!(node = %fmt_id(self.id()), ballot = %self.ballot, from = self.commit + 1,
              upto = adopted.max_seen, buried = adopted.buried.len(), "leader");
        let mut votes = Vec::new();
        for (slot, value, chosen) in adopted.values {
            if chosen {
                self.acc.learn(slot, value.clone());
            }
            votes.extend(self.propose_at(slot, value));
        }
        self.sw_slot = adopted.max_seen + 1;
        votes.extend(self.propose_at(self.sw_slot, Value::StartWorking(self.ballot)));
        self.ops.push(PersistOp::Accept(votes));
        self.next_slot = self.sw_slot + 1;
        self.sent_upto = self.commit + 1;
        for s in self.acks.keys().copied().collect::<Vec<_>>() {
            self.check_chosen(s);
        }
        self.advance_commit();
        self.finish_joint();
        self.broadcast_heartbeat();
    }

    /// Our own vote for `value` at `slot` in our ballot (persist the returned vote).
    fn propose_at(&mut self, slot: u64, value: Value) -> Option<(u64, Accepted)> {
        let fencing = self.fencing();
        if let Value::Config(c) = &value {
            self.leader_configs.insert(slot, c.clone());
        }
        let vote = self
            .acc
            .accept(self.ballot, slot, value, fencing)
            .expect("the leader's own acceptor promised its ballot");
        if self.acc.chosen(slot).is_none() {
            self.acks.insert(slot, BTreeSet::from([self.id()]));
        }
        vote.map(|a| (slot, a))
    }

    fn check_chosen(&mut self, slot: u64) {
        let Some(set) = self.acks.get(&slot) else {
            return;
        };
        if self.joint().is_phase2_quorum(set) {
            self.acks.remove(&slot);
            self.acc.learn_if_voted(slot, self.ballot);
        }
    }

    /// Moves the chosen prefix forward over contiguous chosen slots.
    fn advance_commit(&mut self) {
        let before = self.commit;
        while let Some(v) = self.acc.chosen(self.commit + 1) {
            let v = v.clone();
            self.commit += 1;
            self.acks.remove(&self.commit);
            if let Value::Config(c) = v {
                self.config = c;
                // The quorums for the slots after it changed: re-count what is pending.
                for s in self.acks.keys().copied().collect::<Vec<_>>() {
                    self.check_chosen(s);
                }
                self.on_config_chosen();
            }
        }
        if self.commit > before && self.role == Role::Leader && self.commit >= self.sw_slot {
            for id in std::mem::take(&mut self.waiting_reads) {
                self.start_read(id);
            }
        }
    }

    fn on_config_chosen(&mut self) {
        if self.role != Role::Leader {
            return;
        }
        let pending_above = self.undecided_configs().next().is_some();
        if self.config.is_joint() {
            self.finish_joint();
        } else if let Some(r) = &self.reconfig
            && r.target == self.config.voters
        {
            let id = r.id;
            self.reconfig = None;
            self.events.push(Event::ReconfigDone(id));
        }
        if !self.config.is_voter(self.id()) && !pending_above {
            info!(node = %fmt_id(self.id()), "removed from the configuration");
            // Tell the remaining voters the change is chosen, so they campaign soon.
            self.broadcast_heartbeat();
            self.step_down(self.ballot);
        }
    }

    /// In a joint configuration with no configuration value pending, proposes C_new
    /// (finishing our change, or one a previous leader left half done).
    fn finish_joint(&mut self) {
        if self.role == Role::Leader
            && self.config.is_joint()
            && self.undecided_configs().next().is_none()
        {
            let target = self.config.voters.clone();
            self.propose_value(Value::Config(ConfigValue::new(target)));
        }
    }

    fn propose_value(&mut self, value: Value) -> u64 {
        let slot = self.next_slot;
        self.next_slot += 1;
        if let Some(v) = self.propose_at(slot, value) {
            self.ops.push(PersistOp::Accept(vec![v]));
        }
        self.check_chosen(slot);
        self.advance_commit();
        slot
    }

    // ---- leader messages ----

    fn flush_accepts(&mut self) {
        if self.sent_upto >= self.next_slot {
            return;
        }
        let entries: Vec<(u64, Value)> = (self.sent_upto..self.next_slot)
            .filter_map(|s| {
                self.acc
                    .slots
                    .get(&s)
                    .and_then(|st| st.accepted.as_ref())
                    .filter(|a| a.ballot == self.ballot)
                    .map(|a| (s, a.value.clone()))
            })
            .collect();
        self.sent_upto = self.next_slot;
        for p in self.peers() {
            for chunk in entries.chunks(self.cfg.max_batch.max(1)) {
                self.send(
                    p,
                    Message::Accept {
                        ballot: self.ballot,
                        entries: chunk.to_vec(),
                        commit: self.commit,
                    },
                );
            }
        }
    }

    /// Re-sends undecided slots a peer has not acknowledged.
    fn retransmit(&mut self) {
        for p in self.peers() {
            let entries: Vec<(u64, Value)> = self
                .acks
                .iter()
                .filter(|(s, set)| **s < self.sent_upto && !set.contains(&p))
                .take(self.cfg.max_batch.max(1))
                .filter_map(|(&s, _)| {
                    self.acc
                        .slots
                        .get(&s)
                        .and_then(|st| st.accepted.as_ref())
                        .map(|a| (s, a.value.clone()))
                })
                .collect();
            if !entries.is_empty() {
                self.send(
                    p,
                    Message::Accept {
                        ballot: self.ballot,
                        entries,
                        commit: self.commit,
                    },
                );
            }
        }
    }

    fn broadcast_heartbeat(&mut self) {
        self.hb_ctx += 1;
        self.hb_in_batch = true;
        for p in self.peers() {
            self.send(
                p,
                Message::Heartbeat {
                    ballot: self.ballot,
                    commit: self.commit,
                    ctx: self.hb_ctx,
                },
            );
        }
    }

    fn start_read(&mut self, id: u64) {
        if !self.hb_in_batch {
            self.broadcast_heartbeat();
        }
        self.pending_reads.push((self.hb_ctx, id, self.commit));
        self.confirm_reads();
    }

    fn confirm_reads(&mut self) {
        if self.pending_reads.is_empty() {
            return;
        }
        // The largest heartbeat round acknowledged by a phase-2 quorum (we count ourselves);
        // reads are queued in round order, so a prefix of them is confirmed.
        let joint = self.joint();
        let mut rounds: Vec<u64> = self.hb_acked.values().copied().collect();
        rounds.sort_unstable_by(|a, b| b.cmp(a));
        rounds.dedup();
        let mut set = BTreeSet::from([self.id()]);
        let confirmed = rounds.into_iter().find(|&c| {
            set.extend(
                self.hb_acked
                    .iter()
                    .filter(|(_, r)| **r >= c)
                    .map(|(&p, _)| p),
            );
            joint.is_phase2_quorum(&set)
        });
        let confirmed = match confirmed {
            Some(c) => c,
            // A configuration where we alone are a phase-2 quorum.
            None if joint.is_phase2_quorum(&set) => u64::MAX,
            None => return,
        };
        let n = self
            .pending_reads
            .iter()
            .take_while(|(ctx, _, _)| *ctx <= confirmed)
            .count();
        for (_, id, index) in self.pending_reads.drain(..n) {
            self.ready_reads.push((id, index));
        }
    }

    fn catch_up(&mut self, to: NodeId, their_commit: u64) {
        if their_commit >= self.commit {
            return;
        }
        if their_commit < self.acc.base {
            // One snapshot per election timeout per peer: it may be large and in flight.
            let last = self.snapshot_sent.get(&to).copied();
            if last.is_some_and(|t| self.ticks < t + self.cfg.election_ticks) {
                return;
            }
            self.snapshot_sent.insert(to, self.ticks);
            if let Some(s) = &self.snapshot {
                let snapshot = s.clone();
                self.send(
                    to,
                    Message::InstallSnapshot {
                        ballot: self.ballot,
                        snapshot,
                    },
                );
            }
            return;
        }
        // A Learn that already covers their next slot is in flight (its answer, or a
        // stale answer overtaken by it, brings this peer here again): resend only after a
        // heartbeat interval without news, in case it was lost.
        if let Some(&(upto, at)) = self.learn_sent.get(&to)
            && upto > their_commit
            && self.ticks < at + self.cfg.heartbeat_ticks.max(1) * 2
        {
            return;
        }
        let entries: Vec<(u64, Value)> = (their_commit + 1..=self.commit)
            .take(self.cfg.max_batch.max(1))
            .filter_map(|s| self.acc.chosen(s).map(|v| (s, v.clone())))
            .collect();
        if let Some(&(last, _)) = entries.last() {
            self.learn_sent.insert(to, (last, self.ticks));
            self.send(
                to,
                Message::Learn {
                    ballot: self.ballot,
                    entries,
                },
            );
        }
    }

    fn tick_leader(&mut self) {
        self.last_heard = Some(self.ticks);
        self.heartbeat_elapsed += 1;
        if self.heartbeat_elapsed >= self.cfg.heartbeat_ticks {
            self.heartbeat_elapsed = 0;
            self.broadcast_heartbeat();
            self.retransmit();
        }
        let check = self.cfg.check_quorum;
        if check.due(self.cfg.election_ticks, &mut self.quorum_elapsed) {
            // Check quorum: step down if no phase-2 quorum answered recently (clients then
            // get NOTLEADER instead of waiting on a leader that cannot decide anything).
            let period = check.period(self.cfg.election_ticks).unwrap_or(0);
            let since = self.ticks.saturating_sub(period);
            let mut alive: BTreeSet<NodeId> = self
                .peer_ack_tick
                .iter()
                .filter(|(_, t)| **t >= since)
                .map(|(&p, _)| p)
                .collect();
            alive.insert(self.id());
            if !self.joint().is_phase2_quorum(&alive) {
                info!(node = %fmt_id(self.id()), "lost contact with a quorum");
                self.step_down(self.ballot);
            }
        }
    }

    // ---- follower side ----

    fn learn_commit(&mut self, ballot: Ballot, commit: u64) {
        if commit <= self.commit {
            return;
        }
        let slots: Vec<u64> = self
            .acc
            .slots
            .range(self.commit + 1..=commit)
            .map(|(&s, _)| s)
            .collect();
        for s in slots {
            self.acc.learn_if_voted(s, ballot);
        }
        self.advance_commit();
    }

    fn install_snapshot(&mut self, snapshot: Snapshot) {
        let index = snapshot.meta.index;
        if index <= self.commit {
            return;
        }
        info!(node = %fmt_id(self.id()), index, "installing snapshot");
        self.acc.compact(index);
        self.base_config = snapshot.meta.config.clone();
        self.base_epoch = snapshot.meta.epoch;
        self.config = self.base_config.clone();
        self.commit = index;
        self.applied = index;
        self.next_slot = self.next_slot.max(index + 1);
        self.apply_snapshot = Some(Apply::Snapshot {
            index,
            data: snapshot.data.clone(),
        });
        self.snapshot = Some(snapshot.clone());
        self.ops.push(PersistOp::Snapshot {
            snapshot,
            promised: self.acc.promised,
            votes: self.acc.votes(),
        });
        self.advance_commit();
    }

    fn nack(&mut self, to: NodeId, ballot: Ballot) {
        let promised = self.acc.promised;
        self.send(to, Message::Nack { ballot, promised });
    }

    fn on_prepare(&mut self, from: NodeId, ballot: Ballot, first: u64) {
        let sticky = self.bound_to_other_leader(ballot.node) && ballot > self.acc.promised;
        if sticky {
            // A live leader exists: do not let a (re)joining node depose it.
            return;
        }
        match self.acc.prepare(ballot) {
            Err(_) => self.nack(from, ballot),
            Ok(_) => {
                if self.role == Role::PreCandidate
                    || (ballot > self.ballot && self.role != Role::Follower)
                {
                    self.step_down(ballot);
                }
                self.seen = self.seen.max(ballot);
                self.leader = None;
                self.election_elapsed = 0;
                let snapshot = if self.acc.base >= first {
                    self.snapshot.clone()
                } else {
                    None
                };
                let reports = self.acc.report(first);
                self.send(
                    from,
                    Message::Promise {
                        ballot,
                        reports,
                        snapshot,
                    },
                );
            }
        }
    }

    fn on_accept(&mut self, from: NodeId, ballot: Ballot, entries: Vec<(u64, Value)>, commit: u64) {
        let fencing = self.fencing();
        let mut votes = Vec::new();
        let mut slots = Vec::new();
        for (s, v) in entries {
            match self.acc.accept(ballot, s, v, fencing) {
                Err(_) => {
                    if !votes.is_empty() {
                        self.ops.push(PersistOp::Accept(votes));
                    }
                    self.nack(from, ballot);
                    return;
                }
                Ok(vote) => {
                    slots.push(s);
                    votes.extend(vote.map(|a| (s, a)));
                }
            }
        }
        if !votes.is_empty() {
            self.ops.push(PersistOp::Accept(votes));
        }
        self.heed_leader(ballot);
        self.learn_commit(ballot, commit);
        let commit = self.commit;
        self.send(
            from,
            Message::Accepted {
                ballot,
                slots,
                commit,
            },
        );
    }

    fn step_inner(&mut self, from: NodeId, m: Message) {
        match m {
            Message::PrePrepare { ballot } => {
                let granted = ballot > self.acc.promised
                    && !self.bound_to_other_leader(ballot.node)
                    && self.role != Role::Leader;
                let promised = self.acc.promised;
                self.send(
                    from,
                    Message::PrePromise {
                        ballot,
                        granted,
                        promised,
                    },
                );
            }
            Message::PrePromise {
                ballot,
                granted,
                promised,
            } => {
                self.seen = self.seen.max(promised);
                if self.role == Role::PreCandidate && ballot == self.ballot && granted {
                    self.pre_granted.insert(from);
                    self.maybe_pre_win();
                }
            }
            Message::Prepare {
                ballot,
                from: first,
            } => self.on_prepare(from, ballot, first),
            Message::Promise {
                ballot,
                reports,
                snapshot,
            } => {
                if self.role != Role::Candidate || ballot != self.ballot {
                    return;
                }
                if let Some(s) = snapshot {
                    self.install_snapshot(s);
                }
                self.merge.add(reports);
                self.promised_by.insert(from);
                self.send_prepares();
                self.maybe_win();
            }
            Message::Nack { ballot, promised } => {
                self.seen = self.seen.max(promised);
                if ballot == self.ballot && promised > self.ballot && self.role != Role::Follower {
                    debug!(node = %fmt_id(self.id()), %ballot, %promised, "preempted");
                    self.step_down(promised);
                }
            }
            Message::Accept {
                ballot,
                entries,
                commit,
            } => self.on_accept(from, ballot, entries, commit),
            Message::Accepted {
                ballot,
                slots,
                commit,
            } => {
                if self.role != Role::Leader || ballot != self.ballot {
                    return;
                }
                self.peer_ack_tick.insert(from, self.ticks);
                for s in slots {
                    if let Some(set) = self.acks.get_mut(&s) {
                        set.insert(from);
                        self.check_chosen(s);
                    }
                }
                self.advance_commit();
                // A follower's commit trails ours while appends are in flight; missing
                // chosen values are sent on heartbeat acknowledgements only.
                let _ = commit;
            }
            Message::Heartbeat {
                ballot,
                commit,
                ctx,
            } => {
                // A heartbeat is an empty phase 2a (its acknowledgements confirm reads as a
                // phase-2 quorum), fenced like an accept; the seeded bug `no-fencing`
                // acknowledges a stale one too.
                if self.acc.prepare(ballot).is_err() && self.fencing() {
                    self.nack(from, ballot);
                    return;
                }
                self.heed_leader(ballot);
                self.learn_commit(ballot, commit);
                let commit = self.commit;
                self.send(
                    from,
                    Message::HeartbeatAck {
                        ballot,
                        ctx,
                        commit,
                    },
                );
            }
            Message::HeartbeatAck {
                ballot,
                ctx,
                commit,
            } => {
                if self.role != Role::Leader || ballot != self.ballot {
                    return;
                }
                self.peer_ack_tick.insert(from, self.ticks);
                let e = self.hb_acked.entry(from).or_default();
                *e = (*e).max(ctx);
                self.confirm_reads();
                self.catch_up(from, commit);
            }
            Message::Learn { ballot, entries } => {
                // Chosen values are facts whoever sends them: a node sends Learn (or a
                // snapshot of its applied prefix) only for slots it knows chosen, and a
                // chosen value never changes, so any member, a removed one or a spare that
                // caught up may send them (restricting senders to the current voters would
                // strand a node that only a removed one can still reach). What must not
                // send them is a node of another cluster: the peer handshake refuses those
                // (`--cluster`, transport::Hello).
                for (s, v) in entries {
                    if s > self.commit {
                        self.acc.learn(s, v);
                    }
                }
                self.advance_commit();
                self.answer_catch_up(from, ballot);
            }
            Message::InstallSnapshot { ballot, snapshot } => {
                self.install_snapshot(snapshot);
                self.answer_catch_up(from, ballot);
            }
        }
    }

    fn answer_catch_up(&mut self, from: NodeId, ballot: Ballot) {
        if ballot >= self.acc.promised {
            self.heed_leader(ballot);
            let commit = self.commit;
            self.send(
                from,
                Message::HeartbeatAck {
                    ballot,
                    ctx: 0,
                    commit,
                },
            );
        }
    }
}

impl ConsensusCore for Paxos {
    type Message = Message;
    type Persist = PaxosPersist;

    fn id(&self) -> NodeId {
        self.cfg.id
    }

    fn tick(&mut self) {
        self.ticks += 1;
        if self.role == Role::Leader {
            self.tick_leader();
        } else {
            self.election_elapsed += 1;
            if self.election_elapsed >= self.timeout && self.may_campaign() {
                self.pre_campaign();
            } else if self.role == Role::Candidate
                && self
                    .election_elapsed
                    .is_multiple_of(self.cfg.heartbeat_ticks)
            {
                // A Prepare can be lost (a connection that broke under it): resend to the
                // acceptors that have not promised yet, every heartbeat interval, instead of
                // waiting for a whole new phase 1 (finding 6 of the node review).
                let promised = &self.promised_by;
                self.prepared.retain(|p| promised.contains(p));
                self.send_prepares();
            }
        }
    }

    fn step(&mut self, from: NodeId, msg: Message) {
        self.step_inner(from, msg);
    }

    fn propose(&mut self, data: Vec<u8>) -> Result<Proposed, NotLeader> {
        NotLeader::unless_leader(self.role, self.leader)?;
        let origin = self.ballot;
        let index = self.propose_value(Value::Command { origin, data });
        Ok(Proposed {
            index,
            term: origin.as_u64(),
        })
    }

    fn read(&mut self, id: u64) -> Result<(), NotLeader> {
        NotLeader::unless_leader(self.role, self.leader)?;
        if self.commit < self.sw_slot {
            self.waiting_reads.push(id);
        } else {
            self.start_read(id);
        }
        Ok(())
    }

    fn reconfigure(
        &mut self,
        id: u64,
        voters: BTreeMap<NodeId, String>,
    ) -> Result<(), ReconfigError> {
        ReconfigError::admit(self.role, self.leader, &voters)?;
        let ids: BTreeSet<NodeId> = voters.keys().copied().collect();
        if let Err(e) = QuorumSystem::validate(self.cfg.quorum, &ids, &self.cfg.bugs) {
            return Err(ReconfigError::Invalid(e));
        }
        let pending = self.undecided_configs().next().is_some();
        if self.reconfig.is_some()
            || self.config.is_joint()
            || pending
            || self.commit < self.sw_slot
        {
            return Err(ReconfigError::Busy);
        }
        info!(node = %fmt_id(self.id()), ?voters, "reconfiguration requested");
        let next = if self.cfg.bugs.unsafe_reconfig {
            // Seeded bug `unsafe-reconfig`: straight to C_new, no joint configuration.
            ConfigValue::new(voters.clone())
        } else {
            ConfigValue {
                voters: voters.clone(),
                outgoing: self.config.voters.clone(),
            }
        };
        self.reconfig = Some(Reconfig { id, target: voters });
        self.propose_value(Value::Config(next));
        Ok(())
    }

    fn cancel_reconfigure(&mut self, _id: u64) {
        // The joint configuration enters the log at once, so there is no stage in which
        // a reconfiguration can be abandoned without possibly changing the voter set.
    }

    fn compact(&mut self, index: u64, data: Vec<u8>) {
        if index <= self.acc.base || index > self.applied {
            return;
        }
        let meta = SnapshotMeta {
            index,
            config: self.config_at(index),
            epoch: self.epoch_at(index),
        };
        let snapshot = Snapshot { meta, data };
        self.acc.compact(index);
        self.base_config = snapshot.meta.config.clone();
        self.base_epoch = snapshot.meta.epoch;
        self.snapshot = Some(snapshot.clone());
        self.ops.push(PersistOp::Snapshot {
            snapshot,
            promised: self.acc.promised,
            votes: self.acc.votes(),
        });
    }

    fn take_ready(&mut self) -> Ready<Message, PaxosPersist> {
        if self.role == Role::Leader {
            self.flush_accepts();
        }
        self.hb_in_batch = false;
        if self.acc.promised != self.persisted_promised {
            self.ops.insert(0, PersistOp::Promise(self.acc.promised));
            self.persisted_promised = self.acc.promised;
        }
        let mut ready = Ready {
            persist: if self.ops.is_empty() {
                None
            } else {
                Some(PaxosPersist {
                    ops: std::mem::take(&mut self.ops),
                })
            },
            messages: std::mem::take(&mut self.msgs),
            ..Ready::default()
        };
        if let Some(s) = self.apply_snapshot.take() {
            ready.apply.push(s);
        }
        while self.applied < self.commit && ready.apply.len() < self.cfg.max_apply {
            let i = self.applied + 1;
            let Some(v) = self.acc.chosen(i) else { break };
            let (term, data) = match v {
                Value::Command { origin, data } => (origin.as_u64(), Some(data.clone())),
                _ => (0, None),
            };
            ready.apply.push(Apply::Entry {
                index: i,
                term,
                data,
            });
            self.applied = i;
        }
        ready.take_outputs(
            &mut self.ready_reads,
            &mut self.failed_reads,
            &mut self.events,
        );
        ready
    }

    fn status(&self) -> CoreStatus {
        let mut voters: BTreeSet<NodeId> = self.config.voters.keys().copied().collect();
        voters.extend(self.config.outgoing.keys());
        // A leader's quorums are those of the configuration in effect and of every
        // configuration value it proposed (its own or adopted in phase 1) that is not
        // chosen yet: it reports them all, joint while one is undecided. (Reporting only
        // the chosen prefix's configuration made a new leader that adopted a change show
        // the voter set before it, which the change had replaced.)
        let mut joint = self.config.is_joint();
        if self.role == Role::Leader {
            for c in self.undecided_configs() {
                voters.extend(c.voters.keys().chain(c.outgoing.keys()));
                joint = true;
            }
        }
        CoreStatus {
            role: self.role(),
            term: self.acc.promised.round,
            leader: self.leader,
            commit_index: self.commit,
            applied_index: self.applied,
            voters: voters.into_iter().collect(),
            learners: Vec::new(),
            joint,
            log_tip: None,
            vote: None,
        }
    }

    fn peer_addrs(&self) -> BTreeMap<NodeId, String> {
        let mut m = self.config.outgoing.clone();
        m.extend(self.config.voters.clone());
        for st in self.acc.slots.range(self.commit + 1..).map(|(_, s)| s) {
            if let Some(Accepted {
                value: Value::Config(c),
                ..
            }) = &st.accepted
            {
                m.extend(c.outgoing.clone());
                m.extend(c.voters.clone());
            }
        }
        m
    }
}

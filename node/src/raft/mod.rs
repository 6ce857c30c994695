//! Sans-IO Raft core.
//!
//! [`Raft`] implements [`ConsensusCore`]: it never touches sockets, clocks or files. It
//! follows the Raft paper and Ongaro's thesis with the production refinements of etcd/raft:
//!
//! - randomized election timeouts, pre-vote, check-quorum and the "leader lease" rule that
//!   makes a node ignore vote requests while it recently heard from a leader, so a
//!   partitioned node cannot depose a healthy leader when it rejoins;
//! - log replication with batching (bounded entries/bytes per message) and pipelining
//!   (a bounded window of in-flight appends per follower), probe/replicate/snapshot flow
//!   control per follower and fast back-off on rejections by conflicting term;
//! - commitment only by counting replicas of entries of the current term (Figure 8), with a
//!   no-op entry appended at the start of every term;
//! - linearizable reads by ReadIndex (heartbeat quorum) or a leader lease ([`ReadMode`]);
//! - membership change by joint consensus with learners that catch up before they vote;
//! - log compaction by snapshots and InstallSnapshot for lagging followers.

pub mod log;
pub mod membership;
pub mod storage;

#[cfg(test)]
mod bug_tests;
#[cfg(test)]
mod sim;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tracing::{debug, info, warn};

use crate::core::{
    Apply, Bugs, CheckQuorum, ConsensusCore, CoreStatus, Event, NodeId, NotLeader, Proposed,
    ReadMode, Ready, ReconfigError, Role, fmt_id,
};
pub use log::{Entry, Payload, RaftLog};
pub use membership::{Membership, VoteResult};

/// Tuning knobs of the core. Times are in ticks of the runtime's monotonic clock.
#[derive(Clone, Debug)]
pub struct RaftConfig {
    pub id: NodeId,
    /// Minimum election timeout; the actual timeout is random in `[e, 2e)`.
    pub election_ticks: u64,
    pub heartbeat_ticks: u64,
    pub max_msg_entries: usize,
    pub max_msg_bytes: usize,
    /// Appends in flight per follower in replicate state.
    pub max_inflight: usize,
    /// Entries handed to the runtime per `take_ready`.
    pub max_apply: usize,
    pub read_mode: ReadMode,
    /// Lease reads: the lease ends this many ticks before the followers' election timeout
    /// could expire, to absorb clock drift between nodes.
    pub lease_margin_ticks: u64,
    /// When a leader without quorum contact steps down (lease reads do not depend on it:
    /// the lease comes from acknowledged heartbeats).
    pub check_quorum: CheckQuorum,
    /// Pre-vote (thesis §9.6): a node whose election timer fires first asks the voters
    /// whether they would vote for it in the next term, and raises its term only if a
    /// quorum would. Off, it campaigns in a new term at once (it can disrupt a leader when
    /// it rejoins, and two nodes cut off from each other campaign in the same terms).
    pub pre_vote: bool,
    /// Length of one tick in milliseconds (converts ticks to wall-clock time for the seeded
    /// bug `lease-wallclock`; nothing else uses it).
    pub tick_ms: u64,
    pub seed: u64,
    pub bugs: Bugs,
}

impl RaftConfig {
    pub fn new(id: NodeId) -> RaftConfig {
        RaftConfig {
            id,
            election_ticks: 30,
            heartbeat_ticks: 5,
            max_msg_entries: 512,
            max_msg_bytes: 1 << 20,
            max_inflight: 64,
            max_apply: 4096,
            read_mode: ReadMode::ReadIndex,
            lease_margin_ticks: 10,
            check_quorum: CheckQuorum::ElectionTimeout,
            pre_vote: true,
            tick_ms: 10,
            seed: id,
            bugs: Bugs::default(),
        }
    }
}

/// Term and vote: persisted (and fsynced) before any message that depends on them is sent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HardState {
    pub term: u64,
    pub vote: Option<NodeId>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotMeta {
    pub index: u64,
    pub term: u64,
    pub membership: Membership,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub meta: SnapshotMeta,
    pub data: Vec<u8>,
}

/// One durable write, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PersistOp {
    HardState(HardState),
    /// Append entries; any existing entries at or after the first one's index are replaced.
    Append(Vec<Entry>),
    /// Save the snapshot, then replace the log by `entries` (all entries after the
    /// snapshot) and `hard_state`.
    Snapshot {
        snapshot: Snapshot,
        hard_state: HardState,
        entries: Vec<Entry>,
    },
}

/// The durable writes of one `Ready`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RaftPersist {
    pub ops: Vec<PersistOp>,
}

/// What storage recovered at startup.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovered {
    pub hard_state: HardState,
    pub snapshot: Option<Snapshot>,
    /// Entries after the snapshot (or from index 1), contiguous.
    pub entries: Vec<Entry>,
}

impl Recovered {
    pub fn is_empty(&self) -> bool {
        self.hard_state == HardState::default()
            && self.snapshot.is_none()
            && self.entries.is_empty()
    }
}

/// A peer message. `term` is the sender's term, except for `PreVote` (the term the sender
/// would campaign in) and granted `PreVoteResp` (echoing that term).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub term: u64,
    pub body: Body,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Body {
    PreVote {
        last_index: u64,
        last_term: u64,
    },
    PreVoteResp {
        granted: bool,
    },
    Vote {
        last_index: u64,
        last_term: u64,
    },
    VoteResp {
        granted: bool,
    },
    Append {
        prev_index: u64,
        prev_term: u64,
        entries: Vec<Entry>,
        commit: u64,
    },
    /// `index`: on success the last index known to match the leader; on rejection the
    /// rejected `prev_index`, with a hint where the logs may diverge.
    AppendResp {
        reject: bool,
        index: u64,
        hint_index: u64,
        hint_term: u64,
    },
    Heartbeat {
        commit: u64,
        ctx: u64,
    },
    HeartbeatResp {
        ctx: u64,
    },
    InstallSnapshot {
        snapshot: Snapshot,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FlowState {
    /// Send one append at a time until the follower's position is known.
    Probe { paused: bool },
    /// Stream appends optimistically, up to `max_inflight`.
    Replicate,
    /// A snapshot at this index is on its way.
    Snapshot { index: u64 },
}

#[derive(Clone, Debug)]
struct Progress {
    matched: u64,
    next: u64,
    state: FlowState,
    /// Last index of every append in flight (replicate state).
    inflight: VecDeque<u64>,
    recent_active: bool,
    acked_ctx: u64,
    sent_commit: u64,
    /// Tick of the last sign of progress (ack, snapshot send).
    last_progress_tick: u64,
}

impl Progress {
    fn new(next: u64, now: u64) -> Progress {
        Progress {
            matched: 0,
            next,
            state: FlowState::Probe { paused: false },
            inflight: VecDeque::new(),
            recent_active: false,
            acked_ctx: 0,
            sent_commit: 0,
            last_progress_tick: now,
        }
    }

    fn become_probe(&mut self) {
        self.state = FlowState::Probe { paused: false };
        self.next = self.matched + 1;
        self.inflight.clear();
    }

    fn become_replicate(&mut self) {
        self.state = FlowState::Replicate;
        self.next = self.matched + 1;
        self.inflight.clear();
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    CatchUp,
    Joint,
    Leaving,
}

#[derive(Clone, Debug)]
struct Reconfig {
    id: u64,
    target: BTreeMap<NodeId, String>,
    stage: Stage,
}

/// The Raft state machine.
pub struct Raft {
    cfg: RaftConfig,
    rng: ChaCha8Rng,
    term: u64,
    vote: Option<NodeId>,
    role: Role,
    leader: Option<NodeId>,
    log: RaftLog,
    membership: Membership,
    /// Index of the configuration entry in effect (the snapshot index if it came from one).
    membership_index: u64,
    snapshot: Option<Snapshot>,
    ticks: u64,
    /// Tick at which a leader of the current term was last heard. Kept apart from
    /// `leader`, which any higher-term message clears: a follower's refusal to vote (what
    /// makes leader leases safe) must last a full election timeout after the leader's last
    /// message whatever else arrives (finding 5 of the node review).
    leader_heard: Option<u64>,
    election_elapsed: u64,
    /// Leader: ticks since the last check-quorum round.
    quorum_elapsed: u64,
    heartbeat_elapsed: u64,
    randomized_timeout: u64,
    votes: BTreeMap<NodeId, bool>,
    progress: BTreeMap<NodeId, Progress>,
    // Reads.
    read_seq: u64,
    hb_in_batch: bool,
    /// Heartbeat round -> (tick, wall clock in ms) when it was sent.
    hb_ticks: BTreeMap<u64, (u64, u64)>,
    pending_reads: VecDeque<(u64, u64, u64)>,
    reads_waiting_commit: Vec<u64>,
    lease_until: u64,
    /// The last wall-clock reading from the runtime (Unix ms) and, for the seeded bug
    /// `lease-wallclock`, the lease end on that clock.
    wall_ms: u64,
    lease_until_wall: u64,
    reconfig: Option<Reconfig>,
    // Output of the current batch.
    persisted_hs: HardState,
    ops: Vec<PersistOp>,
    msgs: Vec<(NodeId, Message)>,
    apply_snapshot: Option<Apply>,
    ready_reads: Vec<(u64, u64)>,
    failed_reads: Vec<u64>,
    events: Vec<Event>,
}

impl Raft {
    /// Creates the core from recovered storage. A node with empty storage and a non-empty
    /// `bootstrap` configuration writes it as entry 1 (term 0), identically on every
    /// initial voter; a node with empty storage and no bootstrap waits to be added.
    pub fn new(cfg: RaftConfig, bootstrap: Option<Membership>, recovered: Recovered) -> Raft {
        let mut ops = Vec::new();
        let fresh = recovered.is_empty();
        let (base_index, base_term) = recovered
            .snapshot
            .as_ref()
            .map_or((0, 0), |s| (s.meta.index, s.meta.term));
        let mut entries = recovered.entries;
        if fresh && let Some(m) = bootstrap.filter(|m| !m.is_empty()) {
            let e = Entry {
                index: 1,
                term: 0,
                payload: Payload::Config(m),
            };
            entries.push(e.clone());
            ops.push(PersistOp::Append(vec![e]));
        }
        let log = RaftLog::new(base_index, base_term, entries);
        let rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        let apply_snapshot = recovered.snapshot.as_ref().map(|s| Apply::Snapshot {
            index: s.meta.index,
            data: s.data.clone(),
        });
        let mut r = Raft {
            rng,
            term: recovered.hard_state.term,
            vote: recovered.hard_state.vote,
            role: Role::Follower,
            leader: None,
            log,
            membership: Membership::default(),
            membership_index: 0,
            snapshot: recovered.snapshot,
            ticks: 0,
            leader_heard: None,
            election_elapsed: 0,
            quorum_elapsed: 0,
            heartbeat_elapsed: 0,
            randomized_timeout: cfg.election_ticks,
            votes: BTreeMap::new(),
            progress: BTreeMap::new(),
            read_seq: 0,
            hb_in_batch: false,
            hb_ticks: BTreeMap::new(),
            pending_reads: VecDeque::new(),
            reads_waiting_commit: Vec::new(),
            lease_until: 0,
            wall_ms: 0,
            lease_until_wall: 0,
            reconfig: None,
            persisted_hs: recovered.hard_state,
            ops,
            msgs: Vec::new(),
            apply_snapshot,
            ready_reads: Vec::new(),
            failed_reads: Vec::new(),
            events: Vec::new(),
            cfg,
        };
        r.refresh_membership();
        r.reset_randomized_timeout();
        r
    }

    pub fn term(&self) -> u64 {
        self.term
    }

    pub fn role(&self) -> Role {
        self.role.reported(self.membership.is_voter(self.cfg.id))
    }

    pub fn leader(&self) -> Option<NodeId> {
        self.leader
    }

    pub fn log(&self) -> &RaftLog {
        &self.log
    }

    pub fn membership(&self) -> &Membership {
        &self.membership
    }

    pub fn hard_state(&self) -> HardState {
        HardState {
            term: self.term,
            vote: self.vote,
        }
    }

    /// The hard state as written to storage. Seeded bug `forget-vote`: the vote is never
    /// written (the term is), so after a restart the node has forgotten whom it voted for
    /// in its current term and may grant a second vote in it.
    fn durable_hard_state(&self) -> HardState {
        let mut hs = self.hard_state();
        if self.cfg.bugs.forget_vote {
            hs.vote = None;
        }
        hs
    }

    fn id(&self) -> NodeId {
        self.cfg.id
    }

    fn reset_randomized_timeout(&mut self) {
        let e = self.cfg.election_ticks.max(1);
        self.randomized_timeout = self.rng.random_range(e..2 * e);
    }

    fn send(&mut self, to: NodeId, body: Body) {
        let term = self.term;
        self.send_term(to, term, body);
    }

    fn send_term(&mut self, to: NodeId, term: u64, body: Body) {
        if to != self.id() {
            self.msgs.push((to, Message { term, body }));
        }
    }

    /// Recomputes the configuration in effect from the log (after appends of configuration
    /// entries, truncation or snapshot installation) and syncs follower progress.
    fn refresh_membership(&mut self) {
        let (index, m) = match self.log.config_at(self.log.last_index()) {
            Some((i, m)) => (i, m.clone()),
            None => match &self.snapshot {
                Some(s) => (s.meta.index, s.meta.membership.clone()),
                None => (0, Membership::default()),
            },
        };
        if m != self.membership || index != self.membership_index {
            debug!(node = %fmt_id(self.id()), ?m, index, "configuration in effect");
        }
        self.membership = m;
        self.membership_index = index;
        if self.role == Role::Leader {
            let members = self.membership.members();
            self.progress.retain(|id, _| members.contains(id));
            let next = self.log.last_index() + 1;
            for id in members {
                if id != self.cfg.id {
                    let now = self.ticks;
                    self.progress
                        .entry(id)
                        .or_insert_with(|| Progress::new(next, now));
                }
            }
        }
    }

    /// A node ignores vote requests while it believes a leader is alive: it is the leader,
    /// or it heard one less than an election timeout ago (and for one election timeout
    /// after it starts, since it may have forgotten one).
    fn in_lease(&self) -> bool {
        let heard = self
            .leader_heard
            .is_some_and(|t| self.ticks.saturating_sub(t) < self.cfg.election_ticks);
        self.role == Role::Leader || heard || self.ticks < self.cfg.election_ticks
    }

    fn become_follower(&mut self, term: u64, leader: Option<NodeId>) {
        if self.role == Role::Leader {
            info!(node = %fmt_id(self.id()), term = self.term, new_term = term, "stepping down");
            self.events.push(Event::SteppedDown);
            self.failed_reads
                .extend(self.pending_reads.drain(..).map(|(id, _, _)| id));
            self.failed_reads.append(&mut self.reads_waiting_commit);
            if let Some(r) = self.reconfig.take() {
                // Before the joint configuration nothing can change the voter set (a new
                // leader does not resume the change); after it, the change may complete.
                self.events.push(Event::ReconfigAborted {
                    id: r.id,
                    definite: r.stage == Stage::CatchUp,
                });
            }
            self.progress.clear();
            self.hb_ticks.clear();
            self.lease_until = 0;
            self.lease_until_wall = 0;
        }
        if term > self.term {
            self.term = term;
            self.vote = None;
        }
        self.role = Role::Follower;
        if leader.is_some() {
            self.leader_heard = Some(self.ticks);
        }
        self.leader = leader;
        self.votes.clear();
        self.election_elapsed = 0;
        self.reset_randomized_timeout();
    }

    /// Whether this node may start an election: it is a voter of its latest configuration
    /// or of its latest *committed* one. The second case matters when a leader appended a
    /// configuration without itself and lost leadership before committing it: the others
    /// may still be in the joint configuration, need its vote, and cannot win without it
    /// (its log is longer than theirs), so it must be able to campaign. Votes are always
    /// counted by the latest configuration, so this is safe (thesis §4.1); a node that
    /// knows it was removed by a committed configuration never campaigns.
    fn promotable(&self) -> bool {
        let me = self.cfg.id;
        if self.membership.is_voter(me) {
            return true;
        }
        if self.membership_index <= self.log.commit {
            return false;
        }
        match self.log.config_at(self.log.commit) {
            Some((_, m)) => m.is_voter(me),
            None => self
                .snapshot
                .as_ref()
                .is_some_and(|s| s.meta.membership.is_voter(me)),
        }
    }

    fn campaign(&mut self, pre: bool) {
        if !self.promotable() {
            return;
        }
        if self.role == Role::Leader {
            return;
        }
        let term = if pre {
            self.role = Role::PreCandidate;
            self.term + 1
        } else {
            self.term += 1;
            self.vote = Some(self.id());
            self.role = Role::Candidate;
            self.term
        };
        debug!(node = %fmt_id(self.id()), term, pre, "campaigning");
        self.leader = None;
        self.votes.clear();
        self.election_elapsed = 0;
        self.heartbeat_elapsed = 0;
        self.reset_randomized_timeout();
        self.votes.insert(self.id(), true);
        if self.membership.vote_result(&self.votes) == VoteResult::Won {
            if pre {
                self.campaign(false);
            } else {
                self.become_leader();
            }
            return;
        }
        self.request_votes();
    }

    /// (Pre-)candidate: sends its (pre-)vote request to every voter that has not answered
    /// in this election yet. Called when the election starts and then every heartbeat
    /// interval while it lasts (Raft §5.1: servers retry RPCs that get no timely
    /// response), so a request lost on the way, or to a voter that was down, is resent;
    /// a granted or rejected answer stops the retries to that voter. The request is the
    /// same each time: the term does not change during an election, nor does the log
    /// (anything that would change it makes the candidate a follower first).
    fn request_votes(&mut self) {
        let pre = match self.role {
            Role::PreCandidate => true,
            Role::Candidate => false,
            _ => return,
        };
        let term = if pre { self.term + 1 } else { self.term };
        let (last_index, last_term) = (self.log.last_index(), self.log.last_term());
        let waiting: Vec<NodeId> = self
            .membership
            .all_voters()
            .into_iter()
            .filter(|id| !self.votes.contains_key(id))
            .collect();
        for id in waiting {
            let body = if pre {
                Body::PreVote {
                    last_index,
                    last_term,
                }
            } else {
                Body::Vote {
                    last_index,
                    last_term,
                }
            };
            self.send_term(id, term, body);
        }
    }

    fn poll(&mut self, from: NodeId, granted: bool) {
        self.votes.insert(from, granted);
        match self.membership.vote_result(&self.votes) {
            VoteResult::Won => {
                if self.role == Role::PreCandidate {
                    self.campaign(false);
                } else {
                    self.become_leader();
                }
            }
            VoteResult::Lost => {
                let term = self.term;
                self.become_follower(term, None);
            }
            VoteResult::Pending => {}
        }
    }

    fn become_leader(&mut self) {
        info!(node = %fmt_id(self.id()), term = self.term, "became leader");
        self.role = Role::Leader;
        self.leader = Some(self.id());
        self.election_elapsed = 0;
        self.quorum_elapsed = 0;
        self.heartbeat_elapsed = 0;
        self.votes.clear();
        self.progress.clear();
        self.lease_until = 0;
        self.lease_until_wall = 0;
        self.hb_ticks.clear();
        self.refresh_membership();
        self.append_local(Payload::Noop);
    }

    /// Leader: appends an entry of the current term to its own log.
    fn append_local(&mut self, payload: Payload) -> u64 {
        let index = self.log.last_index() + 1;
        let is_config = matches!(payload, Payload::Config(_));
        let e = Entry {
            index,
            term: self.term,
            payload,
        };
        self.log.append(std::slice::from_ref(&e));
        match self.ops.last_mut() {
            Some(PersistOp::Append(v)) if v.last().is_some_and(|l| l.index + 1 == index) => {
                v.push(e)
            }
            _ => self.ops.push(PersistOp::Append(vec![e])),
        }
        if is_config {
            self.refresh_membership();
        }
        // A single-voter cluster commits on its own.
        self.maybe_commit();
        index
    }

    fn quorum_match(&self) -> u64 {
        let last = self.log.last_index();
        let matched = |id| {
            if id == self.cfg.id {
                last
            } else {
                self.progress.get(&id).map_or(0, |p| p.matched)
            }
        };
        if self.cfg.bugs.commit_minority {
            // Seeded bug `commit-minority`: one acknowledgement short of a majority.
            self.membership.quorum_value_one_early(matched)
        } else {
            self.membership.quorum_value(matched)
        }
    }

    /// Advances the commit index to what a quorum stores, but only through an entry of
    /// the current term (Raft §5.4.2, Figure 8).
    fn maybe_commit(&mut self) -> bool {
        if self.role != Role::Leader {
            return false;
        }
        let q = self.quorum_match();
        // Seeded bug `figure8`: any entry a quorum stores counts, whatever its term.
        let own_term = self.cfg.bugs.figure8 || self.log.term(q) == Some(self.term);
        if q > self.log.commit && own_term {
            self.log.commit = q;
            self.on_commit_advanced();
            true
        } else {
            false
        }
    }

    fn on_commit_advanced(&mut self) {
        if self.log.term(self.log.commit) == Some(self.term)
            && !self.reads_waiting_commit.is_empty()
        {
            for id in std::mem::take(&mut self.reads_waiting_commit) {
                self.start_read(id);
            }
        }
        self.advance_reconfig();
    }

    fn commit_to(&mut self, index: u64) {
        let index = index.min(self.log.last_index());
        if index > self.log.commit {
            self.log.commit = index;
        }
    }

    fn send_heartbeats(&mut self) {
        self.read_seq += 1;
        let ctx = self.read_seq;
        self.hb_ticks.insert(ctx, (self.ticks, self.wall_ms));
        while self.hb_ticks.len() > 1024 {
            self.hb_ticks.pop_first();
        }
        let commit = self.log.commit;
        let targets: Vec<(NodeId, u64)> = self
            .progress
            .iter()
            .map(|(&id, p)| (id, p.matched.min(commit)))
            .collect();
        for (id, c) in targets {
            self.send(id, Body::Heartbeat { commit: c, ctx });
        }
    }

    fn start_read(&mut self, id: u64) {
        let commit = self.log.commit;
        let alone = self.membership.has_quorum(|n| n == self.cfg.id);
        if alone || (self.cfg.read_mode == ReadMode::Lease && self.lease_held()) {
            self.ready_reads.push((id, commit));
            return;
        }
        if !self.hb_in_batch {
            self.send_heartbeats();
            self.hb_in_batch = true;
        }
        self.pending_reads.push_back((id, commit, self.read_seq));
    }

    /// Confirms reads (and extends the lease) with the heartbeat round a quorum acknowledged.
    fn confirm_reads(&mut self) {
        let seq = self.read_seq;
        let q = self.membership.quorum_value(|id| {
            if id == self.cfg.id {
                seq
            } else {
                self.progress.get(&id).map_or(0, |p| p.acked_ctx)
            }
        });
        while let Some(&(id, index, ctx)) = self.pending_reads.front() {
            if ctx > q {
                break;
            }
            self.pending_reads.pop_front();
            self.ready_reads.push((id, index));
        }
        if let Some(&(sent, sent_wall)) = self.hb_ticks.get(&q) {
            // Seeded bug `lease-from-ack`: the lease counts from now, when an
            // acknowledgement arrived, instead of from when the heartbeat was sent; the
            // followers' election timers started when they received it, so an
            // acknowledgement that took longer than the margin to come back (or a late
            // copy of an old one) stretches the lease past them.
            let from = if self.cfg.bugs.lease_from_ack {
                self.ticks
            } else {
                sent
            };
            let until =
                (from + self.cfg.election_ticks).saturating_sub(self.cfg.lease_margin_ticks);
            self.lease_until = self.lease_until.max(until);
            // Seeded bug `lease-wallclock`: the same lease on the wall clock, a full
            // election timeout long (no margin for drift).
            let until_wall = sent_wall + self.cfg.election_ticks * self.cfg.tick_ms;
            self.lease_until_wall = self.lease_until_wall.max(until_wall);
        }
        self.hb_ticks.retain(|&c, _| c >= q);
    }

    /// Whether the leader lease is held now: on the monotonic tick clock with its drift
    /// margin, or (seeded bug `lease-wallclock`) on the wall clock without one.
    fn lease_held(&self) -> bool {
        if self.cfg.bugs.lease_wallclock {
            self.wall_ms < self.lease_until_wall
        } else {
            self.ticks < self.lease_until
        }
    }

    /// Leader: sends the next append (or snapshot) to `to`. Returns true if entries were sent
    /// and more might follow.
    fn send_append(&mut self, to: NodeId, allow_empty: bool) -> bool {
        let commit = self.log.commit;
        let last = self.log.last_index();
        let (max_n, max_b, max_inflight) = (
            self.cfg.max_msg_entries,
            self.cfg.max_msg_bytes,
            self.cfg.max_inflight,
        );
        let Some(pr) = self.progress.get(&to) else {
            return false;
        };
        match pr.state {
            FlowState::Snapshot { .. } | FlowState::Probe { paused: true } => return false,
            FlowState::Replicate if pr.inflight.len() >= max_inflight => return false,
            _ => {}
        }
        let prev_index = pr.next - 1;
        let prev_term = self.log.term(prev_index);
        let entries = self.log.slice(pr.next, last, max_n, max_b);
        let (Some(prev_term), Some(entries)) = (prev_term, entries) else {
            self.send_snapshot(to);
            return false;
        };
        let replicate = pr.state == FlowState::Replicate;
        if entries.is_empty() && replicate && !(allow_empty && pr.sent_commit < commit) {
            return false;
        }
        let sent_last = entries.last().map(|e| e.index);
        let pr = self.progress.get_mut(&to).expect("checked above");
        pr.sent_commit = commit;
        if replicate {
            if let Some(l) = sent_last {
                pr.next = l + 1;
                pr.inflight.push_back(l);
            }
        } else {
            pr.state = FlowState::Probe { paused: true };
        }
        self.send(
            to,
            Body::Append {
                prev_index,
                prev_term,
                entries,
                commit,
            },
        );
        replicate && sent_last.is_some()
    }

    fn send_snapshot(&mut self, to: NodeId) {
        let Some(snapshot) = self.snapshot.clone() else {
            warn!(node = %fmt_id(self.id()), to = %fmt_id(to), "follower needs compacted entries but no snapshot exists");
            return;
        };
        let now = self.ticks;
        if let Some(pr) = self.progress.get_mut(&to) {
            pr.state = FlowState::Snapshot {
                index: snapshot.meta.index,
            };
            pr.inflight.clear();
            pr.last_progress_tick = now;
        }
        info!(node = %fmt_id(self.id()), to = %fmt_id(to), index = snapshot.meta.index, "sending snapshot");
        self.send(to, Body::InstallSnapshot { snapshot });
    }

    fn flush_appends(&mut self) {
        let ids: Vec<NodeId> = self.progress.keys().copied().collect();
        for id in ids {
            let mut n = 0;
            while self.send_append(id, n == 0) && n < self.cfg.max_inflight {
                n += 1;
            }
        }
    }

    // ----- membership changes -----

    fn advance_reconfig(&mut self) {
        if self.role != Role::Leader {
            return;
        }
        let committed = self.membership_index <= self.log.commit;
        if !committed {
            return;
        }
        if self.membership.is_joint() {
            // Leave the joint configuration (also when it was inherited from an old leader).
            let mut m = self.membership.clone();
            m.outgoing.clear();
            let members = m.members();
            m.addrs.retain(|id, _| members.contains(id));
            if let Some(r) = self.reconfig.as_mut() {
                r.stage = Stage::Leaving;
            }
            self.append_local(Payload::Config(m));
            return;
        }
        if !self.membership.is_voter(self.id()) {
            // Removed by a committed configuration: hand over by stepping down.
            if let Some(r) = self.reconfig.take() {
                self.events.push(Event::ReconfigDone(r.id));
            }
            let term = self.term;
            self.become_follower(term, None);
            return;
        }
        let Some(r) = self.reconfig.clone() else {
            return;
        };
        match r.stage {
            Stage::CatchUp => {
                let last = self.log.last_index();
                let slack = self.cfg.max_msg_entries as u64;
                let caught_up = r
                    .target
                    .keys()
                    .filter(|id| !self.membership.voters.contains(id) && **id != self.cfg.id)
                    .all(|id| {
                        self.progress
                            .get(id)
                            .is_some_and(|p| p.matched + slack >= last && p.matched > 0)
                    });
                if caught_up && self.cfg.bugs.unsafe_reconfig {
                    // Seeded bug `unsafe-reconfig`: C_new replaces C_old at once, however
                    // many voters change; a majority of C_new that knows it and a majority
                    // of C_old that does not can decide independently.
                    let old = self.membership.clone();
                    let new_voters: BTreeSet<NodeId> = r.target.keys().copied().collect();
                    let mut addrs = old.addrs.clone();
                    addrs.extend(r.target.iter().map(|(k, v)| (*k, v.clone())));
                    let mut m = Membership {
                        learners: old.learners.difference(&new_voters).copied().collect(),
                        voters: new_voters,
                        outgoing: BTreeSet::new(),
                        addrs,
                    };
                    let members = m.members();
                    m.addrs.retain(|id, _| members.contains(id));
                    warn!(node = %fmt_id(self.id()), ?m, "switching configuration directly (seeded bug unsafe-reconfig)");
                    if let Some(rr) = self.reconfig.as_mut() {
                        rr.stage = Stage::Leaving;
                    }
                    self.append_local(Payload::Config(m));
                } else if caught_up {
                    let old = self.membership.clone();
                    let new_voters: BTreeSet<NodeId> = r.target.keys().copied().collect();
                    let mut addrs = old.addrs.clone();
                    addrs.extend(r.target.iter().map(|(k, v)| (*k, v.clone())));
                    let m = Membership {
                        learners: old.learners.difference(&new_voters).copied().collect(),
                        voters: new_voters,
                        outgoing: old.voters.clone(),
                        addrs,
                    };
                    info!(node = %fmt_id(self.id()), ?m, "entering joint configuration");
                    if let Some(rr) = self.reconfig.as_mut() {
                        rr.stage = Stage::Joint;
                    }
                    self.append_local(Payload::Config(m));
                }
            }
            Stage::Joint => {}
            Stage::Leaving => {
                self.reconfig = None;
                info!(node = %fmt_id(self.id()), id = r.id, "reconfiguration committed");
                self.events.push(Event::ReconfigDone(r.id));
            }
        }
    }

    // ----- message handling -----

    fn handle_append(
        &mut self,
        from: NodeId,
        prev_index: u64,
        prev_term: u64,
        entries: Vec<Entry>,
        commit: u64,
    ) {
        // Entries must be contiguous from prev_index + 1; drop anything malformed.
        let well_formed = entries
            .iter()
            .enumerate()
            .all(|(i, e)| e.index == prev_index + 1 + i as u64);
        if !well_formed {
            warn!(node = %fmt_id(self.id()), from = %fmt_id(from), "ignoring malformed append");
            return;
        }
        let (prev_index, prev_term, entries) = if prev_index < self.log.commit {
            // Our committed prefix matches the leader's (Leader Completeness): keep only
            // what lies beyond it, so an append that starts early is not wasted.
            let c = self.log.commit;
            let rest: Vec<Entry> = entries.into_iter().filter(|e| e.index > c).collect();
            match self.log.term(c) {
                Some(t) if !rest.is_empty() => (c, t, rest),
                _ => {
                    self.send(
                        from,
                        Body::AppendResp {
                            reject: false,
                            index: c,
                            hint_index: 0,
                            hint_term: 0,
                        },
                    );
                    return;
                }
            }
        } else {
            (prev_index, prev_term, entries)
        };
        if !self.log.match_term(prev_index, prev_term) {
            let mut hint = prev_index.min(self.log.last_index());
            while hint > self.log.base_index && self.log.term(hint).is_some_and(|t| t > prev_term) {
                hint -= 1;
            }
            let hint_term = self.log.term(hint).unwrap_or(0);
            self.send(
                from,
                Body::AppendResp {
                    reject: true,
                    index: prev_index,
                    hint_index: hint,
                    hint_term,
                },
            );
            return;
        }
        let last_new = prev_index + entries.len() as u64;
        if let Some(ci) = self.log.find_conflict(&entries) {
            let new = &entries[ci..];
            let first = new[0].index;
            if first <= self.log.commit {
                warn!(node = %fmt_id(self.id()), first, commit = self.log.commit, "refusing to overwrite committed entries");
                return;
            }
            let truncates = first <= self.log.last_index();
            let has_config = new.iter().any(|e| matches!(e.payload, Payload::Config(_)));
            self.log.append(new);
            self.ops.push(PersistOp::Append(new.to_vec()));
            if truncates || has_config {
                self.refresh_membership();
            }
        }
        self.commit_to(commit.min(last_new));
        self.send(
            from,
            Body::AppendResp {
                reject: false,
                index: last_new,
                hint_index: 0,
                hint_term: 0,
            },
        );
    }

    fn handle_snapshot(&mut self, from: NodeId, snapshot: Snapshot) {
        let meta = snapshot.meta.clone();
        if meta.index <= self.log.commit {
            let index = self.log.commit;
            self.send(
                from,
                Body::AppendResp {
                    reject: false,
                    index,
                    hint_index: 0,
                    hint_term: 0,
                },
            );
            return;
        }
        info!(node = %fmt_id(self.id()), index = meta.index, term = meta.term, "installing snapshot");
        self.log.compact_to(meta.index, meta.term);
        self.apply_snapshot = Some(Apply::Snapshot {
            index: meta.index,
            data: snapshot.data.clone(),
        });
        self.snapshot = Some(snapshot.clone());
        self.refresh_membership();
        self.ops.push(PersistOp::Snapshot {
            snapshot,
            hard_state: self.durable_hard_state(),
            entries: self.log.entries_after(meta.index),
        });
        self.send(
            from,
            Body::AppendResp {
                reject: false,
                index: meta.index,
                hint_index: 0,
                hint_term: 0,
            },
        );
    }

    fn handle_append_resp(
        &mut self,
        from: NodeId,
        reject: bool,
        index: u64,
        hint_index: u64,
        hint_term: u64,
    ) {
        let now = self.ticks;
        let last = self.log.last_index();
        let Some(pr) = self.progress.get_mut(&from) else {
            return;
        };
        pr.recent_active = true;
        if reject {
            let retry = match pr.state {
                FlowState::Replicate => {
                    if index <= pr.matched {
                        false
                    } else {
                        pr.become_probe();
                        true
                    }
                }
                FlowState::Probe { .. } => {
                    // A rejection at or below the known match is stale (or the follower
                    // lost acknowledged data, which retrying cannot fix): ignore it.
                    if pr.next - 1 != index || index <= pr.matched {
                        false
                    } else {
                        let mut i = hint_index.min(last);
                        while i > self.log.base_index
                            && self.log.term(i).is_some_and(|t| t > hint_term)
                        {
                            i -= 1;
                        }
                        pr.next = (i + 1).min(index).max(pr.matched + 1);
                        pr.state = FlowState::Probe { paused: false };
                        true
                    }
                }
                FlowState::Snapshot { .. } => false,
            };
            if retry {
                self.send_append(from, true);
            }
            return;
        }
        if index > pr.matched {
            pr.matched = index;
            pr.last_progress_tick = now;
            match pr.state {
                FlowState::Probe { .. } => pr.become_replicate(),
                FlowState::Snapshot { index: si } => {
                    if pr.matched >= si {
                        pr.become_replicate();
                    }
                }
                FlowState::Replicate => {
                    pr.next = pr.next.max(index + 1);
                    while pr.inflight.front().is_some_and(|&l| l <= index) {
                        pr.inflight.pop_front();
                    }
                }
            }
            if !self.maybe_commit() {
                self.advance_reconfig();
            }
        } else if let FlowState::Probe { .. } = pr.state {
            // Stale or duplicate ack: resume probing from what is known to match.
            if index == pr.matched && pr.next == pr.matched + 1 {
                pr.state = FlowState::Probe { paused: false };
            }
        }
        // Keep the pipeline full.
        let mut n = 0;
        while self.send_append(from, n == 0) && n < self.cfg.max_inflight {
            n += 1;
        }
    }

    fn handle_heartbeat_resp(&mut self, from: NodeId, ctx: u64) {
        let last = self.log.last_index();
        let Some(pr) = self.progress.get_mut(&from) else {
            return;
        };
        pr.recent_active = true;
        pr.acked_ctx = pr.acked_ctx.max(ctx);
        if let FlowState::Probe { paused: true } = pr.state {
            pr.state = FlowState::Probe { paused: false };
        }
        let lagging = pr.matched < last;
        self.confirm_reads();
        if lagging {
            self.send_append(from, true);
        }
    }

    fn step_inner(&mut self, from: NodeId, m: Message) {
        if from == self.id() {
            return;
        }
        let mt = m.term;
        if mt > self.term {
            match &m.body {
                Body::PreVote { .. } => {}
                Body::PreVoteResp { granted: true } => {}
                Body::Vote { .. } => {
                    if self.in_lease() {
                        debug!(node = %fmt_id(self.id()), from = %fmt_id(from), "ignoring vote request: leader is alive");
                        return;
                    }
                    self.become_follower(mt, None);
                }
                Body::Append { .. } | Body::Heartbeat { .. } | Body::InstallSnapshot { .. } => {
                    self.become_follower(mt, Some(from));
                }
                _ => self.become_follower(mt, None),
            }
        } else if mt < self.term {
            match &m.body {
                Body::Append { .. } | Body::Heartbeat { .. } | Body::InstallSnapshot { .. } => {
                    // Let a stale leader learn the new term and step down.
                    self.send(
                        from,
                        Body::AppendResp {
                            reject: true,
                            index: 0,
                            hint_index: 0,
                            hint_term: 0,
                        },
                    );
                }
                Body::PreVote { .. } => self.send(from, Body::PreVoteResp { granted: false }),
                _ => {}
            }
            return;
        }
        match m.body {
            Body::PreVote {
                last_index,
                last_term,
            } => {
                let grant = mt > self.term
                    && !self.in_lease()
                    && self.log.is_up_to_date(last_index, last_term);
                let term = if grant { mt } else { self.term };
                self.send_term(from, term, Body::PreVoteResp { granted: grant });
            }
            Body::Vote {
                last_index,
                last_term,
            } => {
                let can_vote =
                    self.vote == Some(from) || (self.vote.is_none() && self.leader.is_none());
                let grant = can_vote && self.log.is_up_to_date(last_index, last_term);
                if grant {
                    self.vote = Some(from);
                    self.election_elapsed = 0;
                }
                self.send(from, Body::VoteResp { granted: grant });
            }
            Body::PreVoteResp { granted } => {
                let expected = if granted { self.term + 1 } else { self.term };
                if self.role == Role::PreCandidate && mt == expected {
                    self.poll(from, granted);
                }
            }
            Body::VoteResp { granted } => {
                if self.role == Role::Candidate {
                    self.poll(from, granted);
                }
            }
            Body::Append {
                prev_index,
                prev_term,
                entries,
                commit,
            } => {
                if !self.accept_leader(from) {
                    return;
                }
                self.handle_append(from, prev_index, prev_term, entries, commit);
            }
            Body::Heartbeat { commit, ctx } => {
                if !self.accept_leader(from) {
                    return;
                }
                self.commit_to(commit);
                self.send(from, Body::HeartbeatResp { ctx });
            }
            Body::InstallSnapshot { snapshot } => {
                if !self.accept_leader(from) {
                    return;
                }
                self.handle_snapshot(from, snapshot);
            }
            Body::AppendResp {
                reject,
                index,
                hint_index,
                hint_term,
            } => {
                if self.role == Role::Leader {
                    self.handle_append_resp(from, reject, index, hint_index, hint_term);
                }
            }
            Body::HeartbeatResp { ctx } => {
                if self.role == Role::Leader {
                    self.handle_heartbeat_resp(from, ctx);
                }
            }
        }
    }

    /// A message from the leader of our current term.
    fn accept_leader(&mut self, from: NodeId) -> bool {
        match self.role {
            Role::Leader => {
                warn!(node = %fmt_id(self.id()), from = %fmt_id(from), term = self.term, "two leaders in one term; ignoring");
                false
            }
            Role::Candidate | Role::PreCandidate => {
                let term = self.term;
                self.become_follower(term, Some(from));
                true
            }
            _ => {
                self.leader = Some(from);
                self.leader_heard = Some(self.ticks);
                self.election_elapsed = 0;
                true
            }
        }
    }

    fn tick_leader(&mut self) {
        self.heartbeat_elapsed += 1;
        self.election_elapsed += 1;
        if self.election_elapsed >= self.cfg.election_ticks {
            self.election_elapsed = 0;
        }
        let due = self
            .cfg
            .check_quorum
            .due(self.cfg.election_ticks, &mut self.quorum_elapsed);
        if due {
            let me = self.cfg.id;
            let ok = self.membership.has_quorum(|id| {
                id == me || self.progress.get(&id).is_some_and(|p| p.recent_active)
            });
            if !ok {
                info!(node = %fmt_id(me), term = self.term, "lost contact with a quorum");
                let term = self.term;
                self.become_follower(term, None);
                return;
            }
            for p in self.progress.values_mut() {
                p.recent_active = false;
            }
        }
        // Unstick followers whose acks stopped coming (lost messages, lost snapshots).
        let now = self.ticks;
        let stall = 2 * self.cfg.election_ticks;
        for p in self.progress.values_mut() {
            let stalled = now.saturating_sub(p.last_progress_tick) >= stall;
            match p.state {
                FlowState::Snapshot { .. } if stalled => {
                    p.become_probe();
                    p.last_progress_tick = now;
                }
                FlowState::Replicate if stalled && !p.inflight.is_empty() => {
                    p.become_probe();
                    p.last_progress_tick = now;
                }
                _ => {}
            }
        }
        if self.heartbeat_elapsed >= self.cfg.heartbeat_ticks {
            self.heartbeat_elapsed = 0;
            self.send_heartbeats();
        }
        self.advance_reconfig();
    }
}

impl ConsensusCore for Raft {
    type Message = Message;
    type Persist = RaftPersist;

    fn id(&self) -> NodeId {
        self.cfg.id
    }

    fn wall_clock(&mut self, unix_ms: u64) {
        self.wall_ms = unix_ms;
    }

    fn tick(&mut self) {
        self.ticks += 1;
        if self.role == Role::Leader {
            self.tick_leader();
        } else {
            self.election_elapsed = self.election_elapsed.saturating_add(1);
            if self.election_elapsed < self.randomized_timeout {
                if matches!(self.role, Role::Candidate | Role::PreCandidate) {
                    self.heartbeat_elapsed += 1;
                    if self.heartbeat_elapsed >= self.cfg.heartbeat_ticks {
                        self.heartbeat_elapsed = 0;
                        debug!(node = %fmt_id(self.id()), term = self.term, "resending vote requests");
                        self.request_votes();
                    }
                }
            } else if self.promotable() {
                self.election_elapsed = 0;
                self.campaign(self.cfg.pre_vote);
            } else {
                // A learner (or a voter that has not yet seen the configuration that
                // makes it one) cannot campaign, but it must stop believing in a leader
                // it no longer hears from: otherwise it would refuse votes forever
                // and a joint configuration that needs it could never elect anyone.
                self.leader = None;
            }
        }
    }

    fn step(&mut self, from: NodeId, msg: Message) {
        self.step_inner(from, msg);
    }

    fn propose(&mut self, data: Vec<u8>) -> Result<Proposed, NotLeader> {
        NotLeader::unless_leader(self.role, self.leader)?;
        let index = self.append_local(Payload::Command(data));
        Ok(Proposed {
            index,
            term: self.term,
        })
    }

    fn read(&mut self, id: u64) -> Result<(), NotLeader> {
        NotLeader::unless_leader(self.role, self.leader)?;
        if self.cfg.bugs.stale_read {
            // Seeded bug `stale-read`: answer from local state at once, without confirming
            // leadership (no ReadIndex round, no lease, no wait for this term's no-op).
            self.ready_reads.push((id, self.log.commit));
            return Ok(());
        }
        if self.log.term(self.log.commit) != Some(self.term) {
            self.reads_waiting_commit.push(id);
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
        if self.reconfig.is_some()
            || self.membership.is_joint()
            || self.membership_index > self.log.commit
        {
            return Err(ReconfigError::Busy);
        }
        if self.log.term(self.log.commit) != Some(self.term) {
            // The new leader's no-op is not committed yet: earlier configurations may be pending.
            return Err(ReconfigError::Busy);
        }
        let new: Vec<NodeId> = voters
            .keys()
            .filter(|id| !self.membership.voters.contains(id))
            .copied()
            .collect();
        info!(node = %fmt_id(self.id()), ?voters, "reconfiguration requested");
        self.reconfig = Some(Reconfig {
            id,
            target: voters.clone(),
            stage: Stage::CatchUp,
        });
        let need_learners: Vec<NodeId> = new
            .iter()
            .filter(|id| {
                !self.membership.learners.contains(id)
                    || self.membership.addrs.get(id) != voters.get(id)
            })
            .copied()
            .collect();
        if need_learners.is_empty() {
            self.advance_reconfig();
        } else {
            let mut m = self.membership.clone();
            for id in need_learners {
                m.learners.insert(id);
                m.addrs.insert(id, voters[&id].clone());
            }
            self.append_local(Payload::Config(m));
        }
        Ok(())
    }

    fn cancel_reconfigure(&mut self, id: u64) {
        if self
            .reconfig
            .as_ref()
            .is_some_and(|r| r.id == id && r.stage == Stage::CatchUp)
        {
            self.reconfig = None;
            self.events
                .push(Event::ReconfigAborted { id, definite: true });
        }
    }

    fn compact(&mut self, index: u64, data: Vec<u8>) {
        if index <= self.log.base_index || index > self.log.applied {
            return;
        }
        let Some(term) = self.log.term(index) else {
            return;
        };
        let membership = match self.log.config_at(index) {
            Some((_, m)) => m.clone(),
            None => self
                .snapshot
                .as_ref()
                .map(|s| s.meta.membership.clone())
                .unwrap_or_default(),
        };
        let snapshot = Snapshot {
            meta: SnapshotMeta {
                index,
                term,
                membership,
            },
            data,
        };
        self.log.compact_to(index, term);
        self.snapshot = Some(snapshot.clone());
        self.ops.push(PersistOp::Snapshot {
            snapshot,
            hard_state: self.durable_hard_state(),
            entries: self.log.entries_after(index),
        });
    }

    fn take_ready(&mut self) -> Ready<Message, RaftPersist> {
        if self.role == Role::Leader {
            self.flush_appends();
        }
        self.hb_in_batch = false;
        let hs = self.durable_hard_state();
        if hs != self.persisted_hs {
            self.ops.insert(0, PersistOp::HardState(hs));
            self.persisted_hs = hs;
        }
        let mut ready = Ready {
            persist: if self.ops.is_empty() {
                None
            } else {
                Some(RaftPersist {
                    ops: std::mem::take(&mut self.ops),
                })
            },
            messages: std::mem::take(&mut self.msgs),
            ..Ready::default()
        };
        if let Some(s) = self.apply_snapshot.take() {
            ready.apply.push(s);
        }
        while self.log.applied < self.log.commit && ready.apply.len() < self.cfg.max_apply {
            let i = self.log.applied + 1;
            let Some(e) = self.log.entry(i) else { break };
            let data = match &e.payload {
                Payload::Command(c) => Some(c.clone()),
                _ => None,
            };
            ready.apply.push(Apply::Entry {
                index: i,
                term: e.term,
                data,
            });
            self.log.applied = i;
        }
        ready.take_outputs(
            &mut self.ready_reads,
            &mut self.failed_reads,
            &mut self.events,
        );
        ready
    }

    fn status(&self) -> CoreStatus {
        CoreStatus {
            role: self.role(),
            term: self.term,
            leader: self.leader,
            commit_index: self.log.commit,
            applied_index: self.log.applied,
            voters: self.membership.all_voters().into_iter().collect(),
            learners: self.membership.learners.iter().copied().collect(),
            joint: self.membership.is_joint(),
            log_tip: Some((self.log.last_index(), self.log.last_term())),
            vote: self.vote,
        }
    }

    fn peer_addrs(&self) -> BTreeMap<NodeId, String> {
        self.membership.addrs.clone()
    }
}

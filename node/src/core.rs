//! The protocol-neutral interface between a consensus core and the runtime.
//!
//! A core is a pure state machine: the runtime feeds it peer messages, ticks of a logical
//! clock and client requests, and periodically drains a [`Ready`] batch. The runtime must
//! handle a batch in this order:
//!
//! 1. make `persist` durable (written and fsynced) through the core's [`CoreStorage`];
//! 2. send `messages` (they may acknowledge what was just persisted);
//! 3. apply `apply` to the state machine, in order;
//! 4. serve `reads` once the state machine has applied up to their index.
//!
//! Two cores implement it, [`crate::raft::Raft`] and [`crate::paxos::Paxos`]; both share
//! the runtime, storage, RESP server and KV state machine through these traits.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// A node id: `n<k>` on the command line and the wire, `k` inside the cores.
pub type NodeId = u64;

/// Formats a node id the way users see it (`n3`).
pub fn fmt_id(id: NodeId) -> String {
    format!("n{id}")
}

/// Parses `n<k>` (k >= 1).
/// Largest node id: Multi-Paxos packs a ballot's node id into 20 bits of the `term` that
/// pending writes are matched by ([`crate::paxos::Ballot::as_u64`]), so larger ids could
/// collide and one client be told +OK for another's command (finding 6 of the node review).
pub const MAX_NODE_ID: NodeId = (1 << 20) - 1;

pub fn parse_id(s: &str) -> Result<NodeId, String> {
    let digits = s
        .strip_prefix('n')
        .ok_or_else(|| format!("node id {s:?} must look like n1, n2, ..."))?;
    match digits.parse::<NodeId>() {
        Ok(k) if (1..=MAX_NODE_ID).contains(&k) && !digits.starts_with('+') => Ok(k),
        _ => Err(format!(
            "node id {s:?} must be 'n' followed by a number from 1 to {MAX_NODE_ID}"
        )),
    }
}

/// Seeded defects, switched on by `--bug NAME` (never by default). Each one is a small,
/// deliberate deviation in the real code path of a protocol core, so that `stasis
/// selftest` can show the harness catches it. The table of names, deviations and the
/// faults that expose them is in docs/NODE.md ("Seeded bugs"). With every field false
/// (the default) every core path behaves correctly.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Bugs {
    /// raft: the leader serves GET from local state, without ReadIndex or a lease.
    pub stale_read: bool,
    /// raft: votedFor is not persisted (the term is), so a restarted node can vote twice.
    pub forget_vote: bool,
    /// raft: the leader counts an entry committed one acknowledgement early.
    pub commit_minority: bool,
    /// raft: entries of earlier terms are committed by counting replicas (Figure 8).
    pub figure8: bool,
    /// raft: lease reads timed by the wall clock, without a drift margin.
    pub lease_wallclock: bool,
    /// raft: lease reads count the lease from when a heartbeat acknowledgement arrived,
    /// not from when the heartbeat was sent.
    pub lease_from_ack: bool,
    /// multipaxos: phase 2 after phase 1 proposes the leader's own value (a no-op) instead
    /// of the highest-ballot accepted one.
    pub ignore_accepted: bool,
    /// multipaxos: acceptors accept phase 2 from a ballot lower than they promised.
    pub no_fencing: bool,
    /// multipaxos: the quorum validator lets non-intersecting flexible quorums through.
    pub disjoint_quorums: bool,
    /// raft and multipaxos: RECONFIG switches from the old voter set to the new one
    /// directly, without the joint configuration.
    pub unsafe_reconfig: bool,
    /// raft and multipaxos: the log's fsync is deferred (at most one a second); a batch
    /// is answered, voted on and acknowledged once written, before it is durable
    /// (`storage::wal::Wal::sync`).
    pub ack_before_fsync: bool,
}

/// Selects one bug's switch in [`Bugs`].
type BugField = fn(&mut Bugs) -> &mut bool;

/// Every seeded bug: name (for `--bug`), the protocols it applies to, and its field.
const BUG_TABLE: &[(&str, &[&str], BugField)] = &[
    ("stale-read", &["raft"], |b| &mut b.stale_read),
    ("forget-vote", &["raft"], |b| &mut b.forget_vote),
    ("commit-minority", &["raft"], |b| &mut b.commit_minority),
    ("figure8", &["raft"], |b| &mut b.figure8),
    ("lease-wallclock", &["raft"], |b| &mut b.lease_wallclock),
    ("lease-from-ack", &["raft"], |b| &mut b.lease_from_ack),
    ("ignore-accepted", &["multipaxos"], |b| {
        &mut b.ignore_accepted
    }),
    ("no-fencing", &["multipaxos"], |b| &mut b.no_fencing),
    ("disjoint-quorums", &["multipaxos"], |b| {
        &mut b.disjoint_quorums
    }),
    ("unsafe-reconfig", &["raft", "multipaxos"], |b| {
        &mut b.unsafe_reconfig
    }),
    ("ack-before-fsync", &["raft", "multipaxos"], |b| {
        &mut b.ack_before_fsync
    }),
];

impl Bugs {
    /// Every bug name with the protocols it applies to (for help texts and tests).
    pub fn catalogue() -> Vec<(&'static str, &'static [&'static str])> {
        BUG_TABLE.iter().map(|(n, p, _)| (*n, *p)).collect()
    }

    /// Switches on the named bugs for `protocol`. Names may repeat; an unknown name or one
    /// that does not apply to the protocol is a one-line error naming the valid ones.
    pub fn parse<S: AsRef<str>>(protocol: &str, names: &[S]) -> Result<Bugs, String> {
        let mut bugs = Bugs::default();
        for name in names.iter().map(|n| n.as_ref().trim()) {
            if name.is_empty() {
                continue;
            }
            let valid = || {
                BUG_TABLE
                    .iter()
                    .filter(|(_, p, _)| p.contains(&protocol))
                    .map(|(n, _, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            match BUG_TABLE.iter().find(|(n, _, _)| *n == name) {
                None => {
                    return Err(format!(
                        "--bug {name:?} is unknown; bugs for --protocol {protocol}: {}",
                        valid()
                    ));
                }
                Some((_, protocols, _)) if !protocols.contains(&protocol) => {
                    return Err(format!(
                        "--bug {name} applies to --protocol {} only; bugs for --protocol \
                         {protocol}: {}",
                        protocols.join(" or "),
                        valid()
                    ));
                }
                Some((_, _, field)) => *field(&mut bugs) = true,
            }
        }
        Ok(bugs)
    }

    /// Names of the bugs switched on, in table order (for STATUS and the startup warning).
    pub fn names(&self) -> Vec<&'static str> {
        let mut b = self.clone();
        BUG_TABLE
            .iter()
            .filter(|(_, _, field)| *field(&mut b))
            .map(|(n, _, _)| *n)
            .collect()
    }

    pub fn any(&self) -> bool {
        *self != Bugs::default()
    }
}

/// How linearizable reads are confirmed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ReadMode {
    /// ReadIndex: the leader confirms its leadership with a heartbeat quorum per read batch.
    #[default]
    ReadIndex,
    /// Leader lease timed by the monotonic clock; assumes bounded clock drift.
    Lease,
}

/// Check quorum (`--check-quorum-ticks`): when a leader that has not heard from a quorum
/// steps down. Only liveness depends on it (clients get NOTLEADER instead of waiting on a
/// leader that cannot decide anything); reads and writes are confirmed by quorums whatever
/// the setting.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CheckQuorum {
    /// Check every (minimum) election timeout: the default.
    #[default]
    ElectionTimeout,
    /// Check every N ticks (N > 0): a leader without quorum contact for N ticks steps down.
    Ticks(u64),
    /// Never step down for lack of quorum contact (only a higher term/ballot deposes it).
    Off,
}

impl CheckQuorum {
    /// The check period in ticks, `None` when off.
    pub fn period(self, election_ticks: u64) -> Option<u64> {
        match self {
            CheckQuorum::ElectionTimeout => Some(election_ticks),
            CheckQuorum::Ticks(n) => Some(n),
            CheckQuorum::Off => None,
        }
    }

    /// Advances a leader's check-quorum counter by one tick; true when a check is due now
    /// (the counter then restarts).
    pub fn due(self, election_ticks: u64, elapsed: &mut u64) -> bool {
        let Some(period) = self.period(election_ticks) else {
            return false;
        };
        *elapsed += 1;
        if *elapsed >= period {
            *elapsed = 0;
            true
        } else {
            false
        }
    }
}

/// A proposal was accepted into the leader's log at this position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Proposed {
    pub index: u64,
    pub term: u64,
}

/// The node cannot serve the request because it is not the leader. Definite: nothing happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotLeader {
    pub leader: Option<NodeId>,
}

impl NotLeader {
    /// Client-request admission shared by every core: `Ok` on the leader, otherwise a
    /// refusal naming the leader this node knows of (if any).
    pub fn unless_leader(role: Role, leader: Option<NodeId>) -> Result<(), NotLeader> {
        if role == Role::Leader {
            Ok(())
        } else {
            Err(NotLeader { leader })
        }
    }
}

/// Why a reconfiguration was refused before anything happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReconfigError {
    NotLeader(NotLeader),
    /// Another membership change is in progress.
    Busy,
    /// The requested voter set is unusable (e.g. empty).
    Invalid(String),
}

impl ReconfigError {
    /// Reconfiguration admission shared by every core: this node is the leader and the
    /// requested voter set is not empty. Protocol-specific checks (quorum system, changes
    /// in flight) follow in the core.
    pub fn admit(
        role: Role,
        leader: Option<NodeId>,
        voters: &BTreeMap<NodeId, String>,
    ) -> Result<(), ReconfigError> {
        NotLeader::unless_leader(role, leader).map_err(ReconfigError::NotLeader)?;
        if voters.is_empty() {
            return Err(ReconfigError::Invalid("the new voter set is empty".into()));
        }
        Ok(())
    }
}

/// One state-machine step handed to the runtime.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Apply {
    /// A committed log position. `data` is `None` for protocol-internal entries (no-ops,
    /// configuration changes) that only advance the applied index.
    Entry {
        index: u64,
        term: u64,
        data: Option<Vec<u8>>,
    },
    /// Replace the state machine with this snapshot (taken at `index`).
    Snapshot { index: u64, data: Vec<u8> },
}

impl Apply {
    pub fn index(&self) -> u64 {
        match self {
            Apply::Entry { index, .. } | Apply::Snapshot { index, .. } => *index,
        }
    }
}

/// Notifications about leadership and membership changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// This node stopped being leader: the outcome of its pending proposals is unknown
    /// until they are applied (or never).
    SteppedDown,
    /// The reconfiguration with this id reached its final configuration (committed).
    ReconfigDone(u64),
    /// The reconfiguration with this id was abandoned; `definite` tells whether nothing
    /// reached the log that could still change the voter set.
    ReconfigAborted { id: u64, definite: bool },
}

/// Everything the runtime must do after feeding the core.
#[derive(Debug)]
pub struct Ready<M, P> {
    pub persist: Option<P>,
    pub messages: Vec<(NodeId, M)>,
    pub apply: Vec<Apply>,
    /// Reads confirmed linearizable: serve read `id` once the state machine applied `index`.
    pub reads: Vec<(u64, u64)>,
    /// Reads that can no longer be confirmed (leadership lost); nothing was observed.
    pub failed_reads: Vec<u64>,
    pub events: Vec<Event>,
}

impl<M, P> Default for Ready<M, P> {
    fn default() -> Self {
        Ready {
            persist: None,
            messages: Vec::new(),
            apply: Vec::new(),
            reads: Vec::new(),
            failed_reads: Vec::new(),
            events: Vec::new(),
        }
    }
}

impl<M, P> Ready<M, P> {
    /// Moves the confirmed reads, failed reads and events a core collected into the batch.
    pub fn take_outputs(
        &mut self,
        reads: &mut Vec<(u64, u64)>,
        failed_reads: &mut Vec<u64>,
        events: &mut Vec<Event>,
    ) {
        self.reads = std::mem::take(reads);
        self.failed_reads = std::mem::take(failed_reads);
        self.events = std::mem::take(events);
    }

    pub fn is_empty(&self) -> bool {
        self.persist.is_none()
            && self.messages.is_empty()
            && self.apply.is_empty()
            && self.reads.is_empty()
            && self.failed_reads.is_empty()
            && self.events.is_empty()
    }
}

/// Whoever handles a core's `Ready` batches: the runtime's [`crate::host::Host`] and the
/// core tests' simulated networks. Each says what one step means for it;
/// [`drain_ready`] is the one place the order of the steps is written.
pub trait ReadyHandler<M, P> {
    type Error;
    /// The core's next batch; `None` when there is no core to ask (a crashed node).
    fn take_ready(&mut self) -> Option<Ready<M, P>>;
    /// Step 1: make `p` durable before anything that depends on it leaves the node.
    fn persist(&mut self, p: P) -> Result<(), Self::Error>;
    /// Step 2: send one message (best effort).
    fn send(&mut self, to: NodeId, msg: M);
    /// Step 3: apply one committed entry or snapshot, in order.
    fn apply(&mut self, a: Apply) -> Result<(), Self::Error>;
    /// Step 4: reads confirmed at an index (served once applied that far) and reads that
    /// can no longer be confirmed.
    fn reads(&mut self, confirmed: Vec<(u64, u64)>, failed: Vec<u64>);
    /// Step 5: the core's events (leadership lost, reconfigurations ended).
    fn events(&mut self, events: Vec<Event>);
    /// After each batch: work that may give the core more to do (taking a snapshot,
    /// learning peer addresses) or checks of global invariants. Nothing by default.
    fn batch_done(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}

/// Handles the core's `Ready` batches until it has nothing more to do, each in the order
/// the contract at the top of this module demands: persist, send, apply, reads, events.
pub fn drain_ready<M, P, H: ReadyHandler<M, P>>(h: &mut H) -> Result<(), H::Error> {
    while let Some(ready) = h.take_ready() {
        if ready.is_empty() {
            break;
        }
        if let Some(p) = ready.persist {
            h.persist(p)?;
        }
        for (to, msg) in ready.messages {
            h.send(to, msg);
        }
        for a in ready.apply {
            h.apply(a)?;
        }
        h.reads(ready.reads, ready.failed_reads);
        h.events(ready.events);
        h.batch_done()?;
    }
    Ok(())
}

/// A node's role as reported by STATUS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Leader,
    Follower,
    Candidate,
    PreCandidate,
    Learner,
}

impl Role {
    /// The role a core reports: a follower outside the voter set is a learner.
    pub fn reported(self, is_voter: bool) -> Role {
        if self == Role::Follower && !is_voter {
            Role::Learner
        } else {
            self
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Leader => "leader",
            Role::Follower => "follower",
            Role::Candidate => "candidate",
            Role::PreCandidate => "precandidate",
            Role::Learner => "learner",
        })
    }
}

/// A snapshot of the core's state for STATUS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoreStatus {
    pub role: Role,
    pub term: u64,
    pub leader: Option<NodeId>,
    pub commit_index: u64,
    pub applied_index: u64,
    pub voters: Vec<NodeId>,
    pub learners: Vec<NodeId>,
    pub joint: bool,
    /// Raft only: the last log entry (index, term) and the vote of the current term.
    pub log_tip: Option<(u64, u64)>,
    pub vote: Option<NodeId>,
}

/// The interface the runtime drives. See the module docs for the `Ready` contract.
pub trait ConsensusCore: Send + 'static {
    /// Peer-to-peer message (sent as postcard frames).
    type Message: Serialize + DeserializeOwned + Send + fmt::Debug + 'static;
    /// A batch of durable writes, handed to the matching [`CoreStorage`].
    type Persist: Send + 'static;

    fn id(&self) -> NodeId;
    /// Advances the logical clock by one tick.
    fn tick(&mut self);
    /// The node's wall clock (Unix milliseconds), read by the runtime before every batch of
    /// inputs. Correct cores never use it for safety (it jumps: NTP, libfaketime); only the
    /// seeded bug `lease-wallclock` does.
    fn wall_clock(&mut self, _unix_ms: u64) {}
    /// Handles a message from a peer. Stale, duplicated and reordered messages are allowed.
    fn step(&mut self, from: NodeId, msg: Self::Message);
    /// Proposes an opaque state-machine command.
    fn propose(&mut self, data: Vec<u8>) -> Result<Proposed, NotLeader>;
    /// Asks for a linearizable read; answered by `Ready::reads` / `Ready::failed_reads`.
    fn read(&mut self, id: u64) -> Result<(), NotLeader>;
    /// Changes the voter set to exactly `voters` (id -> peer address).
    fn reconfigure(
        &mut self,
        id: u64,
        voters: BTreeMap<NodeId, String>,
    ) -> Result<(), ReconfigError>;
    /// Gives up on a reconfiguration that has not yet changed the voter set.
    fn cancel_reconfigure(&mut self, id: u64);
    /// The state machine at `index` (already applied) serializes to `data`: compact the log.
    fn compact(&mut self, index: u64, data: Vec<u8>);
    fn take_ready(&mut self) -> Ready<Self::Message, Self::Persist>;
    fn status(&self) -> CoreStatus;
    /// Peer addresses of the current members (for the transport).
    fn peer_addrs(&self) -> BTreeMap<NodeId, String>;
}

/// Durable storage for a core's persist batches.
pub trait CoreStorage<P>: Send + 'static {
    /// Writes `batch` and makes it durable (fsync) before returning. After an error the
    /// storage state is unknown: the runtime must stop (and recover from disk on restart).
    fn persist(&mut self, batch: P) -> anyhow::Result<()>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_and_format() {
        assert_eq!(parse_id("n1"), Ok(1));
        assert_eq!(parse_id("n42"), Ok(42));
        assert!(parse_id("n0").is_err());
        assert!(parse_id("1").is_err());
        assert!(parse_id("n").is_err());
        assert!(parse_id("n+1").is_err());
        assert!(parse_id("nx").is_err());
        assert_eq!(parse_id("n1048575"), Ok(MAX_NODE_ID));
        assert!(parse_id("n1048576").is_err(), "ballots would collide");
        assert_eq!(fmt_id(7), "n7");
    }

    #[test]
    fn only_non_voting_followers_report_as_learners() {
        assert_eq!(Role::Follower.reported(false), Role::Learner);
        assert_eq!(Role::Follower.reported(true), Role::Follower);
        assert_eq!(Role::Leader.reported(false), Role::Leader);
        assert_eq!(Role::Candidate.reported(true), Role::Candidate);
    }

    #[test]
    fn bugs_parse_by_protocol() {
        let b = Bugs::parse("raft", &["stale-read", "commit-minority", "stale-read"]).unwrap();
        assert!(b.stale_read && b.commit_minority && !b.figure8);
        assert_eq!(b.names(), vec!["stale-read", "commit-minority"]);
        assert!(b.any());
        assert!(!Bugs::default().any());
        assert!(Bugs::default().names().is_empty());
        let b = Bugs::parse("multipaxos", &["no-fencing", "unsafe-reconfig"]).unwrap();
        assert_eq!(b.names(), vec!["no-fencing", "unsafe-reconfig"]);
        assert!(
            Bugs::parse("raft", &["unsafe-reconfig"])
                .unwrap()
                .unsafe_reconfig
        );
        for p in ["raft", "multipaxos"] {
            assert!(
                Bugs::parse(p, &["ack-before-fsync"])
                    .unwrap()
                    .ack_before_fsync
            );
        }
        let e = Bugs::parse("raft", &["no-fencing"]).unwrap_err();
        assert!(
            e.contains("multipaxos only") && e.contains("stale-read"),
            "{e}"
        );
        let e = Bugs::parse("multipaxos", &["figure8"]).unwrap_err();
        assert!(e.contains("raft only") && e.contains("no-fencing"), "{e}");
        let e = Bugs::parse("raft", &["stale-reads"]).unwrap_err();
        assert!(e.contains("unknown") && !e.contains('\n'), "{e}");
        // Every catalogued name parses for each protocol it names, and only those.
        for (name, protocols) in Bugs::catalogue() {
            for p in ["raft", "multipaxos"] {
                let b = Bugs::parse(p, &[name]);
                assert_eq!(b.is_ok(), protocols.contains(&p), "{name} {p}");
                if let Ok(b) = b {
                    assert_eq!(b.names(), vec![name]);
                }
            }
        }
    }

    #[test]
    fn take_outputs_moves_everything_into_the_batch() {
        let mut ready: Ready<(), ()> = Ready::default();
        let (mut reads, mut failed, mut events) = (vec![(1, 2)], vec![3], vec![]);
        ready.take_outputs(&mut reads, &mut failed, &mut events);
        assert_eq!(ready.reads, vec![(1, 2)]);
        assert_eq!(ready.failed_reads, vec![3]);
        assert!(reads.is_empty() && failed.is_empty() && ready.events.is_empty());
    }

    #[test]
    fn admission_refuses_non_leaders_and_empty_voter_sets() {
        assert_eq!(NotLeader::unless_leader(Role::Leader, Some(1)), Ok(()));
        for role in [
            Role::Follower,
            Role::Candidate,
            Role::PreCandidate,
            Role::Learner,
        ] {
            assert_eq!(
                NotLeader::unless_leader(role, Some(2)),
                Err(NotLeader { leader: Some(2) })
            );
            assert_eq!(
                ReconfigError::admit(role, None, &BTreeMap::new()),
                Err(ReconfigError::NotLeader(NotLeader { leader: None }))
            );
        }
        let voters: BTreeMap<NodeId, String> = [(1, "127.0.0.1:1".to_string())].into();
        assert_eq!(ReconfigError::admit(Role::Leader, Some(1), &voters), Ok(()));
        assert_eq!(
            ReconfigError::admit(Role::Leader, Some(1), &BTreeMap::new()),
            Err(ReconfigError::Invalid("the new voter set is empty".into()))
        );
    }
}

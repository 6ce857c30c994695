//! Request handling around a consensus core, shared by the runtime's driver thread and the
//! deterministic simulator (`stasis sim`): the same code answers clients in both.
//!
//! A [`Host`] owns a core, its storage and the KV state machine. It admits client requests
//! (redirects with `NOTLEADER`, proposals, read confirmation, reconfigurations), keeps the
//! pending ones until their outcome is known, and drains the core's `Ready` batches in the
//! order the [`crate::core`] contract demands: persist → send → apply → answer. Pending
//! writes are answered when their index is applied (the same entry if the term matches,
//! otherwise an unknown outcome), confirmed reads once the state machine reached their
//! index. The host does no I/O of its own: messages go out and addresses are looked up
//! through a [`HostEnv`], answers go to an [`Answer`] (a oneshot channel in the runtime, a
//! simulated client in the simulator), and deadlines are any ordered time (`Instant` in the
//! runtime, simulated nanoseconds in the simulator).

use std::collections::{BTreeMap, HashMap};

use crate::core::{
    Apply, ConsensusCore, CoreStorage, Event, NodeId, NotLeader, Ready, ReadyHandler,
    ReconfigError, drain_ready, fmt_id,
};
use crate::kv::{Command, KvStore, Reply};
use crate::resp::Value;

/// A client request that needs the core.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    Get(Vec<u8>),
    Set(Vec<u8>, Vec<u8>),
    Cas(Vec<u8>, Vec<u8>, Vec<u8>),
    Status,
    Reconfig(BTreeMap<NodeId, String>),
}

/// Where the answer to one request goes.
pub trait Answer {
    fn answer(self, v: Value);
}

/// What a host needs from the world around it.
pub trait HostEnv<M> {
    /// Sends a message to a peer (best effort: it may be lost).
    fn send(&mut self, to: NodeId, msg: &M);
    /// The client address of a node, for `NOTLEADER` redirects.
    fn client_addr(&self, id: NodeId) -> Option<String>;
    /// A member's peer address became known or changed.
    fn set_peer_addr(&mut self, id: NodeId, addr: &str);
    /// The node's wall clock in Unix milliseconds (STATUS only).
    fn wall_ms(&self) -> u64;
}

/// Static facts about the node a host reports.
#[derive(Clone, Debug)]
pub struct HostConfig {
    pub id: NodeId,
    /// Name reported by STATUS ("raft", "multipaxos").
    pub protocol: &'static str,
    /// Take a snapshot (and compact the log) after this many applied entries (0 = never).
    pub snapshot_every: u64,
    /// Names of the seeded bugs switched on (reported by STATUS).
    pub bugs: Vec<&'static str>,
}

/// One step of the state machine, as an observer checking state-machine safety across
/// replicas sees it (the simulator, [`Host::watch_applies`]): every replica must apply the
/// same command at every index and hold the same state at every index it snapshots or
/// restores. Digests, not bytes, so a long run keeps a few words per entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    /// The entry at `index` was applied; `digest` is of the entry's identity: its term
    /// (Raft: the term that created it; Multi-Paxos: the ballot that first proposed the
    /// command, 0 for a no-op), which is what a pending write is matched by, and its
    /// command bytes (none for a no-op or a configuration). So two no-ops of different
    /// Raft terms at one index are different entries, as the protocol counts them.
    Entry { index: u64, digest: u64 },
    /// The state after `index` was snapshotted here or restored from a snapshot; `digest`
    /// is of the serialized state.
    State { index: u64, digest: u64 },
}

/// A digest for [`Applied`] (stable within a process: observers compare replicas of one
/// run).
fn digest(v: impl std::hash::Hash) -> u64 {
    use std::hash::Hasher;
    let mut h = std::hash::DefaultHasher::new();
    v.hash(&mut h);
    h.finish()
}

/// A digest of an applied entry's identity, its term and command, for [`Applied::Entry`].
fn entry_digest(term: u64, data: Option<&[u8]>) -> u64 {
    digest((term, data))
}

/// An answer for a request whose outcome cannot be known.
pub fn unknown(why: &str) -> Value {
    Value::error(format!("UNKNOWN {why}; the outcome is unknown"))
}

struct PendingWrite<A, T> {
    term: u64,
    reply: A,
    deadline: T,
}

struct PendingRead<A, T> {
    key: Vec<u8>,
    reply: A,
    deadline: T,
}

/// A core with its storage, state machine and pending client requests.
pub struct Host<C: ConsensusCore, S, A, T> {
    cfg: HostConfig,
    core: C,
    storage: S,
    kv: KvStore,
    applied: u64,
    last_snapshot: u64,
    writes: BTreeMap<u64, PendingWrite<A, T>>,
    reads: HashMap<u64, PendingRead<A, T>>,
    /// Confirmed reads waiting for the state machine: read index -> reads.
    confirmed: BTreeMap<u64, Vec<PendingRead<A, T>>>,
    /// Reconfigurations in flight, by id (a BTreeMap so expiry order is deterministic).
    reconfigs: BTreeMap<u64, (A, T)>,
    next_id: u64,
    known_addrs: BTreeMap<NodeId, String>,
    /// What the state machine did since the last [`Host::take_applies`], when watched.
    applies: Option<Vec<Applied>>,
}

impl<C, S, A, T> Host<C, S, A, T>
where
    C: ConsensusCore,
    S: CoreStorage<C::Persist>,
    A: Answer,
    T: Ord + Copy,
{
    pub fn new(cfg: HostConfig, core: C, storage: S) -> Self {
        Host {
            cfg,
            core,
            storage,
            kv: KvStore::new(),
            applied: 0,
            last_snapshot: 0,
            writes: BTreeMap::new(),
            reads: HashMap::new(),
            confirmed: BTreeMap::new(),
            reconfigs: BTreeMap::new(),
            next_id: 0,
            known_addrs: BTreeMap::new(),
            applies: None,
        }
    }

    /// Records every applied entry and every snapshot taken or restored from now on, for
    /// [`Host::take_applies`] (the simulator's state-machine safety check; off in the
    /// runtime).
    pub fn watch_applies(&mut self) {
        self.applies.get_or_insert_with(Vec::new);
    }

    /// What the state machine did since the last call (empty unless watched).
    pub fn take_applies(&mut self) -> Vec<Applied> {
        self.applies
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    pub fn core(&self) -> &C {
        &self.core
    }

    /// The core, for inputs that are not client requests (ticks, peer messages, the wall
    /// clock). Call [`Host::drain_ready`] after feeding it.
    pub fn core_mut(&mut self) -> &mut C {
        &mut self.core
    }

    /// The index the state machine has applied.
    pub fn applied(&self) -> u64 {
        self.applied
    }

    /// Requests waiting for an outcome (writes, reads, reconfigurations).
    pub fn pending(&self) -> usize {
        self.writes.len()
            + self.reads.len()
            + self.confirmed.values().map(Vec::len).sum::<usize>()
            + self.reconfigs.len()
    }

    fn not_leader(&self, env: &impl HostEnv<C::Message>, nl: NotLeader) -> Value {
        match nl.leader {
            Some(l) if l != self.cfg.id => match env.client_addr(l) {
                Some(addr) => Value::error(format!("NOTLEADER {} {addr}", fmt_id(l))),
                None => Value::error("NOTLEADER"),
            },
            _ => Value::error("NOTLEADER"),
        }
    }

    /// Admits one client request; its answer comes now (redirects, STATUS, refusals) or
    /// from a later [`Host::drain_ready`].
    pub fn request(&mut self, env: &impl HostEnv<C::Message>, req: Request, reply: A, deadline: T) {
        match req {
            Request::Get(key) => {
                self.next_id += 1;
                let id = self.next_id;
                match self.core.read(id) {
                    Ok(()) => {
                        self.reads.insert(
                            id,
                            PendingRead {
                                key,
                                reply,
                                deadline,
                            },
                        );
                    }
                    Err(nl) => reply.answer(self.not_leader(env, nl)),
                }
            }
            Request::Set(key, value) => {
                self.propose(env, Command::Set { key, value }, reply, deadline)
            }
            Request::Cas(key, old, new) => {
                self.propose(env, Command::Cas { key, old, new }, reply, deadline)
            }
            Request::Status => reply.answer(Value::Bulk(Some(self.status_json(env).into_bytes()))),
            Request::Reconfig(voters) => {
                self.next_id += 1;
                let id = self.next_id;
                match self.core.reconfigure(id, voters) {
                    Ok(()) => {
                        self.reconfigs.insert(id, (reply, deadline));
                    }
                    Err(ReconfigError::NotLeader(nl)) => reply.answer(self.not_leader(env, nl)),
                    Err(ReconfigError::Busy) => reply.answer(Value::error(
                        "ERR another membership change is in progress; retry later",
                    )),
                    Err(ReconfigError::Invalid(why)) => {
                        reply.answer(Value::error(format!("ERR {why}")))
                    }
                }
            }
        }
    }

    fn propose(&mut self, env: &impl HostEnv<C::Message>, cmd: Command, reply: A, deadline: T) {
        match self.core.propose(cmd.encode()) {
            Ok(p) => {
                let earlier = self.writes.insert(
                    p.index,
                    PendingWrite {
                        term: p.term,
                        reply,
                        deadline,
                    },
                );
                // A proposal from an earlier leadership whose entry another leader has
                // since truncated: this node now proposes at the same index.
                if let Some(w) = earlier {
                    w.reply
                        .answer(unknown("the entry was replaced by another leader's"));
                }
            }
            Err(nl) => reply.answer(self.not_leader(env, nl)),
        }
    }

    /// Forgets requests whose deadline passed (their client already got `-TIMEOUT`) and
    /// cancels expired reconfigurations. Returns the answers the forgotten requests would
    /// have needed, so a caller that owns the clients (the simulator) can time them out.
    pub fn expire(&mut self, now: T) -> Vec<A> {
        let mut out = Vec::new();
        let late = |d: &T| *d <= now;
        let keep: BTreeMap<u64, PendingWrite<A, T>> = std::mem::take(&mut self.writes)
            .into_iter()
            .filter_map(|(i, w)| {
                if late(&w.deadline) {
                    out.push(w.reply);
                    None
                } else {
                    Some((i, w))
                }
            })
            .collect();
        self.writes = keep;
        let mut ids: Vec<u64> = self
            .reads
            .iter()
            .filter(|(_, r)| late(&r.deadline))
            .map(|(&id, _)| id)
            .collect();
        ids.sort_unstable();
        for id in ids {
            if let Some(r) = self.reads.remove(&id) {
                out.push(r.reply);
            }
        }
        for v in self.confirmed.values_mut() {
            let (gone, kept): (Vec<_>, Vec<_>) = std::mem::take(v)
                .into_iter()
                .partition(|r| late(&r.deadline));
            out.extend(gone.into_iter().map(|r| r.reply));
            *v = kept;
        }
        self.confirmed.retain(|_, v| !v.is_empty());
        let expired: Vec<u64> = self
            .reconfigs
            .iter()
            .filter(|(_, (_, d))| late(d))
            .map(|(&id, _)| id)
            .collect();
        for id in expired {
            if let Some((reply, _)) = self.reconfigs.remove(&id) {
                out.push(reply);
            }
            self.core.cancel_reconfigure(id);
        }
        out
    }

    /// Handles the core's `Ready` batches until it has nothing more to do, in the order of
    /// [`crate::core::drain_ready`]. An error (failed persist, undecodable committed entry)
    /// is fatal for the node.
    pub fn drain_ready(&mut self, env: &mut impl HostEnv<C::Message>) -> anyhow::Result<()> {
        drain_ready(&mut Draining { host: self, env })
    }

    /// Applies one step. A snapshot or committed command that does not decode means the
    /// replicated state is damaged: continuing would serve wrong data, so it is fatal.
    fn apply(&mut self, a: Apply) -> anyhow::Result<()> {
        match a {
            Apply::Snapshot { index, data } => {
                let kv = KvStore::restore(&data).map_err(|e| {
                    anyhow::anyhow!("cannot restore the snapshot at index {index}: {e}")
                })?;
                tracing::info!(index, "state machine restored from snapshot");
                // Entries up to `index` arrived inside the snapshot: whether a pending
                // write's entry is among them cannot be told.
                let rest = self.writes.split_off(&(index + 1));
                for (_, w) in std::mem::replace(&mut self.writes, rest) {
                    w.reply
                        .answer(unknown("the entry was installed inside a snapshot"));
                }
                if let Some(log) = self.applies.as_mut() {
                    log.push(Applied::State {
                        index,
                        digest: digest(Some(&data)),
                    });
                }
                self.kv = kv;
                self.applied = index;
                self.last_snapshot = index;
            }
            Apply::Entry { index, term, data } => {
                self.applied = index;
                if let Some(log) = self.applies.as_mut() {
                    log.push(Applied::Entry {
                        index,
                        digest: entry_digest(term, data.as_deref()),
                    });
                }
                let reply = match data.map(|d| Command::decode(&d)) {
                    None => None,
                    Some(Ok(cmd)) => Some(self.kv.apply(&cmd)),
                    Some(Err(e)) => {
                        anyhow::bail!("committed entry {index} is not a KV command: {e}")
                    }
                };
                if let Some(w) = self.writes.remove(&index) {
                    let v = match (w.term == term, reply) {
                        (true, Some(Reply::Ok)) => Value::ok(),
                        (true, Some(Reply::Cas(b))) => Value::Integer(b as i64),
                        (true, Some(Reply::Value(v))) => Value::Bulk(v),
                        _ => unknown("the entry was replaced by another leader's"),
                    };
                    w.reply.answer(v);
                }
            }
        }
        Ok(())
    }

    fn serve_reads(&mut self) {
        while let Some(entry) = self.confirmed.first_entry() {
            if *entry.key() > self.applied {
                break;
            }
            for r in entry.remove() {
                let v = Value::Bulk(self.kv.get(&r.key).map(<[u8]>::to_vec));
                r.reply.answer(v);
            }
        }
    }

    fn event(&mut self, ev: Event) {
        match ev {
            // Pending writes stay pending, as in etcd's server: each is answered when
            // this node applies its index (the same entry if the term matches, Log
            // Matching; otherwise another leader's), or `-TIMEOUT` at its deadline. A
            // leader that loses leadership and wins it back may still commit them.
            Event::SteppedDown => {
                if !self.writes.is_empty() {
                    tracing::info!(
                        pending = self.writes.len(),
                        "leadership lost; pending writes wait for their index to be applied"
                    );
                }
            }
            Event::ReconfigDone(id) => {
                if let Some((reply, _)) = self.reconfigs.remove(&id) {
                    reply.answer(Value::ok());
                }
            }
            Event::ReconfigAborted { id, definite } => {
                if let Some((reply, _)) = self.reconfigs.remove(&id) {
                    let v = if definite {
                        Value::error("ERR reconfiguration abandoned before the voter set changed")
                    } else {
                        unknown("leadership lost during the reconfiguration")
                    };
                    reply.answer(v);
                }
            }
        }
    }

    fn maybe_snapshot(&mut self) {
        let every = self.cfg.snapshot_every;
        if every > 0 && self.applied >= self.last_snapshot + every {
            let data = self.kv.snapshot();
            if let Some(log) = self.applies.as_mut() {
                log.push(Applied::State {
                    index: self.applied,
                    digest: digest(Some(&data)),
                });
            }
            tracing::info!(
                index = self.applied,
                bytes = data.len(),
                "taking a snapshot"
            );
            self.core.compact(self.applied, data);
            self.last_snapshot = self.applied;
        }
    }

    fn refresh_addrs(&mut self, env: &mut impl HostEnv<C::Message>) {
        let addrs = self.core.peer_addrs();
        if addrs != self.known_addrs {
            for (id, a) in &addrs {
                if *id != self.cfg.id && self.known_addrs.get(id) != Some(a) {
                    env.set_peer_addr(*id, a);
                }
            }
            self.known_addrs = addrs;
        }
    }

    /// The STATUS reply.
    pub fn status_json(&self, env: &impl HostEnv<C::Message>) -> String {
        let st = self.core.status();
        let leader = st.leader;
        let leader_addr = leader.and_then(|l| env.client_addr(l));
        let status = crate::status::NodeStatus {
            id: fmt_id(self.cfg.id),
            protocol: self.cfg.protocol.to_owned(),
            role: st.role.to_string(),
            term: st.term,
            leader: leader.map(fmt_id),
            leader_addr,
            commit_index: st.commit_index,
            applied_index: self.applied,
            voters: st.voters.iter().map(|&v| fmt_id(v)).collect(),
            learners: st.learners.iter().map(|&v| fmt_id(v)).collect(),
            joint: st.joint,
            last_index: st.log_tip.map(|t| t.0),
            last_term: st.log_tip.map(|t| t.1),
            vote: st.vote.map(fmt_id),
            wall_clock_ms: env.wall_ms(),
            bugs: self.cfg.bugs.iter().map(|b| (*b).to_owned()).collect(),
        };
        serde_json::to_string(&status).expect("a NodeStatus always serializes")
    }
}

/// A host with the world it sends through, for the length of one drain.
struct Draining<'a, H, E> {
    host: &'a mut H,
    env: &'a mut E,
}

impl<C, S, A, T, E> ReadyHandler<C::Message, C::Persist> for Draining<'_, Host<C, S, A, T>, E>
where
    C: ConsensusCore,
    S: CoreStorage<C::Persist>,
    A: Answer,
    T: Ord + Copy,
    E: HostEnv<C::Message>,
{
    type Error = anyhow::Error;

    fn take_ready(&mut self) -> Option<Ready<C::Message, C::Persist>> {
        Some(self.host.core.take_ready())
    }

    fn persist(&mut self, p: C::Persist) -> anyhow::Result<()> {
        self.host.storage.persist(p).map_err(|e| {
            tracing::error!("cannot persist: {e:#}");
            e.context(
                "persisting the consensus state failed; stopping (restart to recover from disk)",
            )
        })
    }

    fn send(&mut self, to: NodeId, msg: C::Message) {
        self.env.send(to, &msg);
    }

    fn apply(&mut self, a: Apply) -> anyhow::Result<()> {
        self.host.apply(a)
    }

    fn reads(&mut self, confirmed: Vec<(u64, u64)>, failed: Vec<u64>) {
        let host = &mut *self.host;
        for (id, index) in confirmed {
            if let Some(r) = host.reads.remove(&id) {
                host.confirmed.entry(index).or_default().push(r);
            }
        }
        for id in failed {
            if let Some(r) = host.reads.remove(&id) {
                r.reply.answer(Value::error(
                    "UNKNOWN leadership lost before the read was confirmed; nothing was read",
                ));
            }
        }
        host.serve_reads();
    }

    fn events(&mut self, events: Vec<Event>) {
        for ev in events {
            self.host.event(ev);
        }
    }

    fn batch_done(&mut self) -> anyhow::Result<()> {
        self.host.maybe_snapshot();
        self.host.refresh_addrs(self.env);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::rc::Rc;
    use std::sync::Arc;

    use super::*;
    use crate::raft::storage::RaftStorage;
    use crate::raft::{Membership, Raft, RaftConfig};
    use crate::storage::file::{Fs, SimFs};

    type Answers = Rc<RefCell<Vec<(u32, Value)>>>;

    struct To(u32, Answers);
    impl Answer for To {
        fn answer(self, v: Value) {
            self.1.borrow_mut().push((self.0, v));
        }
    }

    #[derive(Default)]
    struct Env(Vec<NodeId>);
    impl HostEnv<crate::raft::Message> for Env {
        fn send(&mut self, to: NodeId, _msg: &crate::raft::Message) {
            self.0.push(to);
        }
        fn client_addr(&self, id: NodeId) -> Option<String> {
            Some(format!("10.0.0.{id}:6379"))
        }
        fn set_peer_addr(&mut self, _id: NodeId, _addr: &str) {}
        fn wall_ms(&self) -> u64 {
            0
        }
    }

    fn host(id: NodeId, voters: &[NodeId]) -> Host<Raft, RaftStorage, To, u64> {
        let fs = SimFs::new();
        fs.create_dir_all(std::path::Path::new("/d")).unwrap();
        let fs: Arc<dyn Fs> = Arc::new(fs);
        let (storage, recovered) = RaftStorage::open(fs, std::path::Path::new("/d")).unwrap();
        let peers = voters
            .iter()
            .map(|&v| (v, format!("127.0.0.1:{}", 7000 + v)))
            .collect();
        let mut rc = RaftConfig::new(id);
        rc.seed = 1;
        let core = Raft::new(rc, Some(Membership::new(peers)), recovered);
        let cfg = HostConfig {
            id,
            protocol: "raft",
            snapshot_every: 0,
            bugs: Vec::new(),
        };
        Host::new(cfg, core, storage)
    }

    /// A single-voter host (n1) ticked until it has elected itself.
    fn elected_host(env: &mut Env) -> Host<Raft, RaftStorage, To, u64> {
        let mut h = host(1, &[1]);
        for _ in 0..200 {
            h.core_mut().tick();
            h.drain_ready(env).unwrap();
        }
        assert_eq!(h.core().status().role, crate::core::Role::Leader);
        h
    }

    #[test]
    fn a_single_node_answers_writes_on_apply_and_reads_after_them() {
        let answers: Answers = Rc::default();
        let mut env = Env::default();
        let mut h = elected_host(&mut env);
        h.request(
            &env,
            Request::Set(b"k".to_vec(), b"7".to_vec()),
            To(1, answers.clone()),
            10,
        );
        h.request(
            &env,
            Request::Cas(b"k".to_vec(), b"7".to_vec(), b"8".to_vec()),
            To(2, answers.clone()),
            10,
        );
        h.request(
            &env,
            Request::Get(b"k".to_vec()),
            To(3, answers.clone()),
            10,
        );
        assert_eq!(h.pending(), 3, "nothing is answered before the Ready drain");
        h.drain_ready(&mut env).unwrap();
        assert_eq!(
            *answers.borrow(),
            vec![
                (1, Value::ok()),
                (2, Value::Integer(1)),
                (3, Value::Bulk(Some(b"8".to_vec())))
            ]
        );
        assert_eq!(h.pending(), 0);
    }

    #[test]
    fn a_watched_host_reports_each_applied_entry_and_snapshot_state_and_an_unwatched_one_nothing() {
        let answers: Answers = Rc::default();
        let mut env = Env::default();
        let mut h = elected_host(&mut env);
        assert!(
            h.take_applies().is_empty(),
            "nothing recorded unless watched"
        );
        // A snapshot once the second write below is applied.
        h.cfg.snapshot_every = h.applied() + 2;
        h.watch_applies();
        for (n, v) in [b"1", b"2"].into_iter().enumerate() {
            let req = Request::Set(b"k".to_vec(), v.to_vec());
            h.request(&env, req, To(n as u32, answers.clone()), 10);
            h.drain_ready(&mut env).unwrap();
        }
        let log = h.take_applies();
        let entries: Vec<u64> = log
            .iter()
            .filter_map(|a| match a {
                Applied::Entry { index, .. } => Some(*index),
                Applied::State { .. } => None,
            })
            .collect();
        let first = entries[0];
        assert_eq!(entries, [first, first + 1]);
        let Some(&Applied::Entry { digest: d1, .. }) = log.first() else {
            panic!("the first step is an entry: {log:?}")
        };
        let Some(&Applied::Entry { digest: d2, .. }) = log.get(1) else {
            panic!("the second step is an entry: {log:?}")
        };
        assert_ne!(d1, d2, "different commands, different digests");
        // The snapshot after the second write is the state every replica must hold there.
        let state = KvStore::restore(&h.kv.snapshot()).unwrap().snapshot();
        assert_eq!(
            log.last(),
            Some(&Applied::State {
                index: first + 1,
                digest: digest(Some(&state))
            })
        );
        assert!(h.take_applies().is_empty(), "taken once");
    }

    #[test]
    fn an_entry_digest_is_of_its_term_and_command() {
        assert_eq!(entry_digest(3, Some(b"x")), entry_digest(3, Some(b"x")));
        assert_ne!(
            entry_digest(2, None),
            entry_digest(3, None),
            "no-ops of two terms are two entries"
        );
        assert_ne!(entry_digest(3, Some(b"x")), entry_digest(4, Some(b"x")));
        assert_ne!(entry_digest(3, Some(b"x")), entry_digest(3, Some(b"y")));
        assert_ne!(entry_digest(3, None), entry_digest(3, Some(b"")));
    }

    #[test]
    fn followers_redirect_and_expired_requests_are_handed_back() {
        let answers: Answers = Rc::default();
        let env = Env::default();
        // A member of three that has heard from nobody: no leader known, plain NOTLEADER.
        let mut h = host(2, &[1, 2, 3]);
        h.request(&env, Request::Get(b"k".to_vec()), To(1, answers.clone()), 5);
        assert_eq!(*answers.borrow(), vec![(1, Value::error("NOTLEADER"))]);
        let status = {
            h.request(&env, Request::Status, To(2, answers.clone()), 5);
            answers.borrow()[1].1.clone()
        };
        match status {
            Value::Bulk(Some(b)) => {
                let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
                assert_eq!(v["id"], "n2");
                assert_eq!(v["role"], "follower");
            }
            other => panic!("{other:?}"),
        }
        assert!(h.expire(100).is_empty());

        // A write whose deadline passes before it is applied is handed back unanswered.
        let answers: Answers = Rc::default();
        let mut env = Env::default();
        let mut h = elected_host(&mut env);
        h.request(
            &env,
            Request::Set(b"k".to_vec(), b"1".to_vec()),
            To(1, answers.clone()),
            10,
        );
        h.request(
            &env,
            Request::Set(b"k".to_vec(), b"2".to_vec()),
            To(2, answers.clone()),
            20,
        );
        let late = h.expire(10);
        assert_eq!(late.iter().map(|t| t.0).collect::<Vec<_>>(), vec![1]);
        h.drain_ready(&mut env).unwrap();
        assert_eq!(*answers.borrow(), vec![(2, Value::ok())]);
    }
}

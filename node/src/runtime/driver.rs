//! The driver thread: owns the consensus core, its storage and the KV store.

use std::collections::{BTreeMap, HashMap};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::oneshot;
use tracing::{error, info};

use super::transport::Transport;
use super::{Directory, RuntimeConfig};
use crate::core::{
    Apply, ConsensusCore, CoreStorage, Event, NodeId, NotLeader, ReconfigError, fmt_id,
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

pub enum Input<M> {
    Peer {
        from: NodeId,
        msg: M,
    },
    Client {
        req: Request,
        reply: oneshot::Sender<Value>,
        deadline: Instant,
    },
    Shutdown,
}

struct PendingWrite {
    term: u64,
    reply: oneshot::Sender<Value>,
    deadline: Instant,
}

struct PendingRead {
    key: Vec<u8>,
    reply: oneshot::Sender<Value>,
    deadline: Instant,
}

const MAX_BATCH: usize = 4096;
/// Most ticks delivered at once when the process was paused (SIGSTOP) or starved.
const MAX_CATCH_UP_TICKS: u128 = 10_000;

/// The wall clock in Unix milliseconds (what libfaketime moves; 0 before 1970).
fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn unknown(why: &str) -> Value {
    Value::error(format!("UNKNOWN {why}; the outcome is unknown"))
}

pub struct Driver<C: ConsensusCore, S> {
    cfg: RuntimeConfig,
    core: C,
    storage: S,
    net: Transport<C::Message>,
    dir: Directory,
    kv: KvStore,
    applied: u64,
    last_snapshot: u64,
    writes: BTreeMap<u64, PendingWrite>,
    reads: HashMap<u64, PendingRead>,
    /// Confirmed reads waiting for the state machine: read index -> reads.
    confirmed: BTreeMap<u64, Vec<PendingRead>>,
    reconfigs: HashMap<u64, (oneshot::Sender<Value>, Instant)>,
    next_id: u64,
    known_addrs: BTreeMap<NodeId, String>,
}

impl<C, S> Driver<C, S>
where
    C: ConsensusCore,
    S: CoreStorage<C::Persist>,
{
    pub fn new(
        cfg: RuntimeConfig,
        core: C,
        storage: S,
        net: Transport<C::Message>,
        dir: Directory,
    ) -> Self {
        Driver {
            cfg,
            core,
            storage,
            net,
            dir,
            kv: KvStore::new(),
            applied: 0,
            last_snapshot: 0,
            writes: BTreeMap::new(),
            reads: HashMap::new(),
            confirmed: BTreeMap::new(),
            reconfigs: HashMap::new(),
            next_id: 0,
            known_addrs: BTreeMap::new(),
        }
    }

    pub fn run(mut self, rx: Receiver<Input<C::Message>>) -> anyhow::Result<()> {
        let tick = self.cfg.tick;
        let mut next_tick = Instant::now() + tick;
        let mut batch = Vec::with_capacity(MAX_BATCH);
        self.drain_ready()?;
        loop {
            let wait = next_tick.saturating_duration_since(Instant::now());
            match rx.recv_timeout(wait) {
                Ok(ev) => {
                    batch.push(ev);
                    while batch.len() < MAX_BATCH {
                        match rx.try_recv() {
                            Ok(ev) => batch.push(ev),
                            Err(_) => break,
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return Ok(()),
            }
            // Bring the logical clock up to date before anything else (after a pause the
            // node must notice that time passed before it serves a lease read). The wall
            // clock is an input too (only the seeded bug `lease-wallclock` uses it).
            self.core.wall_clock(wall_ms());
            let now = Instant::now();
            if now >= next_tick {
                let behind = (now - next_tick).as_nanos() / tick.as_nanos().max(1) + 1;
                // After a long pause, a bounded number of ticks is as good as all of
                // them (every timer in a core is far shorter) and avoids a message storm.
                for _ in 0..behind.min(MAX_CATCH_UP_TICKS) {
                    self.core.tick();
                }
                next_tick += tick * (behind as u32).max(1);
                if next_tick <= now {
                    next_tick = now + tick;
                }
                self.expire(now);
            }
            for ev in batch.drain(..) {
                match ev {
                    Input::Peer { from, msg } => self.core.step(from, msg),
                    Input::Client {
                        req,
                        reply,
                        deadline,
                    } => self.request(req, reply, deadline),
                    Input::Shutdown => {
                        info!("shutting down");
                        return Ok(());
                    }
                }
            }
            self.drain_ready()?;
        }
    }

    fn not_leader(&self, nl: NotLeader) -> Value {
        match nl.leader {
            Some(l) if l != self.cfg.id => match self.dir.get(l).client_addr {
                Some(addr) => Value::error(format!("NOTLEADER {} {addr}", fmt_id(l))),
                None => Value::error("NOTLEADER"),
            },
            _ => Value::error("NOTLEADER"),
        }
    }

    fn request(&mut self, req: Request, reply: oneshot::Sender<Value>, deadline: Instant) {
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
                    Err(nl) => {
                        let _ = reply.send(self.not_leader(nl));
                    }
                }
            }
            Request::Set(key, value) => self.propose(Command::Set { key, value }, reply, deadline),
            Request::Cas(key, old, new) => {
                self.propose(Command::Cas { key, old, new }, reply, deadline)
            }
            Request::Status => {
                let _ = reply.send(Value::Bulk(Some(self.status_json().into_bytes())));
            }
            Request::Reconfig(voters) => {
                self.next_id += 1;
                let id = self.next_id;
                match self.core.reconfigure(id, voters) {
                    Ok(()) => {
                        self.reconfigs.insert(id, (reply, deadline));
                    }
                    Err(ReconfigError::NotLeader(nl)) => {
                        let _ = reply.send(self.not_leader(nl));
                    }
                    Err(ReconfigError::Busy) => {
                        let _ = reply.send(Value::error(
                            "ERR another membership change is in progress; retry later",
                        ));
                    }
                    Err(ReconfigError::Invalid(why)) => {
                        let _ = reply.send(Value::error(format!("ERR {why}")));
                    }
                }
            }
        }
    }

    fn propose(&mut self, cmd: Command, reply: oneshot::Sender<Value>, deadline: Instant) {
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
                    let _ = w
                        .reply
                        .send(unknown("the entry was replaced by another leader's"));
                }
            }
            Err(nl) => {
                let _ = reply.send(self.not_leader(nl));
            }
        }
    }

    /// Forgets requests whose client already got `-TIMEOUT`.
    fn expire(&mut self, now: Instant) {
        self.writes.retain(|_, w| w.deadline > now);
        self.reads.retain(|_, r| r.deadline > now);
        for v in self.confirmed.values_mut() {
            v.retain(|r| r.deadline > now);
        }
        self.confirmed.retain(|_, v| !v.is_empty());
        let expired: Vec<u64> = self
            .reconfigs
            .iter()
            .filter(|(_, (_, d))| *d <= now)
            .map(|(&id, _)| id)
            .collect();
        for id in expired {
            self.reconfigs.remove(&id);
            self.core.cancel_reconfigure(id);
        }
    }

    fn drain_ready(&mut self) -> anyhow::Result<()> {
        loop {
            let ready = self.core.take_ready();
            if ready.is_empty() {
                return Ok(());
            }
            if let Some(p) = ready.persist {
                // Durable before anything that depends on it leaves this node.
                if let Err(e) = self.storage.persist(p) {
                    error!("cannot persist: {e:#}");
                    return Err(e.context("persisting the consensus state failed; stopping (restart to recover from disk)"));
                }
            }
            for (to, msg) in &ready.messages {
                self.net.send(*to, msg);
            }
            for a in ready.apply {
                self.apply(a)?;
            }
            for (id, index) in ready.reads {
                if let Some(r) = self.reads.remove(&id) {
                    self.confirmed.entry(index).or_default().push(r);
                }
            }
            for id in ready.failed_reads {
                if let Some(r) = self.reads.remove(&id) {
                    let _ = r.reply.send(Value::error(
                        "UNKNOWN leadership lost before the read was confirmed; nothing was read",
                    ));
                }
            }
            self.serve_reads();
            for ev in ready.events {
                self.event(ev);
            }
            self.maybe_snapshot();
            self.refresh_addrs();
        }
    }

    /// Applies one step. A snapshot or committed command that does not decode means the
    /// replicated state is damaged: continuing would serve wrong data, so it is fatal.
    fn apply(&mut self, a: Apply) -> anyhow::Result<()> {
        match a {
            Apply::Snapshot { index, data } => {
                let kv = KvStore::restore(&data).map_err(|e| {
                    anyhow::anyhow!("cannot restore the snapshot at index {index}: {e}")
                })?;
                info!(index, "state machine restored from snapshot");
                // Entries up to `index` arrived inside the snapshot: whether a pending
                // write's entry is among them cannot be told.
                let rest = self.writes.split_off(&(index + 1));
                for (_, w) in std::mem::replace(&mut self.writes, rest) {
                    let _ = w
                        .reply
                        .send(unknown("the entry was installed inside a snapshot"));
                }
                self.kv = kv;
                self.applied = index;
                self.last_snapshot = index;
            }
            Apply::Entry { index, term, data } => {
                self.applied = index;
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
                    let _ = w.reply.send(v);
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
                let _ = r.reply.send(v);
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
                    info!(
                        pending = self.writes.len(),
                        "leadership lost; pending writes wait for their index to be applied"
                    );
                }
            }
            Event::ReconfigDone(id) => {
                if let Some((reply, _)) = self.reconfigs.remove(&id) {
                    let _ = reply.send(Value::ok());
                }
            }
            Event::ReconfigAborted { id, definite } => {
                if let Some((reply, _)) = self.reconfigs.remove(&id) {
                    let v = if definite {
                        Value::error("ERR reconfiguration abandoned before the voter set changed")
                    } else {
                        unknown("leadership lost during the reconfiguration")
                    };
                    let _ = reply.send(v);
                }
            }
        }
    }

    fn maybe_snapshot(&mut self) {
        let every = self.cfg.snapshot_every;
        if every > 0 && self.applied >= self.last_snapshot + every {
            let data = self.kv.snapshot();
            info!(
                index = self.applied,
                bytes = data.len(),
                "taking a snapshot"
            );
            self.core.compact(self.applied, data);
            self.last_snapshot = self.applied;
        }
    }

    fn refresh_addrs(&mut self) {
        let addrs = self.core.peer_addrs();
        if addrs != self.known_addrs {
            for (id, a) in &addrs {
                if *id != self.cfg.id && self.known_addrs.get(id) != Some(a) {
                    self.dir.set_peer_addr(*id, a.clone());
                }
            }
            self.known_addrs = addrs;
        }
    }

    fn status_json(&self) -> String {
        let st = self.core.status();
        let leader = st.leader;
        let leader_addr = leader.and_then(|l| self.dir.get(l).client_addr);
        let wall = wall_ms();
        serde_json::json!({
            "id": fmt_id(self.cfg.id),
            "protocol": self.cfg.protocol,
            "role": st.role.to_string(),
            "term": st.term,
            "leader": leader.map(fmt_id),
            "leader_addr": leader_addr,
            "commit_index": st.commit_index,
            "applied_index": self.applied,
            "voters": st.voters.iter().map(|&v| fmt_id(v)).collect::<Vec<_>>(),
            "learners": st.learners.iter().map(|&v| fmt_id(v)).collect::<Vec<_>>(),
            "joint": st.joint,
            "last_index": st.log_tip.map(|t| t.0),
            "last_term": st.log_tip.map(|t| t.1),
            "vote": st.vote.map(fmt_id),
            "wall_clock_ms": wall,
            "bugs": self.cfg.bugs,
        })
        .to_string()
    }
}

//! The simulated world: N nodes, their clients and the network, in one process, driven by
//! one event queue over simulated time and one seeded RNG.
//!
//! Each node is the real thing minus the sockets and threads: the core built by
//! [`node::boot`] from a [`NodeConfig`] parsed from the same flags `stasis-node` takes,
//! its real storage code over a [`SimFs`] (which loses unsynced writes on a simulated
//! power loss), and the runtime's request handling ([`node::host::Host`]). Clients draw
//! operations from the same [`Workload`] as `stasis test` and map replies to outcomes
//! with the RESP client's classification. Faults come from a [`Fault`] schedule.
//!
//! Membership changes (`reconfig` faults) are made as the membership nemesis makes them
//! ([`crate::nemesis::membership`]): the voter set the leader reports, a plan from
//! [`membership::plan`], a `RECONFIG` request to the leader whose reply is read by
//! [`membership::interpret`] (retried on redirects and refusals), then the leader's
//! voters checked; the fault's end changes them back. Spare nodes start in join mode.
//!
//! Everything that happens is a function of the seed and the schedule: events are ordered
//! by (simulated time, insertion sequence), and every random choice comes from one
//! ChaCha8 stream, so a run replays bit for bit.

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;
use std::sync::Arc;

use anyhow::{Context, Result};
use checker::history::{HistoryWriter, Op, OpType, Process};
use node::config::NodeConfig;
use node::core::{ConsensusCore, CoreStorage, NodeId, Role};
use node::host::{Answer, Host, HostEnv, Request};
use node::resp::Value as Resp;
use node::storage::file::{Fs, SimFs, TrapState};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

use super::agreement::Agreement;
use super::progress::Progress;
use super::schedule::{Fault, FaultKind, Shape};
use crate::client::resp::{Reply, classify};
use crate::client::route::Route;
use crate::client::{ClientOp, Completion};
use crate::generator::{Mix, Workload, pause_between};
use crate::nemesis::membership::{self, AbortWatch, Attempt, Verdict, View};

const MS: u64 = 1_000_000;
/// Wall clock at simulated time 0 (Unix ms): 2026-01-01.
const WALL_EPOCH_MS: u64 = 1_767_225_600_000;
/// Most ticks a resumed node catches up at once (the runtime's bound).
const MAX_CATCH_UP_TICKS: u64 = 10_000;

/// Builds a core and its storage from a node configuration on a file system.
pub type Boot<C, S> = fn(&NodeConfig, Arc<dyn Fs>, node::storage::Clock, u64) -> Result<(C, S)>;

/// What a simulation run does besides its faults.
#[derive(Clone, Debug)]
pub struct WorldOptions {
    pub seed: u64,
    pub sim_ns: u64,
    pub clients: usize,
    /// Target ops/s over all clients (0: back to back).
    pub rate: f64,
    pub keys: usize,
    pub mix: Mix,
    pub op_timeout_ns: u64,
    /// Count terms with two leaders ([`Outcome::split_terms`]): for Raft, where a term
    /// has at most one leader (a Paxos round does not name its leader).
    pub watch_split: bool,
    /// The last `spares` nodes are spares (join mode, not initial voters).
    pub spares: usize,
    /// Pending events beyond which the schedule is stopped as a message storm
    /// ([`Outcome::storm`]). A healthy schedule keeps a few thousand events queued (a
    /// tick per node, messages in flight, one request per client); a queue that keeps
    /// growing means the nodes send faster than simulated time moves: the run never
    /// ends and exhausts memory (seen: a 10 s Multi-Paxos schedule still running after
    /// minutes, its memory growing by megabytes a second).
    pub storm_queue: usize,
    /// The progress bound after the last fault heals, in election timeouts
    /// ([`progress::TIMEOUTS`] by default; see [`progress`]).
    pub progress_timeouts: u64,
    /// Written values take at least this many bytes on the wire and on the nodes' disks
    /// (the number, then `.` padding, stripped from what reads return): real clients
    /// write values far larger than a counter. 0: the number alone.
    pub value_bytes: usize,
}

/// The default [`WorldOptions::storm_queue`], far above any healthy queue.
pub const STORM_QUEUE: usize = 1_000_000;

/// Who asked a request: a client worker, or the membership changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Asker {
    Client(usize),
    Admin,
}

/// Where an answer from a host goes: (asker, attempt) into the shared outbox.
struct SimAnswer {
    to: Asker,
    attempt: u64,
    outbox: Rc<RefCell<Vec<(Asker, u64, Resp)>>>,
}

impl Answer for SimAnswer {
    fn answer(self, v: Resp) {
        self.outbox.borrow_mut().push((self.to, self.attempt, v));
    }
}

/// A host's view of the world while it is fed: messages it sends and peer addresses it
/// learns are collected here.
struct Outgoing<M> {
    sent: Vec<(NodeId, M)>,
    learned: Vec<(NodeId, String)>,
    wall_ms: u64,
}

impl<M> Outgoing<M> {
    fn new(wall_ms: u64) -> Self {
        Outgoing {
            sent: Vec::new(),
            learned: Vec::new(),
            wall_ms,
        }
    }
}

impl<M: Clone> HostEnv<M> for Outgoing<M> {
    fn send(&mut self, to: NodeId, msg: &M) {
        self.sent.push((to, msg.clone()));
    }
    fn client_addr(&self, id: NodeId) -> Option<String> {
        Some(sim_addr(id))
    }
    fn set_peer_addr(&mut self, id: NodeId, addr: &str) {
        self.learned.push((id, addr.to_owned()));
    }
    fn wall_ms(&self) -> u64 {
        self.wall_ms
    }
}

/// The (never bound) address a simulated node reports for redirects.
fn sim_addr(id: NodeId) -> String {
    format!("127.0.0.1:{}", 16_000 + id)
}

/// The (never bound) peer address of a simulated node (`--peers`, `RECONFIG`).
fn sim_peer_addr(id: NodeId) -> String {
    format!("127.0.0.1:{}", 17_000 + id)
}

/// Peer addresses as [`SimNode::peers`] holds them: whether each is the peer's real one.
fn address_book(addrs: impl IntoIterator<Item = (NodeId, String)>) -> BTreeMap<NodeId, bool> {
    addrs
        .into_iter()
        .map(|(id, a)| (id, a == sim_peer_addr(id)))
        .collect()
}

struct SimNode<C: ConsensusCore, S> {
    cfg: NodeConfig,
    fs: SimFs,
    /// The peer addresses it knows, as the runtime's address book: its `--peers`, what its
    /// host learned from the configuration (`HostEnv::set_peer_addr`) and the address of
    /// every peer whose connection reached it (the handshake). A message to a peer whose
    /// address it does not know, or knows wrong, is dropped, as the runtime drops what it
    /// cannot connect for. A restart starts again from `--peers`. Per peer: whether the
    /// address it holds is the peer's real one.
    peers: BTreeMap<NodeId, bool>,
    /// `None` while crashed.
    host: Option<Host<C, S, SimAnswer, u64>>,
    /// Bumped by every restart: ticks and messages of an older incarnation are void.
    incarnation: u64,
    paused: bool,
    /// Ticks missed while paused (caught up on resume, as the runtime does).
    missed_ticks: u64,
    /// Tick period in simulated ns (drift changes it).
    tick_ns: u64,
    wall_offset_ms: i64,
    /// Until when its last persist keeps it busy (its syncs under a `persist` fault's
    /// `sync_us`): input arriving before then waits in `inbox` and is handled as one batch.
    busy_until: u64,
    /// When its last batch's last fsync was under way (simulated ns, start and end), under
    /// a `persist` fault's `sync_us`: a `torn` power loss then finds it unfinished. With
    /// the queue sequence numbers of what that batch sent and answered (not yet left).
    last_sync: (u64, u64),
    last_sync_out: std::ops::Range<u64>,
    inbox: Vec<Input<C::Message>>,
    /// Ticks due while busy (handled first in the next batch, as the runtime's driver).
    inbox_ticks: u64,
    /// Whether an `Ev::Flush` for the inbox is queued.
    flush_queued: bool,
    /// Under a `persist` fault: matching storage operations still to pass before the next
    /// kill (drawn when armed; `None` once it fired or no fault is active).
    persist_skip: Option<u64>,
    /// The queued input was held by a `stall` fault: its senders are interleaved in a
    /// drawn order when it is handled.
    stalled: bool,
    /// Stopped by a `freeze` fault (with `paused`): peer messages that arrive wait in
    /// `inbox` and are handled as one batch, after the missed ticks, when the group
    /// resumes.
    frozen: bool,
}

/// Input waiting for a busy node's next batch.
enum Input<M> {
    Msg(NodeId, M),
    Request(Request, SimAnswer, u64),
}

/// A drawn interleaving of queued input that keeps each sender's own order (a peer's
/// messages come over one connection, in order; each client request is its own source),
/// as the messages of different connections reach a runtime's channel in any order.
fn interleave<M>(inputs: Vec<Input<M>>, rng: &mut impl RngExt) -> Vec<Input<M>> {
    let mut queues: Vec<(Option<NodeId>, VecDeque<Input<M>>)> = Vec::new();
    for input in inputs {
        let from = match &input {
            Input::Msg(from, _) => Some(*from),
            Input::Request(..) => None,
        };
        match queues
            .iter_mut()
            .find(|(f, _)| from.is_some() && *f == from)
        {
            Some((_, q)) => q.push_back(input),
            None => queues.push((from, VecDeque::from([input]))),
        }
    }
    let mut out = Vec::new();
    while !queues.is_empty() {
        let k = rng.random_range(0..queues.len());
        out.extend(queues[k].1.pop_front());
        if queues[k].1.is_empty() {
            queues.remove(k);
        }
    }
    out
}

struct SimClient {
    rng: ChaCha8Rng,
    process: u64,
    /// Where the client's last request went, and its next operation starts (the
    /// operation's own `Current::route` follows redirects from there).
    target: usize,
    /// Where it starts again after a transport error (the RESP client drops its
    /// connection and reconnects to its home node).
    home: usize,
    /// The operation in flight: its invoke event, op, deadline, attempt number.
    current: Option<Current>,
    /// Numbers the operations (for timeouts) and the attempts (for replies).
    op_no: u64,
    attempt: u64,
}

struct Current {
    op: ClientOp,
    invoke: Op,
    deadline: u64,
    tries: u64,
    /// (node index, incarnation) the request was last sent to, once it arrived there.
    at: Option<(usize, u64)>,
    /// Where the request goes next (the RESP client's policy).
    route: Route,
    last_error: String,
}

enum Ev<M> {
    Tick {
        node: usize,
        inc: u64,
    },
    Deliver {
        from: NodeId,
        from_inc: u64,
        to: NodeId,
        to_inc: u64,
        msg: M,
    },
    /// A client's request reaches a node.
    Request {
        node: usize,
        client: usize,
        attempt: u64,
    },
    Reply {
        client: usize,
        attempt: u64,
        v: Resp,
    },
    ClientTimeout {
        client: usize,
        op_no: u64,
    },
    ClientNext {
        client: usize,
    },
    FaultStart(usize),
    FaultStop(usize),
    /// The next kill-and-restart of a `Bounce` fault.
    Bounce(usize),
    /// The next kill of a `Churn` fault.
    Churn(usize),
    /// A busy node's queued input is handled as one batch (void if it restarted since).
    Flush {
        node: usize,
        inc: u64,
    },
    /// A kill armed by a `Transition` or `Persist` fault (void if the node restarted since).
    Kill {
        node: usize,
        inc: u64,
        fault: usize,
    },
    /// One pair of a `Swizzle` partition heals.
    Unclog {
        fault: usize,
        a: NodeId,
        b: NodeId,
    },
    /// A node killed by churn comes back (if it is still down in incarnation `inc`).
    Restart {
        node: usize,
        inc: u64,
    },
    /// The membership change in progress looks again (void unless `attempt` is current).
    AdminPoll {
        attempt: u64,
    },
    /// Its `RECONFIG` request reaches a node.
    AdminRequest {
        node: usize,
        attempt: u64,
    },
    AdminReply {
        attempt: u64,
        v: Resp,
    },
    /// Its request got no answer in time.
    AdminTimeout {
        attempt: u64,
    },
    /// Under a `tcp` fault, the sender's next connect attempt on a link (node indexes;
    /// void if the sender restarted since or the link's state moved on).
    Connect {
        from: usize,
        from_inc: u64,
        to: usize,
    },
}

/// Where a membership change is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// Waiting for a leader outside a joint configuration, to plan from its voters.
    Settle,
    /// Asking the leader (retrying redirects and refusals).
    Request,
    /// Waiting for the leader to report the new voters.
    Verify,
}

/// One membership change: a `reconfig` fault's start (a planned change) or stop (back to
/// the voters before it).
struct Job {
    fault: usize,
    start: bool,
    stage: Stage,
    change: &'static str,
    from: Vec<usize>,
    target: Vec<usize>,
    /// End of the current stage's budget (simulated ns).
    until: u64,
    /// The request in flight arrived at (node, incarnation).
    at: Option<(usize, u64)>,
    sent: bool,
    last: String,
    outcome: &'static str,
    reply: String,
}

/// The membership changes of a run, made one at a time in schedule order.
#[derive(Default)]
struct Admin {
    queue: VecDeque<(usize, bool)>,
    job: Option<Job>,
    /// Bumped by every poll, request and verdict: older events are void.
    attempt: u64,
    /// The voters before each started change, by fault (what its stop goes back to).
    before: BTreeMap<usize, Vec<usize>>,
}

/// The runtime transport's first reconnect delay after a failed connect, and its cap
/// (node/src/runtime/transport.rs, `outbound`).
const TCP_BACKOFF_NS: (u64, u64) = (20 * MS, 500 * MS);
/// How long its connect attempt waits for a peer that does not answer (a partition that
/// drops packets).
const TCP_CONNECT_TIMEOUT_NS: u64 = 1000 * MS;
/// Frames its per-peer queue holds before new ones are dropped.
const TCP_QUEUE: usize = 8192;

/// Under a `tcp` fault: the sender's outbound connection on one directed link, as the
/// runtime's transport keeps it.
enum ConnState {
    /// No connection yet: the next send connects.
    Idle,
    /// Connected to incarnation `inc` of the receiver. If that incarnation ended, the
    /// sender does not know until a write: what it writes is lost until the reset comes
    /// back (`reset_at`, set by the first such write), and the first write after that
    /// fails (lost too) and reconnects at once.
    Open { inc: u64, reset_at: Option<u64> },
    /// A connect attempt failed (what was queued is dropped); the next is at `until`
    /// (an `Ev::Connect` is queued) and writes what queued meanwhile.
    Waiting { until: u64 },
}

/// One directed link's connection state under a `tcp` fault.
struct Conn<M> {
    /// The sender's incarnation that owns it (its queue and connection die with it).
    from_inc: u64,
    state: ConnState,
    /// Frames queued while `Waiting`, in order.
    queue: Vec<M>,
    /// The next wait after a refused connect.
    backoff_ns: u64,
    /// When the last message written on the current connection arrives (FIFO).
    last_at: u64,
}

/// A message held at a cut link: (from, from incarnation, to, to incarnation, message).
type Held<M> = (NodeId, u64, NodeId, u64, M);

/// Network conditions currently in force.
struct NetState<M> {
    /// Directed links that carry nothing: (from, to) -> (cuts, of which holding).
    cut: BTreeMap<(NodeId, NodeId), (u32, u32)>,
    /// Messages held at holding cuts, in arrival order.
    held: Vec<Held<M>>,
    /// Active `Net` faults by schedule index: (loss, dup, delay_ms).
    chaos: BTreeMap<usize, (f64, f64, u64)>,
}

/// What one run produced.
pub struct Outcome {
    /// The JSONL history, byte for byte.
    pub history: Vec<u8>,
    pub ops: Vec<Op>,
    /// Client operations completed (ok, fail or info).
    pub completions: u64,
    /// Simulated events processed.
    pub events: u64,
    /// Terms (ballots) in which two nodes led at once: a split brain, whether or not a
    /// client saw it (a diagnostic; the checker's verdict on the history is the result).
    pub split_terms: u64,
    /// Set when the schedule was stopped as a message storm: what was queued, by kind.
    /// A finding about the system (it cannot make progress in simulated time), reported
    /// beside the verdict on the history recorded until then.
    pub storm: Option<String>,
    /// Set when the cluster made no progress after the last fault healed
    /// ([`progress`]): a finding beside the verdict, as a storm.
    pub stalled: Option<String>,
    /// Time from the last fault's heal to an acknowledged write and read after it (ns).
    pub recovery_ns: Option<u64>,
    /// The longest election timeout of the nodes (ns): the unit of the progress bound.
    pub election_ns: u64,
    /// A membership change answered "definitely not made" that took effect
    /// ([`AbortWatch`]): a safety finding.
    pub abort_violation: Option<String>,
    /// Two replicas that applied different entries (or held different states) at one
    /// index ([`Agreement`]): a safety finding whether or not a client saw it.
    pub diverged: Option<String>,
    /// Set when a node could not restart from what its disk kept after a crash or power
    /// loss the disk model allows: an availability finding about the node (the run stops
    /// there; the history until then is checked as usual).
    pub restart_failed: Option<String>,
}

pub struct World<C: ConsensusCore, S> {
    opts: WorldOptions,
    now: u64,
    /// `now` as the nodes' storage reads it (their monotonic [`node::storage::Clock`]).
    clock_ns: Arc<std::sync::atomic::AtomicU64>,
    seq: u64,
    queue: BTreeMap<(u64, u64), Ev<C::Message>>,
    nodes: Vec<SimNode<C, S>>,
    boot: Boot<C, S>,
    rng: ChaCha8Rng,
    clients: Vec<SimClient>,
    workload: Workload,
    outbox: Rc<RefCell<Vec<(Asker, u64, Resp)>>>,
    writer: HistoryWriter<Vec<u8>>,
    ops: Vec<Op>,
    net: NetState<C::Message>,
    schedule: Vec<Fault>,
    /// The node each node-targeted fault hit (resolved at its start), by schedule index.
    resolved: BTreeMap<usize, usize>,
    /// What each started partition cut, by schedule index (to undo exactly that).
    partition_cuts: BTreeMap<usize, Vec<(NodeId, NodeId)>>,
    completions: u64,
    events: u64,
    split_terms: std::collections::BTreeSet<u64>,
    /// Active `Transition` faults (schedule indexes).
    transitions: std::collections::BTreeSet<usize>,
    /// Active `Apply` faults (schedule indexes).
    apply_kills: std::collections::BTreeSet<usize>,
    /// The active `Persist` fault (schedule index; at most one at a time).
    persist: Option<usize>,
    /// The active `Stall` fault (schedule index; at most one at a time).
    stall: Option<usize>,
    /// The active `Torn` fault (schedule index; at most one at a time).
    torn: Option<usize>,
    /// The nodes each started `Freeze` fault stopped, by schedule index.
    freezes: BTreeMap<usize, Vec<usize>>,
    /// The nodes each started `Outage` fault took down, by schedule index.
    outages: BTreeMap<usize, Vec<usize>>,
    /// Active `Lag` faults by schedule index: (node index, delay ns, jitter %).
    lags: BTreeMap<usize, (usize, u64, u64)>,
    /// The active `Tcp` fault (schedule index; one per run).
    tcp: Option<usize>,
    /// Under it: each directed link's connection, by (sender, receiver) node index.
    conns: BTreeMap<(usize, usize), Conn<C::Message>>,
    /// (node index, incarnation) that ended in a power loss: what it wrote to its
    /// connections died with it.
    power_lost: std::collections::BTreeSet<(usize, u64)>,
    admin: Admin,
    storm: Option<String>,
    /// Fault stops still to come (the heal is after the last one).
    stops_left: usize,
    progress: Progress,
    stalled: Option<String>,
    aborts: AbortWatch,
    abort_violation: Option<String>,
    agreement: Agreement,
    diverged: Option<String>,
    restart_failed: Option<String>,
}

/// How long the faults may take to heal after the schedule's simulated time (a membership
/// change under way and the revert queued after it, each within its budgets) before that
/// is itself a progress finding.
fn heal_cap_ns() -> u64 {
    let job = membership::SETTLE_BUDGET + membership::CHANGE_BUDGET + membership::VERIFY_BUDGET;
    2 * job.as_nanos() as u64
}

impl<C, S> World<C, S>
where
    C: ConsensusCore,
    C::Message: Clone,
    S: CoreStorage<C::Persist>,
{
    /// Builds the world: every node from its configuration on a fresh simulated disk.
    pub fn new(
        opts: WorldOptions,
        configs: Vec<NodeConfig>,
        boot: Boot<C, S>,
        schedule: Vec<Fault>,
    ) -> Result<Self> {
        let rng = ChaCha8Rng::seed_from_u64(opts.seed);
        let election_ns = configs
            .iter()
            .map(|c| (c.tick.as_nanos() as u64).saturating_mul(c.election_ticks))
            .max()
            .unwrap_or(0);
        let progress = Progress::new(election_ns, opts.progress_timeouts, opts.op_timeout_ns);
        let stops_left = schedule.len();
        let mut nodes = Vec::new();
        for cfg in configs {
            let fs = SimFs::new();
            fs.create_dir_all(&cfg.data_dir)
                .with_context(|| format!("cannot create {}", cfg.data_dir.display()))?;
            let tick_ns = cfg.tick.as_nanos() as u64;
            nodes.push(SimNode {
                peers: address_book(cfg.peers.clone()),
                cfg,
                fs,
                host: None,
                incarnation: 0,
                paused: false,
                missed_ticks: 0,
                tick_ns: tick_ns.max(1),
                wall_offset_ms: 0,
                busy_until: 0,
                last_sync: (0, 0),
                last_sync_out: 0..0,
                inbox: Vec::new(),
                inbox_ticks: 0,
                flush_queued: false,
                persist_skip: None,
                stalled: false,
                frozen: false,
            });
        }
        let n = nodes.len();
        let clients = (0..opts.clients)
            .map(|w| SimClient {
                rng: Workload::rng(opts.seed, w),
                process: w as u64,
                target: w % n.max(1),
                home: w % n.max(1),
                current: None,
                op_no: 0,
                attempt: 0,
            })
            .collect();
        let workload = Workload::new(opts.keys, opts.mix);
        let mut w = World {
            opts,
            now: 0,
            clock_ns: Arc::default(),
            seq: 0,
            queue: BTreeMap::new(),
            nodes,
            boot,
            rng,
            clients,
            workload,
            outbox: Rc::new(RefCell::new(Vec::new())),
            writer: HistoryWriter::new(Vec::new()),
            ops: Vec::new(),
            net: NetState {
                cut: BTreeMap::new(),
                held: Vec::new(),
                chaos: BTreeMap::new(),
            },
            schedule,
            resolved: BTreeMap::new(),
            partition_cuts: BTreeMap::new(),
            completions: 0,
            events: 0,
            split_terms: Default::default(),
            transitions: Default::default(),
            apply_kills: Default::default(),
            persist: None,
            stall: None,
            torn: None,
            freezes: BTreeMap::new(),
            outages: BTreeMap::new(),
            lags: BTreeMap::new(),
            tcp: None,
            conns: BTreeMap::new(),
            power_lost: Default::default(),
            admin: Admin::default(),
            storm: None,
            stops_left,
            progress,
            stalled: None,
            aborts: AbortWatch::default(),
            abort_violation: None,
            agreement: Agreement::default(),
            diverged: None,
            restart_failed: None,
        };
        for i in 0..n {
            w.start_node(i)?;
        }
        for c in 0..w.clients.len() {
            // Clients start a little after the nodes, staggered.
            let at = w.rng.random_range(0..50 * MS);
            w.at(at, Ev::ClientNext { client: c });
        }
        for (i, f) in w.schedule.clone().iter().enumerate() {
            w.at(f.start_ns, Ev::FaultStart(i));
            w.at(f.stop_ns.max(f.start_ns), Ev::FaultStop(i));
        }
        Ok(w)
    }

    fn at(&mut self, t: u64, ev: Ev<C::Message>) {
        self.seq += 1;
        self.queue.insert((t.max(self.now), self.seq), ev);
    }

    fn wall_ms(&self, i: usize) -> u64 {
        (WALL_EPOCH_MS + self.now / MS).saturating_add_signed(self.nodes[i].wall_offset_ms)
    }

    fn start_node(&mut self, i: usize) -> Result<()> {
        let seed = self.rng.random_range(0..u64::MAX);
        let node = &mut self.nodes[i];
        let fs: Arc<dyn Fs> = Arc::new(node.fs.clone());
        let clock_ns = self.clock_ns.clone();
        let clock: node::storage::Clock = Arc::new(move || {
            std::time::Duration::from_nanos(clock_ns.load(std::sync::atomic::Ordering::Relaxed))
        });
        let (core, storage) = match (self.boot)(&node.cfg, fs, clock, seed) {
            Ok(booted) => booted,
            // A correct node restarts after every crash and power loss the disk model
            // allows; one that refuses is a finding about the node (its availability),
            // not a harness error. Its first start, on an empty disk, is the harness's.
            Err(e) if node.incarnation > 0 => {
                let (id, crashes) = (node.cfg.id, node.fs.crashes());
                let why = format!(
                    "n{id} cannot restart from its disk after {crashes} power loss(es): {e:#}"
                );
                self.nemesis(
                    "restart-failed".into(),
                    json!({"resolved": node::core::fmt_id(id), "error": format!("{e:#}")}),
                );
                self.restart_failed.get_or_insert(why);
                return Ok(());
            }
            Err(e) => return Err(e.context(format!("simulated n{} cannot start", node.cfg.id))),
        };
        let mut host = Host::new(node::boot::host_config(&node.cfg), core, storage);
        host.watch_applies();
        node.host = Some(host);
        node.peers = address_book(node.cfg.peers.clone());
        node.incarnation += 1;
        node.missed_ticks = 0;
        let inc = node.incarnation;
        let first = self.rng.random_range(1..=self.nodes[i].tick_ns);
        self.at(self.now + first, Ev::Tick { node: i, inc });
        self.drain(i)
    }

    /// Feeds the node's host through `f`, then drains its `Ready` batches and routes what
    /// it sent and answered.
    fn feed(
        &mut self,
        i: usize,
        f: impl FnOnce(&mut Host<C, S, SimAnswer, u64>, &Outgoing<C::Message>),
    ) -> Result<()> {
        let wall = self.wall_ms(i);
        let env = Outgoing::new(wall);
        let before = self.election_state(i);
        let Some(host) = self.nodes[i].host.as_mut() else {
            return Ok(());
        };
        host.core_mut().wall_clock(wall);
        f(host, &env);
        self.drain_with(i, env)?;
        if before.is_some() && before != self.election_state(i) {
            self.arm_kills(i, self.transitions.clone());
        }
        Ok(())
    }

    /// (role, term, vote) of node `i` while a `Transition` fault is active.
    fn election_state(&self, i: usize) -> Option<(Role, u64, Option<NodeId>)> {
        if self.transitions.is_empty() {
            return None;
        }
        let st = self.nodes[i].host.as_ref()?.core().status();
        Some((st.role, st.term, st.vote))
    }

    /// Node `i` reached a step some active faults kill at (`faults`: its role, term or
    /// vote changed, for `Transition` faults; its state machine advanced, for `Apply`
    /// faults): each may arm a kill.
    fn arm_kills(&mut self, i: usize, faults: std::collections::BTreeSet<usize>) {
        let inc = self.nodes[i].incarnation;
        for fault in faults {
            let (FaultKind::Transition { pct, within_us, .. }
            | FaultKind::Apply { pct, within_us, .. }) = self.schedule[fault].kind
            else {
                continue;
            };
            if self.rng.random_range(0..100) < pct {
                let after = self.rng.random_range(0..=within_us * 1000);
                self.at(
                    self.now + after,
                    Ev::Kill {
                        node: i,
                        inc,
                        fault,
                    },
                );
            }
        }
    }

    /// Whether node `i` is still busy with its last batch's syncs: then input arriving now
    /// waits for its next batch (an `Ev::Flush` at the end of the syncs is queued).
    fn busy(&mut self, i: usize) -> bool {
        let node = &mut self.nodes[i];
        if node.busy_until <= self.now {
            // A stall that no input arrived during is over with nothing to reorder.
            node.stalled = false;
            return false;
        }
        if !node.flush_queued {
            node.flush_queued = true;
            let (at, inc) = (node.busy_until, node.incarnation);
            self.at(at, Ev::Flush { node: i, inc });
        }
        true
    }

    /// A busy node's syncs are done: it handles everything that arrived meanwhile as one
    /// batch (ticks first, then messages and requests in arrival order) and persists once,
    /// as the runtime's driver does with what it reads from its channel.
    fn flush(&mut self, i: usize, inc: u64) -> Result<()> {
        if self.nodes[i].incarnation != inc || !self.up(i) {
            return Ok(());
        }
        self.nodes[i].flush_queued = false;
        if self.nodes[i].paused {
            // Stopped with input queued: handled in a batch after it resumes.
            self.nodes[i].busy_until = self.now + self.nodes[i].tick_ns;
            self.busy(i);
            return Ok(());
        }
        let mut inputs = std::mem::take(&mut self.nodes[i].inbox);
        if std::mem::take(&mut self.nodes[i].stalled) {
            inputs = interleave(inputs, &mut self.rng);
        }
        let ticks = std::mem::take(&mut self.nodes[i].inbox_ticks);
        let now = self.now;
        self.feed(i, |h, env| {
            for _ in 0..ticks.min(MAX_CATCH_UP_TICKS) {
                h.core_mut().tick();
            }
            if ticks > 0 {
                drop(h.expire(now));
            }
            for input in inputs {
                match input {
                    Input::Msg(from, msg) => h.core_mut().step(from, msg),
                    Input::Request(req, answer, deadline) => h.request(env, req, answer, deadline),
                }
            }
        })
    }

    /// Whether one more node may go down with a majority (of the fault pool) still up.
    fn may_kill(&self) -> bool {
        let pool = self.pool();
        let down = pool.iter().filter(|&&k| !self.up(k)).count();
        (down + 1) * 2 < pool.len()
    }

    /// The nodes node-targeted faults, partitions and churn draw from: every node, or with
    /// spares the voters the leader reports (the initial voters when none does), as the
    /// nemesis's fault pool: spares outside the voter set are idle.
    fn pool(&self) -> Vec<usize> {
        let n = self.nodes.len();
        if self.opts.spares == 0 {
            return (0..n).collect();
        }
        match self.leader_view() {
            Ok(v) if !v.voters.is_empty() => v.voters,
            _ => (0..n.saturating_sub(self.opts.spares).max(1)).collect(),
        }
    }

    /// What the harness would read from the nodes' `STATUS`: the running, unpaused node
    /// that leads with the highest term, its voters and whether they are joint (the
    /// nemesis's [`membership::leader_view`]).
    fn leader_view(&self) -> Result<View, String> {
        let mut best: Option<View> = None;
        for (i, node) in self.nodes.iter().enumerate() {
            let Some(h) = node.host.as_ref().filter(|_| !node.paused) else {
                continue;
            };
            let st = h.core().status();
            if st.role != Role::Leader {
                continue;
            }
            let mut voters = Vec::new();
            for v in &st.voters {
                match self.index_of(*v) {
                    Some(k) => voters.push(k),
                    None => {
                        return Err(format!(
                            "n{}: STATUS names unknown voter {}",
                            node.cfg.id,
                            node::core::fmt_id(*v)
                        ));
                    }
                }
            }
            voters.sort_unstable();
            if best.as_ref().is_none_or(|b| b.term < st.term) {
                best = Some(View {
                    leader: i,
                    term: st.term,
                    voters,
                    joint: st.joint,
                });
            }
        }
        best.ok_or_else(|| "no node says it leads".to_owned())
    }

    fn name(&self, i: usize) -> String {
        node::core::fmt_id(self.nodes[i].cfg.id)
    }

    fn names(&self, nodes: &[usize]) -> Vec<String> {
        nodes.iter().map(|&i| self.name(i)).collect()
    }

    fn describe(&self, v: &View) -> String {
        v.describe_with(|i| self.name(i))
    }

    fn drain(&mut self, i: usize) -> Result<()> {
        let env = Outgoing::new(self.wall_ms(i));
        self.drain_with(i, env)
    }

    fn drain_with(&mut self, i: usize, mut env: Outgoing<C::Message>) -> Result<()> {
        let id = self.nodes[i].cfg.id;
        let armed = self.arm_persist(i);
        let syncs = self.nodes[i].fs.syncs();
        let applied = self.nodes[i].host.as_ref().map(|h| h.applied());
        let drained = match self.nodes[i].host.as_mut() {
            Some(host) => host.drain_ready(&mut env),
            None => Ok(()),
        };
        let fired = armed && self.disarm_persist(i);
        // Under a `persist` fault the syncs took simulated time: what the batch sends
        // leaves when they are done, and input arriving until then waits for one batch.
        let busy = match self.persist.map(|f| &self.schedule[f].kind) {
            Some(&FaultKind::Persist { sync_us, .. }) if sync_us > 0 => {
                let busy = (self.nodes[i].fs.syncs() - syncs) * sync_us * 1000;
                if busy > 0 {
                    self.nodes[i].last_sync = (self.now + busy - sync_us * 1000, self.now + busy);
                }
                busy
            }
            _ => 0,
        };
        if busy > 0 {
            self.nodes[i].busy_until = self.now + busy;
        }
        if fired && self.persist_kill(i, busy) {
            // Died in the middle of the batch: nothing after the trapped operation
            // happened, so nothing the batch would send or answer leaves the node.
            self.outbox.borrow_mut().clear();
            return Ok(());
        }
        drained.with_context(|| format!("simulated n{id} stopped"))?;
        self.watch_split(i);
        self.watch_agreement(i);
        if !self.apply_kills.is_empty()
            && applied.is_some_and(|a| self.nodes[i].host.as_ref().is_some_and(|h| h.applied() > a))
        {
            self.arm_kills(i, self.apply_kills.clone());
        }
        let from = self.nodes[i].cfg.id;
        let from_inc = self.nodes[i].incarnation;
        let first_out = self.seq + 1;
        self.nodes[i].peers.extend(address_book(env.learned));
        for (to, msg) in env.sent {
            if self.nodes[i].peers.get(&to) == Some(&true) {
                self.send(from, from_inc, to, msg, busy);
            }
        }
        let answers: Vec<_> = self.outbox.borrow_mut().drain(..).collect();
        for (to, attempt, v) in answers {
            let lat = self.rng.random_range(50_000..500_000);
            let ev = match to {
                Asker::Client(client) => Ev::Reply { client, attempt, v },
                Asker::Admin => Ev::AdminReply { attempt, v },
            };
            self.at(self.now + busy + lat, ev);
        }
        if busy > 0 {
            self.nodes[i].last_sync_out = first_out..self.seq + 1;
        }
        self.maybe_stall(i, busy);
        Ok(())
    }

    /// Under a `stall` fault, node `i` (of the fault pool) may stop reading after this
    /// batch: input arriving during the hold waits and is handled as one batch, its
    /// senders interleaved in a drawn order. No draw without an active fault (old seeds
    /// replay unchanged).
    fn maybe_stall(&mut self, i: usize, busy: u64) {
        let Some(&FaultKind::Stall { pct, hold_us }) = self.stall.map(|f| &self.schedule[f].kind)
        else {
            return;
        };
        if !self.pool().contains(&i) || self.rng.random_range(0..100) >= pct {
            return;
        }
        let node = &mut self.nodes[i];
        node.busy_until = node.busy_until.max(self.now + busy + hold_us * 1000);
        node.stalled = true;
    }

    /// Sets node `i`'s storage trap for its next batch under the active `persist` fault,
    /// if it may die now (running, in the fault pool, a majority left up). True if set.
    fn arm_persist(&mut self, i: usize) -> bool {
        let Some(fault) = self.persist else {
            return false;
        };
        let FaultKind::Persist {
            op, pct, during, ..
        } = self.schedule[fault].kind
        else {
            return false;
        };
        if !self.up(i) || !self.may_kill() || !self.pool().contains(&i) {
            return false;
        }
        let skip = match self.nodes[i].persist_skip {
            Some(k) => k,
            None => {
                // Each matching operation kills with probability pct%: the number that
                // pass first is geometric.
                let p = f64::from(pct.clamp(1, 100)) / 100.0;
                let k = if p >= 1.0 {
                    0
                } else {
                    let u: f64 = self.rng.random_range(1e-12..1.0);
                    (u.ln() / (1.0 - p).ln()).floor().min(1e12) as u64
                };
                self.nodes[i].persist_skip = Some(k);
                k
            }
        };
        self.nodes[i].fs.set_trap(op, skip, during);
        true
    }

    /// Clears node `i`'s storage trap; true if it fired (the next kill is drawn afresh).
    fn disarm_persist(&mut self, i: usize) -> bool {
        match self.nodes[i].fs.clear_trap() {
            Some(TrapState::Fired) => {
                self.nodes[i].persist_skip = None;
                true
            }
            Some(TrapState::Pending(k)) => {
                self.nodes[i].persist_skip = Some(k);
                false
            }
            None => false,
        }
    }

    /// Node `i`'s trap fired: with `during` it died at that operation (crashed now; true),
    /// else a kill comes within `within_us` after the batch's syncs (`busy` ns).
    fn persist_kill(&mut self, i: usize, busy: u64) -> bool {
        let Some(fault) = self.persist else {
            return false;
        };
        let FaultKind::Persist {
            op,
            during,
            within_us,
            power_loss,
            down_ms,
            ..
        } = self.schedule[fault].kind
        else {
            return false;
        };
        let inc = self.nodes[i].incarnation;
        if during {
            self.nemesis(
                format!("persist-{fault}-kill"),
                json!({"resolved": node::core::fmt_id(self.nodes[i].cfg.id), "at": op, "during": true, "power_loss": power_loss}),
            );
            self.crash(i, power_loss);
            let down = self.rng.random_range(0..=down_ms.max(1) * MS);
            self.at(self.now + down, Ev::Restart { node: i, inc });
            true
        } else {
            let after = self.rng.random_range(0..=within_us * 1000);
            self.at(
                self.now + busy + after,
                Ev::Kill {
                    node: i,
                    inc,
                    fault,
                },
            );
            false
        }
    }

    /// Notes a term in which node `i` and another running node both lead.
    fn watch_split(&mut self, i: usize) {
        if !self.opts.watch_split {
            return;
        }
        let status = |k: usize| self.nodes[k].host.as_ref().map(|h| h.core().status());
        let Some(me) = status(i).filter(|s| s.role == Role::Leader) else {
            return;
        };
        let split = (0..self.nodes.len()).any(|k| {
            k != i && status(k).is_some_and(|s| s.role == Role::Leader && s.term == me.term)
        });
        if split {
            self.split_terms.insert(me.term);
        }
    }

    fn index_of(&self, id: NodeId) -> Option<usize> {
        self.nodes.iter().position(|n| n.cfg.id == id)
    }

    /// Sends `msg` `after` ns from now (the sender's syncs), plus the network's latency.
    fn send(&mut self, from: NodeId, from_inc: u64, to: NodeId, msg: C::Message, after: u64) {
        let Some(ti) = self.index_of(to) else { return };
        let to_inc = self.nodes[ti].incarnation;
        let (mut loss, mut dup, mut delay_ms) = (0.0f64, 0.0f64, 0u64);
        for (l, d, ms) in self.net.chaos.values() {
            loss = loss.max(*l);
            dup = dup.max(*d);
            delay_ms = delay_ms.max(*ms);
        }
        if loss > 0.0 && self.rng.random_bool(loss) {
            return;
        }
        let copies = if dup > 0.0 && self.rng.random_bool(dup) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            if self.tcp.is_some()
                && let Some(fi) = self.index_of(from)
            {
                self.tcp_send(fi, from_inc, ti, msg.clone(), after, delay_ms);
                continue;
            }
            let fi = self.index_of(from);
            let lat = self.latency(fi, ti, delay_ms);
            self.at(
                self.now + after + lat,
                Ev::Deliver {
                    from,
                    from_inc,
                    to,
                    to_inc,
                    msg: msg.clone(),
                },
            );
        }
    }

    fn up(&self, i: usize) -> bool {
        self.nodes[i].host.is_some()
    }

    /// Under a `tcp` fault: node `fi` (incarnation `from_inc`) hands `msg` for node `ti`
    /// to its transport `after` ns from now, which writes it on its connection, queues it
    /// while waiting to reconnect, or loses it in a connection whose receiver is gone.
    fn tcp_send(
        &mut self,
        fi: usize,
        from_inc: u64,
        ti: usize,
        msg: C::Message,
        after: u64,
        delay_ms: u64,
    ) {
        let t = self.now + after;
        let conn = self.conn(fi, from_inc, ti);
        match conn.state {
            ConnState::Idle => {
                self.tcp_connect(fi, ti, t);
                self.tcp_write(fi, ti, msg, t, delay_ms);
            }
            ConnState::Waiting { .. } => {
                if conn.queue.len() < TCP_QUEUE {
                    conn.queue.push(msg);
                }
            }
            ConnState::Open { inc, reset_at } => {
                let alive = self.up(ti) && self.nodes[ti].incarnation == inc;
                if alive {
                    self.tcp_write(fi, ti, msg, t, delay_ms);
                    return;
                }
                // Written into a connection whose receiver is gone: lost. The reset comes
                // back a round trip after the first such write; the first write after it
                // fails (lost too), and the transport reconnects at once.
                match reset_at {
                    None => {
                        let rtt = 2 * self.rng.random_range(100_000..1_000_000);
                        if let Some(c) = self.conns.get_mut(&(fi, ti)) {
                            c.state = ConnState::Open {
                                inc,
                                reset_at: Some(t + rtt),
                            };
                        }
                    }
                    Some(r) if t < r => {}
                    Some(_) => self.tcp_connect(fi, ti, t),
                }
            }
        }
    }

    /// The connection state of link `fi -> ti`, fresh if its sender restarted since.
    fn conn(&mut self, fi: usize, from_inc: u64, ti: usize) -> &mut Conn<C::Message> {
        let c = self.conns.entry((fi, ti)).or_insert_with(|| Conn {
            from_inc,
            state: ConnState::Idle,
            queue: Vec::new(),
            backoff_ns: TCP_BACKOFF_NS.0,
            last_at: 0,
        });
        if c.from_inc != from_inc {
            *c = Conn {
                from_inc,
                state: ConnState::Idle,
                queue: Vec::new(),
                backoff_ns: TCP_BACKOFF_NS.0,
                last_at: 0,
            };
        }
        c
    }

    /// A connect attempt on link `fi -> ti` at `t`: to the receiver's current incarnation
    /// if it is up (what queued is then written, in order), else refused (what queued is
    /// dropped, and the next attempt waits the backoff). Across a cut link that drops
    /// packets the attempt times out after a second and is retried at once; across one
    /// that resets connections it is refused.
    fn tcp_connect(&mut self, fi: usize, ti: usize, t: u64) {
        let (from, to) = (self.nodes[fi].cfg.id, self.nodes[ti].cfg.id);
        let cut = self
            .net
            .cut
            .get(&(from, to))
            .map(|&(_, holding)| holding > 0);
        let up = self.up(ti) && cut.is_none();
        let inc = self.nodes[ti].incarnation;
        let from_inc = self.nodes[fi].incarnation;
        let Some(c) = self.conns.get_mut(&(fi, ti)) else {
            return;
        };
        if up {
            c.state = ConnState::Open {
                inc,
                reset_at: None,
            };
            c.backoff_ns = TCP_BACKOFF_NS.0;
            let queued = std::mem::take(&mut c.queue);
            let delay_ms = self
                .net
                .chaos
                .values()
                .map(|&(_, _, ms)| ms)
                .max()
                .unwrap_or(0);
            for msg in queued {
                self.tcp_write(fi, ti, msg, t, delay_ms);
            }
            return;
        }
        c.queue.clear();
        let wait = if cut == Some(true) {
            TCP_CONNECT_TIMEOUT_NS
        } else {
            let b = c.backoff_ns;
            c.backoff_ns = (b * 2).min(TCP_BACKOFF_NS.1);
            b
        };
        c.state = ConnState::Waiting { until: t + wait };
        self.at(
            t + wait,
            Ev::Connect {
                from: fi,
                from_inc,
                to: ti,
            },
        );
    }

    /// The next connect attempt of a waiting link (void if its sender restarted since).
    fn tcp_reconnect(&mut self, fi: usize, from_inc: u64, ti: usize) {
        if self.tcp.is_none() || !self.up(fi) || self.nodes[fi].incarnation != from_inc {
            return;
        }
        let due = self.conns.get(&(fi, ti)).is_some_and(|c| {
            c.from_inc == from_inc
                && matches!(c.state, ConnState::Waiting { until } if until == self.now)
        });
        if due {
            self.tcp_connect(fi, ti, self.now);
        }
    }

    /// One message's latency from node `fi` to node `ti`: 0.1-1 ms; under a `net` fault, up
    /// to `delay_ms` more (which reorders messages on the same link unless `tcp` keeps
    /// the order); under a `lag` fault on either end, its step plus its jitter.
    fn latency(&mut self, fi: Option<usize>, ti: usize, delay_ms: u64) -> u64 {
        let mut lat = self.rng.random_range(100_000..1_000_000);
        if delay_ms > 0 {
            lat += self.rng.random_range(0..delay_ms * MS);
        }
        let lag = self
            .lags
            .values()
            .filter(|(n, ..)| Some(*n) == fi || *n == ti)
            .map(|&(_, ns, jitter)| (ns, jitter))
            .max();
        if let Some((ns, jitter)) = lag {
            lat += ns;
            if jitter > 0 {
                lat += self.rng.random_range(0..=ns * jitter / 100);
            }
        }
        lat
    }

    /// Writes `msg` on the open connection `fi -> ti` at `t`: it arrives after
    /// [`World::latency`], never before what was written before it.
    fn tcp_write(&mut self, fi: usize, ti: usize, msg: C::Message, t: u64, delay_ms: u64) {
        let lat = self.latency(Some(fi), ti, delay_ms);
        let (from, to) = (self.nodes[fi].cfg.id, self.nodes[ti].cfg.id);
        let Some(c) = self.conns.get_mut(&(fi, ti)) else {
            return;
        };
        let ConnState::Open { inc, .. } = c.state else {
            return;
        };
        let at = (t + lat).max(c.last_at);
        c.last_at = at;
        let from_inc = c.from_inc;
        self.at(
            at,
            Ev::Deliver {
                from,
                from_inc,
                to,
                to_inc: inc,
                msg,
            },
        );
    }

    fn record(&mut self, mut op: Op) -> Op {
        op.time = self.now;
        // Writing into a Vec cannot fail.
        let _ = self.writer.write(&mut op);
        self.ops.push(op.clone());
        op
    }

    fn nemesis(&mut self, f: String, value: Value) {
        self.record(Op {
            index: 0,
            time: 0,
            process: Process::Nemesis,
            kind: OpType::Info,
            f,
            key: None,
            value,
            error: None,
            node: None,
        });
    }

    /// Runs until the simulated time limit.
    pub fn run(mut self) -> Result<Outcome> {
        while self.step()? {}
        // A membership change still under way is recorded as it stands.
        self.admin.queue.clear();
        if let Some(job) = self.admin.job.as_mut() {
            job.reply = "the simulation ended".into();
            if job.stage != Stage::Verify {
                job.outcome = if job.sent { "unknown" } else { "failed" };
            }
            let status = self.leader_view().map_or_else(|e| e, |v| self.describe(&v));
            self.admin_finish(None, status);
        }
        // Operations still in flight at the end are unknown (writes) or failed (reads).
        for c in 0..self.clients.len() {
            if self.clients[c].current.is_some() {
                self.complete(c, Completion::Info("the simulation ended".into()));
            }
        }
        let history = self.writer.into_inner().unwrap_or_default();
        Ok(Outcome {
            history,
            ops: self.ops,
            completions: self.completions,
            events: self.events,
            split_terms: self.split_terms.len() as u64,
            storm: self.storm,
            stalled: self.stalled,
            recovery_ns: self.progress.recovery_ns(),
            election_ns: self.progress.election_ns,
            abort_violation: self.abort_violation,
            diverged: self.diverged,
            restart_failed: self.restart_failed,
        })
    }

    /// What the queue holds when a storm stops the schedule: the most frequent kinds of
    /// pending event (messages by type and link), so the report says who floods whom.
    fn storm_report(&self) -> String {
        let mut kinds: BTreeMap<String, u64> = BTreeMap::new();
        for ev in self.queue.values() {
            let kind = match ev {
                Ev::Deliver { from, to, msg, .. } => {
                    let debug = format!("{msg:?}");
                    let name: String = debug
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    format!("{name} n{from}->n{to}")
                }
                Ev::Tick { .. } => "tick".into(),
                Ev::Request { .. } => "client request".into(),
                Ev::Reply { .. } => "client reply".into(),
                _ => "other".into(),
            };
            *kinds.entry(kind).or_default() += 1;
        }
        let mut top: Vec<(String, u64)> = kinds.into_iter().collect();
        top.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let top: Vec<String> = top
            .iter()
            .take(6)
            .map(|(k, n)| format!("{n} {k}"))
            .collect();
        format!(
            "message storm: {} events pending at {:.3} s simulated, after {} events (limit {}); most queued: {}",
            self.queue.len(),
            self.now as f64 / 1e9,
            self.events,
            self.opts.storm_queue,
            top.join(", ")
        )
    }

    /// Handles the next event; false once the simulated time limit is reached.
    fn step(&mut self) -> Result<bool> {
        if self.storm.is_some() {
            return Ok(false);
        }
        if self.queue.len() > self.opts.storm_queue {
            self.storm = Some(self.storm_report());
            return Ok(false);
        }
        if self.stalled.is_some() || self.restart_failed.is_some() {
            return Ok(false);
        }
        let end = self.end();
        let next = self.queue.first_key_value().map(|(k, _)| k.0);
        let Some(t) = next.filter(|&t| t <= end) else {
            // The run ends: judge progress at the end (a schedule without events left
            // ends at its deadline).
            self.judge_progress(end);
            return Ok(false);
        };
        let ev = self
            .queue
            .pop_first()
            .expect("the queue has a first event")
            .1;
        self.now = t;
        self.clock_ns.store(t, std::sync::atomic::Ordering::Relaxed);
        self.events += 1;
        // Names the simulated time in the nodes' log lines (`stasis sim --node-logs`);
        // nothing is built while no subscriber listens.
        let _span =
            tracing::info_span!(target: "sim", "sim", t = %format_args!("{:.6}", t as f64 / 1e9))
                .entered();
        self.handle(ev)?;
        self.after_event();
        Ok(true)
    }

    /// When the run ends: at the schedule's simulated time once progress after the heal
    /// was seen, else when it must have been seen by (the heal plus the bound), or, while
    /// the faults have not healed, a cap after the schedule's time.
    fn end(&self) -> u64 {
        let sim = self.opts.sim_ns;
        if self.progress.settled() {
            return sim;
        }
        match self.progress.deadline() {
            Some(d) => sim.max(d),
            None => sim + heal_cap_ns() + self.progress.bound_ns,
        }
    }

    /// At the end of the run: the progress finding, if the property did not hold.
    fn judge_progress(&mut self, end: u64) {
        if self.storm.is_some() || self.stalled.is_some() {
            return;
        }
        let leader = self.leader_view().map_or_else(|e| e, |v| self.describe(&v));
        let lagging = self.progress.target().map_or_else(String::new, |target| {
            let names: Vec<String> = self
                .lagging(target)
                .into_iter()
                .map(|(i, applied)| match applied {
                    Some(a) => format!("{} (at {a})", self.name(i)),
                    None => format!("{} (down)", self.name(i)),
                })
                .collect();
            names.join(", ")
        });
        self.stalled = self.progress.finding(end, &leader, &lagging);
    }

    /// The voters (the fault pool: with spares, those the leader reports) that have not
    /// applied `target`, with what they applied (`None`: down).
    fn lagging(&self, target: u64) -> Vec<(usize, Option<u64>)> {
        self.pool()
            .into_iter()
            .filter_map(|i| {
                let applied = self.nodes[i].host.as_ref().map(|h| h.applied());
                applied.is_none_or(|a| a < target).then_some((i, applied))
            })
            .collect()
    }

    /// After progress: the convergence target (fixed now if not yet) and whether every
    /// voter reached it.
    fn watch_convergence(&mut self) {
        if !self.progress.done() || self.progress.settled() {
            return;
        }
        // The target is fixed at the first event after progress; only then is the
        // highest applied index needed.
        if self.progress.target().is_none() {
            let highest = self
                .nodes
                .iter()
                .filter_map(|n| n.host.as_ref().map(|h| h.applied()))
                .max()
                .unwrap_or(0);
            self.progress.converge_to(highest);
        }
        let Some(target) = self.progress.target() else {
            return;
        };
        if self.lagging(target).is_empty() {
            self.progress.converged(self.now);
        }
    }

    /// Bookkeeping after every event: the heal (every fault stopped and every membership
    /// change finished) and the definite-abort watch of membership changes.
    fn after_event(&mut self) {
        if self.progress.healed_at().is_none()
            && self.stops_left == 0
            && self.admin.job.is_none()
            && self.admin.queue.is_empty()
        {
            self.progress.healed(self.now);
        }
        self.watch_convergence();
        if self.aborts.watching()
            && self.abort_violation.is_none()
            && let Some(v) = self.current_view()
        {
            let d = self.describe(&v);
            let found = self.aborts.observe(&v, || d);
            self.abort_found(found);
        }
    }

    /// The leader's view if it is current: no running node has a higher term (a leader
    /// that was paused or cut off while the others moved on is stale, and may still
    /// report voter sets that were since replaced).
    fn current_view(&self) -> Option<View> {
        let v = self.leader_view().ok()?;
        let highest = self
            .nodes
            .iter()
            .filter_map(|n| n.host.as_ref())
            .map(|h| h.core().status().term)
            .max()
            .unwrap_or(0);
        (v.term >= highest).then_some(v)
    }

    /// Checks what node `i` applied in its last batch against the other replicas
    /// ([`Agreement`]); the first divergence is recorded (in the history's nemesis log
    /// too) and ends nothing: the run goes on, as with a split brain.
    fn watch_agreement(&mut self, i: usize) {
        let Some(host) = self.nodes[i].host.as_mut() else {
            return;
        };
        let steps = host.take_applies();
        let found = self.agreement.observe(self.nodes[i].cfg.id, &steps);
        if let Some(d) = found
            && self.diverged.is_none()
        {
            self.nemesis("replicas-diverged".into(), json!({"finding": d}));
            self.diverged = Some(d);
        }
    }

    /// Records the first definite-abort violation (in the history's nemesis log too).
    fn abort_found(&mut self, found: Option<String>) {
        if let Some(v) = found
            && self.abort_violation.is_none()
        {
            self.nemesis("reconfig-violation".into(), json!({"violation": v}));
            self.abort_violation = Some(v);
        }
    }

    fn handle(&mut self, ev: Ev<C::Message>) -> Result<()> {
        match ev {
            Ev::Tick { node, inc } => {
                if self.nodes[node].incarnation != inc || !self.up(node) {
                    return Ok(());
                }
                let next = self.now + self.nodes[node].tick_ns;
                self.at(next, Ev::Tick { node, inc });
                if self.nodes[node].paused {
                    self.nodes[node].missed_ticks += 1;
                    return Ok(());
                }
                if self.busy(node) {
                    self.nodes[node].inbox_ticks += 1;
                    return Ok(());
                }
                let now = self.now;
                self.feed(node, |h, _| {
                    h.core_mut().tick();
                    // Clients of expired requests time out on their own deadline.
                    drop(h.expire(now));
                })?;
            }
            Ev::Deliver {
                from,
                from_inc,
                to,
                to_inc,
                msg,
            } => {
                let (Some(fi), Some(ti)) = (self.index_of(from), self.index_of(to)) else {
                    return Ok(());
                };
                // A connection does not survive a restart of either end. Under a `tcp`
                // fault what the sender wrote is delivered after its death (its kernel
                // sends it) unless it lost power.
                let sender_gone = self.nodes[fi].incarnation != from_inc
                    && (self.tcp.is_none() || self.power_lost.contains(&(fi, from_inc)));
                if sender_gone || self.nodes[ti].incarnation != to_inc || !self.up(ti) {
                    return Ok(());
                }
                if let Some(&(_, holding)) = self.net.cut.get(&(from, to)) {
                    if holding > 0 {
                        self.net.held.push((from, from_inc, to, to_inc, msg));
                    }
                    return Ok(());
                }
                // The sender's connection introduced it (the handshake names its address).
                self.nodes[ti].peers.insert(from, true);
                if self.nodes[ti].frozen {
                    // Read with everything else queued in one batch when the group resumes.
                    self.nodes[ti].inbox.push(Input::Msg(from, msg));
                    return Ok(());
                }
                if self.nodes[ti].paused {
                    // The kernel buffers it; the process reads it after it resumes (under
                    // a `tcp` fault in the order it was written).
                    let mut again = self.now + self.rng.random_range(1..=self.nodes[ti].tick_ns);
                    if self.tcp.is_some()
                        && let Some(c) = self.conns.get_mut(&(fi, ti))
                    {
                        again = again.max(c.last_at);
                        c.last_at = again;
                    }
                    self.at(
                        again,
                        Ev::Deliver {
                            from,
                            from_inc,
                            to,
                            to_inc,
                            msg,
                        },
                    );
                    return Ok(());
                }
                if self.busy(ti) {
                    self.nodes[ti].inbox.push(Input::Msg(from, msg));
                    return Ok(());
                }
                self.feed(ti, |h, _| h.core_mut().step(from, msg))?;
            }
            Ev::Request {
                node,
                client,
                attempt,
            } => self.request_arrives(node, client, attempt)?,
            Ev::Reply { client, attempt, v } => self.reply(client, attempt, v),
            Ev::ClientTimeout { client, op_no } => {
                if self.clients[client].op_no == op_no && self.clients[client].current.is_some() {
                    let sent = self.clients[client]
                        .current
                        .as_ref()
                        .is_some_and(|c| c.at.is_some());
                    if sent {
                        // The connection may still carry a late reply: the RESP client
                        // drops it and starts again at its home node.
                        self.clients[client].target = self.clients[client].home;
                    }
                    let c = if sent {
                        Completion::Info("timeout".into())
                    } else {
                        let e = self.clients[client]
                            .current
                            .as_ref()
                            .map(|c| c.last_error.clone())
                            .unwrap_or_default();
                        Completion::Fail(format!("no node accepted it: {e}"))
                    };
                    self.complete(client, c);
                }
            }
            Ev::ClientNext { client } => self.invoke(client),
            Ev::FaultStart(i) => self.fault(i, true)?,
            Ev::FaultStop(i) => {
                self.stops_left = self.stops_left.saturating_sub(1);
                self.fault(i, false)?
            }
            Ev::Bounce(i) => {
                let f = &self.schedule[i];
                let (FaultKind::Bounce { every_ms, .. }, Some(&n)) =
                    (&f.kind, self.resolved.get(&i))
                else {
                    return Ok(());
                };
                if self.now >= f.stop_ns {
                    return Ok(());
                }
                let next = self.now + every_ms.max(&1) * MS;
                if self.up(n) {
                    self.crash(n, false);
                    self.start_node(n)?;
                }
                self.at(next, Ev::Bounce(i));
            }
            Ev::Churn(i) => self.churn(i),
            Ev::Unclog { fault, a, b } => {
                let FaultKind::Partition { hold, .. } = self.schedule[fault].kind else {
                    return Ok(());
                };
                if let Some(cuts) = self.partition_cuts.get_mut(&fault) {
                    let open: Vec<_> = cuts
                        .iter()
                        .copied()
                        .filter(|&c| c == (a, b) || c == (b, a))
                        .collect();
                    cuts.retain(|c| !open.contains(c));
                    self.uncut(&open, u32::from(hold));
                }
            }
            Ev::Kill { node, inc, fault } => {
                let (down_ms, power_loss) = match self.schedule[fault].kind {
                    FaultKind::Transition { down_ms, .. } => (down_ms, false),
                    FaultKind::Apply {
                        down_ms,
                        power_loss,
                        ..
                    }
                    | FaultKind::Persist {
                        down_ms,
                        power_loss,
                        ..
                    } => (down_ms, power_loss),
                    _ => return Ok(()),
                };
                if self.up(node) && self.nodes[node].incarnation == inc && self.may_kill() {
                    let family = self.schedule[fault].kind.family();
                    self.nemesis(
                        format!("{family}-{fault}-kill"),
                        json!({"resolved": node::core::fmt_id(self.nodes[node].cfg.id)}),
                    );
                    self.crash(node, power_loss);
                    let down = self.rng.random_range(0..=down_ms.max(1) * MS);
                    self.at(self.now + down, Ev::Restart { node, inc });
                }
            }
            Ev::Flush { node, inc } => self.flush(node, inc)?,
            Ev::Connect { from, from_inc, to } => self.tcp_reconnect(from, from_inc, to),
            Ev::Restart { node, inc } => {
                if !self.up(node) && self.nodes[node].incarnation == inc {
                    self.start_node(node)?;
                }
            }
            Ev::AdminPoll { attempt } => {
                if attempt == self.admin.attempt {
                    self.admin_poll()?;
                }
            }
            Ev::AdminRequest { node, attempt } => {
                if attempt == self.admin.attempt {
                    self.admin_request_arrives(node, attempt)?;
                }
            }
            Ev::AdminReply { attempt, v } => {
                if attempt == self.admin.attempt {
                    self.admin_verdict(membership::interpret(Ok(v)));
                }
            }
            Ev::AdminTimeout { attempt } => {
                if attempt == self.admin.attempt {
                    self.admin_verdict(membership::interpret(Err((
                        true,
                        "timeout: no reply".into(),
                    ))));
                }
            }
        }
        Ok(())
    }

    /// Queues a membership change (a `reconfig` fault's start or stop).
    fn admin_enqueue(&mut self, fault: usize, start: bool) -> Result<()> {
        self.admin.queue.push_back((fault, start));
        if self.admin.job.is_none() {
            self.admin_next()?;
        }
        Ok(())
    }

    /// Starts the next queued change, if any.
    fn admin_next(&mut self) -> Result<()> {
        let Some((fault, start)) = self.admin.queue.pop_front() else {
            return Ok(());
        };
        let change = match self.schedule[fault].kind {
            FaultKind::Reconfig { change } if start => change.name(),
            _ => "revert",
        };
        let target = self.admin.before.get(&fault).cloned();
        if !start && target.is_none() {
            // As the nemesis: a change that never started has nothing to undo.
            let why = "nothing to undo: the change never started";
            self.nemesis(
                format!("stop-reconfig-{fault}"),
                json!({"outcome": "unchanged", "reply": why}),
            );
            return self.admin_next();
        }
        self.admin.job = Some(Job {
            fault,
            start,
            stage: Stage::Settle,
            change,
            from: Vec::new(),
            target: target.unwrap_or_default(),
            until: self.now + membership::SETTLE_BUDGET.as_nanos() as u64,
            at: None,
            sent: false,
            last: "no leader found".into(),
            outcome: "failed",
            reply: String::new(),
        });
        self.admin_poll()
    }

    fn admin_poll_in(&mut self, ns: u64) {
        self.admin.attempt += 1;
        let attempt = self.admin.attempt;
        self.at(self.now + ns, Ev::AdminPoll { attempt });
    }

    /// One look of the change in progress at the leader's view (the nemesis's polling
    /// loops, one iteration per event).
    fn admin_poll(&mut self) -> Result<()> {
        let Some(job) = self.admin.job.as_ref() else {
            return Ok(());
        };
        let (stage, start, until, fault) = (job.stage, job.start, job.until, job.fault);
        let view = self.leader_view();
        match stage {
            Stage::Settle => {
                let settled = view.as_ref().ok().filter(|v| !v.joint).cloned();
                if settled.is_none() && self.now < until {
                    self.admin_poll_in(100 * MS);
                    return Ok(());
                }
                let last = match &view {
                    Ok(v) => self.describe(v),
                    Err(e) => e.clone(),
                };
                if start {
                    let Some(v) = settled else {
                        let why = format!("no current voter set: {last}");
                        self.admin.job = None;
                        let change = match self.schedule[fault].kind {
                            FaultKind::Reconfig { change } => change.name(),
                            _ => "",
                        };
                        self.nemesis(
                            format!("start-reconfig-{fault}"),
                            json!({"change": change, "outcome": "failed", "reply": why}),
                        );
                        return self.admin_next();
                    };
                    let FaultKind::Reconfig { change } = self.schedule[fault].kind else {
                        return Ok(());
                    };
                    let n = self.nodes.len();
                    let Some((made, target)) =
                        membership::plan(change, &v.voters, n, &mut self.rng)
                    else {
                        self.admin.job = None;
                        self.nemesis(
                            format!("start-reconfig-{fault}"),
                            json!({"change": change.name(), "outcome": "failed", "reply": "no other voter set is possible"}),
                        );
                        return self.admin_next();
                    };
                    self.admin.before.insert(fault, v.voters.clone());
                    let job = self.admin.job.as_mut().expect("checked");
                    job.change = made.name();
                    job.from = v.voters;
                    job.target = target;
                } else {
                    let job = self.admin.job.as_mut().expect("checked");
                    match settled {
                        Some(v) if v.voters == job.target => {
                            let value = json!({"change": "revert", "from": self.names(&v.voters), "to": self.names(&v.voters), "outcome": "unchanged", "status": last});
                            self.admin.job = None;
                            self.nemesis(format!("stop-reconfig-{fault}"), value);
                            return self.admin_next();
                        }
                        Some(v) => job.from = v.voters,
                        None => job.from = Vec::new(),
                    }
                }
                let job = self.admin.job.as_mut().expect("checked");
                job.stage = Stage::Request;
                job.until = self.now + membership::CHANGE_BUDGET.as_nanos() as u64;
                self.admin_poll_in(0);
            }
            Stage::Request => {
                if self.now >= until {
                    let job = self.admin.job.as_mut().expect("checked");
                    let last = std::mem::take(&mut job.last);
                    self.admin_verdict(Verdict::Failed(last));
                    return Ok(());
                }
                match view {
                    Err(e) => {
                        self.admin.job.as_mut().expect("checked").last = e;
                        self.admin_poll_in(100 * MS);
                    }
                    Ok(v) => {
                        // The request travels to the leader; no reply in time is unknown.
                        self.admin.attempt += 1;
                        let attempt = self.admin.attempt;
                        let job = self.admin.job.as_mut().expect("checked");
                        job.at = None;
                        let lat = self.rng.random_range(50_000..500_000);
                        self.at(
                            self.now + lat,
                            Ev::AdminRequest {
                                node: v.leader,
                                attempt,
                            },
                        );
                        let wait = membership::REQUEST_TIMEOUT.as_nanos() as u64;
                        self.at(self.now + wait, Ev::AdminTimeout { attempt });
                    }
                }
            }
            Stage::Verify => {
                let job = self.admin.job.as_ref().expect("checked");
                match view {
                    Ok(v) if !v.joint && v.voters == job.target => {
                        let d = self.describe(&v);
                        self.admin_finish(Some(d.clone()), d);
                        return self.admin_next();
                    }
                    other => {
                        if self.now >= until {
                            let last = match other {
                                Ok(v) => self.describe(&v),
                                Err(e) => e,
                            };
                            self.admin_finish(None, last);
                            return self.admin_next();
                        } else {
                            self.admin_poll_in(100 * MS);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// The change's request reaches node `node`.
    fn admin_request_arrives(&mut self, node: usize, attempt: u64) -> Result<()> {
        if !self.up(node) {
            let why = format!("{}: connection refused (down)", self.name(node));
            self.admin_verdict(membership::interpret(Err((false, why))));
            return Ok(());
        }
        if self.nodes[node].paused {
            // Queued in the socket until the node resumes.
            let again = self.now + self.nodes[node].tick_ns;
            self.at(again, Ev::AdminRequest { node, attempt });
            return Ok(());
        }
        let inc = self.nodes[node].incarnation;
        let Some(job) = self.admin.job.as_ref() else {
            return Ok(());
        };
        let voters: BTreeMap<NodeId, String> = job
            .target
            .iter()
            .map(|&k| {
                let id = self.nodes[k].cfg.id;
                (id, sim_peer_addr(id))
            })
            .collect();
        let job = self.admin.job.as_mut().expect("checked");
        job.at = Some((node, inc));
        job.sent = true;
        self.aborts.sent(&job.target);
        // The node answers -TIMEOUT at its request deadline, as the runtime does
        // (the timeout event); its host forgets the request then.
        let deadline = self.now + self.nodes[node].cfg.request_timeout.as_nanos() as u64;
        let wait = deadline.min(self.now + membership::REQUEST_TIMEOUT.as_nanos() as u64);
        self.at(wait, Ev::AdminTimeout { attempt });
        let answer = SimAnswer {
            to: Asker::Admin,
            attempt,
            outbox: self.outbox.clone(),
        };
        self.feed(node, |h, env| {
            h.request(env, Request::Reconfig(voters), answer, deadline)
        })
    }

    /// What the reply (or its absence) to the change's request means: a definite
    /// outcome goes on to verification, a refusal worth a retry asks again later.
    fn admin_verdict(&mut self, verdict: Verdict) {
        let Some(job) = self.admin.job.as_ref() else {
            return;
        };
        if job.stage != Stage::Request {
            return;
        }
        // The definite-abort check: a "not made" answer must not be proved false.
        let target = job.target.clone();
        let now = self.current_view();
        let now = now.as_ref().map(|v| (v, self.describe(v)));
        let found = self.aborts.answered(&target, &verdict, now);
        self.abort_found(found);
        let job = self.admin.job.as_mut().expect("checked");
        job.at = None;
        let (outcome, reply) = match verdict {
            Verdict::Ok => ("ok", "OK".to_owned()),
            Verdict::Failed(m) => ("failed", m),
            Verdict::Unknown(m) => ("unknown", m),
            Verdict::Retry { why, sent } => {
                job.last = why;
                self.admin_poll_in(if sent { 200 * MS } else { 100 * MS });
                return;
            }
        };
        job.outcome = outcome;
        job.reply = reply;
        job.stage = Stage::Verify;
        job.until = self.now
            + if outcome == "failed" {
                0
            } else {
                membership::VERIFY_BUDGET.as_nanos() as u64
            };
        self.admin_poll_in(0);
    }

    /// Records the change in progress (`verified`: the leader's STATUS showing the new
    /// voters) and starts the next.
    fn admin_finish(&mut self, verified: Option<String>, status: String) {
        let Some(job) = self.admin.job.take() else {
            return;
        };
        self.admin.attempt += 1;
        let a = Attempt {
            outcome: job.outcome,
            reply: job.reply,
            verified,
            status,
            violation: None,
        };
        let value = membership::record_named(
            job.change,
            self.names(&job.from),
            self.names(&job.target),
            &a,
        );
        let f = if job.start { "start" } else { "stop" };
        self.nemesis(format!("{f}-reconfig-{}", job.fault), value);
    }

    /// One step of a `Churn` fault: kill a random running node (unless half the nodes are
    /// down already), schedule its restart, and the next kill.
    fn churn(&mut self, i: usize) {
        let f = &self.schedule[i];
        let FaultKind::Churn {
            gap_ms,
            down_ms,
            power_loss,
        } = f.kind
        else {
            return;
        };
        if self.now >= f.stop_ns {
            return;
        }
        let up: Vec<usize> = self.pool().into_iter().filter(|&k| self.up(k)).collect();
        if self.may_kill() && !up.is_empty() {
            let node = up[self.rng.random_range(0..up.len())];
            self.nemesis(
                format!("churn-{i}-kill"),
                json!({"resolved": node::core::fmt_id(self.nodes[node].cfg.id), "power_loss": power_loss}),
            );
            self.crash(node, power_loss);
            let inc = self.nodes[node].incarnation;
            let down = self.rng.random_range(0..=down_ms.max(1) * MS);
            self.at(self.now + down, Ev::Restart { node, inc });
        }
        // Exponentially distributed gaps (mean `gap_ms`).
        let u: f64 = self.rng.random_range(1e-9..1.0);
        let gap = (-u.ln() * (gap_ms.max(1) * MS) as f64) as u64;
        self.at(self.now + gap.max(1), Ev::Churn(i));
    }

    fn invoke(&mut self, client: usize) {
        let op = self.workload.next(&mut self.clients[client].rng);
        let invoke = crate::run::invoke_event(self.clients[client].process, &op);
        let invoke = self.record(invoke);
        let deadline = self.now + self.opts.op_timeout_ns;
        let n = self.nodes.len();
        let c = &mut self.clients[client];
        c.op_no += 1;
        let op_no = c.op_no;
        c.current = Some(Current {
            op,
            invoke,
            deadline,
            tries: 0,
            at: None,
            route: Route::new(n, c.target),
            last_error: "no attempt".into(),
        });
        self.at(deadline, Ev::ClientTimeout { client, op_no });
        self.send_request(client, 0);
    }

    fn send_request(&mut self, client: usize, delay: u64) {
        let c = &mut self.clients[client];
        c.attempt += 1;
        let attempt = c.attempt;
        if let Some(cur) = c.current.as_mut() {
            cur.tries += 1;
            c.target = cur.route.at();
        }
        let node = c.target;
        let lat = delay + self.rng.random_range(50_000..500_000);
        self.at(
            self.now + lat,
            Ev::Request {
                node,
                client,
                attempt,
            },
        );
    }

    fn request_arrives(&mut self, node: usize, client: usize, attempt: u64) -> Result<()> {
        if self.clients[client].attempt != attempt || self.clients[client].current.is_none() {
            return Ok(());
        }
        if !self.up(node) {
            // Connection refused: nothing was sent; try the next node a little later.
            let c = &mut self.clients[client];
            if let Some(cur) = c.current.as_mut() {
                cur.route.next();
                cur.last_error = format!("n{} is down", self.nodes[node].cfg.id);
            }
            self.send_request(client, 10 * MS);
            return Ok(());
        }
        if self.nodes[node].paused {
            // Queued in the socket until the node resumes.
            let again = self.now + self.nodes[node].tick_ns;
            self.at(
                again,
                Ev::Request {
                    node,
                    client,
                    attempt,
                },
            );
            return Ok(());
        }
        let inc = self.nodes[node].incarnation;
        let (req, deadline) = {
            let cur = self.clients[client]
                .current
                .as_mut()
                .expect("checked above");
            cur.at = Some((node, inc));
            (request_of(&cur.op, self.opts.value_bytes), cur.deadline)
        };
        let answer = SimAnswer {
            to: Asker::Client(client),
            attempt,
            outbox: self.outbox.clone(),
        };
        if self.busy(node) {
            self.nodes[node]
                .inbox
                .push(Input::Request(req, answer, deadline));
            return Ok(());
        }
        self.feed(node, |h, env| h.request(env, req, answer, deadline))
    }

    fn reply(&mut self, client: usize, attempt: u64, v: Resp) {
        if self.clients[client].attempt != attempt {
            return;
        }
        let Some(cur) = self.clients[client].current.as_ref() else {
            return;
        };
        let v = if self.opts.value_bytes > 0 {
            unpadded(v)
        } else {
            v
        };
        match classify(&cur.op, v) {
            Reply::Done(c) => self.complete(client, c),
            Reply::Redirect(target) => {
                let tries = cur.tries;
                let next = target
                    .as_deref()
                    .and_then(|t| t.split_whitespace().next())
                    .and_then(|name| node::core::parse_id(name).ok())
                    .and_then(|id| self.index_of(id));
                let cur = self.clients[client].current.as_mut().expect("checked");
                cur.last_error = target.unwrap_or_else(|| "NOTLEADER".into());
                cur.at = None;
                if cur.route.redirected(next) {
                    self.send_request(client, 0);
                } else {
                    // No leader known yet: back off a little and ask the next node.
                    self.send_request(client, 20 * MS * tries.min(5));
                }
            }
        }
    }

    fn complete(&mut self, client: usize, c: Completion) {
        let Some(cur) = self.clients[client].current.take() else {
            return;
        };
        self.clients[client].attempt += 1;
        let invoked = cur.invoke.time;
        let mut event = cur.invoke;
        event.node = cur
            .at
            .map(|(i, _)| node::core::fmt_id(self.nodes[i].cfg.id));
        let info = matches!(c, Completion::Info(_));
        crate::run::complete_event(&mut event, &cur.op, c, &self.workload);
        if info && cur.op.is_read() {
            // A read that may not have happened observed nothing: fail.
            event.kind = OpType::Fail;
        }
        let ok = event.kind == OpType::Ok;
        self.record(event);
        self.completions += 1;
        self.progress
            .completed(invoked, self.now, cur.op.is_read(), ok);
        if info && !cur.op.is_read() {
            self.clients[client].process += self.opts.clients as u64;
        }
        let gap = pause_between(
            self.opts.rate,
            self.opts.clients,
            &mut self.clients[client].rng,
        )
        .map_or(0, |d| d.as_nanos() as u64);
        self.at(self.now + gap.max(1), Ev::ClientNext { client });
    }

    /// The node currently leading (the highest term among those that say so).
    fn leader(&self) -> Option<usize> {
        (0..self.nodes.len())
            .filter_map(|i| {
                let st = self.nodes[i].host.as_ref()?.core().status();
                (st.role == Role::Leader).then_some((st.term, i))
            })
            .max()
            .map(|(_, i)| i)
    }

    /// The ids of the fault pool's nodes.
    fn pool_ids(&self) -> Vec<NodeId> {
        self.pool().iter().map(|&i| self.nodes[i].cfg.id).collect()
    }

    /// The directed links a partition shape cuts, resolved now, among the fault pool
    /// (spares outside the voter set keep reaching every node, as under the nemesis).
    fn cuts(&mut self, shape: &Shape) -> Vec<(NodeId, NodeId)> {
        let ids = self.pool_ids();
        let n = ids.len();
        let id_at = |k: u64| ids[(k.saturating_sub(1) as usize) % n];
        let split = |side: &[NodeId]| -> Vec<(NodeId, NodeId)> {
            let mut out = Vec::new();
            for &a in side {
                for &b in &ids {
                    if !side.contains(&b) {
                        out.push((a, b));
                        out.push((b, a));
                    }
                }
            }
            out
        };
        match shape {
            Shape::IsolateNode(k) => split(&[id_at(*k)]),
            Shape::IsolateLeader => match self.leader() {
                Some(l) => split(&[self.nodes[l].cfg.id]),
                None => Vec::new(),
            },
            Shape::LeaderMinority => {
                let l = self.leader().map_or(ids[0], |l| self.nodes[l].cfg.id);
                let mut side = vec![l];
                let mut others: Vec<NodeId> = ids.iter().copied().filter(|&x| x != l).collect();
                while side.len() < n.div_ceil(2).saturating_sub(1).max(1) && !others.is_empty() {
                    let j = self.rng.random_range(0..others.len());
                    side.push(others.remove(j));
                }
                split(&side)
            }
            Shape::Halves(perm) => {
                let mut r = ChaCha8Rng::seed_from_u64(*perm);
                let mut order = ids.clone();
                for i in (1..order.len()).rev() {
                    let j = r.random_range(0..=i);
                    order.swap(i, j);
                }
                split(&order[..n / 2])
            }
            Shape::Bridge(k) => {
                let b = id_at(*k);
                let others: Vec<NodeId> = ids.iter().copied().filter(|&x| x != b).collect();
                let (left, right) = others.split_at(others.len() / 2);
                let mut out = Vec::new();
                for &a in left {
                    for &c in right {
                        out.push((a, c));
                        out.push((c, a));
                    }
                }
                out
            }
            Shape::OneWay { from, to } => vec![(id_at(*from), id_at(*to))],
            Shape::Swizzle => {
                let mut out = Vec::new();
                for &a in &ids {
                    for &b in &ids {
                        if a != b {
                            out.push((a, b));
                        }
                    }
                }
                out
            }
            Shape::Ring => {
                let mut out = Vec::new();
                for (i, &a) in ids.iter().enumerate() {
                    for (j, &b) in ids.iter().enumerate() {
                        let d = i.abs_diff(j);
                        if i != j && d != 1 && d != n - 1 {
                            out.push((a, b));
                        }
                    }
                }
                out
            }
        }
    }

    fn fault(&mut self, i: usize, start: bool) -> Result<()> {
        let f = self.schedule[i].clone();
        let name = format!("{}-{i}", f.kind.family());
        let mut value = serde_json::to_value(&f.kind).unwrap_or(Value::Null);
        // Node 0 is whoever leads at the start (any node if none does); others are counted
        // in the fault pool (every node without spares).
        if let FaultKind::Reconfig { .. } = f.kind {
            return self.admin_enqueue(i, start);
        }
        let target = match &f.kind {
            FaultKind::Crash { node, .. }
            | FaultKind::Pause { node }
            | FaultKind::Bounce { node, .. }
            | FaultKind::Drift { node, .. }
            | FaultKind::Clock { node, .. }
            | FaultKind::Lag { node, .. } => Some(*node),
            _ => None,
        };
        if let Some(k) = target {
            let n = if start {
                let pool = self.pool();
                let n = if k == 0 {
                    self.leader().unwrap_or(pool[i % pool.len()])
                } else {
                    pool[(k as usize - 1) % pool.len()]
                };
                self.resolved.insert(i, n);
                n
            } else {
                match self.resolved.get(&i) {
                    Some(&n) => n,
                    None => return Ok(()),
                }
            };
            value["resolved"] = json!(node::core::fmt_id(self.nodes[n].cfg.id));
        }
        let idx = |_k: u64| self.resolved.get(&i).copied().unwrap_or(0);
        match &f.kind {
            FaultKind::Crash { node, power_loss } => {
                let n = idx(*node);
                if start {
                    if !self.up(n) {
                        return Ok(());
                    }
                    self.crash(n, *power_loss);
                } else {
                    if self.up(n) {
                        return Ok(());
                    }
                    self.start_node(n)?;
                }
            }
            FaultKind::Pause { node } => {
                let n = idx(*node);
                if start {
                    self.nodes[n].paused = true;
                } else if self.nodes[n].paused {
                    self.nodes[n].paused = false;
                    let missed = std::mem::take(&mut self.nodes[n].missed_ticks);
                    let now = self.now;
                    self.feed(n, |h, _| {
                        for _ in 0..missed.min(MAX_CATCH_UP_TICKS) {
                            h.core_mut().tick();
                        }
                        drop(h.expire(now));
                    })?;
                }
            }
            FaultKind::Bounce { .. } => {
                if start {
                    self.at(self.now, Ev::Bounce(i));
                }
            }
            FaultKind::Freeze {
                nodes,
                pick,
                leader,
            } => {
                if start {
                    let group = self.freeze_group(*nodes, *pick, *leader);
                    for &n in &group {
                        self.nodes[n].paused = true;
                        self.nodes[n].frozen = true;
                    }
                    value["resolved"] = json!(self.names(&group));
                    self.freezes.insert(i, group);
                } else if let Some(group) = self.freezes.remove(&i) {
                    value["resolved"] = json!(self.names(&group));
                    self.thaw(&group)?;
                }
            }
            FaultKind::Outage {
                nodes,
                pick,
                leader,
            } => {
                if start {
                    let group = self.freeze_group(*nodes, *pick, *leader);
                    for &n in &group {
                        self.crash(n, true);
                    }
                    value["resolved"] = json!(self.names(&group));
                    self.outages.insert(i, group);
                } else if let Some(group) = self.outages.remove(&i) {
                    value["resolved"] = json!(self.names(&group));
                    for n in group {
                        if !self.up(n) {
                            self.start_node(n)?;
                        }
                    }
                }
            }
            FaultKind::Churn { .. } => {
                if start {
                    self.at(self.now, Ev::Churn(i));
                }
            }
            FaultKind::Transition { .. } => {
                if start {
                    self.transitions.insert(i);
                } else {
                    self.transitions.remove(&i);
                }
            }
            FaultKind::Apply { .. } => {
                if start {
                    self.apply_kills.insert(i);
                } else {
                    self.apply_kills.remove(&i);
                }
            }
            FaultKind::Partition { shape, hold } => {
                let hold = u32::from(*hold);
                if start {
                    let cuts = self.cuts(shape);
                    value = json!({"shape": shape, "hold": hold == 1, "cut": cuts.iter().map(|(a, b)| format!("n{a}->n{b}")).collect::<Vec<_>>()});
                    for c in &cuts {
                        let e = self.net.cut.entry(*c).or_default();
                        e.0 += 1;
                        e.1 += hold;
                    }
                    self.partition_cuts.insert(i, cuts);
                    if *shape == Shape::Swizzle {
                        self.schedule_unclogs(i, f.stop_ns);
                    }
                } else if let Some(cuts) = self.partition_cuts.remove(&i) {
                    self.uncut(&cuts, hold);
                }
            }
            FaultKind::Net {
                loss,
                dup,
                delay_ms,
            } => {
                if start {
                    self.net.chaos.insert(i, (*loss, *dup, *delay_ms));
                } else {
                    self.net.chaos.remove(&i);
                }
            }
            FaultKind::Drift { node, permille } => {
                let n = idx(*node);
                let nominal = self.nodes[n].cfg.tick.as_nanos() as u64;
                // A faster clock (permille > 1000) means shorter tick periods.
                self.nodes[n].tick_ns = if start {
                    (nominal * 1000 / (*permille).max(1)).max(1)
                } else {
                    nominal.max(1)
                };
            }
            FaultKind::Clock { node, ms } => {
                let n = idx(*node);
                self.nodes[n].wall_offset_ms += if start { *ms } else { -*ms };
            }
            FaultKind::Lag {
                node,
                delay_ms,
                jitter_pct,
            } => {
                if start {
                    self.lags
                        .insert(i, (idx(*node), *delay_ms * MS, *jitter_pct));
                } else {
                    self.lags.remove(&i);
                }
            }
            FaultKind::Persist { .. } => {
                if start {
                    self.persist = Some(i);
                } else if self.persist == Some(i) {
                    self.persist = None;
                    for node in &mut self.nodes {
                        node.persist_skip = None;
                    }
                }
            }
            FaultKind::Stall { .. } => {
                if start {
                    self.stall = Some(i);
                } else if self.stall == Some(i) {
                    self.stall = None;
                }
            }
            FaultKind::Torn {} => {
                if start {
                    self.torn = Some(i);
                } else if self.torn == Some(i) {
                    self.torn = None;
                }
            }
            FaultKind::Reconfig { .. } => {}
            FaultKind::Tcp {} => {
                if start {
                    self.tcp = Some(i);
                } else if self.tcp == Some(i) {
                    // Back to the plain network: queued frames are dropped.
                    self.tcp = None;
                    self.conns.clear();
                }
            }
        }
        let f = if start { "start" } else { "stop" };
        self.nemesis(format!("{f}-{name}"), value);
        Ok(())
    }

    /// The nodes a `Freeze` or `Outage` fault stops, resolved now among the running nodes
    /// of the fault pool: `size` of them in the order of the permutation seed `pick`, the
    /// leader first with `leader`, else left out while the others are enough.
    fn freeze_group(&self, size: u64, pick: u64, leader: bool) -> Vec<usize> {
        let mut order: Vec<usize> = self.pool().into_iter().filter(|&k| self.up(k)).collect();
        let mut r = ChaCha8Rng::seed_from_u64(pick);
        for i in (1..order.len()).rev() {
            let j = r.random_range(0..=i);
            order.swap(i, j);
        }
        let size = (size as usize).min(order.len());
        if let Some(l) = self.leader()
            && let Some(at) = order.iter().position(|&k| k == l)
        {
            let l = order.remove(at);
            if leader {
                order.insert(0, l);
            } else if order.len() < size {
                order.push(l);
            }
        }
        order.truncate(size);
        order
    }

    /// Resumes a frozen group at this instant: each node, in group order, catches up
    /// the ticks it missed and handles what queued for it as one batch, its senders
    /// interleaved in a drawn order (ticks first, as the runtime's driver). Nodes that
    /// crashed meanwhile came back unfrozen and are left alone.
    fn thaw(&mut self, group: &[usize]) -> Result<()> {
        for &n in group {
            if !self.nodes[n].frozen {
                continue;
            }
            let node = &mut self.nodes[n];
            node.frozen = false;
            node.paused = false;
            node.inbox_ticks += std::mem::take(&mut node.missed_ticks);
            node.stalled = true;
            // What kept it busy while frozen (a sync, a re-armed flush) is over.
            node.busy_until = node.busy_until.min(self.now);
            let inc = node.incarnation;
            self.flush(n, inc)?;
        }
        // What the thaw left (`STASIS_LOG=sim=info`): same-term candidates are the
        // coincidence a freeze makes likely.
        if tracing::enabled!(target: "sim", tracing::Level::INFO) {
            let roles: Vec<String> = group
                .iter()
                .filter_map(|&n| {
                    let st = self.nodes[n].host.as_ref()?.core().status();
                    Some(format!("{} {:?} term {}", self.name(n), st.role, st.term))
                })
                .collect();
            tracing::info!(target: "sim", "freeze thawed: {}", roles.join(", "));
        }
        Ok(())
    }

    /// Undoes `cuts` of a partition (holding if `hold` is 1) and delivers what the links
    /// that opened held.
    fn uncut(&mut self, cuts: &[(NodeId, NodeId)], hold: u32) {
        for c in cuts {
            if let Some(k) = self.net.cut.get_mut(c) {
                k.0 -= 1;
                k.1 -= hold;
                if k.0 == 0 {
                    self.net.cut.remove(c);
                }
            }
        }
        self.release_held();
    }

    /// The pairs of swizzle partition `i` heal one at a time, in a random order, at
    /// random moments before `stop_ns`.
    fn schedule_unclogs(&mut self, i: usize, stop_ns: u64) {
        let ids = self.pool_ids();
        let mut pairs = Vec::new();
        for (k, &a) in ids.iter().enumerate() {
            for &b in &ids[k + 1..] {
                pairs.push((a, b));
            }
        }
        let span = stop_ns.saturating_sub(self.now).max(1);
        for (a, b) in pairs {
            let at = self.now + self.rng.random_range(0..span);
            self.at(at, Ev::Unclog { fault: i, a, b });
        }
    }

    /// Delivers held messages whose link is open again, in the order they were held.
    fn release_held(&mut self) {
        let held = std::mem::take(&mut self.net.held);
        let mut k = 0;
        for m in held {
            if self.net.cut.contains_key(&(m.0, m.2)) {
                self.net.held.push(m);
                continue;
            }
            k += 1;
            let (from, from_inc, to, to_inc, msg) = m;
            self.at(
                self.now + k * 10_000,
                Ev::Deliver {
                    from,
                    from_inc,
                    to,
                    to_inc,
                    msg,
                },
            );
        }
    }

    fn crash(&mut self, n: usize, power_loss: bool) {
        self.nodes[n].host = None;
        self.nodes[n].paused = false;
        self.nodes[n].frozen = false;
        // Input read by the process but not handled dies with it (requests' clients see
        // their connection reset below).
        let node = &mut self.nodes[n];
        node.inbox.clear();
        node.inbox_ticks = 0;
        node.busy_until = 0;
        node.stalled = false;
        node.flush_queued = false;
        if power_loss {
            let inc = self.nodes[n].incarnation;
            self.power_lost.insert((n, inc));
            if self.torn.is_some() {
                let seed = self.rng.random();
                // Syncs take simulated time: a power loss while the node's last fsync is
                // under way finds it unfinished (nothing the batch sent has left yet).
                let (from, to) = std::mem::take(&mut self.nodes[n].last_sync);
                let out = std::mem::take(&mut self.nodes[n].last_sync_out);
                if (from..to).contains(&self.now) {
                    self.nodes[n].fs.crash_torn_in_sync(seed);
                    // What the batch sent and answered waited for that fsync: never left.
                    self.queue.retain(|&(_, seq), _| !out.contains(&seq));
                } else {
                    self.nodes[n].fs.crash_torn(seed);
                }
            } else {
                self.nodes[n].fs.crash();
            }
        }
        // Clients waiting on this node see their connection reset: the request may have
        // been applied (writes: info; reads: nothing observed, fail). So does a
        // membership change.
        let inc = self.nodes[n].incarnation;
        if self
            .admin
            .job
            .as_ref()
            .is_some_and(|j| j.stage == Stage::Request && j.at == Some((n, inc)))
        {
            let why = format!("{}: connection reset (node crashed)", self.name(n));
            self.admin_verdict(membership::interpret(Err((true, why))));
        }
        for c in 0..self.clients.len() {
            let waiting = self.clients[c]
                .current
                .as_ref()
                .is_some_and(|cur| cur.at == Some((n, inc)));
            if waiting {
                self.clients[c].target = self.clients[c].home;
                self.complete(
                    c,
                    Completion::Info("connection reset (node crashed)".into()),
                );
            }
        }
    }
}

/// The node request for a client operation (what the RESP client sends as SET/GET/CAS),
/// values padded to `value_bytes` ([`WorldOptions::value_bytes`]).
fn request_of(op: &ClientOp, value_bytes: usize) -> Request {
    let val = |v: &i64| {
        let mut b = v.to_string().into_bytes();
        if b.len() < value_bytes {
            b.resize(value_bytes, b'.');
        }
        b
    };
    match op {
        ClientOp::Read { key } => Request::Get(key.as_bytes().to_vec()),
        ClientOp::Write { key, value } => Request::Set(key.as_bytes().to_vec(), val(value)),
        ClientOp::Cas { key, old, new } => {
            Request::Cas(key.as_bytes().to_vec(), val(old), val(new))
        }
    }
}

/// A read's value without the padding [`request_of`] added.
fn unpadded(v: Resp) -> Resp {
    match v {
        Resp::Bulk(Some(mut b)) => {
            if let Some(end) = b.iter().position(|&c| c == b'.') {
                b.truncate(end);
            }
            Resp::Bulk(Some(b))
        }
        other => other,
    }
}

/// Parses node flags (as `stasis-node` takes them) into the configurations of `n` nodes
/// (the initial voters) and `spares` spare nodes after them, which start with `--join`
/// instead of `--peers` (as the raft and multipaxos specs' `[membership]` start them).
pub fn node_configs(
    protocol: &str,
    n: usize,
    spares: usize,
    extra: &[String],
) -> Result<Vec<NodeConfig>, String> {
    let peers: Vec<String> = (1..=n as u64)
        .map(|k| format!("n{k}={}", sim_peer_addr(k)))
        .collect();
    let peers = peers.join(",");
    (1..=(n + spares) as u64)
        .map(|k| {
            let mut argv: Vec<String> = vec![
                "stasis-node".into(),
                "--id".into(),
                format!("n{k}"),
                "--protocol".into(),
                protocol.into(),
                "--listen".into(),
                sim_addr(k),
                "--peer-listen".into(),
                sim_peer_addr(k),
            ];
            if k as usize <= n {
                argv.extend(["--peers".into(), peers.clone()]);
            } else {
                argv.push("--join".into());
            }
            argv.extend(["--data-dir".into(), format!("/sim/n{k}")]);
            argv.extend(extra.iter().cloned());
            node::config::from_args(argv).map_err(|(msg, _)| {
                format!("node flags: {}", msg.lines().next().unwrap_or("invalid"))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use node::storage::file::{Fs as _, FsOp};

    use super::*;
    use crate::sim::progress;

    /// Requires a correct core's run to be linearizable.
    fn assert_linearizable(out: &Outcome) {
        let check = checker::check_history(
            &out.ops,
            &checker::CheckOptions::new(checker::ModelKind::Kv),
        )
        .unwrap();
        assert_eq!(
            check.verdict.exit_code(),
            0,
            "the correct core stays linearizable"
        );
    }

    /// The worlds of these tests: 3 keys, 5 clients at 200 ops/s (40% writes, 10% cas),
    /// 500 ms operation timeouts, no spares, the default storm and progress bounds.
    fn test_options(seed: u64, sim_ns: u64) -> WorldOptions {
        WorldOptions {
            seed,
            sim_ns,
            clients: 5,
            rate: 200.0,
            keys: 3,
            mix: Mix { write: 40, cas: 10 },
            op_timeout_ns: 500 * MS,
            watch_split: false,
            spares: 0,
            storm_queue: STORM_QUEUE,
            progress_timeouts: progress::TIMEOUTS,
            value_bytes: 0,
        }
    }

    /// A node that cannot restart from its disk is an availability finding (named, in
    /// the history, the run stops there), not a harness error; written values padded to
    /// `value_bytes` read back as the numbers.
    #[test]
    fn a_node_that_cannot_restart_from_its_disk_is_a_finding() {
        let configs = node_configs("raft", 3, 0, &[]).unwrap();
        let opts = WorldOptions {
            value_bytes: 300,
            ..test_options(4, 3_000_000_000)
        };
        let mut w = World::new(opts, configs, node::boot::raft, Vec::new()).unwrap();
        while w.now < 500 * MS && w.step().unwrap() {}
        // Damage n2's WAL where no crash can: its segment header.
        let fs = w.nodes[1].fs.clone();
        let dir = std::path::Path::new("/sim/n2/raft-wal");
        let seg = fs
            .list(dir)
            .unwrap()
            .into_iter()
            .find(|n| n.ends_with(".wal"))
            .unwrap();
        w.crash(1, false);
        let mut f = fs.create(&dir.join(seg)).unwrap();
        f.write_all(&[0xAB; 64]).unwrap();
        f.sync().unwrap();
        w.start_node(1).unwrap();
        assert!(!w.up(1));
        let out = w.run().unwrap();
        let why = out.restart_failed.clone().expect("a finding");
        assert!(why.starts_with("n2 cannot restart from its disk"), "{why}");
        assert!(why.contains("bad magic"), "{why}");
        assert!(out.stalled.is_none());
        let history = String::from_utf8_lossy(&out.history);
        assert!(history.contains("restart-failed"), "{history}");
        // The run stopped at the finding, well before its 3 s.
        assert!(out.ops.iter().all(|o| o.time < 600_000_000));
        assert_linearizable(&out);
        assert!(
            out.ops
                .iter()
                .any(|o| o.f == "read" && o.kind == OpType::Ok && o.value.is_i64())
        );
    }

    #[test]
    fn node_flags_are_validated_like_stasis_node() {
        let c = node_configs("raft", 3, 0, &[]).unwrap();
        assert_eq!(c.len(), 3);
        assert_eq!(c[2].id, 3);
        assert_eq!(c[0].peers.len(), 3);
        let e = node_configs("raft", 3, 0, &["--bug".into(), "no-fencing".into()]).unwrap_err();
        assert!(e.contains("multipaxos") && !e.contains('\n'), "{e}");
    }

    /// The storm guard stops a schedule whose queue outgrows the limit and says what was
    /// queued; a healthy schedule under the default limit is not stopped.
    #[test]
    fn a_queue_past_the_storm_limit_stops_the_schedule_with_a_report() {
        let opts = |storm_queue| WorldOptions {
            storm_queue,
            ..test_options(3, 2_000_000_000)
        };
        let configs = || node_configs("multipaxos", 3, 0, &[]).unwrap();
        let healthy = World::new(opts(STORM_QUEUE), configs(), node::boot::paxos, Vec::new())
            .unwrap()
            .run()
            .unwrap();
        assert!(healthy.storm.is_none(), "{:?}", healthy.storm);
        assert!(healthy.completions > 100);
        let stopped = World::new(opts(8), configs(), node::boot::paxos, Vec::new())
            .unwrap()
            .run()
            .unwrap();
        let report = stopped
            .storm
            .expect("a queue of more than 8 events is a storm here");
        assert!(report.starts_with("message storm: "), "{report}");
        assert!(
            report.contains("limit 8") && report.contains("tick"),
            "{report}"
        );
        assert!(stopped.events < healthy.events);
    }

    /// The progress check on a world where it cannot hold (a bound of 0 election
    /// timeouts: one operation timeout, 500 ms, while no Raft node may campaign before its
    /// 600 ms election timeout) and on the same world with the default bound; and after a
    /// heal that comes late in the schedule, where the run goes on past its simulated time
    /// until the property holds.
    #[test]
    fn progress_after_the_heal_is_checked_within_the_bound() {
        let flags: Vec<String> = ["--tick-ms", "10", "--election-ticks", "60"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let s = 1_000_000_000;
        let run = |timeouts, sim_ns, schedule: Vec<Fault>| {
            let opts = WorldOptions {
                watch_split: true,
                progress_timeouts: timeouts,
                ..test_options(8, sim_ns)
            };
            let configs = node_configs("raft", 3, 0, &flags).unwrap();
            World::new(opts, configs, node::boot::raft, schedule)
                .unwrap()
                .run()
                .unwrap()
        };
        let out = run(0, 2 * s, Vec::new());
        let f = out.stalled.expect("no leader can exist within 500 ms");
        assert!(
            f.starts_with("no progress: no acknowledged write or read")
                && f.contains("healed at 0.0"),
            "{f}"
        );
        assert_eq!(out.election_ns, 600 * MS);
        let out = run(progress::TIMEOUTS, 2 * s, Vec::new());
        assert_eq!(out.stalled, None);
        let r = out.recovery_ns.unwrap();
        assert!(r >= 600 * MS && r < 3 * s, "{r}");
        // Two of three nodes down until 1.9 s of a 2 s schedule: the run goes on after
        // 2 s until a write and a read after the heal succeed.
        let crash = |node| Fault {
            start_ns: s / 2,
            stop_ns: 1_900 * MS,
            kind: FaultKind::Crash {
                node,
                power_loss: false,
            },
        };
        let out = run(progress::TIMEOUTS, 2 * s, vec![crash(1), crash(2)]);
        assert_eq!(out.stalled, None);
        let last = out.ops.iter().map(|o| o.time).max().unwrap();
        assert!(last > 2 * s, "the run ended at {last} ns");
        assert!(out.recovery_ns.unwrap() > 100 * MS);
    }

    #[test]
    fn churn_and_transition_kills_keep_a_majority_up_and_swizzle_heals_every_link() {
        let flags: Vec<String> = ["--tick-ms", "10", "--election-ticks", "60"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let configs = node_configs("raft", 5, 0, &flags).unwrap();
        let s = 1_000_000_000;
        let fault = |start_ns, stop_ns, kind| Fault {
            start_ns,
            stop_ns,
            kind,
        };
        let schedule = vec![
            fault(
                s / 2,
                6 * s,
                FaultKind::Churn {
                    gap_ms: 30,
                    down_ms: 300,
                    power_loss: true,
                },
            ),
            fault(
                s / 2,
                6 * s,
                FaultKind::Transition {
                    pct: 100,
                    within_us: 1000,
                    down_ms: 300,
                },
            ),
            fault(
                s,
                4 * s,
                FaultKind::Partition {
                    shape: Shape::Swizzle,
                    hold: true,
                },
            ),
        ];
        let opts = WorldOptions {
            watch_split: true,
            ..test_options(5, 10 * s)
        };
        let mut w = World::new(opts, configs, node::boot::raft, schedule).unwrap();
        let (mut max_down, mut fully_cut) = (0, false);
        while w.step().unwrap() {
            let down = (0..5).filter(|&k| !w.up(k)).count();
            max_down = max_down.max(down);
            if w.now > s && w.now < s + 50 * MS {
                // Every link is cut just after the swizzle starts.
                fully_cut |= w.net.cut.len() == 20;
            }
            if w.now > 4 * s {
                assert!(
                    w.net.cut.is_empty(),
                    "a link is still cut after the swizzle"
                );
            }
        }
        assert!(fully_cut);
        assert_eq!(max_down, 2, "churn may take down two of five, never three");
        let kills = |name: &str| {
            w.ops
                .iter()
                .filter(|o| o.process == Process::Nemesis && o.f.starts_with(name))
                .count()
        };
        let (churned, transitions) = (kills("churn-0-kill"), kills("transition-1-kill"));
        assert!(churned > 10 && transitions > 0, "{churned} {transitions}");
        let out = w.run().unwrap();
        assert_eq!(out.split_terms, 0);
        assert_linearizable(&out);
    }

    /// `apply` kills: each hits a node whose state machine advanced within the fault's
    /// window before it, a majority stays up, and the run stays linearizable, agreed and
    /// converged (a correct core loses nothing to a crash right after a commit).
    #[test]
    fn apply_kills_hit_nodes_right_after_their_state_machine_advanced() {
        let configs = node_configs("raft", 5, 0, &[]).unwrap();
        let s = 1_000_000_000;
        let schedule = vec![Fault {
            start_ns: s / 2,
            stop_ns: 5 * s,
            kind: FaultKind::Apply {
                pct: 20,
                within_us: 1000,
                down_ms: 50,
                power_loss: true,
            },
        }];
        let mut w =
            World::new(test_options(11, 8 * s), configs, node::boot::raft, schedule).unwrap();
        let mut applied = [0u64; 5];
        let mut advanced_at = [0u64; 5];
        let (mut seen, mut kills, mut max_down) = (0, 0, 0);
        while w.step().unwrap() {
            for k in 0..5 {
                let a = w.nodes[k].host.as_ref().map_or(0, |h| h.applied());
                if a > applied[k] {
                    advanced_at[k] = w.now;
                }
                if w.up(k) {
                    applied[k] = a;
                } else {
                    // A restart applies again from the start.
                    applied[k] = 0;
                }
            }
            max_down = max_down.max((0..5).filter(|&k| !w.up(k)).count());
            for op in &w.ops[seen..] {
                if op.process == Process::Nemesis && op.f == "apply-0-kill" {
                    let n = op.value["resolved"].as_str().unwrap();
                    let k: usize = n[1..].parse::<usize>().unwrap() - 1;
                    assert!(
                        w.now - advanced_at[k] <= 1_000_000,
                        "{n} killed {} ns after its state machine last advanced",
                        w.now - advanced_at[k]
                    );
                    kills += 1;
                }
            }
            seen = w.ops.len();
        }
        assert!(kills > 5, "{kills} kills");
        assert!(max_down <= 2, "{max_down} of 5 down at once");
        let out = w.run().unwrap();
        assert_linearizable(&out);
        assert_eq!(out.diverged, None);
        assert_eq!(out.stalled, None);
    }

    /// Convergence: after progress, a voter that never catches up is a finding naming it;
    /// a healthy run converges.
    #[test]
    fn a_voter_that_never_catches_up_after_the_heal_is_a_finding() {
        let configs = || node_configs("raft", 3, 0, &[]).unwrap();
        let healthy = World::new(
            test_options(5, 3_000_000_000),
            configs(),
            node::boot::raft,
            Vec::new(),
        )
        .unwrap()
        .run()
        .unwrap();
        assert_eq!(healthy.stalled, None);
        assert_linearizable(&healthy);
        let mut w = World::new(
            test_options(5, 3_000_000_000),
            configs(),
            node::boot::raft,
            Vec::new(),
        )
        .unwrap();
        // Once the cluster made progress, n3 dies and is never restarted (no fault
        // would leave it so; the harness's view of a replica that stopped catching up).
        while !w.progress.done() && w.step().unwrap() {}
        assert!(
            w.progress.done() && !w.progress.settled(),
            "n3 not yet caught up"
        );
        w.crash(2, false);
        let out = w.run().unwrap();
        let f = out.stalled.clone().expect("a finding");
        assert!(
            f.starts_with("no convergence: n3 (down) had not applied index"),
            "{f}"
        );
        assert_linearizable(&out);
    }

    /// Runs a 5-node Multi-Paxos world (snapshots every 25 entries) under one `persist`
    /// fault from 0.5 s to 6 s, checking every step: a kill at a storage operation hits
    /// a node that did that operation (`during`: in that very step; otherwise within the
    /// fault's window after it), at most two of five are down, busy nodes batch their
    /// input. Returns the history and (persist kills, largest batch).
    fn persist_world(seed: u64, kind: FaultKind) -> (Vec<u8>, usize, usize) {
        let flags: Vec<String> = [
            "--tick-ms",
            "10",
            "--election-ticks",
            "60",
            "--snapshot-every",
            "25",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let configs = node_configs("multipaxos", 5, 0, &flags).unwrap();
        let s = 1_000_000_000;
        let FaultKind::Persist {
            op,
            during,
            within_us,
            sync_us,
            ..
        } = kind
        else {
            panic!("not a persist fault")
        };
        let schedule = vec![Fault {
            start_ns: s / 2,
            stop_ns: 6 * s,
            kind,
        }];
        let opts = WorldOptions {
            clients: 8,
            rate: 400.0,
            mix: Mix { write: 60, cas: 10 },
            ..test_options(seed, 8 * s)
        };
        let mut w = World::new(opts, configs, node::boot::paxos, schedule).unwrap();
        let mut last_op = [0u64; 5];
        let (mut max_down, mut kills, mut batch) = (0, 0, 0);
        loop {
            let before: Vec<u64> = (0..5).map(|k| w.nodes[k].fs.count(op)).collect();
            let nemesis_before = w.ops.len();
            if !w.step().unwrap() {
                break;
            }
            for k in 0..5 {
                if w.nodes[k].fs.count(op) > before[k] {
                    last_op[k] = w.now;
                }
                batch = batch.max(w.nodes[k].inbox.len());
            }
            for o in &w.ops[nemesis_before..] {
                if o.process != Process::Nemesis || o.f != "persist-0-kill" {
                    continue;
                }
                kills += 1;
                let id = o.value["resolved"].as_str().unwrap();
                let k = (0..5).find(|&k| w.name(k) == id).unwrap();
                assert!(!w.up(k), "{id} killed but up");
                if during {
                    assert!(
                        w.nodes[k].fs.count(op) > before[k],
                        "{id}: no {op:?} in the step that killed it"
                    );
                } else {
                    // Its batch's syncs (a few at most) and then up to within_us.
                    let window = within_us * 1000 + 20 * sync_us * 1000;
                    assert!(
                        w.now - last_op[k] <= window,
                        "{id}: killed {} ns after its last {op:?}",
                        w.now - last_op[k]
                    );
                }
            }
            max_down = max_down.max((0..5).filter(|&k| !w.up(k)).count());
        }
        assert!(max_down <= 2, "persist kills took down {max_down} of five");
        let out = w.run().unwrap();
        assert_linearizable(&out);
        (out.history, kills, batch)
    }

    /// The simulated network carries a message only to a peer whose address the sender
    /// knows, as the runtime connects only to what its address book holds: n1 holding a
    /// wrong address for n2 sends it nothing until n2's own connection reaches n1 (the
    /// handshake names n2's address), then talks to it normally.
    #[test]
    fn a_node_sends_only_to_peers_whose_address_it_knows() {
        let configs = node_configs("raft", 3, 0, &[]).unwrap();
        let s = 1_000_000_000;
        let mut w = World::new(test_options(4, 6 * s), configs, node::boot::raft, vec![]).unwrap();
        w.nodes[0].peers.insert(2, false);
        let mut learned = false;
        let mut sent = false;
        while !sent && w.step().unwrap() {
            let to_n2 = w
                .queue
                .values()
                .any(|e| matches!(e, Ev::Deliver { from: 1, to: 2, .. }));
            learned = w.nodes[0].peers.get(&2) == Some(&true);
            assert!(
                learned || !to_n2,
                "n1 sent to n2 at an address it did not know"
            );
            sent = to_n2;
        }
        assert!(
            learned && sent,
            "n1 never learned n2's address from n2's connection"
        );
        let out = w.run().unwrap();
        assert_linearizable(&out);
    }

    /// Under a `tcp` fault, a message its sender queued while the receiver was down (the
    /// sender's connection to it reset, its reconnect refused) reaches the receiver's
    /// next incarnation, in order, when the sender's next attempt connects; what it wrote
    /// into the dead connection is lost. And a sender's queue dies with the sender.
    #[test]
    fn tcp_queues_for_a_down_node_reach_its_next_incarnation_not_past_a_sender_restart() {
        let configs = node_configs("raft", 3, 0, &[]).unwrap();
        let s = 1_000_000_000;
        let schedule = vec![Fault {
            start_ns: 0,
            stop_ns: 5 * s,
            kind: FaultKind::Tcp {},
        }];
        let mut w =
            World::new(test_options(4, 6 * s), configs, node::boot::raft, schedule).unwrap();
        // Run until n1 has a message for n2 in flight on an open connection.
        let msg = loop {
            assert!(w.step().unwrap(), "no message from n1 to n2");
            let m = w.queue.values().find_map(|e| match e {
                Ev::Deliver {
                    from: 1,
                    to: 2,
                    msg,
                    ..
                } => Some(msg.clone()),
                _ => None,
            });
            if let Some(m) = m {
                break m;
            }
        };
        assert!(w.tcp.is_some());
        let (a, b) = (0, 1);
        let a_inc = w.nodes[a].incarnation;
        let old = w.nodes[b].incarnation;
        assert!(matches!(
            w.conns[&(a, b)].state,
            ConnState::Open { inc, .. } if inc == old
        ));
        let to_b = |w: &World<_, _>, inc: u64| {
            w.queue
                .values()
                .filter(
                    |e| matches!(e, Ev::Deliver { from: 1, to: 2, to_inc, .. } if *to_inc == inc),
                )
                .count()
        };
        let before = to_b(&w, old);
        w.crash(b, false);
        // Written into the dead connection: lost; the write after the reset fails, and the
        // reconnect is refused: the next attempt in 20 ms.
        w.tcp_send(a, a_inc, b, msg.clone(), 0, 0);
        w.now += 5 * MS;
        w.tcp_send(a, a_inc, b, msg.clone(), 0, 0);
        assert_eq!(
            to_b(&w, old),
            before,
            "nothing more is written to the dead incarnation"
        );
        let ConnState::Waiting { until } = w.conns[&(a, b)].state else {
            panic!("refused: waiting to reconnect");
        };
        assert_eq!(until, w.now + 20 * MS);
        for _ in 0..3 {
            w.tcp_send(a, a_inc, b, msg.clone(), 0, 0);
        }
        assert_eq!(w.conns[&(a, b)].queue.len(), 3);
        // b comes back before the attempt; the attempt connects to its new incarnation
        // and writes the three queued messages, in order.
        w.now += 5 * MS;
        w.start_node(b).unwrap();
        let new = w.nodes[b].incarnation;
        assert_eq!(new, old + 1);
        w.now = until;
        w.tcp_reconnect(a, a_inc, b);
        assert!(matches!(
            w.conns[&(a, b)].state,
            ConnState::Open { inc, reset_at: None } if inc == new
        ));
        assert_eq!(to_b(&w, new), 3);
        let times: Vec<u64> = w
            .queue
            .iter()
            .filter(
                |(_, e)| matches!(e, Ev::Deliver { from: 1, to: 2, to_inc, .. } if *to_inc == new),
            )
            .map(|(k, _)| k.0)
            .collect();
        assert!(times.windows(2).all(|p| p[0] <= p[1]), "{times:?}");

        // Again down, a queue waiting: then the sender restarts before b comes back.
        w.crash(b, false);
        w.tcp_send(a, a_inc, b, msg.clone(), 0, 0);
        w.now += 5 * MS;
        w.tcp_send(a, a_inc, b, msg.clone(), 0, 0);
        w.tcp_send(a, a_inc, b, msg.clone(), 0, 0);
        let ConnState::Waiting { until } = w.conns[&(a, b)].state else {
            panic!("refused: waiting to reconnect");
        };
        assert_eq!(w.conns[&(a, b)].queue.len(), 1);
        w.crash(a, false);
        w.start_node(a).unwrap();
        w.start_node(b).unwrap();
        let newer = w.nodes[b].incarnation;
        w.now = until;
        w.tcp_reconnect(a, a_inc, b);
        assert_eq!(to_b(&w, newer), 0, "the queue died with its sender");
        let a_new = w.nodes[a].incarnation;
        assert!(w.conn(a, a_new, b).queue.is_empty());
        assert!(matches!(w.conn(a, a_new, b).state, ConnState::Idle));
    }

    /// A five-node multipaxos world under one `stall` fault over most of its 6 s: returns
    /// the history, the largest batch held and the most senders in one held batch.
    fn stall_world(seed: u64, pct: u32, hold_us: u64) -> (Vec<u8>, usize, usize) {
        let flags: Vec<String> = ["--tick-ms", "10", "--election-ticks", "60"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let configs = node_configs("multipaxos", 5, 0, &flags).unwrap();
        let s = 1_000_000_000;
        let schedule = vec![Fault {
            start_ns: s / 2,
            stop_ns: 5 * s,
            kind: FaultKind::Stall { pct, hold_us },
        }];
        let opts = WorldOptions {
            clients: 8,
            rate: 400.0,
            mix: Mix { write: 60, cas: 10 },
            ..test_options(seed, 6 * s)
        };
        let mut w = World::new(opts, configs, node::boot::paxos, schedule).unwrap();
        let (mut batch, mut senders) = (0, 0);
        while w.step().unwrap() {
            for k in 0..5 {
                let inbox = &w.nodes[k].inbox;
                batch = batch.max(inbox.len());
                let from: BTreeSet<NodeId> = inbox
                    .iter()
                    .filter_map(|i| match i {
                        Input::Msg(f, _) => Some(*f),
                        Input::Request(..) => None,
                    })
                    .collect();
                senders = senders.max(from.len());
            }
        }
        let out = w.run().unwrap();
        assert_linearizable(&out);
        (out.history, batch, senders)
    }

    #[test]
    fn stalls_batch_input_from_several_senders_and_replay_bit_for_bit() {
        let (a, batch, senders) = stall_world(4, 100, 20_000);
        assert!(batch > 2, "a 20 ms stall held at most {batch} inputs");
        assert!(senders >= 2, "held batches came from {senders} sender(s)");
        let (b, _, _) = stall_world(4, 100, 20_000);
        assert!(a == b, "same seed, different histories");
        let (c, _, _) = stall_world(5, 100, 20_000);
        assert!(a != c, "different seeds, same history");
    }

    /// Three raft nodes started with `flags`, 4 clients at `rate` ops/s for `secs`
    /// simulated seconds, and one fault of `kind` from 2 s on for `len_ms`.
    fn one_fault_world(
        seed: u64,
        flags: &[&str],
        kind: FaultKind,
        len_ms: u64,
        rate: f64,
        secs: u64,
    ) -> World<node::raft::Raft, node::raft::storage::RaftStorage> {
        let flags: Vec<String> = flags.iter().map(|s| s.to_string()).collect();
        let configs = node_configs("raft", 3, 0, &flags).unwrap();
        let s = 1_000_000_000;
        let schedule = vec![Fault {
            start_ns: 2 * s,
            stop_ns: 2 * s + len_ms * MS,
            kind,
        }];
        let opts = WorldOptions {
            clients: 4,
            rate,
            ..test_options(seed, secs * s)
        };
        World::new(opts, configs, node::boot::raft, schedule).unwrap()
    }

    /// Raft, 3 nodes, pre-vote off, 10 ms ticks, elections after 60-119 ticks: the two
    /// followers frozen from 2 s for `len_ms`. Returns the history, the group, and each
    /// group node's (role, term) just before and right after the thaw.
    #[allow(clippy::type_complexity)]
    fn freeze_world(
        seed: u64,
        len_ms: u64,
    ) -> (Vec<u8>, Vec<usize>, Vec<(Role, u64)>, Vec<(Role, u64)>) {
        let flags = [
            "--tick-ms",
            "10",
            "--election-ticks",
            "60",
            "--pre-vote",
            "off",
        ];
        let freeze = FaultKind::Freeze {
            nodes: 2,
            pick: seed,
            leader: false,
        };
        let mut w = one_fault_world(seed, &flags, freeze, len_ms, 200.0, 5);
        fn status<C: ConsensusCore, S: CoreStorage<C::Persist>>(
            w: &World<C, S>,
            g: &[usize],
        ) -> Vec<(Role, u64)> {
            g.iter()
                .map(|&k| {
                    let st = w.nodes[k].host.as_ref().unwrap().core().status();
                    (st.role, st.term)
                })
                .collect()
        }
        while w.freezes.is_empty() {
            assert!(w.step().unwrap(), "the freeze never started");
        }
        let group = w.freezes[&0].clone();
        assert!(
            group
                .iter()
                .all(|&k| w.nodes[k].frozen && w.nodes[k].paused)
        );
        let mut before = status(&w, &group);
        while !w.freezes.is_empty() {
            before = status(&w, &group);
            assert!(w.step().unwrap(), "the freeze never ended");
        }
        let after = status(&w, &group);
        assert!(
            group
                .iter()
                .all(|&k| !w.nodes[k].frozen && !w.nodes[k].paused)
        );
        let out = w.run().unwrap();
        assert_linearizable(&out);
        (out.history, group, before, after)
    }

    #[test]
    fn a_freeze_resumes_its_group_at_one_instant_and_replays_bit_for_bit() {
        let mut same_term = 0;
        for seed in 1..=6 {
            let (a, group, before, after) = freeze_world(seed, 1_250);
            assert_eq!(group.len(), 2, "seed {seed}");
            for (b, a) in before.iter().zip(&after) {
                assert_eq!(b.0, Role::Follower, "seed {seed}: {before:?}");
                // Its election timer expired in the catch-up: it campaigns at the thaw.
                assert_eq!(a.0, Role::Candidate, "seed {seed}: {after:?}");
                assert!(a.1 > b.1, "seed {seed}: {before:?} -> {after:?}");
            }
            if after[0].1 == after[1].1 {
                same_term += 1;
            }
            if seed == 1 {
                let (b, ..) = freeze_world(seed, 1_250);
                assert!(a == b, "same seed, different histories");
                let (c, ..) = freeze_world(seed + 100, 1_250);
                assert!(a != c, "different seeds, same history");
            }
        }
        // Two candidates of one term, started at the same instant: the coincidence a
        // freeze exists to make likely.
        assert!(same_term >= 2, "{same_term} of 6 thaws gave one term");
    }

    /// Raft, 3 nodes: an outage of `nodes` nodes from 2 s to 2.3 s. Returns the world after
    /// the run's end, the group, and whether every group node was down inside the window.
    fn outage_world(seed: u64, nodes: u64, bugs: &[&str]) -> (Outcome, Vec<usize>, bool) {
        let mut flags = vec!["--tick-ms", "10", "--election-ticks", "30"];
        for b in bugs {
            flags.extend(["--bug", b]);
        }
        let outage = FaultKind::Outage {
            nodes,
            pick: seed,
            leader: true,
        };
        let mut w = one_fault_world(seed, &flags, outage, 300, 400.0, 4);
        while w.outages.is_empty() {
            assert!(w.step().unwrap(), "the outage never started");
        }
        let group = w.outages[&0].clone();
        let all_down = group
            .iter()
            .all(|&k| !w.up(k) && w.nodes[k].fs.crashes() == 1);
        while !w.outages.is_empty() {
            assert!(w.step().unwrap(), "the outage never ended");
        }
        assert!(group.iter().all(|&k| w.up(k)), "restarted together");
        (w.run().unwrap(), group, all_down)
    }

    #[test]
    fn an_outage_takes_its_group_down_at_once_and_loses_only_what_was_not_synced() {
        for seed in 1..=3 {
            let (out, group, all_down) = outage_world(seed, 3, &[]);
            assert_eq!(group.len(), 3, "seed {seed}");
            assert!(all_down, "seed {seed}: every node lost power at the start");
            // A correct node synced all it acknowledged: nothing acknowledged is lost.
            assert_linearizable(&out);
            assert!(out.restart_failed.is_none(), "{:?}", out.restart_failed);
        }
        let (_, group, _) = outage_world(1, 2, &[]);
        assert_eq!(group.len(), 2);
        // The same outage on nodes that acknowledge before their fsync (the seeded bug
        // `ack-before-fsync`, armed by `node::boot` on the simulated clock) loses
        // acknowledged writes in at least one of the seeds.
        let lost = (1..=3)
            .filter(|&seed| {
                let (out, ..) = outage_world(seed, 3, &["ack-before-fsync"]);
                let check = checker::check_history(
                    &out.ops,
                    &checker::CheckOptions::new(checker::ModelKind::Kv),
                )
                .unwrap();
                check.verdict.exit_code() == 1
            })
            .count();
        assert!(lost >= 1, "no seed lost an acknowledged write");
    }

    #[test]
    fn interleaving_keeps_each_senders_order_and_draws_different_orders() {
        let inputs = || -> Vec<Input<u32>> {
            (0..12u32)
                .map(|k| Input::Msg(u64::from(k % 3) + 1, k))
                .collect()
        };
        let mut seen = BTreeSet::new();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for _ in 0..20 {
            let out: Vec<(NodeId, u32)> = interleave(inputs(), &mut rng)
                .into_iter()
                .map(|i| match i {
                    Input::Msg(f, m) => (f, m),
                    Input::Request(..) => unreachable!(),
                })
                .collect();
            assert_eq!(out.len(), 12);
            for from in 1..=3 {
                let mine: Vec<u32> = out
                    .iter()
                    .filter(|(f, _)| *f == from)
                    .map(|p| p.1)
                    .collect();
                let want: Vec<u32> = (0..12).filter(|k| u64::from(k % 3) + 1 == from).collect();
                assert_eq!(mine, want, "sender n{from}'s order");
            }
            seen.insert(out);
        }
        assert!(
            seen.len() > 10,
            "only {} distinct orders in 20 draws",
            seen.len()
        );
    }

    #[test]
    fn persist_faults_kill_at_the_drawn_storage_event_and_replay_bit_for_bit() {
        // Dying half way through a compaction rewrite or snapshot save (after its rename,
        // before the directory sync), losing what was not synced.
        let rename = FaultKind::Persist {
            op: FsOp::Rename,
            pct: 100,
            during: true,
            within_us: 0,
            power_loss: true,
            down_ms: 50,
            sync_us: 2000,
        };
        let (a, kills, batch) = persist_world(9, rename.clone());
        assert!(kills >= 3, "{kills} kills at renames");
        assert!(
            batch > 1,
            "slow syncs batched no input (largest batch {batch})"
        );
        let (b, again, _) = persist_world(9, rename);
        assert!(a == b && kills == again, "same seed, different histories");
        // Killed soon after a sync, its messages out, the process's memory lost.
        let sync = FaultKind::Persist {
            op: FsOp::Sync,
            pct: 5,
            during: false,
            within_us: 2000,
            power_loss: false,
            down_ms: 50,
            sync_us: 0,
        };
        let (_, kills, batch) = persist_world(10, sync);
        assert!(kills >= 3, "{kills} kills after syncs");
        assert_eq!(batch, 0, "instant syncs batch nothing");
    }
}

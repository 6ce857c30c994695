//! The checking pipeline: partition a history, compile each partition for the model,
//! search each (in parallel across cores), and explain the first violation found.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Barrier, Mutex, OnceLock};
use std::time::{Duration, Instant};

use rustc_hash::FxHashMap;
use serde::Serialize;
use serde_json::Value;

use crate::history::{Op, Operation, Outcome, pair};
use crate::model::{
    Interner, Model, ModelKind, cas_register::CasRegister, fifo_queue::FifoQueue, join_or, kv::Kv,
    multi_register::MultiRegister, mutex::Mutex as MutexModel, porcupine_etcd::PorcupineEtcd,
    porcupine_kv::PorcupineKv, register::register, set::Set, unordered_queue::UnorderedQueue,
};
use crate::search::{GaveUp, Limits, MemoBuf, SearchOp, SearchOutcome, search_in, search_noting};

/// How time values in the history are to be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum TimeUnit {
    /// Nanoseconds since the test started (Stasis JSONL).
    #[default]
    Nanos,
    /// Positions in the file (histories without usable clocks: EDN, Porcupine logs).
    Events,
}

impl TimeUnit {
    /// A time as a person reads it: `12.4 ms` or `event 17`.
    pub fn show(self, t: u64) -> String {
        match self {
            TimeUnit::Nanos => {
                let ms = t as f64 / 1e6;
                if ms >= 1000.0 {
                    format!("{:.3} s", ms / 1000.0)
                } else {
                    format!("{ms:.1} ms")
                }
            }
            TimeUnit::Events => format!("event {t}"),
        }
    }
}

/// What to check and within which budgets.
#[derive(Clone, Debug)]
pub struct CheckOptions {
    pub model: ModelKind,
    /// The model's initial state (`None`: the model's default, nil for registers).
    pub initial: Option<Value>,
    /// Check each key independently (`None`: the model's default, see
    /// [`ModelKind::default_by_key`]).
    pub by_key: Option<bool>,
    /// Wall-clock budget for the whole check; running out gives `Unknown`.
    pub timeout: Option<Duration>,
    /// Memory budget for the search memos, bytes; running out gives `Unknown`.
    pub max_memo_bytes: usize,
    /// Worker threads (0: one per core).
    pub threads: usize,
    pub time_unit: TimeUnit,
    /// Stop the other partitions as soon as one is found not linearizable.
    pub stop_early: bool,
    /// Knossos' convention for Jepsen EDN histories: a register read that returned nil
    /// observed nothing. [`CheckOptions::for_format`] sets it for `jepsen-edn`.
    pub nil_reads_observe_nothing: bool,
}

impl CheckOptions {
    pub fn new(model: ModelKind) -> Self {
        CheckOptions {
            model,
            initial: None,
            by_key: None,
            timeout: None,
            max_memo_bytes: 4 << 30,
            threads: 0,
            time_unit: TimeUnit::Nanos,
            stop_early: true,
            nil_reads_observe_nothing: false,
        }
    }

    /// Options for a history read in `format`: its time unit and reading conventions.
    pub fn for_format(model: ModelKind, format: crate::format::Format) -> Self {
        let mut o = CheckOptions::new(model);
        o.time_unit = format.time_unit();
        o.nil_reads_observe_nothing = format == crate::format::Format::JepsenEdn;
        o
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Linearizable,
    NotLinearizable,
    Unknown,
}

impl Verdict {
    /// The exit code of `stasis check`: 0, 1 or 2.
    pub fn exit_code(self) -> u8 {
        match self {
            Verdict::Linearizable => 0,
            Verdict::NotLinearizable => 1,
            Verdict::Unknown => 2,
        }
    }

    pub fn id(self) -> &'static str {
        match self {
            Verdict::Linearizable => "linearizable",
            Verdict::NotLinearizable => "not-linearizable",
            Verdict::Unknown => "unknown",
        }
    }
}

/// The verdict of one partition (one key, or the whole history).
#[derive(Clone, Debug, Serialize)]
pub struct PartitionResult {
    pub key: Option<String>,
    /// Operations checked (after dropping those that cannot matter).
    pub ops: usize,
    pub verdict: Verdict,
    /// Why the search gave up, for `Unknown`.
    pub gave_up: Option<String>,
    pub elapsed_ms: f64,
    pub steps: u64,
    pub memo_entries: u64,
    /// Bytes the search held when it ended (memo, stacks, caches).
    pub search_bytes: u64,
    /// Most operations with known outcomes the search linearized at once.
    pub deepest: u64,
    /// Which procedure decided (or gave up): the general search or a rule of
    /// [`crate::fast`].
    pub method: crate::fast::Method,
}

/// One operation as an explanation shows it.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct OpView {
    pub process: u64,
    pub f: String,
    /// The model's reading, e.g. `read 3`, `cas 1->2`.
    pub description: String,
    pub outcome: &'static str,
    pub call: u64,
    pub ret: Option<u64>,
    pub invoke_index: u64,
    pub complete_index: Option<u64>,
}

/// One step of the longest linearizable prefix.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct PrefixStep {
    pub op: OpView,
    pub state_after: String,
}

/// Why a partition is not linearizable.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Explanation {
    pub key: Option<String>,
    pub model: &'static str,
    pub time_unit: TimeUnit,
    pub initial_state: String,
    /// The operation that cannot be linearized.
    pub blocked: OpView,
    /// The longest linearizable prefix found, with the state after each step.
    pub prefix: Vec<PrefixStep>,
    /// The last `ok` operation of the partition that completed before `blocked` was invoked.
    pub previous_ok: Option<OpView>,
    /// Every state in which `blocked` could have taken effect, over all orders consistent
    /// with real time (at most 16).
    pub possible_states: Vec<String>,
    /// One plain sentence.
    pub sentence: String,
    /// Every operation of the partition, for drawing.
    pub partition_ops: Vec<OpView>,
}

/// The result of a check.
#[derive(Clone, Debug, Serialize)]
pub struct CheckResult {
    pub verdict: Verdict,
    pub model: &'static str,
    pub partitions: Vec<PartitionResult>,
    /// Set when the verdict is `NotLinearizable`.
    pub explanation: Option<Explanation>,
    /// Operations in the history (client operations after pairing).
    pub ops: usize,
    pub elapsed_ms: f64,
}

/// An operation the model cannot read (for example a `cas` without `[old, new]`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CheckError(pub String);

/// Checks a history of events (pairs invokes with completions first).
pub fn check_history(events: &[Op], opts: &CheckOptions) -> Result<CheckResult, CheckError> {
    check_operations(&pair(events), opts)
}

/// Checks paired operations.
pub fn check_operations(ops: &[Operation], opts: &CheckOptions) -> Result<CheckResult, CheckError> {
    let init = opts.initial.clone().unwrap_or(Value::Null);
    let by_key = opts.by_key.unwrap_or(opts.model.default_by_key());
    let p = Partitions::new(ops, by_key);
    match opts.model {
        ModelKind::Register => {
            let mut m = register(init);
            m.nil_reads_observe_nothing = opts.nil_reads_observe_nothing;
            run(&m, ops, &p, opts)
        }
        ModelKind::CasRegister => run(
            &CasRegister {
                initial: init,
                no_cas: false,
                nil_reads_observe_nothing: opts.nil_reads_observe_nothing,
            },
            ops,
            &p,
            opts,
        ),
        ModelKind::Kv if by_key => {
            let kv = Kv { initial: init };
            run(&kv.register(), ops, &p, opts)
        }
        ModelKind::Kv => run(&Kv { initial: init }, ops, &p, opts),
        ModelKind::MultiRegister => run(&MultiRegister { initial: init }, ops, &p, opts),
        ModelKind::Mutex => run(&MutexModel, ops, &p, opts),
        ModelKind::Set => run(&Set, ops, &p, opts),
        ModelKind::UnorderedQueue => run(&UnorderedQueue, ops, &p, opts),
        ModelKind::FifoQueue => run(&FifoQueue, ops, &p, opts),
        ModelKind::PorcupineEtcd => run(&PorcupineEtcd, ops, &p, opts),
        ModelKind::PorcupineKv => run(&PorcupineKv::default(), ops, &p, opts),
    }
}

/// Operations grouped by key (or one group), each group in history order.
struct Partitions {
    keys: Vec<Option<String>>,
    members: Vec<Vec<u32>>,
}

impl Partitions {
    fn new(ops: &[Operation], by_key: bool) -> Partitions {
        if !by_key {
            return Partitions {
                keys: vec![None],
                members: vec![(0..ops.len() as u32).collect()],
            };
        }
        let mut index: FxHashMap<Option<&str>, usize> = FxHashMap::default();
        let mut keys = Vec::new();
        let mut members: Vec<Vec<u32>> = Vec::new();
        for (i, op) in ops.iter().enumerate() {
            let k = op.key.as_deref();
            let slot = *index.entry(k).or_insert_with(|| {
                keys.push(k.map(str::to_owned));
                members.push(Vec::new());
                members.len() - 1
            });
            members[slot].push(i as u32);
        }
        Partitions { keys, members }
    }
}

/// Whether an operation can be skipped before compiling: a definite failure has no effect
/// under every model except Porcupine's etcd model, where a failed cas is an observation.
fn droppable(model: ModelKind, op: &Operation) -> bool {
    op.outcome == Outcome::Fail && !(model == ModelKind::PorcupineEtcd && op.f == "cas")
}

enum PartOutcome {
    Done(PartitionResult),
    Failed(PartitionResult, Box<Explanation>),
    BadInput(String),
}

const NOT_SEARCHED: &str = "not searched: another key was already not linearizable";

fn run<M: Model + Send>(
    model: &M,
    ops: &[Operation],
    p: &Partitions,
    opts: &CheckOptions,
) -> Result<CheckResult, CheckError> {
    let start = Instant::now();
    let deadline = opts.timeout.map(|t| start + t);
    let threads = if opts.threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        opts.threads
    }
    .min(p.members.len())
    .max(1);
    let mut order: Vec<usize> = (0..p.members.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(p.members[i].len()));
    let cancel = AtomicBool::new(false);
    let results: Mutex<Vec<(usize, PartOutcome)>> = Mutex::new(Vec::new());
    // The memory budget caps the whole process: what it holds already (the history,
    // the operations) and a reserve for compiling and explaining partitions come off it,
    // and each worker's search gets an equal share of the rest.
    let held = resident_bytes().unwrap_or(0);
    let limits = Limits {
        deadline,
        max_memo_bytes: opts.max_memo_bytes.saturating_sub(held + RESERVE) / threads,
        cancel: Some(&cancel),
        unknown_first: false,
    };
    // A single partition on a machine with a spare core: race both candidate orders.
    let race = p.members.len() == 1
        && std::thread::available_parallelism().map_or(1, |n| n.get()) >= 2
        && opts.threads != 1;
    // Partitions compiled ahead of the search (for models that screen them).
    let screens = model.screens();
    let prepared: Vec<Mutex<Option<Prepared<M>>>> = if screens {
        (0..p.members.len()).map(|_| Mutex::new(None)).collect()
    } else {
        Vec::new()
    };
    // Partitions to search, in stages: a stage starts once the one before has ended.
    // Without a screen, one stage in size order; with one, decided once every partition
    // is compiled and screened (below).
    let stages: OnceLock<Vec<Vec<usize>>> = OnceLock::new();
    if !screens {
        stages.get_or_init(|| vec![order.clone()]);
    }
    // One counter per phase: compiling (with a screen), then each stage.
    let next: [AtomicUsize; 3] = Default::default();
    let barrier = Barrier::new(threads);
    let prepare_one = |part: usize| match prepare(
        model,
        opts.model,
        ops,
        &p.members[part],
        p.keys[part].as_deref(),
    ) {
        Ok(prep) => *prepared[part].lock().expect("no worker panics") = Some(prep),
        Err(m) => results
            .lock()
            .expect("no worker panics")
            .push((part, PartOutcome::BadInput(m))),
    };
    // Compile and screen every partition first. A refuted partition is sure to fail,
    // so refuted ones are searched first (those with the fewest operations before the
    // refutation first), alone, and when the check stops at the first violation the
    // others are not searched at all (rather than each core searching whatever comes
    // next until a failure cancels it). Should a screen be wrong, the second stage still
    // searches the others: a screen can change the cost, not the verdict.
    let plan = || {
        let refuted = |part: usize| {
            prepared[part]
                .lock()
                .expect("no worker panics")
                .as_ref()
                .and_then(|prep| prep.refuted)
        };
        let (mut first, rest): (Vec<usize>, Vec<usize>) = order
            .iter()
            .copied()
            .filter(|&part| prepared[part].lock().expect("no worker panics").is_some())
            .partition(|&part| refuted(part).is_some());
        first.sort_by_key(|&part| refuted(part));
        if opts.stop_early && !results.lock().expect("no worker panics").is_empty() {
            // Bad input: the check reports it and nothing else.
            Vec::new()
        } else if opts.stop_early {
            vec![first, rest]
        } else {
            vec![first.into_iter().chain(rest).collect()]
        }
    };
    let search_one = |part: usize, memo: &mut MemoBuf<M::State>| {
        let key = p.keys[part].clone();
        let prep = prepared
            .get(part)
            .and_then(|slot| slot.lock().expect("no worker panics").take());
        let out = if opts.stop_early && cancel.load(Ordering::Relaxed) {
            // The verdict is already known: no search (nor compiling) for this one.
            PartOutcome::Done(PartitionResult {
                key,
                ops: prep.map_or(0, |prep| prep.pruned.len()),
                verdict: Verdict::Unknown,
                gave_up: Some(NOT_SEARCHED.into()),
                elapsed_ms: 0.0,
                steps: 0,
                memo_entries: 0,
                search_bytes: 0,
                deepest: 0,
                method: crate::fast::Method::Search,
            })
        } else {
            let start = Instant::now();
            let prep = prep.map(Ok).unwrap_or_else(|| {
                prepare(model, opts.model, ops, &p.members[part], key.as_deref())
            });
            match prep {
                Ok(prep) => check_partition(model, ops, prep, key, limits, opts, memo, start, race),
                Err(m) => PartOutcome::BadInput(m),
            }
        };
        if opts.stop_early && matches!(out, PartOutcome::Failed(..) | PartOutcome::BadInput(_)) {
            cancel.store(true, Ordering::Relaxed);
        }
        results.lock().expect("no worker panics").push((part, out));
    };
    // Every worker runs the phases in turn, taking items as it frees up; a barrier ends
    // each phase (one pool of threads for the whole check: spawning threads again per
    // phase costs a scheduling delay each time on a busy machine).
    let work = || {
        let mut memo = MemoBuf::default();
        if screens {
            loop {
                let i = next[0].fetch_add(1, Ordering::Relaxed);
                let Some(&part) = order.get(i) else { break };
                prepare_one(part);
            }
            if barrier.wait().is_leader() {
                stages.get_or_init(plan);
            }
            barrier.wait();
        }
        let stages = stages.get().expect("the plan is made before any search");
        for (k, stage) in stages.iter().enumerate() {
            loop {
                let i = next[1 + k].fetch_add(1, Ordering::Relaxed);
                let Some(&part) = stage.get(i) else { break };
                search_one(part, &mut memo);
            }
            if k + 1 < stages.len() {
                barrier.wait();
            }
        }
        memo.release();
    };
    if threads <= 1 {
        work();
    } else {
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(work);
            }
        });
    }
    let mut results = results.into_inner().expect("no worker panics");
    results.sort_by_key(|(part, _)| *part);
    let mut partitions = Vec::with_capacity(results.len());
    let mut explanation: Option<(u64, Explanation)> = None;
    let mut bad_input = None;
    for (_, out) in results {
        match out {
            PartOutcome::Done(r) => partitions.push(r),
            PartOutcome::Failed(r, e) => {
                // Report the violation that starts earliest in the history.
                let first = e.partition_ops.first().map_or(0, |o| o.invoke_index);
                if explanation.as_ref().is_none_or(|(f, _)| first < *f) {
                    explanation = Some((first, *e));
                }
                partitions.push(r);
            }
            PartOutcome::BadInput(m) => {
                bad_input.get_or_insert(m);
            }
        }
    }
    if let Some(m) = bad_input {
        // Keys and values from the history are quoted in it: keep the error one line.
        return Err(CheckError(m.replace('\n', "\\n").replace('\r', "\\r")));
    }
    let verdict = if explanation.is_some() {
        Verdict::NotLinearizable
    } else if partitions.iter().any(|r| r.verdict == Verdict::Unknown) {
        Verdict::Unknown
    } else {
        Verdict::Linearizable
    };
    Ok(CheckResult {
        verdict,
        model: opts.model.id(),
        partitions,
        explanation: explanation.map(|(_, e)| e),
        ops: ops.len(),
        elapsed_ms: start.elapsed().as_secs_f64() * 1e3,
    })
}

/// Memory of the process kept out of the searches' budget (compiling, explaining, the
/// result), bytes.
const RESERVE: usize = 24 << 20;

/// The process's resident memory (Linux `/proc/self/statm`), bytes; `None` elsewhere.
fn resident_bytes() -> Option<usize> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: usize = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// Compiles a partition: the search ops and, for each, the index of its `Operation`.
#[allow(clippy::type_complexity)]
pub(crate) fn compile<M: Model>(
    model: &M,
    kind: ModelKind,
    ops: &[Operation],
    members: &[u32],
) -> Result<(Vec<SearchOp<M::Input>>, Vec<u32>, Interner), String> {
    let mut cx = Interner::new();
    let mut sops = Vec::with_capacity(members.len());
    let mut origin = Vec::with_capacity(members.len());
    for &i in members {
        let op = &ops[i as usize];
        if droppable(kind, op) {
            continue;
        }
        let compiled = model.compile(op, &mut cx).map_err(|e| {
            format!(
                "operation at index {} (process {}, {}): {e}",
                op.invoke_index, op.process, op.f
            )
        })?;
        if let Some(input) = compiled {
            sops.push(SearchOp {
                call: op.call,
                ret: match op.outcome {
                    Outcome::Unknown => None,
                    _ => Some(op.ret.unwrap_or(op.call)),
                },
                input,
            });
            origin.push(i);
        }
    }
    Ok((sops, origin, cx))
}

/// Sound per-model pruning of unknown operations (see each model's `prune_unknown`):
/// the operations to search, and for each its index in `sops`.
fn prune<M: Model>(model: &M, sops: &[SearchOp<M::Input>]) -> (Vec<SearchOp<M::Input>>, Vec<u32>) {
    let inputs: Vec<M::Input> = sops.iter().map(|o| o.input.clone()).collect();
    let unknown: Vec<bool> = sops.iter().map(|o| o.ret.is_none()).collect();
    let drop = model.prune_unknown(&inputs, &unknown);
    let keep: Vec<u32> = (0..sops.len() as u32)
        .filter(|&i| !drop[i as usize])
        .collect();
    (
        keep.iter().map(|&i| sops[i as usize].clone()).collect(),
        keep,
    )
}

fn view<M: Model>(model: &M, op: &Operation, input: Option<&M::Input>, cx: &Interner) -> OpView {
    OpView {
        process: op.process,
        f: op.f.clone(),
        description: match input {
            Some(i) => model.show_input(i, cx),
            None => format!("{} {}", op.f, crate::model::show_value(&op.input)),
        },
        outcome: match op.outcome {
            Outcome::Ok => "ok",
            Outcome::Fail => "fail",
            Outcome::Unknown => "info",
        },
        call: op.call,
        ret: op.ret,
        invoke_index: op.invoke_index,
        complete_index: op.complete_index,
    }
}

/// A partition compiled for the search.
struct Prepared<M: Model> {
    /// The partition's own model instance (see [`Model::for_partition`]).
    local: Option<M>,
    sops: Vec<SearchOp<M::Input>>,
    origin: Vec<u32>,
    cx: Interner,
    init: M::State,
    /// `sops` after [`prune`], and for each its index in `sops`.
    pruned: Vec<SearchOp<M::Input>>,
    kept: Vec<u32>,
    /// When the model's screen ([`Model::refutes`]) proved the partition not
    /// linearizable: how many operations were invoked before the refutation's time (the
    /// search never gets past it, so fewer usually means a shorter search).
    refuted: Option<usize>,
    /// Time spent compiling and screening.
    prepare_ms: f64,
}

/// Compiles, prunes and (for models that screen) screens one partition; `Err` is a
/// one-line message about an operation the model cannot read.
fn prepare<M: Model>(
    model: &M,
    kind: ModelKind,
    ops: &[Operation],
    members: &[u32],
    key: Option<&str>,
) -> Result<Prepared<M>, String> {
    let start = Instant::now();
    let local = model.for_partition();
    let m = local.as_ref().unwrap_or(model);
    let (sops, origin, mut cx) = compile(m, kind, ops, members).map_err(|e| {
        let k = key.map(|k| format!("key {k}: ")).unwrap_or_default();
        format!("{k}{e}")
    })?;
    let init = m.init(&mut cx);
    let (pruned, kept) = prune(m, &sops);
    let refuted = if m.screens() {
        m.refutes(&pruned)
            .map(|t| pruned.iter().filter(|o| o.call <= t).count())
    } else {
        None
    };
    Ok(Prepared {
        local,
        sops,
        origin,
        cx,
        init,
        pruned,
        kept,
        refuted,
        prepare_ms: start.elapsed().as_secs_f64() * 1e3,
    })
}

/// Searches a partition with crashed ops twice at once, in both candidate orders
/// ([`Limits::unknown_first`]), each with half the memory; the first decision stops the
/// other. Both searches are complete, so either decision is the verdict; neither
/// deciding gives the first one's reason. Only used for a check of a single partition,
/// so no other partition's failure needs to cancel it.
fn race_orders<M: Model>(
    model: &M,
    init: &M::State,
    ops: &[SearchOp<M::Input>],
    limits: Limits<'_>,
    memo: &mut MemoBuf<M::State>,
) -> (SearchOutcome, crate::search::SearchStats) {
    let decided = |o: &SearchOutcome| !matches!(o, SearchOutcome::Unknown(_));
    let done = AtomicBool::new(false);
    let half = Limits {
        max_memo_bytes: limits.max_memo_bytes / 2,
        cancel: Some(&done),
        ..limits
    };
    let init2 = init.clone();
    std::thread::scope(|sc| {
        let other = sc.spawn(|| {
            let mut buf = MemoBuf::default();
            let lim = Limits {
                unknown_first: true,
                ..half
            };
            let (o, s, _) = search_in(model, init2, ops, lim, None, &mut buf);
            if decided(&o) {
                done.store(true, Ordering::Relaxed);
            }
            drop(buf);
            (o, s)
        });
        let (o, s, _) = search_in(model, init.clone(), ops, half, None, memo);
        if decided(&o) {
            done.store(true, Ordering::Relaxed);
        }
        let theirs = other.join().expect("no search panics");
        if decided(&o) || !decided(&theirs.0) {
            (o, s)
        } else {
            theirs
        }
    })
}

/// When a rule of [`crate::fast`] found a violation: the time and memory the search may
/// spend to explain it (longest prefix, possible states) before the rule's sentence does.
const EXPLAIN_BUDGET: Duration = Duration::from_millis(250);
const EXPLAIN_MEMORY: usize = 128 << 20;

#[allow(clippy::too_many_arguments)]
fn check_partition<M: Model>(
    model: &M,
    ops: &[Operation],
    prep: Prepared<M>,
    key: Option<String>,
    limits: Limits<'_>,
    opts: &CheckOptions,
    memo: &mut MemoBuf<M::State>,
    start: Instant,
    race: bool,
) -> PartOutcome {
    let Prepared {
        local,
        sops,
        origin,
        cx,
        init,
        pruned,
        kept,
        prepare_ms,
        refuted,
    } = prep;
    let model = local.as_ref().unwrap_or(model);
    let elapsed = || prepare_ms + start.elapsed().as_secs_f64() * 1e3;
    // The rules of `crate::fast` first. A linearizable decision ends here. A violation
    // is certain, but the explanation (longest prefix, possible states) comes from the
    // search when it gets there quickly: it runs on a small budget, and if that runs out
    // the rule's own sentence explains.
    let fast = crate::fast::decide(model, &init, &pruned);
    let method = fast.map_or(crate::fast::Method::Search, |d| d.method);
    if let Some(d) = fast
        && d.violation.is_none()
    {
        return PartOutcome::Done(PartitionResult {
            key,
            ops: pruned.len(),
            verdict: Verdict::Linearizable,
            gave_up: None,
            elapsed_ms: elapsed(),
            steps: 0,
            memo_entries: 0,
            search_bytes: 0,
            deepest: 0,
            method,
        });
    }
    let rule_violation = fast.and_then(|d| d.violation);
    let limits = match rule_violation {
        None => limits,
        Some(_) => {
            let soon = Instant::now() + EXPLAIN_BUDGET;
            Limits {
                deadline: Some(limits.deadline.map_or(soon, |d| d.min(soon))),
                max_memo_bytes: limits.max_memo_bytes.min(EXPLAIN_MEMORY),
                cancel: None,
                unknown_first: false,
            }
        }
    };
    // A refuted partition is sure to fail: note what the search meets so that the
    // explanation may not need a second pass (see `search_noting`). The noted states are
    // those of the second pass only when both search the same operations.
    let noting = (refuted.is_some() || rule_violation.is_some()) && pruned.len() == sops.len();
    let (outcome, stats, met) = if noting {
        let (o, s, met) = search_noting(model, init.clone(), &pruned, limits, memo);
        (o, s, Some(met))
    } else if race && pruned.iter().any(|o| o.ret.is_none()) {
        let (o, s) = race_orders(model, &init, &pruned, limits, memo);
        (o, s, None)
    } else {
        let (o, s, _) = search_in(model, init.clone(), &pruned, limits, None, memo);
        (o, s, None)
    };
    let mut result = PartitionResult {
        key: key.clone(),
        ops: pruned.len(),
        verdict: Verdict::Linearizable,
        gave_up: None,
        elapsed_ms: 0.0,
        steps: stats.steps,
        memo_entries: stats.memo_entries,
        search_bytes: stats.bytes,
        deepest: stats.deepest,
        method,
    };
    if let (Some((blocked, why)), SearchOutcome::Unknown(_) | SearchOutcome::Linearizable) =
        (rule_violation, &outcome)
    {
        // The rules are proven sound and tested against the search; a search that
        // finds a linearization here would be a bug in one of them.
        debug_assert!(
            !matches!(outcome, SearchOutcome::Linearizable),
            "a rule refuted a linearizable partition"
        );
        result.verdict = Verdict::NotLinearizable;
        let failure = crate::search::Failure {
            prefix: Vec::new(),
            blocked: kept[blocked],
        };
        let mut e = explain(
            model,
            ops,
            &sops,
            &origin,
            &cx,
            init,
            &failure,
            &[],
            key,
            opts,
        );
        let at = |i: usize| kept[i] as usize;
        e.sentence = fast_sentence(model, ops, &sops, &origin, &cx, opts, at(blocked), why, at);
        result.elapsed_ms = elapsed();
        return PartOutcome::Failed(result, Box::new(e));
    }
    let failure = match outcome {
        SearchOutcome::Linearizable => None,
        SearchOutcome::Unknown(g) => {
            result.verdict = Verdict::Unknown;
            let mib = |b: u64| b as f64 / f64::from(1 << 20);
            let progress = format!(
                "after {} steps, with at most {} of {} operations with known outcomes \
                 linearized at once; the search held {:.0} MiB",
                stats.steps,
                stats.deepest,
                pruned.iter().filter(|o| o.ret.is_some()).count(),
                mib(stats.bytes)
            );
            result.gave_up = Some(match g {
                GaveUp::Timeout => format!("time budget (--timeout) ran out {progress}"),
                GaveUp::Memory => format!(
                    "memory budget (--max-memory) ran out: this search's share was {:.0} MiB; \
                     {progress}",
                    mib(limits.max_memo_bytes as u64)
                ),
                GaveUp::Cancelled => "stopped: another key was already not linearizable".into(),
            });
            None
        }
        // Back to indices of the unpruned operations, which explanations show.
        SearchOutcome::NotLinearizable(f) => Some(crate::search::Failure {
            prefix: f
                .prefix
                .iter()
                .map(|&(i, a)| (kept[i as usize], a))
                .collect(),
            blocked: kept[f.blocked as usize],
        }),
    };
    let Some(failure) = failure else {
        result.elapsed_ms = elapsed();
        return PartOutcome::Done(result);
    };
    result.verdict = Verdict::NotLinearizable;
    // Which states could the blocked operation have met? What the search noted, if it
    // never linearized that operation; otherwise a second pass, without pruning, that
    // watches it.
    let noted = met.and_then(|mut m| {
        let b = failure.blocked as usize;
        (!m.lifted[b]).then(|| std::mem::take(&mut m.states[b]))
    });
    let watched = match noted {
        Some(w) => w,
        None => {
            search_in(
                model,
                init.clone(),
                &sops,
                Limits {
                    cancel: None,
                    ..limits
                },
                Some(failure.blocked),
                memo,
            )
            .2
        }
    };
    let e = explain(
        model, ops, &sops, &origin, &cx, init, &failure, &watched, key, opts,
    );
    result.elapsed_ms = elapsed();
    PartOutcome::Failed(result, Box::new(e))
}

#[allow(clippy::too_many_arguments)]
fn explain<M: Model>(
    model: &M,
    ops: &[Operation],
    sops: &[SearchOp<M::Input>],
    origin: &[u32],
    cx: &Interner,
    init: M::State,
    failure: &crate::search::Failure,
    watched: &[M::State],
    key: Option<String>,
    opts: &CheckOptions,
) -> Explanation {
    let orig = |i: u32| &ops[origin[i as usize] as usize];
    let mut state = init.clone();
    let mut prefix = Vec::with_capacity(failure.prefix.len());
    for &(i, alt) in &failure.prefix {
        if let Some(s) = model.step_alt(&state, &sops[i as usize].input, alt) {
            state = s;
        }
        prefix.push(PrefixStep {
            op: view(model, orig(i), Some(&sops[i as usize].input), cx),
            state_after: model.show_state(&state, cx),
        });
    }
    let b = failure.blocked;
    let bop = orig(b);
    let blocked = view(model, bop, Some(&sops[b as usize].input), cx);
    let previous_ok = members_before(ops, origin, bop.call)
        .map(|i| view(model, orig(i), Some(&sops[i as usize].input), cx));
    let possible: Vec<String> = watched.iter().map(|s| model.show_state(s, cx)).collect();
    let part_key = key
        .as_deref()
        .filter(|_| opts.by_key.unwrap_or(opts.model.default_by_key()));
    let what = model.describe(&sops[b as usize].input, cx, part_key);
    let when = match bop.ret {
        Some(r) if bop.outcome != Outcome::Unknown => {
            format!("at {}", opts.time_unit.show(r))
        }
        _ => format!(
            "(invoked at {}, never returned)",
            opts.time_unit.show(bop.call)
        ),
    };
    // States in which the operation's observation is possible, and the others.
    let input = &sops[b as usize].input;
    let (fits, rejects): (Vec<&M::State>, Vec<&M::State>) =
        watched.iter().partition(|s| model.step(s, input).is_some());
    let show =
        |v: &[&M::State]| -> Vec<String> { v.iter().map(|s| model.show_state(s, cx)).collect() };
    let sentence = if watched.is_empty() {
        format!(
            "{what} {when} (process {}), but no order of the operations consistent with real \
             time reaches it before it returned",
            bop.process
        )
    } else if fits.is_empty() {
        format!(
            "{what} {when} (process {}), but in every order of the operations consistent \
             with real time, {} could only be {} when it took effect",
            bop.process,
            model.state_noun(),
            join_or(&show(&rejects))
        )
    } else {
        format!(
            "{what} {when} (process {}); it fits only when {} is {}, and no order of the \
             operations consistent with real time that puts it there can be completed{}",
            bop.process,
            model.state_noun(),
            join_or(&show(&fits)),
            if rejects.is_empty() {
                String::new()
            } else {
                format!(
                    " (otherwise {} could only be {})",
                    model.state_noun(),
                    join_or(&show(&rejects))
                )
            }
        )
    };
    let partition_ops = (0..sops.len() as u32)
        .map(|i| view(model, orig(i), Some(&sops[i as usize].input), cx))
        .collect();
    Explanation {
        key,
        model: opts.model.id(),
        time_unit: opts.time_unit,
        initial_state: model.show_state(&init, cx),
        blocked,
        prefix,
        previous_ok,
        possible_states: possible,
        sentence,
        partition_ops,
    }
}

/// The sentence of a violation a rule of [`crate::fast`] found. `b`: the blocked op (index
/// into `sops`); `at` maps the rule's indices (into the pruned ops) to `sops`.
#[allow(clippy::too_many_arguments)]
fn fast_sentence<M: Model>(
    model: &M,
    ops: &[Operation],
    sops: &[SearchOp<M::Input>],
    origin: &[u32],
    cx: &Interner,
    opts: &CheckOptions,
    b: usize,
    why: crate::fast::Why,
    at: impl Fn(usize) -> usize,
) -> String {
    use crate::fast::Why;
    use crate::fast::refute::Reason;
    let t = |x: u64| opts.time_unit.show(x);
    let who = |i: usize| {
        let op = &ops[origin[i] as usize];
        let span = match (op.outcome, op.ret) {
            (Outcome::Unknown, _) | (_, None) => {
                format!("invoked at {}, never returned", t(op.call))
            }
            (_, Some(r)) => format!("{} to {}", t(op.call), t(r)),
        };
        format!(
            "{} (process {}, {span})",
            model.describe(&sops[i].input, cx, None),
            op.process
        )
    };
    let value = |v: u32| cx.show(v);
    let what = who(b);
    match why {
        Why::Refuted(Reason::NoWriter { value: v }) => format!(
            "{what} observed {}, a value no operation writes and not the initial value",
            value(v)
        ),
        Why::Refuted(Reason::Overwritten {
            value: v,
            writer,
            by,
        }) => {
            let source = match writer {
                Some(w) => format!("its only write, {},", who(at(w))),
                None => "the initial value, which nothing writes again,".into(),
            };
            format!(
                "{what} observed {}, but {source} was followed by {}, which set another \
                 value, before it was invoked",
                value(v),
                who(at(by))
            )
        }
        Why::Zones(with) => format!(
            "{what}: every value is written once, and the write and reads of its value must \
             span a time in which {} must be the value (Gibbons-Korach zones)",
            with.map_or_else(|| "another value".into(), value)
        ),
    }
}

/// The compiled op whose `ok` completion is the last one before `t`.
fn members_before(ops: &[Operation], origin: &[u32], t: u64) -> Option<u32> {
    let mut best: Option<(u64, u32)> = None;
    for (i, &o) in origin.iter().enumerate() {
        let op = &ops[o as usize];
        if op.outcome != Outcome::Ok {
            continue;
        }
        if let Some(r) = op.ret
            && r < t
            && best.is_none_or(|(br, _)| r >= br)
        {
            best = Some((r, i as u32));
        }
    }
    best.map(|(_, i)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by fuzzing (stasis-fuzz target `porcupine-kv-edn`): a key with a newline,
    /// quoted in a bad-input error, split the one-line error.
    #[test]
    fn bad_input_errors_are_one_line() {
        let ops = crate::format::edn::read_history(
            "{:process 0, :type :invoke, :f :append, :key \"a\\nb\", :value \"x\"}\n\
             {:process 0, :type :ok, :f :append, :key \"a\\nb\", :value \"x\"}",
        )
        .unwrap();
        let mut opts = CheckOptions::new(ModelKind::CasRegister);
        opts.by_key = Some(true);
        let e = check_history(&ops, &opts).unwrap_err().to_string();
        assert!(!e.contains('\n'), "{e:?}");
        assert!(e.contains("no operation"), "{e}");
    }
}

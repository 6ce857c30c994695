//! The checking pipeline: partition a history, compile each partition for the model,
//! search each (in parallel across cores), and explain the first violation found.

mod explain;
mod partition;
mod pool;

use pool::run;
use std::time::Duration;

use rustc_hash::FxHashMap;
use serde::Serialize;
use serde_json::Value;

use crate::history::{Op, Operation, Outcome, TimeUnit, pair};
use crate::model::{
    ModelKind, cas_register::CasRegister, fifo_queue::FifoQueue, kv::Kv,
    multi_register::MultiRegister, mutex::Mutex as MutexModel, porcupine_etcd::PorcupineEtcd,
    porcupine_kv::PorcupineKv, register::register, set::Set, unordered_queue::UnorderedQueue,
};

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
    /// Worker threads (0: one per core). With more than one and a single partition with
    /// crashed operations, both candidate orders are searched at once and the first to
    /// decide gives the result: the verdict is the same either way, but the explanation's
    /// longest prefix is that order's, so it may differ between runs on a loaded machine.
    /// 1 makes the explanation deterministic.
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
    /// the fast rules (`fast`).
    pub method: crate::fast::Method,
    /// How often the search's cuts fired (zeros when a rule decided without it).
    pub cuts: crate::search::SearchCuts,
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

//! Sequential specifications ("models") the search checks histories against.
//!
//! A model is a pure step function over a small `Hash + Eq` state. Before the search runs,
//! each [`Operation`] is *compiled* into a model-specific input: JSON values are interned to
//! `u32` ids by a per-partition [`Interner`], so the hot loop never touches `serde_json`.
//! A compiled input carries both what the operation asked and what it observed; an operation
//! with an unknown outcome (`info`, or no completion) carries no observation and is optional
//! for the search (it may take effect at any time after its invocation, or never).
//!
//! Each model lives in its own file; [`ModelKind`] names them by the ids of `--model`.

use std::fmt::Debug;
use std::hash::Hash;

use rustc_hash::FxHashMap;
use serde_json::Value;

use crate::history::{Operation, Outcome};

pub mod cas_register;
pub mod fifo_queue;
pub mod kv;
pub mod multi_register;
pub mod mutex;
pub mod porcupine_etcd;
pub mod porcupine_kv;
pub mod register;
pub mod set;
pub mod unordered_queue;

/// One operation of a partition, compiled for model `M`.
#[derive(Clone, Debug)]
pub struct SearchOp<I> {
    pub call: u64,
    /// `None`: unknown outcome, open until the end of time and optional.
    pub ret: Option<u64>,
    pub input: I,
}

/// A register operation as the rules see it. Values are interned ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegView {
    /// Observes the value; leaves it unchanged.
    Read(u32),
    /// Sets the value in any state.
    Write(u32),
    /// Observes `a`, then sets `b`.
    Cas(u32, u32),
    /// Observes a value other than `a` (a failed cas); leaves it unchanged.
    NotEq(u32),
}

impl RegView {
    /// The value this operation leaves, if it sets one.
    pub fn writes(self) -> Option<u32> {
        match self {
            RegView::Write(v) | RegView::Cas(_, v) => Some(v),
            RegView::Read(_) | RegView::NotEq(_) => None,
        }
    }

    /// The value this operation requires the register to hold, if any.
    pub fn observes(self) -> Option<u32> {
        match self {
            RegView::Read(v) | RegView::Cas(v, _) => Some(v),
            RegView::Write(_) | RegView::NotEq(_) => None,
        }
    }
}

/// A sequential specification.
pub trait Model: Sync {
    type State: Clone + Eq + Hash + Send + Debug + 'static;
    type Input: Clone + Eq + Send + Sync + Debug;

    /// A fresh instance for one partition, for models that keep tables built while
    /// searching (hash-consed strings); `None`: the shared instance serves every partition.
    /// The search, its explanation and the compiled inputs of a partition all use the
    /// same instance.
    fn for_partition(&self) -> Option<Self>
    where
        Self: Sized,
    {
        None
    }

    /// Heap memory of such tables, for the search's memory budget.
    fn cache_bytes(&self) -> usize {
        0
    }

    /// The initial state.
    fn init(&self, cx: &mut Interner) -> Self::State;

    /// Compiles one operation. `Ok(None)` drops it: the model has shown that the operation
    /// has no effect and observes nothing (a `fail`, or a read whose result is unknown).
    /// `Err` says why the operation makes no sense for this model.
    fn compile(&self, op: &Operation, cx: &mut Interner) -> Result<Option<Self::Input>, String>;

    /// Applies `input` to `state`: the next state, or `None` if the observation in `input`
    /// is impossible in `state`.
    fn step(&self, state: &Self::State, input: &Self::Input) -> Option<Self::State>;

    /// Whether `input` is a pure observation: in every state it either is rejected or
    /// leaves the state unchanged (a read). The search linearizes such an operation as
    /// soon as it fits and never tries it later instead (that would lead nowhere new).
    fn is_read_only(&self, _input: &Self::Input) -> bool {
        false
    }

    /// Before the search: which operations with unknown outcomes (`unknown[i]`) can be
    /// dropped because no linearization needs them. Each model states its own argument;
    /// the default drops nothing.
    fn prune_unknown(&self, _inputs: &[Self::Input], _unknown: &[bool]) -> Vec<bool> {
        vec![false; _inputs.len()]
    }

    /// For a model that is one register: `input` as the polynomial rules of
    /// [`crate::fast`] see it. A model returns `Some` for every input or for none; `None`
    /// (the default) keeps the partition for the general search.
    fn register_view(&self, _input: &Self::Input) -> Option<RegView> {
        None
    }

    /// For a model that is one register: the value id a state holds.
    fn register_value(&self, _state: &Self::State) -> Option<u32> {
        None
    }

    /// Whether [`Model::refutes`] can ever answer `true`. A checker of such a model
    /// compiles and screens every partition before searching any.
    fn screens(&self) -> bool {
        false
    }

    /// Before the search, a cheap screen of a partition's compiled operations: `Some(t)`
    /// only if the operations have no linearization (a necessary condition fails), where
    /// `t` is a time by which no order consistent with real time gets: an operation that
    /// returned at `t` can never be linearized, so the search is sure to fail and never
    /// goes past `t`. `None` says nothing. The check searches refuted partitions first
    /// (fewest operations invoked before `t` first) and, when it stops at the first
    /// violation, no others. The verdict still comes from the search; each model states
    /// its argument for soundness. The default refutes nothing.
    fn refutes(&self, _ops: &[SearchOp<Self::Input>]) -> Option<u64> {
        None
    }

    /// How many ways `input` may take effect. Deterministic operations have one; an
    /// operation with an unknown result may have several (a dequeue that timed out may
    /// have removed any element). The search tries each with [`Model::step_alt`].
    fn alternatives(&self, _input: &Self::Input) -> u32 {
        1
    }

    /// The `alt`-th way `input` may take effect (see [`Model::alternatives`]).
    fn step_alt(&self, state: &Self::State, input: &Self::Input, _alt: u32) -> Option<Self::State> {
        self.step(state, input)
    }

    /// Heap memory a state owns, for the search's memory budget (0 for plain values).
    fn state_bytes(&self, _state: &Self::State) -> usize {
        0
    }

    /// The state as a person reads it, e.g. `3` or `{x=1, y=2}`.
    fn show_state(&self, state: &Self::State, cx: &Interner) -> String;

    /// The operation with its observation, e.g. `read 3` or `cas 1->2`.
    fn show_input(&self, input: &Self::Input, cx: &Interner) -> String;

    /// The operation as the subject of an explanation's sentence, e.g. `read k7 returned 3`;
    /// `key` is the partition's key when checking by key.
    fn describe(&self, input: &Self::Input, cx: &Interner, key: Option<&str>) -> String {
        let s = self.show_input(input, cx);
        match key {
            Some(k) => format!("{s} (key {k})"),
            None => s,
        }
    }

    /// What the state is called in an explanation: "the value", "the set", ...
    fn state_noun(&self) -> &'static str {
        "the value"
    }
}

/// The models `stasis check --model` knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ModelKind {
    Register,
    CasRegister,
    Kv,
    MultiRegister,
    Mutex,
    Set,
    UnorderedQueue,
    FifoQueue,
    PorcupineEtcd,
    PorcupineKv,
}

impl ModelKind {
    pub const ALL: [ModelKind; 10] = [
        ModelKind::Register,
        ModelKind::CasRegister,
        ModelKind::Kv,
        ModelKind::MultiRegister,
        ModelKind::Mutex,
        ModelKind::Set,
        ModelKind::UnorderedQueue,
        ModelKind::FifoQueue,
        ModelKind::PorcupineEtcd,
        ModelKind::PorcupineKv,
    ];

    pub fn id(self) -> &'static str {
        match self {
            ModelKind::Register => "register",
            ModelKind::CasRegister => "cas-register",
            ModelKind::Kv => "kv",
            ModelKind::MultiRegister => "multi-register",
            ModelKind::Mutex => "mutex",
            ModelKind::Set => "set",
            ModelKind::UnorderedQueue => "unordered-queue",
            ModelKind::FifoQueue => "fifo-queue",
            ModelKind::PorcupineEtcd => "porcupine-etcd",
            ModelKind::PorcupineKv => "porcupine-kv",
        }
    }

    pub fn from_id(id: &str) -> Option<ModelKind> {
        ModelKind::ALL.into_iter().find(|m| m.id() == id)
    }

    /// Whether operations on different keys are independent under this model by default
    /// (P-compositionality). `multi-register` transactions span keys, the single-object
    /// models ignore keys.
    pub fn default_by_key(self) -> bool {
        matches!(self, ModelKind::Kv | ModelKind::PorcupineKv)
    }
}

/// Interns JSON values (and keys) to dense `u32` ids. Id 0 is always `null`.
#[derive(Debug, Clone)]
pub struct Interner {
    ids: FxHashMap<VKey, u32>,
    values: Vec<Value>,
    key_ids: FxHashMap<String, u32>,
    keys: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum VKey {
    Null,
    Int(i64),
    Str(String),
    /// Any other value, by its canonical JSON text.
    Json(String),
}

impl Default for Interner {
    fn default() -> Self {
        let mut ids = FxHashMap::default();
        ids.insert(VKey::Null, 0);
        Interner {
            ids,
            values: vec![Value::Null],
            key_ids: FxHashMap::default(),
            keys: Vec::new(),
        }
    }
}

/// The interned id of `null`.
pub const NIL: u32 = 0;

impl Interner {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn intern(&mut self, v: &Value) -> u32 {
        let key = match v {
            Value::Null => return NIL,
            Value::Number(n) => match n.as_i64() {
                Some(i) => VKey::Int(i),
                None => VKey::Json(n.to_string()),
            },
            Value::String(s) => {
                if let Some(&id) = self.ids.get(&VKey::Str(s.clone())) {
                    return id;
                }
                VKey::Str(s.clone())
            }
            other => VKey::Json(other.to_string()),
        };
        if let Some(&id) = self.ids.get(&key) {
            return id;
        }
        let id = self.values.len() as u32;
        self.values.push(v.clone());
        self.ids.insert(key, id);
        id
    }

    /// The dense slot of a key (registers of a map-shaped state).
    pub fn key_slot(&mut self, key: &str) -> u32 {
        if let Some(&k) = self.key_ids.get(key) {
            return k;
        }
        let k = self.keys.len() as u32;
        self.keys.push(key.to_owned());
        self.key_ids.insert(key.to_owned(), k);
        k
    }

    /// Keys seen so far, by slot.
    pub fn keys(&self) -> &[String] {
        &self.keys
    }

    pub fn value(&self, id: u32) -> &Value {
        &self.values[id as usize]
    }

    /// The value as it appears in an explanation: numbers and strings bare, `nil` for null.
    pub fn show(&self, id: u32) -> String {
        show_value(self.value(id))
    }
}

/// A JSON value as a person reads it in an explanation.
/// A state of one value per key slot, as `{x=1, y=nil}`.
pub fn show_keyed(state: &[u32], cx: &Interner) -> String {
    let parts: Vec<String> = state
        .iter()
        .enumerate()
        .map(|(i, v)| format!("{}={}", cx.keys()[i], cx.show(*v)))
        .collect();
    format!("{{{}}}", parts.join(", "))
}

pub fn show_value(v: &Value) -> String {
    match v {
        Value::Null => "nil".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Helpers shared by the models' `compile`.
pub(crate) fn expect_pair(v: &Value, what: &str) -> Result<(Value, Value), String> {
    match v {
        Value::Array(a) if a.len() == 2 => Ok((a[0].clone(), a[1].clone())),
        other => Err(format!("{what} must be a pair [old, new], got {other}")),
    }
}

/// The value an operation observed: the completion's value for `ok` operations.
pub(crate) fn observed(op: &Operation) -> Option<&Value> {
    (op.outcome == Outcome::Ok).then_some(&op.output)
}

/// The argument of a write-like operation: the invoke's value, or the completion's when the
/// invoke carried none (some histories only log it on completion).
pub(crate) fn argument(op: &Operation) -> &Value {
    if op.input.is_null() {
        &op.output
    } else {
        &op.input
    }
}

pub(crate) fn unknown_f(model: &str, f: &str, known: &str) -> String {
    format!("the {model} model has no operation \"{f}\" (it knows {known})")
}

/// Shows a list of alternatives: `a`, `a or b`, `a, b or c`.
pub fn join_or(items: &[String]) -> String {
    match items.len() {
        0 => "nothing".into(),
        1 => items[0].clone(),
        n => format!("{} or {}", items[..n - 1].join(", "), items[n - 1]),
    }
}

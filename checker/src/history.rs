//! Histories: the contract between the harness and the checker.
//!
//! A history is a sequence of [`Op`] events in JSON Lines, one event per line, written and
//! flushed as it happens (see DESIGN.md). Semantics follow Jepsen:
//!
//! * `invoke` starts an operation of a client process; a process has at most one
//!   outstanding operation.
//! * `ok` means it happened, `fail` that it definitely did not, `info` that the outcome is
//!   unknown: it may take effect at any later time, or never. After an `info` the worker
//!   continues under a new process id, so an `info` closes the process for good.
//! * Nemesis events use process `"nemesis"` and are single `info` lines with no invoke.
//!
//! [`read_jsonl`] validates all of that and reports `file:line: what is wrong`. A torn final
//! line (the harness was killed mid-write) is dropped with a warning instead of failing the
//! whole history. [`pair`] turns validated events into [`Operation`]s for the checker.

use std::borrow::Borrow;
use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufWriter, Write};
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustc_hash::{FxHashMap, FxHashSet};
use serde::de::{self, Deserializer, Visitor};
use serde::ser::Serializer;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Who issued an event: a client worker (Jepsen "process") or the nemesis.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Process {
    Client(u64),
    Nemesis,
}

impl fmt::Display for Process {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Process::Client(p) => write!(f, "{p}"),
            Process::Nemesis => f.write_str("nemesis"),
        }
    }
}

impl Serialize for Process {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Process::Client(p) => s.serialize_u64(*p),
            Process::Nemesis => s.serialize_str("nemesis"),
        }
    }
}

impl<'de> Deserialize<'de> for Process {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Process;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a non-negative integer or \"nemesis\"")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Process, E> {
                Ok(Process::Client(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Process, E> {
                u64::try_from(v)
                    .map(Process::Client)
                    .map_err(|_| E::custom(format!("process {v} is negative")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Process, E> {
                if v == "nemesis" {
                    Ok(Process::Nemesis)
                } else {
                    Err(E::custom(format!(
                        "process \"{v}\" is neither an integer nor \"nemesis\""
                    )))
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// The type of an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OpType {
    Invoke,
    Ok,
    Fail,
    Info,
}

impl fmt::Display for OpType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OpType::Invoke => "invoke",
            OpType::Ok => "ok",
            OpType::Fail => "fail",
            OpType::Info => "info",
        })
    }
}

/// One history event (one JSON line).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Op {
    /// Position in the history; defaults to the line's position when absent.
    #[serde(default = "no_index")]
    pub index: u64,
    /// Nanoseconds since the test started.
    pub time: u64,
    pub process: Process,
    #[serde(rename = "type")]
    pub kind: OpType,
    /// The function: `read`, `write`, `cas`, ... or a nemesis action such as `start-partition`.
    pub f: String,
    /// The key the operation touches (absent for single-register histories and nemeses).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "key_de"
    )]
    pub key: Option<String>,
    /// Argument on invoke, result on completion (`null` for a read's invoke or an absent value).
    #[serde(default)]
    pub value: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The node a client talked to, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

/// Marks an event read without an index; the reader replaces it by the line's position.
const NO_INDEX: u64 = u64::MAX;

fn no_index() -> u64 {
    NO_INDEX
}

/// Keys are strings; integer keys (as some Jepsen histories use) are read as their decimal text.
fn key_de<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(other) => Err(de::Error::custom(format!(
            "key must be a string or an integer, got {other}"
        ))),
    }
}

impl Op {
    /// A client completion (`ok`/`fail`/`info` of a client process).
    pub fn is_client_completion(&self) -> bool {
        matches!(self.process, Process::Client(_)) && self.kind != OpType::Invoke
    }
}

/// A history that could not be read. Display gives one line: `file:line: what is wrong`.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("{}: {source} (check the path and permissions)", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}:{line}: {message}", path.display())]
    Line {
        path: PathBuf,
        line: usize,
        message: String,
    },
}

/// A validated history plus anything the reader chose to tolerate.
#[derive(Debug, Default)]
pub struct ReadHistory {
    pub ops: Vec<Op>,
    /// Human-readable warnings (for example a torn final line that was dropped).
    pub warnings: Vec<String>,
}

mod jsonl;

use jsonl::{Event, Item, Line};

/// Reads and validates a Stasis JSONL history file (in parallel when it is big).
pub fn read_jsonl(path: &Path) -> Result<ReadHistory, HistoryError> {
    let mut ops = Vec::new();
    let (_, warnings) = read_file_events(path, 0, |ev: Event<'_>| ops.push(ev.into_op()))?;
    Ok(ReadHistory { ops, warnings })
}

/// Reads and validates a JSONL history from any reader; `path` is used in messages only.
pub fn read_jsonl_from<R: BufRead>(reader: R, path: &Path) -> Result<ReadHistory, HistoryError> {
    let mut ops = Vec::new();
    let mut events = Events::new(path, |ev: Event<'_>| ops.push(ev.into_op()));
    jsonl::for_each_block(reader, jsonl::BLOCK, &mut events)?;
    let warnings = events.warnings;
    Ok(ReadHistory { ops, warnings })
}

/// Reads, validates and pairs a JSONL history in one streaming pass, without keeping the
/// events: what `stasis check` uses for big histories. Returns the operations and warnings.
pub fn read_jsonl_operations(path: &Path) -> Result<(Vec<Operation>, Vec<String>), HistoryError> {
    read_jsonl_operations_with(path, 0)
}

/// As [`read_jsonl_operations`] with a number of parser threads: 0 for one per core
/// (for files of several blocks), 1 to parse on the calling thread.
pub fn read_jsonl_operations_with(
    path: &Path,
    threads: usize,
) -> Result<(Vec<Operation>, Vec<String>), HistoryError> {
    // One operation per two lines of at least 80 bytes: room for them all from the
    // start, so the vector is not copied as it grows (untouched room costs no memory).
    let size = std::fs::metadata(path).map_or(0, |m| m.len());
    let pairer = Pairer {
        out: Vec::with_capacity(usize::try_from(size / 160).unwrap_or(0)),
        ..Pairer::default()
    };
    let (pairer, warnings) = read_file_events(path, threads, pairer)?;
    Ok((pairer.out, warnings))
}

/// Streams a file's validated events into `sink`; returns the sink and the warnings. Files
/// of several blocks are parsed by worker threads (`threads`: 0 = one per core, 1 = none)
/// while this thread validates and pairs in file order.
fn read_file_events<S: Sink>(
    path: &Path,
    threads: usize,
    sink: S,
) -> Result<(S, Vec<String>), HistoryError> {
    let io_err = |source| HistoryError::Io {
        path: path.to_owned(),
        source,
    };
    let file = File::open(path).map_err(io_err)?;
    let size = file.metadata().map_err(io_err)?.len();
    let threads = match threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let mut events = Events::new(path, sink);
    let block = jsonl::BLOCK;
    if threads > 1 && size > 2 * block as u64 {
        jsonl::for_each_block_parallel(file, block, threads, &mut events)?;
    } else {
        jsonl::for_each_block(file, block, &mut events)?;
    }
    Ok((events.sink, events.warnings))
}

/// Where validated events go: the events themselves ([`read_jsonl`]) or operations
/// ([`Pairer`]). The validator already tracks each process's outstanding invoke, so a sink
/// that pairs gets its invoke's slot back with the completion instead of keeping a map of
/// its own, and the invoke's interned function name.
trait Sink {
    /// A client's invoke, `f` its function name; returns a slot for its completion.
    fn invoke(&mut self, ev: Event<'_>, f: &Name) -> usize;
    /// The completion of the invoke that returned `slot`.
    fn complete(&mut self, ev: Event<'_>, slot: usize);
    /// A nemesis event.
    fn nemesis(&mut self, ev: Event<'_>);
}

/// Any closure takes every event, in order.
impl<F: FnMut(Event<'_>)> Sink for F {
    fn invoke(&mut self, ev: Event<'_>, _: &Name) -> usize {
        self(ev);
        0
    }
    fn complete(&mut self, ev: Event<'_>, _: usize) {
        self(ev)
    }
    fn nemesis(&mut self, ev: Event<'_>) {
        self(ev)
    }
}

/// Validates parsed lines in file order and streams their events into a sink.
struct Events<'p, S> {
    path: &'p Path,
    sink: S,
    validator: Validator,
    warnings: Vec<String>,
    /// Lines before the current block.
    lines: usize,
    /// Events so far (the index of an event read without one).
    count: u64,
}

impl<'p, S: Sink> Events<'p, S> {
    fn new(path: &'p Path, sink: S) -> Self {
        Events {
            path,
            sink,
            validator: Validator::default(),
            warnings: Vec::new(),
            lines: 0,
            count: 0,
        }
    }
}

impl<S: Sink> jsonl::Consumer for Events<'_, S> {
    type Error = HistoryError;

    fn item(&mut self, text: &str, item: Item) -> Result<bool, HistoryError> {
        let line = self.lines + item.line;
        let err = |message: String| HistoryError::Line {
            path: self.path.to_owned(),
            line,
            message,
        };
        let mut ev = match item.what {
            Line::Fast(ev) => ev.resolve(text),
            Line::Slow(op) => Event::from(*op),
            Line::Torn(why) => {
                self.warnings.push(torn_warning(self.path, line, why));
                return Ok(false);
            }
            Line::Bad(message) => return Err(err(message)),
        };
        if ev.index == NO_INDEX {
            ev.index = self.count;
        }
        self.count += 1;
        self.validator.check(ev, &mut self.sink).map_err(err)?;
        Ok(true)
    }

    fn end_block(&mut self, lines: usize) {
        self.lines += lines;
    }

    fn io_error(&mut self, source: io::Error) -> HistoryError {
        HistoryError::Io {
            path: self.path.to_owned(),
            source,
        }
    }
}

fn torn_warning(path: &Path, line: usize, why: &str) -> String {
    format!(
        "{}:{line}: dropped a torn final line ({why}); the history was probably cut off by a crash",
        path.display()
    )
}

fn describe_json_error(e: &serde_json::Error) -> String {
    // serde_json appends " at line 1 column N"; the line is ours, the column is still useful.
    let msg = e.to_string();
    let msg = match msg.rfind(" at line ") {
        Some(i) => format!("{} (column {})", &msg[..i], e.column()),
        None => msg,
    };
    // serde_json quotes the offending text decoded: a "\n" escape would split the line.
    let msg: String = msg.chars().flat_map(char::escape_debug).collect::<String>();
    let msg = msg.replace("\\\"", "\"").replace("\\'", "'");
    format!("bad event: {msg}; expected one JSON object per line like {EXAMPLE}")
}

const EXAMPLE: &str = r#"{"time":0,"process":1,"type":"invoke","f":"write","key":"k1","value":3}"#;

/// What the validator knows of a client process.
#[derive(Clone, Copy)]
enum Proc {
    /// Its invoke of `f` (an index into the names) is outstanding; the sink's slot for it.
    Open { f: u32, slot: usize },
    /// It ended with `info` at this index; Jepsen workers never reuse it.
    Crashed(u64),
}

/// The validator's processes by id: a vector indexed by the id for the small ids workers
/// are numbered with (no hashing: two lookups an operation), a map for any others.
#[derive(Default)]
struct Procs {
    dense: Vec<Option<Proc>>,
    sparse: FxHashMap<u64, Proc>,
}

impl Procs {
    /// Ids below this live in the vector (at most 64 Ki entries of 24 bytes).
    const DENSE: u64 = 1 << 16;

    fn get(&self, p: u64) -> Option<Proc> {
        if p < Self::DENSE {
            self.dense.get(p as usize).copied().flatten()
        } else {
            self.sparse.get(&p).copied()
        }
    }

    fn insert(&mut self, p: u64, proc: Proc) {
        if p < Self::DENSE {
            let i = p as usize;
            if i >= self.dense.len() {
                self.dense.resize(i + 1, None);
            }
            self.dense[i] = Some(proc);
        } else {
            self.sparse.insert(p, proc);
        }
    }

    fn remove(&mut self, p: u64) {
        if p < Self::DENSE {
            if let Some(slot) = self.dense.get_mut(p as usize) {
                *slot = None;
            }
        } else {
            self.sparse.remove(&p);
        }
    }
}

/// Tracks outstanding operations per process while reading.
#[derive(Default)]
struct Validator {
    procs: Procs,
    /// The distinct fs seen, so an invoke does not copy its f.
    ids: FxHashMap<Name, u32>,
    names: Vec<Name>,
}

impl Validator {
    /// Checks one event against the events before it and hands it to `sink` if it fits.
    fn check(&mut self, op: Event<'_>, sink: &mut impl Sink) -> Result<(), String> {
        let p = match op.process {
            Process::Nemesis => {
                return match op.kind {
                    OpType::Info => {
                        sink.nemesis(op);
                        Ok(())
                    }
                    other => Err(format!(
                        "nemesis events must have type \"info\", got \"{other}\""
                    )),
                };
            }
            Process::Client(p) => p,
        };
        match op.kind {
            OpType::Invoke => {
                let f = match self.ids.get(&*op.f) {
                    Some(&f) => f,
                    None => {
                        let f = u32::try_from(self.names.len()).expect("fewer than 2^32 fs");
                        let name = Name::from(&*op.f);
                        self.names.push(name.clone());
                        self.ids.insert(name, f);
                        f
                    }
                };
                match self.procs.get(p) {
                    Some(proc) => Err(match proc {
                        Proc::Open { f: g, .. } => format!(
                            "process {p} invokes {} while its {} is still outstanding \
                             (a process runs one operation at a time)",
                            op.f, self.names[g as usize]
                        ),
                        Proc::Crashed(index) => format!(
                            "process {p} invokes {} after its operation ended with info at index \
                             {index} (after info a worker must continue as a new process)",
                            op.f
                        ),
                    }),
                    None => {
                        let slot = sink.invoke(op, &self.names[f as usize]);
                        self.procs.insert(p, Proc::Open { f, slot });
                        Ok(())
                    }
                }
            }
            OpType::Ok | OpType::Fail | OpType::Info => {
                let Some(Proc::Open { f, slot }) = self.procs.get(p) else {
                    return Err(no_invoke(&op, p));
                };
                let f = &self.names[f as usize];
                if **f != *op.f {
                    return Err(format!("process {p} completes {} but invoked {f}", op.f));
                }
                if op.kind == OpType::Info {
                    self.procs.insert(p, Proc::Crashed(op.index));
                } else {
                    self.procs.remove(p);
                }
                sink.complete(op, slot);
                Ok(())
            }
        }
    }
}

fn no_invoke(op: &Event<'_>, p: u64) -> String {
    format!(
        "{} of {} by process {p} has no matching invoke",
        op.kind, op.f
    )
}

/// Writes a history as JSON Lines, flushing every event so a crash loses at most the line
/// being written.
pub struct HistoryWriter<W: Write> {
    out: BufWriter<W>,
    next_index: u64,
}

impl HistoryWriter<File> {
    /// Creates (or truncates) `path`.
    pub fn create(path: &Path) -> io::Result<Self> {
        Ok(Self::new(File::create(path)?))
    }

    /// Flushes and fsyncs the file.
    pub fn sync(&mut self) -> io::Result<()> {
        self.out.flush()?;
        self.out.get_ref().sync_data()
    }
}

impl<W: Write> HistoryWriter<W> {
    pub fn new(inner: W) -> Self {
        HistoryWriter {
            out: BufWriter::new(inner),
            next_index: 0,
        }
    }

    /// Writes one event, assigning the next index, and flushes it.
    pub fn write(&mut self, op: &mut Op) -> io::Result<()> {
        op.index = self.next_index;
        self.next_index += 1;
        serde_json::to_writer(&mut self.out, op)?;
        self.out.write_all(b"\n")?;
        self.out.flush()
    }

    pub fn into_inner(self) -> io::Result<W> {
        self.out.into_inner().map_err(|e| e.into_error())
    }
}

/// Serializes events as JSON Lines, keeping their indices.
pub fn write_jsonl<W: Write>(ops: &[Op], out: W) -> io::Result<()> {
    let mut out = BufWriter::new(out);
    for op in ops {
        serde_json::to_writer(&mut out, op)?;
        out.write_all(b"\n")?;
    }
    out.flush()
}

/// How a client operation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    Ok,
    Fail,
    /// `info`, or no completion at all: it may take effect at any time after its invoke,
    /// or never.
    Unknown,
}

/// A client operation: an invoke paired with its completion.
#[derive(Clone, Debug, PartialEq)]
pub struct Operation {
    pub process: u64,
    pub f: Name,
    pub key: Option<Name>,
    /// The invoke's value (the argument).
    pub input: Value,
    /// The completion's value (the result), `Null` when there is none.
    pub output: Value,
    pub outcome: Outcome,
    /// Invoke time, ns.
    pub call: u64,
    /// Completion time, ns; `None` for unknown outcomes (open until the end of time).
    pub ret: Option<u64>,
    /// Index of the invoke event.
    pub invoke_index: u64,
    /// Index of the completion event, if any.
    pub complete_index: Option<u64>,
    pub error: Option<Name>,
}

/// An immutable shared string for the texts that repeat across a history's operations:
/// function names, keys and errors. The JSONL reader keeps one allocation per distinct
/// text and gives each operation a reference to it (16 bytes, no copy, no allocation).
/// Reads as a `&str` (`Deref`), compares with `str`, `&str` and `String`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Name(Arc<str>);

impl Name {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Deref for Name {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for Name {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Name {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for Name {
    fn from(s: &str) -> Name {
        Name(s.into())
    }
}

impl From<String> for Name {
    fn from(s: String) -> Name {
        Name(s.into())
    }
}

impl From<Name> for String {
    fn from(n: Name) -> String {
        n.0.as_ref().to_owned()
    }
}

impl PartialEq<str> for Name {
    fn eq(&self, other: &str) -> bool {
        *self.0 == *other
    }
}

impl PartialEq<&str> for Name {
    fn eq(&self, other: &&str) -> bool {
        *self.0 == **other
    }
}

impl PartialEq<String> for Name {
    fn eq(&self, other: &String) -> bool {
        *self.0 == **other
    }
}

/// The distinct names of a history, each allocated once.
#[derive(Default)]
struct Names(FxHashSet<Name>);

impl Names {
    fn get(&mut self, s: &str) -> Name {
        if let Some(n) = self.0.get(s) {
            return n.clone();
        }
        let n = Name::from(s);
        self.0.insert(n.clone());
        n
    }
}

/// Pairs events as they stream in (see [`pair`]); takes events by value, so nothing is
/// copied.
#[derive(Default)]
pub struct Pairer {
    pub out: Vec<Operation>,
    open: FxHashMap<u64, usize>,
    names: Names,
}

impl Pairer {
    /// Takes the next event (validated or not: a completion without an invoke is ignored).
    pub fn push(&mut self, op: Op) {
        let Process::Client(p) = op.process else {
            return;
        };
        let ev = Event::from(op);
        if ev.kind == OpType::Invoke {
            let f = self.names.get(&ev.f);
            let slot = self.invoke(ev, &f);
            self.open.insert(p, slot);
        } else if let Some(slot) = self.open.remove(&p) {
            self.complete(ev, slot);
        }
    }
}

/// The reader's validator pairs for the pairer: it hands back each invoke's slot.
impl Sink for Pairer {
    fn invoke(&mut self, op: Event<'_>, f: &Name) -> usize {
        let Process::Client(p) = op.process else {
            unreachable!("the validator hands over client invokes only")
        };
        self.out.push(Operation {
            process: p,
            f: f.clone(),
            key: op.key.map(|k| self.names.get(&k)),
            input: op.value,
            output: Value::Null,
            outcome: Outcome::Unknown,
            call: op.time,
            ret: None,
            invoke_index: op.index,
            complete_index: None,
            error: None,
        });
        self.out.len() - 1
    }

    fn complete(&mut self, op: Event<'_>, slot: usize) {
        let o = &mut self.out[slot];
        o.complete_index = Some(op.index);
        o.error = op.error.map(|e| self.names.get(&e));
        o.output = op.value;
        match op.kind {
            OpType::Ok => {
                o.outcome = Outcome::Ok;
                o.ret = Some(op.time);
            }
            OpType::Fail => {
                o.outcome = Outcome::Fail;
                o.ret = Some(op.time);
            }
            _ => o.outcome = Outcome::Unknown,
        }
    }

    fn nemesis(&mut self, _: Event<'_>) {}
}

/// Pairs invokes with completions. Nemesis events are skipped. Events must already be
/// validated (as [`read_jsonl`] does); a completion without an invoke is ignored here.
pub fn pair(ops: &[Op]) -> Vec<Operation> {
    let mut pairer = Pairer::default();
    for op in ops
        .iter()
        .filter(|o| matches!(o.process, Process::Client(_)))
    {
        pairer.push(op.clone());
    }
    pairer.out
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(text: &str) -> Result<ReadHistory, HistoryError> {
        read_jsonl_from(text.as_bytes(), Path::new("h.jsonl"))
    }

    fn op(process: Process, kind: OpType, f: &str, value: Value) -> Op {
        Op {
            index: 0,
            time: 0,
            process,
            kind,
            f: f.into(),
            key: Some("k1".into()),
            value,
            error: None,
            node: None,
        }
    }

    #[test]
    fn parses_the_design_example() {
        let text = r#"{"index":0,"time":1200345,"process":3,"type":"invoke","f":"write","key":"k7","value":5}
{"index":1,"time":1502881,"process":3,"type":"ok","f":"write","key":"k7","value":5}
{"index":2,"time":1600000,"process":4,"type":"invoke","f":"cas","key":"k7","value":[5,6]}
{"index":3,"time":2600000,"process":4,"type":"info","f":"cas","key":"k7","value":[5,6],"error":"timeout"}
{"index":4,"time":2700000,"process":"nemesis","type":"info","f":"start-partition","value":{"n1":["n2","n3"]}}
"#;
        let h = read(text).unwrap();
        assert_eq!(h.ops.len(), 5);
        assert!(h.warnings.is_empty());
        assert_eq!(h.ops[4].process, Process::Nemesis);
        assert_eq!(h.ops[3].error.as_deref(), Some("timeout"));
        let ops = pair(&h.ops);
        assert_eq!(ops.len(), 2);
        assert_eq!(ops[0].outcome, Outcome::Ok);
        assert_eq!(ops[0].ret, Some(1502881));
        assert_eq!(ops[1].outcome, Outcome::Unknown);
        assert_eq!(ops[1].ret, None);
        assert_eq!(ops[1].input, json!([5, 6]));
    }

    #[test]
    fn streaming_pairing_matches_pair() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.jsonl");
        std::fs::write(
            &path,
            concat!(
                "{\"time\":1,\"process\":3,\"type\":\"invoke\",\"f\":\"write\",\"key\":\"k\",\"value\":5}\n",
                "{\"time\":2,\"process\":\"nemesis\",\"type\":\"info\",\"f\":\"start\"}\n",
                "{\"time\":3,\"process\":4,\"type\":\"invoke\",\"f\":\"read\",\"key\":\"k\"}\n",
                "{\"time\":4,\"process\":3,\"type\":\"ok\",\"f\":\"write\",\"key\":\"k\",\"value\":5}\n",
                "{\"time\":5,\"process\":4,\"type\":\"fail\",\"f\":\"read\",\"key\":\"k\",\"error\":\"timeout\"}\n",
                "{\"time\":6,\"process\":5,\"type\":\"invoke\",\"f\":\"cas\",\"key\":\"k\",\"value\":[5,6]}\n",
            ),
        )
        .unwrap();
        let (ops, warnings) = read_jsonl_operations(&path).unwrap();
        assert!(warnings.is_empty());
        assert_eq!(ops, pair(&read_jsonl(&path).unwrap().ops));
        assert_eq!(ops.len(), 3);
        assert_eq!(ops[2].outcome, Outcome::Unknown);
        std::fs::write(
            &path,
            "{\"time\":1,\"process\":3,\"type\":\"ok\",\"f\":\"read\"}\n",
        )
        .unwrap();
        let e = read_jsonl_operations(&path).unwrap_err().to_string();
        assert!(
            e.contains("h.jsonl:1: ok of read by process 3 has no matching invoke"),
            "{e}"
        );
    }

    #[test]
    fn writer_round_trips_and_assigns_indices() {
        let mut ops = vec![
            op(Process::Client(1), OpType::Invoke, "read", Value::Null),
            op(Process::Nemesis, OpType::Info, "start-kill", json!(["n1"])),
            op(Process::Client(1), OpType::Ok, "read", json!(7)),
            op(Process::Client(2), OpType::Invoke, "write", json!(8)),
            op(Process::Client(2), OpType::Fail, "write", json!(8)),
        ];
        ops[4].error = Some("NOTLEADER n2".into());
        let mut w = HistoryWriter::new(Vec::new());
        for o in &mut ops {
            w.write(o).unwrap();
        }
        let bytes = w.into_inner().unwrap();
        let h = read_jsonl_from(&bytes[..], Path::new("x")).unwrap();
        assert_eq!(h.ops, ops);
        assert_eq!(h.ops[3].index, 3);
        // write_jsonl gives the same bytes for already-indexed events.
        let mut again = Vec::new();
        write_jsonl(&ops, &mut again).unwrap();
        assert_eq!(again, bytes);
    }

    #[test]
    fn missing_index_defaults_to_position() {
        let h = read(concat!(
            r#"{"time":5,"process":0,"type":"invoke","f":"read"}"#,
            "\n",
            r#"{"time":6,"process":0,"type":"ok","f":"read","value":null}"#,
            "\n"
        ))
        .unwrap();
        assert_eq!(h.ops[1].index, 1);
        assert_eq!(h.ops[0].key, None);
    }

    #[test]
    fn integer_keys_are_read_as_text() {
        let h = read(r#"{"time":5,"process":0,"type":"invoke","f":"read","key":12}"#).unwrap();
        assert_eq!(h.ops[0].key.as_deref(), Some("12"));
    }

    fn err(text: &str) -> String {
        read(text).unwrap_err().to_string()
    }

    #[test]
    fn bad_json_names_file_and_line() {
        let e = err("{\"time\":1,\"process\":1,\"type\":\"invoke\",\"f\":\"read\"}\n{not json}\n");
        assert!(e.starts_with("h.jsonl:2: bad event:"), "{e}");
        assert!(!e.contains('\n'));
    }

    /// Found by fuzzing (stasis-fuzz target `jsonl`): an escaped newline inside a bad
    /// field came back decoded in serde's message and split the one-line error.
    #[test]
    fn decoded_control_characters_stay_escaped_in_errors() {
        let e = err("{\"time\":1,\"process\":2,\"type\":\"\\nvoke\",\"f\":\"write\"}\n");
        assert!(!e.contains('\n'), "{e:?}");
        assert!(e.contains("unknown variant `\\nvoke`"), "{e}");
    }

    /// Found by fuzzing (stasis-fuzz target `jsonl`): without serde_json's exact float
    /// parsing, a history written back by write_jsonl read back with another value.
    #[test]
    fn numbers_survive_a_write_and_read_back() {
        let big = "6".repeat(103);
        let h = read(&format!(
            "{{\"time\":1,\"process\":4,\"type\":\"invoke\",\"f\":\"cas\",\"key\":\"k\",\"value\":[5,{big}]}}\n"
        ))
        .unwrap();
        let mut out = Vec::new();
        write_jsonl(&h.ops, &mut out).unwrap();
        let back = read(std::str::from_utf8(&out).unwrap()).unwrap();
        assert_eq!(back.ops, h.ops);
    }

    #[test]
    fn missing_field_is_named() {
        let e = err("{\"time\":1,\"process\":1,\"f\":\"read\"}\n");
        assert!(e.starts_with("h.jsonl:1:"), "{e}");
        assert!(e.contains("missing field `type`"), "{e}");
    }

    #[test]
    fn unknown_type_and_bad_process_are_rejected() {
        let e = err("{\"time\":1,\"process\":1,\"type\":\"done\",\"f\":\"read\"}\n");
        assert!(e.contains("unknown variant `done`"), "{e}");
        let e = err("{\"time\":1,\"process\":\"n1\",\"type\":\"invoke\",\"f\":\"read\"}\n");
        assert!(
            e.contains("neither an integer nor \\\"nemesis\\\"") || e.contains("nemesis"),
            "{e}"
        );
        let e = err("{\"time\":1,\"process\":-3,\"type\":\"invoke\",\"f\":\"read\"}\n");
        assert!(e.contains("negative"), "{e}");
    }

    #[test]
    fn completion_without_invoke() {
        let e = err("{\"time\":1,\"process\":1,\"type\":\"ok\",\"f\":\"read\",\"value\":3}\n");
        assert_eq!(
            e,
            "h.jsonl:1: ok of read by process 1 has no matching invoke"
        );
    }

    #[test]
    fn two_outstanding_ops_on_one_process() {
        let e = err(concat!(
            "{\"time\":1,\"process\":1,\"type\":\"invoke\",\"f\":\"read\"}\n",
            "{\"time\":2,\"process\":1,\"type\":\"invoke\",\"f\":\"write\",\"value\":1}\n"
        ));
        assert!(
            e.starts_with("h.jsonl:2: process 1 invokes write while its read is still outstanding"),
            "{e}"
        );
    }

    #[test]
    fn process_reused_after_info_is_rejected() {
        let e = err(concat!(
            "{\"time\":1,\"process\":1,\"type\":\"invoke\",\"f\":\"write\",\"value\":1}\n",
            "{\"time\":2,\"process\":1,\"type\":\"info\",\"f\":\"write\",\"value\":1}\n",
            "{\"time\":3,\"process\":1,\"type\":\"invoke\",\"f\":\"read\"}\n"
        ));
        assert!(
            e.starts_with("h.jsonl:3: process 1 invokes read after its operation ended with info"),
            "{e}"
        );
    }

    #[test]
    fn completion_with_other_f_is_rejected() {
        let e = err(concat!(
            "{\"time\":1,\"process\":1,\"type\":\"invoke\",\"f\":\"write\",\"value\":1}\n",
            "{\"time\":2,\"process\":1,\"type\":\"ok\",\"f\":\"read\",\"value\":1}\n"
        ));
        assert_eq!(e, "h.jsonl:2: process 1 completes read but invoked write");
    }

    #[test]
    fn nemesis_must_be_info() {
        let e =
            err("{\"time\":1,\"process\":\"nemesis\",\"type\":\"invoke\",\"f\":\"start-kill\"}\n");
        assert!(e.contains("nemesis events must have type \"info\""), "{e}");
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let e = err("{\"time\":1,\"process\":1,\"type\":\"invoke\",\"f\":\"read\",\"vaule\":1}\n");
        assert!(e.contains("unknown field `vaule`"), "{e}");
    }

    #[test]
    fn torn_last_line_is_dropped_with_a_warning() {
        let text = concat!(
            "{\"time\":1,\"process\":1,\"type\":\"invoke\",\"f\":\"write\",\"value\":1}\n",
            "{\"time\":2,\"process\":1,\"type\":\"ok\",\"f\":\"wri"
        );
        let h = read(text).unwrap();
        assert_eq!(h.ops.len(), 1);
        assert_eq!(h.warnings.len(), 1);
        assert!(h.warnings[0].starts_with("h.jsonl:2: dropped a torn final line"));
        // The invoke stays open: pairing treats it as an unknown outcome.
        assert_eq!(pair(&h.ops)[0].outcome, Outcome::Unknown);
    }

    #[test]
    fn torn_line_in_the_middle_is_an_error() {
        let e = err(concat!(
            "{\"time\":1,\"process\":1,\"type\":\"invoke\",\"f\":\"write\",\"val\n",
            "{\"time\":2,\"process\":2,\"type\":\"invoke\",\"f\":\"read\"}\n"
        ));
        assert!(e.starts_with("h.jsonl:1: bad event:"), "{e}");
    }

    #[test]
    fn unterminated_but_complete_last_line_is_kept() {
        let h = read("{\"time\":1,\"process\":1,\"type\":\"invoke\",\"f\":\"read\"}").unwrap();
        assert_eq!(h.ops.len(), 1);
        assert!(h.warnings.is_empty());
    }

    #[test]
    fn blank_lines_are_skipped() {
        let h =
            read("\n{\"time\":1,\"process\":1,\"type\":\"invoke\",\"f\":\"read\"}\n\n").unwrap();
        assert_eq!(h.ops.len(), 1);
    }

    #[test]
    fn io_error_names_the_file() {
        let e = read_jsonl(Path::new("/nonexistent/stasis/h.jsonl")).unwrap_err();
        assert!(
            e.to_string().starts_with("/nonexistent/stasis/h.jsonl: "),
            "{e}"
        );
    }

    #[test]
    fn file_writer_syncs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.jsonl");
        let mut w = HistoryWriter::create(&path).unwrap();
        let mut o = op(Process::Client(0), OpType::Invoke, "read", Value::Null);
        w.write(&mut o).unwrap();
        w.sync().unwrap();
        let h = read_jsonl(&path).unwrap();
        assert_eq!(h.ops, vec![o]);
    }
}

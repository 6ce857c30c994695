//! Client adapters: one per wire protocol, behind one small trait.
//!
//! A client turns an abstract operation into a request and the reply into one of three
//! outcomes, with Jepsen's meaning: `Ok` happened, `Fail` definitely did not happen,
//! `Info` unknown (it may still take effect at any later time). Getting this mapping
//! right is what makes a verdict honest: reporting a possibly-applied write as `Fail`
//! produces false alarms, and reporting an ambiguous read as `Ok` hides real bugs.

pub mod etcd;
pub mod etcd_grpc;
pub mod redis_sentinel;
pub mod resp;
pub mod route;
pub mod zookeeper;

use std::sync::OnceLock;
use std::time::Instant;

use serde_json::Value;

/// An operation on a key. Values are integers, unique per key for writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientOp {
    Read { key: String },
    Write { key: String, value: i64 },
    Cas { key: String, old: i64, new: i64 },
}

impl ClientOp {
    pub fn f(&self) -> &'static str {
        match self {
            ClientOp::Read { .. } => "read",
            ClientOp::Write { .. } => "write",
            ClientOp::Cas { .. } => "cas",
        }
    }

    pub fn key(&self) -> &str {
        match self {
            ClientOp::Read { key } | ClientOp::Write { key, .. } | ClientOp::Cas { key, .. } => key,
        }
    }

    /// The invoke's value in the history.
    pub fn value(&self) -> Value {
        match self {
            ClientOp::Read { .. } => Value::Null,
            ClientOp::Write { value, .. } => Value::from(*value),
            ClientOp::Cas { old, new, .. } => Value::from(vec![*old, *new]),
        }
    }

    pub fn is_read(&self) -> bool {
        matches!(self, ClientOp::Read { .. })
    }
}

/// How an operation ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Completion {
    /// It happened; the value is the result (the value read, or the argument).
    Ok(Value),
    /// It definitely did not happen.
    Fail(String),
    /// Unknown: it may or may not have happened.
    Info(String),
}

impl Completion {
    /// An outcome nobody knows: `info` for a write or cas (it may still take effect),
    /// `fail` for a read (it observed nothing and changes nothing).
    pub fn unknown(op: &ClientOp, msg: String) -> Completion {
        if op.is_read() {
            Completion::Fail(msg)
        } else {
            Completion::Info(msg)
        }
    }
}

/// The one tokio runtime of the process's async clients (ZooKeeper sessions, etcd over
/// gRPC), started on first use. Each worker thread drives its own operation with
/// `block_on`; the runtime's two threads run the connections' background tasks. Never a
/// runtime per operation or per client.
pub fn runtime() -> Result<&'static tokio::runtime::Runtime, String> {
    static RT: OnceLock<Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("stasis-client")
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the client runtime: {e}"))
    })
    .as_ref()
    .map_err(Clone::clone)
}

/// Why one client operation did not complete: what the history records depends on whether
/// the request may have reached the system (`info`) or certainly did nothing (`fail`).
pub(crate) enum Failure {
    /// Nothing reached the server.
    NotSent(String),
    /// The server said it definitely did not do it.
    Definite(String),
    /// The request may have been processed.
    Unknown(String),
}

/// Runs an async client's operation on the shared [`runtime`] until `deadline`. The
/// operation sets `sent` once its request may have left; a deadline reached after that is
/// an unknown outcome, before it a plain failure.
pub(crate) fn run_until<T>(
    deadline: Instant,
    op: impl AsyncFnOnce(&mut bool) -> Result<T, Failure>,
) -> Result<T, Failure> {
    let rt = runtime().map_err(Failure::NotSent)?;
    let mut sent = false;
    rt.block_on(async {
        let out = tokio::time::timeout_at(deadline.into(), op(&mut sent)).await;
        out.unwrap_or_else(|_| {
            Err(if sent {
                Failure::Unknown("timeout".into())
            } else {
                Failure::NotSent("timeout before a request was sent".into())
            })
        })
    })
}

/// A stored value as the history records it: the integer the harness wrote, or the text
/// itself when it is not one.
pub fn value_of_text(text: &str) -> Value {
    match text.parse::<i64>() {
        Ok(n) => Value::from(n),
        Err(_) => Value::from(text),
    }
}

/// A connection-owning client used by one worker at a time.
pub trait Client: Send {
    /// Performs `op`, giving up at `deadline`. Must never report a possibly-applied
    /// write as `Fail`. Reads that time out are `Fail` (they observed nothing and change
    /// nothing), writes and cas that time out after being sent are `Info`.
    fn invoke(&mut self, op: &ClientOp, deadline: Instant) -> Completion;

    /// The node the last request went to (recorded in the history).
    fn node(&self) -> Option<String>;

    /// Sends the next operation's first request to node `node` (an index into the
    /// client's endpoints) instead of where this client's own routing would (redirects
    /// are still followed within the operation). Returns false if the client cannot
    /// choose its node per operation; it then keeps its own routing.
    fn start_at(&mut self, _node: usize) -> bool {
        false
    }
}

/// Where a worker's operations go first (`--client-routing`).
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Routing {
    /// Each operation starts at the node the client's last request went to (it follows
    /// the leader and stays there until refused or timed out): the clients converge on
    /// one leader.
    #[default]
    Sticky,
    /// Jepsen's binding: worker w's operations all start at node w mod n (a node that
    /// does not lead redirects), so every node, a stale leader too, keeps getting
    /// requests.
    Home,
    /// Each operation starts at a node drawn from the worker's seeded stream.
    Random,
}

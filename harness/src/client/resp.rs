//! RESP client for `stasis-node` (and any server speaking the same commands).
//!
//! Error replies are classified by their code (see docs/NODE.md):
//! `NOTLEADER` and `ERR` are definite (nothing happened), `TIMEOUT` and `UNKNOWN` are
//! indeterminate. A `NOTLEADER <id> <addr>` redirect is followed within the operation's
//! deadline; that is safe because the refused attempt had no effect. Transport errors
//! before a request was written are definite (retry elsewhere); after it was written they
//! are indeterminate for writes and a failure for reads.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use node::resp::{Value as Resp, encode_command, parse_reply};
pub use node::status::NodeStatus;
use serde_json::Value;

use super::route::Route;
use super::{Client, ClientOp, Completion};

/// One node's name and client address.
#[derive(Clone, Debug)]
pub struct Endpoint {
    pub name: String,
    pub addr: SocketAddr,
}

/// One open RESP connection: the transport every RESP-speaking client shares (this one
/// and [`super::redis_sentinel`]).
pub struct Connection {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Connection {
    /// Connects to `addr`, giving up after 1 s or at `deadline`.
    pub fn open(addr: SocketAddr, deadline: Instant) -> Result<Connection, Transport> {
        let left = remaining(deadline).ok_or_else(|| Transport::NotSent("deadline".into()))?;
        let stream = TcpStream::connect_timeout(&addr, left.min(Duration::from_secs(1)))
            .map_err(|e| Transport::NotSent(format!("connect {addr}: {e}")))?;
        let _ = stream.set_nodelay(true);
        Ok(Connection {
            stream,
            buf: Vec::with_capacity(256),
        })
    }

    /// Sends one command and reads one reply before `deadline`. After an error the
    /// connection may still carry a late reply: drop it.
    pub fn call(&mut self, args: &[&[u8]], deadline: Instant) -> Result<Resp, Transport> {
        let mut req = Vec::with_capacity(64);
        encode_command(args, &mut req);
        exchange(self, &req, deadline)
    }
}

/// Why a single request attempt did not produce a reply.
pub enum Transport {
    /// Nothing was sent: the attempt had no effect.
    NotSent(String),
    /// The request may have reached the server.
    Sent(String),
}

pub struct RespClient {
    nodes: Vec<Endpoint>,
    /// Preferred node when no leader is known.
    home: usize,
    /// One open connection per node at most.
    conns: Vec<Option<Connection>>,
    /// Where the last request went: the next operation starts there (sticky routing).
    last_node: Option<usize>,
    /// Where the next operation starts instead, if set ([`Client::start_at`]).
    next_start: Option<usize>,
}

impl RespClient {
    pub fn new(nodes: Vec<Endpoint>, home: usize) -> RespClient {
        RespClient {
            home: home % nodes.len().max(1),
            conns: nodes.iter().map(|_| None).collect(),
            nodes,
            last_node: None,
            next_start: None,
        }
    }

    /// Sends one command to `node` and reads one reply before `deadline`.
    fn call(&mut self, node: usize, args: &[&[u8]], deadline: Instant) -> Result<Resp, Transport> {
        if self.conns[node].is_none() {
            self.conns[node] = Some(Connection::open(self.nodes[node].addr, deadline)?);
        }
        self.last_node = Some(node);
        let conn = self.conns[node].as_mut().expect("connected");
        let result = conn.call(args, deadline);
        if result.is_err() {
            // The connection may still carry a late reply: never reuse it.
            self.conns[node] = None;
        }
        result
    }

    fn index_of_addr(&self, addr: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.addr.to_string() == addr)
    }

    fn index_of_name(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.name == name)
    }
}

pub(crate) fn remaining(deadline: Instant) -> Option<Duration> {
    let now = Instant::now();
    (deadline > now + Duration::from_millis(1)).then(|| deadline - now)
}

fn exchange(conn: &mut Connection, req: &[u8], deadline: Instant) -> Result<Resp, Transport> {
    let left = remaining(deadline).ok_or_else(|| Transport::NotSent("deadline".into()))?;
    conn.stream
        .set_write_timeout(Some(left))
        .map_err(|e| Transport::NotSent(e.to_string()))?;
    if let Err(e) = conn.stream.write_all(req) {
        // Part of the request may be in the kernel's buffer already.
        return Err(Transport::Sent(format!("send: {e}")));
    }
    conn.buf.clear();
    let mut chunk = [0u8; 4096];
    loop {
        match parse_reply(&conn.buf) {
            Ok(Some((v, _))) => return Ok(v),
            Ok(None) => {}
            Err(e) => return Err(Transport::Sent(format!("bad reply: {e}"))),
        }
        let left = remaining(deadline).ok_or_else(|| Transport::Sent("timeout".into()))?;
        conn.stream
            .set_read_timeout(Some(left))
            .map_err(|e| Transport::Sent(e.to_string()))?;
        match conn.stream.read(&mut chunk) {
            Ok(0) => return Err(Transport::Sent("connection closed".into())),
            Ok(n) => conn.buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(Transport::Sent("timeout".into()));
            }
            Err(e) => return Err(Transport::Sent(e.to_string())),
        }
    }
}

/// Parses a value written by the harness (a decimal integer) for the history.
pub(crate) fn value_of(bytes: &[u8]) -> Value {
    let s = String::from_utf8_lossy(bytes);
    match s.parse::<i64>() {
        Ok(n) => Value::from(n),
        Err(_) => Value::from(s.into_owned()),
    }
}

/// The RESP command of an operation: `GET key`, `SET key value`, and for a cas
/// `cas_prefix` followed by `key old new` (`CAS` for stasis-node; Redis runs a script,
/// `EVAL script 1`).
pub(crate) fn argv(op: &ClientOp, cas_prefix: &[&[u8]]) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = Vec::with_capacity(3 + cas_prefix.len());
    match op {
        ClientOp::Read { key } => out.extend([b"GET".to_vec(), key.as_bytes().to_vec()]),
        ClientOp::Write { key, value } => out.extend([
            b"SET".to_vec(),
            key.as_bytes().to_vec(),
            value.to_string().into_bytes(),
        ]),
        ClientOp::Cas { key, old, new } => {
            out.extend(cas_prefix.iter().map(|p| p.to_vec()));
            out.extend([
                key.as_bytes().to_vec(),
                old.to_string().into_bytes(),
                new.to_string().into_bytes(),
            ]);
        }
    }
    out
}

impl Client for RespClient {
    fn invoke(&mut self, op: &ClientOp, deadline: Instant) -> Completion {
        let argv = argv(op, &[b"CAS"]);
        let args: Vec<&[u8]> = argv.iter().map(Vec::as_slice).collect();
        let start = match self.next_start.take() {
            Some(n) => n,
            // Where the last request went if that connection is still good (after an
            // error it is dropped): back home.
            None => self
                .last_node
                .filter(|&n| self.conns[n].is_some())
                .unwrap_or(self.home),
        };
        let mut route = Route::new(self.nodes.len(), start);
        let mut last_error = String::from("no attempt");
        let mut tries = 0usize;
        loop {
            if remaining(deadline).is_none() {
                // Every attempt so far was definitely refused or never sent.
                return Completion::Fail(format!("no node accepted it: {last_error}"));
            }
            tries += 1;
            match self.call(route.at(), &args, deadline) {
                Ok(reply) => match classify(op, reply) {
                    Reply::Done(c) => return c,
                    Reply::Redirect(target) => {
                        last_error = target.clone().unwrap_or_else(|| "NOTLEADER".into());
                        let next = target.as_deref().and_then(|t| {
                            let mut parts = t.split_whitespace();
                            let name = parts.next();
                            let addr = parts.next();
                            addr.and_then(|a| self.index_of_addr(a))
                                .or_else(|| name.and_then(|n| self.index_of_name(n)))
                        });
                        if !route.redirected(next) {
                            // No leader known yet (election in progress): back off a
                            // little before asking the next node.
                            std::thread::sleep(Duration::from_millis(20 * tries.min(5) as u64));
                        }
                    }
                },
                Err(Transport::NotSent(e)) => {
                    last_error = e;
                    std::thread::sleep(Duration::from_millis(10));
                    route.next();
                }
                Err(Transport::Sent(e)) => {
                    return if op.is_read() {
                        Completion::Fail(e)
                    } else {
                        Completion::Info(e)
                    };
                }
            }
        }
    }

    fn node(&self) -> Option<String> {
        self.last_node.map(|n| self.nodes[n].name.clone())
    }

    fn start_at(&mut self, node: usize) -> bool {
        self.next_start = Some(node);
        true
    }
}

/// What one reply means for an operation.
pub enum Reply {
    Done(Completion),
    /// `NOTLEADER [<id> <addr>]`: the text after the code, if any.
    Redirect(Option<String>),
}

/// Maps a node's reply to an operation's outcome (or a redirect to follow).
pub fn classify(op: &ClientOp, reply: Resp) -> Reply {
    let indeterminate = |msg: String| {
        if op.is_read() {
            Completion::Fail(msg)
        } else {
            Completion::Info(msg)
        }
    };
    let done = match (op, reply) {
        (_, Resp::Error(msg)) => {
            let code = msg.split_whitespace().next().unwrap_or("");
            match code {
                "NOTLEADER" => {
                    let rest = msg["NOTLEADER".len()..].trim();
                    return Reply::Redirect((!rest.is_empty()).then(|| rest.to_owned()));
                }
                // Definite: the node refused the command without doing anything.
                "ERR" | "NOQUORUM" | "NOTREADY" => Completion::Fail(msg),
                // TIMEOUT, UNKNOWN and any code we do not know: the write may have happened.
                _ => indeterminate(msg),
            }
        }
        (op, reply) => outcome_of_reply(op, reply),
    };
    Reply::Done(done)
}

/// The outcome of a reply that is not an error: GET's bulk string, SET's `OK`, a cas's 1
/// or 0 (shared by every RESP-speaking client); anything else is unknown for writes and
/// cas and a failure for reads.
pub(crate) fn outcome_of_reply(op: &ClientOp, reply: Resp) -> Completion {
    match (op, reply) {
        (ClientOp::Read { .. }, Resp::Bulk(Some(b))) => Completion::Ok(value_of(&b)),
        (ClientOp::Read { .. }, Resp::Bulk(None)) => Completion::Ok(Value::Null),
        (ClientOp::Write { value, .. }, Resp::Simple(s)) if s == "OK" => {
            Completion::Ok(Value::from(*value))
        }
        (ClientOp::Cas { old, new, .. }, Resp::Integer(1)) => {
            Completion::Ok(Value::from(vec![*old, *new]))
        }
        (ClientOp::Cas { .. }, Resp::Integer(0)) => Completion::Fail("precondition failed".into()),
        (op, other) => Completion::unknown(op, format!("unexpected reply {other:?}")),
    }
}

/// Sends one command to `addr` on a fresh connection and reads one reply. On error,
/// the flag says whether the request may have reached the server.
pub fn request(
    addr: SocketAddr,
    args: &[&[u8]],
    timeout: Duration,
) -> Result<Resp, (bool, String)> {
    let deadline = Instant::now() + timeout;
    let stream =
        TcpStream::connect_timeout(&addr, timeout).map_err(|e| (false, format!("{addr}: {e}")))?;
    let mut conn = Connection {
        stream,
        buf: Vec::new(),
    };
    conn.call(args, deadline).map_err(|e| match e {
        Transport::NotSent(e) => (false, format!("{addr}: {e}")),
        Transport::Sent(e) => (true, format!("{addr}: {e}")),
    })
}

/// Asks a node for its `STATUS` (a JSON document, see docs/NODE.md).
pub fn status(addr: SocketAddr, timeout: Duration) -> Result<NodeStatus, String> {
    match request(addr, &[b"STATUS"], timeout) {
        Ok(Resp::Bulk(Some(b))) => NodeStatus::parse(&b).map_err(|e| format!("{addr}: {e}")),
        Ok(other) => Err(format!("{addr}: unexpected STATUS reply {other:?}")),
        Err((_, e)) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read() -> ClientOp {
        ClientOp::Read { key: "k".into() }
    }
    fn write() -> ClientOp {
        ClientOp::Write {
            key: "k".into(),
            value: 4,
        }
    }
    fn cas() -> ClientOp {
        ClientOp::Cas {
            key: "k".into(),
            old: 1,
            new: 2,
        }
    }
    fn done(op: &ClientOp, r: Resp) -> Completion {
        match classify(op, r) {
            Reply::Done(c) => c,
            Reply::Redirect(t) => panic!("unexpected redirect {t:?}"),
        }
    }

    #[test]
    fn operations_are_spelled_get_set_and_the_given_cas() {
        let words = |v: Vec<Vec<u8>>| -> Vec<String> {
            v.into_iter()
                .map(|w| String::from_utf8(w).unwrap())
                .collect()
        };
        assert_eq!(words(argv(&read(), &[b"CAS"])), ["GET", "k"]);
        assert_eq!(words(argv(&write(), &[b"CAS"])), ["SET", "k", "4"]);
        assert_eq!(
            words(argv(&cas(), &[b"EVAL", b"script", b"1"])),
            ["EVAL", "script", "1", "k", "1", "2"]
        );
        assert_eq!(words(argv(&cas(), &[b"CAS"])), ["CAS", "k", "1", "2"]);
    }

    #[test]
    fn replies_map_to_jepsen_outcomes() {
        assert_eq!(
            done(&read(), Resp::Bulk(Some(b"7".to_vec()))),
            Completion::Ok(Value::from(7))
        );
        assert_eq!(done(&read(), Resp::Bulk(None)), Completion::Ok(Value::Null));
        assert_eq!(done(&write(), Resp::ok()), Completion::Ok(Value::from(4)));
        assert_eq!(
            done(&cas(), Resp::Integer(1)),
            Completion::Ok(serde_json::json!([1, 2]))
        );
        assert!(matches!(
            done(&cas(), Resp::Integer(0)),
            Completion::Fail(_)
        ));
    }

    #[test]
    fn errors_are_definite_or_unknown_by_code() {
        assert!(matches!(
            done(&write(), Resp::error("ERR syntax")),
            Completion::Fail(_)
        ));
        assert!(matches!(
            done(&write(), Resp::error("TIMEOUT waited 5s")),
            Completion::Info(_)
        ));
        assert!(matches!(
            done(&cas(), Resp::error("UNKNOWN lost leadership")),
            Completion::Info(_)
        ));
        assert!(matches!(
            done(&write(), Resp::error("WEIRD thing")),
            Completion::Info(_)
        ));
        // A read that may or may not have been served observed nothing: fail.
        assert!(matches!(
            done(&read(), Resp::error("TIMEOUT")),
            Completion::Fail(_)
        ));
        // An odd reply to a write cannot be called a failure.
        assert!(matches!(
            done(&write(), Resp::Integer(3)),
            Completion::Info(_)
        ));
    }

    #[test]
    fn notleader_is_a_redirect() {
        match classify(&write(), Resp::error("NOTLEADER n2 10.211.1.3:6379")) {
            Reply::Redirect(Some(t)) => assert_eq!(t, "n2 10.211.1.3:6379"),
            _ => panic!(),
        }
        assert!(matches!(
            classify(&read(), Resp::error("NOTLEADER")),
            Reply::Redirect(None)
        ));
    }

    /// A RESP server on loopback answering every command with `reply`, counting them.
    fn fake_node(reply: String) -> (SocketAddr, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let n = std::sync::Arc::new(AtomicUsize::new(0));
        let count = n.clone();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { return };
                let (reply, count) = (reply.clone(), count.clone());
                std::thread::spawn(move || {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 512];
                    while let Ok(k) = s.read(&mut chunk) {
                        if k == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..k]);
                        // One command per request: `*2` or `*3` arrays end with a value.
                        while let Ok(Some((_, used))) = parse_reply(&buf) {
                            buf.drain(..used);
                            count.fetch_add(1, Ordering::SeqCst);
                            if s.write_all(reply.as_bytes()).is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        (addr, n)
    }

    #[test]
    fn routing_starts_where_the_worker_says_and_follows_redirects() {
        use std::sync::atomic::Ordering;
        let (leader, at_leader) = fake_node("$1\r\n7\r\n".into());
        let redirect = format!("-NOTLEADER n1 {leader}\r\n");
        let (f2, at_f2) = fake_node(redirect.clone());
        let (f3, at_f3) = fake_node(redirect);
        let nodes: Vec<Endpoint> = [("n1", leader), ("n2", f2), ("n3", f3)]
            .into_iter()
            .map(|(name, addr)| Endpoint {
                name: name.into(),
                addr,
            })
            .collect();
        let read = || ClientOp::Read { key: "k".into() };
        let deadline = || Instant::now() + Duration::from_secs(2);
        let counts = || [&at_leader, &at_f2, &at_f3].map(|c| c.load(Ordering::SeqCst));
        // Sticky: home n2 redirects to n1, and the next operation starts at n1.
        let mut c = RespClient::new(nodes, 1);
        assert_eq!(
            c.invoke(&read(), deadline()),
            Completion::Ok(Value::from(7))
        );
        assert_eq!(counts(), [1, 1, 0]);
        assert_eq!(
            c.invoke(&read(), deadline()),
            Completion::Ok(Value::from(7))
        );
        assert_eq!(counts(), [2, 1, 0]);
        assert_eq!(c.node().as_deref(), Some("n1"));
        // Routed: each operation starts where the worker says, and is redirected.
        assert!(c.start_at(2));
        assert_eq!(
            c.invoke(&read(), deadline()),
            Completion::Ok(Value::from(7))
        );
        assert_eq!(counts(), [3, 1, 1]);
        assert!(c.start_at(1));
        assert_eq!(
            c.invoke(&read(), deadline()),
            Completion::Ok(Value::from(7))
        );
        assert_eq!(counts(), [4, 2, 1]);
    }

    #[test]
    fn unreachable_cluster_fails_definitely_at_the_deadline() {
        // Port 1 on loopback refuses connections: nothing is ever sent.
        let nodes = vec![Endpoint {
            name: "n1".into(),
            addr: "127.0.0.1:1".parse().unwrap(),
        }];
        let mut c = RespClient::new(nodes, 0);
        let r = c.invoke(&write(), Instant::now() + Duration::from_millis(100));
        assert!(matches!(r, Completion::Fail(_)), "{r:?}");
    }
}

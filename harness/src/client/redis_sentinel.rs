//! Redis with Sentinel: the client finds the primary the way real Sentinel clients do.
//!
//! * discovery -> `SENTINEL get-master-addr-by-name <master>` asked of the Sentinels in
//!   turn (starting at the worker's own), then a connection to the named node, kept until
//!   an error: a transport error, a timeout or a `READONLY` reply (the node was demoted)
//!   sends the next operation back to the Sentinels, so the client follows failovers.
//! * read  -> `GET key` on the primary
//! * write -> `SET key value` on the primary
//! * cas   -> `EVAL` of [`CAS_SCRIPT`] on the primary: the comparison and the `SET` run
//!   atomically inside Redis
//! * with `wait_replicas = n` (the spec's `[redis]`), every write and successful cas is
//!   followed by `WAIT n timeout`; fewer than `n` acknowledgements make it `info` (it is
//!   applied on the primary but may be lost in a failover).
//!
//! Outcome mapping (the rules are those of [`super`]):
//!
//! | what happened | read | write / cas |
//! | --- | --- | --- |
//! | reply | ok | ok (cas 0: fail; WAIT short of n: info) |
//! | no Sentinel names a reachable primary, connection refused (nothing sent) | retried until the deadline, then fail | same |
//! | `READONLY` (the node is a replica now: nothing done) | rediscovered and retried until the deadline | same |
//! | `LOADING`, `MASTERDOWN`, `BUSY`, `NOSCRIPT`, `ERR`, `WRONGTYPE` (refused before any effect) | fail | fail |
//! | any other error code, timeout or connection lost after sending | fail | info |
//!
//! Redis replicates asynchronously: a write acknowledged by an old primary that a
//! partition cut off from the Sentinels is lost when that primary rejoins as a replica.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::resp::{Connection, Endpoint, Transport, outcome_of_reply, remaining, request};
use super::{Client, ClientOp, Completion};
use crate::units::parse_duration;
use node::resp::Value as Resp;
use serde::{Deserialize, Serialize};

/// Compare-and-set in one atomic script: `KEYS[1]` holds `ARGV[1]` -> set `ARGV[2]`.
pub const CAS_SCRIPT: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then \
     redis.call('SET', KEYS[1], ARGV[2]) return 1 else return 0 end";

/// The spec's `[redis]` client options.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisOptions {
    /// The name the Sentinels monitor the primary under (`sentinel monitor <name> ...`).
    #[serde(default = "default_master")]
    pub master_name: String,
    /// The `[[aux]]` group whose processes are the Sentinels.
    pub sentinels: String,
    /// After each write and successful cas: `WAIT <wait_replicas> <wait_timeout>` (0: no
    /// WAIT).
    #[serde(default)]
    pub wait_replicas: u32,
    #[serde(default = "default_wait_timeout")]
    pub wait_timeout: String,
}

fn default_master() -> String {
    "stasis".into()
}

fn default_wait_timeout() -> String {
    "1s".into()
}

impl RedisOptions {
    /// Checks the fields the types cannot; the error names the field.
    pub fn validate(&self) -> Result<(), String> {
        if self.master_name.is_empty() || self.master_name.contains(char::is_whitespace) {
            return Err("redis.master_name must be one word".into());
        }
        let t =
            parse_duration(&self.wait_timeout).map_err(|e| format!("redis.wait_timeout: {e}"))?;
        if t.is_zero() && self.wait_replicas > 0 {
            return Err(
                "redis.wait_timeout must be positive (WAIT with timeout 0 blocks forever)".into(),
            );
        }
        Ok(())
    }

    fn wait_timeout_ms(&self) -> u64 {
        parse_duration(&self.wait_timeout).map_or(1000, |d| d.as_millis() as u64)
    }

    /// Whether an auxiliary process (by host name, `sentinel1`, ...) is a Sentinel.
    pub fn is_sentinel(&self, host: &str) -> bool {
        host.strip_prefix(self.sentinels.as_str())
            .is_some_and(|k| !k.is_empty() && k.bytes().all(|b| b.is_ascii_digit()))
    }
}

pub struct RedisSentinelClient {
    nodes: Vec<Endpoint>,
    sentinels: Vec<Endpoint>,
    opts: Arc<RedisOptions>,
    /// The Sentinel asked first next time (rotates past ones that do not answer).
    next_sentinel: usize,
    /// The primary the Sentinels named, and the connection to it.
    conn: Option<(usize, Connection)>,
    last: Option<usize>,
}

/// What one reply means.
enum Step {
    Done(Completion),
    /// The node is not the primary (any more): ask the Sentinels again and retry.
    Rediscover(String),
}

impl RedisSentinelClient {
    /// `aux` are every auxiliary process of the run; the Sentinels are those of the
    /// `sentinels` group.
    pub fn new(
        nodes: Vec<Endpoint>,
        aux: &[Endpoint],
        home: usize,
        opts: Arc<RedisOptions>,
    ) -> RedisSentinelClient {
        let sentinels: Vec<Endpoint> = aux
            .iter()
            .filter(|e| opts.is_sentinel(&e.name))
            .cloned()
            .collect();
        RedisSentinelClient {
            next_sentinel: home % sentinels.len().max(1),
            nodes,
            sentinels,
            opts,
            conn: None,
            last: None,
        }
    }

    /// Asks the Sentinels in turn which node is the primary.
    fn discover(&mut self, deadline: Instant) -> Result<usize, String> {
        let mut errors = Vec::new();
        for _ in 0..self.sentinels.len() {
            let s = &self.sentinels[self.next_sentinel];
            let Some(left) = remaining(deadline) else {
                errors.push("deadline".into());
                break;
            };
            match master_addr(
                s.addr,
                &self.opts.master_name,
                left.min(Duration::from_millis(500)),
            ) {
                Ok(addr) => match self.nodes.iter().position(|n| n.addr.to_string() == addr) {
                    Some(i) => return Ok(i),
                    None => errors.push(format!("{}: names unknown node {addr}", s.name)),
                },
                Err(e) => errors.push(format!("{}: {e}", s.name)),
            }
            self.next_sentinel = (self.next_sentinel + 1) % self.sentinels.len();
        }
        if self.sentinels.is_empty() {
            errors.push("no Sentinels in the run".into());
        }
        Err(format!("no primary known: {}", errors.join("; ")))
    }

    /// Sends one command to the primary, connecting (through the Sentinels) if needed.
    fn call(&mut self, args: &[&[u8]], deadline: Instant) -> Result<Resp, Transport> {
        if self.conn.is_none() {
            let node = self.discover(deadline).map_err(Transport::NotSent)?;
            self.last = Some(node);
            let c = Connection::open(self.nodes[node].addr, deadline)?;
            self.conn = Some((node, c));
        }
        let (node, c) = self.conn.as_mut().expect("connected");
        self.last = Some(*node);
        let result = c.call(args, deadline);
        if result.is_err() {
            // A late reply may still arrive on it, and the primary may have moved.
            self.conn = None;
        }
        result
    }

    fn wait(&mut self, deadline: Instant) -> Result<Option<String>, Transport> {
        let n = self.opts.wait_replicas;
        if n == 0 {
            return Ok(None);
        }
        let (a, b) = (n.to_string(), self.opts.wait_timeout_ms().to_string());
        match self.call(&[b"WAIT", a.as_bytes(), b.as_bytes()], deadline)? {
            Resp::Integer(k) if k >= i64::from(n) => Ok(None),
            Resp::Integer(k) => Ok(Some(format!(
                "WAIT: {k} of {n} replicas acknowledged; applied on the primary only"
            ))),
            other => Ok(Some(format!("WAIT: unexpected reply {other:?}"))),
        }
    }

    /// The outcome of an applied write (`done`) once WAIT, if configured, has answered.
    fn after_write(&mut self, done: Completion, deadline: Instant) -> Completion {
        match self.wait(deadline) {
            Ok(None) => done,
            Ok(Some(short)) => Completion::Info(short),
            Err(Transport::NotSent(e) | Transport::Sent(e)) => {
                Completion::Info(format!("WAIT after the write: {e}"))
            }
        }
    }
}

/// `SENTINEL get-master-addr-by-name`: the primary's `ip:port`.
pub fn master_addr(
    sentinel: std::net::SocketAddr,
    master: &str,
    timeout: Duration,
) -> Result<String, String> {
    let reply = request(
        sentinel,
        &[b"SENTINEL", b"get-master-addr-by-name", master.as_bytes()],
        timeout,
    )
    .map_err(|(_, e)| e)?;
    match reply {
        Resp::Array(Some(v)) if v.len() == 2 => {
            let s = |x: &Resp| match x {
                Resp::Bulk(Some(b)) => Some(String::from_utf8_lossy(b).into_owned()),
                _ => None,
            };
            match (s(&v[0]), s(&v[1])) {
                (Some(ip), Some(port)) => Ok(format!("{ip}:{port}")),
                _ => Err(format!("odd reply {v:?}")),
            }
        }
        Resp::Array(None) => Err(format!("does not monitor {master}")),
        other => Err(format!("unexpected reply {other:?}")),
    }
}

/// Maps a reply to an operation's outcome.
fn classify(op: &ClientOp, reply: Resp) -> Step {
    Step::Done(match (op, reply) {
        (_, Resp::Error(msg)) => match msg.split_whitespace().next().unwrap_or("") {
            "READONLY" => return Step::Rediscover(msg),
            "LOADING" | "MASTERDOWN" | "BUSY" | "NOSCRIPT" | "ERR" | "WRONGTYPE" => {
                Completion::Fail(msg)
            }
            _ => Completion::unknown(op, msg),
        },
        (op, reply) => outcome_of_reply(op, reply),
    })
}

impl Client for RedisSentinelClient {
    fn invoke(&mut self, op: &ClientOp, deadline: Instant) -> Completion {
        let argv = super::resp::argv(op, &[b"EVAL", CAS_SCRIPT.as_bytes(), b"1"]);
        let args: Vec<&[u8]> = argv.iter().map(Vec::as_slice).collect();
        let mut last_error = String::from("no attempt");
        loop {
            if remaining(deadline).is_none() {
                // Every attempt so far was refused before any effect or never sent.
                return Completion::Fail(last_error);
            }
            match self.call(&args, deadline) {
                Ok(reply) => match classify(op, reply) {
                    Step::Done(Completion::Ok(v)) if !op.is_read() => {
                        return self.after_write(Completion::Ok(v), deadline);
                    }
                    Step::Done(c) => return c,
                    Step::Rediscover(e) => {
                        last_error = e;
                        self.conn = None;
                        std::thread::sleep(Duration::from_millis(50));
                    }
                },
                Err(Transport::NotSent(e)) => {
                    last_error = e;
                    self.conn = None;
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(Transport::Sent(e)) => return Completion::unknown(op, e),
            }
        }
    }

    fn node(&self) -> Option<String> {
        self.last.map(|n| self.nodes[n].name.clone())
    }
}

/// Whether the deployment is ready for a test: every Sentinel names the same primary,
/// knows every replica and every other Sentinel, and sees the primary up; the primary
/// says it is one and has every replica connected. Otherwise says what is missing.
pub fn ready(
    nodes: &[Endpoint],
    aux: &[Endpoint],
    opts: &RedisOptions,
    timeout: Duration,
) -> Result<(), String> {
    let sentinels: Vec<&Endpoint> = aux.iter().filter(|e| opts.is_sentinel(&e.name)).collect();
    let mut primary: Option<String> = None;
    for s in &sentinels {
        let reply = request(
            s.addr,
            &[b"SENTINEL", b"master", opts.master_name.as_bytes()],
            timeout,
        )
        .map_err(|(_, e)| format!("{}: {e}", s.name))?;
        let fields = pairs(&reply);
        let get = |k: &str| fields.iter().find(|(f, _)| f == k).map(|(_, v)| v.as_str());
        let addr = format!(
            "{}:{}",
            get("ip").unwrap_or("?"),
            get("port").unwrap_or("?")
        );
        let flags = get("flags").unwrap_or("?");
        let replicas: usize = get("num-slaves").and_then(|v| v.parse().ok()).unwrap_or(0);
        let others: usize = get("num-other-sentinels")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        if flags != "master" {
            return Err(format!("{}: primary {addr} has flags {flags}", s.name));
        }
        if replicas + 1 < nodes.len() || others + 1 < sentinels.len() {
            return Err(format!(
                "{}: knows {replicas} replicas and {others} other Sentinels (wants {} and {})",
                s.name,
                nodes.len() - 1,
                sentinels.len() - 1
            ));
        }
        match &primary {
            Some(p) if *p != addr => {
                return Err(format!("Sentinels disagree: {p} and {addr} ({})", s.name));
            }
            _ => primary = Some(addr),
        }
    }
    let Some(addr) = primary else {
        return Err("no Sentinels in the run".into());
    };
    let node = nodes
        .iter()
        .find(|n| n.addr.to_string() == addr)
        .ok_or_else(|| format!("the Sentinels name {addr}, not a node of the run"))?;
    match request(node.addr, &[b"ROLE"], timeout).map_err(|(_, e)| e)? {
        Resp::Array(Some(v)) if v.len() == 3 => {
            let connected = match &v[2] {
                Resp::Array(Some(r)) => r.len(),
                _ => 0,
            };
            if v[0] != Resp::Bulk(Some(b"master".to_vec())) || connected + 1 < nodes.len() {
                return Err(format!(
                    "{} ({addr}): {connected} replicas connected",
                    node.name
                ));
            }
            Ok(())
        }
        other => Err(format!("{} ({addr}): ROLE says {other:?}", node.name)),
    }
}

/// A flat `[field, value, ...]` reply as pairs of strings.
fn pairs(reply: &Resp) -> Vec<(String, String)> {
    let Resp::Array(Some(v)) = reply else {
        return Vec::new();
    };
    let text = |x: &Resp| match x {
        Resp::Bulk(Some(b)) => String::from_utf8_lossy(b).into_owned(),
        Resp::Simple(s) => s.clone(),
        Resp::Integer(i) => i.to_string(),
        _ => String::new(),
    };
    v.chunks(2)
        .filter(|c| c.len() == 2)
        .map(|c| (text(&c[0]), text(&c[1])))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn opts() -> Arc<RedisOptions> {
        Arc::new(RedisOptions {
            master_name: "stasis".into(),
            sentinels: "sentinel".into(),
            wait_replicas: 0,
            wait_timeout: "1s".into(),
        })
    }

    fn done(op: &ClientOp, r: Resp) -> Completion {
        match classify(op, r) {
            Step::Done(c) => c,
            Step::Rediscover(e) => panic!("unexpected rediscovery {e}"),
        }
    }

    #[test]
    fn replies_map_to_jepsen_outcomes() {
        let read = ClientOp::Read { key: "k".into() };
        let write = ClientOp::Write {
            key: "k".into(),
            value: 4,
        };
        let cas = ClientOp::Cas {
            key: "k".into(),
            old: 1,
            new: 2,
        };
        assert_eq!(
            done(&read, Resp::Bulk(Some(b"7".to_vec()))),
            Completion::Ok(Value::from(7))
        );
        assert_eq!(done(&read, Resp::Bulk(None)), Completion::Ok(Value::Null));
        assert_eq!(done(&write, Resp::ok()), Completion::Ok(Value::from(4)));
        assert_eq!(
            done(&cas, Resp::Integer(1)),
            Completion::Ok(serde_json::json!([1, 2]))
        );
        assert!(matches!(done(&cas, Resp::Integer(0)), Completion::Fail(_)));
        assert!(matches!(
            classify(
                &write,
                Resp::error("READONLY You can't write against a read only replica.")
            ),
            Step::Rediscover(_)
        ));
        assert!(matches!(
            done(
                &write,
                Resp::error("LOADING Redis is loading the dataset in memory")
            ),
            Completion::Fail(_)
        ));
        assert!(matches!(
            done(&cas, Resp::error("OOM command not allowed")),
            Completion::Info(_)
        ));
        assert!(matches!(
            done(&read, Resp::error("OOM command not allowed")),
            Completion::Fail(_)
        ));
        assert!(matches!(
            done(&write, Resp::Integer(3)),
            Completion::Info(_)
        ));
    }

    #[test]
    fn sentinels_are_picked_by_group_name() {
        let o = opts();
        assert!(o.is_sentinel("sentinel1") && o.is_sentinel("sentinel12"));
        assert!(!o.is_sentinel("sentinel") && !o.is_sentinel("sentinelx") && !o.is_sentinel("n1"));
        let mut bad = (*o).clone();
        bad.wait_replicas = 1;
        bad.wait_timeout = "0s".into();
        assert!(bad.validate().unwrap_err().contains("wait_timeout"));
        bad.master_name = "two words".into();
        assert!(bad.validate().unwrap_err().contains("master_name"));
    }

    #[test]
    fn no_sentinel_answering_fails_definitely_at_the_deadline() {
        let e = |name: &str| Endpoint {
            name: name.into(),
            addr: "127.0.0.1:1".parse().unwrap(),
        };
        let mut c = RedisSentinelClient::new(vec![e("n1")], &[e("sentinel1")], 0, opts());
        let op = ClientOp::Write {
            key: "k".into(),
            value: 1,
        };
        match c.invoke(&op, Instant::now() + Duration::from_millis(200)) {
            Completion::Fail(msg) => assert!(msg.contains("no primary known"), "{msg}"),
            other => panic!("{other:?}"),
        }
    }
}

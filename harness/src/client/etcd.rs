//! etcd client over its v3 JSON gateway (HTTP/1.1; keys and values base64).
//!
//! * read  -> `POST /v3/kv/range {"key", "serializable"}`: linearizable by default; with
//!   `serializable` the member answers from its local state (etcd's weaker, faster mode).
//! * write -> `POST /v3/kv/put {"key", "value"}`
//! * cas   -> `POST /v3/kv/txn` comparing the value, then putting the new one;
//!   `"succeeded"` is omitted from the JSON when false.
//!
//! Outcome mapping (the rules are the same as for RESP, see [`super`]):
//!
//! | what happened | read | write / cas |
//! | --- | --- | --- |
//! | 200 with a result | ok | ok (cas not succeeded: fail) |
//! | connection refused / connect timeout (nothing sent) | retried on the next member until the deadline, then fail | same |
//! | etcd error `no leader` (refused before the request is proposed) | fail | fail |
//! | etcd error `InvalidArgument` (gRPC code 3), HTTP 4xx other than 408/429 | fail | fail |
//! | any other etcd error (`request timed out`, `leader changed`, `too many requests`, ...) | fail | info |
//! | timeout or connection lost after sending, unparseable reply | fail | info |
//!
//! Reads never have an effect, so every read error is `fail`.

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};

use super::resp::Endpoint;
use super::{Client, ClientOp, Completion, Failure, value_of_text};

pub struct EtcdClient {
    agent: ureq::Agent,
    nodes: Vec<Endpoint>,
    home: usize,
    serializable: bool,
    last: Option<usize>,
}

/// A shared agent that returns error statuses as responses (etcd puts its error in the
/// JSON body).
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_idle_connections_per_host(4)
        .build()
        .into()
}

/// One POST of `body` to `path` on `addr`, giving up at `deadline`.
fn post(
    agent: &ureq::Agent,
    addr: &str,
    path: &str,
    body: &Value,
    deadline: Instant,
) -> Result<Value, Failure> {
    let left = deadline
        .checked_duration_since(Instant::now())
        .filter(|d| *d > Duration::from_millis(1))
        .ok_or_else(|| Failure::NotSent("deadline".into()))?;
    let url = format!("http://{addr}{path}");
    let result = agent
        .post(&url)
        .config()
        .timeout_global(Some(left))
        .timeout_connect(Some(left.min(Duration::from_secs(1))))
        .build()
        .send_json(body);
    let mut resp = match result {
        Ok(r) => r,
        Err(e) => return Err(transport(e)),
    };
    let status = resp.status().as_u16();
    let v: Value = resp
        .body_mut()
        .read_json()
        .map_err(|e| Failure::Unknown(format!("unreadable reply ({status}): {e}")))?;
    if status == 200 {
        return Ok(v);
    }
    let msg = v
        .get("error")
        .or_else(|| v.get("message"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let code = v.get("code").and_then(Value::as_i64).unwrap_or(-1);
    let text = format!("HTTP {status} code {code}: {msg}");
    Err(
        if msg.contains("no leader")
            || code == 3
            || (400..500).contains(&status) && status != 408 && status != 429
        {
            Failure::Definite(text)
        } else {
            Failure::Unknown(text)
        },
    )
}

fn transport(e: ureq::Error) -> Failure {
    use ureq::Timeout;
    match e {
        ureq::Error::ConnectionFailed | ureq::Error::HostNotFound => {
            Failure::NotSent(e.to_string())
        }
        ureq::Error::Timeout(Timeout::Connect | Timeout::Resolve) => {
            Failure::NotSent(e.to_string())
        }
        ureq::Error::Io(ref io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            Failure::NotSent(e.to_string())
        }
        other => Failure::Unknown(other.to_string()),
    }
}

impl EtcdClient {
    pub fn new(nodes: Vec<Endpoint>, home: usize, serializable: bool) -> EtcdClient {
        EtcdClient {
            agent: agent(),
            home: home % nodes.len().max(1),
            nodes,
            serializable,
            last: None,
        }
    }
}

fn b64(s: &str) -> String {
    B64.encode(s.as_bytes())
}

/// Decodes a base64 value written by the harness (a decimal integer) for the history.
fn value_of(v: &Value) -> Value {
    let text = v
        .as_str()
        .and_then(|s| B64.decode(s).ok())
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    value_of_text(&text)
}

impl Client for EtcdClient {
    fn invoke(&mut self, op: &ClientOp, deadline: Instant) -> Completion {
        let (path, body) = match op {
            ClientOp::Read { key } => (
                "/v3/kv/range",
                json!({"key": b64(key), "serializable": self.serializable}),
            ),
            ClientOp::Write { key, value } => (
                "/v3/kv/put",
                json!({"key": b64(key), "value": b64(&value.to_string())}),
            ),
            ClientOp::Cas { key, old, new } => (
                "/v3/kv/txn",
                json!({
                    "compare": [{"key": b64(key), "result": "EQUAL", "target": "VALUE",
                                 "value": b64(&old.to_string())}],
                    "success": [{"request_put": {"key": b64(key), "value": b64(&new.to_string())}}],
                }),
            ),
        };
        // Any member serves any request (followers forward to the leader), so stay on the
        // home member and move on only when it cannot be reached at all.
        let mut node = self.home;
        let mut last_error = String::from("no attempt");
        loop {
            if deadline <= Instant::now() {
                return Completion::Fail(format!("no member reachable: {last_error}"));
            }
            self.last = Some(node);
            let addr = self.nodes[node].addr.to_string();
            match post(&self.agent, &addr, path, &body, deadline) {
                Ok(v) => {
                    return match op {
                        ClientOp::Read { .. } => Completion::Ok(
                            v.get("kvs")
                                .and_then(|k| k.get(0))
                                .and_then(|kv| kv.get("value"))
                                .map_or(Value::Null, value_of),
                        ),
                        ClientOp::Write { value, .. } => Completion::Ok(Value::from(*value)),
                        ClientOp::Cas { old, new, .. } => {
                            if v.get("succeeded").and_then(Value::as_bool) == Some(true) {
                                Completion::Ok(json!([old, new]))
                            } else {
                                Completion::Fail("precondition failed".into())
                            }
                        }
                    };
                }
                Err(Failure::NotSent(e)) => {
                    last_error = e;
                    node = (node + 1) % self.nodes.len();
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(Failure::Definite(e)) => return Completion::Fail(e),
                Err(Failure::Unknown(e)) => {
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
        self.last.map(|n| self.nodes[n].name.clone())
    }
}

/// Whether the member at `addr` is the leader (`/v3/maintenance/status`: its own member
/// id equals the leader's).
pub fn is_leader(addr: &str, timeout: Duration) -> Result<bool, String> {
    let agent = agent();
    let v = post(
        &agent,
        addr,
        "/v3/maintenance/status",
        &json!({}),
        Instant::now() + timeout,
    )
    .map_err(|f| match f {
        Failure::NotSent(e) | Failure::Unknown(e) | Failure::Definite(e) => e,
    })?;
    let me = v.pointer("/header/member_id").and_then(Value::as_str);
    let leader = v.get("leader").and_then(Value::as_str);
    Ok(me.is_some() && me == leader)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_decode_to_integers() {
        assert_eq!(value_of(&Value::from(B64.encode("42"))), Value::from(42));
        assert_eq!(value_of(&Value::from(B64.encode("x"))), Value::from("x"));
    }

    #[test]
    fn unreachable_members_fail_definitely_at_the_deadline() {
        let nodes = vec![Endpoint {
            name: "n1".into(),
            addr: "127.0.0.1:1".parse().unwrap(),
        }];
        let mut c = EtcdClient::new(nodes, 0, false);
        let op = ClientOp::Write {
            key: "k".into(),
            value: 1,
        };
        let r = c.invoke(&op, Instant::now() + Duration::from_millis(100));
        assert!(matches!(r, Completion::Fail(_)), "{r:?}");
    }
}

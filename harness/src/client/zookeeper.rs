//! ZooKeeper client over ZooKeeper's own protocol, through the `zookeeper-client` crate
//! (async; driven on the tokio runtime shared by every async client, [`super::runtime`]).
//!
//! A key `k` is the znode `/k`, its value the decimal text of an integer.
//!
//! * read  -> `sync /k` then `getData /k` on the same session (option `sync_reads`, the
//!   default), or `getData /k` alone, which the connected server answers from its own
//!   state and which ZooKeeper documents may be stale. No znode reads as null.
//! * write -> `setData /k` at any version; when the znode does not exist yet, `create /k`
//!   (and `setData` again if another client created it in between).
//! * cas   -> `getData /k`, then, if the value is the expected one, `setData /k` at the
//!   version read: ZooKeeper applies it only if no write came in between.
//!
//! Each client holds one session on one server (its home server first, the next one when
//! a server cannot be reached), so the history names the server each operation went to.
//! A session that lost its connection is dropped, and the next operation opens a new one.
//!
//! Outcome mapping (the rules are the same as for RESP and etcd, see [`super`]):
//!
//! | what happened | read | write / cas |
//! | --- | --- | --- |
//! | reply with a result | ok | ok |
//! | no session could be opened before the deadline (nothing sent) | fail | fail |
//! | cas: value read is not the expected one, or `BadVersion` / `NoNode` | - | fail |
//! | ZooKeeper refused the request (`NoAuth`, `BadArguments`, `InvalidAcl`, `NotReadOnly`, `Unimplemented`, `MarshallingError`) | fail | fail |
//! | connection loss, session expired or moved, timeout after sending, any other error | fail | info |

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use zookeeper_client as zk;

use super::resp::Endpoint;
use super::{Client, ClientOp, Completion, Failure, run_until, value_of_text};

/// How long ZooKeeper keeps a session whose client went silent (the servers clamp it to
/// 2-20 ticks).
const SESSION_TIMEOUT: Duration = Duration::from_secs(4);
/// How long one TCP connect plus session handshake may take before the next server is tried.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

pub struct ZkClient {
    nodes: Vec<Endpoint>,
    home: usize,
    sync_reads: bool,
    /// The open session and the index of its server.
    session: Option<(usize, zk::Client)>,
    last: Option<usize>,
}

/// Classifies an error returned after the request was handed to the session.
fn classify(e: zk::Error) -> Failure {
    use zk::Error as E;
    match e {
        E::NoAuth
        | E::BadArguments(_)
        | E::InvalidAcl
        | E::NotReadOnly
        | E::Unimplemented
        | E::MarshallingError
        | E::BadVersion
        | E::NoNode => Failure::Definite(e.to_string()),
        other => Failure::Unknown(other.to_string()),
    }
}

fn path_of(key: &str) -> String {
    format!("/{key}")
}

fn value_of(data: &[u8]) -> Value {
    value_of_text(&String::from_utf8_lossy(data))
}

impl ZkClient {
    pub fn new(nodes: Vec<Endpoint>, home: usize, sync_reads: bool) -> ZkClient {
        ZkClient {
            home: home % nodes.len().max(1),
            nodes,
            sync_reads,
            session: None,
            last: None,
        }
    }

    /// The open session, or a new one: the home server first, then the next ones, until
    /// one accepts (the caller bounds the time).
    async fn connected(&mut self) -> zk::Client {
        if let Some((node, c)) = &self.session {
            if c.state() == zk::SessionState::SyncConnected {
                self.last = Some(*node);
                return c.clone();
            }
            self.session = None;
        }
        let mut node = self.home;
        loop {
            self.last = Some(node);
            let addr = self.nodes[node].addr.to_string();
            let attempt = zk::Client::connector()
                .with_session_timeout(SESSION_TIMEOUT)
                .with_connection_timeout(CONNECT_TIMEOUT)
                .with_fail_eagerly()
                .connect(&addr);
            if let Ok(Ok(c)) = tokio::time::timeout(CONNECT_TIMEOUT * 2, attempt).await {
                self.session = Some((node, c.clone()));
                return c;
            }
            node = (node + 1) % self.nodes.len();
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Performs `op`; `sent` is set once a request that may change state is handed over.
    async fn perform(&mut self, op: &ClientOp, sent: &mut bool) -> Result<Value, Failure> {
        let c = self.connected().await;
        let path = path_of(op.key());
        match op {
            ClientOp::Read { .. } => {
                if self.sync_reads {
                    c.sync(&path).await.map_err(classify)?;
                }
                match c.get_data(&path).await {
                    Ok((data, _)) => Ok(value_of(&data)),
                    Err(zk::Error::NoNode) => Ok(Value::Null),
                    Err(e) => Err(classify(e)),
                }
            }
            ClientOp::Write { value, .. } => {
                let data = value.to_string().into_bytes();
                *sent = true;
                loop {
                    match c.set_data(&path, &data, None).await {
                        Ok(_) => return Ok(Value::from(*value)),
                        Err(zk::Error::NoNode) => {}
                        Err(e) => return Err(classify(e)),
                    }
                    let options = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
                    match c.create(&path, &data, &options).await {
                        Ok(_) => return Ok(Value::from(*value)),
                        // Created by another client in between: set it.
                        Err(zk::Error::NodeExists) => {}
                        Err(e) => return Err(classify(e)),
                    }
                }
            }
            ClientOp::Cas { old, new, .. } => {
                let (data, stat) = c.get_data(&path).await.map_err(|e| match e {
                    zk::Error::NoNode => Failure::Definite("precondition failed: no znode".into()),
                    e => match classify(e) {
                        // Nothing was changed yet: the cas definitely did not happen.
                        Failure::Unknown(m) => Failure::Definite(m),
                        f => f,
                    },
                })?;
                let seen = value_of(&data);
                if seen != *old {
                    return Err(Failure::Definite(format!(
                        "precondition failed: value is {seen}"
                    )));
                }
                *sent = true;
                c.set_data(&path, new.to_string().as_bytes(), Some(stat.version))
                    .await
                    .map(|_| json!([old, new]))
                    .map_err(|e| match e {
                        zk::Error::BadVersion => {
                            Failure::Definite("precondition failed: version changed".into())
                        }
                        e => classify(e),
                    })
            }
        }
    }
}

impl Client for ZkClient {
    fn invoke(&mut self, op: &ClientOp, deadline: Instant) -> Completion {
        let result = run_until(deadline, async |sent: &mut bool| {
            self.perform(op, sent).await
        });
        match result {
            Ok(v) => Completion::Ok(v),
            Err(Failure::Definite(e)) => Completion::Fail(e),
            Err(Failure::NotSent(e)) => {
                self.session = None;
                Completion::Fail(e)
            }
            Err(Failure::Unknown(e)) => {
                // The session's state is unknown: the next operation opens a new one.
                self.session = None;
                if op.is_read() {
                    Completion::Fail(e)
                } else {
                    Completion::Info(e)
                }
            }
        }
    }

    fn node(&self) -> Option<String> {
        self.last.map(|n| self.nodes[n].name.clone())
    }
}

/// Asks the server at `addr` for its `srvr` report (a four-letter word the spec's config
/// allows).
fn srvr(addr: SocketAddr, timeout: Duration) -> Result<String, String> {
    let deadline = Instant::now() + timeout;
    let mut s = TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("{addr}: {e}"))?;
    let left = deadline
        .checked_duration_since(Instant::now())
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("{addr}: srvr timed out"))?;
    s.set_read_timeout(Some(left))
        .and_then(|()| s.set_write_timeout(Some(left)))
        .and_then(|()| s.write_all(b"srvr"))
        .map_err(|e| format!("{addr}: {e}"))?;
    let mut out = String::new();
    s.read_to_string(&mut out)
        .map_err(|e| format!("{addr}: srvr: {e}"))?;
    Ok(out)
}

/// The `Mode:` line of a `srvr` report (`leader`, `follower`, `standalone`, ...), or `None`
/// when the server is not serving (it answers `This ZooKeeper instance is not currently
/// serving requests` while it has no quorum).
fn mode(report: &str) -> Option<&str> {
    report
        .lines()
        .find_map(|l| l.strip_prefix("Mode:"))
        .map(str::trim)
}

/// Whether the server at `addr` is the ensemble's leader.
pub fn is_leader(addr: SocketAddr, timeout: Duration) -> Result<bool, String> {
    Ok(mode(&srvr(addr, timeout)?) == Some("leader"))
}

/// A one-line description of the server's state.
pub fn describe(addr: SocketAddr) -> String {
    match srvr(addr, Duration::from_millis(500)) {
        Ok(r) => match mode(&r) {
            Some(m) => format!("reachable, mode: {m}"),
            None => format!("reachable, not serving: {}", r.trim().replace('\n', "; ")),
        },
        Err(e) => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_are_read_from_srvr_reports() {
        let r =
            "Zookeeper version: 3.8.0\nLatency min/avg/max: 0/0.0/0\nMode: leader\nNode count: 5\n";
        assert_eq!(mode(r), Some("leader"));
        assert_eq!(
            mode("This ZooKeeper instance is not currently serving requests\n"),
            None
        );
    }

    #[test]
    fn values_and_paths() {
        assert_eq!(value_of(b"42"), Value::from(42));
        assert_eq!(value_of(b"x"), Value::from("x"));
        assert_eq!(path_of("k3"), "/k3");
    }

    #[test]
    fn errors_are_definite_only_when_zookeeper_refused() {
        assert!(matches!(
            classify(zk::Error::BadVersion),
            Failure::Definite(_)
        ));
        assert!(matches!(classify(zk::Error::NoAuth), Failure::Definite(_)));
        for e in [
            zk::Error::ConnectionLoss,
            zk::Error::SessionExpired,
            zk::Error::SessionMoved,
            zk::Error::Timeout,
            zk::Error::ClientClosed,
            zk::Error::Throttled,
        ] {
            assert!(matches!(classify(e), Failure::Unknown(_)));
        }
    }

    #[test]
    fn unreachable_servers_fail_definitely_at_the_deadline() {
        let nodes = vec![Endpoint {
            name: "n1".into(),
            addr: "127.0.0.1:1".parse().unwrap(),
        }];
        let mut c = ZkClient::new(nodes, 0, true);
        let op = ClientOp::Write {
            key: "k".into(),
            value: 1,
        };
        let r = c.invoke(&op, Instant::now() + Duration::from_millis(200));
        assert!(matches!(r, Completion::Fail(_)), "{r:?}");
        assert_eq!(c.node().as_deref(), Some("n1"));
        assert!(is_leader("127.0.0.1:1".parse().unwrap(), Duration::from_millis(200)).is_err());
    }
}

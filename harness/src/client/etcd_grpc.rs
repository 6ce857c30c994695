//! etcd client over etcd's native v3 gRPC API (the `etcd-client` crate: tonic + prost),
//! the protocol etcd's own clients (etcdctl, clientv3) speak; a spec selects it with
//! `[etcd] api = "grpc"` (the JSON gateway, [`super::etcd`], is the default).
//!
//! The same operations as the gateway client, one unary RPC each:
//!
//! * read  -> `KV.Range {key}`: linearizable by default; with `serializable` the member
//!   answers from its local state.
//! * write -> `KV.Put {key, value}`
//! * cas   -> `KV.Txn`: if the key's value equals the expected one, put the new one
//!   (a missing key compares unequal); `succeeded` false is a `fail`.
//!
//! Each client holds one HTTP/2 connection to one member: its home member first, the next
//! one when a member cannot be reached, so the history names the member each operation
//! went to (etcd followers forward to the leader, as through the gateway). The connection
//! is made by the client itself (TCP connect, then the HTTP/2 handshake) and handed to
//! tonic once: tonic never reconnects on its own, so a request on a connection that broke
//! fails with [`CLOSED`] before anything is sent, and the client connects again.
//!
//! Outcome mapping (the same as the gateway's, by the gRPC status the gateway translates):
//!
//! | what happened | read | write / cas |
//! | --- | --- | --- |
//! | a reply | ok | ok (cas not succeeded: fail) |
//! | no connection or handshake by the deadline (nothing sent) | the next member until the deadline, then fail | same |
//! | etcd error `no leader` (refused before the request is proposed) | fail | fail |
//! | status `InvalidArgument`, `FailedPrecondition`, `OutOfRange`, `NotFound`, `AlreadyExists`, `PermissionDenied`, `Unauthenticated`, `Aborted` (the gateway's HTTP 4xx other than 408/429) | fail | fail |
//! | any other status (`request timed out`, `leader changed`, `too many requests`, a reset stream, a lost connection, ...) | fail | info |
//! | the deadline passes after the request was sent | fail | info |

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use etcd_client::{Compare, CompareOp, GetOptions, Txn, TxnOp};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tonic::Code;
use tonic::codegen::Service;
use tonic::codegen::http::Uri;

use super::resp::Endpoint;
use super::{Client, ClientOp, Completion, Failure, run_until, runtime, value_of_text};

/// The error a channel gives once its one connection has closed: nothing was sent.
pub const CLOSED: &str = "stasis: connection closed, not reconnecting";

/// How long one TCP connect plus HTTP/2 handshake may take before the next member is tried.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

pub struct EtcdGrpcClient {
    nodes: Vec<Endpoint>,
    home: usize,
    serializable: bool,
    /// The open connection and the index of its member.
    conn: Option<(usize, etcd_client::Client)>,
    last: Option<usize>,
}

/// A tonic connector that hands over one already connected stream, then refuses: tonic's
/// channel would otherwise reconnect behind the client's back, and a request sent on such a
/// new connection could not be told from one that never left.
#[derive(Clone)]
struct OneShot(Arc<Mutex<Option<TcpStream>>>);

impl Service<Uri> for OneShot {
    type Response = TokioIo<TcpStream>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Uri) -> Self::Future {
        let stream = self.0.lock().map(|mut s| s.take()).unwrap_or(None);
        Box::pin(async move {
            stream
                .map(TokioIo::new)
                .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotConnected, CLOSED))
        })
    }
}

/// One connection to `addr`: TCP connect and the HTTP/2 handshake, within `timeout`.
async fn connect(addr: SocketAddr, timeout: Duration) -> Result<etcd_client::Client, String> {
    let attempt = async {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("{addr}: {e}"))?;
        stream
            .set_nodelay(true)
            .map_err(|e| format!("{addr}: {e}"))?;
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| format!("{addr}: {e}"))?
            .connect_with_connector(OneShot(Arc::new(Mutex::new(Some(stream)))))
            .await
            .map_err(|e| format!("{addr}: {e}"))?;
        etcd_client::Client::from_channel(etcd_client::Channel::Tonic(channel), None)
            .await
            .map_err(|e| format!("{addr}: {e}"))
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .unwrap_or_else(|_| Err(format!("{addr}: connect timed out")))
}

/// Sorts an error returned after the request was handed to the connection.
fn classify(e: etcd_client::Error) -> Failure {
    let etcd_client::Error::GRpcStatus(status) = e else {
        return Failure::Unknown(e.to_string());
    };
    let msg = status.message();
    let text = format!("{:?}: {msg}", status.code());
    if msg.contains(CLOSED) {
        return Failure::NotSent(text);
    }
    let definite = msg.contains("no leader")
        || matches!(
            status.code(),
            Code::InvalidArgument
                | Code::FailedPrecondition
                | Code::OutOfRange
                | Code::NotFound
                | Code::AlreadyExists
                | Code::PermissionDenied
                | Code::Unauthenticated
                | Code::Aborted
        );
    if definite {
        Failure::Definite(text)
    } else {
        Failure::Unknown(text)
    }
}

fn value_of(data: &[u8]) -> Value {
    value_of_text(&String::from_utf8_lossy(data))
}

/// One request on `c`.
async fn perform(
    c: &mut etcd_client::Client,
    op: &ClientOp,
    serializable: bool,
) -> Result<Value, Failure> {
    let mut kv = c.kv_client();
    match op {
        ClientOp::Read { key } => {
            let opts = serializable.then(|| GetOptions::new().with_serializable());
            let r = kv.get(key.as_bytes(), opts).await.map_err(classify)?;
            Ok(r.kvs()
                .first()
                .map_or(Value::Null, |kv| value_of(kv.value())))
        }
        ClientOp::Write { key, value } => {
            kv.put(key.as_bytes(), value.to_string(), None)
                .await
                .map_err(classify)?;
            Ok(Value::from(*value))
        }
        ClientOp::Cas { key, old, new } => {
            let txn = Txn::new()
                .when([Compare::value(
                    key.as_bytes(),
                    CompareOp::Equal,
                    old.to_string(),
                )])
                .and_then([TxnOp::put(key.as_bytes(), new.to_string(), None)]);
            let r = kv.txn(txn).await.map_err(classify)?;
            if r.succeeded() {
                Ok(json!([old, new]))
            } else {
                Err(Failure::Definite("precondition failed".into()))
            }
        }
    }
}

impl EtcdGrpcClient {
    pub fn new(nodes: Vec<Endpoint>, home: usize, serializable: bool) -> EtcdGrpcClient {
        EtcdGrpcClient {
            home: home % nodes.len().max(1),
            nodes,
            serializable,
            conn: None,
            last: None,
        }
    }

    /// Performs `op`; `sent` is set while a request is out.
    async fn run(
        &mut self,
        op: &ClientOp,
        deadline: Instant,
        sent: &mut bool,
    ) -> Result<Value, Failure> {
        let mut node = self.conn.as_ref().map_or(self.home, |(n, _)| *n);
        let mut last_error = String::from("no attempt");
        loop {
            let mut c = match &self.conn {
                Some((_, c)) => c.clone(),
                None => {
                    self.last = Some(node);
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(Failure::NotSent(format!(
                            "no member reachable: {last_error}"
                        )));
                    }
                    match connect(self.nodes[node].addr, left.min(CONNECT_TIMEOUT)).await {
                        Ok(c) => {
                            self.conn = Some((node, c.clone()));
                            c
                        }
                        Err(e) => {
                            last_error = e;
                            node = (node + 1) % self.nodes.len();
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            continue;
                        }
                    }
                }
            };
            self.last = Some(node);
            *sent = true;
            let result = perform(&mut c, op, self.serializable).await;
            *sent = false;
            match result {
                Ok(v) => return Ok(v),
                // The connection had closed: nothing left; connect again (the same member
                // first: it may be back).
                Err(Failure::NotSent(e)) => {
                    last_error = e;
                    self.conn = None;
                }
                Err(Failure::Unknown(e)) => {
                    // etcd's own errors leave the connection usable; anything else (a reset
                    // stream, a lost connection) drops it.
                    if !e.contains("etcdserver:") {
                        self.conn = None;
                    }
                    return Err(Failure::Unknown(e));
                }
                Err(f) => return Err(f),
            }
        }
    }
}

impl Client for EtcdGrpcClient {
    fn invoke(&mut self, op: &ClientOp, deadline: Instant) -> Completion {
        let result = run_until(deadline, async |sent: &mut bool| {
            self.run(op, deadline, sent).await
        });
        match result {
            Ok(v) => Completion::Ok(v),
            Err(Failure::NotSent(e) | Failure::Definite(e)) => Completion::Fail(e),
            Err(Failure::Unknown(e)) => Completion::unknown(op, e),
        }
    }

    fn node(&self) -> Option<String> {
        self.last.map(|n| self.nodes[n].name.clone())
    }
}

/// Whether the member at `addr` is the leader (`Maintenance.Status`: its own member id
/// equals the leader's), over gRPC.
pub fn is_leader(addr: SocketAddr, timeout: Duration) -> Result<bool, String> {
    let rt = runtime()?;
    rt.block_on(async {
        let status = async {
            let c = connect(addr, timeout).await?;
            c.maintenance_client()
                .status()
                .await
                .map_err(|e| format!("{addr}: {e}"))
        };
        let s = tokio::time::timeout(timeout, status)
            .await
            .unwrap_or_else(|_| Err(format!("{addr}: status timed out")))?;
        let me = s.header().map(|h| h.member_id());
        Ok(me.is_some() && me == Some(s.leader()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreachable_members_fail_definitely_at_the_deadline() {
        let nodes = vec![
            Endpoint {
                name: "n1".into(),
                addr: "127.0.0.1:1".parse().unwrap(),
            },
            Endpoint {
                name: "n2".into(),
                addr: "127.0.0.1:2".parse().unwrap(),
            },
        ];
        let mut c = EtcdGrpcClient::new(nodes, 0, false);
        for op in [
            ClientOp::Write {
                key: "k".into(),
                value: 1,
            },
            ClientOp::Cas {
                key: "k".into(),
                old: 1,
                new: 2,
            },
        ] {
            let r = c.invoke(&op, Instant::now() + Duration::from_millis(100));
            assert!(matches!(r, Completion::Fail(_)), "{r:?}");
        }
        assert!(is_leader("127.0.0.1:1".parse().unwrap(), Duration::from_millis(100)).is_err());
    }

    #[test]
    fn statuses_map_like_the_gateway() {
        let s = |code, msg: &str| {
            classify(etcd_client::Error::GRpcStatus(tonic::Status::new(
                code, msg,
            )))
        };
        assert!(matches!(
            s(Code::Unavailable, "etcdserver: no leader"),
            Failure::Definite(_)
        ));
        assert!(matches!(
            s(Code::InvalidArgument, "x"),
            Failure::Definite(_)
        ));
        assert!(matches!(
            s(Code::Unavailable, "etcdserver: request timed out"),
            Failure::Unknown(_)
        ));
        assert!(matches!(
            s(Code::ResourceExhausted, "etcdserver: too many requests"),
            Failure::Unknown(_)
        ));
        assert!(matches!(s(Code::Cancelled, "x"), Failure::Unknown(_)));
        assert!(matches!(s(Code::Unavailable, CLOSED), Failure::NotSent(_)));
    }
}

//! The RESP2 client server. Requests are parsed incrementally (pipelining works), handed
//! to the driver in arrival order, and answered in the same order. A request not answered
//! by the node's deadline gets `-TIMEOUT` (outcome unknown for writes).
//!
//! Hostile clients (node/tests/hostile_clients.rs): what one connection can make the node
//! hold is bounded. A request may have at most [`MAX_ARGS`] arguments of at most
//! [`MAX_COMMAND_BYTES`] each, and the unparsed part of the input at most
//! [`MAX_REQUEST_BUFFER`] bytes; past either the client gets `-ERR Protocol error: ...` and
//! the connection is closed before the bytes are buffered. Requests are decoded
//! incrementally ([`resp::CommandDecoder`]): each received byte is copied once, however
//! finely the request is cut. At most [`MAX_QUEUED_REPLIES`] replies wait per connection,
//! and at most [`MAX_REPLY_BYTES`] of them: before a request is forwarded, its answer's
//! largest possible size (for a GET, the longest value the store has held,
//! [`crate::kv::largest_value`]) is reserved from the connection's budget, and given back
//! once the answer is written. A client that stops reading stops being read (TCP
//! backpressure). A request must arrive whole within [`ConnLimits::stall`] of its first
//! byte (slowloris), and at most [`ConnLimits::max_clients`] connections are served at
//! once; the others are refused with an error, so the node keeps serving its clients and
//! peers.

use std::collections::BTreeMap;
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tracing::{debug, warn};

use super::driver::Input;
use crate::config::ConnLimits;
use crate::core::{NodeId, parse_id};
use crate::host::Request;
use crate::kv::largest_value;
use crate::resp::{self, Value};

/// Largest total size of a write's arguments (key and values), and of one argument.
pub const MAX_COMMAND_BYTES: usize = 16 << 20;
/// Most arguments in one request (RECONFIG's voter list is the longest real one).
pub const MAX_ARGS: usize = 1024;
/// Largest unparsed input kept for one connection: one maximal command plus slack.
pub const MAX_REQUEST_BUFFER: usize = MAX_COMMAND_BYTES + (64 << 10);
/// Replies waiting to be written, per connection.
pub const MAX_QUEUED_REPLIES: usize = 256;
/// Bytes of replies (forwarded requests' answers counted at their largest possible size)
/// waiting to be written, per connection.
pub const MAX_REPLY_BYTES: usize = 32 << 20;
/// Bytes read from a socket at once.
const READ_CHUNK: usize = 16 << 10;

/// The parser's caps for client requests.
pub fn request_limits() -> resp::Limits {
    resp::Limits {
        max_args: MAX_ARGS,
        max_bulk: MAX_COMMAND_BYTES,
        ..resp::Limits::default()
    }
}

/// What to do with one parsed command.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// Answer right away (PING, argument errors).
    Local(Value),
    /// Needs the consensus core.
    Forward(Request),
}

fn arity(name: &str) -> Parsed {
    Parsed::Local(Value::error(format!(
        "ERR wrong number of arguments for '{}' command",
        name.to_ascii_lowercase()
    )))
}

/// Parses `n1=addr,n2=addr` (also split over several arguments).
pub fn parse_voters(args: &[Vec<u8>]) -> Result<BTreeMap<NodeId, String>, String> {
    let mut out = BTreeMap::new();
    for arg in args {
        let s = std::str::from_utf8(arg).map_err(|_| "voter list is not UTF-8".to_string())?;
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (id, addr) = part
                .split_once('=')
                .ok_or_else(|| format!("{part:?} is not of the form n<k>=host:port"))?;
            let id = parse_id(id)?;
            if addr.parse::<std::net::SocketAddr>().is_err() {
                return Err(format!("{addr:?} is not a host:port address"));
            }
            if out.insert(id, addr.to_string()).is_some() {
                return Err(format!("n{id} is listed twice"));
            }
        }
    }
    if out.is_empty() {
        return Err("the voter list is empty".into());
    }
    Ok(out)
}

/// Maps a RESP command to a request.
pub fn parse(args: Vec<Vec<u8>>) -> Parsed {
    let name = String::from_utf8_lossy(&args[0]).to_ascii_uppercase();
    let total: usize = args.iter().skip(1).map(Vec::len).sum();
    let mut rest = args.into_iter().skip(1);
    let n = rest.len();
    match name.as_str() {
        "PING" => match n {
            0 => Parsed::Local(Value::Simple("PONG".into())),
            1 => Parsed::Local(Value::Bulk(rest.next())),
            _ => arity(&name),
        },
        "SET" | "CAS" if total > MAX_COMMAND_BYTES => Parsed::Local(Value::error(format!(
            "ERR {} arguments too large ({total} bytes; the limit is {MAX_COMMAND_BYTES})",
            name.to_ascii_lowercase()
        ))),
        "GET" if n == 1 => Parsed::Forward(Request::Get(rest.next().unwrap_or_default())),
        "SET" if n == 2 => {
            let (k, v) = (
                rest.next().unwrap_or_default(),
                rest.next().unwrap_or_default(),
            );
            Parsed::Forward(Request::Set(k, v))
        }
        "CAS" if n == 3 => {
            let k = rest.next().unwrap_or_default();
            let old = rest.next().unwrap_or_default();
            let new = rest.next().unwrap_or_default();
            Parsed::Forward(Request::Cas(k, old, new))
        }
        "STATUS" if n == 0 => Parsed::Forward(Request::Status),
        "RECONFIG" if n >= 1 => {
            let args: Vec<Vec<u8>> = rest.collect();
            match parse_voters(&args) {
                Ok(v) => Parsed::Forward(Request::Reconfig(v)),
                Err(e) => Parsed::Local(Value::error(format!("ERR bad RECONFIG argument: {e}"))),
            }
        }
        "GET" | "SET" | "CAS" | "STATUS" | "RECONFIG" => arity(&name),
        _ => Parsed::Local(Value::error(format!(
            "ERR unknown command '{}' (supported: GET SET CAS PING STATUS RECONFIG)",
            String::from_utf8_lossy(name.as_bytes())
                .chars()
                .take(64)
                .collect::<String>()
        ))),
    }
}

pub async fn serve<M: Send + 'static>(
    listener: TcpListener,
    tx: Sender<Input<M>>,
    timeout: Duration,
    limits: ConnLimits,
) {
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(limits.max_clients));
    loop {
        match listener.accept().await {
            Ok((mut stream, remote)) => {
                let Ok(slot) = slots.clone().try_acquire_owned() else {
                    warn!(%remote, max = limits.max_clients, "client refused: too many connections");
                    tokio::spawn(async move {
                        let mut out = Vec::new();
                        resp::encode(
                            &Value::error(format!(
                                "ERR max number of clients reached ({}; see --max-clients)",
                                limits.max_clients
                            )),
                            &mut out,
                        );
                        let _ = tokio::time::timeout(Duration::from_secs(1), async {
                            let _ = stream.write_all(&out).await;
                            let _ = stream.shutdown().await;
                        })
                        .await;
                    });
                    continue;
                };
                let tx = tx.clone();
                tokio::spawn(async move {
                    if let Err(e) = connection(stream, tx, timeout, limits.stall).await {
                        debug!(%remote, "client connection ended: {e}");
                    }
                    drop(slot);
                });
            }
            Err(e) => {
                warn!("accepting a client connection failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// What a reply may take in the connection's reply budget: a GET's answer is at most the
/// longest value the store has held, other answers are short; a local answer is known.
fn reply_cost(p: &Parsed) -> u32 {
    let bytes = match p {
        Parsed::Local(Value::Bulk(Some(b))) => b.len() + 32,
        Parsed::Local(Value::Error(e)) => e.len() + 8,
        Parsed::Local(_) => 64,
        Parsed::Forward(Request::Get(_)) => largest_value() + 32,
        Parsed::Forward(Request::Status) => 64 << 10,
        Parsed::Forward(_) => 256,
    };
    // One reply larger than the budget still goes out, alone.
    bytes.min(MAX_REPLY_BYTES) as u32
}

enum Pending {
    Now(Value),
    Wait(oneshot::Receiver<Value>, Instant),
    /// Protocol error: send it, then close.
    Close(Value),
}

async fn connection<M: Send + 'static>(
    stream: TcpStream,
    tx: Sender<Input<M>>,
    timeout: Duration,
    stall: Duration,
) -> std::io::Result<()> {
    let _ = stream.set_nodelay(true);
    let (mut rd, mut wr) = stream.into_split();
    let (ptx, mut prx) =
        mpsc::channel::<(Pending, Option<OwnedSemaphorePermit>)>(MAX_QUEUED_REPLIES);
    let budget = Arc::new(Semaphore::new(MAX_REPLY_BYTES));
    let writer = tokio::spawn(async move {
        let mut out = Vec::new();
        // The budget of the replies in `out`, given back once they are written.
        let mut written = Vec::new();
        while let Some(p) = prx.recv().await {
            let mut close = false;
            let mut next = Some(p);
            while let Some((p, permit)) = next.take() {
                written.push(permit);
                let v = match p {
                    Pending::Now(v) => v,
                    Pending::Close(v) => {
                        close = true;
                        v
                    }
                    Pending::Wait(rx, deadline) => {
                        match tokio::time::timeout_at(deadline.into(), rx).await {
                            Ok(Ok(v)) => v,
                            Ok(Err(_)) => Value::error(
                                "UNKNOWN the node stopped before answering; the outcome is unknown",
                            ),
                            Err(_) => Value::error(
                                "TIMEOUT no answer within the node's deadline; the outcome is unknown",
                            ),
                        }
                    }
                };
                resp::encode(&v, &mut out);
                if close || out.len() > (1 << 20) {
                    break;
                }
                next = prx.try_recv().ok();
            }
            if wr.write_all(&out).await.is_err() {
                return;
            }
            out.clear();
            // Give back what a big reply made the buffer grow to (batches stop at 1 MiB).
            if out.capacity() > 4 << 20 {
                out = Vec::new();
            }
            written.clear();
            if close {
                let _ = wr.shutdown().await;
                return;
            }
        }
    });
    // Incremental: a request arriving in many reads is examined and copied once.
    let mut decoder = resp::CommandDecoder::new(request_limits());
    let mut chunk = vec![0u8; READ_CHUNK];
    // When the first byte of the request still incomplete in the decoder arrived.
    let mut partial_since: Option<Instant> = None;
    let mut closing = false;
    'read: loop {
        let read = rd.read(&mut chunk);
        let n = match partial_since {
            None => read.await?,
            Some(since) => match tokio::time::timeout_at((since + stall).into(), read).await {
                Ok(n) => n?,
                Err(_) => {
                    let msg = format!(
                        "ERR Protocol error: request not completed within {} ms (see --client-stall-ms)",
                        stall.as_millis()
                    );
                    let _ = ptx.send((Pending::Close(Value::error(msg)), None)).await;
                    closing = true;
                    break 'read;
                }
            },
        };
        if n == 0 {
            break;
        }
        decoder.push(&chunk[..n]);
        let mut completed = 0;
        loop {
            match decoder.next_command() {
                Ok(Some(args)) => {
                    completed += 1;
                    if args.is_empty() {
                        continue;
                    }
                    let parsed = parse(args);
                    let Ok(permit) = budget.clone().acquire_many_owned(reply_cost(&parsed)).await
                    else {
                        break 'read;
                    };
                    let p = match parsed {
                        Parsed::Local(v) => Pending::Now(v),
                        Parsed::Forward(req) => {
                            let (rtx, rrx) = oneshot::channel();
                            let deadline = Instant::now() + timeout;
                            if tx
                                .send(Input::Client {
                                    req,
                                    reply: rtx,
                                    deadline,
                                })
                                .is_err()
                            {
                                break 'read;
                            }
                            Pending::Wait(rrx, deadline)
                        }
                    };
                    if ptx.send((p, Some(permit))).await.is_err() {
                        break 'read;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    let _ = ptx
                        .send((Pending::Close(Value::error(format!("ERR {e}"))), None))
                        .await;
                    closing = true;
                    break 'read;
                }
            }
        }
        if decoder.buffered() > MAX_REQUEST_BUFFER {
            let msg = format!("ERR Protocol error: request larger than {MAX_REQUEST_BUFFER} bytes");
            let _ = ptx.send((Pending::Close(Value::error(msg)), None)).await;
            closing = true;
            break 'read;
        }
        if !decoder.in_command() {
            partial_since = None;
            // Give back what a big request made the buffer grow to.
            decoder.shrink(READ_CHUNK * 4);
        } else if completed > 0 || partial_since.is_none() {
            // A new request started (progress was made): its own clock.
            partial_since = Some(Instant::now());
        }
    }
    drop(ptx);
    let _ = writer.await;
    if closing {
        // Lingering close: drain what the client still sends (for at most a second), so
        // that closing with unread input (a TCP reset) does not destroy the error reply.
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            while rd.read(&mut chunk).await.is_ok_and(|n| n > 0) {}
        })
        .await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &[&str]) -> Vec<Vec<u8>> {
        s.iter().map(|a| a.as_bytes().to_vec()).collect()
    }

    #[test]
    fn commands_parse_with_arity_checks() {
        assert_eq!(
            parse(args(&["ping"])),
            Parsed::Local(Value::Simple("PONG".into()))
        );
        assert_eq!(
            parse(args(&["GET", "k"])),
            Parsed::Forward(Request::Get(b"k".to_vec()))
        );
        assert_eq!(
            parse(args(&["cas", "k", "a", "b"])),
            Parsed::Forward(Request::Cas(b"k".to_vec(), b"a".to_vec(), b"b".to_vec()))
        );
        for bad in [
            &["GET"][..],
            &["SET", "k"],
            &["CAS", "k", "a"],
            &["STATUS", "x"],
        ] {
            match parse(args(bad)) {
                Parsed::Local(Value::Error(e)) => assert!(e.starts_with("ERR wrong number"), "{e}"),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
        let big = vec![
            b"SET".to_vec(),
            b"k".to_vec(),
            vec![b'x'; MAX_COMMAND_BYTES],
        ];
        match parse(big) {
            Parsed::Local(Value::Error(e)) => assert!(e.contains("too large"), "{e}"),
            other => panic!("{other:?}"),
        }
        match parse(args(&["FLUSHALL"])) {
            Parsed::Local(Value::Error(e)) => assert!(e.starts_with("ERR unknown command")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn reconfig_voter_lists_are_validated() {
        let v = parse_voters(&args(&["n1=127.0.0.1:1,n2=127.0.0.1:2"])).unwrap();
        assert_eq!(v.len(), 2);
        let v = parse_voters(&args(&["n1=127.0.0.1:1", "n3=127.0.0.1:3"])).unwrap();
        assert_eq!(v.keys().copied().collect::<Vec<_>>(), vec![1, 3]);
        assert!(parse_voters(&args(&["n1=nowhere"])).is_err());
        assert!(parse_voters(&args(&["x1=127.0.0.1:1"])).is_err());
        assert!(parse_voters(&args(&["n1=127.0.0.1:1,n1=127.0.0.1:2"])).is_err());
        assert!(parse_voters(&args(&[""])).is_err());
    }
}

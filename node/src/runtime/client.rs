//! The RESP2 client server. Requests are parsed incrementally (pipelining works), handed
//! to the driver in arrival order, and answered in the same order. A request not answered
//! by the node's deadline gets `-TIMEOUT` (outcome unknown for writes).

use std::collections::BTreeMap;
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, warn};

use super::driver::Input;
use crate::core::{NodeId, parse_id};
use crate::host::Request;
use crate::resp::{self, Value};

/// Largest total size of a write's arguments (key and values).
pub const MAX_COMMAND_BYTES: usize = 16 << 20;

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
) {
    loop {
        match listener.accept().await {
            Ok((stream, remote)) => {
                let tx = tx.clone();
                tokio::spawn(async move {
                    if let Err(e) = connection(stream, tx, timeout).await {
                        debug!(%remote, "client connection ended: {e}");
                    }
                });
            }
            Err(e) => {
                warn!("accepting a client connection failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
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
) -> std::io::Result<()> {
    let _ = stream.set_nodelay(true);
    let (mut rd, mut wr) = stream.into_split();
    let (ptx, mut prx) = mpsc::channel::<Pending>(4096);
    let writer = tokio::spawn(async move {
        let mut out = Vec::new();
        while let Some(p) = prx.recv().await {
            let mut close = false;
            let mut next = Some(p);
            while let Some(p) = next.take() {
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
            if close {
                let _ = wr.shutdown().await;
                return;
            }
        }
    });
    let mut buf: Vec<u8> = Vec::with_capacity(16 << 10);
    let mut chunk = vec![0u8; 64 << 10];
    'read: loop {
        let n = rd.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut used_total = 0;
        loop {
            match resp::parse_command(&buf[used_total..]) {
                Ok(Some((args, used))) => {
                    used_total += used;
                    if args.is_empty() {
                        continue;
                    }
                    let p = match parse(args) {
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
                    if ptx.send(p).await.is_err() {
                        break 'read;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    let _ = ptx
                        .send(Pending::Close(Value::error(format!("ERR {e}"))))
                        .await;
                    break 'read;
                }
            }
        }
        buf.drain(..used_total);
    }
    drop(ptx);
    let _ = writer.await;
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

//! Peer transport: one outbound TCP connection per peer (reconnecting with backoff) and
//! inbound connections that feed the driver.
//!
//! Wire format: frames of `u32` big-endian length + postcard payload. The first frame on a
//! connection is a [`Hello`] (who is connecting and its peer and client addresses, so
//! redirects can name the leader's client address); every later frame is `(to, message)`.
//! Messages are best-effort: when a peer is unreachable or its queue is full they are
//! dropped, which the consensus core tolerates by design.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, mpsc};
use tracing::{debug, info, warn};

use super::Directory;
use super::driver::Input;
use crate::core::{NodeId, fmt_id};

/// Largest accepted frame (snapshots travel in one frame).
pub const MAX_FRAME: usize = 256 << 20;
/// Frames queued per peer before new ones are dropped.
const QUEUE: usize = 8192;
/// Base time allowed for one write to a peer.
const WRITE_TIMEOUT: Duration = Duration::from_secs(2);
/// The live inbound connection of each peer: a newer connection from the same peer means
/// the peer gave up on the older one (which may be half-open behind a partition), so the
/// older reader is told to stop.
type Inbound = Arc<Mutex<HashMap<NodeId, Arc<Notify>>>>;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    pub from: NodeId,
    pub peer_addr: String,
    pub client_addr: String,
    /// Settings that must agree across the cluster (quorum system, timing); a peer with
    /// different ones is refused rather than silently breaking quorum intersection or
    /// lease safety (finding 6 of the node review).
    pub agreement: String,
    /// The cluster's name (`--cluster`): two clusters whose nodes can reach each other
    /// (reused addresses and ports) must not take each other's nodes as peers even when
    /// their settings agree.
    pub cluster: String,
}

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + payload.len());
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// Sends messages to peers; used from the driver thread (never blocks).
pub struct Transport<M> {
    rt: tokio::runtime::Handle,
    dir: Directory,
    hello: Hello,
    senders: HashMap<NodeId, mpsc::Sender<Vec<u8>>>,
    _m: PhantomData<fn(M)>,
}

impl<M: Serialize> Transport<M> {
    pub fn new(rt: tokio::runtime::Handle, dir: Directory, hello: Hello) -> Self {
        Transport {
            rt,
            dir,
            hello,
            senders: HashMap::new(),
            _m: PhantomData,
        }
    }

    pub fn send(&mut self, to: NodeId, msg: &M) {
        let payload = match postcard::to_allocvec(&(to, msg)) {
            Ok(p) => p,
            Err(e) => {
                warn!(to = %fmt_id(to), "cannot encode message: {e}");
                return;
            }
        };
        if payload.len() > MAX_FRAME {
            warn!(to = %fmt_id(to), len = payload.len(), "message too large; dropped");
            return;
        }
        let tx = self.senders.entry(to).or_insert_with(|| {
            let (tx, rx) = mpsc::channel(QUEUE);
            let hello = self.hello.clone();
            self.rt.spawn(outbound(to, rx, self.dir.clone(), hello));
            tx
        });
        if tx.try_send(frame(&payload)).is_err() {
            debug!(to = %fmt_id(to), "peer queue full or closed; message dropped");
        }
    }
}

async fn outbound(to: NodeId, mut rx: mpsc::Receiver<Vec<u8>>, dir: Directory, hello: Hello) {
    let hello_frame = frame(&postcard::to_allocvec(&hello).expect("hello encodes"));
    let mut backoff = Duration::from_millis(20);
    let mut logged_down = false;
    loop {
        let Some(addr) = dir.get(to).peer_addr else {
            // Unknown address: drop what is queued and wait for it to be learned.
            if drain(&mut rx).is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let conn = tokio::time::timeout(Duration::from_secs(1), TcpStream::connect(&addr)).await;
        let mut stream = match conn {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                if !logged_down {
                    info!(peer = %fmt_id(to), %addr, "peer unreachable: {e}");
                    logged_down = true;
                }
                if drain(&mut rx).is_err() {
                    return;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_millis(500));
                continue;
            }
            Err(_) => {
                if drain(&mut rx).is_err() {
                    return;
                }
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        if stream.write_all(&hello_frame).await.is_err() {
            continue;
        }
        info!(peer = %fmt_id(to), %addr, "connected to peer");
        logged_down = false;
        backoff = Duration::from_millis(20);
        let mut buf = Vec::new();
        loop {
            let Some(f) = rx.recv().await else { return };
            buf.clear();
            buf.extend_from_slice(&f);
            while buf.len() < (1 << 20) {
                match rx.try_recv() {
                    Ok(f) => buf.extend_from_slice(&f),
                    Err(_) => break,
                }
            }
            // A peer behind a partition that drops packets never fails the write; give up
            // after a while so a healed link gets a fresh connection instead of waiting
            // for TCP's retransmission backoff (which grows to minutes).
            let limit = WRITE_TIMEOUT + Duration::from_millis((buf.len() >> 10) as u64);
            match tokio::time::timeout(limit, stream.write_all(&buf)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    info!(peer = %fmt_id(to), "connection lost: {e}");
                    break;
                }
                Err(_) => {
                    info!(peer = %fmt_id(to), "peer stopped reading; reconnecting");
                    break;
                }
            }
        }
    }
}

/// Discards queued frames. Err if the driver side is gone.
fn drain(rx: &mut mpsc::Receiver<Vec<u8>>) -> Result<(), ()> {
    loop {
        match rx.try_recv() {
            Ok(_) => {}
            Err(mpsc::error::TryRecvError::Empty) => return Ok(()),
            Err(mpsc::error::TryRecvError::Disconnected) => return Err(()),
        }
    }
}

async fn read_frame(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let len = stream.read_u32().await? as usize;
    if len > MAX_FRAME {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("frame of {len} bytes exceeds the limit"),
        ));
    }
    let mut buf = vec![0; len];
    stream.read_exact(&mut buf).await?;
    Ok(buf)
}

/// Accepts peer connections; `ours` is this node's own handshake, which a peer's must
/// match in cluster name and agreed settings.
pub async fn accept_peers<M>(
    listener: TcpListener,
    ours: Hello,
    dir: Directory,
    tx: Sender<Input<M>>,
) where
    M: DeserializeOwned + Send + 'static,
{
    let live: Inbound = Arc::default();
    loop {
        match listener.accept().await {
            Ok((stream, remote)) => {
                let (dir, tx, live) = (dir.clone(), tx.clone(), live.clone());
                let ours = ours.clone();
                tokio::spawn(async move {
                    match inbound(stream, &ours, dir, tx, live).await {
                        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                            warn!(%remote, "refused a peer: {e}");
                        }
                        Err(e) => debug!(%remote, "peer connection closed: {e}"),
                        Ok(()) => {}
                    }
                });
            }
            Err(e) => {
                warn!("accepting a peer connection failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn inbound<M>(
    mut stream: TcpStream,
    ours: &Hello,
    dir: Directory,
    tx: Sender<Input<M>>,
    live: Inbound,
) -> std::io::Result<()>
where
    M: DeserializeOwned + Send + 'static,
{
    let bad = |what: String| std::io::Error::new(std::io::ErrorKind::InvalidData, what);
    let first = tokio::time::timeout(Duration::from_secs(5), read_frame(&mut stream))
        .await
        .map_err(|_| bad("no handshake within 5s".into()))??;
    let hello: Hello =
        postcard::from_bytes(&first).map_err(|e| bad(format!("bad handshake: {e}")))?;
    let me = ours.from;
    if hello.cluster != ours.cluster {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!(
                "{} belongs to cluster {:?}, this node to {:?}; start every node of one cluster with the same --cluster",
                fmt_id(hello.from),
                hello.cluster,
                ours.cluster
            ),
        ));
    }
    if hello.from == me {
        return Err(bad("connection from a node with our own id".into()));
    }
    let agreement = &ours.agreement;
    if &hello.agreement != agreement {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!(
                "{} runs with different cluster settings ({}) than this node ({}); start every node with the same --quorum, --tick-ms and --election-ticks",
                fmt_id(hello.from),
                hello.agreement,
                agreement
            ),
        ));
    }
    let from = hello.from;
    dir.set_peer_addr(from, hello.peer_addr);
    dir.set_client_addr(from, hello.client_addr);
    let stop = Arc::new(Notify::new());
    if let Some(old) = live
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(from, stop.clone())
    {
        old.notify_one();
    }
    loop {
        // Cancelling a half-read frame is fine here: the connection is dropped with it.
        let f = tokio::select! {
            f = read_frame(&mut stream) => f?,
            _ = stop.notified() => {
                return Err(bad(format!("superseded by a newer connection from {}", fmt_id(from))));
            }
        };
        let (to, msg): (NodeId, M) = postcard::from_bytes(&f)
            .map_err(|e| bad(format!("bad frame from {}: {e}", fmt_id(from))))?;
        if to != me {
            debug!(from = %fmt_id(from), to = %fmt_id(to), "message for another node; dropped");
            continue;
        }
        if tx.send(Input::Peer { from, msg }).is_err() {
            return Ok(());
        }
    }
}

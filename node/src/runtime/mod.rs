//! The protocol-neutral runtime: tokio, the monotonic clock, TCP between peers, the RESP
//! client server and the KV state machine, driving any [`ConsensusCore`].
//!
//! Threads: a tokio runtime runs the network (peer transport, client connections); one
//! dedicated *driver* thread owns the core, its storage and the KV store. Everything
//! reaches the driver through one channel, so the core sees a single ordered stream of
//! inputs. The driver batches whatever arrived, advances the logical clock to the
//! monotonic clock, feeds the batch, then handles the core's `Ready` in the order the
//! [`crate::core`] contract demands: persist + fsync, send, apply, answer.

mod client;
pub use crate::config::ConnLimits;
mod driver;
mod transport;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::Context;
use tracing::info;

use crate::core::{ConsensusCore, CoreStorage, NodeId};
use crate::host::Answer;
use crate::resp::Value;

/// Runtime settings (from the command line).
#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    pub id: NodeId,
    /// Name reported by STATUS ("raft").
    pub protocol: &'static str,
    pub client_listen: SocketAddr,
    pub peer_listen: SocketAddr,
    /// Initial peer addresses (id -> peer address), including our own.
    pub peers: BTreeMap<NodeId, String>,
    pub tick: Duration,
    /// A client request that is not answered within this time gets `-TIMEOUT`.
    pub request_timeout: Duration,
    /// Client connection limits.
    pub client_limits: ConnLimits,
    /// Take a snapshot (and compact the log) after this many applied entries (0 = never).
    pub snapshot_every: u64,
    /// Names of the seeded bugs switched on (reported by STATUS).
    pub bugs: Vec<&'static str>,
    /// The settings every node of the cluster must share
    /// ([`crate::config::NodeConfig::agreement`]); peers whose handshake carries different
    /// ones are refused.
    pub agreement: String,
    /// The cluster's name; peers presenting another one are refused.
    pub cluster: String,
}

/// What a node knows about a peer's addresses (learned from configuration and handshakes).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerInfo {
    pub peer_addr: Option<String>,
    pub client_addr: Option<String>,
}

/// Shared address book.
#[derive(Clone, Debug, Default)]
pub struct Directory(Arc<Mutex<HashMap<NodeId, PeerInfo>>>);

impl Directory {
    fn lock(&self) -> MutexGuard<'_, HashMap<NodeId, PeerInfo>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn get(&self, id: NodeId) -> PeerInfo {
        self.lock().get(&id).cloned().unwrap_or_default()
    }

    pub fn set_peer_addr(&self, id: NodeId, addr: String) {
        self.lock().entry(id).or_default().peer_addr = Some(addr);
    }

    pub fn set_client_addr(&self, id: NodeId, addr: String) {
        self.lock().entry(id).or_default().client_addr = Some(addr);
    }
}

/// Binds the listeners and runs the node until SIGTERM/SIGINT (Ok) or a fatal error such
/// as a failed fsync (Err).
pub fn run<C, S>(cfg: RuntimeConfig, core: C, storage: S) -> anyhow::Result<()>
where
    C: ConsensusCore,
    S: CoreStorage<C::Persist>,
{
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    let dir = Directory::default();
    for (id, addr) in &cfg.peers {
        dir.set_peer_addr(*id, addr.clone());
    }
    dir.set_client_addr(cfg.id, cfg.client_listen.to_string());
    let (tx, rx) = std::sync::mpsc::channel::<driver::Input<C::Message>>();
    let (client_listener, peer_listener) = rt.block_on(async {
        let c = tokio::net::TcpListener::bind(cfg.client_listen)
            .await
            .with_context(|| {
                format!(
                    "cannot listen for clients on {} (is the port in use?)",
                    cfg.client_listen
                )
            })?;
        let p = tokio::net::TcpListener::bind(cfg.peer_listen)
            .await
            .with_context(|| {
                format!(
                    "cannot listen for peers on {} (is the port in use?)",
                    cfg.peer_listen
                )
            })?;
        anyhow::Ok((c, p))
    })?;
    info!(id = %crate::core::fmt_id(cfg.id), client = %cfg.client_listen, peer = %cfg.peer_listen, "listening");
    let hello = transport::Hello {
        from: cfg.id,
        peer_addr: cfg.peer_listen.to_string(),
        client_addr: cfg.client_listen.to_string(),
        agreement: cfg.agreement.clone(),
        cluster: cfg.cluster.clone(),
    };
    rt.spawn(transport::accept_peers::<C::Message>(
        peer_listener,
        hello.clone(),
        dir.clone(),
        tx.clone(),
    ));
    let net = transport::Transport::<C::Message>::new(rt.handle().clone(), dir.clone(), hello);
    rt.spawn(client::serve(
        client_listener,
        tx.clone(),
        cfg.request_timeout,
        cfg.client_limits,
    ));
    {
        let tx = tx.clone();
        rt.spawn(async move {
            wait_for_shutdown_signal().await;
            info!("shutdown signal received");
            let _ = tx.send(driver::Input::Shutdown);
        });
    }
    drop(tx);
    let driver_cfg = cfg.clone();
    let handle = std::thread::Builder::new()
        .name("driver".into())
        .spawn(move || driver::Driver::new(driver_cfg, core, storage, net, dir).run(rx))
        .context("cannot start the driver thread")?;
    let result = handle
        .join()
        .unwrap_or_else(|_| Err(anyhow::anyhow!("the driver thread panicked")));
    rt.shutdown_timeout(Duration::from_millis(200));
    result
}

async fn wait_for_shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            tracing::warn!("cannot install signal handlers; stop the node with SIGKILL");
            std::future::pending::<()>().await;
        }
    }
}

impl Answer for tokio::sync::oneshot::Sender<Value> {
    fn answer(self, v: Value) {
        // The client may have hung up; nothing to do then.
        let _ = self.send(v);
    }
}

//! The driver thread: owns the [`Host`] (core, storage, KV store, pending requests) and
//! feeds it the inputs that arrive on the channel, ticks from the monotonic clock and the
//! wall clock.

use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::oneshot;
use tracing::info;

use super::transport::Transport;
use super::{Directory, RuntimeConfig};
use crate::core::{ConsensusCore, CoreStorage, NodeId};
use crate::host::{Host, HostConfig, HostEnv};
use crate::resp::Value;

pub use crate::host::Request;

pub enum Input<M> {
    Peer {
        from: NodeId,
        msg: M,
    },
    Client {
        req: Request,
        reply: oneshot::Sender<Value>,
        deadline: Instant,
    },
    Shutdown,
}

const MAX_BATCH: usize = 4096;
/// Most ticks delivered at once when the process was paused (SIGSTOP) or starved.
const MAX_CATCH_UP_TICKS: u128 = 10_000;

/// The wall clock in Unix milliseconds (what libfaketime moves; 0 before 1970).
fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

pub struct Driver<C: ConsensusCore, S> {
    cfg: RuntimeConfig,
    host: Host<C, S, oneshot::Sender<Value>, Instant>,
    env: NetEnv<C::Message>,
}

/// The runtime's side of [`HostEnv`]: the TCP transport and the shared address book.
struct NetEnv<M> {
    net: Transport<M>,
    dir: Directory,
}

impl<M: serde::Serialize> HostEnv<M> for NetEnv<M> {
    fn send(&mut self, to: NodeId, msg: &M) {
        self.net.send(to, msg);
    }
    fn client_addr(&self, id: NodeId) -> Option<String> {
        self.dir.get(id).client_addr
    }
    fn set_peer_addr(&mut self, id: NodeId, addr: &str) {
        self.dir.set_peer_addr(id, addr.to_string());
    }
    fn wall_ms(&self) -> u64 {
        wall_ms()
    }
}

impl<C, S> Driver<C, S>
where
    C: ConsensusCore,
    S: CoreStorage<C::Persist>,
{
    pub fn new(
        cfg: RuntimeConfig,
        core: C,
        storage: S,
        net: Transport<C::Message>,
        dir: Directory,
    ) -> Self {
        let host_cfg = HostConfig {
            id: cfg.id,
            protocol: cfg.protocol,
            snapshot_every: cfg.snapshot_every,
            bugs: cfg.bugs.clone(),
        };
        Driver {
            cfg,
            host: Host::new(host_cfg, core, storage),
            env: NetEnv { net, dir },
        }
    }

    pub fn run(mut self, rx: Receiver<Input<C::Message>>) -> anyhow::Result<()> {
        let tick = self.cfg.tick;
        let mut next_tick = Instant::now() + tick;
        let mut batch = Vec::with_capacity(MAX_BATCH);
        self.host.drain_ready(&mut self.env)?;
        loop {
            let wait = next_tick.saturating_duration_since(Instant::now());
            match rx.recv_timeout(wait) {
                Ok(ev) => {
                    batch.push(ev);
                    while batch.len() < MAX_BATCH {
                        match rx.try_recv() {
                            Ok(ev) => batch.push(ev),
                            Err(_) => break,
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return Ok(()),
            }
            // Bring the logical clock up to date before anything else (after a pause the
            // node must notice that time passed before it serves a lease read). The wall
            // clock is an input too (only the seeded bug `lease-wallclock` uses it).
            self.host.core_mut().wall_clock(wall_ms());
            let now = Instant::now();
            if now >= next_tick {
                let behind = (now - next_tick).as_nanos() / tick.as_nanos().max(1) + 1;
                // After a long pause, a bounded number of ticks is as good as all of
                // them (every timer in a core is far shorter) and avoids a message storm.
                for _ in 0..behind.min(MAX_CATCH_UP_TICKS) {
                    self.host.core_mut().tick();
                }
                next_tick += tick * (behind as u32).max(1);
                if next_tick <= now {
                    next_tick = now + tick;
                }
                // Their clients already got -TIMEOUT from the connection task.
                drop(self.host.expire(now));
            }
            for ev in batch.drain(..) {
                match ev {
                    Input::Peer { from, msg } => self.host.core_mut().step(from, msg),
                    Input::Client {
                        req,
                        reply,
                        deadline,
                    } => self.host.request(&self.env, req, reply, deadline),
                    Input::Shutdown => {
                        info!("shutting down");
                        return Ok(());
                    }
                }
            }
            self.host.drain_ready(&mut self.env)?;
        }
    }
}

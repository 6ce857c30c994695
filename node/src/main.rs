//! `stasis-node`: a replicated key-value server (Raft or Multi-Paxos) speaking RESP2.
//! See docs/NODE.md.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use node::config::{self, NodeConfig};
use node::paxos::storage::PaxosStorage;
use node::paxos::{Paxos, PaxosConfig};
use node::raft::storage::RaftStorage;
use node::raft::{Membership, Raft, RaftConfig};
use node::runtime::{self, RuntimeConfig};
use node::storage::file::{Fs, RealFs};

fn main() {
    let cfg = match config::from_args(std::env::args_os()) {
        Ok(c) => c,
        Err((msg, 0)) => {
            print!("{msg}");
            std::process::exit(0);
        }
        Err((msg, code)) => {
            eprintln!("{msg}");
            std::process::exit(code);
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(filter)
        .init();
    if let Err(e) = run(cfg) {
        eprintln!("stasis-node: {e:#}");
        std::process::exit(1);
    }
}

/// How often a node with the seeded bug `ack-before-fsync` really fsyncs its log.
const ACK_BEFORE_FSYNC_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

fn run(cfg: NodeConfig) -> anyhow::Result<()> {
    std::fs::create_dir_all(&cfg.data_dir).with_context(|| {
        format!(
            "cannot create data dir {} (check the path and permissions)",
            cfg.data_dir.display()
        )
    })?;
    let fs: Arc<dyn Fs> = Arc::new(RealFs);
    let open_err = || format!("cannot open the data dir {}", cfg.data_dir.display());
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
        ^ cfg.id.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let rt = RuntimeConfig {
        id: cfg.id,
        protocol: cfg.protocol,
        client_listen: cfg.client_listen,
        peer_listen: cfg.peer_listen,
        peers: cfg.peers.clone(),
        tick: cfg.tick,
        request_timeout: cfg.request_timeout,
        snapshot_every: cfg.snapshot_every,
        bugs: cfg.bugs.names(),
    };
    if cfg.bugs.any() {
        let names = cfg.bugs.names().join(", ");
        tracing::warn!(bugs = %names, "SEEDED BUGS ON: this node deliberately violates consensus safety (--bug); never use it for real data");
        eprintln!(
            "stasis-node: WARNING: seeded bugs on ({names}): this node is deliberately unsafe"
        );
    }
    if cfg.protocol == "multipaxos" {
        let (mut storage, recovered) =
            PaxosStorage::open(fs, &cfg.data_dir).with_context(open_err)?;
        if cfg.bugs.ack_before_fsync {
            storage.defer_sync(ACK_BEFORE_FSYNC_EVERY);
        }
        let mut pc = PaxosConfig::new(cfg.id, cfg.quorum);
        pc.election_ticks = cfg.election_ticks;
        pc.heartbeat_ticks = cfg.heartbeat_ticks;
        pc.check_quorum = cfg.check_quorum;
        pc.seed = seed;
        pc.bugs = cfg.bugs.clone();
        pc.max_batch = cfg.max_msg_entries;
        let core = Paxos::new(pc, (!cfg.join).then(|| cfg.peers.clone()), recovered);
        return runtime::run(rt, core, storage);
    }
    let (mut storage, recovered) = RaftStorage::open(fs, &cfg.data_dir).with_context(open_err)?;
    if cfg.bugs.ack_before_fsync {
        storage.defer_sync(ACK_BEFORE_FSYNC_EVERY);
    }
    let mut rc = RaftConfig::new(cfg.id);
    rc.election_ticks = cfg.election_ticks;
    rc.heartbeat_ticks = cfg.heartbeat_ticks;
    rc.read_mode = cfg.read_mode;
    rc.lease_margin_ticks = cfg.lease_margin_ticks;
    rc.check_quorum = cfg.check_quorum;
    rc.pre_vote = cfg.pre_vote;
    rc.max_msg_entries = cfg.max_msg_entries;
    rc.max_inflight = cfg.max_inflight_msgs;
    rc.seed = seed;
    rc.tick_ms = cfg.tick.as_millis() as u64;
    rc.bugs = cfg.bugs.clone();
    let bootstrap = (!cfg.join).then(|| Membership::new(cfg.peers.clone()));
    runtime::run(rt, Raft::new(rc, bootstrap, recovered), storage)
}

//! Building a node from its validated configuration: the core (Raft or Multi-Paxos) over
//! its storage, recovered from a data directory on any [`Fs`]. Shared by `stasis-node`
//! (on the real file system) and the simulator (on a simulated one), so both run the
//! same cores with the same settings.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;

use crate::config::NodeConfig;
use crate::host::HostConfig;
use crate::paxos::storage::PaxosStorage;
use crate::paxos::{Paxos, PaxosConfig};
use crate::raft::storage::RaftStorage;
use crate::raft::{Membership, Raft, RaftConfig};
use crate::runtime::RuntimeConfig;
use crate::storage::file::Fs;

fn open_err(dir: &Path) -> String {
    format!("cannot open the data dir {}", dir.display())
}

/// The Raft core and its storage, recovered from `cfg.data_dir` on `fs`. `seed` seeds the
/// core's election-timeout randomness.
pub fn raft(cfg: &NodeConfig, fs: Arc<dyn Fs>, seed: u64) -> anyhow::Result<(Raft, RaftStorage)> {
    let (storage, recovered) =
        RaftStorage::open(fs, &cfg.data_dir).with_context(|| open_err(&cfg.data_dir))?;
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
    Ok((Raft::new(rc, bootstrap, recovered), storage))
}

/// The Multi-Paxos core and its storage, recovered from `cfg.data_dir` on `fs`.
pub fn paxos(
    cfg: &NodeConfig,
    fs: Arc<dyn Fs>,
    seed: u64,
) -> anyhow::Result<(Paxos, PaxosStorage)> {
    let (storage, recovered) =
        PaxosStorage::open(fs, &cfg.data_dir).with_context(|| open_err(&cfg.data_dir))?;
    let mut pc = PaxosConfig::new(cfg.id, cfg.quorum);
    pc.election_ticks = cfg.election_ticks;
    pc.heartbeat_ticks = cfg.heartbeat_ticks;
    pc.check_quorum = cfg.check_quorum;
    pc.seed = seed;
    pc.bugs = cfg.bugs.clone();
    pc.max_batch = cfg.max_msg_entries;
    let core = Paxos::new(pc, (!cfg.join).then(|| cfg.peers.clone()), recovered);
    Ok((core, storage))
}

/// The runtime settings of a node.
pub fn runtime_config(cfg: &NodeConfig) -> RuntimeConfig {
    RuntimeConfig {
        id: cfg.id,
        protocol: cfg.protocol,
        client_listen: cfg.client_listen,
        peer_listen: cfg.peer_listen,
        peers: cfg.peers.clone(),
        tick: cfg.tick,
        request_timeout: cfg.request_timeout,
        client_limits: cfg.client_limits,
        snapshot_every: cfg.snapshot_every,
        bugs: cfg.bugs.names(),
        agreement: cfg.agreement(),
    }
}

/// The request-handling settings of a node.
pub fn host_config(cfg: &NodeConfig) -> HostConfig {
    HostConfig {
        id: cfg.id,
        protocol: cfg.protocol,
        snapshot_every: cfg.snapshot_every,
        bugs: cfg.bugs.names(),
    }
}

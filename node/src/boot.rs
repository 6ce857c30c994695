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
#[cfg(feature = "runtime")]
use crate::runtime::RuntimeConfig;
use crate::storage::Clock;
use crate::storage::file::Fs;

fn open_err(dir: &Path) -> String {
    format!("cannot open the data dir {}", dir.display())
}

/// How often a node with the seeded bug `ack-before-fsync` really fsyncs its log, on the
/// clock it was booted with.
pub const ACK_BEFORE_FSYNC_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// The file in a data directory that names the cluster which first used it.
pub const CLUSTER_FILE: &str = "cluster";

/// Ties the data directory to the node's cluster (`--cluster`), as etcd ties its data
/// directory to a cluster ID: a directory first used by another cluster is refused, so a
/// node pointed at the wrong directory never joins its log and votes to this cluster. The
/// name is written whole and synced before it is renamed into place; a power loss before
/// the directory entry is durable only means it is written again on the next start.
fn claim_data_dir(cfg: &NodeConfig, fs: &dyn Fs) -> anyhow::Result<()> {
    let dir = &cfg.data_dir;
    let path = dir.join(CLUSTER_FILE);
    if fs.exists(&path).with_context(|| open_err(dir))? {
        let found = fs.read(&path).with_context(|| open_err(dir))?;
        let found = String::from_utf8_lossy(&found);
        let found = found.trim_end();
        anyhow::ensure!(
            found == cfg.cluster,
            "the data dir {} belongs to cluster {found:?}, but this node was started with --cluster {:?}; use the same --cluster or a fresh --data-dir",
            dir.display(),
            cfg.cluster
        );
        return Ok(());
    }
    let write = || -> std::io::Result<()> {
        fs.create_dir_all(dir)?;
        let tmp = dir.join(format!("{CLUSTER_FILE}.tmp"));
        let mut f = fs.create(&tmp)?;
        f.write_all(format!("{}\n", cfg.cluster).as_bytes())?;
        f.sync()?;
        fs.rename(&tmp, &path)?;
        fs.sync_dir(dir)
    };
    write().with_context(|| format!("cannot record the cluster name in {}", path.display()))
}

/// The Raft core and its storage, recovered from `cfg.data_dir` on `fs`. `seed` seeds the
/// core's election-timeout randomness.
pub fn raft(
    cfg: &NodeConfig,
    fs: Arc<dyn Fs>,
    clock: Clock,
    seed: u64,
) -> anyhow::Result<(Raft, RaftStorage)> {
    claim_data_dir(cfg, fs.as_ref())?;
    let (mut storage, recovered) =
        RaftStorage::open(fs, &cfg.data_dir).with_context(|| open_err(&cfg.data_dir))?;
    if cfg.bugs.ack_before_fsync {
        storage.defer_sync(ACK_BEFORE_FSYNC_EVERY, clock);
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
    Ok((Raft::new(rc, bootstrap, recovered), storage))
}

/// The Multi-Paxos core and its storage, recovered from `cfg.data_dir` on `fs`.
pub fn paxos(
    cfg: &NodeConfig,
    fs: Arc<dyn Fs>,
    clock: Clock,
    seed: u64,
) -> anyhow::Result<(Paxos, PaxosStorage)> {
    claim_data_dir(cfg, fs.as_ref())?;
    let (mut storage, recovered) =
        PaxosStorage::open(fs, &cfg.data_dir).with_context(|| open_err(&cfg.data_dir))?;
    if cfg.bugs.ack_before_fsync {
        storage.defer_sync(ACK_BEFORE_FSYNC_EVERY, clock);
    }
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
#[cfg(feature = "runtime")]
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
        cluster: cfg.cluster.clone(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::file::SimFs;
    use crate::storage::process_clock;

    /// stasis-node's flags for a one-node cluster named `cluster`.
    fn args(cluster: &str) -> Vec<&str> {
        vec![
            "stasis-node",
            "--id",
            "n1",
            "--listen",
            "127.0.0.1:7001",
            "--peer-listen",
            "127.0.0.1:8001",
            "--peers",
            "n1=127.0.0.1:8001",
            "--data-dir",
            "/d/n1",
            "--cluster",
            cluster,
        ]
    }

    fn cfg(cluster: &str) -> NodeConfig {
        crate::config::from_args(args(cluster)).expect("valid flags")
    }

    #[test]
    fn a_data_dir_stays_with_the_cluster_that_first_used_it_across_power_loss() {
        let fs = Arc::new(SimFs::new());
        let dynfs: Arc<dyn Fs> = fs.clone();
        raft(&cfg("a"), dynfs.clone(), process_clock(), 1).expect("a fresh dir is claimed");
        fs.crash();
        raft(&cfg("a"), dynfs.clone(), process_clock(), 1).expect("the same cluster reopens it");
        let err = format!(
            "{:#}",
            paxos(&cfg("b"), dynfs.clone(), process_clock(), 1)
                .err()
                .expect("refused")
        );
        assert!(
            err.contains("belongs to cluster \"a\"") && err.contains("--cluster \"b\""),
            "{err}"
        );
    }

    #[test]
    fn a_cluster_name_must_be_a_plain_token() {
        for bad in ["", "a b", "x/y", &"n".repeat(129)] {
            let (msg, code) = crate::config::from_args(args(bad)).expect_err("refused");
            assert!(msg.contains("--cluster") && code == 2, "{msg}");
        }
    }
}

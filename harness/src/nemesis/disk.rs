//! Disk faults, through the FUSE filesystem mounted over each node's data directory
//! ([`crate::diskfs`]).
//!
//! - `lose-unfsynced`: kill nodes, then drop everything they wrote since their last
//!   fsync (file contents and sizes, and directory entries whose directory was not
//!   fsynced), as a power loss would; the nodes restart on stop.
//!   `lose-unfsynced-torn`: the same, but each unsynced write survives with probability
//!   1/2 (page writeback is not ordered).
//! - `corrupt`: kill one node, flip bits in, truncate, or zero a range of one of its data
//!   files; on stop it restarts and the fault records whether it refused to start or came
//!   back (the checker decides whether it then served wrong data). A node that refused
//!   gets the file's old contents back and restarts (the heal).
//! - `disk-full`: writes, creates and size increases fail with ENOSPC; nodes that exited
//!   on it (rather than acknowledge what they could not persist) restart on stop.
//! - `slow-disk`: every fsync first sleeps 50-500 ms.
//!
//! Each goes through the node's [`crate::diskfs::Disk`], so a node on a remote host gets
//! the same fault from `stasis diskfault-agent` there. Each is verified: a loss reports
//! what it dropped, a full disk how many calls it
//! refused, a slow disk how many fsyncs it delayed; a corruption names the file and range.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Active, Fault, Planned, fault_pool, names};
use crate::cluster::Cluster;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    LoseUnfsynced,
    LoseUnfsyncedTorn,
    Corrupt,
    DiskFull,
    SlowDisk,
}

impl Kind {
    pub const ALL: [Kind; 5] = [
        Kind::LoseUnfsynced,
        Kind::LoseUnfsyncedTorn,
        Kind::Corrupt,
        Kind::DiskFull,
        Kind::SlowDisk,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::LoseUnfsynced => "lose-unfsynced",
            Kind::LoseUnfsyncedTorn => "lose-unfsynced-torn",
            Kind::Corrupt => "corrupt",
            Kind::DiskFull => "disk-full",
            Kind::SlowDisk => "slow-disk",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.iter().copied().find(|k| k.name() == s)
    }
}

/// The disk kinds a `--nemesis` list enables: every kind for `disk`, else those named.
pub fn kinds_in(list: &str) -> Vec<Kind> {
    let parts: Vec<&str> = list.split(',').map(str::trim).collect();
    if parts.contains(&"disk") {
        return Kind::ALL.to_vec();
    }
    let mut out: Vec<Kind> = parts.iter().filter_map(|p| Kind::parse(p)).collect();
    out.dedup();
    out
}

/// Redraws (from each fault's own seed) the kind of every disk fault whose kind is not
/// enabled, so `--nemesis corrupt` schedules only corruptions.
pub fn restrict(schedule: &mut [Planned], kinds: &[Kind]) {
    if kinds.is_empty() {
        return;
    }
    for p in schedule.iter_mut() {
        if let Fault::Disk { disk: kind } = &mut p.fault
            && !kinds.contains(kind)
        {
            let mut rng = ChaCha8Rng::seed_from_u64(p.pick ^ 0x6469_736b);
            *kind = *kinds.choose(&mut rng).expect("non-empty");
        }
    }
}

fn disk<'c>(cluster: &'c Cluster<'_>, i: usize) -> Result<&'c crate::diskfs::Disk> {
    cluster.disk(i).with_context(|| {
        format!(
            "{} has no disk-fault filesystem mounted (the disk nemesis mounts one per node)",
            cluster.info(i).name
        )
    })
}

/// One node, a minority, or (for losses) sometimes every node.
fn pick(cluster: &Cluster<'_>, rng: &mut ChaCha8Rng, allow_all: bool) -> Vec<usize> {
    let mut pool = fault_pool(cluster);
    pool.shuffle(rng);
    let n = pool.len();
    let k = if allow_all && rng.random_bool(1.0 / 3.0) {
        n
    } else {
        rng.random_range(1..=((n - 1) / 2).max(1))
    };
    pool.truncate(k);
    pool.sort_unstable();
    pool
}

fn kill(cluster: &mut Cluster<'_>, i: usize, active: &mut Active) -> Result<()> {
    if let Some(pid) = cluster.kill(i)? {
        active.old_pids.push(pid);
        active
            .evidence
            .push(format!("{} pid {pid} killed", cluster.info(i).name));
    }
    Ok(())
}

pub fn start(
    cluster: &mut Cluster<'_>,
    kind: Kind,
    rng: &mut ChaCha8Rng,
    active: &mut Active,
) -> Result<Value> {
    match kind {
        Kind::LoseUnfsynced | Kind::LoseUnfsyncedTorn => {
            active.nodes = pick(cluster, rng, true);
            let nodes = active.nodes.clone();
            for &i in &nodes {
                kill(cluster, i, active)?;
            }
            // Requests the dead processes left in flight reach the filesystem first.
            std::thread::sleep(Duration::from_millis(50));
            let mut dropped = serde_json::Map::new();
            for &i in &nodes {
                let torn = (kind == Kind::LoseUnfsyncedTorn).then(|| rng.random::<u64>());
                let loss = disk(cluster, i)?
                    .lose_unfsynced(torn)
                    .with_context(|| format!("power loss on {}", cluster.info(i).name))?;
                active.evidence.push(format!(
                    "{}: {} unsynced ops ({} bytes) in {} files dropped, {} kept, {} directory entries reverted",
                    cluster.info(i).name,
                    loss.ops_dropped,
                    loss.bytes_dropped,
                    loss.files,
                    loss.ops_kept,
                    loss.entries_reverted
                ));
                dropped.insert(cluster.info(i).name.clone(), serde_json::to_value(&loss)?);
            }
            Ok(json!({"kind": kind.name(), "nodes": names(cluster, &nodes), "dropped": dropped}))
        }
        Kind::Corrupt => {
            active.nodes = pick(cluster, rng, false);
            active.nodes.truncate(1);
            let i = active.nodes[0];
            kill(cluster, i, active)?;
            std::thread::sleep(Duration::from_millis(50));
            let c = disk(cluster, i)?
                .corrupt(rng.random())
                .with_context(|| format!("corrupting {}'s data", cluster.info(i).name))?;
            let name = cluster.info(i).name.clone();
            match &c {
                Some(c) => active.evidence.push(format!(
                    "{name}: {} {} bytes at {} of {} ({} bytes)",
                    c.how, c.len, c.offset, c.file, c.size_before
                )),
                None => active
                    .evidence
                    .push(format!("{name}: no data file to corrupt")),
            }
            Ok(json!({"kind": kind.name(), "nodes": [name], "corrupted": c}))
        }
        Kind::DiskFull => {
            active.nodes = pick(cluster, rng, true);
            for &i in &active.nodes {
                disk(cluster, i)?
                    .full(true)
                    .with_context(|| format!("filling {}'s disk", cluster.info(i).name))?;
            }
            Ok(json!({"kind": kind.name(), "nodes": names(cluster, &active.nodes)}))
        }
        Kind::SlowDisk => {
            active.nodes = pick(cluster, rng, true);
            let ms = rng.random_range(50..=500u64);
            for &i in &active.nodes {
                disk(cluster, i)?
                    .slow(ms)
                    .with_context(|| format!("slowing {}'s fsyncs", cluster.info(i).name))?;
            }
            Ok(json!({"kind": kind.name(), "nodes": names(cluster, &active.nodes), "fsync_ms": ms}))
        }
    }
}

/// The last non-empty line of a node's log (its fatal error when it exited).
fn last_log_line(path: &std::path::Path) -> String {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| {
            s.lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .map(str::to_owned)
        })
        .unwrap_or_default()
}

/// How long a restarted node gets to show it refuses its data (exits) or serves.
const SETTLE: Duration = Duration::from_secs(3);

pub fn stop(cluster: &mut Cluster<'_>, kind: Kind, active: &mut Active) -> Result<Value> {
    match kind {
        Kind::LoseUnfsynced | Kind::LoseUnfsyncedTorn | Kind::Corrupt => {
            let mut outcome = serde_json::Map::new();
            for (k, &i) in active.nodes.clone().iter().enumerate() {
                let pid = cluster.start(i)?;
                if active.old_pids.get(k) == Some(&pid) {
                    bail!("{} restarted with its old pid {pid}", cluster.info(i).name);
                }
                active
                    .evidence
                    .push(format!("{} restarted as pid {pid}", cluster.info(i).name));
            }
            let deadline = std::time::Instant::now()
                + if kind == Kind::Corrupt {
                    SETTLE
                } else {
                    Duration::from_secs(1)
                };
            while std::time::Instant::now() < deadline
                && active.nodes.iter().all(|&i| cluster.is_running(i))
            {
                std::thread::sleep(Duration::from_millis(50));
            }
            for &i in &active.nodes.clone() {
                let info = cluster.info(i).clone();
                if cluster.is_running(i) {
                    outcome.insert(info.name.clone(), json!("running"));
                    continue;
                }
                let last = last_log_line(&info.log_path());
                if kind != Kind::Corrupt {
                    // After a power loss a correct node starts; one that cannot is a
                    // finding about the system (reported beside the verdict), not a
                    // harness error.
                    return Err(crate::record::Unresponsive(format!(
                        "{} cannot restart after a power loss (lose-unfsynced): {last} (see {})",
                        info.name,
                        info.log_path().display()
                    ))
                    .into());
                }
                // Refusing damaged data is the right answer; the heal then restores the
                // file (a disk replaced from a backup) so the run goes on at full strength.
                let restored = disk(cluster, i)?
                    .undo_corruption()
                    .with_context(|| format!("restoring {}'s data", info.name))?;
                let pid = cluster.start(i)?;
                std::thread::sleep(Duration::from_millis(300));
                if !cluster.is_running(i) {
                    bail!(
                        "{} exited after its corrupted file was restored (see {})",
                        info.name,
                        info.log_path().display()
                    );
                }
                active.evidence.push(format!(
                    "{} refused to start: {last}; {} restored, restarted as pid {pid}",
                    info.name,
                    restored.as_deref().unwrap_or("nothing")
                ));
                outcome.insert(
                    info.name.clone(),
                    json!({"refused": last, "restored": restored}),
                );
            }
            Ok(json!({"kind": kind.name(), "nodes": outcome}))
        }
        Kind::DiskFull => {
            let mut refused = serde_json::Map::new();
            let mut restarted = serde_json::Map::new();
            for &i in &active.nodes.clone() {
                let info = cluster.info(i).clone();
                let n = disk(cluster, i)?
                    .full(false)
                    .with_context(|| format!("emptying {}'s disk", info.name))?;
                active
                    .evidence
                    .push(format!("{}: {n} calls failed with ENOSPC", info.name));
                refused.insert(info.name.clone(), json!(n));
                // A node that stopped on a failed write (rather than acknowledge what it
                // could not persist) is restarted once there is space again.
                if !cluster.is_running(i) {
                    let last = last_log_line(&info.log_path());
                    let pid = cluster.start(i)?;
                    active.evidence.push(format!(
                        "{} had exited ({last}); restarted as pid {pid}",
                        info.name
                    ));
                    restarted.insert(info.name.clone(), json!(last));
                }
            }
            Ok(json!({"kind": kind.name(), "enospc": refused, "exited": restarted}))
        }
        Kind::SlowDisk => {
            let mut slowed = serde_json::Map::new();
            for &i in &active.nodes {
                let n = disk(cluster, i)?
                    .slow(0)
                    .with_context(|| format!("healing {}'s fsyncs", cluster.info(i).name))?;
                active
                    .evidence
                    .push(format!("{}: {n} fsyncs delayed", cluster.info(i).name));
                slowed.insert(cluster.info(i).name.clone(), json!(n));
            }
            Ok(json!({"kind": kind.name(), "fsyncs_delayed": slowed}))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nemesis::{Family, Target, partition::Shape, schedule};

    #[test]
    fn kinds_by_name_and_family() {
        assert_eq!(kinds_in("disk"), Kind::ALL.to_vec());
        assert_eq!(
            kinds_in("kill,corrupt,slow-disk"),
            vec![Kind::Corrupt, Kind::SlowDisk]
        );
        assert!(kinds_in("kill").is_empty());
        assert_eq!(
            Family::parse_list("corrupt,kill").unwrap(),
            vec![Family::Disk, Family::Kill]
        );
        assert!(!Family::parse_list("all").unwrap().contains(&Family::Disk));
    }

    #[test]
    fn schedules_draw_only_enabled_kinds_seeded() {
        let mk = || {
            schedule(
                &[Family::Disk],
                &Target::ALL,
                &Shape::ALL,
                Duration::from_secs(120),
                Duration::from_secs(3),
                3,
                7,
            )
        };
        let all = mk();
        let kinds: std::collections::HashSet<Kind> = all
            .iter()
            .map(|p| match p.fault {
                Fault::Disk { disk } => disk,
                _ => panic!("{p:?}"),
            })
            .collect();
        assert_eq!(kinds.len(), Kind::ALL.len(), "{kinds:?}");
        let mut only = mk();
        restrict(&mut only, &[Kind::Corrupt, Kind::DiskFull]);
        let mut again = mk();
        restrict(&mut again, &[Kind::Corrupt, Kind::DiskFull]);
        assert_eq!(only, again);
        assert!(only.iter().all(|p| matches!(
            p.fault,
            Fault::Disk {
                disk: Kind::Corrupt | Kind::DiskFull
            }
        )));
        // Unchanged where the kind was already enabled.
        for (a, b) in all.iter().zip(&only) {
            if matches!(
                a.fault,
                Fault::Disk {
                    disk: Kind::Corrupt | Kind::DiskFull
                }
            ) {
                assert_eq!(a, b);
            }
        }
        assert_eq!(
            serde_json::to_string(&only[0].fault).unwrap(),
            format!(
                r#"{{"kind":"disk","disk":"{}"}}"#,
                match only[0].fault {
                    Fault::Disk { disk } => disk.name(),
                    _ => unreachable!(),
                }
            )
        );
        assert_eq!(only[0].fault.event("start"), "start-disk");
    }
}

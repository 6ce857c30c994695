//! Disk faults: a FUSE filesystem the harness mounts over a node's data directory.
//!
//! [`model`] keeps the durability bookkeeping (what a power loss drops) over a backing
//! directory; [`fuse`] serves it to the kernel from a background thread of the harness.
//! [`ops`] names the faults as operations and [`ops::Disk`] applies them to a node's
//! filesystem, mounted here or, for a node on a remote host, by `stasis diskfault-agent`
//! there ([`agent`]).
//! Each mount's source (fsname) is `stasis-<harness pid>-<node>`, so [`sweep`] (run by
//! `stasis clean` and at the start of every run) finds the mounts of a harness that died
//! without unmounting in /proc/mounts and detaches them.

pub mod agent;
pub mod fuse;
pub mod model;
pub mod ops;

use std::path::{Path, PathBuf};

pub use fuse::{Controls, Mounted};
pub use model::{Corruption, Loss, Store};
pub use ops::Disk;

/// `stasis test --disk`: whether the nodes' data directories get the disk-fault
/// filesystem even when no disk fault is scheduled (to measure its cost).
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum DiskMode {
    /// Plain directories (a disk nemesis still mounts the filesystem).
    #[default]
    Off,
    /// Mount the filesystem over every data directory.
    Fuse,
}

/// The prefix of every mount source this module creates.
pub const PREFIX: &str = "stasis-";

/// The mount source for node `node` of this harness process.
pub fn fsname(node: &str) -> String {
    format!("{PREFIX}{}-{node}", std::process::id())
}

/// Mounts a fault filesystem for one node: the node sees `mountpoint`, the durable state
/// lives in `backing`.
pub fn mount_node(backing: &Path, mountpoint: &Path, node: &str) -> anyhow::Result<Mounted> {
    Mounted::mount(backing, mountpoint, &fsname(node)).map_err(|e| {
        anyhow::anyhow!(
            "cannot mount the disk-fault filesystem at {}: {e} (needs root and /dev/fuse; see `stasis doctor`)",
            mountpoint.display()
        )
    })
}

/// One `stasis-` FUSE mount listed in /proc/mounts.
#[derive(Clone, Debug, PartialEq)]
pub struct Leftover {
    pub source: String,
    pub mountpoint: PathBuf,
    /// The harness process that mounted it.
    pub owner: Option<u32>,
}

/// Parses /proc/mounts text for our FUSE mounts.
pub fn parse_mounts(text: &str) -> Vec<Leftover> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (source, target, fstype) = (f.next()?, f.next()?, f.next()?);
            let rest = source.strip_prefix(PREFIX)?;
            if !fstype.starts_with("fuse") {
                return None;
            }
            // /proc/mounts escapes space, tab, newline and backslash as octal.
            let target = target
                .replace("\\040", " ")
                .replace("\\011", "\t")
                .replace("\\012", "\n")
                .replace("\\134", "\\");
            Some(Leftover {
                source: source.to_owned(),
                mountpoint: PathBuf::from(target),
                owner: rest.split('-').next().and_then(|p| p.parse().ok()),
            })
        })
        .collect()
}

/// Our mounts whose harness is gone.
pub fn leftovers() -> Vec<Leftover> {
    let text = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    parse_mounts(&text)
        .into_iter()
        .filter(|m| {
            m.owner
                .is_none_or(|pid| !Path::new(&format!("/proc/{pid}")).exists())
        })
        .collect()
}

/// Detaches every leftover mount. Returns how many, and the errors.
pub fn sweep() -> (usize, Vec<String>) {
    let mut n = 0;
    let mut errors = Vec::new();
    for m in leftovers() {
        match nix::mount::umount2(&m.mountpoint, nix::mount::MntFlags::MNT_DETACH) {
            Ok(()) => n += 1,
            Err(e) => errors.push(format!("umount {}: {e}", m.mountpoint.display())),
        }
    }
    (n, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_only_our_fuse_mounts() {
        let text = "\
proc /proc proc rw 0 0
stasis-4242-n1 /tmp/run/n1/data fuse.stasis rw,nosuid,nodev 0 0
stasis-17-n2 /tmp/a\\040b/data fuse.stasis rw 0 0
stasis-5-n3 /srv ext4 rw 0 0
other /x fuse.sshfs rw 0 0
";
        let got = parse_mounts(text);
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[0].owner, Some(4242));
        assert_eq!(got[0].mountpoint, PathBuf::from("/tmp/run/n1/data"));
        assert_eq!(got[1].mountpoint, PathBuf::from("/tmp/a b/data"));
        assert!(fsname("n1").starts_with(&format!("stasis-{}-", std::process::id())));
    }
}

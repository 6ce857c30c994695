//! The disk-fault filesystem on a remote host: `stasis diskfault-agent`, started over the
//! host's shared ssh connection ([`crate::remote::session`], the wire format shared with
//! the packet delayer's agent), mounts the same FUSE filesystem ([`super::mount_node`])
//! over the node's data directory there and applies each [`Op`] with the same
//! [`super::ops::apply`] as a local run, answering what it did (a loss, a corruption, a
//! switch read back), so the controller verifies each fault on the host itself.
//!
//! The mount's source is `stasis-<agent pid>-<node>`, as a local one names its harness.
//! The agent unmounts and exits when its session ends (stdin closes: the controller
//! stopped it, died, or the connection dropped) or on SIGTERM or SIGINT; a mount still
//! in use (a node that outlived its controller keeps files open) is detached. Its pid
//! file is in `<run dir>/<node>-disk-agent/`, so `stasis clean --hosts` kills an agent that
//! was itself killed, and detaches its mount ([`crate::remote::remove_run`]).

use std::path::Path;
use std::sync::mpsc::RecvTimeoutError;
use std::time::Duration;

use anyhow::Result;
use serde_json::Value;

use super::ops::{Op, apply};
use crate::remote::session::{self, Replier, Session};
use crate::remote::ssh::Ssh;

/// The agent's subcommand (hidden from `stasis --help`).
pub const SUBCOMMAND: &str = "diskfault-agent";

/// `stasis diskfault-agent --backing B --mount M --node N`: mounts, then serves until
/// stdin closes or a signal asks it to stop. Exit 0 after a clean unmount, 3 if the
/// filesystem could not be mounted or unmounted.
pub fn serve(backing: &Path, mountpoint: &Path, node: &str) -> u8 {
    crate::signals::install();
    let out = Replier::default();
    let mounted = match super::mount_node(backing, mountpoint, node) {
        Ok(m) => m,
        Err(e) => {
            out.ready(Err(format!("{e:#}")));
            return 3;
        }
    };
    out.ready(Ok(()));
    let rx = session::requests::<Op>(out.clone());
    loop {
        if crate::signals::interrupted() {
            break;
        }
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok((id, op)) => out.say(id, apply(&mounted, &op).map_err(|e| format!("{e:#}"))),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    // The mount is detached at once; its session thread ends when the last file on it
    // closes. A node that outlived its controller may hold files open: then the agent
    // exits without waiting, which aborts the connection (the node's next call fails).
    let (tx, done) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(mounted.unmount());
    });
    match done.recv_timeout(Duration::from_secs(5)) {
        Ok(Ok(())) => 0,
        Ok(Err(e)) => {
            eprintln!(
                "stasis diskfault-agent: unmounting {}: {e}",
                mountpoint.display()
            );
            let _ = nix::mount::umount2(mountpoint, nix::mount::MntFlags::MNT_DETACH);
            3
        }
        Err(_) => {
            eprintln!(
                "stasis diskfault-agent: {} detached while still in use; exiting",
                mountpoint.display()
            );
            0
        }
    }
}

/// The controller's end: one session per remote node.
pub struct DiskAgent {
    session: Session,
}

impl DiskAgent {
    /// Starts the agent on `h` from the uploaded `bin`, its pid file in `dir` there, the
    /// node's data under `node_dir` there (`data/` mounted, `disk/` the backing state),
    /// its stderr in `log` here; waits until the filesystem is mounted.
    pub fn start(
        h: &Ssh,
        dir: &str,
        bin: &str,
        node_dir: &str,
        node: &str,
        log: &Path,
    ) -> Result<DiskAgent> {
        let backing = format!("{node_dir}/disk");
        let mount = format!("{node_dir}/data");
        let session = Session::start(
            h,
            dir,
            &[
                bin,
                SUBCOMMAND,
                "--backing",
                &backing,
                "--mount",
                &mount,
                "--node",
                node,
            ],
            log,
            "the disk-fault filesystem (stasis diskfault-agent)",
        )?;
        Ok(DiskAgent { session })
    }

    /// Sends `op` and waits up to `timeout` for the agent's answer.
    pub fn request(&self, op: &Op, timeout: Duration) -> Result<Value> {
        self.session.request(op, timeout)
    }

    /// Closes the session: the agent unmounts and exits. Idempotent.
    pub fn stop(&mut self) -> Result<()> {
        self.session.stop()
    }
}

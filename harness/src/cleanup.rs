//! Removing what dead runs left behind, so nothing outlives a run — not even a harness
//! killed with SIGKILL. Runs register what they create in [`crate::runstate`]; a
//! registration whose lock can be taken belongs to a dead owner:
//! [`clean_stale`] then kills the recorded processes (only if their start time still
//! matches, so a recycled PID is never hit), deletes veths and bridges, then namespaces.
//! `stasis clean` and the start of every run call it.

use std::fs::{self, OpenOptions};

use anyhow::Result;
use nix::fcntl::{Flock, FlockArg};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use crate::net;
use crate::runstate::{
    REGISTRY_WAIT, RegistryLock, StateData, proc_start_time, runs_dir, same_file,
};

/// What a cleanup removed.
#[derive(Debug, Default)]
pub struct Cleaned {
    pub runs: usize,
    pub processes: usize,
    pub links: usize,
    pub namespaces: usize,
    /// Disk-fault FUSE mounts of dead harnesses (see [`crate::diskfs::sweep`]).
    pub mounts: usize,
    pub errors: Vec<String>,
}

impl Cleaned {
    pub fn is_empty(&self) -> bool {
        self.runs == 0
            && self.processes == 0
            && self.links == 0
            && self.namespaces == 0
            && self.mounts == 0
    }
}

/// Removes everything registered by runs whose owner is gone. Holds the registry lock
/// throughout, so no run registers (or reuses a dead run's topology id) meanwhile.
pub fn clean_stale() -> Result<Cleaned> {
    let _registry = RegistryLock::acquire("clean", REGISTRY_WAIT)?;
    let mut out = Cleaned::default();
    // Mounts of dead harnesses first: the processes under them are gone or get killed below.
    let (mounts, errors) = crate::diskfs::sweep();
    out.mounts = mounts;
    out.errors.extend(errors);
    let dir = runs_dir();
    let Ok(entries) = fs::read_dir(&dir) else {
        return Ok(out);
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("lock") {
            continue;
        }
        let Ok(file) = OpenOptions::new().write(true).open(&path) else {
            continue;
        };
        // Still locked: a live run owns it.
        let Ok(lock) = Flock::lock(file, FlockArg::LockExclusiveNonblock) else {
            continue;
        };
        // Released and deleted by its owner after we opened it: not a dead run's.
        if !same_file(&lock, &path) {
            continue;
        }
        let json = path.with_extension("json");
        let data: StateData = match fs::read(&json) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_default(),
            Err(_) => StateData::default(),
        };
        out.runs += 1;
        for p in &data.processes {
            if proc_start_time(p.pid) == Some(p.start_time) {
                // Resume first so a paused group dies too, then kill the whole group.
                let pgid = Pid::from_raw(p.pid as i32);
                let _ = killpg(pgid, Signal::SIGCONT);
                match killpg(pgid, Signal::SIGKILL) {
                    Ok(()) => out.processes += 1,
                    Err(e) => out.errors.push(format!("kill {}: {e}", p.pid)),
                }
            }
        }
        for l in &data.links {
            if net::link_exists(l) {
                match net::run(&["ip", "link", "del", l]) {
                    Ok(_) => out.links += 1,
                    Err(e) => out.errors.push(e.to_string()),
                }
            }
        }
        for ns in &data.namespaces {
            // A harness killed between spawning a node and registering it leaves a process
            // no registration names: whatever still runs inside the dead run's namespace.
            if net::netns_path(ns).exists()
                && let Ok(pids) = net::run(&["ip", "netns", "pids", ns])
            {
                for pid in pids
                    .split_whitespace()
                    .filter_map(|p| p.parse::<i32>().ok())
                {
                    let pid = Pid::from_raw(pid);
                    let _ = nix::sys::signal::kill(pid, Signal::SIGCONT);
                    if nix::sys::signal::kill(pid, Signal::SIGKILL).is_ok() {
                        out.processes += 1;
                    }
                }
            }
            if net::netns_path(ns).exists() {
                match net::run(&["ip", "netns", "del", ns]) {
                    Ok(_) => out.namespaces += 1,
                    Err(e) => out.errors.push(e.to_string()),
                }
            }
        }
        let _ = fs::remove_file(&json);
        let _ = fs::remove_file(&path);
        drop(lock);
    }
    Ok(out)
}

/// Namespaces and links of topology `id` that still exist and that no *other* live run
/// owns. Topology ids are reused once a run releases its subnet, so a name alone does not
/// say whose an object is: the registry entry (created before any object, removed after
/// the last) does. `owner_pid` is the process that created the topology being checked.
pub fn leftovers(id: &str, owner_pid: u32) -> Vec<String> {
    let prefix = format!("{}{id}", net::PREFIX);
    let ours = |name: &String| {
        name.strip_prefix(&prefix)
            .is_some_and(|rest| rest.starts_with(|c: char| !c.is_ascii_digit()))
    };
    let list = || -> Vec<String> {
        net::stasis_namespaces()
            .into_iter()
            .chain(net::stasis_links())
            .filter(ours)
            .collect()
    };
    let owned_by_other = || {
        fs::read(runs_dir().join(format!("{id}.json")))
            .ok()
            .and_then(|b| serde_json::from_slice::<StateData>(&b).ok())
            .is_some_and(|d| d.owner_pid != owner_pid)
    };
    // Look twice: another run may release the id between listing and reading its entry.
    for _ in 0..2 {
        let objects = list();
        if objects.is_empty() || owned_by_other() {
            return Vec::new();
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    list()
}

//! Leftover tracking, so nothing outlives a run — not even a harness killed with SIGKILL.
//!
//! Every topology registers itself in `<state dir>/runs/<id>.json` (namespaces, links,
//! node processes with their kernel start times) and holds an exclusive `flock` on
//! `<id>.lock` while it lives. A lock that can be taken means its owner is dead:
//! [`clean_stale`] then kills the recorded processes (only if their start time still
//! matches, so a recycled PID is never hit), deletes veths and bridges, then namespaces.
//! `stasis clean` and the start of every run call it.

use std::fs::{self, File, OpenOptions};
use std::path::PathBuf;

use anyhow::{Context, Result};
use nix::fcntl::{Flock, FlockArg};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use crate::net;

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct StateData {
    pub owner_pid: u32,
    pub run_dir: Option<PathBuf>,
    pub namespaces: Vec<String>,
    pub links: Vec<String>,
    pub processes: Vec<ProcRecord>,
}

/// A process group leader we started, identified by pid and kernel start time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcRecord {
    pub pid: u32,
    pub start_time: u64,
}

/// The live registration of one topology.
#[derive(Debug)]
pub struct RunState {
    id: String,
    _lock: Flock<File>,
    pub data: StateData,
}

fn runs_dir() -> PathBuf {
    net::state_dir().join("runs")
}

impl RunState {
    pub fn create(id: &str) -> Result<RunState> {
        let dir = runs_dir();
        fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let lock_path = dir.join(format!("{id}.lock"));
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .with_context(|| format!("cannot open {}", lock_path.display()))?;
        let lock = Flock::lock(file, FlockArg::LockExclusiveNonblock)
            .map_err(|(_, e)| e)
            .with_context(|| format!("{} is held by a live run", lock_path.display()))?;
        let state = RunState {
            id: id.to_owned(),
            _lock: lock,
            data: StateData {
                owner_pid: std::process::id(),
                ..StateData::default()
            },
        };
        state.save()?;
        Ok(state)
    }

    /// Writes the state atomically (tmp + rename).
    pub fn save(&self) -> Result<()> {
        let path = runs_dir().join(format!("{}.json", self.id));
        let tmp = path.with_extension("json.tmp");
        fs::write(&tmp, serde_json::to_vec_pretty(&self.data)?)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display()))
    }

    pub fn add_process(&mut self, pid: u32) -> Result<()> {
        if let Some(start_time) = proc_start_time(pid) {
            self.data.processes.retain(|p| p.pid != pid);
            self.data.processes.push(ProcRecord { pid, start_time });
        }
        self.save()
    }

    pub fn remove_process(&mut self, pid: u32) -> Result<()> {
        self.data.processes.retain(|p| p.pid != pid);
        self.save()
    }

    /// Removes the registration (after a clean teardown).
    pub fn release(self) {
        let dir = runs_dir();
        let _ = fs::remove_file(dir.join(format!("{}.json", self.id)));
        let _ = fs::remove_file(dir.join(format!("{}.lock", self.id)));
    }
}

/// Start time of a process in clock ticks since boot (field 22 of /proc/PID/stat).
pub fn proc_start_time(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces; fields resume after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Process state letter (R, S, T, Z, ...) from /proc/PID/stat.
pub fn proc_state(pid: u32) -> Option<char> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 2..].chars().next()
}

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

/// Removes everything registered by runs whose owner is gone.
pub fn clean_stale() -> Result<Cleaned> {
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

//! The registration of a live run: every topology records in `<state dir>/runs/<id>.json`
//! what it creates (namespaces, links, node processes with their kernel start times) and
//! holds an exclusive `flock` on `<id>.lock` while it lives, so that
//! [`crate::cleanup::clean_stale`] can tell a dead owner's leftovers from a live run's.
//!
//! Cleaning and registering are serialized by one more lock, [`RegistryLock`]
//! (`<state dir>/registry.lock`, never deleted): `stasis clean` holds it for its whole
//! sweep and a starting run holds it while it claims its subnet and creates its
//! registration. Without it a cleanup that had opened a dead run's lock file could take
//! that lock after a new run reused the topology id, read the new run's entry and remove
//! the new run's namespaces; a starting run now waits for the cleanup instead (and says
//! so), or refuses with a clear error if the cleanup takes too long.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

/// Where run-wide locks and state live (subnet claims, leftover markers).
pub fn state_dir() -> PathBuf {
    std::env::var_os("STASIS_STATE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/run/stasis"))
}

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

pub fn runs_dir() -> PathBuf {
    state_dir().join("runs")
}

/// How long a starting run or a cleanup waits for the other before giving up.
pub const REGISTRY_WAIT: Duration = Duration::from_secs(120);

/// Exclusive hold of `<state dir>/registry.lock` (see the module documentation).
#[derive(Debug)]
pub struct RegistryLock {
    _lock: Flock<File>,
}

impl RegistryLock {
    /// Takes the registry lock, waiting up to `wait` for its holder (a concurrent
    /// `stasis clean` or a starting run). `who` names the caller in the messages.
    pub fn acquire(who: &str, wait: Duration) -> Result<RegistryLock> {
        let dir = state_dir();
        fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {} (are you root?)", dir.display()))?;
        let path = dir.join("registry.lock");
        let start = Instant::now();
        let mut said = false;
        loop {
            let file = open_lock_file(&path)?;
            match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(lock) => {
                    if said {
                        eprintln!(
                            "stasis: {who}: went on after {:.1} s",
                            start.elapsed().as_secs_f64()
                        );
                    }
                    return Ok(RegistryLock { _lock: lock });
                }
                Err((_, nix::errno::Errno::EWOULDBLOCK)) => {}
                Err((_, e)) => bail!("cannot lock {}: {e}", path.display()),
            }
            if start.elapsed() >= wait {
                bail!(
                    "{who}: {} is still held after {} s by a concurrent `stasis clean` or a \
                     starting run; try again when it has finished",
                    path.display(),
                    wait.as_secs()
                );
            }
            if !said {
                eprintln!(
                    "stasis: {who}: waiting for a concurrent `stasis clean` or starting run \
                     (holding {})",
                    path.display()
                );
                said = true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Whether the file open as `file` is still the one at `path` (a lock file can be deleted
/// and re-created by its owner while another process holds the old one open).
/// Opens (creating it if needed) a lock file of Stasis's state directory, for `flock`;
/// never truncated, so whoever holds it keeps what it wrote.
pub fn open_lock_file(path: &Path) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))
}

pub fn same_file(file: &File, path: &Path) -> bool {
    match (file.metadata(), fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

impl RunState {
    pub fn create(id: &str) -> Result<RunState> {
        let dir = runs_dir();
        fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let lock_path = dir.join(format!("{id}.lock"));
        let file = open_lock_file(&lock_path)?;
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

//! The file-system interface every durable byte goes through, with a real and a simulated
//! implementation.
//!
//! Invariants and contracts (what callers may rely on, for both implementations):
//! - Data written through a [`StorageFile`] is durable only after [`StorageFile::sync`]
//!   returns Ok. Until then a power loss may drop it, or keep any prefix of it.
//! - A directory entry change (file creation, [`Fs::rename`], [`Fs::remove`]) is durable
//!   only after [`Fs::sync_dir`] on the containing directory returns Ok. A file that was
//!   created and fsynced but whose directory was never synced may vanish on power loss.
//! - [`Fs::truncate`] is durable when it returns (it fsyncs the file).
//! - [`Fs::create_dir_all`] is durable when it returns: [`RealFs`] fsyncs every directory it
//!   created and the parent of each, and the directory itself and its parent even when they
//!   existed (a previous process may have died before syncing them). `SimFs` never undoes
//!   directories.
//! - [`Fs::list`] returns the plain file names in a directory, sorted.
//!
//! [`SimFs`] models exactly these rules, pessimistically: on [`SimFs::crash`] every file
//! keeps only its fsynced content and every directory reverts to its entries as of its
//! last `sync_dir`. In torn-write mode ([`SimFs::with_torn_writes`], or one torn crash:
//! [`SimFs::crash_torn`]; a disk with no ordering guarantees) a crash instead keeps, per
//! file, its fsynced content plus a seeded random prefix of the unsynced tail in which
//! every [`SECTOR`]-sized block (aligned on file offsets) independently survives or reads
//! as zeros (page writeback is not ordered, and a drive may tear a page at its sectors:
//! a damaged block can precede an intact one), and per directory a random subset of the
//! unsynced entry operations (each create, remove and same-directory rename is atomic; a
//! rename survives only if its source entry is durable). Files are inodes, so a rename moves
//! content and a removed file's data survives a crash if the removal was not synced.
//! Handles opened before a crash fail afterwards, like a process that died with the
//! machine. [`SimFs::crash_torn_in_sync`] is a torn crash that strikes during the last
//! operation, when that was an fsync: the data it was making durable is unsynced.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The unit a torn crash keeps or loses: a disk sector. Page writeback is not ordered and
/// a drive without atomic page writes tears a page at its sectors.
pub const SECTOR: usize = 512;

/// An open file that is only ever appended to.
pub trait StorageFile: Send {
    /// Appends all of `buf` at the end of the file.
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()>;
    /// Makes everything written so far durable (fdatasync).
    fn sync(&mut self) -> io::Result<()>;
    /// Current length in bytes, including unsynced data.
    fn len(&self) -> u64;
    /// True when the file is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// All file-system operations storage needs. See the module docs for durability rules.
pub trait Fs: Send + Sync {
    /// Creates `dir` and its parents (durable on return).
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Sorted names of the files in `dir`.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// Whole content of a file (including data not yet synced).
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// Opens `path` for appending; creates it (empty) if absent and `create` is true.
    fn open_append(&self, path: &Path, create: bool) -> io::Result<Box<dyn StorageFile>>;
    /// Creates `path` empty (replacing any existing file) and opens it for appending.
    fn create(&self, path: &Path) -> io::Result<Box<dyn StorageFile>>;
    /// Cuts the file to `len` bytes and fsyncs it.
    fn truncate(&self, path: &Path, len: u64) -> io::Result<()>;
    /// Renames `from` to `to`, replacing `to` if it exists.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes a file.
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// Makes the entries of `dir` durable (fsync on the directory).
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Whether a file exists at `path`.
    fn exists(&self, path: &Path) -> io::Result<bool>;
}

// ---------------------------------------------------------------------------------------
// Real file system.

/// `std::fs` implementation: `sync` is `fdatasync`, `sync_dir` fsyncs the directory fd.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealFs;

struct RealFile {
    file: File,
    len: u64,
}

impl StorageFile for RealFile {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.file.write_all(buf)?;
        self.len += buf.len() as u64;
        Ok(())
    }
    fn sync(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }
    fn len(&self) -> u64 {
        self.len
    }
}

impl RealFs {
    fn open(path: &Path, opts: &OpenOptions) -> io::Result<Box<dyn StorageFile>> {
        let file = opts.open(path)?;
        let len = file.metadata()?.len();
        Ok(Box::new(RealFile { file, len }))
    }
}

impl Fs for RealFs {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        // The levels that do not exist yet, deepest first.
        let mut missing = Vec::new();
        let mut cur = Some(dir);
        while let Some(d) = cur {
            if d.as_os_str().is_empty() || d.try_exists()? {
                break;
            }
            missing.push(d);
            cur = d.parent();
        }
        std::fs::create_dir_all(dir)?;
        // A new entry is durable once the directory holding it is fsynced (finding 3 of
        // the node review: without this a power loss soon after the first start can drop
        // the data directory and the node re-bootstraps empty).
        let mut to_sync: Vec<&Path> = vec![dir];
        to_sync.extend(missing.iter().filter_map(|d| d.parent()));
        to_sync.extend(dir.parent());
        to_sync.sort();
        to_sync.dedup();
        for d in to_sync {
            let d = if d.as_os_str().is_empty() {
                Path::new(".")
            } else {
                d
            };
            self.sync_dir(d)?;
        }
        Ok(())
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                names.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        names.sort();
        Ok(names)
    }
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        std::fs::read(path)
    }
    fn open_append(&self, path: &Path, create: bool) -> io::Result<Box<dyn StorageFile>> {
        Self::open(path, OpenOptions::new().append(true).create(create))
    }
    fn create(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        Self::open(
            path,
            OpenOptions::new().write(true).create(true).truncate(true),
        )
    }
    fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        let file = OpenOptions::new().write(true).open(path)?;
        file.set_len(len)?;
        file.sync_all()
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
    fn exists(&self, path: &Path) -> io::Result<bool> {
        path.try_exists()
    }
}

// ---------------------------------------------------------------------------------------
// Simulated file system.

type Ino = u64;

#[derive(Debug, Default)]
struct Inode {
    data: Vec<u8>,
    /// `data[..synced]` is durable.
    synced: usize,
}

/// A directory entry change not yet made durable by `sync_dir`.
#[derive(Debug, Clone)]
enum DirOp {
    Link(String, Ino),
    Unlink(String),
    Rename { from: String, to: String, ino: Ino },
}

#[derive(Debug, Default)]
struct Dir {
    live: BTreeMap<String, Ino>,
    durable: BTreeMap<String, Ino>,
    /// Changes from `durable` to `live`, in order.
    pending: Vec<DirOp>,
}

impl Dir {
    fn link(&mut self, name: String, ino: Ino) -> Option<Ino> {
        self.pending.push(DirOp::Link(name.clone(), ino));
        self.live.insert(name, ino)
    }

    fn unlink(&mut self, name: &str) -> Option<Ino> {
        let old = self.live.remove(name)?;
        self.pending.push(DirOp::Unlink(name.to_string()));
        Some(old)
    }

    fn sync(&mut self) {
        self.durable = self.live.clone();
        self.pending.clear();
    }

    /// Power loss: with `rng`, each pending operation independently survives (in order);
    /// without, none does.
    fn crash(&mut self, rng: Option<&mut ChaCha8Rng>) {
        if let Some(rng) = rng {
            for op in self.pending.drain(..) {
                if !rng.random_bool(0.5) {
                    continue;
                }
                match op {
                    DirOp::Link(name, ino) => {
                        self.durable.insert(name, ino);
                    }
                    DirOp::Unlink(name) => {
                        self.durable.remove(&name);
                    }
                    DirOp::Rename { from, to, ino } => {
                        if self.durable.get(&from) == Some(&ino) {
                            self.durable.remove(&from);
                            self.durable.insert(to, ino);
                        }
                    }
                }
            }
        }
        self.pending.clear();
        self.live = self.durable.clone();
    }

    fn references(&self, ino: Ino) -> bool {
        self.live
            .values()
            .chain(self.durable.values())
            .any(|&i| i == ino)
            || self.pending.iter().any(|op| match op {
                DirOp::Link(_, i) | DirOp::Rename { ino: i, .. } => *i == ino,
                DirOp::Unlink(_) => false,
            })
    }
}

#[derive(Debug)]
struct SimState {
    inodes: BTreeMap<Ino, Inode>,
    dirs: BTreeMap<PathBuf, Dir>,
    next_ino: Ino,
    /// Bumped by every crash; handles from an older epoch are dead.
    epoch: u64,
    torn: Option<ChaCha8Rng>,
    /// `Some(n)`: n more mutating operations succeed, then all fail.
    ops_left: Option<u64>,
    crashes: u64,
    /// Mutating operations so far, by [`FsOp`] (indexed by `FsOp as usize`).
    counts: [u64; FsOp::ALL.len()],
    trap: Option<Trap>,
    /// Set when a dying trap fired: every later mutating operation fails.
    dead: bool,
    /// When the last mutating operation was a file fsync: that file and its durable length
    /// before it ([`SimFs::crash_torn_in_sync`]).
    last_sync: Option<(Ino, usize)>,
}

/// A mutating file-system operation, as [`SimFs`] counts them and as a trap names them
/// (and as `stasis sim`'s `persist` faults record them: kebab-case).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum FsOp {
    /// [`StorageFile::write_all`].
    Write,
    /// [`StorageFile::sync`].
    Sync,
    /// A file created ([`Fs::create`], or [`Fs::open_append`] of a missing file).
    Create,
    Rename,
    Remove,
    Truncate,
    SyncDir,
}

impl FsOp {
    pub const ALL: [FsOp; 7] = [
        FsOp::Write,
        FsOp::Sync,
        FsOp::Create,
        FsOp::Rename,
        FsOp::Remove,
        FsOp::Truncate,
        FsOp::SyncDir,
    ];

    /// Whether the operation waits for the disk (an fsync): what a slow disk slows.
    pub fn syncs(self) -> bool {
        matches!(self, FsOp::Sync | FsOp::Truncate | FsOp::SyncDir)
    }
}

/// A trap set with [`SimFs::set_trap`].
#[derive(Clone, Copy, Debug)]
struct Trap {
    op: FsOp,
    /// Matching operations still to let pass before the trap fires.
    skip: u64,
    /// Whether the machine dies at the operation that fires it.
    die: bool,
    fired: bool,
}

/// What became of a trap, from [`SimFs::clear_trap`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrapState {
    /// It did not fire: this many matching operations are still to pass.
    Pending(u64),
    /// It fired (the `skip`+1-th matching operation completed); with `die`, every later
    /// mutating operation failed.
    Fired,
}

/// In-memory file system that can simulate power loss. Cloning shares the same state.
#[derive(Debug, Clone)]
pub struct SimFs {
    state: Arc<Mutex<SimState>>,
}

struct SimFile {
    fs: SimFs,
    ino: Ino,
    epoch: u64,
}

fn not_found(what: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{}: no such file or directory (simulated)", what.display()),
    )
}

fn split(path: &Path) -> io::Result<(&Path, String)> {
    match (path.parent(), path.file_name()) {
        (Some(parent), Some(name)) => Ok((parent, name.to_string_lossy().into_owned())),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{}: not a file path", path.display()),
        )),
    }
}

impl Default for SimFs {
    fn default() -> Self {
        Self::new()
    }
}

impl SimFs {
    /// An empty file system; on crash, unsynced data is lost entirely.
    pub fn new() -> Self {
        SimFs {
            state: Arc::new(Mutex::new(SimState {
                inodes: BTreeMap::new(),
                dirs: BTreeMap::new(),
                next_ino: 1,
                epoch: 0,
                torn: None,
                ops_left: None,
                crashes: 0,
                counts: [0; FsOp::ALL.len()],
                trap: None,
                dead: false,
                last_sync: None,
            })),
        }
    }

    /// Torn-write mode: on crash each file keeps its synced content plus a random prefix
    /// (possibly empty, possibly all) of its unsynced tail whose sectors each survive or
    /// read as zeros, drawn from `seed` (see the module docs).
    pub fn with_torn_writes(seed: u64) -> Self {
        let fs = Self::new();
        fs.lock().torn = Some(ChaCha8Rng::seed_from_u64(seed));
        fs
    }

    /// Fault injection: with `Some(n)`, the next `n` mutating operations (create, write,
    /// sync, truncate, rename, remove, sync_dir) succeed and every later one fails with an
    /// I/O error, like a machine dying at that point. `None` turns failures off. Reads
    /// always work.
    pub fn fail_after(&self, ops: Option<u64>) {
        self.lock().ops_left = ops;
    }

    /// Fault injection keyed to storage events: the `skip`+1-th [`FsOp`] `op` from now
    /// fires the trap (see [`SimFs::clear_trap`]). With `die`, that operation completes and
    /// every later mutating operation fails with an I/O error, like a process (or machine)
    /// dying right after it: the caller's batch stops there. Replaces any trap set before.
    pub fn set_trap(&self, op: FsOp, skip: u64, die: bool) {
        let mut st = self.lock();
        st.trap = Some(Trap {
            op,
            skip,
            die,
            fired: false,
        });
        st.dead = false;
    }

    /// Removes the trap (and the failures a dying trap caused) and says whether it fired
    /// or how many matching operations it still had to let pass. None: no trap was set.
    pub fn clear_trap(&self) -> Option<TrapState> {
        let mut st = self.lock();
        st.dead = false;
        st.trap.take().map(|t| {
            if t.fired {
                TrapState::Fired
            } else {
                TrapState::Pending(t.skip)
            }
        })
    }

    /// Mutating operations of kind `op` so far (those that succeeded).
    pub fn count(&self, op: FsOp) -> u64 {
        self.lock().counts[op as usize]
    }

    /// Operations so far that wait for the disk ([`FsOp::syncs`]).
    pub fn syncs(&self) -> u64 {
        let st = self.lock();
        FsOp::ALL
            .iter()
            .filter(|o| o.syncs())
            .map(|&o| st.counts[o as usize])
            .sum()
    }

    /// Number of crashes simulated so far.
    pub fn crashes(&self) -> u64 {
        self.lock().crashes
    }

    /// Simulated power loss; see the module docs for what survives.
    pub fn crash(&self) {
        let mut st = self.lock();
        let mut rng = st.torn.take();
        Self::crash_locked(&mut st, rng.as_mut());
        st.torn = rng;
    }

    /// One power loss of a disk with no ordering guarantees, drawn from `seed`, as a crash
    /// in torn-write mode (see the module docs), whatever the mode.
    pub fn crash_torn(&self, seed: u64) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        Self::crash_locked(&mut self.lock(), Some(&mut rng));
    }

    /// One power loss as [`SimFs::crash_torn`], that strikes while the last mutating
    /// operation, if it was a file fsync, is still under way: that fsync had not returned,
    /// so the data it was making durable is an unsynced tail like any other. True if it
    /// had new data to make durable (else this is exactly `crash_torn`).
    pub fn crash_torn_in_sync(&self, seed: u64) -> bool {
        let mut st = self.lock();
        let undone = st.last_sync.take().is_some_and(|(ino, before)| {
            st.inodes.get_mut(&ino).is_some_and(|i| {
                let was = i.synced;
                i.synced = before.min(was);
                was > before
            })
        });
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        Self::crash_locked(&mut st, Some(&mut rng));
        undone
    }

    fn crash_locked(st: &mut SimState, mut torn: Option<&mut ChaCha8Rng>) {
        st.epoch += 1;
        st.crashes += 1;
        st.dead = false;
        st.last_sync = None;
        for dir in st.dirs.values_mut() {
            dir.crash(torn.as_deref_mut());
        }
        let referenced: std::collections::BTreeSet<Ino> = st
            .dirs
            .values()
            .flat_map(|d| d.live.values().copied())
            .collect();
        st.inodes.retain(|ino, _| referenced.contains(ino));
        for inode in st.inodes.values_mut() {
            let tail = inode.data.len() - inode.synced;
            match torn.as_deref_mut() {
                Some(rng) if tail > 0 => {
                    let keep = rng.random_range(0..=tail);
                    let end = inode.synced + keep;
                    inode.data.truncate(end);
                    // Sectors of the kept tail: each survives or reads as zeros.
                    let mut at = inode.synced;
                    while at < end {
                        let next = ((at / SECTOR + 1) * SECTOR).min(end);
                        if !rng.random_bool(0.5) {
                            inode.data[at..next].fill(0);
                        }
                        at = next;
                    }
                }
                _ => inode.data.truncate(inode.synced),
            }
            inode.synced = inode.data.len();
        }
    }

    /// Durable content of `path` as it would be after a crash right now (None if the
    /// file would not exist). Unaffected by torn-write mode.
    pub fn durable_content(&self, path: &Path) -> Option<Vec<u8>> {
        let st = self.lock();
        let (dir, name) = split(path).ok()?;
        let ino = st.dirs.get(dir)?.durable.get(&name)?;
        st.inodes.get(ino).map(|i| i.data[..i.synced].to_vec())
    }

    fn lock(&self) -> MutexGuard<'_, SimState> {
        // A panic while holding the lock cannot leave SimState half-updated in a way that
        // matters to a test that is already failing; keep going with the inner value.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl SimState {
    /// Admits one mutating operation of kind `op` (or fails it: [`SimFs::fail_after`],
    /// a dying trap that fired), counts it and springs a trap it matches.
    fn check_io(&mut self, op: FsOp) -> io::Result<()> {
        if self.dead {
            return Err(io::Error::other(
                "simulated I/O error (the process died at a trapped operation)",
            ));
        }
        match &mut self.ops_left {
            Some(0) => return Err(io::Error::other("simulated I/O error")),
            Some(n) => *n -= 1,
            None => {}
        }
        self.counts[op as usize] += 1;
        self.last_sync = None;
        if let Some(t) = self.trap.as_mut().filter(|t| t.op == op && !t.fired) {
            if t.skip == 0 {
                t.fired = true;
                self.dead = t.die;
            } else {
                t.skip -= 1;
            }
        }
        Ok(())
    }

    fn dir_mut(&mut self, dir: &Path) -> io::Result<&mut Dir> {
        self.dirs.get_mut(dir).ok_or_else(|| not_found(dir))
    }

    fn lookup(&self, path: &Path) -> io::Result<Ino> {
        let (dir, name) = split(path)?;
        self.dirs
            .get(dir)
            .and_then(|d| d.live.get(&name))
            .copied()
            .ok_or_else(|| not_found(path))
    }

    fn new_inode(&mut self) -> Ino {
        let ino = self.next_ino;
        self.next_ino += 1;
        self.inodes.insert(ino, Inode::default());
        ino
    }

    fn gc(&mut self, ino: Ino) {
        if !self.dirs.values().any(|d| d.references(ino)) {
            self.inodes.remove(&ino);
        }
    }
}

impl SimFile {
    fn with_inode<T>(&self, op: FsOp, f: impl FnOnce(&mut Inode) -> T) -> io::Result<T> {
        let mut st = self.fs.lock();
        if st.epoch != self.epoch {
            return Err(io::Error::other(
                "file handle from before a simulated crash",
            ));
        }
        st.check_io(op)?;
        let inode = st
            .inodes
            .get_mut(&self.ino)
            .ok_or_else(|| io::Error::other("simulated inode vanished"))?;
        Ok(f(inode))
    }
}

impl StorageFile for SimFile {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.with_inode(FsOp::Write, |i| i.data.extend_from_slice(buf))
    }
    fn sync(&mut self) -> io::Result<()> {
        let before = self.with_inode(FsOp::Sync, |i| {
            std::mem::replace(&mut i.synced, i.data.len())
        })?;
        self.fs.lock().last_sync = Some((self.ino, before));
        Ok(())
    }
    fn len(&self) -> u64 {
        let st = self.fs.lock();
        st.inodes.get(&self.ino).map_or(0, |i| i.data.len() as u64)
    }
}

impl Fs for SimFs {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut st = self.lock();
        for d in dir.ancestors() {
            st.dirs.entry(d.to_path_buf()).or_default();
        }
        Ok(())
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let st = self.lock();
        let d = st.dirs.get(dir).ok_or_else(|| not_found(dir))?;
        Ok(d.live.keys().cloned().collect())
    }
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let st = self.lock();
        let ino = st.lookup(path)?;
        Ok(st
            .inodes
            .get(&ino)
            .map(|i| i.data.clone())
            .unwrap_or_default())
    }
    fn open_append(&self, path: &Path, create: bool) -> io::Result<Box<dyn StorageFile>> {
        let mut st = self.lock();
        let ino = match st.lookup(path) {
            Ok(ino) => ino,
            Err(e) if !create => return Err(e),
            Err(_) => {
                st.check_io(FsOp::Create)?;
                let (dir, name) = split(path)?;
                st.dir_mut(dir)?;
                let ino = st.new_inode();
                st.dir_mut(dir)?.link(name, ino);
                ino
            }
        };
        let epoch = st.epoch;
        drop(st);
        Ok(Box::new(SimFile {
            fs: self.clone(),
            ino,
            epoch,
        }))
    }
    fn create(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        let mut st = self.lock();
        st.check_io(FsOp::Create)?;
        let (dir, name) = split(path)?;
        st.dir_mut(dir)?;
        // A fresh inode: the old file (if any) stays reachable from the durable directory
        // until the directory is synced, like O_TRUNC's metadata change not yet on disk.
        let ino = st.new_inode();
        if let Some(old) = st.dir_mut(dir)?.link(name, ino) {
            st.gc(old);
        }
        let epoch = st.epoch;
        drop(st);
        Ok(Box::new(SimFile {
            fs: self.clone(),
            ino,
            epoch,
        }))
    }
    fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        let mut st = self.lock();
        st.check_io(FsOp::Truncate)?;
        let ino = st.lookup(path)?;
        let len = usize::try_from(len).map_err(io::Error::other)?;
        if let Some(inode) = st.inodes.get_mut(&ino) {
            inode.data.resize(len, 0);
            inode.synced = len;
        }
        Ok(())
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut st = self.lock();
        st.check_io(FsOp::Rename)?;
        let ino = st.lookup(from)?;
        let (from_dir, from) = split(from)?;
        let (to_dir, to) = split(to)?;
        if from_dir != to_dir {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "SimFs renames only within one directory",
            ));
        }
        let d = st.dir_mut(from_dir)?;
        d.live.remove(&from);
        let old = d.live.insert(to.clone(), ino);
        d.pending.push(DirOp::Rename { from, to, ino });
        if let Some(old) = old.filter(|&o| o != ino) {
            st.gc(old);
        }
        Ok(())
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut st = self.lock();
        st.check_io(FsOp::Remove)?;
        let ino = st.lookup(path)?;
        let (dir, name) = split(path)?;
        st.dir_mut(dir)?.unlink(&name);
        st.gc(ino);
        Ok(())
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut st = self.lock();
        st.check_io(FsOp::SyncDir)?;
        st.dir_mut(dir)?.sync();
        let inos: Vec<Ino> = st.inodes.keys().copied().collect();
        for ino in inos {
            st.gc(ino);
        }
        Ok(())
    }
    fn exists(&self, path: &Path) -> io::Result<bool> {
        Ok(self.lock().lookup(path).is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> PathBuf {
        PathBuf::from(s)
    }

    fn setup() -> SimFs {
        let fs = SimFs::new();
        fs.create_dir_all(&p("/d")).expect("mkdir");
        fs
    }

    #[test]
    fn unsynced_data_is_lost_synced_data_survives() {
        let fs = setup();
        let mut f = fs.open_append(&p("/d/a"), true).expect("open");
        f.write_all(b"hello").expect("write");
        f.sync().expect("sync");
        fs.sync_dir(&p("/d")).expect("sync dir");
        f.write_all(b" world").expect("write");
        assert_eq!(fs.read(&p("/d/a")).expect("read"), b"hello world");
        assert_eq!(f.len(), 11);
        fs.crash();
        assert_eq!(fs.read(&p("/d/a")).expect("read"), b"hello");
        assert!(f.write_all(b"x").is_err(), "stale handle must fail");
    }

    #[test]
    fn file_in_unsynced_dir_vanishes_even_if_fsynced() {
        let fs = setup();
        let mut f = fs.open_append(&p("/d/a"), true).expect("open");
        f.write_all(b"data").expect("write");
        f.sync().expect("sync");
        fs.crash();
        assert!(!fs.exists(&p("/d/a")).expect("exists"));
        assert!(fs.list(&p("/d")).expect("list").is_empty());
    }

    #[test]
    fn unsynced_rename_and_remove_revert() {
        let fs = setup();
        let mut f = fs.create(&p("/d/a")).expect("create");
        f.write_all(b"A").expect("write");
        f.sync().expect("sync");
        fs.sync_dir(&p("/d")).expect("sync dir");
        fs.rename(&p("/d/a"), &p("/d/b")).expect("rename");
        assert_eq!(fs.list(&p("/d")).expect("list"), vec!["b".to_string()]);
        fs.crash();
        assert_eq!(fs.list(&p("/d")).expect("list"), vec!["a".to_string()]);
        assert_eq!(fs.read(&p("/d/a")).expect("read"), b"A");

        fs.remove(&p("/d/a")).expect("remove");
        assert!(!fs.exists(&p("/d/a")).expect("exists"));
        fs.crash();
        assert_eq!(fs.read(&p("/d/a")).expect("read"), b"A");

        fs.rename(&p("/d/a"), &p("/d/b")).expect("rename");
        fs.sync_dir(&p("/d")).expect("sync dir");
        fs.crash();
        assert_eq!(fs.list(&p("/d")).expect("list"), vec!["b".to_string()]);
    }

    #[test]
    fn rename_over_existing_file_reverts_to_old_content() {
        let fs = setup();
        for (name, content) in [("cur", b"old"), ("tmp", b"new")] {
            let mut f = fs.create(&p(&format!("/d/{name}"))).expect("create");
            f.write_all(content).expect("write");
            f.sync().expect("sync");
        }
        fs.sync_dir(&p("/d")).expect("sync dir");
        fs.rename(&p("/d/tmp"), &p("/d/cur")).expect("rename");
        assert_eq!(fs.read(&p("/d/cur")).expect("read"), b"new");
        fs.crash();
        assert_eq!(fs.read(&p("/d/cur")).expect("read"), b"old");
        assert_eq!(fs.read(&p("/d/tmp")).expect("read"), b"new");
    }

    #[test]
    fn truncate_is_durable_and_create_replaces() {
        let fs = setup();
        let mut f = fs.create(&p("/d/a")).expect("create");
        f.write_all(b"abcdef").expect("write");
        f.sync().expect("sync");
        fs.sync_dir(&p("/d")).expect("sync dir");
        fs.truncate(&p("/d/a"), 3).expect("truncate");
        fs.crash();
        assert_eq!(fs.read(&p("/d/a")).expect("read"), b"abc");
        let mut g = fs.create(&p("/d/a")).expect("create");
        assert!(g.is_empty());
        g.write_all(b"z").expect("write");
        assert_eq!(fs.read(&p("/d/a")).expect("read"), b"z");
    }

    /// A power loss during the last fsync: that fsync's data is an unsynced tail (torn),
    /// what earlier fsyncs made durable survives; with any other operation after the
    /// fsync, it is a plain torn crash.
    /// `/d/a` holding "base", synced with its directory entry; open for appending.
    fn synced_base(fs: &SimFs) -> Box<dyn StorageFile> {
        fs.create_dir_all(&p("/d")).expect("mkdir");
        let mut f = fs.open_append(&p("/d/a"), true).expect("open");
        f.write_all(b"base").expect("write");
        f.sync().expect("sync");
        fs.sync_dir(&p("/d")).expect("sync dir");
        f
    }

    #[test]
    fn a_power_loss_in_the_last_fsync_finds_it_unfinished() {
        let mut undone = 0;
        for seed in 0..32 {
            let fs = SimFs::new();
            let mut f = synced_base(&fs);
            f.write_all(&[7u8; SECTOR * 2]).expect("write");
            f.sync().expect("sync");
            if fs.crash_torn_in_sync(seed) {
                undone += 1;
            }
            let got = fs.read(&p("/d/a")).expect("read");
            assert_eq!(
                &got[..4],
                b"base",
                "seed {seed}: an earlier fsync's data survives"
            );
            assert!(got.len() <= 4 + SECTOR * 2, "seed {seed}");
            assert!(got[4..].iter().all(|&b| b == 0 || b == 7), "seed {seed}");
        }
        assert_eq!(undone, 32, "the last operation was an fsync each time");
        // Not the last operation any more: the fsync completed.
        let fs = SimFs::new();
        synced_base(&fs);
        assert!(!fs.crash_torn_in_sync(1));
        assert_eq!(fs.read(&p("/d/a")).expect("read"), b"base");
    }

    #[test]
    fn torn_writes_keep_a_prefix_of_the_tail_with_sectors_lost_out_of_order() {
        // "base" synced, then three and a half sectors unsynced.
        let written: Vec<u8> = (0..SECTOR * 7 / 2).map(|i| (i % 251) as u8 + 1).collect();
        let mut lengths = std::collections::BTreeSet::new();
        let mut hole_before_data = 0;
        for seed in 0..64 {
            let fs = SimFs::with_torn_writes(seed);
            let mut f = synced_base(&fs);
            f.write_all(&written).expect("write");
            fs.crash();
            let got = fs.read(&p("/d/a")).expect("read");
            assert!(got.len() >= 4 && got.len() <= 4 + written.len());
            assert_eq!(&got[..4], b"base", "synced bytes survive");
            // Every sector of the kept tail (aligned on file offsets) is whole or zeros.
            let mut at = 4;
            let mut zeroed = Vec::new();
            while at < got.len() {
                let next = ((at / SECTOR + 1) * SECTOR).min(got.len());
                let want = &written[at - 4..next - 4];
                let sector = &got[at..next];
                assert!(
                    sector == want || sector.iter().all(|&b| b == 0),
                    "seed {seed}"
                );
                zeroed.push(sector != want);
                at = next;
            }
            if zeroed.iter().position(|&z| z) < zeroed.iter().rposition(|&z| !z) {
                hole_before_data += 1;
            }
            lengths.insert(got.len());
            // After a crash the surviving bytes are the durable state.
            fs.crash();
            assert_eq!(fs.read(&p("/d/a")).expect("read"), got);
        }
        assert!(lengths.len() > 3, "torn mode should vary: {lengths:?}");
        assert!(
            hole_before_data > 0,
            "a lost sector before an intact one must occur"
        );
    }

    #[test]
    fn one_torn_crash_does_not_switch_the_mode_on() {
        let fs = SimFs::new();
        synced_base(&fs);
        let mut kept = std::collections::BTreeSet::new();
        for seed in 0..16 {
            let len = fs.read(&p("/d/a")).expect("read").len();
            let mut f = fs.open_append(&p("/d/a"), true).expect("open");
            f.write_all(&[7u8; 100]).expect("write");
            fs.crash_torn(seed);
            kept.insert(fs.read(&p("/d/a")).expect("read").len() > len);
            // Back to strict: the unsynced tail goes.
            let before = fs.read(&p("/d/a")).expect("read");
            let mut f = fs.open_append(&p("/d/a"), true).expect("open");
            f.write_all(b"x").expect("write");
            fs.crash();
            assert_eq!(fs.read(&p("/d/a")).expect("read"), before);
        }
        assert!(kept.contains(&true), "torn crashes keep unsynced bytes");
    }

    #[test]
    fn torn_mode_keeps_a_random_subset_of_directory_operations() {
        let mut outcomes = std::collections::BTreeSet::new();
        for seed in 0..64 {
            let fs = SimFs::with_torn_writes(seed);
            fs.create_dir_all(&p("/d")).expect("mkdir");
            let mut f = fs.create(&p("/d/old")).expect("create");
            f.write_all(b"content").expect("write");
            f.sync().expect("sync");
            fs.sync_dir(&p("/d")).expect("sync dir");
            fs.create(&p("/d/x")).expect("create");
            fs.rename(&p("/d/old"), &p("/d/new")).expect("rename");
            fs.crash();
            let names = fs.list(&p("/d")).expect("list");
            let has = |n: &str| names.iter().any(|m| m == n);
            assert!(has("old") != has("new"), "rename is atomic: {names:?}");
            let survivor = if has("old") { "/d/old" } else { "/d/new" };
            assert_eq!(fs.read(&p(survivor)).expect("read"), b"content");
            outcomes.insert(names);
        }
        assert_eq!(outcomes.len(), 4, "{outcomes:?}");
    }

    #[test]
    fn missing_dir_and_file_are_errors_and_fail_after_fails() {
        let fs = setup();
        assert!(fs.open_append(&p("/nope/a"), true).is_err());
        assert!(fs.open_append(&p("/d/a"), false).is_err());
        assert!(fs.read(&p("/d/a")).is_err());
        let mut f = fs.open_append(&p("/d/a"), true).expect("open");
        fs.fail_after(Some(2));
        f.write_all(b"x").expect("first op");
        f.sync().expect("second op");
        assert!(f.write_all(b"y").is_err());
        assert!(fs.sync_dir(&p("/d")).is_err());
        fs.fail_after(None);
        f.write_all(b"z").expect("write");
        assert_eq!(fs.read(&p("/d/a")).expect("read"), b"xz");
    }

    #[test]
    fn a_trap_fires_at_the_drawn_operation_and_a_dying_one_fails_what_follows() {
        let fs = setup();
        let mut f = fs.create(&p("/d/a")).expect("create");
        // Let two syncs pass; the third fires the trap, completes, and kills the rest.
        fs.set_trap(FsOp::Sync, 2, true);
        for _ in 0..2 {
            f.write_all(b"x").expect("write");
            f.sync().expect("sync");
        }
        f.write_all(b"y").expect("write");
        assert_eq!(fs.count(FsOp::Sync), 2);
        f.sync().expect("the trapped sync itself completes");
        assert!(f.write_all(b"z").is_err() && f.sync().is_err());
        assert!(fs.rename(&p("/d/a"), &p("/d/b")).is_err());
        assert_eq!(fs.durable_content(&p("/d/a")), None, "never synced dir");
        assert_eq!(fs.read(&p("/d/a")).expect("read"), b"xxy");
        assert_eq!(fs.clear_trap(), Some(TrapState::Fired));
        assert_eq!(fs.clear_trap(), None);
        f.write_all(b"z").expect("a cleared trap fails nothing");
        assert_eq!((fs.count(FsOp::Sync), fs.count(FsOp::Write)), (3, 4));
        assert_eq!(fs.syncs(), 3);
        // A trap that does not die only records; one not reached says how far it is.
        fs.set_trap(FsOp::Rename, 0, false);
        fs.rename(&p("/d/a"), &p("/d/b")).expect("rename");
        fs.sync_dir(&p("/d")).expect("later operations still work");
        assert_eq!(fs.clear_trap(), Some(TrapState::Fired));
        fs.set_trap(FsOp::Truncate, 5, true);
        fs.truncate(&p("/d/b"), 1).expect("truncate");
        assert_eq!(fs.clear_trap(), Some(TrapState::Pending(4)));
        assert_eq!(fs.syncs(), 5);
    }

    #[test]
    fn real_fs_basic_operations() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let fs = RealFs;
        let dir = tmp.path().join("sub");
        fs.create_dir_all(&dir).expect("mkdir");
        let a = dir.join("a");
        let mut f = fs.open_append(&a, true).expect("open");
        f.write_all(b"hello").expect("write");
        f.sync().expect("sync");
        fs.sync_dir(&dir).expect("sync dir");
        let mut f = fs.open_append(&a, false).expect("reopen");
        assert_eq!(f.len(), 5);
        f.write_all(b"!").expect("write");
        assert_eq!(fs.read(&a).expect("read"), b"hello!");
        fs.truncate(&a, 2).expect("truncate");
        assert_eq!(fs.read(&a).expect("read"), b"he");
        fs.rename(&a, &dir.join("b")).expect("rename");
        assert_eq!(fs.list(&dir).expect("list"), vec!["b".to_string()]);
        assert!(!fs.exists(&a).expect("exists"));
        fs.remove(&dir.join("b")).expect("remove");
        assert!(fs.list(&dir).expect("list").is_empty());
    }
}

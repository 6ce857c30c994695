//! The durability model of the disk-fault filesystem, without FUSE.
//!
//! Design: the backing directory always holds the *latest* state (what a process reading
//! the file sees), and the store keeps what it needs to undo everything that is not yet
//! durable:
//!
//! - per file, an undo log of its unsynced data operations (each write keeps its new
//!   bytes and the pre-image of the range it covered; each size change keeps the old
//!   size and the bytes it cut off). `fsync`/`fdatasync` of the file clears its log.
//! - per directory changed since its last `fsync`, the listing it had at that fsync (name
//!   to inode). An unlinked or replaced file is moved to a trash directory, not deleted,
//!   so a listing that still names it can bring it back.
//!
//! A power loss ([`Store::lose_unfsynced`]) undoes every file's log (the torn variant then
//! re-applies a random subset of the writes, in order: page writeback is not ordered),
//! then rebuilds the tree from the durable listings.
//!
//! Why "backing = latest + undo" rather than "backing = durable + dirty overlay in
//! memory": reads, `getattr`, `readdir` and mmap are then plain pass-through with no
//! overlay merging on the hot path, the node's reads are exactly those of the real
//! filesystem, and the cost of the fault is paid only by writes (one pre-image read) and
//! by the rare power loss. Memory holds only the unsynced writes (twice: new bytes and
//! pre-image), which the nodes bound by fsyncing every batch.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::{OsStr, OsString};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use rand::seq::IndexedRandom;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// The FUSE inode number of the root directory.
pub const ROOT: u64 = 1;

/// One unsynced data operation on a file, with what undoes it.
#[derive(Clone, Debug)]
struct DataOp {
    off: u64,
    /// `Some(bytes)`: a write at `off`; `None`: the size was set to `off`.
    new: Option<Vec<u8>>,
    /// The bytes in the covered range before the operation (only those below `old_size`).
    pre: Vec<u8>,
    old_size: u64,
}

impl DataOp {
    fn bytes(&self) -> u64 {
        match &self.new {
            Some(b) => b.len() as u64,
            None => self.old_size.abs_diff(self.off),
        }
    }
}

/// What a simulated power loss dropped.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Loss {
    /// Files whose contents reverted.
    pub files: usize,
    /// Unsynced data operations (writes and size changes) undone.
    pub ops_dropped: usize,
    /// Of those, bytes written or cut that were undone.
    pub bytes_dropped: u64,
    /// Unsynced operations kept by the torn variant.
    pub ops_kept: usize,
    /// Directory entries that appeared, vanished or changed inode by the revert.
    pub entries_reverted: usize,
}

/// What [`Store::corrupt`] did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Corruption {
    /// Path inside the data directory.
    pub file: String,
    /// `flip-bits`, `truncate` or `zero-range`.
    pub how: String,
    pub offset: u64,
    pub len: u64,
    pub size_before: u64,
}

/// The durability bookkeeping over one backing directory (`<base>/root` is what the
/// mount shows, `<base>/trash` keeps unlinked files a durable listing may still name).
pub struct Store {
    base: PathBuf,
    root_st_ino: u64,
    /// Inode to path relative to `base` (`root/...` or `trash/...`).
    paths: HashMap<u64, PathBuf>,
    logs: HashMap<u64, Vec<DataOp>>,
    /// Directories changed since their last fsync: their listing at that fsync.
    snaps: HashMap<u64, BTreeMap<OsString, u64>>,
    trash_seq: u64,
    /// The last corrupted file (relative to root) and its contents before.
    corrupted: Option<(PathBuf, Vec<u8>)>,
}

fn enoent() -> io::Error {
    io::Error::from_raw_os_error(nix::libc::ENOENT)
}

impl Store {
    /// Opens (creating) a store over `base`, whose `root` starts as the durable state.
    pub fn open(base: &Path) -> io::Result<Store> {
        fs::create_dir_all(base.join("root"))?;
        let _ = fs::remove_dir_all(base.join("trash"));
        let _ = fs::remove_dir_all(base.join("rebuild"));
        fs::create_dir_all(base.join("trash"))?;
        let root_st_ino = fs::metadata(base.join("root"))?.ino();
        let mut paths = HashMap::new();
        paths.insert(ROOT, PathBuf::from("root"));
        Ok(Store {
            base: base.to_owned(),
            root_st_ino,
            paths,
            logs: HashMap::new(),
            snaps: HashMap::new(),
            trash_seq: 0,
            corrupted: None,
        })
    }

    /// The directory the mount shows.
    pub fn root_dir(&self) -> PathBuf {
        self.base.join("root")
    }

    fn ino_of(&self, meta: &fs::Metadata) -> u64 {
        if meta.ino() == self.root_st_ino {
            ROOT
        } else {
            meta.ino() + 1
        }
    }

    /// Absolute backing path of an inode.
    pub fn path(&self, ino: u64) -> io::Result<PathBuf> {
        self.paths
            .get(&ino)
            .map(|p| self.base.join(p))
            .ok_or_else(enoent)
    }

    fn rel_child(&self, parent: u64, name: &OsStr) -> io::Result<PathBuf> {
        Ok(self.paths.get(&parent).ok_or_else(enoent)?.join(name))
    }

    /// Looks `name` up in directory `parent`.
    pub fn lookup(&mut self, parent: u64, name: &OsStr) -> io::Result<(u64, fs::Metadata)> {
        let rel = self.rel_child(parent, name)?;
        let meta = fs::symlink_metadata(self.base.join(&rel))?;
        let ino = self.ino_of(&meta);
        self.paths.insert(ino, rel);
        Ok((ino, meta))
    }

    pub fn getattr(&self, ino: u64) -> io::Result<(u64, fs::Metadata)> {
        let meta = fs::symlink_metadata(self.path(ino)?)?;
        Ok((ino, meta))
    }

    /// The entries of a directory (name, inode, metadata), registering their paths.
    pub fn readdir(&mut self, ino: u64) -> io::Result<Vec<(OsString, u64, fs::Metadata)>> {
        let rel = self.paths.get(&ino).ok_or_else(enoent)?.clone();
        let mut out = Vec::new();
        for e in fs::read_dir(self.base.join(&rel))? {
            let e = e?;
            let meta = e.metadata()?;
            let child = self.ino_of(&meta);
            self.paths.insert(child, rel.join(e.file_name()));
            out.push((e.file_name(), child, meta));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    fn listing(&self, dir: &Path) -> io::Result<BTreeMap<OsString, u64>> {
        let mut out = BTreeMap::new();
        for e in fs::read_dir(dir)? {
            let e = e?;
            out.insert(e.file_name(), self.ino_of(&e.metadata()?));
        }
        Ok(out)
    }

    /// Records the listing of `dir` before its first change since its last fsync.
    fn before_dir_change(&mut self, dir: u64) -> io::Result<()> {
        if !self.snaps.contains_key(&dir) {
            let l = self.listing(&self.path(dir)?)?;
            self.snaps.insert(dir, l);
        }
        Ok(())
    }

    /// Creates a regular file (failing if it exists) and opens it read-write.
    pub fn create(
        &mut self,
        parent: u64,
        name: &OsStr,
        mode: u32,
    ) -> io::Result<(u64, fs::Metadata, File)> {
        self.before_dir_change(parent)?;
        let rel = self.rel_child(parent, name)?;
        let f = {
            use std::os::unix::fs::OpenOptionsExt;
            OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .mode(mode)
                .open(self.base.join(&rel))?
        };
        let meta = f.metadata()?;
        let ino = self.ino_of(&meta);
        self.paths.insert(ino, rel);
        self.logs.remove(&ino);
        Ok((ino, meta, f))
    }

    pub fn mkdir(
        &mut self,
        parent: u64,
        name: &OsStr,
        mode: u32,
    ) -> io::Result<(u64, fs::Metadata)> {
        self.before_dir_change(parent)?;
        let rel = self.rel_child(parent, name)?;
        {
            use std::os::unix::fs::DirBuilderExt;
            fs::DirBuilder::new()
                .mode(mode)
                .create(self.base.join(&rel))?;
        }
        let meta = fs::symlink_metadata(self.base.join(&rel))?;
        let ino = self.ino_of(&meta);
        self.paths.insert(ino, rel);
        // A new directory has no durable entries.
        self.snaps.insert(ino, BTreeMap::new());
        Ok((ino, meta))
    }

    /// Moves `rel` into the trash, keeping it for a durable listing that still names it.
    fn move_to_trash(&mut self, rel: &Path) -> io::Result<()> {
        let meta = fs::symlink_metadata(self.base.join(rel))?;
        let ino = self.ino_of(&meta);
        self.trash_seq += 1;
        let t = PathBuf::from("trash").join(format!("{}", self.trash_seq));
        fs::rename(self.base.join(rel), self.base.join(&t))?;
        self.rewrite_paths(rel, &t);
        self.paths.insert(ino, t);
        Ok(())
    }

    pub fn unlink(&mut self, parent: u64, name: &OsStr) -> io::Result<()> {
        let rel = self.rel_child(parent, name)?;
        let meta = fs::symlink_metadata(self.base.join(&rel))?;
        if meta.is_dir() {
            return Err(io::Error::from_raw_os_error(nix::libc::EISDIR));
        }
        self.before_dir_change(parent)?;
        self.move_to_trash(&rel)
    }

    pub fn rmdir(&mut self, parent: u64, name: &OsStr) -> io::Result<()> {
        let rel = self.rel_child(parent, name)?;
        let meta = fs::symlink_metadata(self.base.join(&rel))?;
        if !meta.is_dir() {
            return Err(io::Error::from_raw_os_error(nix::libc::ENOTDIR));
        }
        if fs::read_dir(self.base.join(&rel))?.next().is_some() {
            return Err(io::Error::from_raw_os_error(nix::libc::ENOTEMPTY));
        }
        self.before_dir_change(parent)?;
        self.move_to_trash(&rel)
    }

    /// Renames (replacing a destination file or empty directory); `noreplace` fails with
    /// EEXIST if the destination exists.
    pub fn rename(
        &mut self,
        parent: u64,
        name: &OsStr,
        newparent: u64,
        newname: &OsStr,
        noreplace: bool,
    ) -> io::Result<()> {
        let from = self.rel_child(parent, name)?;
        let to = self.rel_child(newparent, newname)?;
        let src = fs::symlink_metadata(self.base.join(&from))?;
        if from == to {
            return Ok(());
        }
        let dst = fs::symlink_metadata(self.base.join(&to)).ok();
        if let Some(d) = &dst {
            if noreplace {
                return Err(io::Error::from_raw_os_error(nix::libc::EEXIST));
            }
            if d.is_dir() != src.is_dir() {
                return Err(io::Error::from_raw_os_error(if d.is_dir() {
                    nix::libc::EISDIR
                } else {
                    nix::libc::ENOTDIR
                }));
            }
            if d.is_dir() && fs::read_dir(self.base.join(&to))?.next().is_some() {
                return Err(io::Error::from_raw_os_error(nix::libc::ENOTEMPTY));
            }
        }
        if src.is_dir() && to.starts_with(&from) {
            return Err(io::Error::from_raw_os_error(nix::libc::EINVAL));
        }
        self.before_dir_change(parent)?;
        self.before_dir_change(newparent)?;
        if dst.is_some() {
            self.move_to_trash(&to)?;
        }
        fs::rename(self.base.join(&from), self.base.join(&to))?;
        self.rewrite_paths(&from, &to);
        Ok(())
    }

    fn rewrite_paths(&mut self, from: &Path, to: &Path) {
        for p in self.paths.values_mut() {
            if let Ok(rest) = p.strip_prefix(from) {
                *p = if rest.as_os_str().is_empty() {
                    to.to_owned()
                } else {
                    to.join(rest)
                };
            }
        }
    }

    /// Opens an inode's backing file.
    pub fn open_file(&self, ino: u64, write: bool) -> io::Result<File> {
        OpenOptions::new()
            .read(true)
            .write(write)
            .open(self.path(ino)?)
    }

    /// Writes through `f` (the backing file of `ino`), logging the undo.
    pub fn write(&mut self, ino: u64, f: &File, off: u64, data: &[u8]) -> io::Result<usize> {
        let old_size = f.metadata()?.len();
        let pre = read_range(f, off, data.len() as u64, old_size)?;
        f.write_all_at(data, off)?;
        self.logs.entry(ino).or_default().push(DataOp {
            off,
            new: Some(data.to_vec()),
            pre,
            old_size,
        });
        Ok(data.len())
    }

    /// Sets the size of `ino` (truncate, ftruncate, or extending fallocate), logging the
    /// undo.
    pub fn set_len(&mut self, ino: u64, f: &File, size: u64) -> io::Result<()> {
        let old_size = f.metadata()?.len();
        if old_size == size {
            return Ok(());
        }
        let pre = if size < old_size {
            read_range(f, size, old_size - size, old_size)?
        } else {
            Vec::new()
        };
        f.set_len(size)?;
        self.logs.entry(ino).or_default().push(DataOp {
            off: size,
            new: None,
            pre,
            old_size,
        });
        Ok(())
    }

    /// `fsync`/`fdatasync` of a file: its contents become durable.
    pub fn fsync_file(&mut self, ino: u64) {
        self.logs.remove(&ino);
    }

    /// `fsync` of a directory: its entries become durable.
    pub fn fsync_dir(&mut self, ino: u64) {
        if self.snaps.remove(&ino).is_some() {
            self.collect_trash();
        }
    }

    /// Deletes trashed inodes that no durable listing names any more.
    fn collect_trash(&mut self) {
        let named: BTreeSet<u64> = self
            .snaps
            .values()
            .flat_map(|l| l.values().copied())
            .collect();
        let dead: Vec<(u64, PathBuf)> = self
            .paths
            .iter()
            .filter(|(ino, p)| {
                p.components().count() == 2 && p.starts_with("trash") && !named.contains(ino)
            })
            .map(|(i, p)| (*i, p.clone()))
            .collect();
        for (ino, p) in dead {
            let full = self.base.join(&p);
            let _ = fs::remove_dir_all(&full).or_else(|_| fs::remove_file(&full));
            self.paths.remove(&ino);
            self.logs.remove(&ino);
        }
    }

    /// Unsynced data operations and changed directories right now.
    pub fn pending(&self) -> (usize, usize) {
        (self.logs.values().map(Vec::len).sum(), self.snaps.len())
    }

    /// Everything becomes durable (the kernel flushed before the machine went down).
    pub fn sync_all(&mut self) {
        self.logs.clear();
        self.snaps.clear();
        self.collect_trash();
    }

    /// A power loss: every file reverts to its last fsynced contents and every directory
    /// to its entries at its last fsync. `torn`: a seed; each unsynced data operation is
    /// then kept with probability 1/2 (re-applied in order over the durable contents).
    pub fn lose_unfsynced(&mut self, torn: Option<u64>) -> io::Result<Loss> {
        let mut loss = Loss::default();
        let mut rng = torn.map(ChaCha8Rng::seed_from_u64);
        let mut logs: Vec<(u64, Vec<DataOp>)> = self.logs.drain().collect();
        logs.sort_by_key(|(ino, _)| *ino);
        for (ino, ops) in logs {
            let Ok(path) = self.path(ino) else { continue };
            let Ok(f) = OpenOptions::new().read(true).write(true).open(&path) else {
                continue;
            };
            for op in ops.iter().rev() {
                f.set_len(op.old_size.max(op.off + op.pre.len() as u64))?;
                f.write_all_at(&op.pre, op.off)?;
                f.set_len(op.old_size)?;
            }
            loss.files += 1;
            for op in &ops {
                let keep = rng.as_mut().is_some_and(|r| r.random_bool(0.5));
                if keep {
                    match &op.new {
                        Some(b) => f.write_all_at(b, op.off)?,
                        None => f.set_len(op.off)?,
                    }
                    loss.ops_kept += 1;
                } else {
                    loss.ops_dropped += 1;
                    loss.bytes_dropped += op.bytes();
                }
            }
        }
        if !self.snaps.is_empty() {
            loss.entries_reverted = self.rebuild()?;
        }
        Ok(loss)
    }

    /// Rebuilds `root` from the durable listings; returns how many entries differed.
    fn rebuild(&mut self) -> io::Result<usize> {
        // First the whole durable tree (no moves yet: current listings are read from the
        // tree as it is), then it is materialized in `rebuild/` and swapped in.
        struct Entry {
            rel: PathBuf,
            ino: u64,
            dir: bool,
            mode: u32,
        }
        let mut changed = 0;
        for (dir, snap) in &self.snaps {
            if let Ok(p) = self.path(*dir)
                && let Ok(now) = self.listing(&p)
            {
                let names: BTreeSet<&OsString> = now.keys().chain(snap.keys()).collect();
                changed += names
                    .into_iter()
                    .filter(|n| now.get(*n) != snap.get(*n))
                    .count();
            } else {
                changed += snap.len();
            }
        }
        // Every inode's metadata, found by walking root and trash.
        let mut found: HashMap<u64, (PathBuf, fs::Metadata)> = HashMap::new();
        let mut stack = vec![PathBuf::from("root"), PathBuf::from("trash")];
        while let Some(rel) = stack.pop() {
            for e in fs::read_dir(self.base.join(&rel))? {
                let e = e?;
                let meta = e.metadata()?;
                let r = rel.join(e.file_name());
                if meta.is_dir() {
                    stack.push(r.clone());
                }
                found.insert(self.ino_of(&meta), (r, meta));
            }
        }
        let mut plan = Vec::new();
        let mut todo = vec![(ROOT, PathBuf::from("rebuild"))];
        let mut seen_dirs = BTreeSet::new();
        while let Some((dir, at)) = todo.pop() {
            if !seen_dirs.insert(dir) {
                continue;
            }
            let listing = match self.snaps.get(&dir) {
                Some(s) => s.clone(),
                None => match found.get(&dir) {
                    Some((rel, _)) => self.listing(&self.base.join(rel))?,
                    None if dir == ROOT => self.listing(&self.base.join("root"))?,
                    None => BTreeMap::new(),
                },
            };
            for (name, ino) in listing {
                let Some((_, meta)) = found.get(&ino) else {
                    continue;
                };
                let rel = at.join(&name);
                plan.push(Entry {
                    rel: rel.clone(),
                    ino,
                    dir: meta.is_dir(),
                    mode: meta.mode(),
                });
                if meta.is_dir() {
                    todo.push((ino, rel));
                }
            }
        }
        let _ = fs::remove_dir_all(self.base.join("rebuild"));
        fs::create_dir(self.base.join("rebuild"))?;
        plan.sort_by(|a, b| a.rel.cmp(&b.rel));
        let mut moved: HashMap<u64, PathBuf> = HashMap::new();
        for e in &plan {
            let dst = self.base.join(&e.rel);
            if e.dir {
                use std::os::unix::fs::DirBuilderExt;
                fs::DirBuilder::new().mode(e.mode).create(&dst)?;
            } else if let Some(first) = moved.get(&e.ino) {
                // Named by two durable listings (renamed between unsynced directories).
                fs::copy(self.base.join(first), &dst)?;
            } else {
                let (src, _) = &found[&e.ino];
                fs::rename(self.base.join(src), &dst)?;
                moved.insert(e.ino, e.rel.clone());
            }
        }
        fs::remove_dir_all(self.base.join("root"))?;
        fs::remove_dir_all(self.base.join("trash"))?;
        fs::rename(self.base.join("rebuild"), self.base.join("root"))?;
        fs::create_dir(self.base.join("trash"))?;
        self.root_st_ino = fs::metadata(self.base.join("root"))?.ino();
        self.paths.clear();
        self.paths.insert(ROOT, PathBuf::from("root"));
        self.snaps.clear();
        Ok(changed)
    }

    /// Damages one non-empty regular file under root, drawn from `seed`: flips bits in,
    /// truncates, or zeroes a range of it. Call with the node down. `None` when there is
    /// no non-empty file.
    pub fn corrupt(&mut self, seed: u64) -> io::Result<Option<Corruption>> {
        self.sync_all();
        let mut files = Vec::new();
        let mut stack = vec![PathBuf::new()];
        while let Some(rel) = stack.pop() {
            for e in fs::read_dir(self.root_dir().join(&rel))? {
                let e = e?;
                let meta = e.metadata()?;
                if meta.is_dir() {
                    stack.push(rel.join(e.file_name()));
                } else if meta.is_file() && meta.len() > 0 {
                    files.push((rel.join(e.file_name()), meta.len()));
                }
            }
        }
        files.sort();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let Some((rel, size)) = files.choose(&mut rng).cloned() else {
            return Ok(None);
        };
        let path = self.root_dir().join(&rel);
        let f = OpenOptions::new().read(true).write(true).open(&path)?;
        self.corrupted = Some((rel.clone(), read_range(&f, 0, size, size)?));
        let how = ["flip-bits", "truncate", "zero-range"][rng.random_range(0..3)];
        let (offset, len) = match how {
            "truncate" => {
                let to = rng.random_range(0..size);
                f.set_len(to)?;
                (to, size - to)
            }
            _ => {
                let off = rng.random_range(0..size);
                let len = rng.random_range(1..=(size - off).min(4096));
                let mut buf = read_range(&f, off, len, size)?;
                if how == "zero-range" {
                    buf.iter_mut().for_each(|b| *b = 0);
                } else {
                    // At least one bit per byte of the range changes.
                    for b in buf.iter_mut() {
                        *b ^= 1 << rng.random_range(0..8u32);
                    }
                }
                f.write_all_at(&buf, off)?;
                (off, len)
            }
        };
        f.sync_all()?;
        Ok(Some(Corruption {
            file: rel.display().to_string(),
            how: how.to_string(),
            offset,
            len,
            size_before: size,
        }))
    }
}

impl Store {
    /// Puts back the contents the last [`Store::corrupt`] damaged (a disk replaced from a
    /// backup). Returns the file's path inside the data directory, `None` if nothing was
    /// corrupted since the last undo.
    pub fn undo_corruption(&mut self) -> io::Result<Option<String>> {
        let Some((rel, bytes)) = self.corrupted.take() else {
            return Ok(None);
        };
        let f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(self.root_dir().join(&rel))?;
        f.write_all_at(&bytes, 0)?;
        f.sync_all()?;
        Ok(Some(rel.display().to_string()))
    }
}

/// The bytes of `[off, off+len)` that lie below `size`.
fn read_range(f: &File, off: u64, len: u64, size: u64) -> io::Result<Vec<u8>> {
    let end = (off + len).min(size);
    if end <= off {
        return Ok(Vec::new());
    }
    let mut buf = vec![0; (end - off) as usize];
    f.read_exact_at(&mut buf, off)?;
    Ok(buf)
}

#[cfg(test)]
mod tests;

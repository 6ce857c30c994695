//! The FUSE side: serves a [`Store`] to the kernel with `fuser`, in a background session
//! inside the harness process, so the nemesis drives the faults directly.
//!
//! Pass-through: reads, `getattr` and `readdir` go to the backing files; writes, size
//! changes and namespace changes go through the store, which logs their undo. No
//! writeback cache (every `write(2)` reaches us), no `direct_io` (so the kernel page
//! cache serves mmap reads; a handle is opened without `keep_cache`, so the cache is
//! dropped at every open, and attribute and entry timeouts are zero, so a restarted node
//! sees the state a loss left behind). Hard links, symlinks, device nodes and extended
//! attributes are not supported (our node and etcd use none of them).

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{self, File};
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner,
    OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty,
    ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow, WriteFlags,
};
use nix::libc;

use super::model::Store;

const TTL: Duration = Duration::ZERO;

/// Faults switched on and off while the filesystem runs, and what they did.
#[derive(Debug, Default)]
pub struct Controls {
    /// Writes, creates and size increases fail with ENOSPC.
    pub full: AtomicBool,
    /// Every fsync and fdatasync (files and directories) first sleeps this long.
    pub slow_ms: AtomicU64,
    /// Calls that failed with ENOSPC.
    pub enospc: AtomicU64,
    /// fsync calls served (files and directories).
    pub fsyncs: AtomicU64,
}

/// The filesystem the kernel talks to.
pub struct DiskFs {
    store: Arc<Mutex<Store>>,
    ctl: Arc<Controls>,
    handles: Mutex<HashMap<u64, Arc<File>>>,
    next_fh: AtomicU64,
}

fn errno(e: io::Error) -> Errno {
    match e.raw_os_error() {
        Some(n) => Errno::from_i32(n),
        None => Errno::EIO,
    }
}

fn attr(ino: u64, m: &fs::Metadata) -> FileAttr {
    let t = |s: i64, ns: i64| {
        if s >= 0 {
            UNIX_EPOCH + Duration::new(s as u64, ns as u32)
        } else {
            UNIX_EPOCH
        }
    };
    FileAttr {
        ino: INodeNo(ino),
        size: m.len(),
        blocks: m.blocks(),
        atime: t(m.atime(), m.atime_nsec()),
        mtime: t(m.mtime(), m.mtime_nsec()),
        ctime: t(m.ctime(), m.ctime_nsec()),
        crtime: t(m.ctime(), m.ctime_nsec()),
        kind: FileType::from_std(m.file_type()).unwrap_or(FileType::RegularFile),
        perm: (m.mode() & 0o7777) as u16,
        nlink: m.nlink() as u32,
        uid: m.uid(),
        gid: m.gid(),
        rdev: m.rdev() as u32,
        blksize: 4096,
        flags: 0,
    }
}

impl DiskFs {
    pub fn new(store: Arc<Mutex<Store>>, ctl: Arc<Controls>) -> DiskFs {
        DiskFs {
            store,
            ctl,
            handles: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
        }
    }

    fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn handle(&self, fh: FileHandle) -> Result<Arc<File>, Errno> {
        self.handles
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&fh.0)
            .cloned()
            .ok_or(Errno::EBADF)
    }

    fn add_handle(&self, f: File) -> FileHandle {
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        self.handles
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(fh, Arc::new(f));
        FileHandle(fh)
    }

    fn check_space(&self) -> Result<(), Errno> {
        if self.ctl.full.load(Ordering::Relaxed) {
            self.ctl.enospc.fetch_add(1, Ordering::Relaxed);
            return Err(Errno::ENOSPC);
        }
        Ok(())
    }

    fn slow(&self) {
        self.ctl.fsyncs.fetch_add(1, Ordering::Relaxed);
        let ms = self.ctl.slow_ms.load(Ordering::Relaxed);
        if ms > 0 {
            std::thread::sleep(Duration::from_millis(ms));
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn do_setattr(
        &self,
        ino: u64,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        fh: Option<FileHandle>,
    ) -> Result<FileAttr, Errno> {
        let path = self.store().path(ino).map_err(errno)?;
        if let Some(size) = size {
            let f = match fh {
                Some(fh) => self.handle(fh)?,
                None => Arc::new(self.store().open_file(ino, true).map_err(errno)?),
            };
            if size > f.metadata().map_err(errno)?.len() {
                self.check_space()?;
            }
            self.store().set_len(ino, &f, size).map_err(errno)?;
        }
        if let Some(mode) = mode {
            fs::set_permissions(&path, fs::Permissions::from_mode(mode & 0o7777)).map_err(errno)?;
        }
        if uid.is_some() || gid.is_some() {
            std::os::unix::fs::lchown(&path, uid, gid).map_err(errno)?;
        }
        if atime.is_some() || mtime.is_some() {
            let when = |t: TimeOrNow| match t {
                TimeOrNow::SpecificTime(t) => t,
                TimeOrNow::Now => SystemTime::now(),
            };
            let mut times = fs::FileTimes::new();
            if let Some(a) = atime {
                times = times.set_accessed(when(a));
            }
            if let Some(m) = mtime {
                times = times.set_modified(when(m));
            }
            File::open(&path)
                .and_then(|f| f.set_times(times))
                .map_err(errno)?;
        }
        let (ino, m) = self.store().getattr(ino).map_err(errno)?;
        Ok(attr(ino, &m))
    }
}

impl Filesystem for DiskFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match self.store().lookup(parent.0, name) {
            Ok((ino, m)) => reply.entry(&TTL, &attr(ino, &m), Generation(0)),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, fh: Option<FileHandle>, reply: ReplyAttr) {
        // An open handle answers even after its file was unlinked.
        let from_handle = fh
            .and_then(|fh| self.handle(fh).ok())
            .and_then(|f| f.metadata().ok());
        let got = match from_handle {
            Some(m) => Ok((ino.0, m)),
            None => self.store().getattr(ino.0),
        };
        match got {
            Ok((ino, m)) => reply.attr(&TTL, &attr(ino, &m)),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        match self.do_setattr(ino.0, mode, uid, gid, size, atime, mtime, fh) {
            Ok(a) => reply.attr(&TTL, &a),
            Err(e) => reply.error(e),
        }
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        if let Err(e) = self.check_space() {
            return reply.error(e);
        }
        match self.store().mkdir(parent.0, name, mode & !umask & 0o7777) {
            Ok((ino, m)) => reply.entry(&TTL, &attr(ino, &m), Generation(0)),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match self.store().unlink(parent.0, name) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match self.store().rmdir(parent.0, name) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let noreplace = flags.contains(RenameFlags::RENAME_NOREPLACE);
        if !(flags - RenameFlags::RENAME_NOREPLACE).is_empty() {
            return reply.error(Errno::EINVAL);
        }
        match self
            .store()
            .rename(parent.0, name, newparent.0, newname, noreplace)
        {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let write = flags.0 & libc::O_ACCMODE != libc::O_RDONLY;
        match self.store().open_file(ino.0, write) {
            Ok(f) => reply.opened(self.add_handle(f), FopenFlags::empty()),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        if let Err(e) = self.check_space() {
            return reply.error(e);
        }
        let mut store = self.store();
        let made = match store.create(parent.0, name, mode & !umask & 0o7777) {
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) && flags & libc::O_EXCL == 0 => {
                store.lookup(parent.0, name).and_then(|(ino, m)| {
                    let f = store.open_file(ino, true)?;
                    Ok((ino, m, f))
                })
            }
            other => other,
        };
        drop(store);
        match made {
            Ok((ino, m, f)) => {
                let fh = self.add_handle(f);
                reply.created(&TTL, &attr(ino, &m), Generation(0), fh, FopenFlags::empty())
            }
            Err(e) => reply.error(errno(e)),
        }
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let f = match self.handle(fh) {
            Ok(f) => f,
            Err(e) => return reply.error(e),
        };
        let mut buf = vec![0; size as usize];
        let mut n = 0;
        while n < buf.len() {
            match f.read_at(&mut buf[n..], offset + n as u64) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return reply.error(errno(e)),
            }
        }
        reply.data(&buf[..n]);
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        if let Err(e) = self.check_space() {
            return reply.error(e);
        }
        let f = match self.handle(fh) {
            Ok(f) => f,
            Err(e) => return reply.error(e),
        };
        match self.store().write(ino.0, &f, offset, data) {
            Ok(n) => reply.written(n as u32),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.handles
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&fh.0);
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        self.slow();
        let f = match self.handle(fh) {
            Ok(f) => f,
            Err(e) => return reply.error(e),
        };
        // The real fsync too, so a run with the mount pays what a run without it does.
        if let Err(e) = f.sync_data() {
            return reply.error(errno(e));
        }
        self.store().fsync_file(ino.0);
        reply.ok();
    }

    fn opendir(&self, _req: &Request, _ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        reply.opened(FileHandle(0), FopenFlags::empty());
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let entries = match self.store().readdir(ino.0) {
            Ok(e) => e,
            Err(e) => return reply.error(errno(e)),
        };
        let dots = [
            (ino.0, FileType::Directory, OsStr::new(".")),
            (ino.0, FileType::Directory, OsStr::new("..")),
        ];
        let all = dots
            .into_iter()
            .chain(entries.iter().map(|(name, child, m)| {
                (
                    *child,
                    FileType::from_std(m.file_type()).unwrap_or(FileType::RegularFile),
                    name.as_os_str(),
                )
            }));
        for (i, (child, kind, name)) in all.enumerate().skip(offset as usize) {
            if reply.add(INodeNo(child), i as u64 + 1, kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        self.slow();
        let path = match self.store().path(ino.0) {
            Ok(p) => p,
            Err(e) => return reply.error(errno(e)),
        };
        if let Err(e) = File::open(&path).and_then(|d| d.sync_all()) {
            return reply.error(errno(e));
        }
        self.store().fsync_dir(ino.0);
        reply.ok();
    }

    fn getxattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _name: &OsStr,
        _size: u32,
        reply: fuser::ReplyXattr,
    ) {
        reply.error(Errno::ENODATA);
    }

    fn listxattr(&self, _req: &Request, _ino: INodeNo, size: u32, reply: fuser::ReplyXattr) {
        if size == 0 {
            reply.size(0)
        } else {
            reply.data(&[])
        }
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let root = self.store().root_dir();
        match nix::sys::statvfs::statvfs(&root) {
            Ok(s) => {
                let full = self.ctl.full.load(Ordering::Relaxed);
                let free = |n: u64| if full { 0 } else { n };
                reply.statfs(
                    s.blocks(),
                    free(s.blocks_free()),
                    free(s.blocks_available()),
                    s.files(),
                    s.files_free(),
                    s.block_size() as u32,
                    s.name_max() as u32,
                    s.fragment_size() as u32,
                )
            }
            Err(e) => reply.error(Errno::from_i32(e as i32)),
        }
    }

    fn fallocate(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        use nix::fcntl::{FallocateFlags, fallocate};
        if mode & !libc::FALLOC_FL_KEEP_SIZE != 0 {
            return reply.error(Errno::EOPNOTSUPP);
        }
        if let Err(e) = self.check_space() {
            return reply.error(e);
        }
        let f = match self.handle(fh) {
            Ok(f) => f,
            Err(e) => return reply.error(e),
        };
        // Allocation changes no contents; extending the size is logged like a truncate.
        if mode == 0 {
            let size = match f.metadata() {
                Ok(m) => m.len(),
                Err(e) => return reply.error(errno(e)),
            };
            if offset + length > size
                && let Err(e) = self.store().set_len(ino.0, &f, offset + length)
            {
                return reply.error(errno(e));
            }
        }
        match fallocate(
            f.as_fd(),
            FallocateFlags::FALLOC_FL_KEEP_SIZE,
            offset as i64,
            length as i64,
        ) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(Errno::from_i32(e as i32)),
        }
    }
}

/// A mounted filesystem: its store and controls, unmounted on drop.
pub struct Mounted {
    pub store: Arc<Mutex<Store>>,
    pub ctl: Arc<Controls>,
    mountpoint: std::path::PathBuf,
    session: Option<fuser::BackgroundSession>,
}

impl Mounted {
    /// Mounts a store over `backing` at `mountpoint`, named `fsname` in /proc/mounts.
    pub fn mount(backing: &Path, mountpoint: &Path, fsname: &str) -> io::Result<Mounted> {
        let store = Arc::new(Mutex::new(Store::open(backing)?));
        let ctl = Arc::new(Controls::default());
        fs::create_dir_all(mountpoint)?;
        let mut config = fuser::Config::default();
        config.mount_options = vec![
            fuser::MountOption::FSName(fsname.to_owned()),
            fuser::MountOption::Subtype("stasis".into()),
            fuser::MountOption::NoDev,
            fuser::MountOption::NoSuid,
        ];
        // Slow fsyncs must not stall every other call.
        config.n_threads = Some(4);
        let fs = DiskFs::new(store.clone(), ctl.clone());
        let session = fuser::spawn_mount(fs, mountpoint, &config)?;
        Ok(Mounted {
            store,
            ctl,
            mountpoint: mountpoint.to_owned(),
            session: Some(session),
        })
    }

    /// The store (poisoning ignored: a panicked FUSE thread leaves consistent data).
    pub fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Unmounts and waits for the session thread.
    pub fn unmount(mut self) -> io::Result<()> {
        match self.session.take() {
            Some(s) => s.umount_and_join(),
            None => Ok(()),
        }
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if let Some(s) = self.session.take()
            && s.umount_and_join().is_err()
        {
            // Still busy (a process kept a file open): detach it instead.
            let _ = nix::mount::umount2(&self.mountpoint, nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

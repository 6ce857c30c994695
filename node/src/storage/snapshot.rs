//! One durable, atomically replaced blob (the state-machine snapshot and its metadata).
//!
//! File format of `<dir>/snapshot`: `b"STSNAP01"`, u64 LE payload length, u32 LE CRC32 of
//! (length bytes ‖ payload), payload.
//!
//! Invariants:
//! - [`SnapshotStore::save`] writes `snapshot.tmp`, fsyncs it, renames it over `snapshot`
//!   and fsyncs the directory. A crash at any point leaves either the previous snapshot
//!   or the new one, never a mix; after Ok the new one is durable.
//! - [`SnapshotStore::load`] returns exactly the bytes last saved, or an error naming the
//!   file if they fail validation (a damaged snapshot is never treated as absent).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::file::Fs;
use super::{Result, StorageError, checksum};

const MAGIC: &[u8; 8] = b"STSNAP01";
const HEADER_LEN: usize = 20;
const FILE_NAME: &str = "snapshot";
const TMP_NAME: &str = "snapshot.tmp";

/// Stores one snapshot in a directory.
pub struct SnapshotStore {
    fs: Arc<dyn Fs>,
    dir: PathBuf,
}

impl std::fmt::Debug for SnapshotStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotStore")
            .field("dir", &self.dir)
            .finish()
    }
}

impl SnapshotStore {
    /// Opens the store in `dir` (created if missing; a leftover temp file is removed).
    pub fn new(fs: Arc<dyn Fs>, dir: &Path) -> Result<Self> {
        let dir = dir.to_path_buf();
        fs.create_dir_all(&dir)
            .map_err(StorageError::io("create directory", &dir))?;
        let tmp = dir.join(TMP_NAME);
        if fs.exists(&tmp).map_err(StorageError::io("stat", &tmp))? {
            fs.remove(&tmp).map_err(StorageError::io("remove", &tmp))?;
        }
        // What a previous process left visible is what this one builds on: a process that
        // died between a snapshot's rename and the directory fsync leaves the new snapshot
        // visible but not durable, and the storage then rewrites its log on top of it
        // (finishing the compaction); a later power loss would take the snapshot and leave
        // a log that starts after it. Found by `stasis sim --faults persist`.
        fs.sync_dir(&dir).map_err(StorageError::io("fsync", &dir))?;
        Ok(SnapshotStore { fs, dir })
    }

    /// Path of the snapshot file.
    pub fn path(&self) -> PathBuf {
        self.dir.join(FILE_NAME)
    }

    /// Atomically and durably replaces the snapshot with `data`.
    pub fn save(&self, data: &[u8]) -> Result<()> {
        let tmp = self.dir.join(TMP_NAME);
        let path = self.path();
        let len = (data.len() as u64).to_le_bytes();
        let mut content = Vec::with_capacity(HEADER_LEN + data.len());
        content.extend_from_slice(MAGIC);
        content.extend_from_slice(&len);
        content.extend_from_slice(&checksum(&[&len, data]).to_le_bytes());
        content.extend_from_slice(data);
        let mut file = self
            .fs
            .create(&tmp)
            .map_err(StorageError::io("create", &tmp))?;
        file.write_all(&content)
            .map_err(StorageError::io("write", &tmp))?;
        file.sync().map_err(StorageError::io("fsync", &tmp))?;
        self.fs
            .rename(&tmp, &path)
            .map_err(StorageError::io("rename", &tmp))?;
        self.fs
            .sync_dir(&self.dir)
            .map_err(StorageError::io("fsync", &self.dir))
    }

    /// The last saved snapshot, `None` if none was ever saved.
    pub fn load(&self) -> Result<Option<Vec<u8>>> {
        let path = self.path();
        if !self
            .fs
            .exists(&path)
            .map_err(StorageError::io("stat", &path))?
        {
            return Ok(None);
        }
        let mut content = self
            .fs
            .read(&path)
            .map_err(StorageError::io("read", &path))?;
        if content.len() < HEADER_LEN || &content[..8] != MAGIC {
            return Err(StorageError::corrupt(&path, 0, "not a stasis snapshot"));
        }
        let mut len = [0u8; 8];
        len.copy_from_slice(&content[8..16]);
        let mut crc = [0u8; 4];
        crc.copy_from_slice(&content[16..20]);
        let want = u64::from_le_bytes(len);
        let have = (content.len() - HEADER_LEN) as u64;
        if want != have {
            return Err(StorageError::corrupt(
                &path,
                8,
                format!("header says {want} payload bytes, file has {have}"),
            ));
        }
        if checksum(&[&len, &content[HEADER_LEN..]]) != u32::from_le_bytes(crc) {
            return Err(StorageError::corrupt(&path, 16, "checksum mismatch"));
        }
        content.drain(..HEADER_LEN);
        Ok(Some(content))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::file::SimFs;

    fn store(fs: &SimFs) -> SnapshotStore {
        SnapshotStore::new(Arc::new(fs.clone()), Path::new("/data/snap")).expect("store")
    }

    #[test]
    fn empty_then_saved_then_replaced() {
        let fs = SimFs::new();
        let s = store(&fs);
        assert_eq!(s.load().expect("load"), None);
        s.save(b"one").expect("save");
        assert_eq!(s.load().expect("load"), Some(b"one".to_vec()));
        s.save(b"").expect("save empty");
        fs.crash();
        assert_eq!(store(&fs).load().expect("load"), Some(Vec::new()));
    }

    #[test]
    fn crash_at_every_step_of_save_leaves_old_or_new() {
        let mut saw_new = false;
        for ops in 0.. {
            let fs = SimFs::new();
            let s = store(&fs);
            s.save(b"old").expect("save old");
            fs.fail_after(Some(ops));
            let r = s.save(b"new");
            fs.fail_after(None);
            fs.crash();
            let got = store(&fs).load().expect("load").expect("present");
            assert!(got == b"old" || got == b"new", "{got:?}");
            assert!(
                !fs.exists(&Path::new("/data/snap").join(TMP_NAME))
                    .expect("exists")
            );
            saw_new |= got == b"new";
            if r.is_ok() {
                assert_eq!(got, b"new", "save returned Ok after {ops} ops");
                break;
            }
        }
        assert!(saw_new);
    }

    #[test]
    fn damage_is_an_error_naming_the_file() {
        let fs = SimFs::new();
        let s = store(&fs);
        s.save(b"payload").expect("save");
        let mut content = fs.read(&s.path()).expect("read");
        let last = content.len() - 1;
        content[last] ^= 0x40;
        let mut f = fs.create(&s.path()).expect("create");
        f.write_all(&content).expect("write");
        let err = s.load().expect_err("corrupt");
        assert!(err.to_string().contains("/data/snap/snapshot"), "{err}");
        assert!(err.to_string().contains("checksum"), "{err}");
        fs.truncate(&s.path(), 5).expect("truncate");
        assert!(s.load().is_err());
    }
}

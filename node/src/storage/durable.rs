//! Protocol-neutral durable state: a [`Wal`] of postcard-encoded records of type `R`
//! next to a [`SnapshotStore`] holding one postcard-encoded snapshot.
//!
//! Both consensus cores keep their durable state in a [`DurableStore`]; they only define
//! their record type, how records fold into recovered state, and which records a
//! compacted log starts with. Layout under the data directory: `<prefix>-wal/` and
//! `<prefix>-snap/`.
//!
//! Writes are group-committed: [`DurableStore::append`] any number of records, then one
//! [`DurableStore::sync`]. Compaction ([`DurableStore::compact`]) saves the snapshot
//! first and then atomically rewrites the log, so every crash point leaves either the old
//! log with the new or old snapshot, or the new log with the new snapshot.

use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::file::Fs;
use super::snapshot::SnapshotStore;
use super::wal::{Wal, WalOptions};
use super::{Result, StorageError};

/// Serializes an in-memory value with postcard.
fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    postcard::to_allocvec(v).expect("in-memory serialization cannot fail")
}

/// What [`DurableStore::open`] read back: the snapshot (if any) and the log's records in
/// order. The record's position in `records` is its index in the log (used in errors).
#[derive(Debug)]
pub struct Opened<R, S> {
    /// The latest saved snapshot.
    pub snapshot: Option<S>,
    /// Every record of the log, oldest first.
    pub records: Vec<R>,
}

/// A WAL of records `R` plus a snapshot store.
pub struct DurableStore<R> {
    name: &'static str,
    wal: Wal,
    snaps: SnapshotStore,
    snap_dir: PathBuf,
    _records: PhantomData<fn(R) -> R>,
}

impl<R> std::fmt::Debug for DurableStore<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct(self.name).field("wal", &self.wal).finish()
    }
}

impl<R: Serialize + DeserializeOwned> DurableStore<R> {
    /// Opens (or creates) `<prefix>-wal/` and `<prefix>-snap/` in `dir` and decodes the
    /// snapshot and every log record. A torn tail is cut off by the WAL; undecodable
    /// acknowledged data is an error naming the file. `name` is the owner's type name
    /// (shown by `Debug`).
    pub fn open<S: DeserializeOwned>(
        fs: Arc<dyn Fs>,
        dir: &Path,
        prefix: &str,
        name: &'static str,
    ) -> Result<(DurableStore<R>, Opened<R, S>)> {
        let wal_dir = dir.join(format!("{prefix}-wal"));
        let snap_dir = dir.join(format!("{prefix}-snap"));
        let snaps = SnapshotStore::new(fs.clone(), &snap_dir)?;
        let (wal, rec) = Wal::open(fs, &wal_dir, WalOptions::default())?;
        if let Some((path, len)) = &rec.truncated_tail {
            tracing::warn!(file = %path.display(), len, "cut off a torn log tail");
        }
        let snapshot = match snaps.load()? {
            Some(bytes) => Some(postcard::from_bytes::<S>(&bytes).map_err(|e| {
                StorageError::corrupt(&snaps.path(), 0, format!("undecodable snapshot: {e}"))
            })?),
            None => None,
        };
        let records = rec
            .records
            .iter()
            .enumerate()
            .map(|(i, bytes)| {
                postcard::from_bytes::<R>(bytes).map_err(|e| {
                    StorageError::corrupt(
                        &wal_dir,
                        i as u64,
                        format!("undecodable record {i}: {e}"),
                    )
                })
            })
            .collect::<Result<Vec<R>>>()?;
        let store = DurableStore {
            name,
            wal,
            snaps,
            snap_dir,
            _records: PhantomData,
        };
        Ok((store, Opened { snapshot, records }))
    }

    /// The log directory (`<prefix>-wal/`), for errors about its contents.
    pub fn wal_dir(&self) -> &Path {
        self.wal.dir()
    }

    /// The snapshot directory (`<prefix>-snap/`), for errors about its contents.
    pub fn snap_dir(&self) -> &Path {
        &self.snap_dir
    }

    /// Appends a record; durable only after the next [`DurableStore::sync`].
    pub fn append(&mut self, record: &R) -> Result<()> {
        self.wal.append(&encode(record))
    }

    /// Seeded bug `ack-before-fsync`: see [`crate::storage::wal::Wal::defer_sync`].
    pub fn defer_sync(&mut self, every: std::time::Duration, clock: super::Clock) {
        self.wal.defer_sync(every, clock);
    }

    /// Makes everything appended so far durable (one fsync for the whole batch).
    pub fn sync(&mut self) -> Result<()> {
        self.wal.sync()
    }

    /// Saves `snapshot` durably, replacing the previous one; the first half of
    /// [`DurableStore::compact`].
    pub fn save_snapshot<S: Serialize>(&mut self, snapshot: &S) -> Result<()> {
        self.snaps.save(&encode(snapshot))
    }

    /// Atomically replaces the whole log with `records`.
    pub fn rewrite(&mut self, records: &[R]) -> Result<()> {
        let encoded: Vec<Vec<u8>> = records.iter().map(encode).collect();
        self.wal.rewrite(&encoded)
    }

    /// Crash-consistent compaction: saves `snapshot`, then rewrites the log to `records`.
    pub fn compact<S: Serialize>(&mut self, snapshot: &S, records: &[R]) -> Result<()> {
        self.save_snapshot(snapshot)?;
        self.rewrite(records)
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;
    use crate::storage::file::SimFs;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    enum Rec {
        A(u64),
        B(String),
    }

    fn open(fs: &Arc<SimFs>) -> (DurableStore<Rec>, Opened<Rec, Vec<u8>>) {
        let f: Arc<dyn Fs> = fs.clone();
        DurableStore::open(f, Path::new("/data"), "test", "TestStorage").unwrap()
    }

    /// A process killed right after a snapshot's rename (before the directory fsync) and
    /// restarted without a power loss sees the snapshot and builds its log on it (Raft's
    /// open finishes the compaction by rewriting the log); a later power loss must not
    /// take the snapshot away from under that log (found by `stasis sim --faults persist`:
    /// "the log starts after index 25 but no snapshot exists").
    #[test]
    fn a_snapshot_left_by_a_process_killed_after_its_rename_survives_a_later_power_loss() {
        use crate::storage::file::FsOp;
        let fs = Arc::new(SimFs::new());
        let (mut s, _) = open(&fs);
        s.append(&Rec::A(1)).unwrap();
        s.sync().unwrap();
        fs.set_trap(FsOp::Rename, 0, true);
        assert!(s.compact(&vec![7u8], &[Rec::A(9)]).is_err());
        fs.clear_trap();
        drop(s);
        let (mut s, o) = open(&fs);
        assert_eq!(o.snapshot, Some(vec![7u8]));
        s.rewrite(&[Rec::A(9)]).unwrap();
        drop(s);
        fs.crash();
        let (_, o) = open(&fs);
        assert_eq!(o.records, vec![Rec::A(9)]);
        assert_eq!(
            o.snapshot,
            Some(vec![7u8]),
            "the log was rewritten on a snapshot that a power loss then took"
        );
    }

    /// The same for the log: a process killed right after a rewrite's rename (before the
    /// directory fsync) and restarted without a power loss appends (and fsyncs) its next
    /// records into the renamed segment; a later power loss must not take that segment,
    /// and the acknowledged records in it, away.
    #[test]
    fn records_appended_after_a_rewrite_killed_after_its_rename_survive_a_power_loss() {
        use crate::storage::file::FsOp;
        let fs = Arc::new(SimFs::new());
        let (mut s, _) = open(&fs);
        s.append(&Rec::A(1)).unwrap();
        s.sync().unwrap();
        fs.set_trap(FsOp::Rename, 0, true);
        assert!(s.rewrite(&[Rec::A(9)]).is_err());
        fs.clear_trap();
        drop(s);
        let (mut s, o) = open(&fs);
        assert_eq!(o.records, vec![Rec::A(9)]);
        s.append(&Rec::B("acked".into())).unwrap();
        s.sync().unwrap();
        drop(s);
        fs.crash();
        let (_, o) = open(&fs);
        assert_eq!(
            o.records,
            vec![Rec::A(9), Rec::B("acked".into())],
            "a synced record was lost with a segment whose directory entry was never synced"
        );
    }

    #[test]
    fn synced_records_and_compaction_survive_power_loss() {
        let fs = Arc::new(SimFs::new());
        let (mut s, o) = open(&fs);
        assert!(o.snapshot.is_none() && o.records.is_empty());
        assert_eq!(s.wal_dir(), Path::new("/data/test-wal"));
        assert_eq!(s.snap_dir(), Path::new("/data/test-snap"));
        s.append(&Rec::A(1)).unwrap();
        s.append(&Rec::B("x".into())).unwrap();
        s.sync().unwrap();
        s.append(&Rec::A(2)).unwrap();
        drop(s);
        fs.crash();
        let (mut s, o) = open(&fs);
        assert_eq!(o.records, vec![Rec::A(1), Rec::B("x".into())]);
        s.compact(&vec![7u8], &[Rec::A(9)]).unwrap();
        drop(s);
        fs.crash();
        let (s, o) = open(&fs);
        assert_eq!(o.snapshot, Some(vec![7u8]));
        assert_eq!(o.records, vec![Rec::A(9)]);
        assert!(format!("{s:?}").starts_with("TestStorage"));
    }

    #[test]
    fn undecodable_snapshot_is_an_error_naming_the_file() {
        let fs = Arc::new(SimFs::new());
        let (mut s, _) = open(&fs);
        // A lone varint continuation byte: not a complete u64.
        s.save_snapshot(&[0xffu8; 1]).unwrap();
        drop(s);
        let f: Arc<dyn Fs> = fs.clone();
        let err = DurableStore::<Rec>::open::<u64>(f, Path::new("/data"), "test", "TestStorage")
            .unwrap_err()
            .to_string();
        assert!(err.contains("test-snap"), "{err}");
        assert!(err.contains("undecodable snapshot"), "{err}");
    }
}

//! Raft's durable state over the protocol-neutral [`Wal`] and [`SnapshotStore`].
//!
//! Layout under the data directory: `raft-wal/` (the log) and `raft-snap/` (the latest
//! snapshot: postcard of [`Snapshot`]). WAL records are postcard-encoded [`Record`]s:
//!
//! - `HardState` — term and vote; the latest one wins;
//! - `Append` — entries; an entry replaces any existing entries at or after its index;
//! - `SnapshotMark` — written first in a rewritten log: the log's base after compaction.
//!
//! [`RaftStorage::persist`] writes a batch and fsyncs once (group commit); the runtime sends
//! the batch's messages only after it returns. Compaction saves the snapshot first, then
//! atomically rewrites the WAL, so every crash point recovers a consistent state.

use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{Entry, HardState, PersistOp, RaftPersist, Recovered, Snapshot, SnapshotMeta};
use crate::core::CoreStorage;
use crate::storage::durable::DurableStore;
use crate::storage::file::Fs;
use crate::storage::{Result, StorageError};

/// Entries per `Append` record (bounds record size together with the message limits).
const ENTRIES_PER_RECORD: usize = 1024;
/// Bytes per `Append` record (a single larger entry gets a record of its own).
const BYTES_PER_RECORD: usize = 4 << 20;

#[derive(Debug, Serialize, Deserialize)]
enum Record {
    HardState(HardState),
    Append(Vec<Entry>),
    SnapshotMark(SnapshotMeta),
}

/// Splits entries into record-sized runs: at most [`ENTRIES_PER_RECORD`] entries and
/// (beyond the first entry) [`BYTES_PER_RECORD`] bytes each.
fn chunks(es: &[Entry]) -> Vec<&[Entry]> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, e) in es.iter().enumerate() {
        let n = i - start;
        if n > 0 && (n >= ENTRIES_PER_RECORD || bytes + e.size() > BYTES_PER_RECORD) {
            out.push(&es[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += e.size();
    }
    if start < es.len() {
        out.push(&es[start..]);
    }
    out
}

/// `Append` records for `es`, split by [`chunks`].
fn append_records(es: &[Entry]) -> impl Iterator<Item = Record> + '_ {
    chunks(es)
        .into_iter()
        .map(|chunk| Record::Append(chunk.to_vec()))
}

/// Durable Raft state.
pub struct RaftStorage {
    store: DurableStore<Record>,
}

impl std::fmt::Debug for RaftStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.store.fmt(f)
    }
}

impl RaftStorage {
    /// Opens (or creates) the storage in `dir` and recovers its state. A torn tail is cut
    /// off by the WAL; damaged acknowledged data is an error naming the file.
    /// Seeded bug `ack-before-fsync` (see [`crate::storage::wal::Wal::defer_sync`]).
    pub fn defer_sync(&mut self, every: std::time::Duration, clock: crate::storage::Clock) {
        self.store.defer_sync(every, clock);
    }

    pub fn open(fs: Arc<dyn Fs>, dir: &Path) -> Result<(RaftStorage, Recovered)> {
        let (mut store, opened) = DurableStore::open::<Snapshot>(fs, dir, "raft", "RaftStorage")?;
        let snapshot = opened.snapshot;
        let mut hard_state = HardState::default();
        let mut base: Option<SnapshotMeta> = None;
        let mut entries: Vec<Entry> = Vec::new();
        for (i, r) in opened.records.into_iter().enumerate() {
            match r {
                Record::HardState(hs) => hard_state = hs,
                Record::SnapshotMark(meta) => {
                    entries.retain(|e| e.index > meta.index);
                    base = Some(meta);
                }
                Record::Append(es) => {
                    let Some(first) = es.first() else { continue };
                    let base_index = base.as_ref().map_or(0, |m| m.index);
                    let last = entries.last().map_or(base_index, |e| e.index);
                    if first.index > last + 1 {
                        return Err(StorageError::corrupt(
                            store.wal_dir(),
                            i as u64,
                            format!("record {i} appends index {} after {last}", first.index),
                        ));
                    }
                    entries.retain(|e| e.index < first.index);
                    entries.extend(es.into_iter().filter(|e| e.index > base_index));
                }
            }
        }
        let wal_base = base.as_ref().map_or(0, |m| m.index);
        match &snapshot {
            None if wal_base > 0 => {
                return Err(StorageError::corrupt(
                    store.snap_dir(),
                    0,
                    format!("the log starts after index {wal_base} but no snapshot exists"),
                ));
            }
            Some(s) if s.meta.index < wal_base => {
                return Err(StorageError::corrupt(
                    store.snap_dir(),
                    0,
                    format!(
                        "snapshot at index {} is older than the log base {wal_base}",
                        s.meta.index
                    ),
                ));
            }
            Some(s) if s.meta.index > wal_base => {
                // Saved a newer snapshot but crashed before rewriting the log: finish the
                // job now, or later appends (after the snapshot index) would land behind
                // stale entries and leave a gap in the log on disk.
                let keep = entries
                    .iter()
                    .any(|e| e.index == s.meta.index && e.term == s.meta.term);
                if keep {
                    entries.retain(|e| e.index > s.meta.index);
                } else {
                    entries.clear();
                }
                let mut records = vec![
                    Record::HardState(hard_state),
                    Record::SnapshotMark(s.meta.clone()),
                ];
                records.extend(append_records(&entries));
                store.rewrite(&records)?;
            }
            _ => {}
        }
        Ok((
            RaftStorage { store },
            Recovered {
                hard_state,
                snapshot,
                entries,
            },
        ))
    }

    /// Writes a batch and makes it durable.
    pub fn write(&mut self, batch: RaftPersist) -> Result<()> {
        let mut last_hs: Option<HardState> = None;
        for op in batch.ops {
            match op {
                PersistOp::HardState(hs) => {
                    last_hs = Some(hs);
                    self.store.append(&Record::HardState(hs))?;
                }
                PersistOp::Append(es) => {
                    for r in append_records(&es) {
                        self.store.append(&r)?;
                    }
                }
                PersistOp::Snapshot {
                    snapshot,
                    hard_state,
                    entries,
                } => {
                    let hs = last_hs.unwrap_or(hard_state);
                    let mut records = vec![
                        Record::HardState(hs),
                        Record::SnapshotMark(snapshot.meta.clone()),
                    ];
                    records.extend(append_records(&entries));
                    self.store.compact(&snapshot, &records)?;
                }
            }
        }
        self.store.sync()
    }
}

impl CoreStorage<RaftPersist> for RaftStorage {
    fn persist(&mut self, batch: RaftPersist) -> anyhow::Result<()> {
        Ok(self.write(batch)?)
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::raft::{Membership, Payload};
    use crate::storage::file::SimFs;

    fn e(index: u64, term: u64) -> Entry {
        Entry {
            index,
            term,
            payload: Payload::Command(vec![index as u8]),
        }
    }

    fn dir() -> PathBuf {
        PathBuf::from("/data")
    }

    fn open(fs: &Arc<SimFs>) -> (RaftStorage, Recovered) {
        let fs: Arc<dyn Fs> = fs.clone();
        RaftStorage::open(fs, &dir()).unwrap()
    }

    fn hs(term: u64, vote: Option<u64>) -> PersistOp {
        PersistOp::HardState(HardState { term, vote })
    }

    #[test]
    fn entries_are_split_into_bounded_records() {
        let big = |i: u64| Entry {
            index: i,
            term: 1,
            payload: Payload::Command(vec![0; 3 << 20]),
        };
        let es: Vec<Entry> = (1..=5).map(big).collect();
        let c = chunks(&es);
        assert_eq!(
            c.iter().map(|c| c.len()).collect::<Vec<_>>(),
            vec![1, 1, 1, 1, 1]
        );
        let small: Vec<Entry> = (1..=2500).map(|i| e(i, 1)).collect();
        let c = chunks(&small);
        assert_eq!(
            c.iter().map(|c| c.len()).collect::<Vec<_>>(),
            vec![1024, 1024, 452]
        );
        assert!(chunks(&[]).is_empty());
    }

    #[test]
    fn synced_batches_survive_power_loss_unsynced_do_not() {
        let fs = Arc::new(SimFs::new());
        let (mut s, rec) = open(&fs);
        assert!(rec.is_empty());
        s.write(RaftPersist {
            ops: vec![hs(2, Some(1)), PersistOp::Append(vec![e(1, 1), e(2, 2)])],
        })
        .unwrap();
        // Overwrite a suffix.
        s.write(RaftPersist {
            ops: vec![hs(3, None), PersistOp::Append(vec![e(2, 3), e(3, 3)])],
        })
        .unwrap();
        drop(s);
        fs.crash();
        let (_, rec) = open(&fs);
        assert_eq!(
            rec.hard_state,
            HardState {
                term: 3,
                vote: None
            }
        );
        assert_eq!(rec.entries, vec![e(1, 1), e(2, 3), e(3, 3)]);
    }

    #[test]
    fn compaction_and_snapshot_install_recover() {
        let fs = Arc::new(SimFs::new());
        let (mut s, _) = open(&fs);
        s.write(RaftPersist {
            ops: vec![
                hs(1, Some(1)),
                PersistOp::Append((1..=10).map(|i| e(i, 1)).collect()),
            ],
        })
        .unwrap();
        let snap = |index, term| Snapshot {
            meta: SnapshotMeta {
                index,
                term,
                membership: Membership::default(),
            },
            data: vec![9; 3],
        };
        s.write(RaftPersist {
            ops: vec![
                PersistOp::Snapshot {
                    snapshot: snap(6, 1),
                    hard_state: HardState {
                        term: 1,
                        vote: Some(1),
                    },
                    entries: (7..=10).map(|i| e(i, 1)).collect(),
                },
                PersistOp::Append(vec![e(11, 1)]),
            ],
        })
        .unwrap();
        drop(s);
        fs.crash();
        let (mut s, rec) = open(&fs);
        assert_eq!(rec.snapshot, Some(snap(6, 1)));
        assert_eq!(rec.entries.first().map(|e| e.index), Some(7));
        assert_eq!(rec.entries.last().map(|e| e.index), Some(11));
        // A follower installs a newer snapshot that does not match its log: the log is
        // replaced; a vote in the same batch must not be lost to the rewrite.
        s.write(RaftPersist {
            ops: vec![
                hs(4, Some(2)),
                PersistOp::Snapshot {
                    snapshot: snap(20, 3),
                    hard_state: HardState {
                        term: 3,
                        vote: None,
                    },
                    entries: vec![],
                },
            ],
        })
        .unwrap();
        drop(s);
        fs.crash();
        let (_, rec) = open(&fs);
        assert_eq!(rec.snapshot.map(|s| s.meta.index), Some(20));
        assert!(rec.entries.is_empty());
        assert_eq!(
            rec.hard_state,
            HardState {
                term: 4,
                vote: Some(2)
            }
        );
    }

    #[test]
    fn crash_between_snapshot_save_and_log_rewrite_is_consistent() {
        let fs = Arc::new(SimFs::new());
        let (mut s, _) = open(&fs);
        s.write(RaftPersist {
            ops: vec![PersistOp::Append((1..=5).map(|i| e(i, 1)).collect())],
        })
        .unwrap();
        // Save the snapshot by hand (as the first half of a compaction would) and crash.
        let snap = Snapshot {
            meta: SnapshotMeta {
                index: 3,
                term: 1,
                membership: Membership::default(),
            },
            data: vec![1],
        };
        s.store.save_snapshot(&snap).unwrap();
        drop(s);
        fs.crash();
        let (mut s, rec) = open(&fs);
        assert_eq!(rec.snapshot.clone().unwrap().meta.index, 3);
        assert_eq!(rec.entries, vec![e(4, 1), e(5, 1)]);
        // A snapshot that does not match the log (installed from a leader) and a crash
        // before the log rewrite: later appends must still recover.
        let snap = Snapshot {
            meta: SnapshotMeta {
                index: 8,
                term: 2,
                membership: Membership::default(),
            },
            data: vec![2],
        };
        s.store.save_snapshot(&snap).unwrap();
        drop(s);
        fs.crash();
        let (mut s, rec) = open(&fs);
        assert!(rec.entries.is_empty());
        s.write(RaftPersist {
            ops: vec![PersistOp::Append(vec![e(9, 2), e(10, 2)])],
        })
        .unwrap();
        drop(s);
        fs.crash();
        let (_, rec) = open(&fs);
        assert_eq!(rec.snapshot.unwrap().meta.index, 8);
        assert_eq!(rec.entries, vec![e(9, 2), e(10, 2)]);
    }
}

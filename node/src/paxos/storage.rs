//! Durable acceptor state over the protocol-neutral [`Wal`] and [`SnapshotStore`].
//!
//! Layout under the data directory: `paxos-wal/` and `paxos-snap/` (postcard of
//! [`Snapshot`]). WAL records are postcard-encoded [`Record`]s:
//!
//! - `Bootstrap` — the initial configuration of a fresh node;
//! - `Promise` — the promised ballot; the latest one wins;
//! - `Accept` — votes `(slot, ballot, value)`; a later vote at a slot replaces an earlier one;
//! - `Base` — first record of a rewritten log: the snapshot index it starts after.
//!
//! [`PaxosStorage::persist`] writes a batch and fsyncs once; the runtime sends the batch's
//! messages (promises, acknowledgements) only after it returns. Compaction saves the
//! snapshot first, then atomically rewrites the WAL with the promise and the votes after it.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::acceptor::Accepted;
use super::{Ballot, ConfigValue, PaxosPersist, PersistOp, Recovered, Snapshot};
use crate::core::CoreStorage;
use crate::storage::durable::DurableStore;
use crate::storage::file::Fs;
use crate::storage::{Result, StorageError};

/// Votes per `Accept` record.
const VOTES_PER_RECORD: usize = 1024;

#[derive(Debug, Serialize, Deserialize)]
enum Record {
    Bootstrap(ConfigValue),
    Promise(Ballot),
    Accept(Vec<(u64, Accepted)>),
    Base(u64),
}

/// `Accept` records for `votes`, at most [`VOTES_PER_RECORD`] votes each.
fn accept_records(votes: &[(u64, Accepted)]) -> impl Iterator<Item = Record> + '_ {
    votes
        .chunks(VOTES_PER_RECORD)
        .map(|chunk| Record::Accept(chunk.to_vec()))
}

/// Durable Paxos acceptor state.
pub struct PaxosStorage {
    store: DurableStore<Record>,
    /// The highest ballot promised in any record written (or recovered) so far. A
    /// compaction rewrites the log with at least this promise: a batch can carry a newer
    /// promise than the snapshot op that follows it, and the rewrite drops the buffered
    /// promise record (finding 1 of the node review).
    promised: Ballot,
}

impl std::fmt::Debug for PaxosStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.store.fmt(f)
    }
}

impl PaxosStorage {
    /// Opens (or creates) the storage in `dir` and recovers the acceptor state. A torn tail
    /// is cut off by the WAL; damaged acknowledged data is an error naming the file.
    /// Seeded bug `ack-before-fsync` (see [`crate::storage::wal::Wal::defer_sync`]).
    pub fn defer_sync(&mut self, every: std::time::Duration, clock: crate::storage::Clock) {
        self.store.defer_sync(every, clock);
    }

    pub fn open(fs: Arc<dyn Fs>, dir: &Path) -> Result<(PaxosStorage, Recovered)> {
        let (store, opened) = DurableStore::open::<Snapshot>(fs, dir, "paxos", "PaxosStorage")?;
        let snapshot = opened.snapshot;
        let mut out = Recovered::default();
        let mut base = 0;
        let mut votes: BTreeMap<u64, Accepted> = BTreeMap::new();
        for r in opened.records {
            match r {
                Record::Bootstrap(c) => out.bootstrap = Some(c),
                Record::Promise(b) => out.promised = out.promised.max(b),
                Record::Accept(vs) => {
                    for (s, a) in vs {
                        out.promised = out.promised.max(a.ballot);
                        votes.insert(s, a);
                    }
                }
                Record::Base(b) => base = b,
            }
        }
        let snap_index = snapshot.as_ref().map_or(0, |s| s.meta.index);
        if snap_index < base {
            return Err(StorageError::corrupt(
                store.snap_dir(),
                0,
                format!("the log starts after slot {base} but the snapshot is at {snap_index}"),
            ));
        }
        // A snapshot newer than the log base: crashed between saving it and rewriting the
        // log; the votes it covers are chosen and applied, drop them.
        out.votes = votes.split_off(&(snap_index + 1));
        out.snapshot = snapshot;
        let promised = out.promised;
        Ok((PaxosStorage { store, promised }, out))
    }

    /// Writes a batch and makes it durable.
    pub fn write(&mut self, batch: PaxosPersist) -> Result<()> {
        let mut bootstrap: Option<ConfigValue> = None;
        for op in batch.ops {
            match op {
                PersistOp::Bootstrap(c) => {
                    self.store.append(&Record::Bootstrap(c.clone()))?;
                    bootstrap = Some(c);
                }
                PersistOp::Promise(b) => {
                    self.promised = self.promised.max(b);
                    self.store.append(&Record::Promise(b))?;
                }
                PersistOp::Accept(vs) => {
                    if let Some(b) = vs.iter().map(|(_, a)| a.ballot).max() {
                        self.promised = self.promised.max(b);
                    }
                    for r in accept_records(&vs) {
                        self.store.append(&r)?;
                    }
                }
                PersistOp::Snapshot {
                    snapshot,
                    promised,
                    votes,
                } => {
                    self.promised = self.promised.max(promised);
                    let mut records = vec![
                        Record::Base(snapshot.meta.index),
                        Record::Promise(self.promised),
                    ];
                    if let Some(c) = &bootstrap {
                        records.push(Record::Bootstrap(c.clone()));
                    }
                    records.extend(accept_records(&votes));
                    self.store.compact(&snapshot, &records)?;
                }
            }
        }
        self.store.sync()
    }
}

impl CoreStorage<PaxosPersist> for PaxosStorage {
    fn persist(&mut self, batch: PaxosPersist) -> anyhow::Result<()> {
        Ok(self.write(batch)?)
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::paxos::{SnapshotMeta, Value};
    use crate::storage::file::SimFs;

    fn open(fs: &Arc<SimFs>) -> (PaxosStorage, Recovered) {
        let f: Arc<dyn Fs> = fs.clone();
        PaxosStorage::open(f, &PathBuf::from("/data")).unwrap()
    }

    fn vote(round: u64, x: u8) -> Accepted {
        Accepted {
            ballot: Ballot::new(round, 1),
            value: Value::Command {
                origin: Ballot::new(round, 1),
                data: vec![x],
            },
        }
    }

    #[test]
    fn synced_votes_and_promises_survive_unsynced_do_not() {
        let fs = Arc::new(SimFs::new());
        let (mut s, rec) = open(&fs);
        assert!(rec.is_empty());
        s.write(PaxosPersist {
            ops: vec![
                PersistOp::Promise(Ballot::new(2, 1)),
                PersistOp::Accept(vec![(1, vote(2, 1)), (2, vote(2, 2))]),
            ],
        })
        .unwrap();
        s.write(PaxosPersist {
            ops: vec![PersistOp::Accept(vec![(2, vote(3, 9))])],
        })
        .unwrap();
        s.store.append(&Record::Promise(Ballot::new(9, 9))).unwrap();
        drop(s);
        fs.crash();
        let (_, rec) = open(&fs);
        assert_eq!(rec.promised, Ballot::new(3, 1));
        assert_eq!(rec.votes.get(&2), Some(&vote(3, 9)));
        assert_eq!(rec.votes.len(), 2);
    }

    /// Finding 1 of the node review: an acceptor that installs a snapshot and promises a
    /// higher ballot in one batch gets `[Promise(new), Snapshot { promised: old }]`; the
    /// compaction must not rewrite the log with the older promise.
    #[test]
    fn a_newer_promise_in_the_batch_survives_a_snapshot_compaction() {
        let fs = Arc::new(SimFs::new());
        let (mut s, _) = open(&fs);
        s.write(PaxosPersist {
            ops: vec![PersistOp::Promise(Ballot::new(2, 1))],
        })
        .unwrap();
        let snapshot = Snapshot {
            meta: SnapshotMeta {
                index: 4,
                config: ConfigValue::default(),
                epoch: Ballot::new(2, 1),
            },
            data: vec![1],
        };
        s.write(PaxosPersist {
            ops: vec![
                PersistOp::Promise(Ballot::new(7, 3)),
                PersistOp::Snapshot {
                    snapshot,
                    promised: Ballot::new(2, 1),
                    votes: Vec::new(),
                },
            ],
        })
        .unwrap();
        drop(s);
        fs.crash();
        let (_, rec) = open(&fs);
        assert_eq!(rec.promised, Ballot::new(7, 3));
    }

    #[test]
    fn compaction_keeps_promise_votes_and_snapshot() {
        let fs = Arc::new(SimFs::new());
        let (mut s, _) = open(&fs);
        s.write(PaxosPersist {
            ops: vec![PersistOp::Accept(
                (1..=5).map(|i| (i, vote(1, i as u8))).collect(),
            )],
        })
        .unwrap();
        let snapshot = Snapshot {
            meta: SnapshotMeta {
                index: 3,
                config: ConfigValue::default(),
                epoch: Ballot::new(1, 1),
            },
            data: vec![7],
        };
        s.write(PaxosPersist {
            ops: vec![PersistOp::Snapshot {
                snapshot: snapshot.clone(),
                promised: Ballot::new(4, 2),
                votes: vec![(4, vote(1, 4)), (5, vote(1, 5))],
            }],
        })
        .unwrap();
        drop(s);
        fs.crash();
        let (_, rec) = open(&fs);
        assert_eq!(rec.snapshot, Some(snapshot.clone()));
        assert_eq!(rec.promised, Ballot::new(4, 2));
        assert_eq!(rec.votes.keys().copied().collect::<Vec<_>>(), vec![4, 5]);
        // Crash between saving a newer snapshot and rewriting the log.
        let (mut s, _) = open(&fs);
        let newer = Snapshot {
            meta: SnapshotMeta {
                index: 4,
                ..snapshot.meta
            },
            data: vec![8],
        };
        s.store.save_snapshot(&newer).unwrap();
        drop(s);
        fs.crash();
        let (_, rec) = open(&fs);
        assert_eq!(rec.snapshot.map(|s| s.meta.index), Some(4));
        assert_eq!(rec.votes.keys().copied().collect::<Vec<_>>(), vec![5]);
        assert_eq!(rec.promised, Ballot::new(4, 2));
    }
}

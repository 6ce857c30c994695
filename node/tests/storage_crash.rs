//! Crash and corruption tests of the durability layer: torn tails at every byte offset,
//! bit flips, seeded power-loss workloads on `SimFs`, and a real-disk restart round trip.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use node::kv::{Command, KvStore};
use node::storage::StorageError;
use node::storage::file::{Fs, RealFs, SimFs};
use node::storage::snapshot::SnapshotStore;
use node::storage::wal::{
    FRAME_HEADER_LEN, Recovered, SEGMENT_HEADER_LEN, SYNC_MARK_LEN, Wal, WalOptions,
};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

const N: usize = 10;

fn record(i: usize) -> Vec<u8> {
    format!("record number {i} with some payload").into_bytes()
}

/// Writes N records (synced one by one) into a fresh log on disk; returns the dir, the
/// segment path and each record's start offset (after its batch's sync mark).
fn write_log() -> (tempfile::TempDir, PathBuf, Vec<u64>) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (mut wal, _) =
        Wal::open(Arc::new(RealFs), tmp.path(), WalOptions::default()).expect("open");
    let mut starts = Vec::new();
    let mut off = SEGMENT_HEADER_LEN;
    for i in 0..N {
        if i > 0 {
            // Each write-out after a sync starts with a sync mark.
            off += SYNC_MARK_LEN as u64;
        }
        starts.push(off);
        wal.append(&record(i)).expect("append");
        wal.sync().expect("sync");
        off += (FRAME_HEADER_LEN + record(i).len()) as u64;
    }
    let segs = RealFs.list(tmp.path()).expect("list");
    assert_eq!(segs.len(), 1);
    let seg = tmp.path().join(&segs[0]);
    assert_eq!(std::fs::metadata(&seg).expect("stat").len(), off);
    (tmp, seg, starts)
}

fn reopen(dir: &Path) -> Result<(Wal, Recovered), StorageError> {
    Wal::open(Arc::new(RealFs), dir, WalOptions::default())
}

fn all_records() -> Vec<Vec<u8>> {
    (0..N).map(record).collect()
}

#[test]
fn truncating_the_last_record_at_every_offset_recovers_the_whole_prefix() {
    let (tmp, seg, starts) = write_log();
    let full = std::fs::read(&seg).expect("read");
    let last = starts[N - 1] as usize;
    for cut in last..full.len() {
        std::fs::write(&seg, &full[..cut]).expect("cut");
        let (mut wal, rec) = reopen(tmp.path()).expect("reopen");
        assert_eq!(rec.records, all_records()[..N - 1], "cut at {cut}");
        let expected_tail = (cut > last).then(|| (seg.clone(), last as u64));
        assert_eq!(rec.truncated_tail, expected_tail, "cut at {cut}");
        assert_eq!(std::fs::metadata(&seg).expect("stat").len(), last as u64);
        // The repaired log accepts new records after the prefix.
        wal.append(b"after repair").expect("append");
        wal.sync().expect("sync");
        drop(wal);
        let (_, rec) = reopen(tmp.path()).expect("reopen");
        assert_eq!(rec.records.len(), N);
        assert_eq!(rec.records[N - 1], b"after repair");
        assert_eq!(rec.truncated_tail, None);
    }
}

/// Byte positions of record `i`'s CRC and payload.
fn crc_and_payload(starts: &[u64], i: usize) -> Vec<usize> {
    let s = starts[i] as usize;
    (s + 4..s + FRAME_HEADER_LEN + record(i).len()).collect()
}

#[test]
fn damage_to_a_middle_record_is_an_error_naming_file_and_offset() {
    let (tmp, seg, starts) = write_log();
    let full = std::fs::read(&seg).expect("read");
    let name = seg
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    for victim in [0, N / 2, N - 2] {
        for pos in crc_and_payload(&starts, victim) {
            let mut bad = full.clone();
            bad[pos] ^= 0x10;
            std::fs::write(&seg, &bad).expect("write");
            let err = reopen(tmp.path()).expect_err("corruption must not open");
            let msg = err.to_string();
            assert!(matches!(err, StorageError::Corrupt { .. }), "{msg}");
            assert!(msg.contains(&name), "{msg}");
            assert!(
                msg.contains(&format!("at byte {}", starts[victim])),
                "{msg}"
            );
            assert!(!msg.contains('\n'), "one line: {msg}");
            // Nothing was truncated: acknowledged data is never silently dropped.
            assert_eq!(std::fs::read(&seg).expect("read"), bad);
        }
    }
}

#[test]
fn damage_to_the_last_record_is_a_torn_tail() {
    let (tmp, seg, starts) = write_log();
    let full = std::fs::read(&seg).expect("read");
    for pos in crc_and_payload(&starts, N - 1) {
        let mut bad = full.clone();
        bad[pos] ^= 0x01;
        std::fs::write(&seg, &bad).expect("write");
        let (_, rec) = reopen(tmp.path()).expect("torn tail opens");
        assert_eq!(rec.records, all_records()[..N - 1]);
        assert_eq!(rec.truncated_tail, Some((seg.clone(), starts[N - 1])));
    }
}

#[test]
fn damage_at_the_end_of_a_non_last_segment_is_corruption() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let opts = WalOptions {
        segment_bytes: 100,
        ..WalOptions::default()
    };
    let (mut wal, _) = Wal::open(Arc::new(RealFs), tmp.path(), opts).expect("open");
    for i in 0..N {
        wal.append(&record(i)).expect("append");
    }
    wal.sync().expect("sync");
    assert!(wal.segment_count() >= 3);
    drop(wal);
    let segs = RealFs.list(tmp.path()).expect("list");
    let first = tmp.path().join(&segs[0]);
    let mut data = std::fs::read(&first).expect("read");
    let last = data.len() - 1;
    data[last] ^= 0xff;
    std::fs::write(&first, &data).expect("write");
    let err = Wal::open(Arc::new(RealFs), tmp.path(), opts).expect_err("corrupt");
    assert!(err.to_string().contains(&segs[0]), "{err}");
}

/// Seeded random workload of appends, syncs, rewrites, injected I/O failures and power
/// losses. Model: `durable` must survive; `pending` (appended, not known durable) may
/// survive as a prefix. After every crash the recovered log must be exactly
/// `durable ++ prefix(pending)`, or the new content of a rewrite that was in flight.
#[test]
fn power_loss_at_random_points_never_loses_synced_records() {
    let opts = WalOptions {
        segment_bytes: 160,
        max_record_bytes: 1024,
    };
    let dir = PathBuf::from("/node/wal");
    let mut crashes = 0;
    let mut torn_tails = 0;
    for seed in 0..300u64 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let fs = if seed % 2 == 0 {
            SimFs::with_torn_writes(seed)
        } else {
            SimFs::new()
        };
        let shared: Arc<dyn Fs> = Arc::new(fs.clone());
        let (mut wal, _) = Wal::open(shared.clone(), &dir, opts).expect("open");
        let mut durable: Vec<Vec<u8>> = Vec::new();
        let mut pending: Vec<Vec<u8>> = Vec::new();
        let mut in_flight_rewrite: Option<Vec<Vec<u8>>> = None;
        let mut next = 0u32;
        for _ in 0..40 {
            let roll = rng.random_range(0..100);
            if roll < 5 {
                // A dying disk: the next few mutating operations succeed, then all fail.
                fs.fail_after(Some(rng.random_range(0..6)));
            }
            let result = if roll < 55 {
                let len = rng.random_range(0..40);
                let mut rec = next.to_le_bytes().to_vec();
                rec.resize(4 + len, (next % 251) as u8);
                next += 1;
                pending.push(rec.clone());
                wal.append(&rec)
            } else if roll < 80 {
                let r = wal.sync();
                if r.is_ok() {
                    durable.append(&mut pending);
                }
                r
            } else if roll < 88 {
                let mut new = durable.clone();
                new.extend(pending.iter().cloned());
                let keep = rng.random_range(0..=new.len());
                new.drain(..new.len() - keep);
                let r = wal.rewrite(&new);
                if r.is_ok() {
                    durable = new;
                    pending.clear();
                } else {
                    in_flight_rewrite = Some(new);
                }
                r
            } else {
                Ok(())
            };
            if roll >= 88 || result.is_err() {
                fs.fail_after(None);
                fs.crash();
                crashes += 1;
                let (reopened, rec) = Wal::open(shared.clone(), &dir, opts)
                    .unwrap_or_else(|e| panic!("seed {seed}: reopen failed: {e}"));
                torn_tails += usize::from(rec.truncated_tail.is_some());
                let is_new = in_flight_rewrite.as_ref() == Some(&rec.records);
                let consistent = rec.records.len() >= durable.len()
                    && rec.records[..durable.len()] == durable[..]
                    && rec.records.len() - durable.len() <= pending.len()
                    && rec.records[durable.len()..] == pending[..rec.records.len() - durable.len()];
                assert!(
                    is_new || consistent,
                    "seed {seed}: recovered {} records, durable {} pending {}",
                    rec.records.len(),
                    durable.len(),
                    pending.len()
                );
                durable = rec.records;
                pending.clear();
                in_flight_rewrite = None;
                wal = reopened;
            }
        }
    }
    assert!(crashes > 1000, "workload should crash often: {crashes}");
    assert!(torn_tails > 0, "torn-write mode should produce torn tails");
}

#[test]
fn snapshot_and_wal_restart_round_trip_on_real_disk() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let fs: Arc<dyn Fs> = Arc::new(RealFs);
    let wal_dir = tmp.path().join("wal");
    let snap_dir = tmp.path().join("snap");
    let opts = WalOptions {
        segment_bytes: 256,
        ..WalOptions::default()
    };
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut expected = KvStore::new();

    for round in 0..3 {
        // Restart: restore the snapshot, replay the log.
        let snaps = SnapshotStore::new(fs.clone(), &snap_dir).expect("snapshot store");
        let mut kv = match snaps.load().expect("load snapshot") {
            Some(bytes) => KvStore::restore(&bytes).expect("restore"),
            None => KvStore::new(),
        };
        let (mut wal, rec) = Wal::open(fs.clone(), &wal_dir, opts).expect("open wal");
        assert_eq!(rec.truncated_tail, None);
        for bytes in &rec.records {
            kv.apply(&Command::decode(bytes).expect("decode"));
        }
        assert_eq!(kv, expected, "round {round}: state after restart");

        for i in 0..60 {
            let key = vec![rng.random_range(b'a'..b'f')];
            let cmd = match rng.random_range(0..3) {
                0 => Command::Set {
                    key,
                    value: vec![rng.random_range(0..4u8)],
                },
                1 => Command::Cas {
                    key,
                    old: vec![rng.random_range(0..4u8)],
                    new: vec![rng.random_range(0..4u8)],
                },
                _ => Command::Get { key },
            };
            wal.append(&cmd.encode()).expect("append");
            wal.sync().expect("sync");
            kv.apply(&cmd);
            expected.apply(&cmd);
            if i == 30 {
                // Compaction: snapshot the state, then empty the log.
                snaps.save(&kv.snapshot()).expect("save snapshot");
                wal.rewrite(&[]).expect("rewrite");
                assert_eq!(wal.segment_count(), 1);
            }
        }
    }
}

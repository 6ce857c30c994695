//! The history recorder: one writer for the whole run.
//!
//! Every event is stamped (index and time since test start, from the monotonic clock) and
//! written under one lock, so index order and time order agree. Each line is flushed to
//! the kernel as it is written; a background thread fsyncs at least every 100 ms, and
//! [`Recorder::finish`] fsyncs at the end, so a harness killed outright leaves a checkable
//! history with at most a torn last line.

use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use checker::history::{HistoryWriter, Op, OpType, Process};
use serde_json::Value;

/// Counts of client completions, for progress lines and summaries.
#[derive(Default, Debug)]
pub struct Counts {
    pub ok: AtomicU64,
    pub fail: AtomicU64,
    pub info: AtomicU64,
}

pub struct Recorder {
    start: Instant,
    inner: Mutex<Inner>,
    /// A second handle on the history file, so fsync does not hold the writer lock.
    sync_handle: File,
    pub counts: Counts,
    stop: AtomicBool,
}

struct Inner {
    writer: HistoryWriter<File>,
    error: Option<String>,
}

impl Recorder {
    /// Creates the history file and starts the periodic fsync thread.
    pub fn create(path: &Path, start: Instant) -> io::Result<(Arc<Recorder>, JoinHandle<()>)> {
        let file = File::create(path)?;
        let sync_handle = file.try_clone()?;
        let rec = Arc::new(Recorder {
            start,
            inner: Mutex::new(Inner {
                writer: HistoryWriter::new(file),
                error: None,
            }),
            sync_handle,
            counts: Counts::default(),
            stop: AtomicBool::new(false),
        });
        let r = rec.clone();
        let syncer = std::thread::Builder::new()
            .name("history-fsync".into())
            .spawn(move || {
                while !r.stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(100));
                    if let Err(e) = r.sync_handle.sync_data() {
                        r.fail(format!("fsync of the history failed: {e}"));
                    }
                }
            })?;
        Ok((rec, syncer))
    }

    /// Nanoseconds since the test started.
    pub fn now(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    /// Stamps and writes one event; returns it as written.
    pub fn record(&self, mut op: Op) -> Op {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        op.time = self.now();
        if let Err(e) = inner.writer.write(&mut op) {
            let msg = format!("writing the history failed: {e}");
            inner.error.get_or_insert(msg);
        }
        drop(inner);
        if matches!(op.process, Process::Client(_)) {
            match op.kind {
                OpType::Ok => self.counts.ok.fetch_add(1, Ordering::Relaxed),
                OpType::Fail => self.counts.fail.fetch_add(1, Ordering::Relaxed),
                OpType::Info => self.counts.info.fetch_add(1, Ordering::Relaxed),
                OpType::Invoke => 0,
            };
        }
        op
    }

    /// Records a nemesis event (`info`, process "nemesis").
    pub fn nemesis(&self, f: &str, value: Value) -> Op {
        self.record(Op {
            index: 0,
            time: 0,
            process: Process::Nemesis,
            kind: OpType::Info,
            f: f.to_owned(),
            key: None,
            value,
            error: None,
            node: None,
        })
    }

    fn fail(&self, msg: String) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.error.get_or_insert(msg);
    }

    /// The first write or fsync error, if any: the run must then end with exit 3.
    pub fn error(&self) -> Option<String> {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .error
            .clone()
    }

    /// Stops the fsync thread and fsyncs one last time.
    pub fn finish(&self, syncer: JoinHandle<()>) -> Result<(), String> {
        self.stop.store(true, Ordering::Relaxed);
        let _ = syncer.join();
        self.sync_handle
            .sync_data()
            .map_err(|e| format!("final fsync of the history failed: {e}"))?;
        match self.error() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use checker::history::read_jsonl;

    #[test]
    fn records_in_order_with_monotonic_times() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.jsonl");
        let (rec, syncer) = Recorder::create(&path, Instant::now()).unwrap();
        let threads: Vec<_> = (0..4u64)
            .map(|p| {
                let rec = rec.clone();
                std::thread::spawn(move || {
                    for i in 0..50 {
                        let mut op = Op {
                            index: 0,
                            time: 0,
                            process: Process::Client(p),
                            kind: OpType::Invoke,
                            f: "write".into(),
                            key: Some("k1".into()),
                            value: Value::from(p * 1000 + i),
                            error: None,
                            node: None,
                        };
                        rec.record(op.clone());
                        op.kind = OpType::Ok;
                        rec.record(op);
                    }
                })
            })
            .collect();
        rec.nemesis("start-kill", serde_json::json!(["n1"]));
        for t in threads {
            t.join().unwrap();
        }
        rec.finish(syncer).unwrap();
        let h = read_jsonl(&path).unwrap();
        assert_eq!(h.ops.len(), 401);
        assert_eq!(rec.counts.ok.load(Ordering::Relaxed), 200);
        for w in h.ops.windows(2) {
            assert_eq!(w[1].index, w[0].index + 1);
            assert!(w[1].time >= w[0].time);
        }
    }
}

//! Lost acknowledged writes, computed from a history alone (any system).
//!
//! Written values are unique per key, so every value read names the operation that wrote
//! it. For an acknowledged (`ok`) write or cas `W` of value `v` on key `k`:
//!
//! * a value `u` is **older than** `v` when it is absent (`null`: the key as it was before
//!   any write) or when every operation that wrote `u` was acknowledged before `W` was
//!   invoked (so `u` was overwritten by `W` in every order a linearizable system may
//!   choose);
//! * `W` is **lost** when some `ok` read of `k` invoked after `W`'s acknowledgement
//!   returned a value older than `v` (the system served a state from before `W`), and no
//!   `ok` read invoked after that read ever returned `v` again (the state did not come
//!   back).
//!
//! A read that returns an older value and is later followed by reads of `v` is a stale
//! read, not a loss; it is counted apart. From outside a system, a stale read that is
//! never corrected before `v` is overwritten looks like a loss: a system whose reads may
//! be stale (etcd's serializable mode) can be reported here, and the section says so.
//! Any write reported here is also a linearizability violation, which the checker
//! reports with its own explanation.

use std::collections::BTreeMap;

use checker::history::{Op, Operation, Outcome, pair};
use serde::Serialize;
use serde_json::Value;

/// One lost acknowledged write, with the read that showed it gone.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LostWrite {
    pub key: String,
    /// `write` or `cas`.
    pub f: String,
    pub value: i64,
    pub process: u64,
    /// When the write was invoked and acknowledged, ns since the start.
    pub invoked_ns: u64,
    pub acked_ns: u64,
    /// Whether some read returned the value before it disappeared.
    pub seen_before: bool,
    /// The first read after the acknowledgement that returned an older value.
    pub read_invoked_ns: u64,
    pub read_process: u64,
    /// What it returned (`null`: the key was absent).
    pub read_value: Value,
}

/// The lost writes of a history and the number of stale reads that were not losses.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct LostWrites {
    pub lost: Vec<LostWrite>,
    /// Reads that returned a value older than an acknowledged write, after which the
    /// write's value was read again.
    pub stale_reads_corrected: usize,
}

/// The value an operation wrote, if it is a write or cas (its new value).
fn written(o: &Operation) -> Option<i64> {
    match o.f.as_str() {
        "write" => o.input.as_i64(),
        "cas" => o.input.get(1).and_then(Value::as_i64),
        _ => None,
    }
}

/// Finds the lost acknowledged writes of a history (see the module documentation).
pub fn find(ops: &[Op]) -> LostWrites {
    let mut by_key: BTreeMap<String, Vec<Operation>> = BTreeMap::new();
    for o in pair(ops) {
        if let Some(k) = o.key.clone() {
            by_key.entry(k.to_string()).or_default().push(o);
        }
    }
    let mut out = LostWrites::default();
    for (key, ops) in &by_key {
        // For each written value, the latest acknowledgement among its writers (None if
        // one of them was never acknowledged: it may have taken effect at any time).
        let mut writers: BTreeMap<i64, Option<u64>> = BTreeMap::new();
        for o in ops.iter().filter(|o| o.outcome != Outcome::Fail) {
            if let Some(v) = written(o) {
                let ret = if o.outcome == Outcome::Ok {
                    o.ret
                } else {
                    None
                };
                let e = writers.entry(v).or_insert(ret);
                *e = match (*e, ret) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    _ => None,
                };
            }
        }
        let mut reads: Vec<&Operation> = ops
            .iter()
            .filter(|o| o.f == "read" && o.outcome == Outcome::Ok)
            .collect();
        reads.sort_by_key(|r| r.call);
        for w in ops.iter().filter(|o| o.outcome == Outcome::Ok) {
            let (Some(v), Some(acked)) = (written(w), w.ret) else {
                continue;
            };
            let older = |u: &Value| match u {
                Value::Null => true,
                u => u
                    .as_i64()
                    .and_then(|u| writers.get(&u).copied().flatten())
                    .is_some_and(|ret| ret < w.call),
            };
            let after: Vec<&&Operation> = reads.iter().filter(|r| r.call > acked).collect();
            let Some(first_older) = after.iter().position(|r| older(&r.output)) else {
                continue;
            };
            let r = after[first_older];
            if after[first_older..]
                .iter()
                .any(|later| later.output.as_i64() == Some(v))
            {
                out.stale_reads_corrected += 1;
                continue;
            }
            out.lost.push(LostWrite {
                key: key.clone(),
                f: w.f.to_string(),
                value: v,
                process: w.process,
                invoked_ns: w.call,
                acked_ns: acked,
                seen_before: reads
                    .iter()
                    .any(|x| x.call < r.call && x.output.as_i64() == Some(v)),
                read_invoked_ns: r.call,
                read_process: r.process,
                read_value: r.output.clone(),
            });
        }
    }
    out.lost.sort_by_key(|l| (l.acked_ns, l.key.clone()));
    out
}

/// The summary's section: one line per lost write (the first `limit`).
pub fn summary_lines(found: &LostWrites, limit: usize) -> Vec<String> {
    let mut lines = vec![format!(
        "lost acknowledged writes: {}{}",
        found.lost.len(),
        if found.stale_reads_corrected > 0 {
            format!(
                " (and {} stale reads whose value came back later)",
                found.stale_reads_corrected
            )
        } else {
            String::new()
        }
    )];
    for l in found.lost.iter().take(limit) {
        lines.push(format!("  {}", describe(l)));
    }
    if found.lost.len() > limit {
        lines.push(format!(
            "  ... {} more in results.json (lost_writes)",
            found.lost.len() - limit
        ));
    }
    lines
}

/// One sentence about one lost write.
pub fn describe(l: &LostWrite) -> String {
    format!(
        "{} {}={} by process {} acknowledged at {:.3}s{}; the read by process {} at {:.3}s returned {}, and {} was never read again",
        l.f,
        l.key,
        l.value,
        l.process,
        l.acked_ns as f64 / 1e9,
        if l.seen_before {
            " (read before it vanished)"
        } else {
            ""
        },
        l.read_process,
        l.read_invoked_ns as f64 / 1e9,
        l.read_value,
        l.value
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use checker::history::{OpType, Process};
    use serde_json::json;

    /// `(process, kind, f, value, time)` events on key k0.
    fn history(events: &[(u64, OpType, &str, Value, u64)]) -> Vec<Op> {
        events
            .iter()
            .enumerate()
            .map(|(i, (p, kind, f, value, time))| Op {
                index: i as u64,
                time: *time,
                process: Process::Client(*p),
                kind: *kind,
                f: (*f).into(),
                key: Some("k0".into()),
                value: value.clone(),
                error: None,
                node: None,
            })
            .collect()
    }

    use OpType::{Info, Invoke, Ok};

    #[test]
    fn a_write_whose_state_regresses_for_good_is_lost() {
        let h = history(&[
            (0, Invoke, "write", json!(1), 1),
            (0, Ok, "write", json!(1), 2),
            (1, Invoke, "write", json!(2), 3),
            (1, Ok, "write", json!(2), 4),
            (2, Invoke, "read", json!(null), 5),
            (2, Ok, "read", json!(2), 6),
            // After the failover: back to 1, and 2 never again.
            (2, Invoke, "read", json!(null), 7),
            (2, Ok, "read", json!(1), 8),
            (0, Invoke, "cas", json!([1, 3]), 9),
            (0, Ok, "cas", json!([1, 3]), 10),
            (2, Invoke, "read", json!(null), 11),
            (2, Ok, "read", json!(3), 12),
        ]);
        let found = find(&h);
        assert_eq!(found.lost.len(), 1, "{found:?}");
        let l = &found.lost[0];
        assert_eq!((l.value, l.process, l.acked_ns), (2, 1, 4));
        assert!(l.seen_before);
        assert_eq!((l.read_invoked_ns, l.read_value.clone()), (7, json!(1)));
        let lines = summary_lines(&found, 10);
        assert_eq!(lines[0], "lost acknowledged writes: 1");
        assert!(lines[1].contains("write k0=2 by process 1"), "{}", lines[1]);
    }

    #[test]
    fn stale_reads_that_come_back_and_overlapping_writes_are_not_losses() {
        let h = history(&[
            (0, Invoke, "write", json!(1), 1),
            (0, Ok, "write", json!(1), 2),
            (1, Invoke, "write", json!(2), 3),
            (1, Ok, "write", json!(2), 4),
            // Stale, then 2 again: a stale read.
            (2, Invoke, "read", json!(null), 5),
            (2, Ok, "read", json!(1), 6),
            (2, Invoke, "read", json!(null), 7),
            (2, Ok, "read", json!(2), 8),
            // 3 and 4 overlap: reading 3 after 4's ack is legal (3 may follow 4).
            (0, Invoke, "write", json!(3), 9),
            (1, Invoke, "write", json!(4), 10),
            (1, Ok, "write", json!(4), 11),
            (0, Ok, "write", json!(3), 12),
            (2, Invoke, "read", json!(null), 13),
            (2, Ok, "read", json!(3), 14),
            // 5's writer never answered: it may land at any time, so reading 5 is not
            // older than anything.
            (3, Invoke, "write", json!(5), 15),
            (3, Info, "write", json!(null), 16),
            (2, Invoke, "read", json!(null), 17),
            (2, Ok, "read", json!(5), 18),
        ]);
        let found = find(&h);
        assert!(found.lost.is_empty(), "{found:?}");
        assert_eq!(found.stale_reads_corrected, 1);
    }

    #[test]
    fn an_absent_key_after_an_acknowledged_write_is_a_loss() {
        let h = history(&[
            (0, Invoke, "write", json!(7), 1),
            (0, Ok, "write", json!(7), 2),
            (1, Invoke, "read", json!(null), 3),
            (1, Ok, "read", json!(null), 4),
        ]);
        let found = find(&h);
        assert_eq!(found.lost.len(), 1);
        assert!(!found.lost[0].seen_before);
        assert_eq!(found.lost[0].read_value, Value::Null);
    }
}

//! `stasis test --sut multipaxos` end to end: every nemesis, the even-cluster quorum under
//! a 2+2 split, and a 2x3 grid. Needs root (CI runs as root).

mod common;

use checker::history::{OpType, Process, read_jsonl};
use common::*;

#[test]
fn multipaxos_all_faults() {
    let r = stasis_test(&[
        "--sut",
        "multipaxos",
        "--nemesis",
        "all",
        "--time-limit",
        "35s",
        "--nemesis-interval",
        "2s",
    ]);
    assert_clean_pass(
        &r,
        &["kill", "pause", "partition", "clock", "membership", "net"],
        200,
    );
}

/// Four nodes with `--quorum even` split 2+2: one side keeps a quorum, so clients keep
/// succeeding during the whole partition.
#[test]
fn multipaxos_even_quorum_stays_available_across_a_2_2_split() {
    let r = stasis_test(&[
        "--sut",
        "multipaxos",
        "--nodes",
        "4",
        "--node-arg",
        "--quorum",
        "--node-arg",
        "even",
        "--nemesis",
        "partition",
        "--shapes",
        "halves",
        "--time-limit",
        "20s",
        "--nemesis-interval",
        "6s",
    ]);
    assert_clean_pass(&r, &["partition"], 200);
    let h = read_jsonl(&r.dir.join("history.jsonl")).unwrap();
    let windows = harness::record::fault_windows(&h.ops);
    assert!(!windows.is_empty());
    for w in &windows {
        let grudge = w.value["grudge"].as_object().expect("grudge");
        // A 2+2 split: every node is cut from exactly two others.
        assert!(
            grudge.values().all(|v| v.as_array().unwrap().len() == 2),
            "{}",
            w.value
        );
        let stop = w.stop_ns.expect("healed");
        let oks = h
            .ops
            .iter()
            .filter(|o| o.kind == OpType::Ok && o.process != Process::Nemesis)
            .filter(|o| o.time > w.start_ns + 2_000_000_000 && o.time < stop)
            .count();
        let secs = (stop.saturating_sub(w.start_ns + 2_000_000_000)) as f64 / 1e9;
        if secs >= 1.0 {
            assert!(
                oks > 50,
                "only {oks} ok operations in {secs:.1} s of a 2+2 split:\n{}",
                r.text
            );
        }
    }
}

#[test]
fn multipaxos_grid_2x3() {
    let r = stasis_test(&[
        "--sut",
        "multipaxos",
        "--nodes",
        "6",
        "--node-arg",
        "--quorum",
        "--node-arg",
        "grid:2x3",
        "--nemesis",
        "all",
        "--time-limit",
        "35s",
        "--nemesis-interval",
        "2s",
    ]);
    assert_clean_pass(
        &r,
        &["kill", "pause", "partition", "clock", "membership", "net"],
        200,
    );
}

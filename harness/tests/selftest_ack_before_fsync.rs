//! Power losses through the disk-fault filesystem: acknowledged writes survive
//! `lose-unfsynced` on a correct node, while a node with the seeded bug
//! `ack-before-fsync` (answers before its batch is durable) loses them and the selftest
//! catches it with a plan that uses only the generic disk nemesis. Needs root and
//! /dev/fuse (CI runs as root). Its own test binary, so it never runs beside the other
//! selftests. About 60-120 s.

mod common;

use common::*;

#[test]
fn correct_raft_keeps_acknowledged_writes_through_power_losses() {
    let run = stasis_test(&[
        "--nemesis",
        "lose-unfsynced,lose-unfsynced-torn",
        "--nodes",
        "3",
        "--time-limit",
        "25s",
        "--nemesis-interval",
        "2s",
        "--seed",
        "11",
    ]);
    assert_clean_pass(&run, &["disk"], 200);
    // The losses dropped something: the nodes had unsynced state (directory entries or
    // data) when they were cut.
    let history = std::fs::read_to_string(run.dir.join("history.jsonl")).unwrap();
    assert!(history.contains("\"ops_dropped\""), "no loss recorded");
}

#[test]
fn ack_before_fsync_is_caught_by_power_losses_alone() {
    require_root();
    let (_store, dir) = selftest_catches("raft/ack-before-fsync", "90s");
    let test = std::fs::read_to_string(dir.join("test.json")).unwrap();
    assert!(
        test.contains("\"nemesis\": \"lose-unfsynced\""),
        "the plan uses the generic disk nemesis only"
    );
    let args = node_args_of(&dir);
    assert!(
        args.windows(2).any(|w| w == ["--bug", "ack-before-fsync"]),
        "{args:?}"
    );
    // Acknowledged writes were dropped: some loss threw away data operations.
    let history = std::fs::read_to_string(dir.join("history.jsonl")).unwrap();
    assert!(history.contains("start-disk"), "no disk fault in the run");
    let (_store, _dir) = selftest_catches("multipaxos/ack-before-fsync", "90s");
}

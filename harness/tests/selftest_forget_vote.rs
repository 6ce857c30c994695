//! `stasis selftest --case raft/forget-vote`: the targeted `double-vote` fault (pause a
//! voter with a vote request waiting in its socket, restart it between two candidates of
//! one term) must make a node that forgets its vote elect two leaders in one term, and the
//! checker must see it. Needs root (CI runs as root). Its own test binary, so it never runs
//! beside the other selftests (all lean on fault timings). About 40-160 s.

mod common;

use common::*;

#[test]
fn forget_vote_is_caught_by_the_double_vote_fault() {
    require_root();
    // 160 s: up to five 30 s attempts. In the --runs 10 measurement 8 of 10 runs caught it
    // in the first attempt and the other 2 in the second; on a machine at load 16 (CI of
    // 2026-12-07 beside five builds) 100 s was not enough: none of the double-vote faults
    // of three attempts led to a second leader (the candidate paused with the vote answer
    // waiting did not win after its resume), so the fault's success rate depends on the
    // load.
    let (_store, dir) = selftest_catches("raft/forget-vote", "160s");
    // The caught run holds the fault's own account: two leaders in one term, after the
    // node flags that make it possible.
    let history = std::fs::read_to_string(dir.join("history.jsonl")).unwrap();
    assert!(
        history.contains("\"combo\":\"double-vote\"") && history.contains("two leaders in term"),
        "no double-vote fault electing two leaders in {}",
        dir.display()
    );
    let args = node_args_of(&dir);
    assert!(
        args.windows(2).any(|w| w == ["--pre-vote", "off"]),
        "{args:?}"
    );
    assert!(
        args.windows(2).any(|w| w == ["--bug", "forget-vote"]),
        "{args:?}"
    );
}

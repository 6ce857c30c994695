//! Message delay alone: a Raft node with the seeded bug `lease-from-ack` (its read lease
//! counts from when an acknowledgement arrives, not from when the heartbeat left) serves
//! stale reads once the generic net nemesis slows every link of the current leader by a
//! latency step longer than an election timeout, and the selftest catches it with a plan
//! that uses only that nemesis. Needs root and iptables with NFQUEUE (CI runs as root).
//! Its own test binary, so it never runs beside the other selftests. About 40-90 s.

mod common;

use common::*;

#[test]
fn lease_from_ack_is_caught_by_network_delay_alone() {
    require_root();
    let (_store, dir) = selftest_catches("raft/lease-from-ack", "120s");
    let test: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("test.json")).unwrap()).unwrap();
    let args = &test["args"];
    assert_eq!(args["nemesis"], "net", "the plan uses the net nemesis only");
    assert_eq!(args["net_faults"], "delay");
    assert_eq!(args["net_scopes"], "leader");
    let node_args = node_args_of(&dir);
    assert!(
        node_args
            .windows(2)
            .any(|w| w == ["--bug", "lease-from-ack"]),
        "{node_args:?}"
    );
    // The faults were delays, verified by probes, and the violation is a stale read.
    let history = std::fs::read_to_string(dir.join("history.jsonl")).unwrap();
    assert!(
        history.contains("\"start-net\""),
        "no network fault in the run"
    );
    assert!(history.contains("\"kind\":\"delay\""), "no delay fault");
    let summary = std::fs::read_to_string(dir.join("summary.txt")).unwrap();
    assert!(summary.contains("not-linearizable"), "{summary}");
}

//! The membership nemesis end to end: 3 voters and 2 spares, voter sets changed through
//! RECONFIG (including multi-member replacements) and back, must stay linearizable and
//! leave nothing behind. Needs root (CI runs as root) and the node binary.

mod common;

use std::collections::BTreeSet;

use checker::history::{Process, read_jsonl};
use common::*;
use serde_json::Value;

fn set(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|x| x.as_str().map(str::to_owned))
        .collect()
}

fn membership_run(sut: &str) {
    let r = stasis_test(&[
        "--sut",
        sut,
        "--nodes",
        "3",
        "--spares",
        "2",
        "--nemesis",
        "membership",
        "--time-limit",
        "30s",
    ]);
    assert_clean_pass(&r, &["membership"], 200);
    let t = &r.text;
    let test: Value =
        serde_json::from_slice(&std::fs::read(r.dir.join("test.json")).unwrap()).unwrap();
    assert_eq!(test["spares"], serde_json::json!(["n4", "n5"]), "{t}");
    assert_eq!(test["nodes"], serde_json::json!(["n1", "n2", "n3"]), "{t}");
    // The spares ran in join mode.
    for spare in ["n4", "n5"] {
        assert!(r.dir.join(spare).join("node.log").is_file(), "{spare}: {t}");
    }
    let h = read_jsonl(&r.dir.join("history.jsonl")).unwrap();
    let changes: Vec<&Value> = h
        .ops
        .iter()
        .filter(|o| {
            o.process == Process::Nemesis && (o.f == "start-membership" || o.f == "stop-membership")
        })
        .map(|o| &o.value)
        .collect();
    // Seen in the leader's STATUS (acknowledged, or answered UNKNOWN when the leader
    // itself was removed, and done nonetheless).
    let verified: Vec<&&Value> = changes.iter().filter(|v| v["verified"] == true).collect();
    assert!(
        verified
            .iter()
            .all(|v| v["outcome"] == "ok" || v["outcome"] == "unknown"),
        "{changes:?}"
    );
    assert!(
        verified.len() >= 2,
        "only {} verified changes: {changes:?}\n{t}",
        verified.len()
    );
    for v in &verified {
        let status = v["status"].as_str().unwrap();
        let to: Vec<String> = set(&v["to"]).into_iter().collect();
        assert!(
            status.contains(&format!("voters {}, joint false", to.join(","))),
            "{v}"
        );
    }
    let multi = verified.iter().any(|v| {
        let (from, to) = (set(&v["from"]), set(&v["to"]));
        from.difference(&to).count() >= 2 && to.difference(&from).count() >= 2
    });
    assert!(
        multi,
        "no verified replacement of two or more members: {changes:?}"
    );
    // Every fault went back to the initial voters.
    let last = h
        .ops
        .iter()
        .rfind(|o| o.f == "stop-membership")
        .expect("a stop-membership event");
    assert_eq!(
        set(&last.value["to"]),
        ["n1", "n2", "n3"].map(String::from).into(),
        "{t}"
    );
}

#[test]
fn raft_changes_voters_and_stays_linearizable() {
    membership_run("raft");
}

#[test]
fn multipaxos_changes_voters_and_stays_linearizable() {
    membership_run("multipaxos");
}

#[test]
fn etcd_has_no_membership_command() {
    let r = stasis_test(&["--sut", "etcd", "--nemesis", "membership"]);
    assert_eq!(r.out.status.code(), Some(3), "{}", r.text);
    let line = r.text.trim();
    assert!(
        line.contains("the membership nemesis cannot change etcd's voters: its spec has no [membership] section"),
        "{line}"
    );
    assert_eq!(line.lines().count(), 1, "{line}");
    let r = stasis_test(&["--sut", "etcd", "--nemesis", "kill", "--spares", "2"]);
    assert_eq!(r.out.status.code(), Some(3), "{}", r.text);
    assert!(
        r.text
            .contains("--spares 2: etcd has no [membership] section"),
        "{}",
        r.text
    );
}

//! `stasis test` end to end against real `stasis-node` processes in namespaces. Needs
//! root (CI runs as root) and the node binary, which `cargo test --workspace` builds.
//!
//! Each run is short (about 15 s of workload) and must end linearizable with a few hundred
//! ok operations, its nemesis events in the history, and nothing left behind.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use checker::history::{OpType, Process, read_jsonl};
use common::*;
use serde_json::Value;

/// A short 3-node run with one nemesis family, which must pass clean.
fn one_nemesis(family: &str) -> Run {
    let r = stasis_test(&[
        "--nemesis",
        family,
        "--time-limit",
        "15s",
        "--nemesis-interval",
        "3s",
    ]);
    assert_clean_pass(&r, &[family], 200);
    r
}

#[test]
fn kill() {
    one_nemesis("kill");
}

#[test]
fn pause() {
    one_nemesis("pause");
}

#[test]
fn partition() {
    one_nemesis("partition");
}

#[test]
fn clock() {
    let r = one_nemesis("clock");
    // The clock nemesis moved what the node itself reads: evidence from STATUS.
    let results: Value =
        serde_json::from_slice(&std::fs::read(r.dir.join("results.json")).unwrap()).unwrap();
    let evidence = results["faults"].to_string();
    assert!(evidence.contains("clock reads"), "{evidence}");
}

#[test]
fn all_faults_five_nodes() {
    let r = stasis_test(&[
        "--nodes",
        "5",
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

#[test]
fn all_faults_three_nodes() {
    let r = stasis_test(&[
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

#[test]
fn bad_flags_are_exit_3_with_one_line() {
    let out = Command::new(env!("CARGO_BIN_EXE_stasis"))
        .args(["test", "--nemesis", "boom"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown nemesis \"boom\""), "{err}");
}

/// After a kill or pause of one node out of three, once the first operation succeeds
/// again (a leader is serving), every following 5 s window until the fault ends has ok
/// operations.
fn assert_available_during_faults(run: &Run) {
    let h = read_jsonl(&run.dir.join("history.jsonl")).unwrap();
    let windows = harness::record::fault_windows(&h.ops);
    assert!(!windows.is_empty(), "no faults:\n{}", run.text);
    let oks: Vec<u64> = h
        .ops
        .iter()
        .filter(|o| o.kind == OpType::Ok && o.process != Process::Nemesis)
        .map(|o| o.time)
        .collect();
    let five = 5_000_000_000u64;
    for w in &windows {
        let stop = w.stop_ns.expect("fault stopped");
        let Some(&resumed) = oks.iter().find(|&&t| t >= w.start_ns) else {
            panic!("nothing succeeded after {} at {}", w.f, w.start_ns);
        };
        assert!(
            resumed - w.start_ns < 10 * 1_000_000_000,
            "{} {}: first ok {:.1} s after the fault started",
            w.f,
            w.value,
            (resumed - w.start_ns) as f64 / 1e9
        );
        let mut t = resumed;
        while t + five <= stop {
            let n = oks.iter().filter(|&&x| x >= t && x < t + five).count();
            assert!(n > 0, "{} {}: no ok in [{t}, {})", w.f, w.value, t + five);
            t += five;
        }
    }
    let summary = std::fs::read_to_string(run.dir.join("summary.txt")).unwrap();
    assert!(summary.contains("ok fraction"), "{summary}");
}

#[test]
fn available_while_one_node_is_killed() {
    let r = stasis_test(&[
        "--nemesis",
        "kill",
        "--target",
        "one,leader",
        "--time-limit",
        "30s",
        "--nemesis-interval",
        "10s",
    ]);
    assert_clean_pass(&r, &["kill"], 200);
    assert_available_during_faults(&r);
}

#[test]
fn available_while_one_node_is_paused() {
    let r = stasis_test(&[
        "--nemesis",
        "pause",
        "--target",
        "one,leader",
        "--time-limit",
        "30s",
        "--nemesis-interval",
        "10s",
    ]);
    assert_clean_pass(&r, &["pause"], 200);
    assert_available_during_faults(&r);
}

/// Starts a partition run in the background and waits until it has ok operations.
fn start_background(store: &Path) -> (std::process::Child, PathBuf) {
    common::start_background(
        store,
        &[
            "--nemesis",
            "partition",
            "--time-limit",
            "60s",
            "--nemesis-interval",
            "2s",
        ],
        "start-partition",
    )
}

#[test]
fn sigkilled_harness_is_cleaned_up_and_its_history_checkable() {
    let store = tempfile::tempdir().unwrap();
    let (mut child, dir) = start_background(store.path());
    // SIGKILL the harness only: its nodes (own process groups) and namespaces survive.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let pid = child.id();
    child.wait().unwrap();
    let test: Value =
        serde_json::from_slice(&std::fs::read(dir.join("test.json")).unwrap()).unwrap();
    let ns = test["topology"]["namespaces"][0]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        harness::net::stasis_namespaces().contains(&ns),
        "the killed run's namespace {ns} should still exist before cleanup"
    );
    // The killed run's history is checkable (a torn last line at most).
    let out = Command::new(env!("CARGO_BIN_EXE_stasis"))
        .args(["analyze", dir.to_str().unwrap()])
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("verdict: linearizable"), "{text}");
    // `stasis clean` (which every run also does at start) removes the leftovers.
    let out = Command::new(env!("CARGO_BIN_EXE_stasis"))
        .arg("clean")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("processes"), "{text}");
    assert_nothing_left(&dir, pid);
}

#[test]
fn ctrl_c_stops_heals_and_cleans_up() {
    let store = tempfile::tempdir().unwrap();
    let (child, dir) = start_background(store.path());
    let pid = child.id();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert_nothing_left(&dir, pid);
    // The history up to the interrupt is complete and checkable.
    read_jsonl(&dir.join("history.jsonl")).unwrap();
}

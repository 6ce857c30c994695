//! etcd (Debian's etcd-server) under Stasis, described by a TOML spec like any user's
//! system. Needs root and the `etcd` binary (scripts/setup.sh installs etcd-server).

mod common;

use std::process::Command;

use common::*;
use serde_json::Value;

fn require_etcd() {
    let ok = Command::new("etcd")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "etcd is not installed: run scripts/setup.sh (Debian package etcd-server)"
    );
}

#[test]
fn etcd_survives_kill_pause_partition() {
    require_etcd();
    let r = stasis_test(&[
        "--sut",
        "etcd",
        "--nemesis",
        "kill,pause,partition",
        "--time-limit",
        "30s",
        "--nemesis-interval",
        "3s",
    ]);
    assert_clean_pass(&r, &["kill", "pause", "partition"], 300);
}

/// etcd's serializable reads are served from a member's local state. Isolate one member
/// while clients keep reading from it and others write through the majority: Stasis must
/// report stale reads, and the explanation must point at a read.
#[test]
fn etcd_serializable_reads_are_caught_as_stale() {
    require_etcd();
    let spec_dir = tempfile::tempdir().unwrap();
    let spec = spec_dir.path().join("etcd-serializable.toml");
    let text = harness::sut::BUILTIN
        .iter()
        .find(|(n, _)| *n == "etcd")
        .unwrap()
        .1
        .replace("serializable_reads = false", "serializable_reads = true")
        .replace("name = \"etcd\"", "name = \"etcd-serializable\"");
    std::fs::write(&spec, text).unwrap();
    let r = stasis_test(&[
        "--sut",
        spec.to_str().unwrap(),
        "--nemesis",
        "partition",
        "--shapes",
        "isolate-one",
        "--time-limit",
        "25s",
        "--nemesis-interval",
        "8s",
    ]);
    assert_eq!(
        r.out.status.code(),
        Some(1),
        "expected a violation:\n{}",
        r.text
    );
    let results: Value =
        serde_json::from_slice(&std::fs::read(r.dir.join("results.json")).unwrap()).unwrap();
    assert_eq!(results["verdict"], "not-linearizable");
    let blocked = &results["check"]["explanation"]["blocked"];
    assert_eq!(
        blocked["f"], "read",
        "the violation should be a stale read: {blocked}"
    );
    let summary = std::fs::read_to_string(r.dir.join("summary.txt")).unwrap();
    assert!(summary.contains("violation: read"), "{summary}");
    let html = std::fs::read_to_string(r.dir.join("timeline.html")).unwrap();
    assert!(!html.contains("http://") && !html.contains("https://"));
    assert!(r.dir.join("explanation.txt").is_file());
    assert_nothing_left(&r.dir, r.pid);
}

#[test]
fn clock_nemesis_is_refused_for_etcd() {
    let out = Command::new(env!("CARGO_BIN_EXE_stasis"))
        .args(["test", "--sut", "etcd", "--nemesis", "clock,kill"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot move etcd's clock"), "{err}");
    assert!(err.contains("faketime = false"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[test]
fn user_spec_from_a_file_and_malformed_specs() {
    let dir = tempfile::tempdir().unwrap();
    // A malformed spec: a typo in a key, reported with file and line, exit 3.
    let bad = dir.path().join("mine.toml");
    std::fs::write(
        &bad,
        "name = \"mine\"\nclient = \"resp\"\n[ports]\nclient = 1\npeer = 2\n[start]\nprogram = \"x\"\npeer_fromat = \"{id}\"\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_stasis"))
        .args(["test", "--sut", bad.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    let want = format!("{}:8: ", bad.display());
    assert!(err.contains(&want), "{err}");
    assert!(err.contains("peer_fromat"), "{err}");
    // A good user spec (the raft one, renamed) loads from the file and runs.
    let good = dir.path().join("myraft.toml");
    let text = harness::sut::BUILTIN[0]
        .1
        .replace("name = \"raft\"", "name = \"myraft\"");
    std::fs::write(&good, text).unwrap();
    let r = stasis_test(&[
        "--sut",
        good.to_str().unwrap(),
        "--nemesis",
        "none",
        "--time-limit",
        "5s",
    ]);
    assert_clean_pass(&r, &[], 100);
    assert!(
        r.dir.to_string_lossy().contains("/myraft-none/"),
        "{}",
        r.dir.display()
    );
}

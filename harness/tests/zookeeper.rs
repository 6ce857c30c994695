//! ZooKeeper 3.8 (Debian's zookeeper) under Stasis: a three-server ensemble described by
//! the built-in spec, spoken to through ZooKeeper's protocol. Needs root, Java and the
//! zookeeper package (scripts/setup.sh installs them).

mod common;

use std::process::Command;

use common::*;

fn require_zookeeper() {
    let spec = harness::sut::SutSpec::load("zookeeper").unwrap();
    if let Err(e) = spec.check_needs() {
        panic!("{e}");
    }
}

/// A short run with sync reads under kill, pause and partition reaches `ready`, records
/// a history and checks it: linearizable.
#[test]
fn zookeeper_with_sync_reads_survives_kill_pause_partition() {
    require_zookeeper();
    let r = stasis_test(&[
        "--sut",
        "zookeeper",
        "--nemesis",
        "kill,pause,partition",
        "--time-limit",
        "30s",
        "--nemesis-interval",
        "4s",
    ]);
    assert_clean_pass(&r, &["kill", "pause", "partition"], 200);
    let log = std::fs::read_to_string(r.dir.join("n1/node.log")).unwrap();
    assert!(log.contains("QuorumPeer"), "not ZooKeeper's log:\n{log}");
}

/// A spec whose ZooKeeper jar is missing fails before anything starts, with one line that
/// names the Debian package.
#[test]
fn missing_zookeeper_is_one_line_naming_the_package() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("zk.toml");
    let text = harness::sut::BUILTIN
        .iter()
        .find(|(n, _)| *n == "zookeeper")
        .unwrap()
        .1
        .replace(
            "path = \"/usr/share/java/zookeeper.jar\"",
            "path = \"/nonexistent/zookeeper.jar\"",
        );
    std::fs::write(&spec, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_stasis"))
        .args([
            "test",
            "--sut",
            spec.to_str().unwrap(),
            "--time-limit",
            "5s",
        ])
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/nonexistent/zookeeper.jar is missing: apt-get install zookeeper"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[test]
fn clock_nemesis_is_refused_for_zookeeper() {
    let out = Command::new(env!("CARGO_BIN_EXE_stasis"))
        .args(["test", "--sut", "zookeeper", "--nemesis", "clock"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("cannot move zookeeper's clock"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

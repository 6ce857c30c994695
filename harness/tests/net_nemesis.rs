//! The net nemesis end to end: a run under network faults over a baseline latency passes
//! with probe evidence recorded; a harness killed while a network fault is on leaves a
//! cluster that still talks (`--queue-bypass`), and `stasis clean` removes everything;
//! Ctrl-C heals and removes everything. Needs root (CI runs as root).

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use harness::netfault::probe::{self, UdpPlan};
use harness::netfault::queue;
use serde_json::Value;

#[test]
fn net_faults_over_a_baseline_latency_pass_with_evidence() {
    let r = stasis_test(&[
        "--nemesis",
        "net",
        "--net-latency",
        "5ms±2ms",
        "--time-limit",
        "20s",
        "--nemesis-interval",
        "2s",
    ]);
    assert_clean_pass(&r, &["net"], 200);
    assert!(r.text.contains("baseline latency 5ms±2ms"), "{}", r.text);
    assert!(r.text.contains("packet delayer:"), "{}", r.text);
    let results: Value =
        serde_json::from_slice(&std::fs::read(r.dir.join("results.json")).unwrap()).unwrap();
    let evidence = results["faults"].to_string();
    assert!(evidence.contains("healed:"), "{evidence}");
    let harness: Value =
        serde_json::from_slice(&std::fs::read(r.dir.join("harness.json")).unwrap()).unwrap();
    assert!(
        harness["net_delayer"]["queued"].as_u64().unwrap() > 1000,
        "{harness}"
    );
}

/// Starts a net-nemesis run in the background; returns once a network fault is on.
#[allow(clippy::zombie_processes)]
fn start_background(store: &Path) -> (std::process::Child, std::path::PathBuf) {
    require_root();
    let child = Command::new(env!("CARGO_BIN_EXE_stasis"))
        .arg("test")
        .args(["--store", store.to_str().unwrap()])
        .args(["--node-bin", node_bin().to_str().unwrap()])
        .args([
            "--nemesis",
            "net",
            "--net-faults",
            "delay",
            "--time-limit",
            "60s",
            "--nemesis-interval",
            "4s",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(dir) = store.join("latest").canonicalize()
            && let Ok(text) = std::fs::read_to_string(dir.join("history.jsonl"))
            && text.matches("\"start-net\"").count() > text.matches("\"stop-net\"").count()
        {
            return (child, dir);
        }
        if Instant::now() > deadline {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let out = child.wait_with_output();
            panic!("no network fault started: {out:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn namespaces_and_addrs(dir: &Path) -> (Vec<String>, Vec<std::net::Ipv4Addr>) {
    let test: Value =
        serde_json::from_slice(&std::fs::read(dir.join("test.json")).unwrap()).unwrap();
    let ns: Vec<String> = test["topology"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    let subnet = test["topology"]["subnet"].as_str().unwrap();
    let third: u8 = subnet.split('.').nth(2).unwrap().parse().unwrap();
    let addrs = (0..ns.len())
        .map(|k| std::net::Ipv4Addr::new(10, 211, third, k as u8 + 2))
        .collect();
    (ns, addrs)
}

#[test]
fn a_killed_harness_fails_open_and_clean_removes_everything() {
    let store = tempfile::tempdir().unwrap();
    let (mut child, dir) = start_background(store.path());
    let (ns, addrs) = namespaces_and_addrs(&dir);
    assert!(
        queue::has_chain(Some(&ns[0])).unwrap(),
        "no delayer chain in {}",
        ns[0]
    );
    let pid = child.id();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    child.wait().unwrap();
    // The rules are still there, but nobody holds the queue: packets pass undelayed.
    assert!(queue::has_chain(Some(&ns[0])).unwrap());
    let plan = UdpPlan {
        count: 50,
        size: 64,
        gap: Duration::from_millis(2),
        linger: Duration::from_millis(300),
    };
    let m = probe::udp(&ns[0], &ns[1], addrs[1], plan).unwrap();
    assert_eq!(m.loss(), 0.0, "{m:?}");
    assert!(m.median_ms < 5.0, "{m:?}");
    let out = Command::new(env!("CARGO_BIN_EXE_stasis"))
        .arg("clean")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_nothing_left(&dir, pid);
    for n in &ns {
        assert!(!harness::net::netns_path(n).exists(), "{n} left behind");
    }
}

#[test]
fn ctrl_c_during_a_network_fault_heals_and_cleans_up() {
    let store = tempfile::tempdir().unwrap();
    let (child, dir) = start_background(store.path());
    let pid = child.id();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert_nothing_left(&dir, pid);
}

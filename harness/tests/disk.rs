//! The disk nemesis end to end (root, namespaces, /dev/fuse): a correct node stays
//! linearizable through power losses, corruption, a full and a slow disk; the faults'
//! evidence is in the history; no mount outlives the run, even a SIGKILLed one (after
//! `stasis clean`) or an interrupted one.

mod common;

use std::process::Command;

use checker::history::{Process, read_jsonl};
use common::{assert_clean_pass, assert_nothing_left, start_background, stasis_test};

fn our_mounts(dir: &std::path::Path) -> usize {
    let run = dir.to_string_lossy().into_owned();
    std::fs::read_to_string("/proc/mounts")
        .unwrap()
        .lines()
        .filter(|l| {
            l.split_whitespace()
                .nth(1)
                .is_some_and(|m| m.starts_with(&run))
        })
        .count()
}

#[test]
fn raft_survives_every_disk_fault_with_evidence() {
    let run = stasis_test(&[
        "--nemesis",
        "disk",
        "--time-limit",
        "30s",
        "--nemesis-interval",
        "2s",
        "--seed",
        "3",
    ]);
    assert_clean_pass(&run, &["disk"], 200);
    let h = read_jsonl(&run.dir.join("history.jsonl")).unwrap();
    let starts: Vec<String> = h
        .ops
        .iter()
        .filter(|o| o.process == Process::Nemesis && o.f == "start-disk")
        .map(|o| serde_json::to_string(&o.value).unwrap())
        .collect();
    assert!(starts.len() >= 4, "{starts:?}");
    // A loss reports what it dropped.
    assert!(
        starts
            .iter()
            .any(|s| s.contains("lose-unfsynced") && s.contains("bytes_dropped")),
        "{starts:?}"
    );
    // The filesystem really was under the data directories while the run lasted.
    let test = std::fs::read_to_string(run.dir.join("test.json")).unwrap();
    assert!(test.contains("\"nemesis\": \"disk\""), "{test}");
    assert!(run.dir.join("n1/disk/root").is_dir());
}

#[test]
fn corrupt_only_when_asked_by_kind() {
    let run = stasis_test(&[
        "--nemesis",
        "corrupt",
        "--time-limit",
        "20s",
        "--nemesis-interval",
        "2s",
        "--seed",
        "5",
    ]);
    assert_clean_pass(&run, &["disk"], 100);
    let results = std::fs::read_to_string(run.dir.join("results.json")).unwrap();
    let h = read_jsonl(&run.dir.join("history.jsonl")).unwrap();
    for o in h.ops.iter().filter(|o| o.process == Process::Nemesis) {
        if o.f == "start-disk" {
            let v = serde_json::to_string(&o.value).unwrap();
            assert!(v.contains("\"kind\":\"corrupt\""), "{v}");
            assert!(v.contains("\"corrupted\""), "{v}");
        }
        if o.f == "stop-disk" {
            // Either it came back or it refused its data: recorded either way.
            let v = serde_json::to_string(&o.value).unwrap();
            assert!(v.contains("running") || v.contains("refused"), "{v}");
        }
    }
    assert!(results.contains("corrupt"), "{results}");
}

#[test]
fn sigkilled_harness_leaves_mounts_that_clean_removes() {
    let store = tempfile::tempdir().unwrap();
    let (mut child, dir) = start_background(
        store.path(),
        &[
            "--nemesis",
            "slow-disk",
            "--time-limit",
            "60s",
            "--nemesis-interval",
            "2s",
        ],
        "start-disk",
    );
    let pid = child.id();
    assert_eq!(our_mounts(&dir), 3);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    child.wait().unwrap();
    assert_eq!(
        our_mounts(&dir),
        3,
        "the mounts outlive a SIGKILLed harness"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_stasis"))
        .arg("clean")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("3 disk mounts"), "{text}");
    assert_eq!(our_mounts(&dir), 0);
    assert_nothing_left(&dir, pid);
}

#[test]
fn interrupted_and_terminated_runs_unmount() {
    for sig in [
        nix::sys::signal::Signal::SIGINT,
        nix::sys::signal::Signal::SIGTERM,
    ] {
        let store = tempfile::tempdir().unwrap();
        let (child, dir) = start_background(
            store.path(),
            &[
                "--nemesis",
                "disk-full",
                "--time-limit",
                "60s",
                "--nemesis-interval",
                "2s",
            ],
            "start-disk",
        );
        let pid = child.id();
        assert_eq!(our_mounts(&dir), 3);
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig).unwrap();
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(3), "{sig}");
        assert_eq!(our_mounts(&dir), 0, "{sig}");
        assert_nothing_left(&dir, pid);
    }
}

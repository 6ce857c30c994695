//! `stasis test` end to end against real `stasis-node` processes in namespaces. Needs
//! root (CI runs as root) and the node binary, which `cargo test --workspace` builds.
//!
//! Each run is short (about 15 s of workload) and must end linearizable with a few hundred
//! ok operations, its nemesis events in the history, and nothing left behind.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use checker::history::{OpType, Process, read_jsonl};
use serde_json::Value;

fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "these tests need root (namespaces, iptables): run them as root, as CI does"
    );
}

fn node_bin() -> PathBuf {
    let p = Path::new(env!("CARGO_BIN_EXE_stasis")).with_file_name("stasis-node");
    assert!(
        p.is_file(),
        "{} is missing: run the tests with `cargo test --workspace` (it builds stasis-node)",
        p.display()
    );
    p
}

struct Run {
    out: Output,
    text: String,
    dir: PathBuf,
    _store: tempfile::TempDir,
}

fn stasis_test(args: &[&str]) -> Run {
    require_root();
    let store = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_stasis"))
        .arg("test")
        .args(["--store", store.path().to_str().unwrap()])
        .args(["--node-bin", node_bin().to_str().unwrap()])
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = store
        .path()
        .join("latest")
        .canonicalize()
        .unwrap_or_default();
    Run {
        out,
        text,
        dir,
        _store: store,
    }
}

/// Asserts the run passed and left a complete, checkable run directory.
fn assert_clean_pass(run: &Run, families: &[&str], min_ok: usize) {
    let t = &run.text;
    assert_eq!(run.out.status.code(), Some(0), "run failed:\n{t}");
    for f in [
        "test.json",
        "history.jsonl",
        "results.json",
        "summary.txt",
        "n1/node.log",
    ] {
        assert!(
            run.dir.join(f).is_file(),
            "{f} missing in {}",
            run.dir.display()
        );
    }
    let h = read_jsonl(&run.dir.join("history.jsonl")).unwrap();
    let ok = h
        .ops
        .iter()
        .filter(|o| o.kind == OpType::Ok && o.process != Process::Nemesis)
        .count();
    assert!(ok >= min_ok, "only {ok} ok operations:\n{t}");
    for fam in families {
        let start = format!("start-{fam}");
        let stop = format!("stop-{fam}");
        assert!(
            h.ops
                .iter()
                .any(|o| o.process == Process::Nemesis && o.f == start),
            "no {start} event in the history:\n{t}"
        );
        assert!(
            h.ops
                .iter()
                .any(|o| o.process == Process::Nemesis && o.f == stop),
            "no {stop} event in the history:\n{t}"
        );
    }
    let results: Value =
        serde_json::from_slice(&std::fs::read(run.dir.join("results.json")).unwrap()).unwrap();
    assert_eq!(results["verdict"], "linearizable", "{t}");
    assert_nothing_left(&run.dir);
}

/// No namespace, link or node process of this run remains.
fn assert_nothing_left(dir: &Path) {
    let test: Value =
        serde_json::from_slice(&std::fs::read(dir.join("test.json")).unwrap()).unwrap();
    let topo = &test["topology"];
    let mut objects: Vec<String> = vec![topo["bridge"].as_str().unwrap().to_owned()];
    for k in ["namespaces", "links"] {
        for v in topo[k].as_array().unwrap() {
            objects.push(v.as_str().unwrap().to_owned());
        }
    }
    assert!(objects.len() >= 3, "{topo}");
    let present: Vec<String> = harness::net::stasis_namespaces()
        .into_iter()
        .chain(harness::net::stasis_links())
        .collect();
    let left: Vec<&String> = objects.iter().filter(|o| present.contains(o)).collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    // Node processes carry the run directory in their argv (--data-dir).
    let run = dir.to_string_lossy().into_owned();
    let mut alive = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline"))
            && String::from_utf8_lossy(&cmd).contains(&run)
        {
            alive.push(pid);
        }
    }
    assert!(
        alive.is_empty(),
        "node processes of {run} still alive: {alive:?}"
    );
}

#[test]
fn kill() {
    let r = stasis_test(&[
        "--nemesis",
        "kill",
        "--time-limit",
        "15s",
        "--nemesis-interval",
        "3s",
    ]);
    assert_clean_pass(&r, &["kill"], 200);
}

#[test]
fn pause() {
    let r = stasis_test(&[
        "--nemesis",
        "pause",
        "--time-limit",
        "15s",
        "--nemesis-interval",
        "3s",
    ]);
    assert_clean_pass(&r, &["pause"], 200);
}

#[test]
fn partition() {
    let r = stasis_test(&[
        "--nemesis",
        "partition",
        "--time-limit",
        "15s",
        "--nemesis-interval",
        "3s",
    ]);
    assert_clean_pass(&r, &["partition"], 200);
}

#[test]
fn clock() {
    let r = stasis_test(&[
        "--nemesis",
        "clock",
        "--time-limit",
        "15s",
        "--nemesis-interval",
        "3s",
    ]);
    assert_clean_pass(&r, &["clock"], 200);
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
        "20s",
        "--nemesis-interval",
        "2s",
    ]);
    assert_clean_pass(&r, &["kill", "pause", "partition", "clock"], 200);
}

#[test]
fn all_faults_three_nodes() {
    let r = stasis_test(&[
        "--nemesis",
        "all",
        "--time-limit",
        "20s",
        "--nemesis-interval",
        "2s",
    ]);
    assert_clean_pass(&r, &["kill", "pause", "partition", "clock"], 200);
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

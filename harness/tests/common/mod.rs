//! Helpers shared by the end-to-end test files: run `stasis test` as a child process and
//! check what it left behind.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use checker::history::{OpType, Process, read_jsonl};
use serde_json::Value;

pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "these tests need root (namespaces, iptables): run them as root, as CI does"
    );
}

pub fn node_bin() -> PathBuf {
    let p = Path::new(env!("CARGO_BIN_EXE_stasis")).with_file_name("stasis-node");
    assert!(
        p.is_file(),
        "{} is missing: run the tests with `cargo test --workspace` (it builds stasis-node)",
        p.display()
    );
    p
}

pub struct Run {
    pub pid: u32,
    pub out: Output,
    pub text: String,
    pub dir: PathBuf,
    pub store: tempfile::TempDir,
}

pub fn stasis_test(args: &[&str]) -> Run {
    require_root();
    let store = tempfile::tempdir().unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_stasis"))
        .arg("test")
        .args(["--store", store.path().to_str().unwrap()])
        .args(["--node-bin", node_bin().to_str().unwrap()])
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
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
        pid,
        out,
        text,
        dir,
        store,
    }
}

/// Asserts the run passed and left a complete, checkable run directory.
pub fn assert_clean_pass(run: &Run, families: &[&str], min_ok: usize) {
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
    assert_nothing_left(&run.dir, run.pid);
}

/// No namespace, link or node process of this run (made by harness process `pid`) remains.
pub fn assert_nothing_left(dir: &Path, pid: u32) {
    let test: Value =
        serde_json::from_slice(&std::fs::read(dir.join("test.json")).unwrap()).unwrap();
    let id = test["topology"]["id"].as_str().unwrap();
    let left = harness::cleanup::leftovers(id, pid);
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
    // Disk-fault mounts live under the run directory.
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
    let left: Vec<&str> = mounts
        .lines()
        .filter(|l| {
            l.split_whitespace()
                .nth(1)
                .is_some_and(|m| m.starts_with(&run))
        })
        .collect();
    assert!(left.is_empty(), "mounts of {run} left: {left:?}");
}

/// The `--node-arg` values a run was started with (from its test.json).
pub fn node_args_of(run_dir: &std::path::Path) -> Vec<String> {
    let test: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run_dir.join("test.json")).unwrap()).unwrap();
    test["args"]["node_args"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect()
}

/// Runs `stasis selftest --case CASE` with a budget of `budget` (e.g. `100s`), requires
/// exit 0 and the case caught, and returns the store (removed when dropped) and the first
/// violation's run directory.
pub fn selftest_catches(case: &str, budget: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let store = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_stasis"))
        .arg("selftest")
        .args(["--store", store.path().to_str().unwrap()])
        .args(["--node-bin", node_bin().to_str().unwrap()])
        .args(["--time-limit-per-case", budget])
        .args(["--case", case])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let text = format!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "selftest failed:\n{text}");
    let json_path = stdout
        .lines()
        .find_map(|l| l.strip_prefix("selftest.json: "))
        .unwrap_or_else(|| panic!("no selftest.json path printed:\n{text}"));
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(json_path).unwrap()).unwrap();
    let c = &v["cases"][0];
    assert_eq!(c["case"], case);
    assert_eq!(c["caught"], 1, "{text}");
    let dir = std::path::PathBuf::from(c["first_violation_dir"].as_str().unwrap());
    assert!(dir.join("explanation.txt").is_file());
    (store, dir)
}

/// Starts `stasis test ARGS` in the background and waits until its history has ok
/// operations and contains `marker` (e.g. a fault's start event).
// The child is returned to the caller, which signals and waits on it; on the failure path
// it is waited here. Clippy's zombie check does not follow the return.
#[allow(clippy::zombie_processes)]
pub fn start_background(
    store: &Path,
    args: &[&str],
    marker: &str,
) -> (std::process::Child, PathBuf) {
    require_root();
    let child = Command::new(env!("CARGO_BIN_EXE_stasis"))
        .arg("test")
        .args(["--store", store.to_str().unwrap()])
        .args(["--node-bin", node_bin().to_str().unwrap()])
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        if let Ok(dir) = store.join("latest").canonicalize()
            && let Ok(text) = std::fs::read_to_string(dir.join("history.jsonl"))
            && text.matches("\"type\":\"ok\"").count() > 50
            && text.contains(marker)
        {
            return (child, dir);
        }
        if std::time::Instant::now() > deadline {
            // Stop the run (it cleans up on SIGTERM) before failing.
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let out = child.wait_with_output();
            panic!("the run never got going: {out:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

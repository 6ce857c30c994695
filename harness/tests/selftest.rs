//! `stasis selftest` end to end: a few seeded bugs that are caught fast and reliably must
//! be caught, and the correct Raft build must stay clean under the same schedules. Needs
//! root (CI runs as root) and the node binary. At most about 5 minutes.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use serde_json::Value;

/// Bugs the selftest catches within one attempt or two (see README, Selftest).
const BUGS: [&str; 3] = [
    "raft/stale-read",
    "raft/commit-minority",
    "multipaxos/disjoint-quorums",
];

#[test]
fn selftest_catches_seeded_bugs_and_passes_the_correct_build() {
    require_root();
    let store = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_stasis"));
    cmd.arg("selftest")
        .args(["--store", store.path().to_str().unwrap()])
        .args(["--node-bin", node_bin().to_str().unwrap()])
        .args(["--time-limit-per-case", "60s"]);
    for c in BUGS.iter().chain(&["raft/correct"]) {
        cmd.args(["--case", c]);
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let text = format!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "selftest failed:\n{text}");

    // The table: a header and one line per case, in the order given.
    let header = stdout
        .lines()
        .position(|l| l.starts_with("case ") && l.contains("first violation"))
        .unwrap_or_else(|| panic!("no table:\n{text}"));
    let rows: Vec<&str> = stdout.lines().skip(header + 1).take(4).collect();
    for (row, case) in rows.iter().zip(BUGS) {
        assert!(row.starts_with(&format!("{case} ")), "{row}\n{text}");
        assert!(row.contains(" 1/1 "), "{case} not caught: {row}");
    }
    assert!(rows[3].starts_with("raft/correct ") && rows[3].contains(" 0/1 "));
    assert!(!text.contains("NOT CAUGHT") && !text.contains("HARNESS ERROR"));

    // selftest.json: its path is printed and it lives under STORE/selftest/<timestamp>/.
    let json_path = PathBuf::from(
        stdout
            .lines()
            .find_map(|l| l.strip_prefix("selftest.json: "))
            .unwrap_or_else(|| panic!("no selftest.json path printed:\n{text}")),
    );
    assert_eq!(
        json_path.parent().unwrap().parent().unwrap(),
        store.path().join("selftest")
    );
    let v: Value = serde_json::from_slice(&std::fs::read(&json_path).unwrap()).unwrap();
    assert_eq!(v["exit_code"], 0);
    assert_eq!(v["time_limit_per_case_s"], 60.0);
    let cases = v["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 4);
    for c in &cases[..3] {
        let id = c["case"].as_str().unwrap();
        assert_eq!(c["expect"], "violation", "{id}");
        assert_eq!(
            (c["runs"].as_u64(), c["caught"].as_u64()),
            (Some(1), Some(1))
        );
        assert_eq!(c["ok"], true, "{id}");
        assert_eq!(c["bug"], id.split('/').nth(1).unwrap());
        let run = &c["case_runs"][0];
        let t = run["time_to_violation_s"].as_f64().unwrap();
        assert_eq!(c["median_s"].as_f64(), Some(t), "{id}");
        // The violation was found by the last attempt, and the time ends with it.
        let attempts = run["attempts"].as_array().unwrap();
        let last = attempts.last().unwrap();
        assert_eq!(last["verdict"], "not-linearizable", "{id}");
        assert_eq!(last["ended_s"].as_f64(), Some(t));
        for a in attempts {
            assert!(a["seed"].as_u64().is_some(), "{a}");
            assert!(
                stdout.contains(&format!("seed {}", a["seed"])),
                "seed not printed"
            );
        }
        let dir = Path::new(c["first_violation_dir"].as_str().unwrap());
        assert_eq!(last["run_dir"].as_str(), dir.to_str());
        assert!(
            dir.starts_with(json_path.parent().unwrap()),
            "{}",
            dir.display()
        );
        for f in [
            "explanation.txt",
            "timeline.html",
            "history.jsonl",
            "test.json",
        ] {
            assert!(
                dir.join(f).is_file(),
                "{id}: {f} missing in {}",
                dir.display()
            );
        }
        // The run used the buggy node.
        let node_args = node_args_of(dir);
        assert!(
            node_args
                .windows(2)
                .any(|w| w == ["--bug", c["bug"].as_str().unwrap()])
        );
        assert!(stdout.contains(&dir.display().to_string()));
    }
    let correct = &cases[3];
    assert_eq!(correct["case"], "raft/correct");
    assert_eq!(correct["expect"], "none");
    assert_eq!(
        (correct["caught"].as_u64(), correct["ok"].as_bool()),
        (Some(0), Some(true))
    );
    assert!(correct["first_violation_dir"].is_null() && correct["median_s"].is_null());
    // The correct build got the whole budget: attempts until fewer than 6 s were left.
    let run = &correct["case_runs"][0];
    assert!(run["elapsed_s"].as_f64().unwrap() >= 54.0, "{run}");
    for a in run["attempts"].as_array().unwrap() {
        assert_ne!(a["verdict"], "not-linearizable");
        let dir = Path::new(a["run_dir"].as_str().unwrap());
        assert!(!dir.join("explanation.txt").exists());
    }
}

#[test]
fn unknown_case_is_bad_input() {
    let out = Command::new(env!("CARGO_BIN_EXE_stasis"))
        .args(["selftest", "--case", "raft/no-such-bug", "--store"])
        .arg(std::env::temp_dir().join("stasis-selftest-unused"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unknown case \"raft/no-such-bug\": use one of raft/stale-read"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

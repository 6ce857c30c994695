//! `stasis replay`: a new run with a stored run's options, seed and nemesis schedule.

mod common;

use std::path::Path;
use std::process::Command;

use serde_json::Value;

fn replay(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_stasis"))
        .arg("replay")
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

fn read_json(p: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

/// The options that must match (the store, the node binary and the test name are where
/// the new run goes, not what it does).
fn options(test: &Value) -> Value {
    let mut a = test["args"].clone();
    let o = a.as_object_mut().unwrap();
    for k in ["store", "node_bin", "name", "seed"] {
        o.remove(k);
    }
    a
}

#[test]
fn replay_repeats_seed_schedule_and_options() {
    let original = common::stasis_test(&[
        "--time-limit",
        "8s",
        "--nemesis",
        "kill,partition",
        "--nemesis-interval",
        "2s",
        "--keys",
        "5",
        "--seed",
        "4242",
    ]);
    assert_eq!(original.out.status.code(), Some(0), "{}", original.text);
    let old = read_json(&original.dir.join("test.json"));
    assert!(
        !old["schedule"].as_array().unwrap().is_empty(),
        "the original run should have scheduled faults: {old}"
    );

    let store = tempfile::tempdir().unwrap();
    let node = common::node_bin();
    let (code, text) = replay(&[
        original.dir.to_str().unwrap(),
        "--store",
        store.path().to_str().unwrap(),
        "--node-bin",
        node.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains(
            "process timing is not reproduced (only the nemesis schedule and the workload are)"
        ),
        "{text}"
    );
    let new_dir = store.path().join("latest").canonicalize().unwrap();
    assert_ne!(new_dir, original.dir);
    let new = read_json(&new_dir.join("test.json"));
    assert_eq!(new["seed"], 4242);
    assert_eq!(new["seed"], old["seed"]);
    assert_eq!(new["schedule"], old["schedule"]);
    assert_eq!(options(&new), options(&old));
    assert_eq!(new["args"]["keys"], 5);
    assert_eq!(
        new["replay_of"].as_str(),
        Some(original.dir.to_str().unwrap())
    );
    // The replay ran under the same test name, and was checked.
    assert_eq!(
        new_dir.parent().unwrap().file_name(),
        original.dir.parent().unwrap().file_name()
    );
    let results = read_json(&new_dir.join("results.json"));
    assert_eq!(results["verdict"], "linearizable");
}

#[test]
fn replay_refuses_what_it_cannot_replay() {
    let tmp = tempfile::tempdir().unwrap();
    // Not a run directory.
    let (code, text) = replay(&[tmp.path().to_str().unwrap()]);
    assert_eq!(code, Some(3), "{text}");
    assert_eq!(text.trim().lines().count(), 1, "{text}");
    assert!(
        text.contains("not a run directory (no test.json)"),
        "{text}"
    );

    // A test.json from another version.
    std::fs::write(
        tmp.path().join("test.json"),
        r#"{"stasis_version": "7.3.0", "seed": 1}"#,
    )
    .unwrap();
    let (code, text) = replay(&[tmp.path().to_str().unwrap()]);
    assert_eq!(code, Some(3), "{text}");
    assert_eq!(text.trim().lines().count(), 1, "{text}");
    assert!(text.contains("written by stasis 7.3.0"), "{text}");

    // Same version, but not a test.json this stasis understands.
    std::fs::write(
        tmp.path().join("test.json"),
        format!(
            r#"{{"stasis_version": "{}", "seed": 1}}"#,
            env!("CARGO_PKG_VERSION")
        ),
    )
    .unwrap();
    let (code, text) = replay(&[tmp.path().to_str().unwrap()]);
    assert_eq!(code, Some(3), "{text}");
    assert_eq!(text.trim().lines().count(), 1, "{text}");
    assert!(text.contains("cannot replay"), "{text}");
}

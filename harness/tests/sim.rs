//! `stasis sim`: deterministic simulation. Same seed, same bytes; different seeds,
//! different schedules; a seeded bug (raft/commit-minority) is found, leaves a normal run
//! directory, is shrunk, and the shrunk schedule replays and still fails. Membership
//! changes (`reconfig` faults with spare nodes): correct cores stay linearizable,
//! unsafe-reconfig is caught. Group freezes (`freeze` faults) name their groups and replay
//! bit for bit. The transport model (`tcp`) reaches forget-vote's two leaders on a seed the
//! plain network does not. Outages (`outage`) and one node's slow links (`lag`) reach
//! ack-before-fsync and lease-from-ack; `--swarm` draws a subset of the kinds per seed.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn sim(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_stasis"))
        .arg("sim")
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

/// Every run directory under `store/<test>/` (not the `latest` link), oldest first.
fn runs(store: &Path, test: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(store.join(test))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !p.is_symlink())
        .collect();
    v.sort();
    v
}

fn read_json(p: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

/// Replays the run directory `dir` into `store` without shrinking: it exits `code` and its
/// history is byte-identical to the run's. Returns the replay's run directory.
fn assert_replays(dir: &Path, store: &Path, test: &str, code: i32) -> PathBuf {
    let (got, text) = sim(&[
        "--replay",
        dir.to_str().unwrap(),
        "--no-shrink",
        "--store",
        store.to_str().unwrap(),
    ]);
    assert_eq!(got, Some(code), "{test} replay: {text}");
    let replayed = runs(store, test).remove(0);
    assert!(
        std::fs::read(replayed.join("history.jsonl")).unwrap()
            == std::fs::read(dir.join("history.jsonl")).unwrap(),
        "{test}: the replay differs"
    );
    replayed
}

#[test]
fn same_seed_gives_byte_identical_histories_and_different_seeds_differ() {
    let tmp = tempfile::tempdir().unwrap();
    let mut histories = Vec::new();
    for (i, seed) in ["11", "11", "12"].iter().enumerate() {
        let store = tmp.path().join(format!("s{i}"));
        let (code, text) = sim(&[
            "--protocol",
            "multipaxos",
            "--seed",
            seed,
            "--sim-time",
            "4s",
            "--keep",
            "--store",
            store.to_str().unwrap(),
        ]);
        assert_eq!(code, Some(0), "{text}");
        let dir = &runs(&store, "sim-multipaxos")[0];
        let history = std::fs::read(dir.join("history.jsonl")).unwrap();
        assert!(history.len() > 10_000, "{text}");
        assert!(dir.join("report.html").is_file() && dir.join("results.json").is_file());
        let test = read_json(&dir.join("test.json"));
        histories.push((history, test["schedule"].clone()));
    }
    assert!(
        histories[0].0 == histories[1].0,
        "same seed, different histories"
    );
    assert_eq!(histories[0].1, histories[1].1);
    assert_ne!(
        histories[0].1, histories[2].1,
        "different seeds, same schedule"
    );
    assert!(histories[0].0 != histories[2].0);
}

#[test]
fn a_seeded_bug_is_found_shrunk_and_replayed() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().to_str().unwrap();
    let (code, text) = sim(&[
        "--bug",
        "commit-minority",
        "--nodes",
        "3",
        "--seed",
        "1",
        "--seeds",
        "40",
        "--sim-time",
        "5s",
        "--store",
        store,
    ]);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("NOT LINEARIZABLE") && text.contains("smallest failing schedule"),
        "{text}"
    );
    let dirs = runs(tmp.path(), "sim-raft-commit-minority");
    assert_eq!(dirs.len(), 2, "{text}");
    let (found, shrunk) = (&dirs[0], &dirs[1]);
    for d in [found, shrunk] {
        let results = read_json(&d.join("results.json"));
        assert_eq!(results["verdict"], "not-linearizable", "{}", d.display());
        assert!(d.join("report.html").is_file() && d.join("explanation.txt").is_file());
    }
    let a = read_json(&found.join("test.json"));
    let b = read_json(&shrunk.join("test.json"));
    let n = |v: &Value| v["schedule"].as_array().unwrap().len();
    assert!(n(&b) <= n(&a));
    assert!(
        n(&b) < n(&a) || b["sim_time_ns"].as_u64() < a["sim_time_ns"].as_u64(),
        "nothing was shrunk: {text}"
    );
    // The shrunk schedule replays bit for bit and still fails.
    let again = &assert_replays(
        shrunk,
        &tmp.path().join("replay"),
        "sim-raft-commit-minority",
        1,
    );
    // `stasis check` reads the history like any other run's.
    let out = Command::new(env!("CARGO_BIN_EXE_stasis"))
        .arg("check")
        .arg(again.join("history.jsonl"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn shrinking_removes_nodes_that_the_failure_does_not_need() {
    // stale-read on five nodes, seed 23, the node's default settings: a violation that
    // three nodes still show.
    let tmp = tempfile::tempdir().unwrap();
    let (code, text) = sim(&[
        "--settings",
        "default",
        "--bug",
        "stale-read",
        "--nodes",
        "5",
        "--seed",
        "23",
        "--sim-time",
        "5s",
        "--store",
        tmp.path().to_str().unwrap(),
    ]);
    assert_eq!(code, Some(1), "{text}");
    let dirs = runs(tmp.path(), "sim-raft-stale-read");
    assert_eq!(dirs.len(), 2, "{text}");
    let shrunk = read_json(&dirs[1].join("test.json"));
    let nodes = shrunk["nodes"].as_u64().unwrap();
    assert!(nodes < 5, "no node was removed: {text}");
    assert!(text.contains(&format!("{nodes} nodes")), "{text}");
    let results = read_json(&dirs[1].join("results.json"));
    assert_eq!(results["verdict"], "not-linearizable");
}

#[test]
fn bad_input_is_a_one_line_error() {
    for args in [
        &["--protocol", "zab"][..],
        &["--faults", "crash,meteor"],
        &["--bug", "no-fencing"],
        &["--replay", "/nonexistent/run"],
    ] {
        let (code, text) = sim(args);
        assert_eq!(code, Some(3), "{args:?}: {text}");
        assert_eq!(text.trim().lines().count(), 1, "{args:?}: {text}");
    }
}

/// The selftest's unsafe-reconfig plan as `stasis sim` flags: 3 voters and 2 spares, its
/// fast elections, `selftest --sim`'s fault kinds plus membership changes, 20 s.
const RECONFIG_PLAN: &[&str] = &[
    "--nodes",
    "3",
    "--spares",
    "2",
    "--node-arg=--tick-ms",
    "--node-arg=10",
    "--node-arg=--election-ticks",
    "--node-arg=60",
    "--node-arg=--heartbeat-ticks",
    "--node-arg=10",
    "--faults",
    "crash,pause,partition,net,drift,clock,bounce,reconfig",
    "--sim-time",
    "20s",
];

/// The seeds the unsafe-reconfig test runs (checked: the first failing seed of each
/// protocol is among them) and the correct cores pass.
// Re-checked after the client's route (client::route, 2026-12-07) altered the schedules:
// the first failing seeds are now 101 (raft) and 105 (multipaxos; 222 of seeds 100-499
// fail, all by linearizability); the correct cores pass 100-105 with 0 violations.
const RECONFIG_SEEDS: (&str, &str) = ("100", "6");

#[test]
fn correct_cores_stay_linearizable_under_membership_changes() {
    let tmp = tempfile::tempdir().unwrap();
    for protocol in ["raft", "multipaxos"] {
        let store = tmp.path().join(protocol);
        let mut args = vec![
            "--protocol",
            protocol,
            "--seed",
            RECONFIG_SEEDS.0,
            "--seeds",
            RECONFIG_SEEDS.1,
            "--keep",
            "--store",
            store.to_str().unwrap(),
        ];
        args.extend_from_slice(RECONFIG_PLAN);
        let (code, text) = sim(&args);
        assert_eq!(code, Some(0), "{protocol}: {text}");
        // The changes happened: some were acknowledged and shown by the leader, and a
        // spare (n4, n5) became a voter.
        let (mut done, mut spare_voted) = (0, false);
        for dir in runs(&store, &format!("sim-{protocol}")) {
            let history = std::fs::read_to_string(dir.join("history.jsonl")).unwrap();
            for line in history.lines().filter(|l| l.contains("start-reconfig-")) {
                let v: Value = serde_json::from_str(line).unwrap();
                if v["value"]["outcome"] == "ok" && v["value"]["verified"] == true {
                    done += 1;
                    let to = v["value"]["to"].as_array().unwrap();
                    spare_voted |= to.iter().any(|n| n == "n4" || n == "n5");
                }
            }
        }
        assert!(
            done >= 2 && spare_voted,
            "{protocol}: {done} changes: {text}"
        );
    }
}

#[test]
fn unsafe_reconfig_is_caught_under_membership_changes_and_replays() {
    let tmp = tempfile::tempdir().unwrap();
    for protocol in ["raft", "multipaxos"] {
        let store = tmp.path().join(protocol);
        let mut args = vec![
            "--protocol",
            protocol,
            "--bug",
            "unsafe-reconfig",
            "--seed",
            RECONFIG_SEEDS.0,
            "--seeds",
            RECONFIG_SEEDS.1,
            "--no-shrink",
            "--store",
            store.to_str().unwrap(),
        ];
        args.extend_from_slice(RECONFIG_PLAN);
        let (code, text) = sim(&args);
        assert_eq!(code, Some(1), "{protocol}: {text}");
        let dir = &runs(&store, &format!("sim-{protocol}-unsafe-reconfig"))[0];
        let test = read_json(&dir.join("test.json"));
        assert_eq!(test["spares"], 2);
        assert_eq!(test["spares_list"], serde_json::json!(["n4", "n5"]));
        assert!(
            test["schedule"]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f["kind"] == "reconfig"),
            "{test}"
        );
        // The failing schedule replays bit for bit.
        assert_replays(
            dir,
            &tmp.path().join(format!("{protocol}-replay")),
            &format!("sim-{protocol}-unsafe-reconfig"),
            1,
        );
    }
}

/// `persist` faults (kills at storage events): raft seed 710658 with drawn settings (a
/// snapshot every 25 entries) killed a node between a snapshot's rename and the directory
/// fsync, then a power loss left a log starting after a missing snapshot: the node could
/// not restart (exit 3, a harness error) until the snapshot directory was fsynced at open.
/// The correct cores now pass it, and their histories replay bit for bit.
#[test]
fn correct_cores_survive_kills_at_storage_events() {
    let tmp = tempfile::tempdir().unwrap();
    for protocol in ["raft", "multipaxos"] {
        let mut histories = Vec::new();
        for k in 0..2 {
            let store = tmp.path().join(format!("{protocol}{k}"));
            let (code, text) = sim(&[
                "--protocol",
                protocol,
                "--faults",
                "all,persist",
                "--seed",
                "710658",
                "--sim-time",
                "10s",
                "--keep",
                "--store",
                store.to_str().unwrap(),
            ]);
            assert_eq!(code, Some(0), "{protocol}: {text}");
            let dir = &runs(&store, &format!("sim-{protocol}"))[0];
            let test = read_json(&dir.join("test.json"));
            assert!(
                test["schedule"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|f| f["kind"] == "persist"),
                "{test}"
            );
            histories.push(std::fs::read(dir.join("history.jsonl")).unwrap());
        }
        assert!(
            histories[0] == histories[1],
            "{protocol}: the replay differs"
        );
    }
}

/// The Multi-Paxos findings of the 20-minute sweep under every fault kind at once
/// (`--faults all,persist,stall,reconfig --sim-time 4s`, docs/BENCHMARKS.md "Correct cores
/// under every fault kind at once"), each replayed from its seed:
/// - 16919: a removed node led with an adopted change still undecided and reported the
///   voter set from before it (exit 1: a refused change "took effect") until the leader's
///   STATUS counted the configurations it adopted;
/// - 25439: no operation completed for 12.5 s after the heal: clients bounced between a
///   removed node naming a stale leader and that leader, which knew none (exit 4) until
///   the client's route went on from its own round (`client::route`).
#[test]
fn multipaxos_findings_under_every_fault_kind_stay_fixed() {
    let tmp = tempfile::tempdir().unwrap();
    for seed in ["16919", "25439"] {
        let store = tmp.path().join(seed);
        let (code, text) = sim(&[
            "--protocol",
            "multipaxos",
            "--faults",
            "all,persist,stall,reconfig",
            "--sim-time",
            "4s",
            "--seed",
            seed,
            "--no-shrink",
            "--store",
            store.to_str().unwrap(),
        ]);
        assert_eq!(code, Some(0), "seed {seed}: {text}");
        assert!(text.contains("0 without progress"), "seed {seed}: {text}");
    }
}

/// Node review finding 2 (issue 16): a power loss while a batch's fsync is under way, on a
/// disk with no ordering guarantees (`torn`), leaves a lost sector before a kept one of that
/// unsynced batch. With the fix emulated away (damage torn only as the file's final frame,
/// no sync marks; docs/BENCHMARKS.md "Torn power losses") seed 60182 under
/// `--faults all,persist,torn --value-bytes 1024` is NODE CANNOT RESTART (exit 4: n2 refused
/// its WAL after the second power loss). The fixed WAL truncates the torn tail and the node
/// restarts: no finding.
#[test]
fn a_torn_unsynced_batch_does_not_stop_a_node_from_restarting() {
    let tmp = tempfile::tempdir().unwrap();
    let (code, text) = sim(&[
        "--protocol",
        "raft",
        "--faults",
        "all,persist,torn",
        "--sim-time",
        "4s",
        "--value-bytes",
        "1024",
        "--seed",
        "60182",
        "--no-shrink",
        "--store",
        tmp.path().to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{text}");
    assert!(!text.contains("could not restart"), "{text}");
}

/// `stasis selftest --sim` names what caught each case-run and counts stalls beside: a bug
/// caught in seconds (raft/commit-minority) is caught by `not-linearizable` or
/// `replicas-diverged`, named in the table's "caught by" column and selftest.json; the
/// correct build has no finding (no violation, no two leaders, no membership answer proved
/// false, no stall). The finding kinds themselves are tested beside the code
/// (sim::selftest).
#[test]
fn selftest_sim_names_what_caught_each_run() {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_stasis"))
        .args([
            "selftest",
            "--sim",
            "--runs",
            "1",
            "--time-limit-per-case",
            "5s",
        ])
        .args(["--case", "raft/commit-minority", "--case", "raft/correct"])
        .args(["--store", tmp.path().to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{text}");
    let header = text.lines().find(|l| l.starts_with("case ")).unwrap();
    assert!(header.contains(" caught by "), "{text}");
    let bug_line = text
        .lines()
        .find(|l| l.starts_with("raft/commit-minority "))
        .unwrap();
    let dir = std::fs::read_dir(tmp.path().join("selftest-sim"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let v = read_json(&dir.join("selftest.json"));
    let (bug, good) = (&v["cases"][0], &v["cases"][1]);
    let run = &bug["case_runs"][0];
    // Committing one acknowledgement short of a majority shows as a history that is not
    // linearizable, or first as replicas that applied different entries at one index:
    // whichever came first caught it, named alike in the table, the case and the attempt.
    let word = run["caught_by"].as_str().unwrap_or_default().to_owned();
    assert!(
        ["not-linearizable", "replicas-diverged"].contains(&word.as_str()),
        "{run}"
    );
    assert!(
        bug_line.contains(" 1/1 ") && bug_line.contains(&format!(" {word} ")),
        "{text}"
    );
    assert_eq!(bug["caught_by"][&word], 1, "{bug}");
    let last = run["attempts"].as_array().unwrap().last().unwrap();
    assert_eq!(last["finding"], word.as_str());
    assert_eq!(good["caught"], 0);
    assert_eq!(good["no_progress"], 0);
    assert_eq!(good["caught_by"], serde_json::json!({}));
    for a in good["case_runs"][0]["attempts"].as_array().unwrap() {
        assert_eq!(a["finding"], Value::Null, "{a}");
    }
}

/// `freeze` faults (several nodes paused and resumed at one instant): a correct core's
/// schedule with them passes, names the frozen group in the history, and replays bit for
/// bit.
#[test]
fn freezes_stop_groups_of_nodes_and_replay_bit_for_bit() {
    let tmp = tempfile::tempdir().unwrap();
    let mut histories = Vec::new();
    for k in 0..2 {
        let store = tmp.path().join(format!("r{k}"));
        let (code, text) = sim(&[
            "--protocol",
            "raft",
            "--faults",
            "freeze,net",
            "--seed",
            "3",
            "--sim-time",
            "4s",
            "--keep",
            "--store",
            store.to_str().unwrap(),
        ]);
        assert_eq!(code, Some(0), "{text}");
        let dir = &runs(&store, "sim-raft")[0];
        let test = read_json(&dir.join("test.json"));
        assert!(
            test["schedule"]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f["kind"] == "freeze"),
            "{test}"
        );
        let history = std::fs::read(dir.join("history.jsonl")).unwrap();
        let text = String::from_utf8_lossy(&history);
        let starts: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("\"start-freeze-"))
            .collect();
        assert!(!starts.is_empty(), "no freeze started");
        // Each names its group: two nodes or more.
        for l in &starts {
            let op: Value = serde_json::from_str(l).unwrap();
            let group = op["value"]["resolved"].as_array().unwrap();
            assert!(group.len() >= 2, "{l}");
        }
        histories.push(history);
    }
    assert!(histories[0] == histories[1], "the replay differs");
}

/// `tcp` (the runtime transport's connections): raft forget-vote seed 1051 of
/// `crash,pause,partition,net,transition,bounce` ends with two leaders in one term only
/// with the transport model (the same drawn faults without it stay clean). A voter killed
/// within 200 µs of granting n2's vote still delivers the grant (written before the kill),
/// n2's appends to it are lost on the dead connection and wait for the reconnect, and the
/// restarted voter, its vote forgotten, grants n3 in the same term first.
#[test]
fn forget_vote_two_leaders_need_the_transport_model_and_replay() {
    let tmp = tempfile::tempdir().unwrap();
    let faults = "crash,pause,partition,net,transition,bounce";
    let run = |faults: &str, store: &Path| {
        sim(&[
            "--protocol",
            "raft",
            "--bug",
            "forget-vote",
            "--nodes",
            "3",
            "--node-arg=--pre-vote",
            "--node-arg=off",
            "--faults",
            faults,
            "--seed",
            "1051",
            "--seeds",
            "1",
            "--no-shrink",
            "--store",
            store.to_str().unwrap(),
        ])
    };
    let (code, text) = run(faults, &tmp.path().join("without"));
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("0 with two leaders in one term"), "{text}");
    let store = tmp.path().join("with");
    let (code, text) = run(&format!("{faults},tcp"), &store);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("TWO LEADERS IN ONE TERM"), "{text}");
    let dir = &runs(&store, "sim-raft-forget-vote")[0];
    let test = read_json(&dir.join("test.json"));
    assert!(
        test["schedule"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["kind"] == "tcp"),
        "{test}"
    );
    assert_replays(dir, &tmp.path().join("replay"), "sim-raft-forget-vote", 1);
}

/// `outage` (several nodes losing power at one instant) and `lag` (one node's links a step
/// slower): each reaches a seeded bug the other kinds did not (ack-before-fsync needs a
/// majority to lose what it acknowledged; lease-from-ack a leader that hears its
/// followers a step late), the correct core passes the same schedule, the finding replays
/// bit for bit, and `--swarm` draws one subset of the kinds per seed, deterministically.
#[test]
fn outages_and_lagging_links_reach_durability_and_lease_bugs() {
    let tmp = tempfile::tempdir().unwrap();
    let lease = [
        "--node-arg=--tick-ms",
        "--node-arg=10",
        "--node-arg=--election-ticks",
        "--node-arg=30",
        "--node-arg=--heartbeat-ticks",
        "--node-arg=5",
        "--node-arg=--check-quorum-ticks",
        "--node-arg=200",
        "--node-arg=--read-mode",
        "--node-arg=lease",
        "--settings",
        "default",
    ];
    let cases: [(&str, &str, &str, &str, &[&str]); 2] = [
        ("ack-before-fsync", "outage", "3", "5s", &[]),
        ("lease-from-ack", "lag", "6", "10s", &lease),
    ];
    for (bug, faults, seed, time, flags) in cases {
        let run = |bug: Option<&str>, store: &Path| {
            let mut a = vec![
                "--protocol",
                "raft",
                "--nodes",
                "3",
                "--faults",
                faults,
                "--sim-time",
                time,
                "--seed",
                seed,
                "--no-shrink",
                "--store",
                store.to_str().unwrap(),
            ];
            a.extend_from_slice(flags);
            if let Some(b) = bug {
                a.extend(["--bug", b]);
            }
            sim(&a)
        };
        let store = tmp.path().join(bug);
        let (code, text) = run(Some(bug), &store);
        assert_eq!(code, Some(1), "{bug}: {text}");
        assert!(text.contains("NOT LINEARIZABLE"), "{bug}: {text}");
        let (code, text) = run(None, &tmp.path().join(format!("{bug}-correct")));
        assert_eq!(code, Some(0), "{bug}, correct core: {text}");
        let dir = &runs(&store, &format!("sim-raft-{bug}"))[0];
        let test = read_json(&dir.join("test.json"));
        let kinds: Vec<&str> = test["schedule"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["kind"].as_str().unwrap())
            .collect();
        assert!(kinds.iter().all(|k| *k == faults), "{kinds:?}");
        assert_replays(
            dir,
            &tmp.path().join(format!("{bug}-replay")),
            &format!("sim-raft-{bug}"),
            1,
        );
    }
    // Swarm: each seed's schedule draws from its own subset of the kinds, the same twice.
    let swarm = |seed: &str, store: &Path| {
        let (code, text) = sim(&[
            "--protocol",
            "raft",
            "--faults",
            "all,outage,lag",
            "--swarm",
            "--sim-time",
            "4s",
            "--seed",
            seed,
            "--keep",
            "--store",
            store.to_str().unwrap(),
        ]);
        assert_eq!(code, Some(0), "{text}");
        let test = read_json(&runs(store, "sim-raft")[0].join("test.json"));
        let mut kinds: Vec<String> = test["schedule"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["kind"].as_str().unwrap().to_owned())
            .collect();
        kinds.sort();
        kinds.dedup();
        (test["schedule"].clone(), kinds)
    };
    let a = swarm("21", &tmp.path().join("w1"));
    assert_eq!(a, swarm("21", &tmp.path().join("w2")));
    let mut subsets = std::collections::BTreeSet::new();
    for seed in ["22", "23", "24", "25"] {
        let (_, kinds) = swarm(seed, &tmp.path().join(format!("w{seed}")));
        assert!(kinds.len() < 11, "seed {seed} drew every kind: {kinds:?}");
        subsets.insert(kinds);
    }
    subsets.insert(a.1);
    assert!(subsets.len() > 2, "{subsets:?}");
}

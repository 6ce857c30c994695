//! `stasis campaign` end to end: real runs (root), the files a campaign leaves, and the
//! exit codes.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn campaign(file: &Path, store: &Path, extra: &[&str]) -> (Output, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_stasis"))
        .arg("campaign")
        .arg(file)
        .args(["--store", store.to_str().unwrap()])
        .args(extra)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out, text)
}

/// The campaign directory the run left (via `store/campaigns/latest`).
fn campaign_dir(store: &Path) -> PathBuf {
    store
        .join("campaigns/latest")
        .canonicalize()
        .expect("store/campaigns/latest points at the campaign directory")
}

fn read_json(p: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

struct Case {
    name: String,
    class: String,
    time: f64,
    /// Child element tags except system-out.
    kids: Vec<String>,
    /// The first child's message (failure, error, skipped).
    message: Option<String>,
}

struct Junit {
    attrs: Vec<(String, String)>,
    cases: Vec<Case>,
}

fn parse_junit(dir: &Path) -> Junit {
    let xml = std::fs::read_to_string(dir.join("junit.xml")).unwrap();
    let doc = roxmltree::Document::parse(&xml).expect("junit.xml is well-formed XML");
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "testsuites");
    let suite = root
        .children()
        .find(|n| n.has_tag_name("testsuite"))
        .expect("a <testsuite>");
    let attrs = ["tests", "failures", "errors", "skipped"]
        .iter()
        .map(|a| {
            let v = suite.attribute(*a).unwrap().to_owned();
            assert_eq!(root.attribute(*a), Some(v.as_str()), "testsuites {a}");
            (a.to_string(), v)
        })
        .collect();
    let cases = suite
        .children()
        .filter(|n| n.has_tag_name("testcase"))
        .map(|c| {
            let kids: Vec<roxmltree::Node> = c
                .children()
                .filter(|k| k.is_element() && !k.has_tag_name("system-out"))
                .collect();
            Case {
                name: c.attribute("name").unwrap().to_owned(),
                class: c.attribute("classname").unwrap().to_owned(),
                time: c.attribute("time").unwrap().parse().unwrap(),
                kids: kids
                    .iter()
                    .map(|k| k.tag_name().name().to_owned())
                    .collect(),
                message: kids
                    .first()
                    .and_then(|k| k.attribute("message"))
                    .map(str::to_owned),
            }
        })
        .collect();
    Junit { attrs, cases }
}

fn attr(j: &Junit, name: &str) -> String {
    j.attrs.iter().find(|(k, _)| k == name).unwrap().1.clone()
}

#[test]
fn tiny_campaign_passes_and_its_records_match_the_runs() {
    common::require_root();
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("tiny.toml");
    std::fs::write(
        &file,
        r#"
name = "tiny"
budget = "3m"
time_limit = "8s"
systems = ["raft"]
nemesis = ["kill"]
seeds = [101, 202]
nemesis_interval = "3s"

[[workloads]]
name = "small"
keys = 4
rate = 150
"#,
    )
    .unwrap();
    let store = tmp.path().join("store");
    let node = common::node_bin();
    let (out, text) = campaign(&file, &store, &["--node-bin", node.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let dir = campaign_dir(&store);
    assert!(dir.starts_with(store.join("campaigns/tiny").canonicalize().unwrap()));
    assert!(text.contains(&dir.display().to_string()), "{text}");

    let json = read_json(&dir.join("campaign.json"));
    assert_eq!(json["name"], "tiny");
    assert_eq!(json["exit_code"], 0);
    assert_eq!(json["planned"], 2);
    let cells = json["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 2);
    let mut total_ops = 0;
    for (cell, seed) in cells.iter().zip([101u64, 202]) {
        assert_eq!(cell["verdict"], "valid", "{cell}");
        assert_eq!(cell["exit_code"], 0);
        assert_eq!(cell["system"], "raft");
        assert_eq!(cell["nemesis"], "kill");
        assert_eq!(cell["workload"], "small");
        assert_eq!(cell["nodes"], 3);
        assert_eq!(cell["seed"], seed);
        // The run is a normal run directory inside the campaign directory, and what the
        // campaign recorded agrees with it.
        let run = PathBuf::from(cell["run_dir"].as_str().unwrap());
        assert!(run.starts_with(dir.join("runs")), "{}", run.display());
        let test = read_json(&run.join("test.json"));
        assert_eq!(test["seed"], seed);
        assert_eq!(test["args"]["keys"], 4);
        assert_eq!(test["args"]["nemesis"], "kill");
        let results = read_json(&run.join("results.json"));
        assert_eq!(results["verdict"], "linearizable", "{results}");
        let harness = read_json(&run.join("harness.json"));
        assert_eq!(cell["ops"], harness["completions"]);
        assert!(cell["ops"].as_u64().unwrap() > 100, "{cell}");
        total_ops += cell["ops"].as_u64().unwrap();
        let t = cell["time_s"].as_f64().unwrap();
        assert!(t >= 8.0, "a run of 8 s took {t} s?");
    }

    let summary = std::fs::read_to_string(dir.join("summary.txt")).unwrap();
    let row: Vec<&str> = summary
        .lines()
        .find(|l| l.starts_with("raft "))
        .expect("a row for raft/kill/small")
        .split_whitespace()
        .collect();
    assert_eq!(
        row[..9],
        ["raft", "kill", "small", "3", "2", "0", "0", "0", "0"]
    );
    assert_eq!(row.last().unwrap().parse::<u64>().unwrap(), total_ops);
    assert!(
        summary.contains("exit code 0: every run is linearizable"),
        "{summary}"
    );

    let j = parse_junit(&dir);
    assert_eq!(attr(&j, "tests"), "2");
    for a in ["failures", "errors", "skipped"] {
        assert_eq!(attr(&j, a), "0", "{a}");
    }
    assert_eq!(j.cases.len(), 2);
    for (c, seed) in j.cases.iter().zip([101, 202]) {
        assert_eq!(c.name, format!("n3 seed {seed}"));
        assert_eq!(c.class, "raft/kill/small");
        assert!(c.time >= 8.0);
        assert!(c.kids.is_empty(), "{:?}", c.kids);
    }
}

#[test]
fn a_harness_error_in_a_cell_is_recorded_and_exits_3() {
    common::require_root();
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("broken.toml");
    // The node refuses an unknown flag, so the cluster never comes up: a harness error.
    std::fs::write(
        &file,
        r#"
name = "broken"
budget = "2m"
time_limit = "8s"
systems = ["multipaxos"]
nemesis = ["kill"]
seeds = [5]

[node_args]
multipaxos = ["--no-such-flag"]

[[workloads]]
name = "w"
"#,
    )
    .unwrap();
    let store = tmp.path().join("store");
    let node = common::node_bin();
    let (out, text) = campaign(&file, &store, &["--node-bin", node.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3), "{text}");
    let dir = campaign_dir(&store);
    let json = read_json(&dir.join("campaign.json"));
    assert_eq!(json["exit_code"], 3);
    let cell = &json["cells"][0];
    assert_eq!(cell["verdict"], "error", "{cell}");
    let why = cell["explanation"].as_str().unwrap();
    assert!(!why.is_empty() && !why.contains('\n'), "{why:?}");
    let j = parse_junit(&dir);
    assert_eq!(attr(&j, "tests"), "1");
    assert_eq!(attr(&j, "errors"), "1");
    assert_eq!(attr(&j, "failures"), "0");
    assert_eq!(j.cases[0].class, "multipaxos/kill/w");
    assert_eq!(j.cases[0].kids, ["error"]);
    assert_eq!(j.cases[0].message.as_deref(), Some(why));
    let summary = std::fs::read_to_string(dir.join("summary.txt")).unwrap();
    assert!(summary.contains("exit code 3"), "{summary}");
    assert!(summary.contains(why), "{summary}");
}

/// No root needed: nothing runs.
#[test]
fn cells_beyond_the_budget_are_skipped_not_passed() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("short.toml");
    std::fs::write(
        &file,
        r#"
name = "short"
budget = "5s"
time_limit = "10s"
systems = ["raft", "multipaxos"]
nemesis = ["partition"]
seeds = [1]

[[workloads]]
name = "w"
"#,
    )
    .unwrap();
    let store = tmp.path().join("store");
    let (out, text) = campaign(&file, &store, &[]);
    // Nothing ran, so nothing passed: exit 3.
    assert_eq!(out.status.code(), Some(3), "{text}");
    let dir = campaign_dir(&store);
    let json = read_json(&dir.join("campaign.json"));
    let cells = json["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 2);
    assert!(cells.iter().all(|c| c["verdict"] == "skipped"), "{json}");
    assert!(
        cells[0]["explanation"]
            .as_str()
            .unwrap()
            .contains("budget ran out")
    );
    let j = parse_junit(&dir);
    assert_eq!(attr(&j, "tests"), "2");
    assert_eq!(attr(&j, "skipped"), "2");
    assert!(j.cases.iter().all(|c| c.kids == ["skipped"]));
    let summary = std::fs::read_to_string(dir.join("summary.txt")).unwrap();
    assert!(summary.contains("2 run(s) SKIPPED"), "{summary}");
}

#[test]
fn bad_files_and_dry_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("bad.toml");
    std::fs::write(
        &file,
        "name = \"x\"\nbudget = \"1h\"\ntime_limit = \"10s\"\nsystems = [\"raft\"]\n\
         nemesis = [\"kill\"]\nseeds = 2\nnodes = [3, 5]\nflavor = 1\n\n[[workloads]]\nname = \"w\"\n",
    )
    .unwrap();
    let store = tmp.path().join("store");
    let (out, text) = campaign(&file, &store, &[]);
    assert_eq!(out.status.code(), Some(3), "{text}");
    assert_eq!(text.trim().lines().count(), 1, "{text}");
    assert!(
        text.contains("bad.toml:8: unknown field `flavor`"),
        "{text}"
    );
    assert!(!store.join("campaigns").exists());

    let text_ok = std::fs::read_to_string(&file)
        .unwrap()
        .replace("flavor = 1\n", "");
    std::fs::write(&file, text_ok).unwrap();
    let (out, text) = campaign(&file, &store, &["--dry-run"]);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("4 runs = 1 systems x 1 nemesis sets x 1 workloads x 2 node counts x 2 fresh random seeds"), "{text}");
    assert_eq!(
        text.lines().filter(|l| l.contains("raft/kill/w")).count(),
        4,
        "{text}"
    );
    assert!(
        !store.join("campaigns").exists(),
        "a dry run writes nothing"
    );

    let (out, text) = campaign(&tmp.path().join("missing.toml"), &store, &[]);
    assert_eq!(out.status.code(), Some(3));
    assert!(text.contains("missing.toml: cannot read"), "{text}");
}

/// The shipped nightly campaign is valid: its dry run expands every system, fault mix
/// and workload (the nightly itself runs in scripts/nightly.sh, not in CI).
#[test]
fn the_shipped_nightly_campaign_expands() {
    let tmp = tempfile::tempdir().unwrap();
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../campaigns/nightly.toml");
    let (out, text) = campaign(&file, tmp.path(), &["--dry-run"]);
    assert_eq!(out.status.code(), Some(0), "{text}");
    for needle in [
        "raft",
        "multipaxos",
        "etcd",
        "zookeeper",
        "contended",
        "read-heavy",
        "many-keys",
    ] {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }
    // The runs the budget is estimated to fit are shared by the systems in turn: Redis,
    // last in the list, gets as many as raft, the first, give or take one.
    let fit = |system: &str| {
        text.lines()
            .filter(|l| l.contains(&format!("  {system}/")) && !l.contains("beyond the budget"))
            .count()
    };
    let shares: Vec<usize> = ["raft", "multipaxos", "etcd", "zookeeper", "redis"]
        .into_iter()
        .map(fit)
        .collect();
    let (least, most) = (shares.iter().min().unwrap(), shares.iter().max().unwrap());
    assert!(
        *least >= 5 && most - least <= 1,
        "runs within the budget per system: {shares:?}\n{text}"
    );
    // --systems keeps only the named systems, --budget replaces the file's.
    let (out, text) = campaign(
        &file,
        tmp.path(),
        &["--dry-run", "--systems", "raft", "--budget", "7m"],
    );
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("1 systems"), "{text}");
    assert!(
        !text.contains("etcd") && !text.contains("multipaxos"),
        "{text}"
    );
    assert!(text.contains("budget 7.0 min"), "{text}");
    let (out, text) = campaign(&file, tmp.path(), &["--dry-run", "--systems", "zk"]);
    assert_eq!(out.status.code(), Some(3), "{text}");
    assert!(text.contains("--systems: \"zk\""), "{text}");
}

/// The shipped CI campaign, end to end (a few minutes: three systems, two fault mixes).
#[test]
fn the_shipped_ci_campaign_passes() {
    common::require_root();
    let tmp = tempfile::tempdir().unwrap();
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../campaigns/ci.toml");
    let node = common::node_bin();
    let (out, text) = campaign(&file, tmp.path(), &["--node-bin", node.to_str().unwrap()]);
    let dir = campaign_dir(tmp.path());
    let summary = std::fs::read_to_string(dir.join("summary.txt")).unwrap_or_default();
    assert_eq!(out.status.code(), Some(0), "{summary}\n{text}");
    let json = read_json(&dir.join("campaign.json"));
    let cells = json["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 6);
    assert!(cells.iter().all(|c| c["verdict"] == "valid"), "{summary}");
    let j = parse_junit(&dir);
    assert_eq!(attr(&j, "tests"), "6");
    let classes: Vec<&str> = j.cases.iter().map(|c| c.class.as_str()).collect();
    assert_eq!(
        classes,
        [
            "raft/kill,pause/mixed",
            "multipaxos/kill,pause/mixed",
            "etcd/kill,pause/mixed",
            "raft/partition/mixed",
            "multipaxos/partition/mixed",
            "etcd/partition/mixed",
        ]
    );
}

/// A system with a known flaw (etcd with serializable reads, which serve stale values
/// from an isolated member): exit 1, and junit.xml carries the checker's sentence and the
/// run path. Also checks that a spec path is relative to the campaign file.
#[test]
fn a_violation_is_a_junit_failure_with_the_checkers_sentence() {
    common::require_root();
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("specs")).unwrap();
    let text = harness::sut::BUILTIN
        .iter()
        .find(|(n, _)| *n == "etcd")
        .unwrap()
        .1
        .replace("serializable_reads = false", "serializable_reads = true")
        .replace("name = \"etcd\"", "name = \"etcd-serializable\"");
    std::fs::write(tmp.path().join("specs/etcd-serializable.toml"), text).unwrap();
    let file = tmp.path().join("flawed.toml");
    std::fs::write(
        &file,
        r#"
name = "flawed"
budget = "3m"
time_limit = "25s"
systems = ["specs/etcd-serializable.toml"]
nemesis = ["partition"]
shapes = "isolate-one"
nemesis_interval = "8s"
seeds = 2

[[workloads]]
name = "w"
"#,
    )
    .unwrap();
    let store = tmp.path().join("store");
    let (out, text) = campaign(&file, &store, &["--fail-fast"]);
    assert_eq!(out.status.code(), Some(1), "expected a violation:\n{text}");
    let dir = campaign_dir(&store);
    let json = read_json(&dir.join("campaign.json"));
    assert_eq!(json["exit_code"], 1);
    let cell = &json["cells"][0];
    assert_eq!(cell["verdict"], "invalid", "{cell}");
    // --fail-fast: the second seed never ran.
    let second = &json["cells"][1];
    assert_eq!(second["verdict"], "skipped", "{second}");
    assert!(
        second["explanation"]
            .as_str()
            .is_some_and(|e| e.contains("--fail-fast")),
        "{second}"
    );
    let run = PathBuf::from(cell["run_dir"].as_str().unwrap());
    assert!(
        run.parent()
            .unwrap()
            .ends_with("runs/etcd-serializable-partition-w-n3"),
        "{}",
        run.display()
    );
    let results = read_json(&run.join("results.json"));
    let sentence = results["check"]["explanation"]["sentence"]
        .as_str()
        .unwrap();
    assert!(!sentence.is_empty());
    assert_eq!(cell["explanation"].as_str(), Some(sentence));
    // The drawn seed is recorded and is the run's.
    assert_eq!(cell["seed"], read_json(&run.join("test.json"))["seed"]);

    let xml = std::fs::read_to_string(dir.join("junit.xml")).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let failure = doc
        .descendants()
        .find(|n| n.has_tag_name("failure"))
        .expect("a <failure>");
    assert_eq!(failure.attribute("message"), Some(sentence));
    assert_eq!(failure.attribute("type"), Some("not-linearizable"));
    let body = failure.text().unwrap();
    assert!(body.contains(&format!("run: {}", run.display())), "{body}");
    assert!(body.contains(sentence), "{body}");
    let j = parse_junit(&dir);
    assert_eq!(attr(&j, "failures"), "1");
    assert_eq!(j.cases[0].class, "specs/etcd-serializable.toml/partition/w");
}

/// SIGTERM mid-campaign: the current run heals and stops, the rest are recorded as
/// skipped, the exit is 3, and the files are complete.
#[test]
fn an_interrupted_campaign_records_what_it_did() {
    use std::io::{BufRead, BufReader};
    common::require_root();
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("stop.toml");
    std::fs::write(
        &file,
        r#"
name = "stop"
budget = "5m"
time_limit = "30s"
systems = ["raft"]
nemesis = ["partition"]
seeds = [1, 2, 3]

[[workloads]]
name = "w"
"#,
    )
    .unwrap();
    let store = tmp.path().join("store");
    let node = common::node_bin();
    let mut child = Command::new(env!("CARGO_BIN_EXE_stasis"))
        .arg("campaign")
        .arg(&file)
        .args(["--store", store.to_str().unwrap()])
        .args(["--node-bin", node.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        seen.push_str(&line);
        seen.push('\n');
        // The first run has started; let its workload get under way.
        if line.starts_with("stasis: run ") {
            std::thread::sleep(std::time::Duration::from_secs(6));
            break;
        }
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    for line in lines {
        seen.push_str(&line.unwrap());
        seen.push('\n');
    }
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(3), "{seen}");
    let dir = campaign_dir(&store);
    let json = read_json(&dir.join("campaign.json"));
    assert_eq!(json["exit_code"], 3, "{json}");
    let cells = json["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 3);
    assert_eq!(cells[0]["verdict"], "error", "{json}");
    for c in &cells[1..] {
        assert_eq!(c["verdict"], "skipped");
        assert!(c["explanation"].as_str().unwrap().contains("interrupted"));
    }
    // The interrupted run still cleaned up after itself.
    let run = PathBuf::from(cells[0]["run_dir"].as_str().expect("the run dir"));
    let test = read_json(&run.join("test.json"));
    let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
    let list = String::from_utf8_lossy(&out.stdout);
    for ns in test["topology"]["namespaces"].as_array().unwrap() {
        assert!(!list.contains(ns.as_str().unwrap()), "{ns} left behind");
    }
    let j = parse_junit(&dir);
    assert_eq!(attr(&j, "errors"), "1");
    assert_eq!(attr(&j, "skipped"), "2");
}

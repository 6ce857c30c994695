//! Snapshot tests of the text explanation for Knossos' bad histories, and HTML checks.
//! Set UPDATE_SNAPSHOTS=1 to rewrite the snapshots after an intended change (then review
//! the diff).

mod common;

use std::path::PathBuf;

use checker::format::{Format, load};
use checker::{CheckOptions, ModelKind, Verdict, check_history};

fn check(file: &str, model: ModelKind) -> checker::CheckResult {
    let loaded = load(&common::testdata().join(file), Some(Format::JepsenEdn)).expect("load");
    let mut opts = CheckOptions::for_format(model, Format::JepsenEdn);
    opts.initial = (model == ModelKind::CasRegister).then(|| serde_json::json!(0));
    // One thread: with more, a single partition with crashed operations is searched in
    // both candidate orders at once and the explanation is the faster one's (both valid,
    // but which one wins depends on the machine's load; the snapshots need one).
    opts.threads = 1;
    check_history(&loaded.ops, &opts).expect("check")
}

fn snapshot(name: &str, actual: &str) {
    let path = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/snapshots"))
        .join(format!("{name}.txt"));
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run with UPDATE_SNAPSHOTS=1 to create it",
            path.display()
        )
    });
    assert_eq!(
        actual, expected,
        "explanation of {name} changed; if intended, rerun with UPDATE_SNAPSHOTS=1"
    );
}

const BAD: [&str; 7] = [
    "bad-analysis",
    "cas-failure",
    "immediate-failure",
    "mongodb-v0-ack-rollback-6",
    "rethink-fail-minimal",
    "rethink-fail-smaller",
    "rethink-fail",
];

#[test]
fn knossos_bad_histories_explained() {
    for name in BAD {
        let r = check(
            &format!("knossos/cas-register/bad/{name}.edn"),
            ModelKind::CasRegister,
        );
        assert_eq!(r.verdict, Verdict::NotLinearizable, "{name}");
        let e = r.explanation.expect("explanation");
        snapshot(name, &checker::report::explanation_text(&e));
    }
    let r = check("knossos/mutex/bad/etcd.edn", ModelKind::Mutex);
    snapshot(
        "mutex-etcd",
        &checker::report::explanation_text(&r.explanation.expect("explanation")),
    );
}

#[test]
fn rethink_fail_minimal_blames_process_1s_read_of_3() {
    // As Knossos reports: the read of 3 by process 1, not the later operations.
    let r = check(
        "knossos/cas-register/bad/rethink-fail-minimal.edn",
        ModelKind::CasRegister,
    );
    let e = r.explanation.expect("explanation");
    assert_eq!(e.blocked.process, 1);
    assert_eq!(e.blocked.description, "read 3");
    assert_eq!(
        e.previous_ok.as_ref().map(|p| p.description.as_str()),
        Some("write 0")
    );
    let mut possible = e.possible_states.clone();
    possible.sort();
    assert_eq!(possible, ["0", "4"]);
    assert!(
        e.sentence
            .starts_with("read returned 3 at event 4 (process 1)"),
        "{}",
        e.sentence
    );
    assert!(
        e.sentence.contains("could only be 0 or 4"),
        "{}",
        e.sentence
    );
    // The prefix replays: each state follows from the previous one.
    let states: Vec<&str> = e.prefix.iter().map(|s| s.state_after.as_str()).collect();
    assert_eq!(states, ["0", "4"]);
}

#[test]
fn html_names_the_failing_operation_and_fetches_nothing() {
    let r = check(
        "knossos/cas-register/bad/rethink-fail-minimal.edn",
        ModelKind::CasRegister,
    );
    let h = checker::report::html(&r, "rethink-fail-minimal.edn");
    assert!(!h.contains("http://") && !h.contains("https://"));
    assert!(
        h.contains("cannot linearize</th><td class=\"bad\">process 1 read 3"),
        "{h}"
    );
    assert!(h.contains("class=\"op badop\""));
    assert!(h.contains("not-linearizable"));
    // Every prefix step is drawn and listed.
    assert_eq!(h.matches("<tr data-lin=").count(), 2);
    // A big failing history still renders, windowed.
    let r = check(
        "knossos/cas-register/bad/rethink-fail.edn",
        ModelKind::CasRegister,
    );
    let h = checker::report::html(&r, "rethink-fail.edn");
    assert!(!h.contains("http://") && !h.contains("https://"));
    assert_eq!(h.matches("class=\"op badop").count(), 1);
}

#[test]
fn html_for_good_and_unknown_results() {
    let r = check(
        "knossos/cas-register/good/memstress3-0.edn",
        ModelKind::CasRegister,
    );
    assert_eq!(r.verdict, Verdict::Linearizable);
    let h = checker::report::html(&r, "memstress3-0.edn");
    assert!(h.contains("Every partition has an order"));
    assert!(!h.contains("http://") && !h.contains("https://"));
}

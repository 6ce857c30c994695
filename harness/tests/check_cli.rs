//! `stasis check` end to end: exit codes, formats, models, reports, bad input.

use std::path::PathBuf;

use assert_cmd::Command;

fn testdata() -> PathBuf {
    let p = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/testdata"
    ));
    assert!(
        p.join("EXPECTED.tsv").is_file(),
        "shared test data not found at {} (shared/ must sit beside the repository clone)",
        p.display()
    );
    p
}

fn stasis() -> Command {
    Command::cargo_bin("stasis").expect("stasis binary")
}

fn run(args: &[&str]) -> (i32, String, String) {
    let out = stasis().args(args).output().expect("run stasis");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn data(rel: &str) -> String {
    testdata().join(rel).display().to_string()
}

#[test]
fn verdicts_map_to_exit_codes() {
    let (code, out, _) = run(&["check", &data("knossos/cas-register/good/memstress3-0.edn")]);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("linearizable"), "{out}");
    let (code, out, _) = run(&[
        "check",
        &data("knossos/cas-register/bad/rethink-fail-minimal.edn"),
        "--initial",
        "0",
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("cannot linearize: process 1 read 3"), "{out}");
    let (code, out, _) = run(&[
        "check",
        &data("porcupine/kv/c10-ok.txt"),
        "--partition",
        "none",
        "--timeout",
        "1ms",
    ]);
    assert_eq!(code, 2, "{out}");
    assert!(out.starts_with("unknown"), "{out}");
}

#[test]
fn formats_and_models_are_detected_or_forced() {
    for (file, model, expect) in [
        ("porcupine/jepsen/etcd_002.log", "porcupine-etcd", 0),
        ("porcupine/jepsen/etcd_000.log", "porcupine-etcd", 1),
        ("porcupine/kv/c10-bad.txt", "porcupine-kv", 1),
        ("knossos/mutex/bad/etcd.edn", "mutex", 1),
    ] {
        let (code, out, err) = run(&["check", &data(file), "--model", model]);
        assert_eq!(code, expect, "{file}: {out}{err}");
    }
    let (code, out, _) = run(&[
        "check",
        &data("knossos/multi-register/good/multi-register.edn"),
        "--model",
        "multi-register",
        "--format",
        "jepsen-edn",
        "--initial",
        "{\"x\":0,\"y\":0}",
    ]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn json_and_html_reports() {
    let dir = tempfile::tempdir().unwrap();
    let html = dir.path().join("r.html");
    let (code, out, _) = run(&[
        "check",
        &data("knossos/cas-register/bad/rethink-fail-minimal.edn"),
        "--json",
        "--html",
        html.to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON on stdout");
    assert_eq!(v["verdict"], "not-linearizable");
    assert_eq!(v["format"], "jepsen-edn");
    assert_eq!(v["explanation"]["blocked"]["process"], 1);
    assert_eq!(v["explanation"]["blocked"]["description"], "read 3");
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("process 1 read 3"));
    assert!(!page.contains("http://") && !page.contains("https://"));
}

#[test]
fn jsonl_histories_and_export() {
    let dir = tempfile::tempdir().unwrap();
    let h = dir.path().join("h.jsonl");
    std::fs::write(
        &h,
        concat!(
            "{\"time\":1000000,\"process\":0,\"type\":\"invoke\",\"f\":\"write\",\"key\":\"k7\",\"value\":5}\n",
            "{\"time\":2000000,\"process\":0,\"type\":\"ok\",\"f\":\"write\",\"key\":\"k7\",\"value\":5}\n",
            "{\"time\":3000000,\"process\":1,\"type\":\"invoke\",\"f\":\"read\",\"key\":\"k7\",\"value\":null}\n",
            "{\"time\":12400000,\"process\":1,\"type\":\"ok\",\"f\":\"read\",\"key\":\"k7\",\"value\":3}\n",
            "{\"time\":13000000,\"process\":\"nemesis\",\"type\":\"info\",\"f\":\"start-partition\",\"value\":null}\n",
        ),
    )
    .unwrap();
    let edn = dir.path().join("h.edn");
    let (code, out, err) = run(&[
        "check",
        h.to_str().unwrap(),
        "--export",
        edn.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains("read k7 returned 3 at 12.4 ms (process 1)"),
        "{out}"
    );
    assert!(out.contains("the value could only be 5"), "{out}");
    assert!(out.contains("12.4 ms"), "{out}");
    // The export reads back as the same verdict.
    let (code, _, err) = run(&["check", edn.to_str().unwrap(), "--model", "kv"]);
    assert_eq!(code, 1, "{err}");
}

#[test]
fn bad_input_is_one_line_and_exit_3() {
    let dir = tempfile::tempdir().unwrap();
    let h = dir.path().join("bad.jsonl");
    std::fs::write(
        &h,
        "{\"time\":1,\"process\":1,\"type\":\"invoke\",\"f\":\"read\"}\n{\"time\":2,\"process\":1,\"type\":\"ok\"}\n",
    )
    .unwrap();
    let (code, _, err) = run(&["check", h.to_str().unwrap()]);
    assert_eq!(code, 3);
    assert!(err.contains("bad.jsonl:2: "), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    let e = dir.path().join("bad.edn");
    std::fs::write(
        &e,
        "[{:type :invoke, :f :read, :process 0}\n {:type :ok, :f :read",
    )
    .unwrap();
    let (code, _, err) = run(&["check", e.to_str().unwrap()]);
    assert_eq!(code, 3);
    assert!(err.contains("bad.edn:2: "), "{err}");
    for args in [
        vec!["check", "/nonexistent/h.jsonl"],
        vec!["check", h.to_str().unwrap(), "--model", "nope"],
        vec!["check", h.to_str().unwrap(), "--format", "nope"],
        vec!["check", h.to_str().unwrap(), "--partition", "sideways"],
        vec!["check", h.to_str().unwrap(), "--initial", "{oops"],
        vec!["check", h.to_str().unwrap(), "--timeout", "soon"],
    ] {
        let (code, _, err) = run(&args);
        assert_eq!(code, 3, "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    // An operation the model cannot read is bad input too.
    let c = dir.path().join("cas.edn");
    std::fs::write(&c, "[{:type :invoke, :f :cas, :value 3, :process 0}\n {:type :ok, :f :cas, :value 3, :process 0}]").unwrap();
    let (code, _, err) = run(&["check", c.to_str().unwrap()]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("pair"), "{err}");
}

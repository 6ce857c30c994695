//! `stasis serve` over HTTP: listing order and colours, filters, run/campaign/selftest
//! pages, content types and lengths, HEAD, garbage requests, and path escapes (all 404).

mod serve_fixture;

use serve_fixture::{Fixture, Server, class_of, row_class, rows, run_rows};

fn setup() -> (Fixture, Server) {
    let f = serve_fixture::build();
    let s = Server::start(&f.store);
    (f, s)
}

#[test]
fn index_lists_every_run_newest_first_coloured_by_verdict() {
    let (f, s) = setup();
    let r = s.get("/");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(
        r.header("content-length"),
        Some(r.body.len().to_string().as_str())
    );
    let html = r.text();
    let expected: Vec<String> = f.runs.iter().map(|r| r.rel.clone()).collect();
    // One row per stored run (the `latest` links and escaping symlinks add none).
    assert_eq!(run_rows(&html), expected, "{html}");
    for run in &f.runs {
        assert_eq!(
            row_class(&html, &run.rel).as_deref(),
            Some(class_of(run.verdict)),
            "{}",
            run.rel
        );
    }
    assert_eq!(rows(&html, "row campaign "), vec![f.campaign_rel.clone()]);
    assert_eq!(rows(&html, "row selftest "), vec![f.selftest_rel.clone()]);
    // The campaign row sums its cells and is invalid (one cell is).
    assert_eq!(
        row_class(&html, &f.campaign_rel).as_deref(),
        Some("invalid")
    );
    assert!(html.contains(&format!("href=\"/run/{}\"", f.runs[0].rel)));
    assert!(html.contains("<td>2026-11-22 08:00:00 UTC</td>"), "{html}");
    // Columns: time, test name, system, nemesis, verdict, ops, link.
    assert!(html.contains(
        "<th>Time</th><th>Test</th><th>System</th><th>Nemesis</th><th>Verdict</th><th>Ops</th>"
    ));
    // The filter form works without JavaScript: a GET form with both selects.
    assert!(html.contains("<form class=\"filter\" method=\"get\" action=\"/\">"));
    assert!(html.contains("<option value=\"multipaxos\">multipaxos</option>"));
    assert!(html.contains("<option value=\"partition\">partition</option>"));
}

#[test]
fn index_filters_by_system_and_nemesis() {
    let (f, s) = setup();
    let want = |pred: &dyn Fn(&serve_fixture::FixtureRun) -> bool| -> Vec<String> {
        f.runs
            .iter()
            .filter(|r| pred(r))
            .map(|r| r.rel.clone())
            .collect()
    };
    let html = s.get("/?system=raft").text();
    let raft = want(&|r| r.system == "raft");
    assert_eq!(raft.len(), 4);
    assert_eq!(run_rows(&html), raft);
    assert!(html.contains("<option value=\"raft\" selected>raft</option>"));
    // The campaign has a raft cell and the selftest a raft case: both listed.
    assert_eq!(rows(&html, "row campaign "), vec![f.campaign_rel.clone()]);
    assert_eq!(rows(&html, "row selftest "), vec![f.selftest_rel.clone()]);
    // Neither has an etcd clock cell.
    let html = s.get("/?system=etcd&nemesis=clock").text();
    assert!(run_rows(&html).is_empty());
    assert!(rows(&html, "row campaign ").is_empty());
    assert!(rows(&html, "row selftest ").is_empty());

    let html = s.get("/?nemesis=partition").text();
    assert_eq!(run_rows(&html), want(&|r| r.nemesis == "partition"));
    let html = s.get("/?system=raft&nemesis=clock").text();
    assert_eq!(
        run_rows(&html),
        want(&|r| r.system == "raft" && r.nemesis == "clock")
    );
    assert_eq!(run_rows(&html).len(), 1);
    // Empty values mean "any" (what the form sends for "any").
    let html = s.get("/?system=&nemesis=").text();
    assert_eq!(run_rows(&html).len(), f.runs.len());
    let html = s.get("/?system=%3Cb%3Enope").text();
    assert!(run_rows(&html).is_empty());
    assert!(html.contains("No runs match this filter."));
    assert!(
        html.contains("&lt;b&gt;nope"),
        "the unknown filter value is escaped"
    );
    assert!(!html.contains("<b>nope"));
}

#[test]
fn run_page_has_summary_plots_report_and_files() {
    let (f, s) = setup();
    let run = &f.runs[2]; // raft-all, linearizable, with plots and report.html
    assert_eq!(run.verdict, Some("linearizable"));
    let r = s.get(&format!("/run/{}", run.rel));
    assert_eq!(r.status, 200);
    let html = r.text();
    assert!(html.contains("<span class=\"badge valid\">linearizable</span>"));
    assert!(html.contains("<dd>2026-11-20 10:15:00 UTC</dd>"), "{html}");
    let summary = std::fs::read_to_string(f.store.join(&run.rel).join("summary.txt")).unwrap();
    assert!(summary.contains("verdict: linearizable"));
    // The summary is shown, escaped.
    assert!(html.contains("verdict: linearizable"));
    assert!(
        html.contains("&lt;script&gt;document.title=&#39;pwned&#39;&lt;/script&gt; &amp; more")
    );
    assert!(!html.contains("<script>document.title"));
    // Every plot image as an <img>.
    assert_eq!(
        run.images,
        [
            "latency.png",
            "latency.svg",
            "throughput.png",
            "throughput.svg"
        ]
    );
    let imgs = html.matches("<img ").count();
    assert_eq!(imgs, run.images.len(), "{html}");
    for img in &run.images {
        assert!(
            html.contains(&format!(
                "<img class=\"plot\" src=\"/files/{}/{img}\"",
                run.rel
            )),
            "{img}"
        );
    }
    assert!(html.contains(&format!("href=\"/files/{}/report.html\"", run.rel)));
    // Every file is downloadable: node logs, node data, history, the JSON files.
    for file in [
        "test.json",
        "results.json",
        "history.jsonl",
        "harness.json",
        "summary.txt",
        "n1/node.log",
        "n3/node.log",
        "n2/data/wal-000001",
    ] {
        let link = format!("/files/{}/{file}", run.rel);
        assert!(
            html.contains(&format!("<a href=\"{link}\">{file}</a>")),
            "{file}"
        );
        assert!(
            html.contains(&format!("<a href=\"{link}?download=1\" download>")),
            "{file}"
        );
    }
    // The symlink to /etc/passwd planted in this run dir is not offered.
    assert!(!html.contains("passwd"), "{html}");
    // The fault windows from results.json.
    assert!(html.contains("<table class=\"faults\">"));
}

#[test]
fn run_pages_for_violations_unfinished_runs_and_latest() {
    let (f, s) = setup();
    let bad = &f.runs[1];
    assert_eq!(bad.verdict, Some("not-linearizable"));
    let html = s.get(&format!("/run/{}", bad.rel)).text();
    assert!(html.contains("<span class=\"badge invalid\">not-linearizable</span>"));
    assert!(html.contains("<pre class=\"explanation\">"));
    assert!(html.contains(&format!("href=\"/files/{}/timeline.html\"", bad.rel)));

    let unfinished = &f.runs[3];
    assert_eq!(unfinished.verdict, None);
    let r = s.get(&format!("/run/{}", unfinished.rel));
    assert_eq!(r.status, 200);
    let html = r.text();
    assert!(html.contains("<span class=\"badge none\">none</span>"));
    assert!(html.contains("No results.json"));
    assert!(!html.contains("<img "));

    // `latest` is a symlink to a run inside the store: served.
    let r = s.get("/run/latest");
    assert_eq!(r.status, 200);
    let html = r.text();
    assert!(html.contains("<span class=\"badge unknown\">unknown</span>"));
    assert_eq!(html.matches("<img ").count(), f.runs[0].images.len());
    assert_eq!(s.get("/files/latest/test.json").status, 200);
    // Not a run directory: 404.
    assert_eq!(s.get("/run/raft-all").status, 404);
    assert_eq!(s.get(&format!("/campaign/{}", bad.rel)).status, 404);
}

#[test]
fn campaign_and_selftest_pages() {
    let (f, s) = setup();
    let r = s.get(&format!("/campaign/{}", f.campaign_rel));
    assert_eq!(r.status, 200);
    let html = r.text();
    assert!(html.contains("<h1>nightly"));
    assert!(
        html.contains("total: 4 runs: 1 valid, 1 invalid, 0 unknown, 1 error, 1 skipped"),
        "{html}"
    );
    // Cells link to their runs: by the canonical path the campaign records, and by a
    // path from another mount of the same store.
    for run in [&f.runs[5], &f.runs[1]] {
        assert!(
            html.contains(&format!(
                "<a class=\"run-link\" href=\"/run/{}\" title=",
                run.rel
            )),
            "{}: {html}",
            run.rel
        );
    }
    assert_eq!(html.matches("<tr class=\"cell ").count(), 4);
    assert!(html.contains("<span class=\"badge invalid\">invalid: 1 of 4 valid</span>"));
    for class in ["valid", "invalid", "unknown", "none"] {
        assert!(
            html.contains(&format!("<tr class=\"cell {class}\">")),
            "{class}"
        );
    }
    assert!(html.contains("which no write &lt;wrote&gt;"));
    // The long detail folds away.
    assert!(html.contains("<details><summary>read k1 returned 999"));
    assert!(html.contains(&format!("href=\"/files/{}/junit.xml\"", f.campaign_rel)));
    // Its files, but not those of the runs it keeps (they have their own pages).
    assert!(html.contains(&format!(
        "<a href=\"/files/{}/campaign.json\">",
        f.campaign_rel
    )));
    assert!(!html.contains("history.jsonl"), "{html}");
    // The campaign's own runs are listed on the index like any other.
    assert!(f.runs[5].rel.starts_with(&f.campaign_rel));

    let r = s.get(&format!("/selftest/{}", f.selftest_rel));
    assert_eq!(r.status, 200);
    let html = r.text();
    assert!(html.contains("<span class=\"badge valid\">pass: 2 of 2 cases ok</span>"));
    assert!(html.contains("<td>stale-read</td>"));
    // The first violation's directory, recorded relative to the working directory.
    assert!(html.contains(&format!(
        "<a class=\"run-link\" href=\"/run/{}\" title=",
        f.runs[1].rel
    )));
    assert!(html.contains("<details><summary>1 items</summary>"));
}

#[test]
fn raw_files_have_content_types_and_lengths() {
    let (f, s) = setup();
    let run = &f.runs[0];
    let bad = &f.runs[1];
    for (rel, ctype) in [
        (format!("{}/latency.svg", run.rel), "image/svg+xml"),
        (format!("{}/clock.png", run.rel), "image/png"),
        (format!("{}/test.json", run.rel), "application/json"),
        (
            format!("{}/summary.txt", run.rel),
            "text/plain; charset=utf-8",
        ),
        (format!("{}/history.jsonl", run.rel), "application/x-ndjson"),
        (
            format!("{}/n1/node.log", run.rel),
            "text/plain; charset=utf-8",
        ),
        (
            format!("{}/report.html", run.rel),
            "text/html; charset=utf-8",
        ),
        (
            format!("{}/timeline.html", bad.rel),
            "text/html; charset=utf-8",
        ),
        (format!("{}/junit.xml", f.campaign_rel), "application/xml"),
        (
            format!("{}/n1/data/wal-000001", run.rel),
            "application/octet-stream",
        ),
    ] {
        let r = s.get(&format!("/files/{rel}"));
        assert_eq!(r.status, 200, "{rel}");
        assert_eq!(r.header("content-type"), Some(ctype), "{rel}");
        let on_disk = std::fs::read(f.store.join(&rel)).unwrap();
        assert_eq!(r.body, on_disk, "{rel}");
        assert_eq!(
            r.header("content-length"),
            Some(on_disk.len().to_string().as_str())
        );
        // HEAD: the same head, no body.
        let h = s.raw(format!("HEAD /files/{rel} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
        assert_eq!(h.status, 200);
        assert_eq!(h.header("content-type"), Some(ctype));
        assert_eq!(h.header("content-length"), r.header("content-length"));
        assert!(h.body.is_empty(), "{rel}");
    }
    let r = s.get(&format!("/files/{}/n1/node.log?download=1", run.rel));
    assert_eq!(
        r.header("content-disposition"),
        Some("attachment; filename=\"node.log\"")
    );
    // A FIFO in the store is not opened (that would block), just not found.
    let fifo = f.store.join(&run.rel).join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    assert_eq!(s.get(&format!("/files/{}/fifo", run.rel)).status, 404);
    assert!(!s.get(&format!("/run/{}", run.rel)).text().contains("fifo"));
    // Directories are pages, not files.
    assert_eq!(s.get(&format!("/files/{}", run.rel)).status, 404);
    assert_eq!(s.get("/files/").status, 404);
}

#[test]
fn path_escapes_are_not_found() {
    let (f, s) = setup();
    let secret = std::fs::read_to_string(f.root.path().join("secret")).unwrap();
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let bad = &f.runs[1].rel;
    for path in [
        "/files/../../etc/passwd".to_owned(),
        "/files/../secret".to_owned(),
        "/files/%2e%2e/secret".to_owned(),
        "/files/%2e%2e/%2e%2e/etc/passwd".to_owned(),
        "/files/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd".to_owned(),
        "/files/..%2fsecret".to_owned(),
        format!("/files/{bad}/../../../secret"),
        format!("/files/{bad}/%2e%2e/%2e%2e/%2e%2e/secret"),
        "/files/./secret-link".to_owned(),
        "/files//etc/passwd".to_owned(),
        "/files/%2fetc%2fpasswd".to_owned(),
        "/files/..\\..\\etc\\passwd".to_owned(),
        "/files/..%5c..%5cetc%5cpasswd".to_owned(),
        "/files/etc%00/passwd".to_owned(),
        // Symlinks inside the store pointing outside it.
        "/files/etc/passwd".to_owned(),
        "/files/secret-link".to_owned(),
        format!("/files/{}/passwd", f.runs[2].rel),
        "/files/raft-all/20261101T000000.000Z/etc/passwd".to_owned(),
        "/run/raft-all/20261101T000000.000Z".to_owned(),
        "/run/../store".to_owned(),
        "/run/etc".to_owned(),
        "/campaign/..".to_owned(),
        "/etc/passwd".to_owned(),
        "/files/%zz".to_owned(),
    ] {
        let r = s.get(&path);
        assert_eq!(r.status, 404, "{path}");
        let body = r.text();
        assert!(!body.contains("root:x:0:0"), "{path}: {body}");
        assert!(!body.contains(secret.trim()), "{path}");
        if !passwd.is_empty() {
            assert!(!body.contains(passwd.lines().next().unwrap()), "{path}");
        }
    }
}

#[test]
fn garbage_requests_get_errors_and_the_server_keeps_serving() {
    let (_f, s) = setup();
    let cases: Vec<(Vec<u8>, u16)> = vec![
        (
            b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc".to_vec(),
            405,
        ),
        (b"DELETE /files/x HTTP/1.1\r\n\r\n".to_vec(), 405),
        (b"GARBAGE\r\n\r\n".to_vec(), 400),
        (b"GET /\r\n\r\n".to_vec(), 400),
        (b"GET / HTTP/9.9\r\n\r\n".to_vec(), 505),
        (b"GET http://example.com/ HTTP/1.1\r\n\r\n".to_vec(), 400),
        (b"\xff\xfe\xfd\r\n\r\n".to_vec(), 400),
        (b"GET / HTTP/1.1\r\nHost: x".to_vec(), 400),
        (b"".to_vec(), 400),
        (
            format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(40_000)).into_bytes(),
            431,
        ),
    ];
    for (raw, status) in &cases {
        let r = s.raw(raw);
        assert_eq!(r.status, *status, "{:?}", String::from_utf8_lossy(raw));
        if *status == 405 {
            assert_eq!(r.header("allow"), Some("GET, HEAD"));
        }
    }
    assert_eq!(s.get("/no/such/page").status, 404);
    assert_eq!(s.get("/").status, 200);
}

#[test]
fn bad_arguments_are_one_line_errors() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_stasis"))
        .args([
            "serve",
            "/nonexistent/stasis-store",
            "--listen",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no such store directory"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");

    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_stasis"))
        .args([
            "serve",
            dir.path().to_str().unwrap(),
            "--listen",
            "not-an-address",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot listen on \"not-an-address\""), "{err}");
}

#[test]
fn an_empty_store_says_how_to_fill_it() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    let html = s.get("/").text();
    assert!(run_rows(&html).is_empty());
    assert!(html.contains("No runs in this store yet"));
}

//! A realistic store for the `stasis serve` tests, written by the harness's own code where
//! it can be: test.json is a serialized `run::TestJson` (args parsed by clap, the built-in
//! system specs, a real nemesis schedule), and results.json, summary.txt, explanation.txt
//! timeline.html, the plots and report.html come from `analyze::analyze_run` over a
//! recorded-shape history; campaign.json, summary.txt and junit.xml from
//! `harness::campaign`. A running `stasis serve` child is driven over
//! raw TCP so that malformed and escaping requests reach the server unchanged.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use clap::Parser;
use harness::campaign::{CampaignRecord, CellRecord, Verdict};
use harness::nemesis::{self, Family, Target, partition::Shape};
use harness::run::{TestArgs, TestJson};
use harness::sut::SutSpec;
use serde_json::{Value, json};

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: TestArgs,
}

/// One run in the fixture store.
pub struct FixtureRun {
    /// Path relative to the store.
    pub rel: String,
    pub system: &'static str,
    pub nemesis: &'static str,
    /// results.json verdict (`None`: the run never finished, no results.json).
    pub verdict: Option<&'static str>,
    /// Plot images in the run directory (drawn by analyze_run).
    pub images: Vec<String>,
}

pub struct Fixture {
    /// Holds the store (`root/store`) and a secret file beside it (`root/secret`).
    pub root: tempfile::TempDir,
    pub store: PathBuf,
    /// Newest first, as the index must list them.
    pub runs: Vec<FixtureRun>,
    pub campaign_rel: String,
    pub selftest_rel: String,
}

/// The verdict class the UI colours a results.json verdict with.
pub fn class_of(verdict: Option<&str>) -> &'static str {
    match verdict {
        Some("linearizable") => "valid",
        Some("not-linearizable") => "invalid",
        Some(_) => "unknown",
        None => "none",
    }
}

struct Spec {
    /// Where the test's directory is (campaigns keep their runs in their own store).
    under: &'static str,
    test: &'static str,
    ts: &'static str,
    sut: &'static str,
    nemesis: &'static str,
    seed: u64,
    /// `valid`, `invalid`, `unknown` (checker budget hit) or `unfinished`.
    outcome: &'static str,
    /// Plots analyze_run must have drawn.
    plots: &'static [&'static str],
}

const CAMPAIGN: &str = "campaigns/nightly/20261117T200000.000Z";

const SPECS: [Spec; 6] = [
    Spec {
        under: "",
        test: "raft-clock",
        ts: "20261122T080000.000Z",
        sut: "raft",
        nemesis: "clock",
        seed: 4,
        outcome: "unknown",
        plots: &["latency", "throughput", "clock"],
    },
    Spec {
        under: "",
        test: "multipaxos-partition",
        ts: "20261121T111500.250Z",
        sut: "multipaxos",
        nemesis: "partition",
        seed: 3,
        outcome: "invalid",
        plots: &["latency", "throughput"],
    },
    Spec {
        under: "",
        test: "raft-all",
        ts: "20261120T101500.000Z",
        sut: "raft",
        nemesis: "all",
        seed: 2,
        outcome: "valid",
        plots: &["latency", "throughput"],
    },
    Spec {
        under: "",
        test: "etcd-kill",
        ts: "20261119T090000.000Z",
        sut: "etcd",
        nemesis: "kill",
        seed: 1,
        outcome: "unfinished",
        plots: &[],
    },
    Spec {
        under: "",
        test: "raft-all",
        ts: "20261118T170000.000Z",
        sut: "raft",
        nemesis: "all",
        seed: 0,
        outcome: "valid",
        plots: &[],
    },
    // A campaign's run, in the campaign's own store.
    Spec {
        under: "campaigns/nightly/20261117T200000.000Z/runs",
        test: "raft-kill",
        ts: "20261117T200010.000Z",
        sut: "raft",
        nemesis: "kill",
        seed: 5,
        outcome: "valid",
        plots: &["latency"],
    },
];

pub fn build() -> Fixture {
    let root = tempfile::tempdir().unwrap();
    let root_path = root.path().canonicalize().unwrap();
    let store = root_path.join("store");
    std::fs::create_dir_all(&store).unwrap();
    std::fs::write(
        root_path.join("secret"),
        "root:x:0:0:secret outside the store\n",
    )
    .unwrap();

    let mut runs = Vec::new();
    for spec in &SPECS {
        runs.push(write_run(&store, spec));
    }
    // What the harness leaves: `latest` links to the newest run (inside the store).
    let newest = &runs[0].rel;
    std::os::unix::fs::symlink(newest, store.join("latest")).unwrap();
    std::os::unix::fs::symlink(
        "20261122T080000.000Z",
        store.join("raft-clock").join("latest"),
    )
    .unwrap();
    // Escape attempts planted inside the store.
    std::os::unix::fs::symlink("/etc", store.join("etc")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", store.join(&runs[2].rel).join("passwd")).unwrap();
    std::os::unix::fs::symlink("../secret", store.join("secret-link")).unwrap();
    std::os::unix::fs::symlink("/", store.join("raft-all").join("20261101T000000.000Z")).unwrap();

    let campaign_rel = CAMPAIGN.to_owned();
    let cdir = store.join(&campaign_rel);
    std::fs::create_dir_all(&cdir).unwrap();
    let cell =
        |index: usize, system: &str, nemesis: &str, seed: u64, verdict: Verdict| CellRecord {
            seed,
            verdict,
            time_s: 14.2,
            ops: 120,
            ..CellRecord::new(index, system, nemesis, "kv", 3)
        };
    let mut cells = vec![
        cell(0, "raft", "kill", 5, Verdict::Valid),
        cell(1, "multipaxos", "partition", 3, Verdict::Invalid),
        cell(2, "etcd", "kill", 1, Verdict::Error),
        cell(3, "raft", "clock", 6, Verdict::Skipped),
    ];
    // As the campaign records it: the canonical path of the run.
    cells[0].exit_code = Some(0);
    cells[0].run_dir = Some(store.join(&runs[5].rel).display().to_string());
    // A store that was moved since: the path's tail still names the run.
    cells[1].exit_code = Some(1);
    cells[1].run_dir = Some(format!("/elsewhere/store/{}", runs[1].rel));
    cells[1].explanation = Some("read of k1 returned 999, which no write <wrote>".into());
    cells[1].detail = Some("read k1 returned 999 at 6.202 s (process 1)\n".repeat(8));
    cells[2].explanation = Some("etcd did not become ready in 30s".into());
    cells[2].ops = 0;
    cells[3].explanation = Some("the campaign budget ran out".into());
    cells[3].ops = 0;
    let rec = CampaignRecord {
        name: "nightly".into(),
        file: "campaigns/nightly.toml".into(),
        dir: cdir.display().to_string(),
        stasis_version: env!("CARGO_PKG_VERSION").into(),
        started: "20261117T200000.000Z".into(),
        finished: Some("20261117T210000.000Z".into()),
        budget_s: 7200.0,
        time_limit_s: 60.0,
        seeds: "list".into(),
        planned: cells.len(),
        elapsed_s: 3600.0,
        exit_code: Some(harness::campaign::exit_code(
            &cells.iter().map(|c| c.verdict).collect::<Vec<_>>(),
        )),
        cells,
        expect_violation: Vec::new(),
    };
    std::fs::write(
        cdir.join("campaign.json"),
        serde_json::to_vec_pretty(&rec).unwrap(),
    )
    .unwrap();
    std::fs::write(
        cdir.join("summary.txt"),
        harness::campaign::summary_text(&rec),
    )
    .unwrap();
    std::fs::write(
        cdir.join("junit.xml"),
        harness::campaign::junit::render(&rec),
    )
    .unwrap();

    let selftest_rel = "selftest/20261122T210000.000Z".to_owned();
    let sdir = store.join(&selftest_rel);
    std::fs::create_dir_all(&sdir).unwrap();
    // The shape of harness::selftest::SelftestReport.
    let case = |name: &str, bug: Option<&str>, expect: &str, caught: u32, ok: bool| {
        json!({
            "case": name, "protocol": "raft", "bug": bug, "expect": expect,
            "nemesis": "partition", "runs": 1, "caught": caught,
            "median_s": if caught > 0 { json!(4.2) } else { Value::Null },
            "first_violation_dir": if caught > 0 {
                json!(format!("store/{}", runs[1].rel))
            } else {
                Value::Null
            },
            "attempts": 2, "unknown": 0, "harness_errors": 0, "ok": ok,
            "case_runs": [{"run": 1, "caught": caught > 0, "time_to_violation_s": null,
                "violation_dir": null, "elapsed_s": 9.5, "unknown": 0, "attempts": [],
                "harness_error": null, "interrupted": false}],
        })
    };
    std::fs::write(
        sdir.join("selftest.json"),
        serde_json::to_vec_pretty(&json!({
            "stasis_version": env!("CARGO_PKG_VERSION"), "started": "20261122T210000.000Z",
            "time_limit_per_case_s": 30.0, "runs": 1, "min_attempt_s": 5.0,
            "interrupted": false, "exit_code": 0,
            "cases": [
                case("stale-read", Some("stale-read"), "violation", 1, true),
                case("raft-correct", None, "none", 0, true),
            ],
        }))
        .unwrap(),
    )
    .unwrap();

    Fixture {
        root,
        store,
        runs,
        campaign_rel,
        selftest_rel,
    }
}

fn write_run(store: &Path, spec: &Spec) -> FixtureRun {
    let rel = if spec.under.is_empty() {
        format!("{}/{}", spec.test, spec.ts)
    } else {
        format!("{}/{}/{}", spec.under, spec.test, spec.ts)
    };
    let dir = store.join(&rel);
    std::fs::create_dir_all(&dir).unwrap();
    let cli = Cli::try_parse_from([
        "stasis",
        "--sut",
        spec.sut,
        "--nemesis",
        spec.nemesis,
        "--time-limit",
        "12s",
        "--seed",
        &spec.seed.to_string(),
        "--store",
        store.to_str().unwrap(),
        "--name",
        spec.test,
    ])
    .unwrap();
    let args = cli.args;
    let families = args.families();
    let sut = SutSpec::load(spec.sut).unwrap();
    let names: Vec<String> = (1..=args.nodes).map(|i| format!("n{i}")).collect();
    let schedule = nemesis::schedule(
        &families,
        &Target::parse_list(&args.target).unwrap(),
        &Shape::parse_list(&args.shapes).unwrap(),
        Duration::from_secs(8),
        args.nemesis_interval,
        names.len(),
        spec.seed,
    );
    let test = TestJson {
        stasis_version: env!("CARGO_PKG_VERSION").to_owned(),
        node_version: "stasis-node 0.1.0".to_owned(),
        seed: spec.seed,
        args: args.clone(),
        nemesis_families: families.clone(),
        schedule,
        nodes: names.clone(),
        spares: Vec::new(),
        sut,
        settings: Vec::new(),
        started: spec.ts.to_owned(),
        topology: json!({"id": "r1a2b", "subnet": "10.77.1.0/24", "bridge": "stasis-r1a2b",
            "namespaces": ["stasis-r1a2b-n1", "stasis-r1a2b-n2", "stasis-r1a2b-n3"],
            "links": ["stasis-r1a2b-v1", "stasis-r1a2b-v2", "stasis-r1a2b-v3"]}),
    };
    std::fs::write(
        dir.join("test.json"),
        serde_json::to_vec_pretty(&test).unwrap(),
    )
    .unwrap();
    for n in &names {
        std::fs::create_dir_all(dir.join(n).join("data")).unwrap();
        std::fs::write(
            dir.join(n).join("node.log"),
            format!("{n}: listening on 10.77.1.2:6379\n{n}: became follower term 1\n"),
        )
        .unwrap();
        std::fs::write(
            dir.join(n).join("data").join("wal-000001"),
            [0u8, 1, 2, 3, 0xff],
        )
        .unwrap();
    }
    std::fs::write(
        dir.join("history.jsonl"),
        history(families.first().copied(), spec.outcome == "invalid"),
    )
    .unwrap();
    std::fs::write(
        dir.join("harness.json"),
        serde_json::to_vec_pretty(&json!({"completions": 120, "harness_cpu_s": 0.2,
            "harness_cpu_share_of_one_core": 0.02, "ops_per_s": 10.0, "workload_s": 12.0}))
        .unwrap(),
    )
    .unwrap();
    let verdict = if spec.outcome == "unfinished" {
        None
    } else {
        let report =
            harness::analyze::analyze_run(&dir, None, None, Duration::from_secs(30)).unwrap();
        let v = report.verdict.id();
        assert_eq!(
            v == "linearizable",
            spec.outcome != "invalid",
            "fixture history for {rel} checked as {v}"
        );
        if spec.outcome == "unknown" {
            // What a run whose check ran out of budget records.
            let path = dir.join("results.json");
            let mut r: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            r["verdict"] = json!("unknown");
            r["exit_code"] = json!(2);
            std::fs::write(&path, serde_json::to_vec_pretty(&r).unwrap()).unwrap();
            Some("unknown")
        } else {
            Some(v)
        }
    };
    if spec.outcome == "valid" {
        // Disk text is escaped on the page: this must show as text, never run.
        let mut s = std::fs::read_to_string(dir.join("summary.txt")).unwrap();
        s.push_str("note: <script>document.title='pwned'</script> & more\n");
        std::fs::write(dir.join("summary.txt"), s).unwrap();
    }
    // analyze_run drew the plots (plotters) and wrote report.html; a run that never
    // finished has neither.
    let mut images: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".svg") || n.ends_with(".png"))
        .collect();
    images.sort();
    for plot in spec.plots {
        for ext in ["svg", "png"] {
            assert!(
                images.contains(&format!("{plot}.{ext}")),
                "{rel}: analyze_run wrote no {plot}.{ext} (it wrote {images:?})"
            );
        }
    }
    assert_eq!(
        dir.join("report.html").is_file(),
        verdict.is_some(),
        "{rel}"
    );
    FixtureRun {
        rel,
        system: spec.sut,
        nemesis: spec.nemesis,
        verdict,
        images,
    }
}

/// A short history in the recorder's format: 60 operations over 12 s on two keys, with
/// a fault window of `family`; `stale` adds a read of a value nobody wrote.
fn history(family: Option<Family>, stale: bool) -> String {
    let mut lines = Vec::new();
    let mut push = |time: u64,
                    process: Value,
                    kind: &str,
                    f: &str,
                    key: Option<&str>,
                    value: Value| {
        let mut o = json!({"index": lines.len(), "time": time, "process": process, "type": kind, "f": f, "value": value});
        if let Some(k) = key {
            o["key"] = json!(k);
        }
        lines.push(o.to_string());
    };
    let fault = family.map(|f| {
        serde_json::to_value(f)
            .unwrap()
            .as_str()
            .unwrap()
            .to_owned()
    });
    // The values the nemesis records for each kind of fault.
    let fault_value = match fault.as_deref() {
        Some("clock") => json!({"nodes": ["n2"], "offset_ms": -33000}),
        Some("partition") => json!({"grudge": {"n1": ["n2"], "n2": ["n1", "n3"], "n3": ["n2"]},
            "shape": "isolate-one"}),
        _ => json!(["n2"]),
    };
    let mut last = [0u64; 2];
    for i in 0..60u64 {
        let t = i * 200_000_000 + 1_000_000;
        if let Some(f) = &fault {
            if i == 20 {
                push(
                    t - 500_000,
                    json!("nemesis"),
                    "info",
                    &format!("start-{f}"),
                    None,
                    fault_value.clone(),
                );
            }
            if i == 40 {
                push(
                    t - 500_000,
                    json!("nemesis"),
                    "info",
                    &format!("stop-{f}"),
                    None,
                    fault_value.clone(),
                );
            }
        }
        let k = (i % 2) as usize;
        let key = format!("k{k}");
        let p = json!(i % 3);
        if i % 3 == 0 {
            let v = i + 1;
            push(t, p.clone(), "invoke", "write", Some(&key), json!(v));
            push(t + 2_000_000, p, "ok", "write", Some(&key), json!(v));
            last[k] = v;
        } else {
            let seen = if stale && i == 31 {
                json!(999)
            } else if last[k] == 0 {
                Value::Null
            } else {
                json!(last[k])
            };
            push(t, p.clone(), "invoke", "read", Some(&key), Value::Null);
            push(t + 1_000_000, p, "ok", "read", Some(&key), seen);
        }
    }
    if fault.is_some() {
        push(
            12_500_000_000,
            json!("nemesis"),
            "info",
            "heal",
            None,
            json!("all faults healed, all nodes running"),
        );
    }
    lines.join("\n") + "\n"
}

/// A `stasis serve` child on an ephemeral loopback port; killed on drop.
pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
}

impl Server {
    pub fn start(store: &Path) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_stasis"))
            .args(["serve", store.to_str().unwrap(), "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut out = child.stdout.take().unwrap();
        // The first line is `listening on http://ADDR/`.
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        while out.read(&mut byte).unwrap_or(0) == 1 && byte[0] != b'\n' {
            line.push(byte[0]);
        }
        let line = String::from_utf8(line).unwrap();
        let addr = line
            .strip_prefix("listening on http://")
            .and_then(|s| s.strip_suffix('/'))
            .unwrap_or_else(|| panic!("unexpected first line from stasis serve: {line:?}"))
            .parse()
            .unwrap();
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
        Server { child, addr }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn get(&self, path: &str) -> Resp {
        self.raw(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes())
    }

    /// Sends bytes as they are and reads the whole answer.
    pub fn raw(&self, bytes: &[u8]) -> Resp {
        let mut s = TcpStream::connect(self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        // The server may answer and close before reading everything (bad heads).
        let _ = s.write_all(bytes);
        let _ = s.shutdown(std::net::Shutdown::Write);
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf);
        Resp::parse(&buf)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    fn parse(buf: &[u8]) -> Resp {
        let end = buf
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or_else(|| panic!("no response head in {:?}", String::from_utf8_lossy(buf)));
        let head = std::str::from_utf8(&buf[..end]).unwrap();
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap();
        let status = status_line.split(' ').nth(1).unwrap().parse().unwrap();
        let headers = lines
            .map(|l| {
                let (k, v) = l.split_once(": ").unwrap();
                (k.to_ascii_lowercase(), v.to_owned())
            })
            .collect();
        Resp {
            status,
            headers,
            body: buf[end + 4..].to_vec(),
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// The `data-rel` of every run row of an index page, in order.
pub fn run_rows(html: &str) -> Vec<String> {
    rows(html, "row run ")
}

pub fn rows(html: &str, class_prefix: &str) -> Vec<String> {
    html.split("<tr class=\"")
        .skip(1)
        .filter(|r| r.starts_with(class_prefix))
        .filter_map(|r| {
            let rest = r.split("data-rel=\"").nth(1)?;
            Some(rest.split('"').next()?.to_owned())
        })
        .collect()
}

/// The verdict class of the row with `data-rel` = `rel`.
pub fn row_class(html: &str, rel: &str) -> Option<String> {
    let needle = format!("data-rel=\"{rel}\"");
    html.split("<tr class=\"").skip(1).find_map(|r| {
        let (cls, rest) = r.split_once('"')?;
        rest.trim_start()
            .starts_with(&needle)
            .then(|| cls.split(' ').nth(2).unwrap_or_default().to_owned())
    })
}

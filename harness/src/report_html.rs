//! A run's `report.html`: one self-contained page (inline CSS, nothing fetched) that ties
//! together the verdict, the summary tables, the plots, the fault timeline and, for a
//! violation, the checker's explanation and its timeline. Written by
//! [`crate::analyze::analyze_run`] after `results.json` and the plots; every link is a
//! relative path to a file of the run directory.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use checker::history::{Op, Process};
use checker::report::esc;
use checker::{CheckResult, Verdict};
use serde_json::Value;

use crate::plot::fault_colour;

/// What the report is made from.
pub struct Input<'a> {
    pub check: &'a CheckResult,
    /// The `results.json` value just written.
    pub results: &'a Value,
    pub ops: &'a [Op],
    /// The plot files written, or why there are none.
    pub plots: &'a Result<Vec<String>, String>,
}

fn hex(kind: &str) -> String {
    let c = fault_colour(kind);
    format!("#{:02x}{:02x}{:02x}", c.0, c.1, c.2)
}

const CSS: &str = "
body{font-family:system-ui,'DejaVu Sans',sans-serif;margin:1.5em auto;max-width:1180px;color:#222;padding:0 1em}
h1{font-size:1.4em;margin-bottom:.2em} h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ddd}
.verdict{display:inline-block;padding:.25em .8em;border-radius:4px;color:#fff;font-weight:bold}
.v-linearizable{background:#1a7f37} .v-not-linearizable{background:#cf222e} .v-unknown{background:#9a6700}
.problem{border-left:4px solid #9a6700;padding:.3em .8em;background:#fff8c5}
table{border-collapse:collapse;margin:.5em 0;font-size:.92em} td,th{border:1px solid #ddd;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f4f4f4} td.n{text-align:right;font-variant-numeric:tabular-nums}
.sw{display:inline-block;width:.9em;height:.9em;border-radius:2px;vertical-align:middle;margin-right:.35em}
figure{margin:1em 0} figure img{max-width:100%;border:1px solid #ddd} figcaption{font-size:.9em;color:#555}
pre{background:#f6f8fa;padding:.8em;overflow:auto;font-size:.85em;border:1px solid #ddd}
.bad{color:#cf222e;font-weight:bold} .muted{color:#666} code{font-size:.9em}
iframe{width:100%;height:640px;border:1px solid #ddd}
";

fn num(v: Option<&Value>) -> u64 {
    v.and_then(Value::as_u64).unwrap_or(0)
}

fn secs(ns: Option<u64>) -> String {
    ns.map_or("end".to_owned(), |t| format!("{:.2} s", t as f64 / 1e9))
}

fn test_json(dir: &Path) -> Value {
    std::fs::read(dir.join("test.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Value::Null)
}

/// Writes `dir/report.html`.
pub fn write(dir: &Path, input: &Input<'_>) -> Result<()> {
    let html = render(dir, input);
    let path = dir.join("report.html");
    std::fs::write(&path, html).with_context(|| format!("cannot write {}", path.display()))
}

/// Renders the page.
pub fn render(dir: &Path, input: &Input<'_>) -> String {
    let check = input.check;
    let results = input.results;
    let test = test_json(dir);
    let title = {
        let parts: Vec<String> = dir
            .components()
            .rev()
            .take(2)
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        parts.into_iter().rev().collect::<Vec<_>>().join(" / ")
    };
    let verdict = check.verdict.id();
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} — {verdict}</title><style>{CSS}</style></head><body>\n",
        esc(&title)
    );
    let _ = writeln!(
        h,
        "<h1>{}</h1><p><span class=\"verdict v-{verdict}\" id=\"verdict\">{verdict}</span> \
         <span class=\"muted\">{} operations checked in {:.0} ms ({} model)</span></p>",
        esc(&title),
        check.ops,
        check.elapsed_ms,
        esc(check.model)
    );

    // A run that ended early: its problem, right under the verdict.
    if let Some(p) = results
        .get("problem")
        .cloned()
        .and_then(|p| serde_json::from_value::<crate::record::Problem>(p).ok())
    {
        let _ = writeln!(
            h,
            "<p class=\"problem\" id=\"problem\">{}</p>",
            esc(&p.line())
        );
    }

    // The run: options from test.json.
    let _ = writeln!(h, "<h2>Run</h2><table>");
    let row = |h: &mut String, k: &str, v: String| {
        let _ = writeln!(h, "<tr><th>{k}</th><td>{}</td></tr>", esc(&v));
    };
    row(&mut h, "directory", dir.display().to_string());
    let args = test.get("args");
    let arg = |k: &str| {
        args.and_then(|a| a.get(k)).map(|v| match v {
            Value::String(s) => s.clone(),
            // A serialized Duration.
            Value::Object(o) if o.contains_key("secs") => format!(
                "{} s",
                num(o.get("secs")) as f64 + num(o.get("nanos")) as f64 / 1e9
            ),
            v => v.to_string(),
        })
    };
    if let Some(v) = test.get("started").and_then(Value::as_str) {
        row(&mut h, "started", v.to_owned());
    }
    if let Some(v) = test.get("seed") {
        row(&mut h, "seed", v.to_string());
    }
    for (k, label) in [
        ("sut", "system"),
        ("nemesis", "nemesis"),
        ("time_limit", "time limit"),
        ("concurrency", "clients"),
        ("rate", "target rate (ops/s)"),
        ("keys", "keys"),
    ] {
        if let Some(v) = arg(k) {
            row(&mut h, label, v);
        }
    }
    if let Some(n) = test.get("nodes").and_then(Value::as_array) {
        let names: Vec<&str> = n.iter().filter_map(Value::as_str).collect();
        row(&mut h, "nodes", names.join(", "));
    }
    let _ = writeln!(h, "</table>");

    // A violation first: it is what the reader came for.
    if let Some(e) = &check.explanation {
        let _ = writeln!(
            h,
            "<h2>Violation</h2><p class=\"bad\">{}</p>",
            esc(&e.sentence)
        );
        if let Ok(text) = std::fs::read_to_string(dir.join("explanation.txt")) {
            let _ = writeln!(h, "<pre id=\"explanation\">{}</pre>", esc(&text));
        }
        if dir.join("timeline.html").is_file() {
            let _ = writeln!(
                h,
                "<p><a href=\"timeline.html\">timeline.html</a>: the failing key's operations \
                 (open it on its own for full width)</p>\
                 <iframe src=\"timeline.html\" title=\"timeline of the failing key\"></iframe>"
            );
        }
    }
    let unknown: Vec<_> = check
        .partitions
        .iter()
        .filter(|p| p.verdict == Verdict::Unknown)
        .collect();
    if !unknown.is_empty() {
        let _ = writeln!(
            h,
            "<h2>Unknown</h2><p>The checker gave up on these keys:</p><ul>"
        );
        for p in unknown {
            let _ = writeln!(
                h,
                "<li><code>{}</code>: {}</li>",
                esc(p.key.as_deref().unwrap_or("-")),
                esc(p.gave_up.as_deref().unwrap_or("gave up"))
            );
        }
        let _ = writeln!(h, "</ul>");
    }

    // Operations and latency.
    let _ = writeln!(
        h,
        "<h2>Operations</h2><table><tr><th>function</th><th>ok</th><th>fail</th><th>info</th></tr>"
    );
    if let Some(ops) = results.get("ops").and_then(Value::as_object) {
        for (f, by) in ops {
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
                esc(f),
                num(by.get("ok")),
                num(by.get("fail")),
                num(by.get("info"))
            );
        }
    }
    let _ = writeln!(
        h,
        "</table><table><tr><th>latency of ok operations</th><th>n</th><th>p50 (ms)</th>\
         <th>p99 (ms)</th><th>max (ms)</th></tr>"
    );
    for l in results
        .get("latency")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let f = |k: &str| l.get(k).and_then(Value::as_f64).unwrap_or(0.0);
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{:.2}</td><td class=\"n\">{:.2}</td><td class=\"n\">{:.2}</td></tr>",
            esc(l.get("f").and_then(Value::as_str).unwrap_or("?")),
            num(l.get("count")),
            f("p50_ms"),
            f("p99_ms"),
            f("max_ms")
        );
    }
    let _ = writeln!(h, "</table>");

    // Availability under each fault.
    let _ = writeln!(h, "<h2>Availability during each fault</h2>");
    let windows: Vec<&Value> = results
        .get("fault_windows")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .collect();
    if windows.is_empty() {
        let _ = writeln!(h, "<p>No faults were injected.</p>");
    } else {
        let _ = writeln!(
            h,
            "<table><tr><th>fault</th><th>from</th><th>to</th><th>what</th><th>ok</th><th>fail</th>\
             <th>info</th><th>ok fraction</th></tr>"
        );
        for w in windows {
            let kind = w.get("f").and_then(Value::as_str).unwrap_or("?");
            let (ok, fail, info) = (num(w.get("ok")), num(w.get("fail")), num(w.get("info")));
            let total = ok + fail + info;
            let frac = if total == 0 {
                0.0
            } else {
                ok as f64 / total as f64
            };
            let _ = writeln!(
                h,
                "<tr><td><span class=\"sw\" style=\"background:{}\"></span>{}</td><td class=\"n\">{}</td>\
                 <td class=\"n\">{}</td><td><code>{}</code></td><td class=\"n\">{ok}</td>\
                 <td class=\"n\">{fail}</td><td class=\"n\">{info}</td><td class=\"n\">{frac:.2}</td></tr>",
                hex(kind),
                esc(kind),
                secs(w.get("start_ns").and_then(Value::as_u64)),
                secs(w.get("stop_ns").and_then(Value::as_u64)),
                esc(&w.get("value").map(Value::to_string).unwrap_or_default()),
            );
        }
        let _ = writeln!(h, "</table>");
    }
    let slots: Vec<&Value> = results
        .get("availability_windows")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .collect();
    if !slots.is_empty() {
        let width = crate::record::WINDOW.as_secs();
        let _ = writeln!(
            h,
            "<table><tr><th>{width} s window from</th><th>ok</th><th>fail</th><th>info</th></tr>"
        );
        for s in slots {
            let ok = num(s.get("ok"));
            let _ = writeln!(
                h,
                "<tr><td class=\"n\">{:.0} s</td><td class=\"n{}\">{ok}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
                s.get("start_s").and_then(Value::as_f64).unwrap_or(0.0),
                if ok == 0 { " bad" } else { "" },
                num(s.get("fail")),
                num(s.get("info"))
            );
        }
        let _ = writeln!(h, "</table>");
    }

    // Plots.
    let _ = writeln!(h, "<h2>Plots</h2>");
    match input.plots {
        Err(why) => {
            let _ = writeln!(
                h,
                "<p class=\"bad\">The plots could not be drawn: {}</p>",
                esc(why)
            );
        }
        Ok(files) => {
            for (stem, what) in [
                (
                    "latency",
                    "Latency of each client operation at its invocation time (log scale); \
                     colour = function, marker = outcome; nemesis intervals shaded.",
                ),
                (
                    "throughput",
                    "Completions per second by outcome; nemesis intervals shaded.",
                ),
                (
                    "clock",
                    "Each node's wall-clock offset; a strobe flips between real time and the \
                     offset inside the band.",
                ),
            ] {
                let (png, svg) = (format!("{stem}.png"), format!("{stem}.svg"));
                if files.contains(&png) {
                    let _ = writeln!(
                        h,
                        "<figure><a href=\"{svg}\"><img src=\"{png}\" alt=\"{stem} plot\"></a>\
                         <figcaption>{what} <a href=\"{svg}\">SVG</a> · <a href=\"{png}\">PNG</a></figcaption></figure>"
                    );
                }
            }
        }
    }

    // Fault timeline: every nemesis event, with what was verified.
    let _ = writeln!(h, "<h2>Fault timeline</h2>");
    let events: Vec<&Op> = input
        .ops
        .iter()
        .filter(|o| o.process == Process::Nemesis)
        .collect();
    if events.is_empty() {
        let _ = writeln!(h, "<p>No nemesis events in the history.</p>");
    } else {
        let evidence: Vec<&Value> = results
            .get("faults")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .collect();
        let _ = writeln!(
            h,
            "<table id=\"faults\"><tr><th>time</th><th>event</th><th>value</th><th>verified</th></tr>"
        );
        for e in events {
            let kind =
                e.f.strip_prefix("start-")
                    .or_else(|| e.f.strip_prefix("stop-"))
                    .unwrap_or(&e.f);
            // The live run's evidence for this fault (start and heal), on its start event.
            let proof: Vec<&str> = evidence
                .iter()
                .filter(|r| r.get("start_ns").and_then(Value::as_u64) == Some(e.time))
                .flat_map(|r| {
                    r.get("evidence")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                })
                .filter_map(Value::as_str)
                .collect();
            let _ = writeln!(
                h,
                "<tr><td class=\"n\">{:.3} s</td><td><span class=\"sw\" style=\"background:{}\"></span>{}</td>\
                 <td><code>{}</code></td><td>{}</td></tr>",
                e.time as f64 / 1e9,
                hex(kind),
                esc(&e.f),
                esc(&e.value.to_string()),
                esc(&proof.join("; "))
            );
        }
        let _ = writeln!(h, "</table>");
    }

    // Files of the run.
    let _ = writeln!(h, "<h2>Files</h2><ul>");
    let mut files: Vec<String> = [
        "summary.txt",
        "results.json",
        "test.json",
        "history.jsonl",
        "harness.json",
        "explanation.txt",
        "timeline.html",
    ]
    .iter()
    .filter(|f| dir.join(f).is_file())
    .map(|f| f.to_string())
    .collect();
    if let Some(nodes) = test.get("nodes").and_then(Value::as_array) {
        for n in nodes.iter().filter_map(Value::as_str) {
            let log = format!("{n}/node.log");
            if dir.join(&log).is_file() {
                files.push(log);
            }
        }
    }
    for f in files {
        let _ = writeln!(h, "<li><a href=\"{0}\">{0}</a></li>", esc(&f));
    }
    let _ = writeln!(h, "</ul>");
    if let Ok(s) = std::fs::read_to_string(dir.join("summary.txt")) {
        let _ = writeln!(
            h,
            "<details><summary>summary.txt</summary><pre>{}</pre></details>",
            esc(&s)
        );
    }
    let _ = writeln!(h, "</body></html>");
    h
}

//! Checking a stored run: the verdict, the availability under each fault, and the files
//! people read (`results.json`, `summary.txt`). `stasis analyze RUN_DIR` re-runs this on
//! a stored run, including one whose harness was killed (torn history tail). It also draws
//! the plots (`plot`) and writes `report.html` (`report_html`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use checker::ModelKind;
use checker::history::{Op, OpType, read_jsonl};
use checker::{CheckOptions, CheckResult, Verdict, check_history};
use serde::Serialize;
use serde_json::{Value, json};

use crate::nemesis::FaultRecord;
use crate::record::{FaultWindow, Problem, WINDOW, fault_windows};

/// Completion counts in one fixed window.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Slot {
    pub start_s: f64,
    pub ok: u64,
    pub fail: u64,
    pub info: u64,
}

/// The result of analyzing a run.
#[derive(Debug)]
pub struct Report {
    /// The run's exit code: the verdict's (0, 1, 2) combined with how the run ended
    /// ([`Problem::exit_code`]).
    pub exit_code: u8,
    /// Why the run ended early, if it did.
    pub problem: Option<Problem>,
    pub verdict: Verdict,
    pub summary_text: String,
    pub windows: Vec<FaultWindow>,
    pub slots: Vec<Slot>,
    pub check: CheckResult,
}

/// Client completions per fixed window of the whole run.
pub fn slots(ops: &[Op], width: Duration) -> Vec<Slot> {
    let w = width.as_nanos() as u64;
    let end = ops.iter().map(|o| o.time).max().unwrap_or(0);
    let mut out: Vec<Slot> = (0..=end / w)
        .map(|k| Slot {
            start_s: (k * w) as f64 / 1e9,
            ok: 0,
            fail: 0,
            info: 0,
        })
        .collect();
    for op in ops.iter().filter(|o| o.is_client_completion()) {
        let s = &mut out[(op.time / w) as usize];
        match op.kind {
            OpType::Ok => s.ok += 1,
            OpType::Fail => s.fail += 1,
            OpType::Info => s.info += 1,
            OpType::Invoke => {}
        }
    }
    out
}

/// Latency of ok operations of one kind, milliseconds.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Latency {
    pub f: String,
    pub count: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// Latency percentiles of ok operations, per function and over all (`f` = `all`).
pub fn latencies(ops: &[Op]) -> Vec<Latency> {
    let mut by_f: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for o in checker::history::pair(ops) {
        if let (checker::history::Outcome::Ok, Some(ret)) = (o.outcome, o.ret) {
            let d = ret.saturating_sub(o.call);
            by_f.entry(o.f.to_string()).or_default().push(d);
            by_f.entry("all".into()).or_default().push(d);
        }
    }
    by_f.into_iter()
        .map(|(f, mut v)| {
            v.sort_unstable();
            let pct = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize] as f64 / 1e6;
            Latency {
                f,
                count: v.len(),
                p50_ms: pct(0.5),
                p99_ms: pct(0.99),
                max_ms: pct(1.0),
            }
        })
        .collect()
}

/// Checks the run in `dir` and writes `results.json` and `summary.txt`.
///
/// `faults` and `problem` come from the live run; when re-analyzing (`None`), those of the
/// previous `results.json` are kept.
pub fn analyze_run(
    dir: &Path,
    faults: Option<&[FaultRecord]>,
    problem: Option<&Problem>,
    timeout: Duration,
) -> Result<Report> {
    let path = dir.join("history.jsonl");
    let history = read_jsonl(&path).map_err(anyhow::Error::msg)?;
    for w in &history.warnings {
        eprintln!("stasis: warning: {w}");
    }
    let ops = history.ops;
    let mut opts = CheckOptions::new(ModelKind::Kv);
    opts.timeout = Some(timeout);
    let check =
        check_history(&ops, &opts).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let windows = fault_windows(&ops);
    let slots = slots(&ops, WINDOW);
    let latency = latencies(&ops);
    let lost = crate::lost_writes::find(&ops);

    let mut counts: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for op in ops.iter().filter(|o| o.is_client_completion()) {
        *counts
            .entry(op.f.clone())
            .or_default()
            .entry(op.kind.to_string())
            .or_default() += 1;
    }
    // Keep the fault evidence and the problem of the live run when re-analyzing.
    let previous = || {
        std::fs::read(dir.join("results.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
    };
    let evidence: Value = match faults {
        Some(f) => serde_json::to_value(f)?,
        None => previous()
            .and_then(|v| v.get("faults").cloned())
            .unwrap_or(Value::Null),
    };
    let problem: Option<Problem> = match (faults, problem) {
        (_, Some(p)) => Some(p.clone()),
        (Some(_), None) => None,
        (None, None) => previous()
            .and_then(|v| v.get("problem").cloned())
            .and_then(|p| serde_json::from_value(p).ok()),
    };
    let exit_code = Problem::exit_code(check.verdict.exit_code(), problem.as_ref());
    let results = json!({
        "verdict": check.verdict.id(),
        "exit_code": exit_code,
        "problem": problem,
        "ops": counts,
        "history_warnings": history.warnings,
        "check": {
            "model": check.model,
            "elapsed_ms": check.elapsed_ms,
            "partitions": check.partitions,
            "explanation": check.explanation,
        },
        "fault_windows": windows,
        "availability_windows": slots,
        "latency": latency,
        "lost_writes": lost,
        "faults": evidence,
    });
    let results_path = dir.join("results.json");
    std::fs::write(&results_path, serde_json::to_vec_pretty(&results)?)
        .with_context(|| format!("cannot write {}", results_path.display()))?;

    // A violation gets the checker's full explanation and its self-contained timeline.
    if let Some(e) = &check.explanation {
        std::fs::write(
            dir.join("explanation.txt"),
            checker::report::explanation_text(e),
        )
        .with_context(|| format!("cannot write {}", dir.join("explanation.txt").display()))?;
        let title = format!("{} — {}", dir.display(), check.verdict.id());
        std::fs::write(
            dir.join("timeline.html"),
            checker::report::html(&check, &title),
        )
        .with_context(|| format!("cannot write {}", dir.join("timeline.html").display()))?;
    }
    let mut summary_text = summary(dir, &check, &counts, &latency, &windows, &slots);
    // Right after the verdict and its explanation.
    let lost_lines = crate::lost_writes::summary_lines(&lost, 10).join("\n");
    let at = summary_text
        .find("operations:\n")
        .unwrap_or(summary_text.len());
    summary_text.insert_str(at, &format!("{lost_lines}\n"));
    if let Some(p) = &problem {
        // Right under the verdict line.
        let at = summary_text
            .match_indices('\n')
            .nth(1)
            .map_or(summary_text.len(), |(i, _)| i + 1);
        summary_text.insert_str(at, &format!("{}\n", p.line()));
    }
    std::fs::write(dir.join("summary.txt"), &summary_text)
        .with_context(|| format!("cannot write {}", dir.join("summary.txt").display()))?;
    // Plots are a view: a drawing failure is reported (here and in report.html), not fatal.
    let plots = crate::plot::write_plots(dir, &ops, &windows).map_err(|e| format!("{e:#}"));
    if let Err(e) = &plots {
        eprintln!("stasis: warning: no plots for {}: {e}", dir.display());
    }
    let page = crate::report_html::Input {
        check: &check,
        results: &results,
        ops: &ops,
        plots: &plots,
    };
    crate::report_html::write(dir, &page)?;
    Ok(Report {
        exit_code,
        problem,
        verdict: check.verdict,
        summary_text,
        windows,
        slots,
        check,
    })
}

fn summary(
    dir: &Path,
    check: &CheckResult,
    counts: &BTreeMap<String, BTreeMap<String, u64>>,
    latency: &[Latency],
    windows: &[FaultWindow],
    slots: &[Slot],
) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "run: {}", dir.display());
    let _ = writeln!(
        s,
        "verdict: {} ({} operations checked in {:.0} ms)",
        check.verdict.id(),
        check.ops,
        check.elapsed_ms
    );
    if let Some(e) = &check.explanation {
        let _ = writeln!(s, "violation: {}", e.sentence);
        let _ = writeln!(
            s,
            "explanation: {} (timeline: {})",
            dir.join("explanation.txt").display(),
            dir.join("timeline.html").display()
        );
    }
    for p in check
        .partitions
        .iter()
        .filter(|p| p.verdict == Verdict::Unknown)
    {
        let _ = writeln!(
            s,
            "unknown: key {} ({})",
            p.key.as_deref().unwrap_or("-"),
            p.gave_up.as_deref().unwrap_or("gave up")
        );
    }
    let _ = writeln!(s, "operations:");
    for (f, by) in counts {
        let get = |k: &str| by.get(k).copied().unwrap_or(0);
        let _ = writeln!(
            s,
            "  {f:<6} ok {:>6}  fail {:>6}  info {:>6}",
            get("ok"),
            get("fail"),
            get("info")
        );
    }
    let _ = writeln!(s, "latency of ok operations:");
    for l in latency {
        let _ = writeln!(
            s,
            "  {:<6} n {:>7}  p50 {:>8.2} ms  p99 {:>8.2} ms  max {:>8.2} ms",
            l.f, l.count, l.p50_ms, l.p99_ms, l.max_ms
        );
    }
    let _ = writeln!(s, "faults (ok fraction of completions during each):");
    if windows.is_empty() {
        let _ = writeln!(s, "  none");
    }
    for w in windows {
        let stop = w
            .stop_ns
            .map_or("end".to_owned(), |t| format!("{:.1}s", t as f64 / 1e9));
        let _ = writeln!(
            s,
            "  {:<10} {:>6.1}s-{:<7} {:<40} ok {:>5} fail {:>5} info {:>4}  ok fraction {:.2}",
            w.f,
            w.start_ns as f64 / 1e9,
            stop,
            w.value.to_string(),
            w.ok,
            w.fail,
            w.info,
            w.ok_fraction()
        );
    }
    let empty: Vec<String> = slots
        .iter()
        .filter(|sl| sl.ok == 0)
        .map(|sl| format!("{:.0}s", sl.start_s))
        .collect();
    let _ = writeln!(
        s,
        "availability: {} of {} {}-second windows had ok operations{}",
        slots.len() - empty.len(),
        slots.len(),
        WINDOW.as_secs(),
        if empty.is_empty() {
            String::new()
        } else {
            format!(" (none in the windows starting at {})", empty.join(", "))
        }
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use checker::history::Process;

    fn ev(time: u64, process: Process, kind: OpType, f: &str) -> Op {
        Op {
            index: 0,
            time,
            process,
            kind,
            f: f.into(),
            key: Some("k0".into()),
            value: Value::Null,
            error: None,
            node: None,
        }
    }

    #[test]
    fn windows_count_completions_inside_each_fault() {
        let c = Process::Client(1);
        let n = Process::Nemesis;
        let ops = vec![
            ev(1, c, OpType::Invoke, "read"),
            ev(2, c, OpType::Ok, "read"),
            ev(3, n, OpType::Info, "start-kill"),
            ev(4, c, OpType::Invoke, "write"),
            ev(5, c, OpType::Fail, "write"),
            ev(6, c, OpType::Invoke, "write"),
            ev(7, c, OpType::Ok, "write"),
            ev(8, n, OpType::Info, "stop-kill"),
            ev(9, c, OpType::Invoke, "read"),
            ev(10, c, OpType::Ok, "read"),
            ev(11, n, OpType::Info, "start-pause"),
        ];
        let w = fault_windows(&ops);
        assert_eq!(w.len(), 2);
        assert_eq!(
            (w[0].f.as_str(), w[0].ok, w[0].fail, w[0].stop_ns),
            ("kill", 1, 1, Some(8))
        );
        assert_eq!(w[0].ok_fraction(), 0.5);
        assert_eq!((w[1].f.as_str(), w[1].stop_ns), ("pause", None));
        let lat = latencies(&ops);
        let all = lat.iter().find(|l| l.f == "all").unwrap();
        assert_eq!((all.count, all.max_ms), (3, 1e-6));
        let sl = slots(&ops, Duration::from_nanos(5));
        assert_eq!(sl.len(), 3);
        assert_eq!((sl[0].ok, sl[1].ok, sl[1].fail, sl[2].ok), (1, 1, 1, 1));
    }
}

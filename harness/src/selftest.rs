//! `stasis selftest`: run every seeded bug until the harness catches it, and the correct
//! builds under the same schedules, and say how fast each bug was caught.
//!
//! For each case and each of `--runs` runs (a *case-run*): repeat short test runs
//! (*attempts*), each with a fresh random seed, cycling through the case's plans, until
//! one reports a linearizability violation or the case's time limit is used up. An
//! attempt starts only while the case-run is within its time limit (the last one is
//! shortened to what is left, but never below [`MIN_ATTEMPT`]), so a case-run can end at
//! most one attempt's setup, recovery and check after its limit.
//!
//! *Time to first violation* is the wall time from the start of the case-run to the
//! moment the attempt whose history violates linearizability has finished (cluster
//! start, workload, heal, final reads and the check all included), i.e. when the harness
//! knows about the bug.

pub mod cases;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use serde::Serialize;

use crate::record::Verdict;
use crate::run::{self, Overrides, TestArgs};
use crate::signals;
pub use cases::{Case, Plan};

/// The shortest attempt worth starting.
pub const MIN_ATTEMPT: Duration = Duration::from_secs(6);

/// Options of `stasis selftest`.
#[derive(clap::Args, Clone, Debug)]
pub struct SelftestArgs {
    /// Budget of each case in each run: attempts start until this much wall time is used.
    #[arg(long, default_value = "60s", value_parser = run::parse_duration)]
    pub time_limit_per_case: Duration,
    /// How many times to run each case (each run starts from scratch with fresh seeds).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub runs: u32,
    /// Run only this case (repeatable), e.g. `--case raft/stale-read`; default all.
    #[arg(long = "case")]
    pub cases: Vec<String>,
    /// Run store: the runs and selftest.json go to STORE/selftest/<timestamp>/.
    #[arg(long, default_value = "store")]
    pub store: PathBuf,
    /// The stasis-node binary (default: next to this `stasis` binary).
    #[arg(long)]
    pub node_bin: Option<PathBuf>,
    /// Run every case under deterministic simulation (`stasis sim`) instead of real
    /// processes: same plans' node flags and workloads, generic faults from fresh seeds.
    /// Results go to STORE/selftest-sim/<timestamp>/. Needs no root.
    #[arg(long)]
    pub sim: bool,
}

/// One test run inside a case-run.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Attempt {
    pub plan: String,
    pub seed: u64,
    /// `linearizable`, `not-linearizable`, `unknown`, `interrupted` or `error`: the
    /// checker's verdict on the history.
    pub verdict: String,
    /// What the attempt found, if anything: `not-linearizable` (the checker's), and under
    /// simulation also `abort-took-effect` (a definite membership answer proved false),
    /// `replicas-diverged` (two nodes applied different entries at one index),
    /// `two-leaders` (two leaders in one Raft term) or `no-progress` (none after the last
    /// fault healed), the first of them in that order ([`crate::sim::Failure`]).
    pub finding: Option<String>,
    pub run_dir: Option<PathBuf>,
    /// Seconds from the start of the case-run to the end of this attempt.
    pub ended_s: f64,
    pub workload_s: f64,
    pub completions: u64,
    pub error: Option<String>,
}

/// One run of one case: attempts until the first violation or the time limit.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct CaseRun {
    pub run: u32,
    /// A safety finding was made (see [`CaseRun::caught_by`]).
    pub caught: bool,
    /// The finding of the attempt that caught it ([`Attempt::finding`]).
    pub caught_by: Option<String>,
    /// Time to first violation (see the module docs), if caught.
    pub time_to_violation_s: Option<f64>,
    pub violation_dir: Option<PathBuf>,
    pub elapsed_s: f64,
    pub unknown: u32,
    /// Attempts without progress after the last fault healed (`selftest --sim`): a
    /// liveness finding, never a catch; a failure of a correct build.
    pub no_progress: u32,
    pub attempts: Vec<Attempt>,
    pub harness_error: Option<String>,
    pub interrupted: bool,
}

impl CaseRun {
    /// Run number `run` before its first attempt (shared by `selftest` and `selftest --sim`).
    pub fn new(run: u32) -> CaseRun {
        CaseRun {
            run,
            caught: false,
            caught_by: None,
            time_to_violation_s: None,
            violation_dir: None,
            elapsed_s: 0.0,
            unknown: 0,
            no_progress: 0,
            attempts: Vec::new(),
            harness_error: None,
            interrupted: false,
        }
    }
}

/// A case's line of the table and its entry in selftest.json.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct CaseSummary {
    pub case: String,
    pub protocol: String,
    pub bug: Option<String>,
    /// `violation` for a bug (it must be caught), `none` for a correct build.
    pub expect: String,
    pub nemesis: String,
    pub runs: u32,
    /// Runs that saw a violation (for a correct build, each is a false alarm or a real
    /// bug in the correct code: either way a failure).
    pub caught: u32,
    /// Of the caught runs, how many each finding caught (`not-linearizable`, and under
    /// simulation `abort-took-effect`, `replicas-diverged`, `two-leaders`).
    pub caught_by: BTreeMap<String, u32>,
    /// Median time to first violation over all runs, an uncaught run counting as never;
    /// `None` when at least half the runs did not catch it.
    pub median_s: Option<f64>,
    /// The run directory of the first violation found.
    pub first_violation_dir: Option<PathBuf>,
    pub attempts: usize,
    pub unknown: u32,
    /// Attempts without progress after the heal ([`CaseRun::no_progress`]).
    pub no_progress: u32,
    pub harness_errors: u32,
    /// Whether this case met its expectation (a bug caught at least once; a correct build
    /// never caught and never without progress).
    pub ok: bool,
    pub case_runs: Vec<CaseRun>,
}

/// The whole selftest, as written to selftest.json.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct SelftestReport {
    pub stasis_version: String,
    pub started: String,
    pub time_limit_per_case_s: f64,
    pub runs: u32,
    pub min_attempt_s: f64,
    pub interrupted: bool,
    pub exit_code: u8,
    /// `pass` (exit 0), `fail` (1) or `error` (3).
    pub verdict: String,
    pub cases: Vec<CaseSummary>,
}

/// The report's verdict word for an exit code (read back by
/// [`crate::record::Verdict::of_word`]).
pub fn verdict_word(exit_code: u8) -> &'static str {
    match Verdict::of_exit_code(exit_code) {
        Verdict::Valid => "pass",
        Verdict::Invalid => "fail",
        _ => "error",
    }
}

/// The median of per-run times, `None` (never caught) sorting last; `None` when the
/// median falls on an uncaught run.
pub fn median(times: &[Option<f64>]) -> Option<f64> {
    if times.is_empty() {
        return None;
    }
    let mut v: Vec<f64> = times.iter().map(|t| t.unwrap_or(f64::INFINITY)).collect();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let m = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    m.is_finite().then_some(m)
}

/// Sums a case's runs into its table line.
pub fn summarize(case: &Case, runs: &[CaseRun]) -> CaseSummary {
    let caught = runs.iter().filter(|r| r.caught).count() as u32;
    let harness_errors = runs.iter().filter(|r| r.harness_error.is_some()).count() as u32;
    let times: Vec<Option<f64>> = runs.iter().map(|r| r.time_to_violation_s).collect();
    let no_progress = runs.iter().map(|r| r.no_progress).sum();
    let mut caught_by: BTreeMap<String, u32> = BTreeMap::new();
    for r in runs.iter().filter(|r| r.caught) {
        let kind = r
            .caught_by
            .as_deref()
            .unwrap_or(checker::Verdict::NotLinearizable.id());
        *caught_by.entry(kind.to_owned()).or_default() += 1;
    }
    let ok = harness_errors == 0
        && if case.is_bug() {
            caught > 0
        } else {
            caught == 0 && no_progress == 0
        };
    CaseSummary {
        case: case.id.to_owned(),
        protocol: case.protocol.to_owned(),
        bug: case.bug.map(str::to_owned),
        expect: if case.is_bug() { "violation" } else { "none" }.to_owned(),
        nemesis: case.nemesis_label(),
        runs: runs.len() as u32,
        caught,
        caught_by,
        median_s: median(&times),
        first_violation_dir: runs.iter().find_map(|r| r.violation_dir.clone()),
        attempts: runs.iter().map(|r| r.attempts.len()).sum(),
        unknown: runs.iter().map(|r| r.unknown).sum(),
        no_progress,
        harness_errors,
        ok,
        case_runs: runs.to_vec(),
    }
}

/// 3 on a harness error or an interruption; else 0 iff every bug case was caught at
/// least once and no correct build showed a violation; else 1.
pub fn exit_code(cases: &[CaseSummary], interrupted: bool) -> u8 {
    if interrupted || cases.iter().any(|c| c.harness_errors > 0) {
        3
    } else if cases.iter().all(|c| c.ok) {
        0
    } else {
        1
    }
}

/// The table printed at the end.
pub fn table(cases: &[CaseSummary], limit: Duration) -> String {
    let mut s = String::new();
    let w = cases.iter().map(|c| c.case.len()).max().unwrap_or(4).max(4);
    let nw = cases
        .iter()
        .map(|c| c.nemesis.len())
        .max()
        .unwrap_or(7)
        .clamp(7, 60);
    let by: Vec<String> = cases.iter().map(CaseSummary::caught_by_label).collect();
    let bw = by.iter().map(String::len).max().unwrap_or(9).max(9);
    let _ = writeln!(
        s,
        "{:<w$}  {:<nw$}  {:>7}  {:>8}  {:<bw$}  first violation",
        "case", "nemesis", "caught", "median", "caught by"
    );
    for (c, by) in cases.iter().zip(&by) {
        let median = match c.median_s {
            Some(m) => format!("{m:.1}s"),
            None if c.caught == 0 => "-".to_owned(),
            // Caught, but in fewer than half the runs.
            None => format!(">{}s", limit.as_secs()),
        };
        let mut note = String::new();
        if c.harness_errors > 0 {
            note = " HARNESS ERROR".into();
        } else if !c.ok {
            note = if !c.is_correct() {
                " NOT CAUGHT".into()
            } else if c.caught > 0 {
                " VIOLATION IN CORRECT BUILD".into()
            } else {
                " NO PROGRESS IN CORRECT BUILD".into()
            };
        }
        if c.unknown > 0 {
            let _ = write!(note, " ({} unknown)", c.unknown);
        }
        if c.no_progress > 0 {
            let _ = write!(
                note,
                " ({} attempt(s) without progress after the heal)",
                c.no_progress
            );
        }
        let _ = writeln!(
            s,
            "{:<w$}  {:<nw$}  {:>7}  {:>8}  {:<bw$}  {}{}",
            c.case,
            c.nemesis,
            format!("{}/{}", c.caught, c.runs),
            median,
            by,
            c.first_violation_dir
                .as_deref()
                .map_or("-".to_owned(), |p| p.display().to_string()),
            note
        );
    }
    s
}

impl CaseSummary {
    fn is_correct(&self) -> bool {
        self.bug.is_none()
    }

    /// The table's "caught by": the finding that caught every caught run, or each with
    /// its count (`two-leaders 3, not-linearizable 7`); `-` when none was caught.
    fn caught_by_label(&self) -> String {
        match self.caught_by.len() {
            0 => "-".to_owned(),
            1 => self.caught_by.keys().next().cloned().unwrap_or_default(),
            _ => {
                let mut v: Vec<(&String, &u32)> = self.caught_by.iter().collect();
                v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
                v.iter()
                    .map(|(k, n)| format!("{k} {n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        }
    }
}

#[derive(Parser)]
#[command(name = "stasis-test")]
struct TestCli {
    #[command(flatten)]
    args: TestArgs,
}

/// The full `stasis test` options of one attempt.
pub fn attempt_args(
    case: &Case,
    plan: &Plan,
    length: Duration,
    seed: u64,
    store: &Path,
    node_bin: Option<&Path>,
) -> Result<TestArgs> {
    let mut argv = vec!["stasis-test".to_owned()];
    argv.extend(case.test_argv(plan, length));
    argv.extend([
        "--seed".into(),
        seed.to_string(),
        "--store".into(),
        store.display().to_string(),
        // Each plan names the node settings it needs; nothing is drawn on top.
        "--settings".into(),
        "default".into(),
    ]);
    if let Some(b) = node_bin {
        argv.extend(["--node-bin".into(), b.display().to_string()]);
    }
    TestCli::try_parse_from(&argv).map(|t| t.args).map_err(|e| {
        let text = e.to_string();
        anyhow::anyhow!(
            "case {} plan {}: bad test options: {}",
            case.id,
            plan.name,
            text.lines().next().unwrap_or("")
        )
    })
}

/// The nemesis schedule override of a targeted plan (the warm-up is the one `stasis
/// test` uses: a sixth of the run, at most 5 s).
fn overrides(plan: &Plan, length: Duration, seed: u64) -> Overrides {
    let warmup = (length / 6).min(Duration::from_secs(5));
    Overrides {
        schedule: plan.schedule(length.saturating_sub(warmup), seed),
        settings: None,
    }
}

/// Runs one case once: attempts until the first violation or the time limit.
fn case_run(case: &Case, run: u32, args: &SelftestArgs, store: &Path) -> CaseRun {
    let start = Instant::now();
    let limit = args.time_limit_per_case;
    let mut out = CaseRun::new(run);
    // Successive runs start at successive plans, so several runs cover every plan.
    let mut k = (run as usize).saturating_sub(1);
    loop {
        let left = limit.saturating_sub(start.elapsed());
        if left < MIN_ATTEMPT && !out.attempts.is_empty() {
            break;
        }
        let plan = &case.plans[k % case.plans.len()];
        k += 1;
        let length = plan.attempt.min(left).max(MIN_ATTEMPT);
        let seed: u64 = rand::random();
        println!(
            "selftest: {} run {}/{} attempt {}: {} for {:.0} s, seed {seed}",
            case.id,
            run,
            args.runs,
            out.attempts.len() + 1,
            plan.name,
            length.as_secs_f64()
        );
        let result = attempt_args(case, plan, length, seed, store, args.node_bin.as_deref())
            .and_then(|targs| run::execute(&targs, &overrides(plan, length, seed)));
        let ended_s = start.elapsed().as_secs_f64();
        let mut a = Attempt {
            plan: plan.name.to_owned(),
            seed,
            verdict: "error".into(),
            run_dir: None,
            ended_s,
            workload_s: 0.0,
            completions: 0,
            finding: None,
            error: None,
        };
        match result {
            Ok(o) => {
                a.run_dir = Some(o.run_dir.clone());
                a.workload_s = o.workload_s;
                a.completions = o.completions;
                a.verdict = match &o.report {
                    Some(r) => r.verdict.id().to_owned(),
                    None => "interrupted".to_owned(),
                };
                match o.exit_code {
                    1 => {
                        a.finding = Some(checker::Verdict::NotLinearizable.id().to_owned());
                        out.caught = true;
                        out.caught_by = a.finding.clone();
                        out.time_to_violation_s = Some(ended_s);
                        out.violation_dir = Some(o.run_dir.clone());
                    }
                    2 => out.unknown += 1,
                    // Exit 3 with a report: a harness problem after the history was
                    // checked (and found linearizable); without one: interrupted.
                    3 => match o.report.as_ref().and_then(|r| r.problem.as_ref()) {
                        Some(p) => {
                            a.error = Some(p.message.clone());
                            out.harness_error = Some(p.message.clone());
                        }
                        None => out.interrupted = true,
                    },
                    _ => {}
                }
            }
            Err(e) => {
                let msg = format!("{e:#}");
                eprintln!("selftest: {} attempt failed: {msg}", case.id);
                a.error = Some(msg.clone());
                out.harness_error = Some(msg);
            }
        }
        println!(
            "selftest: {} run {} attempt {}: {} after {ended_s:.1} s{}",
            case.id,
            run,
            out.attempts.len() + 1,
            a.verdict,
            a.run_dir
                .as_deref()
                .map_or(String::new(), |d| format!(" ({})", d.display()))
        );
        out.attempts.push(a);
        if signals::interrupted() {
            out.interrupted = true;
        }
        if out.caught || out.interrupted || out.harness_error.is_some() {
            break;
        }
    }
    out.elapsed_s = start.elapsed().as_secs_f64();
    out
}

/// The exit code of a selftest (`stasis selftest`, real processes, or with `--sim`,
/// [`crate::sim::selftest::execute`]: the CLI picks which).
pub fn finish(result: Result<SelftestReport>) -> u8 {
    match result {
        Ok(report) => report.exit_code,
        Err(e) => {
            eprintln!("stasis selftest: {e:#}");
            3
        }
    }
}

fn write_report(path: &Path, report: &SelftestReport) -> Result<()> {
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(report)?)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

/// Runs the selected cases and writes STORE/selftest/<timestamp>/selftest.json (after
/// every case-run, so an interrupted selftest leaves what it measured).
pub fn execute(args: &SelftestArgs) -> Result<SelftestReport> {
    let selected = cases::select(&args.cases).map_err(anyhow::Error::msg)?;
    if args.time_limit_per_case < MIN_ATTEMPT {
        bail!(
            "--time-limit-per-case must be at least {} s (one attempt)",
            MIN_ATTEMPT.as_secs()
        );
    }
    if !nix::unistd::geteuid().is_root() {
        bail!("not root: test runs need namespaces and iptables (run as root)");
    }
    // Check every attempt's options before running anything.
    for c in &selected {
        for p in &c.plans {
            attempt_args(c, p, p.attempt, 0, &args.store, args.node_bin.as_deref())?;
        }
    }
    signals::install();
    let started = crate::store::utc_timestamp(std::time::SystemTime::now());
    let dir = args.store.join("selftest").join(&started);
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create the selftest directory {}", dir.display()))?;
    let json_path = dir.join("selftest.json");
    println!(
        "selftest: {} case(s) x {} run(s), {} s each; results in {}",
        selected.len(),
        args.runs,
        args.time_limit_per_case.as_secs(),
        json_path.display()
    );
    let mut report = SelftestReport {
        stasis_version: env!("CARGO_PKG_VERSION").to_owned(),
        started: started.clone(),
        time_limit_per_case_s: args.time_limit_per_case.as_secs_f64(),
        runs: args.runs,
        min_attempt_s: MIN_ATTEMPT.as_secs_f64(),
        interrupted: false,
        exit_code: 3,
        verdict: verdict_word(3).to_owned(),
        cases: Vec::new(),
    };
    'cases: for case in &selected {
        let mut runs: Vec<CaseRun> = Vec::new();
        for r in 1..=args.runs {
            let cr = case_run(case, r, args, &dir);
            let stop = cr.interrupted;
            let failed = cr.harness_error.is_some();
            runs.push(cr);
            report.cases.retain(|c| c.case != case.id);
            report.cases.push(summarize(case, &runs));
            report.interrupted = stop;
            report.exit_code = exit_code(&report.cases, stop);
            report.verdict = verdict_word(report.exit_code).to_owned();
            write_report(&json_path, &report)?;
            if stop {
                break 'cases;
            }
            if failed {
                // The same error would repeat; the other cases may still run.
                break;
            }
        }
    }
    println!();
    print!("{}", table(&report.cases, args.time_limit_per_case));
    println!("selftest.json: {}", json_path.display());
    if report.interrupted {
        eprintln!("stasis selftest: interrupted; the table covers what ran");
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_with(caught: Option<f64>, err: bool) -> CaseRun {
        CaseRun {
            run: 1,
            caught: caught.is_some(),
            caught_by: caught.map(|_| "not-linearizable".to_owned()),
            time_to_violation_s: caught,
            violation_dir: caught.map(|t| PathBuf::from(format!("/s/run-{t}"))),
            elapsed_s: caught.unwrap_or(60.0),
            unknown: 0,
            no_progress: 0,
            attempts: vec![Attempt {
                plan: "p".into(),
                seed: 7,
                verdict: if caught.is_some() {
                    "not-linearizable".into()
                } else {
                    "linearizable".into()
                },
                finding: caught.map(|_| "not-linearizable".to_owned()),
                run_dir: None,
                ended_s: 1.0,
                workload_s: 1.0,
                completions: 10,
                error: None,
            }],
            harness_error: err.then(|| "node exited".to_owned()),
            interrupted: false,
        }
    }

    fn case(id: &str) -> Case {
        cases::all_cases().into_iter().find(|c| c.id == id).unwrap()
    }

    #[test]
    fn median_counts_uncaught_runs_as_never() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[Some(3.0)]), Some(3.0));
        assert_eq!(median(&[Some(9.0), Some(1.0), Some(4.0)]), Some(4.0));
        assert_eq!(median(&[Some(2.0), Some(4.0)]), Some(3.0));
        assert_eq!(median(&[Some(2.0), None, Some(5.0)]), Some(5.0));
        assert_eq!(median(&[Some(2.0), None]), None);
        assert_eq!(median(&[None, None, Some(1.0)]), None);
    }

    #[test]
    fn aggregation_and_exit_codes() {
        let bug = case("raft/stale-read");
        let good = case("raft/correct");
        let caught = summarize(&bug, &[run_with(Some(12.0), false), run_with(None, false)]);
        assert_eq!((caught.caught, caught.runs, caught.ok), (1, 2, true));
        assert_eq!(caught.median_s, None);
        assert_eq!(
            caught.first_violation_dir.as_deref(),
            Some(Path::new("/s/run-12"))
        );
        let missed = summarize(&bug, &[run_with(None, false)]);
        assert!(!missed.ok);
        let clean = summarize(&good, &[run_with(None, false), run_with(None, false)]);
        assert!(clean.ok);
        assert_eq!(clean.expect, "none");
        let alarm = summarize(&good, &[run_with(Some(30.0), false)]);
        assert!(!alarm.ok);
        let broken = summarize(&bug, &[run_with(None, true)]);
        assert_eq!(broken.harness_errors, 1);

        assert_eq!(exit_code(&[caught.clone(), clean.clone()], false), 0);
        assert_eq!(exit_code(&[caught.clone(), clean.clone()], true), 3);
        assert_eq!(exit_code(&[missed.clone(), clean.clone()], false), 1);
        assert_eq!(exit_code(&[caught.clone(), alarm.clone()], false), 1);
        assert_eq!(exit_code(&[missed, alarm, broken], false), 3);
        assert_eq!(exit_code(&[], false), 0);
    }

    #[test]
    fn table_and_json_shape() {
        let bug = case("raft/stale-read");
        let good = case("raft/correct");
        let rows = vec![
            summarize(&bug, &[run_with(Some(12.25), false)]),
            summarize(&good, &[run_with(None, false)]),
        ];
        let t = table(&rows, Duration::from_secs(60));
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3, "{t}");
        assert!(lines[0].starts_with("case "), "{t}");
        assert!(lines[0].contains("nemesis") && lines[0].contains("first violation"));
        assert!(lines[0].contains(" caught by "), "{t}");
        assert!(lines[1].contains(" not-linearizable "), "{t}");
        assert!(lines[1].starts_with("raft/stale-read "), "{t}");
        assert!(
            lines[1].contains(" 1/1 ") && lines[1].contains("12.2s"),
            "{t}"
        );
        assert!(lines[1].ends_with("/s/run-12.25"), "{t}");
        assert!(lines[2].starts_with("raft/correct ") && lines[2].contains(" 0/1 "));
        assert!(!t.contains("NOT CAUGHT") && !t.contains("VIOLATION"), "{t}");

        let report = SelftestReport {
            stasis_version: "0".into(),
            started: "t".into(),
            time_limit_per_case_s: 60.0,
            runs: 1,
            min_attempt_s: 6.0,
            interrupted: false,
            exit_code: exit_code(&rows, false),
            verdict: "pass".into(),
            cases: rows,
        };
        let v = serde_json::to_value(&report).unwrap();
        assert_eq!(v["exit_code"], 0);
        assert_eq!(v["verdict"], "pass");
        assert_eq!(
            (verdict_word(0), verdict_word(1), verdict_word(3)),
            ("pass", "fail", "error")
        );
        let c = &v["cases"][0];
        for k in [
            "case",
            "protocol",
            "bug",
            "expect",
            "nemesis",
            "runs",
            "caught",
            "caught_by",
            "median_s",
            "first_violation_dir",
            "attempts",
            "unknown",
            "no_progress",
            "harness_errors",
            "ok",
            "case_runs",
        ] {
            assert!(c.get(k).is_some(), "{k} missing: {c}");
        }
        assert_eq!(c["bug"], "stale-read");
        assert_eq!(c["median_s"], 12.25);
        assert_eq!(c["case_runs"][0]["time_to_violation_s"], 12.25);
        assert_eq!(c["case_runs"][0]["attempts"][0]["seed"], 7);
        assert_eq!(v["cases"][1]["bug"], serde_json::Value::Null);
        assert_eq!(v["cases"][1]["median_s"], serde_json::Value::Null);
    }

    #[test]
    fn attempt_options_carry_the_bug_seed_and_schedule() {
        let c = case("raft/lease-wallclock");
        let p = &c.plans[0];
        let a = attempt_args(
            &c,
            p,
            Duration::from_secs(9),
            42,
            Path::new("/tmp/st"),
            None,
        )
        .unwrap();
        assert_eq!(a.seed, Some(42));
        assert_eq!(a.time_limit, Duration::from_secs(9));
        assert_eq!(a.store, Path::new("/tmp/st"));
        assert_eq!(a.name.as_deref(), Some("raft-lease-wallclock"));
        let joined = a.node_args.join(" ");
        assert!(joined.contains("--bug lease-wallclock"), "{joined}");
        assert!(joined.contains("--read-mode lease"), "{joined}");
        let o = overrides(p, Duration::from_secs(12), 42);
        let s = o.schedule.unwrap();
        assert!(!s.is_empty() && s.iter().all(|x| x.at_ms < 10_000), "{s:?}");
        let plain = case("raft/stale-read");
        assert!(
            overrides(&plain.plans[0], Duration::from_secs(12), 1)
                .schedule
                .is_none()
        );
        let d = case("multipaxos/disjoint-quorums");
        let a = attempt_args(&d, &d.plans[0], MIN_ATTEMPT, 1, Path::new("s"), None).unwrap();
        assert!(a.node_args.join(" ").contains("--quorum flexible:2,1"));
        let correct = case("multipaxos/correct");
        for p in &correct.plans {
            let a = attempt_args(&correct, p, MIN_ATTEMPT, 1, Path::new("s"), None).unwrap();
            assert!(!a.node_args.iter().any(|x| x == "--bug" || x == "--quorum"));
        }
    }
}

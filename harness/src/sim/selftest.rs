//! `stasis selftest --sim`: every selftest case under simulation instead of real
//! processes. A case's attempts cycle through its plans as in the real selftest (same
//! node flags, node count and workload), but the faults are the simulator's generic ones
//! drawn from each attempt's fresh seed (a swarm subset of
//! [`super::schedule::SELFTEST_KINDS`], plus `reconfig` membership changes for plans with
//! spare nodes, the unsafe-reconfig cases'),
//! never the plan's targeted schedule. The table, selftest.json and run directories are
//! the real selftest's. A case-run is caught by any safety finding of the simulator
//! ([`super::Failure`]: not linearizable, a definite membership answer proved false, two
//! leaders in one Raft term), named in the table's "caught by" column; attempts without
//! progress after the heal are counted beside (see [`count`]).

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, bail};

use super::{SimRun, SimSpec, simulate, write_run};
use crate::run::parse_duration;
use crate::selftest::cases::{self, Case, Plan};
use crate::selftest::{
    Attempt, CaseRun, SelftestArgs, SelftestReport, exit_code, summarize, table, verdict_word,
};

/// Budget of each attempt's linearizability check (past it the verdict is `unknown`).
const CHECK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The simulated attempt of `plan` for `case` with `seed`.
pub fn spec_of(case: &Case, plan: &Plan, seed: u64) -> Result<SimSpec> {
    let op_timeout = parse_duration(plan.op_timeout).map_err(anyhow::Error::msg)?;
    let sim_ns = plan.attempt.as_nanos() as u64;
    let mut node_args: Vec<String> = plan.node_args.iter().map(|s| s.to_string()).collect();
    node_args.extend(case.bug_args.iter().map(|s| s.to_string()));
    let mut kinds = super::schedule::swarm(seed, super::schedule::SELFTEST_KINDS);
    if plan.spares > 0 {
        kinds.push("reconfig");
    }
    Ok(SimSpec {
        mode: "sim".into(),
        protocol: case.protocol.into(),
        bugs: case.bug.map(str::to_owned).into_iter().collect(),
        nodes: plan.nodes as u64,
        spares: u64::from(plan.spares),
        seed,
        sim_time_ns: sim_ns,
        concurrency: plan.concurrency,
        rate: plan.rate as f64,
        keys: plan.keys,
        write_pct: plan.write_pct,
        cas_pct: plan.cas_pct,
        value_bytes: 0,
        op_timeout_ns: op_timeout.as_nanos() as u64,
        node_args,
        // The plan's node flags are the case's settings, as in the real selftest.
        settings: Vec::new(),
        schedule: super::schedule::draw(seed, plan.nodes as u64, sim_ns, &kinds),
    })
}

fn case_run(case: &Case, run: u32, args: &SelftestArgs, store: &Path, base_seed: u64) -> CaseRun {
    let start = Instant::now();
    let mut out = CaseRun::new(run);
    let plans: Vec<&Plan> = case.plans.iter().collect();
    let mut k = 0u64;
    while start.elapsed() < args.time_limit_per_case {
        let plan = plans[k as usize % plans.len()];
        let seed = base_seed.wrapping_add(k);
        k += 1;
        let attempt = spec_of(case, plan, seed).and_then(|spec| {
            let r = simulate(&spec, CHECK_TIMEOUT)?;
            Ok((spec, r))
        });
        match attempt {
            Err(e) => {
                out.harness_error = Some(format!("{e:#}"));
                break;
            }
            Ok((spec, r)) => {
                // Time to first violation: simulation and check done (the run
                // directory's report is written after).
                let ended = start.elapsed().as_secs_f64();
                let failure = r.failure();
                let mut run_dir = None;
                if let Some(f) = failure {
                    // Every finding leaves a run directory to replay.
                    let note = match r.finding(f) {
                        Some(text) => format!("selftest --sim {}: {text}", case.id),
                        None => format!("selftest --sim {}", case.id),
                    };
                    match write_run(store, &spec, &r, Some(&note), CHECK_TIMEOUT) {
                        Ok(d) => run_dir = Some(d),
                        Err(e) => out.harness_error = Some(format!("{e:#}")),
                    }
                }
                let a = Attempt {
                    plan: plan.name.into(),
                    seed,
                    verdict: checker_word(r.verdict).into(),
                    finding: None,
                    run_dir,
                    ended_s: ended,
                    workload_s: spec.sim_time_ns as f64 / 1e9,
                    completions: r.completions,
                    error: None,
                };
                if count(&mut out, a, &r, ended) {
                    break;
                }
            }
        }
    }
    out.elapsed_s = start.elapsed().as_secs_f64();
    out
}

/// The checker's word for its exit code.
fn checker_word(code: u8) -> &'static str {
    match code {
        0 => checker::Verdict::Linearizable,
        1 => checker::Verdict::NotLinearizable,
        _ => checker::Verdict::Unknown,
    }
    .id()
}

/// Counts attempt `a` of simulated run `r`, which ended `ended` s into the case-run, into
/// `out`; true when it caught the case-run. Every safety finding of [`SimRun::failure`]
/// is a catch (the history not linearizable, a definite membership answer proved false,
/// two leaders in one Raft term: none may ever happen, whatever the bug), recorded with
/// its kind. No progress after the heal is counted and recorded, never a catch: it is a
/// liveness finding, a seeded bug is a safety bug whose violation the selftest times
/// (as the real selftest, where a system that stopped answering is reported beside the
/// verdict), and a stall does not show which fault or bug caused it. For a correct build
/// it is a failure all the same ([`crate::selftest::summarize`]).
fn count(out: &mut CaseRun, mut a: Attempt, r: &SimRun, ended: f64) -> bool {
    let failure = r.failure();
    a.finding = failure.map(|f| f.name().to_owned());
    out.unknown += u32::from(r.verdict == 2);
    // A node that could not restart is an availability finding like a stall: counted
    // beside (a failure for a correct build), never a catch (no seeded bug is one).
    out.no_progress += u32::from(r.stalled.is_some() || r.restart_failed.is_some());
    let caught = failure.filter(|f| f.is_safety());
    if caught.is_some() {
        out.caught = true;
        out.caught_by = a.finding.clone();
        out.time_to_violation_s = Some(ended);
        out.violation_dir = a.run_dir.clone();
    }
    out.attempts.push(a);
    caught.is_some()
}

/// Runs the selected cases under simulation and writes
/// STORE/selftest-sim/<timestamp>/selftest.json.
pub fn execute(args: &SelftestArgs) -> Result<SelftestReport> {
    let selected = cases::select(&args.cases).map_err(anyhow::Error::msg)?;
    if args.time_limit_per_case.is_zero() {
        bail!("--time-limit-per-case must be more than 0");
    }
    for c in &selected {
        for p in &c.plans {
            spec_of(c, p, 0)?;
        }
    }
    let started = crate::store::utc_timestamp(std::time::SystemTime::now());
    let dir = args.store.join("selftest-sim").join(&started);
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create the selftest directory {}", dir.display()))?;
    let json_path = dir.join("selftest.json");
    println!(
        "selftest --sim: {} case(s) x {} run(s), {} s each; results in {}",
        selected.len(),
        args.runs,
        args.time_limit_per_case.as_secs_f64(),
        json_path.display()
    );
    // Fresh seeds: from the clock, printed in selftest.json with every attempt.
    let clock = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut report = SelftestReport {
        stasis_version: env!("CARGO_PKG_VERSION").to_owned(),
        started,
        time_limit_per_case_s: args.time_limit_per_case.as_secs_f64(),
        runs: args.runs,
        min_attempt_s: 0.0,
        interrupted: false,
        exit_code: 3,
        verdict: verdict_word(3).to_owned(),
        cases: Vec::new(),
    };
    for (ci, case) in selected.iter().enumerate() {
        let mut runs: Vec<CaseRun> = Vec::new();
        for r in 1..=args.runs {
            let base = clock
                .wrapping_add((ci as u64) << 40)
                .wrapping_add((r as u64) << 24);
            let cr = case_run(case, r, args, &args.store, base);
            let failed = cr.harness_error.is_some();
            runs.push(cr);
            report.cases.retain(|c| c.case != case.id);
            let mut summary = summarize(case, &runs);
            // The faults are the simulator's, not the plan's nemesis.
            summary.nemesis = format!(
                "sim (swarm of the generic faults; reconfig with spares; flags of: {})",
                summary.nemesis
            );
            report.cases.push(summary);
            report.exit_code = exit_code(&report.cases, false);
            report.verdict = verdict_word(report.exit_code).to_owned();
            let tmp = json_path.with_extension("json.tmp");
            std::fs::write(&tmp, serde_json::to_vec_pretty(&report)?)
                .with_context(|| format!("cannot write {}", tmp.display()))?;
            std::fs::rename(&tmp, &json_path)
                .with_context(|| format!("cannot write {}", json_path.display()))?;
            if failed {
                break;
            }
        }
    }
    println!();
    print!("{}", table(&report.cases, args.time_limit_per_case));
    println!("selftest.json: {}", json_path.display());
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::selftest::CaseSummary;

    fn sim_run(verdict: u8, abort: bool, split_terms: u64, stalled: bool) -> SimRun {
        SimRun {
            history: Vec::new(),
            ops: Vec::new(),
            completions: 10,
            events: 100,
            split_terms,
            verdict,
            storm: None,
            stalled: stalled.then(|| "no write after the heal".to_owned()),
            recovery_timeouts: None,
            abort_violation: abort.then(|| "n4 removed after 'not made'".to_owned()),
            diverged: None,
            restart_failed: None,
        }
    }

    fn attempt(r: &SimRun) -> Attempt {
        Attempt {
            plan: "p".into(),
            seed: 1,
            verdict: checker_word(r.verdict).into(),
            finding: None,
            run_dir: Some("/s/run".into()),
            ended_s: 2.0,
            workload_s: 10.0,
            completions: r.completions,
            error: None,
        }
    }

    /// One case-run of `runs` as `selftest --sim` counts them, until the first catch.
    fn case_run_of(runs: &[SimRun]) -> CaseRun {
        let mut out = CaseRun::new(1);
        for (i, r) in runs.iter().enumerate() {
            if count(&mut out, attempt(r), r, i as f64) {
                break;
            }
        }
        out
    }

    fn case(id: &str) -> Case {
        cases::all_cases().into_iter().find(|c| c.id == id).unwrap()
    }

    #[test]
    fn every_safety_finding_is_a_catch_and_no_progress_is_counted_beside() {
        for (r, kind) in [
            (sim_run(1, false, 0, false), "not-linearizable"),
            (sim_run(0, true, 0, false), "abort-took-effect"),
            (sim_run(0, false, 2, false), "two-leaders"),
            // Not linearizable and stalled: the safety finding is what caught it.
            (sim_run(1, false, 0, true), "not-linearizable"),
        ] {
            let out = case_run_of(&[sim_run(0, false, 0, false), r]);
            assert!(out.caught, "{kind}");
            assert_eq!(out.caught_by.as_deref(), Some(kind));
            assert_eq!(out.time_to_violation_s, Some(1.0));
            assert_eq!(out.violation_dir.as_deref(), Some(Path::new("/s/run")));
            assert_eq!(out.attempts[1].finding.as_deref(), Some(kind));
            assert_eq!(out.attempts[0].finding, None);
        }
        // A stall alone: recorded, counted, and the case-run goes on.
        let out = case_run_of(&[
            sim_run(0, false, 0, true),
            sim_run(2, false, 0, true),
            sim_run(0, false, 0, false),
        ]);
        assert!(!out.caught && out.caught_by.is_none());
        assert_eq!(
            (out.attempts.len(), out.no_progress, out.unknown),
            (3, 2, 1)
        );
        assert_eq!(out.attempts[0].finding.as_deref(), Some("no-progress"));
        assert_eq!(out.attempts[1].verdict, "unknown");
        // A node that could not restart: an availability finding, counted beside like a
        // stall (a failure for a correct build), never a catch.
        let mut refused = sim_run(0, false, 0, false);
        refused.restart_failed = Some("n2 cannot restart from its disk".to_owned());
        let out = case_run_of(&[refused]);
        assert!(!out.caught && out.caught_by.is_none());
        assert_eq!(out.no_progress, 1);
        assert_eq!(out.attempts[0].finding.as_deref(), Some("cannot-restart"));
    }

    fn summary(id: &str, runs: &[Vec<SimRun>]) -> CaseSummary {
        let runs: Vec<CaseRun> = runs.iter().map(|r| case_run_of(r)).collect();
        summarize(&case(id), &runs)
    }

    #[test]
    fn findings_fail_correct_builds_and_name_what_caught_a_bug() {
        let clean = summary("raft/correct", &[vec![sim_run(0, false, 0, false)]]);
        assert!(clean.ok && clean.caught_by.is_empty());
        for r in [
            sim_run(0, false, 1, false),
            sim_run(0, true, 0, false),
            sim_run(0, false, 0, true),
        ] {
            let s = summary("raft/correct", &[vec![r]]);
            assert!(!s.ok, "{s:?}");
            assert_eq!(exit_code(std::slice::from_ref(&s), false), 1);
        }
        let stalled = summary("multipaxos/correct", &[vec![sim_run(0, false, 0, true)]]);
        let t = table(
            std::slice::from_ref(&stalled),
            std::time::Duration::from_secs(10),
        );
        assert!(
            t.contains("NO PROGRESS IN CORRECT BUILD") && t.contains("1 attempt(s) without"),
            "{t}"
        );
        let split = summary("raft/correct", &[vec![sim_run(0, false, 1, false)]]);
        let t = table(&[split], std::time::Duration::from_secs(10));
        assert!(
            t.contains("VIOLATION IN CORRECT BUILD") && t.contains(" two-leaders "),
            "{t}"
        );

        // A bug caught by two kinds over three runs, and a stall that caught nothing.
        let bug = summary(
            "raft/forget-vote",
            &[
                vec![sim_run(0, false, 0, true), sim_run(0, false, 3, false)],
                vec![sim_run(1, false, 0, false)],
                vec![sim_run(0, false, 1, false)],
            ],
        );
        assert!(bug.ok);
        assert_eq!((bug.caught, bug.no_progress), (3, 1));
        let by: Vec<(&str, u32)> = bug
            .caught_by
            .iter()
            .map(|(k, n)| (k.as_str(), *n))
            .collect();
        assert_eq!(by, [("not-linearizable", 1), ("two-leaders", 2)]);
        let v = serde_json::to_value(&bug).unwrap();
        assert_eq!(v["caught_by"]["two-leaders"], 2);
        assert_eq!(v["no_progress"], 1);
        assert_eq!(v["case_runs"][0]["caught_by"], "two-leaders");
        assert_eq!(v["case_runs"][0]["attempts"][0]["finding"], "no-progress");
        let stall_only = summary("raft/figure8", &[vec![sim_run(0, false, 0, true)]]);
        assert!(!stall_only.ok && stall_only.caught == 0);
        let t = table(&[bug, stall_only], std::time::Duration::from_secs(10));
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].contains(" caught by "), "{t}");
        assert!(
            lines[1].contains(" 3/3 ") && lines[1].contains("two-leaders 2, not-linearizable 1"),
            "{t}"
        );
        assert!(
            lines[1].ends_with("(1 attempt(s) without progress after the heal)"),
            "{t}"
        );
        assert!(
            lines[2].contains(" 0/1 ") && lines[2].contains(" NOT CAUGHT"),
            "{t}"
        );
    }
}

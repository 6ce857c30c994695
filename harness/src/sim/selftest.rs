//! `stasis selftest --sim`: every selftest case under simulation instead of real
//! processes. A case's attempts cycle through its plans as in the real selftest (same
//! node flags, node count and workload), but the faults are the simulator's generic ones
//! drawn from each attempt's fresh seed ([`super::schedule::SELFTEST_KINDS`], plus
//! `reconfig` membership changes for plans with spare nodes, the unsafe-reconfig cases'),
//! never the plan's targeted schedule. The table, selftest.json and run directories are
//! the real selftest's.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, bail};

use super::{SimSpec, simulate, write_run};
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
    let mut kinds = super::schedule::SELFTEST_KINDS.to_vec();
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
                let verdict = match r.verdict {
                    0 => "linearizable",
                    1 => "not-linearizable",
                    _ => "unknown",
                };
                if r.verdict == 2 {
                    out.unknown += 1;
                }
                // Time to first violation: simulation and check done (the run
                // directory's report is written after).
                let ended = start.elapsed().as_secs_f64();
                let mut run_dir = None;
                if r.verdict == 1 {
                    let note = format!("selftest --sim {}", case.id);
                    match write_run(store, &spec, &r, Some(&note), CHECK_TIMEOUT) {
                        Ok(d) => run_dir = Some(d),
                        Err(e) => out.harness_error = Some(format!("{e:#}")),
                    }
                }
                out.attempts.push(Attempt {
                    plan: plan.name.into(),
                    seed,
                    verdict: verdict.into(),
                    run_dir: run_dir.clone(),
                    ended_s: ended,
                    workload_s: spec.sim_time_ns as f64 / 1e9,
                    completions: r.completions,
                    error: None,
                });
                if r.verdict == 1 {
                    out.caught = true;
                    out.time_to_violation_s = Some(ended);
                    out.violation_dir = run_dir;
                    break;
                }
            }
        }
    }
    out.elapsed_s = start.elapsed().as_secs_f64();
    out
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
                "sim (generic faults but churn, transition; reconfig with spares; flags of: {})",
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

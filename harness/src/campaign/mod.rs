//! `stasis campaign FILE.toml`: a matrix of systems x nemesis sets x workloads x node
//! counts x seeds, run one after another within an overall time budget.
//!
//! Every run is a normal run directory under the campaign directory
//! (`STORE/campaigns/<name>/<UTC timestamp>/runs/`), so the campaign directory alone holds
//! everything a morning reader or a CI artifact needs: `campaign.json`, `summary.txt`,
//! `junit.xml` and the runs.
//!
//! Order ([`Campaign::expand`]): seeds are the outermost axis, so when the budget runs out
//! every combination has had its first seed before any gets a second; within a seed the
//! systems take turns (round-robin), so each system gets the same share of the budget
//! in runs, whatever its place in the list.

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Result, bail};

use crate::signals;
use crate::store::{self, RunDir};
use crate::units::parse_duration;

mod cell;
pub mod junit;
mod record;
mod spec;

use cell::{run_cell, sim_cell, skipped};
pub use record::{CampaignRecord, CellRecord, Verdict, exit_code, judged, summary_text};
use record::{secs, write_outputs};
pub use spec::{Campaign, Cell, Seeds};

/// Options of `stasis campaign`.
#[derive(clap::Args, Clone, Debug)]
pub struct CampaignArgs {
    /// The campaign file (TOML; see README, "Campaigns").
    pub file: PathBuf,
    /// Store directory; the campaign goes to STORE/campaigns/<name>/<timestamp>/.
    #[arg(long, default_value = "store")]
    pub store: PathBuf,
    /// Print the expanded matrix and the time estimate, run nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// The stasis-node binary (default: next to this `stasis` binary).
    #[arg(long)]
    pub node_bin: Option<PathBuf>,
    /// Stop after the first run that finds a violation or a finding about the system (it
    /// stopped answering; the rest are recorded as skipped): for gating and for measuring
    /// time to the first violation.
    #[arg(long)]
    pub fail_fast: bool,
    /// Run only these of the campaign's systems (comma-separated), e.g. the one a change
    /// touches.
    #[arg(long, value_delimiter = ',')]
    pub systems: Option<Vec<String>>,
    /// Replace the campaign file's budget (e.g. `10m`).
    #[arg(long)]
    pub budget: Option<String>,
    /// Run the cells in an order drawn from this seed instead of the file's round-robin
    /// order (the same seed gives the same order): a budget that covers only part of the
    /// matrix then covers a different part for each seed, e.g. one per mutant or per night.
    #[arg(long, value_name = "SEED")]
    pub shuffle: Option<u64>,
}

/// The cells in run order: as expanded, or shuffled with `shuffle`'s seed.
fn ordered(c: &Campaign, drawn: Option<&[u64]>, shuffle: Option<u64>) -> Vec<Cell> {
    use rand::SeedableRng;
    use rand::seq::SliceRandom;
    let mut cells = c.expand(drawn);
    if let Some(seed) = shuffle {
        cells.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed));
    }
    cells
}

/// Before any run has finished: what a run costs beyond its time limit (cluster start,
/// recovery, final reads, check).
const INITIAL_OVERHEAD: Duration = Duration::from_secs(20);

fn describe(c: &Cell) -> String {
    format!(
        "{}/{}/{} n{} seed {}",
        c.system,
        c.nemesis,
        c.workload,
        c.nodes,
        c.seed
            .map_or("(fresh random)".to_owned(), |s| s.to_string())
    )
}

/// Why `--fail-fast` stops the campaign after cell `r` (`what`: "run 3"), if it does: a
/// violation, or a finding about the system (it stopped answering).
fn fail_fast_stop(r: &CellRecord, what: &str) -> Option<String> {
    if r.verdict == Verdict::Invalid {
        Some(format!("--fail-fast: {what} found a violation"))
    } else if r.finding {
        Some(format!(
            "--fail-fast: {what} found that the system stopped answering"
        ))
    } else {
        None
    }
}

/// `stasis campaign`: returns the exit code.
pub fn run(args: &CampaignArgs) -> u8 {
    match run_inner(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("stasis campaign: {e:#}");
            3
        }
    }
}

fn dry_run(c: &Campaign, shuffle: Option<u64>) {
    let cells = ordered(c, None, shuffle);
    let per_run = c.time_limit + INITIAL_OVERHEAD;
    let fit = (c.budget.as_secs_f64() / per_run.as_secs_f64()).floor() as usize;
    let seeds = match &c.seeds {
        Seeds::List(s) => format!("{} seeds", s.len()),
        Seeds::Random(n) => format!("{n} fresh random seeds"),
    };
    println!(
        "campaign {} ({}): {} runs = {} systems x {} nemesis sets x {} workloads x {} node counts x {seeds}",
        c.name,
        c.file.display(),
        cells.len(),
        c.systems.len(),
        c.nemesis.len(),
        c.workloads.len(),
        c.nodes.len()
    );
    println!(
        "time limit {} per run (about {} with start, recovery and check), budget {}: about {} of {} runs fit",
        secs(c.time_limit.as_secs_f64()),
        secs(per_run.as_secs_f64()),
        secs(c.budget.as_secs_f64()),
        fit.min(cells.len()),
        cells.len()
    );
    for s in &c.sim {
        println!(
            "   -  {} (sim stage, first): fresh seeds for {}",
            s.system(),
            secs(s.budget.as_secs_f64())
        );
    }
    for (i, cell) in cells.iter().enumerate() {
        let extra = if cell.args.node_args.is_empty() {
            String::new()
        } else {
            format!("  node args: {}", cell.args.node_args.join(" "))
        };
        println!(
            "{:>4}  {}{}{extra}",
            i + 1,
            describe(cell),
            if i >= fit {
                "  (beyond the budget estimate)"
            } else {
                ""
            }
        );
    }
}

fn run_inner(args: &CampaignArgs) -> Result<u8> {
    let mut c = Campaign::load(&args.file)?;
    if let Some(b) = &args.budget {
        c.budget = parse_duration(b).map_err(|e| anyhow::anyhow!("--budget: {e}"))?;
    }
    if let Some(only) = &args.systems {
        if let Some(bad) = only.iter().find(|s| !c.systems.contains(s)) {
            bail!(
                "--systems: {bad:?} is not one of the campaign's systems ({})",
                c.systems.join(", ")
            );
        }
        c.systems.retain(|s| only.contains(s));
    }
    if args.dry_run {
        dry_run(&c, args.shuffle);
        return Ok(0);
    }
    signals::install();
    let drawn: Option<Vec<u64>> = match &c.seeds {
        Seeds::Random(n) => Some((0..*n).map(|_| rand::random::<u64>()).collect()),
        Seeds::List(_) => None,
    };
    let dir = RunDir::create(&args.store.join("campaigns"), &c.name)?;
    let dir_path = dir.path.canonicalize().unwrap_or(dir.path.clone());
    let runs_store = dir_path.join("runs");
    let mut cells = ordered(&c, drawn.as_deref(), args.shuffle);
    for cell in &mut cells {
        cell.args.store = runs_store.clone();
        cell.args.node_bin = args.node_bin.clone();
    }
    println!(
        "stasis campaign {}: {} runs, {} each, budget {}; results in {}",
        c.name,
        cells.len(),
        secs(c.time_limit.as_secs_f64()),
        secs(c.budget.as_secs_f64()),
        dir_path.display()
    );
    if let Some(d) = &drawn {
        let list: Vec<String> = d.iter().map(u64::to_string).collect();
        println!("fresh random seeds: {}", list.join(", "));
    }
    if let Some(seed) = args.shuffle {
        println!("run order: shuffled with seed {seed} (--shuffle)");
    }
    let started = Instant::now();
    let mut rec = CampaignRecord {
        name: c.name.clone(),
        file: c.file.display().to_string(),
        dir: dir_path.display().to_string(),
        stasis_version: env!("CARGO_PKG_VERSION").to_owned(),
        started: dir.timestamp.clone(),
        finished: None,
        budget_s: c.budget.as_secs_f64(),
        time_limit_s: c.time_limit.as_secs_f64(),
        seeds: match c.seeds {
            Seeds::List(_) => "list".into(),
            Seeds::Random(_) => "random".into(),
        },
        planned: cells.len() + c.sim.len(),
        elapsed_s: 0.0,
        exit_code: None,
        cells: Vec::new(),
        expect_violation: c.expect_violation.clone(),
    };
    write_outputs(&dir_path, &rec)?;
    let mut overhead = INITIAL_OVERHEAD;
    let mut stop_reason: Option<String> = None;
    // Sim stages first: each runs for its own budget, part of the campaign's.
    for stage in &c.sim {
        let i = rec.cells.len();
        if stop_reason.is_none() && signals::interrupted() {
            stop_reason = Some("the campaign was interrupted (Ctrl-C or SIGTERM)".into());
        }
        if stop_reason.is_none() && stage.budget > c.budget.saturating_sub(started.elapsed()) {
            stop_reason = Some("the budget ran out before a sim stage".into());
        }
        let r = match &stop_reason {
            Some(why) => sim_cell(i, stage, &runs_store, Some(why)),
            None => {
                println!("\n=== campaign {}: sim stage {}", c.name, stage.system());
                let r = sim_cell(i, stage, &runs_store, None);
                println!(
                    "=== sim stage {}: {} ({})",
                    stage.system(),
                    r.verdict.name(),
                    r.explanation.as_deref().unwrap_or_default()
                );
                if args.fail_fast {
                    stop_reason = fail_fast_stop(&r, "a sim stage");
                }
                r
            }
        };
        rec.cells.push(r);
        rec.elapsed_s = started.elapsed().as_secs_f64();
        write_outputs(&dir_path, &rec)?;
    }
    let offset = c.sim.len();
    let total = offset + cells.len();
    for (i, cell) in cells.iter().enumerate() {
        let i = offset + i;
        let seed = cell.seed.unwrap_or_default();
        if stop_reason.is_none() && signals::interrupted() {
            stop_reason = Some("the campaign was interrupted (Ctrl-C or SIGTERM)".into());
        }
        if stop_reason.is_none() {
            let left = c.budget.saturating_sub(started.elapsed());
            let need = c.time_limit + overhead;
            if need > left {
                stop_reason = Some(format!(
                    "the budget ran out: {} left, a run needs about {}",
                    secs(left.as_secs_f64()),
                    secs(need.as_secs_f64())
                ));
            }
        }
        let r = match &stop_reason {
            Some(why) => skipped(i, cell, seed, why),
            None => {
                println!(
                    "\n=== campaign {}: run {}/{total}: {}",
                    c.name,
                    i + 1,
                    describe(cell)
                );
                let r = run_cell(i, cell, seed);
                if r.verdict != Verdict::Error {
                    overhead = overhead
                        .max(Duration::from_secs_f64(r.time_s).saturating_sub(c.time_limit));
                }
                println!(
                    "=== run {}/{total}: {} ({}, {} ops){}",
                    i + 1,
                    r.verdict.name(),
                    secs(r.time_s),
                    r.ops,
                    r.explanation
                        .as_deref()
                        .map(|e| format!(": {e}"))
                        .unwrap_or_default()
                );
                if args.fail_fast {
                    stop_reason = fail_fast_stop(&r, &format!("run {}", i + 1));
                }
                r
            }
        };
        rec.cells.push(r);
        rec.elapsed_s = started.elapsed().as_secs_f64();
        write_outputs(&dir_path, &rec)?;
    }
    let code = exit_code(&judged(&rec.cells, &rec.expect_violation));
    rec.exit_code = Some(code);
    rec.finished = Some(store::utc_timestamp(SystemTime::now()));
    rec.elapsed_s = started.elapsed().as_secs_f64();
    write_outputs(&dir_path, &rec)?;
    println!();
    print!("{}", summary_text(&rec));
    println!(
        "campaign directory: {} (campaign.json, summary.txt, junit.xml, runs/)",
        dir_path.display()
    );
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fail_fast_stops_on_a_violation_or_a_finding_only() {
        let cell = |verdict: Verdict, finding: bool| CellRecord {
            verdict,
            finding,
            ..CellRecord::new(0, "raft", "kill", "w", 3)
        };
        let stop = |v, f| fail_fast_stop(&cell(v, f), "run 2");
        assert_eq!(
            stop(Verdict::Invalid, false).as_deref(),
            Some("--fail-fast: run 2 found a violation")
        );
        assert!(stop(Verdict::Valid, true).is_some_and(|s| s.contains("stopped answering")));
        assert!(stop(Verdict::Unknown, true).is_some());
        for v in [
            Verdict::Valid,
            Verdict::Unknown,
            Verdict::Error,
            Verdict::Skipped,
        ] {
            assert_eq!(stop(v, false), None, "{v:?}");
        }
    }

    /// `--shuffle SEED`: every cell once, in an order that the seed fixes and that differs
    /// between seeds and from the file's round-robin order.
    #[test]
    fn shuffle_reorders_the_same_cells_by_its_seed() {
        let c = spec::tests::parse(spec::tests::BASIC).unwrap();
        let names = |cells: &[Cell]| -> Vec<String> {
            cells
                .iter()
                .map(|c| format!("{} {:?}", c.args.name.as_deref().unwrap(), c.seed))
                .collect()
        };
        let plain = names(&ordered(&c, None, None));
        assert_eq!(plain, names(&c.expand(None)));
        let a = names(&ordered(&c, None, Some(1)));
        assert_eq!(
            a,
            names(&ordered(&c, None, Some(1))),
            "same seed, same order"
        );
        let b = names(&ordered(&c, None, Some(2)));
        assert_ne!(a, plain);
        assert_ne!(a, b);
        let sorted = |mut v: Vec<String>| {
            v.sort();
            v
        };
        assert_eq!(sorted(a), sorted(plain.clone()));
        assert_eq!(sorted(b), sorted(plain));
    }
}

//! Running one cell of a campaign (a `stasis test` run or a `[[sim]]` stage) and
//! classifying it into a [`CellRecord`].

use std::path::{Path, PathBuf};
use std::time::Instant;

use super::record::{CellRecord, Verdict, one_line};
use super::spec::Cell;
use crate::record::ProblemKind;
use crate::run::{self, Overrides};
use crate::sim::campaign::SimStage;

/// The target of `dir/latest`, if any (to find the run directory of a failed run).
fn latest_of(dir: &Path) -> Option<PathBuf> {
    std::fs::read_link(dir.join("latest"))
        .ok()
        .map(|t| dir.join(t))
}

/// Runs one cell and classifies it.
pub(super) fn run_cell(index: usize, cell: &Cell, seed: u64) -> CellRecord {
    let name = cell.args.name.clone().unwrap_or_default();
    let run_base = cell.args.store.join(&name);
    let before = latest_of(&run_base);
    let mut args = cell.args.clone();
    args.seed = Some(seed);
    let start = Instant::now();
    let result = run::execute(&args, &Overrides::default());
    let time_s = start.elapsed().as_secs_f64();
    let mut rec = CellRecord {
        seed,
        verdict: Verdict::Error,
        exit_code: Some(3),
        time_s,
        ..CellRecord::new(
            index,
            &cell.system,
            &cell.nemesis,
            &cell.workload,
            cell.nodes,
        )
    };
    match result {
        Ok(o) => {
            rec.exit_code = Some(o.exit_code);
            rec.run_dir = Some(o.run_dir.display().to_string());
            rec.ops = o.completions;
            match &o.report {
                None => {
                    rec.verdict = Verdict::Error;
                    rec.explanation =
                        Some("the run was interrupted before its history was checked".into());
                }
                Some(r) => {
                    rec.verdict = Verdict::of_exit_code(r.exit_code);
                    match rec.verdict {
                        Verdict::Invalid => {
                            rec.explanation = Some(match &r.check.explanation {
                                Some(e) => one_line(&e.sentence),
                                None => "the history is not linearizable".into(),
                            });
                            rec.detail = r
                                .check
                                .explanation
                                .as_ref()
                                .map(checker::report::explanation_text);
                        }
                        Verdict::Unknown => {
                            let why: Vec<String> = r
                                .check
                                .partitions
                                .iter()
                                .filter_map(|p| {
                                    p.gave_up.as_ref().map(|g| match &p.key {
                                        Some(k) => format!("key {k}: {g}"),
                                        None => g.clone(),
                                    })
                                })
                                .collect();
                            rec.explanation = Some(if why.is_empty() {
                                "the checker gave up".into()
                            } else {
                                one_line(&why.join("; "))
                            });
                        }
                        Verdict::Error => {
                            rec.explanation =
                                Some(format!("the run ended with exit code {}", r.exit_code));
                        }
                        _ => {}
                    }
                    // A run that ended early was still checked: its problem goes beside
                    // the verdict (a harness problem is the explanation of an error).
                    if let Some(p) = &r.problem {
                        rec.finding = p.kind == ProblemKind::System;
                        rec.explanation = Some(match rec.explanation.take() {
                            Some(e) if rec.verdict != Verdict::Error => {
                                format!("{e}; also {}", one_line(&p.line()))
                            }
                            _ => one_line(&p.line()),
                        });
                    }
                }
            }
        }
        Err(e) => {
            rec.explanation = Some(one_line(&format!("{e:#}")));
            rec.detail = Some(format!("{e:?}"));
            let after = latest_of(&run_base);
            if after.is_some() && after != before {
                rec.run_dir = after.map(|p| p.canonicalize().unwrap_or(p).display().to_string());
            }
        }
    }
    rec
}

/// The cell of a `[[sim]]` stage: run it (`why` = None) or record why it was skipped.
/// Its run directory is the first failing schedule's shrunk run (or the failing run).
pub(super) fn sim_cell(
    index: usize,
    stage: &SimStage,
    store: &Path,
    why: Option<&str>,
) -> CellRecord {
    let mut rec = CellRecord {
        explanation: why.map(str::to_owned),
        ..CellRecord::new(
            index,
            &stage.system(),
            &stage.faults(),
            "sim",
            stage.nodes() as u8,
        )
    };
    if why.is_some() {
        return rec;
    }
    let start = Instant::now();
    let result = stage.run(store);
    rec.time_s = start.elapsed().as_secs_f64();
    match result {
        Ok(sw) => {
            let (first, last) = sw.seeds.unwrap_or_default();
            rec.seed = first;
            rec.ops = sw.ops;
            rec.exit_code = Some(sw.exit_code());
            rec.verdict = match (sw.schedules, sw.exit_code()) {
                (0, _) => Verdict::Error,
                (_, 0) => Verdict::Valid,
                (_, 1) => Verdict::Invalid,
                // No violation, but a schedule without progress after its heal: a
                // finding beside a valid verdict (as the real runs' unresponsive system).
                (_, 4) => Verdict::Valid,
                _ => Verdict::Unknown,
            };
            rec.finding = sw.stalls > 0;
            rec.run_dir = (sw.shrunk.or(sw.failing))
                .map(|p| p.canonicalize().unwrap_or(p).display().to_string());
            rec.explanation = Some(if sw.schedules == 0 {
                "no schedule ran within the budget".into()
            } else {
                let mut e = format!(
                    "{} schedules (seeds {first}-{last}), {} violations, {} unknown",
                    sw.schedules, sw.violations, sw.unknown
                );
                if sw.stalls > 0 {
                    e.push_str(&format!(
                        "; finding: {} schedules without progress after the last fault healed",
                        sw.stalls
                    ));
                }
                e
            });
        }
        Err(e) => {
            rec.verdict = Verdict::Error;
            rec.exit_code = Some(3);
            rec.explanation = Some(one_line(&format!("{e:#}")));
        }
    }
    rec
}

pub(super) fn skipped(index: usize, cell: &Cell, seed: u64, why: &str) -> CellRecord {
    CellRecord {
        seed,
        explanation: Some(why.to_owned()),
        ..CellRecord::new(
            index,
            &cell.system,
            &cell.nemesis,
            &cell.workload,
            cell.nodes,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::campaign::spec::tests::{BASIC, parse};

    #[test]
    fn a_sim_stage_runs_for_its_budget_and_reports_a_cell() {
        let tmp = tempfile::tempdir().unwrap();
        let c = parse(&format!(
            "{BASIC}\n[[sim]]\nprotocol = \"multipaxos\"\nbudget = \"3s\"\nnodes = 3\nsim_time = \"4s\"\nbugs = [\"disjoint-quorums\"]\nnode_args = [\"--quorum\", \"flexible:2,1\"]\n"
        ))
        .unwrap();
        assert_eq!(c.sim.len(), 1);
        let stage = &c.sim[0];
        let skipped = sim_cell(0, stage, tmp.path(), Some("budget"));
        assert_eq!(skipped.verdict, Verdict::Skipped);
        let rec = sim_cell(4, stage, tmp.path(), None);
        assert_eq!(rec.index, 4);
        assert_eq!(rec.system, "sim:multipaxos+disjoint-quorums");
        let text = rec.explanation.clone().unwrap();
        assert!(text.contains("schedules (seeds"), "{text}");
        assert!(rec.ops > 0 && rec.time_s > 0.0);
        // disjoint-quorums with a non-intersecting quorum system fails within a few
        // schedules (median 0.04 s in selftest --sim): the cell is invalid and points at
        // a run directory in the store.
        assert_eq!(rec.verdict, Verdict::Invalid, "{text}");
        let dir = rec.run_dir.unwrap();
        assert!(Path::new(&dir).join("history.jsonl").is_file());
    }
}

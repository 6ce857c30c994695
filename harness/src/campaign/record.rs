//! What a campaign records: each run's verdict ([`CellRecord`]), `campaign.json`
//! ([`CampaignRecord`]), the exit code, `summary.txt`, and writing them out.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::junit;
pub use crate::record::Verdict;

/// One run's record in campaign.json.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CellRecord {
    pub index: usize,
    pub system: String,
    pub nemesis: String,
    pub workload: String,
    pub nodes: u8,
    pub seed: u64,
    pub verdict: Verdict,
    /// The run's own exit code (`None` when it did not run).
    pub exit_code: Option<u8>,
    pub run_dir: Option<String>,
    /// Wall-clock seconds of the whole run (start, workload, recovery, check).
    pub time_s: f64,
    /// Client completions recorded.
    pub ops: u64,
    /// One sentence: the checker's explanation (invalid), why it gave up (unknown), the
    /// harness error, or why the run was skipped.
    pub explanation: Option<String>,
    /// Longer text for reports (the checker's full explanation).
    pub detail: Option<String>,
    /// The run reported a finding about the system beside its verdict (it stopped
    /// answering: did not recover after healing, could not restart after a power loss).
    #[serde(default)]
    pub finding: bool,
}

impl CellRecord {
    /// A cell that has not run yet (skipped until it does).
    pub fn new(index: usize, system: &str, nemesis: &str, workload: &str, nodes: u8) -> Self {
        CellRecord {
            index,
            system: system.to_owned(),
            nemesis: nemesis.to_owned(),
            workload: workload.to_owned(),
            nodes,
            seed: 0,
            verdict: Verdict::Skipped,
            exit_code: None,
            run_dir: None,
            time_s: 0.0,
            ops: 0,
            explanation: None,
            detail: None,
            finding: false,
        }
    }
}

/// campaign.json.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CampaignRecord {
    pub name: String,
    pub file: String,
    pub dir: String,
    pub stasis_version: String,
    pub started: String,
    pub finished: Option<String>,
    pub budget_s: f64,
    pub time_limit_s: f64,
    /// `list` or `random` (drawn at the start; the drawn values are in the cells).
    pub seeds: String,
    pub planned: usize,
    pub elapsed_s: f64,
    pub exit_code: Option<u8>,
    pub cells: Vec<CellRecord>,
    /// The file's `expect_violation` systems.
    #[serde(default)]
    pub expect_violation: Vec<String>,
}

/// The verdicts that decide the exit code: an `invalid` run of a system in
/// `expect_violation` is an expected finding and counts as `valid` (every other verdict,
/// a harness error included, counts as it is).
pub fn judged(cells: &[CellRecord], expect_violation: &[String]) -> Vec<Verdict> {
    cells
        .iter()
        .map(|c| match c.verdict {
            Verdict::Invalid if expect_violation.contains(&c.system) => Verdict::Valid,
            v => v,
        })
        .collect()
}

/// The campaign's exit code: 1 if any run is not linearizable; else 3 if any run hit a
/// harness error (or nothing ran at all); else 2 if any is unknown; else 0. Skipped runs
/// do not change it once something ran.
pub fn exit_code(verdicts: &[Verdict]) -> u8 {
    let any = |v: Verdict| verdicts.contains(&v);
    if any(Verdict::Invalid) {
        1
    } else if any(Verdict::Error) || verdicts.iter().all(|v| *v == Verdict::Skipped) {
        3
    } else if any(Verdict::Unknown) {
        2
    } else {
        0
    }
}

pub(super) fn exit_meaning(code: u8) -> &'static str {
    match code {
        0 => "every run is linearizable",
        1 => "at least one run is NOT linearizable",
        2 => "at least one run is unknown (checker budget), none invalid",
        _ => "a harness error (or no run at all): see the error rows",
    }
}

pub(super) fn secs(s: f64) -> String {
    if s >= 90.0 {
        format!("{:.1} min", s / 60.0)
    } else {
        format!("{s:.1} s")
    }
}

/// summary.txt: per cell (system, nemesis, workload, nodes) the counts over seeds, time
/// and ops; then the runs that were not valid, with their sentence and path.
pub fn summary_text(rec: &CampaignRecord) -> String {
    type Key = (String, String, String, u8);
    let mut order: Vec<Key> = Vec::new();
    let mut groups: BTreeMap<Key, Vec<&CellRecord>> = BTreeMap::new();
    for c in &rec.cells {
        let k = (
            c.system.clone(),
            c.nemesis.clone(),
            c.workload.clone(),
            c.nodes,
        );
        if !groups.contains_key(&k) {
            order.push(k.clone());
        }
        groups.entry(k).or_default().push(c);
    }
    let mut s = String::new();
    let _ = writeln!(
        s,
        "campaign {} ({}), started {}, {} runs planned, budget {}",
        rec.name,
        rec.file,
        rec.started,
        rec.planned,
        secs(rec.budget_s)
    );
    let _ = writeln!(s, "directory: {}", rec.dir);
    let _ = writeln!(s);
    let w_sys = order.iter().map(|k| k.0.len()).max().unwrap_or(6).max(6);
    let w_nem = order.iter().map(|k| k.1.len()).max().unwrap_or(7).max(7);
    let w_wl = order.iter().map(|k| k.2.len()).max().unwrap_or(8).max(8);
    let _ = writeln!(
        s,
        "{:<w_sys$}  {:<w_nem$}  {:<w_wl$}  {:>5}  {:>5}  {:>7}  {:>7}  {:>5}  {:>7}  {:>10}  {:>9}",
        "system",
        "nemesis",
        "workload",
        "nodes",
        "valid",
        "invalid",
        "unknown",
        "error",
        "skipped",
        "time",
        "ops"
    );
    for k in &order {
        let cells = &groups[k];
        let n = |v: Verdict| cells.iter().filter(|c| c.verdict == v).count();
        let time: f64 = cells.iter().map(|c| c.time_s).sum();
        let ops: u64 = cells.iter().map(|c| c.ops).sum();
        let _ = writeln!(
            s,
            "{:<w_sys$}  {:<w_nem$}  {:<w_wl$}  {:>5}  {:>5}  {:>7}  {:>7}  {:>5}  {:>7}  {:>10}  {:>9}",
            k.0,
            k.1,
            k.2,
            k.3,
            n(Verdict::Valid),
            n(Verdict::Invalid),
            n(Verdict::Unknown),
            n(Verdict::Error),
            n(Verdict::Skipped),
            secs(time),
            ops
        );
    }
    let count = |v: Verdict| rec.cells.iter().filter(|c| c.verdict == v).count();
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "total: {} runs: {} valid, {} invalid, {} unknown, {} error, {} skipped; {} of runs, {} ops; campaign took {}",
        rec.cells.len(),
        count(Verdict::Valid),
        count(Verdict::Invalid),
        count(Verdict::Unknown),
        count(Verdict::Error),
        count(Verdict::Skipped),
        secs(rec.cells.iter().map(|c| c.time_s).sum()),
        rec.cells.iter().map(|c| c.ops).sum::<u64>(),
        secs(rec.elapsed_s)
    );
    let skipped = count(Verdict::Skipped);
    if skipped > 0 {
        let why = rec
            .cells
            .iter()
            .find(|c| c.verdict == Verdict::Skipped)
            .and_then(|c| c.explanation.clone())
            .unwrap_or_default();
        let _ = writeln!(s, "{skipped} run(s) SKIPPED, not tested: {why}");
    }
    let bad: Vec<&CellRecord> = rec
        .cells
        .iter()
        .filter(|c| {
            matches!(
                c.verdict,
                Verdict::Invalid | Verdict::Unknown | Verdict::Error
            )
        })
        .collect();
    if !bad.is_empty() {
        let _ = writeln!(s);
        let _ = writeln!(s, "runs that are not valid:");
        for c in bad {
            let _ = writeln!(
                s,
                "  {:<7} {}/{}/{} n{} seed {}: {}",
                c.verdict.name(),
                c.system,
                c.nemesis,
                c.workload,
                c.nodes,
                c.seed,
                c.explanation.as_deref().unwrap_or("")
            );
            let _ = writeln!(
                s,
                "          {}",
                c.run_dir.as_deref().unwrap_or("(no run directory)")
            );
        }
    }
    let expected = rec
        .cells
        .iter()
        .filter(|c| c.verdict == Verdict::Invalid && rec.expect_violation.contains(&c.system))
        .count();
    if expected > 0 {
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "{expected} invalid runs are expected findings (expect_violation: {}): they do not fail the campaign",
            rec.expect_violation.join(", ")
        );
    }
    if let Some(code) = rec.exit_code {
        let _ = writeln!(s);
        let _ = writeln!(s, "exit code {code}: {}", exit_meaning(code));
    }
    s
}

pub(super) fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Writes campaign.json, summary.txt and junit.xml (after every run, so a killed campaign
/// still leaves what it did).
pub(super) fn write_outputs(dir: &Path, rec: &CampaignRecord) -> Result<()> {
    let put = |name: &str, bytes: &[u8]| -> Result<()> {
        let tmp = dir.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, dir.join(name))
            .with_context(|| format!("cannot write {}", dir.join(name).display()))
    };
    put("campaign.json", &serde_json::to_vec_pretty(rec)?)?;
    put("summary.txt", summary_text(rec).as_bytes())?;
    put("junit.xml", junit::render(rec).as_bytes())
}

#[cfg(test)]
fn sample_cell(i: usize, v: Verdict, expl: Option<&str>) -> CellRecord {
    CellRecord {
        seed: 40 + i as u64,
        verdict: v,
        exit_code: (v != Verdict::Skipped).then_some(0),
        run_dir: (v != Verdict::Skipped).then(|| format!("/s/runs/r{i}&<x>")),
        time_s: 1.25 * (i + 1) as f64,
        ops: 100,
        explanation: expl.map(str::to_owned),
        detail: (v == Verdict::Invalid).then(|| "line one\nline <two> & \u{1} three".into()),
        ..CellRecord::new(i, "raft", "kill,partition", "w<&>\"'", 3)
    }
}

/// A campaign record with one cell of each verdict and text that needs escaping in every
/// view of campaign.json (summary.txt, junit.xml): the fixture their tests share.
#[cfg(test)]
pub(crate) fn sample_record() -> CampaignRecord {
    CampaignRecord {
        name: "night\"ly".into(),
        file: "campaigns/n.toml".into(),
        dir: "/s/campaigns/night/x".into(),
        stasis_version: "0.1.0".into(),
        started: "20261123T094500.123Z".into(),
        finished: None,
        budget_s: 600.0,
        time_limit_s: 10.0,
        seeds: "list".into(),
        planned: 5,
        elapsed_s: 50.0,
        exit_code: Some(1),
        expect_violation: Vec::new(),
        cells: vec![
            sample_cell(0, Verdict::Valid, None),
            sample_cell(
                1,
                Verdict::Invalid,
                Some("read of \"k1\" saw 3 <stale> & gone"),
            ),
            sample_cell(2, Verdict::Unknown, Some("key k2: timeout")),
            sample_cell(3, Verdict::Error, Some("node n1 exited: bad flag '--x'")),
            sample_cell(4, Verdict::Skipped, Some("the budget ran out")),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::campaign::spec::tests::{BASIC, parse};

    #[test]
    fn expected_violations_do_not_fail_the_campaign() {
        let mut rec = sample_record();
        let systems: Vec<String> = rec.cells.iter().map(|c| c.system.clone()).collect();
        assert!(rec.cells.iter().any(|c| c.verdict == Verdict::Invalid));
        assert_eq!(
            exit_code(&judged(&rec.cells, &[])),
            exit_code(&rec.cells.iter().map(|c| c.verdict).collect::<Vec<_>>())
        );
        let judged_all = judged(&rec.cells, &systems);
        assert!(!judged_all.contains(&Verdict::Invalid));
        // Errors still count.
        assert_eq!(
            judged_all.iter().filter(|v| **v == Verdict::Error).count(),
            rec.cells
                .iter()
                .filter(|c| c.verdict == Verdict::Error)
                .count()
        );
        rec.expect_violation = vec!["raft".into()];
        assert!(summary_text(&rec).contains("are expected findings (expect_violation: raft)"));
        let e = parse(&BASIC.replace("seeds = ", "expect_violation = [\"redis\"]\nseeds = "))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("expect_violation: \"redis\" is not one of systems"),
            "{e}"
        );
    }

    #[test]
    fn exit_codes_aggregate() {
        use Verdict::*;
        assert_eq!(exit_code(&[Valid, Valid]), 0);
        assert_eq!(exit_code(&[Valid, Skipped]), 0);
        assert_eq!(exit_code(&[Valid, Invalid, Unknown, Error]), 1);
        assert_eq!(exit_code(&[Valid, Unknown]), 2);
        assert_eq!(exit_code(&[Unknown, Error]), 3);
        assert_eq!(exit_code(&[Valid, Error, Skipped]), 3);
        assert_eq!(exit_code(&[Skipped, Skipped]), 3);
        assert_eq!(exit_code(&[]), 3);
    }

    #[test]
    fn summary_counts_per_cell() {
        let s = summary_text(&sample_record());
        let row = s
            .lines()
            .find(|l| l.starts_with("raft "))
            .expect("a row for the cell");
        let cols: Vec<&str> = row.split_whitespace().collect();
        // system nemesis workload nodes valid invalid unknown error skipped time(2) ops
        assert_eq!(
            cols[..9],
            [
                "raft",
                "kill,partition",
                "w<&>\"'",
                "3",
                "1",
                "1",
                "1",
                "1",
                "1"
            ]
        );
        assert_eq!(cols.last(), Some(&"500"));
        assert!(
            s.contains("1 run(s) SKIPPED, not tested: the budget ran out"),
            "{s}"
        );
        assert!(s.contains("/s/runs/r1"));
        assert!(s.contains("exit code 1: at least one run is NOT linearizable"));
    }
}

//! What a run records about itself beside its history, shared by the run, the analysis,
//! the plots and the reports: the windows of the faults (from the nemesis events of the
//! history) and why a run ended early (a harness error, or a finding about the system:
//! [`Unresponsive`]), with the exit code each gives; and the one [`Verdict`] vocabulary
//! in which runs, campaign cells and selftests are recorded and read back.

use std::collections::BTreeMap;
use std::time::Duration;

use checker::history::{Op, OpType, Process};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// How a run (or a campaign cell, a selftest case, a group of them) came out. Written
/// as its lowercase name; [`Verdict::of_word`] reads back every word Stasis writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Linearizable (a selftest: every expectation met).
    Valid,
    /// Not linearizable (a selftest: an expectation missed).
    Invalid,
    /// The checker gave up within its budget.
    Unknown,
    /// A harness error, or nothing ran.
    Error,
    /// Not run (budget, `--fail-fast`, Ctrl-C).
    Skipped,
}

impl Verdict {
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Valid => "valid",
            Verdict::Invalid => "invalid",
            Verdict::Unknown => "unknown",
            Verdict::Error => "error",
            Verdict::Skipped => "skipped",
        }
    }

    /// The verdict an exit code stands for: 0, 1, 2 as the checker's; anything else a
    /// harness error (3).
    pub fn of_exit_code(code: u8) -> Verdict {
        match code {
            0 => Verdict::Valid,
            1 => Verdict::Invalid,
            2 => Verdict::Unknown,
            _ => Verdict::Error,
        }
    }

    /// A verdict word as Stasis writes it: this type's names (campaign cells), the
    /// checker's ids (`linearizable`, `not-linearizable`, `unknown`, in results.json and
    /// selftest attempts) and a selftest's (`pass`, `fail`). `None` for anything else.
    pub fn of_word(word: &str) -> Option<Verdict> {
        Some(match word {
            "valid" | "linearizable" | "pass" => Verdict::Valid,
            "invalid" | "not-linearizable" | "fail" => Verdict::Invalid,
            "unknown" => Verdict::Unknown,
            "error" | "interrupted" => Verdict::Error,
            "skipped" => Verdict::Skipped,
            _ => return None,
        })
    }
}

/// Length of the availability windows.
pub const WINDOW: Duration = Duration::from_secs(5);

/// A fault's time span and what clients saw during it.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct FaultWindow {
    pub f: String,
    pub value: Value,
    pub start_ns: u64,
    pub stop_ns: Option<u64>,
    pub ok: u64,
    pub fail: u64,
    pub info: u64,
}

impl FaultWindow {
    pub fn ok_fraction(&self) -> f64 {
        let total = self.ok + self.fail + self.info;
        if total == 0 {
            0.0
        } else {
            self.ok as f64 / total as f64
        }
    }
}

/// Who is to blame for a run that ended before its normal end.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProblemKind {
    /// The system under test stopped answering (it did not recover after healing, a final
    /// read never succeeded, no membership change was ever answered): a finding about the
    /// system, not about the harness.
    System,
    /// The harness or its environment failed (a fault could not be applied or undone, a
    /// file could not be written).
    Harness,
}

/// Why a run ended early, reported beside its verdict (`results.json` `problem`,
/// `summary.txt`, `report.html`). The history recorded up to then is checked all the
/// same, so a harness problem never hides a violation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    pub kind: ProblemKind,
    pub message: String,
}

impl Problem {
    /// The run's exit code from its verdict's (`verdict_code`: 0, 1 or 2) and how it
    /// ended: a violation wins over everything; a harness problem is exit 3; a system
    /// problem leaves the verdict's code (the finding is reported beside it).
    pub fn exit_code(verdict_code: u8, problem: Option<&Problem>) -> u8 {
        match problem {
            _ if verdict_code == 1 => 1,
            Some(Problem {
                kind: ProblemKind::Harness,
                ..
            }) => 3,
            _ => verdict_code,
        }
    }

    /// One line for summaries: `harness error: ...` or `system stopped answering: ...`.
    pub fn line(&self) -> String {
        match self.kind {
            ProblemKind::System => {
                format!("finding: the system stopped answering: {}", self.message)
            }
            ProblemKind::Harness => format!("harness error: {}", self.message),
        }
    }
}

/// Pairs `start-X` / `stop-X` nemesis events into windows and counts client completions
/// inside each.
pub fn fault_windows(ops: &[Op]) -> Vec<FaultWindow> {
    let mut open: BTreeMap<String, usize> = BTreeMap::new();
    let mut out: Vec<FaultWindow> = Vec::new();
    for op in ops {
        if op.process != Process::Nemesis {
            continue;
        }
        if let Some(kind) = op.f.strip_prefix("start-") {
            open.insert(kind.to_owned(), out.len());
            out.push(FaultWindow {
                f: kind.to_owned(),
                value: op.value.clone(),
                start_ns: op.time,
                stop_ns: None,
                ok: 0,
                fail: 0,
                info: 0,
            });
        } else if let Some(kind) = op.f.strip_prefix("stop-")
            && let Some(i) = open.remove(kind)
        {
            out[i].stop_ns = Some(op.time);
        }
    }
    for op in ops {
        if !op.is_client_completion() {
            continue;
        }
        for w in &mut out {
            let end = w.stop_ns.unwrap_or(u64::MAX);
            if op.time >= w.start_ns && op.time < end {
                match op.kind {
                    OpType::Ok => w.ok += 1,
                    OpType::Fail => w.fail += 1,
                    OpType::Info => w.info += 1,
                    OpType::Invoke => {}
                }
            }
        }
    }
    out
}

/// An error that is a finding about the system under test: it stopped answering (did not
/// recover after healing, never answered a final read, refused or dropped every membership
/// change). The run's history is checked as usual and its verdict decides the exit code;
/// the finding is reported beside it.
#[derive(Debug)]
pub struct Unresponsive(pub String);

impl std::fmt::Display for Unresponsive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Unresponsive {}

/// The problem behind a run's error: [`Unresponsive`] anywhere in its chain makes it a
/// system finding, anything else a harness error.
pub fn problem_of(e: &anyhow::Error) -> Problem {
    let kind = if e.chain().any(|c| c.is::<Unresponsive>()) {
        ProblemKind::System
    } else {
        ProblemKind::Harness
    };
    Problem {
        kind,
        message: format!("{e:#}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_of_problems() {
        let harness = Problem {
            kind: ProblemKind::Harness,
            message: String::new(),
        };
        let system = Problem {
            kind: ProblemKind::System,
            message: String::new(),
        };
        for (code, p, want) in [
            (0, None, 0),
            (2, None, 2),
            (1, Some(&harness), 1),
            (0, Some(&harness), 3),
            (2, Some(&harness), 3),
            (0, Some(&system), 0),
            (2, Some(&system), 2),
            (1, Some(&system), 1),
        ] {
            assert_eq!(Problem::exit_code(code, p), want, "{code} {p:?}");
        }
    }
}

//! Stasis' linearizability checker.
//!
//! ```text
//! let loaded = checker::format::load(path, None)?;               // JSONL, EDN, Porcupine logs
//! // or, for big JSONL files: format::load_operations(path, None)? -> (ops, format, warnings)
//! //                          and checker::check_operations(&ops, &opts)
//! let mut opts = CheckOptions::new(ModelKind::Kv);              // or loaded.format.default_model()
//! opts.time_unit = loaded.format.time_unit();
//! let result = checker::check_history(&loaded.ops, &opts)?;     // Result<CheckResult, CheckError>
//! result.verdict                                                // Linearizable | NotLinearizable | Unknown
//! result.explanation                                            // Some(Explanation) when not linearizable
//! checker::report::text(&result)                                // the text explanation
//! checker::report::html(&result, title)                         // a self-contained HTML page
//! ```
//!
//! * [`history`]: events ([`history::Op`]), the validating JSONL reader, the writer, and
//!   [`history::pair`] (invoke + completion -> [`history::Operation`]).
//! * [`format`]: format detection, EDN and Porcupine readers, JSONL/EDN export.
//! * [`model`]: the sequential specifications, one file each.
//! * [`search`]: the Wing–Gong/Lowe search with a memo of (linearized set, state).
//! * [`check`]: partitioning by key (P-compositionality), parallel search with time and
//!   memory budgets, and the [`check::Explanation`] of a violation.
//! * [`report`]: the text explanation, the HTML page and the JSON result.
//!
//! Semantics: `fail` operations are dropped; `info` operations and invokes with no
//! completion may take effect at any time after their invocation, or never. Running out of
//! time or memory gives [`Verdict::Unknown`], never a wrong verdict.

pub mod check;
pub mod fast;
pub mod format;
pub mod history;
pub mod model;
pub mod report;
pub mod search;

pub use check::{
    CheckError, CheckOptions, CheckResult, Explanation, PartitionResult, TimeUnit, Verdict,
    check_history, check_operations,
};
pub use model::ModelKind;

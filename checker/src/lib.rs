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
//! The public API is what this file re-exports plus three modules: [`history`] (events,
//! the JSONL reader and writer, pairing into operations), [`format`] (format detection,
//! Jepsen EDN and Porcupine readers, export) and [`report`] (text, HTML and JSON of a
//! result). Inside, a check flows through:
//!
//! * `model`: the sequential specifications, one file each, the [`Model`](ModelKind)
//!   trait, the compiled operation (`SearchOp`) and a register's view of one (`RegView`).
//! * `fast`: sound shortcuts for register histories: refutation screens and the
//!   unique-values decision procedure (used when their preconditions hold; [`Method`]).
//! * `search`: the Wing-Gong/Lowe search with a memo of (linearized set, state).
//! * `check`: partitioning by key (P-compositionality) in `check/mod.rs`, the worker
//!   pool with time and memory budgets (`check/pool.rs`), compiling, screening and
//!   searching one partition (`check/partition.rs`) and the [`Explanation`] of a
//!   violation (`check/explain.rs`).
//!
//! Layering (no module cycles; `scripts/module-cycles.py` checks it in CI):
//! `history` <- `model` <- `fast`, `search`, `format` <- `check` <- `report`.
//!
//! Semantics: `fail` operations are dropped; `info` operations and invokes with no
//! completion may take effect at any time after their invocation, or never. Running out of
//! time or memory gives [`Verdict::Unknown`], never a wrong verdict.

mod check;
mod fast;
pub mod format;
pub mod history;
mod model;
pub mod report;
mod search;

pub use check::{
    CheckError, CheckOptions, CheckResult, Explanation, OpView, PartitionResult, PrefixStep,
    Verdict, check_history, check_operations,
};
pub use fast::Method;
pub use history::TimeUnit;
pub use model::ModelKind;
pub use search::SearchCuts;

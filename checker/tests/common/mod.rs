//! Shared helpers for the checker's integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

/// `../shared/testdata` beside the repository, or `$STASIS_TESTDATA` when set (a git
/// worktree elsewhere). Missing is a test failure, not a skip.
pub fn testdata() -> PathBuf {
    let p = std::env::var_os("STASIS_TESTDATA").map_or_else(
        || {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../shared/testdata"
            ))
        },
        PathBuf::from,
    );
    assert!(
        p.join("EXPECTED.tsv").is_file(),
        "shared test data not found at {} (the shared/ folder must sit beside the repository \
         clone: <dir>/main and <dir>/shared)",
        p.display()
    );
    p
}

/// One row of EXPECTED.tsv.
#[derive(Clone, Debug)]
pub struct Row {
    pub file: String,
    pub format: String,
    pub model: String,
    pub initial: Option<serde_json::Value>,
    pub by_key: bool,
    pub expected: String,
}

pub fn expected_rows() -> Vec<Row> {
    let text = std::fs::read_to_string(testdata().join("EXPECTED.tsv")).expect("read EXPECTED.tsv");
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let c: Vec<&str> = l.split('\t').collect();
            assert_eq!(c.len(), 6, "bad EXPECTED.tsv row: {l}");
            Row {
                file: c[0].into(),
                format: c[1].into(),
                model: c[2].into(),
                initial: (c[3] != "-").then(|| serde_json::from_str(c[3]).expect("initial JSON")),
                by_key: match c[4] {
                    "by-key" => true,
                    "none" => false,
                    other => panic!("bad partition {other}"),
                },
                expected: c[5].into(),
            }
        })
        .collect()
}

pub fn check_row(row: &Row) -> checker::CheckResult {
    use checker::format::{Format, load};
    let format = Format::from_id(&row.format).expect("known format");
    let loaded = load(&testdata().join(&row.file), Some(format)).expect("load");
    let mut opts = checker::CheckOptions::for_format(
        checker::ModelKind::from_id(&row.model).expect("known model"),
        format,
    );
    opts.initial = row.initial.clone();
    opts.by_key = Some(row.by_key);
    opts.timeout = Some(std::time::Duration::from_secs(240));
    checker::check_history(&loaded.ops, &opts).expect("check")
}

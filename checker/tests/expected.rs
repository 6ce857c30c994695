//! Every history listed in shared/testdata/EXPECTED.tsv gets its expected verdict.

mod common;

use std::time::Instant;

#[test]
fn every_known_history_gets_its_verdict() {
    let rows = common::expected_rows();
    assert!(
        rows.len() >= 180,
        "EXPECTED.tsv has only {} rows",
        rows.len()
    );
    let mut wrong = Vec::new();
    for row in &rows {
        let t = Instant::now();
        let r = common::check_row(row);
        let took = t.elapsed();
        if took.as_secs() >= 2 {
            eprintln!("{} ({}): {:?}", row.file, row.model, took);
        }
        if r.verdict.id() != row.expected {
            wrong.push(format!(
                "{} [{} {} {}]: expected {}, got {}",
                row.file,
                row.model,
                if row.by_key { "by-key" } else { "none" },
                row.format,
                row.expected,
                r.verdict.id()
            ));
        }
        if r.verdict == checker::Verdict::NotLinearizable {
            assert!(r.explanation.is_some(), "{}: no explanation", row.file);
        }
    }
    assert!(
        wrong.is_empty(),
        "{} wrong verdicts:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

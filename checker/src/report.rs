//! Reports of a check: the text explanation, a self-contained HTML page, and JSON.

use std::fmt::Write as _;

use crate::check::{CheckResult, Explanation, OpView, Verdict};

fn when(e: &Explanation, op: &OpView) -> String {
    let u = e.time_unit;
    match op.ret {
        Some(r) if op.outcome != "info" => format!("{} .. {}", u.show(op.call), u.show(r)),
        _ => format!("{} .. (never returned)", u.show(op.call)),
    }
}

fn line(e: &Explanation, op: &OpView) -> String {
    format!(
        "process {} {} [{}] ({})",
        op.process,
        op.description,
        op.outcome,
        when(e, op)
    )
}

/// The text explanation of a violation.
pub fn explanation_text(e: &Explanation) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{}", e.sentence);
    let _ = writeln!(
        s,
        "  partition: {}",
        e.key
            .as_deref()
            .map_or("whole history".to_owned(), |k| format!("key {k}"))
    );
    let _ = writeln!(s, "  model: {}", e.model);
    let _ = writeln!(s, "  cannot linearize: {}", line(e, &e.blocked));
    match &e.previous_ok {
        Some(p) => {
            let _ = writeln!(s, "  previous ok operation: {}", line(e, p));
        }
        None => {
            let _ = writeln!(s, "  previous ok operation: none");
        }
    }
    let _ = writeln!(
        s,
        "  longest linearizable prefix ({} operations), from initial state {}:",
        e.prefix.len(),
        e.initial_state
    );
    for (i, step) in e.prefix.iter().enumerate() {
        let _ = writeln!(
            s,
            "    {:>3}. {}  => {}",
            i + 1,
            line(e, &step.op),
            step.state_after
        );
    }
    s
}

/// The text report of a check: verdict, partitions, and the explanation if any.
pub fn text(r: &CheckResult) -> String {
    let mut s = String::new();
    let parts = r.partitions.len();
    let _ = writeln!(
        s,
        "{}: {} operations, {} partition{}, model {}, {:.1} ms",
        r.verdict.id(),
        r.ops,
        parts,
        if parts == 1 { "" } else { "s" },
        r.model,
        r.elapsed_ms
    );
    if r.verdict == Verdict::Unknown {
        for p in r
            .partitions
            .iter()
            .filter(|p| p.verdict == Verdict::Unknown)
        {
            let _ = writeln!(
                s,
                "  {}: unknown ({})",
                p.key
                    .as_deref()
                    .map_or("whole history".to_owned(), |k| format!("key {k}")),
                p.gave_up.as_deref().unwrap_or("gave up")
            );
        }
    }
    if let Some(e) = &r.explanation {
        s.push_str(&explanation_text(e));
    }
    s
}

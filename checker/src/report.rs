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

/// How many of the last prefix steps the text explanation lists.
pub const PREFIX_SHOWN: usize = 30;

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
    // The end of a long prefix is what matters; --json and --html have all of it.
    let skip = e.prefix.len().saturating_sub(PREFIX_SHOWN);
    if skip > 0 {
        let _ = writeln!(s, "    ... {skip} earlier steps ...");
    }
    for (i, step) in e.prefix.iter().enumerate().skip(skip) {
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

/// The machine-readable result (`stasis check --json`).
pub fn json(r: &CheckResult, file: &str, format: crate::format::Format) -> serde_json::Value {
    serde_json::json!({
        "file": file,
        "format": format.id(),
        "verdict": r.verdict,
        "exit_code": r.verdict.exit_code(),
        "model": r.model,
        "ops": r.ops,
        "elapsed_ms": r.elapsed_ms,
        "partitions": r.partitions,
        "explanation": r.explanation,
        "explanation_text": r.explanation.as_ref().map(explanation_text),
    })
}

/// Escapes text for HTML element content and attribute values (the checker's page and
/// the harness's reports and web UI).
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// Most operations drawn around the violation.
const DRAW_MAX: usize = 400;

/// A self-contained HTML page (no network fetches): the verdict, the sentence, and for a
/// violation a timeline of the failing partition — one row per client process, time left to
/// right (by order of events, so short and long operations stay readable), the longest
/// linearizable prefix numbered in linearization order with the state after each step, and
/// the operation that cannot be linearized in red.
pub fn html(r: &CheckResult, title: &str) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>stasis check: {}</title><style>{CSS}</style></head><body>\n",
        esc(title)
    );
    let _ = write!(
        h,
        "<h1>{} <span class=\"v {}\">{}</span></h1>\n<p class=\"meta\">model {} &middot; {} \
         operations &middot; {} partition(s) &middot; {:.1} ms</p>\n",
        esc(title),
        r.verdict.id(),
        r.verdict.id(),
        r.model,
        r.ops,
        r.partitions.len(),
        r.elapsed_ms
    );
    match &r.explanation {
        Some(e) => explanation_html(&mut h, e),
        None if r.verdict == Verdict::Linearizable => {
            h.push_str("<p>Every partition has an order of its operations that is consistent with real time and with the model.</p>\n");
        }
        None => {
            h.push_str("<p>The check gave up before deciding:</p><ul>\n");
            for p in r
                .partitions
                .iter()
                .filter(|p| p.verdict == Verdict::Unknown)
            {
                let _ = writeln!(
                    h,
                    "<li>{}: {}</li>",
                    esc(p.key.as_deref().unwrap_or("whole history")),
                    esc(p.gave_up.as_deref().unwrap_or("gave up"))
                );
            }
            h.push_str("</ul>\n");
        }
    }
    h.push_str("<script>");
    h.push_str(JS);
    h.push_str("</script>\n</body></html>\n");
    h
}

fn explanation_html(h: &mut String, e: &Explanation) {
    let _ = writeln!(h, "<p class=\"sentence\">{}</p>", esc(&e.sentence));
    let _ = writeln!(
        h,
        "<table class=\"facts\"><tr><th>partition</th><td>{}</td></tr>\
         <tr><th>cannot linearize</th><td class=\"bad\">{}</td></tr>\
         <tr><th>previous ok operation</th><td>{}</td></tr>\
         <tr><th>initial state</th><td>{}</td></tr></table>",
        esc(&e
            .key
            .as_deref()
            .map_or("whole history".into(), |k| format!("key {k}"))),
        esc(&line(e, &e.blocked)),
        esc(&e.previous_ok.as_ref().map_or("none".into(), |p| line(e, p))),
        esc(&e.initial_state)
    );
    // Which operations to draw: a window of the partition around the blocked one.
    let mut ops: Vec<&OpView> = e.partition_ops.iter().collect();
    ops.sort_by_key(|o| (o.call, o.invoke_index));
    let bi = ops
        .iter()
        .position(|o| o.invoke_index == e.blocked.invoke_index)
        .unwrap_or(0);
    let lo = bi.saturating_sub(DRAW_MAX * 3 / 4);
    let hi = (bi + DRAW_MAX / 4).min(ops.len());
    let window: Vec<&OpView> = ops[lo..hi].to_vec();
    let order: std::collections::HashMap<u64, (usize, &str)> = e
        .prefix
        .iter()
        .enumerate()
        .map(|(i, s)| (s.op.invoke_index, (i + 1, s.state_after.as_str())))
        .collect();
    // x positions: ranks of the distinct times in the window; open operations run to the end.
    let mut times: Vec<u64> = window
        .iter()
        .flat_map(|o| [Some(o.call), o.ret.filter(|_| o.outcome != "info")])
        .flatten()
        .collect();
    times.sort_unstable();
    times.dedup();
    let end_rank = times.len();
    let x_of = |t: u64| times.partition_point(|&x| x < t);
    let mut procs: Vec<u64> = window.iter().map(|o| o.process).collect();
    procs.sort_unstable();
    procs.dedup();
    let (step, row_h, left) = (28usize, 34usize, 90usize);
    let width = left + (end_rank + 2) * step;
    let height = 30 + procs.len() * row_h;
    if lo > 0 || hi < ops.len() {
        let _ = writeln!(
            h,
            "<p class=\"meta\">Showing operations {}..{} of {} in this partition (by invocation), around the failing one.</p>",
            lo + 1,
            hi,
            ops.len()
        );
    }
    h.push_str("<div class=\"legend\"><span class=\"lin\">linearized (number = position in the longest linearizable prefix)</span> <span class=\"rest\">not linearized</span> <span class=\"badop\">cannot be linearized</span> <span class=\"open\">unknown outcome (open)</span></div>\n");
    let _ = writeln!(
        h,
        "<div class=\"scroll\"><svg width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" role=\"img\">"
    );
    for (row, p) in procs.iter().enumerate() {
        let y = 20 + row * row_h;
        let _ = writeln!(
            h,
            "<text x=\"4\" y=\"{}\" class=\"proc\">process {p}</text><line x1=\"{left}\" x2=\"{width}\" y1=\"{}\" y2=\"{}\" class=\"lane\"/>",
            y + 16,
            y + 22,
            y + 22
        );
    }
    for o in &window {
        let row = procs.binary_search(&o.process).unwrap_or(0);
        let y = 20 + row * row_h;
        let x0 = left + x_of(o.call) * step + 4;
        let open = o.outcome == "info" || o.ret.is_none();
        let x1 = if open {
            left + (end_rank + 1) * step
        } else {
            left + x_of(o.ret.unwrap_or(o.call)) * step + step - 4
        };
        let is_bad = o.invoke_index == e.blocked.invoke_index;
        let lin = order.get(&o.invoke_index);
        let class = if is_bad {
            "op badop"
        } else if lin.is_some() {
            "op lin"
        } else {
            "op rest"
        };
        let class = if open {
            format!("{class} open")
        } else {
            class.to_owned()
        };
        let mut tip = format!(
            "process {} {} [{}] {}",
            o.process,
            o.description,
            o.outcome,
            when(e, o)
        );
        if let Some((n, st)) = lin {
            tip.push_str(&format!("\nlinearized #{n}; state after: {st}"));
        }
        if is_bad {
            tip.push_str("\ncannot be linearized");
        }
        let label = match lin {
            Some((n, _)) => format!("{n}: {}", o.description),
            None => o.description.clone(),
        };
        let _ = writeln!(
            h,
            "<g class=\"{class}\" data-lin=\"{}\"><title>{}</title><rect x=\"{x0}\" y=\"{y}\" width=\"{}\" height=\"22\" rx=\"4\"/><text x=\"{}\" y=\"{}\">{}</text></g>",
            lin.map_or(0, |(n, _)| *n),
            esc(&tip),
            x1.saturating_sub(x0).max(8),
            x0 + 4,
            y + 15,
            esc(&label)
        );
    }
    h.push_str("</svg></div>\n");
    let _ = writeln!(
        h,
        "<h2>Longest linearizable prefix ({} steps)</h2>\n<table class=\"prefix\"><tr><th>#</th><th>process</th><th>operation</th><th>time</th><th>state after</th></tr>",
        e.prefix.len()
    );
    let _ = writeln!(
        h,
        "<tr><td></td><td></td><td>(initial)</td><td></td><td>{}</td></tr>",
        esc(&e.initial_state)
    );
    for (i, s) in e.prefix.iter().enumerate() {
        let _ = writeln!(
            h,
            "<tr data-lin=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            i + 1,
            i + 1,
            s.op.process,
            esc(&s.op.description),
            esc(&when(e, &s.op)),
            esc(&s.state_after)
        );
    }
    let _ = writeln!(
        h,
        "<tr class=\"bad\"><td>&#10007;</td><td>{}</td><td>{}</td><td>{}</td><td>possible states: {}</td></tr></table>",
        e.blocked.process,
        esc(&e.blocked.description),
        esc(&when(e, &e.blocked)),
        esc(&e.possible_states.join(", "))
    );
}

const CSS: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}\
h1{font-size:1.3em}.v{padding:2px 8px;border-radius:4px;color:#fff}\
.v.linearizable{background:#2a7}.v.not-linearizable{background:#c33}.v.unknown{background:#888}\
.meta{color:#666}.sentence{font-size:1.1em;background:#fff4f4;border-left:4px solid #c33;padding:.5em 1em}\
table{border-collapse:collapse}td,th{padding:2px 8px;text-align:left;border-bottom:1px solid #eee}\
.facts th{color:#555;font-weight:normal}td.bad,tr.bad{color:#c33;font-weight:bold}\
.scroll{overflow-x:auto;border:1px solid #ddd;margin:.5em 0}\
.proc{font-size:12px;fill:#444}.lane{stroke:#eee}.op text{font-size:11px;fill:#000;pointer-events:none}\
.op rect{stroke:#555;stroke-width:1}.lin rect{fill:#bfe6c8}.rest rect{fill:#e4e4e4}\
.badop rect{fill:#f6a5a5;stroke:#c33;stroke-width:2}.open rect{stroke-dasharray:4 3}\
.op.hl rect,tr.hl{outline:2px solid #36c;background:#eef3ff}\
.legend span{display:inline-block;margin-right:1em;padding:0 6px;border-radius:3px}\
.legend .lin{background:#bfe6c8}.legend .rest{background:#e4e4e4}.legend .badop{background:#f6a5a5}\
.legend .open{border:1px dashed #555}";

/// Hovering a prefix row or a bar highlights its partner.
const JS: &str = "document.querySelectorAll('[data-lin]').forEach(function(el){\
var n=el.getAttribute('data-lin');if(n==='0')return;\
el.addEventListener('mouseenter',function(){document.querySelectorAll('[data-lin=\"'+n+'\"]').forEach(function(x){x.classList.add('hl')})});\
el.addEventListener('mouseleave',function(){document.querySelectorAll('[data-lin=\"'+n+'\"]').forEach(function(x){x.classList.remove('hl')})});});";

#[cfg(test)]
mod tests {
    use super::esc;

    #[test]
    fn escaping_covers_markup_and_quotes() {
        assert_eq!(
            esc(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}

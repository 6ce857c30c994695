//! The HTML pages. Everything read from disk is escaped; links are built from
//! percent-encoded store-relative paths.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::http::{Response, encode_path};
use super::scan::{self, Class, Entry, Kind, read_json, text};
use checker::report::esc;

/// Files listed per directory page at most.
const MAX_FILES: usize = 5_000;
/// Text files shown inline (summaries, explanations) are cut at this size.
const MAX_INLINE: u64 = 256 * 1024;

const CSS: &str = r#"
:root{--fg:#1d2330;--muted:#5f6b7a;--line:#d9dee5;--bg:#f6f7f9;
--valid:#e3f4e8;--valid-b:#2e9d4f;--invalid:#fde4e4;--invalid-b:#d1242f;
--unknown:#fff3d1;--unknown-b:#c98a00;--none:#eceef1;--none-b:#8a94a3}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);background:var(--bg)}
header{background:#1d2330;color:#fff;padding:10px 24px;display:flex;gap:16px;align-items:baseline}
header a{color:#fff;text-decoration:none;font-weight:600;font-size:17px}
header .store{color:#aeb7c4;font-family:ui-monospace,monospace;font-size:12px}
main{padding:16px 24px;max-width:1400px}
h1{font-size:20px;margin:4px 0 12px}h2{font-size:16px;margin:22px 0 8px}
a{color:#0b5cad}
table{border-collapse:collapse;background:#fff;width:100%;border:1px solid var(--line)}
th,td{padding:6px 10px;text-align:left;border-bottom:1px solid var(--line);vertical-align:top}
th{background:#eef1f5;font-weight:600;font-size:13px}
td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.valid td:first-child{border-left:4px solid var(--valid-b)}tr.valid{background:var(--valid)}
tr.invalid td:first-child{border-left:4px solid var(--invalid-b)}tr.invalid{background:var(--invalid)}
tr.unknown td:first-child{border-left:4px solid var(--unknown-b)}tr.unknown{background:var(--unknown)}
tr.none td:first-child{border-left:4px solid var(--none-b)}tr.none{background:var(--none)}
.badge{display:inline-block;white-space:nowrap;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600;color:#fff}
.badge.valid{background:var(--valid-b)}.badge.invalid{background:var(--invalid-b)}
.badge.unknown{background:var(--unknown-b)}.badge.none{background:var(--none-b)}
form.filter{display:flex;gap:12px;align-items:center;margin:0 0 12px;flex-wrap:wrap}
form.filter select{padding:3px}
.muted{color:var(--muted)}
pre{background:#fff;border:1px solid var(--line);padding:10px;overflow:auto;font-size:12px;max-height:480px}
pre.explanation{border-left:4px solid var(--invalid-b)}
dl.facts{display:flex;flex-wrap:wrap;gap:8px 32px;background:#fff;border:1px solid var(--line);padding:10px 14px;margin:0}
dl.facts dt{color:var(--muted);font-size:12px}dl.facts dd{margin:0;font-family:ui-monospace,monospace;font-size:13px;word-break:break-all}
.plots{display:grid;grid-template-columns:repeat(auto-fill,minmax(520px,1fr));gap:14px}
figure{margin:0;background:#fff;border:1px solid var(--line);padding:8px}
figure img{width:100%;height:auto;display:block}
figcaption{font-size:12px;color:var(--muted);margin-top:4px}
.links a{margin-right:14px}
.scroll{overflow-x:auto}a.run-link{word-break:break-all}
details summary{cursor:pointer}details pre{max-width:640px;white-space:pre-wrap}
"#;

/// Records each image's natural width in `data-natural-width` once the page has loaded,
/// and a count in `#img-status` (for people, and for the browser test).
const IMG_SCRIPT: &str = r#"(function(){
function mark(i){i.setAttribute('data-natural-width',String(i.naturalWidth));
i.setAttribute('data-state',i.naturalWidth>0?'loaded':'broken');}
document.querySelectorAll('img').forEach(function(i){
i.addEventListener('load',function(){mark(i)});i.addEventListener('error',function(){mark(i)});
if(i.complete){mark(i)}});
window.addEventListener('load',function(){var all=document.querySelectorAll('img'),ok=0;
all.forEach(function(i){mark(i);if(i.naturalWidth>0)ok++});
var s=document.getElementById('img-status');
if(s){s.textContent=ok+' of '+all.length+' images loaded';
s.setAttribute('data-loaded',String(ok));s.setAttribute('data-total',String(all.length));}});
})();"#;

fn layout(store: &Path, title: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
<title>{} — stasis</title><style>{CSS}</style></head>\n<body><header><a href=\"/\">stasis</a>\
<span class=\"store\">{}</span></header>\n<main>\n{body}\n</main>\n<script>{IMG_SCRIPT}</script>\
</body></html>\n",
        esc(title),
        esc(&store.display().to_string()),
    )
}

pub fn not_found() -> String {
    "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>not found — stasis</title></head>\
<body><h1>404 not found</h1><p>Nothing in this store has that name. <a href=\"/\">All runs</a></p></body></html>\n"
        .to_owned()
}

fn page_link(kind: Kind, rel: &str) -> String {
    format!("/{}/{}", kind.route(), encode_path(rel))
}

fn file_link(rel: &str) -> String {
    format!("/files/{}", encode_path(rel))
}

fn badge(verdict: &str, class: Class) -> String {
    format!(
        "<span class=\"badge {}\">{}</span>",
        class.css(),
        esc(verdict)
    )
}

fn ops_cell(ops: Option<u64>) -> String {
    ops.map(|n| n.to_string()).unwrap_or_default()
}

/// `/`: runs, campaigns and selftests, newest first, filtered by `system` and `nemesis`.
pub fn index(store: &Path, query: &[(String, String)]) -> Response {
    let get = |k: &str| {
        query
            .iter()
            .find(|(key, v)| key == k && !v.is_empty())
            .map(|(_, v)| v.as_str())
    };
    let (system, nemesis) = (get("system"), get("nemesis"));
    let entries = scan::scan(store);
    let mut systems: Vec<&str> = Vec::new();
    let mut nemeses: Vec<&str> = Vec::new();
    for e in &entries {
        systems.extend(e.systems.iter().map(String::as_str));
        nemeses.extend(e.nemeses.iter().map(String::as_str));
    }
    for v in [&mut systems, &mut nemeses] {
        v.sort_unstable();
        v.dedup();
    }
    let mut b = String::new();
    let shown: Vec<&Entry> = entries
        .iter()
        .filter(|e| e.matches(system, nemesis))
        .collect();
    let runs = shown.iter().filter(|e| e.kind == Kind::Run).count();
    let total_runs = entries.iter().filter(|e| e.kind == Kind::Run).count();
    let _ = writeln!(
        b,
        "<h1>Stasis store <span class=\"muted\" id=\"run-count\" data-count=\"{runs}\">{runs} of {total_runs} runs</span></h1>"
    );
    b.push_str("<form class=\"filter\" method=\"get\" action=\"/\">");
    for (label, name, values, current) in [
        ("System", "system", &systems, system),
        ("Nemesis", "nemesis", &nemeses, nemesis),
    ] {
        let _ = write!(
            b,
            "<label>{label} <select name=\"{name}\"><option value=\"\">any</option>"
        );
        for v in values.iter() {
            let sel = if Some(*v) == current { " selected" } else { "" };
            let _ = write!(b, "<option value=\"{0}\"{sel}>{0}</option>", esc(v));
        }
        // A filter value no stored run has still shows as selected (and matches nothing).
        if let Some(c) = current
            && !values.contains(&c)
        {
            let _ = write!(b, "<option value=\"{0}\" selected>{0}</option>", esc(c));
        }
        b.push_str("</select></label>");
    }
    b.push_str("<button type=\"submit\">Filter</button>");
    if system.is_some() || nemesis.is_some() {
        b.push_str("<a href=\"/\">clear</a>");
    }
    b.push_str("</form>\n");

    if entries.is_empty() {
        let _ = write!(
            b,
            "<p>No runs in this store yet. Start one with <code>stasis test --store {}</code>.</p>",
            esc(&store.display().to_string())
        );
    }
    for (kind, title) in [
        (Kind::Campaign, "Campaigns"),
        (Kind::Run, "Runs"),
        (Kind::Selftest, "Selftests"),
    ] {
        let rows: Vec<&&Entry> = shown.iter().filter(|e| e.kind == kind).collect();
        let exists = entries.iter().any(|e| e.kind == kind);
        if !exists || (kind != Kind::Run && rows.is_empty()) {
            continue;
        }
        let _ = writeln!(b, "<h2>{title}</h2>");
        let name_col = match kind {
            Kind::Run => "Test",
            Kind::Campaign => "Campaign",
            Kind::Selftest => "Selftest",
        };
        let _ = writeln!(
            b,
            "<table class=\"list {0}s\" id=\"{0}s\"><thead><tr><th>Time</th><th>{name_col}</th>\
<th>System</th><th>Nemesis</th><th>Verdict</th><th>Ops</th><th></th></tr></thead><tbody>",
            kind.route()
        );
        if rows.is_empty() {
            b.push_str(
                "<tr class=\"empty\"><td colspan=\"7\">No runs match this filter.</td></tr>\n",
            );
        }
        for e in rows {
            let link = page_link(kind, &e.rel);
            let _ = writeln!(
                b,
                "<tr class=\"row {kind} {class}\" data-rel=\"{rel}\" data-verdict=\"{verdict}\">\
<td>{time}</td><td><a href=\"{link}\">{name}</a></td><td>{systems}</td><td>{nemeses}</td>\
<td>{badge}</td><td class=\"num\">{ops}</td><td><a href=\"{link}\">open</a></td></tr>",
                kind = kind.route(),
                class = e.class.css(),
                rel = esc(&e.rel),
                verdict = esc(&e.verdict),
                time = esc(&e.time()),
                name = esc(&e.name),
                systems = esc(&e.systems.join(", ")),
                nemeses = esc(&e.nemeses.join(", ")),
                badge = badge(&e.verdict, e.class),
                ops = ops_cell(e.ops),
            );
        }
        b.push_str("</tbody></table>\n");
    }
    Response::html(200, layout(store, "runs", &b))
}

/// The page of a run, campaign or selftest directory (`dir` canonical, inside `store`).
pub fn dir_page(store: &Path, dir: &Path, kind: Kind) -> Response {
    let rel = dir
        .strip_prefix(store)
        .ok()
        .and_then(scan::rel_string)
        .unwrap_or_default();
    let mut b = String::new();
    let _ = writeln!(
        b,
        "<p class=\"muted\"><a href=\"/\">all runs</a> / {}</p>",
        esc(&rel)
    );
    let title = match kind {
        Kind::Run => run_body(&mut b, dir, &rel),
        Kind::Campaign | Kind::Selftest => group_body(&mut b, store, dir, &rel, kind),
    };
    files(&mut b, store, dir, &rel);
    Response::html(200, layout(store, &title, &b))
}

fn read_text(path: &Path) -> Option<String> {
    let meta = fs::metadata(path).ok()?;
    if !meta.is_file() {
        return None;
    }
    let mut bytes = Vec::new();
    use std::io::Read as _;
    fs::File::open(path)
        .ok()?
        .take(MAX_INLINE)
        .read_to_end(&mut bytes)
        .ok()?;
    let mut s = String::from_utf8_lossy(&bytes).into_owned();
    if meta.len() > MAX_INLINE {
        s.push_str("\n… (cut; download the file for the rest)");
    }
    Some(s)
}

fn fact(b: &mut String, name: &str, value: &str) {
    if !value.is_empty() {
        let _ = write!(
            b,
            "<div><dt>{}</dt><dd>{}</dd></div>",
            esc(name),
            esc(value)
        );
    }
}

fn links(b: &mut String, dir: &Path, rel: &str, names: &[(&str, &str)]) {
    let present: Vec<_> = names
        .iter()
        .filter(|(f, _)| dir.join(f).is_file())
        .collect();
    if present.is_empty() {
        return;
    }
    b.push_str("<p class=\"links\">");
    for (f, label) in present {
        let _ = write!(
            b,
            "<a href=\"{}\" id=\"link-{}\">{}</a>",
            file_link(&format!("{rel}/{f}")),
            esc(&f.replace('.', "-")),
            esc(label)
        );
    }
    b.push_str("</p>\n");
}

fn run_body(b: &mut String, dir: &Path, rel: &str) -> String {
    let test = read_json(&dir.join("test.json"));
    let results = read_json(&dir.join("results.json"));
    let harness = read_json(&dir.join("harness.json"));
    let verdict = results
        .get("verdict")
        .and_then(Value::as_str)
        .unwrap_or("none");
    let class = Class::of(verdict);
    let name = rel.rsplit('/').nth(1).unwrap_or(rel).to_owned();
    let _ = writeln!(b, "<h1>{} {}</h1>", esc(&name), badge(verdict, class));
    links(
        b,
        dir,
        rel,
        &[
            ("report.html", "full report"),
            ("timeline.html", "violation timeline"),
            ("history.jsonl", "history"),
            ("results.json", "results.json"),
            ("test.json", "test.json"),
        ],
    );
    b.push_str("<dl class=\"facts\">");
    fact(
        b,
        "started",
        &scan::display_time(&text(test.get("started").unwrap_or(&Value::Null))),
    );
    fact(b, "system", &scan::run_system(&test));
    fact(b, "nemesis", &scan::run_nemesis(&test));
    let args = test.get("args").unwrap_or(&Value::Null);
    fact(b, "nodes", &text(args.get("nodes").unwrap_or(&Value::Null)));
    fact(b, "seed", &text(test.get("seed").unwrap_or(&Value::Null)));
    fact(
        b,
        "operations",
        &scan::run_ops(&results, &harness)
            .map(|n| n.to_string())
            .unwrap_or_default(),
    );
    if let Some(ms) = results.pointer("/check/elapsed_ms").and_then(Value::as_f64) {
        fact(b, "check time", &format!("{ms:.0} ms"));
    }
    if let Some(s) = harness.get("ops_per_s").and_then(Value::as_f64) {
        fact(b, "throughput", &format!("{s:.0} ops/s"));
    }
    fact(
        b,
        "stasis",
        &text(test.get("stasis_version").unwrap_or(&Value::Null)),
    );
    fact(b, "directory", rel);
    b.push_str("</dl>\n");
    if let Some(e) = read_text(&dir.join("explanation.txt")) {
        let _ = write!(
            b,
            "<h2>Why it is not linearizable</h2>\n<pre class=\"explanation\">{}</pre>\n",
            esc(&e)
        );
    }
    plots(b, dir, rel);
    if let Some(s) = read_text(&dir.join("summary.txt")) {
        let _ = write!(
            b,
            "<h2>Summary</h2>\n<pre class=\"summary\">{}</pre>\n",
            esc(&s)
        );
    } else if results.is_null() {
        b.push_str(
            "<p class=\"muted\">No results.json: the run did not finish. \
             <code>stasis analyze</code> on this directory checks what was recorded.</p>\n",
        );
    }
    fault_table(b, &results);
    name
}

fn fault_table(b: &mut String, results: &Value) {
    let Some(windows) = results.get("fault_windows").and_then(Value::as_array) else {
        return;
    };
    if windows.is_empty() {
        return;
    }
    b.push_str(
        "<h2>Faults</h2>\n<table class=\"faults\"><thead><tr><th>Fault</th><th>Target</th>\
<th>From</th><th>To</th><th>ok</th><th>fail</th><th>info</th></tr></thead><tbody>\n",
    );
    let secs = |v: Option<&Value>| {
        v.and_then(Value::as_u64)
            .map(|ns| format!("{:.1} s", ns as f64 / 1e9))
            .unwrap_or_else(|| "(not healed)".into())
    };
    for w in windows {
        let n = |k: &str| text(w.get(k).unwrap_or(&Value::Null));
        let _ = writeln!(
            b,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td>\
<td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            esc(&n("f")),
            esc(&n("value")),
            secs(w.get("start_ns")),
            secs(w.get("stop_ns")),
            esc(&n("ok")),
            esc(&n("fail")),
            esc(&n("info")),
        );
    }
    b.push_str("</tbody></table>\n");
}

fn group_body(b: &mut String, store: &Path, dir: &Path, rel: &str, kind: Kind) -> String {
    let doc = read_json(&dir.join(kind.marker()));
    let entry_name = text(doc.get("name").unwrap_or(&Value::Null));
    let name = if entry_name.is_empty() {
        match kind {
            Kind::Selftest => "selftest".to_owned(),
            _ => rel.rsplit('/').nth(1).unwrap_or(rel).to_owned(),
        }
    } else {
        entry_name
    };
    let (verdict, class) = scan::group_verdict(&doc, kind);
    let _ = writeln!(b, "<h1>{} {}</h1>", esc(&name), badge(&verdict, class));
    links(
        b,
        dir,
        rel,
        &[
            ("report.html", "report"),
            ("junit.xml", "junit.xml"),
            (kind.marker(), kind.marker()),
        ],
    );
    b.push_str("<dl class=\"facts\">");
    fact(
        b,
        "started",
        &scan::display_time(&text(doc.get("started").unwrap_or(&Value::Null))),
    );
    fact(
        b,
        "finished",
        &scan::display_time(&text(doc.get("finished").unwrap_or(&Value::Null))),
    );
    for key in ["elapsed_s", "budget", "exit_code"] {
        fact(b, key, &text(doc.get(key).unwrap_or(&Value::Null)));
    }
    fact(b, "directory", rel);
    b.push_str("</dl>\n");
    if let Some(s) = read_text(&dir.join("summary.txt")) {
        let _ = write!(
            b,
            "<h2>Summary</h2>\n<pre class=\"summary\">{}</pre>\n",
            esc(&s)
        );
    }
    let cells = scan::cells(&doc);
    if !cells.is_empty() {
        cell_table(b, store, dir, cells);
    }
    plots(b, dir, rel);
    name
}

/// Keys that name a cell's run directory.
const RUN_KEYS: [&str; 6] = [
    "run_dir",
    "first_violation_dir",
    "violation_dir",
    "run",
    "dir",
    "path",
];

/// One row per cell; columns are the union of the cells' keys in first-seen order.
fn cell_table(b: &mut String, store: &Path, dir: &Path, cells: &[Value]) {
    // Familiar columns first, long texts and the run link last, anything else between;
    // `index` repeats the row number.
    const FIRST: [&str; 14] = [
        "case",
        "system",
        "protocol",
        "bug",
        "nemesis",
        "workload",
        "nodes",
        "seed",
        "verdict",
        "ok",
        "ops",
        "time_s",
        "exit_code",
        "explanation",
    ];
    let has = |k: &str| cells.iter().any(|c| c.get(k).is_some());
    let mut cols: Vec<&str> = FIRST.into_iter().filter(|k| has(k)).collect();
    let last: Vec<&str> = std::iter::once("detail")
        .chain(RUN_KEYS)
        .filter(|k| has(k))
        .collect();
    cols.extend(last.iter().copied());
    for c in cells {
        if let Some(o) = c.as_object() {
            for k in o.keys() {
                if k != "index" && !cols.contains(&k.as_str()) {
                    cols.insert(cols.len() - last.len(), k);
                }
            }
        }
    }
    b.push_str(
        "<h2>Cells</h2>\n<div class=\"scroll\"><table class=\"cells\" id=\"cells\"><thead><tr><th>#</th>",
    );
    for c in &cols {
        let _ = write!(b, "<th>{}</th>", esc(c));
    }
    b.push_str("</tr></thead><tbody>\n");
    for (i, cell) in cells.iter().enumerate() {
        let verdict = scan::verdict_of(cell);
        let _ = write!(
            b,
            "<tr class=\"cell {}\"><td class=\"num\">{}</td>",
            Class::of(&verdict).css(),
            i + 1
        );
        for col in &cols {
            let v = cell.get(*col).unwrap_or(&Value::Null);
            let shown = text(v);
            if RUN_KEYS.contains(col) {
                match run_link(store, dir, &shown) {
                    Some(r) => {
                        let _ = write!(
                            b,
                            "<td><a class=\"run-link\" href=\"{}\" title=\"{}\">{}</a></td>",
                            page_link(Kind::Run, &r),
                            esc(&r),
                            esc(&short_rel(&r))
                        );
                    }
                    None => {
                        let _ = write!(b, "<td>{}</td>", esc(&shown));
                    }
                }
            } else if *col == "verdict" {
                let _ = write!(b, "<td>{}</td>", badge(&shown, Class::of(&shown)));
            } else if v.is_number() {
                let _ = write!(b, "<td class=\"num\">{}</td>", esc(&shown));
            } else if v.is_array() || v.is_object() || shown.chars().count() > 120 {
                // Nested records and long texts fold away.
                let head = match v {
                    Value::Array(a) => format!("{} items", a.len()),
                    Value::Object(o) => format!("{} fields", o.len()),
                    _ => shown.chars().take(40).collect::<String>() + "…",
                };
                let full = if v.is_string() {
                    shown
                } else {
                    serde_json::to_string_pretty(v).unwrap_or_default()
                };
                let _ = write!(
                    b,
                    "<td><details><summary>{}</summary><pre>{}</pre></details></td>",
                    esc(&head),
                    esc(&full)
                );
            } else {
                let _ = write!(b, "<td>{}</td>", esc(&shown));
            }
        }
        b.push_str("</tr>\n");
    }
    b.push_str("</tbody></table></div>\n");
}

/// The last two components (`test/timestamp`) of a run path.
fn short_rel(rel: &str) -> String {
    let parts: Vec<&str> = rel.rsplitn(3, '/').collect();
    match parts.as_slice() {
        [ts, test, ..] => format!("{test}/{ts}"),
        _ => rel.to_owned(),
    }
}

/// The store-relative path of a run directory named by a campaign cell: as given
/// (absolute, or relative to the store, the campaign directory or the working
/// directory), else the longest tail of it that names a run in this store (a store that
/// was moved or mounted elsewhere).
fn run_link(store: &Path, dir: &Path, named: &str) -> Option<String> {
    if named.is_empty() {
        return None;
    }
    let p = Path::new(named);
    let mut candidates: Vec<PathBuf> = vec![store.join(p), dir.join(p), p.to_path_buf()];
    let comps: Vec<_> = p.components().collect();
    for i in 1..comps.len() {
        candidates.push(store.join(comps[i..].iter().collect::<PathBuf>()));
    }
    candidates.into_iter().find_map(|c| {
        let canon = c.canonicalize().ok()?;
        if !canon.starts_with(store) || !canon.join("test.json").is_file() {
            return None;
        }
        scan::rel_string(canon.strip_prefix(store).ok()?)
    })
}

fn is_image(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.ends_with(".svg") || lower.ends_with(".png")
}

/// Every SVG and PNG directly in the directory, as images.
fn plots(b: &mut String, dir: &Path, rel: &str) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    let mut names: Vec<String> = rd
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| is_image(n))
        .collect();
    if names.is_empty() {
        return;
    }
    // Same plot side by side (latency.png next to latency.svg).
    names.sort_by(|a, b| {
        let stem = |s: &str| {
            s.rsplit_once('.')
                .map(|(s, _)| s.to_owned())
                .unwrap_or_default()
        };
        stem(a).cmp(&stem(b)).then_with(|| b.cmp(a))
    });
    let _ = write!(
        b,
        "<h2>Plots <span class=\"muted\" id=\"img-status\" data-total=\"{}\"></span></h2>\n<div class=\"plots\">\n",
        names.len()
    );
    for n in &names {
        let _ = writeln!(
            b,
            "<figure><a href=\"{0}\"><img class=\"plot\" src=\"{0}\" alt=\"{1}\"></a>\
<figcaption>{1}</figcaption></figure>",
            file_link(&format!("{rel}/{n}")),
            esc(n)
        );
    }
    b.push_str("</div>\n");
}

/// Every regular file under the directory (node logs included), for download. Files
/// reached through symlinks are listed only if they resolve inside the store.
fn files(b: &mut String, store: &Path, dir: &Path, rel: &str) {
    let mut found: Vec<(String, u64)> = Vec::new();
    let mut stack = vec![(dir.to_path_buf(), 0usize)];
    while let Some((d, depth)) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.filter_map(Result::ok) {
            if found.len() >= MAX_FILES {
                break;
            }
            let path = e.path();
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                // Runs kept inside a campaign or selftest have their own pages.
                let nested = [Kind::Run, Kind::Campaign, Kind::Selftest]
                    .iter()
                    .any(|k| path.join(k.marker()).is_file());
                if depth < 8 && !nested {
                    stack.push((path, depth + 1));
                }
                continue;
            }
            let Ok(canon) = path.canonicalize() else {
                continue;
            };
            if !canon.starts_with(store) || !canon.is_file() {
                continue;
            }
            let Some(sub) = path.strip_prefix(dir).ok().and_then(scan::rel_string) else {
                continue;
            };
            let len = canon.metadata().map(|m| m.len()).unwrap_or(0);
            found.push((sub, len));
        }
    }
    if found.is_empty() {
        return;
    }
    // Top-level files first, then each subdirectory's.
    found.sort_by(|a, b| {
        let depth = |s: &str| s.matches('/').count();
        depth(&a.0).cmp(&depth(&b.0)).then_with(|| a.0.cmp(&b.0))
    });
    let _ = write!(
        b,
        "<h2>Files</h2>\n<table class=\"files\" id=\"files\"><thead><tr><th>File</th><th>Size</th>\
<th></th></tr></thead><tbody>\n"
    );
    for (sub, len) in &found {
        let link = file_link(&format!("{rel}/{sub}"));
        let _ = writeln!(
            b,
            "<tr><td><a href=\"{link}\">{}</a></td><td class=\"num\">{}</td>\
<td><a href=\"{link}?download=1\" download>download</a></td></tr>",
            esc(sub),
            size(*len)
        );
    }
    if found.len() >= MAX_FILES {
        let _ = writeln!(
            b,
            "<tr><td colspan=\"3\">(only the first {MAX_FILES} files are listed)</td></tr>"
        );
    }
    b.push_str("</tbody></table>\n");
}

fn size(n: u64) -> String {
    match n {
        n if n >= 10 << 20 => format!("{} MiB", n >> 20),
        n if n >= 10 << 10 => format!("{} KiB", n >> 10),
        n => format!("{n} B"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_html() {
        assert_eq!(
            esc("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn short_run_paths() {
        assert_eq!(
            short_rel("campaigns/n/t/runs/raft-kill/2026Z"),
            "raft-kill/2026Z"
        );
        assert_eq!(short_rel("raft-kill/2026Z"), "raft-kill/2026Z");
        assert_eq!(short_rel("x"), "x");
    }

    #[test]
    fn sizes() {
        assert_eq!(size(512), "512 B");
        assert_eq!(size(20 << 10), "20 KiB");
        assert_eq!(size(30 << 20), "30 MiB");
    }
}

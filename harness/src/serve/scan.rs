//! Finding what a store holds: run directories (`test.json`), campaign directories
//! (`campaign.json`) and selftest directories (`selftest.json`), read tolerantly: a
//! missing or half-written file gives a row with what is known, never an error page.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use serde_json::Value;

use crate::record::Verdict;

/// How deep below the store directories are searched (campaigns may nest their runs).
const MAX_DEPTH: usize = 8;
/// At most this many directories are visited per scan.
const MAX_DIRS: usize = 50_000;
/// JSON files bigger than this are not parsed for the list (a row is still shown).
const MAX_JSON: u64 = 32 * 1024 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Run,
    Campaign,
    Selftest,
}

impl Kind {
    /// The URL prefix of this kind's page.
    pub fn route(self) -> &'static str {
        match self {
            Kind::Run => "run",
            Kind::Campaign => "campaign",
            Kind::Selftest => "selftest",
        }
    }

    /// The file that marks a directory of this kind.
    pub fn marker(self) -> &'static str {
        match self {
            Kind::Run => "test.json",
            Kind::Campaign => "campaign.json",
            Kind::Selftest => "selftest.json",
        }
    }

    fn of_dir(dir: &Path) -> Option<Kind> {
        [Kind::Run, Kind::Campaign, Kind::Selftest]
            .into_iter()
            .find(|k| dir.join(k.marker()).is_file())
    }
}

/// The colour class of a verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    Valid,
    Invalid,
    Unknown,
    None,
}

impl Class {
    pub fn css(self) -> &'static str {
        match self {
            Class::Valid => "valid",
            Class::Invalid => "invalid",
            Class::Unknown => "unknown",
            Class::None => "none",
        }
    }

    /// Classifies a verdict word as written by the checker, a campaign or a selftest
    /// ([`Verdict::of_word`]); an empty word (not written yet) and the pages' own `none`
    /// are none, a word Stasis does not write is unknown.
    pub fn of(verdict: &str) -> Class {
        if verdict.is_empty() || verdict == "none" {
            return Class::None;
        }
        match Verdict::of_word(verdict) {
            Some(Verdict::Valid) => Class::Valid,
            Some(Verdict::Invalid) => Class::Invalid,
            Some(Verdict::Skipped) => Class::None,
            Some(Verdict::Unknown | Verdict::Error) | None => Class::Unknown,
        }
    }

    /// The verdict of a group: invalid if any is, else unknown if any is unknown or
    /// missing, else valid (none for an empty group).
    fn combine(classes: impl IntoIterator<Item = Class>) -> Class {
        let mut seen = false;
        let mut worst = Class::Valid;
        for c in classes {
            seen = true;
            worst = match (worst, c) {
                (Class::Invalid, _) | (_, Class::Invalid) => Class::Invalid,
                (Class::Unknown, _) | (_, Class::Unknown) | (_, Class::None) => Class::Unknown,
                _ => Class::Valid,
            };
        }
        if seen { worst } else { Class::None }
    }
}

/// One row of the index.
#[derive(Clone, Debug)]
pub struct Entry {
    pub kind: Kind,
    /// Path relative to the store, `/`-separated.
    pub rel: String,
    /// Sortable UTC time `YYYYMMDDTHHMMSS...` (newest sorts last).
    pub sort_key: String,
    /// Test, campaign or selftest name.
    pub name: String,
    /// Systems under test (a campaign may have several).
    pub systems: Vec<String>,
    /// Nemesis sets.
    pub nemeses: Vec<String>,
    /// (system, nemesis) of each run or cell: a filter on both matches a campaign only
    /// if one cell has both.
    pub pairs: Vec<(String, String)>,
    pub verdict: String,
    pub class: Class,
    /// Client completions (runs), summed over cells (campaigns).
    pub ops: Option<u64>,
}

impl Entry {
    /// Human time, e.g. `2026-11-23 09:45:00 UTC`.
    pub fn time(&self) -> String {
        human_time(&self.sort_key)
    }

    pub fn matches(&self, system: Option<&str>, nemesis: Option<&str>) -> bool {
        if system.is_none() && nemesis.is_none() {
            return true;
        }
        self.pairs
            .iter()
            .any(|(s, n)| system.is_none_or(|x| x == s) && nemesis.is_none_or(|x| x == n))
    }
}

/// Everything listable under `store` (canonical), newest first.
pub fn scan(store: &Path) -> Vec<Entry> {
    let mut out = Vec::new();
    let mut visited = 0;
    walk(store, store, 0, &mut visited, &mut out);
    out.sort_by(|a, b| b.sort_key.cmp(&a.sort_key).then_with(|| b.rel.cmp(&a.rel)));
    out
}

fn walk(store: &Path, dir: &Path, depth: usize, visited: &mut usize, out: &mut Vec<Entry>) {
    if depth > MAX_DEPTH || *visited >= MAX_DIRS {
        return;
    }
    let Ok(rd) = fs::read_dir(dir) else { return };
    let mut children: Vec<PathBuf> = rd
        .filter_map(Result::ok)
        // Symlinks (`latest`) are never followed: every directory is listed once, and
        // nothing outside the store is reached.
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect();
    children.sort();
    for child in children {
        *visited += 1;
        if *visited >= MAX_DIRS {
            return;
        }
        let Ok(rel) = child.strip_prefix(store) else {
            continue;
        };
        let Some(rel) = rel_string(rel) else { continue };
        match Kind::of_dir(&child) {
            // A run directory holds node directories, never other runs.
            Some(Kind::Run) => out.push(run_entry(&child, rel)),
            Some(kind) => {
                out.push(group_entry(&child, rel, kind));
                walk(store, &child, depth + 1, visited, out);
            }
            None => walk(store, &child, depth + 1, visited, out),
        }
    }
}

/// `a/b/c` for a relative path of UTF-8 names (others are not served, so not listed).
pub fn rel_string(rel: &Path) -> Option<String> {
    let parts: Option<Vec<&str>> = rel.components().map(|c| c.as_os_str().to_str()).collect();
    Some(parts?.join("/"))
}

/// Reads a JSON file, `Null` if absent, too big or unparsable.
pub fn read_json(path: &Path) -> Value {
    match fs::metadata(path) {
        Ok(m) if m.is_file() && m.len() <= MAX_JSON => fs::read(path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(Value::Null),
        _ => Value::Null,
    }
}

/// A JSON value as short text: strings bare, fractions to 0.1, others compact.
pub fn text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Number(n) if !n.is_u64() && !n.is_i64() => {
            format!("{:.1}", n.as_f64().unwrap_or_default())
        }
        other => other.to_string(),
    }
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut v = v;
    for p in path {
        v = v.get(p)?;
    }
    v.as_str().filter(|s| !s.is_empty())
}

/// The system name of a run: the spec's name (`sut.name`), else the `--sut` argument.
pub fn run_system(test: &Value) -> String {
    str_at(test, &["sut", "name"])
        .or_else(|| str_at(test, &["args", "sut"]))
        .unwrap_or("?")
        .to_owned()
}

pub fn run_nemesis(test: &Value) -> String {
    str_at(test, &["args", "nemesis"]).unwrap_or("?").to_owned()
}

/// Client completions: summed from results.json `ops`, else harness.json `completions`.
pub fn run_ops(results: &Value, harness: &Value) -> Option<u64> {
    if let Some(ops) = results.get("ops").and_then(Value::as_object) {
        let total = ops
            .values()
            .filter_map(Value::as_object)
            .flat_map(|kinds| kinds.values())
            .filter_map(Value::as_u64)
            .sum();
        return Some(total);
    }
    harness.get("completions").and_then(Value::as_u64)
}

fn run_entry(dir: &Path, rel: String) -> Entry {
    let test = read_json(&dir.join("test.json"));
    let results = read_json(&dir.join("results.json"));
    let harness = read_json(&dir.join("harness.json"));
    let verdict = str_at(&results, &["verdict"]).unwrap_or("").to_owned();
    let name = rel
        .rsplit_once('/')
        .map(|(parent, _)| parent.rsplit('/').next().unwrap_or(parent))
        .unwrap_or(&rel)
        .to_owned();
    Entry {
        kind: Kind::Run,
        sort_key: sort_key(dir, str_at(&test, &["started"])),
        name,
        systems: vec![run_system(&test)],
        nemeses: vec![run_nemesis(&test)],
        pairs: vec![(run_system(&test), run_nemesis(&test))],
        class: Class::of(&verdict),
        verdict: if verdict.is_empty() {
            "none".into()
        } else {
            verdict
        },
        ops: run_ops(&results, &harness),
        rel,
    }
}

/// The verdict word of a campaign cell (`verdict`) or a selftest case (`ok`, whether it
/// met its expectation); empty when the record has neither (yet).
pub fn verdict_of(v: &Value) -> String {
    if let Some(s) = v.get("verdict").and_then(Value::as_str) {
        return s.to_owned();
    }
    match v.get("ok").and_then(Value::as_bool) {
        Some(ok) => crate::selftest::verdict_word(if ok { 0 } else { 1 }).to_owned(),
        None => String::new(),
    }
}

/// The cells (campaign.json) or cases (selftest.json) of a group file.
pub fn cells(v: &Value) -> &[Value] {
    ["cells", "cases"]
        .into_iter()
        .find_map(|k| v.get(k).and_then(Value::as_array))
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// A campaign's or selftest's verdict: from its recorded exit code (the campaign's and
/// selftest's own judgement), else its own verdict field, else from its cells; with a
/// count of the cells that passed, e.g. `invalid: 1 of 3 valid`.
pub fn group_verdict(doc: &Value, kind: Kind) -> (String, Class) {
    let cells = cells(doc);
    let good = cells
        .iter()
        .filter(|c| Class::of(&verdict_of(c)) == Class::Valid)
        .count();
    let (word, class) = match doc.get("exit_code") {
        Some(Value::Number(n)) => {
            let code = n.as_u64().map_or(3, |c| c.min(255) as u8);
            let word = match kind {
                Kind::Selftest => crate::selftest::verdict_word(code),
                _ => Verdict::of_exit_code(code).name(),
            };
            (word.to_owned(), Class::of(word))
        }
        // Written at the start and rewritten as cells finish.
        Some(Value::Null) if kind == Kind::Campaign => ("running".to_owned(), Class::None),
        _ => {
            let own = verdict_of(doc);
            if !own.is_empty() {
                let class = Class::of(&own);
                (own, class)
            } else if cells.is_empty() {
                return ("none".into(), Class::None);
            } else {
                let class = Class::combine(cells.iter().map(|c| Class::of(&verdict_of(c))));
                (class.css().to_owned(), class)
            }
        }
    };
    if cells.is_empty() {
        return (word, class);
    }
    let unit = if kind == Kind::Selftest {
        "cases ok"
    } else {
        "valid"
    };
    (format!("{word}: {good} of {} {unit}", cells.len()), class)
}

fn group_entry(dir: &Path, rel: String, kind: Kind) -> Entry {
    let doc = read_json(&dir.join(kind.marker()));
    let cells = cells(&doc);
    let mut systems: Vec<String> = Vec::new();
    let mut nemeses: Vec<String> = Vec::new();
    let mut pairs: Vec<(String, String)> = Vec::new();
    for c in cells {
        let get = |keys: &[&str]| {
            keys.iter()
                .find_map(|k| c.get(*k).map(text))
                .unwrap_or_default()
        };
        let (system, nemesis) = (get(&["system", "protocol"]), get(&["nemesis"]));
        for (v, list) in [(&system, &mut systems), (&nemesis, &mut nemeses)] {
            if !v.is_empty() && !list.contains(v) {
                list.push(v.clone());
            }
        }
        pairs.push((system, nemesis));
    }
    let (verdict, class) = group_verdict(&doc, kind);
    let ops: Vec<u64> = cells
        .iter()
        .filter_map(|c| {
            c.get("ops")
                .and_then(Value::as_u64)
                .or_else(|| c.get("completions").and_then(Value::as_u64))
        })
        .collect();
    let name = str_at(&doc, &["name"])
        .map(str::to_owned)
        .unwrap_or_else(|| match kind {
            Kind::Selftest => "selftest".into(),
            _ => parent_name(&rel),
        });
    Entry {
        kind,
        sort_key: sort_key(dir, str_at(&doc, &["started"])),
        name,
        systems,
        nemeses,
        pairs,
        verdict,
        class,
        ops: (!ops.is_empty()).then(|| ops.iter().sum()),
        rel,
    }
}

fn parent_name(rel: &str) -> String {
    let mut parts = rel.rsplit('/');
    parts.next();
    parts.next().unwrap_or(rel).to_owned()
}

/// The directory's own name when it is a store timestamp, else the recorded start time,
/// else its modification time; normalised to digits and `T` so all three compare.
fn sort_key(dir: &Path, started: Option<&str>) -> String {
    let own = dir.file_name().and_then(|n| n.to_str()).unwrap_or("");
    for candidate in [Some(own), started].into_iter().flatten() {
        if let Some(k) = normalise_time(candidate) {
            return k;
        }
    }
    let mtime = fs::metadata(dir)
        .and_then(|m| m.modified())
        .unwrap_or(UNIX_EPOCH);
    normalise_time(&crate::store::utc_timestamp(mtime)).unwrap_or_default()
}

/// `20261123T094500.123Z`, `2026-11-23T09:45:00Z`, `2026-11-23 09:45:00.5+00:00` ->
/// `20261123T094500123`; `None` if the text does not start with a date and time.
fn normalise_time(s: &str) -> Option<String> {
    let digits: String = s
        .chars()
        .take_while(|c| c.is_ascii_digit() || "-:T .".contains(*c))
        .filter(char::is_ascii_digit)
        .collect();
    if digits.len() < 14 {
        return None;
    }
    Some(format!("{}T{}", &digits[..8], &digits[8..]))
}

/// A recorded time for people: `2026-11-23 09:45:00 UTC`, or the text as it is.
pub fn display_time(s: &str) -> String {
    normalise_time(s)
        .map(|k| human_time(&k))
        .unwrap_or_else(|| s.to_owned())
}

fn human_time(key: &str) -> String {
    let b = key.as_bytes();
    if b.len() < 15 || b[8] != b'T' {
        return key.to_owned();
    }
    format!(
        "{}-{}-{} {}:{}:{} UTC",
        &key[0..4],
        &key[4..6],
        &key[6..8],
        &key[9..11],
        &key[11..13],
        &key[13..15]
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn verdict_classes() {
        assert_eq!(Class::of("linearizable"), Class::Valid);
        assert_eq!(Class::of("not-linearizable"), Class::Invalid);
        assert_eq!(Class::of("unknown"), Class::Unknown);
        assert_eq!(Class::of("error"), Class::Unknown);
        assert_eq!(Class::of(""), Class::None);
        assert_eq!(Class::combine([Class::Valid, Class::Valid]), Class::Valid);
        assert_eq!(Class::combine([Class::Valid, Class::None]), Class::Unknown);
        assert_eq!(
            Class::combine([Class::Unknown, Class::Invalid, Class::Valid]),
            Class::Invalid
        );
        assert_eq!(Class::combine([]), Class::None);
    }

    #[test]
    fn times_normalise_and_print() {
        let a = normalise_time("20261123T094500.123Z").unwrap();
        let b = normalise_time("2026-11-23T09:45:00Z").unwrap();
        assert_eq!(a, "20261123T094500123");
        assert_eq!(b, "20261123T094500");
        assert!(a > b);
        assert_eq!(normalise_time("raft-kill"), None);
        assert_eq!(human_time(&a), "2026-11-23 09:45:00 UTC");
    }

    #[test]
    fn ops_and_systems_from_run_files() {
        let results = json!({"ops": {"read": {"ok": 3, "fail": 1}, "write": {"info": 2}}});
        assert_eq!(run_ops(&results, &Value::Null), Some(6));
        assert_eq!(run_ops(&Value::Null, &json!({"completions": 9})), Some(9));
        assert_eq!(run_ops(&Value::Null, &Value::Null), None);
        let test =
            json!({"args": {"sut": "specs/x.toml", "nemesis": "kill"}, "sut": {"name": "x"}});
        assert_eq!(run_system(&test), "x");
        assert_eq!(run_nemesis(&test), "kill");
        assert_eq!(run_system(&Value::Null), "?");
    }

    #[test]
    fn filters_match_one_cell_on_both() {
        let e = Entry {
            kind: Kind::Campaign,
            rel: "c".into(),
            sort_key: String::new(),
            name: "c".into(),
            systems: vec!["raft".into(), "etcd".into()],
            nemeses: vec!["kill".into(), "clock".into()],
            pairs: vec![
                ("raft".into(), "clock".into()),
                ("etcd".into(), "kill".into()),
            ],
            verdict: String::new(),
            class: Class::None,
            ops: None,
        };
        assert!(e.matches(None, None));
        assert!(e.matches(Some("raft"), None));
        assert!(e.matches(Some("etcd"), Some("kill")));
        assert!(!e.matches(Some("etcd"), Some("clock")));
        let empty = Entry {
            pairs: Vec::new(),
            ..e
        };
        assert!(empty.matches(None, None));
        assert!(!empty.matches(Some("raft"), None));
    }

    #[test]
    fn json_as_text() {
        assert_eq!(text(&json!(9.126743611)), "9.1");
        assert_eq!(
            text(&json!(11785051293656899585u64)),
            "11785051293656899585"
        );
        assert_eq!(text(&json!(-3)), "-3");
        assert_eq!(text(&json!("a")), "a");
        assert_eq!(text(&json!(null)), "");
        assert_eq!(text(&json!(["n1"])), "[\"n1\"]");
    }

    #[test]
    fn cell_verdicts() {
        assert_eq!(verdict_of(&json!({"verdict": "invalid"})), "invalid");
        assert_eq!(verdict_of(&json!({"ok": true})), "pass");
        assert_eq!(verdict_of(&json!({"ok": false})), "fail");
        assert_eq!(
            Class::of("violation"),
            Class::Unknown,
            "not a word Stasis writes"
        );
        assert_eq!(verdict_of(&json!({})), "");
        let doc = json!({"cells": [{"verdict": "linearizable"}, {"verdict": "error"}]});
        assert_eq!(
            group_verdict(&doc, Kind::Campaign),
            ("unknown: 1 of 2 valid".to_owned(), Class::Unknown)
        );
        let doc = json!({"exit_code": 1, "cells": [{"verdict": "valid"}, {"verdict": "invalid"}, {"verdict": "skipped"}]});
        assert_eq!(
            group_verdict(&doc, Kind::Campaign),
            ("invalid: 1 of 3 valid".to_owned(), Class::Invalid)
        );
        let doc = json!({"exit_code": null, "cells": []});
        assert_eq!(
            group_verdict(&doc, Kind::Campaign),
            ("running".to_owned(), Class::None)
        );
        let doc = json!({"exit_code": 0, "runs": 2, "cases": [{"ok": true}, {"ok": true}]});
        assert_eq!(
            group_verdict(&doc, Kind::Selftest),
            ("pass: 2 of 2 cases ok".to_owned(), Class::Valid)
        );
        assert_eq!(
            group_verdict(&json!({"exit_code": 3}), Kind::Selftest).1,
            Class::Unknown
        );
        assert_eq!(
            group_verdict(&json!({"verdict": "fail"}), Kind::Campaign).1,
            Class::Invalid
        );
        assert_eq!(group_verdict(&json!({}), Kind::Campaign).1, Class::None);
        assert_eq!(
            display_time("2026-11-22T20:00:00Z"),
            "2026-11-22 20:00:00 UTC"
        );
        assert_eq!(display_time("yesterday"), "yesterday");
    }
}

//! JUnit XML for a campaign: one `<testcase>` per run, so CI servers show a campaign like
//! a test suite.
//!
//! Shape (what Jenkins, GitLab and the common GitHub report actions read):
//! `<testsuites>` with the totals, one `<testsuite>` with the same totals, and per run a
//! `<testcase name classname time>` holding `<failure>` (not linearizable, or unknown),
//! `<error>` (harness error) or `<skipped>` (not run: budget or interrupt), and a
//! `<system-out>` with the run directory.

use std::fmt::Write as _;

use super::record::{CampaignRecord, CellRecord, Verdict};

/// Escapes text for XML content and attribute values; drops characters XML 1.0 cannot
/// carry (control characters other than tab, newline and carriage return).
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Keep line breaks in attributes as line breaks (parsers normalise raw ones).
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            '\t' => out.push_str("&#9;"),
            c if (c as u32) < 0x20 => {}
            '\u{FFFE}' | '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}

/// Escapes element text (line breaks kept literal, so the body stays readable).
fn escape_text(s: &str) -> String {
    escape(s)
        .replace("&#10;", "\n")
        .replace("&#13;", "")
        .replace("&#9;", "\t")
}

/// `20261123T094500.123Z` (store timestamps) to `2026-11-23T09:45:00` (JUnit's form).
pub fn iso_timestamp(store_ts: &str) -> String {
    let b = store_ts.as_bytes();
    if b.len() >= 15 && b[8] == b'T' && b[..8].iter().chain(&b[9..15]).all(u8::is_ascii_digit) {
        format!(
            "{}-{}-{}T{}:{}:{}",
            &store_ts[0..4],
            &store_ts[4..6],
            &store_ts[6..8],
            &store_ts[9..11],
            &store_ts[11..13],
            &store_ts[13..15]
        )
    } else {
        store_ts.to_owned()
    }
}

/// The test case name of a run within its class (`system/nemesis/workload`).
pub fn case_name(c: &CellRecord) -> String {
    format!("n{} seed {}", c.nodes, c.seed)
}

pub fn class_name(c: &CellRecord) -> String {
    format!("{}/{}/{}", c.system, c.nemesis, c.workload)
}

/// Totals over the runs: (tests, failures, errors, skipped, time).
pub fn totals(cells: &[CellRecord]) -> (usize, usize, usize, usize, f64) {
    let count = |f: &dyn Fn(Verdict) -> bool| cells.iter().filter(|c| f(c.verdict)).count();
    (
        cells.len(),
        count(&|v| matches!(v, Verdict::Invalid | Verdict::Unknown)),
        count(&|v| v == Verdict::Error),
        count(&|v| v == Verdict::Skipped),
        cells.iter().map(|c| c.time_s).sum(),
    )
}

/// The whole junit.xml document.
pub fn render(rec: &CampaignRecord) -> String {
    let (tests, failures, errors, skipped, time) = totals(&rec.cells);
    let counts = format!(
        "tests=\"{tests}\" failures=\"{failures}\" errors=\"{errors}\" skipped=\"{skipped}\" time=\"{time:.3}\""
    );
    let mut x = String::new();
    x.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        x,
        "<testsuites name=\"{}\" {counts}>",
        escape(&format!("stasis campaign {}", rec.name))
    );
    let _ = writeln!(
        x,
        "  <testsuite name=\"{}\" {counts} timestamp=\"{}\">",
        escape(&rec.name),
        escape(&iso_timestamp(&rec.started))
    );
    let _ = writeln!(x, "    <properties>");
    for (k, v) in [
        ("campaign_file", rec.file.as_str()),
        ("campaign_dir", rec.dir.as_str()),
        ("stasis_version", rec.stasis_version.as_str()),
    ] {
        let _ = writeln!(
            x,
            "      <property name=\"{}\" value=\"{}\"/>",
            escape(k),
            escape(v)
        );
    }
    let _ = writeln!(x, "    </properties>");
    for c in &rec.cells {
        let _ = write!(
            x,
            "    <testcase name=\"{}\" classname=\"{}\" time=\"{:.3}\">",
            escape(&case_name(c)),
            escape(&class_name(c)),
            c.time_s
        );
        let run = c.run_dir.as_deref().unwrap_or("(no run directory)");
        let sentence = c.explanation.as_deref().unwrap_or("");
        let body = match &c.detail {
            Some(d) if !d.is_empty() => format!("run: {run}\n\n{d}"),
            _ => format!("run: {run}"),
        };
        match c.verdict {
            Verdict::Valid => {}
            Verdict::Invalid => {
                let _ = write!(
                    x,
                    "\n      <failure message=\"{}\" type=\"not-linearizable\">{}</failure>",
                    escape(sentence),
                    escape_text(&body)
                );
            }
            Verdict::Unknown => {
                let _ = write!(
                    x,
                    "\n      <failure message=\"{}\" type=\"unknown\">{}</failure>",
                    escape(&format!("the checker could not decide: {sentence}")),
                    escape_text(&body)
                );
            }
            Verdict::Error => {
                let _ = write!(
                    x,
                    "\n      <error message=\"{}\" type=\"harness-error\">{}</error>",
                    escape(sentence),
                    escape_text(&body)
                );
            }
            Verdict::Skipped => {
                let _ = write!(x, "\n      <skipped message=\"{}\"/>", escape(sentence));
            }
        }
        if let Some(dir) = &c.run_dir {
            let _ = write!(
                x,
                "\n      <system-out>run: {}</system-out>",
                escape_text(dir)
            );
        }
        x.push_str(if c.verdict == Verdict::Valid && c.run_dir.is_none() {
            "</testcase>\n"
        } else {
            "\n    </testcase>\n"
        });
    }
    x.push_str("  </testsuite>\n</testsuites>\n");
    x
}

#[cfg(test)]
mod tests {
    use super::super::record::sample_record;
    use super::*;

    fn attr<'a>(n: roxmltree::Node<'a, 'a>, name: &str) -> &'a str {
        n.attribute(name)
            .unwrap_or_else(|| panic!("<{}> has no {name}", n.tag_name().name()))
    }

    #[test]
    fn junit_has_the_schema_shape() {
        let xml = render(&sample_record());
        let doc = roxmltree::Document::parse(&xml).expect("well-formed XML");
        let root = doc.root_element();
        assert_eq!(root.tag_name().name(), "testsuites");
        let suites: Vec<_> = root.children().filter(|n| n.is_element()).collect();
        assert_eq!(suites.len(), 1);
        let suite = suites[0];
        assert_eq!(suite.tag_name().name(), "testsuite");
        for n in [root, suite] {
            assert_eq!(attr(n, "tests"), "5");
            assert_eq!(attr(n, "failures"), "2");
            assert_eq!(attr(n, "errors"), "1");
            assert_eq!(attr(n, "skipped"), "1");
            // 1.25 * (1 + 2 + 3 + 4 + 5)
            assert_eq!(attr(n, "time"), "18.750");
        }
        assert_eq!(attr(suite, "name"), "night\"ly");
        assert_eq!(attr(suite, "timestamp"), "2026-11-23T09:45:00");
        let props: Vec<_> = suite
            .children()
            .filter(|n| n.has_tag_name("properties"))
            .collect();
        assert_eq!(props.len(), 1);
        let cases: Vec<_> = suite
            .children()
            .filter(|n| n.has_tag_name("testcase"))
            .collect();
        assert_eq!(cases.len(), 5);
        let only = |n: roxmltree::Node, tag: &str| -> Vec<String> {
            n.children()
                .filter(|c| c.is_element() && c.tag_name().name() != "system-out")
                .map(|c| {
                    assert_eq!(c.tag_name().name(), tag);
                    c.tag_name().name().to_owned()
                })
                .collect()
        };
        for (i, c) in cases.iter().enumerate() {
            assert_eq!(attr(*c, "classname"), "raft/kill,partition/w<&>\"'");
            assert_eq!(attr(*c, "name"), format!("n3 seed {}", 40 + i));
            assert_eq!(attr(*c, "time"), format!("{:.3}", 1.25 * (i + 1) as f64));
        }
        assert!(only(cases[0], "").is_empty());
        assert_eq!(only(cases[1], "failure").len(), 1);
        assert_eq!(only(cases[2], "failure").len(), 1);
        assert_eq!(only(cases[3], "error").len(), 1);
        assert_eq!(only(cases[4], "skipped").len(), 1);

        let failure = cases[1]
            .children()
            .find(|n| n.has_tag_name("failure"))
            .unwrap();
        assert_eq!(
            attr(failure, "message"),
            "read of \"k1\" saw 3 <stale> & gone"
        );
        assert_eq!(attr(failure, "type"), "not-linearizable");
        let body = failure.text().unwrap();
        assert!(body.starts_with("run: /s/runs/r1&<x>\n"), "{body}");
        // The control character is dropped, the rest kept.
        assert!(body.contains("line one\nline <two> &  three"), "{body:?}");
        let unknown = cases[2]
            .children()
            .find(|n| n.has_tag_name("failure"))
            .unwrap();
        assert_eq!(attr(unknown, "type"), "unknown");
        assert!(attr(unknown, "message").contains("key k2: timeout"));
        let error = cases[3]
            .children()
            .find(|n| n.has_tag_name("error"))
            .unwrap();
        assert_eq!(attr(error, "message"), "node n1 exited: bad flag '--x'");
        assert!(error.text().unwrap().contains("/s/runs/r3&<x>"));
        let skipped = cases[4]
            .children()
            .find(|n| n.has_tag_name("skipped"))
            .unwrap();
        assert_eq!(attr(skipped, "message"), "the budget ran out");
        let out = cases[0]
            .children()
            .find(|n| n.has_tag_name("system-out"))
            .unwrap();
        assert_eq!(out.text(), Some("run: /s/runs/r0&<x>"));
    }

    #[test]
    fn escaping() {
        assert_eq!(escape("a<b>&\"c'"), "a&lt;b&gt;&amp;&quot;c&apos;");
        assert_eq!(escape("x\u{0}\u{7}y\u{FFFF}"), "xy");
        assert_eq!(escape("two\nlines"), "two&#10;lines");
        assert_eq!(
            escape_text("two\nlines & <tab>\t"),
            "two\nlines &amp; &lt;tab&gt;\t"
        );
        // A multi-line message survives an attribute round trip.
        let xml = format!("<a m=\"{}\"/>", escape("one\ntwo"));
        let doc = roxmltree::Document::parse(&xml).unwrap();
        assert_eq!(doc.root_element().attribute("m"), Some("one\ntwo"));
    }

    #[test]
    fn empty_campaign_is_still_valid_xml() {
        let mut r = sample_record();
        r.cells.clear();
        let xml = render(&r);
        let doc = roxmltree::Document::parse(&xml).unwrap();
        assert_eq!(doc.root_element().attribute("tests"), Some("0"));
    }

    #[test]
    fn timestamps() {
        assert_eq!(iso_timestamp("20261123T094500.123Z"), "2026-11-23T09:45:00");
        assert_eq!(
            iso_timestamp("20261123T094500.123Z-2"),
            "2026-11-23T09:45:00"
        );
        assert_eq!(iso_timestamp("garbage"), "garbage");
    }
}

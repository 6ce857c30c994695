//! Plots and report.html of a known run: a hand-made history with client operations and
//! four nemesis intervals (kill, partition, a clock strobe and a clock bump) is analyzed
//! through `analyze_run`, and the files it writes are parsed back: the SVGs as XML, the
//! PNGs decoded, the shaded intervals counted in both, and report.html's links checked.

use std::path::Path;
use std::time::Duration;

use harness::analyze::analyze_run;
use harness::plot::{LANE_H, SIZE, fault_colour, fault_shade};
use serde_json::{Value, json};

/// (kind, start s, stop s, start value, stop value)
fn faults() -> Vec<(&'static str, f64, f64, Value, Value)> {
    vec![
        ("kill", 2.0, 4.0, json!(["n1"]), json!(["n1"])),
        (
            "partition",
            6.0,
            8.0,
            json!({"grudge": {"n1": ["n2", "n3"]}, "shape": "isolate-one"}),
            json!("healed"),
        ),
        (
            "clock",
            10.0,
            12.0,
            json!({"nodes": ["n3"], "offset_ms": 7000, "period_ms": 100}),
            json!(["n3"]),
        ),
        (
            "clock",
            14.0,
            15.5,
            json!({"nodes": ["n2"], "offset_ms": -5000}),
            json!(["n2"]),
        ),
    ]
}

/// A linearizable history: one client at a time, writes of fresh values and reads of the
/// last written one; every 17th operation is a failed write, every 29th a write that timed
/// out (info, and never took effect), which moves the client to a new process id.
fn history(nemesis: bool) -> Vec<Value> {
    let mut events: Vec<Value> = Vec::new();
    let mut t: u64 = 0;
    let mut process = 0u64;
    let mut last = [Value::Null, Value::Null, Value::Null];
    let mut i = 0u64;
    while t < 17_000_000_000 {
        let k = (i % 3) as usize;
        let key = format!("k{k}");
        let latency = (1 + i % 7) * 1_000_000 + (i % 5) * 300_000;
        let (f, value, outcome, ret) = if i % 29 == 28 {
            ("write", json!(i), "info", json!(i))
        } else if i % 17 == 16 {
            ("write", json!(i), "fail", json!(i))
        } else if i.is_multiple_of(2) {
            ("write", json!(i), "ok", json!(i))
        } else {
            ("read", Value::Null, "ok", last[k].clone())
        };
        let latency = if outcome == "info" {
            500_000_000
        } else {
            latency
        };
        events.push(json!({"time": t, "process": process, "type": "invoke", "f": f, "key": key, "value": value}));
        let mut done = json!({"time": t + latency, "process": process, "type": outcome, "f": f, "key": key, "value": ret});
        if outcome == "info" {
            done["error"] = json!("timeout");
            process += 1;
        } else if outcome == "ok" && f == "write" {
            last[k] = json!(i);
        }
        events.push(done);
        t += latency + 20_000_000;
        i += 1;
    }
    if nemesis {
        for (kind, start, stop, v0, v1) in faults() {
            for (at, phase, v) in [(start, "start", v0), (stop, "stop", v1)] {
                events.push(json!({"time": (at * 1e9) as u64, "process": "nemesis", "type": "info", "f": format!("{phase}-{kind}"), "value": v}));
            }
        }
    }
    events.sort_by_key(|e| e["time"].as_u64().unwrap());
    for (n, e) in events.iter_mut().enumerate() {
        e["index"] = json!(n);
    }
    events
}

fn write_run(dir: &Path, events: &[Value]) {
    let lines: Vec<String> = events.iter().map(Value::to_string).collect();
    std::fs::write(dir.join("history.jsonl"), lines.join("\n") + "\n").unwrap();
    std::fs::write(
        dir.join("test.json"),
        json!({"nodes": ["n1", "n2", "n3"], "seed": 7, "args": {"sut": "raft", "time_limit": {"secs": 17, "nanos": 0}}}).to_string(),
    )
    .unwrap();
}

fn hex(c: plotters::style::RGBColor) -> String {
    format!("#{:02X}{:02X}{:02X}", c.0, c.1, c.2)
}

/// Parses an SVG and counts the filled rects of each colour.
fn svg_rects(path: &Path) -> (roxmltree::Document<'static>, Vec<String>) {
    let text: &'static str = Box::leak(std::fs::read_to_string(path).unwrap().into_boxed_str());
    let doc = roxmltree::Document::parse(text)
        .unwrap_or_else(|e| panic!("{} is not well-formed XML: {e}", path.display()));
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "svg", "{}", path.display());
    let w: f64 = root.attribute("width").unwrap().parse().unwrap();
    let h: f64 = root.attribute("height").unwrap().parse().unwrap();
    assert!(w > 0.0 && h > 0.0);
    let fills = doc
        .descendants()
        .filter(|n| n.has_tag_name("rect"))
        .filter_map(|n| n.attribute("fill").map(str::to_owned))
        .collect();
    (doc, fills)
}

fn count(fills: &[String], c: plotters::style::RGBColor) -> usize {
    fills.iter().filter(|f| **f == hex(c)).count()
}

struct Png {
    w: usize,
    h: usize,
    rgb: Vec<u8>,
}

impl Png {
    fn read(path: &Path) -> Png {
        let decoder =
            png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
        let mut reader = decoder
            .read_info()
            .unwrap_or_else(|e| panic!("{} is not a PNG: {e}", path.display()));
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!(info.color_type, png::ColorType::Rgb);
        assert!(info.width > 0 && info.height > 0);
        buf.truncate(info.buffer_size());
        Png {
            w: info.width as usize,
            h: info.height as usize,
            rgb: buf,
        }
    }

    fn px(&self, x: usize, y: usize) -> (u8, u8, u8) {
        let i = (y * self.w + x) * 3;
        (self.rgb[i], self.rgb[i + 1], self.rgb[i + 2])
    }

    /// Runs of the given colours along row `y` of the chart column (left of the legend),
    /// as the colour of each run in order.
    fn runs(&self, y: usize, colours: &[(u8, u8, u8)]) -> Vec<(u8, u8, u8)> {
        let mut out = Vec::new();
        let mut prev = None;
        for x in 0..self.w - 210 {
            let p = self.px(x, y);
            let hit = colours.contains(&p).then_some(p);
            if hit.is_some() && hit != prev {
                out.push(p);
            }
            prev = hit;
        }
        out
    }
}

fn rgb(c: plotters::style::RGBColor) -> (u8, u8, u8) {
    (c.0, c.1, c.2)
}

/// The fault lane's row: the row with the most runs of solid fault colours.
fn lane_row(png: &Png, solid: &[(u8, u8, u8)]) -> usize {
    (0..png.h)
        .max_by_key(|&y| (png.runs(y, solid).len(), std::cmp::Reverse(y)))
        .unwrap()
}

#[test]
fn plots_of_a_known_run_shade_every_fault_in_svg_and_png() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_run(dir, &history(true));
    let report = analyze_run(dir, None, None, Duration::from_secs(30)).unwrap();
    assert_eq!(report.exit_code, 0, "{}", report.summary_text);
    assert_eq!(report.windows.len(), 4);

    let kinds = ["kill", "partition", "clock", "clock"];
    let solid: Vec<_> = ["kill", "partition", "clock"]
        .iter()
        .map(|k| rgb(fault_colour(k)))
        .collect();
    let pale: Vec<_> = ["kill", "partition", "clock"]
        .iter()
        .map(|k| rgb(fault_shade(k)))
        .collect();
    let expected: Vec<_> = kinds.iter().map(|k| rgb(fault_colour(k))).collect();
    let expected_pale: Vec<_> = kinds.iter().map(|k| rgb(fault_shade(k))).collect();

    for stem in ["latency", "throughput"] {
        let (_doc, fills) = svg_rects(&dir.join(format!("{stem}.svg")));
        // Shading: one pale rect per interval.
        assert_eq!(count(&fills, fault_shade("kill")), 1, "{stem}");
        assert_eq!(count(&fills, fault_shade("partition")), 1, "{stem}");
        assert_eq!(count(&fills, fault_shade("clock")), 2, "{stem}");
        // Lane bars: one solid rect per interval, plus one legend swatch per kind.
        assert_eq!(count(&fills, fault_colour("kill")), 2, "{stem}");
        assert_eq!(count(&fills, fault_colour("partition")), 2, "{stem}");
        assert_eq!(count(&fills, fault_colour("clock")), 3, "{stem}");

        let png = Png::read(&dir.join(format!("{stem}.png")));
        assert_eq!((png.w as u32, png.h as u32), SIZE);
        let y = lane_row(&png, &solid);
        assert_eq!(png.runs(y, &solid), expected, "{stem}: lane row {y}");
        // Just below the lane the plot has headroom without data: the pale shading shows.
        let below = y + LANE_H as usize;
        assert_eq!(png.runs(below, &pale), expected_pale, "{stem}: row {below}");
        // The shading spans the same columns as the lane bars (within a pixel).
        let span = |row: usize, c: (u8, u8, u8)| {
            let xs: Vec<usize> = (0..png.w - 210).filter(|&x| png.px(x, row) == c).collect();
            (xs[0], *xs.last().unwrap())
        };
        let (a, b) = span(y, rgb(fault_colour("kill")));
        let (c, d) = span(below, rgb(fault_shade("kill")));
        assert!(
            a.abs_diff(c) <= 2 && b.abs_diff(d) <= 2,
            "{a}-{b} vs {c}-{d}"
        );
        assert!(
            (b - a) as f64 > 0.08 * png.w as f64,
            "kill bar {a}-{b} too narrow"
        );
    }

    // The clock plot: one panel per node, each shading all four intervals; one strobe band
    // (on n3's panel) plus its legend swatch.
    let (doc, fills) = svg_rects(&dir.join("clock.svg"));
    assert_eq!(count(&fills, fault_shade("kill")), 3);
    assert_eq!(count(&fills, fault_shade("clock")), 6);
    let bands = doc
        .descendants()
        .filter(|n| n.has_tag_name("rect") && n.attribute("opacity") == Some("0.35"))
        .count();
    assert_eq!(bands, 2);
    let texts: Vec<&str> = doc
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text())
        .collect();
    for label in ["n1 offset (s)", "n2 offset (s)", "n3 offset (s)"] {
        assert!(texts.iter().any(|t| t.contains(label)), "no {label:?}");
    }
    assert!(
        texts
            .iter()
            .any(|t| t.contains("strobe 0 ↔ +7 s every 100 ms")),
        "{texts:?}"
    );
    let png = Png::read(&dir.join("clock.png"));
    assert_eq!(png.w as u32, SIZE.0);
    assert!(png.h > 3 * 100);

    check_report(dir);
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(html.contains("class=\"verdict v-linearizable\""));
    for f in ["latency.png", "throughput.png", "clock.png"] {
        assert!(html.contains(&format!("<img src=\"{f}\"")), "{f}");
    }
    // The fault timeline lists every nemesis event.
    assert_eq!(html.matches("start-clock").count(), 2);
    assert!(html.contains("start-partition") && html.contains("stop-kill"));
    assert!(html.contains("17 s"), "time limit shown");
}

/// report.html fetches nothing from outside and every link names a file of the run.
fn check_report(dir: &Path) {
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(!html.contains("http://") && !html.contains("https://"));
    let mut links = 0;
    for attr in ["src=\"", "href=\""] {
        for part in html.split(attr).skip(1) {
            let target = &part[..part.find('"').unwrap()];
            assert!(
                !target.starts_with('/') && !target.contains("..") && !target.contains(':'),
                "{target}"
            );
            assert!(
                dir.join(target).is_file(),
                "report links to missing {target}"
            );
            links += 1;
        }
    }
    assert!(links >= 6, "{links} links");
}

#[test]
fn a_violation_report_carries_the_explanation_and_timeline() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let events = vec![
        json!({"index": 0, "time": 1_000_000, "process": 0, "type": "invoke", "f": "write", "key": "k", "value": 1}),
        json!({"index": 1, "time": 2_000_000, "process": 0, "type": "ok", "f": "write", "key": "k", "value": 1}),
        json!({"index": 2, "time": 3_000_000, "process": 1, "type": "invoke", "f": "read", "key": "k", "value": null}),
        json!({"index": 3, "time": 4_000_000, "process": 1, "type": "ok", "f": "read", "key": "k", "value": 2}),
    ];
    write_run(dir, &events);
    // A run without clock faults gets no clock plot.
    let report = analyze_run(dir, None, None, Duration::from_secs(30)).unwrap();
    assert_eq!(report.exit_code, 1);
    for f in [
        "latency.svg",
        "latency.png",
        "throughput.svg",
        "throughput.png",
    ] {
        assert!(dir.join(f).is_file(), "{f}");
    }
    assert!(!dir.join("clock.svg").exists() && !dir.join("clock.png").exists());
    let (_, fills) = svg_rects(&dir.join("latency.svg"));
    assert_eq!(count(&fills, fault_shade("kill")), 0);
    Png::read(&dir.join("throughput.png"));

    check_report(dir);
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(html.contains("class=\"verdict v-not-linearizable\""));
    assert!(html.contains("<iframe src=\"timeline.html\""));
    let explanation = std::fs::read_to_string(dir.join("explanation.txt")).unwrap();
    let first = explanation.lines().next().unwrap();
    assert!(
        html.contains(&checker::report::esc(first)),
        "report lacks the explanation's first line {first:?}"
    );
    assert!(html.contains("No faults were injected."));
}

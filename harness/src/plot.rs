//! Run plots, written by [`crate::analyze::analyze_run`] into every run directory as SVG
//! and PNG:
//!
//! - `latency.svg/.png`: each client operation's latency (completion − invocation) at its
//!   invocation time, log scale, coloured by function (read/write/cas), marker by outcome
//!   (● ok, × fail, ▲ info);
//! - `throughput.svg/.png`: completions per second by outcome;
//! - `clock.svg/.png` (runs with clock faults only): each node's wall-clock offset over
//!   time, one panel per node.
//!
//! Every plot shades the nemesis intervals in a pale colour per fault kind and repeats
//! them as solid bars in a lane along the top of the plotting area, above the data, so a
//! fault stays visible where points pile up. Fault kinds are `start-X`/`stop-X` pairs; kinds
//! without a colour of their own get grey.
//!
//! Big histories are thinned, never sampled at random: the latency plot keeps one marker
//! per 2×2-pixel cell for each function and outcome (so every visible position, outliers
//! included, is still drawn), coarsening the cells only when more than [`MAX_MARKERS`]
//! would remain; the throughput plot uses at most 600 time buckets (1 s each for runs up
//! to 10 minutes). The legend says how many markers were drawn out of how many operations.
//!
//! No system fonts: text is laid out with DejaVu Sans, bundled in `harness/assets/`.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::OnceLock;

use anyhow::{Context, Result, anyhow};
use checker::history::{Op, OpType, Process};
use plotters::coord::Shift;
use plotters::prelude::*;
use serde_json::Value;

use crate::record::FaultWindow;

static FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");
const FAMILY: &str = "sans-serif";

/// Width and height of the latency and throughput plots, pixels.
pub const SIZE: (u32, u32) = (1100, 520);
/// Width of the legend column on the right of every plot.
const LEGEND_W: u32 = 210;
/// Height of the fault lane along the top of the plotting area.
pub const LANE_H: i32 = 10;
/// Thinning grid of the latency plot (cells across the plotting area).
const CELLS: (f64, f64) = (450.0, 200.0);
/// Most latency markers drawn (the thinning grid is coarsened until they fit).
pub const MAX_MARKERS: usize = 25_000;
/// Most time buckets of the throughput plot.
const MAX_BUCKETS: f64 = 600.0;

const READ: RGBColor = RGBColor(31, 119, 180);
const WRITE: RGBColor = RGBColor(44, 160, 44);
const CAS: RGBColor = RGBColor(140, 86, 75);
const OTHER_F: [RGBColor; 3] = [
    RGBColor(0, 0, 0),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
];
const OK: RGBColor = RGBColor(31, 119, 180);
const FAIL: RGBColor = RGBColor(227, 119, 194);
const INFO: RGBColor = RGBColor(140, 86, 75);
const LANE_NOTE: &str = "faults (shaded; bars on top):";
const INK: RGBColor = RGBColor(40, 40, 40);
const GRID: RGBColor = RGBColor(225, 225, 225);

/// The solid colour of a fault kind (lane bars, legend swatches).
pub fn fault_colour(kind: &str) -> RGBColor {
    match kind {
        "kill" => RGBColor(214, 39, 40),
        "pause" => RGBColor(148, 103, 189),
        "partition" => RGBColor(255, 127, 14),
        "clock" => RGBColor(23, 190, 207),
        "membership" => RGBColor(188, 189, 34),
        "disk" => RGBColor(44, 160, 44),
        "net" => RGBColor(0, 110, 90),
        _ => RGBColor(127, 127, 127),
    }
}

/// The pale colour a fault kind's interval is shaded with (its solid colour at 22% on
/// white), opaque so the shading is the same pixel colour in SVG and PNG.
pub fn fault_shade(kind: &str) -> RGBColor {
    let RGBColor(r, g, b) = fault_colour(kind);
    let pale = |c: u8| 255 - ((255 - c as u32) * 22 / 100) as u8;
    RGBColor(pale(r), pale(g), pale(b))
}

fn f_colour(f: &str, k: usize) -> RGBColor {
    match f {
        "read" => READ,
        "write" => WRITE,
        "cas" => CAS,
        _ => OTHER_F[k % OTHER_F.len()],
    }
}

fn font() -> Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED
        .get_or_init(|| plotters::style::register_font(FAMILY, FontStyle::Normal, FONT).is_ok());
    if ok {
        Ok(())
    } else {
        Err(anyhow!(
            "the bundled font harness/assets/DejaVuSans.ttf is not a valid TrueType font"
        ))
    }
}

fn pe<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow!("drawing failed: {e}")
}

/// A fault interval in seconds.
#[derive(Clone, Debug, PartialEq)]
pub struct Interval {
    pub kind: String,
    pub start: f64,
    /// `None`: never stopped (the run ended first).
    pub stop: Option<f64>,
    pub value: Value,
}

impl Interval {
    fn end(&self, t_end: f64) -> f64 {
        self.stop.unwrap_or(t_end).max(self.start)
    }
}

/// One client operation's latency.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    /// Invocation time, s.
    pub t: f64,
    /// Completion − invocation, ms.
    pub ms: f64,
    /// Index into [`Data::functions`].
    pub f: u16,
    pub kind: OpType,
}

/// Everything the plots draw, taken from one pass over the history.
#[derive(Debug, Default)]
pub struct Data {
    pub samples: Vec<Sample>,
    /// Function names in legend order (read, write, cas, then others by first use).
    pub functions: Vec<String>,
    /// Client completions: (time s, outcome).
    pub completions: Vec<(f64, OpType)>,
    pub faults: Vec<Interval>,
    /// Last event's time, s (at least 1).
    pub t_end: f64,
}

impl Data {
    pub fn new(ops: &[Op], windows: &[FaultWindow]) -> Data {
        let mut d = Data {
            functions: vec!["read".into(), "write".into(), "cas".into()],
            ..Data::default()
        };
        let mut index: HashMap<&str, u16> = [("read", 0), ("write", 1), ("cas", 2)].into();
        let mut open: HashMap<u64, (u64, u16)> = HashMap::new();
        let mut t_end = 0u64;
        for op in ops {
            t_end = t_end.max(op.time);
            let Process::Client(p) = op.process else {
                continue;
            };
            let f = match index.get(op.f.as_str()) {
                Some(&i) => i,
                None => {
                    let i = d.functions.len() as u16;
                    d.functions.push(op.f.clone());
                    index.insert(&op.f, i);
                    i
                }
            };
            if op.kind == OpType::Invoke {
                open.insert(p, (op.time, f));
                continue;
            }
            d.completions.push((op.time as f64 / 1e9, op.kind));
            if let Some((call, f)) = open.remove(&p) {
                d.samples.push(Sample {
                    t: call as f64 / 1e9,
                    ms: op.time.saturating_sub(call) as f64 / 1e6,
                    f,
                    kind: op.kind,
                });
            }
        }
        d.t_end = (t_end as f64 / 1e9).max(1.0);
        d.faults = windows
            .iter()
            .map(|w| Interval {
                kind: w.f.clone(),
                start: w.start_ns as f64 / 1e9,
                stop: w.stop_ns.map(|t| t as f64 / 1e9),
                value: w.value.clone(),
            })
            .collect();
        d
    }

    /// Fault kinds present, in first-start order.
    pub fn fault_kinds(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for f in &self.faults {
            if !out.contains(&f.kind.as_str()) {
                out.push(&f.kind);
            }
        }
        out
    }
}

/// The latency plot's y range (ms, log scale), with headroom above the slowest operation
/// so the fault lane never hides a marker.
fn latency_range(samples: &[Sample]) -> (f64, f64) {
    let (lo, hi) = samples
        .iter()
        .fold((f64::MAX, 0f64), |(lo, hi), s| (lo.min(s.ms), hi.max(s.ms)));
    if samples.is_empty() {
        return (0.1, 1000.0);
    }
    let lo = (lo * 0.8).max(0.01);
    let hi = (hi * 1.25).max(lo * 10.0);
    let span = hi.log10() - lo.log10();
    (lo, 10f64.powf(hi.log10() + span * 0.06))
}

/// Thins the latency samples: keeps the first sample of each (x cell, y cell, function,
/// outcome) on a grid over the plotting area (log y). The grid starts at [`CELLS`] (about
/// 2×2 pixels, so only markers drawn on top of each other are dropped) and is coarsened
/// until at most [`MAX_MARKERS`] remain, which keeps the SVG small for million-operation
/// histories. Every occupied cell keeps a marker, so outliers always survive. Returns the
/// kept samples and the cell size in pixels of the 900×430 plotting area.
pub fn thin(samples: &[Sample], t_end: f64, (lo, hi): (f64, f64)) -> (Vec<Sample>, f64) {
    let (llo, lspan) = (lo.log10(), (hi.log10() - lo.log10()).max(1e-9));
    let mut scale = 1.0;
    loop {
        let (nx, ny) = (CELLS.0 / scale, CELLS.1 / scale);
        let mut seen: HashSet<(u32, u32, u16, u8)> = HashSet::new();
        let kept: Vec<Sample> = samples
            .iter()
            .filter(|s| {
                let cx = (s.t / t_end * nx).clamp(0.0, nx) as u32;
                let cy = ((s.ms.max(lo).log10() - llo) / lspan * ny).clamp(0.0, ny) as u32;
                seen.insert((cx, cy, s.f, s.kind as u8))
            })
            .copied()
            .collect();
        if kept.len() <= MAX_MARKERS || scale >= 8.0 {
            return (kept, 2.0 * scale);
        }
        scale *= 1.5;
    }
}

/// Completions per second by outcome in one time bucket.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Bucket {
    /// Bucket start, s.
    pub start: f64,
    /// Bucket width, s: the nominal width, except for the last bucket, which ends at the
    /// last event (so the run's end does not look like a drop in throughput).
    pub width: f64,
    pub ok: f64,
    pub fail: f64,
    pub info: f64,
}

impl Bucket {
    /// Completions per second of one outcome.
    pub fn rate(&self, kind: OpType) -> f64 {
        match kind {
            OpType::Ok => self.ok,
            OpType::Fail => self.fail,
            OpType::Info => self.info,
            OpType::Invoke => 0.0,
        }
    }
}

/// Completions per second by outcome, in buckets of 1 s (wider for long runs, so there
/// are at most [`MAX_BUCKETS`]). The last bucket covers only up to `t_end`; if that is
/// less than half a bucket it is folded into the one before. Returns the nominal width and
/// the buckets.
pub fn throughput(completions: &[(f64, OpType)], t_end: f64) -> (f64, Vec<Bucket>) {
    let width = (t_end / MAX_BUCKETS).max(1.0).ceil();
    let mut n = ((t_end / width).ceil() as usize).max(1);
    if n > 1 && t_end - (n - 1) as f64 * width < width / 2.0 {
        n -= 1;
    }
    let mut b: Vec<Bucket> = (0..n)
        .map(|k| Bucket {
            start: k as f64 * width,
            width,
            ..Bucket::default()
        })
        .collect();
    if let Some(last) = b.last_mut() {
        last.width = (t_end - last.start).max(1e-9);
    }
    for &(t, kind) in completions {
        let row = &mut b[((t / width) as usize).min(n - 1)];
        match kind {
            OpType::Ok => row.ok += 1.0,
            OpType::Fail => row.fail += 1.0,
            OpType::Info => row.info += 1.0,
            OpType::Invoke => {}
        }
    }
    for row in &mut b {
        row.ok /= row.width;
        row.fail /= row.width;
        row.info /= row.width;
    }
    (width, b)
}

/// A figure that can be drawn on either backend.
trait Figure {
    fn size(&self) -> (u32, u32);
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()>
    where
        DB::ErrorType: 'static;
}

fn write_figure(dir: &Path, stem: &str, fig: &impl Figure) -> Result<()> {
    let (w, h) = fig.size();
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (w, h)).into_drawing_area();
        fig.draw(&root)?;
        root.present().map_err(pe)?;
    }
    let path = dir.join(format!("{stem}.svg"));
    std::fs::write(&path, svg).with_context(|| format!("cannot write {}", path.display()))?;

    let mut rgb = vec![0u8; w as usize * h as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area();
        fig.draw(&root)?;
        root.present().map_err(pe)?;
    }
    let mut bytes = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut bytes, w, h);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        enc.set_compression(png::Compression::Fast);
        let mut wr = enc.write_header().map_err(pe)?;
        wr.write_image_data(&rgb).map_err(pe)?;
        wr.finish().map_err(pe)?;
    }
    let path = dir.join(format!("{stem}.png"));
    std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))
}

/// Shades every fault interval over the whole height of a chart.
fn shade<DB: DrawingBackend, Y: Ranged<ValueType = f64>>(
    chart: &mut ChartContext<'_, DB, Cartesian2d<plotters::coord::types::RangedCoordf64, Y>>,
    faults: &[Interval],
    t_end: f64,
    (lo, hi): (f64, f64),
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    chart
        .draw_series(faults.iter().map(|f| {
            Rectangle::new(
                [(f.start, lo), (f.end(t_end), hi)],
                fault_shade(&f.kind).filled(),
            )
        }))
        .map_err(pe)?;
    Ok(())
}

/// Draws the fault lane across the top of a chart's plotting area (pixel coordinates, so
/// it is the same height whatever the y scale), over the data.
fn lane<DB: DrawingBackend, Y: Ranged<ValueType = f64>>(
    chart: &ChartContext<'_, DB, Cartesian2d<plotters::coord::types::RangedCoordf64, Y>>,
    faults: &[Interval],
    t_end: f64,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let area = chart.plotting_area().strip_coord_spec();
    let (w, _) = area.dim_in_pixel();
    let x = |t: f64| ((t / t_end).clamp(0.0, 1.0) * w as f64).round() as i32;
    area.draw(&Rectangle::new(
        [(0, 0), (w as i32, LANE_H)],
        WHITE.filled(),
    ))
    .map_err(pe)?;
    area.draw(&PathElement::new(
        vec![(0, LANE_H), (w as i32, LANE_H)],
        GRID.stroke_width(1),
    ))
    .map_err(pe)?;
    for f in faults {
        let x0 = x(f.start);
        let x1 = x(f.end(t_end)).max(x0 + 2);
        area.draw(&Rectangle::new(
            [(x0, 1), (x1, LANE_H - 1)],
            fault_colour(&f.kind).filled(),
        ))
        .map_err(pe)?;
    }
    Ok(())
}

/// The legend column: a title and rows of (swatch, text).
enum Swatch {
    Box(RGBColor),
    Line(RGBColor),
    Marker(OpType),
    Band(RGBColor),
    None,
}

fn legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    rows: &[(Swatch, String)],
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let text = (FAMILY, 13).into_font().color(&INK);
    let mut y = 40;
    for (sw, label) in rows {
        let (cx, cy) = (14, y + 7);
        match sw {
            Swatch::Box(c) => area
                .draw(&Rectangle::new([(6, y + 1), (22, y + 13)], c.filled()))
                .map_err(pe)?,
            Swatch::Band(c) => area
                .draw(&Rectangle::new(
                    [(6, y + 1), (22, y + 13)],
                    c.mix(0.35).filled(),
                ))
                .map_err(pe)?,
            Swatch::Line(c) => area
                .draw(&PathElement::new(
                    vec![(6, cy), (22, cy)],
                    c.stroke_width(2),
                ))
                .map_err(pe)?,
            Swatch::Marker(kind) => draw_marker(area, (cx, cy), *kind, INK)?,
            Swatch::None => {}
        }
        let x = if matches!(sw, Swatch::None) { 6 } else { 28 };
        area.draw(&Text::new(label.clone(), (x, y), text.clone()))
            .map_err(pe)?;
        y += 19;
    }
    Ok(())
}

fn draw_marker<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    at: (i32, i32),
    kind: OpType,
    c: RGBColor,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    match kind {
        OpType::Fail => area.draw(&Cross::new(at, 4, c.stroke_width(1))),
        OpType::Info => area.draw(&TriangleMarker::new(at, 5, c.filled())),
        _ => area.draw(&Circle::new(at, 3, c.filled())),
    }
    .map_err(pe)
}

fn fault_rows(d: &Data, header: &str) -> Vec<(Swatch, String)> {
    let mut rows = Vec::new();
    if d.faults.is_empty() {
        rows.push((Swatch::None, "no faults".into()));
        return rows;
    }
    rows.push((Swatch::None, header.into()));
    for k in d.fault_kinds() {
        let n = d.faults.iter().filter(|f| f.kind == k).count();
        rows.push((Swatch::Box(fault_colour(k)), format!("{k} ×{n}")));
    }
    rows
}

fn caption<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
) -> Result<DrawingArea<DB, Shift>>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE).map_err(pe)?;
    root.titled(title, (FAMILY, 18).into_font().color(&INK))
        .map_err(pe)
}

struct Latency<'a> {
    d: &'a Data,
}

impl Figure for Latency<'_> {
    fn size(&self) -> (u32, u32) {
        SIZE
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()>
    where
        DB::ErrorType: 'static,
    {
        let d = self.d;
        let body = caption(root, "Latency of client operations (at invocation time)")?;
        let (w, _) = body.dim_in_pixel();
        let (main, side) = body.split_horizontally(w - LEGEND_W);
        let (lo, hi) = latency_range(&d.samples);
        let mut chart = ChartBuilder::on(&main)
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(0f64..d.t_end, (lo..hi).log_scale())
            .map_err(pe)?;
        shade(&mut chart, &d.faults, d.t_end, (lo, hi))?;
        chart
            .configure_mesh()
            .x_desc("time since start (s)")
            .y_desc("latency (ms, log scale)")
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_label_formatter(&|v| {
                if *v >= 1.0 {
                    format!("{v:.0}")
                } else {
                    format!("{v}")
                }
            })
            .label_style((FAMILY, 13).into_font().color(&INK))
            .axis_desc_style((FAMILY, 14).into_font().color(&INK))
            .bold_line_style(GRID.stroke_width(1))
            .light_line_style(TRANSPARENT)
            .draw()
            .map_err(pe)?;
        let (shown, cell) = thin(&d.samples, d.t_end, (lo, hi));
        // ok first, then the rarer fail and info on top.
        for kind in [OpType::Ok, OpType::Fail, OpType::Info] {
            for (fi, f) in d.functions.iter().enumerate() {
                let c = f_colour(f, fi);
                let pts = shown
                    .iter()
                    .filter(|s| s.kind == kind && s.f as usize == fi)
                    .map(|s| (s.t, s.ms.max(lo)));
                match kind {
                    OpType::Ok => chart.draw_series(pts.map(|p| Circle::new(p, 2, c.filled()))),
                    OpType::Fail => {
                        chart.draw_series(pts.map(|p| Cross::new(p, 3, c.stroke_width(1))))
                    }
                    _ => chart.draw_series(pts.map(|p| TriangleMarker::new(p, 4, c.filled()))),
                }
                .map_err(pe)?;
            }
        }
        lane(&chart, &d.faults, d.t_end)?;

        let mut rows = Vec::new();
        for (fi, f) in d.functions.iter().enumerate() {
            let n = d.samples.iter().filter(|s| s.f as usize == fi).count();
            if n > 0 || fi < 3 {
                rows.push((Swatch::Box(f_colour(f, fi)), format!("{f}  n={n}")));
            }
        }
        for (kind, name) in [
            (OpType::Ok, "ok"),
            (OpType::Fail, "fail"),
            (OpType::Info, "info (unknown)"),
        ] {
            let n = d.samples.iter().filter(|s| s.kind == kind).count();
            rows.push((Swatch::Marker(kind), format!("{name}  n={n}")));
        }
        rows.push((Swatch::None, String::new()));
        rows.extend(fault_rows(d, LANE_NOTE));
        rows.push((Swatch::None, String::new()));
        rows.push((
            Swatch::None,
            format!("{} of {} markers drawn", shown.len(), d.samples.len()),
        ));
        if shown.len() < d.samples.len() {
            rows.push((
                Swatch::None,
                format!("(one per {cell:.0}×{cell:.0} px cell)"),
            ));
        }
        legend(&side, &rows)
    }
}

struct Throughput<'a> {
    d: &'a Data,
}

impl Figure for Throughput<'_> {
    fn size(&self) -> (u32, u32) {
        SIZE
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()>
    where
        DB::ErrorType: 'static,
    {
        let d = self.d;
        let (width, buckets) = throughput(&d.completions, d.t_end);
        let title = format!("Throughput: completions per second ({width:.0} s buckets)");
        let body = caption(root, &title)?;
        let (w, _) = body.dim_in_pixel();
        let (main, side) = body.split_horizontally(w - LEGEND_W);
        let top = buckets
            .iter()
            .map(|b| b.ok.max(b.fail).max(b.info))
            .fold(1f64, f64::max);
        let hi = top * 1.12;
        let mut chart = ChartBuilder::on(&main)
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(0f64..d.t_end, 0f64..hi)
            .map_err(pe)?;
        shade(&mut chart, &d.faults, d.t_end, (0.0, hi))?;
        chart
            .configure_mesh()
            .x_desc("time since start (s)")
            .y_desc("completions / s")
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_label_formatter(&|v| format!("{v:.0}"))
            .label_style((FAMILY, 13).into_font().color(&INK))
            .axis_desc_style((FAMILY, 14).into_font().color(&INK))
            .bold_line_style(GRID.stroke_width(1))
            .light_line_style(TRANSPARENT)
            .draw()
            .map_err(pe)?;
        // Each bucket is drawn as a step: flat over its width.
        for (c, kind) in [(INFO, OpType::Info), (FAIL, OpType::Fail), (OK, OpType::Ok)] {
            let mut pts = Vec::with_capacity(buckets.len() * 2);
            for b in &buckets {
                let end = b.start + b.width;
                pts.push((b.start, b.rate(kind)));
                pts.push((end, b.rate(kind)));
            }
            chart
                .draw_series(LineSeries::new(pts, c.stroke_width(2)))
                .map_err(pe)?;
        }
        lane(&chart, &d.faults, d.t_end)?;

        let count = |k: OpType| d.completions.iter().filter(|c| c.1 == k).count();
        let mut rows = vec![
            (Swatch::Line(OK), format!("ok  n={}", count(OpType::Ok))),
            (
                Swatch::Line(FAIL),
                format!("fail  n={}", count(OpType::Fail)),
            ),
            (
                Swatch::Line(INFO),
                format!("info (unknown)  n={}", count(OpType::Info)),
            ),
            (Swatch::None, String::new()),
        ];
        rows.extend(fault_rows(d, LANE_NOTE));
        legend(&side, &rows)
    }
}

/// One clock fault as the clock plot draws it.
#[derive(Clone, Debug, PartialEq)]
pub struct ClockFault {
    pub nodes: Vec<String>,
    pub start: f64,
    pub stop: f64,
    pub offset_s: f64,
    /// `Some(period ms)` for a strobe: the clock flips between real time and the offset.
    pub strobe_ms: Option<u64>,
}

/// The clock faults of a run, from the `start-clock` events' values
/// (`{"nodes": [...], "offset_ms": N}`, plus `"period_ms"` for a strobe).
pub fn clock_faults(d: &Data) -> Vec<ClockFault> {
    d.faults
        .iter()
        .filter(|f| f.kind == "clock")
        .filter_map(|f| {
            let offset = f.value.get("offset_ms")?.as_f64()?;
            let nodes = f
                .value
                .get("nodes")?
                .as_array()?
                .iter()
                .filter_map(|n| n.as_str().map(str::to_owned))
                .collect();
            Some(ClockFault {
                nodes,
                start: f.start,
                stop: f.end(d.t_end),
                offset_s: offset / 1000.0,
                strobe_ms: f.value.get("period_ms").and_then(Value::as_u64),
            })
        })
        .collect()
}

struct Clock<'a> {
    d: &'a Data,
    nodes: Vec<String>,
    faults: Vec<ClockFault>,
}

const PANEL_H: u32 = 130;

impl Figure for Clock<'_> {
    fn size(&self) -> (u32, u32) {
        (SIZE.0, 60 + PANEL_H * self.nodes.len() as u32)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()>
    where
        DB::ErrorType: 'static,
    {
        let d = self.d;
        let body = caption(root, "Wall-clock offset of each node (libfaketime)")?;
        let (w, _) = body.dim_in_pixel();
        let (main, side) = body.split_horizontally(w - LEGEND_W);
        let (mut lo, mut hi) = (0f64, 0f64);
        for f in &self.faults {
            lo = lo.min(f.offset_s);
            hi = hi.max(f.offset_s);
        }
        let pad = ((hi - lo) * 0.15).max(1.0);
        let (lo, hi) = (lo - pad, hi + pad);
        let line = RGBColor(0, 110, 125);
        let panels = main.split_evenly((self.nodes.len(), 1));
        for (k, (node, panel)) in self.nodes.iter().zip(&panels).enumerate() {
            let last = k + 1 == self.nodes.len();
            let mut chart = ChartBuilder::on(panel)
                .margin_left(10)
                .margin_right(10)
                .margin_top(6)
                .x_label_area_size(if last { 40 } else { 14 })
                .y_label_area_size(70)
                .build_cartesian_2d(0f64..d.t_end, lo..hi)
                .map_err(pe)?;
            shade(&mut chart, &d.faults, d.t_end, (lo, hi))?;
            chart
                .configure_mesh()
                .x_desc(if last { "time since start (s)" } else { "" })
                .y_desc(format!("{node} offset (s)"))
                .x_labels(if last { 10 } else { 0 })
                .y_labels(5)
                .x_label_formatter(&|v| format!("{v:.0}"))
                .y_label_formatter(&|v| format!("{v:+.0}"))
                .label_style((FAMILY, 12).into_font().color(&INK))
                .axis_desc_style((FAMILY, 13).into_font().color(&INK))
                .bold_line_style(GRID.stroke_width(1))
                .light_line_style(TRANSPARENT)
                .draw()
                .map_err(pe)?;
            let mine: Vec<&ClockFault> = self
                .faults
                .iter()
                .filter(|f| f.nodes.contains(node))
                .collect();
            // Strobes: the clock flips between 0 and the offset every period; the exact
            // phase at any instant is not recorded, so the whole range is drawn as a band.
            for f in mine.iter().filter(|f| f.strobe_ms.is_some()) {
                chart
                    .draw_series([Rectangle::new(
                        [
                            (f.start, 0f64.min(f.offset_s)),
                            (f.stop, 0f64.max(f.offset_s)),
                        ],
                        line.mix(0.35).filled(),
                    )])
                    .map_err(pe)?;
            }
            let mut pts = vec![(0.0, 0.0)];
            for f in &mine {
                let level = if f.strobe_ms.is_some() {
                    0.0
                } else {
                    f.offset_s
                };
                pts.extend([
                    (f.start, 0.0),
                    (f.start, level),
                    (f.stop, level),
                    (f.stop, 0.0),
                ]);
                if let Some(p) = f.strobe_ms {
                    pts.extend([
                        (f.start, 0.0),
                        (f.start, f.offset_s),
                        (f.stop, f.offset_s),
                        (f.stop, 0.0),
                    ]);
                    let label = format!("strobe 0 ↔ {:+.0} s every {p} ms", f.offset_s);
                    let y = if f.offset_s >= 0.0 { f.offset_s } else { 0.0 };
                    chart
                        .draw_series([Text::new(
                            label,
                            (f.start, y + (hi - lo) * 0.12),
                            (FAMILY, 12).into_font().color(&INK),
                        )])
                        .map_err(pe)?;
                }
            }
            pts.push((d.t_end, 0.0));
            chart
                .draw_series(LineSeries::new(pts, line.stroke_width(2)))
                .map_err(pe)?;
        }
        let mut rows = vec![
            (Swatch::Line(line), "offset from real time".into()),
            (Swatch::Band(line), "strobe: flips inside band".into()),
            (Swatch::None, String::new()),
            (Swatch::None, "set (and verified) just before".into()),
            (Swatch::None, "each start event, reset just".into()),
            (Swatch::None, "before each stop event".into()),
            (Swatch::None, String::new()),
        ];
        rows.extend(fault_rows(d, "faults (shaded):"));
        legend(&side, &rows)
    }
}

/// The node names of a run: test.json's `nodes`, else every node a clock fault names.
fn run_nodes(dir: &Path, faults: &[ClockFault]) -> Vec<String> {
    let from_test = std::fs::read(dir.join("test.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .and_then(|v| {
            v.get("nodes")?.as_array().map(|a| {
                a.iter()
                    .filter_map(|n| n.as_str().map(str::to_owned))
                    .collect::<Vec<_>>()
            })
        })
        .unwrap_or_default();
    let mut nodes = from_test;
    for f in faults {
        for n in &f.nodes {
            if !nodes.contains(n) {
                nodes.push(n.clone());
            }
        }
    }
    nodes
}

/// Writes the plots of a run into `dir` and returns the file names written.
pub fn write_plots(dir: &Path, ops: &[Op], windows: &[FaultWindow]) -> Result<Vec<String>> {
    font()?;
    let d = Data::new(ops, windows);
    let mut written = Vec::new();
    write_figure(dir, "latency", &Latency { d: &d })?;
    written.extend(["latency.svg".to_owned(), "latency.png".to_owned()]);
    write_figure(dir, "throughput", &Throughput { d: &d })?;
    written.extend(["throughput.svg".to_owned(), "throughput.png".to_owned()]);
    let faults = clock_faults(&d);
    if !faults.is_empty() {
        let nodes = run_nodes(dir, &faults);
        write_figure(
            dir,
            "clock",
            &Clock {
                d: &d,
                nodes,
                faults,
            },
        )?;
        written.extend(["clock.svg".to_owned(), "clock.png".to_owned()]);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn op(time_ms: u64, process: Process, kind: OpType, f: &str, value: Value) -> Op {
        Op {
            index: 0,
            time: time_ms * 1_000_000,
            process,
            kind,
            f: f.into(),
            key: Some("k".into()),
            value,
            error: None,
            node: None,
        }
    }

    #[test]
    fn data_pairs_latencies_and_keeps_fault_values() {
        let c = |p| Process::Client(p);
        let ops = vec![
            op(0, c(1), OpType::Invoke, "read", Value::Null),
            op(100, c(2), OpType::Invoke, "append", json!(1)),
            op(5, c(1), OpType::Ok, "read", json!(1)),
            op(
                200,
                Process::Nemesis,
                OpType::Info,
                "start-clock",
                json!({"nodes": ["n2"], "offset_ms": -3000, "period_ms": 50}),
            ),
            op(2100, c(2), OpType::Info, "append", json!(1)),
            op(
                2500,
                Process::Nemesis,
                OpType::Info,
                "stop-clock",
                json!(["n2"]),
            ),
        ];
        let w = crate::record::fault_windows(&ops);
        let d = Data::new(&ops, &w);
        assert_eq!(d.functions, ["read", "write", "cas", "append"]);
        assert_eq!(d.samples.len(), 2);
        assert_eq!((d.samples[0].ms, d.samples[0].f), (5.0, 0));
        assert_eq!(
            (d.samples[1].ms, d.samples[1].f, d.samples[1].kind),
            (2000.0, 3, OpType::Info)
        );
        assert_eq!(d.t_end, 2.5);
        let cf = clock_faults(&d);
        assert_eq!(
            cf,
            vec![ClockFault {
                nodes: vec!["n2".into()],
                start: 0.2,
                stop: 2.5,
                offset_s: -3.0,
                strobe_ms: Some(50),
            }]
        );
    }

    #[test]
    fn thinning_keeps_distinct_positions_and_outliers() {
        let mut s: Vec<Sample> = (0..100_000)
            .map(|i| Sample {
                t: (i % 1000) as f64 * 0.06,
                ms: 2.0,
                f: 0,
                kind: OpType::Ok,
            })
            .collect();
        s.push(Sample {
            t: 30.0,
            ms: 900.0,
            f: 0,
            kind: OpType::Ok,
        });
        s.push(Sample {
            t: 30.0,
            ms: 2.0,
            f: 0,
            kind: OpType::Info,
        });
        let (kept, cell) = thin(&s, 60.0, latency_range(&s));
        assert_eq!(cell, 2.0);
        // One marker per x cell on the 2 ms line, plus the outlier and the info.
        assert!(kept.len() <= CELLS.0 as usize + 3, "{}", kept.len());
        assert!(kept.len() >= CELLS.0 as usize / 2);
        assert!(kept.iter().any(|k| k.ms == 900.0));
        assert!(kept.iter().any(|k| k.kind == OpType::Info));
    }

    #[test]
    fn thinning_caps_dense_histories_but_keeps_every_occupied_region() {
        let mut x = 12345u64;
        let mut next = || {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 11) as f64 / (1u64 << 53) as f64
        };
        let mut s: Vec<Sample> = (0..300_000)
            .map(|_| Sample {
                t: next() * 60.0,
                ms: 0.5 + next() * 20.0,
                f: (next() * 3.0) as u16,
                kind: OpType::Ok,
            })
            .collect();
        s.push(Sample {
            t: 59.0,
            ms: 5000.0,
            f: 2,
            kind: OpType::Fail,
        });
        let (kept, cell) = thin(&s, 60.0, latency_range(&s));
        assert!(kept.len() <= MAX_MARKERS, "{}", kept.len());
        assert!(cell > 2.0);
        assert!(kept.len() > MAX_MARKERS / 3, "{}", kept.len());
        assert!(
            kept.iter()
                .any(|k| k.ms == 5000.0 && k.kind == OpType::Fail)
        );
        for f in 0..3 {
            assert!(kept.iter().any(|k| k.f == f));
        }
    }

    #[test]
    fn throughput_buckets_are_per_second() {
        let c = vec![
            (0.5, OpType::Ok),
            (0.7, OpType::Ok),
            (1.2, OpType::Fail),
            (2.9, OpType::Info),
        ];
        let (w, b) = throughput(&c, 3.0);
        assert_eq!(w, 1.0);
        let row = |b: &Bucket| (b.start, b.width, b.ok, b.fail, b.info);
        assert_eq!(
            b.iter().map(row).collect::<Vec<_>>(),
            [
                (0.0, 1.0, 2.0, 0.0, 0.0),
                (1.0, 1.0, 0.0, 1.0, 0.0),
                (2.0, 1.0, 0.0, 0.0, 1.0)
            ]
        );
        // A partial last bucket is a rate over the time it covers...
        let (_, b) = throughput(&c[..3], 2.5);
        assert_eq!(row(&b[2]), (2.0, 0.5, 0.0, 0.0, 0.0));
        let (_, b) = throughput(&[(2.7, OpType::Ok)], 2.8);
        assert!((b[2].width - 0.8).abs() < 1e-9);
        assert!((b[2].ok - 1.25).abs() < 1e-9);
        // ...and one shorter than half a bucket joins the bucket before.
        let (_, b) = throughput(&[(1.2, OpType::Fail), (2.2, OpType::Info)], 2.3);
        assert_eq!(b.len(), 2);
        assert!((b[1].width - 1.3).abs() < 1e-9);
        assert!((b[1].fail - 1.0 / 1.3).abs() < 1e-9);
        assert!((b[1].info - 1.0 / 1.3).abs() < 1e-9);
        // A long run gets wider buckets, never more than MAX_BUCKETS.
        let (w, b) = throughput(&[(3599.0, OpType::Ok)], 3600.0);
        assert_eq!(w, 6.0);
        assert!(b.len() as f64 <= MAX_BUCKETS);
        assert_eq!(b.last().unwrap().ok, 1.0 / 6.0);
    }

    #[test]
    fn fault_colours_are_distinct_and_unknown_kinds_fall_back() {
        let kinds = [
            "kill",
            "pause",
            "partition",
            "clock",
            "membership",
            "disk",
            "net",
        ];
        for (i, a) in kinds.iter().enumerate() {
            for b in &kinds[i + 1..] {
                assert_ne!(fault_colour(a), fault_colour(b));
                assert_ne!(fault_shade(a), fault_shade(b));
            }
            assert_ne!(fault_colour(a), fault_colour("bitflip"));
        }
        assert_eq!(fault_colour("bitflip"), fault_colour("anything-else"));
        assert_eq!(fault_shade("kill"), RGBColor(246, 208, 208));
    }
}

//! Latency-versus-throughput plot of a concurrency sweep, rendered as SVG.
//!
//! Each sweep step runs the benchmark at one concurrency (requests in flight) and
//! yields one [`PlotPoint`]: the achieved throughput and the latency percentiles.
//! [`write_plot`] draws those steps with throughput (RPC/s) on the x axis and
//! latency (milliseconds, logarithmic) on the y axis, one line per percentile
//! (p50, p90, p99, p99.9). The system under test is drawn with solid lines and
//! filled circles; an optional baseline lane (for example the raw-broker ceiling)
//! is drawn with dashed, lighter lines and triangles in the same colours. Every
//! sweep step is labelled with its concurrency (`c=64`), placed so as not to cover
//! markers, lines, the legend or other labels where possible, so the knee of the
//! curve, where more requests in flight buy latency instead of throughput, can be
//! read off directly.

use std::path::Path;

use anyhow::{Context as _, bail};
use plotters::coord::combinators::{
    BindKeyPoints as _, IntoLogRange as _, LogCoord, WithKeyPoints,
};
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// One measured point of a concurrency sweep.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct PlotPoint {
    /// Requests in flight during this sweep step.
    pub(crate) concurrency: usize,
    /// Achieved throughput, RPC/s.
    pub(crate) rps: f64,
    /// Median latency, microseconds.
    pub(crate) p50_us: u64,
    /// 90th percentile latency, microseconds.
    pub(crate) p90_us: u64,
    /// 99th percentile latency, microseconds.
    pub(crate) p99_us: u64,
    /// 99.9th percentile latency, microseconds.
    pub(crate) p999_us: u64,
}

/// Width and height of the SVG, in pixels.
const SIZE: (u32, u32) = (1000, 650);

/// One latency percentile as drawn: its name, its colour and where to read it.
#[derive(Clone, Copy)]
struct Percentile {
    /// Name in the legend.
    label: &'static str,
    /// Colour of its lines and markers, in both lanes.
    colour: RGBColor,
    /// Reads this percentile, in microseconds, from a point.
    get: fn(&PlotPoint) -> u64,
}

/// The percentiles drawn, in legend order.
const PERCENTILES: [Percentile; 4] = [
    Percentile {
        label: "p50",
        colour: RGBColor(31, 119, 180),
        get: |p| p.p50_us,
    },
    Percentile {
        label: "p90",
        colour: RGBColor(44, 160, 44),
        get: |p| p.p90_us,
    },
    Percentile {
        label: "p99",
        colour: RGBColor(255, 127, 14),
        get: |p| p.p99_us,
    },
    Percentile {
        label: "p99.9",
        colour: RGBColor(214, 39, 40),
        get: |p| p.p999_us,
    },
];

/// Colour of the lane entries in the legend and of the system's concurrency labels.
const INK: RGBColor = RGBColor(60, 60, 60);

/// Opacity of the baseline lane's lines and markers.
const BASELINE_ALPHA: f64 = 0.55;

/// Opacity of the baseline lane's concurrency labels (a little darker than its lines).
const BASELINE_LABEL_ALPHA: f64 = 0.75;

/// Writes an SVG: latency percentiles (y, milliseconds, log scale) against throughput (x, RPC/s),
/// one line per percentile (p50, p90, p99, p99.9) for the system lane (solid) and, if non-empty,
/// the same for the baseline lane (dashed and lighter), each point labelled with its concurrency
/// ("c=64"). Title at the top; legend. Size 1000x650.
///
/// Points are connected in order of increasing concurrency, whatever order they are given in.
/// Latencies of zero are drawn at 1 µs, the floor of the log scale.
///
/// # Errors
///
/// Fails if `system` is empty, if any throughput is negative or not finite, if drawing fails,
/// or if the file cannot be written.
pub(crate) fn write_plot(
    path: &Path,
    title: &str,
    system: &[PlotPoint],
    baseline: &[PlotPoint],
) -> anyhow::Result<()> {
    if system.is_empty() {
        bail!(
            "cannot plot {}: the system lane has no points",
            path.display()
        );
    }
    for (lane, points) in [("system", system), ("baseline", baseline)] {
        if let Some(bad) = points.iter().find(|p| !p.rps.is_finite() || p.rps < 0.0) {
            bail!(
                "cannot plot {}: {lane} point c={} has throughput {} RPC/s",
                path.display(),
                bad.concurrency,
                bad.rps
            );
        }
    }
    let svg = render(title, system, baseline)
        .with_context(|| format!("cannot draw the plot for {}", path.display()))?;
    std::fs::write(path, svg).with_context(|| format!("cannot write {}", path.display()))
}

/// How one lane is drawn.
#[derive(Clone, Copy)]
struct Lane {
    /// Name in the legend.
    name: &'static str,
    /// Dashed (and lighter) lines instead of solid ones.
    dashed: bool,
}

/// Draws the whole chart into an SVG document held in memory.
fn render(title: &str, system: &[PlotPoint], baseline: &[PlotPoint]) -> anyhow::Result<String> {
    let system = sorted(system);
    let baseline = sorted(baseline);
    let all = || system.iter().chain(baseline.iter());

    let (x_lo, x_hi) = x_range(all().map(|p| p.rps));
    let (y_lo, y_hi) =
        y_range(all().flat_map(|p| PERCENTILES.iter().map(move |pct| latency_ms((pct.get)(p)))));
    let (bold_ticks, light_ticks) = log_ticks(y_lo, y_hi);

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE)
            .map_err(|e| anyhow::anyhow!("cannot fill the background: {e}"))?;

        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 24))
            .margin(16)
            .x_label_area_size(48)
            .y_label_area_size(64)
            .build_cartesian_2d(
                x_lo..x_hi,
                (y_lo..y_hi)
                    .log_scale()
                    .with_key_points(bold_ticks)
                    .with_light_points(light_ticks),
            )
            .map_err(|e| anyhow::anyhow!("cannot lay out the chart: {e}"))?;

        chart
            .configure_mesh()
            .x_desc("throughput (RPC/s)")
            .y_desc("latency (ms, log scale)")
            .x_label_formatter(&|v| format_rps(*v, x_hi - x_lo))
            .y_label_formatter(&|v| format_ms(*v))
            .axis_desc_style(("sans-serif", 16))
            .label_style(("sans-serif", 13))
            .light_line_style(RGBColor(235, 235, 235))
            .bold_line_style(RGBColor(200, 200, 200))
            .draw()
            .map_err(|e| anyhow::anyhow!("cannot draw the axes: {e}"))?;

        let lanes = [
            (
                Lane {
                    name: "system",
                    dashed: false,
                },
                &system,
            ),
            (
                Lane {
                    name: "baseline",
                    dashed: true,
                },
                &baseline,
            ),
        ];
        for (lane, points) in lanes {
            if points.is_empty() {
                continue;
            }
            for pct in PERCENTILES {
                draw_percentile(&mut chart, lane, points, pct)?;
            }
        }
        let legend_entries = PERCENTILES.len() + if baseline.is_empty() { 1 } else { 2 };
        draw_concurrency_labels(&mut chart, &system, &baseline, legend_entries)?;

        // Legend: one entry per percentile (colour), then one per lane (line style).
        for Percentile { label, colour, .. } in PERCENTILES {
            chart
                .draw_series(std::iter::empty::<Circle<(f64, f64), u32>>())
                .map_err(|e| anyhow::anyhow!("cannot add the legend entry {label}: {e}"))?
                .label(label)
                .legend(move |(x, y)| {
                    EmptyElement::at((x, y))
                        + PathElement::new(vec![(0, 0), (24, 0)], colour.stroke_width(2))
                        + Circle::new((12, 0), 4, colour.filled())
                });
        }
        chart
            .draw_series(std::iter::empty::<Circle<(f64, f64), u32>>())
            .map_err(|e| anyhow::anyhow!("cannot add the system legend entry: {e}"))?
            .label("system (solid, ●)")
            .legend(|(x, y)| {
                EmptyElement::at((x, y))
                    + PathElement::new(vec![(0, 0), (24, 0)], INK.stroke_width(2))
                    + Circle::new((12, 0), 4, INK.filled())
            });
        if !baseline.is_empty() {
            let style = INK.mix(BASELINE_ALPHA).stroke_width(2);
            chart
                .draw_series(std::iter::empty::<Circle<(f64, f64), u32>>())
                .map_err(|e| anyhow::anyhow!("cannot add the baseline legend entry: {e}"))?
                .label("ceiling lane (dashed, ▲)")
                .legend(move |(x, y)| {
                    EmptyElement::at((x, y))
                        + DashedPathElement::new(vec![(0, 0), (24, 0)], 6, 4, style)
                        + TriangleMarker::new((12, 0), 5, style)
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .margin(12)
            .label_font(("sans-serif", 14))
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(180, 180, 180))
            .draw()
            .map_err(|e| anyhow::anyhow!("cannot draw the legend: {e}"))?;

        root.present()
            .map_err(|e| anyhow::anyhow!("cannot finish the SVG: {e}"))?;
    }
    Ok(svg)
}

/// The chart type drawn on: linear x (RPC/s), logarithmic y (ms) with fixed ticks.
type Chart<'a, 'b> = ChartContext<
    'a,
    SVGBackend<'b>,
    Cartesian2d<plotters::coord::types::RangedCoordf64, WithKeyPoints<LogCoord<f64>>>,
>;

/// Draws one percentile of one lane: a line through the points plus a marker at each.
fn draw_percentile(
    chart: &mut Chart<'_, '_>,
    lane: Lane,
    points: &[PlotPoint],
    pct: Percentile,
) -> anyhow::Result<()> {
    let coords: Vec<(f64, f64)> = points
        .iter()
        .map(|p| (p.rps, latency_ms((pct.get)(p))))
        .collect();
    let colour = pct.colour;
    let err = |e| anyhow::anyhow!("cannot draw the {} {} line: {e}", lane.name, pct.label);
    if lane.dashed {
        let style = colour.mix(BASELINE_ALPHA).stroke_width(2);
        chart
            .draw_series(DashedLineSeries::new(coords.clone(), 8, 5, style))
            .map_err(err)?;
        chart
            .draw_series(
                coords.iter().map(|&c| {
                    TriangleMarker::new(c, 5, colour.mix(BASELINE_ALPHA).stroke_width(2))
                }),
            )
            .map_err(err)?;
    } else {
        chart
            .draw_series(LineSeries::new(coords.clone(), colour.stroke_width(2)))
            .map_err(err)?;
        chart
            .draw_series(coords.iter().map(|&c| Circle::new(c, 4, colour.filled())))
            .map_err(err)?;
    }
    Ok(())
}

/// Font size of the concurrency labels, in pixels.
const LABEL_FONT_PX: i32 = 12;

/// Labels each sweep step with its concurrency ("c=64"), once per step and lane.
///
/// All percentiles of a step share its x, so a label beside any of the step's markers
/// names the whole column. The preferred spot is just below the p50 marker for the system
/// lane and just above the p99.9 marker for the baseline lane (which keeps the two lanes
/// apart); when that spot would cover a marker, a line, the legend or another label, the
/// label moves beside another of the step's markers (see [`place_labels`]). Each label sits
/// on a translucent white patch so it stays legible where it must cross a line.
fn draw_concurrency_labels(
    chart: &mut Chart<'_, '_>,
    system: &[PlotPoint],
    baseline: &[PlotPoint],
    legend_entries: usize,
) -> anyhow::Result<()> {
    let (x_px, y_px) = chart.plotting_area().get_pixel_range();
    let bounds = PixelBox {
        x0: x_px.start,
        y0: y_px.start,
        x1: x_px.end,
        y1: y_px.end,
    };

    // Everything already drawn that a label should not cover: markers and line samples.
    let mut obstacles = Vec::new();
    for points in [system, baseline] {
        for pct in PERCENTILES {
            let px: Vec<(i32, i32)> = points
                .iter()
                .map(|p| chart.backend_coord(&(p.rps, latency_ms((pct.get)(p)))))
                .collect();
            obstacles.extend(px.iter().map(|&c| (c, 5)));
            for pair in px.windows(2) {
                obstacles.extend(sample_segment(pair[0], pair[1], 3).map(|c| (c, 1)));
            }
        }
    }
    // The legend box in the upper left (its size estimated from the entry count).
    let legend_entries = i32::try_from(legend_entries).unwrap_or(16);
    let legend = PixelBox {
        x0: bounds.x0,
        y0: bounds.y0,
        x1: bounds.x0 + 215,
        y1: bounds.y0 + 30 + 18 * legend_entries,
    };

    let mut texts = Vec::new();
    let mut candidates = Vec::new();
    for (points, dashed) in [(system, false), (baseline, true)] {
        for p in points {
            let text = format!("c={}", p.concurrency);
            let size = label_size(&text);
            let at = |us: u64| chart.backend_coord(&(p.rps, latency_ms(us)));
            let (low, high) = (at(p.p50_us), at(p.p999_us));
            let (mid_low, mid_high) = (at(p.p90_us), at(p.p99_us));
            let mut boxes = Vec::new();
            let below_low = [Side::Below, Side::Right, Side::Left, Side::FarBelow];
            let above_high = [Side::Above, Side::Right, Side::Left, Side::FarAbove];
            let (first, second) = if dashed {
                ((high, above_high), (low, below_low))
            } else {
                ((low, below_low), (high, above_high))
            };
            for (anchor, sides) in [first, second] {
                boxes.extend(sides.iter().map(|&side| side.place(anchor, size)));
            }
            for anchor in [mid_low, mid_high] {
                boxes.extend([Side::Right, Side::Left].map(|side| side.place(anchor, size)));
            }
            texts.push((text, dashed));
            candidates.push(boxes);
        }
    }
    let placed = place_labels(&candidates, &obstacles, &[legend], bounds);

    let patch = WHITE.mix(0.8).filled();
    let solid = ("sans-serif", LABEL_FONT_PX)
        .into_font()
        .color(&INK)
        .pos(Pos::new(HPos::Left, VPos::Top));
    let light = ("sans-serif", LABEL_FONT_PX)
        .into_font()
        .color(&INK.mix(BASELINE_LABEL_ALPHA))
        .pos(Pos::new(HPos::Left, VPos::Top));
    // Drawn relative to the plotting area's top-left corner, in data coordinates.
    let origin = (chart.x_range().start, chart.y_range().end);
    let (ox, oy) = chart.backend_coord(&origin);
    chart
        .draw_series(
            texts
                .into_iter()
                .zip(placed)
                .filter_map(|((text, dashed), b)| {
                    let b = b?;
                    let font = if dashed { light.clone() } else { solid.clone() };
                    Some(
                        EmptyElement::at(origin)
                            + Rectangle::new(
                                [(b.x0 - ox, b.y0 - oy), (b.x1 - ox, b.y1 - oy)],
                                patch,
                            )
                            + Text::new(text, (b.x0 - ox + 2, b.y0 - oy + 1), font),
                    )
                }),
        )
        .map_err(|e| anyhow::anyhow!("cannot draw the concurrency labels: {e}"))?;
    Ok(())
}

/// Where a label goes relative to the marker it names.
#[derive(Clone, Copy, Debug)]
enum Side {
    /// Centred under the marker.
    Below,
    /// Centred under the marker, one label height further down.
    FarBelow,
    /// Centred over the marker.
    Above,
    /// Centred over the marker, one label height further up.
    FarAbove,
    /// To the right, vertically centred.
    Right,
    /// To the left, vertically centred.
    Left,
}

impl Side {
    /// The label box of `size` (width, height) placed on this side of the marker at `at`.
    fn place(self, (x, y): (i32, i32), (w, h): (i32, i32)) -> PixelBox {
        const GAP: i32 = 6;
        let (x0, y0) = match self {
            Side::Below => (x - w / 2, y + GAP),
            Side::FarBelow => (x - w / 2, y + GAP + h + 2),
            Side::Above => (x - w / 2, y - GAP - h),
            Side::FarAbove => (x - w / 2, y - GAP - 2 * h - 2),
            Side::Right => (x + GAP + 1, y - h / 2),
            Side::Left => (x - GAP - 1 - w, y - h / 2),
        };
        PixelBox {
            x0,
            y0,
            x1: x0 + w,
            y1: y0 + h,
        }
    }
}

/// An axis-aligned box in backend pixels; `x1` and `y1` are exclusive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct PixelBox {
    /// Left edge.
    x0: i32,
    /// Top edge.
    y0: i32,
    /// Right edge (exclusive).
    x1: i32,
    /// Bottom edge (exclusive).
    y1: i32,
}

impl PixelBox {
    /// Whether the two boxes share any pixel.
    fn overlaps(&self, other: &PixelBox) -> bool {
        self.x0 < other.x1 && other.x0 < self.x1 && self.y0 < other.y1 && other.y0 < self.y1
    }

    /// Whether `(x, y)` lies within `pad` pixels of the box.
    fn near(&self, (x, y): (i32, i32), pad: i32) -> bool {
        x >= self.x0 - pad && x < self.x1 + pad && y >= self.y0 - pad && y < self.y1 + pad
    }

    /// Whether the box lies wholly inside `outer`.
    fn inside(&self, outer: &PixelBox) -> bool {
        self.x0 >= outer.x0 && self.y0 >= outer.y0 && self.x1 <= outer.x1 && self.y1 <= outer.y1
    }
}

/// Estimated pixel size (width, height) of a concurrency label, padding included.
/// Plotters' own estimate without a font engine is rough; this one fits DejaVu/Liberation
/// Sans at [`LABEL_FONT_PX`], where "c=" and digits average about 0.6 em.
fn label_size(text: &str) -> (i32, i32) {
    let chars = i32::try_from(text.chars().count()).unwrap_or(64);
    (chars * LABEL_FONT_PX * 6 / 10 + 5, LABEL_FONT_PX + 3)
}

/// Greedy label placement. For each label in turn, takes the first of its candidate boxes
/// (in order of preference) that stays inside `bounds` and covers no obstacle point (each
/// with its own padding), no `reserved` box and no label placed before it. When every
/// candidate collides, takes the one with the fewest collisions, counting a box out of
/// bounds worst, then overlaps with labels and reserved boxes, then obstacle points.
/// Returns one box per label; a label without candidates gets `None`.
fn place_labels(
    candidates: &[Vec<PixelBox>],
    obstacles: &[((i32, i32), i32)],
    reserved: &[PixelBox],
    bounds: PixelBox,
) -> Vec<Option<PixelBox>> {
    let mut placed: Vec<PixelBox> = reserved.to_vec();
    let mut chosen = Vec::with_capacity(candidates.len());
    for boxes in candidates {
        let cost = |b: &PixelBox| -> usize {
            let outside = if b.inside(&bounds) { 0 } else { 1_000_000 };
            let crowded = placed.iter().filter(|p| p.overlaps(b)).count() * 1_000;
            let covered = obstacles
                .iter()
                .filter(|&&(pt, pad)| b.near(pt, pad))
                .count();
            outside + crowded + covered
        };
        let best = boxes
            .iter()
            .enumerate()
            .min_by_key(|(i, b)| (cost(b), *i))
            .map(|(_, b)| *b);
        if let Some(b) = best {
            placed.push(b);
        }
        chosen.push(best);
    }
    chosen
}

/// Points every `step` pixels along the segment from `a` to `b`, both ends included.
fn sample_segment(a: (i32, i32), b: (i32, i32), step: i32) -> impl Iterator<Item = (i32, i32)> {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let n = (dx.abs().max(dy.abs()) / step.max(1)).max(1);
    (0..=n).map(move |i| (a.0 + dx * i / n, a.1 + dy * i / n))
}

/// The points ordered by concurrency, so lines follow the sweep.
fn sorted(points: &[PlotPoint]) -> Vec<PlotPoint> {
    let mut points = points.to_vec();
    points.sort_by_key(|p| p.concurrency);
    points
}

/// A latency in milliseconds, clamped to at least 1 µs so it has a logarithm.
fn latency_ms(us: u64) -> f64 {
    us.max(1) as f64 / 1000.0
}

/// The x range: the data's throughput span plus 6 % either side (at least 5 % of the largest
/// value, or 1 RPC/s when everything is zero), never below zero.
fn x_range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if !lo.is_finite() || !hi.is_finite() {
        return (0.0, 1.0);
    }
    let margin = ((hi - lo) * 0.06).max(hi.abs() * 0.05).max(1.0);
    ((lo - margin).max(0.0), hi + margin)
}

/// The y range in milliseconds: the data's span widened by 5 % and then out to the next
/// 1-2-5 step (…, 0.5, 1, 2, 5, 10, …) on either side, so both ends carry a labelled tick.
fn y_range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if !lo.is_finite() || !hi.is_finite() || lo <= 0.0 {
        return (0.001, 1.0);
    }
    (step_at_or_below(lo / 1.05), step_at_or_above(hi * 1.05))
}

/// The largest 1, 2 or 5 times a power of ten that is at most `v` (`v > 0`).
fn step_at_or_below(v: f64) -> f64 {
    let decade = 10f64.powf(v.log10().floor());
    [5.0, 2.0, 1.0]
        .into_iter()
        .map(|m| m * decade)
        .find(|&s| s <= v * (1.0 + 1e-9))
        .unwrap_or(decade)
}

/// The smallest 1, 2 or 5 times a power of ten that is at least `v` (`v > 0`).
fn step_at_or_above(v: f64) -> f64 {
    let decade = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * decade)
        .find(|&s| s >= v * (1.0 - 1e-9))
        .unwrap_or(10.0 * decade)
}

/// Tick values for a log axis spanning `lo..=hi`: labelled ticks at 1, 2 and 5 times each
/// power of ten (only at powers of ten when the axis spans more than four decades), and
/// unlabelled grid lines at the other integer multiples.
fn log_ticks(lo: f64, hi: f64) -> (Vec<f64>, Vec<f64>) {
    let first = lo.log10().floor() as i32;
    let last = hi.log10().ceil() as i32;
    let multiples: &[f64] = if (hi / lo).log10() > 4.0 {
        &[1.0]
    } else {
        &[1.0, 2.0, 5.0]
    };
    let in_range = |v: f64| v >= lo * (1.0 - 1e-9) && v <= hi * (1.0 + 1e-9);
    let mut bold = Vec::new();
    let mut light = Vec::new();
    for exp in first..=last {
        let decade = 10f64.powi(exp);
        for m in 1..=9 {
            let v = f64::from(m) * decade;
            if !in_range(v) {
                continue;
            }
            if multiples.contains(&f64::from(m)) {
                bold.push(v);
            } else {
                light.push(v);
            }
        }
    }
    (bold, light)
}

/// Formats a millisecond tick value with as many decimals as its leading digit needs and no
/// trailing zeros: "0.0005", "0.01", "0.5", "2", "100".
fn format_ms(v: f64) -> String {
    if v >= 1.0 || v <= 0.0 || !v.is_finite() {
        return format!("{v:.0}");
    }
    let decimals = (-(v * (1.0 + 1e-9)).log10()).ceil().clamp(1.0, 12.0) as usize;
    let s = format!("{v:.decimals$}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// Formats a throughput tick value (RPC/s), with decimals only when the axis spans so few
/// RPC/s that whole numbers would repeat.
fn format_rps(v: f64, span: f64) -> String {
    if span >= 20.0 {
        format!("{v:.0}")
    } else if span >= 2.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(concurrency: usize, rps: f64, ms: [f64; 4]) -> PlotPoint {
        let us = |v: f64| (v * 1000.0).round() as u64;
        PlotPoint {
            concurrency,
            rps,
            p50_us: us(ms[0]),
            p90_us: us(ms[1]),
            p99_us: us(ms[2]),
            p999_us: us(ms[3]),
        }
    }

    fn temp_svg(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("bench-plot-{}-{name}.svg", std::process::id()))
    }

    fn system() -> Vec<PlotPoint> {
        vec![
            point(1, 1500.0, [0.6, 0.8, 1.2, 2.5]),
            point(16, 3100.0, [4.8, 6.5, 9.0, 14.0]),
            point(64, 3800.0, [16.0, 21.0, 30.0, 45.0]),
            point(512, 4000.0, [38.0, 52.0, 68.0, 80.0]),
        ]
    }

    fn baseline() -> Vec<PlotPoint> {
        vec![
            point(1, 2100.0, [0.45, 0.6, 0.9, 1.8]),
            point(16, 3900.0, [3.9, 5.2, 7.5, 11.0]),
            point(64, 4500.0, [13.5, 17.0, 24.0, 36.0]),
            point(512, 4700.0, [33.0, 44.0, 58.0, 70.0]),
        ]
    }

    #[test]
    fn writes_an_svg_with_both_lanes() {
        let path = temp_svg("sweep");
        write_plot(&path, "RPC latency vs throughput", &system(), &baseline()).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        if std::env::var_os("KEEP_PLOT").is_none() {
            std::fs::remove_file(&path).unwrap();
        }
        assert!(
            svg.starts_with("<svg"),
            "not an SVG: {}",
            &svg[..svg.len().min(80)]
        );
        for needle in [
            "p99",
            "p99.9",
            "c=64",
            "c=512",
            "ceiling lane",
            "RPC latency vs throughput",
        ] {
            assert!(svg.contains(needle), "missing {needle:?}");
        }
    }

    #[test]
    fn empty_system_lane_is_an_error() {
        let path = temp_svg("empty");
        let err = write_plot(&path, "t", &[], &baseline()).unwrap_err();
        assert!(err.to_string().contains("no points"), "{err}");
        assert!(!path.exists());
    }

    #[test]
    fn non_finite_throughput_is_an_error() {
        let path = temp_svg("nan");
        let err = write_plot(&path, "t", &[point(1, f64::NAN, [1.0; 4])], &[]).unwrap_err();
        assert!(err.to_string().contains("c=1"), "{err}");
    }

    #[test]
    fn single_point_with_zero_latencies_and_no_baseline() {
        let path = temp_svg("single");
        write_plot(&path, "one point", &[point(8, 0.0, [0.0; 4])], &[]).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("c=8"));
        assert!(!svg.contains("ceiling lane"));
    }

    #[test]
    fn unwritable_path_is_an_error() {
        let path = std::env::temp_dir()
            .join("no-such-dir-for-bench-plot")
            .join("x.svg");
        let err = write_plot(&path, "t", &system(), &[]).unwrap_err();
        assert!(format!("{err:#}").contains("cannot write"), "{err:#}");
    }

    #[test]
    fn ranges_have_margins_and_end_on_ticks() {
        let (lo, hi) = x_range([1500.0, 4000.0].into_iter());
        assert!(
            lo < 1500.0 && lo > 1000.0 && hi > 4000.0 && hi < 4500.0,
            "{lo}..{hi}"
        );
        let (lo, hi) = x_range([2000.0].into_iter());
        assert!(lo < 2000.0 && hi > 2000.0, "{lo}..{hi}");
        assert_eq!(x_range([0.0].into_iter()), (0.0, 1.0));

        let close = |(a, b): (f64, f64), (c, d): (f64, f64)| {
            assert!(
                (a - c).abs() < c * 1e-9 && (b - d).abs() < d * 1e-9,
                "{a}..{b} != {c}..{d}"
            );
        };
        close(y_range([0.6, 80.0].into_iter()), (0.5, 100.0));
        close(y_range([0.45, 30.0].into_iter()), (0.2, 50.0));
        close(y_range([1.0].into_iter()), (0.5, 2.0));
        close(y_range([0.001].into_iter()), (0.0005, 0.002));
    }

    #[test]
    fn log_ticks_are_one_two_five() {
        let (bold, light) = log_ticks(0.1, 100.0);
        let want = [0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0];
        assert_eq!(bold.len(), want.len());
        for (b, w) in bold.iter().zip(want) {
            assert!((b - w).abs() < 1e-9, "{bold:?}");
        }
        assert!(light.iter().any(|v| (v - 3.0).abs() < 1e-9));
        assert!(!light.iter().any(|v| (v - 2.0).abs() < 1e-9));
        let (bold, light) = log_ticks(0.5, 2.0);
        assert_eq!(bold.len(), 3, "{bold:?}");
        assert_eq!(light.len(), 4, "{light:?}");
        let (bold, _) = log_ticks(0.001, 1000.0);
        assert_eq!(bold.len(), 7, "{bold:?}");
    }

    #[test]
    fn labels_take_the_first_free_spot() {
        let bounds = PixelBox {
            x0: 0,
            y0: 0,
            x1: 100,
            y1: 100,
        };
        let at = |x0, y0| PixelBox {
            x0,
            y0,
            x1: x0 + 20,
            y1: y0 + 10,
        };
        let candidates = vec![
            // First choice is out of bounds, second covers an obstacle: takes the third.
            vec![at(90, 0), at(0, 0), at(40, 0)],
            // First choice overlaps the label placed before it: takes the second.
            vec![at(45, 5), at(40, 50)],
            // Every choice collides: takes the one with the fewest collisions.
            vec![at(40, 45), at(70, 80)],
            vec![],
        ];
        let obstacles = [((5, 5), 1), ((75, 85), 1)];
        let reserved = [PixelBox {
            x0: 60,
            y0: 60,
            x1: 100,
            y1: 100,
        }];
        let placed = place_labels(&candidates, &obstacles, &reserved, bounds);
        assert_eq!(
            placed,
            vec![Some(at(40, 0)), Some(at(40, 50)), Some(at(40, 45)), None]
        );
    }

    #[test]
    fn segments_are_sampled_end_to_end() {
        let pts: Vec<_> = sample_segment((0, 0), (9, -3), 3).collect();
        assert_eq!(pts, vec![(0, 0), (3, -1), (6, -2), (9, -3)]);
        assert_eq!(sample_segment((4, 4), (4, 4), 3).count(), 2);
    }

    #[test]
    fn many_points_render() {
        let sweep: Vec<_> = (0..12)
            .map(|i| {
                let c = 1usize << i;
                let rps = 4000.0 * c as f64 / (c as f64 + 2.4);
                let p50 = c as f64 / rps * 1000.0;
                point(c, rps, [p50, p50 * 1.4, p50 * 2.2, p50 * 4.0])
            })
            .collect();
        let path = temp_svg("many");
        write_plot(&path, "many", &sweep, &sweep[..3]).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert!(svg.contains("c=2048"));
    }

    #[test]
    fn tick_labels_are_short() {
        assert_eq!(format_ms(0.01), "0.01");
        assert_eq!(format_ms(0.5), "0.5");
        assert_eq!(format_ms(2.0), "2");
        assert_eq!(format_ms(100.0), "100");
        assert_eq!(format_ms(0.0005), "0.0005");
        assert_eq!(format_ms(0.001), "0.001");
        assert_eq!(format_ms(10f64.powi(-3)), "0.001");
        assert_eq!(format_ms(0.2), "0.2");
        assert_eq!(format_rps(1500.0, 2500.0), "1500");
        assert_eq!(format_rps(0.5, 1.0), "0.50");
    }
}

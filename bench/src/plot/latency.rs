//! Latency against throughput over a concurrency sweep.
//!
//! Each sweep step runs the benchmark at one concurrency (requests in flight)
//! and yields one [`PlotPoint`]: the achieved throughput and the latency
//! percentiles. [`write_plot`] draws those steps with throughput (RPC/s) on the
//! x axis and latency (milliseconds, logarithmic) on the y axis, one line per
//! percentile (p50, p90, p99, p99.9). The system under test is drawn with solid
//! lines and filled circles; an optional baseline lane (for example the
//! raw-broker ceiling) with dashed, lighter lines and triangles in the same
//! colours. Each sweep step is labelled with its concurrency (`c=64`) on the
//! outside of the bundle of lines (above the system's p99.9, below the
//! baseline's p50), so the knee of the curve, where more requests in flight buy
//! latency instead of throughput, can be read off directly.

use std::path::Path;

use anyhow::{Context as _, bail};
use plotters::chart::SeriesAnno;
use plotters::coord::{combinators::LogCoord, types::RangedCoordf64};
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::axis;

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

/// Colour of the lane entries in the legend and of the concurrency labels.
const INK: RGBColor = RGBColor(60, 60, 60);

/// Opacity of the baseline lane's lines, markers and labels.
const BASELINE_ALPHA: f64 = 0.55;

/// The chart drawn on: linear x (RPC/s), logarithmic y (ms).
type Chart<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, LogCoord<f64>>>;

/// Writes an SVG: latency percentiles (y, milliseconds, log scale) against
/// throughput (x, RPC/s), one line per percentile (p50, p90, p99, p99.9) for
/// the system lane (solid) and, if non-empty, the same for the baseline lane
/// (dashed and lighter), each sweep step labelled with its concurrency
/// ("c=64"). Title at the top; legend in the upper left. Size 1000x650.
///
/// Points are connected in order of increasing concurrency, whatever order
/// they are given in. Latencies of zero are drawn at 1 µs.
///
/// # Errors
///
/// Fails if `system` is empty, if any throughput is negative or not finite,
/// if drawing fails, or if the file cannot be written.
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
    let svg = render(title, &sorted(system), &sorted(baseline))
        .with_context(|| format!("cannot draw the plot for {}", path.display()))?;
    axis::save(path, &svg)
}

/// Draws the whole chart into an SVG document held in memory.
fn render(title: &str, system: &[PlotPoint], baseline: &[PlotPoint]) -> anyhow::Result<String> {
    let all = || system.iter().chain(baseline);
    let (x_lo, x_hi) = axis::linear_range(all().map(|p| p.rps));
    // Room above the highest marker and below the lowest for their labels.
    let (y_lo, y_hi) = axis::log_range(
        all().flat_map(|p| PERCENTILES.map(|pct| latency_ms((pct.get)(p)))),
        1.3,
        1.6,
    );

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 24))
            .margin(16)
            .x_label_area_size(48)
            .y_label_area_size(64)
            .build_cartesian_2d(x_lo..x_hi, (y_lo..y_hi).log_scale())?;
        let x_span = x_hi - x_lo;
        chart
            .configure_mesh()
            .x_desc("throughput (RPC/s)")
            .y_desc("latency (ms, log scale)")
            .y_labels(axis::LOG_KEY_POINTS)
            .x_label_formatter(&|v| format_rps(*v, x_span))
            .y_label_formatter(&|v| axis::log_tick(*v))
            .axis_desc_style(("sans-serif", 16))
            .label_style(("sans-serif", 13))
            .light_line_style(TRANSPARENT)
            .bold_line_style(RGBColor(215, 215, 215))
            .draw()?;

        for pct in PERCENTILES {
            draw_percentile(&mut chart, system, pct, false)?
                .label(pct.label)
                .legend(move |(x, y)| {
                    EmptyElement::at((x, y))
                        + PathElement::new(vec![(0, 0), (24, 0)], pct.colour.stroke_width(2))
                        + Circle::new((12, 0), 4, pct.colour.filled())
                });
        }
        for pct in PERCENTILES.into_iter().filter(|_| !baseline.is_empty()) {
            draw_percentile(&mut chart, baseline, pct, true)?;
        }
        // The lanes' entries in the legend, after the percentiles': a line style each.
        chart
            .draw_series(std::iter::empty::<Circle<(f64, f64), u32>>())?
            .label("system (solid, ●)")
            .legend(|(x, y)| {
                EmptyElement::at((x, y))
                    + PathElement::new(vec![(0, 0), (24, 0)], INK.stroke_width(2))
                    + Circle::new((12, 0), 4, INK.filled())
            });
        if !baseline.is_empty() {
            let style = INK.mix(BASELINE_ALPHA).stroke_width(2);
            chart
                .draw_series(std::iter::empty::<Circle<(f64, f64), u32>>())?
                .label("ceiling lane (dashed, ▲)")
                .legend(move |(x, y)| {
                    EmptyElement::at((x, y))
                        + DashedPathElement::new(vec![(0, 0), (24, 0)], 6, 4, style)
                        + TriangleMarker::new((12, 0), 5, style)
                });
        }

        let [p50, .., p999] = PERCENTILES;
        draw_concurrency_labels(&mut chart, system, p999, VPos::Bottom, INK.mix(1.0))?;
        draw_concurrency_labels(&mut chart, baseline, p50, VPos::Top, INK.mix(0.75))?;

        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .margin(12)
            .label_font(("sans-serif", 14))
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(180, 180, 180))
            .draw()?;
        root.present()?;
    }
    Ok(svg)
}

/// Draws one percentile of one lane: a line through the points plus a marker
/// at each, solid with circles or (for the baseline) dashed with triangles.
/// Returns the line's annotation, for a legend entry.
fn draw_percentile<'c, 'a, 'b>(
    chart: &'c mut Chart<'a, 'b>,
    points: &[PlotPoint],
    pct: Percentile,
    dashed: bool,
) -> anyhow::Result<&'c mut SeriesAnno<'a, SVGBackend<'b>>> {
    let coords: Vec<(f64, f64)> = points
        .iter()
        .map(|p| (p.rps, latency_ms((pct.get)(p))))
        .collect();
    if dashed {
        let style = pct.colour.mix(BASELINE_ALPHA).stroke_width(2);
        chart.draw_series(coords.iter().map(|&c| TriangleMarker::new(c, 5, style)))?;
        Ok(chart.draw_series(DashedLineSeries::new(coords, 8, 5, style))?)
    } else {
        let colour = pct.colour;
        chart.draw_series(coords.iter().map(|&c| Circle::new(c, 4, colour.filled())))?;
        Ok(chart.draw_series(LineSeries::new(coords, colour.stroke_width(2)))?)
    }
}

/// Labels each sweep step with its concurrency ("c=64") at the `pct` marker,
/// above it (`VPos::Bottom`: the text's bottom edge is anchored) or below it
/// (`VPos::Top`). All percentiles of a step share its x, so one label names
/// the whole column.
fn draw_concurrency_labels(
    chart: &mut Chart<'_, '_>,
    points: &[PlotPoint],
    pct: Percentile,
    anchor: VPos,
    colour: RGBAColor,
) -> anyhow::Result<()> {
    let gap = if matches!(anchor, VPos::Bottom) {
        -7
    } else {
        7
    };
    let font = ("sans-serif", 12)
        .into_font()
        .color(&colour)
        .pos(Pos::new(HPos::Center, anchor));
    chart.draw_series(points.iter().map(|p| {
        EmptyElement::at((p.rps, latency_ms((pct.get)(p))))
            + Text::new(format!("c={}", p.concurrency), (0, gap), font.clone())
    }))?;
    Ok(())
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

/// Formats a throughput tick value (RPC/s), with decimals only when the axis
/// spans so few RPC/s that whole numbers would repeat.
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

    /// Writes the plot to a temporary file and returns the SVG's text (the
    /// file is kept when `KEEP_PLOT` is set, to look at).
    fn plot_text(name: &str, system: &[PlotPoint], baseline: &[PlotPoint]) -> String {
        let path = temp_svg(name);
        write_plot(&path, name, system, baseline).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        if std::env::var_os("KEEP_PLOT").is_none() {
            std::fs::remove_file(&path).unwrap();
        }
        assert!(
            svg.starts_with("<svg"),
            "not an SVG: {}",
            &svg[..svg.len().min(80)]
        );
        svg
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
    fn writes_an_svg_with_both_lanes_a_legend_and_labels() {
        let svg = plot_text("RPC latency vs throughput", &system(), &baseline());
        let texts = axis::texts(&svg);
        for needle in [
            "p50",
            "p99.9",
            "system (solid, ●)",
            "ceiling lane (dashed, ▲)",
            "RPC latency vs throughput",
            "latency (ms, log scale)",
            "throughput (RPC/s)",
        ] {
            assert!(texts.contains(&needle), "missing {needle:?} in {texts:?}");
        }
        // One concurrency label per step and lane.
        for label in ["c=1", "c=16", "c=64", "c=512"] {
            let n = texts.iter().filter(|t| **t == label).count();
            assert_eq!(n, 2, "{label} in {texts:?}");
        }
        // The log axis (0.1 to 128 ms here) is labelled at 1-2-5 steps, its
        // other grid lines bare.
        for tick in ["0.1", "0.2", "0.5", "1", "2", "5", "10", "50", "100"] {
            assert!(texts.contains(&tick), "missing tick {tick:?} in {texts:?}");
        }
        for bare in ["0.3", "3", "30"] {
            assert!(!texts.contains(&bare), "{bare:?} labelled in {texts:?}");
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
        let svg = plot_text("one point", &[point(8, 0.0, [0.0; 4])], &[]);
        let texts = axis::texts(&svg);
        assert!(texts.contains(&"c=8"), "{texts:?}");
        assert!(!svg.contains("ceiling lane"));
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
        let svg = plot_text("many", &sweep, &sweep[..3]);
        let texts = axis::texts(&svg);
        assert!(
            texts.contains(&"c=1") && texts.contains(&"c=2048"),
            "{texts:?}"
        );
    }

    #[test]
    fn throughput_ticks_have_decimals_only_when_needed() {
        assert_eq!(format_rps(1500.0, 2500.0), "1500");
        assert_eq!(format_rps(1.5, 10.0), "1.5");
        assert_eq!(format_rps(0.5, 1.0), "0.50");
    }
}

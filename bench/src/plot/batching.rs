//! Names per second against the batch size (`producer --batch`), both axes
//! logarithmic, each point labelled with its rate.

use std::path::Path;

use anyhow::Context as _;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::axis;

/// Draws names per second against the batch size: `points` are
/// (batch size, names per second), one per bulk run.
///
/// # Errors
///
/// Fails if there are no points, if drawing fails, or if the file cannot be
/// written.
pub(crate) fn write_plot(path: &Path, title: &str, points: &[(usize, f64)]) -> anyhow::Result<()> {
    anyhow::ensure!(!points.is_empty(), "nothing to plot");
    let points: Vec<(f64, f64)> = points.iter().map(|&(b, r)| (b as f64, r)).collect();
    // Batch sizes are powers of ten in practice, which get a tick each
    // wherever the axis starts: no need to widen it to the decade below.
    let x_lo = points
        .iter()
        .map(|p| p.0)
        .fold(f64::INFINITY, f64::min)
        .max(1.0)
        / 1.4;
    let x_hi = points.iter().map(|p| p.0).fold(1.0, f64::max) * 1.4;
    let (y_lo, y_hi) = axis::log_range(points.iter().map(|p| p.1), 1.3, 1.6);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (900, 560)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(20)
            .x_label_area_size(50)
            .y_label_area_size(80)
            .build_cartesian_2d((x_lo..x_hi).log_scale(), (y_lo..y_hi).log_scale())?;
        chart
            .configure_mesh()
            .x_desc("names per request (--batch)")
            .y_desc("names per second")
            .x_labels(axis::LOG_KEY_POINTS)
            .y_labels(axis::LOG_KEY_POINTS)
            .x_label_formatter(&|v| axis::log_tick(*v))
            .y_label_formatter(&|v| axis::log_tick(*v))
            .light_line_style(TRANSPARENT)
            .bold_line_style(RGBColor(215, 215, 215))
            .draw()?;
        chart.draw_series(LineSeries::new(
            points.iter().copied(),
            BLUE.stroke_width(2),
        ))?;
        let font = ("sans-serif", 14)
            .into_font()
            .color(&BLACK)
            .pos(Pos::new(HPos::Center, VPos::Bottom));
        chart.draw_series(points.iter().map(|&(x, y)| {
            EmptyElement::at((x, y))
                + Circle::new((0, 0), 5, BLUE.filled())
                + Text::new(format!("{y:.0}/s"), (0, -9), font.clone())
        }))?;
        root.present()?;
    }
    axis::save(path, &svg).with_context(|| format!("cannot plot {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_rates_against_batch_sizes() {
        let path = std::env::temp_dir().join(format!("bench-batching-{}.svg", std::process::id()));
        let runs = [(1, 590.0), (10, 5_400.0), (100, 35_000.0), (1000, 41_000.0)];
        write_plot(&path, "names/s vs --batch", &runs).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        if std::env::var_os("KEEP_PLOT").is_none() {
            std::fs::remove_file(&path).unwrap();
        }
        let texts = axis::texts(&svg);
        for needle in [
            "names/s vs --batch",
            "590/s",
            "35000/s",
            "1",
            "10",
            "100",
            "1000",
            "500",
            "1000",
            "10000",
            "50000",
        ] {
            assert!(texts.contains(&needle), "missing {needle:?} in {texts:?}");
        }
    }

    #[test]
    fn no_points_is_an_error() {
        let path = std::env::temp_dir().join("bench-batching-empty.svg");
        assert!(write_plot(&path, "t", &[]).is_err());
        assert!(!path.exists());
    }
}

//! What both plots share: logarithmic axis ranges and tick labels, a linear
//! range with margins, and writing the finished SVG.

use std::path::Path;

use anyhow::Context as _;

/// Key points plotters is asked for on a log axis. With up to about three
/// decades this makes it place a grid line at every integer multiple of each
/// power of ten (1, 2, ... 9); [`log_tick`] then labels only 1, 2 and 5.
pub(super) const LOG_KEY_POINTS: usize = 30;

/// A log-axis range around `values`: from the power of ten at or below the
/// smallest divided by `below`, to the largest times `above` (room for labels
/// beside the extreme markers). The start must be a power of ten, as plotters
/// places a log axis's ticks from the first power of ten in range. Values that
/// are not positive are ignored; with none left the range is 1 to 10.
pub(super) fn log_range(values: impl Iterator<Item = f64>, below: f64, above: f64) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| v.is_finite() && *v > 0.0)
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if !lo.is_finite() {
        return (1.0, 10.0);
    }
    let decade = 10f64.powf((lo / below).log10().floor());
    // A hair below the power of ten, so that rounding in plotters' own
    // logarithm cannot skip the first decade's ticks.
    (decade * (1.0 - 1e-9), hi * above)
}

/// The label of a log-axis tick: the value (see [`format_number`]) when it is
/// 1, 2 or 5 times a power of ten, else empty (a grid line without a label).
pub(super) fn log_tick(v: f64) -> String {
    if !v.is_finite() || v <= 0.0 {
        return String::new();
    }
    let leading = (v / 10f64.powf((v.log10() + 1e-9).floor())).round();
    if [1.0, 2.0, 5.0].contains(&leading) {
        format_number(v)
    } else {
        String::new()
    }
}

/// Formats a tick value with as many decimals as its leading digit needs and
/// no trailing zeros: "0.0005", "0.01", "0.5", "2", "100", "20000".
pub(super) fn format_number(v: f64) -> String {
    if v >= 1.0 || v <= 0.0 || !v.is_finite() {
        return format!("{v:.0}");
    }
    let decimals = (-(v * (1.0 + 1e-9)).log10()).ceil().clamp(1.0, 12.0) as usize;
    let s = format!("{v:.decimals$}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// A linear range around `values`: their span plus 6 % either side (at least
/// 5 % of the largest value, or 1 when everything is zero), never below zero.
pub(super) fn linear_range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if !lo.is_finite() || !hi.is_finite() {
        return (0.0, 1.0);
    }
    let margin = ((hi - lo) * 0.06).max(hi.abs() * 0.05).max(1.0);
    ((lo - margin).max(0.0), hi + margin)
}

/// Writes `svg` to `path` through a temporary file beside it, so that a
/// failed run never leaves half a plot.
///
/// # Errors
///
/// Fails if either file cannot be written.
pub(super) fn save(path: &Path, svg: &str) -> anyhow::Result<()> {
    let partial = path.with_extension("svg.tmp");
    std::fs::write(&partial, svg).with_context(|| format!("cannot write {}", partial.display()))?;
    std::fs::rename(&partial, path).with_context(|| format!("cannot write {}", path.display()))
}

/// The text of every `<text>` element of an SVG, trimmed, in document order:
/// what a reader of the plot sees written.
#[cfg(test)]
pub(super) fn texts(svg: &str) -> Vec<&str> {
    svg.split("</text>")
        .filter_map(|chunk| {
            let element = &chunk[chunk.rfind("<text")?..];
            Some(element[element.find('>')? + 1..].trim())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_ranges_start_on_a_power_of_ten() {
        let close = |(a, b): (f64, f64), (c, d): (f64, f64)| {
            assert!(
                (a - c).abs() < c * 1e-9 && (b - d).abs() < d * 1e-9,
                "{a}..{b} != {c}..{d}"
            );
        };
        close(log_range([0.6, 80.0].into_iter(), 1.3, 1.5), (0.1, 120.0));
        assert!(log_range([0.6].into_iter(), 1.3, 1.5).0 < 0.1);
        close(log_range([1.37, 30.0].into_iter(), 1.3, 1.5), (1.0, 45.0));
        close(log_range([1.2].into_iter(), 1.3, 1.5), (0.1, 1.8));
        let nothing = [0.0, -1.0, f64::NAN].into_iter();
        close(log_range(nothing, 1.3, 1.5), (1.0, 10.0));
    }

    #[test]
    fn log_ticks_are_labelled_at_one_two_five() {
        assert_eq!(log_tick(0.1), "0.1");
        assert_eq!(log_tick(0.1 * 2.0), "0.2");
        assert_eq!(log_tick(0.1 * 3.0), "");
        assert_eq!(log_tick(0.1 * 5.0), "0.5");
        assert_eq!(log_tick(1.0), "1");
        assert_eq!(log_tick(9.0), "");
        assert_eq!(log_tick(20_000.0), "20000");
        assert_eq!(log_tick(0.0), "");
    }

    #[test]
    fn texts_are_read_from_text_elements() {
        let svg = "<svg><text x=\"1\">\nc=64\n</text><rect/><text>p50</text></svg>";
        assert_eq!(texts(svg), ["c=64", "p50"]);
    }

    #[test]
    fn numbers_are_short() {
        assert_eq!(format_number(0.01), "0.01");
        assert_eq!(format_number(0.5), "0.5");
        assert_eq!(format_number(2.0), "2");
        assert_eq!(format_number(100.0), "100");
        assert_eq!(format_number(0.0005), "0.0005");
        assert_eq!(format_number(10f64.powi(-3)), "0.001");
    }

    #[test]
    fn linear_ranges_have_margins() {
        let (lo, hi) = linear_range([1500.0, 4000.0].into_iter());
        assert!(
            lo < 1500.0 && lo > 1000.0 && hi > 4000.0 && hi < 4500.0,
            "{lo}..{hi}"
        );
        let (lo, hi) = linear_range([2000.0].into_iter());
        assert!(lo < 2000.0 && hi > 2000.0, "{lo}..{hi}");
        assert_eq!(linear_range([0.0].into_iter()), (0.0, 1.0));
    }

    #[test]
    fn saving_to_a_missing_directory_is_an_error() {
        let path = std::env::temp_dir()
            .join("no-such-dir-for-bench-plot")
            .join("x.svg");
        let err = save(&path, "<svg/>").unwrap_err();
        assert!(format!("{err:#}").contains("cannot write"), "{err:#}");
    }
}

//! The progress bar on stderr and the output that has to pass under it, both
//! drawn at a bounded rate however fast names go: a frame per name was
//! 20,004 frames and 1.7 MB of terminal traffic for 20,000 names.
//!
//! indicatif limits the frames it draws by itself ([`DRAW_HZ`]), but every
//! [`ProgressBar::suspend`] (clear the bar, print, draw it again) is drawn
//! whatever the limit. So while a bar is shown, [`Paced`] collects the lines
//! of each name and prints them under one suspend at most every
//! [`FLUSH_EVERY`]; with no bar (stderr not a terminal, or few names) lines
//! go straight through, as before.

use std::{
    fmt,
    io::{self, Write},
    time::{Duration, Instant},
};

use indicatif::{HumanCount, ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

/// Frames per second indicatif may draw on its own (the steady tick, `inc`).
pub const DRAW_HZ: u8 = 5;

/// Shortest time between two prints of collected lines, each a forced
/// frame: with [`DRAW_HZ`], at most about 10 frames a second.
pub const FLUSH_EVERY: Duration = Duration::from_millis(200);

/// A bar for `count` names (a spinner when the count is unknown) drawn on
/// `target`, which `main` makes [`ProgressDrawTarget::stderr_with_hz`] with
/// [`DRAW_HZ`]. The rate is whole names a second, `22,614/s`.
#[must_use]
pub fn bar(count: Option<usize>, target: ProgressDrawTarget) -> ProgressBar {
    let (bar, template) = match count {
        Some(n) => (
            ProgressBar::with_draw_target(Some(n as u64), target),
            "{bar:40} {pos}/{len} names {rate} eta {eta}",
        ),
        None => (
            ProgressBar::with_draw_target(None, target),
            "{spinner} {pos} names {rate}",
        ),
    };
    let style = ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .with_key("rate", |state: &ProgressState, w: &mut dyn fmt::Write| {
            let _ = w.write_str(&rate(state.per_sec()));
        });
    let bar = bar
        .with_style(style)
        .with_finish(indicatif::ProgressFinish::AndClear);
    bar.enable_steady_tick(Duration::from_secs(1) / u32::from(DRAW_HZ));
    bar
}

/// `per_sec` rounded to whole names, thousands grouped: `22,614/s` (not
/// indicatif's `22,614.0245/s`).
#[must_use]
pub fn rate(per_sec: f64) -> String {
    // A rate is finite and positive; anything else shows as 0.
    let whole = if per_sec.is_finite() && per_sec > 0.0 {
        per_sec.round() as u64
    } else {
        0
    };
    format!("{}/s", HumanCount(whole))
}

/// Output that passes under a progress bar: lines collected while the bar
/// shows, printed together at most every [`FLUSH_EVERY`].
#[derive(Debug)]
pub struct Paced {
    out: Vec<u8>,
    err: Vec<u8>,
    last_flush: Instant,
}

impl Default for Paced {
    fn default() -> Self {
        Self::new()
    }
}

impl Paced {
    /// Nothing collected yet.
    #[must_use]
    pub fn new() -> Self {
        Self {
            out: Vec::new(),
            err: Vec::new(),
            last_flush: Instant::now(),
        }
    }

    /// Runs `write` for one name's lines: straight to `out` and `err` when
    /// `bar` is hidden, else into buffers printed under the bar when
    /// [`FLUSH_EVERY`] has passed since the last print.
    ///
    /// # Errors
    /// Those of `write`, `out` and `err`.
    pub fn write<O: Write, E: Write>(
        &mut self,
        bar: &ProgressBar,
        out: &mut O,
        err: &mut E,
        write: impl FnOnce(&mut dyn Write, &mut dyn Write) -> io::Result<()>,
    ) -> io::Result<()> {
        if bar.is_hidden() {
            return write(out, err);
        }
        write(&mut self.out, &mut self.err)?;
        if self.last_flush.elapsed() >= FLUSH_EVERY {
            self.flush(bar, out, err)?;
        }
        Ok(())
    }

    /// Prints whatever is collected, under one suspend of `bar`.
    ///
    /// # Errors
    /// Those of `out` and `err`.
    pub fn flush<O: Write, E: Write>(
        &mut self,
        bar: &ProgressBar,
        out: &mut O,
        err: &mut E,
    ) -> io::Result<()> {
        self.last_flush = Instant::now();
        if self.out.is_empty() && self.err.is_empty() {
            return Ok(());
        }
        let result = bar.suspend(|| {
            err.write_all(&self.err)?;
            err.flush()?;
            out.write_all(&self.out)?;
            out.flush()
        });
        self.out.clear();
        self.err.clear();
        result
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    };

    use indicatif::TermLike;

    use super::*;

    /// A terminal that counts frames (each draw ends with a flush) and
    /// keeps the text of the last one.
    #[derive(Debug, Default, Clone)]
    struct Counting {
        frames: Arc<AtomicUsize>,
        bytes: Arc<AtomicUsize>,
    }

    impl TermLike for Counting {
        fn width(&self) -> u16 {
            100
        }
        fn move_cursor_up(&self, _: usize) -> io::Result<()> {
            Ok(())
        }
        fn move_cursor_down(&self, _: usize) -> io::Result<()> {
            Ok(())
        }
        fn move_cursor_right(&self, _: usize) -> io::Result<()> {
            Ok(())
        }
        fn move_cursor_left(&self, _: usize) -> io::Result<()> {
            Ok(())
        }
        fn write_line(&self, s: &str) -> io::Result<()> {
            self.bytes.fetch_add(s.len() + 1, Ordering::Relaxed);
            Ok(())
        }
        fn write_str(&self, s: &str) -> io::Result<()> {
            self.bytes.fetch_add(s.len(), Ordering::Relaxed);
            Ok(())
        }
        fn clear_line(&self) -> io::Result<()> {
            Ok(())
        }
        fn flush(&self) -> io::Result<()> {
            self.frames.fetch_add(1, Ordering::Relaxed);
            Ok(())
        }
    }

    fn frames_for(names: usize, count: Option<usize>) -> (usize, Duration, Vec<u8>) {
        let term = Counting::default();
        let target = ProgressDrawTarget::term_like_with_hz(Box::new(term.clone()), DRAW_HZ);
        let bar = bar(count, target);
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let mut paced = Paced::new();
        let start = Instant::now();
        for i in 0..names {
            bar.inc(1);
            paced
                .write(&bar, &mut out, &mut err, |out, err| {
                    writeln!(out, "hello name{i}")?;
                    if i % 100 == 0 {
                        writeln!(err, "producer: no reply from goodbye for \"name{i}\"")?;
                    }
                    Ok(())
                })
                .expect("write to Vec");
        }
        paced.flush(&bar, &mut out, &mut err).expect("write to Vec");
        bar.finish_and_clear();
        let took = start.elapsed();
        assert_eq!(String::from_utf8_lossy(&out).lines().count(), names);
        assert_eq!(String::from_utf8_lossy(&err).lines().count(), names / 100);
        (term.frames.load(Ordering::Relaxed), took, out)
    }

    #[test]
    fn frames_are_bounded_by_time_not_by_names() {
        for count in [Some(20_000), None] {
            let (frames, took, _) = frames_for(20_000, count);
            // At most DRAW_HZ frames a second of its own, two per flush (clear
            // and redraw), plus the first and the last; a frame per name
            // would be 20,000 or more.
            let flushes = took.as_millis() / FLUSH_EVERY.as_millis() + 2;
            let bound = (took.as_secs_f64() * f64::from(DRAW_HZ)).ceil() as u128 + 2 * flushes + 4;
            assert!(
                (frames as u128) <= bound,
                "{frames} frames in {took:?} (bound {bound}) for {count:?}"
            );
            assert!(frames < 1_000, "{frames} frames for 20,000 names");
        }
    }

    #[test]
    fn every_line_comes_out_in_order() {
        let (_, _, out) = frames_for(1_000, Some(1_000));
        let expected: String = (0..1_000).map(|i| format!("hello name{i}\n")).collect();
        assert_eq!(String::from_utf8_lossy(&out), expected);
    }

    #[test]
    fn the_rate_is_whole_names_a_second_grouped_by_thousands() {
        assert_eq!(rate(22_614.024_5), "22,614/s");
        assert_eq!(rate(0.4), "0/s");
        assert_eq!(rate(1_999.5), "2,000/s");
        assert_eq!(rate(f64::NAN), "0/s");
        assert_eq!(rate(f64::INFINITY), "0/s");
    }
}

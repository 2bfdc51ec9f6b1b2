//! [`Sinks`]: where a run writes its results, problems and progress.

use indicatif::ProgressBar;

/// Where a run writes: results to `out`, problems to `err`, progress to `progress`.
#[derive(Debug)]
pub struct Sinks<O, E> {
    /// Greetings (text or JSON).
    pub out: O,
    /// Missing replies, error replies, invalid input.
    pub err: E,
    /// A progress bar, or [`ProgressBar::hidden`].
    pub progress: ProgressBar,
}

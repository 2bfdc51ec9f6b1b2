//! The bench's plots, rendered as SVG with plotters: latency against
//! throughput over a concurrency sweep ([`latency`]) and names per second
//! against the batch size ([`batching`]). Axes, legends and point labels are
//! plotters' own (log-scale axes, series labels, anchored text); [`axis`] holds
//! what both plots share.

mod axis;
mod batching;
mod latency;

pub(crate) use batching::write_plot as write_batching_plot;
pub(crate) use latency::{PlotPoint, write_plot as write_latency_plot};

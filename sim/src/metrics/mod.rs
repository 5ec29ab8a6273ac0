//! Measurements of a run: per-worker HDR histograms and counters, merged losslessly into [`RunMetrics`].
//!
//! - [`operation`](Operation): the names of what is timed ([`Operation`]),
//!   and which operation's thresholds judge each message class's loss.
//! - [`Recorder`]: one per worker thread; whole-run histograms (µs, 1 µs ..
//!   1 h, 3 significant digits) per operation, the per-second series
//!   ([`SecondBucket`]: counts, and a coarse histogram per delivery
//!   operation), error kinds and the [`Ledger`](crate::ledger::Ledger). Never raw samples.
//! - [`MetricsHub`]: hands each thread its own recorder ([`LocalRecorder`])
//!   and merges them all, mid-run or at the end.
//! - [`RunMetrics`]: the merged result, with [`LatencySummary`] figures and
//!   [`SeriesRow`]s for reports.
//! - [`write_interval_logs`]: HDR interval logs for external tools.

mod hlog;
mod hub;
mod operation;
mod recorder;
mod run;
mod series;

pub use hlog::{HlogError, interval_log, write_interval_logs};
pub use hub::{LocalRecorder, MetricsHub};
pub use operation::{Operation, UnknownOperation};
pub use recorder::{
    MAX_ERROR_KINDS, MAX_LATENCY_US, OTHER_ERROR_KIND, Recorder, SIGNIFICANT_DIGITS, new_histogram,
};
pub use run::{LatencySummary, RunMetrics};
pub use series::{MAX_SERIES_SECONDS, SecondBucket, SecondLatency, SeriesRow};

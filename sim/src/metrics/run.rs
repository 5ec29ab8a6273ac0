//! The merged metrics of a run and the figures reports read from them (summaries, percentiles, series rows).

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use super::operation::Operation;
use super::recorder::Recorder;
use super::series::SeriesRow;
use crate::ledger::Ledger;

/// All recorders of a run (or of several shards) added together.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunMetrics {
    merged: Recorder,
}

impl From<Recorder> for RunMetrics {
    fn from(merged: Recorder) -> Self {
        Self { merged }
    }
}

/// Latency figures of one operation, in milliseconds (from µs histograms,
/// so with µs precision and HDR's 0.1% resolution).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    /// Number of samples.
    pub count: u64,
    /// Smallest sample.
    pub min_ms: f64,
    /// Mean.
    pub mean_ms: f64,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Largest sample.
    pub max_ms: f64,
}

impl LatencySummary {
    /// The summary of a µs histogram, `None` when it is empty.
    pub fn of(histogram: &Histogram<u64>) -> Option<Self> {
        if histogram.is_empty() {
            return None;
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Some(Self {
            count: histogram.len(),
            min_ms: ms(histogram.min()),
            mean_ms: histogram.mean() / 1000.0,
            p50_ms: ms(histogram.value_at_quantile(0.50)),
            p90_ms: ms(histogram.value_at_quantile(0.90)),
            p99_ms: ms(histogram.value_at_quantile(0.99)),
            p999_ms: ms(histogram.value_at_quantile(0.999)),
            max_ms: ms(histogram.max()),
        })
    }
}

impl RunMetrics {
    /// Empty metrics.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `other` (another shard, say) into these metrics, losslessly.
    pub fn merge(&mut self, other: &RunMetrics) {
        self.merged.merge(&other.merged);
    }

    /// The whole-run histogram of `op` in µs, if it has samples.
    pub fn histogram(&self, op: Operation) -> Option<&Histogram<u64>> {
        self.merged.histogram(op).filter(|h| !h.is_empty())
    }

    /// The operations that have samples, in report order.
    pub fn operations(&self) -> Vec<Operation> {
        Operation::ALL
            .into_iter()
            .filter(|op| self.histogram(*op).is_some())
            .collect()
    }

    /// Latency figures of `op`, if it has samples.
    pub fn summary(&self, op: Operation) -> Option<LatencySummary> {
        self.histogram(op).and_then(LatencySummary::of)
    }

    /// The latency of `op` at percentile `q` (0..=100), in ms.
    pub fn percentile(&self, op: Operation, q: f64) -> Option<f64> {
        self.histogram(op)
            .map(|h| h.value_at_quantile((q / 100.0).clamp(0.0, 1.0)) as f64 / 1000.0)
    }

    /// The time series, one row per second since the start.
    pub fn series_rows(&self) -> Vec<SeriesRow> {
        self.merged
            .series()
            .iter()
            .enumerate()
            .map(|(second, bucket)| SeriesRow::from_bucket(second, bucket))
            .collect()
    }

    /// The merged ledger.
    pub fn ledger(&self) -> &Ledger {
        self.merged.ledger()
    }

    /// The merged ledger, for figures only known at the end (e.g. the
    /// bus's `still_queued`, the connection target).
    pub fn ledger_mut(&mut self) -> &mut Ledger {
        self.merged.ledger_mut()
    }

    /// Error counts by kind.
    pub fn error_kinds(&self) -> &BTreeMap<String, u64> {
        self.merged.error_kinds()
    }

    /// All errors counted.
    pub fn total_errors(&self) -> u64 {
        self.merged.error_kinds().values().sum()
    }

    /// The merged recorder underneath, for lossless re-merging.
    pub fn recorder(&self) -> &Recorder {
        &self.merged
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn metrics() -> RunMetrics {
        let mut r = Recorder::new();
        for ms in 1..=1000u64 {
            r.record(
                Operation::PublishDelivery,
                ms * 1000,
                Duration::from_millis(ms),
            );
        }
        r.count_error(Duration::ZERO, "x");
        RunMetrics::from(r)
    }

    #[test]
    fn summaries_are_in_milliseconds() {
        let m = metrics();
        let s = m.summary(Operation::PublishDelivery).unwrap();
        assert_eq!(s.count, 1000);
        assert!((s.min_ms - 1.0).abs() < 0.01);
        assert!((s.p50_ms - 500.0).abs() < 1.0, "{}", s.p50_ms);
        assert!((s.p99_ms - 990.0).abs() < 1.0, "{}", s.p99_ms);
        assert!((s.max_ms - 1000.0).abs() < 1.0, "{}", s.max_ms);
        assert!((s.mean_ms - 500.5).abs() < 1.0, "{}", s.mean_ms);
        assert!(m.summary(Operation::Connect).is_none());
        assert_eq!(m.operations(), vec![Operation::PublishDelivery]);
        assert!((m.percentile(Operation::PublishDelivery, 90.0).unwrap() - 900.0).abs() < 1.0);
        assert_eq!(m.total_errors(), 1);
    }

    #[test]
    fn series_rows_cover_every_second() {
        let rows = metrics().series_rows();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].errors, 1);
        assert!(rows[0].p99_ms.unwrap() < 1000.0);
        assert!(rows[1].p50_ms.unwrap() >= 999.0);
    }
}

//! One worker's recorder: whole-run HDR histograms per operation, the per-second series, error kinds and the ledger.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;

use super::operation::Operation;
use super::series::{SecondBucket, bucket_mut, merge_series};
use crate::ledger::Ledger;

/// Highest latency the whole-run histograms hold: one hour, in µs. Larger
/// values are clamped to it (and still counted).
pub const MAX_LATENCY_US: u64 = 3_600_000_000;

/// Significant digits of the whole-run histograms (0.1% resolution).
pub const SIGNIFICANT_DIGITS: u8 = 3;

/// Distinct error kinds kept by name; further kinds are counted as
/// [`OTHER_ERROR_KIND`], so a flood of unique error texts cannot grow memory.
pub const MAX_ERROR_KINDS: usize = 64;

/// The kind that absorbs error kinds beyond [`MAX_ERROR_KINDS`].
pub const OTHER_ERROR_KIND: &str = "other";

/// A new, empty whole-run histogram (1 µs .. 1 h, 3 significant digits).
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, SIGNIFICANT_DIGITS)
        .expect("constant histogram bounds are valid")
}

/// Everything one worker thread measured. Never stores raw samples: memory
/// is one histogram per operation actually used (created on first record,
/// ~200 KB each), the per-second series (see
/// [`SecondBucket`](super::SecondBucket)), at most [`MAX_ERROR_KINDS`]
/// error names and the fixed-size ledger.
///
/// `at` arguments are the time since the run started; they pick the
/// second of the series.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Recorder {
    histograms: [Option<Histogram<u64>>; Operation::ALL.len()],
    series: Vec<SecondBucket>,
    errors: BTreeMap<String, u64>,
    ledger: Ledger,
}

impl Recorder {
    /// An empty recorder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one latency sample of `op`, in microseconds. Delivery
    /// operations ([`Operation::PER_SECOND`]) also feed their per-second
    /// histogram of the series.
    pub fn record(&mut self, op: Operation, latency_us: u64, at: Duration) {
        self.histograms[op.index()]
            .get_or_insert_with(new_histogram)
            .saturating_record(latency_us);
        if op.is_delivery()
            && let Some(bucket) = bucket_mut(&mut self.series, at)
        {
            bucket.record_latency(op, latency_us);
        }
    }

    /// [`Recorder::record`] with a `Duration` latency.
    pub fn record_duration(&mut self, op: Operation, latency: Duration, at: Duration) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.record(op, us, at);
    }

    /// Counts one message sent at `at` (the time series only; the ledger's
    /// expectations are counted by the runner).
    pub fn count_sent(&mut self, at: Duration) {
        if let Some(bucket) = bucket_mut(&mut self.series, at) {
            bucket.sent += 1;
        }
    }

    /// Counts one message delivered at `at` (the time series only).
    pub fn count_delivered(&mut self, at: Duration) {
        if let Some(bucket) = bucket_mut(&mut self.series, at) {
            bucket.delivered += 1;
        }
    }

    /// Counts one error of `kind` (a short, stable name such as
    /// "connect_refused" or "error_frame:queue_full") at `at`.
    pub fn count_error(&mut self, at: Duration, kind: &str) {
        if let Some(bucket) = bucket_mut(&mut self.series, at) {
            bucket.errors += 1;
        }
        add_error_kind(&mut self.errors, kind, 1);
    }

    /// A recorder rebuilt from what another one held: whole-run
    /// histograms (which must have this recorder's bounds, 1 µs .. 1 h),
    /// the per-second series, error counts and the ledger. `sim merge`
    /// rebuilds each shard's recorder from its HDR logs and shard record.
    pub fn from_parts(
        histograms: impl IntoIterator<Item = (Operation, Histogram<u64>)>,
        series: Vec<SecondBucket>,
        errors: BTreeMap<String, u64>,
        ledger: Ledger,
    ) -> Self {
        let mut recorder = Self {
            series,
            errors,
            ledger,
            ..Self::default()
        };
        for (op, histogram) in histograms {
            recorder.histograms[op.index()] = Some(histogram);
        }
        recorder
    }

    /// The ledger, to read.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// The ledger, to count into.
    pub fn ledger_mut(&mut self) -> &mut Ledger {
        &mut self.ledger
    }

    /// The whole-run histogram of `op`, if anything was recorded.
    pub fn histogram(&self, op: Operation) -> Option<&Histogram<u64>> {
        self.histograms[op.index()].as_ref()
    }

    /// The per-second series, indexed by whole seconds since start.
    pub fn series(&self) -> &[SecondBucket] {
        &self.series
    }

    /// Error counts by kind.
    pub fn error_kinds(&self) -> &BTreeMap<String, u64> {
        &self.errors
    }

    /// Adds everything `other` recorded into this recorder. Lossless:
    /// histograms are added bucket by bucket, so the result equals one
    /// recorder that got all samples.
    pub fn merge(&mut self, other: &Recorder) {
        for (mine, theirs) in self.histograms.iter_mut().zip(&other.histograms) {
            if let Some(theirs) = theirs {
                mine.get_or_insert_with(new_histogram)
                    .add(theirs)
                    .expect("whole-run histograms share their bounds");
            }
        }
        merge_series(&mut self.series, &other.series);
        for (kind, count) in &other.errors {
            add_error_kind(&mut self.errors, kind, *count);
        }
        self.ledger.merge(&other.ledger);
    }
}

/// Adds `count` errors of `kind`, folding new kinds into "other" once
/// [`MAX_ERROR_KINDS`] names are kept.
fn add_error_kind(errors: &mut BTreeMap<String, u64>, kind: &str, count: u64) {
    if let Some(existing) = errors.get_mut(kind) {
        *existing += count;
    } else if errors.len() < MAX_ERROR_KINDS || kind == OTHER_ERROR_KIND {
        errors.insert(kind.to_owned(), count);
    } else {
        *errors.entry(OTHER_ERROR_KIND.to_owned()).or_default() += count;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_created_lazily() {
        let mut r = Recorder::new();
        assert!(r.histogram(Operation::Connect).is_none());
        r.record(Operation::Connect, 1_500, Duration::ZERO);
        assert_eq!(r.histogram(Operation::Connect).unwrap().len(), 1);
        assert!(r.histogram(Operation::DirectRtt).is_none());
        // Connect is not a delivery operation: no per-second latency.
        assert!(r.series().is_empty());
    }

    #[test]
    fn merging_two_recorders_equals_one_that_saw_everything() {
        let (mut a, mut b, mut all) = (Recorder::new(), Recorder::new(), Recorder::new());
        for i in 0..5_000u64 {
            let at = Duration::from_millis(i * 3);
            let op = Operation::ALL[(i % 9) as usize];
            let latency = (i * 7_919) % 2_000_000 + 1;
            let target = if i % 2 == 0 { &mut a } else { &mut b };
            target.record(op, latency, at);
            target.count_sent(at);
            all.record(op, latency, at);
            all.count_sent(at);
            if i % 5 == 0 {
                target.count_error(at, "timeout");
                all.count_error(at, "timeout");
            }
        }
        a.merge(&b);
        for op in Operation::ALL {
            assert_eq!(a.histogram(op), all.histogram(op), "{op}");
        }
        assert_eq!(a.series(), all.series());
        assert_eq!(a.error_kinds(), all.error_kinds());
        assert_eq!(a, all);
    }

    #[test]
    fn error_kinds_are_capped() {
        let mut r = Recorder::new();
        for i in 0..100 {
            r.count_error(Duration::from_secs(1), &format!("kind-{i}"));
        }
        r.count_error(Duration::from_secs(1), "kind-0");
        let kinds = r.error_kinds();
        assert_eq!(kinds.len(), MAX_ERROR_KINDS + 1);
        assert_eq!(kinds["kind-0"], 2);
        assert_eq!(kinds[OTHER_ERROR_KIND], 100 - MAX_ERROR_KINDS as u64);
        assert_eq!(kinds.values().sum::<u64>(), 101);
        assert_eq!(r.series()[1].errors, 101);
    }

    #[test]
    fn latencies_beyond_an_hour_are_clamped() {
        let mut r = Recorder::new();
        r.record(Operation::QueueWait, u64::MAX, Duration::ZERO);
        let h = r.histogram(Operation::QueueWait).unwrap();
        assert_eq!(h.len(), 1);
        assert!(h.max() >= MAX_LATENCY_US);
    }
}

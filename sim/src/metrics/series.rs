//! The per-second time series: counts and a coarse delivery-latency histogram per second of the run.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use serde::{Deserialize, Serialize};

use super::operation::Operation;

/// The series stops growing after this many seconds (24 h), so a runaway
/// run cannot grow it without bound; later samples still reach the
/// whole-run histograms and counters, only their per-second row is dropped.
pub const MAX_SERIES_SECONDS: usize = 86_400;

/// Largest latency the per-second histograms resolve (60 s); larger values
/// are clamped. The whole-run histograms keep the full range.
const SECOND_HISTOGRAM_MAX_US: u64 = 60_000_000;

/// How many operations the series times per second.
const TIMED: usize = Operation::PER_SECOND.len();

/// One second of the run, as recorded by one worker (or merged).
///
/// Memory: three counters, plus — for each operation of
/// [`Operation::PER_SECOND`] that recorded a latency in this second — an
/// HDR histogram with 2 significant digits and 32-bit counts (about 10 KB).
/// So the series costs at most ~10 KB per second of run, worker and timed
/// operation (~36 MB per hour per worker for a scenario that only
/// publishes, ~108 MB when it also chats and queues), bounded by
/// [`MAX_SERIES_SECONDS`]. One histogram per operation, not one for all of
/// them, so each operation's second can be judged against its own limits.
///
/// Serializes losslessly (each histogram as base64 of its compressed HDR
/// V2 encoding), so shards of a run can hand their series to `sim merge`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(into = "BucketRecord", try_from = "BucketRecord")]
pub struct SecondBucket {
    /// Messages sent in this second.
    pub sent: u64,
    /// Messages delivered in this second.
    pub delivered: u64,
    /// Errors in this second.
    pub errors: u64,
    /// Latencies (µs) of this second, by [`Operation::per_second_index`].
    latency: [Option<Histogram<u32>>; TIMED],
}

impl SecondBucket {
    /// Records one latency of `op` in this second's histogram of it;
    /// operations the series does not time are ignored.
    pub fn record_latency(&mut self, op: Operation, latency_us: u64) {
        if let Some(index) = op.per_second_index() {
            self.latency[index]
                .get_or_insert_with(new_second_histogram)
                .saturating_record(latency_us.min(SECOND_HISTOGRAM_MAX_US));
        }
    }

    /// This second's latencies of `op`, if it recorded any.
    pub fn latency(&self, op: Operation) -> Option<&Histogram<u32>> {
        self.latency[op.per_second_index()?].as_ref()
    }

    /// This second's latencies of every timed operation together, if any
    /// recorded one (a figure for "how fast did messages arrive", with no
    /// single operation's limits to judge it by).
    pub fn all_latency(&self) -> Option<Histogram<u32>> {
        let mut all: Option<Histogram<u32>> = None;
        for histogram in self.latency.iter().flatten() {
            all.get_or_insert_with(new_second_histogram)
                .add(histogram)
                .expect("per-second histograms share their bounds");
        }
        all
    }

    /// Adds `other` into this bucket (lossless).
    pub fn merge(&mut self, other: &SecondBucket) {
        self.sent += other.sent;
        self.delivered += other.delivered;
        self.errors += other.errors;
        for (mine, theirs) in self.latency.iter_mut().zip(&other.latency) {
            if let Some(theirs) = theirs {
                mine.get_or_insert_with(new_second_histogram)
                    .add(theirs)
                    .expect("per-second histograms share their bounds");
            }
        }
    }
}

/// A [`SecondBucket`] as it is written.
#[derive(Debug, Serialize, Deserialize)]
struct BucketRecord {
    sent: u64,
    delivered: u64,
    errors: u64,
    /// Each timed operation's histogram, base64 of HDR V2 deflate.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    latency_by_operation: BTreeMap<Operation, String>,
    /// The one histogram of all operations that records written before
    /// the series was kept per operation held: refused, since it cannot
    /// be split again.
    #[serde(default, skip_serializing)]
    latency: Option<serde::de::IgnoredAny>,
}

impl From<SecondBucket> for BucketRecord {
    fn from(bucket: SecondBucket) -> Self {
        let latency_by_operation = Operation::PER_SECOND
            .into_iter()
            .filter_map(|op| {
                let histogram = bucket.latency(op)?;
                let mut bytes = Vec::new();
                V2DeflateSerializer::new()
                    .serialize(histogram, &mut bytes)
                    .ok()?;
                Some((op, STANDARD.encode(bytes)))
            })
            .collect();
        Self {
            sent: bucket.sent,
            delivered: bucket.delivered,
            errors: bucket.errors,
            latency_by_operation,
            latency: None,
        }
    }
}

impl TryFrom<BucketRecord> for SecondBucket {
    type Error = String;

    fn try_from(record: BucketRecord) -> Result<Self, Self::Error> {
        if record.latency.is_some() {
            return Err(
                "a per-second latency for all operations together: written by an \
                        older sim, which this one cannot split by operation; rerun it with \
                        this version"
                    .to_owned(),
            );
        }
        let mut bucket = SecondBucket {
            sent: record.sent,
            delivered: record.delivered,
            errors: record.errors,
            ..SecondBucket::default()
        };
        for (op, text) in record.latency_by_operation {
            let index = op.per_second_index().ok_or_else(|| {
                format!("{op} has no per-second latency, yet one was written for it")
            })?;
            bucket.latency[index] = Some(decode_histogram(&text)?);
        }
        Ok(bucket)
    }
}

/// One per-second histogram from its base64 HDR V2 encoding.
fn decode_histogram(text: &str) -> Result<Histogram<u32>, String> {
    let bytes = STANDARD
        .decode(text)
        .map_err(|e| format!("a per-second histogram is not base64: {e}"))?;
    let decoded: Histogram<u32> = Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(|e| format!("a per-second histogram does not decode: {e:?}"))?;
    let mut histogram = new_second_histogram();
    histogram
        .add(&decoded)
        .map_err(|e| format!("a per-second histogram is out of range: {e:?}"))?;
    Ok(histogram)
}

fn new_second_histogram() -> Histogram<u32> {
    Histogram::new_with_bounds(1, SECOND_HISTOGRAM_MAX_US, 2)
        .expect("constant histogram bounds are valid")
}

/// The bucket index of `at` (whole seconds since run start), or `None`
/// past [`MAX_SERIES_SECONDS`].
pub(super) fn second_index(at: Duration) -> Option<usize> {
    let second = usize::try_from(at.as_secs()).ok()?;
    (second < MAX_SERIES_SECONDS).then_some(second)
}

/// The bucket for `at`, growing the series as needed.
pub(super) fn bucket_mut(
    series: &mut Vec<SecondBucket>,
    at: Duration,
) -> Option<&mut SecondBucket> {
    let index = second_index(at)?;
    if series.len() <= index {
        series.resize_with(index + 1, SecondBucket::default);
    }
    series.get_mut(index)
}

/// Adds `other` into `series`, second by second.
pub(super) fn merge_series(series: &mut Vec<SecondBucket>, other: &[SecondBucket]) {
    if series.len() < other.len() {
        series.resize_with(other.len(), SecondBucket::default);
    }
    for (mine, theirs) in series.iter_mut().zip(other) {
        mine.merge(theirs);
    }
}

/// One row of the time series as reports show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesRow {
    /// Whole seconds since the run started.
    pub second: u64,
    /// Messages sent in this second.
    pub sent: u64,
    /// Messages delivered in this second.
    pub delivered: u64,
    /// Errors in this second.
    pub errors: u64,
    /// Median latency in this second of every operation the series times
    /// ([`Operation::PER_SECOND`]) together, if any was timed.
    pub p50_ms: Option<f64>,
    /// 99th percentile of the same.
    pub p99_ms: Option<f64>,
    /// Each timed operation's own figures in this second, in report order
    /// (absent in reports written before).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub operations: Vec<SecondLatency>,
}

/// One operation's latency in one second.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SecondLatency {
    /// The operation.
    pub operation: Operation,
    /// Samples in this second.
    pub samples: u64,
    /// Median, ms.
    pub p50_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
}

impl SeriesRow {
    pub(super) fn from_bucket(second: usize, bucket: &SecondBucket) -> Self {
        let quantile = |h: &Histogram<u32>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        let all = bucket.all_latency().filter(|h| !h.is_empty());
        let operations = Operation::PER_SECOND
            .into_iter()
            .filter_map(|operation| {
                let h = bucket.latency(operation).filter(|h| !h.is_empty())?;
                Some(SecondLatency {
                    operation,
                    samples: h.len(),
                    p50_ms: quantile(h, 0.50),
                    p99_ms: quantile(h, 0.99),
                })
            })
            .collect();
        Self {
            second: second as u64,
            sent: bucket.sent,
            delivered: bucket.delivered,
            errors: bucket.errors,
            p50_ms: all.as_ref().map(|h| quantile(h, 0.50)),
            p99_ms: all.as_ref().map(|h| quantile(h, 0.99)),
            operations,
        }
    }

    /// The figures of `op` in this second, if it was timed.
    pub fn operation(&self, op: Operation) -> Option<&SecondLatency> {
        self.operations.iter().find(|l| l.operation == op)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_grow_to_the_second_and_stop_at_the_cap() {
        let mut series = Vec::new();
        bucket_mut(&mut series, Duration::from_millis(2_500))
            .unwrap()
            .sent += 1;
        assert_eq!(series.len(), 3);
        assert_eq!(series[2].sent, 1);
        let past = Duration::from_secs(MAX_SERIES_SECONDS as u64);
        assert!(bucket_mut(&mut series, past).is_none());
        assert_eq!(series.len(), 3);
    }

    #[test]
    fn per_second_percentiles_come_from_merged_buckets() {
        let mut a = SecondBucket::default();
        let mut b = SecondBucket::default();
        for _ in 0..50 {
            a.record_latency(Operation::PublishDelivery, 1_000);
        }
        for _ in 0..49 {
            b.record_latency(Operation::PublishDelivery, 2_000);
        }
        b.record_latency(Operation::PublishDelivery, 100_000);
        a.merge(&b);
        let row = SeriesRow::from_bucket(7, &a);
        assert_eq!(row.second, 7);
        // 2 significant digits: within 1% of the recorded value.
        let p50 = row.p50_ms.unwrap();
        assert!((0.99..=1.01).contains(&p50), "{p50}");
        let p99 = row.p99_ms.unwrap();
        assert!((1.98..=2.02).contains(&p99), "{p99}");
        assert_eq!(
            SeriesRow::from_bucket(0, &SecondBucket::default()).p99_ms,
            None
        );
        // Each operation keeps its own figures beside the combined ones.
        for _ in 0..10 {
            a.record_latency(Operation::QueueWait, 900_000);
        }
        let row = SeriesRow::from_bucket(7, &a);
        let publish = row.operation(Operation::PublishDelivery).unwrap();
        assert_eq!(publish.samples, 100);
        assert!((1.98..=2.02).contains(&publish.p99_ms));
        let queue = row.operation(Operation::QueueWait).unwrap();
        assert_eq!(queue.samples, 10);
        assert!(row.p99_ms.unwrap() > 800.0, "the combined p99 has both");
        assert!(row.operation(Operation::DirectRtt).is_none());
    }

    #[test]
    fn buckets_round_trip_through_json() {
        let mut bucket = SecondBucket {
            sent: 3,
            delivered: 2,
            errors: 1,
            ..SecondBucket::default()
        };
        let json = serde_json::to_string(&bucket).unwrap();
        assert_eq!(json, r#"{"sent":3,"delivered":2,"errors":1}"#);
        assert_eq!(serde_json::from_str::<SecondBucket>(&json).unwrap(), bucket);
        for us in [150, 2_000, 2_000, 90_000, 59_000_000] {
            bucket.record_latency(Operation::PublishDelivery, us);
        }
        bucket.record_latency(Operation::QueueWait, 7_000);
        let json = serde_json::to_string(&bucket).unwrap();
        assert!(json.contains("\"queue_wait\":\""), "{json}");
        assert_eq!(serde_json::from_str::<SecondBucket>(&json).unwrap(), bucket);
        let garbled = json.replace("\"publish_delivery\":\"", "\"publish_delivery\":\"@");
        assert!(serde_json::from_str::<SecondBucket>(&garbled).is_err());
        // A record of one histogram for all operations (the format before
        // they were kept apart) is refused, not read as empty seconds.
        let old = r#"{"sent":1,"delivered":1,"errors":0,"latency":"AAAA"}"#;
        let err = serde_json::from_str::<SecondBucket>(old).unwrap_err();
        assert!(err.to_string().contains("older sim"), "{err}");
    }

    #[test]
    fn huge_latencies_are_clamped_not_lost() {
        let mut bucket = SecondBucket::default();
        bucket.record_latency(Operation::DirectRtt, u64::MAX);
        assert_eq!(bucket.latency(Operation::DirectRtt).unwrap().len(), 1);
        // Operations the series does not time leave no trace.
        bucket.record_latency(Operation::BroadcastLast, 5);
        assert!(bucket.latency(Operation::BroadcastLast).is_none());
        assert_eq!(bucket.all_latency().unwrap().len(), 1);
    }
}

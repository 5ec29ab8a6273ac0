//! The per-second time series: counts and a coarse delivery-latency histogram per second of the run.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use serde::{Deserialize, Serialize};

/// The series stops growing after this many seconds (24 h), so a runaway
/// run cannot grow it without bound; later samples still reach the
/// whole-run histograms and counters, only their per-second row is dropped.
pub const MAX_SERIES_SECONDS: usize = 86_400;

/// Largest latency the per-second histograms resolve (60 s); larger values
/// are clamped. The whole-run histograms keep the full range.
const SECOND_HISTOGRAM_MAX_US: u64 = 60_000_000;

/// One second of the run, as recorded by one worker (or merged).
///
/// Memory: three counters, plus — only for seconds in which a delivery
/// latency was recorded — an HDR histogram with 2 significant digits and
/// 32-bit counts (about 10 KB). So the series costs at most ~10 KB per
/// second of run per worker (~36 MB per hour per worker), bounded by
/// [`MAX_SERIES_SECONDS`].
///
/// Serializes losslessly (the histogram as base64 of its compressed HDR V2
/// encoding), so shards of a run can hand their series to `sim merge`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(into = "BucketRecord", try_from = "BucketRecord")]
pub struct SecondBucket {
    /// Messages sent in this second.
    pub sent: u64,
    /// Messages delivered in this second.
    pub delivered: u64,
    /// Errors in this second.
    pub errors: u64,
    /// Delivery latencies (µs) of this second; see
    /// [`Operation::is_delivery`](super::Operation::is_delivery).
    pub latency: Option<Histogram<u32>>,
}

impl SecondBucket {
    /// Records one delivery latency in this second's histogram.
    pub fn record_latency(&mut self, latency_us: u64) {
        self.latency
            .get_or_insert_with(new_second_histogram)
            .saturating_record(latency_us.min(SECOND_HISTOGRAM_MAX_US));
    }

    /// Adds `other` into this bucket (lossless).
    pub fn merge(&mut self, other: &SecondBucket) {
        self.sent += other.sent;
        self.delivered += other.delivered;
        self.errors += other.errors;
        if let Some(theirs) = &other.latency {
            let mine = self.latency.get_or_insert_with(new_second_histogram);
            mine.add(theirs)
                .expect("per-second histograms share their bounds");
        }
    }
}

/// A [`SecondBucket`] as it is written.
#[derive(Debug, Serialize, Deserialize)]
struct BucketRecord {
    sent: u64,
    delivered: u64,
    errors: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    latency: Option<String>,
}

impl From<SecondBucket> for BucketRecord {
    fn from(bucket: SecondBucket) -> Self {
        let latency = bucket.latency.as_ref().and_then(|h| {
            let mut bytes = Vec::new();
            V2DeflateSerializer::new().serialize(h, &mut bytes).ok()?;
            Some(STANDARD.encode(bytes))
        });
        Self {
            sent: bucket.sent,
            delivered: bucket.delivered,
            errors: bucket.errors,
            latency,
        }
    }
}

impl TryFrom<BucketRecord> for SecondBucket {
    type Error = String;

    fn try_from(record: BucketRecord) -> Result<Self, Self::Error> {
        let latency = match record.latency {
            None => None,
            Some(text) => {
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
                Some(histogram)
            }
        };
        Ok(Self {
            sent: record.sent,
            delivered: record.delivered,
            errors: record.errors,
            latency,
        })
    }
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
    /// Median delivery latency in this second, if any delivery was timed.
    pub p50_ms: Option<f64>,
    /// 99th percentile delivery latency in this second.
    pub p99_ms: Option<f64>,
}

impl SeriesRow {
    pub(super) fn from_bucket(second: usize, bucket: &SecondBucket) -> Self {
        let quantile = |q: f64| {
            bucket
                .latency
                .as_ref()
                .filter(|h| !h.is_empty())
                .map(|h| h.value_at_quantile(q) as f64 / 1000.0)
        };
        Self {
            second: second as u64,
            sent: bucket.sent,
            delivered: bucket.delivered,
            errors: bucket.errors,
            p50_ms: quantile(0.50),
            p99_ms: quantile(0.99),
        }
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
            a.record_latency(1_000);
        }
        for _ in 0..49 {
            b.record_latency(2_000);
        }
        b.record_latency(100_000);
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
    }

    #[test]
    fn buckets_round_trip_through_json() {
        let mut bucket = SecondBucket {
            sent: 3,
            delivered: 2,
            errors: 1,
            latency: None,
        };
        let json = serde_json::to_string(&bucket).unwrap();
        assert_eq!(json, r#"{"sent":3,"delivered":2,"errors":1}"#);
        assert_eq!(serde_json::from_str::<SecondBucket>(&json).unwrap(), bucket);
        for us in [150, 2_000, 2_000, 90_000, 59_000_000] {
            bucket.record_latency(us);
        }
        let json = serde_json::to_string(&bucket).unwrap();
        assert_eq!(serde_json::from_str::<SecondBucket>(&json).unwrap(), bucket);
        let garbled = json.replace("\"latency\":\"", "\"latency\":\"@");
        assert!(serde_json::from_str::<SecondBucket>(&garbled).is_err());
    }

    #[test]
    fn huge_latencies_are_clamped_not_lost() {
        let mut bucket = SecondBucket::default();
        bucket.record_latency(u64::MAX);
        assert_eq!(bucket.latency.as_ref().unwrap().len(), 1);
    }
}

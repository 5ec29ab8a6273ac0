//! HDR interval logs: one `.hlog` file per operation, readable by the standard HdrHistogram tools.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use hdrhistogram::Histogram;
use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};

use super::operation::Operation;
use super::run::RunMetrics;

/// Why interval logs could not be written.
#[derive(Debug, thiserror::Error)]
pub enum HlogError {
    /// Creating the directory or writing a file failed.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// A histogram could not be encoded.
    #[error("cannot encode the {operation} histogram: {message}")]
    Encode {
        /// Whose histogram.
        operation: Operation,
        /// The encoder's complaint.
        message: String,
    },
}

/// Writes `<dir>/<operation>.hlog` for every operation with samples and
/// returns the files written.
///
/// Each log holds one interval covering the whole run (start offset 0,
/// length `run_length`), tagged with the operation name, values in µs. One
/// interval rather than one per second: the per-second data the simulator
/// keeps is coarse (2 significant digits, and only for the delivery
/// operations), and keeping full per-operation histograms for every second
/// would cost ~200 KB per operation-second. The whole-run interval is exact (3
/// significant digits), which is what percentile tools need.
pub fn write_interval_logs(
    metrics: &RunMetrics,
    dir: &Path,
    started_at: SystemTime,
    run_length: Duration,
) -> Result<Vec<PathBuf>, HlogError> {
    std::fs::create_dir_all(dir).map_err(|source| HlogError::Io {
        path: dir.to_owned(),
        source,
    })?;
    let mut written = Vec::new();
    for op in metrics.operations() {
        let Some(histogram) = metrics.histogram(op) else {
            continue;
        };
        let bytes = interval_log(op, histogram, started_at, run_length)?;
        let path = dir.join(format!("{}.hlog", op.as_str()));
        std::fs::write(&path, bytes).map_err(|source| HlogError::Io {
            path: path.clone(),
            source,
        })?;
        written.push(path);
    }
    Ok(written)
}

/// The text of one interval log holding `histogram` as a single interval.
pub fn interval_log(
    op: Operation,
    histogram: &Histogram<u64>,
    started_at: SystemTime,
    run_length: Duration,
) -> Result<Vec<u8>, HlogError> {
    let encode = |message: String| HlogError::Encode {
        operation: op,
        message,
    };
    let mut bytes = Vec::new();
    let mut serializer = V2DeflateSerializer::new();
    let mut writer = IntervalLogWriterBuilder::new()
        .add_comment(&format!("agent-bus sim: {op} latency in microseconds"))
        .with_start_time(started_at)
        .with_base_time(started_at)
        .begin_log_with(&mut bytes, &mut serializer)
        .map_err(|e| encode(e.to_string()))?;
    let tag = Tag::new(op.as_str());
    writer
        .write_histogram(histogram, Duration::ZERO, run_length, tag)
        .map_err(|e| encode(e.to_string()))?;
    drop(writer);
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use hdrhistogram::serialization::Deserializer;
    use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};

    use super::*;
    use crate::metrics::Recorder;

    #[test]
    fn logs_read_back_with_the_standard_iterator() {
        let mut r = Recorder::new();
        for us in [100, 250, 4_000, 90_000] {
            r.record(Operation::DirectRtt, us, Duration::ZERO);
        }
        r.record(Operation::Connect, 1_234, Duration::ZERO);
        let metrics = RunMetrics::from(r);
        let dir = tempfile::tempdir().unwrap();
        let files = write_interval_logs(
            &metrics,
            dir.path(),
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            Duration::from_secs(20),
        )
        .unwrap();
        assert_eq!(files.len(), 2);
        let bytes = std::fs::read(dir.path().join("direct_rtt.hlog")).unwrap();
        let mut intervals = Vec::new();
        for entry in IntervalLogIterator::new(&bytes) {
            if let LogEntry::Interval(interval) = entry.unwrap() {
                intervals.push(interval);
            }
        }
        assert_eq!(intervals.len(), 1);
        let interval = &intervals[0];
        assert_eq!(interval.tag().unwrap().as_str(), "direct_rtt");
        assert_eq!(interval.duration(), Duration::from_secs(20));
        let decoded = STANDARD.decode(interval.encoded_histogram()).unwrap();
        let h: Histogram<u64> = Deserializer::new()
            .deserialize(&mut decoded.as_slice())
            .unwrap();
        assert_eq!(&h, metrics.histogram(Operation::DirectRtt).unwrap());
    }
}

//! Reading one shard's report directory: `report.json`, `shard.json` and
//! the whole-run histograms of `hdr/*.hlog`.

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::Deserializer;
use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};

use super::MergeError;
use crate::drive::shard::ShardRecord;
use crate::metrics::{Operation, new_histogram};
use crate::report::{Report, parse_json};

/// One shard, read back.
#[derive(Debug)]
pub struct LoadedShard {
    /// Its report directory, as given.
    pub dir: PathBuf,
    /// Its `report.json`.
    pub report: Report,
    /// Its `shard.json`.
    pub record: ShardRecord,
    /// Its whole-run histograms (µs), one per operation with samples.
    pub histograms: Vec<(Operation, Histogram<u64>)>,
}

/// Reads the shard in `dir`.
pub(super) fn load(dir: &Path) -> Result<LoadedShard, MergeError> {
    let json_path = dir.join("report.json");
    let text = std::fs::read_to_string(&json_path).map_err(|source| MergeError::Read {
        path: json_path.clone(),
        source,
    })?;
    let report = parse_json(&text).map_err(|e| MergeError::Invalid {
        path: json_path,
        message: e.to_string(),
    })?;
    let record = ShardRecord::read(dir)?;
    let histograms = read_histograms(&dir.join("hdr"))?;
    Ok(LoadedShard {
        dir: dir.to_owned(),
        report,
        record,
        histograms,
    })
}

/// Every `<operation>.hlog` in `dir`, each log's intervals added up.
fn read_histograms(dir: &Path) -> Result<Vec<(Operation, Histogram<u64>)>, MergeError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        // A run that timed nothing writes no logs.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(MergeError::Read {
                path: dir.to_owned(),
                source,
            });
        }
    };
    let mut histograms = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|source| MergeError::Read {
                path: dir.to_owned(),
                source,
            })?
            .path();
        let Some(name) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".hlog"))
        else {
            continue;
        };
        let invalid = |message: String| MergeError::Invalid {
            path: path.clone(),
            message,
        };
        let op: Operation = name.parse().map_err(|e| invalid(format!("{e}")))?;
        let bytes = std::fs::read(&path).map_err(|source| MergeError::Read {
            path: path.clone(),
            source,
        })?;
        histograms.push((op, whole_log(&bytes).map_err(invalid)?));
    }
    histograms.sort_by_key(|(op, _)| *op);
    Ok(histograms)
}

/// The sum of every interval of an interval log, with the whole-run
/// histograms' bounds.
fn whole_log(bytes: &[u8]) -> Result<Histogram<u64>, String> {
    let mut total = new_histogram();
    for entry in IntervalLogIterator::new(bytes) {
        let LogEntry::Interval(interval) =
            entry.map_err(|e| format!("not an HDR interval log: {e:?}"))?
        else {
            continue;
        };
        let encoded = STANDARD
            .decode(interval.encoded_histogram())
            .map_err(|e| format!("an interval is not base64: {e}"))?;
        let histogram: Histogram<u64> = Deserializer::new()
            .deserialize(&mut encoded.as_slice())
            .map_err(|e| format!("an interval does not decode: {e:?}"))?;
        total
            .add(&histogram)
            .map_err(|e| format!("an interval is out of range: {e:?}"))?;
    }
    Ok(total)
}

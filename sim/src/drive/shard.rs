//! What one shard of a sharded run (`sim run --shard i/n`, n > 1) writes
//! next to its report for `sim merge`: `shard.json`, with everything the
//! merge needs that the report and its HDR logs do not hold losslessly —
//! the scenario as it ran, the shard's place and clock, the counts its
//! agents recorded before the run-wide figures were added, the ledger
//! evidence, and the bus's queue counts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::context::ConnectSpan;
use crate::ledger::{Evidence, Ledger, QueueReading};
use crate::metrics::SecondBucket;
use crate::scenario::Scenario;

/// The file a shard writes into its report directory.
pub const SHARD_FILE: &str = "shard.json";

/// Version of [`ShardRecord`]'s format; `sim merge` refuses others.
pub const SHARD_FORMAT: u32 = 1;

/// One shard's record for `sim merge`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardRecord {
    /// [`SHARD_FORMAT`] at the time of writing.
    pub format: u32,
    /// This shard's index `i` of `--shard i/n`.
    pub index: u32,
    /// The number of shards `n`.
    pub count: u32,
    /// The scenario as it ran (after `--seed` and `--duration`), secrets
    /// redacted: the merge judges with its thresholds.
    pub scenario: Scenario,
    /// The run's zero, wall-clock µs (`--start-at`, when given).
    pub start_us: u64,
    /// The end of the shard's drain, wall-clock µs.
    pub end_us: u64,
    /// Whether `--start-at` set the zero (shards that share it line up).
    pub start_at: bool,
    /// Agents this shard ran.
    pub agents: u64,
    /// Its connects, first to last.
    pub connects: Option<ConnectSpan>,
    /// The counts the agents recorded, before the run-wide figures
    /// (reconciled classes, settled queues) were added.
    pub ledger: Ledger,
    /// Error counts by kind.
    pub errors: BTreeMap<String, u64>,
    /// The per-second series, lossless.
    pub series: Vec<SecondBucket>,
    /// Sends, subscription windows and broadcast arrivals.
    pub evidence: Evidence,
    /// The bus's counts of the scenario's queues when this shard ended
    /// (`None` without queues).
    pub queues: Option<QueueReading>,
    /// What this shard saw that counts cannot tell (a queue whose stats
    /// could not be read, the REST load's outcome), for the merged notes.
    pub observations: Vec<String>,
}

/// Why a shard record could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum ShardRecordError {
    /// The record could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file written.
        path: PathBuf,
        /// Why the write failed.
        #[source]
        source: std::io::Error,
    },
    /// The record could not be read.
    #[error(
        "cannot read {path}: {source} (is it the report directory of a `sim run --shard i/n` with n > 1?)"
    )]
    Read {
        /// The file read.
        path: PathBuf,
        /// Why the read failed.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a shard record.
    #[error("{path} is not a shard record: {message}")]
    Parse {
        /// The file read.
        path: PathBuf,
        /// What the parser said.
        message: String,
    },
    /// The record has a format this simulator does not read.
    #[error("{path} has shard format {found}; this sim reads format {SHARD_FORMAT}")]
    Format {
        /// The file read.
        path: PathBuf,
        /// The format number the record holds.
        found: u32,
    },
}

impl ShardRecord {
    /// Removes what must not be written into a report directory: the token
    /// secret and Redis credentials of the scenario's target.
    pub fn redact(scenario: &Scenario) -> Scenario {
        let mut scenario = scenario.clone();
        if scenario.target.jwt_secret.is_some() {
            scenario.target.jwt_secret = Some("(redacted)".to_owned());
        }
        scenario.target.redis_url = scenario
            .target
            .redis_url
            .as_deref()
            .map(crate::bus_under_test::redact_url);
        scenario
    }

    /// Writes `dir/shard.json`.
    pub fn write(&self, dir: &Path) -> Result<PathBuf, ShardRecordError> {
        let path = dir.join(SHARD_FILE);
        let text = serde_json::to_string(self).expect("a shard record always serializes");
        std::fs::write(&path, text).map_err(|source| ShardRecordError::Write {
            path: path.clone(),
            source,
        })?;
        Ok(path)
    }

    /// Reads `dir/shard.json`.
    pub fn read(dir: &Path) -> Result<Self, ShardRecordError> {
        let path = dir.join(SHARD_FILE);
        let text = std::fs::read_to_string(&path).map_err(|source| ShardRecordError::Read {
            path: path.clone(),
            source,
        })?;
        let format = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v["format"].as_u64());
        if let Some(found) = format.filter(|f| *f != u64::from(SHARD_FORMAT)) {
            return Err(ShardRecordError::Format {
                path,
                found: found as u32,
            });
        }
        serde_json::from_str(&text).map_err(|e| ShardRecordError::Parse {
            path,
            message: e.to_string(),
        })
    }
}

//! `sim merge`: the reports of the shards of one run (`sim run --shard
//! i/n`) combined into one report, as if one process had run every agent.
//!
//! - `load`: one shard directory read back (`report.json`, `shard.json`,
//!   `hdr/*.hlog`).
//! - `consistency`: the shards must be all of one run: same scenario and seed,
//!   same shard count, every index exactly once.
//! - `parts`: the report's other parts combined (bus nodes, faults, the
//!   bus's health as shard 0 saw it, the simulator's cost, notes).
//!
//! The histograms are added losslessly (HDR adds bucket by bucket), except
//! `broadcast_first` and `broadcast_last`, which are recomputed from every
//! shard's arrivals (the first recipient of a broadcast may be in another
//! shard than the last). The ledger is recomputed from the shards' evidence
//! with every sender's sends ([`Counting::All`]): a message one shard sent
//! and another shard's agents received is owed and counted once. The queue
//! class settles from the bus's counts as read by the shard that ended
//! last. The verdicts are judged once, with the scenario's thresholds.

mod consistency;
mod load;
mod parts;
#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::time::{Duration, UNIX_EPOCH};

pub use self::load::LoadedShard;
use crate::context::ConnectSpan;
use crate::drive::completion;
use crate::drive::shard::ShardRecordError;
use crate::ledger::{self, Counting, Evidence};
use crate::metrics::{Operation, Recorder, RunMetrics, SecondBucket};
use crate::orchestrate::{FinishedRun, derived_notes};
use crate::report::{MergedFrom, Report, RunInfo};
use crate::verdict;

/// Why shards could not be merged.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    /// No directory was given.
    #[error("no shard directories given")]
    NoShards,
    /// A shard's file or directory could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file or directory read.
        path: PathBuf,
        /// Why the read failed.
        #[source]
        source: std::io::Error,
    },
    /// A shard's `report.json` or histogram log could not be parsed.
    #[error("{path}: {message}")]
    Invalid {
        /// The file read.
        path: PathBuf,
        /// What was wrong with it.
        message: String,
    },
    /// A shard's `shard.json` could not be read.
    #[error(transparent)]
    Record(#[from] ShardRecordError),
    /// Two shards ran different scenarios, or different seeds.
    #[error(
        "{} ran {first_run} but {} ran {other_run}: only shards of one scenario with one seed merge",
        first.display(),
        other.display()
    )]
    DifferentRuns {
        /// The first shard's directory.
        first: PathBuf,
        /// What it ran: scenario name, seed and content hash.
        first_run: String,
        /// The directory of the shard that differs.
        other: PathBuf,
        /// What that one ran.
        other_run: String,
    },
    /// Two shards were of runs split into different numbers of shards.
    #[error(
        "{} is one of {first_count} shards but {} is one of {other_count}",
        first.display(),
        other.display()
    )]
    DifferentCounts {
        /// The first shard's directory.
        first: PathBuf,
        /// Its shard count.
        first_count: u32,
        /// The directory of the shard that differs.
        other: PathBuf,
        /// That one's shard count.
        other_count: u32,
    },
    /// The same shard index was given twice.
    #[error("shard {index}/{count} given twice: {} and {}", first.display(), second.display())]
    Duplicate {
        /// The shard index.
        index: u32,
        /// The shard count.
        count: u32,
        /// The first directory holding it.
        first: PathBuf,
        /// The second directory holding it.
        second: PathBuf,
    },
    /// Some shard indexes were not given.
    #[error(
        "shard{} {} missing: a merge needs every shard of the run",
        if missing.len() == 1 { "" } else { "s" },
        missing.iter().map(|i| format!("{i}/{count}")).collect::<Vec<_>>().join(", ")
    )]
    Missing {
        /// The indexes not given, in order.
        missing: Vec<u32>,
        /// The shard count.
        count: u32,
    },
}

/// Merges the shards in `dirs` into one report and its metrics.
pub fn merge_dirs(dirs: &[PathBuf]) -> Result<FinishedRun, MergeError> {
    let shards = dirs
        .iter()
        .map(|d| load::load(d))
        .collect::<Result<Vec<_>, _>>()?;
    merge(consistency::complete_set(shards)?)
}

/// Merges a complete set of shards (see [`merge_dirs`]).
fn merge(shards: Vec<LoadedShard>) -> Result<FinishedRun, MergeError> {
    let start_us = shards.iter().map(|s| s.record.start_us).min().unwrap_or(0);
    let end_us = shards.iter().map(|s| s.record.end_us).max().unwrap_or(0);
    let duration = Duration::from_micros(end_us.saturating_sub(start_us));
    let mut metrics = RunMetrics::new();
    let mut evidence = Evidence::default();
    let mut connects: Option<ConnectSpan> = None;
    for shard in &shards {
        metrics.merge(&RunMetrics::from(recorder_of(shard, start_us)));
        evidence.merge(&shard.record.evidence);
        connects = match (connects, shard.record.connects) {
            (Some(a), Some(b)) => Some(a.join(b)),
            (a, b) => a.or(b),
        };
    }
    let slow = completion::complete(&mut metrics, &evidence, Counting::All, duration);
    let mut notes = vec![merged_note(&shards)];
    for shard in &shards {
        notes.extend(
            shard
                .record
                .observations
                .iter()
                .map(|o| format!("shard {}: {o}", shard.record.index)),
        );
    }
    let last_reading = shards
        .iter()
        .filter_map(|s| s.record.queues.map(|q| (s.record.end_us, q)))
        .max_by_key(|(end, _)| *end);
    if let Some((_, reading)) = last_reading {
        notes.push(ledger::settle_queue(metrics.ledger_mut(), reading));
    }
    notes.extend(derived_notes(metrics.ledger(), connects, slow));
    notes.extend(parts::alignment_notes(&shards));
    let first = &shards[0];
    let mut verdicts = verdict::judge(&metrics, &first.record.scenario.thresholds);
    let integrity = parts::integrity(&shards, start_us, &mut verdicts);
    let run = RunInfo::new(
        UNIX_EPOCH + Duration::from_micros(start_us),
        duration,
        first.report.run.target.clone(),
        first.report.run.broker.clone(),
        first.report.run.bus_nodes,
    );
    let mut report = Report::new(first.report.scenario.clone(), run, &metrics, verdicts);
    report.health_timeline = parts::shifted_health(first, start_us);
    report.redis_samples = parts::shifted_redis(first, start_us);
    report.simulator = parts::simulator(&shards, &metrics);
    report.faults = parts::faults(&shards);
    report.nodes = parts::nodes(&shards);
    report.notes = notes;
    report.integrity = integrity;
    report.merged = Some(MergedFrom {
        shards: first.record.count,
        sources: shards.iter().map(|s| s.dir.display().to_string()).collect(),
    });
    Ok(FinishedRun {
        report,
        metrics,
        shard: None,
    })
}

/// A shard's recorder as `sim run` had it before completing its metrics:
/// histograms from its HDR logs (less the broadcast first/last ones, which
/// the merge recomputes), its series shifted to the merged run's zero.
fn recorder_of(shard: &LoadedShard, start_us: u64) -> Recorder {
    let histograms = shard
        .histograms
        .iter()
        .filter(|(op, _)| !matches!(op, Operation::BroadcastFirst | Operation::BroadcastLast))
        .cloned();
    let offset = seconds_after(shard.record.start_us, start_us);
    let mut series = vec![SecondBucket::default(); offset];
    series.extend(shard.record.series.iter().cloned());
    Recorder::from_parts(
        histograms,
        series,
        shard.record.errors.clone(),
        shard.record.ledger.clone(),
    )
}

/// Whole seconds from `zero_us` to `at_us`, rounded.
fn seconds_after(at_us: u64, zero_us: u64) -> usize {
    ((at_us.saturating_sub(zero_us) + 500_000) / 1_000_000) as usize
}

fn merged_note(shards: &[LoadedShard]) -> String {
    let agents: u64 = shards.iter().map(|s| s.record.agents).sum();
    format!(
        "merged from {} shards ({agents} agents): histograms added, ledger reconciled over every shard's sends and windows, verdicts judged once",
        shards.len()
    )
}

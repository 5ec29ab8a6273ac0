//! The parts of a merged report besides metrics and ledger: per-node
//! figures added up, faults joined, the bus's health and Redis as shard 0
//! watched them, the simulator's cost over all shards, what the shards
//! said of their own numbers, and notes on how well the shards lined up.

use std::collections::BTreeSet;

use super::load::LoadedShard;
use crate::metrics::RunMetrics;
use crate::report::{FaultOutcome, HealthSample, NodeFigures, RedisSample, SimulatorSelf};
use crate::verdict::Verdicts;
use crate::verdict::trust::{self, Integrity};

/// Shards whose zeros lie further apart than this did not run their phases
/// together (no shared `--start-at`), which the merged report says.
const ALIGNED_US: u64 = 1_000_000;

/// Seconds from the merged run's zero to `shard`'s.
fn offset_s(shard: &LoadedShard, start_us: u64) -> f64 {
    shard.record.start_us.saturating_sub(start_us) as f64 / 1e6
}

/// Shard 0's health samples (every shard polls every node; one shard's
/// view is enough and has no repeats), on the merged run's clock.
pub(super) fn shifted_health(shard: &LoadedShard, start_us: u64) -> Vec<HealthSample> {
    let offset = offset_s(shard, start_us);
    shard
        .report
        .health_timeline
        .iter()
        .map(|s| HealthSample {
            at_s: s.at_s + offset,
            ..s.clone()
        })
        .collect()
}

/// Shard 0's Redis samples, on the merged run's clock.
pub(super) fn shifted_redis(shard: &LoadedShard, start_us: u64) -> Vec<RedisSample> {
    let offset = offset_s(shard, start_us);
    shard
        .report
        .redis_samples
        .iter()
        .map(|s| RedisSample {
            at_s: s.at_s + offset,
            ..*s
        })
        .collect()
}

/// The simulator's cost over all shards: CPU and peak memory added up (the
/// peaks of separate processes, so an upper bound of what they held at
/// once), per delivered message and per agent of the whole run.
pub(super) fn simulator(shards: &[LoadedShard], metrics: &RunMetrics) -> SimulatorSelf {
    let cpu: f64 = shards.iter().map(|s| s.report.simulator.cpu_seconds).sum();
    let rss: u64 = shards
        .iter()
        .map(|s| s.report.simulator.peak_rss_bytes)
        .sum();
    let agents: u64 = shards.iter().map(|s| s.record.agents).sum();
    let ledger = metrics.ledger();
    let delivered =
        ledger.classes.values().map(|c| c.delivered).sum::<u64>() + ledger.queue.claimed;
    SimulatorSelf::new(cpu, rss, delivered, agents)
}

/// Per-node figures of every shard, by node: agents and connects added,
/// the node's own peak connection count (every shard reads the same one)
/// and its CPU and memory where a shard measured them.
pub(super) fn nodes(shards: &[LoadedShard]) -> Vec<NodeFigures> {
    let mut merged: Vec<NodeFigures> = Vec::new();
    for figures in shards.iter().flat_map(|s| &s.report.nodes) {
        let Some(node) = merged.iter_mut().find(|n| n.node == figures.node) else {
            merged.push(figures.clone());
            continue;
        };
        node.agents += figures.agents;
        node.connects += figures.connects;
        node.peak_connections = node.peak_connections.max(figures.peak_connections);
        node.cpu_percent = node.cpu_percent.or(figures.cpu_percent);
        node.peak_rss_bytes = node.peak_rss_bytes.max(figures.peak_rss_bytes);
    }
    merged
}

/// Every shard's faults, one entry per fault of the scenario: the agents
/// or nodes each shard saw hit, disconnects added, delivery resuming at
/// the earliest shard that saw it resume.
pub(super) fn faults(shards: &[LoadedShard]) -> Vec<FaultOutcome> {
    let mut merged: Vec<FaultOutcome> = Vec::new();
    for fault in shards.iter().flat_map(|s| &s.report.faults) {
        let same = |f: &&mut FaultOutcome| {
            f.kind == fault.kind && f.at_s == fault.at_s && f.duration_s == fault.duration_s
        };
        let Some(entry) = merged.iter_mut().find(same) else {
            merged.push(fault.clone());
            continue;
        };
        for hit in &fault.affected {
            if !entry.affected.contains(hit) {
                entry.affected.push(hit.clone());
            }
        }
        entry.error = entry.error.take().or_else(|| fault.error.clone());
        entry.resumed_after_s = match (entry.resumed_after_s, fault.resumed_after_s) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        entry.disconnects += fault.disconnects;
    }
    merged
}

/// Notes on how the shards ran together: a shared `--start-at`, or zeros
/// more than a second apart; different bus nodes (then their agents could
/// not reach each other, and the merged ledger counts those messages
/// lost).
pub(super) fn alignment_notes(shards: &[LoadedShard]) -> Vec<String> {
    let mut notes = Vec::new();
    let first = shards.iter().map(|s| s.record.start_us).min().unwrap_or(0);
    let last = shards.iter().map(|s| s.record.start_us).max().unwrap_or(0);
    if first == last && shards.iter().all(|s| s.record.start_at) {
        notes.push(format!(
            "the shards shared --start-at {}",
            humantime::format_rfc3339_millis(
                std::time::UNIX_EPOCH + std::time::Duration::from_micros(first)
            )
        ));
    }
    if last - first > ALIGNED_US {
        notes.push(format!(
            "the shards started {:.1} s apart (give every shard the same --start-at): their phases did not line up; the series is aligned on the wall clock",
            (last - first) as f64 / 1e6
        ));
    }
    let node_sets: Vec<BTreeSet<&str>> = shards
        .iter()
        .map(|s| s.report.nodes.iter().map(|n| n.node.as_str()).collect())
        .collect();
    if node_sets.windows(2).any(|pair| pair[0] != pair[1]) {
        let described: Vec<String> = shards
            .iter()
            .zip(&node_sets)
            .map(|(s, nodes)| {
                let nodes: Vec<&str> = nodes.iter().copied().collect();
                format!("shard {}: {}", s.record.index, nodes.join(", "))
            })
            .collect();
        notes.push(format!(
            "the shards reached different bus nodes ({}); messages between agents of shards on separate buses cannot arrive and count as lost",
            described.join("; ")
        ));
    }
    notes
}

/// What the shards said of their own numbers, as one: every shard's
/// saturation and findings (named by shard), their witnesses, the earliest
/// interruption (on the merged clock). A shard that could not keep its
/// schedule makes the merged verdicts it cannot vouch for inconclusive, as
/// it did its own; a shard that failed its check fails the merge.
pub(super) fn integrity(
    shards: &[LoadedShard],
    start_us: u64,
    verdicts: &mut Verdicts,
) -> Integrity {
    let mut merged = Integrity::default();
    let mut saturations = Vec::new();
    for shard in shards {
        let index = shard.record.index;
        let own = &shard.report.integrity;
        if let Some(why) = &own.saturation {
            saturations.push(format!("shard {index}: {why}"));
        }
        merged
            .findings
            .extend(own.findings.iter().map(|f| format!("shard {index}: {f}")));
        merged.witness.extend(own.witness.iter().cloned());
        if let Some(at) = own.interrupted_at_s {
            let at = offset_s(shard, start_us) + at;
            merged.interrupted_at_s = Some(merged.interrupted_at_s.map_or(at, |a: f64| a.min(at)));
        }
        if merged.witness_missing.is_none() {
            merged.witness_missing.clone_from(&own.witness_missing);
        }
    }
    if !saturations.is_empty() {
        merged.saturation = Some(saturations.join("; "));
        trust::mark_inconclusive(verdicts);
    }
    merged.settle(verdicts);
    merged
}

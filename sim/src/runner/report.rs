//! One whole run against a running bus, ending in a [`Report`]: the agents,
//! the bus watched meanwhile, the queue ledger settled from the bus's own
//! counts, verdicts, and what the run cost. `sim run` writes and prints what
//! this returns; the snapshot and regression tests compare it.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Endpoints, RunOptions, RunResult};
use crate::metrics::{MessageClass, RunMetrics};
use crate::monitor::Monitor;
use crate::procstat;
use crate::report::{Report, RunInfo, ScenarioInfo, SimulatorSelf};
use crate::scenario::{Behaviour, Scenario};
use crate::target::{self, RunningTarget};
use crate::verdict;

/// A finished run: its report, and the merged metrics the report's HTML
/// plots and HDR logs need.
#[derive(Debug)]
pub struct FinishedRun {
    /// Everything the run tells.
    pub report: Report,
    /// The full histograms behind the report's figures.
    pub metrics: RunMetrics,
}

/// Runs `scenario` (loaded from `file`, as the report should name it)
/// against `target` and builds its report.
pub async fn run_to_report(
    scenario: Arc<Scenario>,
    file: &str,
    target: &RunningTarget,
    options: &RunOptions,
) -> FinishedRun {
    let endpoints = Endpoints {
        ws_urls: target.ws_urls.clone(),
        source_addresses: scenario.target.source_addresses.clone(),
    };
    let monitor = Monitor::start(
        target.http_urls.clone(),
        target.redis_url.clone(),
        Instant::now(),
        Duration::from_secs(1),
    );
    let bus_before: Vec<_> = target
        .bus_pids
        .iter()
        .filter_map(|p| procstat::sample(*p))
        .collect();
    let mut result = super::run(scenario.clone(), &endpoints, options).await;
    let watched = monitor.stop().await;
    let mut notes = settle_queues(&scenario, target, &mut result.metrics).await;
    notes.extend(bus_cost(target, &bus_before, result.duration));

    let verdicts = verdict::judge(&result.metrics, &scenario.thresholds);
    let mut report = Report::new(
        ScenarioInfo::from_scenario(&scenario, file),
        RunInfo::new(
            result.started_at,
            result.duration,
            target.description.clone(),
            target.broker.clone(),
            target.node_count() as u32,
        ),
        &result.metrics,
        verdicts,
    );
    report.health_timeline = watched.health;
    report.redis_samples = watched.redis;
    report.simulator = simulator_self(&result);
    report.notes.extend(notes);
    let (shard, shards) = options.shard;
    if shards > 1 {
        report
            .notes
            .push(format!("shard {shard}/{shards} of the agents"));
    }
    FinishedRun {
        report,
        metrics: result.metrics,
    }
}

/// Every (workspace, queue) the scenario's queue groups use.
fn queues_of(scenario: &Scenario) -> BTreeSet<(String, String)> {
    scenario
        .groups
        .iter()
        .filter(|g| {
            matches!(
                g.behaviour,
                Behaviour::QueueProducer | Behaviour::QueueWorker
            )
        })
        .flat_map(|g| (0..g.workspaces.max(1)).map(move |w| (format!("ws-{w}"), g.queue.clone())))
        .collect()
}

/// Reads the bus's counts of the scenario's queues and completes the queue
/// ledger: enqueued = acked + dead-lettered + still queued, or the
/// difference is reported lost.
async fn settle_queues(
    scenario: &Scenario,
    target: &RunningTarget,
    metrics: &mut RunMetrics,
) -> Vec<String> {
    let queues = queues_of(scenario);
    if queues.is_empty() {
        return Vec::new();
    }
    let mut still_queued = 0;
    let mut dead = 0;
    let mut notes = Vec::new();
    for (workspace, queue) in &queues {
        match target::queue_stats(target, workspace, queue).await {
            Ok(stats) => {
                still_queued += stats.ready + stats.processing + stats.delayed;
                dead += stats.dead;
            }
            Err(e) => notes.push(format!(
                "could not read the stats of queue {workspace}/{queue}: {e}"
            )),
        }
    }
    let ledger = metrics.ledger_mut();
    ledger.queue.still_queued = still_queued;
    ledger.queue.dead_lettered = ledger.queue.dead_lettered.max(dead);
    let q = ledger.queue;
    let class = ledger.class_mut(MessageClass::Queue);
    class.expected = q.enqueued;
    class.delivered = q.acked + q.dead_lettered + q.still_queued;
    notes.push(format!(
        "queue ledger: {} enqueued = {} acked + {} dead-lettered + {} still queued{}",
        q.enqueued,
        q.acked,
        q.dead_lettered,
        q.still_queued,
        if class.expected == class.delivered {
            " (reconciled)"
        } else {
            " (NOT reconciled)"
        }
    ));
    notes
}

/// CPU and memory of spawned bus nodes over the run.
fn bus_cost(
    target: &RunningTarget,
    before: &[procstat::ProcSample],
    duration: Duration,
) -> Vec<String> {
    target
        .bus_pids
        .iter()
        .zip(before)
        .filter_map(|(pid, b)| {
            let after = procstat::sample(*pid)?;
            let cpu = after.cpu_seconds - b.cpu_seconds;
            Some(format!(
                "bus node pid {pid}: {:.1}% of a core, peak RSS {:.1} MiB",
                100.0 * cpu / duration.as_secs_f64().max(1e-9),
                after.peak_rss_bytes as f64 / (1 << 20) as f64
            ))
        })
        .collect()
}

fn simulator_self(result: &RunResult) -> SimulatorSelf {
    let me = procstat::self_sample();
    let delivered: u64 = result
        .metrics
        .ledger()
        .classes
        .values()
        .map(|c| c.delivered)
        .sum::<u64>()
        + result.metrics.ledger().queue.claimed;
    SimulatorSelf::new(me.cpu_seconds, me.peak_rss_bytes, delivered, result.agents)
}

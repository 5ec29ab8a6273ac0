//! Running a scenario against a bus that is already up: the agents, the
//! bus's `/health` and Redis watched meanwhile, the scenario's faults
//! injected, the queue ledger settled from the bus's own counts, and the
//! bus nodes' CPU and memory ([`measure`]); and the whole run turned into a
//! [`Report`] ([`run_to_report`]). Shared by `sim run`, the capacity points
//! and the snapshot and regression tests.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::faults;
use crate::http_load::{self, HttpLoad};
use crate::metrics::{MessageClass, RunMetrics};
use crate::monitor::{Monitor, MonitorResult};
use crate::procstat;
use crate::report::{FaultOutcome, Report, RunInfo, ScenarioInfo, SimulatorSelf};
use crate::runner::{self, Endpoints, RunOptions, RunResult};
use crate::scenario::{Behaviour, Scenario};
use crate::target::{self, RunningTarget};
use crate::verdict;

/// What one execution measured.
#[derive(Debug)]
pub struct Measured {
    pub result: RunResult,
    pub watched: MonitorResult,
    /// CPU (percent of one core over the run) and peak RSS per spawned node.
    pub bus_nodes: Vec<NodeCost>,
    /// Facts a reader should know (queue reconciliation, read failures).
    pub notes: Vec<String>,
    /// What each injected fault did.
    pub faults: Vec<FaultOutcome>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NodeCost {
    pub pid: u32,
    pub cpu_percent: f64,
    pub peak_rss_bytes: u64,
}

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
    let measured = measure(scenario.clone(), target, options).await;
    let result = &measured.result;
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
    report.health_timeline = measured.watched.health.clone();
    report.redis_samples = measured.watched.redis.clone();
    report.simulator = simulator_self(result);
    report.notes.extend(measured.notes.iter().cloned());
    report.faults = measured.faults.clone();
    report.notes.extend(measured.bus_nodes.iter().map(|n| {
        format!(
            "bus node pid {}: {:.1}% of a core, peak RSS {:.1} MiB",
            n.pid,
            n.cpu_percent,
            n.peak_rss_bytes as f64 / (1 << 20) as f64
        )
    }));
    if let Some((n, rate)) = measured.result.connect_rate {
        report.notes.push(format!(
            "connects: {n} completed at {rate:.0}/s (first to last)"
        ));
    }
    let security = measured.result.metrics.ledger().security;
    if !security.is_empty() {
        report.notes.push(format!(
            "security: {} attempts to reach other workspaces or inboxes, {} refused, {} breaches; {} connections with bad tokens, {} refused with 401",
            security.attempts, security.denied, security.breaches, security.token_attempts, security.token_denied
        ));
    }
    let (shard, shards) = options.shard;
    if shards > 1 {
        report
            .notes
            .push(format!("shard {shard}/{shards} of the agents"));
    }
    FinishedRun {
        report,
        metrics: measured.result.metrics,
    }
}

fn simulator_self(result: &RunResult) -> SimulatorSelf {
    let me = procstat::self_sample();
    let ledger = result.metrics.ledger();
    let delivered: u64 =
        ledger.classes.values().map(|c| c.delivered).sum::<u64>() + ledger.queue.claimed;
    SimulatorSelf::new(me.cpu_seconds, me.peak_rss_bytes, delivered, result.agents)
}

/// Runs `scenario` against `target`.
pub async fn measure(
    scenario: Arc<Scenario>,
    target: &RunningTarget,
    options: &RunOptions,
) -> Measured {
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
    let before: Vec<_> = target
        .bus_pids
        .iter()
        .map(|p| procstat::sample(*p))
        .collect();
    let fault_plan = scenario.faults.clone();
    let http = http_load_of(&scenario, target, options);
    let (mut result, (mut faults, rest_notes)) =
        runner::run_with(scenario.clone(), &endpoints, options, |ctx| async move {
            let rest = async {
                match http {
                    Some(load) => http_load::run(load, ctx.hub.clone()).await,
                    None => Ok(Vec::new()),
                }
            };
            tokio::join!(faults::drive(fault_plan, ctx.clone(), target), rest)
        })
        .await;
    let watched = monitor.stop().await;
    faults::attach_health(&mut faults, &watched.health);
    let bus_nodes = node_costs(target, &before, result.duration);
    let mut notes = settle_queues(&scenario, target, &mut result.metrics).await;
    match rest_notes {
        Ok(rest) => notes.extend(rest),
        Err(e) => notes.push(format!("the REST load (goose) failed: {e}")),
    }
    if result.slow_consumers != (0, 0) {
        let (expected, delivered) = result.slow_consumers;
        notes.push(format!(
            "slow consumers (made slow by a fault, accounted apart): {expected} expected, {delivered} delivered, {} lost under the bus's slow-consumer policy",
            expected.saturating_sub(delivered)
        ));
    }
    Measured {
        result,
        watched,
        bus_nodes,
        notes,
        faults,
    }
}

/// The goose load of the scenario's `rest_client` groups, if any: their
/// users together, each thinking `1 / rate` between requests, on the first
/// node, in workspace `ws-0`.
fn http_load_of(
    scenario: &Scenario,
    target: &RunningTarget,
    options: &RunOptions,
) -> Option<HttpLoad> {
    let groups: Vec<_> = scenario
        .groups
        .iter()
        .filter(|g| g.behaviour == Behaviour::RestClient)
        .collect();
    let users: u32 = groups.iter().map(|g| g.count).sum();
    if users == 0 || options.shard.0 != 0 {
        return None;
    }
    let rate = groups
        .iter()
        .map(|g| g.rate)
        .fold(f64::MAX, f64::min)
        .max(0.01);
    let token = options.jwt_secret.as_deref().map(|secret| {
        bus::auth::issue_token(
            secret,
            &bus::auth::Claims {
                sub: "sim-rest".into(),
                workspace: "ws-0".into(),
                user: None,
                topics: None,
                global_broadcast: false,
                admin: true,
                exp: bus::auth::unix_now() + 24 * 3600,
            },
        )
    });
    Some(HttpLoad {
        base_url: target.http_urls.first()?.clone(),
        users: users as usize,
        think: Duration::from_secs_f64(1.0 / rate),
        run_time: scenario.total_duration(),
        workspace: "ws-0".into(),
        token,
    })
}

fn node_costs(
    target: &RunningTarget,
    before: &[Option<procstat::ProcSample>],
    duration: Duration,
) -> Vec<NodeCost> {
    target
        .bus_pids
        .iter()
        .zip(before)
        .filter_map(|(pid, b)| {
            let (b, after) = (b.as_ref()?, procstat::sample(*pid)?);
            Some(NodeCost {
                pid: *pid,
                cpu_percent: 100.0 * (after.cpu_seconds - b.cpu_seconds)
                    / duration.as_secs_f64().max(1e-9),
                peak_rss_bytes: after.peak_rss_bytes,
            })
        })
        .collect()
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
    let accounted = q.acked + q.dead_lettered + q.still_queued;
    // Unconfirmed enqueues (error or no reply) may have landed: those that
    // did are expected too, up to their number.
    let landed = accounted
        .saturating_sub(q.enqueued)
        .min(q.enqueue_unconfirmed);
    let class = ledger.class_mut(MessageClass::Queue);
    class.expected = q.enqueued + landed;
    class.delivered = accounted;
    let reconciled = class.expected == class.delivered;
    notes.push(format!(
        "queue ledger: {} enqueued{} = {} acked + {} dead-lettered + {} still queued{}",
        q.enqueued,
        if landed > 0 {
            format!(
                " (+ {landed} of {} unconfirmed enqueues that landed)",
                q.enqueue_unconfirmed
            )
        } else {
            String::new()
        },
        q.acked,
        q.dead_lettered,
        q.still_queued,
        if reconciled {
            " (reconciled)"
        } else {
            " (NOT reconciled)"
        }
    ));
    notes
}

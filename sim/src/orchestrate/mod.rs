//! Running a scenario against a bus that is already up: the agents, the
//! bus's `/health` and connections and Redis watched meanwhile, the
//! scenario's faults injected, the queue ledger settled from the bus's own
//! counts, and the bus nodes' CPU and memory ([`measure`]); and the whole
//! run turned into a [`Report`] ([`run_to_report`]), with a
//! [`ShardRecord`] when it was one shard of several. Shared by `sim run`,
//! the capacity points and the snapshot and regression tests.
//!
//! - `queues`: the bus's counts of the scenario's queues.
//! - `nodes`: per-node figures and the started nodes' CPU and memory.
//! - `notes`: the notes derived from a run's figures (also used by `sim
//!   merge`, so a merged report says the same things).
//! - `witness`: the bus's own counts and subscriptions, read beside the
//!   agents'.
//! - `integrity`: whether the run's numbers can be trusted, from the
//!   simulator's own load, the witness and an interruption.

pub mod integrity;
mod nodes;
mod notes;
mod queues;
mod witness;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

pub use self::nodes::{NodeCost, node_costs};
pub use self::notes::derived_notes;
use crate::bus_under_test::RunningTarget;
use crate::context::wall_us;
use crate::drive::shard::{SHARD_FORMAT, ShardRecord};
use crate::drive::{self, Endpoints, RunOptions, RunResult};
use crate::faults;
use crate::http_load::{self, HttpLoad};
use crate::ledger::{self, QueueReading};
use crate::live::{LiveBoard, Sampler};
use crate::metrics::RunMetrics;
use crate::monitor::{Monitor, MonitorResult, node_label};
use crate::procstat;
use crate::report::{FaultOutcome, Report, RunInfo, ScenarioInfo, SimulatorSelf};
use crate::scenario::{Behaviour, Scenario};
use crate::verdict;
use crate::verdict::trust::NodeWitness;

/// What one execution measured.
#[derive(Debug)]
pub struct Measured {
    /// What the agents measured.
    pub result: RunResult,
    /// What watching the bus's `/health` and Redis saw meanwhile.
    pub watched: MonitorResult,
    /// CPU (percent of one core over the run) and peak RSS per spawned node.
    pub bus_nodes: Vec<NodeCost>,
    /// The bus's counts of the scenario's queues at the end (`None`
    /// without queues).
    pub queues: Option<QueueReading>,
    /// What was seen that the figures cannot tell (a failed read, the REST
    /// load's outcome).
    pub observations: Vec<String>,
    /// Facts derived from the figures (queue reconciliation, slow
    /// consumers, connects, security).
    pub notes: Vec<String>,
    /// What each injected fault did.
    pub faults: Vec<FaultOutcome>,
    /// The bus's own counts beside the agents', per node (or why not).
    pub witness: integrity::Witness,
}

/// A finished run: its report, and the merged metrics the report's HTML
/// plots and HDR logs need.
#[derive(Debug)]
pub struct FinishedRun {
    /// Everything the run tells.
    pub report: Report,
    /// The full histograms behind the report's figures.
    pub metrics: RunMetrics,
    /// What `sim merge` needs of this run, when it was one shard of
    /// several.
    pub shard: Option<ShardRecord>,
}

/// Runs `scenario` (loaded from `file`, as the report should name it)
/// against `target` and builds its report.
pub async fn run_to_report(
    scenario: Arc<Scenario>,
    file: &str,
    target: &RunningTarget,
    options: &RunOptions,
    live: Option<&LiveBoard>,
) -> FinishedRun {
    let measured = measure(scenario.clone(), target, options, live).await;
    let result = &measured.result;
    let mut verdicts = verdict::judge(&result.metrics, &scenario.thresholds);
    let integrity = integrity::assess(&scenario, result, &measured.witness, &mut verdicts);
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
    report.scenario.scale = options.scale;
    report.phases = crate::report::phase_results(&scenario, result.metrics.recorder().series());
    report.health_timeline = measured.watched.health.clone();
    report.redis_samples = measured.watched.redis.clone();
    report.simulator = simulator_self(result);
    report.integrity = integrity;
    report.notes.extend(measured.observations.iter().cloned());
    report.notes.extend(measured.notes.iter().cloned());
    report.faults = measured.faults.clone();
    report.nodes = nodes::node_figures(
        target,
        result,
        &measured.watched.health,
        &measured.bus_nodes,
    );
    let (index, count) = options.shard;
    if count > 1 {
        report.notes.push(format!(
            "shard {index}/{count} of the agents: its ledger counts only messages its own agents sent; `sim merge` reconciles every shard's"
        ));
    }
    if let Some(at) = options.start_at {
        report.notes.push(format!(
            "started at --start-at {}",
            humantime::format_rfc3339_millis(at)
        ));
    }
    let shard = (count > 1).then(|| shard_record(&scenario, options, &measured));
    FinishedRun {
        report,
        metrics: measured.result.metrics,
        shard,
    }
}

fn shard_record(scenario: &Scenario, options: &RunOptions, measured: &Measured) -> ShardRecord {
    let result = &measured.result;
    let recorded = result.recorded.recorder();
    let start_us = wall_us(result.started_at);
    ShardRecord {
        format: SHARD_FORMAT,
        index: options.shard.0,
        count: options.shard.1,
        scenario: ShardRecord::redact(scenario),
        start_us,
        end_us: start_us + result.duration.as_micros() as u64,
        start_at: options.start_at.is_some(),
        agents: result.agents,
        connects: result.connects,
        ledger: recorded.ledger().clone(),
        errors: recorded.error_kinds().clone(),
        series: recorded.series().to_vec(),
        evidence: result.evidence.clone(),
        queues: measured.queues,
        observations: measured.observations.clone(),
    }
}

fn simulator_self(result: &RunResult) -> SimulatorSelf {
    let me = procstat::self_sample();
    let ledger = result.metrics.ledger();
    let delivered: u64 =
        ledger.classes.values().map(|c| c.delivered).sum::<u64>() + ledger.queue.claimed;
    let load = &result.self_load;
    SimulatorSelf {
        cpu_percent: Some(load.cpu_percent),
        cores: Some(procstat::cores() as u32),
        machine_busy_percent: load.machine_busy_percent,
        scheduling_lag_p99_ms: Some(load.lag_ms_at(0.99)),
        scheduling_lag_max_ms: Some(load.lag_ms_at(1.0)),
        samples: load.samples.clone(),
        ..SimulatorSelf::new(me.cpu_seconds, me.peak_rss_bytes, delivered, result.agents)
    }
}

/// An operator token for the bus's REST routes, when it checks tokens.
fn admin_token(secret: &str, subject: &str) -> String {
    bus::auth::issue_token(
        secret,
        &bus::auth::Claims {
            sub: subject.into(),
            workspace: "ws-0".into(),
            user: None,
            topics: None,
            global_broadcast: false,
            admin: true,
            exp: bus::auth::unix_now() + 24 * 3600,
        },
    )
}

/// Runs `scenario` against `target`; with `live`, publishes a snapshot of
/// the run on it every second while it runs.
pub async fn measure(
    scenario: Arc<Scenario>,
    target: &RunningTarget,
    options: &RunOptions,
    live: Option<&LiveBoard>,
) -> Measured {
    let endpoints = Endpoints {
        ws_urls: target.ws_urls.clone(),
        source_addresses: scenario.target.source_addresses.clone(),
    };
    if let Some(at) = options.start_at {
        drive::wait_until(at).await;
    }
    let monitor = start_monitor(target, options);
    let before = nodes::sample_nodes(target);
    let witnessed = witness::applies(target);
    let counts_before = match witnessed {
        true => witness::read_all(target).await,
        false => Err("the bus is external: other clients may share it".to_owned()),
    };
    let fault_plan = scenario.faults.clone();
    let http = http_load_of(&scenario, target, options);
    let audit_token = options
        .jwt_secret
        .as_deref()
        .map(|s| admin_token(s, "sim-witness"));
    let sampling = CancellationToken::new();
    let live = live.map(|board| (board.clone(), monitor.latest(), sampling.clone()));
    let (mut result, (mut faults, rest_notes, audits)) =
        drive::run_with(scenario.clone(), &endpoints, options, |ctx| async move {
            if let Some((board, health, stop)) = live {
                let sampler = Sampler::new(board, ctx.clone(), Some(health));
                tokio::spawn(sampler.run(stop));
            }
            let audit = async {
                match witness::audit_instant(&ctx.plan) {
                    Some(at) if witnessed => {
                        witness::audit(&ctx, target, audit_token.as_deref(), at).await
                    }
                    _ => Vec::new(),
                }
            };
            let rest = async {
                let Some(load) = http else {
                    return Ok(Vec::new());
                };
                tokio::select! {
                    outcome = http_load::run(load, ctx.hub.clone()) => outcome,
                    _ = ctx.interrupted.cancelled() => Ok(vec![
                        "the REST load (goose) was stopped early: the run was interrupted".to_owned(),
                    ]),
                }
            };
            tokio::join!(faults::drive(fault_plan, ctx.clone(), target), rest, audit)
        })
        .await;
    // The last live snapshot is of the run as it ended.
    sampling.cancel();
    let witness = match counts_before {
        Ok(before) => witness_rows(target, &before, &result, &audits).await,
        Err(why) => Err(why),
    };
    let watched = monitor.stop().await;
    faults::attach_health(&mut faults, &watched.health);
    let bus_nodes = node_costs(target, &before, result.duration);
    let (queues, mut observations) = queues::read_queues(&scenario, target).await;
    match rest_notes {
        Ok(rest) => observations.extend(rest),
        Err(e) => observations.push(format!("the REST load (goose) failed: {e}")),
    }
    let mut notes = Vec::new();
    notes.extend(settle_queues(&mut result, queues, options.shard.1));
    notes.extend(derived_notes(
        result.metrics.ledger(),
        result.connects,
        result.slow_consumers,
    ));
    Measured {
        result,
        watched,
        bus_nodes,
        queues,
        observations,
        notes,
        faults,
        witness,
    }
}

/// The monitor of the bus's health, its nodes' metrics and its Redis,
/// polled every second.
fn start_monitor(target: &RunningTarget, options: &RunOptions) -> Monitor {
    Monitor::start(
        target.http_urls.clone(),
        target.redis_url.clone(),
        options
            .jwt_secret
            .as_deref()
            .map(|s| admin_token(s, "sim-monitor")),
        Instant::now(),
        Duration::from_secs(1),
    )
}

/// The bus witness's rows: the nodes' own counts once every agent closed,
/// beside what the agents saw.
async fn witness_rows(
    target: &RunningTarget,
    before: &[witness::BusCounts],
    result: &RunResult,
    audits: &[witness::Audit],
) -> Result<Vec<NodeWitness>, String> {
    let after = witness::read_all_closed(target, before).await?;
    let labels: Vec<String> = target.http_urls.iter().map(|u| node_label(u)).collect();
    let mut rows = witness::rows(&labels, before, &after, &result.node_traffic, audits);
    for (i, row) in rows.iter_mut().enumerate() {
        row.restarted = target.was_restarted(i);
    }
    Ok(rows)
}

/// Settles the queue ledger from the bus's counts (one shard), or says that
/// `sim merge` will (several shards, each with producers and workers).
fn settle_queues(
    result: &mut RunResult,
    queues: Option<QueueReading>,
    shards: u32,
) -> Option<String> {
    let reading = queues?;
    Some(match shards {
        1 => ledger::settle_queue(result.metrics.ledger_mut(), reading),
        _ => format!(
            "queue ledger: settled by `sim merge` (producers and workers run in every shard); the bus held {} still queued and {} dead-lettered at this shard's end",
            reading.still_queued, reading.dead
        ),
    })
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
    let token = options
        .jwt_secret
        .as_deref()
        .map(|secret| admin_token(secret, "sim-rest"));
    Some(HttpLoad {
        base_url: target.http_urls.first()?.clone(),
        users: users as usize,
        think: Duration::from_secs_f64(1.0 / rate),
        run_time: scenario.total_duration(),
        workspace: "ws-0".into(),
        token,
    })
}

//! One capacity point, measured for real: a fresh bus of the set-up, the
//! scenario at that load (connect first, then a steady phase), judged on the
//! steady traffic, with the bus's own health compared to the agents' view.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::search::Prober;
use super::{Point, PointRun, Setup, Vary, steady_state};
use crate::bus_under_test::{self, RunningTarget, TargetOptions};
use crate::drive::RunOptions;
use crate::ledger::MessageClass;
use crate::live::{CapacityPoint, LiveBoard};
use crate::metrics::{Operation, RunMetrics};
use crate::orchestrate::{self, Measured};
use crate::scenario::Scenario;
use crate::verdict::trust::IntegrityStatus;
use crate::verdict::{self, Status, Verdicts};

/// How every point of one set-up is measured.
#[derive(Debug, Clone)]
pub struct ProbeSettings {
    /// The bus set-up each point starts afresh.
    pub setup: Setup,
    /// What the load sets.
    pub vary: Vary,
    /// The scenario whose load is varied.
    pub base: Scenario,
    /// Length of each point's steady phase.
    pub point_duration: Duration,
    /// Runs per load (at least one is made).
    pub repeats: u32,
    /// Redis for Redis set-ups; `None`: the scenario's `redis_url`, else a
    /// private redis-server per run.
    pub redis_url: Option<String>,
    /// The `bus` executable for spawned set-ups; `None`: `BUS_BIN`, the
    /// `bus` next to the running executable, then `PATH`.
    pub bus_binary: Option<PathBuf>,
    /// Whether to print nothing per run.
    pub quiet: bool,
    /// Where each point's run is shown live, and each measured point added
    /// to the curve (`--dashboard`).
    pub live: Option<LiveBoard>,
}

/// Measures points and keeps them.
#[derive(Debug)]
pub struct PointProber {
    settings: ProbeSettings,
    /// Every load measured so far, in the order tried.
    pub points: Vec<Point>,
    /// Why a run could not be made or judged, one line each.
    pub notes: Vec<String>,
}

impl PointProber {
    /// A prober with nothing measured yet.
    pub fn new(settings: ProbeSettings) -> Self {
        Self {
            settings,
            points: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// Agents connect at a bounded rate; give them time before traffic.
    fn connect_time(agents: u64) -> Duration {
        Duration::from_secs_f64((agents as f64 / 1500.0).max(2.0))
    }

    fn scenario_at(&self, load: f64) -> Scenario {
        let s = &self.settings;
        let loaded = s.vary.apply(&s.base, load);
        let mut scenario = steady_state(
            &loaded,
            Self::connect_time(loaded.total_agents()),
            s.point_duration,
        );
        scenario.target.mode = s.setup.mode;
        scenario.target.broker = s.setup.broker;
        scenario.target.nodes = s.setup.nodes;
        scenario.target.urls.clear();
        scenario
    }

    async fn run_once(&mut self, load: f64) -> Option<PointRun> {
        let scenario = self.scenario_at(load);
        let agents = scenario.total_agents();
        if let Some(problem) =
            bus_under_test::descriptor_budget(agents, scenario.target.mode).problem()
        {
            self.notes
                .push(format!("{} at {load}: {problem}", self.settings.setup.name));
            return None;
        }
        let options = TargetOptions {
            redis_url: self.settings.redis_url.clone(),
            urls: Vec::new(),
            bus_binary: self.settings.bus_binary.clone(),
            ..TargetOptions::default()
        };
        let target = match RunningTarget::start(&scenario.target, &options).await {
            Ok(t) => t,
            Err(e) => {
                self.notes.push(format!(
                    "{} at {load}: cannot start the bus: {e}",
                    self.settings.setup.name
                ));
                return None;
            }
        };
        let redis_before = redis_cpu(target.redis_url.as_deref()).await;
        let started = Instant::now();
        let run_options = RunOptions {
            quiet: true,
            ..RunOptions::default()
        };
        let measured = orchestrate::measure(
            Arc::new(scenario.clone()),
            &target,
            &run_options,
            self.settings.live.as_ref(),
        )
        .await;
        let redis_after = redis_cpu(target.redis_url.as_deref()).await;
        if let Err(e) = target.stop().await {
            self.notes.push(format!("stopping the bus: {e}"));
        }
        let connect = Self::connect_time(agents);
        let mut run = summarise(load, &scenario, &measured, connect);
        if let (Some((cpu0, _)), Some((cpu1, memory))) = (redis_before, redis_after) {
            run.redis_cpu_percent =
                Some(100.0 * (cpu1 - cpu0) / started.elapsed().as_secs_f64().max(1e-9));
            run.redis_memory_bytes = Some(memory);
        }
        if !self.settings.quiet {
            eprintln!(
                "  {} {load:>10.1} {}: p99 {:.1} ms, {:.0} delivered/s, loss {:.4}, {}{} (bus said {})",
                self.settings.setup.name,
                self.settings.vary.unit(),
                run.p99_ms,
                run.delivered_per_s,
                run.loss_ratio,
                run.status,
                if run.simulator_limited.is_some() {
                    " (inconclusive: the simulator was the bottleneck)"
                } else {
                    ""
                },
                run.bus_health.as_deref().unwrap_or("-")
            );
        }
        Some(run)
    }
}

impl Prober for PointProber {
    async fn probe(&mut self, load: f64) -> Status {
        let mut runs = Vec::new();
        for _ in 0..self.settings.repeats.max(1) {
            if let Some(run) = self.run_once(load).await {
                runs.push(run);
            }
        }
        if runs.is_empty() {
            return Status::Critical;
        }
        let name = &self.settings.setup.name;
        let limited = runs.iter().find_map(|r| r.simulator_limited.clone());
        let broken = runs.iter().find_map(|r| r.integrity_failed.clone());
        if let Some(why) = &limited {
            self.notes.push(format!(
                "{name} at {load}: the simulator could not keep its schedule ({why}); the search stops here, and the bus's capacity may lie above what it found: run the simulator in shards (--shard i/n) or on another machine"
            ));
        }
        if let Some(why) = &broken {
            self.notes.push(format!(
                "{name} at {load}: the run failed its integrity check ({why}); the point is not judged"
            ));
        }
        let point = Point::of(load, runs);
        if let Some(board) = &self.settings.live {
            board.add_capacity_point(
                self.settings.vary.unit(),
                CapacityPoint {
                    setup: name.clone(),
                    load,
                    p99_ms: point.p99_ms,
                    p50_ms: point.p50_ms,
                    status: point.status.to_string(),
                },
            );
        }
        if limited.is_some() || broken.is_some() {
            self.points.push(point);
            return Status::Critical;
        }
        let status = point.status;
        self.points.push(point);
        status
    }
}

/// The agents' verdict without the connect operation (a ramp artifact, not
/// the steady state a capacity point measures).
fn steady_verdicts(measured: &Measured, scenario: &Scenario) -> Verdicts {
    let mut v = verdict::judge(&measured.result.metrics, &scenario.thresholds);
    v.operations.retain(|o| o.operation != Operation::Connect);
    v.recompute_overall();
    v
}

fn summarise(load: f64, scenario: &Scenario, measured: &Measured, connect: Duration) -> PointRun {
    let metrics = &measured.result.metrics;
    let mut verdicts = steady_verdicts(measured, scenario);
    let integrity = orchestrate::integrity::assess(
        scenario,
        &measured.result,
        &measured.witness,
        &mut verdicts,
    );
    let simulator_limited = match integrity.status {
        IntegrityStatus::Inconclusive => integrity.saturation.clone(),
        _ => None,
    };
    let operation = shown_operation(metrics);
    let summary = operation.and_then(|op| metrics.summary(op));
    let steady_s = scenario
        .total_duration()
        .saturating_sub(connect)
        .as_secs_f64()
        .max(1e-9);
    let (delivered, loss_ratio) = delivered_and_loss(metrics);
    let sent: u64 = metrics.series_rows().iter().map(|r| r.sent).sum();
    let latency_status = verdicts
        .operations
        .iter()
        .map(|o| o.status)
        .max()
        .unwrap_or_default();
    let threshold = scenario
        .thresholds
        .for_operation(operation.unwrap_or(Operation::PublishDelivery));
    let health = bus_view(measured, connect);
    let (agrees, disagreement) = compare(health, latency_status);
    PointRun {
        load,
        // What was measured, inconclusive verdicts included: the point is
        // marked inconclusive apart and kept out of the boundaries.
        status: if simulator_limited.is_some() {
            verdicts.overall.max(latency_status)
        } else {
            verdicts.overall
        },
        operation,
        p50_ms: summary.map_or(0.0, |s| s.p50_ms),
        p99_ms: summary.map_or(0.0, |s| s.p99_ms),
        p999_ms: summary.map_or(0.0, |s| s.p999_ms),
        offered_per_s: sent as f64 / steady_s,
        delivered_per_s: delivered as f64 / steady_s,
        loss_ratio,
        bus_health: health.map(|s| s.as_str().to_owned()),
        agrees,
        disagreement,
        notice_s: notice_delay(measured, connect, threshold.warning),
        bus_cpu_percent: (!measured.bus_nodes.is_empty())
            .then(|| measured.bus_nodes.iter().map(|n| n.cpu_percent).sum()),
        bus_peak_rss_bytes: (!measured.bus_nodes.is_empty())
            .then(|| measured.bus_nodes.iter().map(|n| n.peak_rss_bytes).sum()),
        redis_cpu_percent: None,
        redis_memory_bytes: None,
        simulator_limited,
        integrity_failed: (integrity.status == IntegrityStatus::Failed)
            .then(|| integrity.findings.join("; ")),
    }
}

/// The operation a point shows (and the curve and knee use): the busiest,
/// ties going to the earlier one (queue_wait before queue_process), so
/// every point of a set-up shows the same one.
fn shown_operation(metrics: &RunMetrics) -> Option<Operation> {
    metrics
        .operations()
        .into_iter()
        .filter(|op| op.is_judged() && *op != Operation::Connect)
        .min_by_key(|op| {
            (
                std::cmp::Reverse(metrics.summary(*op).map_or(0, |s| s.count)),
                op.index(),
            )
        })
}

/// Messages delivered (every class but queue jobs, plus jobs claimed) and
/// the share of owed messages lost.
fn delivered_and_loss(metrics: &RunMetrics) -> (u64, f64) {
    let ledger = metrics.ledger();
    let delivered: u64 = MessageClass::ALL
        .iter()
        .filter(|c| **c != MessageClass::Queue)
        .map(|c| ledger.class(*c).delivered)
        .sum::<u64>()
        + ledger.queue.claimed;
    let (expected, lost) = ledger
        .classes
        .values()
        .fold((0, 0), |(e, l), c| (e + c.expected, l + c.lost()));
    let loss = if expected == 0 {
        0.0
    } else {
        lost as f64 / expected as f64
    };
    (delivered, loss)
}

/// The worst status the bus gave itself during the steady phase.
fn bus_view(measured: &Measured, connect: Duration) -> Option<Status> {
    measured
        .watched
        .health
        .iter()
        .filter(|h| h.at_s >= connect.as_secs_f64())
        .map(|h| h.level())
        .max()
}

fn compare(bus: Option<Status>, agents: Status) -> (bool, Option<String>) {
    match bus {
        None => (
            false,
            Some("the bus reported no health during the steady phase".into()),
        ),
        Some(b) if b == agents => (true, None),
        Some(b) => (
            false,
            Some(format!(
                "the bus said {b} while the agents measured {agents}"
            )),
        ),
    }
}

/// Seconds from the agents' per-second p99 first passing `warning` to the
/// bus's first not-healthy report at or after that second.
fn notice_delay(measured: &Measured, connect: Duration, warning: Duration) -> Option<f64> {
    let warning_ms = warning.as_secs_f64() * 1000.0;
    let crossed = measured
        .result
        .metrics
        .series_rows()
        .into_iter()
        .find(|r| {
            r.second as f64 >= connect.as_secs_f64() && r.p99_ms.is_some_and(|p| p > warning_ms)
        })?
        .second as f64;
    measured
        .watched
        .health
        .iter()
        .find(|h| h.at_s >= crossed && h.level() != Status::Healthy)
        .map(|h| h.at_s - crossed)
}

/// Redis's CPU seconds (user + system) and used memory, from INFO.
async fn redis_cpu(url: Option<&str>) -> Option<(f64, u64)> {
    let client = redis::Client::open(url?).ok()?;
    let mut conn = client.get_multiplexed_async_connection().await.ok()?;
    let info: String = redis::cmd("INFO").query_async(&mut conn).await.ok()?;
    let field = |name: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .map(str::trim)
    };
    let cpu = field("used_cpu_sys")?.parse::<f64>().ok()?
        + field("used_cpu_user")?.parse::<f64>().ok()?;
    let memory = field("used_memory")?.parse().ok()?;
    Some((cpu, memory))
}

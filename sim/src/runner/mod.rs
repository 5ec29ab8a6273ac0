//! The runner: turns a scenario into a plan, spawns one task per agent,
//! drives the phases, drains at the end, and merges what the agents
//! measured into one `RunMetrics` with a reconciled ledger.
//!
//! - [`plan`]: who connects when, to which node, from which address.
//! - [`context`]: what the agents share (clock, metrics hub, signals).
//! - [`ledger`]: expected versus delivered, from windows and send logs.
//! - `progress`: the live display.

pub mod context;
pub mod ledger;
pub mod plan;
mod progress;

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use self::context::{BroadcastTracker, Counters, RunClock, RunContext};
use crate::agent::{self, AgentOutcome};
use crate::metrics::{MetricsHub, Operation, RunMetrics};
use crate::scenario::Scenario;

/// How a run is driven (everything that is not in the scenario).
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// This process runs agents with `id % count == index`.
    pub shard: (u32, u32),
    /// Signs agent tokens when the bus requires them.
    pub jwt_secret: Option<String>,
    /// Longest wait after the last phase for deliveries to settle.
    pub drain_max: Duration,
    /// The drain ends early once nothing arrived for this long.
    pub drain_quiet: Duration,
    /// WebSocket handshakes in flight at most.
    pub connect_concurrency: usize,
    /// No progress display.
    pub quiet: bool,
    /// How long an agent that leaves mid-run keeps reading.
    pub linger: Duration,
    /// The wall-clock instant the run's zero is anchored to (`--start-at`),
    /// so shards started apart share their phases; `None`: when the run
    /// starts. Agents wait for their planned connects from there.
    pub start_at: Option<SystemTime>,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            shard: (0, 1),
            jwt_secret: None,
            drain_max: Duration::from_secs(5),
            drain_quiet: Duration::from_millis(500),
            connect_concurrency: 256,
            quiet: false,
            linger: Duration::from_secs(1),
            start_at: None,
        }
    }
}

/// Where the agents connect.
#[derive(Debug, Clone)]
pub struct Endpoints {
    /// `ws://host:port/ws/connect` per bus node.
    pub ws_urls: Vec<String>,
    pub source_addresses: Vec<IpAddr>,
}

/// What a run measured.
#[derive(Debug)]
pub struct RunResult {
    pub metrics: RunMetrics,
    /// Expected and delivered messages of agents that faults made slow
    /// consumers, kept out of the ledger's classes.
    pub slow_consumers: (u64, u64),
    pub started_at: SystemTime,
    /// From the start to the end of the drain.
    pub duration: Duration,
    /// Agents this process simulated.
    pub agents: u64,
    /// Connects completed and their rate (per second, first to last).
    pub connect_rate: Option<(u64, f64)>,
}

/// Sleeps until the wall-clock instant `at`; returns at once if it has
/// passed. Callers that measure around a run (the bus's CPU, its health)
/// wait with it first, so their figures cover the run alone.
pub async fn wait_until(at: SystemTime) {
    if let Ok(ahead) = at.duration_since(SystemTime::now()) {
        tokio::time::sleep(ahead).await;
    }
}

/// Runs `scenario` against `endpoints`.
pub async fn run(
    scenario: Arc<Scenario>,
    endpoints: &Endpoints,
    options: &RunOptions,
) -> RunResult {
    run_with(scenario, endpoints, options, |_| async {}).await.0
}

/// Runs `scenario` with `beside` running next to the agents from the start
/// (the fault driver uses it to act on the run while it happens); returns
/// what `beside` returned too.
pub async fn run_with<F, Fut, T>(
    scenario: Arc<Scenario>,
    endpoints: &Endpoints,
    options: &RunOptions,
    beside: F,
) -> (RunResult, T)
where
    F: FnOnce(Arc<RunContext>) -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let ctx = context(&scenario, endpoints, options);
    let started_at = ctx.clock.start_time();
    let plan = ctx.plan.clone();
    let agents = plan.agents.len() as u64;
    let progress_stop = CancellationToken::new();
    let progress = progress::spawn(ctx.clone(), agents, options.quiet, progress_stop.clone());
    let mut tasks = JoinSet::new();
    for agent_plan in plan.agents.iter().cloned() {
        tasks.spawn(agent::run(agent_plan, ctx.clone()));
    }
    let drive = async {
        tokio::time::sleep_until(ctx.clock.instant(plan.run_length)).await;
        ctx.draining.store(true, Ordering::Relaxed);
        drain(&ctx, options).await;
        ctx.stop.cancel();
        let mut outcomes = Vec::with_capacity(plan.agents.len());
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok(outcome) => outcomes.push(outcome),
                Err(e) => tracing::error!(cause = %e, "an agent task failed"),
            }
        }
        outcomes
    };
    let (outcomes, side) = tokio::join!(drive, beside(ctx.clone()));
    progress_stop.cancel();
    let _ = progress.await;
    let (metrics, slow_consumers) = finish(&ctx, &outcomes);
    let result = RunResult {
        metrics,
        slow_consumers,
        started_at,
        duration: ctx.clock.start.elapsed(),
        agents,
        connect_rate: ctx.counters.connect_rate(),
    };
    (result, side)
}

fn context(
    scenario: &Arc<Scenario>,
    endpoints: &Endpoints,
    options: &RunOptions,
) -> Arc<RunContext> {
    let plan = Arc::new(plan::build(
        scenario,
        endpoints.ws_urls.len(),
        &endpoints.source_addresses,
        options.shard,
    ));
    let clock = options
        .start_at
        .map_or_else(RunClock::new, RunClock::starting_at);
    let agents = scenario.total_agents() as usize;
    Arc::new(RunContext {
        scenario: scenario.clone(),
        plan,
        clock,
        hub: MetricsHub::new(clock.start),
        ws_urls: endpoints.ws_urls.clone(),
        jwt_secret: options.jwt_secret.clone(),
        counters: Counters::default(),
        broadcasts: BroadcastTracker::default(),
        connects: Semaphore::new(options.connect_concurrency.max(1)),
        draining: Default::default(),
        stop: CancellationToken::new(),
        linger: options.linger,
        online: (0..agents).map(|_| Default::default()).collect(),
        faults: context::AgentFaults::new(agents),
    })
}

/// Waits until nothing arrives any more (or the drain time is up).
async fn drain(ctx: &RunContext, options: &RunOptions) {
    let deadline = tokio::time::Instant::now() + options.drain_max;
    let step = Duration::from_millis(50);
    let mut last = ctx.counters.received.load(Ordering::Relaxed);
    let mut quiet_since = tokio::time::Instant::now();
    while tokio::time::Instant::now() < deadline {
        tokio::time::sleep(step).await;
        let now = ctx.counters.received.load(Ordering::Relaxed);
        if now != last {
            last = now;
            quiet_since = tokio::time::Instant::now();
        } else if quiet_since.elapsed() >= options.drain_quiet {
            return;
        }
    }
}

/// Merges the recorders, reconciles the ledger and adds broadcast
/// first/last latencies.
fn finish(ctx: &RunContext, outcomes: &[AgentOutcome]) -> (RunMetrics, (u64, u64)) {
    let mut metrics = ctx.hub.merge();
    let at = ctx.clock.start.elapsed();
    let mut extra = crate::metrics::Recorder::new();
    for (first, last) in ctx.broadcasts.drain() {
        extra.record(Operation::BroadcastFirst, first, at);
        extra.record(Operation::BroadcastLast, last, at);
    }
    metrics.merge(&RunMetrics::from(extra));
    let reconciled = ledger::reconcile(outcomes);
    for (class, (expected, delivered)) in reconciled.classes {
        let entry = metrics.ledger_mut().class_mut(class);
        entry.expected += expected;
        entry.delivered += delivered;
    }
    (metrics, reconciled.slow)
}

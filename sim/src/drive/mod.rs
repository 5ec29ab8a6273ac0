//! The runner: turns a scenario into a plan, spawns one task per agent,
//! drives the phases, drains at the end, and merges what the agents
//! measured into one `RunMetrics` with a reconciled ledger.
//!
//! - [`evidence`]: the send logs and subscription windows a ledger is
//!   reconciled from (a shard's, or several shards' together).
//! - [`ledger`]: expected versus delivered, from the evidence; the queue
//!   ledger settled from the bus's counts.
//! - [`shard`]: what one shard of a sharded run writes for `sim merge`.
//! - [`self_load`]: the simulator's own scheduling lag and CPU, to tell
//!   when it could not keep its schedule.
//! - `progress`: the live display.

pub mod completion;
mod progress;
pub mod self_load;
pub mod shard;

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use self::self_load::{SelfLoad, SelfWatch};
use crate::agent;
use crate::context::{
    ConnectSpan, ContextSettings, FrameLog, NodeTraffic, RunClock, RunContext, TrafficTotals,
};
use crate::ledger::{Counting, Evidence};
use crate::metrics::RunMetrics;
use crate::scenario::{LoadScale, Scenario};

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
    /// How the scenario's load was changed from its file (`--duration`,
    /// `--scale-agents`, `--scale-rate`), for the report.
    pub scale: Option<LoadScale>,
    /// Cancelled on SIGINT or SIGTERM: the schedule stops, deliveries drain
    /// for at most [`INTERRUPTED_DRAIN`], and the run ends with what it
    /// measured so far.
    pub interrupt: CancellationToken,
    /// Where agents copy the frames they write, for a check that decodes
    /// them (`None` in real runs).
    pub frame_log: Option<Arc<FrameLog>>,
}

/// Longest drain of an interrupted run.
pub const INTERRUPTED_DRAIN: Duration = Duration::from_secs(2);

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
            scale: None,
            interrupt: CancellationToken::new(),
            frame_log: None,
        }
    }
}

/// Where the agents connect.
#[derive(Debug, Clone)]
pub struct Endpoints {
    /// `ws://host:port/ws/connect` per bus node.
    pub ws_urls: Vec<String>,
    /// Local addresses the agents' sockets are spread over (by agent id);
    /// empty lets the operating system pick.
    pub source_addresses: Vec<IpAddr>,
}

/// What a run measured.
#[derive(Debug)]
pub struct RunResult {
    /// Everything measured, completed with the run-wide figures (broadcast
    /// first/last, the reconciled classes). A shard counts only its own
    /// senders' messages here ([`Counting::Local`]).
    pub metrics: RunMetrics,
    /// What the agents recorded before that completion, and the evidence
    /// it came from: with the histograms, what `sim merge` needs of a
    /// shard to complete the shards' metrics together.
    pub recorded: RunMetrics,
    /// What the agents sent and received, that the pub/sub, pattern and
    /// broadcast ledger is computed from.
    pub evidence: Evidence,
    /// Expected and delivered messages of agents that faults made slow
    /// consumers, kept out of the ledger's classes.
    pub slow_consumers: (u64, u64),
    /// The run's zero (the `--start-at` instant, if one was given).
    pub started_at: SystemTime,
    /// From the start to the end of the drain.
    pub duration: Duration,
    /// Agents this process simulated.
    pub agents: u64,
    /// When the run was interrupted (SIGINT or SIGTERM), from its start;
    /// `None` when it ran to its end.
    pub interrupted_at: Option<Duration>,
    /// Whether the drain ended because deliveries went quiet (not because
    /// its time was up with messages still arriving).
    pub drained_quiet: bool,
    /// What the simulator measured of itself: scheduling lag, CPU.
    pub self_load: SelfLoad,
    /// Connects completed, first to last.
    pub connects: Option<ConnectSpan>,
    /// What the agents did with each bus node (indexed like the endpoints).
    pub node_traffic: Vec<TrafficTotals>,
    /// Agents planned per bus node.
    pub node_agents: Vec<u64>,
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
    let watch = SelfWatch::start(ctx.clock.start);
    let mut tasks = JoinSet::new();
    for agent_plan in plan.agents.iter().cloned() {
        tasks.spawn(agent::run(agent_plan, ctx.clone()));
    }
    let drive = async {
        let interrupted_at = tokio::select! {
            _ = tokio::time::sleep_until(ctx.clock.instant(plan.run_length)) => None,
            _ = ctx.interrupted.cancelled() => Some(ctx.clock.start.elapsed()),
        };
        ctx.draining.store(true, Ordering::Relaxed);
        let drain_max = match interrupted_at {
            Some(_) => options.drain_max.min(INTERRUPTED_DRAIN),
            None => options.drain_max,
        };
        let drained_quiet = drain(&ctx, drain_max, options.drain_quiet).await;
        ctx.stop.cancel();
        let mut outcomes = Vec::with_capacity(plan.agents.len());
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok(outcome) => outcomes.push(outcome),
                Err(e) => tracing::error!(cause = %e, "an agent task failed"),
            }
        }
        (outcomes, interrupted_at, drained_quiet)
    };
    let ((outcomes, interrupted_at, drained_quiet), side) =
        tokio::join!(drive, beside(ctx.clone()));
    let self_load = watch.stop().await;
    progress_stop.cancel();
    let _ = progress.await;
    let recorded = ctx.hub.merge();
    let evidence = Evidence::gather(outcomes, ctx.broadcasts.drain());
    let mut metrics = recorded.clone();
    let counting = if options.shard.1 > 1 {
        Counting::Local
    } else {
        Counting::All
    };
    let slow_consumers =
        completion::complete(&mut metrics, &evidence, counting, ctx.clock.start.elapsed());
    let result = RunResult {
        metrics,
        recorded,
        evidence,
        slow_consumers,
        started_at,
        duration: ctx.clock.start.elapsed(),
        agents,
        interrupted_at,
        drained_quiet,
        self_load,
        connects: ctx.counters.connect_span(&ctx.clock),
        node_traffic: ctx.node_traffic.iter().map(NodeTraffic::totals).collect(),
        node_agents: node_agents(&plan, endpoints.ws_urls.len()),
    };
    (result, side)
}

/// How many of the plan's agents connect to each of `nodes` nodes.
fn node_agents(plan: &crate::plan::Plan, nodes: usize) -> Vec<u64> {
    let mut counts = vec![0; nodes];
    for agent in &plan.agents {
        if let Some(count) = counts.get_mut(agent.node) {
            *count += 1;
        }
    }
    counts
}

/// The shared context of a run of `scenario` (agents are not started).
fn context(
    scenario: &Arc<Scenario>,
    endpoints: &Endpoints,
    options: &RunOptions,
) -> Arc<RunContext> {
    let plan = Arc::new(crate::plan::build(
        scenario,
        endpoints.ws_urls.len(),
        &endpoints.source_addresses,
        options.shard,
    ));
    let clock = options
        .start_at
        .map_or_else(RunClock::new, RunClock::starting_at);
    Arc::new(RunContext::new(
        scenario.clone(),
        plan,
        clock,
        ContextSettings {
            ws_urls: endpoints.ws_urls.clone(),
            jwt_secret: options.jwt_secret.clone(),
            connect_concurrency: options.connect_concurrency,
            linger: options.linger,
            shard: options.shard,
            interrupt: options.interrupt.child_token(),
            frame_log: options.frame_log.clone(),
        },
    ))
}

/// Waits until nothing arrives any more (or the drain time is up); true
/// when it went quiet.
async fn drain(ctx: &RunContext, drain_max: Duration, drain_quiet: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + drain_max;
    let step = Duration::from_millis(50);
    let mut last = ctx.counters.received.load(Ordering::Relaxed);
    let mut quiet_since = tokio::time::Instant::now();
    while tokio::time::Instant::now() < deadline {
        tokio::time::sleep(step).await;
        let now = ctx.counters.received.load(Ordering::Relaxed);
        if now != last {
            last = now;
            quiet_since = tokio::time::Instant::now();
        } else if quiet_since.elapsed() >= drain_quiet {
            return true;
        }
    }
    false
}

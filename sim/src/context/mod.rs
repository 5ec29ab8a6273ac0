//! What every agent task of a run shares: the scenario and plan, the run
//! clock, the metrics hub, live counters, the broadcast tracker, the fault
//! switches, and the signals that end the run.
//!
//! - [`clock`](RunClock): run-clock µs that read as wall-clock µs.
//! - [`counters`](Counters): live totals, connect spans, per-node traffic,
//!   the broadcast tracker.
//! - [`switches`](FaultSwitches): what faults ask of agents.
//! - [`frames`](FrameLog): a copy of the frames agents write, when a check
//!   reads them (off in real runs).

mod clock;
mod counters;
mod frames;
mod switches;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

pub use self::clock::{RunClock, wall_us};
pub use self::counters::{BroadcastTracker, ConnectSpan, Counters, NodeTraffic, TrafficTotals};
pub use self::frames::FrameLog;
pub use self::switches::FaultSwitches;
use crate::metrics::MetricsHub;
use crate::plan::Plan;
use crate::scenario::Scenario;

/// Everything shared by one run's agents.
#[derive(Debug)]
pub struct RunContext {
    /// The scenario being run.
    pub scenario: Arc<Scenario>,
    /// The plan: this process's agents and the topic table.
    pub plan: Arc<Plan>,
    /// The run's zero, on the monotonic and the wall clock.
    pub clock: RunClock,
    /// Where agents record their metrics.
    pub hub: MetricsHub,
    /// `ws://host:port/ws/connect` per bus node.
    pub ws_urls: Vec<String>,
    /// JWT secret to sign agent tokens with, when the bus wants them.
    pub jwt_secret: Option<String>,
    /// Live totals for the progress display, and the connect span.
    pub counters: Counters,
    /// First and last arrival of every broadcast.
    pub broadcasts: BroadcastTracker,
    /// Bounds concurrent WebSocket handshakes.
    pub connects: Semaphore,
    /// Set when the last phase ends: senders stop, receivers drain.
    pub draining: AtomicBool,
    /// Cancelled after the drain: every agent closes.
    pub stop: CancellationToken,
    /// Cancelled when the run is interrupted (SIGINT, SIGTERM): the
    /// schedule stops and faults not yet begun are not applied.
    pub interrupted: CancellationToken,
    /// How long an agent that leaves mid-run keeps reading before it closes.
    pub linger: Duration,
    /// Which agents (by id) are connected now, so direct chatters talk to
    /// peers that are there (messages to absent agents wait in inboxes,
    /// which measures the inbox, not the bus's latency).
    pub online: Vec<AtomicBool>,
    /// Which agents (by id) are connected with their subscriptions
    /// confirmed by the bus: the ones whose subscriptions the witness may
    /// compare with the bus's.
    pub subscribed: Vec<AtomicBool>,
    /// What injected faults ask of the agents.
    pub faults: FaultSwitches,
    /// `(index, count)`: this process runs the agents whose id modulo
    /// `count` is `index` (`(0, 1)`: all of them).
    pub shard: (u32, u32),
    /// What the agents did with each bus node (indexed like `ws_urls`).
    pub node_traffic: Vec<NodeTraffic>,
    /// Where agents copy the frames they write, when a check reads them.
    pub frame_log: Option<Arc<FrameLog>>,
}

/// How a run's context is set up (everything that is not the scenario,
/// the plan or the clock).
#[derive(Debug, Clone)]
pub struct ContextSettings {
    /// `ws://host:port/ws/connect` per bus node.
    pub ws_urls: Vec<String>,
    /// Signs agent tokens when the bus wants them.
    pub jwt_secret: Option<String>,
    /// WebSocket handshakes in flight at most.
    pub connect_concurrency: usize,
    /// How long an agent that leaves mid-run keeps reading.
    pub linger: Duration,
    /// `(index, count)` of this process's shard.
    pub shard: (u32, u32),
    /// Cancelled when the run is interrupted.
    pub interrupt: CancellationToken,
    /// Where agents copy the frames they write (`None`: nowhere).
    pub frame_log: Option<Arc<FrameLog>>,
}

impl Default for ContextSettings {
    fn default() -> Self {
        Self {
            ws_urls: Vec::new(),
            jwt_secret: None,
            connect_concurrency: 256,
            linger: Duration::from_secs(1),
            shard: (0, 1),
            interrupt: CancellationToken::new(),
            frame_log: None,
        }
    }
}

impl RunContext {
    /// The context of a run of `scenario` along `plan`, from `clock`'s zero.
    pub fn new(
        scenario: Arc<Scenario>,
        plan: Arc<Plan>,
        clock: RunClock,
        settings: ContextSettings,
    ) -> Self {
        let agents = scenario.total_agents() as usize;
        let flags = || (0..agents).map(|_| AtomicBool::default()).collect();
        Self {
            scenario,
            plan,
            clock,
            hub: MetricsHub::new(clock.start),
            node_traffic: settings
                .ws_urls
                .iter()
                .map(|_| Default::default())
                .collect(),
            ws_urls: settings.ws_urls,
            jwt_secret: settings.jwt_secret,
            counters: Counters::default(),
            broadcasts: BroadcastTracker::default(),
            connects: Semaphore::new(settings.connect_concurrency.max(1)),
            draining: AtomicBool::default(),
            stop: CancellationToken::new(),
            interrupted: settings.interrupt,
            frame_log: settings.frame_log,
            linger: settings.linger,
            online: flags(),
            subscribed: flags(),
            faults: FaultSwitches::new(agents),
            shard: settings.shard,
        }
    }

    /// Sleeps `duration`, or less if the run is interrupted meanwhile;
    /// false when it was.
    pub async fn hold(&self, duration: Duration) -> bool {
        self.hold_until(tokio::time::Instant::now() + duration)
            .await
    }

    /// Sleeps until `at`, or less if the run is interrupted meanwhile;
    /// false when it was.
    pub async fn hold_until(&self, at: tokio::time::Instant) -> bool {
        tokio::select! {
            _ = tokio::time::sleep_until(at) => true,
            _ = self.interrupted.cancelled() => false,
        }
    }

    /// Whether the last phase has ended.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Marks agent `agent` connected or not (ids out of range are ignored).
    pub fn set_online(&self, agent: u32, online: bool) {
        if let Some(flag) = self.online.get(agent as usize)
            && flag.swap(online, Ordering::Relaxed) != online
        {
            if online {
                self.counters.online.fetch_add(1, Ordering::Relaxed);
            } else {
                self.counters.online.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }

    /// Whether agent `id` runs in this process (its shard).
    pub fn is_local_agent(&self, id: u32) -> bool {
        id % self.shard.1.max(1) == self.shard.0
    }

    /// Marks agent `agent`'s subscriptions confirmed or not (ids out of
    /// range are ignored).
    pub fn set_subscribed(&self, agent: u32, subscribed: bool) {
        if let Some(flag) = self.subscribed.get(agent as usize) {
            flag.store(subscribed, Ordering::Relaxed);
        }
    }

    /// Whether agent `agent` is connected with its subscriptions confirmed.
    pub fn is_subscribed(&self, agent: u32) -> bool {
        self.subscribed
            .get(agent as usize)
            .is_some_and(|f| f.load(Ordering::Relaxed))
    }

    /// Whether agent `agent` is connected now.
    pub fn is_online(&self, agent: u32) -> bool {
        self.online
            .get(agent as usize)
            .is_some_and(|f| f.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The progress line's "agents N/T": an agent that reconnects, or is
    /// marked twice, counts once, and one that left is not counted.
    #[test]
    fn agents_online_count_each_agent_once() {
        let scenario = Arc::new(
            Scenario::load(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../scenarios/quickstart.toml"
            ))
            .unwrap(),
        );
        let plan = Arc::new(crate::plan::build(&scenario, 1, &[], (0, 1)));
        let ctx = RunContext::new(scenario, plan, RunClock::new(), ContextSettings::default());
        let online = || ctx.counters.online.load(Ordering::Relaxed);
        ctx.set_online(0, true);
        ctx.set_online(0, true);
        ctx.set_online(1, true);
        assert_eq!(online(), 2);
        ctx.set_online(0, false);
        ctx.set_online(0, false);
        assert_eq!(online(), 1);
        ctx.set_online(0, true);
        assert_eq!(online(), 2);
        ctx.set_online(u32::MAX, true);
        assert_eq!(online(), 2, "an id out of range is ignored");
    }
}

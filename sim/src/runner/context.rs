//! What every agent task of a run shares: the scenario and plan, the run
//! clock, the metrics hub, live counters for progress, the broadcast
//! tracker, and the signals that end the run.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::plan::Plan;
use crate::metrics::MetricsHub;
use crate::scenario::Scenario;

/// The run's clock: microseconds on a monotonic clock anchored to the wall
/// clock at the start. Every timestamp agents exchange (a message's planned
/// and sent instants, a subscription window's edges) is a run-clock value,
/// so it reads as wall-clock µs: processes of one sharded run compare them
/// directly, exactly on one machine and up to their clocks' offset (NTP)
/// across machines.
#[derive(Debug, Clone, Copy)]
pub struct RunClock {
    /// The run's zero on the monotonic clock (may lie in the future while
    /// a run waits for its `--start-at`).
    pub start: Instant,
    /// The same instant on the wall clock, µs since the Unix epoch.
    pub start_wall_us: u64,
}

impl RunClock {
    /// A clock whose zero is now.
    pub fn new() -> Self {
        Self {
            start: Instant::now(),
            start_wall_us: wall_us(SystemTime::now()),
        }
    }

    /// A clock whose zero is the wall-clock instant `at` (past or future),
    /// so shards started apart but given the same `at` share their zero.
    pub fn starting_at(at: SystemTime) -> Self {
        let (now_wall, now) = (SystemTime::now(), Instant::now());
        let start = match at.duration_since(now_wall) {
            Ok(ahead) => now + ahead,
            Err(behind) => now.checked_sub(behind.duration()).unwrap_or(now),
        };
        Self {
            start,
            start_wall_us: wall_us(at),
        }
    }

    /// The clock's zero on the wall clock.
    pub fn start_time(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_micros(self.start_wall_us)
    }

    /// Now, in run-clock µs.
    pub fn now_us(&self) -> u64 {
        self.start_wall_us + self.start.elapsed().as_micros() as u64
    }

    /// A run offset in run-clock µs.
    pub fn at_us(&self, offset: Duration) -> u64 {
        self.start_wall_us + offset.as_micros() as u64
    }

    /// The instant of a run offset.
    pub fn instant(&self, offset: Duration) -> tokio::time::Instant {
        tokio::time::Instant::from_std(self.start + offset)
    }

    /// Run offset of a run-clock µs value.
    pub fn offset(&self, us: u64) -> Duration {
        Duration::from_micros(us.saturating_sub(self.start_wall_us))
    }
}

/// µs since the Unix epoch (0 before it).
pub fn wall_us(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

impl Default for RunClock {
    fn default() -> Self {
        Self::new()
    }
}

/// Live totals for the progress display (the ledger is exact; these are
/// only for watching), and when the first and last connect completed.
#[derive(Debug)]
pub struct Counters {
    /// Run offsets (µs) of the first and last completed connect.
    pub first_connect_us: AtomicU64,
    pub last_connect_us: AtomicU64,
    pub connected: AtomicU64,
    pub sent: AtomicU64,
    pub delivered: AtomicU64,
    pub errors: AtomicU64,
    /// Every frame received: the drain waits for this to go quiet.
    pub received: AtomicU64,
    /// Connections that broke under an agent.
    pub disconnects: AtomicU64,
}

impl Default for Counters {
    fn default() -> Self {
        Self {
            first_connect_us: AtomicU64::new(u64::MAX),
            last_connect_us: AtomicU64::new(0),
            connected: AtomicU64::default(),
            sent: AtomicU64::default(),
            delivered: AtomicU64::default(),
            errors: AtomicU64::default(),
            received: AtomicU64::default(),
            disconnects: AtomicU64::default(),
        }
    }
}

/// How many connects completed, and when the first and the last did
/// (run-clock µs, so spans of shards compare).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectSpan {
    pub connects: u64,
    pub first_us: u64,
    pub last_us: u64,
}

impl ConnectSpan {
    /// Connects per second from the first to the last, when there were at
    /// least two apart in time.
    pub fn rate(&self) -> Option<f64> {
        (self.connects > 1 && self.last_us > self.first_us)
            .then(|| self.connects as f64 / ((self.last_us - self.first_us) as f64 / 1e6))
    }

    /// Both spans together (two shards' connects).
    pub fn join(self, other: ConnectSpan) -> ConnectSpan {
        ConnectSpan {
            connects: self.connects + other.connects,
            first_us: self.first_us.min(other.first_us),
            last_us: self.last_us.max(other.last_us),
        }
    }
}

impl Counters {
    /// The connects completed so far, on `clock`.
    pub fn connect_span(&self, clock: &RunClock) -> Option<ConnectSpan> {
        let connects = self.connected.load(Ordering::Relaxed);
        let first = self.first_connect_us.load(Ordering::Relaxed);
        let last = self.last_connect_us.load(Ordering::Relaxed);
        (connects > 0 && first != u64::MAX).then(|| ConnectSpan {
            connects,
            first_us: clock.start_wall_us + first,
            last_us: clock.start_wall_us + last,
        })
    }

    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// First and last arrival of each broadcast, gathered from every recipient.
/// Sharded so recipients rarely contend.
#[derive(Debug)]
pub struct BroadcastTracker {
    shards: Vec<Mutex<FirstLast>>,
}

/// (sender, seq) → (first, last) arrival latency in µs.
type FirstLast = HashMap<(u32, u64), (u64, u64)>;

const BROADCAST_SHARDS: usize = 16;

impl Default for BroadcastTracker {
    fn default() -> Self {
        Self {
            shards: (0..BROADCAST_SHARDS).map(|_| Mutex::default()).collect(),
        }
    }
}

impl BroadcastTracker {
    /// Notes that broadcast `seq` of `sender` arrived `latency_us` after it
    /// was due.
    pub fn arrived(&self, sender: u32, seq: u64, latency_us: u64) {
        let shard = &self.shards[(sender as usize ^ seq as usize) % BROADCAST_SHARDS];
        let mut map = shard.lock().expect("lock");
        let entry = map.entry((sender, seq)).or_insert((latency_us, latency_us));
        entry.0 = entry.0.min(latency_us);
        entry.1 = entry.1.max(latency_us);
    }

    /// (sender, seq) and (first, last) latency of every broadcast seen.
    pub fn drain(&self) -> Vec<((u32, u64), (u64, u64))> {
        self.shards
            .iter()
            .flat_map(|s| s.lock().expect("lock").drain().collect::<Vec<_>>())
            .collect()
    }
}

/// What faults ask of agents: stop reading, reconnect now, crash on every
/// claimed job. The fault driver flips these and bumps `epoch`; agents
/// watch `epoch` and re-read their flags.
#[derive(Debug)]
pub struct AgentFaults {
    slow: Vec<AtomicBool>,
    crash: Vec<AtomicBool>,
    /// Per agent: bumped to make it drop its connection and reconnect.
    storm: Vec<AtomicU64>,
    epoch: tokio::sync::watch::Sender<u64>,
    /// Run-clock µs from which the first delivery is noted (0: not
    /// watching), and that first delivery's arrival.
    watch_from_us: AtomicU64,
    first_after_us: AtomicU64,
    /// Agents that were slow consumers at some point of the run.
    ever_slow: Vec<AtomicBool>,
}

impl AgentFaults {
    pub fn new(agents: usize) -> Self {
        let flags = || (0..agents).map(|_| AtomicBool::new(false)).collect();
        Self {
            slow: flags(),
            crash: flags(),
            ever_slow: flags(),
            storm: (0..agents).map(|_| AtomicU64::new(0)).collect(),
            epoch: tokio::sync::watch::channel(0).0,
            watch_from_us: AtomicU64::new(0),
            first_after_us: AtomicU64::new(u64::MAX),
        }
    }

    fn flag(flags: &[AtomicBool], agent: u32) -> bool {
        flags
            .get(agent as usize)
            .is_some_and(|f| f.load(Ordering::Relaxed))
    }

    pub fn is_slow(&self, agent: u32) -> bool {
        Self::flag(&self.slow, agent)
    }

    pub fn was_slow(&self, agent: u32) -> bool {
        Self::flag(&self.ever_slow, agent)
    }

    pub fn crashes(&self, agent: u32) -> bool {
        Self::flag(&self.crash, agent)
    }

    pub fn storm_generation(&self, agent: u32) -> u64 {
        self.storm
            .get(agent as usize)
            .map_or(0, |g| g.load(Ordering::Relaxed))
    }

    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.epoch.subscribe()
    }

    fn bump(&self) {
        self.epoch.send_modify(|e| *e += 1);
    }

    pub fn set_slow(&self, agents: &[u32], on: bool) {
        for a in agents {
            if let Some(f) = self.slow.get(*a as usize) {
                f.store(on, Ordering::Relaxed);
            }
            if let (true, Some(f)) = (on, self.ever_slow.get(*a as usize)) {
                f.store(true, Ordering::Relaxed);
            }
        }
        self.bump();
    }

    pub fn set_crash(&self, agents: &[u32], on: bool) {
        for a in agents {
            if let Some(f) = self.crash.get(*a as usize) {
                f.store(on, Ordering::Relaxed);
            }
        }
        self.bump();
    }

    pub fn storm(&self, agents: &[u32]) {
        for a in agents {
            if let Some(g) = self.storm.get(*a as usize) {
                g.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.bump();
    }

    /// Starts watching for the first delivery of a message sent at or after
    /// `from_us`.
    pub fn watch_resume(&self, from_us: u64) {
        self.first_after_us.store(u64::MAX, Ordering::Relaxed);
        self.watch_from_us.store(from_us, Ordering::Relaxed);
    }

    /// Called on every delivery.
    pub fn delivered(&self, sent_us: u64, now_us: u64) {
        let from = self.watch_from_us.load(Ordering::Relaxed);
        if from != 0 && sent_us >= from {
            self.first_after_us.fetch_min(now_us, Ordering::Relaxed);
        }
    }

    /// When the first delivery after the watched instant arrived.
    pub fn first_delivery_after(&self) -> Option<u64> {
        let v = self.first_after_us.load(Ordering::Relaxed);
        (v != u64::MAX).then_some(v)
    }
}

/// Everything shared by one run's agents.
#[derive(Debug)]
pub struct RunContext {
    pub scenario: Arc<Scenario>,
    pub plan: Arc<Plan>,
    pub clock: RunClock,
    pub hub: MetricsHub,
    pub ws_urls: Vec<String>,
    /// JWT secret to sign agent tokens with, when the bus wants them.
    pub jwt_secret: Option<String>,
    pub counters: Counters,
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
    pub faults: AgentFaults,
    /// `(index, count)`: this process runs the agents whose id modulo
    /// `count` is `index` (`(0, 1)`: all of them).
    pub shard: (u32, u32),
    /// What the agents did with each bus node (indexed like `ws_urls`).
    pub node_traffic: Vec<NodeTraffic>,
}

/// What the agents did with one bus node, beside which the node's own
/// counts are put (the bus as a second witness). Agents add a session's
/// figures when it ends, not per frame.
#[derive(Debug, Default)]
pub struct NodeTraffic {
    /// Connects completed.
    pub connects: AtomicU64,
    /// Text frames written to it (every op).
    pub frames_sent: AtomicU64,
    /// `message` frames read from it (pub/sub, pattern, broadcast and live
    /// direct deliveries).
    pub messages_received: AtomicU64,
}

/// Totals of one node's [`NodeTraffic`] at the end of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrafficTotals {
    /// Connects completed.
    pub connects: u64,
    /// Text frames written to the node.
    pub frames_sent: u64,
    /// `message` frames read from it.
    pub messages_received: u64,
}

impl NodeTraffic {
    /// The totals so far.
    pub fn totals(&self) -> TrafficTotals {
        TrafficTotals {
            connects: self.connects.load(Ordering::Relaxed),
            frames_sent: self.frames_sent.load(Ordering::Relaxed),
            messages_received: self.messages_received.load(Ordering::Relaxed),
        }
    }
}

impl RunContext {
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

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    pub fn set_online(&self, agent: u32, online: bool) {
        if let Some(flag) = self.online.get(agent as usize) {
            flag.store(online, Ordering::Relaxed);
        }
    }

    /// Whether agent `id` runs in this process (its shard).
    pub fn is_local_agent(&self, id: u32) -> bool {
        id % self.shard.1.max(1) == self.shard.0
    }

    pub fn set_subscribed(&self, agent: u32, subscribed: bool) {
        if let Some(flag) = self.subscribed.get(agent as usize) {
            flag.store(subscribed, Ordering::Relaxed);
        }
    }

    pub fn is_subscribed(&self, agent: u32) -> bool {
        self.subscribed
            .get(agent as usize)
            .is_some_and(|f| f.load(Ordering::Relaxed))
    }

    pub fn is_online(&self, agent: u32) -> bool {
        self.online
            .get(agent as usize)
            .is_some_and(|f| f.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clock_can_start_in_the_future_or_the_past() {
        let at = SystemTime::now() + Duration::from_secs(2);
        let clock = RunClock::starting_at(at);
        assert_eq!(clock.start_wall_us, wall_us(at));
        let ahead = clock.start.saturating_duration_since(Instant::now());
        assert!(
            ahead > Duration::from_millis(1500) && ahead <= Duration::from_secs(2),
            "{ahead:?}"
        );
        assert_eq!(
            clock.now_us(),
            clock.start_wall_us,
            "no time passes before the start"
        );

        let past = SystemTime::now() - Duration::from_secs(3);
        let clock = RunClock::starting_at(past);
        let elapsed = clock.start.elapsed();
        assert!(elapsed >= Duration::from_secs(3), "{elapsed:?}");
        let drift = clock.now_us().abs_diff(wall_us(SystemTime::now()));
        assert!(
            drift < 1_000_000,
            "run-clock µs read as wall-clock µs: {drift}"
        );
    }
}

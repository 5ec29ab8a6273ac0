//! Live counters of a run: totals for the progress display, connect spans,
//! the broadcast tracker (first and last arrival of every broadcast), and
//! what the agents did with each bus node (for the bus's own counts to
//! witness).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use super::clock::RunClock;

/// Live totals for the progress display (the ledger is exact; these are
/// only for watching), and when the first and last connect completed.
#[derive(Debug)]
pub struct Counters {
    /// Run offsets (µs) of the first and last completed connect.
    pub first_connect_us: AtomicU64,
    /// See `first_connect_us`.
    pub last_connect_us: AtomicU64,
    /// Connects completed (welcome received), never decremented.
    pub connected: AtomicU64,
    /// Agents connected now (reconnects do not count twice).
    pub online: AtomicU64,
    /// Scheduled sends made.
    pub sent: AtomicU64,
    /// Pub/sub deliveries (`message` pushes) received.
    pub delivered: AtomicU64,
    /// Errors counted by agents (error frames, unreadable frames, failed
    /// connects, ...).
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
            online: AtomicU64::default(),
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
    /// Connects completed.
    pub connects: u64,
    /// When the first completed, run-clock µs.
    pub first_us: u64,
    /// When the last completed, run-clock µs.
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

    /// Adds `n` to `counter` (relaxed: the totals are only for watching).
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

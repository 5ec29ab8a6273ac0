//! What injected faults ask of the agents, as switches the agents read:
//! stop reading (slow consumers), reconnect now (storms), crash on every
//! claimed job. The fault driver (`crate::faults`) flips them.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// What faults ask of agents: stop reading, reconnect now, crash on every
/// claimed job. The fault driver flips these and bumps `epoch`; agents
/// watch `epoch` and re-read their flags.
#[derive(Debug)]
pub struct FaultSwitches {
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

impl FaultSwitches {
    /// Every switch off, for `agents` agents.
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

    /// Whether agent `agent` is to stop reading now.
    pub fn is_slow(&self, agent: u32) -> bool {
        Self::flag(&self.slow, agent)
    }

    /// Whether agent `agent` was a slow consumer at some point of the run.
    pub fn was_slow(&self, agent: u32) -> bool {
        Self::flag(&self.ever_slow, agent)
    }

    /// Whether agent `agent` is to crash on every claimed job now.
    pub fn crashes(&self, agent: u32) -> bool {
        Self::flag(&self.crash, agent)
    }

    /// How many reconnect storms have hit agent `agent` (0 for ids out of
    /// range); a change means reconnect now.
    pub fn storm_generation(&self, agent: u32) -> u64 {
        self.storm
            .get(agent as usize)
            .map_or(0, |g| g.load(Ordering::Relaxed))
    }

    /// A receiver of the epoch, bumped whenever a switch changes.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.epoch.subscribe()
    }

    fn bump(&self) {
        self.epoch.send_modify(|e| *e += 1);
    }

    /// Makes `agents` stop reading (`on`) or read again.
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

    /// Makes `agents` crash on every claimed job (`on`) or stop crashing.
    pub fn set_crash(&self, agents: &[u32], on: bool) {
        for a in agents {
            if let Some(f) = self.crash.get(*a as usize) {
                f.store(on, Ordering::Relaxed);
            }
        }
        self.bump();
    }

    /// Makes `agents` drop their connections and reconnect now.
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

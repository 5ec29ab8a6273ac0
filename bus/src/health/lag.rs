//! How late the node's async runtime runs its tasks: a task that asks to
//! wake every [`TICK`] and notes by how much each wake-up came late. When
//! the runtime is saturated (more ready tasks than its threads can run)
//! every task waits its turn that long, connection readers and writers
//! included, so the lateness is what every agent's delivery pays on top.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::time::Instant;

/// How often the meter asks to wake.
const TICK: Duration = Duration::from_millis(10);

/// The runtime's scheduling lag, measured in the background from the
/// first call to [`LagMeter::take`] until the meter is dropped.
#[derive(Debug)]
pub(super) struct LagMeter {
    /// Worst lateness (µs) since the last `take`.
    worst_us: Arc<AtomicU64>,
    started: std::sync::Once,
}

impl Default for LagMeter {
    fn default() -> Self {
        Self {
            worst_us: Arc::default(),
            started: std::sync::Once::new(),
        }
    }
}

impl LagMeter {
    /// Starts measuring, if it has not started yet.
    pub(super) fn start(&self) {
        self.started.call_once(|| {
            tokio::spawn(measure(Arc::downgrade(&self.worst_us)));
        });
    }

    /// The worst lateness since the last call (the first call starts the
    /// measuring and returns zero).
    pub(super) fn take(&self) -> Duration {
        self.start();
        Duration::from_micros(self.worst_us.swap(0, Ordering::AcqRel))
    }
}

async fn measure(worst_us: Weak<AtomicU64>) {
    loop {
        let due = Instant::now() + TICK;
        tokio::time::sleep_until(due).await;
        let late = Instant::now().saturating_duration_since(due);
        let Some(worst) = worst_us.upgrade() else {
            return;
        };
        worst.fetch_max(late.as_micros() as u64, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn a_blocked_runtime_shows_as_lag() {
        let meter = LagMeter::default();
        assert_eq!(meter.take(), Duration::ZERO);
        tokio::time::sleep(TICK * 3).await;
        let idle = meter.take();
        // Block the only runtime thread: the meter's wake-up waits for it.
        std::thread::sleep(Duration::from_millis(120));
        tokio::time::sleep(TICK * 2).await;
        let blocked = meter.take();
        assert!(
            blocked >= Duration::from_millis(80),
            "blocked {blocked:?} (idle {idle:?})"
        );
    }
}

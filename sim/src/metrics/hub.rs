//! The registry of per-thread recorders: each worker thread records into its own, and a merge sums them all.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

use super::operation::Operation;
use super::recorder::Recorder;
use super::run::RunMetrics;

/// Gives every hub a distinct id, so the thread-local cache of one hub is
/// never mistaken for another's (tests run several hubs on one thread).
static NEXT_HUB_ID: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// This thread's recorder per live hub. Weak, so a dropped hub's
    /// recorders are freed; dead entries are pruned on the next lookup.
    static LOCAL_RECORDERS: RefCell<Vec<(u64, Weak<Mutex<Recorder>>)>> =
        const { RefCell::new(Vec::new()) };
}

/// All recorders of one run.
///
/// Each thread that asks for [`MetricsHub::local`] gets its own recorder,
/// registered here on first use; as long as tasks record through the
/// handle of the thread they run on, every lock is uncontended. Cheap to
/// clone (an `Arc`).
#[derive(Debug, Clone)]
pub struct MetricsHub {
    shared: Arc<HubShared>,
}

#[derive(Debug)]
struct HubShared {
    id: u64,
    start: Instant,
    recorders: Mutex<Vec<Arc<Mutex<Recorder>>>>,
}

impl MetricsHub {
    /// A hub for a run that started at `start` (the zero of every `at`).
    pub fn new(start: Instant) -> Self {
        Self {
            shared: Arc::new(HubShared {
                id: NEXT_HUB_ID.fetch_add(1, Ordering::Relaxed),
                start,
                recorders: Mutex::new(Vec::new()),
            }),
        }
    }

    /// The run's start instant.
    pub fn start(&self) -> Instant {
        self.shared.start
    }

    /// Time since the run's start.
    pub fn elapsed(&self) -> Duration {
        self.shared.start.elapsed()
    }

    /// The current thread's recorder, created and registered on first use.
    pub fn local(&self) -> LocalRecorder {
        let id = self.shared.id;
        let recorder = LOCAL_RECORDERS.with(|cell| {
            let mut entries = cell.borrow_mut();
            entries.retain(|(_, weak)| weak.strong_count() > 0);
            if let Some(found) = entries
                .iter()
                .find(|(hub, _)| *hub == id)
                .and_then(|(_, weak)| weak.upgrade())
            {
                return found;
            }
            let fresh = Arc::new(Mutex::new(Recorder::new()));
            lock(&self.shared.recorders).push(Arc::clone(&fresh));
            entries.push((id, Arc::downgrade(&fresh)));
            fresh
        });
        LocalRecorder {
            recorder,
            start: self.shared.start,
        }
    }

    /// How many recorders (threads) have registered.
    pub fn recorder_count(&self) -> usize {
        lock(&self.shared.recorders).len()
    }

    /// Sums every recorder into one [`RunMetrics`]. Usable mid-run for a
    /// progress snapshot (each recorder is locked only while it is added)
    /// and at the end for the final figures.
    pub fn merge(&self) -> RunMetrics {
        let recorders: Vec<_> = lock(&self.shared.recorders).clone();
        let mut merged = Recorder::new();
        for recorder in recorders {
            merged.merge(&lock(&recorder));
        }
        RunMetrics::from(merged)
    }
}

/// A poisoned lock only means another thread panicked mid-update of plain
/// counters; the data is still worth reporting.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A handle on one thread's recorder. Send it elsewhere if you must (it
/// stays correct, just no longer uncontended); never hold
/// [`LocalRecorder::lock`]'s guard across an `.await`.
#[derive(Debug, Clone)]
pub struct LocalRecorder {
    recorder: Arc<Mutex<Recorder>>,
    start: Instant,
}

impl LocalRecorder {
    /// Locks the recorder for several updates at once.
    pub fn lock(&self) -> MutexGuard<'_, Recorder> {
        lock(&self.recorder)
    }

    /// Runs `f` on the locked recorder.
    pub fn with<R>(&self, f: impl FnOnce(&mut Recorder) -> R) -> R {
        f(&mut self.lock())
    }

    /// Time since the run's start: the `at` of anything happening now.
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// Records a latency that ends now.
    pub fn record(&self, op: Operation, latency: Duration) {
        let at = self.elapsed();
        self.lock().record_duration(op, latency, at);
    }

    /// Records a latency from `planned` (the instant the message was due)
    /// until now: the open-model measurement that keeps a stall visible.
    pub fn record_since(&self, op: Operation, planned: Instant) {
        self.record(op, planned.elapsed());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_recorder_per_thread_and_hub() {
        let hub = MetricsHub::new(Instant::now());
        let other = MetricsHub::new(Instant::now());
        hub.local()
            .record(Operation::Connect, Duration::from_millis(1));
        hub.local()
            .record(Operation::Connect, Duration::from_millis(2));
        other
            .local()
            .record(Operation::Connect, Duration::from_millis(3));
        assert_eq!(hub.recorder_count(), 1);
        assert_eq!(other.recorder_count(), 1);
        std::thread::scope(|s| {
            for _ in 0..3 {
                s.spawn(|| {
                    let local = hub.local();
                    for _ in 0..10 {
                        local.record(Operation::DirectRtt, Duration::from_micros(500));
                    }
                });
            }
        });
        assert_eq!(hub.recorder_count(), 4);
        let merged = hub.merge();
        assert_eq!(merged.histogram(Operation::Connect).unwrap().len(), 2);
        assert_eq!(merged.histogram(Operation::DirectRtt).unwrap().len(), 30);
        let other_merged = other.merge();
        assert_eq!(other_merged.histogram(Operation::Connect).unwrap().len(), 1);
        assert!(other_merged.histogram(Operation::DirectRtt).is_none());
    }

    #[test]
    fn merge_works_mid_run_and_again_at_the_end() {
        let hub = MetricsHub::new(Instant::now());
        let local = hub.local();
        local.with(|r| r.count_sent(Duration::ZERO));
        assert_eq!(hub.merge().series_rows()[0].sent, 1);
        local.with(|r| r.count_sent(Duration::ZERO));
        assert_eq!(hub.merge().series_rows()[0].sent, 2);
    }

    #[test]
    fn a_dropped_hub_frees_its_recorders() {
        let hub = MetricsHub::new(Instant::now());
        let weak = Arc::downgrade(&hub.local().recorder);
        drop(hub);
        assert!(weak.upgrade().is_none());
        // A new hub on this thread starts from scratch.
        let fresh = MetricsHub::new(Instant::now());
        assert!(fresh.local().lock().histogram(Operation::Connect).is_none());
    }
}

//! Watching a run while it runs: a [`LiveBoard`] holds the run's latest
//! [`Snapshot`] (built once a second by [`sampler`] from the agents'
//! counters and recorders and the monitor's latest health), which
//! [`server`] serves as a self-contained dashboard page pushed over
//! server-sent events (`--dashboard`) and as Prometheus metrics
//! (`--metrics`, written by [`exposition`]).
//!
//! The board is made before the run and outlives it, so the page keeps
//! showing the final state (with the run's verdict) for a while after the
//! run ends.

pub mod exposition;
pub mod sampler;
pub mod server;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio::sync::watch;

pub use self::sampler::Sampler;
pub use self::server::{LiveServer, ServeError};

/// One moment of a run, as the dashboard draws it and the metrics expose
/// it. Counts are cumulative since the run started; per-second figures are
/// of the last whole sampling interval.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Snapshot {
    /// The scenario's name.
    pub scenario: String,
    /// Seconds since the run started.
    pub elapsed_s: f64,
    /// The phase running now, `drain` after the last one, `done` at the end.
    pub phase: String,
    /// The run is over (the final verdict is in `verdict`).
    pub finished: bool,
    /// Agents connected now, and planned.
    pub agents_online: u64,
    /// Agents this process runs.
    pub agents_planned: u64,
    /// Scheduled sends made.
    pub sent: u64,
    /// Pub/sub deliveries received.
    pub delivered: u64,
    /// Errors the agents counted.
    pub errors: u64,
    /// Each phase with its start and end (seconds since the start).
    pub phases: Vec<PhaseMark>,
    /// The thresholds of the judged operations.
    pub thresholds: Vec<ThresholdMark>,
    /// One point per sampling interval so far.
    pub seconds: Vec<SecondPoint>,
    /// Each operation measured so far.
    pub operations: Vec<OperationNow>,
    /// Each message class: what arrived so far (direct and queue classes
    /// live; pub/sub and broadcast are reconciled at the end), with losses
    /// once the run is over and the ledger is complete.
    pub classes: Vec<ClassNow>,
    /// Errors by kind so far.
    pub errors_by_kind: BTreeMap<String, u64>,
    /// Each bus node's latest health and connections.
    pub nodes: Vec<NodeNow>,
    /// The overall verdict, once the run is judged.
    pub verdict: Option<String>,
    /// In a capacity search, the points measured so far (the snapshot's
    /// other figures are of the point being measured now).
    pub capacity: Option<CapacityView>,
}

/// A capacity search so far.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CapacityView {
    /// What the load is (`messages/s offered`, `agents`, ...).
    pub unit: String,
    /// Every point measured, in the order tried.
    pub points: Vec<CapacityPoint>,
}

/// One measured capacity point.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CapacityPoint {
    /// The set-up it was measured on.
    pub setup: String,
    /// The load.
    pub load: f64,
    /// The judged percentile (median over repeats), ms.
    pub p99_ms: f64,
    /// Median latency, ms.
    pub p50_ms: f64,
    /// Its verdict.
    pub status: String,
}

/// A phase on the time axis.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PhaseMark {
    /// Its name in the scenario.
    pub name: String,
    /// Seconds since the start.
    pub start_s: f64,
    /// Seconds since the start.
    pub end_s: f64,
}

/// The limits an operation's percentile is judged by.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ThresholdMark {
    /// The operation (`publish_delivery`, ...).
    pub operation: String,
    /// The judged percentile (e.g. 99).
    pub percentile: f64,
    /// Above this, warning.
    pub warning_ms: f64,
    /// Above this, critical.
    pub critical_ms: f64,
}

/// One sampling interval.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SecondPoint {
    /// End of the interval, seconds since the start.
    pub t: f64,
    /// Sends per second in the interval.
    pub sent_per_s: f64,
    /// Deliveries per second in the interval.
    pub delivered_per_s: f64,
    /// Errors in the interval.
    pub errors: u64,
    /// Agents connected at its end.
    pub online: u64,
    /// Latency per operation in the interval (operations with samples).
    pub latency: BTreeMap<String, IntervalLatency>,
}

/// Latency of one operation over one interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct IntervalLatency {
    /// Samples in the interval.
    pub count: u64,
    /// Median, ms.
    pub p50_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
}

/// An operation so far.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OperationNow {
    /// Its name.
    pub operation: String,
    /// Samples since the start.
    pub count: u64,
    /// Samples per second over the last interval.
    pub per_s: f64,
    /// The last interval's median and 99th percentile, ms (`None`: no
    /// sample in it).
    pub p50_ms: Option<f64>,
    /// See `p50_ms`.
    pub p99_ms: Option<f64>,
    /// The 99th percentile over the whole run so far, ms.
    pub run_p99_ms: Option<f64>,
}

/// A message class so far.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassNow {
    /// `pubsub`, `queue`, ...
    pub class: String,
    /// Distinct messages that arrived.
    pub delivered: u64,
    /// Repeated deliveries.
    pub duplicated: u64,
    /// Deliveries to an agent that should not have had them.
    pub misrouted: u64,
    /// Deliveries out of publish order.
    pub out_of_order: u64,
    /// Messages that never arrived: known once the run is over.
    pub lost: Option<u64>,
}

/// A bus node now.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeNow {
    /// Its `host:port`.
    pub node: String,
    /// Its latest health status (`healthy`, `degraded`, `unhealthy`,
    /// `unreachable`).
    pub status: String,
    /// Its open connections, when readable.
    pub connections: Option<u64>,
    /// Its probes' latencies, ms.
    pub checks_ms: BTreeMap<String, f64>,
}

/// The latest snapshot of a run, shared by the sampler that writes it and
/// the servers that read it; readers are woken on each new one.
#[derive(Debug, Clone)]
pub struct LiveBoard {
    latest: Arc<watch::Sender<Arc<Snapshot>>>,
    /// The final verdict and ledger, set once the run is judged.
    finale: Arc<Mutex<Option<Finale>>>,
    /// A capacity search's points, carried into every snapshot.
    capacity: Arc<Mutex<Option<CapacityView>>>,
}

/// What only the end of a run knows.
#[derive(Debug, Clone, PartialEq)]
pub struct Finale {
    /// The overall verdict (`healthy`, `warning`, `critical`, ...).
    pub verdict: String,
    /// Each class as the completed ledger has it, losses included.
    pub classes: Vec<ClassNow>,
}

impl Default for LiveBoard {
    fn default() -> Self {
        Self {
            latest: Arc::new(watch::channel(Arc::new(Snapshot::default())).0),
            finale: Arc::default(),
            capacity: Arc::default(),
        }
    }
}

impl LiveBoard {
    /// The latest snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.latest.borrow().clone()
    }

    /// Woken at each new snapshot.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Snapshot>> {
        self.latest.subscribe()
    }

    /// Publishes a new snapshot (with the finale, once there is one).
    pub fn publish(&self, mut snapshot: Snapshot) {
        if let Some(finale) = self.finale.lock().expect("finale lock").as_ref() {
            apply_finale(&mut snapshot, finale);
        }
        snapshot.capacity = self.capacity.lock().expect("capacity lock").clone();
        self.latest.send_replace(Arc::new(snapshot));
    }

    /// Adds a measured capacity point and publishes the last snapshot
    /// again with it.
    pub fn add_capacity_point(&self, unit: &str, point: CapacityPoint) {
        let view = {
            let mut capacity = self.capacity.lock().expect("capacity lock");
            let view = capacity.get_or_insert_with(|| CapacityView {
                unit: unit.to_owned(),
                points: Vec::new(),
            });
            view.points.push(point);
            view.clone()
        };
        let mut last = (*self.snapshot()).clone();
        last.capacity = Some(view);
        self.latest.send_replace(Arc::new(last));
    }

    /// Marks the run over with its verdict and losses, and publishes the
    /// last snapshot again with them.
    pub fn finish(&self, finale: Finale) {
        let mut last = (*self.snapshot()).clone();
        apply_finale(&mut last, &finale);
        last.capacity = self.capacity.lock().expect("capacity lock").clone();
        *self.finale.lock().expect("finale lock") = Some(finale);
        self.latest.send_replace(Arc::new(last));
    }
}

fn apply_finale(snapshot: &mut Snapshot, finale: &Finale) {
    snapshot.finished = true;
    snapshot.phase = "done".to_owned();
    snapshot.verdict = Some(finale.verdict.clone());
    // A capacity search has no ledger of its own: its last run's stays.
    if !finale.classes.is_empty() {
        snapshot.classes = finale.classes.clone();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(name: &str, delivered: u64, lost: Option<u64>) -> ClassNow {
        ClassNow {
            class: name.into(),
            delivered,
            duplicated: 0,
            misrouted: 0,
            out_of_order: 0,
            lost,
        }
    }

    #[test]
    fn the_finale_stays_on_every_later_snapshot_with_the_capacity_curve() {
        let board = LiveBoard::default();
        let rx = board.subscribe();
        board.publish(Snapshot {
            delivered: 5,
            classes: vec![class("direct", 5, None)],
            ..Snapshot::default()
        });
        assert!(rx.has_changed().unwrap());
        board.add_capacity_point(
            "agents",
            CapacityPoint {
                setup: "memory".into(),
                load: 100.0,
                p99_ms: 3.0,
                p50_ms: 1.0,
                status: "healthy".into(),
            },
        );
        assert_eq!(
            board.snapshot().delivered,
            5,
            "the curve is added to the last snapshot"
        );
        assert_eq!(board.snapshot().capacity.as_ref().unwrap().points.len(), 1);
        // A capacity finale has no ledger: the last run's classes stay.
        board.finish(Finale {
            verdict: "capacity memory: highest healthy 100".into(),
            classes: Vec::new(),
        });
        let last = board.snapshot();
        assert!(last.finished && last.phase == "done");
        assert_eq!(last.classes, vec![class("direct", 5, None)]);
        // A late sample (the sampler's last) keeps the finale and the curve.
        board.publish(Snapshot::default());
        let later = board.snapshot();
        assert_eq!(
            later.verdict.as_deref(),
            Some("capacity memory: highest healthy 100")
        );
        assert_eq!(later.capacity.as_ref().unwrap().unit, "agents");
        // A run's finale replaces the live classes with the reconciled ledger.
        board.finish(Finale {
            verdict: "healthy".into(),
            classes: vec![class("pubsub", 9, Some(0))],
        });
        assert_eq!(board.snapshot().classes, vec![class("pubsub", 9, Some(0))]);
    }
}

//! Completing a run's metrics from the agents' evidence: the run-wide
//! broadcast samples and the reconciled pub/sub, pattern and broadcast
//! classes. `sim run` and `sim merge` both complete theirs here, so a merged
//! ledger is computed exactly as an unsharded one.

use std::time::Duration;

use crate::ledger::{Counting, Evidence, reconcile};
use crate::metrics::{Operation, Recorder, RunMetrics};

/// Completes what the agents recorded with the run-wide figures: one
/// `broadcast_first` and `broadcast_last` sample per broadcast (recorded
/// at `at`, the end of the run), and the expected and delivered counts of
/// the pub/sub, pattern and broadcast classes. Returns the slow consumers'
/// (expected, delivered), kept out of the classes.
pub fn complete(
    metrics: &mut RunMetrics,
    evidence: &Evidence,
    counting: Counting,
    at: Duration,
) -> (u64, u64) {
    let mut extra = Recorder::new();
    for b in &evidence.broadcasts {
        extra.record(Operation::BroadcastFirst, b.first_us, at);
        extra.record(Operation::BroadcastLast, b.last_us, at);
    }
    metrics.merge(&RunMetrics::from(extra));
    let reconciled = reconcile(evidence, counting);
    for (class, (expected, delivered)) in reconciled.classes {
        let entry = metrics.ledger_mut().class_mut(class);
        entry.expected += expected;
        entry.delivered += delivered;
    }
    reconciled.slow
}

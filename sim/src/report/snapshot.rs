//! The snapshot view of a report: only the facts that must not change between two healthy runs of one scenario.
//!
//! Two healthy runs of a scenario with the same seed send the same messages
//! (see `scenarios/README.md`, "The CI scenarios"), so every count is exact;
//! latencies are not, so they appear only as bands ([`Band`]) whose edges
//! sit far from what the CI scenarios measure in a debug build on a busy
//! machine. Everything here has a stable
//! order (maps keyed by the report-order enums), so a serialized snapshot
//! compares line by line: CI keeps one per scenario and backend with insta,
//! and `sim check` baselines carry one too.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::Report;
use crate::ledger::MessageClass;
use crate::metrics::Operation;
use crate::verdict::Status;

/// Upper edges of the bands of a median, in ms.
///
/// Chosen from the CI scenarios' figures, measured in debug builds (what
/// `cargo test` runs) on a shared 2-core machine with other tests and
/// builds running (see `scenarios/README.md`, "The CI scenarios"): their
/// healthy medians stayed at or below 47 ms, except `broadcast_last` (the
/// last of ~50 recipients) at up to 92 ms with the machine at load 8, all
/// inside `<150ms`. A bus that adds 100 ms to each delivery puts
/// `direct_rtt` (a request and its response: two deliveries) at 200 ms or
/// more, in `<400ms`; noise only adds to that.
pub const P50_BAND_EDGES_MS: [f64; 2] = [150.0, 400.0];

/// Upper edges of the bands of a 99th percentile, in ms. Wider than the
/// median's: the same healthy runs had p99s from 3 to 195 ms (one stalled
/// scheduler slice is enough to move a p99), so the first edge sits 2.5×
/// above the worst of them.
pub const P99_BAND_EDGES_MS: [f64; 2] = [500.0, 2000.0];

/// A latency band: which of the ranges cut by a list of edges a latency
/// falls in, kept as its label (`"<150ms"`, `">=2000ms"`), which is also how
/// it serializes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Band(String);

impl Band {
    /// The band of `ms` among `edges` (ascending): `<EDGEms` for the first
    /// edge above it, `>=LASTms` above them all. Exactly at an edge is in
    /// the band above it (`<150ms` means below 150 ms). A value that is not a
    /// number is put in the top band, so it never reads as fast.
    pub fn of(ms: f64, edges: &[f64]) -> Band {
        let above = edges.iter().find(|edge| !ms.is_nan() && ms < **edge);
        match (above, edges.last()) {
            (Some(edge), _) => Band(format!("<{edge}ms")),
            (None, Some(last)) => Band(format!(">={last}ms")),
            (None, None) => Band("any".to_owned()),
        }
    }

    /// The band of a median ([`P50_BAND_EDGES_MS`]).
    pub fn p50(ms: f64) -> Band {
        Band::of(ms, &P50_BAND_EDGES_MS)
    }

    /// The band of a 99th percentile ([`P99_BAND_EDGES_MS`]).
    pub fn p99(ms: f64) -> Band {
        Band::of(ms, &P99_BAND_EDGES_MS)
    }

    /// The label, e.g. `<150ms`.
    pub fn label(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Band {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The stable facts of one run. Build it with [`Snapshot::of`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Scenario name.
    pub scenario: String,
    /// The scenario's content hash: a snapshot of another scenario (or of
    /// an edited one) is another snapshot.
    pub content_hash: String,
    /// The seed that fixed every agent's behaviour.
    pub seed: u64,
    /// Whether every agent connected, and stayed.
    pub agents: AgentCounts,
    /// Delivery counts per message class, for the classes that had any.
    pub messages: BTreeMap<MessageClass, ClassCounts>,
    /// Queue semantics as the agents saw them.
    pub queue: QueueCounts,
    /// Verdict and latency bands of each judged operation with samples.
    pub operations: BTreeMap<Operation, OperationFacts>,
    /// The worst verdict of the run.
    pub overall: Status,
}

/// Agent connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentCounts {
    /// Agents the scenario asked for.
    pub target: u64,
    /// Agents that connected.
    pub connected: u64,
    /// Failed connection attempts.
    pub connect_failures: u64,
    /// Connections that ended without the agent asking.
    pub disconnects: u64,
}

/// Deliveries of one message class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassCounts {
    /// Deliveries owed.
    pub expected: u64,
    /// Distinct deliveries made.
    pub delivered: u64,
    /// Deliveries missing.
    pub lost: u64,
    /// Repeated deliveries.
    pub duplicated: u64,
    /// Deliveries older than one already seen from the same sender and topic.
    pub out_of_order: u64,
    /// Deliveries to an agent that should not have had them.
    pub misrouted: u64,
}

/// Queue counts. Priority inversions are left out: whether a worker sees a
/// higher priority after a lower one depends on when jobs arrive relative
/// to claims, which no seed fixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueCounts {
    /// Jobs enqueued.
    pub enqueued: u64,
    /// Claims (a redelivered job is claimed again).
    pub claimed: u64,
    /// Jobs acked.
    pub acked: u64,
    /// Jobs rejected.
    pub rejected: u64,
    /// Rejects that asked to be requeued.
    pub requeued: u64,
    /// Jobs in the dead-letter queue.
    pub dead_lettered: u64,
    /// Claims of a job claimed before.
    pub redelivered: u64,
    /// Jobs dropped by a simulated crash.
    pub crashed: u64,
    /// Jobs left in the queues at the end.
    pub still_queued: u64,
}

/// The stable facts of one operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperationFacts {
    /// Its verdict.
    pub verdict: Status,
    /// The band of its median ([`P50_BAND_EDGES_MS`]).
    pub p50: Band,
    /// The band of its 99th percentile ([`P99_BAND_EDGES_MS`]).
    pub p99: Band,
}

impl Snapshot {
    /// The stable facts of `report`. Only judged operations appear:
    /// `send_lag` measures the simulator, not the bus.
    pub fn of(report: &Report) -> Snapshot {
        let c = &report.connections;
        let q = &report.ledger.queue;
        let messages = report
            .ledger
            .classes
            .iter()
            .filter(|(_, counts)| !counts.is_empty())
            .map(|(class, l)| {
                let counts = ClassCounts {
                    expected: l.expected,
                    delivered: l.delivered,
                    lost: l.lost(),
                    duplicated: l.duplicated,
                    out_of_order: l.out_of_order,
                    misrouted: l.misrouted,
                };
                (*class, counts)
            })
            .collect();
        let operations = report
            .latencies
            .iter()
            .filter(|l| l.operation.is_judged())
            .map(|l| {
                let verdict = report
                    .verdicts
                    .operation(l.operation)
                    .map_or(Status::Healthy, |v| v.status);
                let facts = OperationFacts {
                    verdict,
                    p50: Band::p50(l.summary.p50_ms),
                    p99: Band::p99(l.summary.p99_ms),
                };
                (l.operation, facts)
            })
            .collect();
        Snapshot {
            scenario: report.scenario.name.clone(),
            content_hash: report.scenario.content_hash.clone(),
            seed: report.scenario.seed,
            agents: AgentCounts {
                target: c.target,
                connected: c.achieved,
                connect_failures: c.failures,
                disconnects: c.disconnects,
            },
            messages,
            queue: QueueCounts {
                enqueued: q.enqueued,
                claimed: q.claimed,
                acked: q.acked,
                rejected: q.rejected,
                requeued: q.requeued,
                dead_lettered: q.dead_lettered,
                redelivered: q.redelivered,
                crashed: q.crashed,
                still_queued: q.still_queued,
            },
            operations,
            overall: report.verdicts.overall,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixture;
    use super::*;

    fn p50(ms: f64) -> String {
        Band::p50(ms).label().to_owned()
    }

    fn p99(ms: f64) -> String {
        Band::p99(ms).label().to_owned()
    }

    #[test]
    fn median_bands_change_exactly_at_their_edges() {
        assert_eq!(p50(0.0), "<150ms");
        assert_eq!(p50(149.99), "<150ms");
        assert_eq!(p50(150.0), "<400ms");
        assert_eq!(p50(399.99), "<400ms");
        assert_eq!(p50(400.0), ">=400ms");
        assert_eq!(p50(1e9), ">=400ms");
        assert_eq!(p50(-1.0), "<150ms");
        assert_eq!(p50(f64::NAN), ">=400ms", "not a number is never fast");
    }

    #[test]
    fn p99_bands_change_exactly_at_their_edges() {
        assert_eq!(p99(0.0), "<500ms");
        assert_eq!(p99(499.99), "<500ms");
        assert_eq!(p99(500.0), "<2000ms");
        assert_eq!(p99(1999.9), "<2000ms");
        assert_eq!(p99(2000.0), ">=2000ms");
        assert_eq!(p99(f64::NAN), ">=2000ms");
    }

    #[test]
    fn any_edges_work_and_labels_serialize_as_text() {
        let edges = [1.0, 2.5];
        assert_eq!(Band::of(0.5, &edges).label(), "<1ms");
        assert_eq!(Band::of(1.0, &edges).label(), "<2.5ms");
        assert_eq!(Band::of(2.5, &edges).label(), ">=2.5ms");
        assert_eq!(Band::of(3.0, &[]).label(), "any");
        let band = Band::p50(12.0);
        let json = serde_json::to_string(&band).unwrap();
        assert_eq!(json, "\"<150ms\"");
        assert_eq!(serde_json::from_str::<Band>(&json).unwrap(), band);
    }

    #[test]
    fn snapshot_keeps_counts_verdicts_and_bands_only() {
        let (report, _) = fixture::sample();
        let snapshot = Snapshot::of(&report);
        assert_eq!(snapshot.scenario, report.scenario.name);
        assert_eq!(snapshot.content_hash, report.scenario.content_hash);
        assert!(
            !snapshot.operations.contains_key(&Operation::SendLag),
            "send_lag measures the simulator"
        );
        for l in report.latencies.iter().filter(|l| l.operation.is_judged()) {
            let facts = &snapshot.operations[&l.operation];
            assert_eq!(facts.p50, Band::p50(l.summary.p50_ms));
            assert_eq!(facts.p99, Band::p99(l.summary.p99_ms));
        }
        for (class, counts) in &snapshot.messages {
            assert_eq!(counts.lost, report.ledger.class(*class).lost());
        }
        assert_eq!(snapshot.overall, report.verdicts.overall);
        let json = serde_json::to_string(&snapshot).unwrap();
        for unstable in ["started_at", "duration", "p50_ms", "cpu"] {
            assert!(!json.contains(unstable), "{unstable} in {json}");
        }
        assert_eq!(serde_json::from_str::<Snapshot>(&json).unwrap(), snapshot);
    }

    #[test]
    fn a_slower_run_changes_bands_but_not_counts() {
        let (report, _) = fixture::sample();
        let mut slower = report.clone();
        for l in &mut slower.latencies {
            l.summary.p50_ms += 200.0;
            l.summary.p99_ms += 600.0;
        }
        let (a, b) = (Snapshot::of(&report), Snapshot::of(&slower));
        assert_eq!(a.messages, b.messages);
        assert_ne!(a.operations, b.operations);
    }
}

//! Judging merged metrics against a scenario's thresholds.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Status, exit_code};
use crate::exit;
use crate::ledger::MessageClass;
use crate::metrics::{Operation, RunMetrics};
use crate::scenario::Thresholds;

/// The verdict on one operation's latency.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OperationVerdict {
    /// The operation judged.
    pub operation: Operation,
    /// Samples behind the figure.
    pub samples: u64,
    /// The percentile compared.
    pub percentile: f64,
    /// The latency at that percentile, ms.
    pub value_ms: f64,
    /// The warning limit, ms.
    pub warning_ms: f64,
    /// The critical limit, ms.
    pub critical_ms: f64,
    /// The outcome.
    pub status: Status,
    /// Fewer samples than the percentile can stand on (a p99 needs 100: with
    /// fewer it is just the maximum). Such a verdict is shown, but cannot
    /// make the run critical on its own (see [`min_samples`]).
    #[serde(default, skip_serializing_if = "is_false")]
    pub few_samples: bool,
    /// The simulator could not keep its own schedule, so this bad figure
    /// may be its own delay, not the bus's (see [`super::trust`]); it does
    /// not count towards the overall verdict.
    #[serde(default, skip_serializing_if = "is_false")]
    pub inconclusive: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// The fewest samples a percentile can stand on: at least one sample must
/// lie above it (`1 / (1 - q)`: 100 for a p99, 1,000 for a p99.9, 2 for a
/// median).
pub fn min_samples(percentile: f64) -> u64 {
    let tail = (1.0 - percentile / 100.0).max(1e-9);
    (1.0 / tail - 1e-6).ceil() as u64
}

/// The verdict on one message class's losses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LossVerdict {
    /// The class judged.
    pub class: MessageClass,
    /// Deliveries owed.
    pub expected: u64,
    /// Deliveries made.
    pub delivered: u64,
    /// Deliveries missing.
    pub lost: u64,
    /// `lost / expected`.
    pub loss_ratio: f64,
    /// Deliveries to agents that never subscribed: critical whatever the
    /// loss.
    #[serde(default)]
    pub misrouted: u64,
    /// The tolerated ratio.
    pub max_loss: f64,
    /// Critical when `loss_ratio > max_loss`, healthy otherwise.
    pub status: Status,
    /// The simulator could not keep its schedule: messages it was too slow
    /// to read may count as lost (never misrouted or duplicated ones).
    #[serde(default, skip_serializing_if = "is_false")]
    pub inconclusive: bool,
}

/// The verdict on connections.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConnectionVerdict {
    /// Agents the scenario asked to connect.
    pub target: u64,
    /// Agents that connected.
    pub achieved: u64,
    /// Failed attempts.
    pub failures: u64,
    /// Critical when fewer agents connected than asked for.
    pub status: Status,
}

/// All verdicts of a run and the overall one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Verdicts {
    /// One per judged operation with samples (never `send_lag`).
    pub operations: Vec<OperationVerdict>,
    /// One per message class with anything expected or lost.
    pub loss: Vec<LossVerdict>,
    /// Connections.
    pub connections: ConnectionVerdict,
    /// Isolation under attack, when adversarial agents ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security: Option<SecurityVerdict>,
    /// The worst of all of the above.
    pub overall: Status,
}

/// Whether adversarial agents found a hole: any accepted attempt (or
/// accepted bad token) is critical.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SecurityVerdict {
    /// Attempts made: requests naming another workspace or another agent's
    /// inbox, and connections with bad tokens.
    pub attempts: u64,
    /// Of those, the ones the bus refused.
    pub denied: u64,
    /// Attempts the bus accepted: holes in its isolation.
    pub holes: u64,
    /// Critical when there was any hole, else healthy.
    pub status: Status,
}

impl Verdicts {
    /// The verdict of `op`, if it was judged.
    pub fn operation(&self, op: Operation) -> Option<&OperationVerdict> {
        self.operations.iter().find(|v| v.operation == op)
    }

    /// The process exit code of the verdicts: the overall verdict's, or
    /// [`exit::INCONCLUSIVE`] when the overall verdict is not critical and
    /// some bad figure could not be judged.
    pub fn exit_code(&self) -> i32 {
        if self.overall < Status::Critical && self.is_inconclusive() {
            return exit::INCONCLUSIVE;
        }
        exit_code(self.overall)
    }

    /// Whether a verdict that is not healthy is marked inconclusive: the
    /// run cannot say how the bus fared there.
    pub fn is_inconclusive(&self) -> bool {
        let operations = self
            .operations
            .iter()
            .any(|v| v.inconclusive && v.status > Status::Healthy);
        let loss = self
            .loss
            .iter()
            .any(|v| v.inconclusive && v.status > Status::Healthy);
        operations || loss
    }

    /// Recomputes `overall` as the worst verdict present; call after
    /// editing verdicts by hand. Inconclusive verdicts do not count, and a
    /// latency verdict on few samples counts at most as a warning.
    pub fn recompute_overall(&mut self) {
        let operations =
            self.operations
                .iter()
                .filter(|v| !v.inconclusive)
                .map(|v| match v.few_samples {
                    true => v.status.min(Status::Warning),
                    false => v.status,
                });
        let loss = self
            .loss
            .iter()
            .filter(|v| !v.inconclusive)
            .map(|v| v.status);
        let security = self.security.map(|s| s.status);
        self.overall = operations
            .chain(loss)
            .chain([self.connections.status])
            .chain(security)
            .max()
            .unwrap_or_default();
    }
}

/// Judges `metrics` against `thresholds`:
///
/// - every operation with samples except `send_lag` (it measures the
///   simulator, see [`Operation::SendLag`]): the latency at the threshold
///   percentile above `critical` is critical, above `warning` is warning,
///   else healthy. Exactly at a limit is on the good side; a value within
///   HDR's resolution (0.1%) of a limit counts as at the limit, so
///   recording exactly 50 ms never reads as "above 50 ms";
/// - every message class with something expected or lost: a loss ratio
///   above its `max_loss` (the override of the class's operation, see
///   [`MessageClass::operation`]) is critical — with the default
///   `max_loss = 0` any loss is critical;
/// - connections: fewer agents connected than targeted is critical;
/// - a message delivered where it never should have been (misrouted) is a
///   leak: its class is critical whatever the loss;
/// - adversarial agents: any hole in isolation is critical.
pub fn judge(metrics: &RunMetrics, thresholds: &Thresholds) -> Verdicts {
    let security = metrics.ledger().security;
    let mut verdicts = Verdicts {
        operations: judge_operations(metrics, thresholds),
        loss: judge_loss(metrics, thresholds),
        connections: judge_connections(metrics),
        security: (!security.is_empty()).then(|| SecurityVerdict {
            attempts: security.attempts + security.token_attempts,
            denied: security.denied + security.token_denied,
            holes: security.holes(),
            status: if security.holes() > 0 {
                Status::Critical
            } else {
                Status::Healthy
            },
        }),
        overall: Status::Healthy,
    };
    verdicts.recompute_overall();
    verdicts
}

fn judge_operations(metrics: &RunMetrics, thresholds: &Thresholds) -> Vec<OperationVerdict> {
    let mut out = Vec::new();
    for op in metrics.operations().into_iter().filter(|op| op.is_judged()) {
        let Some(histogram) = metrics.histogram(op) else {
            continue;
        };
        let limits = thresholds.for_operation(op);
        let value_us = histogram.value_at_quantile(limits.percentile / 100.0);
        let lowest_us = histogram.lowest_equivalent(value_us);
        let above = |limit: Duration| u128::from(lowest_us) > limit.as_micros();
        let status = if above(limits.critical) {
            Status::Critical
        } else if above(limits.warning) {
            Status::Warning
        } else {
            Status::Healthy
        };
        out.push(OperationVerdict {
            operation: op,
            samples: histogram.len(),
            percentile: limits.percentile,
            value_ms: value_us as f64 / 1000.0,
            warning_ms: limits.warning.as_secs_f64() * 1000.0,
            critical_ms: limits.critical.as_secs_f64() * 1000.0,
            status,
            few_samples: histogram.len() < min_samples(limits.percentile),
            inconclusive: false,
        });
    }
    out
}

fn judge_loss(metrics: &RunMetrics, thresholds: &Thresholds) -> Vec<LossVerdict> {
    let ledger = metrics.ledger();
    MessageClass::ALL
        .into_iter()
        .filter_map(|class| {
            let counts = ledger.class(class);
            let lost = counts.lost();
            if counts.expected == 0 && lost == 0 && counts.misrouted == 0 {
                return None;
            }
            let max_loss = thresholds.for_operation(class.operation()).max_loss;
            let loss_ratio = counts.loss_ratio();
            Some(LossVerdict {
                class,
                expected: counts.expected,
                delivered: counts.delivered,
                lost,
                loss_ratio,
                misrouted: counts.misrouted,
                max_loss,
                status: if loss_ratio > max_loss || counts.misrouted > 0 {
                    Status::Critical
                } else {
                    Status::Healthy
                },
                inconclusive: false,
            })
        })
        .collect()
}

fn judge_connections(metrics: &RunMetrics) -> ConnectionVerdict {
    let counts = metrics.ledger().connections;
    ConnectionVerdict {
        target: counts.target_connections,
        achieved: counts.connected,
        failures: counts.connect_failures,
        status: if counts.connected < counts.target_connections {
            Status::Critical
        } else {
            Status::Healthy
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Recorder;

    /// Metrics where every `publish_delivery` sample is `us` microseconds.
    fn delivery_at(us: u64) -> RunMetrics {
        let mut r = Recorder::new();
        for _ in 0..100 {
            r.record(Operation::PublishDelivery, us, Duration::ZERO);
        }
        RunMetrics::from(r)
    }

    fn status_at(us: u64) -> Status {
        let v = judge(&delivery_at(us), &Thresholds::default());
        v.operation(Operation::PublishDelivery).unwrap().status
    }

    #[test]
    fn latency_edges() {
        assert_eq!(status_at(49_000), Status::Healthy);
        assert_eq!(status_at(50_000), Status::Healthy, "exactly at warning");
        assert_eq!(status_at(50_100), Status::Warning, "just above warning");
        assert_eq!(status_at(200_000), Status::Warning, "exactly at critical");
        assert_eq!(status_at(200_300), Status::Critical, "just above critical");
    }

    #[test]
    fn only_the_threshold_percentile_counts() {
        let mut r = Recorder::new();
        for i in 0..1000 {
            let us = if i < 995 { 1_000 } else { 500_000 };
            r.record(Operation::DirectRtt, us, Duration::ZERO);
        }
        let m = RunMetrics::from(r);
        let v = judge(&m, &Thresholds::default());
        assert_eq!(
            v.operation(Operation::DirectRtt).unwrap().status,
            Status::Healthy
        );
        let strict = Thresholds {
            percentile: 99.9,
            ..Thresholds::default()
        };
        let v = judge(&m, &strict);
        assert_eq!(
            v.operation(Operation::DirectRtt).unwrap().status,
            Status::Critical
        );
        assert_eq!(v.overall, Status::Critical);
        assert_eq!(v.exit_code(), 11);
    }

    #[test]
    fn a_percentile_on_few_samples_cannot_make_a_run_critical_alone() {
        assert_eq!(min_samples(99.0), 100);
        assert_eq!(min_samples(99.9), 1000);
        assert_eq!(min_samples(50.0), 2);
        let mut r = Recorder::new();
        for _ in 0..3 {
            r.record(Operation::BroadcastFirst, 900_000, Duration::ZERO);
        }
        let v = judge(&RunMetrics::from(r), &Thresholds::default());
        let b = v.operation(Operation::BroadcastFirst).unwrap();
        assert_eq!((b.status, b.few_samples), (Status::Critical, true));
        assert_eq!(v.overall, Status::Warning, "a p99 of 3 samples");
        assert_eq!(v.exit_code(), 10);
        let many = judge(&delivery_at(900_000), &Thresholds::default());
        assert!(!many.operations[0].few_samples, "100 samples carry a p99");
        assert_eq!(many.overall, Status::Critical);
    }

    #[test]
    fn send_lag_is_reported_but_never_judged() {
        let mut r = Recorder::new();
        r.record(Operation::SendLag, 10_000_000, Duration::ZERO);
        let v = judge(&RunMetrics::from(r), &Thresholds::default());
        assert!(v.operations.is_empty());
        assert_eq!(v.overall, Status::Healthy);
    }

    #[test]
    fn loss_edges() {
        let mut m = delivery_at(1_000);
        m.ledger_mut().class_mut(MessageClass::Pubsub).expected = 1000;
        m.ledger_mut().class_mut(MessageClass::Pubsub).delivered = 1000;
        let v = judge(&m, &Thresholds::default());
        assert_eq!(v.loss[0].status, Status::Healthy);
        assert_eq!(v.overall, Status::Healthy);

        m.ledger_mut().class_mut(MessageClass::Pubsub).delivered = 999;
        let v = judge(&m, &Thresholds::default());
        assert_eq!(v.loss[0].lost, 1);
        assert_eq!(
            v.loss[0].status,
            Status::Critical,
            "any loss with max_loss 0"
        );
        assert_eq!(v.overall, Status::Critical);

        let tolerant = Thresholds {
            max_loss: 0.001,
            ..Thresholds::default()
        };
        let v = judge(&m, &tolerant);
        assert_eq!(v.loss[0].status, Status::Healthy, "exactly at max_loss");
        m.ledger_mut().class_mut(MessageClass::Pubsub).delivered = 998;
        let v = judge(&m, &tolerant);
        assert_eq!(v.loss[0].status, Status::Critical, "just above max_loss");
    }

    #[test]
    fn missing_connections_are_critical() {
        let mut m = delivery_at(1_000);
        m.ledger_mut().connections.target_connections = 10;
        m.ledger_mut().connections.connected = 10;
        assert_eq!(
            judge(&m, &Thresholds::default()).connections.status,
            Status::Healthy
        );
        m.ledger_mut().connections.connected = 9;
        let v = judge(&m, &Thresholds::default());
        assert_eq!(v.connections.status, Status::Critical);
        assert_eq!(v.overall, Status::Critical);
    }
}

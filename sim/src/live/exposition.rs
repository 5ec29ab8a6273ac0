//! A snapshot as Prometheus metrics (OpenMetrics text, through the
//! `prometheus-client` crate), so a Grafana board can show a run beside
//! the bus's own `/metrics`. Every series carries the scenario's name as
//! the `scenario` label. Latencies are of the last sampling interval (one
//! second), the way the dashboard shows them; counts are cumulative.

use std::borrow::Cow;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};

use super::Snapshot;

/// The content type of [`render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

type Labels = Vec<(&'static str, String)>;
type Gauges = Family<Labels, Gauge<f64, AtomicU64>>;
type Counters = Family<Labels, Counter<u64>>;

/// Every metric name [`render`] writes (without the `_total` a counter
/// gets), for documentation and for checking dashboards against.
pub const NAMES: [&str; 17] = [
    "sim_run_elapsed_seconds",
    "sim_run_finished",
    "sim_phase",
    "sim_agents_connected",
    "sim_agents_planned",
    "sim_messages_sent",
    "sim_messages_delivered",
    "sim_errors",
    "sim_errors_by_kind",
    "sim_operations",
    "sim_operation_latency_seconds",
    "sim_threshold_seconds",
    "sim_class_delivered",
    "sim_class_anomalies",
    "sim_class_lost",
    "sim_bus_node_health",
    "sim_bus_node_connections",
];

fn gauge(registry: &mut Registry, name: &str, help: &str, unit: Option<Unit>) -> Gauges {
    let family = Gauges::default();
    match unit {
        Some(unit) => registry.register_with_unit(name, help, unit, family.clone()),
        None => registry.register(name, help, family.clone()),
    }
    family
}

fn counter(registry: &mut Registry, name: &str, help: &str) -> Counters {
    let family = Counters::default();
    registry.register(name, help, family.clone());
    family
}

/// The snapshot's metrics as OpenMetrics text.
pub fn render(s: &Snapshot) -> String {
    let scenario = (Cow::Borrowed("scenario"), Cow::Owned(s.scenario.clone()));
    let mut registry = Registry::with_labels(std::iter::once(scenario));
    let r = &mut registry;
    let none = Labels::new;
    let seconds = Some(Unit::Seconds);
    gauge(
        r,
        "sim_run_elapsed",
        "Seconds since the run started",
        seconds.clone(),
    )
    .get_or_create(&none())
    .set(s.elapsed_s);
    gauge(
        r,
        "sim_run_finished",
        "1 once the run is over and judged",
        None,
    )
    .get_or_create(&none())
    .set(f64::from(u8::from(s.finished)));
    gauge(
        r,
        "sim_phase",
        "1 for the phase running now (drain after the last, done at the end)",
        None,
    )
    .get_or_create(&vec![("phase", s.phase.clone())])
    .set(1.0);
    gauge(r, "sim_agents_connected", "Agents connected now", None)
        .get_or_create(&none())
        .set(s.agents_online as f64);
    gauge(
        r,
        "sim_agents_planned",
        "Agents this simulator process runs",
        None,
    )
    .get_or_create(&none())
    .set(s.agents_planned as f64);
    counter(r, "sim_messages_sent", "Scheduled sends made")
        .get_or_create(&none())
        .inc_by(s.sent);
    counter(r, "sim_messages_delivered", "Pub/sub deliveries received")
        .get_or_create(&none())
        .inc_by(s.delivered);
    counter(r, "sim_errors", "Errors the agents counted")
        .get_or_create(&none())
        .inc_by(s.errors);
    let kinds = counter(
        r,
        "sim_errors_by_kind",
        "Errors the agents counted, by kind",
    );
    for (kind, n) in &s.errors_by_kind {
        kinds
            .get_or_create(&vec![("kind", kind.clone())])
            .inc_by(*n);
    }
    operations(r, s);
    classes(r, s);
    nodes(r, s);
    let mut text = String::new();
    encode(&mut text, &registry).expect("writing to a String cannot fail");
    text
}

fn operations(r: &mut Registry, s: &Snapshot) {
    let count = counter(r, "sim_operations", "Latency samples taken, by operation");
    let latency = gauge(
        r,
        "sim_operation_latency",
        "Latency over the last second, by operation and quantile (0.5, 0.99)",
        Some(Unit::Seconds),
    );
    for op in &s.operations {
        let name = || ("operation", op.operation.clone());
        count.get_or_create(&vec![name()]).inc_by(op.count);
        for (quantile, value) in [("0.5", op.p50_ms), ("0.99", op.p99_ms)] {
            if let Some(ms) = value {
                latency
                    .get_or_create(&vec![name(), ("quantile", quantile.to_owned())])
                    .set(seconds(ms));
            }
        }
    }
    let limits = gauge(
        r,
        "sim_threshold",
        "The scenario's limits, by operation and level (warning, critical)",
        Some(Unit::Seconds),
    );
    for t in &s.thresholds {
        for (level, ms) in [("warning", t.warning_ms), ("critical", t.critical_ms)] {
            let labels = vec![
                ("operation", t.operation.clone()),
                ("level", level.to_owned()),
            ];
            limits.get_or_create(&labels).set(seconds(ms));
        }
    }
}

fn classes(r: &mut Registry, s: &Snapshot) {
    let delivered = counter(
        r,
        "sim_class_delivered",
        "Distinct messages that arrived, by class",
    );
    let anomalies = counter(
        r,
        "sim_class_anomalies",
        "Duplicated, misrouted and out-of-order deliveries, by class and kind",
    );
    let lost = gauge(
        r,
        "sim_class_lost",
        "Messages lost, by class (once the run is over)",
        None,
    );
    for c in &s.classes {
        let class = || ("class", c.class.clone());
        delivered.get_or_create(&vec![class()]).inc_by(c.delivered);
        for (kind, n) in [
            ("duplicated", c.duplicated),
            ("misrouted", c.misrouted),
            ("out_of_order", c.out_of_order),
        ] {
            anomalies
                .get_or_create(&vec![class(), ("kind", kind.to_owned())])
                .inc_by(n);
        }
        if let Some(n) = c.lost {
            lost.get_or_create(&vec![class()]).set(n as f64);
        }
    }
}

fn nodes(r: &mut Registry, s: &Snapshot) {
    let health = gauge(
        r,
        "sim_bus_node_health",
        "Each bus node's latest /health as the simulator polled it: 0 healthy, 1 degraded, 2 unhealthy, 3 unreachable",
        None,
    );
    let connections = gauge(
        r,
        "sim_bus_node_connections",
        "Each bus node's open connections (its /ws/stats)",
        None,
    );
    for n in &s.nodes {
        let node = vec![("node", n.node.clone())];
        let value = match n.status.as_str() {
            "healthy" => 0.0,
            "degraded" => 1.0,
            "unhealthy" => 2.0,
            _ => 3.0,
        };
        health.get_or_create(&node).set(value);
        if let Some(open) = n.connections {
            connections.get_or_create(&node).set(open as f64);
        }
    }
}

/// Milliseconds (to the microsecond) as seconds, without binary noise.
fn seconds(ms: f64) -> f64 {
    (ms * 1000.0).round() / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::{ClassNow, NodeNow, OperationNow, ThresholdMark};

    #[test]
    fn every_named_series_is_written_with_help_and_the_scenario_label() {
        let snapshot = Snapshot {
            scenario: "t".into(),
            elapsed_s: 3.5,
            phase: "steady".into(),
            sent: 10,
            delivered: 40,
            errors_by_kind: [("timeout".to_owned(), 2)].into(),
            operations: vec![OperationNow {
                operation: "publish_delivery".into(),
                count: 40,
                per_s: 20.0,
                p50_ms: Some(1.5),
                p99_ms: Some(4.0),
                run_p99_ms: Some(4.0),
            }],
            thresholds: vec![ThresholdMark {
                operation: "publish_delivery".into(),
                percentile: 99.0,
                warning_ms: 50.0,
                critical_ms: 200.0,
            }],
            classes: vec![ClassNow {
                class: "pubsub".into(),
                delivered: 40,
                duplicated: 0,
                misrouted: 0,
                out_of_order: 0,
                lost: Some(0),
            }],
            nodes: vec![NodeNow {
                node: "127.0.0.1:1".into(),
                status: "degraded".into(),
                connections: Some(12),
                checks_ms: Default::default(),
            }],
            ..Snapshot::default()
        };
        let text = render(&snapshot);
        for name in NAMES {
            assert!(
                text.contains(&format!("# HELP {name}")),
                "{name} missing:\n{text}"
            );
        }
        assert!(
            text.contains("sim_messages_delivered_total{scenario=\"t\"} 40"),
            "{text}"
        );
        assert!(
            text.contains(
                "sim_operation_latency_seconds{scenario=\"t\",operation=\"publish_delivery\",quantile=\"0.99\"} 0.004"
            ),
            "{text}"
        );
        assert!(
            text.contains("sim_bus_node_health{scenario=\"t\",node=\"127.0.0.1:1\"} 1.0"),
            "{text}"
        );
        assert!(text.trim_end().ends_with("# EOF"));
    }
}

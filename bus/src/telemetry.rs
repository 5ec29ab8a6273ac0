//! Counters and gauges of one node, exported at `/metrics` in Prometheus
//! text format through the `metrics` crate. Every series carries a `node`
//! label. Hot-path handles are registered once, so counting is an atomic add.

use std::collections::HashMap;
use std::sync::OnceLock;

use metrics::{Counter, Gauge, Unit, counter, describe_counter, describe_gauge, gauge};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::protocol::{CLIENT_OPS, ErrorCode};

/// The process-wide Prometheus recorder (installed once; nodes embedded in
/// one process share it and are told apart by their `node` label).
fn handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let handle = PrometheusBuilder::new()
                .install_recorder()
                .unwrap_or_else(|err| {
                    tracing::warn!(cause = %err, "a metrics recorder is already installed; /metrics will be empty");
                    PrometheusBuilder::new().build_recorder().handle()
                });
            describe();
            handle
        })
        .clone()
}

/// The `# HELP` text of every series (and its unit where it has one).
fn describe() {
    describe_gauge!("bus_connections", "Open WebSocket connections.");
    describe_counter!(
        "bus_connections_opened_total",
        "WebSocket connections accepted."
    );
    describe_counter!(
        "bus_connections_refused_total",
        "WebSocket upgrades refused by a connection limit (HTTP 503)."
    );
    describe_counter!(
        "bus_auth_failures_total",
        "WebSocket upgrades refused for bad credentials (HTTP 401)."
    );
    describe_counter!(
        "bus_frames_in_total",
        "Text frames received from clients, by op (invalid: undecodable)."
    );
    describe_counter!(
        "bus_frames_out_total",
        "Frames written to WebSocket clients: messages, jobs, replies, pings, close frames."
    );
    describe_counter!(
        "bus_deliveries_total",
        "Pub/sub messages queued for a client."
    );
    describe_counter!(
        "bus_slow_consumers_total",
        "Clients closed with 4001: outbound queue over its budget, or no write went through within the write timeout."
    );
    describe_counter!(
        "bus_errors_total",
        "Error replies, by wire code (cross_workspace and forbidden are refused attempts)."
    );
    describe_gauge!(
        "bus_queues",
        "Queues the broker knows (inboxes included), refreshed every --queue-gauge-interval."
    );
    describe_gauge!(
        "bus_queue_messages",
        "Messages of all queues together, by state (ready, processing, delayed, dead)."
    );
    describe_gauge!(
        "bus_health_status",
        "The node's latest health check: 0 healthy, 1 degraded, 2 unhealthy."
    );
    describe_gauge!(
        "bus_health_check_latency_seconds",
        Unit::Seconds,
        "Latency of each health probe (ping, write_read, pubsub, queue) in the latest check."
    );
}

/// The node's metric handles.
#[derive(Debug)]
pub struct Telemetry {
    handle: PrometheusHandle,
    node: String,
    /// `bus_connections`: open WebSocket connections.
    pub connections: Gauge,
    /// `bus_connections_opened_total`: connections accepted.
    pub connections_opened: Counter,
    /// `bus_connections_refused_total`: upgrades refused by a connection limit.
    pub connections_refused: Counter,
    /// `bus_auth_failures_total`: upgrades refused for bad credentials.
    pub auth_failures: Counter,
    /// `bus_frames_out_total`: frames written to WebSocket clients (every
    /// kind: messages, jobs, replies, pings).
    pub frames_out: Counter,
    /// `bus_deliveries_total`: pub/sub messages queued for a client.
    pub deliveries: Counter,
    /// `bus_slow_consumers_total`: clients disconnected because their outbound
    /// queue filled.
    pub slow_consumers: Counter,
    frames_in: HashMap<&'static str, Counter>,
    errors: HashMap<ErrorCode, Counter>,
}

impl Telemetry {
    /// Registers the node's series, each labelled `node`.
    pub fn new(node: &str) -> Self {
        let handle = handle();
        let node_label = node.to_owned();
        let frames_in = CLIENT_OPS
            .iter()
            .chain(&["invalid"])
            .map(|op| {
                (
                    *op,
                    counter!("bus_frames_in_total", "node" => node_label.clone(), "op" => *op),
                )
            })
            .collect();
        let errors = ErrorCode::ALL
            .iter()
            .map(|code| {
                (
                    *code,
                    counter!("bus_errors_total", "node" => node_label.clone(), "code" => code.as_str()),
                )
            })
            .collect();
        Self {
            connections: gauge!("bus_connections", "node" => node_label.clone()),
            connections_opened: counter!("bus_connections_opened_total", "node" => node_label.clone()),
            connections_refused: counter!("bus_connections_refused_total", "node" => node_label.clone()),
            auth_failures: counter!("bus_auth_failures_total", "node" => node_label.clone()),
            frames_out: counter!("bus_frames_out_total", "node" => node_label.clone()),
            deliveries: counter!("bus_deliveries_total", "node" => node_label.clone()),
            slow_consumers: counter!("bus_slow_consumers_total", "node" => node_label.clone()),
            frames_in,
            errors,
            handle,
            node: node_label,
        }
    }

    /// Counts one received frame by op (`"invalid"` when undecodable).
    pub fn frame_in(&self, op: &str) {
        if let Some(c) = self.frames_in.get(op) {
            c.increment(1);
        }
    }

    /// Counts one error reply by code; cross-workspace and forbidden codes
    /// are the denied attempts operators watch.
    pub fn error(&self, code: ErrorCode) {
        if let Some(c) = self.errors.get(&code) {
            c.increment(1);
        }
    }

    /// Sets the queue gauges (called at scrape time): how many queues there
    /// are and how many messages they hold together in each state. Totals,
    /// never one series per queue: queue names carry workspace and agent
    /// ids, and per-queue series would grow `/metrics` with every queue
    /// created (per-queue depths are `GET /queues`, behind the operator
    /// credentials).
    pub fn queue_depths(&self, stats: &[crate::broker::QueueStats]) {
        gauge!("bus_queues", "node" => self.node.clone()).set(stats.len() as f64);
        let mut totals = [0u64; 4];
        for s in stats {
            for (total, n) in totals
                .iter_mut()
                .zip([s.ready, s.processing, s.delayed, s.dead])
            {
                *total += n;
            }
        }
        for (state, n) in ["ready", "processing", "delayed", "dead"]
            .into_iter()
            .zip(totals)
        {
            gauge!("bus_queue_messages", "node" => self.node.clone(), "state" => state)
                .set(n as f64);
        }
    }

    /// Sets the health gauges from the latest report: the status level
    /// (0 healthy, 1 degraded, 2 unhealthy) and each probe's latency in
    /// seconds. Plain values rather than the report, so that metrics do not
    /// depend on how the health checker is built.
    pub fn health(&self, level: u8, checks: impl IntoIterator<Item = (&'static str, f64)>) {
        gauge!("bus_health_status", "node" => self.node.clone()).set(f64::from(level));
        for (check, seconds) in checks {
            gauge!("bus_health_check_latency_seconds", "node" => self.node.clone(), "check" => check)
                .set(seconds);
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        self.handle.render()
    }
}

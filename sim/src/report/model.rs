//! The report's data model: everything a run tells, as plain serializable data.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::ledger::Ledger;
use crate::metrics::{LatencySummary, Operation, RunMetrics, SeriesRow};
use crate::scenario::{LoadScale, Scenario};
use crate::verdict::trust::Integrity;
use crate::verdict::{Status, Verdicts};

/// Version of the report format; bumped on incompatible changes so `sim
/// check` and other readers can refuse what they do not understand.
pub const SCHEMA_VERSION: u32 = 1;

/// A complete run report: the content of `report.json`, and what the
/// Markdown and HTML views are rendered from.
///
/// Built with [`Report::new`] from plain data; the runner then fills the
/// parts only it knows (`health_timeline`, `redis_samples`, `simulator`,
/// `notes`) through the public fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// [`SCHEMA_VERSION`] at the time of writing.
    pub schema_version: u32,
    /// Which scenario ran.
    pub scenario: ScenarioInfo,
    /// When, how long and against what.
    pub run: RunInfo,
    /// Connection outcome.
    pub connections: ConnectionSummary,
    /// Latency figures per operation with samples, in report order.
    pub latencies: Vec<OperationLatency>,
    /// Delivery, queue and connection counters.
    pub ledger: Ledger,
    /// One row per second.
    pub series: Vec<SeriesRow>,
    /// Verdicts and the overall one.
    pub verdicts: Verdicts,
    /// Error counts by kind.
    pub errors: BTreeMap<String, u64>,
    /// The bus's own `/health` over time.
    pub health_timeline: Vec<HealthSample>,
    /// Redis figures over time (redis broker only).
    pub redis_samples: Vec<RedisSample>,
    /// What the simulator itself cost.
    pub simulator: SimulatorSelf,
    /// Anything a reader should know (faults injected, clamped figures...).
    pub notes: Vec<String>,
    /// Faults injected during the run and what they did.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub faults: Vec<FaultOutcome>,
    /// Per bus node: agents, connections, and CPU and memory when the
    /// simulator started the node (absent in reports written before).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<NodeFigures>,
    /// Whether the run's numbers can be trusted: the simulator's own load,
    /// the bus's counts beside the agents', an interruption (reports
    /// written before it existed read as trusted).
    #[serde(default)]
    pub integrity: Integrity,
    /// The shards this report was merged from (`sim merge`); absent for a
    /// run of one process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged: Option<MergedFrom>,
    /// Each phase's figures, then the drain's (absent in reports written
    /// before, and in merged reports).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub phases: Vec<super::PhaseResult>,
}

/// What one bus node carried during the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeFigures {
    /// The node as `host:port`, the label its health samples carry.
    pub node: String,
    /// Agents the plan put on this node.
    pub agents: u64,
    /// Connections the agents opened to it (reconnects included).
    pub connects: u64,
    /// The most connections the node itself reported at once (its
    /// `/ws/stats`, polled every second), counting every client; absent
    /// when it could not be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_connections: Option<u64>,
    /// CPU over the run, percent of one core: only for nodes the simulator
    /// started (spawn mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_percent: Option<f64>,
    /// Peak resident memory, for nodes the simulator started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_rss_bytes: Option<u64>,
}

impl NodeFigures {
    /// Peak memory per connection at the peak, when both are known.
    pub fn rss_bytes_per_connection(&self) -> Option<f64> {
        match (self.peak_rss_bytes, self.peak_connections) {
            (Some(rss), Some(connections)) if connections > 0 => {
                Some(rss as f64 / connections as f64)
            }
            _ => None,
        }
    }
}

/// Where a merged report came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MergedFrom {
    /// How many shards the run had (all of them were merged).
    pub shards: u32,
    /// The shards' report directories, by shard index.
    pub sources: Vec<String>,
}

/// One injected fault and what was seen around it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultOutcome {
    /// The fault kind's scenario name (e.g. `redis_restart`).
    pub kind: String,
    /// When it began, seconds from the start of the run.
    pub at_s: f64,
    /// How long it lasted, seconds (0 for an instantaneous fault).
    pub duration_s: f64,
    /// Nodes or agents it hit.
    pub affected: Vec<String>,
    /// Why it could not be applied, if it could not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// From the end of the fault to the first delivery of a message sent
    /// after it: how long delivery took to resume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resumed_after_s: Option<f64>,
    /// Agents' connections that broke from the start of the fault to 2 s
    /// after its end.
    pub disconnects: u64,
    /// The bus's own health statuses from the start of the fault to 2 s
    /// after its end, in order, repeats removed.
    pub bus_health: Vec<String>,
}

/// Which scenario ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScenarioInfo {
    /// Scenario name.
    pub name: String,
    /// Scenario description.
    pub description: String,
    /// The scenario file as given on the command line.
    pub file: String,
    /// [`Scenario::content_hash`]: tells whether two reports ran the same
    /// scenario.
    pub content_hash: String,
    /// The seed used.
    pub seed: u64,
    /// How the run's load differed from the file (command-line scaling);
    /// absent when it ran as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<LoadScale>,
}

impl ScenarioInfo {
    /// The facts of `scenario`, loaded from `file`.
    pub fn from_scenario(scenario: &Scenario, file: impl Into<String>) -> Self {
        Self {
            name: scenario.name.clone(),
            description: scenario.description.clone(),
            file: file.into(),
            content_hash: scenario.content_hash(),
            seed: scenario.seed,
            scale: None,
        }
    }
}

/// When, how long and against what the run went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    /// Start, UTC, RFC 3339 (e.g. "2026-11-27T10:15:00Z").
    pub started_at: String,
    /// Measured length of the run, seconds.
    pub duration_s: f64,
    /// Human description of the target ("embedded", "spawn: 3 nodes",
    /// "external: ws://...").
    pub target: String,
    /// Broker kind ("memory" or "redis").
    pub broker: String,
    /// Number of bus nodes.
    pub bus_nodes: u32,
}

impl RunInfo {
    /// Run facts with the start time formatted as UTC RFC 3339 (seconds).
    pub fn new(
        started_at: SystemTime,
        duration: Duration,
        target: impl Into<String>,
        broker: impl Into<String>,
        bus_nodes: u32,
    ) -> Self {
        Self {
            started_at: humantime::format_rfc3339_seconds(started_at).to_string(),
            duration_s: duration.as_secs_f64(),
            target: target.into(),
            broker: broker.into(),
            bus_nodes,
        }
    }

    /// The start as a `SystemTime` (the Unix epoch if the text is not RFC
    /// 3339, e.g. hand-edited).
    pub fn started_at_time(&self) -> SystemTime {
        humantime::parse_rfc3339(&self.started_at).unwrap_or(SystemTime::UNIX_EPOCH)
    }
}

/// Connection outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionSummary {
    /// Agents asked to connect.
    pub target: u64,
    /// Agents that connected.
    pub achieved: u64,
    /// Failed attempts.
    pub failures: u64,
    /// Retried attempts.
    pub retries: u64,
    /// Unexpected disconnects.
    pub disconnects: u64,
}

/// Latency figures of one operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OperationLatency {
    /// The operation.
    pub operation: Operation,
    /// Whether verdicts judge it (false only for `send_lag`).
    pub judged: bool,
    /// The figures.
    pub summary: LatencySummary,
}

/// One reading of the bus's `/health`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthSample {
    /// Seconds since the run started.
    pub at_s: f64,
    /// The status the bus reported ("healthy", "degraded", "unhealthy").
    pub status: String,
    /// Latency of each health check, ms, by check name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub checks_ms: BTreeMap<String, f64>,
    /// Which bus node answered (its `host:port`), so samples of several
    /// nodes can be told apart; absent in reports of one-node runs written
    /// before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// The node's open connections at that moment (`/ws/stats`), when it
    /// let the simulator read them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connections: Option<u64>,
}

impl HealthSample {
    /// The bus's status on the simulator's scale.
    pub fn level(&self) -> Status {
        Status::from_bus_health(&self.status)
    }
}

/// One reading of Redis's INFO.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RedisSample {
    /// Seconds since the run started.
    pub at_s: f64,
    /// `instantaneous_ops_per_sec`.
    pub ops_per_sec: f64,
    /// `used_memory`.
    pub used_memory_bytes: u64,
    /// `connected_clients`.
    pub connected_clients: u64,
}

/// One second of the simulator's own figures.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SelfSample {
    /// Seconds since the run started (end of the second).
    pub at_s: f64,
    /// CPU of the simulator process in that second, percent of one core.
    pub cpu_percent: f64,
    /// The whole machine's busy share in that second, percent of all
    /// cores (`None` without `/proc/stat`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine_busy_percent: Option<f64>,
    /// The latest the runtime woke the probe in that second, ms.
    pub max_lag_ms: f64,
}

/// What the simulator itself cost, so a reader can tell whether the
/// simulator or the bus was the bottleneck.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SimulatorSelf {
    /// User + system CPU time of the simulator process.
    pub cpu_seconds: f64,
    /// Peak resident memory of the simulator process.
    pub peak_rss_bytes: u64,
    /// CPU microseconds spent per delivered message (absent when nothing
    /// was delivered).
    pub cpu_us_per_delivered_message: Option<f64>,
    /// Peak memory per simulated agent (absent without agents).
    pub memory_bytes_per_agent: Option<f64>,
    /// CPU over the run, percent of one core.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_percent: Option<f64>,
    /// Cores the simulator could run on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cores: Option<u32>,
    /// The whole machine's busy share over the run, percent of all cores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine_busy_percent: Option<f64>,
    /// How late the simulator's runtime woke a 10 ms probe, p99 and max,
    /// ms: above a few ms it could not keep its own schedule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduling_lag_p99_ms: Option<f64>,
    /// The latest the runtime woke that probe over the run, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduling_lag_max_ms: Option<f64>,
    /// The same, per second.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub samples: Vec<SelfSample>,
}

impl SimulatorSelf {
    /// Simulator costs with the per-message and per-agent ratios derived.
    pub fn new(cpu_seconds: f64, peak_rss_bytes: u64, delivered: u64, agents: u64) -> Self {
        Self {
            cpu_seconds,
            peak_rss_bytes,
            cpu_us_per_delivered_message: (delivered > 0)
                .then(|| cpu_seconds * 1e6 / delivered as f64),
            memory_bytes_per_agent: (agents > 0).then(|| peak_rss_bytes as f64 / agents as f64),
            ..Self::default()
        }
    }
}

impl Report {
    /// A report from the run's facts, merged metrics and verdicts. The
    /// runner-only parts start empty.
    pub fn new(
        scenario: ScenarioInfo,
        run: RunInfo,
        metrics: &RunMetrics,
        verdicts: Verdicts,
    ) -> Self {
        let ledger = metrics.ledger().clone();
        let connections = ConnectionSummary {
            target: ledger.connections.target_connections,
            achieved: ledger.connections.connected,
            failures: ledger.connections.connect_failures,
            retries: ledger.connections.connect_retries,
            disconnects: ledger.connections.disconnects,
        };
        let latencies = metrics
            .operations()
            .into_iter()
            .filter_map(|op| {
                metrics.summary(op).map(|summary| OperationLatency {
                    operation: op,
                    judged: op.is_judged(),
                    summary,
                })
            })
            .collect();
        Self {
            schema_version: SCHEMA_VERSION,
            scenario,
            run,
            connections,
            latencies,
            ledger,
            series: metrics.series_rows(),
            verdicts,
            errors: metrics.error_kinds().clone(),
            health_timeline: Vec::new(),
            redis_samples: Vec::new(),
            simulator: SimulatorSelf::default(),
            notes: Vec::new(),
            faults: Vec::new(),
            nodes: Vec::new(),
            integrity: Integrity::default(),
            merged: None,
            phases: Vec::new(),
        }
    }

    /// The seconds the throughput figures are over: the phases' (the
    /// drain left out, and no more than the run lasted, should it have been
    /// interrupted), or the whole run when the phases are not known.
    pub fn window_s(&self) -> f64 {
        self.phases
            .iter()
            .filter(|p| p.name != super::DRAIN)
            .map(|p| p.end_s)
            .reduce(f64::max)
            .map_or(self.run.duration_s, |end| end.min(self.run.duration_s))
            .max(1e-9)
    }

    /// The overall verdict.
    pub fn overall(&self) -> Status {
        self.verdicts.overall
    }

    /// Health samples where the bus's status changed (the first included).
    pub fn health_transitions(&self) -> Vec<&HealthSample> {
        let mut out: Vec<&HealthSample> = Vec::new();
        for sample in &self.health_timeline {
            if out.last().is_none_or(|last| last.status != sample.status) {
                out.push(sample);
            }
        }
        out
    }
}

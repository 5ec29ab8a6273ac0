//! The scenario file's top-level schema: target, phases, thresholds and faults (groups live in `group`).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::duration::HumanDuration;
use super::group::Group;
use crate::metrics::Operation;

/// A complete load scenario as written in a TOML file.
///
/// Parsed with `deny_unknown_fields` everywhere, so a misspelt key is an
/// error instead of a silently ignored setting; then checked by
/// [`Scenario::parse`](crate::scenario::Scenario::parse) for rules serde
/// cannot express (ranges, cross references).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(
    title = "Agent bus load scenario",
    description = "A load scenario for the agent bus simulator (sim). See scenarios/README.md."
)]
pub struct Scenario {
    /// Names the run in reports and in the report directory.
    pub name: String,
    /// Free text shown at the top of reports.
    #[serde(default)]
    pub description: String,
    /// Seeds every random choice (topics, arrivals, payload sizes), so two
    /// runs of one file send the same traffic.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Where the bus under test runs.
    #[serde(default)]
    pub target: Target,
    /// The load profile over time; run in order, their durations add up to
    /// the run's length.
    pub phases: Vec<Phase>,
    /// The simulated agents.
    pub groups: Vec<Group>,
    /// Latency and loss limits for the verdicts.
    #[serde(default)]
    pub thresholds: Thresholds,
    /// Disturbances injected during the run.
    #[serde(default)]
    pub faults: Vec<Fault>,
}

fn default_seed() -> u64 {
    1
}

/// Where the bus under test runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// How the simulator reaches the bus.
    #[serde(default)]
    pub mode: TargetMode,
    /// The broker behind embedded or spawned bus nodes.
    #[serde(default)]
    pub broker: BrokerKind,
    /// Redis to use with `broker = "redis"`; when absent the simulator starts
    /// its own redis-server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis_url: Option<String>,
    /// Number of bus nodes the simulator starts in spawn mode; agents are
    /// spread round-robin over them.
    #[serde(default = "default_nodes")]
    pub nodes: u32,
    /// Bus endpoints (`ws://host:port`) for external mode.
    #[serde(default)]
    pub urls: Vec<String>,
    /// Local addresses (e.g. "127.0.0.2") to bind client sockets to, so more
    /// than ~28,000 connections fit on one destination port; empty means the
    /// operating system picks.
    #[serde(default)]
    pub source_addresses: Vec<IpAddr>,
    /// Extra `bus` flags for the nodes the simulator starts (embedded or
    /// spawned), e.g. `["--visibility-timeout", "2s"]`; see `bus --help`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bus_args: Vec<String>,
    /// HS256 secret of agent tokens: nodes the simulator starts require
    /// tokens, and agents sign theirs with it (`--jwt-secret` overrides).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt_secret: Option<String>,
}

impl Default for Target {
    fn default() -> Self {
        Self {
            mode: TargetMode::default(),
            broker: BrokerKind::default(),
            redis_url: None,
            nodes: default_nodes(),
            urls: Vec::new(),
            source_addresses: Vec::new(),
            bus_args: Vec::new(),
            jwt_secret: None,
        }
    }
}

fn default_nodes() -> u32 {
    1
}

/// How the simulator reaches the bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TargetMode {
    /// An in-process bus on 127.0.0.1:0: zero setup.
    #[default]
    Embedded,
    /// Bus child processes started and stopped by the simulator (more open
    /// files in total, and processes that faults can kill).
    Spawn,
    /// An already running bus at `urls`.
    External,
}

impl TargetMode {
    /// The snake_case name, as written in scenario files.
    pub const fn as_str(self) -> &'static str {
        match self {
            TargetMode::Embedded => "embedded",
            TargetMode::Spawn => "spawn",
            TargetMode::External => "external",
        }
    }
}

/// The broker backend of the bus nodes the simulator starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BrokerKind {
    /// The bus's in-memory broker: one process only.
    #[default]
    Memory,
    /// Redis, the production backend.
    Redis,
}

impl BrokerKind {
    /// The snake_case name, as written in scenario files.
    pub const fn as_str(self) -> &'static str {
        match self {
            BrokerKind::Memory => "memory",
            BrokerKind::Redis => "redis",
        }
    }
}

/// One stretch of the load profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Phase {
    /// Shown in progress output and reports.
    pub name: String,
    /// How connected agents change during the phase.
    pub kind: PhaseKind,
    /// How long the phase lasts.
    pub duration: HumanDuration,
    /// Fraction (0..=1) of every group's agents connected at the end of the
    /// phase. Default 1.0, or 0.0 for `ramp_down`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agents: Option<f64>,
    /// Multiplier on every group's message rate during the phase.
    #[serde(default = "default_rate_multiplier")]
    pub rate: f64,
}

fn default_rate_multiplier() -> f64 {
    1.0
}

impl Phase {
    /// The fraction of agents connected at the end of this phase, with the
    /// kind's default applied.
    pub fn agents_at_end(&self) -> f64 {
        self.agents.unwrap_or(match self.kind {
            PhaseKind::RampDown => 0.0,
            _ => 1.0,
        })
    }

    /// Whether the connected fraction moves linearly from the previous
    /// phase's end value (ramps) instead of jumping to this phase's value.
    pub const fn is_linear(&self) -> bool {
        matches!(self.kind, PhaseKind::Ramp | PhaseKind::RampDown)
    }
}

/// How connected agents change during a phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PhaseKind {
    /// Linear change from the previous phase's fraction to `agents`.
    Ramp,
    /// `agents` connected throughout.
    Steady,
    /// Like steady, but meant for a short burst (usually `rate` > 1).
    Spike,
    /// Linear change down to `agents` (default 0).
    RampDown,
}

/// Latency and loss limits for the verdicts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Thresholds {
    /// The percentile (0 < p <= 100) compared with the limits.
    #[serde(default = "default_percentile")]
    pub percentile: f64,
    /// Above this latency an operation is `warning`.
    #[serde(default = "default_warning")]
    pub warning: HumanDuration,
    /// Above this latency an operation is `critical`.
    #[serde(default = "default_critical")]
    pub critical: HumanDuration,
    /// Largest tolerated fraction (0..=1) of lost messages per message class;
    /// above it the class is `critical`.
    #[serde(default)]
    pub max_loss: f64,
    /// Per-operation overrides, keyed by operation name.
    #[serde(default)]
    #[schemars(schema_with = "operation_overrides_schema")]
    pub operations: BTreeMap<Operation, ThresholdOverride>,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            percentile: default_percentile(),
            warning: default_warning(),
            critical: default_critical(),
            max_loss: 0.0,
            operations: BTreeMap::new(),
        }
    }
}

fn default_percentile() -> f64 {
    99.0
}

fn default_warning() -> HumanDuration {
    HumanDuration::from_millis(50)
}

fn default_critical() -> HumanDuration {
    HumanDuration::from_millis(200)
}

/// Keys are operation names; the generic map schema would accept any key.
fn operation_overrides_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let key = generator.subschema_for::<Operation>();
    let value = generator.subschema_for::<ThresholdOverride>();
    schemars::json_schema!({
        "type": "object",
        "propertyNames": key,
        "additionalProperties": value,
    })
}

/// Per-operation replacements for the scenario-wide thresholds; absent
/// fields keep the scenario-wide value.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ThresholdOverride {
    /// Replaces `thresholds.percentile`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percentile: Option<f64>,
    /// Replaces `thresholds.warning`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<HumanDuration>,
    /// Replaces `thresholds.critical`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub critical: Option<HumanDuration>,
    /// Replaces `thresholds.max_loss` for the message classes judged with
    /// this operation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_loss: Option<f64>,
}

/// The limits that apply to one operation, overrides resolved.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OperationThreshold {
    /// Percentile compared with the limits.
    pub percentile: f64,
    /// Above this the operation is `warning`.
    pub warning: Duration,
    /// Above this the operation is `critical`.
    pub critical: Duration,
    /// Largest tolerated loss fraction.
    pub max_loss: f64,
}

impl Thresholds {
    /// The limits for `op`: its override where present, the scenario-wide
    /// value otherwise.
    pub fn for_operation(&self, op: Operation) -> OperationThreshold {
        let over = self.operations.get(&op).cloned().unwrap_or_default();
        OperationThreshold {
            percentile: over.percentile.unwrap_or(self.percentile),
            warning: over.warning.unwrap_or(self.warning).get(),
            critical: over.critical.unwrap_or(self.critical).get(),
            max_loss: over.max_loss.unwrap_or(self.max_loss),
        }
    }
}

/// A disturbance injected during the run (executed by the runner; parsed
/// and validated here so scenario files are checked today).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    /// What happens.
    pub kind: FaultKind,
    /// When it starts, from the start of the run; before the run's end.
    pub at: HumanDuration,
    /// How long it lasts (0s for instantaneous faults).
    #[serde(default)]
    pub duration: HumanDuration,
    /// How many agents or nodes it affects.
    #[serde(default = "default_fault_count")]
    pub count: u32,
    /// The agent group it affects, when it targets agents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

fn default_fault_count() -> u32 {
    1
}

/// What a fault does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// Stop the redis-server the simulator started (it runs with an
    /// append-only file) and start it again after `duration`.
    RedisRestart,
    /// Freeze Redis (SIGSTOP) for `duration`, then resume it (SIGCONT).
    RedisPause,
    /// Kill -9 `count` spawned bus nodes, restart them after `duration`.
    NodeKill,
    /// Cut every connection between agents and the bus and refuse new ones
    /// for `duration` (through the simulator's TCP proxy).
    NetworkCut,
    /// Make `count` agents (of `group`) stop reading for `duration`.
    SlowConsumers,
    /// Drop `count` agents' connections at once; they reconnect at once.
    ReconnectStorm,
    /// Make `count` queue workers (of `group`) drop every job they claim,
    /// without acking, for `duration`.
    CrashAfterClaim,
}

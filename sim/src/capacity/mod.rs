//! Capacity planning: the highest load a bus carries while still healthy,
//! and while still below critical, found by a series of short steady-state
//! runs. At every point the bus's own `/health` is compared with what the
//! agents measured (threshold validation).
//!
//! - [`search`]: which loads to try (sweep, or a bracketing search).
//! - [`knee`]: where the latency curve bends.
//! - `point`: one real measurement (a fresh bus, a short run).
//! - `output`: `capacity.json`, `capacity.md`, `capacity.html`.

pub mod knee;
mod output;
mod point;
pub mod search;

use std::time::Duration;

use clap::ValueEnum;
use serde::{Deserialize, Serialize};

pub use self::output::{markdown as output_summary, write_all};
pub use self::point::{PointProber, ProbeSettings};
use self::search::{Grain, Strategy};
use crate::metrics::Operation;
use crate::scenario::{
    Behaviour, BrokerKind, HumanDuration, PayloadBytes, Phase, PhaseKind, Scenario, TargetMode,
};
use crate::verdict::Status;

/// What a capacity run varies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Vary {
    /// Total agents (every group scaled in proportion).
    Agents,
    /// Messages per second offered by all sending groups together.
    Rate,
    /// Topics of every group that has topics.
    Topics,
    /// Payload bytes of every message.
    Payload,
}

impl Vary {
    /// Whether loads of this quantity are whole numbers (counts) or not (rates).
    pub fn grain(self) -> Grain {
        match self {
            Vary::Rate => Grain::Fractional,
            _ => Grain::Whole,
        }
    }

    /// The unit of the load axis, as reports print it.
    pub fn unit(self) -> &'static str {
        match self {
            Vary::Agents => "agents",
            Vary::Rate => "messages/s offered",
            Vary::Topics => "topics",
            Vary::Payload => "payload bytes",
        }
    }

    /// The scenario's own value of the varied quantity.
    pub fn base(self, scenario: &Scenario) -> f64 {
        match self {
            Vary::Agents => scenario.total_agents() as f64,
            Vary::Rate => offered_rate(scenario),
            Vary::Topics => scenario
                .groups
                .iter()
                .map(|g| g.topics.count)
                .max()
                .unwrap_or(1) as f64,
            Vary::Payload => scenario
                .groups
                .iter()
                .map(|g| g.payload_bytes.bounds().1)
                .max()
                .unwrap_or(64) as f64,
        }
    }

    /// The scenario with the varied quantity set to `load`.
    pub fn apply(self, scenario: &Scenario, load: f64) -> Scenario {
        let mut s = scenario.clone();
        match self {
            Vary::Agents => {
                let factor = load / scenario.total_agents().max(1) as f64;
                for g in &mut s.groups {
                    g.count = ((f64::from(g.count) * factor).round() as u32).max(1);
                }
            }
            Vary::Rate => {
                let factor = load / offered_rate(scenario).max(f64::MIN_POSITIVE);
                for g in &mut s.groups {
                    g.rate *= factor;
                }
            }
            Vary::Topics => {
                for g in s.groups.iter_mut().filter(|g| has_topics(g.behaviour)) {
                    g.topics.count = load.round().max(1.0) as u32;
                    g.topics.per_agent = g.topics.per_agent.min(g.topics.count);
                }
            }
            Vary::Payload => {
                for g in &mut s.groups {
                    g.payload_bytes = PayloadBytes::Fixed(load.round().max(1.0) as u32);
                }
            }
        }
        s
    }
}

fn has_topics(b: Behaviour) -> bool {
    matches!(b, Behaviour::Publisher | Behaviour::Subscriber)
}

/// Messages per second all sending groups offer together. A queue
/// producer's send is an enqueue of `batch` jobs, so it counts `batch`.
pub fn offered_rate(scenario: &Scenario) -> f64 {
    scenario
        .groups
        .iter()
        .map(|g| {
            let per_send = match g.behaviour {
                Behaviour::QueueProducer => f64::from(g.batch.max(1)),
                _ => 1.0,
            };
            f64::from(g.count) * g.rate * per_send
        })
        .sum()
}

/// A point's scenario: connect everyone without traffic, then one steady
/// phase at the point's load.
pub fn steady_state(scenario: &Scenario, connect: Duration, steady: Duration) -> Scenario {
    let mut s = scenario.clone();
    s.phases = vec![
        Phase {
            name: "connect".into(),
            kind: PhaseKind::Ramp,
            duration: HumanDuration(connect),
            agents: None,
            rate: 0.0,
        },
        Phase {
            name: "steady".into(),
            kind: PhaseKind::Steady,
            duration: HumanDuration(steady),
            agents: None,
            rate: 1.0,
        },
    ];
    s.faults.clear();
    s
}

/// A bus set-up to measure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Setup {
    /// The name it was given on the command line (`memory`, `redis-2`, ...).
    pub name: String,
    /// Whether the bus runs in the simulator's process, as child processes,
    /// or elsewhere.
    pub mode: TargetMode,
    /// The broker behind the bus (memory or Redis).
    pub broker: BrokerKind,
    /// Bus nodes.
    pub nodes: u32,
}

impl Setup {
    /// `scenario` (as the file says), `memory`, `redis` (embedded on
    /// Redis), `redis-N` (N spawned nodes on one Redis), `memory-spawn`.
    pub fn parse(name: &str, scenario: &Scenario) -> Result<Self, String> {
        let t = &scenario.target;
        let (mode, broker, nodes) = match name {
            "scenario" => (t.mode, t.broker, t.nodes),
            "memory" => (TargetMode::Embedded, BrokerKind::Memory, 1),
            "memory-spawn" => (TargetMode::Spawn, BrokerKind::Memory, 1),
            "redis" => (TargetMode::Embedded, BrokerKind::Redis, 1),
            other => match other.strip_prefix("redis-").map(str::parse::<u32>) {
                Some(Ok(n)) if n >= 1 => (TargetMode::Spawn, BrokerKind::Redis, n),
                _ => {
                    return Err(format!(
                        "unknown set-up {other:?}: use scenario, memory, memory-spawn, redis or redis-N"
                    ));
                }
            },
        };
        Ok(Self {
            name: name.to_owned(),
            mode,
            broker,
            nodes,
        })
    }
}

/// One measured run at one load.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PointRun {
    /// The load measured, in the report's unit.
    pub load: f64,
    /// Verdict of the agents' measurements (connects not judged).
    pub status: Status,
    /// The operation whose percentiles are shown (most samples; ties go to
    /// the earlier in [`Operation::ALL`]). The verdict covers every
    /// operation.
    pub operation: Option<Operation>,
    /// Median latency of `operation`, ms (0 without one).
    pub p50_ms: f64,
    /// 99th percentile latency of `operation`, ms (0 without one).
    pub p99_ms: f64,
    /// 99.9th percentile latency of `operation`, ms (0 without one).
    pub p999_ms: f64,
    /// Sends per second during the steady phase (an enqueue of a batch is
    /// one send; the load axis counts its jobs).
    pub offered_per_s: f64,
    /// Deliveries (and queue claims) per second during the steady phase.
    pub delivered_per_s: f64,
    /// Messages lost as a share of messages owed, over every class (0 when
    /// none were owed).
    pub loss_ratio: f64,
    /// Worst status the bus reported about itself during the steady phase.
    pub bus_health: Option<String>,
    /// Whether the bus's view matched the agents' latency verdict.
    pub agrees: bool,
    /// What disagreed, if anything.
    pub disagreement: Option<String>,
    /// Seconds from the agents' p99 first passing the warning threshold to
    /// the bus first reporting itself not healthy.
    pub notice_s: Option<f64>,
    /// CPU of the bus processes the simulator started, in percent of one
    /// core over the run, summed over nodes; `None` when it started none
    /// (an embedded bus).
    pub bus_cpu_percent: Option<f64>,
    /// Peak resident memory of the bus processes the simulator started,
    /// bytes, summed over nodes; `None` when it started none.
    pub bus_peak_rss_bytes: Option<u64>,
    /// Redis's CPU (user + system) in percent of one core over the run;
    /// `None` without Redis or when its `INFO` could not be read.
    pub redis_cpu_percent: Option<f64>,
    /// Redis's `used_memory` at the end of the run, bytes; `None` without
    /// Redis or when its `INFO` could not be read.
    pub redis_memory_bytes: Option<u64>,
    /// Why the simulator could not keep its schedule at this point, when it
    /// could not (its bad verdicts are inconclusive; the search stops).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub simulator_limited: Option<String>,
    /// The integrity check's findings, when the run failed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integrity_failed: Option<String>,
}

/// All repeats at one load.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// The load measured, in the report's unit.
    pub load: f64,
    /// Worst status of the repeats.
    pub status: Status,
    /// Median over repeats.
    pub p50_ms: f64,
    /// Median p99 over repeats, ms.
    pub p99_ms: f64,
    /// Median p99.9 over repeats, ms.
    pub p999_ms: f64,
    /// Median deliveries (and queue claims) per second over repeats.
    pub delivered_per_s: f64,
    /// Spread of p99 over repeats.
    pub p99_min_ms: f64,
    /// Highest p99 of the repeats, ms.
    pub p99_max_ms: f64,
    /// Every repeat, in the order run.
    pub runs: Vec<PointRun>,
    /// Whether the simulator could not keep its schedule in some repeat:
    /// the point says nothing about the bus, and the boundaries leave it
    /// out.
    #[serde(default)]
    pub inconclusive: bool,
}

impl Point {
    /// Summarises the repeats at `load` (worst status, medians, p99 spread).
    pub fn of(load: f64, runs: Vec<PointRun>) -> Self {
        let median = |f: fn(&PointRun) -> f64| {
            let mut v: Vec<f64> = runs.iter().map(f).collect();
            v.sort_by(f64::total_cmp);
            v.get(v.len() / 2).copied().unwrap_or(0.0)
        };
        let p99s = runs.iter().map(|r| r.p99_ms);
        Self {
            load,
            status: runs
                .iter()
                .map(|r| r.status)
                .max()
                .unwrap_or(Status::Critical),
            p50_ms: median(|r| r.p50_ms),
            p99_ms: median(|r| r.p99_ms),
            p999_ms: median(|r| r.p999_ms),
            delivered_per_s: median(|r| r.delivered_per_s),
            p99_min_ms: p99s.clone().fold(f64::INFINITY, f64::min),
            p99_max_ms: p99s.fold(0.0, f64::max),
            inconclusive: runs.iter().any(|r| r.simulator_limited.is_some()),
            runs,
        }
    }
}

/// The result for one set-up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SetupResult {
    /// The set-up measured.
    pub setup: Setup,
    /// In load order.
    pub points: Vec<Point>,
    /// The highest load still healthy, and still below critical.
    pub highest_healthy: Option<f64>,
    /// The highest load judged healthy or warning; `None` when no load tried
    /// was.
    pub highest_below_critical: Option<f64>,
    /// The load where the p99 curve bends.
    pub knee: Option<f64>,
    /// Points where the bus's health disagreed with the agents.
    pub disagreements: usize,
}

impl SetupResult {
    /// Sorts the points by load and finds the boundaries, the knee and the
    /// disagreements.
    pub fn new(setup: Setup, mut points: Vec<Point>) -> Self {
        points.sort_by(|a, b| a.load.total_cmp(&b.load));
        // Only what the simulator could vouch for says where the bus's
        // limits are.
        let conclusive = || points.iter().filter(|p| !p.inconclusive);
        let trail: Vec<(f64, Status)> = conclusive().map(|p| (p.load, p.status)).collect();
        let curve: Vec<(f64, f64)> = conclusive().map(|p| (p.load, p.p99_ms)).collect();
        let knee = knee::knee(&curve).map(|i| curve[i].0);
        Self {
            highest_healthy: search::highest_at_most(&trail, Status::Healthy),
            highest_below_critical: search::highest_at_most(&trail, Status::Warning),
            knee,
            disagreements: conclusive()
                .flat_map(|p| &p.runs)
                .filter(|r| !r.agrees)
                .count(),
            setup,
            points,
        }
    }
}

/// A whole capacity run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CapacityReport {
    /// The scenario's name.
    pub scenario: String,
    /// The scenario's content hash (SHA-256 of its canonical form).
    pub content_hash: String,
    /// What was varied.
    pub vary: Vary,
    /// The unit of every load.
    pub unit: String,
    /// How the loads were chosen.
    pub strategy: Strategy,
    /// Runs per load.
    pub repeats: u32,
    /// Steady-phase length of each run, seconds.
    pub point_duration_s: f64,
    /// The scenario's warning latency threshold for publish delivery, ms.
    pub warning_ms: f64,
    /// The scenario's critical latency threshold for publish delivery, ms.
    pub critical_ms: f64,
    /// One result per set-up, in the order given.
    pub setups: Vec<SetupResult>,
    /// What the search noticed: points it could not run, inconclusive or
    /// failed points, caveats of embedded set-ups.
    pub notes: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quickstart() -> Scenario {
        Scenario::load(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../scenarios/quickstart.toml"
        ))
        .unwrap()
    }

    #[test]
    fn varying_agents_and_rate_scales_in_proportion() {
        let s = quickstart();
        let doubled = Vary::Agents.apply(&s, Vary::Agents.base(&s) * 2.0);
        assert_eq!(doubled.total_agents(), s.total_agents() * 2);
        let rate = Vary::Rate.apply(&s, 1000.0);
        assert!((offered_rate(&rate) - 1000.0).abs() < 1e-6);
        let topics = Vary::Topics.apply(&s, 3.0);
        assert!(
            topics
                .groups
                .iter()
                .filter(|g| has_topics(g.behaviour))
                .all(|g| g.topics.count == 3)
        );
        let payload = Vary::Payload.apply(&s, 4096.0);
        assert!(
            payload
                .groups
                .iter()
                .all(|g| g.payload_bytes.bounds() == (4096, 4096))
        );
    }

    #[test]
    fn batched_producers_offer_jobs_not_enqueues() {
        let s = Scenario::load(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../scenarios/bench/queue-throughput.toml"
        ))
        .unwrap();
        // 10 producers, 60 enqueues/s each, 50 jobs per enqueue.
        assert!((offered_rate(&s) - 30_000.0).abs() < 1e-6);
        let half = Vary::Rate.apply(&s, 15_000.0);
        assert!((offered_rate(&half) - 15_000.0).abs() < 1e-6);
    }

    #[test]
    fn points_connect_first_then_send() {
        let s = steady_state(
            &quickstart(),
            Duration::from_secs(2),
            Duration::from_secs(5),
        );
        assert_eq!(s.schedule_at(Duration::from_millis(500)).1, 0.0);
        assert_eq!(s.schedule_at(Duration::from_secs(3)), (1.0, 1.0));
    }

    #[test]
    fn setups_parse() {
        let s = quickstart();
        assert_eq!(Setup::parse("redis-2", &s).unwrap().nodes, 2);
        assert_eq!(
            Setup::parse("memory", &s).unwrap().broker,
            BrokerKind::Memory
        );
        assert!(Setup::parse("nope", &s).is_err());
    }

    #[test]
    fn results_summarise_repeats_and_boundaries() {
        let run = |load: f64, p99: f64, status| PointRun {
            load,
            status,
            operation: Some(Operation::PublishDelivery),
            p50_ms: p99 / 4.0,
            p99_ms: p99,
            p999_ms: p99 * 2.0,
            offered_per_s: load,
            delivered_per_s: load * 10.0,
            loss_ratio: 0.0,
            bus_health: Some("healthy".into()),
            agrees: status == Status::Healthy,
            disagreement: None,
            notice_s: None,
            bus_cpu_percent: None,
            bus_peak_rss_bytes: None,
            redis_cpu_percent: None,
            redis_memory_bytes: None,
            simulator_limited: None,
            integrity_failed: None,
        };
        let points = vec![
            Point::of(
                100.0,
                vec![
                    run(100.0, 5.0, Status::Healthy),
                    run(100.0, 7.0, Status::Healthy),
                ],
            ),
            Point::of(
                200.0,
                vec![
                    run(200.0, 40.0, Status::Healthy),
                    run(200.0, 60.0, Status::Warning),
                ],
            ),
            Point::of(400.0, vec![run(400.0, 300.0, Status::Critical)]),
        ];
        assert_eq!(points[1].status, Status::Warning, "worst repeat wins");
        assert_eq!((points[0].p99_min_ms, points[0].p99_max_ms), (5.0, 7.0));
        let r = SetupResult::new(Setup::parse("memory", &quickstart()).unwrap(), points);
        assert_eq!(r.highest_healthy, Some(100.0));
        assert_eq!(r.highest_below_critical, Some(200.0));
        assert_eq!(r.disagreements, 2);
    }
}

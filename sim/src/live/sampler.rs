//! Builds a run's [`Snapshot`] once a second: cumulative counts from the
//! agents' shared counters, each operation's latency over the last second
//! (the merged recorders' histograms minus the previous second's), the
//! message classes so far, and each bus node's latest health.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use hdrhistogram::Histogram;
use tokio_util::sync::CancellationToken;

use super::{
    ClassNow, IntervalLatency, LiveBoard, NodeNow, OperationNow, PhaseMark, SecondPoint, Snapshot,
    ThresholdMark,
};
use crate::context::RunContext;
use crate::metrics::{Operation, RunMetrics};
use crate::monitor::LatestHealth;

/// How often a snapshot is taken.
pub const INTERVAL: Duration = Duration::from_secs(1);

/// Most interval points a snapshot carries (an hour at one a second); older
/// ones are dropped, so a long run's page stays light.
const MAX_POINTS: usize = 3600;

/// Takes a run's snapshots and publishes them on a [`LiveBoard`].
#[derive(Debug)]
pub struct Sampler {
    board: LiveBoard,
    ctx: Arc<RunContext>,
    health: Option<LatestHealth>,
    /// Each operation's whole-run histogram at the previous sample.
    previous: BTreeMap<Operation, Histogram<u64>>,
    /// Sends, deliveries and errors at the previous sample, and when.
    last: ([u64; 3], Duration),
    seconds: Vec<SecondPoint>,
}

impl Sampler {
    /// A sampler of `ctx` (and of the nodes' health in `health`) for `board`.
    pub fn new(board: LiveBoard, ctx: Arc<RunContext>, health: Option<LatestHealth>) -> Self {
        Self {
            board,
            ctx,
            health,
            previous: BTreeMap::new(),
            last: ([0; 3], Duration::ZERO),
            seconds: Vec::new(),
        }
    }

    /// Samples every [`INTERVAL`] until `stop`, then once more.
    pub async fn run(mut self, stop: CancellationToken) {
        let mut ticks = tokio::time::interval(INTERVAL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = ticks.tick() => self.sample(),
            }
        }
        self.sample();
    }

    /// Takes one snapshot and publishes it.
    pub fn sample(&mut self) {
        let ctx = self.ctx.clone();
        let elapsed = ctx.clock.start.elapsed();
        let metrics = ctx.hub.merge();
        let c = &ctx.counters;
        let counts = [
            c.sent.load(Ordering::Relaxed),
            c.delivered.load(Ordering::Relaxed),
            c.errors.load(Ordering::Relaxed),
        ];
        let online = c.online.load(Ordering::Relaxed);
        let span = elapsed.saturating_sub(self.last.1).as_secs_f64().max(1e-3);
        let latency = self.interval_latencies(&metrics);
        let point = SecondPoint {
            t: round_ms(elapsed.as_secs_f64()),
            sent_per_s: rate(counts[0] - self.last.0[0].min(counts[0]), span),
            delivered_per_s: rate(counts[1] - self.last.0[1].min(counts[1]), span),
            errors: counts[2].saturating_sub(self.last.0[2]),
            online,
            latency: latency.clone(),
        };
        self.last = (counts, elapsed);
        self.seconds.push(point);
        if self.seconds.len() > MAX_POINTS {
            self.seconds.remove(0);
        }
        let snapshot = Snapshot {
            scenario: ctx.scenario.name.clone(),
            elapsed_s: round_ms(elapsed.as_secs_f64()),
            phase: self.phase(elapsed),
            finished: false,
            agents_online: online,
            agents_planned: ctx.plan.agents.len() as u64,
            sent: counts[0],
            delivered: counts[1],
            errors: counts[2],
            phases: phases(&ctx),
            thresholds: thresholds(&ctx),
            seconds: self.seconds.clone(),
            operations: operations(&metrics, &latency, span),
            classes: classes(&metrics),
            errors_by_kind: metrics.error_kinds().clone(),
            nodes: self.nodes(),
            verdict: None,
            capacity: None,
        };
        self.board.publish(snapshot);
    }

    fn phase(&self, elapsed: Duration) -> String {
        if self.ctx.is_draining() {
            return "drain".to_owned();
        }
        self.ctx
            .scenario
            .phase_at(elapsed)
            .map(|(_, p, _)| p.name.clone())
            .unwrap_or_default()
    }

    /// Each operation's latency since the previous sample.
    fn interval_latencies(&mut self, metrics: &RunMetrics) -> BTreeMap<String, IntervalLatency> {
        let mut out = BTreeMap::new();
        for op in metrics.operations() {
            let Some(now) = metrics.histogram(op) else {
                continue;
            };
            let mut interval = now.clone();
            if let Some(before) = self.previous.get(&op) {
                // The whole-run histogram only grows, so this never fails;
                // if it did, the interval would be the whole run.
                let _ = interval.subtract(before);
            }
            self.previous.insert(op, now.clone());
            if interval.is_empty() {
                continue;
            }
            out.insert(
                op.as_str().to_owned(),
                IntervalLatency {
                    count: interval.len(),
                    p50_ms: ms(interval.value_at_quantile(0.50)),
                    p99_ms: ms(interval.value_at_quantile(0.99)),
                },
            );
        }
        out
    }

    fn nodes(&self) -> Vec<NodeNow> {
        let Some(health) = &self.health else {
            return Vec::new();
        };
        let latest = health.lock().expect("latest health lock");
        latest
            .iter()
            .map(|(node, sample)| NodeNow {
                node: node.clone(),
                status: sample.status.clone(),
                connections: sample.connections,
                checks_ms: sample.checks_ms.clone(),
            })
            .collect()
    }
}

fn operations(
    metrics: &RunMetrics,
    latency: &BTreeMap<String, IntervalLatency>,
    span: f64,
) -> Vec<OperationNow> {
    metrics
        .operations()
        .into_iter()
        .filter_map(|op| {
            let whole = metrics.histogram(op)?;
            let last = latency.get(op.as_str());
            Some(OperationNow {
                operation: op.as_str().to_owned(),
                count: whole.len(),
                per_s: rate(last.map_or(0, |l| l.count), span),
                p50_ms: last.map(|l| l.p50_ms),
                p99_ms: last.map(|l| l.p99_ms),
                run_p99_ms: (!whole.is_empty()).then(|| ms(whole.value_at_quantile(0.99))),
            })
        })
        .collect()
}

fn classes(metrics: &RunMetrics) -> Vec<ClassNow> {
    metrics
        .ledger()
        .classes
        .iter()
        .map(|(class, counts)| ClassNow {
            class: class.as_str().to_owned(),
            delivered: counts.delivered,
            duplicated: counts.duplicated,
            misrouted: counts.misrouted,
            out_of_order: counts.out_of_order,
            lost: None,
        })
        .collect()
}

fn phases(ctx: &RunContext) -> Vec<PhaseMark> {
    let mut start = 0.0;
    ctx.scenario
        .phases
        .iter()
        .map(|p| {
            let end = start + p.duration.get().as_secs_f64();
            let mark = PhaseMark {
                name: p.name.clone(),
                start_s: start,
                end_s: end,
            };
            start = end;
            mark
        })
        .collect()
}

fn thresholds(ctx: &RunContext) -> Vec<ThresholdMark> {
    Operation::ALL
        .into_iter()
        .filter(|op| op.is_judged())
        .map(|op| {
            let t = ctx.scenario.thresholds.for_operation(op);
            ThresholdMark {
                operation: op.as_str().to_owned(),
                percentile: t.percentile,
                warning_ms: t.warning.as_secs_f64() * 1000.0,
                critical_ms: t.critical.as_secs_f64() * 1000.0,
            }
        })
        .collect()
}

/// Microseconds to milliseconds, to the microsecond.
fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

fn rate(count: u64, seconds: f64) -> f64 {
    (count as f64 / seconds * 10.0).round() / 10.0
}

fn round_ms(seconds: f64) -> f64 {
    (seconds * 1000.0).round() / 1000.0
}

//! Each phase's own figures, so a spike can be read beside the baseline it
//! interrupts: the per-second series (sends, deliveries, errors and each
//! delivery operation's latency histogram of each second) merged over the
//! seconds of each phase, and the seconds after the last phase as the
//! drain. A second belongs to the phase that holds its middle.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::metrics::{Operation, SecondBucket};
use crate::scenario::{OperationThreshold, PhaseKind, Scenario};
use crate::verdict::{OperationVerdict, Status, min_samples};

/// The name of the seconds after the last phase.
pub const DRAIN: &str = "drain";

/// One phase's figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseResult {
    /// The phase's name (`drain` for the seconds after the last phase).
    pub name: String,
    /// Its kind (`ramp`, `steady`, `spike`, `ramp_down`; `drain`).
    pub kind: String,
    /// Seconds since the start.
    pub start_s: f64,
    /// Seconds since the start.
    pub end_s: f64,
    /// The whole seconds of the series counted in it (those whose middle
    /// it holds): what its rates are divided by.
    #[serde(default)]
    pub seconds: u32,
    /// Scheduled sends made in it.
    pub sent: u64,
    /// Sends per second over its seconds.
    #[serde(default)]
    pub sent_per_s: f64,
    /// Deliveries received in it.
    pub delivered: u64,
    /// Deliveries per second over its seconds.
    pub delivered_per_s: f64,
    /// Errors counted in it.
    pub errors: u64,
    /// The operation `samples`, `p50_ms` and `judged_ms` are of: the same in
    /// every phase of a report, `publish_delivery` when the run published
    /// (else the first delivery operation it timed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<Operation>,
    /// That operation's latency samples in it.
    pub samples: u64,
    /// That operation's median, ms.
    pub p50_ms: Option<f64>,
    /// That operation's latency at its threshold's percentile, ms.
    pub judged_ms: Option<f64>,
    /// That percentile (e.g. 99).
    pub percentile: f64,
    /// Every delivery operation timed in it, with its verdict.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub latencies: Vec<PhaseLatency>,
    /// The worst of its operations' verdicts, counted as the run's overall
    /// verdict counts them (a verdict on few samples is at most a
    /// warning); `None` when not judged. Not marked inconclusive here:
    /// read it beside the report's integrity.
    pub status: Option<Status>,
    /// Why it was not judged, when it was not: the drain, nothing timed,
    /// or fewer samples than any percentile needs.
    pub not_judged: Option<String>,
}

/// One delivery operation's latency in one phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseLatency {
    /// The operation.
    pub operation: Operation,
    /// Samples in the phase.
    pub samples: u64,
    /// Median, ms.
    pub p50_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Judged against the operation's own limits exactly as the run's
    /// verdict is (the per-second histograms resolve 1%, the run's 0.1%);
    /// `None` in the drain.
    pub verdict: Option<OperationVerdict>,
}

/// One phase's place in the run.
struct Span {
    name: String,
    kind: &'static str,
    start_s: f64,
    end_s: f64,
}

/// The phases of `scenario` (and the drain) over the per-second `series`.
pub fn phase_results(scenario: &Scenario, series: &[SecondBucket]) -> Vec<PhaseResult> {
    let mut spans = Vec::new();
    let mut start_s = 0.0;
    for phase in &scenario.phases {
        let end_s = start_s + phase.duration.get().as_secs_f64();
        spans.push(Span {
            name: phase.name.clone(),
            kind: kind_name(phase.kind),
            start_s,
            end_s,
        });
        start_s = end_s;
    }
    let seconds = series.len() as f64;
    if seconds > start_s {
        spans.push(Span {
            name: DRAIN.to_owned(),
            kind: DRAIN,
            start_s,
            end_s: seconds,
        });
    }
    let headline = headline_operation(series);
    spans
        .into_iter()
        .map(|span| {
            let buckets: Vec<&SecondBucket> = series
                .iter()
                .enumerate()
                .filter(|(i, _)| {
                    let middle = *i as f64 + 0.5;
                    middle >= span.start_s && middle < span.end_s
                })
                .map(|(_, b)| b)
                .collect();
            let reached = span.start_s < seconds;
            figures(span, &buckets, scenario, headline, reached)
        })
        .collect()
}

/// The operation the phases' headline columns show.
fn headline_operation(series: &[SecondBucket]) -> Option<Operation> {
    Operation::PER_SECOND
        .into_iter()
        .find(|op| series.iter().any(|b| b.latency(*op).is_some()))
}

fn kind_name(kind: PhaseKind) -> &'static str {
    match kind {
        PhaseKind::Ramp => "ramp",
        PhaseKind::Steady => "steady",
        PhaseKind::Spike => "spike",
        PhaseKind::RampDown => "ramp_down",
    }
}

fn figures(
    span: Span,
    buckets: &[&SecondBucket],
    scenario: &Scenario,
    headline: Option<Operation>,
    reached: bool,
) -> PhaseResult {
    let drain = span.kind == DRAIN;
    let whole = buckets.len() as u32;
    let sum = |count: fn(&SecondBucket) -> u64| buckets.iter().map(|b| count(b)).sum::<u64>();
    let (sent, delivered, errors) = (sum(|b| b.sent), sum(|b| b.delivered), sum(|b| b.errors));
    let per_s = |count: u64| match whole {
        0 => 0.0,
        n => count as f64 / f64::from(n),
    };
    let histograms: Vec<(Operation, Histogram<u32>)> = Operation::PER_SECOND
        .into_iter()
        .filter_map(|op| Some((op, merged(buckets.iter().filter_map(|b| b.latency(op)))?)))
        .collect();
    let latencies: Vec<PhaseLatency> = histograms
        .iter()
        .map(|(op, histogram)| PhaseLatency {
            operation: *op,
            samples: histogram.len(),
            p50_ms: ms(histogram.value_at_quantile(0.5)),
            p99_ms: ms(histogram.value_at_quantile(0.99)),
            verdict: (!drain)
                .then(|| judge(*op, histogram, &scenario.thresholds.for_operation(*op))),
        })
        .collect();
    let (status, not_judged) = match (reached, whole) {
        (false, _) => (
            None,
            Some("not reached: the run ended before it".to_owned()),
        ),
        (true, 0) => (
            None,
            Some("shorter than a second: its time is counted in the phase beside it".to_owned()),
        ),
        _ => phase_status(drain, &latencies),
    };
    let percentile = headline.map_or(99.0, |op| scenario.thresholds.for_operation(op).percentile);
    let shown = histograms
        .iter()
        .find(|(op, _)| Some(*op) == headline)
        .map(|(_, h)| h);
    PhaseResult {
        name: span.name,
        kind: span.kind.to_owned(),
        start_s: span.start_s,
        end_s: span.end_s,
        seconds: whole,
        sent,
        sent_per_s: per_s(sent),
        delivered,
        delivered_per_s: per_s(delivered),
        errors,
        operation: headline,
        samples: shown.map_or(0, Histogram::len),
        p50_ms: shown.map(|h| ms(h.value_at_quantile(0.5))),
        judged_ms: shown.map(|h| ms(h.value_at_quantile(percentile / 100.0))),
        percentile,
        latencies,
        status,
        not_judged,
    }
}

/// The histograms of one operation over a phase's seconds, merged.
fn merged<'a>(histograms: impl Iterator<Item = &'a Histogram<u32>>) -> Option<Histogram<u32>> {
    let mut all: Option<Histogram<u32>> = None;
    for h in histograms.filter(|h| !h.is_empty()) {
        match &mut all {
            // Same bounds every second: adding never fails.
            Some(all) => {
                let _ = all.add(h);
            }
            None => all = Some(h.clone()),
        }
    }
    all
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// The run's rule for one operation (`verdict::judge`): the latency at the
/// threshold's percentile above `critical` is critical, above `warning`
/// warning; a value within the histogram's resolution of a limit counts
/// as at the limit; fewer samples than the percentile needs is marked.
fn judge(
    op: Operation,
    histogram: &Histogram<u32>,
    limits: &OperationThreshold,
) -> OperationVerdict {
    let value_us = histogram.value_at_quantile(limits.percentile / 100.0);
    let lowest_us = histogram.lowest_equivalent(value_us);
    let above = |limit: std::time::Duration| u128::from(lowest_us) > limit.as_micros();
    let status = if above(limits.critical) {
        Status::Critical
    } else if above(limits.warning) {
        Status::Warning
    } else {
        Status::Healthy
    };
    OperationVerdict {
        operation: op,
        samples: histogram.len(),
        percentile: limits.percentile,
        value_ms: ms(value_us),
        warning_ms: limits.warning.as_secs_f64() * 1000.0,
        critical_ms: limits.critical.as_secs_f64() * 1000.0,
        status,
        few_samples: histogram.len() < min_samples(limits.percentile),
        inconclusive: false,
    }
}

/// A phase's verdict from its operations', as the run's overall verdict
/// is made from the run's (`Verdicts::recompute_overall`): the worst, a
/// verdict on few samples counting at most as a warning. A phase whose
/// every figure stands on too few samples says so instead.
fn phase_status(drain: bool, latencies: &[PhaseLatency]) -> (Option<Status>, Option<String>) {
    if drain {
        return (None, Some("the drain: late deliveries only".to_owned()));
    }
    let verdicts: Vec<&OperationVerdict> = latencies
        .iter()
        .filter_map(|l| l.verdict.as_ref())
        .collect();
    if verdicts.is_empty() {
        return (None, Some("no delivery was timed in it".to_owned()));
    }
    if verdicts.iter().all(|v| v.few_samples) {
        let most = verdicts
            .iter()
            .max_by_key(|v| v.samples)
            .expect("not empty");
        let why = format!(
            "few samples: {} for a p{}, at least {} needed",
            most.samples,
            most.percentile,
            min_samples(most.percentile)
        );
        return (None, Some(why));
    }
    let worst = verdicts
        .iter()
        .map(|v| match v.few_samples {
            true => v.status.min(Status::Warning),
            false => v.status,
        })
        .max();
    (worst, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCENARIO: &str = r#"name = "t"
[[phases]]
name = "base"
kind = "steady"
duration = "2s"
[[phases]]
name = "burst"
kind = "spike"
duration = "1s"
[[groups]]
name = "p"
count = 1
behaviour = "publisher"
rate = 1.0
[thresholds]
warning = "50ms"
critical = "200ms"
[thresholds.operations.queue_wait]
warning = "2s"
critical = "5s"
"#;

    fn scenario() -> Scenario {
        Scenario::parse(SCENARIO, "t.toml").unwrap()
    }

    /// One second: `sent` sends, `delivered` deliveries each timed at
    /// `latency_ms` as publish→delivery.
    fn second(sent: u64, delivered: u64, latency_ms: u64) -> SecondBucket {
        let mut b = SecondBucket::default();
        (b.sent, b.delivered) = (sent, delivered);
        for _ in 0..delivered {
            b.record_latency(Operation::PublishDelivery, latency_ms * 1000);
        }
        b
    }

    #[test]
    fn each_phase_gets_its_seconds_and_the_drain_is_not_judged() {
        let series = [
            second(10, 200, 2),
            second(10, 200, 2),
            second(50, 1000, 80),
            second(0, 5, 300),
        ];
        let phases = phase_results(&scenario(), &series);
        let names: Vec<&str> = phases.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["base", "burst", "drain"]);
        let (base, burst, drain) = (&phases[0], &phases[1], &phases[2]);
        assert_eq!((base.start_s, base.end_s, base.seconds), (0.0, 2.0, 2));
        assert_eq!((base.sent, base.delivered, base.samples), (20, 400, 400));
        // Rates over the phase's own seconds: 400 in 2 s, 20 sends in 2 s.
        assert_eq!((base.delivered_per_s, base.sent_per_s), (200.0, 10.0));
        assert_eq!(base.operation, Some(Operation::PublishDelivery));
        assert_eq!(base.status, Some(Status::Healthy));
        assert_eq!(burst.kind, "spike");
        assert_eq!((burst.delivered_per_s, burst.sent_per_s), (1000.0, 50.0));
        assert_eq!(burst.status, Some(Status::Warning), "{burst:?}");
        assert!((burst.judged_ms.unwrap() - 80.0).abs() < 1.0);
        assert!((burst.p50_ms.unwrap() - 80.0).abs() < 1.0);
        assert_eq!((drain.start_s, drain.end_s), (3.0, 4.0));
        assert_eq!(drain.status, None);
        assert!(drain.not_judged.as_deref().unwrap().contains("drain"));
        assert!(drain.latencies.iter().all(|l| l.verdict.is_none()));
    }

    #[test]
    fn a_phase_on_too_few_samples_says_so() {
        let thin = phase_results(&scenario(), &[second(1, 5, 2), second(1, 5, 2)]);
        assert_eq!(thin[0].status, None);
        assert_eq!(
            thin[0].not_judged.as_deref(),
            Some("few samples: 10 for a p99, at least 100 needed")
        );
        // A phase with nothing timed is not judged either.
        let quiet = phase_results(&scenario(), &[second(3, 0, 0), second(3, 0, 0)]);
        assert_eq!(quiet[0].status, None);
        assert!(
            quiet[0]
                .not_judged
                .as_deref()
                .unwrap()
                .contains("no delivery")
        );
        assert_eq!((quiet[0].p50_ms, quiet[0].judged_ms), (None, None));
        // A run interrupted in its first phase never reached the second.
        let cut = phase_results(&scenario(), &[second(1, 200, 2)]);
        assert_eq!(cut.len(), 2, "no drain after an interrupted run");
        assert_eq!(cut[1].status, None);
        assert!(
            cut[1]
                .not_judged
                .as_deref()
                .unwrap()
                .contains("not reached")
        );
    }

    #[test]
    fn each_operation_is_judged_against_its_own_limits() {
        // The base phase: healthy publishes, and queue waits of 1 s that
        // publish_delivery's 50 ms would call critical but queue_wait's own
        // 2 s warning does not.
        let mut base = second(10, 200, 2);
        for _ in 0..150 {
            base.record_latency(Operation::QueueWait, 1_000_000);
        }
        // The burst: healthy publishes, and 20 direct round trips at 300 ms,
        // too few for a p99: critical on their own, a warning for the phase.
        let mut burst = second(10, 200, 2);
        for _ in 0..20 {
            burst.record_latency(Operation::DirectRtt, 300_000);
        }
        let phases = phase_results(&scenario(), &[base.clone(), base, burst]);
        let ops: Vec<Operation> = phases[0].latencies.iter().map(|l| l.operation).collect();
        assert_eq!(ops, [Operation::PublishDelivery, Operation::QueueWait]);
        let queue = phases[0].latencies[1].verdict.as_ref().unwrap();
        assert_eq!((queue.status, queue.warning_ms), (Status::Healthy, 2000.0));
        assert_eq!(queue.samples, 300);
        assert_eq!(phases[0].status, Some(Status::Healthy));
        let direct = phases[1].latencies[1].verdict.as_ref().unwrap();
        assert_eq!(direct.operation, Operation::DirectRtt);
        assert_eq!(
            (direct.status, direct.few_samples),
            (Status::Critical, true)
        );
        assert_eq!(phases[1].status, Some(Status::Warning));
        // The headline columns stay on publish→delivery in every phase.
        assert!(
            phases
                .iter()
                .all(|p| p.operation == Some(Operation::PublishDelivery))
        );
    }

    #[test]
    fn a_value_at_a_limit_is_on_the_good_side() {
        // 50 ms exactly, the warning limit: healthy, as in the run's verdict.
        let phases = phase_results(&scenario(), &[second(1, 200, 50), second(1, 200, 50)]);
        assert_eq!(phases[0].status, Some(Status::Healthy), "{:?}", phases[0]);
    }
}

//! Each phase's own figures, so a spike can be read beside the baseline it
//! interrupts: the per-second series (sends, deliveries, errors and the
//! delivery-latency histogram of each second) merged over the seconds of
//! each phase, and the seconds after the last phase as the drain. A
//! second belongs to the phase that holds its middle.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::metrics::{Operation, SecondBucket};
use crate::scenario::Scenario;
use crate::verdict::{Status, min_samples};

/// The name of the seconds after the last phase.
pub const DRAIN: &str = "drain";

/// One phase's figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseResult {
    /// The phase's name (`drain` for the seconds after the last phase).
    pub name: String,
    /// Its kind (`ramp`, `steady`, `spike`; `drain`).
    pub kind: String,
    /// Seconds since the start.
    pub start_s: f64,
    /// Seconds since the start.
    pub end_s: f64,
    /// Scheduled sends made in it.
    pub sent: u64,
    /// Deliveries received in it.
    pub delivered: u64,
    /// Deliveries per second over its whole seconds.
    pub delivered_per_s: f64,
    /// Errors counted in it.
    pub errors: u64,
    /// Delivery latency samples in it.
    pub samples: u64,
    /// Delivery latency median, ms.
    pub p50_ms: Option<f64>,
    /// Delivery latency at the publish→delivery threshold's percentile, ms.
    pub judged_ms: Option<f64>,
    /// That percentile (e.g. 99).
    pub percentile: f64,
    /// Judged against publish_delivery's limits; `None` when not judged (too
    /// few samples, or the drain).
    pub status: Option<Status>,
    /// Why it was not judged, when it was not.
    pub not_judged: Option<String>,
}

/// The phases of `scenario` (and the drain) over the per-second `series`.
pub fn phase_results(scenario: &Scenario, series: &[SecondBucket]) -> Vec<PhaseResult> {
    let threshold = scenario
        .thresholds
        .for_operation(Operation::PublishDelivery);
    let mut spans: Vec<(String, String, f64, f64)> = Vec::new();
    let mut start = 0.0;
    for phase in &scenario.phases {
        let end = start + phase.duration.get().as_secs_f64();
        spans.push((
            phase.name.clone(),
            kind_name(phase.kind).to_owned(),
            start,
            end,
        ));
        start = end;
    }
    let seconds = series.len() as f64;
    if seconds > start {
        spans.push((DRAIN.to_owned(), DRAIN.to_owned(), start, seconds));
    }
    spans
        .into_iter()
        .map(|(name, kind, start_s, end_s)| {
            let buckets = series
                .iter()
                .enumerate()
                .filter(|(i, _)| {
                    let middle = *i as f64 + 0.5;
                    middle >= start_s && middle < end_s
                })
                .map(|(_, b)| b);
            let drain = name == DRAIN;
            figures(name, kind, (start_s, end_s), buckets, &threshold, drain)
        })
        .collect()
}

fn kind_name(kind: crate::scenario::PhaseKind) -> &'static str {
    use crate::scenario::PhaseKind;
    match kind {
        PhaseKind::Ramp => "ramp",
        PhaseKind::Steady => "steady",
        PhaseKind::Spike => "spike",
        PhaseKind::RampDown => "ramp_down",
    }
}

fn figures<'a>(
    name: String,
    kind: String,
    (start_s, end_s): (f64, f64),
    buckets: impl Iterator<Item = &'a SecondBucket>,
    threshold: &crate::scenario::OperationThreshold,
    drain: bool,
) -> PhaseResult {
    let (mut sent, mut delivered, mut errors, mut whole) = (0, 0, 0, 0u32);
    let mut latency: Option<Histogram<u32>> = None;
    for b in buckets {
        whole += 1;
        sent += b.sent;
        delivered += b.delivered;
        errors += b.errors;
        if let Some(h) = &b.latency {
            match &mut latency {
                Some(all) => {
                    // Same bounds every second: adding never fails.
                    let _ = all.add(h);
                }
                None => latency = Some(h.clone()),
            }
        }
    }
    let samples = latency.as_ref().map_or(0, Histogram::len);
    let quantile = |q: f64| {
        latency
            .as_ref()
            .filter(|h| !h.is_empty())
            .map(|h| h.value_at_quantile(q) as f64 / 1000.0)
    };
    let percentile = threshold.percentile;
    let judged_ms = quantile(percentile / 100.0);
    let needed = min_samples(percentile);
    let (status, not_judged) = if drain {
        (None, Some("the drain: late deliveries only".to_owned()))
    } else if samples < needed {
        let why = format!("few samples: {samples} for a p{percentile}, at least {needed} needed");
        (None, Some(why))
    } else {
        let value = judged_ms.unwrap_or(0.0);
        let status = if value > threshold.critical.as_secs_f64() * 1000.0 {
            Status::Critical
        } else if value > threshold.warning.as_secs_f64() * 1000.0 {
            Status::Warning
        } else {
            Status::Healthy
        };
        (Some(status), None)
    };
    PhaseResult {
        name,
        kind,
        start_s,
        end_s,
        sent,
        delivered,
        delivered_per_s: if whole == 0 {
            0.0
        } else {
            delivered as f64 / f64::from(whole)
        },
        errors,
        samples,
        p50_ms: quantile(0.5),
        judged_ms,
        percentile,
        status,
        not_judged,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn second(sent: u64, delivered: u64, latency_ms: u64) -> SecondBucket {
        let mut b = SecondBucket {
            sent,
            delivered,
            ..SecondBucket::default()
        };
        for _ in 0..delivered {
            b.record_latency(latency_ms * 1000);
        }
        b
    }

    #[test]
    fn each_phase_gets_its_seconds_and_the_drain_is_not_judged() {
        let scenario = Scenario::parse(
            r#"name = "t"
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
"#,
            "t.toml",
        )
        .unwrap();
        let series = [
            second(10, 200, 2),
            second(10, 200, 2),
            second(50, 1000, 80),
            second(0, 5, 300),
        ];
        let phases = phase_results(&scenario, &series);
        let names: Vec<&str> = phases.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["base", "burst", "drain"]);
        let (base, burst, drain) = (&phases[0], &phases[1], &phases[2]);
        assert_eq!((base.sent, base.delivered, base.samples), (20, 400, 400));
        assert_eq!(base.delivered_per_s, 200.0);
        assert_eq!(base.status, Some(Status::Healthy));
        assert_eq!(burst.kind, "spike");
        assert_eq!(burst.status, Some(Status::Warning), "{burst:?}");
        assert!((burst.judged_ms.unwrap() - 80.0).abs() < 1.0);
        assert_eq!(drain.status, None);
        assert!(drain.not_judged.as_deref().unwrap().contains("drain"));
        // A phase with fewer samples than a p99 needs is not judged.
        let thin = phase_results(&scenario, &[second(1, 5, 2), second(1, 5, 2)]);
        assert_eq!(thin[0].status, None);
        assert!(
            thin[0]
                .not_judged
                .as_deref()
                .unwrap()
                .contains("few samples")
        );
    }
}

//! The comparison rules, on baselines built from the report fixture.

use super::*;
use crate::ledger::MessageClass;
use crate::metrics::Operation;
use crate::report::fixture;
use crate::verdict::Status;

fn baseline() -> Baseline {
    Baseline::of(&fixture::sample().0)
}

fn row<'a>(c: &'a Comparison, metric: &str) -> &'a Row {
    c.rows
        .iter()
        .find(|r| r.metric == metric)
        .unwrap_or_else(|| panic!("no row {metric} in {c:#?}"))
}

fn regressions(c: &Comparison) -> Vec<&str> {
    c.regressions().map(|r| r.metric.as_str()).collect()
}

#[test]
fn the_same_figures_pass() {
    let b = baseline();
    let c = compare(&b, &b, Tolerance::default()).unwrap();
    assert!(c.is_clean(), "{}", render_table(&c));
    assert!(c.rows.iter().all(|r| r.status == RowStatus::Ok));
    for metric in [
        "agents.connected",
        "messages.pubsub.lost",
        "queue.acked",
        "verdict.publish_delivery",
        "verdict.overall",
        "latency.publish_delivery.p99_ms",
        "throughput_per_s",
    ] {
        row(&c, metric);
    }
}

#[test]
fn any_count_change_is_a_regression_either_way() {
    let b = baseline();
    for delta in [1i64, -1] {
        let mut current = b.clone();
        let lost = &mut current
            .snapshot
            .messages
            .get_mut(&MessageClass::Pubsub)
            .unwrap()
            .lost;
        *lost = lost.checked_add_signed(delta).unwrap();
        current.snapshot.queue.dead_lettered += 1;
        let c = compare(&b, &current, Tolerance::default()).unwrap();
        assert_eq!(
            regressions(&c),
            ["messages.pubsub.lost", "queue.dead_lettered"]
        );
        let r = row(&c, "messages.pubsub.lost");
        assert_eq!(r.allowed, "= 10");
    }
}

#[test]
fn a_class_only_one_side_counted_compares_with_zero() {
    let b = baseline();
    let mut current = b.clone();
    let extra = current.snapshot.messages[&MessageClass::Pubsub];
    current
        .snapshot
        .messages
        .insert(MessageClass::Direct, extra);
    let c = compare(&b, &current, Tolerance::default()).unwrap();
    let r = row(&c, "messages.direct.expected");
    assert_eq!(
        (r.baseline.as_str(), r.status),
        ("0", RowStatus::Regression)
    );
}

#[test]
fn a_changed_verdict_is_a_regression() {
    let b = baseline();
    let mut current = b.clone();
    let op = current
        .snapshot
        .operations
        .get_mut(&Operation::Connect)
        .unwrap();
    op.verdict = Status::Warning;
    let c = compare(&b, &current, Tolerance::default()).unwrap();
    assert_eq!(regressions(&c), ["verdict.connect"]);
    let r = row(&c, "verdict.connect");
    assert_eq!(
        (r.baseline.as_str(), r.current.as_str()),
        ("healthy", "warning")
    );
}

#[test]
fn latency_may_grow_within_the_tolerance_and_the_floor() {
    let mut b = baseline();
    b.latency_ms.insert(
        Operation::PublishDelivery,
        Percentiles {
            p50: 10.0,
            p99: 0.2,
        },
    );
    let mut current = b.clone();
    let tolerance = Tolerance::default();
    // p50 10 ms may reach 15 ms; p99 0.2 ms may reach 1.2 ms (the floor).
    current.latency_ms.insert(
        Operation::PublishDelivery,
        Percentiles {
            p50: 15.0,
            p99: 1.2,
        },
    );
    let c = compare(&b, &current, tolerance).unwrap();
    assert!(c.is_clean(), "{}", render_table(&c));
    assert_eq!(
        row(&c, "latency.publish_delivery.p50_ms").allowed,
        "<= 15.000"
    );

    current.latency_ms.insert(
        Operation::PublishDelivery,
        Percentiles {
            p50: 15.1,
            p99: 1.3,
        },
    );
    let c = compare(&b, &current, tolerance).unwrap();
    assert_eq!(
        regressions(&c),
        [
            "latency.publish_delivery.p50_ms",
            "latency.publish_delivery.p99_ms"
        ]
    );
    let wider = Tolerance {
        ratio: 1.0,
        latency_floor_ms: 2.0,
    };
    assert!(compare(&b, &current, wider).unwrap().is_clean());
}

#[test]
fn faster_is_fine_and_a_missing_operation_regresses() {
    let b = baseline();
    let mut current = b.clone();
    for p in current.latency_ms.values_mut() {
        p.p50 /= 10.0;
        p.p99 /= 10.0;
    }
    current.throughput_per_s *= 3.0;
    assert!(
        compare(&b, &current, Tolerance::default())
            .unwrap()
            .is_clean()
    );

    current.latency_ms.remove(&Operation::QueueWait);
    current
        .latency_ms
        .insert(Operation::HttpPublish, Percentiles { p50: 1.0, p99: 2.0 });
    let c = compare(&b, &current, Tolerance::default()).unwrap();
    assert_eq!(
        regressions(&c),
        ["latency.queue_wait.p50_ms", "latency.queue_wait.p99_ms"]
    );
    assert_eq!(row(&c, "latency.queue_wait.p99_ms").current, "-");
    assert_eq!(
        row(&c, "latency.http_publish.p50_ms").status,
        RowStatus::New
    );
}

#[test]
fn throughput_may_fall_by_the_tolerance_only() {
    let mut b = baseline();
    b.throughput_per_s = 100.0;
    let mut current = b.clone();
    current.throughput_per_s = 50.0;
    assert!(
        compare(&b, &current, Tolerance::default())
            .unwrap()
            .is_clean()
    );
    current.throughput_per_s = 49.9;
    let c = compare(&b, &current, Tolerance::default()).unwrap();
    assert_eq!(regressions(&c), ["throughput_per_s"]);
    assert_eq!(row(&c, "throughput_per_s").allowed, ">= 50.0");
}

#[test]
fn another_scenario_is_refused_with_both_names() {
    let b = baseline();
    let mut current = b.clone();
    current.snapshot.scenario = "other".to_owned();
    current.snapshot.content_hash = "0123456789abcdef0123".to_owned();
    let err = compare(&b, &current, Tolerance::default()).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, CheckError::ScenarioMismatch { .. }));
    assert!(text.contains("fixture ("), "{text}");
    assert!(text.contains("other (0123456789ab)"), "{text}");
    assert!(text.contains("re-record"), "{text}");
}

#[test]
fn bad_tolerances_are_refused() {
    let b = baseline();
    for ratio in [-0.1, f64::NAN, f64::INFINITY] {
        let t = Tolerance {
            ratio,
            ..Tolerance::default()
        };
        assert!(matches!(
            compare(&b, &b, t),
            Err(CheckError::BadTolerance(_))
        ));
    }
}

#[test]
fn the_table_has_a_row_per_metric_and_a_summary() {
    let b = baseline();
    let mut current = b.clone();
    current.snapshot.agents.connected -= 1;
    let c = compare(&b, &current, Tolerance::default()).unwrap();
    let table = render_table(&c);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), c.rows.len() + 2, "{table}");
    for column in ["metric", "baseline", "current", "allowed", "status"] {
        assert!(lines[0].contains(column), "{table}");
    }
    let connected = lines
        .iter()
        .find(|l| l.starts_with("agents.connected "))
        .unwrap();
    assert!(
        connected.contains("12") && connected.contains("11"),
        "{table}"
    );
    assert!(connected.ends_with("REGRESSION"), "{table}");
    assert!(lines.last().unwrap().ends_with("1 REGRESSION"), "{table}");
}

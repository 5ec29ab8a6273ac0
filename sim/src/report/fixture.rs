//! A synthetic run (report and metrics) for the report tests.

use std::time::{Duration, SystemTime};

use super::model::{HealthSample, NodeFigures, Report, RunInfo, ScenarioInfo, SimulatorSelf};
use crate::ledger::MessageClass;
use crate::metrics::{Operation, Recorder, RunMetrics};
use crate::scenario::Scenario;
use crate::verdict::judge;

const SCENARIO: &str = r#"
name = "fixture"
description = "A synthetic run for report tests."
[[phases]]
name = "all"
kind = "steady"
duration = "3s"
[[groups]]
name = "subs"
count = 10
behaviour = "subscriber"
[[groups]]
name = "pubs"
count = 2
behaviour = "publisher"
rate = 5.0
"#;

/// Three seconds of traffic with a pub/sub loss (so the verdict is
/// critical), queue counts, errors, a send lag and a degraded bus.
pub(crate) fn sample() -> (Report, RunMetrics) {
    let scenario = Scenario::parse(SCENARIO, "fixture.toml").unwrap();
    let mut r = Recorder::new();
    for i in 0..200u64 {
        let at = Duration::from_millis(i * 15);
        r.record(Operation::PublishDelivery, 800 + i * 40, at);
        r.count_sent(at);
        r.count_delivered(at);
    }
    for i in 0..12u64 {
        r.record(Operation::Connect, 2_000 + i * 100, Duration::ZERO);
        r.record(Operation::QueueWait, 5_000, Duration::from_secs(1));
    }
    r.record(Operation::SendLag, 300, Duration::from_secs(2));
    r.count_error(Duration::from_secs(2), "timeout");
    let ledger = r.ledger_mut();
    *ledger.class_mut(MessageClass::Pubsub) = crate::ledger::ClassLedger {
        expected: 1000,
        delivered: 990,
        ..Default::default()
    };
    ledger.queue.enqueued = 12;
    ledger.queue.claimed = 12;
    ledger.queue.acked = 11;
    ledger.queue.crashed = 1;
    ledger.connections.target_connections = 12;
    ledger.connections.connected = 12;
    let metrics = RunMetrics::from(r);
    let verdicts = judge(&metrics, &scenario.thresholds);
    let run = RunInfo::new(
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_774_500),
        Duration::from_secs(3),
        "embedded",
        "memory",
        1,
    );
    let info = ScenarioInfo::from_scenario(&scenario, "fixture.toml");
    let mut report = Report::new(info, run, &metrics, verdicts);
    report.phases = super::phase_results(&scenario, metrics.recorder().series());
    report.health_timeline = ["healthy", "healthy", "degraded", "healthy"]
        .iter()
        .enumerate()
        .map(|(i, status)| HealthSample {
            at_s: i as f64,
            status: (*status).to_owned(),
            checks_ms: [("ping".to_owned(), 0.4)].into_iter().collect(),
            node: None,
            connections: Some(12),
        })
        .collect();
    report.simulator = SimulatorSelf::new(1.5, 64 << 20, 990, 12);
    report.nodes = vec![NodeFigures {
        node: "127.0.0.1:8081".to_owned(),
        agents: 12,
        connects: 12,
        peak_connections: Some(12),
        cpu_percent: Some(12.5),
        peak_rss_bytes: Some(24 << 20),
    }];
    report.notes.push("a fixture note".to_owned());
    report.notes.push("<fixture> note".to_owned());
    (report, metrics)
}

//! Throughput: messages per second of each operation and each message class, all over one stated window.

use serde::{Deserialize, Serialize};

use super::model::Report;
use crate::ledger::MessageClass;
use crate::metrics::Operation;

/// The report's rates. Derived from the counts the report already holds,
/// never stored apart from them: `report.json` writes it beside the report
/// (as `throughput`) so a reader need not divide.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Throughput {
    /// What the rates are over, in words, as the reports print it.
    pub window: String,
    /// Its length, seconds: every rate is a whole-run count divided by it.
    pub window_s: f64,
    /// Scheduled sends per second.
    pub sent_per_s: f64,
    /// Deliveries per second, every recipient counted.
    pub delivered_per_s: f64,
    /// Each operation with samples, in report order.
    pub operations: Vec<OperationRate>,
    /// Each message class with deliveries owed or made, in report order.
    pub classes: Vec<ClassRate>,
}

/// One operation's rate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OperationRate {
    /// The operation.
    pub operation: Operation,
    /// Its samples over the whole run.
    pub count: u64,
    /// `count` over the window.
    pub per_s: f64,
}

/// One message class's rate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ClassRate {
    /// The class.
    pub class: MessageClass,
    /// Its deliveries over the whole run.
    pub delivered: u64,
    /// `delivered` over the window.
    pub per_s: f64,
}

impl Throughput {
    /// The rates of `report`, over [`Report::window_s`].
    pub fn of(report: &Report) -> Self {
        let window_s = report.window_s();
        let rate = |count: u64| count as f64 / window_s;
        let sent: u64 = report.series.iter().map(|r| r.sent).sum();
        let delivered: u64 = report.series.iter().map(|r| r.delivered).sum();
        let operations = report
            .latencies
            .iter()
            .map(|l| OperationRate {
                operation: l.operation,
                count: l.summary.count,
                per_s: rate(l.summary.count),
            })
            .collect();
        let classes = MessageClass::ALL
            .into_iter()
            .map(|class| (class, report.ledger.class(class)))
            .filter(|(_, counts)| !counts.is_empty())
            .map(|(class, counts)| ClassRate {
                class,
                delivered: counts.delivered,
                per_s: rate(counts.delivered),
            })
            .collect();
        Self {
            window: window_words(report),
            window_s,
            sent_per_s: rate(sent),
            delivered_per_s: rate(delivered),
            operations,
            classes,
        }
    }
}

/// The window in words.
fn window_words(report: &Report) -> String {
    let window = report.window_s();
    if report.phases.iter().any(|p| p.name != super::DRAIN) {
        format!(
            "the phases' {window:.1} s (0.0–{window:.1} s): the drain's seconds left out, its late deliveries counted"
        )
    } else {
        format!("the whole run, {window:.1} s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixture;

    #[test]
    fn rates_are_counts_over_the_phases() {
        let (report, _) = fixture::sample();
        let t = Throughput::of(&report);
        // The fixture's one phase lasts 3 s: 200 publishes timed, 990
        // pub/sub deliveries, 200 sends and 200 deliveries in the series.
        assert_eq!(t.window_s, 3.0);
        assert!(t.window.starts_with("the phases' 3.0 s"), "{}", t.window);
        let publish = t
            .operations
            .iter()
            .find(|o| o.operation == Operation::PublishDelivery)
            .unwrap();
        assert_eq!(publish.count, 200);
        assert!((publish.per_s - 200.0 / 3.0).abs() < 1e-9);
        assert_eq!(t.classes.len(), 1);
        assert_eq!(
            (t.classes[0].class, t.classes[0].delivered),
            (MessageClass::Pubsub, 990)
        );
        assert!((t.classes[0].per_s - 330.0).abs() < 1e-9);
        assert!((t.sent_per_s - 200.0 / 3.0).abs() < 1e-9);
        assert!((t.delivered_per_s - 200.0 / 3.0).abs() < 1e-9);
    }

    #[test]
    fn without_phases_the_window_is_the_whole_run() {
        let (mut report, _) = fixture::sample();
        report.phases.clear();
        report.run.duration_s = 4.0;
        let t = Throughput::of(&report);
        assert_eq!(
            (t.window.as_str(), t.window_s),
            ("the whole run, 4.0 s", 4.0)
        );
        assert!((t.classes[0].per_s - 990.0 / 4.0).abs() < 1e-9);
    }
}

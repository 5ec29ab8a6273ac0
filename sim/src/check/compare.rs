//! The comparison rules of `sim check` and the diff table they print.

use std::fmt::Write;

use serde::Serialize;

use super::{Baseline, CheckError};
use crate::report::Snapshot;
use crate::verdict::Status;

/// How much the noisy figures may move before they count as a regression.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tolerance {
    /// Latency percentiles may grow to `baseline × (1 + ratio)`, throughput
    /// may fall to `baseline × (1 − ratio)`.
    pub ratio: f64,
    /// Latency may always grow by this much (ms), so sub-millisecond
    /// figures do not flag on scheduler noise.
    pub latency_floor_ms: f64,
}

impl Default for Tolerance {
    /// 50 %, 1 ms.
    fn default() -> Self {
        Self {
            ratio: 0.5,
            latency_floor_ms: 1.0,
        }
    }
}

impl Tolerance {
    /// Refuses negative or non-finite settings.
    pub fn validate(&self) -> Result<(), CheckError> {
        let ok = |x: f64| x.is_finite() && x >= 0.0;
        if ok(self.ratio) && ok(self.latency_floor_ms) {
            Ok(())
        } else {
            Err(CheckError::BadTolerance(format!(
                "tolerance {} and latency floor {} ms must be finite and >= 0",
                self.ratio, self.latency_floor_ms
            )))
        }
    }

    /// The largest latency that is not a regression.
    pub fn latency_limit(&self, baseline_ms: f64) -> f64 {
        (baseline_ms * (1.0 + self.ratio)).max(baseline_ms + self.latency_floor_ms)
    }

    /// The smallest throughput that is not a regression.
    pub fn throughput_limit(&self, baseline: f64) -> f64 {
        (baseline * (1.0 - self.ratio)).max(0.0)
    }
}

/// The outcome of one compared metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RowStatus {
    /// Within what is allowed.
    Ok,
    /// Outside it.
    Regression,
    /// Only in the report (not compared).
    New,
}

impl RowStatus {
    /// The word printed in the table.
    pub const fn as_str(self) -> &'static str {
        match self {
            RowStatus::Ok => "ok",
            RowStatus::Regression => "REGRESSION",
            RowStatus::New => "new",
        }
    }
}

/// One line of the diff table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Row {
    /// Dotted name, e.g. `messages.pubsub.lost`, `latency.direct_rtt.p99_ms`.
    pub metric: String,
    /// The baseline's value ("-" when absent).
    pub baseline: String,
    /// The report's value ("-" when absent).
    pub current: String,
    /// What the report may show: `= N`, `<= X`, `>= X`.
    pub allowed: String,
    /// The outcome.
    pub status: RowStatus,
}

/// Every compared metric, in table order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Comparison {
    /// Scenario name.
    pub scenario: String,
    /// One row per metric.
    pub rows: Vec<Row>,
}

impl Comparison {
    /// The rows that regressed.
    pub fn regressions(&self) -> impl Iterator<Item = &Row> {
        self.rows
            .iter()
            .filter(|r| r.status == RowStatus::Regression)
    }

    /// Whether nothing regressed.
    pub fn is_clean(&self) -> bool {
        self.regressions().next().is_none()
    }
}

/// Compares `current` (usually [`Baseline::of`] a fresh report) with
/// `baseline`: counts and verdicts exactly, latency percentiles and
/// throughput within `tolerance`. Latency bands are not compared: the raw
/// percentiles with a tolerance say more. Refuses two different scenarios.
pub fn compare(
    baseline: &Baseline,
    current: &Baseline,
    tolerance: Tolerance,
) -> Result<Comparison, CheckError> {
    tolerance.validate()?;
    let (b, c) = (&baseline.snapshot, &current.snapshot);
    if b.content_hash != c.content_hash {
        return Err(CheckError::ScenarioMismatch {
            baseline: format!("{} ({})", b.scenario, short(&b.content_hash)),
            report: format!("{} ({})", c.scenario, short(&c.content_hash)),
        });
    }
    let mut rows = count_rows(b, c);
    rows.extend(verdict_rows(b, c));
    rows.extend(latency_rows(baseline, current, tolerance));
    let limit = tolerance.throughput_limit(baseline.throughput_per_s);
    rows.push(Row {
        metric: "throughput_per_s".to_owned(),
        baseline: format!("{:.1}", baseline.throughput_per_s),
        current: format!("{:.1}", current.throughput_per_s),
        allowed: format!(">= {limit:.1}"),
        status: status(current.throughput_per_s >= limit),
    });
    Ok(Comparison {
        scenario: c.scenario.clone(),
        rows,
    })
}

fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

fn status(ok: bool) -> RowStatus {
    if ok {
        RowStatus::Ok
    } else {
        RowStatus::Regression
    }
}

/// Every count of a snapshot as (dotted name, value): agents, each message
/// class, queue; fields by name within each.
fn counts(s: &Snapshot) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    push_fields(&mut out, "agents", &s.agents);
    for (class, c) in &s.messages {
        push_fields(&mut out, &format!("messages.{class}"), c);
    }
    push_fields(&mut out, "queue", &s.queue);
    out
}

/// Appends the numeric fields of a flat struct as `prefix.field`.
fn push_fields(out: &mut Vec<(String, u64)>, prefix: &str, value: &impl Serialize) {
    let json = serde_json::to_value(value).expect("counts always serialize");
    if let serde_json::Value::Object(fields) = json {
        for (name, v) in fields {
            out.push((format!("{prefix}.{name}"), v.as_u64().unwrap_or(0)));
        }
    }
}

/// Counts compared exactly; a count absent on one side (a message class
/// nobody counted) is 0 there.
fn count_rows(b: &Snapshot, c: &Snapshot) -> Vec<Row> {
    let before = counts(b);
    let after = counts(c);
    let mut names: Vec<&String> = before.iter().map(|(n, _)| n).collect();
    names.extend(
        after
            .iter()
            .map(|(n, _)| n)
            .filter(|n| !before.iter().any(|(m, _)| m == *n)),
    );
    let value = |list: &[(String, u64)], name: &str| {
        list.iter().find(|(n, _)| n == name).map_or(0, |(_, v)| *v)
    };
    names
        .into_iter()
        .map(|name| {
            let (old, new) = (value(&before, name), value(&after, name));
            Row {
                metric: name.clone(),
                baseline: old.to_string(),
                current: new.to_string(),
                allowed: format!("= {old}"),
                status: status(old == new),
            }
        })
        .collect()
}

/// Verdicts compared exactly: each operation's, then the overall one.
fn verdict_rows(b: &Snapshot, c: &Snapshot) -> Vec<Row> {
    let name = |s: Option<Status>| s.map_or("-", Status::as_str).to_owned();
    let mut ops: Vec<_> = b.operations.keys().chain(c.operations.keys()).collect();
    ops.sort();
    ops.dedup();
    let mut rows: Vec<Row> = ops
        .into_iter()
        .map(|op| {
            let old = b.operations.get(op).map(|f| f.verdict);
            let new = c.operations.get(op).map(|f| f.verdict);
            Row {
                metric: format!("verdict.{op}"),
                baseline: name(old),
                current: name(new),
                allowed: format!("= {}", name(old)),
                status: match old {
                    None => RowStatus::New,
                    Some(_) => status(old == new),
                },
            }
        })
        .collect();
    rows.push(Row {
        metric: "verdict.overall".to_owned(),
        baseline: name(Some(b.overall)),
        current: name(Some(c.overall)),
        allowed: format!("= {}", b.overall),
        status: status(b.overall == c.overall),
    });
    rows
}

/// p50 and p99 of each baseline operation may grow up to the tolerance; an
/// operation the report lacks regressed, one only the report has is new.
fn latency_rows(baseline: &Baseline, current: &Baseline, tolerance: Tolerance) -> Vec<Row> {
    let mut rows = Vec::new();
    for (op, old) in &baseline.latency_ms {
        let new = current.latency_ms.get(op);
        for (which, b, c) in [
            ("p50", old.p50, new.map(|p| p.p50)),
            ("p99", old.p99, new.map(|p| p.p99)),
        ] {
            let limit = tolerance.latency_limit(b);
            rows.push(Row {
                metric: format!("latency.{op}.{which}_ms"),
                baseline: format!("{b:.3}"),
                current: c.map_or("-".to_owned(), |c| format!("{c:.3}")),
                allowed: format!("<= {limit:.3}"),
                status: status(c.is_some_and(|c| c <= limit)),
            });
        }
    }
    for (op, new) in &current.latency_ms {
        if !baseline.latency_ms.contains_key(op) {
            for (which, c) in [("p50", new.p50), ("p99", new.p99)] {
                rows.push(Row {
                    metric: format!("latency.{op}.{which}_ms"),
                    baseline: "-".to_owned(),
                    current: format!("{c:.3}"),
                    allowed: "-".to_owned(),
                    status: RowStatus::New,
                });
            }
        }
    }
    rows
}

/// The diff table: metric, baseline, current, allowed, status; then a
/// one-line summary.
pub fn render_table(comparison: &Comparison) -> String {
    let header = ["metric", "baseline", "current", "allowed", "status"];
    let cells: Vec<[&str; 5]> = comparison
        .rows
        .iter()
        .map(|r| {
            [
                r.metric.as_str(),
                r.baseline.as_str(),
                r.current.as_str(),
                r.allowed.as_str(),
                r.status.as_str(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &cells {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&cells) {
        let _ = writeln!(
            out,
            "{:<w0$}  {:>w1$}  {:>w2$}  {:<w3$}  {}",
            row[0],
            row[1],
            row[2],
            row[3],
            row[4],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
            w3 = widths[3],
        );
    }
    let regressions = comparison.regressions().count();
    let _ = writeln!(
        out,
        "{}: {} metrics compared, {}",
        comparison.scenario,
        comparison.rows.len(),
        match regressions {
            0 => "no regression".to_owned(),
            1 => "1 REGRESSION".to_owned(),
            n => format!("{n} REGRESSIONS"),
        }
    );
    out
}

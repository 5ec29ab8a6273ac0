//! The per-phase tables both human views show: each phase's traffic and verdict, and each delivery operation's latency in each phase.

use super::model::Report;
use super::phases::{PhaseLatency, PhaseResult};
use super::tables::{Table, verdict_label};
use super::text::{ms, or_dash, rate};
use crate::verdict::trust::IntegrityStatus;
use crate::verdict::{Status, min_samples};

/// Each phase's own figures (and the drain's), with its verdict.
pub(super) fn phases(report: &Report) -> Table {
    let first = report.phases.first();
    let op = first
        .and_then(|p| p.operation)
        .map_or("delivery", |op| op.as_str());
    let percentile = first.map_or(99.0, |p| p.percentile);
    let p50 = format!("{op} p50");
    let judged = format!("{op} p{percentile}");
    let mut t = Table::new(
        "Phases",
        &[
            "phase",
            "kind",
            "seconds",
            "sent",
            "delivered",
            "delivered per s",
            &p50,
            &judged,
            "errors",
            "verdict",
        ],
    );
    t.note = Some(
        "Each phase's own seconds (a second belongs to the phase holding its middle); latencies \
         in ms; the verdict is the worst of the phase's delivery operations, each against its own \
         limits, as the run's verdict is made."
            .to_owned(),
    );
    for p in &report.phases {
        t.rows.push(vec![
            p.name.clone(),
            p.kind.clone(),
            format!("{:.1}–{:.1}", p.start_s, p.end_s),
            p.sent.to_string(),
            p.delivered.to_string(),
            rate(p.delivered_per_s),
            or_dash(p.p50_ms.map(ms)),
            or_dash(p.judged_ms.map(ms)),
            p.errors.to_string(),
            phase_verdict(report, p),
        ]);
    }
    t
}

/// Every delivery operation in every phase, when the run timed more than
/// one (with one, the Phases table says it all).
pub(super) fn latency_by_phase(report: &Report) -> Table {
    let mut t = Table::new(
        "Latency by phase (ms)",
        &[
            "phase",
            "operation",
            "samples",
            "p50",
            "p99",
            "limits (warning / critical)",
            "verdict",
        ],
    );
    let timed = |p: &PhaseResult| p.latencies.len();
    if report.phases.iter().map(timed).max().unwrap_or(0) < 2 {
        return t;
    }
    for p in &report.phases {
        for l in &p.latencies {
            t.rows.push(latency_row(report, p, l));
        }
    }
    t
}

fn latency_row(report: &Report, phase: &PhaseResult, l: &PhaseLatency) -> Vec<String> {
    let limits = l.verdict.as_ref().map(|v| {
        format!(
            "p{}: {} / {}",
            v.percentile,
            ms(v.warning_ms),
            ms(v.critical_ms)
        )
    });
    let verdict = match &l.verdict {
        Some(v) => with_integrity(report, v.status, verdict_label(v)),
        None => "not judged (the drain)".to_owned(),
    };
    vec![
        phase.name.clone(),
        l.operation.to_string(),
        l.samples.to_string(),
        ms(l.p50_ms),
        ms(l.p99_ms),
        or_dash(limits),
        verdict,
    ]
}

/// A phase's verdict in words: its status, with the few samples it stood
/// on when a verdict on few samples decided it, or why it was not judged.
fn phase_verdict(report: &Report, p: &PhaseResult) -> String {
    let Some(status) = p.status else {
        return match &p.not_judged {
            Some(why) => format!("not judged ({why})"),
            None => "–".to_owned(),
        };
    };
    let verdicts = || p.latencies.iter().filter_map(|l| l.verdict.as_ref());
    let worst_on_enough = verdicts()
        .filter(|v| !v.few_samples)
        .map(|v| v.status)
        .max()
        .unwrap_or(Status::Healthy);
    let decider = verdicts()
        .filter(|v| v.few_samples && v.status >= status)
        .max_by_key(|v| v.status);
    let label = match decider {
        Some(v) if status > worst_on_enough => format!(
            "{status} ({} {} on few samples: {} for a p{}, at least {} needed)",
            v.operation,
            v.status,
            v.samples,
            v.percentile,
            min_samples(v.percentile)
        ),
        _ => status.to_string(),
    };
    with_integrity(report, status, label)
}

/// `label`, marked inconclusive when the simulator could not keep its
/// schedule and `status` is worse than healthy (the run's own rule).
fn with_integrity(report: &Report, status: Status, label: String) -> String {
    match report.integrity.status == IntegrityStatus::Inconclusive && status > Status::Healthy {
        true if !label.contains("inconclusive") => format!("{label} (inconclusive)"),
        _ => label,
    }
}

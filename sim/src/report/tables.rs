//! The report's tables as plain rows, shared by the Markdown and HTML views so both always show the same figures.

use super::model::Report;
use super::phase_tables;
use super::text::{bytes, ms, or_dash, percent, rate};
use super::throughput::Throughput;
use crate::ledger::MessageClass;
use crate::verdict::trust::IntegrityStatus;
use crate::verdict::{OperationVerdict, Status, min_samples};

/// A titled table of text cells.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Table {
    pub title: &'static str,
    pub headers: Vec<String>,
    pub rows: Vec<Vec<String>>,
    /// A sentence under the table: what its figures are over.
    pub note: Option<String>,
}

impl Table {
    pub(super) fn new(title: &'static str, headers: &[&str]) -> Self {
        Self {
            title,
            headers: headers.iter().map(|h| (*h).to_owned()).collect(),
            rows: Vec::new(),
            note: None,
        }
    }
}

/// Every table, in reading order; empty sections are left out.
pub(super) fn all(report: &Report) -> Vec<Table> {
    [
        run_facts(report),
        integrity(report),
        witness(report),
        connections(report),
        nodes(report),
        latency(report),
        phase_tables::phases(report),
        phase_tables::latency_by_phase(report),
        delivery(report),
        queue(report),
        errors(report),
        health(report),
        simulator(report),
    ]
    .into_iter()
    .filter(|t| !t.rows.is_empty())
    .collect()
}

fn run_facts(report: &Report) -> Table {
    let mut t = Table::new("Run", &["", ""]);
    let s = &report.scenario;
    let r = &report.run;
    let rows = [
        ("scenario", format!("{} ({})", s.name, s.file)),
        ("content hash", s.content_hash.clone()),
        ("seed", s.seed.to_string()),
        ("started", r.started_at.clone()),
        ("duration", format!("{:.1} s", r.duration_s)),
        ("target", r.target.clone()),
        ("broker", r.broker.clone()),
        ("bus nodes", r.bus_nodes.to_string()),
        ("overall verdict", headline(report).to_lowercase()),
    ];
    t.rows = rows
        .into_iter()
        .map(|(k, v)| vec![k.to_owned(), v])
        .collect();
    if let Some(merged) = &report.merged {
        t.rows.insert(
            1,
            vec![
                "merged from".to_owned(),
                format!("{} shards: {}", merged.shards, merged.sources.join(", ")),
            ],
        );
    }
    t
}

fn nodes(report: &Report) -> Table {
    let mut t = Table::new(
        "Bus nodes",
        &[
            "node",
            "agents",
            "connects",
            "peak connections",
            "CPU (% of a core)",
            "peak RSS",
            "memory per connection",
        ],
    );
    t.rows = report
        .nodes
        .iter()
        .map(|n| {
            vec![
                n.node.clone(),
                n.agents.to_string(),
                n.connects.to_string(),
                or_dash(n.peak_connections.map(|c| c.to_string())),
                or_dash(n.cpu_percent.map(|c| format!("{c:.1}"))),
                or_dash(n.peak_rss_bytes.map(|b| bytes(b as f64))),
                or_dash(n.rss_bytes_per_connection().map(bytes)),
            ]
        })
        .collect();
    t
}

fn connections(report: &Report) -> Table {
    let mut t = Table::new(
        "Connections",
        &[
            "target",
            "achieved",
            "failures",
            "retries",
            "disconnects",
            "verdict",
        ],
    );
    let c = &report.connections;
    t.rows.push(vec![
        c.target.to_string(),
        c.achieved.to_string(),
        c.failures.to_string(),
        c.retries.to_string(),
        c.disconnects.to_string(),
        report.verdicts.connections.status.to_string(),
    ]);
    t
}

fn latency(report: &Report) -> Table {
    let mut t = Table::new(
        "Latency (ms)",
        &[
            "operation",
            "samples",
            "per s",
            "p50",
            "p90",
            "p99",
            "p99.9",
            "max",
            "limits (warning / critical)",
            "verdict",
        ],
    );
    let window = report.window_s();
    t.note = Some(rates_note(report));
    for entry in &report.latencies {
        let s = &entry.summary;
        let verdict = report.verdicts.operation(entry.operation);
        let limit = verdict.map(|v| {
            format!(
                "p{}: {} / {}",
                v.percentile,
                ms(v.warning_ms),
                ms(v.critical_ms)
            )
        });
        let status = match verdict {
            Some(v) => verdict_label(v),
            None if !entry.judged => "not judged (simulator lag)".to_owned(),
            None => "–".to_owned(),
        };
        t.rows.push(vec![
            entry.operation.to_string(),
            s.count.to_string(),
            rate(s.count as f64 / window),
            ms(s.p50_ms),
            ms(s.p90_ms),
            ms(s.p99_ms),
            ms(s.p999_ms),
            ms(s.max_ms),
            or_dash(limit),
            status,
        ]);
    }
    t
}

fn delivery(report: &Report) -> Table {
    let mut t = Table::new(
        "Delivery",
        &[
            "class",
            "expected",
            "delivered",
            "delivered per s",
            "lost",
            "loss",
            "duplicated",
            "out of order",
            "misrouted",
            "verdict",
        ],
    );
    t.note = Some(rates_note(report));
    for class in MessageClass::ALL {
        let counts = report.ledger.class(class);
        if counts.is_empty() {
            continue;
        }
        let verdict = report.verdicts.loss.iter().find(|v| v.class == class);
        t.rows.push(vec![
            class.to_string(),
            counts.expected.to_string(),
            counts.delivered.to_string(),
            rate(counts.delivered as f64 / report.window_s()),
            counts.lost().to_string(),
            percent(counts.loss_ratio()),
            counts.duplicated.to_string(),
            counts.out_of_order.to_string(),
            counts.misrouted.to_string(),
            or_dash(verdict.map(|v| match v.inconclusive {
                true => format!("{} (inconclusive)", v.status),
                false => v.status.to_string(),
            })),
        ]);
    }
    t
}

/// What the tables' rates are over, in words.
fn rates_note(report: &Report) -> String {
    format!("Per second: over {}.", Throughput::of(report).window)
}

fn queue(report: &Report) -> Table {
    let mut t = Table::new(
        "Queue semantics",
        &[
            "enqueued",
            "claimed",
            "acked",
            "rejected",
            "requeued",
            "dead-lettered",
            "redelivered",
            "priority inversions",
            "crashed",
            "still queued",
        ],
    );
    let q = &report.ledger.queue;
    if *q != Default::default() {
        t.rows.push(
            [
                q.enqueued,
                q.claimed,
                q.acked,
                q.rejected,
                q.requeued,
                q.dead_lettered,
                q.redelivered,
                q.priority_inversions,
                q.crashed,
                q.still_queued,
            ]
            .iter()
            .map(u64::to_string)
            .collect(),
        );
    }
    t
}

fn errors(report: &Report) -> Table {
    let mut t = Table::new("Errors", &["kind", "count"]);
    t.rows = report
        .errors
        .iter()
        .map(|(kind, count)| vec![kind.clone(), count.to_string()])
        .collect();
    t
}

fn health(report: &Report) -> Table {
    let mut t = Table::new("Bus health transitions", &["at (s)", "bus status", "level"]);
    t.rows = report
        .health_transitions()
        .into_iter()
        .map(|s| {
            vec![
                format!("{:.1}", s.at_s),
                s.status.clone(),
                s.level().to_string(),
            ]
        })
        .collect();
    t
}

fn simulator(report: &Report) -> Table {
    let mut t = Table::new(
        "Simulator",
        &[
            "CPU (s)",
            "CPU (% of a core)",
            "machine busy",
            "scheduling lag p99 / max (ms)",
            "peak RSS",
            "CPU µs per delivered message",
            "memory per agent",
        ],
    );
    let s = &report.simulator;
    if s.cpu_seconds > 0.0 || s.peak_rss_bytes > 0 {
        let cores = s.cores.map_or(String::new(), |c| format!(" of {c} cores"));
        t.rows.push(vec![
            format!("{:.2}", s.cpu_seconds),
            or_dash(s.cpu_percent.map(|c| format!("{c:.0}"))),
            or_dash(s.machine_busy_percent.map(|b| format!("{b:.0}%{cores}"))),
            or_dash(
                s.scheduling_lag_p99_ms
                    .zip(s.scheduling_lag_max_ms)
                    .map(|(p, m)| format!("{} / {}", ms(p), ms(m))),
            ),
            bytes(s.peak_rss_bytes as f64),
            or_dash(s.cpu_us_per_delivered_message.map(|v| format!("{v:.1}"))),
            or_dash(s.memory_bytes_per_agent.map(bytes)),
        ]);
    }
    t
}

fn integrity(report: &Report) -> Table {
    let mut t = Table::new("Integrity", &["", ""]);
    let i = &report.integrity;
    t.rows
        .push(vec!["status".into(), integrity_status(report).into()]);
    if let Some(at) = i.interrupted_at_s {
        t.rows.push(vec![
            "interrupted".into(),
            format!("at {at:.1} s (SIGINT or SIGTERM): the figures cover the run until then"),
        ]);
    }
    if let Some(why) = &i.saturation {
        t.rows.push(vec!["simulator".into(), why.clone()]);
        if i.status == IntegrityStatus::Trusted {
            t.rows.push(vec![
                "".into(),
                "every verdict is healthy, and the simulator's delays only add to latency: they stand".into(),
            ]);
        }
        if let Some(advice) = i.advice() {
            t.rows.push(vec!["what to do".into(), advice.into()]);
        }
    }
    for finding in &i.findings {
        t.rows.push(vec!["disagreement".into(), finding.clone()]);
    }
    if let Some(why) = &i.witness_missing {
        t.rows
            .push(vec!["bus witness".into(), format!("none: {why}")]);
    }
    t
}

fn witness(report: &Report) -> Table {
    let mut t = Table::new(
        "Bus witness",
        &[
            "node",
            "frames the agents wrote",
            "frames the bus read",
            "deliveries the bus made",
            "messages the agents read",
            "subscriptions audited",
            "audit mismatches",
        ],
    );
    t.rows = report
        .integrity
        .witness
        .iter()
        .map(|w| {
            vec![
                match w.restarted {
                    true => format!("{} (restarted: counts not compared)", w.node),
                    false => w.node.clone(),
                },
                w.agents_frames_sent.to_string(),
                w.bus_frames_in.to_string(),
                w.bus_deliveries.to_string(),
                w.agents_messages_received.to_string(),
                w.audited.to_string(),
                w.audit_mismatches.to_string(),
            ]
        })
        .collect();
    t
}

/// The integrity outcome in words.
fn integrity_status(report: &Report) -> &'static str {
    match report.integrity.status {
        IntegrityStatus::Trusted if report.integrity.witness.is_empty() => "trusted",
        IntegrityStatus::Trusted => "trusted: the bus's own counts agree with the agents'",
        IntegrityStatus::Inconclusive => {
            "inconclusive: the simulator could not keep its schedule; bad figures are not judged"
        }
        IntegrityStatus::Failed => {
            "FAILED: the bus's counts and the agents' disagree; no verdict on the bus"
        }
    }
}

/// A latency verdict in words: its status, and whether it is inconclusive
/// or stands on too few samples.
pub fn verdict_label(v: &OperationVerdict) -> String {
    let mut label = v.status.to_string();
    if v.inconclusive {
        label.push_str(" (inconclusive)");
    }
    if v.few_samples {
        label.push_str(&format!(
            " (few samples: {} for a p{}, at least {} needed)",
            v.samples,
            v.percentile,
            min_samples(v.percentile)
        ));
    }
    label
}

/// The headline: the overall verdict in capitals, or what stands in for
/// it when the run cannot be judged (integrity failed, inconclusive),
/// marked when it was interrupted.
pub fn headline(report: &Report) -> String {
    let base = match report.integrity.status {
        IntegrityStatus::Failed => "INTEGRITY CHECK FAILED".to_owned(),
        _ if report.verdicts.overall < Status::Critical && report.verdicts.is_inconclusive() => {
            "INCONCLUSIVE".to_owned()
        }
        _ => report.overall().as_str().to_uppercase(),
    };
    match report.integrity.interrupted_at_s {
        Some(_) => format!("{base} (INTERRUPTED)"),
        None => base,
    }
}

/// What the console says about the run's integrity after the summary:
/// nothing when it is trusted and ran to its end.
pub fn integrity_lines(report: &Report) -> Vec<String> {
    let i = &report.integrity;
    let mut lines = Vec::new();
    if let Some(at) = i.interrupted_at_s {
        lines.push(format!(
            "INTERRUPTED at {at:.1} s: the report holds what was measured until then (exit code 13)"
        ));
    }
    if let Some(why) = &i.saturation {
        match i.status {
            IntegrityStatus::Inconclusive => lines.push(format!(
                "INCONCLUSIVE (exit code 12): {why}; the verdicts marked inconclusive may be the simulator's own delay"
            )),
            _ => lines.push(format!(
                "note: {why}; every verdict is healthy, so they stand (the simulator's delays only add to latency)"
            )),
        }
        if let Some(advice) = i.advice() {
            lines.push(format!("  what to do: {advice}"));
        }
    }
    for finding in &i.findings {
        lines.push(format!("INTEGRITY CHECK FAILED: {finding}"));
    }
    lines
}

//! `report.html`: one self-contained page (no external assets) with the tables and inline SVG plots.

use std::fmt::Write;

use super::ReportError;
use super::model::Report;
use super::plots;
use super::tables::{self, Table};
use super::text::escape_markup;
use crate::metrics::RunMetrics;
use crate::verdict::Status;
use crate::verdict::trust::IntegrityStatus;

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:960px;color:#222}\
table{border-collapse:collapse;margin:.5rem 0 1.5rem}\
th,td{border:1px solid #ccc;padding:.25rem .6rem;text-align:right}\
th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}\
.status{padding:.1rem .5rem;border-radius:.3rem;color:#fff}\
.healthy{background:#2e7d32}.warning{background:#ef6c00}.critical{background:#c62828}\
.inconclusive{background:#6d6875}.failed{background:#4a148c}\
figure{margin:0 0 1.5rem}";

/// The HTML page of `report`: headline verdict, every table, and the
/// plots (delivery latency per second, throughput, latency by percentile
/// for each judged operation, bus health over time). `metrics` supplies
/// the full histograms the percentile curves need.
pub fn render_html(report: &Report, metrics: &RunMetrics) -> Result<String, ReportError> {
    let mut out = String::new();
    let title = escape_markup(&report.scenario.name);
    let headline = escape_markup(&tables::headline(report));
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>sim report: {title}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n\
         <h1>{title} <span class=\"status {}\">{headline}</span></h1>\n",
        headline_class(report)
    );
    if !report.scenario.description.is_empty() {
        let _ = writeln!(
            out,
            "<p>{}</p>",
            escape_markup(&report.scenario.description)
        );
    }
    for table in tables::all(report) {
        write_table(&mut out, &table);
    }
    write_plots(&mut out, report, metrics)?;
    if !report.notes.is_empty() {
        out.push_str("<h2>Notes</h2>\n<ul>\n");
        for note in &report.notes {
            let _ = writeln!(out, "<li>{}</li>", escape_markup(note));
        }
        out.push_str("</ul>\n");
    }
    out.push_str("</body>\n</html>\n");
    Ok(out)
}

fn write_plots(out: &mut String, report: &Report, metrics: &RunMetrics) -> Result<(), ReportError> {
    out.push_str("<h2>Plots</h2>\n");
    let marks = plots::Marks::of(report);
    for op in plots::timed_operations(&report.series) {
        let limits = marks.clone().limits_of(report, op);
        figure(out, &plots::latency_over_time(&report.series, op, &limits)?);
    }
    figure(out, &plots::throughput_over_time(&report.series, &marks)?);
    figure(
        out,
        &plots::connections_over_time(&report.health_timeline, report.run.duration_s, &marks)?,
    );
    for op in metrics.operations().into_iter().filter(|op| op.is_judged()) {
        if let Some(histogram) = metrics.histogram(op) {
            figure(out, &plots::latency_distribution(op, histogram)?);
        }
    }
    figure(
        out,
        &plots::health_timeline(&report.health_timeline, report.run.duration_s)?,
    );
    Ok(())
}

fn figure(out: &mut String, svg: &str) {
    let _ = writeln!(out, "<figure>\n{svg}\n</figure>");
}

/// The headline's colour: the verdict's, unless the run's own numbers
/// could not be vouched for (an inconclusive run is not shown green).
fn headline_class(report: &Report) -> &'static str {
    match report.integrity.status {
        IntegrityStatus::Failed => "failed",
        _ if report.verdicts.overall < Status::Critical && report.verdicts.is_inconclusive() => {
            "inconclusive"
        }
        _ => report.overall().as_str(),
    }
}

fn badge(status: Status) -> String {
    format!(
        "<span class=\"status {}\">{}</span>",
        status.as_str(),
        status.as_str().to_uppercase()
    )
}

fn write_table(out: &mut String, table: &Table) {
    let _ = writeln!(out, "<h2>{}</h2>\n<table>", escape_markup(table.title));
    if table.headers.iter().any(|h| !h.is_empty()) {
        out.push_str("<tr>");
        for header in &table.headers {
            let _ = write!(out, "<th>{}</th>", escape_markup(header));
        }
        out.push_str("</tr>\n");
    }
    for row in &table.rows {
        out.push_str("<tr>");
        for cell in row {
            let _ = write!(out, "<td>{}</td>", cell_html(cell));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table>\n");
    if let Some(note) = &table.note {
        let _ = writeln!(out, "<p class=\"note\">{}</p>", escape_markup(note));
    }
}

/// Status words get their colour badge; everything else is escaped text.
fn cell_html(cell: &str) -> String {
    match cell {
        "healthy" => badge(Status::Healthy),
        "warning" => badge(Status::Warning),
        "critical" => badge(Status::Critical),
        other => escape_markup(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixture;

    /// An inconclusive run's headline is not shown in the colour of a
    /// healthy one (its overall verdict, without what it cannot vouch
    /// for, may well be healthy).
    #[test]
    fn an_inconclusive_headline_is_not_green() {
        let (mut report, metrics) = fixture::sample();
        crate::verdict::trust::mark_inconclusive(&mut report.verdicts);
        report.integrity.saturation = Some("late timers".into());
        report.integrity.settle(&report.verdicts);
        let html = render_html(&report, &metrics).unwrap();
        assert!(
            html.contains("<span class=\"status inconclusive\">INCONCLUSIVE</span>"),
            "{}",
            &html[..600]
        );
    }

    #[test]
    fn page_is_self_contained_with_plots() {
        let (report, metrics) = fixture::sample();
        let html = render_html(&report, &metrics).unwrap();
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.contains("<span class=\"status critical\">CRITICAL</span>"));
        assert!(html.contains("<h2>Latency (ms)</h2>"));
        assert!(html.contains("<h2>Delivery</h2>"));
        // Latency over time per timed operation (publish_delivery,
        // queue_wait), throughput, agents connected, health, and one
        // percentile curve per judged operation (connect, publish_delivery,
        // queue_wait).
        assert_eq!(html.matches("<svg").count(), 8, "svg count");
        assert!(html.contains("queue_wait latency per second"));
        assert!(html.contains("<h2>Phases</h2>"));
        assert!(html.contains("publish_delivery: latency by percentile"));
        assert!(!html.contains("send_lag: latency by percentile"));
        assert!(!html.contains("src=\"http"), "no external assets");
        assert!(!html.contains("<script"), "no scripts");
        assert!(html.contains("&lt;fixture&gt; note"), "notes are escaped");
    }
}

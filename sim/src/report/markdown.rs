//! `report.md`: the human summary, readable in a terminal or a pull request.

use std::fmt::Write;

use super::model::Report;
use super::tables::{self, Table};

/// The Markdown summary of `report`: headline verdict, every table
/// (connections, latency, delivery, queue semantics, errors, bus health
/// transitions, simulator cost) and the notes.
pub fn render_markdown(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# {} — verdict: **{}**\n",
        report.scenario.name,
        tables::headline(report)
    );
    if !report.scenario.description.is_empty() {
        let _ = writeln!(out, "{}\n", report.scenario.description);
    }
    for table in tables::all(report) {
        write_table(&mut out, &table);
    }
    if !report.notes.is_empty() {
        out.push_str("## Notes\n\n");
        for note in &report.notes {
            let _ = writeln!(out, "- {note}");
        }
        out.push('\n');
    }
    out
}

fn write_table(out: &mut String, table: &Table) {
    let _ = writeln!(out, "## {}\n", table.title);
    let row = |cells: Vec<String>| format!("| {} |\n", cells.join(" | "));
    out.push_str(&row(table.headers.iter().map(|h| cell(h)).collect()));
    out.push_str(&row(table
        .headers
        .iter()
        .map(|_| "---".to_owned())
        .collect()));
    for cells in &table.rows {
        out.push_str(&row(cells.iter().map(|c| cell(c)).collect()));
    }
    out.push('\n');
    if let Some(note) = &table.note {
        let _ = writeln!(out, "{note}\n");
    }
}

/// Keeps a cell inside its column: pipes escaped, newlines folded.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixture;

    #[test]
    fn summary_shows_verdict_and_tables() {
        let (report, _) = fixture::sample();
        let md = render_markdown(&report);
        assert!(md.starts_with("# fixture — verdict: **CRITICAL**"), "{md}");
        for heading in [
            "## Run",
            "## Connections",
            "## Bus nodes",
            "## Latency (ms)",
            "## Delivery",
            "## Queue semantics",
            "## Errors",
            "## Bus health transitions",
            "## Simulator",
            "## Notes",
        ] {
            assert!(md.contains(heading), "missing {heading}:\n{md}");
        }
        assert!(md.contains("| publish_delivery | 200 |"), "{md}");
        assert!(md.contains("not judged (simulator lag)"), "{md}");
        // Rates over the phases (3 s): 990 delivered is 330 per second.
        assert!(
            md.contains("| pubsub | 1000 | 990 | 330.0 | 10 | 1.000% |"),
            "{md}"
        );
        assert!(md.contains("| publish_delivery | 200 | 66.7 |"), "{md}");
        assert!(md.contains("## Phases"), "{md}");
        assert!(
            md.contains("| all | steady | 0.0–3.0 | 200 | 200 | 66.7 |"),
            "{md}"
        );
        assert!(!md.contains("Some(") && !md.contains("Duration {"), "{md}");
        assert!(
            md.contains("| 127.0.0.1:8081 | 12 | 12 | 12 | 12.5 | 24.0 MiB | 2.0 MiB |"),
            "{md}"
        );
        assert!(md.contains("degraded"), "{md}");
        assert!(md.contains("- a fixture note"), "{md}");
    }
}

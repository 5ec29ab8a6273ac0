//! JUnit XML of a comparison, for CI systems that show test results: one testcase per compared metric, a failure per regression.

use std::fmt::Write;

use super::{Comparison, RowStatus};
use crate::report::escape_markup;

/// The comparison as a JUnit XML document: one `<testsuite>` named after
/// the scenario, one `<testcase>` per metric (class name
/// `sim.check.<scenario>`), a `<failure>` for each regression and
/// `<skipped>` for metrics only the report has.
pub fn render_junit(comparison: &Comparison) -> String {
    let suite = escape_markup(&format!("sim check {}", comparison.scenario));
    let class = escape_markup(&format!("sim.check.{}", comparison.scenario));
    let failures = comparison.regressions().count();
    let skipped = comparison
        .rows
        .iter()
        .filter(|r| r.status == RowStatus::New)
        .count();
    let tests = comparison.rows.len();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"sim check\" tests=\"{tests}\" failures=\"{failures}\" errors=\"0\" skipped=\"{skipped}\">"
    );
    let _ = writeln!(
        out,
        "  <testsuite name=\"{suite}\" tests=\"{tests}\" failures=\"{failures}\" errors=\"0\" skipped=\"{skipped}\">"
    );
    for row in &comparison.rows {
        let name = escape_markup(&row.metric);
        let detail = escape_markup(&format!(
            "{}: baseline {}, current {}, allowed {}",
            row.metric, row.baseline, row.current, row.allowed
        ));
        match row.status {
            RowStatus::Ok => {
                let _ = writeln!(out, "    <testcase name=\"{name}\" classname=\"{class}\"/>");
            }
            RowStatus::Regression => {
                let _ = writeln!(out, "    <testcase name=\"{name}\" classname=\"{class}\">");
                let _ = writeln!(
                    out,
                    "      <failure message=\"{detail}\" type=\"regression\">{detail}</failure>"
                );
                let _ = writeln!(out, "    </testcase>");
            }
            RowStatus::New => {
                let _ = writeln!(out, "    <testcase name=\"{name}\" classname=\"{class}\">");
                let _ = writeln!(
                    out,
                    "      <skipped message=\"not in the baseline: {detail}\"/>"
                );
                let _ = writeln!(out, "    </testcase>");
            }
        }
    }
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::Row;

    fn row(metric: &str, status: RowStatus) -> Row {
        Row {
            metric: metric.to_owned(),
            baseline: "1".to_owned(),
            current: "2".to_owned(),
            allowed: "<= 1.5".to_owned(),
            status,
        }
    }

    #[test]
    fn one_testcase_per_metric_and_a_failure_per_regression() {
        let comparison = Comparison {
            scenario: "ci-<smoke>&".to_owned(),
            rows: vec![
                row("messages.pubsub.lost", RowStatus::Regression),
                row("latency.connect.p50_ms", RowStatus::Ok),
                row("latency.http_publish.p99_ms", RowStatus::New),
            ],
        };
        let xml = render_junit(&comparison);
        assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"));
        assert_eq!(xml.matches("<testcase ").count(), 3);
        assert_eq!(xml.matches("<failure ").count(), 1);
        assert_eq!(xml.matches("<skipped ").count(), 1);
        assert!(xml.contains("tests=\"3\" failures=\"1\" errors=\"0\" skipped=\"1\""));
        assert!(xml.contains("classname=\"sim.check.ci-&lt;smoke&gt;&amp;\""));
        assert!(!xml.contains("<= 1.5"), "{xml}");
        assert!(xml.contains("allowed &lt;= 1.5"), "{xml}");
        assert_well_formed(&xml);
    }

    /// A small structural check: every element opened is closed in order,
    /// attributes are quoted, and no raw `<` or `&` appears in text.
    fn assert_well_formed(xml: &str) {
        let body = xml
            .strip_prefix("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n")
            .expect("XML declaration");
        let mut stack: Vec<String> = Vec::new();
        let mut rest = body;
        while let Some(open) = rest.find('<') {
            let text = &rest[..open];
            for (i, _) in text.match_indices('&') {
                let entity = &text[i..text[i..].find(';').map_or(text.len(), |e| i + e + 1)];
                assert!(entity.ends_with(';'), "bare & in {text:?}");
            }
            let close = rest[open..].find('>').expect("tag closed") + open;
            let tag = &rest[open + 1..close];
            assert!(!tag.contains('<'), "raw < inside a tag: {tag}");
            assert_eq!(tag.matches('"').count() % 2, 0, "unbalanced quotes: {tag}");
            if let Some(name) = tag.strip_prefix('/') {
                assert_eq!(stack.pop().as_deref(), Some(name), "mismatched </{name}>");
            } else if !tag.ends_with('/') {
                let name = tag.split_whitespace().next().unwrap();
                stack.push(name.to_owned());
            }
            rest = &rest[close + 1..];
        }
        assert!(stack.is_empty(), "unclosed: {stack:?}");
    }
}

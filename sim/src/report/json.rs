//! `report.json`: the complete report, the input of `sim check` and other tools.

use serde::Serialize;

use super::model::{Report, SCHEMA_VERSION};
use super::throughput::Throughput;

/// Why a JSON report could not be read.
#[derive(Debug, thiserror::Error)]
pub enum JsonReportError {
    /// Not JSON, or not a report.
    #[error("not a valid report: {0}")]
    Parse(#[from] serde_json::Error),
    /// Written by a different, incompatible format version.
    #[error("report schema version {found} is not supported (this sim reads {SCHEMA_VERSION})")]
    Version {
        /// The version found in the file.
        found: u32,
    },
}

/// What `report.json` holds: the report, and the rates derived from it
/// (read back, they are left out: [`Throughput::of`] derives them again).
#[derive(Serialize)]
struct Written<'a> {
    #[serde(flatten)]
    report: &'a Report,
    throughput: Throughput,
}

/// The pretty-printed JSON of `report`, with its [`Throughput`] as
/// `throughput`, and a final newline.
pub fn render_json(report: &Report) -> String {
    let written = Written {
        report,
        throughput: Throughput::of(report),
    };
    let mut text = serde_json::to_string_pretty(&written).expect("a report always serializes");
    text.push('\n');
    text
}

/// Reads a report written by [`render_json`], refusing other schema
/// versions.
pub fn parse_json(text: &str) -> Result<Report, JsonReportError> {
    let report: Report = serde_json::from_str(text)?;
    if report.schema_version != SCHEMA_VERSION {
        return Err(JsonReportError::Version {
            found: report.schema_version,
        });
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixture;

    #[test]
    fn json_round_trips_and_carries_the_schema_version() {
        let (report, _) = fixture::sample();
        let text = render_json(&report);
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["schema_version"], 1);
        assert_eq!(value["verdicts"]["overall"], "critical");
        assert_eq!(value["latencies"][0]["operation"], "connect");
        // The rates are written beside the counts, over a window in words.
        let throughput = &value["throughput"];
        assert_eq!(throughput["window_s"], 3.0);
        assert_eq!(throughput["operations"][1]["operation"], "publish_delivery");
        assert_eq!(throughput["operations"][1]["count"], 200);
        assert_eq!(throughput["classes"][0]["class"], "pubsub");
        assert_eq!(throughput["classes"][0]["per_s"], 330.0);
        assert_eq!(value["phases"][0]["name"], "all");
        assert_eq!(
            value["phases"][0]["latencies"][0]["operation"],
            "publish_delivery"
        );
        // Floats may differ in the last bit (serde_json parses fast, not
        // exactly), so compare the exact parts.
        let back = parse_json(&text).unwrap();
        assert_eq!(back.scenario, report.scenario);
        assert_eq!(back.ledger, report.ledger);
        assert_eq!(back.verdicts.overall, report.verdicts.overall);
        assert_eq!(back.series.len(), report.series.len());
        assert_eq!(back.notes, report.notes);
    }

    #[test]
    fn other_versions_are_refused() {
        let (mut report, _) = fixture::sample();
        report.schema_version = 99;
        let err = parse_json(&render_json(&report)).unwrap_err();
        assert!(err.to_string().contains("99"), "{err}");
    }
}

//! Run reports: the data model and its JSON, Markdown and HTML renderings, written to a per-run directory.
//!
//! - `model`: [`Report`] and its parts, plain serializable data built with
//!   [`Report::new`] from the run's facts, merged metrics and verdicts.
//! - `json`: `report.json`, complete and versioned ([`SCHEMA_VERSION`]).
//! - `markdown`: `report.md`, the human summary.
//! - `html` and `plots`: `report.html`, one self-contained page with
//!   inline SVG charts drawn by plotters.
//! - `phases`: each phase's figures and verdict ([`PhaseResult`]), from
//!   the per-second series; `throughput`: the rates ([`Throughput`]), all
//!   over one stated window, derived from the counts.
//! - `tables`, `phase_tables` and `text`: the tables and number formats
//!   both human views share.
//! - `snapshot`: the [`Snapshot`] view: only the facts that must not change
//!   between two healthy runs (counts, verdicts, latency [`Band`]s), for
//!   regression checks.
//!
//! [`write_all`] writes them all (the snapshot view as `snapshot.json`),
//! plus `hdr/<operation>.hlog` interval logs, into a directory such as the
//! one [`default_dir`] names.

mod html;
mod json;
mod markdown;
mod model;
mod phase_tables;
mod phases;
mod plots;
mod tables;
mod text;
mod throughput;

mod snapshot;

#[cfg(test)]
pub(crate) mod fixture;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

pub use html::render_html;
pub use json::{JsonReportError, parse_json, render_json};
pub use markdown::render_markdown;
pub use model::{
    ConnectionSummary, FaultOutcome, HealthSample, MergedFrom, NodeFigures, OperationLatency,
    RedisSample, Report, RunInfo, SCHEMA_VERSION, ScenarioInfo, SelfSample, SimulatorSelf,
};
pub use phases::{DRAIN, PhaseLatency, PhaseResult, phase_results};
pub use snapshot::{
    AgentCounts, Band, ClassCounts, OperationFacts, P50_BAND_EDGES_MS, P99_BAND_EDGES_MS,
    QueueCounts, Snapshot,
};
pub use tables::{headline, integrity_lines, verdict_label};
pub use text::escape_markup;
pub use throughput::{ClassRate, OperationRate, Throughput};

use crate::metrics::{HlogError, RunMetrics, write_interval_logs};

/// Why a report could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// Creating the directory or writing a file failed.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// A chart could not be drawn.
    #[error("cannot draw a chart: {0}")]
    Plot(String),
    /// The HDR interval logs could not be written.
    #[error(transparent)]
    Hlog(#[from] HlogError),
}

/// The files [`write_all`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenReport {
    /// The report directory.
    pub dir: PathBuf,
    /// `report.json`.
    pub json: PathBuf,
    /// `report.md`.
    pub markdown: PathBuf,
    /// `report.html`.
    pub html: PathBuf,
    /// `snapshot.json`: the [`Snapshot`] view, what `sim check` baselines
    /// and CI snapshots compare.
    pub snapshot: PathBuf,
    /// `hdr/<operation>.hlog`, one per operation with samples.
    pub hdr_logs: Vec<PathBuf>,
}

/// Writes `report.json`, `report.md`, `report.html`, `snapshot.json` and
/// `hdr/*.hlog` into `dir` (created if needed). `metrics` must be the run's
/// merged metrics: the HTML percentile curves and the interval logs need
/// full histograms.
pub fn write_all(
    report: &Report,
    metrics: &RunMetrics,
    dir: &Path,
) -> Result<WrittenReport, ReportError> {
    std::fs::create_dir_all(dir).map_err(|source| ReportError::Io {
        path: dir.to_owned(),
        source,
    })?;
    let write = |name: &str, content: &str| {
        let path = dir.join(name);
        std::fs::write(&path, content)
            .map(|()| path.clone())
            .map_err(|source| ReportError::Io { path, source })
    };
    let json = write("report.json", &render_json(report))?;
    let markdown = write("report.md", &render_markdown(report))?;
    let html = write("report.html", &render_html(report, metrics)?)?;
    let mut snapshot_text =
        serde_json::to_string_pretty(&Snapshot::of(report)).expect("a snapshot always serializes");
    snapshot_text.push('\n');
    let snapshot = write("snapshot.json", &snapshot_text)?;
    let run_length = Duration::try_from_secs_f64(report.run.duration_s).unwrap_or_default();
    let hdr_logs = write_interval_logs(
        metrics,
        &dir.join("hdr"),
        report.run.started_at_time(),
        run_length,
    )?;
    Ok(WrittenReport {
        dir: dir.to_owned(),
        json,
        markdown,
        html,
        snapshot,
        hdr_logs,
    })
}

/// `<reports_root>/<scenario>/<UTC timestamp>/`, e.g.
/// `reports/quickstart/20261127T101500Z/`: one directory per run, sorted
/// by time. Characters of the scenario name that are awkward in paths
/// become `-`.
pub fn default_dir(reports_root: &Path, scenario_name: &str, now: SystemTime) -> PathBuf {
    let stamp: String = humantime::format_rfc3339_seconds(now)
        .to_string()
        .chars()
        .filter(|c| !matches!(c, '-' | ':'))
        .collect();
    let mut name: String = scenario_name
        .chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '.' | '_' | '-' => c,
            _ => '-',
        })
        .collect();
    if name.trim_matches(['-', '.']).is_empty() {
        name = "scenario".to_owned();
    }
    reports_root.join(name).join(stamp)
}

#[cfg(test)]
mod tests {
    use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};

    use super::*;

    #[test]
    fn default_dir_is_scenario_then_utc_timestamp() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_774_500);
        let dir = default_dir(Path::new("reports"), "quickstart", now);
        assert_eq!(dir, Path::new("reports/quickstart/20261127T101500Z"));
        let odd = default_dir(Path::new("r"), "a b/c", now);
        assert_eq!(odd, Path::new("r/a-b-c/20261127T101500Z"));
        assert_eq!(
            default_dir(Path::new("r"), "..", now),
            Path::new("r/scenario/20261127T101500Z")
        );
    }

    #[test]
    fn write_all_writes_every_format() {
        let (report, metrics) = fixture::sample();
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("run");
        let written = write_all(&report, &metrics, &dir).unwrap();
        let json = std::fs::read_to_string(&written.json).unwrap();
        assert_eq!(parse_json(&json).unwrap().schema_version, 1);
        let md = std::fs::read_to_string(&written.markdown).unwrap();
        assert!(md.contains("verdict: **CRITICAL**"));
        let html = std::fs::read_to_string(&written.html).unwrap();
        assert!(html.contains("<svg"));
        let snapshot = std::fs::read_to_string(&written.snapshot).unwrap();
        assert_eq!(
            serde_json::from_str::<Snapshot>(&snapshot).unwrap(),
            Snapshot::of(&report)
        );
        let names: Vec<_> = written
            .hdr_logs
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "connect.hlog",
                "publish_delivery.hlog",
                "queue_wait.hlog",
                "send_lag.hlog"
            ]
        );
        for path in &written.hdr_logs {
            let bytes = std::fs::read(path).unwrap();
            let intervals = IntervalLogIterator::new(&bytes)
                .map(|entry| entry.unwrap())
                .filter(|entry| matches!(entry, LogEntry::Interval(_)))
                .count();
            assert_eq!(intervals, 1, "{}", path.display());
        }
    }
}

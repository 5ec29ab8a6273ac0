//! Regression checks against a committed baseline: `sim baseline` records one from a report, `sim check` compares a report with it.
//!
//! - [`Baseline`] (`baseline`): the versioned baseline file: the report's
//!   [`Snapshot`](crate::report::Snapshot) (counts, verdicts, the
//!   scenario's content hash), p50/p99 per judged operation and throughput.
//! - [`compare`] (`compare`): counts and verdicts must be equal; latency
//!   percentiles may grow up to `baseline × (1 + tolerance)` (or by the
//!   latency floor, whichever is more); throughput may fall down to
//!   `baseline × (1 − tolerance)`. [`render_table`] prints the diff.
//! - [`render_junit`] (`junit`): the same comparison as JUnit XML.
//!
//! Exit codes of `sim check`: [`EXIT_CLEAN`] (0), [`EXIT_BAD_INPUT`] (2:
//! unreadable files, another scenario), [`EXIT_REGRESSION`] (3).

mod baseline;
mod compare;
mod junit;

use std::path::PathBuf;

pub use baseline::{BASELINE_VERSION, Baseline, Percentiles, RecordedFrom, read_report};
pub use compare::{Comparison, Row, RowStatus, Tolerance, compare, render_table};
pub use junit::render_junit;

/// `sim check`: nothing regressed.
pub const EXIT_CLEAN: i32 = crate::exit::HEALTHY;
/// `sim check` and `sim baseline`: a file could not be read or written, or
/// the report is of another scenario than the baseline.
pub const EXIT_BAD_INPUT: i32 = crate::exit::SETUP;
/// `sim check`: at least one metric regressed.
pub const EXIT_REGRESSION: i32 = crate::exit::REGRESSION;

/// Why a check could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// A file could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// The report is not a readable `report.json`.
    #[error("{path}: {source}")]
    Report {
        /// The file.
        path: PathBuf,
        /// Why it was refused.
        #[source]
        source: crate::report::JsonReportError,
    },
    /// A file is not valid JSON of the expected shape.
    #[error("{path}: not a valid {what}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// "baseline".
        what: &'static str,
        /// Where and why parsing failed.
        #[source]
        source: serde_json::Error,
    },
    /// The baseline was written in another format version.
    #[error(
        "{path}: baseline version {} is not supported (this sim reads version {BASELINE_VERSION}); re-record it with `sim baseline`",
        found.map_or_else(|| "missing".to_owned(), |v| v.to_string())
    )]
    BaselineVersion {
        /// The file.
        path: PathBuf,
        /// The version found, if any.
        found: Option<u64>,
    },
    /// Baseline and report come from different scenarios (or different
    /// versions of one scenario file), so nothing can be compared.
    #[error(
        "the baseline is of scenario {baseline} but the report is of {report}: different scenario content hashes, nothing to compare. If the scenario changed on purpose, re-record the baseline (sim baseline REPORT --out FILE)"
    )]
    ScenarioMismatch {
        /// Name and short hash of the baseline's scenario.
        baseline: String,
        /// Name and short hash of the report's scenario.
        report: String,
    },
    /// `sim baseline` was given no report.
    #[error("no report given")]
    NoReports,
    /// Runs recorded into one baseline disagree on counts or verdicts.
    #[error(
        "report {run} disagrees with the first on {differences}: the scenario is not reproducible enough for a baseline (see scenarios/README.md, \"The CI scenarios\")"
    )]
    Unsteady {
        /// Position of the disagreeing report (1-based).
        run: usize,
        /// What differs.
        differences: String,
    },
    /// A tolerance setting is out of range.
    #[error("{0}")]
    BadTolerance(String),
}

#[cfg(test)]
mod tests;

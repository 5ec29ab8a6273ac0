//! Baseline files: a report's stable facts plus the latency percentiles and throughput `sim check` compares within a tolerance.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::CheckError;
use crate::metrics::Operation;
use crate::report::{Report, Snapshot};

/// Version of the baseline format; a file of another version is refused
/// (re-record it with `sim baseline`).
pub const BASELINE_VERSION: u32 = 1;

/// What `reports/baselines/<scenario>.json` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    /// [`BASELINE_VERSION`] at the time of writing.
    pub baseline_version: u32,
    /// Where the figures came from; shown, never compared.
    pub recorded_from: RecordedFrom,
    /// The stable facts (counts and verdicts are compared exactly; the
    /// scenario's content hash must match).
    pub snapshot: Snapshot,
    /// p50 and p99 per judged operation, ms.
    pub latency_ms: BTreeMap<Operation, Percentiles>,
    /// Distinct deliveries of every message class per second of the run.
    pub throughput_per_s: f64,
}

/// The run(s) a baseline was recorded from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedFrom {
    /// How many runs the figures summarize (see [`Baseline::envelope`]).
    #[serde(default = "one")]
    pub runs: u32,
    /// The scenario file as given to `sim run`.
    pub scenario_file: String,
    /// Start of the run, UTC.
    pub started_at: String,
    /// What the bus was ("embedded bus on memory", ...).
    pub target: String,
    /// Broker kind.
    pub broker: String,
}

/// Two percentiles of one operation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    /// Median, ms.
    pub p50: f64,
    /// 99th percentile, ms.
    pub p99: f64,
}

impl Baseline {
    /// The baseline figures of `report`. Only judged operations are kept:
    /// `send_lag` measures the simulator.
    pub fn of(report: &Report) -> Baseline {
        let latency_ms = report
            .latencies
            .iter()
            .filter(|l| l.operation.is_judged())
            .map(|l| {
                let p = Percentiles {
                    p50: l.summary.p50_ms,
                    p99: l.summary.p99_ms,
                };
                (l.operation, p)
            })
            .collect();
        let delivered: u64 = report.ledger.classes.values().map(|c| c.delivered).sum();
        let throughput_per_s = if report.run.duration_s > 0.0 {
            delivered as f64 / report.run.duration_s
        } else {
            0.0
        };
        Baseline {
            baseline_version: BASELINE_VERSION,
            recorded_from: RecordedFrom {
                runs: 1,
                scenario_file: report.scenario.file.clone(),
                started_at: report.run.started_at.clone(),
                target: report.run.target.clone(),
                broker: report.run.broker.clone(),
            },
            snapshot: Snapshot::of(report),
            latency_ms,
            throughput_per_s,
        }
    }

    /// The baseline of several runs of one scenario: their counts and
    /// verdicts must agree (a scenario whose counts differ between runs
    /// cannot be checked exactly), each percentile is the highest seen and
    /// the throughput the lowest, so later healthy runs fall inside.
    pub fn envelope(reports: &[Report]) -> Result<Baseline, CheckError> {
        let mut runs = reports.iter().map(Baseline::of);
        let Some(mut envelope) = runs.next() else {
            return Err(CheckError::NoReports);
        };
        for (i, run) in runs.enumerate() {
            let comparison = super::compare(&envelope, &run, super::Tolerance::default())?;
            let differs: Vec<String> = comparison
                .rows
                .iter()
                .filter(|r| r.status != super::RowStatus::Ok && !r.metric.starts_with("latency."))
                .filter(|r| r.metric != "throughput_per_s")
                .map(|r| format!("{} {} vs {}", r.metric, r.baseline, r.current))
                .collect();
            if !differs.is_empty() {
                return Err(CheckError::Unsteady {
                    run: i + 2,
                    differences: differs.join(", "),
                });
            }
            for (op, p) in &run.latency_ms {
                let e = envelope.latency_ms.entry(*op).or_insert(*p);
                e.p50 = e.p50.max(p.p50);
                e.p99 = e.p99.max(p.p99);
            }
            envelope.throughput_per_s = envelope.throughput_per_s.min(run.throughput_per_s);
            envelope.recorded_from.runs += 1;
        }
        Ok(envelope)
    }

    /// Pretty JSON with a final newline, for committing.
    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).expect("a baseline always serializes");
        text.push('\n');
        text
    }

    /// Reads a baseline file, refusing other format versions.
    pub fn read(path: &Path) -> Result<Baseline, CheckError> {
        let text = read_text(path)?;
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|source| CheckError::Parse {
                path: path.to_owned(),
                what: "baseline",
                source,
            })?;
        let found = value.get("baseline_version").and_then(|v| v.as_u64());
        if found != Some(u64::from(BASELINE_VERSION)) {
            return Err(CheckError::BaselineVersion {
                path: path.to_owned(),
                found,
            });
        }
        serde_json::from_value(value).map_err(|source| CheckError::Parse {
            path: path.to_owned(),
            what: "baseline",
            source,
        })
    }

    /// Writes the baseline to `path`, creating its directory.
    pub fn write(&self, path: &Path) -> Result<(), CheckError> {
        let write = || {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            std::fs::write(path, self.to_json())
        };
        write().map_err(|source| CheckError::Write {
            path: path.to_owned(),
            source,
        })
    }
}

fn one() -> u32 {
    1
}

/// Reads `report.json`, given as the file or as the run directory holding
/// it.
pub fn read_report(path: &Path) -> Result<Report, CheckError> {
    let file = if path.is_dir() {
        path.join("report.json")
    } else {
        path.to_owned()
    };
    let text = read_text(&file)?;
    crate::report::parse_json(&text).map_err(|source| CheckError::Report { path: file, source })
}

fn read_text(path: &Path) -> Result<String, CheckError> {
    std::fs::read_to_string(path).map_err(|source| CheckError::Read {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{fixture, render_json};

    #[test]
    fn a_baseline_keeps_judged_percentiles_and_throughput() {
        let (report, _) = fixture::sample();
        let b = Baseline::of(&report);
        assert_eq!(b.baseline_version, BASELINE_VERSION);
        assert!(!b.latency_ms.contains_key(&Operation::SendLag));
        let delivery = b.latency_ms[&Operation::PublishDelivery];
        let summary = &report.latencies[1].summary;
        assert_eq!(report.latencies[1].operation, Operation::PublishDelivery);
        assert_eq!(
            (delivery.p50, delivery.p99),
            (summary.p50_ms, summary.p99_ms)
        );
        assert!((b.throughput_per_s - 990.0 / 3.0).abs() < 1e-9);
        assert_eq!(b.snapshot, Snapshot::of(&report));
    }

    #[test]
    fn an_envelope_keeps_the_worst_figures_of_agreeing_runs() {
        let (report, _) = fixture::sample();
        let mut slower = report.clone();
        slower.latencies[1].summary.p99_ms += 3.0;
        slower.run.duration_s *= 2.0;
        let b = Baseline::envelope(&[report.clone(), slower.clone()]).unwrap();
        assert_eq!(b.recorded_from.runs, 2);
        let one = Baseline::of(&report);
        let op = Operation::PublishDelivery;
        assert_eq!(b.latency_ms[&op].p99, one.latency_ms[&op].p99 + 3.0);
        assert_eq!(b.latency_ms[&op].p50, one.latency_ms[&op].p50);
        assert!((b.throughput_per_s - one.throughput_per_s / 2.0).abs() < 1e-9);

        let mut other = report.clone();
        other.ledger.queue.acked += 1;
        let err = Baseline::envelope(&[report, other]).unwrap_err();
        assert!(err.to_string().contains("queue.acked 11 vs 12"), "{err}");
        assert!(matches!(
            Baseline::envelope(&[]),
            Err(CheckError::NoReports)
        ));
    }

    #[test]
    fn baselines_and_reports_are_read_back() {
        let (report, _) = fixture::sample();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/fixture.json");
        let b = Baseline::of(&report);
        b.write(&path).unwrap();
        let back = Baseline::read(&path).unwrap();
        assert_eq!(back.snapshot, b.snapshot);
        assert_eq!(back.latency_ms.len(), b.latency_ms.len());

        std::fs::write(dir.path().join("report.json"), render_json(&report)).unwrap();
        assert_eq!(read_report(dir.path()).unwrap().scenario, report.scenario);

        let old = b
            .to_json()
            .replace("\"baseline_version\": 1", "\"baseline_version\": 7");
        std::fs::write(&path, old).unwrap();
        let err = Baseline::read(&path).unwrap_err();
        assert!(err.to_string().contains("version 7"), "{err}");
        let err = read_report(&dir.path().join("missing.json")).unwrap_err();
        assert!(err.to_string().contains("missing.json"), "{err}");
    }
}

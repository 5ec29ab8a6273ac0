//! Regression checks of the CI scenarios: every scenario in
//! `scenarios/ci/` against the embedded bus on memory and on Redis, its
//! snapshot view compared with the committed one (`snapshots/*.snap`,
//! accepted with `cargo insta review`); one scenario run twice gives the
//! same snapshot; and a bus with a test-only fault (1 % of deliveries
//! dropped, or 100 ms added to each) fails both the snapshot and `sim check`
//! against the committed baseline, while a healthy bus passes both.
//!
//! The runs take a lock so they never overlap each other: latency bands
//! must not move because two scenarios shared the CPU.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use bus::router::DeliveryFaults;
use sim::bus_under_test::{RunningTarget, TargetOptions};
use sim::drive::RunOptions;
use sim::report::{Report, Snapshot, render_json};
use sim::scenario::{BrokerKind, Scenario};
use testkit::TestRedis;

/// One scenario run at a time, across the tests that run load.
use crate::support::HEAVY as SERIAL;

/// The latency floor the regression test gives `sim check`. The committed
/// baselines come from release builds; these runs are debug builds on a
/// machine shared with other tests, whose p99s reach 195 ms. With this
/// floor only counts, verdicts and throughput decide here: a 100 ms delay is
/// caught by the verdicts (the CI scenarios judge the median against
/// 150 ms, and a `direct_rtt`, two deliveries, grows by 200 ms).
const CHECK_LATENCY_FLOOR_MS: &str = "500";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Memory,
    Redis,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Backend::Memory => "memory",
            Backend::Redis => "redis",
        }
    }
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `scenarios/ci/*.toml`, sorted.
fn ci_scenarios() -> Vec<PathBuf> {
    let dir = repo_root().join("scenarios/ci");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no scenarios in {}", dir.display());
    files
}

fn smoke() -> PathBuf {
    repo_root().join("scenarios/ci/smoke.toml")
}

/// Runs `file` against an embedded bus on `backend` with `faults`, as
/// `sim run` would, and returns the report.
async fn run(file: &Path, backend: Backend, faults: DeliveryFaults) -> Report {
    let mut scenario = Scenario::load(file).unwrap_or_else(|e| panic!("{e}"));
    let redis = (backend == Backend::Redis).then(TestRedis::new);
    if redis.is_some() {
        scenario.target.broker = BrokerKind::Redis;
    }
    let options = TargetOptions {
        redis_url: redis.as_ref().map(|r| r.url.clone()),
        embedded_faults: faults,
        ..TargetOptions::default()
    };
    let target = RunningTarget::start(&scenario.target, &options)
        .await
        .unwrap();
    let run_options = RunOptions {
        quiet: true,
        ..RunOptions::default()
    };
    let label = file.strip_prefix(repo_root()).unwrap_or(file);
    let finished = sim::orchestrate::run_to_report(
        Arc::new(scenario),
        &label.display().to_string(),
        &target,
        &run_options,
        None,
    )
    .await;
    target.stop().await.unwrap();
    print_figures(&finished.report, backend);
    finished.report
}

/// The raw figures behind the bands (shown with `--nocapture`), to choose
/// band edges and thresholds from.
fn print_figures(report: &Report, backend: Backend) {
    for l in &report.latencies {
        println!(
            "figures {}@{} {:<16} p50 {:>8.2} ms  p99 {:>8.2} ms",
            report.scenario.name,
            backend.name(),
            l.operation.as_str(),
            l.summary.p50_ms,
            l.summary.p99_ms
        );
    }
}

/// The snapshot committed as `snapshots/<name>.snap` (insta's header, then
/// the JSON body).
fn committed_snapshot(name: &str) -> Snapshot {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/snapshots/{name}.snap"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let body = text
        .splitn(3, "---\n")
        .nth(2)
        .unwrap_or_else(|| panic!("{}: no insta header", path.display()));
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Runs `sim check` on `report` (a run on the memory backend) against the
/// committed baseline of its scenario; returns the exit code and the JUnit
/// XML it wrote.
fn sim_check(report: &Report) -> (i32, String) {
    let baseline = format!("{}@memory.json", report.scenario.name);
    let (code, _, xml) = sim_check_against(report, &baseline);
    (code, xml)
}

/// Runs `sim check` on `report` against `reports/baselines/<baseline>`;
/// returns the exit code, stderr and the JUnit XML written.
fn sim_check_against(report: &Report, baseline: &str) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("report.json"), render_json(report)).unwrap();
    let junit = dir.path().join("junit.xml");
    let output = Command::new(env!("CARGO_BIN_EXE_sim"))
        .arg("check")
        .arg(dir.path())
        .arg("--baseline")
        .arg(repo_root().join("reports/baselines").join(baseline))
        .args(["--latency-floor-ms", CHECK_LATENCY_FLOOR_MS])
        .arg("--junit")
        .arg(&junit)
        .output()
        .expect("run sim check");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    println!("{}\n{stderr}", String::from_utf8_lossy(&output.stdout));
    let xml = std::fs::read_to_string(&junit).unwrap_or_default();
    (output.status.code().unwrap_or(-1), stderr, xml)
}

/// `sim baseline` records a report, and the same report then passes `sim
/// check` against it with the default tolerance.
fn baseline_round_trip(report: &Report) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("report.json"), render_json(report)).unwrap();
    let baseline = dir.path().join("baselines/b.json");
    let sim = |args: &[&std::ffi::OsStr]| {
        let output = Command::new(env!("CARGO_BIN_EXE_sim"))
            .args(args)
            .output()
            .expect("run sim");
        let text = String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr);
        (output.status.code(), text)
    };
    let (code, text) = sim(&[
        "baseline".as_ref(),
        dir.path().as_os_str(),
        "--out".as_ref(),
        baseline.as_os_str(),
    ]);
    assert_eq!(code, Some(0), "{text}");
    let (code, text) = sim(&[
        "check".as_ref(),
        dir.path().join("report.json").as_os_str(),
        "--baseline".as_ref(),
        baseline.as_os_str(),
    ]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("no regression"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ci_scenarios_match_their_committed_snapshots() {
    let _serial = SERIAL.lock().await;
    let mut settings = insta::Settings::clone_current();
    settings.set_prepend_module_to_snapshot(false);
    settings.set_omit_expression(true);
    for file in ci_scenarios() {
        for backend in [Backend::Memory, Backend::Redis] {
            let report = run(&file, backend, DeliveryFaults::default()).await;
            let snapshot = Snapshot::of(&report);
            let name = format!("{}@{}", snapshot.scenario, backend.name());
            let label = file.strip_prefix(repo_root()).unwrap_or(&file);
            settings.set_info(&format!(
                "{} on the embedded bus on {}",
                label.display(),
                backend.name()
            ));
            settings.bind(|| insta::assert_json_snapshot!(name, snapshot));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_scenario_run_twice_gives_the_same_snapshot() {
    let _serial = SERIAL.lock().await;
    let first = Snapshot::of(&run(&smoke(), Backend::Memory, DeliveryFaults::default()).await);
    let second = Snapshot::of(&run(&smoke(), Backend::Memory, DeliveryFaults::default()).await);
    assert_eq!(
        first, second,
        "the seed fixes every count, verdict and band"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_faulty_bus_fails_the_snapshot_and_the_check_and_a_healthy_one_passes() {
    let _serial = SERIAL.lock().await;
    let committed = committed_snapshot("ci-smoke@memory");

    let healthy = run(&smoke(), Backend::Memory, DeliveryFaults::default()).await;
    assert_eq!(Snapshot::of(&healthy), committed, "a healthy bus");
    let (code, xml) = sim_check(&healthy);
    assert_eq!(code, 0, "a healthy bus passes sim check");
    assert!(!xml.contains("<failure"), "{xml}");
    let (code, stderr, _) = sim_check_against(&healthy, "ci-queues@memory.json");
    assert_eq!(code, 2, "another scenario's baseline is bad input");
    assert!(stderr.contains("different scenario"), "{stderr}");
    baseline_round_trip(&healthy);

    let faults = [
        (
            "1% of deliveries dropped",
            DeliveryFaults {
                drop_ratio: 0.01,
                ..DeliveryFaults::default()
            },
        ),
        (
            "100 ms added to every delivery",
            DeliveryFaults {
                delay: Duration::from_millis(100),
                ..DeliveryFaults::default()
            },
        ),
    ];
    for (what, faults) in faults {
        let report = run(&smoke(), Backend::Memory, faults).await;
        assert_ne!(
            Snapshot::of(&report),
            committed,
            "the snapshot catches {what}"
        );
        let (code, xml) = sim_check(&report);
        assert_eq!(code, 3, "sim check catches {what}");
        assert!(xml.contains("<failure"), "{what}: {xml}");
    }
}

//! The `sim` binary end to end: exit codes, reports, and the three targets
//! (embedded on memory, embedded on Redis, an external bus process).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use testkit::TestRedis;

const SIM: &str = env!("CARGO_BIN_EXE_sim");

fn scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios")
        .join(name)
}

fn sim(args: &[&str]) -> Output {
    Command::new(SIM)
        .args(args)
        .env_remove("REDIS_URL")
        .output()
        .expect("run sim")
}

/// Runs the smoke scenario (shortened) and returns the report and exit code.
fn run_smoke(extra: &[&str]) -> (Value, i32, String) {
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("report");
    let scenario = scenario("ci/smoke.toml");
    let mut args = vec![
        "run",
        scenario.to_str().unwrap(),
        "--duration",
        "3s",
        "--quiet",
        "--out",
        dir.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let output = sim(&args);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let report = std::fs::read_to_string(dir.join("report.json"))
        .unwrap_or_else(|e| panic!("no report ({e}); stderr: {stderr}"));
    for file in ["report.md", "report.html"] {
        assert!(dir.join(file).exists(), "{file} written");
    }
    (
        serde_json::from_str(&report).unwrap(),
        output.status.code().unwrap(),
        stderr,
    )
}

fn assert_consistent(report: &Value, code: i32) {
    let expected = match report["verdicts"]["overall"].as_str().unwrap() {
        "healthy" => 0,
        "warning" => 10,
        _ => 11,
    };
    assert_eq!(code, expected, "the exit code follows the verdict");
    assert_eq!(report["schema_version"], 1);
    assert_eq!(
        report["connections"]["achieved"],
        report["connections"]["target"]
    );
    for (class, ledger) in report["ledger"]["classes"].as_object().unwrap() {
        assert_eq!(ledger["expected"], ledger["delivered"], "{class}: {ledger}");
        assert!(ledger["expected"].as_u64().unwrap() > 0, "{class}");
    }
}

#[test]
fn smoke_on_the_embedded_memory_bus() {
    let (report, code, stderr) = run_smoke(&[]);
    assert_consistent(&report, code);
    assert_eq!(report["run"]["broker"], "memory", "{stderr}");
    assert!(
        !report["health_timeline"].as_array().unwrap().is_empty(),
        "the bus's /health was polled"
    );
}

#[test]
fn smoke_on_the_embedded_bus_on_redis() {
    let redis = TestRedis::new();
    let (report, code, stderr) = run_smoke(&["--redis", &redis.url]);
    assert_consistent(&report, code);
    assert_eq!(report["run"]["broker"], "redis", "{stderr}");
    assert!(
        !report["redis_samples"].as_array().unwrap().is_empty(),
        "Redis INFO was sampled"
    );
}

#[test]
fn smoke_against_a_separately_started_bus() {
    let bus = crate::support::Bus::start();
    let (report, code, _) = run_smoke(&["--target", &bus.url]);
    let addr = bus.addr.clone();
    drop(bus);
    assert_consistent(&report, code);
    assert!(report["run"]["target"].as_str().unwrap().contains(&addr));
}

#[test]
fn an_invalid_scenario_exits_2_naming_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "name = \"bad\"\n[[phases]]\nname = \"s\"\nkind = \"steady\"\nduration = \"1s\"\n[[groups]]\nname = \"p\"\ncount = 1\nbehaviour = \"publisher\"\nrate = -5.0\n",
    )
    .unwrap();
    let output = sim(&["run", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("bad.toml:10:"), "{stderr}");
    assert!(stderr.contains("groups[0].rate"), "{stderr}");
    let output = sim(&["validate", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn too_many_agents_for_one_process_is_refused_before_connecting() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.toml");
    std::fs::write(
        &path,
        "name = \"big\"\n[[phases]]\nname = \"s\"\nkind = \"steady\"\nduration = \"1s\"\n[[groups]]\nname = \"s\"\ncount = 15000\nbehaviour = \"subscriber\"\n",
    )
    .unwrap();
    let output = sim(&["run", path.to_str().unwrap(), "--quiet"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("spawn"),
        "the message says what to do: {stderr}"
    );
}

#[test]
fn schema_prints_the_json_schema() {
    let output = sim(&["schema"]);
    assert_eq!(output.status.code(), Some(0));
    let schema: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(schema["properties"]["groups"].is_object());
}

#[test]
fn rest_clients_run_through_goose_beside_the_agents() {
    let out = tempfile::tempdir().unwrap();
    let output = sim(&[
        "run",
        scenario("rest.toml").to_str().unwrap(),
        "--duration",
        "4s",
        "--quiet",
        "--out",
        out.path().to_str().unwrap(),
    ]);
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("report.json")).unwrap())
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stderr)));
    let latencies = report["latencies"].as_array().unwrap();
    for op in [
        "http_health",
        "http_publish",
        "http_enqueue",
        "http_claim_ack",
    ] {
        let line = latencies
            .iter()
            .find(|l| l["operation"] == op)
            .unwrap_or_else(|| panic!("{op} latencies in the report"));
        assert!(line["summary"]["count"].as_u64().unwrap() > 10, "{line}");
    }
    assert!(
        report["latencies"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["operation"] == "publish_delivery")
    );
    let notes: Vec<&str> = report["notes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        notes
            .iter()
            .any(|n| n.starts_with("rest (goose) GET /health")),
        "{notes:?}"
    );
    assert!(
        !report["errors"]
            .as_object()
            .unwrap()
            .keys()
            .any(|k| k.starts_with("http_")),
        "{}",
        report["errors"]
    );
}

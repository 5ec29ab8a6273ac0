//! A small real capacity run, end to end through the `sim` binary.

use std::process::Command;

use serde_json::Value;

#[test]
fn a_two_point_sweep_writes_its_curve() {
    let out = tempfile::tempdir().unwrap();
    let scenario = concat!(env!("CARGO_MANIFEST_DIR"), "/../scenarios/ci/smoke.toml");
    let output = Command::new(env!("CARGO_BIN_EXE_sim"))
        .args([
            "capacity", scenario, "--vary", "rate", "--from", "20", "--to", "60", "--steps", "2",
        ])
        .args([
            "--point-duration",
            "2s",
            "--setups",
            "memory",
            "--quiet",
            "--out",
        ])
        .arg(out.path())
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("capacity.json")).unwrap())
            .unwrap();
    let points = report["setups"][0]["points"].as_array().unwrap();
    assert_eq!(points.len(), 2);
    for p in points {
        let run = &p["runs"][0];
        assert_eq!(run["loss_ratio"], 0.0, "{run}");
        assert!(run["delivered_per_s"].as_f64().unwrap() > 0.0);
        assert!(
            run["bus_health"].is_string(),
            "the bus's own view was collected: {run}"
        );
    }
    let html = std::fs::read_to_string(out.path().join("capacity.html")).unwrap();
    assert!(html.contains("<svg") && html.contains("warning") && html.contains("critical"));
    assert!(out.path().join("capacity.md").exists());
}

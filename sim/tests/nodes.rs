//! Per-node figures: a run on two spawned bus nodes reports, per node, the
//! agents the plan put there, their connects, the connections the node
//! itself reported, and its CPU and memory.

use std::process::Command;

use serde_json::Value;
use testkit::TestRedis;

const SCENARIO: &str = r#"
name = "two-nodes"
[target]
mode = "spawn"
broker = "redis"
nodes = 2

[[phases]]
name = "hold"
kind = "steady"
duration = "3s"

[[groups]]
name = "subscribers"
count = 7
behaviour = "subscriber"
topics = { count = 2 }

[[groups]]
name = "publishers"
count = 2
behaviour = "publisher"
rate = 5.0
topics = { count = 2 }
"#;

#[test]
fn two_spawned_nodes_report_per_node_figures() {
    let redis = TestRedis::new();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("two-nodes.toml");
    std::fs::write(&file, SCENARIO).unwrap();
    let out = dir.path().join("report");
    let output = Command::new(env!("CARGO_BIN_EXE_sim"))
        .args([
            "run",
            file.to_str().unwrap(),
            "--redis",
            &redis.url,
            "--quiet",
        ])
        .args(["--out", out.to_str().unwrap()])
        .env_remove("REDIS_URL")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let text = std::fs::read_to_string(out.join("report.json"))
        .unwrap_or_else(|e| panic!("{e}: {stderr}"));
    let report: Value = serde_json::from_str(&text).unwrap();
    let nodes = report["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 2, "{nodes:?}");
    // Agents alternate between the nodes: ids 0, 2, ... on the first.
    let agents: Vec<u64> = nodes
        .iter()
        .map(|n| n["agents"].as_u64().unwrap())
        .collect();
    assert_eq!(agents, [5, 4]);
    for node in nodes {
        assert_eq!(node["connects"], node["agents"], "{node}");
        assert_eq!(
            node["peak_connections"], node["agents"],
            "the node counted the agents it held: {node}"
        );
        assert!(
            node["cpu_percent"].is_f64(),
            "known for a spawned node: {node}"
        );
        assert!(node["peak_rss_bytes"].as_u64().unwrap() > 0, "{node}");
        assert!(
            report["health_timeline"]
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s["node"] == node["node"] && s["connections"].is_u64()),
            "connections are in the health timeline of {}",
            node["node"]
        );
    }
    let markdown = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(markdown.contains("## Bus nodes"), "{markdown}");
}

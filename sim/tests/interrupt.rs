//! Ctrl-C keeps what was measured: SIGINT (or SIGTERM) during a run stops
//! the schedule, drains briefly and writes the report of what happened so
//! far, marked interrupted, with exit code 13; every process the simulator
//! started (its redis-server, spawned bus nodes) is gone afterwards, and a
//! Redis it was given holds nothing of the run's namespace.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use testkit::RedisServer;

const SCENARIO: &str = r#"
name = "interrupted"
[target]
mode = "MODE"
broker = "redis"
nodes = NODES
[[phases]]
name = "steady"
kind = "steady"
duration = "60s"
[[groups]]
name = "subs"
count = 20
behaviour = "subscriber"
[[groups]]
name = "pubs"
count = 2
behaviour = "publisher"
rate = 20.0
[[groups]]
name = "producers"
count = 2
behaviour = "queue_producer"
rate = 20.0
[[groups]]
name = "chatters"
count = 4
behaviour = "direct_chatter"
rate = 2.0
delivery = "both"
"#;

/// The processes whose parent is `pid`.
fn children(pid: u32) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else {
            continue;
        };
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        let ppid: u32 = after.split(' ').nth(1).unwrap().parse().unwrap();
        if ppid == pid {
            found.push(child);
        }
    }
    found
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| !s[s.rfind(')').unwrap() + 2..].starts_with('Z'))
}

/// Starts `sim run` on the scenario, waits until it has started `expect`
/// children and its agents run, then signals it; returns its exit code,
/// its report and the children it had.
fn interrupt(
    mode: &str,
    nodes: u32,
    extra: &[&str],
    signal: &str,
    expect: usize,
) -> (i32, Value, Vec<u32>) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("interrupted.toml");
    let text = SCENARIO
        .replace("MODE", mode)
        .replace("NODES", &nodes.to_string());
    std::fs::write(&file, text).unwrap();
    let out = dir.path().join("report");
    let mut sim: Child = Command::new(env!("CARGO_BIN_EXE_sim"))
        .arg("run")
        .arg(&file)
        .args(extra)
        .args(["--quiet", "--out"])
        .arg(&out)
        .env_remove("REDIS_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut started = Vec::new();
    while Instant::now() < deadline {
        started = children(sim.id());
        if started.len() >= expect {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(started.len() >= expect, "children: {started:?}");
    // Let the agents connect and traffic flow.
    std::thread::sleep(Duration::from_secs(3));
    let status = Command::new("kill")
        .args([signal, &sim.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let begun = Instant::now();
    let code = sim.wait().unwrap().code().unwrap_or(-1);
    let stderr = std::io::read_to_string(sim.stderr.take().unwrap()).unwrap();
    assert!(
        begun.elapsed() < Duration::from_secs(20),
        "stopping took {:?}",
        begun.elapsed()
    );
    let report = read_report(&out, &stderr);
    (code, report, started)
}

fn read_report(dir: &Path, stderr: &str) -> Value {
    let text = std::fs::read_to_string(dir.join("report.json"))
        .unwrap_or_else(|e| panic!("no report after the signal ({e}): {stderr}"));
    serde_json::from_str(&text).unwrap()
}

fn assert_interrupted(code: i32, report: &Value) {
    assert_eq!(code, 13, "exit code of an interrupted run");
    let at = report["integrity"]["interrupted_at_s"].as_f64().unwrap();
    assert!((2.0..30.0).contains(&at), "interrupted at {at} s");
    assert!(
        report["run"]["duration_s"].as_f64().unwrap() < 30.0,
        "the 60 s schedule was stopped"
    );
    let pubsub = &report["ledger"]["classes"]["pubsub"];
    assert!(pubsub["delivered"].as_u64().unwrap() > 0, "{pubsub}");
    assert_eq!(pubsub["expected"], pubsub["delivered"], "drained: {pubsub}");
}

#[test]
fn sigint_writes_the_report_so_far_and_stops_every_process_started() {
    // Spawn mode without a Redis URL: the simulator starts a redis-server
    // and two bus nodes.
    let (code, report, started) = interrupt("spawn", 2, &[], "-INT", 3);
    assert_interrupted(code, &report);
    let left: Vec<u32> = started.into_iter().filter(|p| alive(*p)).collect();
    assert!(left.is_empty(), "processes left running: {left:?}");
}

#[test]
fn sigterm_leaves_nothing_of_the_run_in_a_given_redis() {
    let redis = RedisServer::start();
    let url = redis.url();
    let (code, report, _) = interrupt("embedded", 1, &["--redis", &url], "-TERM", 0);
    assert_interrupted(code, &report);
    let queue = &report["ledger"]["queue"];
    assert!(queue["enqueued"].as_u64().unwrap() > 0, "{queue}");
    let mut con = redis::Client::open(url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut con).unwrap();
    assert!(keys.is_empty(), "keys left in Redis: {keys:?}");
}

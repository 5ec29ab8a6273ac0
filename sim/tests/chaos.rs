//! Every chaos scenario runs, its fault is applied, and the ledger still
//! accounts for every queue message (enqueued = acked + dead-lettered +
//! still queued). What each fault must show is checked too: agents stay
//! connected through Redis outages while the bus reports itself unhealthy;
//! slow consumers lose only their own messages.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

fn run(name: &str) -> Value {
    let report = run_plain(name);
    let fault = &report["faults"][0];
    assert!(
        fault["error"].is_null(),
        "{name}: the fault was not applied: {fault}"
    );
    report
}

/// Runs `scenarios/chaos/<name>.toml` and returns its report. One run at
/// a time among the load tests: what a fault shows (the bus's health, the
/// time to resume) must not depend on what else shares the CPU.
fn run_plain(name: &str) -> Value {
    let _heavy = crate::support::HEAVY.blocking_lock();
    let out = tempfile::tempdir().unwrap();
    let scenario =
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../scenarios/chaos/{name}.toml"));
    let output = Command::new(env!("CARGO_BIN_EXE_sim"))
        .args(["run", scenario.to_str().unwrap(), "--quiet", "--out"])
        .arg(out.path())
        .env_remove("REDIS_URL")
        .output()
        .unwrap();
    let text = std::fs::read_to_string(out.path().join("report.json")).unwrap_or_else(|e| {
        panic!(
            "{name}: no report ({e}): {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    let report: Value = serde_json::from_str(&text).unwrap();
    let fault = &report["faults"][0];
    assert!(
        fault["error"].is_null(),
        "{name}: the fault was not applied: {fault}"
    );
    report
}

fn assert_queue_reconciled(name: &str, report: &Value) {
    let queue = &report["ledger"]["classes"]["queue"];
    assert!(
        queue["expected"].as_u64().unwrap() > 0,
        "{name}: no queue traffic"
    );
    assert_eq!(
        queue["expected"], queue["delivered"],
        "{name}: unaccounted queue messages: {}",
        report["ledger"]["queue"]
    );
    let note = report["notes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n.as_str().unwrap().starts_with("queue ledger"));
    assert!(
        note.unwrap().as_str().unwrap().contains("(reconciled)"),
        "{name}: {note:?}"
    );
}

fn assert_redis_outage(name: &str, report: &Value) {
    let fault = &report["faults"][0];
    assert_eq!(
        fault["disconnects"], 0,
        "{name}: agents stay connected to the bus: {fault}"
    );
    let health: Vec<&str> = fault["bus_health"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        health.contains(&"unhealthy"),
        "{name}: the bus reports the outage: {health:?}"
    );
    assert!(
        fault["resumed_after_s"].is_f64(),
        "{name}: delivery resumed: {fault}"
    );
}

#[test]
fn redis_restart() {
    let r = run("redis-restart");
    assert_queue_reconciled("redis-restart", &r);
    assert_redis_outage("redis-restart", &r);
}

#[test]
fn redis_pause() {
    let r = run("redis-pause");
    assert_queue_reconciled("redis-pause", &r);
    assert_redis_outage("redis-pause", &r);
}

#[test]
fn node_kill() {
    let r = run("node-kill");
    assert_queue_reconciled("node-kill", &r);
    let fault = &r["faults"][0];
    assert!(
        fault["disconnects"].as_u64().unwrap() > 0,
        "the killed node's agents lost their connection: {fault}"
    );
    assert_eq!(
        r["ledger"]["connections"]["connect_failures"], 0,
        "and reconnected"
    );
    // The restarted node's counters began again: the witness says so
    // instead of failing the run.
    assert_ne!(r["integrity"]["status"], "failed", "{}", r["integrity"]);
}

/// Pub/sub on topics with history: nothing lost, doubled or reordered,
/// across whatever the fault did; returns the pub/sub ledger.
fn assert_pubsub_whole<'a>(name: &str, report: &'a Value) -> &'a Value {
    let pubsub = &report["ledger"]["classes"]["pubsub"];
    assert!(
        pubsub["expected"].as_u64().unwrap() > 0,
        "{name}: no pub/sub"
    );
    assert_eq!(
        pubsub["expected"], pubsub["delivered"],
        "{name}: lost: {pubsub}"
    );
    for count in ["duplicated", "out_of_order", "misrouted", "recorded_lost"] {
        assert_eq!(pubsub[count], 0, "{name}: {count}: {pubsub}");
    }
    // Trusted, or inconclusive on a busy machine (the latency of what
    // waited through the outage may then be partly the simulator's), never
    // a witness that disagrees.
    assert_ne!(
        report["integrity"]["status"], "failed",
        "{name}: {}",
        report["integrity"]
    );
    pubsub
}

/// Some subscribers resumed, and every resume recovered.
fn assert_every_resume_recovered(pubsub: &Value) {
    let resumed = pubsub["resumed"].as_u64().unwrap();
    assert!(resumed > 0, "{pubsub}");
    assert_eq!(
        pubsub["recovered"], resumed,
        "every resume recovered: {pubsub}"
    );
}

#[test]
fn history_node_kill() {
    let r = run("history-node-kill");
    let pubsub = assert_pubsub_whole("history-node-kill", &r);
    assert!(r["faults"][0]["disconnects"].as_u64().unwrap() > 0);
    assert_every_resume_recovered(pubsub);
    assert!(
        pubsub["replayed"].as_u64().unwrap() > 0,
        "the outage was replayed: {pubsub}"
    );
}

#[test]
fn history_network_cut() {
    let r = run("history-network-cut");
    let pubsub = assert_pubsub_whole("history-network-cut", &r);
    assert!(r["faults"][0]["disconnects"].as_u64().unwrap() > 0);
    assert_every_resume_recovered(pubsub);
}

/// Redis restarted from its append-only file, then every connection cut:
/// the subscribers resume from offsets given out before the restart, and
/// recover because the history (and its epoch) came back with Redis.
#[test]
fn history_redis_restart() {
    let r = run("history-redis-restart");
    let health = r["faults"][0]["bus_health"].to_string();
    assert!(
        health.contains("unhealthy"),
        "the outage was seen: {health}"
    );
    let cut = &r["faults"][1];
    assert!(cut["error"].is_null(), "{cut}");
    assert!(cut["disconnects"].as_u64().unwrap() > 0, "{cut}");
    let pubsub = assert_pubsub_whole("history-redis-restart", &r);
    assert_every_resume_recovered(pubsub);
}

/// An outage longer than the history: the bus says so, and nothing is
/// claimed recovered.
#[test]
fn history_outage_too_long() {
    let r = run("history-outage-too-long");
    let pubsub = assert_pubsub_whole("history-outage-too-long", &r);
    let resumed = pubsub["resumed"].as_u64().unwrap();
    assert!(resumed > 0, "{pubsub}");
    assert_eq!(pubsub["not_recovered"], resumed, "{pubsub}");
    assert!(pubsub["recovered"].is_null(), "{pubsub}");
    assert!(pubsub["missed"].as_u64().unwrap() > 0, "{pubsub}");
}

#[test]
fn network_cut() {
    let r = run("network-cut");
    assert_queue_reconciled("network-cut", &r);
    assert!(r["faults"][0]["disconnects"].as_u64().unwrap() > 0);
}

#[test]
fn reconnect_storm() {
    let r = run("reconnect-storm");
    assert_queue_reconciled("reconnect-storm", &r);
    assert!(
        r["ledger"]["connections"]["connect_retries"]
            .as_u64()
            .unwrap()
            >= 31
    );
}

#[test]
fn crash_after_claim() {
    let r = run("crash-after-claim");
    assert_queue_reconciled("crash-after-claim", &r);
    let q = &r["ledger"]["queue"];
    assert!(q["crashed"].as_u64().unwrap() > 0, "{q}");
    assert!(
        q["redelivered"].as_u64().unwrap() > 0,
        "crashed jobs were reclaimed and delivered again: {q}"
    );
}

#[test]
fn slow_consumers() {
    let r = run("slow-consumers");
    let pubsub = &r["ledger"]["classes"]["pubsub"];
    assert_eq!(
        pubsub["expected"], pubsub["delivered"],
        "the others lose nothing: {pubsub}"
    );
    let note = r["notes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .find(|n| n.starts_with("slow consumers"));
    assert!(
        note.is_some(),
        "the slow consumers' figures are reported apart"
    );
    assert!(
        r["faults"][0]["disconnects"].as_u64().unwrap() > 0,
        "the policy disconnected them"
    );
    let ops: Vec<&str> = r["latencies"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l["operation"].as_str())
        .collect();
    assert!(
        ops.contains(&"publish_delivery") && ops.contains(&"slow_delivery"),
        "{ops:?}"
    );
}

#[test]
fn adversaries_find_no_hole() {
    let r = run_plain("adversaries");
    let security = &r["ledger"]["security"];
    assert!(security["attempts"].as_u64().unwrap() > 0, "{security}");
    assert_eq!(
        security["attempts"], security["denied"],
        "every attempt refused: {security}"
    );
    assert_eq!(security["breaches"], 0);
    assert!(
        security["token_attempts"].as_u64().unwrap() > 0,
        "bad tokens were tried"
    );
    assert_eq!(
        security["token_attempts"], security["token_denied"],
        "every bad token got 401"
    );
    for (class, ledger) in r["ledger"]["classes"].as_object().unwrap() {
        assert_eq!(
            ledger["misrouted"], 0,
            "{class}: a message reached another workspace"
        );
    }
    assert_eq!(r["verdicts"]["security"]["status"], "healthy");
}

#[test]
fn resource_attacks_are_bounded_and_nobody_else_notices() {
    let r = run("resource-attacks");
    let security = &r["ledger"]["security"];
    assert!(
        security["floods"].as_u64().unwrap() > 0,
        "floods were sent: {security}"
    );
    assert!(
        security["floods_refused"].as_u64().unwrap() > 0,
        "the bus bounded them with limit_exceeded: {security}"
    );
    assert_eq!(security["breaches"], 0, "{security}");
    assert_eq!(
        security["attempts"], security["denied"],
        "every crossing refused: {security}"
    );
    assert!(
        r["faults"][0]["disconnects"].as_u64().unwrap() > 0,
        "the slow readers were reaped"
    );
    let pubsub = &r["ledger"]["classes"]["pubsub"];
    assert!(pubsub["expected"].as_u64().unwrap() > 0, "{pubsub}");
    assert_eq!(
        pubsub["expected"], pubsub["delivered"],
        "the others lose nothing: {pubsub}"
    );
    assert_queue_reconciled("resource-attacks", &r);
    for (class, ledger) in r["ledger"]["classes"].as_object().unwrap() {
        assert_eq!(ledger["misrouted"], 0, "{class}: a message leaked");
        assert_eq!(ledger["expected"], ledger["delivered"], "{class}: {ledger}");
    }
    assert_eq!(r["verdicts"]["security"]["status"], "healthy");
}

/// Every file in `scenarios/chaos/` is run by a test of this file: a chaos
/// scenario added later fails here until it gets one.
#[test]
fn every_chaos_scenario_has_a_test() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/chaos");
    let source = include_str!("chaos.rs");
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let stem = path.file_stem().unwrap().to_str().unwrap().to_owned();
            if !source.contains(&format!("run(\"{stem}\")"))
                && !source.contains(&format!("run_plain(\"{stem}\")"))
            {
                missing.push(stem);
            }
        }
    }
    assert!(
        missing.is_empty(),
        "chaos scenarios without a test: {missing:?}"
    );
}

//! Sharded runs end to end: the smoke scenario run whole against one bus
//! process and as three `sim run --shard i/3 --start-at T` processes
//! against another, then `sim merge`d: the merged report counts what the
//! whole run counted. Plus the refusals of `sim merge` and `--start-at`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use crate::support::Bus;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

const SIM: &str = env!("CARGO_BIN_EXE_sim");

fn smoke() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/ci/smoke.toml")
}

fn sim(args: &[&str]) -> Command {
    let mut command = Command::new(SIM);
    command.args(args).env_remove("REDIS_URL");
    command
}

fn finished(output: Output) -> (i32, String) {
    (
        output.status.code().expect("an exit code"),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn report(dir: &Path) -> Value {
    let text = std::fs::read_to_string(dir.join("report.json"))
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    serde_json::from_str(&text).unwrap()
}

/// Sample counts per operation.
fn samples(report: &Value, op: &str) -> u64 {
    report["latencies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["operation"] == op)
        .map_or(0, |l| l["summary"]["count"].as_u64().unwrap())
}

fn sent(report: &Value) -> u64 {
    report["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["sent"].as_u64().unwrap())
        .sum()
}

/// Runs the smoke scenario as `count` shards against `bus`, all starting
/// at one instant a few seconds ahead; returns the shards' directories.
fn run_shards(bus: &Bus, count: u32, root: &Path) -> Vec<PathBuf> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let start = UNIX_EPOCH + Duration::from_secs(now.as_secs() + 4);
    let dirs: Vec<PathBuf> = (0..count)
        .map(|i| root.join(format!("shard-{i}")))
        .collect();
    let children: Vec<Child> = dirs
        .iter()
        .enumerate()
        .map(|(i, dir)| {
            // Both spellings of the same instant.
            let start_at = if i % 2 == 0 {
                start
                    .duration_since(UNIX_EPOCH)
                    .unwrap()
                    .as_secs()
                    .to_string()
            } else {
                humantime::format_rfc3339_seconds(start).to_string()
            };
            let shard = format!("{i}/{count}");
            sim(&[
                "run",
                smoke().to_str().unwrap(),
                "--target",
                &bus.url,
                "--shard",
                &shard,
                "--start-at",
                &start_at,
                "--quiet",
                "--out",
                dir.to_str().unwrap(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
        })
        .collect();
    for (child, dir) in children.into_iter().zip(&dirs) {
        let (code, stderr) = finished(child.wait_with_output().unwrap());
        assert!(
            dir.join("shard.json").exists(),
            "{} (exit {code}): {stderr}",
            dir.display()
        );
        assert_eq!(
            report(dir)["run"]["started_at"],
            humantime::format_rfc3339_seconds(start).to_string(),
            "every shard starts at --start-at"
        );
    }
    dirs
}

#[test]
fn three_shards_merged_count_what_one_whole_run_counts() {
    let root = tempfile::tempdir().unwrap();
    let whole_dir = root.path().join("whole");
    let whole_bus = Bus::start();
    let (code, stderr) = finished(
        sim(&[
            "run",
            smoke().to_str().unwrap(),
            "--target",
            &whole_bus.url,
            "--quiet",
            "--out",
            whole_dir.to_str().unwrap(),
        ])
        .output()
        .unwrap(),
    );
    drop(whole_bus);
    let whole = report(&whole_dir);
    assert!(!whole_dir.join("shard.json").exists(), "{code}: {stderr}");

    let shard_bus = Bus::start();
    let dirs = run_shards(&shard_bus, 3, root.path());
    drop(shard_bus);
    let merged_dir = root.path().join("merged");
    let (code, stderr) = finished(
        sim(&[
            "merge",
            dirs[2].to_str().unwrap(),
            dirs[0].to_str().unwrap(),
            dirs[1].to_str().unwrap(),
            "--quiet",
            "--out",
            merged_dir.to_str().unwrap(),
        ])
        .output()
        .unwrap(),
    );
    let merged = report(&merged_dir);
    let verdict_code = match merged["verdicts"]["overall"].as_str().unwrap() {
        "healthy" => 0,
        "warning" => 10,
        _ => 11,
    };
    assert_eq!(code, verdict_code, "{stderr}");
    for file in [
        "report.md",
        "report.html",
        "snapshot.json",
        "hdr/publish_delivery.hlog",
    ] {
        assert!(merged_dir.join(file).exists(), "{file}");
    }
    assert_eq!(merged["merged"]["shards"], 3);
    assert_eq!(
        merged["scenario"]["content_hash"],
        whole["scenario"]["content_hash"]
    );

    let classes = whole["ledger"]["classes"].as_object().unwrap();
    assert_eq!(classes.len(), 5, "every class ran: {classes:?}");
    for (class, counts) in classes {
        let m = &merged["ledger"]["classes"][class];
        for field in ["expected", "delivered", "duplicated", "misrouted"] {
            assert_eq!(m[field], counts[field], "{class}.{field}: {m} vs {counts}");
        }
        assert!(counts["expected"].as_u64().unwrap() > 0, "{class}");
    }
    assert_eq!(
        merged["ledger"]["queue"]["enqueued"],
        whole["ledger"]["queue"]["enqueued"]
    );
    for field in ["target", "achieved"] {
        assert_eq!(
            merged["connections"][field], whole["connections"][field],
            "{field}"
        );
    }
    for op in [
        "connect",
        "publish_delivery",
        "direct_rtt",
        "broadcast_first",
        "broadcast_last",
        "queue_wait",
    ] {
        assert_eq!(samples(&merged, op), samples(&whole, op), "{op}");
    }
    assert_eq!(sent(&merged), sent(&whole), "messages sent");
    let agents: u64 = merged["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["agents"].as_u64().unwrap())
        .sum();
    assert_eq!(agents, 50, "per-node figures add up: {}", merged["nodes"]);

    // Incomplete or repeated sets are refused, naming the problem.
    let out = root.path().join("refused");
    let refused = |dirs: &[&Path]| {
        let mut args = vec!["merge"];
        args.extend(dirs.iter().map(|d| d.to_str().unwrap()));
        args.extend(["--out", out.to_str().unwrap()]);
        finished(sim(&args).output().unwrap())
    };
    let (code, stderr) = refused(&[&dirs[0], &dirs[1]]);
    assert_eq!(code, 2);
    assert!(stderr.contains("shard 2/3 missing"), "{stderr}");
    let (code, stderr) = refused(&[&dirs[0], &dirs[1], &dirs[1]]);
    assert_eq!(code, 2);
    assert!(stderr.contains("shard 1/3 given twice"), "{stderr}");
    let (code, stderr) = refused(&[&whole_dir]);
    assert_eq!(code, 2);
    assert!(stderr.contains("shard.json"), "{stderr}");
    assert!(!out.exists(), "nothing written when refused");
}

#[test]
fn a_start_time_in_the_past_is_refused_before_anything_runs() {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("report");
    let past = (now - 60).to_string();
    let scenario = smoke();
    let args = [
        "run",
        scenario.to_str().unwrap(),
        "--start-at",
        &past,
        "--quiet",
        "--out",
        dir.to_str().unwrap(),
    ];
    let (code, stderr) = finished(sim(&args).output().unwrap());
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("s ago"), "{stderr}");
    assert!(!dir.exists());

    let (code, stderr) = finished(
        sim(&["run", smoke().to_str().unwrap(), "--start-at", "noon"])
            .output()
            .unwrap(),
    );
    assert_eq!(code, 2);
    assert!(stderr.contains("RFC 3339"), "{stderr}");
}

//! Every shipped scenario is a test: each file in `scenarios/`,
//! `scenarios/ci/` and `scenarios/bench/` runs (shortened and scaled down
//! as its `# ci:` line says) on a healthy bus, and must show zero lost,
//! misrouted and duplicated messages in every class, an integrity check
//! that did not fail, and every verdict its `# expect:` lines claim. A file
//! added later is picked up without editing this test; one without an
//! `# expect:` line fails it. (The chaos scenarios have their own tests in
//! `chaos.rs`, which checks that every one of them has one.)
//!
//! The claim lines, in a scenario's leading comments:
//!
//! - `# expect: healthy` (or `warning`, `critical`): every verdict;
//! - `# expect: OPERATION = STATUS`: one operation's verdict (e.g.
//!   `# expect: connect = warning`);
//! - `# expect: OPERATION <= STATUS`: that verdict or a better one (for a
//!   benchmark whose strict target only a release build on a quiet machine
//!   is sure to meet);
//! - `# ci: FLAGS`: the `sim run` flags of the CI run (e.g. `--duration 6s
//!   --scale-agents 0.1`); without it, the file runs as written.
//!
//! A verdict worse than claimed passes only when the run marked it
//! inconclusive (the simulator said it could not keep its schedule, on a
//! CI machine shared with other tests), and then the report must say why.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::support::{Bus, HEAVY};

/// What a scenario file claims of its CI run.
#[derive(Debug, Default)]
struct Claims {
    /// The status of every verdict not named.
    all: Option<String>,
    /// Per operation: the status, and whether a better one passes too.
    operations: BTreeMap<String, (String, bool)>,
    /// `sim run` flags.
    flags: Vec<String>,
}

fn claims(file: &Path) -> Claims {
    let text = std::fs::read_to_string(file).unwrap();
    let mut claims = Claims::default();
    let mut flags = None;
    for line in text.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("# expect:") {
            match rest.split_once('=') {
                Some((op, status)) => {
                    let (op, at_most) = match op.trim().strip_suffix('<') {
                        Some(op) => (op, true),
                        None => (op, false),
                    };
                    claims
                        .operations
                        .insert(op.trim().to_owned(), (status.trim().to_owned(), at_most));
                }
                None => claims.all = Some(rest.trim().to_owned()),
            }
        } else if let Some(rest) = line.strip_prefix("# ci:") {
            flags = Some(rest.split_whitespace().map(str::to_owned).collect());
        }
    }
    claims.flags = flags.unwrap_or_default();
    let named = claims.operations.values().map(|(s, _)| s);
    for status in claims.all.iter().chain(named) {
        assert!(
            ["healthy", "warning", "critical"].contains(&status.as_str()),
            "{}: `# expect:` takes healthy, warning or critical, not {status:?}",
            file.display()
        );
    }
    claims
}

fn shipped() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let mut files = Vec::new();
    for dir in [root.clone(), root.join("ci"), root.join("bench")] {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// Runs one file as its `# ci:` line says and returns its report.
fn run(file: &Path, claims: &Claims) -> Value {
    let out = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(file).unwrap();
    let external = text.contains("mode = \"external\"");
    // An external scenario names bus URLs someone else runs: CI runs one.
    let bus = external.then(Bus::start);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sim"));
    cmd.arg("run")
        .arg(file)
        .args(&claims.flags)
        .args(["--quiet", "--out"])
        .arg(out.path())
        .env_remove("REDIS_URL");
    if let Some(bus) = &bus {
        cmd.args(["--target", &bus.url]);
    }
    let output = cmd.output().unwrap();
    let report = std::fs::read_to_string(out.path().join("report.json")).unwrap_or_else(|e| {
        panic!(
            "{}: no report ({e}), exit {:?}: {}",
            file.display(),
            output.status.code(),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    serde_json::from_str(&report).unwrap()
}

/// What is wrong with `report` against the claims, one line each.
fn problems(report: &Value, claims: &Claims) -> Vec<String> {
    let mut problems = Vec::new();
    if report["integrity"]["status"] == "failed" {
        problems.push(format!(
            "integrity check failed: {}",
            report["integrity"]["findings"]
        ));
    }
    for (class, c) in report["ledger"]["classes"].as_object().unwrap() {
        let lost = c["expected"].as_u64().unwrap() as i64 - c["delivered"].as_u64().unwrap() as i64;
        for (what, n) in [
            ("lost", lost),
            ("misrouted", c["misrouted"].as_i64().unwrap()),
            ("duplicated", c["duplicated"].as_i64().unwrap()),
        ] {
            if n != 0 {
                problems.push(format!("{class}: {n} {what}"));
            }
        }
    }
    let verdicts = &report["verdicts"];
    if verdicts["connections"]["status"] != "healthy" {
        problems.push(format!("connections: {}", verdicts["connections"]));
    }
    if let Some(security) = verdicts.get("security")
        && security["status"] != "healthy"
    {
        problems.push(format!("security: {security}"));
    }
    for v in verdicts["operations"].as_array().unwrap() {
        let op = v["operation"].as_str().unwrap();
        let status = v["status"].as_str().unwrap();
        let (claimed, at_most) = match (claims.operations.get(op), &claims.all) {
            (Some((status, at_most)), _) => (status, *at_most),
            (None, Some(all)) => (all, false),
            (None, None) => continue,
        };
        let inconclusive = v["inconclusive"] == true;
        let better = at_most && rank(status) < rank(claimed);
        if status != claimed && !better && !(inconclusive && rank(status) > rank(claimed)) {
            problems.push(format!(
                "{op}: {status} (p{} {} ms), the file claims {claimed}",
                v["percentile"], v["value_ms"]
            ));
        }
        if inconclusive && report["integrity"]["saturation"].is_null() {
            problems.push(format!("{op}: inconclusive without saying why"));
        }
    }
    for op in claims.operations.keys() {
        let judged = verdicts["operations"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["operation"] == op.as_str());
        if !judged {
            problems.push(format!("{op}: claimed, but the run did not judge it"));
        }
    }
    problems
}

fn rank(status: &str) -> u8 {
    match status {
        "healthy" => 0,
        "warning" => 1,
        _ => 2,
    }
}

#[test]
fn every_shipped_scenario_runs_clean_and_as_its_comments_claim() {
    let _heavy = HEAVY.blocking_lock();
    let files = shipped();
    assert!(files.len() >= 10, "{files:?}");
    let mut failures = Vec::new();
    for file in &files {
        let claims = claims(file);
        let name = file.display().to_string();
        if claims.all.is_none() && claims.operations.is_empty() {
            failures.push(format!(
                "{name}: no `# expect:` line says what a healthy bus shows"
            ));
            continue;
        }
        let started = std::time::Instant::now();
        let report = run(file, &claims);
        eprintln!(
            "{name}: {} in {:.1} s ({})",
            report["verdicts"]["overall"],
            started.elapsed().as_secs_f64(),
            claims.flags.join(" ")
        );
        failures.extend(
            problems(&report, &claims)
                .into_iter()
                .map(|p| format!("{name}: {p}")),
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn claim_lines_are_read_as_documented() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("s.toml");
    std::fs::write(
        &file,
        "# expect: healthy\n# expect: connect = warning\n# expect: queue_wait <= warning\n# ci: --duration 3s --scale-agents 0.5\nname = \"s\"\n",
    )
    .unwrap();
    let c = claims(&file);
    assert_eq!(c.all.as_deref(), Some("healthy"));
    assert_eq!(c.operations["connect"], ("warning".to_owned(), false));
    assert_eq!(c.operations["queue_wait"], ("warning".to_owned(), true));
    assert_eq!(c.flags, ["--duration", "3s", "--scale-agents", "0.5"]);
    let report = serde_json::json!({
        "integrity": {"status": "trusted", "saturation": null},
        "ledger": {"classes": {"pubsub": {"expected": 10, "delivered": 9, "misrouted": 0, "duplicated": 1}}},
        "verdicts": {
            "connections": {"status": "healthy"},
            "operations": [
                {"operation": "connect", "status": "healthy", "percentile": 99.0, "value_ms": 3.0},
                {"operation": "queue_wait", "status": "healthy", "percentile": 99.0, "value_ms": 3.0},
                {"operation": "publish_delivery", "status": "critical", "percentile": 99.0, "value_ms": 300.0, "inconclusive": true}
            ]
        }
    });
    let found = problems(&report, &c);
    assert_eq!(
        found,
        [
            "pubsub: 1 lost",
            "pubsub: 1 duplicated",
            "connect: healthy (p99.0 3.0 ms), the file claims warning",
            "publish_delivery: inconclusive without saying why",
        ],
        "{found:?}"
    );
}

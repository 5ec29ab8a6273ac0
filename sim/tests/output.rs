//! What a run prints is what a person needs: no colour codes when stderr is
//! not a terminal, no development-mode warning from the simulator's own
//! embedded bus, no reconnect noise once the simulator has stopped its own
//! Redis, the drain announced with the run's length, and a progress line
//! that never counts an agent twice.

use std::path::Path;
use std::process::Command;

const SIM: &str = env!("CARGO_BIN_EXE_sim");

#[test]
fn a_run_on_its_own_redis_prints_plain_text_and_nothing_spurious() {
    let out = tempfile::tempdir().unwrap();
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/queue-workers.toml");
    let output = Command::new(SIM)
        .args([
            "run",
            scenario.to_str().unwrap(),
            "--duration",
            "3s",
            "--out",
        ])
        .arg(out.path().join("report"))
        .env_remove("REDIS_URL")
        .env_remove("NO_COLOR")
        // Info lines too, so that colour codes would show if they were on.
        .env("RUST_LOG", "info")
        .output()
        .expect("run sim");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.code().is_some_and(|c| c < 12),
        "the run itself failed: {stderr}"
    );
    let logged = stderr.lines().filter(|l| l.contains(" INFO ")).count();
    assert!(logged > 0, "no log line to judge: {stderr}");
    assert!(
        !stderr.contains('\u{1b}'),
        "colour codes in piped output: {stderr:?}"
    );
    assert!(!stderr.contains("development mode"), "{stderr}");
    assert!(!stderr.contains("reconnect"), "{stderr}");
    let first = stderr.lines().next().unwrap_or_default();
    assert!(
        first.contains("(40 agents, 3s of phases, then a drain of up to 5s)"),
        "{first}"
    );
    let mut progress = 0;
    for line in stderr.lines().filter(|l| l.contains(" agents ")) {
        let counts = line.split(" agents ").nth(1).unwrap();
        let (online, total) = counts.split_once(' ').unwrap().0.split_once('/').unwrap();
        let (online, total): (u64, u64) = (online.parse().unwrap(), total.parse().unwrap());
        assert!(online <= total, "{line}");
        progress += 1;
    }
    assert!(progress > 0, "no progress line: {stderr}");
}

#[test]
fn an_unreachable_target_is_reported_as_such_and_nothing_claims_to_start() {
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/ci/smoke.toml");
    // A port nobody listens on: bind one, then let it go.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let target = format!("ws://127.0.0.1:{port}");
    let output = Command::new(SIM)
        .args([
            "run",
            scenario.to_str().unwrap(),
            "--target",
            &target,
            "--quiet",
        ])
        .env_remove("REDIS_URL")
        .output()
        .expect("run sim");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("cannot use the bus under test"), "{stderr}");
    assert!(stderr.contains("is not reachable"), "{stderr}");
    assert!(!stderr.contains("cannot start"), "{stderr}");
}

#[test]
fn the_help_names_baseline_files_that_exist() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for command in ["check", "baseline"] {
        let output = Command::new(SIM)
            .args([command, "--help"])
            .output()
            .unwrap();
        let help = String::from_utf8_lossy(&output.stdout);
        let named: Vec<&str> = help
            .split(|c: char| c.is_whitespace() || c == '(' || c == ')')
            .filter(|w| w.starts_with("reports/baselines/"))
            .collect();
        assert!(
            !named.is_empty(),
            "sim {command} --help names no baseline:\n{help}"
        );
        for file in named {
            assert!(
                root.join(file).exists(),
                "sim {command} --help names {file}, which does not exist"
            );
        }
    }
}

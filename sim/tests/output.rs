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

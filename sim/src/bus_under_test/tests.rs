//! Tests of the target with real processes: an in-process bus, `bus` child
//! processes, private redis-servers.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message;

use super::*;
use crate::procstat;

/// The `bus` binary of this build (`target/<profile>/bus`, next to the
/// `deps/` directory this test runs from), built once with cargo if missing
/// (e.g. after `cargo test -p sim`).
fn bus_binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY
        .get_or_init(|| {
            let exe = std::env::current_exe().expect("the test executable's path");
            let profile_dir = exe
                .parent()
                .and_then(Path::parent)
                .expect("tests run from target/<profile>/deps");
            let binary = profile_dir.join(format!("bus{}", std::env::consts::EXE_SUFFIX));
            if !binary.is_file() {
                build_bus(profile_dir);
            }
            assert!(binary.is_file(), "{} is missing", binary.display());
            binary
        })
        .clone()
}

/// `cargo build -p bus` into the target directory holding `profile_dir`.
fn build_bus(profile_dir: &Path) {
    let cargo = option_env!("CARGO").unwrap_or("cargo");
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    let mut command = std::process::Command::new(cargo);
    command
        .args(["build", "-p", "bus", "--bin", "bus", "--manifest-path"])
        .arg(&manifest);
    if profile_dir.ends_with("release") {
        command.arg("--release");
    }
    if let Some(target_dir) = profile_dir.parent() {
        command.env("CARGO_TARGET_DIR", target_dir);
    }
    let status = command.status().expect("run cargo to build the bus binary");
    assert!(status.success(), "cargo build -p bus failed: {status}");
}

fn spawn_options() -> TargetOptions {
    TargetOptions {
        bus_binary: Some(bus_binary()),
        ..TargetOptions::default()
    }
}

async fn health_of(http_url: &str) -> HealthResponse {
    HealthProbe::new(Duration::from_secs(10))
        .check(http_url)
        .await
        .unwrap_or_else(|err| panic!("GET {http_url}/health: {err}"))
}

/// Connects as agent `a` in workspace `w` and returns the welcome frame.
async fn welcome(ws_url: &str) -> serde_json::Value {
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("{ws_url}?agent=a&workspace=w"))
        .await
        .unwrap_or_else(|err| panic!("connect to {ws_url}: {err}"));
    let frame = tokio::time::timeout(Duration::from_secs(10), socket.next())
        .await
        .expect("a welcome frame within 10 s")
        .expect("an open socket")
        .expect("a frame");
    let Message::Text(text) = frame else {
        panic!("expected a text frame, got {frame:?}");
    };
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(value["op"], "welcome", "{value}");
    value
}

/// Whether process `pid` is gone or a zombie (killed, not yet reaped).
fn is_dead(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
    }
}

#[tokio::test]
async fn embedded_memory_bus_answers_health() {
    let bus = RunningTarget::start(&Target::default(), &TargetOptions::default())
        .await
        .unwrap();
    assert_eq!(bus.node_count(), 1);
    assert_eq!(bus.description, "embedded bus on memory");
    assert_eq!(bus.broker, "memory");
    assert!(bus.embedded.is_some() && bus.bus_pids.is_empty() && bus.redis_pid.is_none());
    assert!(
        bus.ws_urls[0].starts_with("ws://127.0.0.1:") && bus.ws_urls[0].ends_with("/ws/connect")
    );
    let health = health_of(&bus.http_urls[0]).await;
    assert_eq!(health.http_status, 200);
    assert_eq!(health.report.broker, "memory");
    assert_eq!(welcome(&bus.ws_urls[0]).await["node"], "embedded");
    bus.stop().await.unwrap();
}

#[tokio::test]
async fn embedded_bus_on_a_private_redis() {
    let target = Target {
        broker: BrokerKind::Redis,
        ..Target::default()
    };
    let bus = RunningTarget::start(&target, &TargetOptions::default())
        .await
        .unwrap();
    let redis_pid = bus.redis_pid.expect("the sim started redis-server");
    let url = bus.redis_url.clone().unwrap();
    assert!(url.starts_with("redis://127.0.0.1:"), "{url}");
    assert_eq!(bus.description, format!("embedded bus on {url}"));
    assert!(bus.namespace.as_deref().unwrap().starts_with("sim-"));
    assert_eq!(health_of(&bus.http_urls[0]).await.report.broker, "redis");
    bus.stop().await.unwrap();
    assert!(is_dead(redis_pid), "redis-server {redis_pid} still runs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_spawned_nodes_on_a_private_redis() {
    let target = Target {
        mode: TargetMode::Spawn,
        broker: BrokerKind::Redis,
        nodes: 2,
        ..Target::default()
    };
    let bus = RunningTarget::start(&target, &spawn_options())
        .await
        .unwrap();
    assert_eq!(bus.node_count(), 2);
    assert_eq!(bus.bus_pids.len(), 2);
    assert!(
        bus.description
            .starts_with("2 spawned bus nodes on redis://127.0.0.1:")
    );
    for (i, (ws_url, http_url)) in bus.ws_urls.iter().zip(&bus.http_urls).enumerate() {
        let health = health_of(http_url).await;
        assert_eq!(health.report.node, format!("node-{i}"));
        assert_eq!(health.report.broker, "redis");
        assert_eq!(welcome(ws_url).await["node"], format!("node-{i}"));
    }
    for pid in &bus.bus_pids {
        assert!(procstat::sample(*pid).is_some_and(|s| s.rss_bytes > 0));
    }
    let pids = bus.bus_pids.clone();
    let redis_pid = bus.redis_pid.unwrap();
    bus.stop().await.unwrap();
    for pid in pids.into_iter().chain([redis_pid]) {
        assert!(is_dead(pid), "process {pid} survived stop");
    }
}

#[tokio::test]
async fn dropping_a_spawned_target_kills_its_nodes() {
    let target = Target {
        mode: TargetMode::Spawn,
        ..Target::default()
    };
    let bus = RunningTarget::start(&target, &spawn_options())
        .await
        .unwrap();
    assert_eq!(bus.description, "1 spawned bus node on memory");
    let pid = bus.bus_pids[0];
    drop(bus);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !is_dead(pid) {
        assert!(
            Instant::now() < deadline,
            "bus node {pid} outlived its target"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn spawn_refuses_shared_memory_and_explains_a_missing_binary() {
    let memory_pair = Target {
        mode: TargetMode::Spawn,
        nodes: 2,
        ..Target::default()
    };
    let err = RunningTarget::start(&memory_pair, &spawn_options())
        .await
        .unwrap_err();
    assert!(
        matches!(err, TargetError::MemoryBrokerNodes { nodes: 2 }),
        "{err}"
    );

    let options = TargetOptions {
        bus_binary: Some(PathBuf::from("/nonexistent/bus")),
        ..TargetOptions::default()
    };
    let one = Target {
        mode: TargetMode::Spawn,
        ..Target::default()
    };
    let err = RunningTarget::start(&one, &options)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("/nonexistent/bus"), "{err}");
    assert!(
        err.contains("cargo build --release -p bus") && err.contains("BUS_BIN"),
        "{err}"
    );
}

#[tokio::test]
async fn external_mode_checks_the_given_urls() {
    let embedded = RunningTarget::start(&Target::default(), &TargetOptions::default())
        .await
        .unwrap();
    let addr = embedded.http_urls[0]
        .trim_start_matches("http://")
        .to_owned();
    let target = Target {
        mode: TargetMode::External,
        urls: vec![format!("ws://{addr}")],
        ..Target::default()
    };
    let external = RunningTarget::start(&target, &TargetOptions::default())
        .await
        .unwrap();
    assert_eq!(external.ws_urls, embedded.ws_urls);
    assert_eq!(external.http_urls, embedded.http_urls);
    assert_eq!(external.broker, "memory");
    assert_eq!(
        external.description,
        format!("external: {}", embedded.ws_urls[0])
    );
    assert!(external.embedded.is_none() && external.bus_pids.is_empty());
    welcome(&external.ws_urls[0]).await;
    external.stop().await.unwrap();
    // External nodes are not ours to stop.
    health_of(&embedded.http_urls[0]).await;

    // --target wins over the scenario, in any accepted form.
    let options = TargetOptions {
        urls: vec![format!("http://{addr}/")],
        ..TargetOptions::default()
    };
    let overridden = RunningTarget::start(&Target::default(), &options)
        .await
        .unwrap();
    assert_eq!(overridden.ws_urls, embedded.ws_urls);
    embedded.stop().await.unwrap();
}

#[tokio::test]
async fn external_mode_names_a_dead_url() {
    let dead = format!("ws://127.0.0.1:{}/ws/connect", testkit::free_port());
    let options = TargetOptions {
        urls: vec![dead.clone()],
        ..TargetOptions::default()
    };
    let err = RunningTarget::start(&Target::default(), &options)
        .await
        .unwrap_err();
    assert!(matches!(err, TargetError::Unreachable { .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains(&dead) && text.contains("/health"), "{text}");

    let external = Target {
        mode: TargetMode::External,
        ..Target::default()
    };
    let err = RunningTarget::start(&external, &TargetOptions::default()).await;
    assert!(matches!(err, Err(TargetError::NoUrls)));
}

#[test]
fn credentials_never_reach_descriptions() {
    assert_eq!(
        redact_url("redis://:secret@db:6379/0"),
        "redis://***@db:6379/0"
    );
    assert_eq!(
        redact_url("redis://127.0.0.1:6379/"),
        "redis://127.0.0.1:6379/"
    );
    assert_ne!(unique_namespace(), unique_namespace());
}

//! The health checker live against every backend (memory, Redis, a Redis
//! Cluster), against a Redis that has gone away, and on a served node,
//! whose checks also time the node itself (runtime lag, the delivery path).

use std::sync::Arc;
use std::time::Duration;

use bus::broker::redis::RedisBroker;
use bus::health::{CheckKind, HealthChecker, HealthStatus, HealthThresholds};
use bus::router::{MessageRouter, RouterConfig};
use testkit::RedisServer;

use crate::support;

async fn checker(backend: &support::Backend) -> HealthChecker {
    let router = MessageRouter::new(backend.broker.clone(), RouterConfig::default())
        .await
        .unwrap();
    HealthChecker::new(router, "node-1", HealthThresholds::default())
}

/// A checker without a served node runs every probe but `delivery`.
const WITHOUT_NODE: usize = CheckKind::ALL.len() - 1;

fn assert_consistent(report: &bus::health::HealthReport, thresholds: HealthThresholds) {
    assert_eq!(report.checks.len(), WITHOUT_NODE);
    for check in &report.checks {
        assert_eq!(check.error, None, "{:?} failed", check.check);
        let latency = Duration::from_secs_f64(check.latency_ms / 1000.0);
        assert_eq!(check.status, thresholds.judge(latency), "{:?}", check.check);
        assert!(check.history.count >= 1);
    }
    let worst = report.checks.iter().map(|c| c.status).max().unwrap();
    assert_eq!(report.status, worst);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_check_on_redis_runs_the_redis_and_runtime_probes() {
    let backend = support::redis().await;
    let checker = checker(&backend).await;
    let first = checker.check().await;
    let second = checker.check().await;
    assert_eq!(first.broker, "redis");
    assert_consistent(&first, checker.thresholds());
    assert_consistent(&second, checker.thresholds());
    let kinds: Vec<CheckKind> = second.checks.iter().map(|c| c.check).collect();
    assert_eq!(kinds, CheckKind::ALL[..WITHOUT_NODE]);
    assert_eq!(checker.latency_stats()[&CheckKind::PubSub].count, 2);
    assert_eq!(checker.last_report(), Some(second));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_check_on_a_redis_cluster_runs_the_redis_and_runtime_probes() {
    let backend = support::redis_cluster().await;
    let checker = checker(&backend).await;
    let first = checker.check().await;
    let second = checker.check().await;
    assert_eq!(first.broker, "redis");
    assert_consistent(&first, checker.thresholds());
    assert_consistent(&second, checker.thresholds());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_check_on_memory_runs_the_redis_and_runtime_probes() {
    let backend = support::memory().await;
    let checker = checker(&backend).await;
    let report = checker.check().await;
    assert_eq!(report.broker, "memory");
    assert_consistent(&report, checker.thresholds());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_redis_is_unhealthy_and_recovery_is_seen() {
    let mut server = RedisServer::start();
    let broker = RedisBroker::connect(&server.url()).await.unwrap();
    let router = MessageRouter::new(Arc::new(broker), RouterConfig::default())
        .await
        .unwrap();
    let checker = HealthChecker::new(router, "node-1", HealthThresholds::default());
    assert!(
        checker
            .check()
            .await
            .checks
            .iter()
            .all(|c| c.error.is_none())
    );

    server.stop();
    let down = checker.check().await;
    assert_eq!(down.status, HealthStatus::Unhealthy);
    assert!(down.checks.iter().any(|c| c.error.is_some()));

    server.restart();
    // The pub/sub connection resubscribes in the background; the checker
    // must see every probe pass again without restarting anything.
    let recovered = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let report = checker.check().await;
            if report.checks.iter().all(|c| c.error.is_none())
                && report.status != HealthStatus::Unhealthy
            {
                return report;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("health recovers after Redis comes back");
    assert_eq!(recovered.checks.len(), WITHOUT_NODE);
}

/// A served node's checks also go through the node: its runtime's lag and a
/// message through its publish pipeline, dispatch and an outbound queue and
/// writer; the probe's traffic is not counted as agents' traffic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_served_node_probes_its_runtime_and_its_delivery_path() {
    for backend in ["memory", "redis"] {
        // A node id of its own: the metrics of the test process are one
        // registry, labelled by node.
        let id = format!("delivery-probe-{backend}");
        let n = crate::server::node(backend, |c| c.node_id = Some(id)).await;
        let health = &n.server.state.health;
        let mut report = health.check().await;
        for _ in 0..2 {
            report = health.check().await;
        }
        let kinds: Vec<CheckKind> = report.checks.iter().map(|c| c.check).collect();
        assert_eq!(kinds, CheckKind::ALL, "{backend}");
        for check in &report.checks {
            assert_eq!(check.error, None, "{backend}: {:?} failed", check.check);
        }
        let delivery = report.checks.last().unwrap();
        assert!(delivery.latency_ms > 0.0, "{backend}: {delivery:?}");
        assert_eq!(
            crate::exposition::metric_value(&n, "bus_deliveries_total").await,
            0.0,
            "{backend}: the probe counted as an agent's delivery"
        );
    }
}

/// A node whose runtime cannot run its tasks says so: the runtime probe
/// sees the stall, and the delivery probe, which needs the runtime, too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_runtime_makes_the_node_unhealthy() {
    // No background checks: they would take the lag this test looks for.
    let n = crate::server::node("memory", |c| c.health_interval = Duration::from_secs(3600)).await;
    let health = n.server.state.health.clone();
    // The background checker runs one check at start: wait for it, so that
    // it cannot take the lag this test makes before the check below does.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while health.last_report().is_none() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no first health check within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Block both worker threads for longer than the critical threshold.
    let stalls: Vec<_> = (0..2)
        .map(|_| tokio::spawn(async { std::thread::sleep(Duration::from_millis(400)) }))
        .collect();
    for stall in stalls {
        stall.await.unwrap();
    }
    let report = health.check().await;
    let runtime = report
        .checks
        .iter()
        .find(|c| c.check == CheckKind::Runtime)
        .unwrap();
    assert_eq!(runtime.status, HealthStatus::Unhealthy, "{report:?}");
    assert_eq!(report.status, HealthStatus::Unhealthy);
}

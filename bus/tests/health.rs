//! The health checker live against every backend (memory, Redis, a Redis
//! Cluster), and against a Redis that has gone away.

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

fn assert_consistent(report: &bus::health::HealthReport, thresholds: HealthThresholds) {
    assert_eq!(report.checks.len(), 4);
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
async fn live_check_on_redis_runs_all_four_probes() {
    let backend = support::redis().await;
    let checker = checker(&backend).await;
    let first = checker.check().await;
    let second = checker.check().await;
    assert_eq!(first.broker, "redis");
    assert_consistent(&first, checker.thresholds());
    assert_consistent(&second, checker.thresholds());
    let kinds: Vec<CheckKind> = second.checks.iter().map(|c| c.check).collect();
    assert_eq!(kinds, CheckKind::ALL);
    assert_eq!(checker.latency_stats()[&CheckKind::PubSub].count, 2);
    assert_eq!(checker.last_report(), Some(second));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_check_on_a_redis_cluster_runs_all_four_probes() {
    let backend = support::redis_cluster().await;
    let checker = checker(&backend).await;
    let first = checker.check().await;
    let second = checker.check().await;
    assert_eq!(first.broker, "redis");
    assert_consistent(&first, checker.thresholds());
    assert_consistent(&second, checker.thresholds());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_check_on_memory_runs_all_four_probes() {
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
    assert_eq!(recovered.checks.len(), 4);
}

//! Watching the bus and Redis during a run: every bus node's `/health` and
//! open connections (`/ws/stats`) and Redis's `INFO`, polled at a fixed
//! interval in background tasks, kept as report samples.
//!
//! One task per node and one for Redis, so a slow or dead node never delays
//! the others' samples. Each task takes at most one sample per interval
//! (missed ticks are skipped, not made up), so memory grows with the run's
//! length divided by the interval, nothing else.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::bus_under_test::{HealthProbe, HealthResponse};
use crate::report::{HealthSample, RedisSample};

/// The status recorded when a node did not answer with a health report.
pub const UNREACHABLE: &str = "unreachable";

/// Background polling of the bus nodes' health and of Redis; stopped with
/// [`Monitor::stop`], which hands back what was collected. Dropping it
/// without `stop` stops the polling too.
#[derive(Debug)]
pub struct Monitor {
    cancel: CancellationToken,
    nodes: Vec<JoinHandle<Vec<HealthSample>>>,
    redis: Option<JoinHandle<RedisPolls>>,
    latest: LatestHealth,
}

/// Each node's latest health sample, by node, while the monitor runs (for
/// live views; the whole timeline comes from [`Monitor::stop`]).
pub type LatestHealth = Arc<Mutex<BTreeMap<String, HealthSample>>>;

/// What a monitor collected.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MonitorResult {
    /// One sample per node per poll, ordered by time; `node` names the node
    /// (its `host:port`).
    pub health: Vec<HealthSample>,
    /// One sample per successful `INFO`, ordered by time.
    pub redis: Vec<RedisSample>,
    /// Every change of a node's status between two consecutive polls,
    /// ordered by time.
    pub health_transitions: Vec<HealthTransition>,
    /// `INFO` polls that failed (Redis down, paused or unreachable).
    pub redis_errors: u64,
}

/// A node's status changing, e.g. "healthy" → "degraded".
#[derive(Debug, Clone, PartialEq)]
pub struct HealthTransition {
    /// Seconds since the run started, at the poll that saw the new status.
    pub at_s: f64,
    /// The node (`host:port`).
    pub node: String,
    /// The status before.
    pub from: String,
    /// The status after.
    pub to: String,
}

/// The Redis task's outcome.
#[derive(Debug, Default)]
struct RedisPolls {
    samples: Vec<RedisSample>,
    errors: u64,
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

impl Monitor {
    /// Starts polling `GET {url}/health` and `GET {url}/ws/stats` (with
    /// `admin_token`, when the nodes check tokens) for every URL in
    /// `http_urls`, and Redis `INFO` when `redis_url` is given, every
    /// `interval`; sample times are seconds since `run_start`. Needs a Tokio
    /// runtime.
    pub fn start(
        http_urls: Vec<String>,
        redis_url: Option<String>,
        admin_token: Option<String>,
        run_start: Instant,
        interval: Duration,
    ) -> Monitor {
        let cancel = CancellationToken::new();
        // A node that answers slower than this counts as unreachable.
        let probe = HealthProbe::new(interval.max(Duration::from_secs(2)));
        let latest = LatestHealth::default();
        let nodes = http_urls
            .into_iter()
            .map(|url| {
                let poller = NodePoller {
                    node: node_label(&url),
                    url,
                    probe: probe.clone(),
                    admin_token: admin_token.clone(),
                    latest: latest.clone(),
                };
                tokio::spawn(poller.run(run_start, interval, cancel.clone()))
            })
            .collect();
        let redis =
            redis_url.map(|url| tokio::spawn(poll_redis(url, run_start, interval, cancel.clone())));
        Monitor {
            cancel,
            nodes,
            redis,
            latest,
        }
    }

    /// Each node's latest sample, updated at every poll.
    pub fn latest(&self) -> LatestHealth {
        self.latest.clone()
    }

    /// Stops polling and returns every sample taken.
    pub async fn stop(mut self) -> MonitorResult {
        self.cancel.cancel();
        let mut result = MonitorResult::default();
        for task in std::mem::take(&mut self.nodes) {
            match task.await {
                Ok(samples) => {
                    result.health_transitions.extend(transitions(&samples));
                    result.health.extend(samples);
                }
                Err(err) => tracing::warn!(cause = %err, "a health polling task failed"),
            }
        }
        if let Some(task) = self.redis.take() {
            match task.await {
                Ok(polls) => {
                    result.redis = polls.samples;
                    result.redis_errors = polls.errors;
                }
                Err(err) => tracing::warn!(cause = %err, "the Redis polling task failed"),
            }
        }
        result.health.sort_by(|a, b| a.at_s.total_cmp(&b.at_s));
        result
            .health_transitions
            .sort_by(|a, b| a.at_s.total_cmp(&b.at_s));
        result
    }
}

/// Polls one node.
struct NodePoller {
    url: String,
    node: String,
    probe: HealthProbe,
    admin_token: Option<String>,
    latest: LatestHealth,
}

impl NodePoller {
    async fn run(
        self,
        run_start: Instant,
        interval: Duration,
        cancel: CancellationToken,
    ) -> Vec<HealthSample> {
        let mut samples = Vec::new();
        let mut stats_readable = true;
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = ticks.tick() => {}
            }
            let at_s = run_start.elapsed().as_secs_f64();
            // Both at once, so a poll takes no longer than before.
            let stats = async {
                if stats_readable {
                    self.connections().await
                } else {
                    Err(None)
                }
            };
            let (answer, stats) = tokio::select! {
                _ = cancel.cancelled() => break,
                both = async { tokio::join!(self.probe.check(&self.url), stats) } => both,
            };
            let mut sample = match answer {
                Ok(response) => health_sample(at_s, &self.node, &response),
                Err(err) => {
                    tracing::debug!(node = %self.node, cause = %err, "health poll failed");
                    HealthSample {
                        at_s,
                        status: UNREACHABLE.to_owned(),
                        checks_ms: BTreeMap::new(),
                        node: Some(self.node.clone()),
                        connections: None,
                    }
                }
            };
            match stats {
                Ok(connections) => sample.connections = Some(connections),
                // Refused (no operator credentials): stop asking.
                Err(Some(401 | 403 | 404)) => stats_readable = false,
                Err(_) => {}
            }
            self.latest
                .lock()
                .expect("latest health lock")
                .insert(self.node.clone(), sample.clone());
            samples.push(sample);
        }
        samples
    }

    /// The node's open connections (`/ws/stats`); `Err(Some(status))` when
    /// it answered with another status than 200.
    async fn connections(&self) -> Result<u64, Option<u16>> {
        let url = format!("{}/ws/stats", self.url.trim_end_matches('/'));
        let (status, body) = self
            .probe
            .get_with_token(&url, self.admin_token.as_deref())
            .await
            .map_err(|_| None)?;
        if status != 200 {
            return Err(Some(status));
        }
        serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|stats| stats["registry"]["connections"].as_u64())
            .ok_or(None)
    }
}

/// A report sample from a node's answer (200 or 503 alike).
fn health_sample(at_s: f64, node: &str, response: &HealthResponse) -> HealthSample {
    HealthSample {
        at_s,
        status: response.report.status.to_string(),
        checks_ms: response
            .report
            .checks
            .iter()
            .map(|check| (check.check.as_str().to_owned(), check.latency_ms))
            .collect(),
        node: Some(node.to_owned()),
        connections: None,
    }
}

/// `http://127.0.0.1:8080` → `127.0.0.1:8080`.
pub fn node_label(http_url: &str) -> String {
    let rest = http_url
        .split_once("://")
        .map_or(http_url, |(_, rest)| rest);
    rest.trim_end_matches('/').to_owned()
}

/// Status changes within one node's samples, in order.
fn transitions(samples: &[HealthSample]) -> Vec<HealthTransition> {
    samples
        .windows(2)
        .filter(|pair| pair[0].status != pair[1].status)
        .map(|pair| HealthTransition {
            at_s: pair[1].at_s,
            node: pair[1].node.clone().unwrap_or_default(),
            from: pair[0].status.clone(),
            to: pair[1].status.clone(),
        })
        .collect()
}

/// Runs `INFO` every interval. Connects lazily and keeps a
/// `ConnectionManager`, which reconnects after Redis restarts; failed polls
/// are counted, not retried.
async fn poll_redis(
    url: String,
    run_start: Instant,
    interval: Duration,
    cancel: CancellationToken,
) -> RedisPolls {
    let mut polls = RedisPolls::default();
    let client = match redis::Client::open(url.as_str()) {
        Ok(client) => client,
        Err(err) => {
            tracing::warn!(cause = %err, "invalid Redis URL: not monitoring Redis");
            return polls;
        }
    };
    let mut connection: Option<ConnectionManager> = None;
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = ticks.tick() => {}
        }
        let at_s = run_start.elapsed().as_secs_f64();
        let info = tokio::select! {
            _ = cancel.cancelled() => break,
            info = redis_info(&client, &mut connection) => info,
        };
        match info {
            Ok(text) => polls.samples.push(parse_info(at_s, &text)),
            Err(err) => {
                tracing::debug!(cause = %err, "Redis INFO failed");
                polls.errors += 1;
            }
        }
    }
    polls
}

async fn redis_info(
    client: &redis::Client,
    connection: &mut Option<ConnectionManager>,
) -> redis::RedisResult<String> {
    let manager = match connection {
        Some(manager) => manager,
        None => connection.insert(ConnectionManager::new(client.clone()).await?),
    };
    redis::cmd("INFO").query_async(manager).await
}

/// The figures of an `INFO` answer (`key:value` lines); absent fields are 0.
fn parse_info(at_s: f64, info: &str) -> RedisSample {
    let fields: BTreeMap<&str, &str> = info
        .lines()
        .filter_map(|line| line.trim_end().split_once(':'))
        .collect();
    let number = |key: &str| fields.get(key).and_then(|v| v.parse::<u64>().ok());
    RedisSample {
        at_s,
        ops_per_sec: fields
            .get("instantaneous_ops_per_sec")
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0),
        used_memory_bytes: number("used_memory").unwrap_or(0),
        connected_clients: number("connected_clients").unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus_under_test::{RunningTarget, TargetOptions};
    use crate::scenario::{BrokerKind, Target};

    #[test]
    fn info_fields_are_parsed() {
        let info = "# Clients\r\nconnected_clients:7\r\n# Memory\r\nused_memory:1048576\r\n\
                    used_memory_human:1.00M\r\n# Stats\r\ninstantaneous_ops_per_sec:1234\r\n";
        let sample = parse_info(1.5, info);
        assert_eq!(
            sample,
            RedisSample {
                at_s: 1.5,
                ops_per_sec: 1234.0,
                used_memory_bytes: 1_048_576,
                connected_clients: 7,
            }
        );
        assert_eq!(parse_info(0.0, "").connected_clients, 0);
    }

    #[test]
    fn transitions_are_status_changes_per_node() {
        let sample = |at_s: f64, status: &str| HealthSample {
            at_s,
            status: status.to_owned(),
            checks_ms: BTreeMap::new(),
            node: Some("n".to_owned()),
            connections: None,
        };
        let samples = [
            sample(0.0, "healthy"),
            sample(1.0, "healthy"),
            sample(2.0, "degraded"),
            sample(3.0, UNREACHABLE),
        ];
        let found = transitions(&samples);
        assert_eq!(found.len(), 2);
        assert_eq!((found[0].at_s, found[0].to.as_str()), (2.0, "degraded"));
        assert_eq!(
            (found[1].from.as_str(), found[1].to.as_str()),
            ("degraded", UNREACHABLE)
        );
        assert_eq!(node_label("http://127.0.0.1:80/"), "127.0.0.1:80");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn watches_an_embedded_bus_on_a_private_redis() {
        let target = Target {
            broker: BrokerKind::Redis,
            ..Target::default()
        };
        let bus = RunningTarget::start(&target, &TargetOptions::default())
            .await
            .unwrap();
        let start = Instant::now();
        let monitor = Monitor::start(
            bus.http_urls.clone(),
            bus.redis_url.clone(),
            None,
            start,
            Duration::from_millis(200),
        );
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let result = monitor.stop().await;
        bus.stop().await.unwrap();

        assert!(result.health.len() >= 5, "{result:#?}");
        for sample in &result.health {
            assert!(
                sample.status == "healthy" || sample.status == "degraded",
                "{sample:?}"
            );
            assert!(sample.checks_ms.contains_key("ping"), "{sample:?}");
            assert!(
                sample.connections.is_none_or(|c| c == 0),
                "nobody connected: {sample:?}"
            );
            assert!(
                sample
                    .node
                    .as_deref()
                    .is_some_and(|n| n.starts_with("127.0.0.1:"))
            );
        }
        assert!(
            result.health.iter().any(|s| s.connections == Some(0)),
            "the node's connections were read: {result:#?}"
        );
        assert!(result.redis.len() >= 5, "{result:#?}");
        assert!(
            result
                .redis
                .iter()
                .all(|s| s.connected_clients >= 1 && s.used_memory_bytes > 0)
        );
        assert!(result.redis.windows(2).all(|w| w[0].at_s <= w[1].at_s));
    }

    #[tokio::test]
    async fn a_dead_node_is_recorded_as_unreachable() {
        let port = testkit::free_port();
        let monitor = Monitor::start(
            vec![format!("http://127.0.0.1:{port}")],
            None,
            None,
            Instant::now(),
            Duration::from_millis(100),
        );
        tokio::time::sleep(Duration::from_millis(350)).await;
        let result = monitor.stop().await;
        assert!(!result.health.is_empty());
        assert!(result.health.iter().all(|s| s.status == UNREACHABLE));
        assert!(result.health_transitions.is_empty() && result.redis.is_empty());
    }
}

//! The `HealthChecker`: the bus measuring itself. Probes of Redis (PING,
//! write/read, a pub/sub round trip through the node's subscription, a
//! queue enqueue → claim → ack) and of the node itself: the runtime's
//! scheduling lag, and a message through the node's whole delivery path
//! (publish pipeline, dispatch, an outbound queue and writer like an
//! agent's; the WebSocket layer provides it as a [`NodeProbe`]). Each is
//! judged against latency thresholds (default 50 ms warning, 200 ms
//! critical), with a latency history per probe and a background loop.
//!
//! Why the node probes: Redis round trips stay fast while a saturated node
//! delivers seconds late, so a health made of them alone said *healthy*
//! past every knee the simulator measured.

mod history;
mod lag;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use self::history::{LatencyHistory, LatencyStats};
use self::lag::LagMeter;
use crate::message::AgentMessage;
use crate::message::names::Channel;
use crate::router::{DeliverySink, Dispatched, MessageRouter};

/// Latency above `warning` makes a probe degraded, above `critical`
/// unhealthy. A latency exactly at a threshold is still on the good side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthThresholds {
    /// Above this a probe is degraded.
    pub warning: Duration,
    /// Above this a probe is unhealthy (and `/health` answers 503).
    pub critical: Duration,
}

impl Default for HealthThresholds {
    fn default() -> Self {
        Self {
            warning: Duration::from_millis(50),
            critical: Duration::from_millis(200),
        }
    }
}

impl HealthThresholds {
    /// The status a single latency earns.
    pub fn judge(&self, latency: Duration) -> HealthStatus {
        if latency > self.critical {
            HealthStatus::Unhealthy
        } else if latency > self.warning {
            HealthStatus::Degraded
        } else {
            HealthStatus::Healthy
        }
    }
}

/// Ordered from best to worst, so `max` gives the overall status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    /// Every probe at or under the warning threshold.
    Healthy,
    /// Some probe over the warning threshold: still serving, worth a look.
    Degraded,
    /// Some probe over the critical threshold, or failed.
    Unhealthy,
}

impl HealthStatus {
    /// The status as a number that grows with trouble (0 healthy, 1
    /// degraded, 2 unhealthy), for the `bus_health_status` gauge.
    pub fn level(self) -> u8 {
        match self {
            HealthStatus::Healthy => 0,
            HealthStatus::Degraded => 1,
            HealthStatus::Unhealthy => 2,
        }
    }
}

impl fmt::Display for HealthStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HealthStatus::Healthy => "healthy",
            HealthStatus::Degraded => "degraded",
            HealthStatus::Unhealthy => "unhealthy",
        })
    }
}

/// The probes of a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckKind {
    /// A Redis PING (or the memory broker's equivalent).
    Ping,
    /// A key written and read back.
    WriteRead,
    /// A publish received back through the node's own subscription.
    #[serde(rename = "pubsub")]
    PubSub,
    /// An enqueue, claim and ack on the node's probe queue.
    Queue,
    /// The node's async runtime: the worst lateness of a task's wake-up
    /// since the last check (every connection's reader and writer waits
    /// that long for its turn).
    Runtime,
    /// A message through the node's delivery path as agents get theirs:
    /// the publish pipeline, the dispatch, an outbound queue and a writer
    /// task (present when the node serves WebSockets).
    Delivery,
}

impl CheckKind {
    /// Every probe, in report order.
    pub const ALL: [CheckKind; 6] = [
        CheckKind::Ping,
        CheckKind::WriteRead,
        CheckKind::PubSub,
        CheckKind::Queue,
        CheckKind::Runtime,
        CheckKind::Delivery,
    ];

    /// The probe's name in reports and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckKind::Ping => "ping",
            CheckKind::WriteRead => "write_read",
            CheckKind::PubSub => "pubsub",
            CheckKind::Queue => "queue",
            CheckKind::Runtime => "runtime",
            CheckKind::Delivery => "delivery",
        }
    }
}

/// A probe of the node's own delivery path, provided by a layer above
/// health (the WebSocket layer, which owns outbound queues and writers).
#[async_trait::async_trait]
pub trait NodeProbe: Send + Sync + fmt::Debug {
    /// Sends one probe message through the node and returns once it came
    /// out of the far end; the checker times it and bounds its wait.
    async fn round_trip(&self) -> Result<(), String>;
}

/// One probe's outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    /// Which probe.
    pub check: CheckKind,
    /// Its latency judged against the thresholds (unhealthy when it failed).
    pub status: HealthStatus,
    /// How long it took.
    pub latency_ms: f64,
    /// Why it failed, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Summary of this probe's recent latencies.
    pub history: LatencyStats,
}

/// The thresholds of a report, in milliseconds: a probe slower than
/// `warning_ms` is degraded, slower than `critical_ms` unhealthy.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ThresholdsView {
    /// Above this, degraded.
    pub warning_ms: f64,
    /// Above this, unhealthy.
    pub critical_ms: f64,
}

/// A duration in milliseconds to the microsecond (`6.911`, not
/// `6.9110000000000005`).
pub(crate) fn millis(d: Duration) -> f64 {
    d.as_micros() as f64 / 1000.0
}

/// A full health check of one node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthReport {
    /// The worst status of the probes.
    pub status: HealthStatus,
    /// The node that checked itself.
    pub node: String,
    /// The broker it runs on (`redis` or `memory`).
    pub broker: String,
    /// When the check ran (µs since the epoch), so a stale report can be told.
    pub checked_at_us: u64,
    /// The thresholds it was judged by.
    pub thresholds: ThresholdsView,
    /// One result per probe.
    pub checks: Vec<CheckResult>,
}

/// Probes the broker through the router. Clones share state.
#[derive(Clone)]
pub struct HealthChecker {
    inner: Arc<Inner>,
}

struct Inner {
    router: MessageRouter,
    node: String,
    thresholds: HealthThresholds,
    /// A probe slower than this counts as failed.
    timeout: Duration,
    histories: Mutex<HashMap<CheckKind, LatencyHistory>>,
    last: Mutex<Option<HealthReport>>,
    /// Serializes checks so pub/sub probes never read each other's echoes.
    running: tokio::sync::Mutex<Echo>,
    /// The background loop's interval (0: no loop), to tell stale reports.
    interval_ms: std::sync::atomic::AtomicU64,
    /// The runtime's scheduling lag.
    lag: LagMeter,
    /// The node's delivery path, while the server has one attached.
    node_probe: Mutex<Option<Arc<dyn NodeProbe>>>,
}

/// The pub/sub probe's receiving end.
struct Echo {
    subscribed: bool,
    rx: mpsc::Receiver<Bytes>,
    sink: Arc<dyn DeliverySink>,
}

struct EchoSink(mpsc::Sender<Bytes>);

impl DeliverySink for EchoSink {
    fn deliver(&self, dispatched: &Dispatched<'_>) {
        // A full buffer means stale echoes nobody waits for; dropping is fine.
        let _ = self.0.try_send(dispatched.delivery.payload.clone());
    }
}

impl fmt::Debug for HealthChecker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HealthChecker")
            .field("node", &self.inner.node)
            .field("thresholds", &self.inner.thresholds)
            .finish_non_exhaustive()
    }
}

/// How many latencies each probe remembers.
const HISTORY: usize = 100;

impl HealthChecker {
    /// A checker probing through `router` under the name `node`; nothing runs
    /// until [`HealthChecker::check`] or [`HealthChecker::spawn`].
    pub fn new(
        router: MessageRouter,
        node: impl Into<String>,
        thresholds: HealthThresholds,
    ) -> Self {
        let (tx, rx) = mpsc::channel(16);
        Self {
            inner: Arc::new(Inner {
                router,
                node: node.into(),
                thresholds,
                timeout: (thresholds.critical * 5).max(Duration::from_secs(1)),
                histories: Mutex::default(),
                last: Mutex::default(),
                running: tokio::sync::Mutex::new(Echo {
                    subscribed: false,
                    rx,
                    sink: Arc::new(EchoSink(tx)),
                }),
                interval_ms: std::sync::atomic::AtomicU64::new(0),
                lag: LagMeter::default(),
                node_probe: Mutex::default(),
            }),
        }
    }

    /// The thresholds probes are judged by.
    pub fn thresholds(&self) -> HealthThresholds {
        self.inner.thresholds
    }

    /// The most recent report, if any check has run.
    pub fn last_report(&self) -> Option<HealthReport> {
        self.inner.last.lock().expect("lock").clone()
    }

    /// Latency summary of every probe's history.
    pub fn latency_stats(&self) -> HashMap<CheckKind, LatencyStats> {
        let histories = self.inner.histories.lock().expect("lock");
        histories.iter().map(|(k, h)| (*k, h.stats())).collect()
    }

    /// Attaches the probe of the node's delivery path; checks run it from
    /// then on.
    pub fn attach(&self, probe: Arc<dyn NodeProbe>) {
        *self.inner.node_probe.lock().expect("lock") = Some(probe);
    }

    /// Drops the delivery probe (the node is shutting down).
    pub fn detach(&self) {
        self.inner.node_probe.lock().expect("lock").take();
    }

    /// Runs every probe now, side by side, each bounded by the probe
    /// timeout, so a frozen Redis makes a check fail fast instead of
    /// stalling it. The delivery probe runs once one is attached.
    pub async fn check(&self) -> HealthReport {
        let mut echo = self.inner.running.lock().await;
        let node_probe = self.inner.node_probe.lock().expect("lock").clone();
        let delivery = async {
            match node_probe {
                Some(probe) => Some(self.timed(CheckKind::Delivery, probe.round_trip()).await),
                None => None,
            }
        };
        let (ping, write_read, pubsub, queue, delivery) = tokio::join!(
            self.timed(CheckKind::Ping, self.probe_ping()),
            self.timed(CheckKind::WriteRead, self.probe_write_read()),
            self.timed(CheckKind::PubSub, self.probe_pubsub(&mut echo)),
            self.timed(CheckKind::Queue, self.probe_queue()),
            delivery,
        );
        // Read after the others ran, so it covers the check itself too.
        let runtime = self.record(CheckKind::Runtime, self.inner.lag.take(), None);
        let mut checks = vec![ping, write_read, pubsub, queue, runtime];
        checks.extend(delivery);
        let report = HealthReport {
            status: checks
                .iter()
                .map(|c| c.status)
                .max()
                .unwrap_or(HealthStatus::Healthy),
            node: self.inner.node.clone(),
            broker: self.inner.router.broker().kind().to_owned(),
            checked_at_us: crate::message::now_micros(),
            thresholds: ThresholdsView {
                warning_ms: millis(self.inner.thresholds.warning),
                critical_ms: millis(self.inner.thresholds.critical),
            },
            checks,
        };
        *self.inner.last.lock().expect("lock") = Some(report.clone());
        report
    }

    async fn timed(
        &self,
        kind: CheckKind,
        probe: impl std::future::Future<Output = Result<(), String>>,
    ) -> CheckResult {
        let started = Instant::now();
        let outcome = tokio::time::timeout(self.inner.timeout, probe).await;
        let latency = started.elapsed();
        let error = match outcome {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e),
            Err(_) => Some(format!("timed out after {:?}", self.inner.timeout)),
        };
        self.record(kind, latency, error)
    }

    /// The latest report, or an unhealthy one when no check has completed
    /// for three intervals (the checks themselves are stuck).
    pub fn current_report(&self) -> Option<HealthReport> {
        let mut report = self.last_report()?;
        let interval_ms = self
            .inner
            .interval_ms
            .load(std::sync::atomic::Ordering::Relaxed);
        let stale_us = 3 * interval_ms.max(1000) * 1000;
        let age_us = crate::message::now_micros().saturating_sub(report.checked_at_us);
        if interval_ms > 0 && age_us > stale_us {
            report.status = HealthStatus::Unhealthy;
            for check in &mut report.checks {
                check.status = HealthStatus::Unhealthy;
                check.error = Some(format!(
                    "no health check has completed for {:.1} s",
                    age_us as f64 / 1e6
                ));
            }
        }
        Some(report)
    }

    fn record(&self, check: CheckKind, latency: Duration, error: Option<String>) -> CheckResult {
        let mut histories = self.inner.histories.lock().expect("lock");
        let history = histories
            .entry(check)
            .or_insert_with(|| LatencyHistory::new(HISTORY));
        history.record(latency);
        CheckResult {
            check,
            status: if error.is_some() {
                HealthStatus::Unhealthy
            } else {
                self.inner.thresholds.judge(latency)
            },
            latency_ms: millis(latency),
            error,
            history: history.stats(),
        }
    }

    async fn probe_ping(&self) -> Result<(), String> {
        self.inner
            .router
            .broker()
            .ping()
            .await
            .map_err(|e| e.to_string())
    }

    async fn probe_write_read(&self) -> Result<(), String> {
        let value = crate::message::new_id();
        let read = self
            .inner
            .router
            .broker()
            .write_read(&format!("health:{}", self.inner.node), value.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        if read == value.as_bytes() {
            Ok(())
        } else {
            Err("read back a different value than written".into())
        }
    }

    async fn probe_pubsub(&self, echo: &mut Echo) -> Result<(), String> {
        let router = &self.inner.router;
        let channel = Channel::Internal(format!("health:{}", self.inner.node));
        if !echo.subscribed {
            let id = router.next_sink_id();
            router
                .subscribe(id, &echo.sink, std::slice::from_ref(&channel))
                .await
                .map_err(|e| e.to_string())?;
            echo.subscribed = true;
        }
        let nonce = Bytes::from(crate::message::new_id());
        router
            .publish_raw(&channel, nonce.clone())
            .await
            .map_err(|e| e.to_string())?;
        loop {
            match echo.rx.recv().await {
                Some(got) if got == nonce => return Ok(()),
                Some(_) => continue,
                None => return Err("echo channel closed".into()),
            }
        }
    }

    async fn probe_queue(&self) -> Result<(), String> {
        let router = &self.inner.router;
        let queue = format!("internal:health/{}", self.inner.node);
        let probe = AgentMessage::new("health", serde_json::Value::Null);
        router
            .enqueue(&queue, std::slice::from_ref(&probe))
            .await
            .map_err(|e| e.to_string())?;
        let claimed = router.claim(&queue, 16).await.map_err(|e| e.to_string())?;
        let mut found = false;
        for c in &claimed {
            found |= c.message.id == probe.id;
            router
                .ack(&queue, &c.message.id)
                .await
                .map_err(|e| e.to_string())?;
        }
        if found {
            Ok(())
        } else {
            Err("the probe message was not claimed back".into())
        }
    }

    /// Checks every `interval` until `stop` is cancelled.
    pub fn spawn(
        &self,
        interval: Duration,
        stop: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let checker = self.clone();
        self.inner.lag.start();
        self.inner.interval_ms.store(
            interval.as_millis() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = ticks.tick() => {
                        let report = checker.check().await;
                        if report.status != HealthStatus::Healthy {
                            tracing::warn!(status = %report.status, "health check");
                        }
                    }
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn judging_at_the_threshold_edges() {
        let t = HealthThresholds::default();
        assert_eq!(t.judge(ms(0)), HealthStatus::Healthy);
        assert_eq!(t.judge(ms(50)), HealthStatus::Healthy);
        assert_eq!(
            t.judge(ms(50) + Duration::from_micros(1)),
            HealthStatus::Degraded
        );
        assert_eq!(t.judge(ms(200)), HealthStatus::Degraded);
        assert_eq!(
            t.judge(ms(200) + Duration::from_micros(1)),
            HealthStatus::Unhealthy
        );
    }

    #[test]
    fn custom_thresholds_apply() {
        let t = HealthThresholds {
            warning: ms(5),
            critical: ms(10),
        };
        assert_eq!(t.judge(ms(5)), HealthStatus::Healthy);
        assert_eq!(t.judge(ms(6)), HealthStatus::Degraded);
        assert_eq!(t.judge(ms(11)), HealthStatus::Unhealthy);
    }

    #[test]
    fn worst_status_wins() {
        let all = [
            HealthStatus::Healthy,
            HealthStatus::Unhealthy,
            HealthStatus::Degraded,
        ];
        assert_eq!(all.iter().max(), Some(&HealthStatus::Unhealthy));
    }
}

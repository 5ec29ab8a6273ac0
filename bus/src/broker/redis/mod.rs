//! The production broker on Redis: commands through a reconnecting
//! `ConnectionManager`, one supervised pub/sub connection per node
//! subscription, and queues on sorted sets moved by Lua scripts.

mod pubsub;
mod queue;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::{Notify, OnceCell};

use self::queue::{QueueKeys, Scripts};
use super::{
    Broker, BrokerError, Claimed, Clock, DeadLetter, QueueStats, ReclaimOutcome, RejectOutcome,
    Result, RetryPolicy, Subscriber, Subscription, SystemClock, decode_message,
};
use crate::message::AgentMessage;

/// Most queues a node remembers having registered or waited on; past it, it
/// re-registers on every enqueue and waits by polling.
const KNOWN_QUEUES_LIMIT: usize = 10_000;
/// Probe keys written by the health checker expire after this.
const PROBE_TTL_SECS: u64 = 60;

/// How to reach Redis and where this bus keeps its keys.
#[derive(Debug, Clone)]
pub struct RedisOptions {
    pub url: String,
    /// Prefix of every key and channel (without the `:`), so several buses
    /// or test runs can share one Redis. No glob characters or braces.
    pub namespace: String,
    /// Time source for visibility deadlines and backoff.
    pub clock: Arc<dyn Clock>,
    /// Bound on a single command's wait for its reply.
    pub response_timeout: Duration,
}

impl RedisOptions {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            namespace: "bus".to_owned(),
            clock: Arc::new(SystemClock),
            response_timeout: Duration::from_secs(2),
        }
    }

    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }
}

/// The Redis broker. Clones share connections.
#[derive(Debug, Clone)]
pub struct RedisBroker {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    client: redis::Client,
    conn: ConnectionManager,
    /// Namespace plus `:`.
    prefix: String,
    clock: Arc<dyn Clock>,
    scripts: Scripts,
    /// Queues this node has already added to the registry set.
    registered: Mutex<HashSet<String>>,
    wake: WakeHub,
}

/// Wakes local waiters of a queue when any node enqueues to it: the enqueue
/// script publishes on `wake:{queue}`, and one extra subscription per node
/// (opened on first use) turns that into `Notify` permits.
#[derive(Debug, Default)]
struct WakeHub {
    subscription: OnceCell<Arc<dyn Subscriber>>,
    waiters: Arc<Mutex<HashMap<String, Arc<Notify>>>>,
}

impl RedisBroker {
    /// Connects with default options (namespace `bus`).
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with(RedisOptions::new(url)).await
    }

    pub async fn connect_with(options: RedisOptions) -> Result<Self> {
        if options
            .namespace
            .bytes()
            .any(|b| matches!(b, b'*' | b'?' | b'[' | b']' | b'\\' | b'{' | b'}'))
        {
            return Err(BrokerError::Redis(redis::RedisError::from((
                redis::ErrorKind::InvalidClientConfig,
                "namespace must not contain glob characters or braces",
            ))));
        }
        let client = redis::Client::open(options.url.as_str())?;
        // Few, short retries: while Redis is away requests fail fast (one
        // stalled request would hold up everything behind it on its
        // connection), and the next request after Redis is back reconnects.
        let config = ConnectionManagerConfig::new()
            .set_number_of_retries(3)
            .set_min_delay(Duration::from_millis(20))
            .set_max_delay(Duration::from_millis(100))
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(options.response_timeout));
        let conn = ConnectionManager::new_with_config(client.clone(), config).await?;
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                conn,
                prefix: format!("{}:", options.namespace),
                clock: options.clock,
                scripts: Scripts::new(),
                registered: Mutex::default(),
                wake: WakeHub::default(),
            }),
        })
    }

    fn conn(&self) -> ConnectionManager {
        self.inner.conn.clone()
    }

    fn keys(&self, queue: &str) -> QueueKeys {
        QueueKeys::new(&self.inner.prefix, queue)
    }

    fn registry_key(&self) -> String {
        format!("{}queues", self.inner.prefix)
    }

    fn wake_channel(queue: &str) -> String {
        format!("wake:{queue}")
    }

    async fn register_queue(&self, queue: &str) -> Result<()> {
        {
            let registered = self.inner.registered.lock().expect("lock");
            if registered.contains(queue) {
                return Ok(());
            }
        }
        let key = self.registry_key();
        let _: i64 = retry_once(|| {
            let mut conn = self.conn();
            let key = key.clone();
            async move {
                redis::cmd("SADD")
                    .arg(key)
                    .arg(queue)
                    .query_async(&mut conn)
                    .await
            }
        })
        .await?;
        let mut registered = self.inner.registered.lock().expect("lock");
        if registered.len() < KNOWN_QUEUES_LIMIT {
            registered.insert(queue.to_owned());
        }
        Ok(())
    }

    async fn run_script<T: redis::FromRedisValue>(
        &self,
        script: &redis::Script,
        queue: &str,
        args: &[Vec<u8>],
    ) -> Result<T> {
        let keys = self.keys(queue);
        Ok(retry_once(|| {
            let mut conn = self.conn();
            let mut invocation = script.prepare_invoke();
            for key in keys.all() {
                invocation.key(key);
            }
            for arg in args {
                invocation.arg(arg.as_slice());
            }
            async move { invocation.invoke_async(&mut conn).await }
        })
        .await?)
    }

    fn now(&self) -> u64 {
        self.inner.clock.now_ms()
    }

    /// The notify of `queue`, subscribing to its wake channel on first use.
    async fn waker(&self, queue: &str) -> Result<Option<Arc<Notify>>> {
        let hub = &self.inner.wake;
        let subscription = hub
            .subscription
            .get_or_try_init(|| async {
                let sub =
                    pubsub::open(self.inner.client.clone(), self.inner.prefix.clone()).await?;
                spawn_wake_listener(sub.deliveries, hub.waiters.clone());
                Ok::<_, BrokerError>(sub.control)
            })
            .await?;
        let (notify, fresh) = {
            let mut waiters = hub.waiters.lock().expect("lock");
            if let Some(n) = waiters.get(queue) {
                (n.clone(), false)
            } else if waiters.len() >= KNOWN_QUEUES_LIMIT {
                return Ok(None);
            } else {
                let n = Arc::new(Notify::new());
                waiters.insert(queue.to_owned(), n.clone());
                (n, true)
            }
        };
        if fresh {
            subscription.subscribe(&[Self::wake_channel(queue)]).await?;
        }
        Ok(Some(notify))
    }
}

fn spawn_wake_listener(
    mut deliveries: tokio::sync::mpsc::Receiver<super::Delivery>,
    waiters: Arc<Mutex<HashMap<String, Arc<Notify>>>>,
) {
    tokio::spawn(async move {
        while let Some(d) = deliveries.recv().await {
            let Some(queue) = d.channel.strip_prefix("wake:") else {
                continue;
            };
            let added: usize = std::str::from_utf8(&d.payload)
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(1);
            let notify = waiters.lock().expect("lock").get(queue).cloned();
            if let Some(notify) = notify {
                for _ in 0..added {
                    notify.notify_one();
                }
            }
        }
    });
}

/// Runs a command, and once more if the connection had dropped: the
/// `ConnectionManager` reconnects in the background, but the first call after
/// a Redis restart still fails.
async fn retry_once<T, F, Fut>(mut call: F) -> redis::RedisResult<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = redis::RedisResult<T>>,
{
    match call().await {
        Err(err) if err.is_connection_dropped() || err.is_io_error() => {
            tracing::debug!(cause = %err, "redis command failed on a dropped connection; retrying once");
            call().await
        }
        other => other,
    }
}

#[async_trait]
impl Broker for RedisBroker {
    fn kind(&self) -> &'static str {
        "redis"
    }

    async fn publish(&self, channel: &str, payload: Bytes) -> Result<usize> {
        let channel = format!("{}{channel}", self.inner.prefix);
        let receivers: usize = retry_once(|| {
            let mut conn = self.conn();
            let cmd = redis::cmd("PUBLISH")
                .arg(&channel)
                .arg(payload.as_ref())
                .to_owned();
            async move { cmd.query_async(&mut conn).await }
        })
        .await?;
        Ok(receivers)
    }

    async fn subscribe(&self) -> Result<Subscription> {
        pubsub::open(self.inner.client.clone(), self.inner.prefix.clone()).await
    }

    async fn enqueue(&self, queue: &str, messages: &[AgentMessage], max_len: u64) -> Result<usize> {
        if messages.is_empty() {
            return Ok(0);
        }
        self.register_queue(queue).await?;
        let mut args = Vec::with_capacity(2 + messages.len() * 3);
        args.push(format!("{}{}", self.inner.prefix, Self::wake_channel(queue)).into_bytes());
        args.push(max_len.to_string().into_bytes());
        for m in messages {
            let mut stored = m.clone();
            stored.attempts = 0;
            args.push(m.id.clone().into_bytes());
            args.push(m.priority.to_string().into_bytes());
            args.push(stored.to_json());
        }
        let (added, full): (usize, u8) = self
            .run_script(&self.inner.scripts.enqueue, queue, &args)
            .await?;
        if full == 1 {
            return Err(BrokerError::QueueFull {
                queue: queue.to_owned(),
                limit: max_len,
                added,
            });
        }
        Ok(added)
    }

    async fn claim(
        &self,
        queue: &str,
        max: usize,
        visibility: Duration,
        policy: &RetryPolicy,
    ) -> Result<Vec<Claimed>> {
        let now = self.now();
        let visibility_ms = visibility.as_millis() as u64;
        let args = [
            now.to_string().into_bytes(),
            max.to_string().into_bytes(),
            visibility_ms.to_string().into_bytes(),
            policy.max_attempts.to_string().into_bytes(),
        ];
        let rows: Vec<(String, Vec<u8>, u32)> = self
            .run_script(&self.inner.scripts.claim, queue, &args)
            .await?;
        rows.into_iter()
            .map(|(id, body, attempts)| {
                let mut message = decode_message(queue, &id, &body)?;
                message.attempts = attempts;
                Ok(Claimed {
                    message,
                    deadline_ms: now + visibility_ms,
                })
            })
            .collect()
    }

    async fn wait_for_work(&self, queue: &str, timeout: Duration) -> Result<()> {
        match self.waker(queue).await? {
            Some(notify) => {
                let _ = tokio::time::timeout(timeout, notify.notified()).await;
            }
            None => tokio::time::sleep(timeout.min(Duration::from_millis(50))).await,
        }
        Ok(())
    }

    async fn ack(&self, queue: &str, id: &str) -> Result<bool> {
        let args = [
            id.as_bytes().to_vec(),
            self.now().to_string().into_bytes(),
            (super::ACK_MEMORY.as_millis() as u64)
                .to_string()
                .into_bytes(),
        ];
        let removed: i64 = self
            .run_script(&self.inner.scripts.ack, queue, &args)
            .await?;
        Ok(removed == 1)
    }

    async fn reject(
        &self,
        queue: &str,
        id: &str,
        reason: &str,
        requeue: bool,
        policy: &RetryPolicy,
    ) -> Result<Option<RejectOutcome>> {
        let args = [
            id.as_bytes().to_vec(),
            self.now().to_string().into_bytes(),
            if requeue {
                b"1".to_vec()
            } else {
                b"0".to_vec()
            },
            policy.max_attempts.to_string().into_bytes(),
            (policy.base_backoff.as_millis() as u64)
                .to_string()
                .into_bytes(),
            (policy.max_backoff.as_millis() as u64)
                .to_string()
                .into_bytes(),
            reason.as_bytes().to_vec(),
        ];
        let (code, delay_ms, attempts): (u8, u64, u32) = self
            .run_script(&self.inner.scripts.reject, queue, &args)
            .await?;
        Ok(match code {
            1 => Some(RejectOutcome::Requeued { delay_ms, attempts }),
            2 => Some(RejectOutcome::DeadLettered { attempts }),
            _ => None,
        })
    }

    async fn reclaim(&self, queue: &str, policy: &RetryPolicy) -> Result<ReclaimOutcome> {
        let args = [
            self.now().to_string().into_bytes(),
            policy.max_attempts.to_string().into_bytes(),
        ];
        let (requeued, dead_lettered): (u64, u64) = self
            .run_script(&self.inner.scripts.reclaim, queue, &args)
            .await?;
        Ok(ReclaimOutcome {
            requeued,
            dead_lettered,
        })
    }

    async fn stats(&self, queue: &str) -> Result<QueueStats> {
        let keys = self.keys(queue);
        let (ready, processing, delayed, dead): (u64, u64, u64, u64) = retry_once(|| {
            let mut conn = self.conn();
            let mut pipe = redis::pipe();
            for key in [&keys.ready, &keys.processing, &keys.delayed, &keys.dead] {
                pipe.cmd("ZCARD").arg(key);
            }
            async move { pipe.query_async(&mut conn).await }
        })
        .await?;
        Ok(QueueStats {
            ready,
            processing,
            delayed,
            dead,
        })
    }

    async fn dead_letters(&self, queue: &str, limit: usize) -> Result<Vec<DeadLetter>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let keys = self.keys(queue);
        let entries: Vec<(String, f64)> = retry_once(|| {
            let mut conn = self.conn();
            let cmd = redis::cmd("ZRANGE")
                .arg(&keys.dead)
                .arg(0)
                .arg(limit as i64 - 1)
                .arg("WITHSCORES")
                .to_owned();
            async move { cmd.query_async(&mut conn).await }
        })
        .await?;
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<&str> = entries.iter().map(|(id, _)| id.as_str()).collect();
        let (bodies, reasons, attempts): (
            Vec<Option<Vec<u8>>>,
            Vec<Option<String>>,
            Vec<Option<u32>>,
        ) = retry_once(|| {
            let mut conn = self.conn();
            let mut pipe = redis::pipe();
            pipe.cmd("HMGET").arg(&keys.msgs).arg(&ids);
            pipe.cmd("HMGET").arg(&keys.reasons).arg(&ids);
            pipe.cmd("HMGET").arg(&keys.attempts).arg(&ids);
            async move { pipe.query_async(&mut conn).await }
        })
        .await?;
        let mut out = Vec::with_capacity(entries.len());
        for (i, (id, dead_at)) in entries.iter().enumerate() {
            let Some(body) = &bodies[i] else { continue };
            let mut message = decode_message(queue, id, body)?;
            message.attempts = attempts[i].unwrap_or(0);
            out.push(DeadLetter {
                message,
                reason: reasons[i].clone().unwrap_or_default(),
                dead_at_ms: *dead_at as u64,
            });
        }
        Ok(out)
    }

    async fn queues(&self) -> Result<Vec<String>> {
        let key = self.registry_key();
        let mut names: Vec<String> = retry_once(|| {
            let mut conn = self.conn();
            let key = key.clone();
            async move { redis::cmd("SMEMBERS").arg(key).query_async(&mut conn).await }
        })
        .await?;
        names.sort();
        Ok(names)
    }

    async fn ping(&self) -> Result<()> {
        let _: String = retry_once(|| {
            let mut conn = self.conn();
            async move { redis::cmd("PING").query_async(&mut conn).await }
        })
        .await?;
        Ok(())
    }

    async fn write_read(&self, key: &str, value: &[u8]) -> Result<Vec<u8>> {
        let key = format!("{}probe:{key}", self.inner.prefix);
        let (_, read): ((), Vec<u8>) = retry_once(|| {
            let mut conn = self.conn();
            let mut pipe = redis::pipe();
            pipe.cmd("SET")
                .arg(&key)
                .arg(value)
                .arg("EX")
                .arg(PROBE_TTL_SECS)
                .ignore();
            pipe.cmd("GET").arg(&key);
            async move {
                let (read,): (Vec<u8>,) = pipe.query_async(&mut conn).await?;
                Ok(((), read))
            }
        })
        .await?;
        Ok(read)
    }
}

//! The production broker on Redis or a Redis Cluster: commands through a
//! reconnecting connection ([`connection`]), one supervised subscription per
//! node subscription (classic pub/sub on a single Redis, sharded pub/sub on
//! a cluster), and queues on sorted sets moved by Lua scripts. How names
//! map to Redis channels and shards is in [`channels`]; `docs/CLUSTER.md`
//! describes running on a cluster. Large payloads go into Redis compressed
//! and come out whole ([`compress`]).

mod channels;
mod cluster_pubsub;
mod cluster_push;
mod compress;
mod connection;
mod history;
mod publish;
mod pubsub;
mod queue;
mod wake;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use self::channels::ChannelNames;
pub use self::compress::DEFAULT_COMPRESS_OVER;
pub use self::connection::RedisOptions;
use self::connection::{Commands, Endpoint, invalid_config, retry_once};
use self::queue::{QueueKeys, Scripts};
use self::wake::{WakeHub, wake_channel};
use super::{
    Broker, BrokerError, Claimed, Clock, DeadLetter, HistoryLimits, HistoryQuery, HistoryRead,
    Outgoing, Published, QueueStats, ReclaimOutcome, RejectOutcome, Result, RetryPolicy,
    Subscription, decode_message, enqueued, queue_workspace,
};
use crate::message::AgentMessage;

/// Most queues a node remembers having registered; past it, it
/// re-registers on every enqueue.
const KNOWN_QUEUES_LIMIT: usize = 10_000;
/// Queues whose depths one pipelined round trip reads.
const STATS_PIPELINE: usize = 1000;
/// Queues whose depths are read at once on a cluster (one round trip each).
const STATS_CONCURRENCY: usize = 64;
/// Probe keys written by the health checker expire after this.
const PROBE_TTL_SECS: u64 = 60;

/// The Redis broker. Clones share connections.
#[derive(Debug, Clone)]
pub struct RedisBroker {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Where subscriptions connect.
    endpoint: Endpoint,
    conn: Commands,
    names: ChannelNames,
    clock: Arc<dyn Clock>,
    scripts: Scripts,
    /// Queues this node has already added to the registry set.
    registered: Mutex<HashSet<String>>,
    wake: WakeHub,
    /// Payloads at least this long are compressed ([`compress`]).
    compress_over: Option<usize>,
}

impl RedisBroker {
    /// Connects to one Redis with default options (namespace `bus`).
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with(RedisOptions::new(url)).await
    }

    /// Connects with `options`, refusing a namespace that would act as a glob
    /// or a cluster hash tag in the keys it prefixes.
    pub async fn connect_with(options: RedisOptions) -> Result<Self> {
        if options
            .namespace
            .bytes()
            .any(|b| matches!(b, b'*' | b'?' | b'[' | b']' | b'\\' | b'{' | b'}'))
        {
            return Err(invalid_config(
                "namespace must not contain glob characters or braces",
            ));
        }
        let endpoint = Endpoint::parse(&options.url, options.cluster, options.response_timeout)?;
        let conn = endpoint.commands(options.response_timeout).await?;
        let cluster = matches!(endpoint, Endpoint::Cluster(_));
        Ok(Self {
            inner: Arc::new(Inner {
                endpoint,
                conn,
                names: ChannelNames::new(format!("{}:", options.namespace), cluster),
                clock: options.clock,
                scripts: Scripts::new(),
                registered: Mutex::default(),
                wake: WakeHub::default(),
                compress_over: options.compress_over,
            }),
        })
    }

    /// `payload` as it goes into Redis: compressed when that pays.
    fn pack(&self, payload: &Bytes) -> Bytes {
        compress::pack_bytes(payload, self.inner.compress_over)
    }

    /// Whether this broker runs on a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self.inner.endpoint, Endpoint::Cluster(_))
    }

    fn conn(&self) -> Commands {
        self.inner.conn.clone()
    }

    fn prefix(&self) -> &str {
        self.inner.names.prefix()
    }

    fn keys(&self, queue: &str) -> QueueKeys {
        QueueKeys::new(self.prefix(), queue)
    }

    fn registry_key(&self) -> String {
        format!("{}queues", self.prefix())
    }

    /// Opens a node subscription on this broker's Redis.
    async fn open_subscription(&self) -> Result<Subscription> {
        match &self.inner.endpoint {
            Endpoint::Single(client) => {
                pubsub::open(client.clone(), self.prefix().to_owned()).await
            }
            Endpoint::Cluster(seeds) => cluster_pubsub::open(seeds, self.inner.names.clone()).await,
        }
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

    /// The enqueue script's wake-up arguments: the wake channel and the
    /// command that publishes it (sharded on a cluster, where the channel
    /// shares the queue's slot).
    fn wake_args(&self, queue: &str) -> [Vec<u8>; 2] {
        let channel = self.inner.names.channel(&wake_channel(queue));
        let command: &[u8] = if self.is_cluster() {
            b"SPUBLISH"
        } else {
            b"PUBLISH"
        };
        [channel.into_bytes(), command.to_vec()]
    }
}

#[async_trait]
impl Broker for RedisBroker {
    fn kind(&self) -> &'static str {
        "redis"
    }

    async fn publish(&self, channel: &str, payload: Bytes) -> Result<usize> {
        self.publish_one(channel, payload).await
    }

    /// See `publish.rs`: one round trip per batch on one Redis, each topic
    /// with history in one script call.
    async fn publish_many(&self, messages: &[Outgoing]) -> Result<Vec<Published>> {
        self.publish_batch(messages).await
    }

    async fn read_history(
        &self,
        channel: &str,
        query: &HistoryQuery,
        limits: HistoryLimits,
    ) -> Result<HistoryRead> {
        history::read(&mut self.conn(), &self.inner.names, channel, query, limits).await
    }

    async fn subscribe(&self) -> Result<Subscription> {
        self.open_subscription().await
    }

    async fn enqueue(&self, queue: &str, messages: &[AgentMessage], max_len: u64) -> Result<usize> {
        if messages.is_empty() {
            return Ok(0);
        }
        self.register_queue(queue).await?;
        let mut args = Vec::with_capacity(3 + messages.len() * 3);
        args.extend(self.wake_args(queue));
        args.push(max_len.to_string().into_bytes());
        for m in messages {
            let mut stored = m.clone();
            stored.attempts = 0;
            args.push(m.id.clone().into_bytes());
            args.push(m.priority.to_string().into_bytes());
            let json = stored.to_json();
            args.push(match compress::pack(&json, self.inner.compress_over) {
                Some(packed) => packed.to_vec(),
                None => json,
            });
        }
        let (added, full): (usize, u8) = self
            .run_script(&self.inner.scripts.enqueue, queue, &args)
            .await?;
        enqueued(queue, max_len, added, full == 1)
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
                let mut message = decode_message(queue, &id, &open_stored(queue, &id, body)?)?;
                message.attempts = attempts;
                Ok(Claimed {
                    message,
                    deadline_ms: now + visibility_ms,
                })
            })
            .collect()
    }

    async fn wait_for_work(&self, queue: &str, timeout: Duration) -> Result<()> {
        let waker = self
            .inner
            .wake
            .waker(queue, || self.open_subscription())
            .await?;
        match waker {
            Some(notify) => {
                let _ = tokio::time::timeout(timeout, notify.notified()).await;
            }
            None => tokio::time::sleep(timeout.min(Duration::from_millis(50))).await,
        }
        Ok(())
    }

    async fn ack(&self, queue: &str, id: &str) -> Result<bool> {
        let acked = self.ack_many(queue, &[id.to_owned()]).await?;
        Ok(acked.first().copied().unwrap_or(false))
    }

    async fn ack_many(&self, queue: &str, ids: &[String]) -> Result<Vec<bool>> {
        let mut args = Vec::with_capacity(ids.len() + 2);
        args.push(self.now().to_string().into_bytes());
        args.push(
            (super::ACK_MEMORY.as_millis() as u64)
                .to_string()
                .into_bytes(),
        );
        args.extend(ids.iter().map(|id| id.as_bytes().to_vec()));
        let acked: Vec<i64> = self
            .run_script(&self.inner.scripts.ack, queue, &args)
            .await?;
        Ok(acked.into_iter().map(|a| a == 1).collect())
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

    async fn stats_many(&self, queues: &[String]) -> Result<Vec<QueueStats>> {
        if self.is_cluster() {
            // A cluster pipeline must stay in one slot: one queue's keys
            // share its hash tag, many queues' keys do not.
            let mut out = Vec::with_capacity(queues.len());
            for chunk in queues.chunks(STATS_CONCURRENCY) {
                let stats = chunk.iter().map(|queue| self.stats(queue));
                out.extend(futures_util::future::try_join_all(stats).await?);
            }
            return Ok(out);
        }
        let mut out = Vec::with_capacity(queues.len());
        for chunk in queues.chunks(STATS_PIPELINE) {
            let counts: Vec<u64> = retry_once(|| {
                let mut conn = self.conn();
                let mut pipe = redis::pipe();
                for queue in chunk {
                    let keys = self.keys(queue);
                    for key in [&keys.ready, &keys.processing, &keys.delayed, &keys.dead] {
                        pipe.cmd("ZCARD").arg(key);
                    }
                }
                async move { pipe.query_async(&mut conn).await }
            })
            .await?;
            out.extend(counts.chunks_exact(4).map(|c| QueueStats {
                ready: c[0],
                processing: c[1],
                delayed: c[2],
                dead: c[3],
            }));
        }
        Ok(out)
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
            let mut message = decode_message(queue, id, &open_stored(queue, id, body.clone())?)?;
            message.attempts = attempts[i].unwrap_or(0);
            out.push(DeadLetter {
                message,
                reason: reasons[i].clone().unwrap_or_default(),
                dead_at_ms: *dead_at as u64,
            });
        }
        Ok(out)
    }

    async fn admit_queue(&self, queue: &str, max_per_workspace: u64) -> Result<bool> {
        if self.inner.registered.lock().expect("lock").contains(queue) {
            return Ok(true);
        }
        let key = format!("{}queues:{}", self.prefix(), queue_workspace(queue));
        let admitted: i64 = retry_once(|| {
            let mut conn = self.conn();
            let mut invocation = self.inner.scripts.admit_queue.prepare_invoke();
            invocation.key(&key).arg(queue).arg(max_per_workspace);
            async move { invocation.invoke_async(&mut conn).await }
        })
        .await?;
        Ok(admitted == 1)
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
        let key = format!("{}probe:{key}", self.prefix());
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

/// A message body read from a queue, opened when it was stored compressed.
fn open_stored(queue: &str, id: &str, body: Vec<u8>) -> Result<Bytes> {
    compress::unpack(Bytes::from(body)).map_err(|reason| BrokerError::Unreadable {
        what: format!("message {id} in queue {queue}"),
        reason,
    })
}

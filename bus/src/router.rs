//! The `MessageRouter`: what one bus node does with messages, independent of
//! how agents reach it. Subscriptions of local sinks, publish to a topic,
//! direct messages honouring the delivery mode, workspace and global
//! broadcasts, inboxes, and queues with their retry policy. On topics with
//! history, the node fills gaps in what it receives from the history
//! ([`gaps`]).

mod faults;
mod gaps;
mod publisher;
mod subscriptions;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

pub use self::faults::DeliveryFaults;
pub use self::publisher::PendingPublish;
use self::publisher::Publisher;
use self::subscriptions::LocalSubscriptions;
pub use self::subscriptions::{DeliverySink, Dispatched, SinkId, SubscriptionError};
use crate::broker::{
    Broker, BrokerError, Claimed, DeadLetter, HistoryLimits, HistoryPolicy, HistoryQuery,
    HistoryRead, QueueStats, ReclaimOutcome, RejectOutcome, RetryPolicy,
};
use crate::limits::QuotaError;
use crate::message::history::{self, HistoryRule};
use crate::message::names::{self, Channel};
use crate::message::{AgentMessage, DeliveryMode};

/// Payload published on an inbox channel to tell the recipient's node that
/// its inbox queue has work (queue-mode direct messages). Never valid JSON
/// of a message, so sinks can tell it apart.
pub const INBOX_WAKE: &[u8] = b"wake";

/// Longest single wait inside a blocking dequeue, so delayed and reclaimed
/// messages (which publish no wake-up) are picked up within this bound.
const DEQUEUE_POLL: Duration = Duration::from_millis(200);

/// Queue and inbox settings of one node.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RouterConfig {
    /// How rejected and expired messages are retried.
    pub retry: RetryPolicy,
    /// How long a claimed message stays invisible before it is reclaimed.
    pub visibility: Duration,
    /// Most messages one queue holds (all states, dead letters included).
    pub queue_max_len: u64,
    /// Most messages one agent's inbox holds.
    pub inbox_max_len: u64,
    /// Most distinct patterns the node holds at the broker.
    #[serde(default = "default_max_patterns")]
    pub max_patterns: usize,
    /// Most queues (inboxes included) one workspace may create.
    #[serde(default = "default_max_queues")]
    pub max_queues_per_workspace: u64,
    /// Deliberate faults for tests; none by default.
    #[serde(default)]
    pub faults: DeliveryFaults,
}

impl Default for RouterConfig {
    fn default() -> Self {
        Self {
            retry: RetryPolicy::default(),
            visibility: Duration::from_secs(30),
            queue_max_len: 1_000_000,
            inbox_max_len: 10_000,
            max_patterns: default_max_patterns(),
            max_queues_per_workspace: default_max_queues(),
            faults: DeliveryFaults::default(),
        }
    }
}

fn default_max_patterns() -> usize {
    2_000
}

fn default_max_queues() -> u64 {
    100_000
}

/// What a router call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    /// The broker failed or refused (a full queue included).
    #[error(transparent)]
    Broker(#[from] BrokerError),
    /// The node's subscription could not be changed.
    #[error(transparent)]
    Subscription(SubscriptionError),
    /// A budget of the node or workspace is used up.
    #[error(transparent)]
    Quota(#[from] QuotaError),
    /// The publish pipeline could not publish (its broker batch failed, or
    /// it has stopped).
    #[error("publish failed: {0}")]
    Publish(String),
    /// The topic keeps no history on this node.
    #[error("topic {0:?} keeps no history (no --history rule covers it)")]
    NoHistory(String),
}

impl From<SubscriptionError> for RouterError {
    fn from(e: SubscriptionError) -> Self {
        match e {
            SubscriptionError::Quota(q) => Self::Quota(q),
            other => Self::Subscription(other),
        }
    }
}

/// What router calls return.
pub type Result<T, E = RouterError> = std::result::Result<T, E>;

/// What happened to a direct message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectOutcome {
    /// Nodes that had the recipient subscribed when it was published.
    pub live: usize,
    /// Whether a copy was stored in the recipient's inbox queue.
    pub stored: bool,
}

/// One node's router. Clones share the node's broker subscription.
#[derive(Debug, Clone)]
pub struct MessageRouter {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    broker: Arc<dyn Broker>,
    config: RouterConfig,
    subscriptions: LocalSubscriptions,
    /// Every publish of the node goes through it, in order.
    publisher: Publisher,
    /// Which topics keep history, first match wins.
    history: Vec<HistoryRule>,
    next_sink: AtomicU64,
}

impl MessageRouter {
    /// Opens the node's broker subscription and starts its tasks; they stop
    /// when the last clone of the router is dropped. No topic keeps history.
    pub async fn new(broker: Arc<dyn Broker>, config: RouterConfig) -> Result<Self> {
        Self::with_history(broker, config, Vec::new()).await
    }

    /// [`MessageRouter::new`], with the topics the `history` rules cover
    /// keeping history (every node of a bus must have the same rules).
    pub async fn with_history(
        broker: Arc<dyn Broker>,
        config: RouterConfig,
        history: Vec<HistoryRule>,
    ) -> Result<Self> {
        let subscription = broker.subscribe().await?;
        // With history, the dispatcher reads it to fill gaps in offsets.
        let gap_reader = (!history.is_empty()).then(|| broker.clone());
        Ok(Self {
            inner: Arc::new(Inner {
                history,
                publisher: Publisher::start(broker.clone()),
                broker,
                config,
                subscriptions: LocalSubscriptions::start(
                    subscription,
                    config.faults,
                    config.max_patterns,
                    gap_reader,
                ),
                next_sink: AtomicU64::new(1),
            }),
        })
    }

    /// The broker, for the health probes that go to it directly (ping,
    /// write/read).
    pub fn broker(&self) -> &Arc<dyn Broker> {
        &self.inner.broker
    }

    /// The node's queue and inbox settings.
    pub fn config(&self) -> &RouterConfig {
        &self.inner.config
    }

    /// A fresh id for a local sink.
    pub fn next_sink_id(&self) -> SinkId {
        self.inner.next_sink.fetch_add(1, Ordering::Relaxed)
    }

    /// Subscribes a local sink to channels; returns once the broker delivers
    /// them to this node.
    pub async fn subscribe(
        &self,
        id: SinkId,
        sink: &Arc<dyn DeliverySink>,
        channels: &[Channel],
    ) -> Result<()> {
        let keys: Vec<String> = channels.iter().map(Channel::key).collect();
        Ok(self.inner.subscriptions.subscribe(id, sink, &keys).await?)
    }

    /// Subscribes a local sink to broker-level patterns (made by
    /// [`names::resolve_pattern`]).
    pub async fn psubscribe(
        &self,
        id: SinkId,
        sink: &Arc<dyn DeliverySink>,
        patterns: &[String],
    ) -> Result<()> {
        Ok(self
            .inner
            .subscriptions
            .psubscribe(id, sink, patterns)
            .await?)
    }

    /// Drops a local sink from channels; the node's broker subscription goes
    /// with the last sink.
    pub async fn unsubscribe(&self, id: SinkId, channels: &[Channel]) {
        let keys: Vec<String> = channels.iter().map(Channel::key).collect();
        self.inner.subscriptions.unsubscribe(id, &keys).await;
    }

    /// Drops a local sink from channels in this node's index only, the
    /// broker left as it is: for a sink going away with the node, whose
    /// broker subscription ends with it (a broker change would wait on a
    /// Redis that may be gone already).
    pub fn forget(&self, id: SinkId, channels: &[Channel]) {
        let keys: Vec<String> = channels.iter().map(Channel::key).collect();
        self.inner.subscriptions.forget(id, &keys);
    }

    /// Drops a local sink from broker patterns.
    pub async fn punsubscribe(&self, id: SinkId, patterns: &[String]) {
        self.inner.subscriptions.punsubscribe(id, patterns).await;
    }

    /// Channels and patterns this node holds at the broker.
    pub fn subscription_counts(&self) -> (usize, usize) {
        self.inner.subscriptions.counts()
    }

    /// Publishes `message` on `channel` (setting its topic and workspace from
    /// the channel); returns the number of nodes that received it.
    pub async fn publish(&self, channel: &Channel, message: AgentMessage) -> Result<usize> {
        Ok(self
            .submit_publish(channel, message)
            .await?
            .await?
            .receivers)
    }

    /// Hands `message` to the node's publish pipeline (setting its topic
    /// and workspace from the channel, and keeping it in the topic's
    /// history when a history rule covers the topic) and returns as soon as
    /// it has its place in the order, without waiting for the broker: a
    /// caller that submits several publishes one after another has them
    /// published in that order. The [`PendingPublish`] resolves to the
    /// number of nodes that received it and its history stamp.
    pub async fn submit_publish(
        &self,
        channel: &Channel,
        mut message: AgentMessage,
    ) -> Result<PendingPublish> {
        message.topic = channel.wire_name();
        message.workspace = channel.workspace().map(str::to_owned);
        self.inner
            .publisher
            .submit(
                channel.key(),
                Bytes::from(message.to_json()),
                self.history_policy(channel),
            )
            .await
    }

    /// Publishes bytes as they are (already a serialized message), through
    /// the node's publish pipeline, kept in no history.
    pub async fn publish_raw(&self, channel: &Channel, payload: Bytes) -> Result<usize> {
        Ok(self
            .inner
            .publisher
            .submit(channel.key(), payload, None)
            .await?
            .await?
            .receivers)
    }

    /// How much history `channel` keeps, if any: topics a history rule of
    /// this node covers.
    pub fn history_policy(&self, channel: &Channel) -> Option<HistoryPolicy> {
        match channel {
            Channel::Topic { workspace, name } => {
                history::policy_for(&self.inner.history, workspace, name)
            }
            _ => None,
        }
    }

    /// Reads `channel`'s history (a topic with a history rule; others have
    /// none to read).
    pub async fn read_history(
        &self,
        channel: &Channel,
        query: &HistoryQuery,
        limits: HistoryLimits,
    ) -> Result<HistoryRead> {
        if self.history_policy(channel).is_none() {
            return Err(RouterError::NoHistory(channel.wire_name()));
        }
        Ok(self
            .inner
            .broker
            .read_history(&channel.key(), query, limits)
            .await?)
    }

    /// Sends `message` to agent `to` in `workspace`:
    /// - `Pubsub`: live; stored in the inbox only when no node has the agent.
    /// - `Queue`: stored in the inbox queue; the agent's node is woken to
    ///   hand it over as a job (acked by the agent).
    /// - `Both`: live and stored; the agent dedupes by id.
    pub async fn send_direct(
        &self,
        workspace: &str,
        to: &str,
        mut message: AgentMessage,
        mode: DeliveryMode,
    ) -> Result<DirectOutcome> {
        let channel = names::inbox_channel(workspace, to);
        message.to = Some(to.to_owned());
        message.topic = channel.wire_name();
        message.workspace = Some(workspace.to_owned());
        let queue = names::inbox_queue(workspace, to);
        let max = self.inner.config.inbox_max_len;
        let broker = &self.inner.broker;
        match mode {
            DeliveryMode::Pubsub => {
                let live = self
                    .publish_raw(&channel, Bytes::from(message.to_json()))
                    .await?;
                let stored = live == 0;
                if stored {
                    self.admit(&queue).await?;
                    broker.enqueue(&queue, &[message], max).await?;
                }
                Ok(DirectOutcome { live, stored })
            }
            DeliveryMode::Queue => {
                self.admit(&queue).await?;
                broker.enqueue(&queue, &[message], max).await?;
                let live = self
                    .publish_raw(&channel, Bytes::from_static(INBOX_WAKE))
                    .await?;
                Ok(DirectOutcome { live, stored: true })
            }
            DeliveryMode::Both => {
                self.admit(&queue).await?;
                broker.enqueue(&queue, &[message.clone()], max).await?;
                let live = self
                    .publish_raw(&channel, Bytes::from(message.to_json()))
                    .await?;
                Ok(DirectOutcome { live, stored: true })
            }
        }
    }

    /// Sends to every agent of `workspace`.
    pub async fn broadcast_workspace(
        &self,
        workspace: &str,
        message: AgentMessage,
    ) -> Result<usize> {
        self.publish(&names::workspace_channel(workspace), message)
            .await
    }

    /// Sends to every agent on the bus.
    pub async fn broadcast_global(&self, message: AgentMessage) -> Result<usize> {
        self.publish(&Channel::Broadcast, message).await
    }

    /// Claims up to `max` messages waiting in an agent's inbox (delivered on
    /// connect; each must be acked on the inbox queue or it comes back after
    /// the visibility timeout).
    pub async fn pending(&self, workspace: &str, agent: &str, max: usize) -> Result<Vec<Claimed>> {
        self.claim(&names::inbox_queue(workspace, agent), max).await
    }

    /// Refuses a queue its workspace has no room for (see
    /// [`Broker::admit_queue`]).
    async fn admit(&self, queue: &str) -> Result<()> {
        let max = self.inner.config.max_queues_per_workspace;
        if self.inner.broker.admit_queue(queue, max).await? {
            return Ok(());
        }
        Err(RouterError::Quota(QuotaError {
            what: "queues (inboxes included)",
            per: "workspace",
            max: usize::try_from(max).unwrap_or(usize::MAX),
        }))
    }

    /// Adds messages to a broker-level queue (see [`names::resolve_queue`]).
    pub async fn enqueue(&self, queue: &str, messages: &[AgentMessage]) -> Result<usize> {
        self.admit(queue).await?;
        Ok(self
            .inner
            .broker
            .enqueue(queue, messages, self.inner.config.queue_max_len)
            .await?)
    }

    /// Claims up to `max` messages without waiting.
    pub async fn claim(&self, queue: &str, max: usize) -> Result<Vec<Claimed>> {
        let config = &self.inner.config;
        Ok(self
            .inner
            .broker
            .claim(queue, max, config.visibility, &config.retry)
            .await?)
    }

    /// Claims up to `max` messages, waiting up to `wait` for the first one.
    /// Idle waiters sleep on the broker's wake-ups rather than polling.
    pub async fn dequeue(&self, queue: &str, max: usize, wait: Duration) -> Result<Vec<Claimed>> {
        let deadline = Instant::now() + wait;
        loop {
            let claimed = self.claim(queue, max).await?;
            let now = Instant::now();
            if !claimed.is_empty() || now >= deadline {
                return Ok(claimed);
            }
            let nap = (deadline - now).min(DEQUEUE_POLL);
            self.inner.broker.wait_for_work(queue, nap).await?;
        }
    }

    /// Acks one message (idempotent within the broker's ack memory).
    pub async fn ack(&self, queue: &str, id: &str) -> Result<bool> {
        Ok(self.inner.broker.ack(queue, id).await?)
    }

    /// Acks several messages of one queue in one broker call.
    pub async fn ack_many(&self, queue: &str, ids: &[String]) -> Result<Vec<bool>> {
        Ok(self.inner.broker.ack_many(queue, ids).await?)
    }

    /// Gives a claimed message back under the node's retry policy; `None` when
    /// it was not claimed.
    pub async fn reject(
        &self,
        queue: &str,
        id: &str,
        reason: &str,
        requeue: bool,
    ) -> Result<Option<RejectOutcome>> {
        Ok(self
            .inner
            .broker
            .reject(queue, id, reason, requeue, &self.inner.config.retry)
            .await?)
    }

    /// Returns expired claims of `queue` under the node's retry policy.
    pub async fn reclaim(&self, queue: &str) -> Result<ReclaimOutcome> {
        Ok(self
            .inner
            .broker
            .reclaim(queue, &self.inner.config.retry)
            .await?)
    }

    /// Where the messages of `queue` are.
    pub async fn queue_stats(&self, queue: &str) -> Result<QueueStats> {
        Ok(self.inner.broker.stats(queue).await?)
    }

    /// The oldest `limit` dead letters of `queue`.
    pub async fn dead_letters(&self, queue: &str, limit: usize) -> Result<Vec<DeadLetter>> {
        Ok(self.inner.broker.dead_letters(queue, limit).await?)
    }

    /// The number of queues the broker knows (the bus's own health-probe
    /// queues left out), and the stats of up to `limit` of them, in name
    /// order, starting after `after`.
    pub async fn queue_page(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(usize, Vec<(String, QueueStats)>)> {
        let mut queues = self.inner.broker.queues().await?;
        queues.retain(|q| !q.starts_with("internal:"));
        let total = queues.len();
        let start = after.map_or(0, |a| queues.partition_point(|q| q.as_str() <= a));
        let page: Vec<String> = queues.into_iter().skip(start).take(limit).collect();
        let stats = self.inner.broker.stats_many(&page).await?;
        Ok((total, page.into_iter().zip(stats).collect()))
    }

    /// Stats of every queue the broker knows (the bus's own health-probe
    /// queues left out).
    pub async fn all_queue_stats(&self) -> Result<Vec<(String, QueueStats)>> {
        let mut queues = self.inner.broker.queues().await?;
        queues.retain(|q| !q.starts_with("internal:"));
        let stats = self.inner.broker.stats_many(&queues).await?;
        Ok(queues.into_iter().zip(stats).collect())
    }
}

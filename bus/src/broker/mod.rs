//! The `Broker` trait: pub/sub, reliable priority queues, and the probes the
//! health checker needs. [`redis::RedisBroker`] is the production backend;
//! [`memory::MemoryBroker`] is the embedded one for zero-setup runs. Both pass
//! one conformance suite (`bus/tests/conformance.rs`).
//!
//! Names here are broker-level names (see [`crate::message::names`]); a broker
//! may add its own namespace in front, and strips it again on delivery.

pub mod clock;
mod envelope;
pub mod memory;
pub mod redis;

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};

pub use clock::{Clock, ManualClock, SystemClock};

use crate::message::AgentMessage;
pub use crate::message::history::{HistoryPolicy, Offset, Stamp};

/// Highest queue priority; priorities run 0..=255, higher first.
pub const MAX_PRIORITY: u8 = u8::MAX;

/// How long a queue remembers acked ids, so that an ack repeated within it
/// (a client retrying after a lost reply) gets the same answer.
pub const ACK_MEMORY: Duration = Duration::from_secs(10);

/// How many deliveries a node's subscriber buffers before the broker waits
/// for the node to catch up (backpressure, never a silent drop).
pub const DELIVERY_BUFFER: usize = 8192;

/// What went wrong talking to a broker.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// A Redis command or connection failed.
    #[error("redis: {0}")]
    Redis(#[from] ::redis::RedisError),
    /// A stored message no longer parses: named so an operator can remove it.
    #[error("message {id} in queue {queue} is not valid JSON: {source}")]
    Corrupt {
        /// The queue holding it.
        queue: String,
        /// Its message id.
        id: String,
        /// What the JSON parser said.
        source: serde_json::Error,
    },
    /// The node's subscription task has ended (the broker was dropped or failed
    /// for good).
    #[error("the broker's subscription task has stopped")]
    Closed,
    /// A command got no answer within this bound.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// A request this deployment cannot serve (e.g. a pattern a Redis
    /// Cluster cannot route).
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// A stored or published payload that does not open (a compressed
    /// frame that is corrupt): named so an operator can find it.
    #[error("{what} does not open: {reason}")]
    Unreadable {
        /// Which payload (queue and id, or topic and offset).
        what: String,
        /// Why.
        reason: String,
    },
    /// The queue holds its maximum; what was added before it filled stays.
    #[error("queue {queue} is full ({limit} messages held); {added} of the batch were added")]
    QueueFull {
        /// The full queue.
        queue: String,
        /// Its maximum length (all states, dead letters included).
        limit: u64,
        /// How many messages of the batch went in before it filled.
        added: usize,
    },
}

/// What broker calls return.
pub type Result<T, E = BrokerError> = std::result::Result<T, E>;

/// One pub/sub message as a node receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Broker-level channel it was published to.
    pub channel: String,
    /// The pattern that matched, for pattern subscriptions.
    pub pattern: Option<String>,
    /// The published bytes, shared without copying by every local recipient.
    pub payload: Bytes,
    /// Where the message sits in its topic's history, on topics that keep
    /// one.
    pub stamp: Option<Stamp>,
}

/// One message for [`Broker::publish_many`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// The broker-level channel.
    pub channel: String,
    /// The message.
    pub payload: Bytes,
    /// Keep it in the channel's history, so much of which is kept (topics
    /// only).
    pub history: Option<HistoryPolicy>,
}

/// What publishing one message did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// How many subscriptions (nodes) received it.
    pub receivers: usize,
    /// Its place in the channel's history, when it was kept.
    pub stamp: Option<Stamp>,
}

/// What to read of a topic's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HistoryQuery {
    /// Nothing but where the history stands (its epoch and last offset).
    Head,
    /// Every message after `offset` of `epoch`, all or nothing.
    After {
        /// The epoch the reader knew.
        epoch: String,
        /// The last offset it saw.
        offset: Offset,
    },
    /// Every message after `after` and before `before` of `epoch`, all or
    /// nothing: a node filling a gap it saw, however far the topic has
    /// moved on since.
    Between {
        /// The epoch of both offsets.
        epoch: String,
        /// The last offset before the gap.
        after: Offset,
        /// The first offset after it.
        before: Offset,
    },
    /// The last `count` messages.
    Last {
        /// How many.
        count: usize,
    },
}

/// Bounds of one history read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryLimits {
    /// Most messages returned.
    pub max: usize,
    /// Most payload bytes returned.
    pub max_bytes: usize,
}

/// How a history read went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadOutcome {
    /// Everything asked for is in `entries`.
    Complete,
    /// [`HistoryQuery::After`]: the history the reader knew was lost.
    EpochChanged,
    /// [`HistoryQuery::After`]: messages after the offset are no longer
    /// kept; `missed` of them.
    WindowExceeded {
        /// How many messages the reader will never get.
        missed: u64,
    },
    /// [`HistoryQuery::After`]: more than the limits allow are after the
    /// offset; `behind` of them.
    TooFarBehind {
        /// How many messages lie after the offset.
        behind: u64,
    },
    /// [`HistoryQuery::After`]: the offset lies ahead of the history (its
    /// writes were lost without the epoch changing).
    UnknownOffset,
    /// [`HistoryQuery::Last`]: the byte bound cut the answer short.
    Truncated,
}

/// What a history read found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryRead {
    /// The topic's epoch now (a new one is started when there is none).
    pub epoch: String,
    /// The topic's last offset (`n` 0 when it has no message yet).
    pub head: Offset,
    /// Whether `entries` hold everything asked for, and why not.
    pub outcome: ReadOutcome,
    /// The messages, oldest first.
    pub entries: Vec<(Offset, Bytes)>,
}

/// Changes the set of channels and patterns one node listens to.
/// Calls return once the broker has confirmed the change, so a publish made
/// after `subscribe` returns is received.
#[async_trait]
pub trait Subscriber: Send + Sync + Debug {
    /// Starts receiving `channels` (exact broker names).
    async fn subscribe(&self, channels: &[String]) -> Result<()>;
    /// Stops receiving `channels`.
    async fn unsubscribe(&self, channels: &[String]) -> Result<()>;
    /// Starts receiving every channel matching one of `patterns` (Redis globs).
    async fn psubscribe(&self, patterns: &[String]) -> Result<()>;
    /// Stops receiving `patterns`.
    async fn punsubscribe(&self, patterns: &[String]) -> Result<()>;
}

/// A node's subscription: the control half and the bounded stream of what
/// arrives. Dropping both ends the subscription.
#[derive(Debug)]
pub struct Subscription {
    /// Changes what the subscription listens to.
    pub control: Arc<dyn Subscriber>,
    /// What arrives, bounded: a node that falls behind slows the broker's
    /// reader down rather than losing deliveries silently.
    pub deliveries: mpsc::Receiver<Delivery>,
    /// How many times the subscription lost deliveries: it came back after
    /// the connection was lost (Redis restarted, the connection cut), or
    /// (on a cluster) dropped what arrived while the node was a full buffer
    /// behind. Its sender is gone on a broker that cannot lose any.
    pub restored: watch::Receiver<u64>,
}

/// How rejected and timed-out messages are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// A message is handed out at most this many times; then it is
    /// dead-lettered.
    pub max_attempts: u32,
    /// Delay before the first retry; doubles with each attempt.
    pub base_backoff: Duration,
    /// Upper bound of the retry delay.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            base_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// Delay before retrying a message that has been handed out `attempts`
    /// times: `base * 2^(attempts-1)`, capped at `max_backoff`.
    pub fn backoff(&self, attempts: u32) -> Duration {
        let exp = attempts.saturating_sub(1).min(30);
        self.base_backoff
            .saturating_mul(1u32 << exp)
            .min(self.max_backoff)
    }
}

/// A message handed to one consumer, invisible to others until `deadline_ms`.
#[derive(Debug, Clone, PartialEq)]
pub struct Claimed {
    /// The message, with `attempts` counting this claim.
    pub message: AgentMessage,
    /// Clock time (ms) after which the claim may be reclaimed.
    pub deadline_ms: u64,
}

/// What `reject` did. Not a wire type: `protocol::RejectOutcome` is what
/// clients see, converted at the edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectOutcome {
    /// Back in the queue after `delay_ms`.
    Requeued {
        /// How long before it can be claimed again.
        delay_ms: u64,
        /// Deliveries so far, this one included.
        attempts: u32,
    },
    /// Moved to the dead-letter queue.
    DeadLettered {
        /// Deliveries it had before it was given up.
        attempts: u32,
    },
}

/// What a reclaim pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReclaimOutcome {
    /// Expired claims put back in the queue.
    pub requeued: u64,
    /// Expired claims out of attempts, moved to the dead letters.
    pub dead_lettered: u64,
}

/// A message in the dead-letter queue with why it is there.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// The message as it was last delivered (`attempts` included).
    pub message: AgentMessage,
    /// Why it was given up: the last reject's reason, or that its attempts ran
    /// out.
    pub reason: String,
    /// When it was dead-lettered (broker clock, ms since the epoch).
    pub dead_at_ms: u64,
}

/// Where the messages of one queue are.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueStats {
    /// Claimable now.
    pub ready: u64,
    /// Claimed, awaiting ack or the visibility deadline.
    pub processing: u64,
    /// Rejected, waiting out their backoff.
    pub delayed: u64,
    /// Dead-lettered.
    pub dead: u64,
}

/// A message broker: pub/sub plus reliable priority queues.
///
/// Queue contract: a message leaves its queue only when acked. Claims move
/// messages to *processing* with a visibility deadline; claims past their
/// deadline are reclaimed (lazily by every `claim`, or by `reclaim`). Higher
/// priority first, FIFO within one priority.
#[async_trait]
pub trait Broker: Send + Sync + Debug + 'static {
    /// `"redis"` or `"memory"`, for logs and reports.
    fn kind(&self) -> &'static str;

    /// Publishes to a channel; returns how many subscriptions received it
    /// (nodes, not agents: each node fans out locally).
    async fn publish(&self, channel: &str, payload: Bytes) -> Result<usize>;

    /// Publishes several messages, in order, in as few round trips as the
    /// broker allows; returns each one's receiver count, or the error that
    /// failed the batch. Messages to one channel reach it in slice order.
    /// Messages with `history` are kept in their channel's history in the
    /// same step as they are published, so that no subscriber sees a
    /// message the history lacks, or the reverse.
    async fn publish_many(&self, messages: &[Outgoing]) -> Result<Vec<Published>> {
        let mut published = Vec::with_capacity(messages.len());
        for m in messages {
            if m.history.is_some() {
                return Err(BrokerError::Unsupported(format!(
                    "the {} broker keeps no topic history",
                    self.kind()
                )));
            }
            let receivers = self.publish(&m.channel, m.payload.clone()).await?;
            published.push(Published {
                receivers,
                stamp: None,
            });
        }
        Ok(published)
    }

    /// Reads a topic's history (`channel` a broker-level topic channel),
    /// starting an epoch for it when it has none.
    async fn read_history(
        &self,
        channel: &str,
        query: &HistoryQuery,
        limits: HistoryLimits,
    ) -> Result<HistoryRead> {
        let _ = (channel, query, limits);
        Err(BrokerError::Unsupported(format!(
            "the {} broker keeps no topic history",
            self.kind()
        )))
    }

    /// Opens a node subscription (for Redis, one dedicated pub/sub
    /// connection that resubscribes after reconnects).
    async fn subscribe(&self) -> Result<Subscription>;

    /// Adds messages to a queue (one round trip for the batch) and returns
    /// how many were added. A message whose id is already in the queue is
    /// skipped, so retries are safe. A queue holds at most `max_len` messages
    /// in any state, dead letters included; past that the rest of the batch
    /// is refused with [`BrokerError::QueueFull`].
    async fn enqueue(&self, queue: &str, messages: &[AgentMessage], max_len: u64) -> Result<usize>;

    /// Whether `queue` may be enqueued to: true when it is known already or
    /// its workspace (its name up to the first `/`) holds fewer than
    /// `max_per_workspace` queues; an admitted queue counts from then on.
    /// Atomic: concurrent admissions never overshoot the budget.
    async fn admit_queue(&self, queue: &str, max_per_workspace: u64) -> Result<bool>;

    /// Claims up to `max` messages for `visibility`. First reclaims expired
    /// claims and promotes delayed messages whose backoff has passed.
    async fn claim(
        &self,
        queue: &str,
        max: usize,
        visibility: Duration,
        policy: &RetryPolicy,
    ) -> Result<Vec<Claimed>>;

    /// Waits until work may be available in `queue` (an enqueue somewhere, or
    /// `timeout`). Spurious returns are allowed; callers claim and wait again.
    async fn wait_for_work(&self, queue: &str, timeout: Duration) -> Result<()>;

    /// Removes a message wherever it waits (processing, ready or delayed).
    /// Returns false when the queue does not hold it, unless it was acked
    /// within [`ACK_MEMORY`] (acks are idempotent).
    async fn ack(&self, queue: &str, id: &str) -> Result<bool>;

    /// [`Broker::ack`] of several messages of one queue, in one round trip
    /// where the backend allows; one answer per id, in order.
    async fn ack_many(&self, queue: &str, ids: &[String]) -> Result<Vec<bool>> {
        let mut acked = Vec::with_capacity(ids.len());
        for id in ids {
            acked.push(self.ack(queue, id).await?);
        }
        Ok(acked)
    }

    /// Gives a claimed message back: requeued after backoff while attempts
    /// remain and `requeue` is set, dead-lettered with `reason` otherwise.
    /// `None` when the message is not currently claimed.
    async fn reject(
        &self,
        queue: &str,
        id: &str,
        reason: &str,
        requeue: bool,
        policy: &RetryPolicy,
    ) -> Result<Option<RejectOutcome>>;

    /// Returns claims past their deadline to the queue (or the dead-letter
    /// queue once out of attempts).
    async fn reclaim(&self, queue: &str, policy: &RetryPolicy) -> Result<ReclaimOutcome>;

    /// Where the messages of `queue` are (ready, processing, delayed, dead).
    async fn stats(&self, queue: &str) -> Result<QueueStats>;

    /// [`Broker::stats`] of several queues, in their order (a single Redis
    /// answers them in a few pipelined round trips; a cluster, whose
    /// pipelines cannot cross slots, in concurrent round trips per queue).
    async fn stats_many(&self, queues: &[String]) -> Result<Vec<QueueStats>> {
        let mut out = Vec::with_capacity(queues.len());
        for queue in queues {
            out.push(self.stats(queue).await?);
        }
        Ok(out)
    }

    /// The oldest `limit` dead letters.
    async fn dead_letters(&self, queue: &str, limit: usize) -> Result<Vec<DeadLetter>>;

    /// Every queue that has been enqueued to.
    async fn queues(&self) -> Result<Vec<String>>;

    /// Round trip to the broker.
    async fn ping(&self) -> Result<()>;

    /// Writes `value` under `key` (with a short expiry) and reads it back.
    async fn write_read(&self, key: &str, value: &[u8]) -> Result<Vec<u8>>;
}

/// The workspace part of a broker queue name (`{W}/{name}`).
pub(crate) fn queue_workspace(queue: &str) -> &str {
    queue.split_once('/').map_or(queue, |(w, _)| w)
}

/// The answer to an enqueue that added `added` messages to `queue`: the
/// count, or [`BrokerError::QueueFull`] when the queue filled before the
/// end of the batch (what was added stays).
pub(crate) fn enqueued(queue: &str, max_len: u64, added: usize, full: bool) -> Result<usize> {
    if full {
        return Err(BrokerError::QueueFull {
            queue: queue.to_owned(),
            limit: max_len,
            added,
        });
    }
    Ok(added)
}

/// Parses a stored message, naming the queue and id when it is corrupt.
pub(crate) fn decode_message(queue: &str, id: &str, body: &[u8]) -> Result<AgentMessage> {
    serde_json::from_slice(body).map_err(|source| BrokerError::Corrupt {
        queue: queue.to_owned(),
        id: id.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let p = RetryPolicy {
            max_attempts: 10,
            base_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
        };
        assert_eq!(p.backoff(1), Duration::from_millis(100));
        assert_eq!(p.backoff(2), Duration::from_millis(200));
        assert_eq!(p.backoff(4), Duration::from_millis(800));
        assert_eq!(p.backoff(5), Duration::from_secs(1));
        assert_eq!(p.backoff(1000), Duration::from_secs(1));
    }
}

//! The in-process broker: the embedded default for zero-setup runs. Same
//! contract as Redis (the conformance suite runs against both), nothing on
//! disk, one process.

mod history;
mod queue;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::{Notify, mpsc};

use self::history::Histories;
pub(crate) use self::history::new_epoch;
use self::queue::MemoryQueue;
use super::{
    Broker, Claimed, Clock, DELIVERY_BUFFER, DeadLetter, Delivery, HistoryLimits, HistoryQuery,
    HistoryRead, Outgoing, Published, QueueStats, ReclaimOutcome, RejectOutcome, Result,
    RetryPolicy, Stamp, Subscriber, Subscription, SystemClock, enqueued, queue_workspace,
};
use crate::message::{AgentMessage, glob};

/// The in-memory broker. Clones share one bus.
#[derive(Debug, Clone)]
pub struct MemoryBroker {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    clock: Arc<dyn Clock>,
    nodes: RwLock<Vec<Arc<NodeSubscription>>>,
    queues: Mutex<HashMap<String, MemoryQueue>>,
    wakers: Mutex<HashMap<String, Arc<Notify>>>,
    /// Health-check probe values; callers use a fixed set of keys.
    probes: Mutex<HashMap<String, Vec<u8>>>,
    /// Queues admitted so far, and how many per workspace.
    admitted: Mutex<(HashSet<String>, HashMap<String, u64>)>,
    /// Topic histories. Held while a message kept in history is appended
    /// and sent, so the nodes get a topic's messages in history order.
    histories: tokio::sync::Mutex<Histories>,
}

/// One node's channels and patterns, and where its deliveries go.
#[derive(Debug)]
struct NodeSubscription {
    channels: RwLock<HashSet<String>>,
    patterns: RwLock<HashSet<String>>,
    tx: mpsc::Sender<Delivery>,
}

impl Default for MemoryBroker {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryBroker {
    /// An empty broker; clones of it share its queues and subscriptions, so
    /// several embedded nodes can run on one.
    pub fn new() -> Self {
        Self::with_clock(Arc::new(SystemClock))
    }

    /// A broker whose queue deadlines follow `clock` (tests move it by hand).
    pub fn with_clock(clock: Arc<dyn Clock>) -> Self {
        Self {
            inner: Arc::new(Inner {
                clock,
                nodes: RwLock::default(),
                queues: Mutex::default(),
                wakers: Mutex::default(),
                probes: Mutex::default(),
                admitted: Mutex::default(),
                histories: tokio::sync::Mutex::default(),
            }),
        }
    }

    /// Loses every topic's history, as a Redis that restarted without its
    /// data would: the next write or read of a topic starts a new epoch
    /// (for tests of `recovered: false`).
    pub async fn forget_history(&self) {
        self.inner.histories.lock().await.forget();
    }

    /// Runs `f` on an existing queue; queues come into being on enqueue only,
    /// so claims on made-up names allocate nothing.
    fn with_queue<T: Default>(&self, queue: &str, f: impl FnOnce(&mut MemoryQueue) -> T) -> T {
        let mut queues = self.inner.queues.lock().expect("queue lock");
        queues.get_mut(queue).map(f).unwrap_or_default()
    }

    fn wake(&self, queue: &str, times: usize) {
        let wakers = self.inner.wakers.lock().expect("waker lock");
        if let Some(waker) = wakers.get(queue) {
            for _ in 0..times {
                waker.notify_one();
            }
        }
    }

    /// Sends `payload` (with its history `stamp`, if kept) to every node
    /// subscribed to `channel`; returns how many received it.
    async fn send(&self, channel: &str, payload: Bytes, stamp: Option<Stamp>) -> usize {
        let mut sends = Vec::new();
        let mut closed = false;
        for node in self.inner.nodes.read().expect("lock").iter() {
            if node.tx.is_closed() {
                closed = true;
                continue;
            }
            for delivery in node.matches(channel, &payload, &stamp) {
                sends.push((node.tx.clone(), delivery));
            }
        }
        if closed {
            self.inner
                .nodes
                .write()
                .expect("lock")
                .retain(|n| !n.tx.is_closed());
        }
        let mut received = 0;
        for (tx, delivery) in sends {
            // Waiting here is the memory broker's backpressure: a node that
            // falls behind slows its publishers instead of losing messages.
            if tx.send(delivery).await.is_ok() {
                received += 1;
            }
        }
        received
    }
}

impl NodeSubscription {
    /// The deliveries one published message makes to this node: one for the
    /// exact channel and one per matching pattern, as Redis does.
    fn matches(&self, channel: &str, payload: &Bytes, stamp: &Option<Stamp>) -> Vec<Delivery> {
        let mut out = Vec::new();
        if self.channels.read().expect("lock").contains(channel) {
            out.push(Delivery {
                channel: channel.to_owned(),
                pattern: None,
                payload: payload.clone(),
                stamp: stamp.clone(),
            });
        }
        for p in self.patterns.read().expect("lock").iter() {
            if glob::matches(p, channel) {
                out.push(Delivery {
                    channel: channel.to_owned(),
                    pattern: Some(p.clone()),
                    payload: payload.clone(),
                    stamp: stamp.clone(),
                });
            }
        }
        out
    }
}

#[async_trait]
impl Subscriber for NodeSubscription {
    async fn subscribe(&self, channels: &[String]) -> Result<()> {
        self.channels
            .write()
            .expect("lock")
            .extend(channels.iter().cloned());
        Ok(())
    }

    async fn unsubscribe(&self, channels: &[String]) -> Result<()> {
        let mut set = self.channels.write().expect("lock");
        for c in channels {
            set.remove(c);
        }
        Ok(())
    }

    async fn psubscribe(&self, patterns: &[String]) -> Result<()> {
        self.patterns
            .write()
            .expect("lock")
            .extend(patterns.iter().cloned());
        Ok(())
    }

    async fn punsubscribe(&self, patterns: &[String]) -> Result<()> {
        let mut set = self.patterns.write().expect("lock");
        for p in patterns {
            set.remove(p);
        }
        Ok(())
    }
}

#[async_trait]
impl Broker for MemoryBroker {
    fn kind(&self) -> &'static str {
        "memory"
    }

    async fn publish(&self, channel: &str, payload: Bytes) -> Result<usize> {
        Ok(self.send(channel, payload, None).await)
    }

    async fn publish_many(&self, messages: &[Outgoing]) -> Result<Vec<Published>> {
        let mut published = Vec::with_capacity(messages.len());
        for m in messages {
            let (receivers, stamp) = match m.history {
                None => (self.send(&m.channel, m.payload.clone(), None).await, None),
                Some(policy) => {
                    let mut histories = self.inner.histories.lock().await;
                    let now = self.inner.clock.now_ms();
                    let stamp = histories.append(&m.channel, &m.payload, policy, now);
                    let receivers = self
                        .send(&m.channel, m.payload.clone(), Some(stamp.clone()))
                        .await;
                    (receivers, Some(stamp))
                }
            };
            published.push(Published { receivers, stamp });
        }
        Ok(published)
    }

    async fn read_history(
        &self,
        channel: &str,
        query: &HistoryQuery,
        limits: HistoryLimits,
    ) -> Result<HistoryRead> {
        Ok(self
            .inner
            .histories
            .lock()
            .await
            .read(channel, query, limits))
    }

    async fn subscribe(&self) -> Result<Subscription> {
        let (tx, deliveries) = mpsc::channel(DELIVERY_BUFFER);
        let node = Arc::new(NodeSubscription {
            channels: RwLock::default(),
            patterns: RwLock::default(),
            tx,
        });
        self.inner.nodes.write().expect("lock").push(node.clone());
        Ok(Subscription {
            control: node,
            deliveries,
            // In the process, a subscription is never lost.
            restored: tokio::sync::watch::channel(0).1,
        })
    }

    async fn enqueue(&self, queue: &str, messages: &[AgentMessage], max_len: u64) -> Result<usize> {
        let (added, full) = {
            let mut queues = self.inner.queues.lock().expect("queue lock");
            let q = queues.entry(queue.to_owned()).or_default();
            let mut added = 0;
            let mut full = false;
            for m in messages {
                if q.held() >= max_len {
                    full = true;
                    break;
                }
                if q.enqueue(m) {
                    added += 1;
                }
            }
            (added, full)
        };
        self.wake(queue, added);
        enqueued(queue, max_len, added, full)
    }

    async fn claim(
        &self,
        queue: &str,
        max: usize,
        visibility: Duration,
        policy: &RetryPolicy,
    ) -> Result<Vec<Claimed>> {
        let now = self.inner.clock.now_ms();
        Ok(self.with_queue(queue, |q| q.claim(max, now, visibility, policy)))
    }

    async fn wait_for_work(&self, queue: &str, timeout: Duration) -> Result<()> {
        let waker = {
            let mut wakers = self.inner.wakers.lock().expect("waker lock");
            wakers.entry(queue.to_owned()).or_default().clone()
        };
        let _ = tokio::time::timeout(timeout, waker.notified()).await;
        // Drop the entry when no one else waits, so waiting on made-up queue
        // names leaves nothing behind.
        let mut wakers = self.inner.wakers.lock().expect("waker lock");
        if Arc::strong_count(&waker) == 2 {
            wakers.remove(queue);
        }
        Ok(())
    }

    async fn ack(&self, queue: &str, id: &str) -> Result<bool> {
        let now = self.inner.clock.now_ms();
        Ok(self.with_queue(queue, |q| q.ack(id, now)))
    }

    async fn ack_many(&self, queue: &str, ids: &[String]) -> Result<Vec<bool>> {
        let now = self.inner.clock.now_ms();
        Ok(self.with_queue(queue, |q| ids.iter().map(|id| q.ack(id, now)).collect()))
    }

    async fn reject(
        &self,
        queue: &str,
        id: &str,
        reason: &str,
        requeue: bool,
        policy: &RetryPolicy,
    ) -> Result<Option<RejectOutcome>> {
        let now = self.inner.clock.now_ms();
        Ok(self.with_queue(queue, |q| q.reject(id, reason, requeue, now, policy)))
    }

    async fn reclaim(&self, queue: &str, policy: &RetryPolicy) -> Result<ReclaimOutcome> {
        let now = self.inner.clock.now_ms();
        Ok(self.with_queue(queue, |q| q.reclaim(now, policy)))
    }

    async fn stats(&self, queue: &str) -> Result<QueueStats> {
        let queues = self.inner.queues.lock().expect("queue lock");
        Ok(queues
            .get(queue)
            .map(MemoryQueue::stats)
            .unwrap_or_default())
    }

    async fn dead_letters(&self, queue: &str, limit: usize) -> Result<Vec<DeadLetter>> {
        let queues = self.inner.queues.lock().expect("queue lock");
        Ok(queues
            .get(queue)
            .map(|q| q.dead_letters(limit))
            .unwrap_or_default())
    }

    async fn admit_queue(&self, queue: &str, max_per_workspace: u64) -> Result<bool> {
        let mut admitted = self.inner.admitted.lock().expect("lock");
        let (known, per_workspace) = &mut *admitted;
        if known.contains(queue) {
            return Ok(true);
        }
        let held = per_workspace
            .entry(queue_workspace(queue).to_owned())
            .or_default();
        if *held >= max_per_workspace {
            return Ok(false);
        }
        *held += 1;
        known.insert(queue.to_owned());
        Ok(true)
    }

    async fn queues(&self) -> Result<Vec<String>> {
        let mut names: Vec<String> = self
            .inner
            .queues
            .lock()
            .expect("queue lock")
            .keys()
            .cloned()
            .collect();
        names.sort();
        Ok(names)
    }

    async fn ping(&self) -> Result<()> {
        Ok(())
    }

    async fn write_read(&self, key: &str, value: &[u8]) -> Result<Vec<u8>> {
        let mut probes = self.inner.probes.lock().expect("probe lock");
        probes.insert(key.to_owned(), value.to_vec());
        Ok(probes[key].clone())
    }
}

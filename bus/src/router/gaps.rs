//! Gaps in a topic's offsets, filled from its history before anyone sees
//! them. A node whose broker subscription dropped (Redis restarted, a
//! connection cut, a cluster shard's push buffer overflowed) misses what
//! was published until it has subscribed again; its agents stayed
//! connected, so they have no reason to resume. On a topic that keeps
//! history every message is numbered, so the node can tell what it missed
//! and read it from the history, in order, before anything newer. A gap
//! the history no longer covers (trimmed, the epoch changed) is logged and
//! left: agents see the jump in offsets, as they would without repair.
//!
//! Two ways find a gap. When the broker says the subscription came back
//! ([`Subscription::restored`](crate::broker::Subscription)), the
//! dispatcher sweeps: it reads what came after the last message of every
//! channel it tracks (`MAX_SWEEP` of them, `SWEEP_CONCURRENCY` at a time),
//! so a topic that fell silent after the outage gets its last messages
//! too; live messages the sweep already delivered are then dropped by
//! their exact offset, never by a guess. And a message more than one past
//! the last one has what lies between read first. Every read is bounded
//! (`MAX_GAP` messages, `MAX_GAP_BYTES`, `READ_TIMEOUT`), and the
//! dispatcher waits for it: deliveries queue meanwhile in the broker
//! subscription's bounded buffer.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;

use crate::broker::{Broker, Delivery, HistoryLimits, HistoryQuery, Offset, ReadOutcome, Stamp};

/// Most messages one read fills.
pub(super) const MAX_GAP: usize = 2000;
/// Most payload bytes one read fills.
pub(super) const MAX_GAP_BYTES: usize = 16 << 20;
/// How long the dispatcher waits for one read.
const READ_TIMEOUT: Duration = Duration::from_secs(2);
/// Most channels whose last stamp is remembered; past it the memory starts
/// again (each channel's next message is then taken as it comes).
const MAX_TRACKED: usize = 100_000;
/// Most channels one sweep reads; the others are filled when their next
/// message arrives.
const MAX_SWEEP: usize = 10_000;
/// Reads of one sweep in flight at once.
const SWEEP_CONCURRENCY: usize = 16;

/// Where a stamped delivery comes from: the pattern that matched it (a node
/// subscribed both ways receives it once per way), and its channel.
type Key = (Option<String>, String);

/// Names the node has just started to receive: what was last seen on them
/// belongs to an earlier subscription, and a jump from it is no gap.
#[derive(Debug, Default)]
pub(super) struct Fresh {
    pending: AtomicBool,
    names: Mutex<Vec<(bool, String)>>,
}

impl Fresh {
    /// `name` (a pattern when `pattern`) gained its first local sink.
    pub(super) fn mark(&self, pattern: bool, name: &str) {
        self.names
            .lock()
            .expect("lock")
            .push((pattern, name.to_owned()));
        self.pending.store(true, Ordering::Release);
    }
}

/// What to do with a delivery.
#[derive(Debug)]
pub(super) enum Before {
    /// Fan these out first (oldest first; usually none), then the delivery.
    Fill(Vec<Delivery>),
    /// A sweep delivered this very message already: drop it.
    Delivered,
}

/// The dispatcher's gap finder: the last stamp fanned out per channel.
pub(super) struct Gaps {
    broker: Arc<dyn Broker>,
    last: HashMap<Key, Stamp>,
    /// Per channel, the offsets a sweep delivered ahead of the live
    /// messages (which may still bring them).
    swept: HashMap<Key, VecDeque<Offset>>,
    fresh: Arc<Fresh>,
}

impl Gaps {
    pub(super) fn new(broker: Arc<dyn Broker>, fresh: Arc<Fresh>) -> Self {
        Self {
            broker,
            last: HashMap::new(),
            swept: HashMap::new(),
            fresh,
        }
    }

    /// What comes before `delivery`: the messages missing before it,
    /// oldest first (none unless it is stamped, more than one past the
    /// last one seen on its channel in the same epoch, and the history
    /// still holds them), or nothing at all when a sweep delivered it.
    pub(super) async fn before(&mut self, delivery: &Delivery) -> Before {
        let Some(stamp) = &delivery.stamp else {
            return Before::Fill(Vec::new());
        };
        self.forget_fresh();
        let key = (delivery.pattern.clone(), delivery.channel.clone());
        if let Some(swept) = self.swept.get_mut(&key) {
            while swept.front().is_some_and(|o| o.n < stamp.offset.n) {
                swept.pop_front();
            }
            let delivered = swept.front() == Some(&stamp.offset);
            if delivered {
                swept.pop_front();
            }
            if swept.is_empty() {
                self.swept.remove(&key);
            }
            if delivered {
                return Before::Delivered;
            }
        }
        Before::Fill(self.missing(key, stamp).await)
    }

    async fn missing(&mut self, key: Key, stamp: &Stamp) -> Vec<Delivery> {
        let Some(last) = self.last.get(&key) else {
            if self.last.len() >= MAX_TRACKED {
                self.last.clear();
                self.swept.clear();
            }
            self.last.insert(key, stamp.clone());
            return Vec::new();
        };
        if last.epoch != stamp.epoch {
            self.last.insert(key, stamp.clone());
            return Vec::new();
        }
        if stamp.offset.n <= last.offset.n {
            return Vec::new();
        }
        let from = last.clone();
        self.last.insert(key.clone(), stamp.clone());
        if stamp.offset.n == from.offset.n + 1 {
            return Vec::new();
        }
        let gap = stamp.offset.n - from.offset.n - 1;
        let filled = read(&*self.broker, &key, &from, Some(stamp)).await;
        tracing::info!(channel = %key.1, gap, filled = filled.len(),
            "filled a gap in a topic's offsets from its history");
        filled
    }

    /// After the subscription came back: what every tracked channel got
    /// after its last message, oldest first per channel. Those offsets are
    /// dropped when they also arrive live.
    pub(super) async fn sweep(&mut self) -> Vec<Delivery> {
        self.forget_fresh();
        let tracked: Vec<(Key, Stamp)> = self
            .last
            .iter()
            .take(MAX_SWEEP)
            .map(|(k, s)| (k.clone(), s.clone()))
            .collect();
        let broker = &*self.broker;
        let reads: Vec<(Key, Vec<Delivery>)> = futures_util::stream::iter(tracked)
            .map(|(key, from)| async move {
                let filled = read(broker, &key, &from, None).await;
                (key, filled)
            })
            .buffer_unordered(SWEEP_CONCURRENCY)
            .collect()
            .await;
        let mut out = Vec::new();
        for (key, filled) in reads {
            let Some(newest) = filled.last().and_then(|d| d.stamp.clone()) else {
                continue;
            };
            tracing::info!(channel = %key.1, filled = filled.len(),
                "filled what a topic got while the subscription was down");
            let swept = self.swept.entry(key.clone()).or_default();
            swept.extend(
                filled
                    .iter()
                    .filter_map(|d| d.stamp.as_ref().map(|s| s.offset)),
            );
            while swept.len() > MAX_GAP {
                swept.pop_front();
            }
            self.last.insert(key, newest);
            out.extend(filled);
        }
        out
    }

    /// Drops what was last seen on names subscribed afresh.
    fn forget_fresh(&mut self) {
        if !self.fresh.pending.swap(false, Ordering::AcqRel) {
            return;
        }
        let names = std::mem::take(&mut *self.fresh.names.lock().expect("lock"));
        for (pattern, name) in names {
            let stale = |(p, channel): &Key| match p {
                Some(p) => pattern && *p == name,
                None => !pattern && *channel == name,
            };
            self.last.retain(|k, _| !stale(k));
            self.swept.retain(|k, _| !stale(k));
        }
    }
}

/// What lies after `from` on `key`'s channel, and before `to` when given,
/// as deliveries of `key`; nothing when the history no longer holds all of
/// it (logged).
async fn read(broker: &dyn Broker, key: &Key, from: &Stamp, to: Option<&Stamp>) -> Vec<Delivery> {
    let (pattern, channel) = key;
    let query = HistoryQuery::After {
        epoch: from.epoch.clone(),
        offset: from.offset,
    };
    let limits = HistoryLimits {
        max: MAX_GAP,
        max_bytes: MAX_GAP_BYTES,
    };
    let read = tokio::time::timeout(READ_TIMEOUT, broker.read_history(channel, &query, limits));
    let read = match read.await {
        Ok(Ok(read)) if read.outcome == ReadOutcome::Complete => read,
        Ok(Ok(read)) => {
            tracing::warn!(%channel, outcome = ?read.outcome,
                "a gap in a topic's offsets that its history no longer fills");
            return Vec::new();
        }
        Ok(Err(e)) => {
            tracing::warn!(%channel, cause = %e, "could not read the history to fill a gap");
            return Vec::new();
        }
        Err(_) => {
            tracing::warn!(%channel, "reading the history to fill a gap timed out");
            return Vec::new();
        }
    };
    read.entries
        .into_iter()
        .filter(|(offset, _)| {
            offset.n > from.offset.n && to.is_none_or(|to| offset.n < to.offset.n)
        })
        .map(|(offset, payload)| Delivery {
            channel: channel.clone(),
            pattern: pattern.clone(),
            payload,
            stamp: Some(Stamp {
                offset,
                epoch: from.epoch.clone(),
            }),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::broker::memory::MemoryBroker;
    use crate::broker::{HistoryPolicy, Outgoing};

    const TOPIC: &str = "topic:w1/orders";

    /// Publishes `from..=to` on TOPIC with history; their deliveries.
    async fn publish(broker: &MemoryBroker, from: u64, to: u64) -> Vec<Delivery> {
        let batch: Vec<Outgoing> = (from..=to)
            .map(|i| Outgoing {
                channel: TOPIC.into(),
                payload: Bytes::from(format!("{{\"i\":{i}}}")),
                history: Some(HistoryPolicy {
                    max_len: 100,
                    max_age: None,
                }),
            })
            .collect();
        let published = broker.publish_many(&batch).await.unwrap();
        batch
            .into_iter()
            .zip(published)
            .map(|(m, p)| Delivery {
                channel: m.channel,
                pattern: None,
                payload: m.payload,
                stamp: p.stamp,
            })
            .collect()
    }

    fn ns(deliveries: &[Delivery]) -> Vec<u64> {
        deliveries
            .iter()
            .map(|d| d.stamp.as_ref().unwrap().offset.n)
            .collect()
    }

    async fn fill(gaps: &mut Gaps, d: &Delivery) -> Vec<u64> {
        match gaps.before(d).await {
            Before::Fill(filled) => ns(&filled),
            Before::Delivered => panic!("{d:?} taken for delivered"),
        }
    }

    #[tokio::test]
    async fn a_jump_is_filled_in_order_and_nothing_else_is_touched() {
        let broker = Arc::new(MemoryBroker::new());
        let fresh = Arc::new(Fresh::default());
        let mut gaps = Gaps::new(broker.clone(), fresh.clone());
        let d = publish(&broker, 1, 6).await;
        assert_eq!(
            fill(&mut gaps, &d[0]).await,
            Vec::<u64>::new(),
            "first seen"
        );
        assert_eq!(fill(&mut gaps, &d[1]).await, Vec::<u64>::new(), "next one");
        assert_eq!(fill(&mut gaps, &d[5]).await, [3, 4, 5], "the jump");
        assert_eq!(fill(&mut gaps, &d[5]).await, Vec::<u64>::new(), "no refill");
        // Unstamped deliveries pass.
        let plain = Delivery {
            stamp: None,
            ..d[0].clone()
        };
        assert_eq!(fill(&mut gaps, &plain).await, Vec::<u64>::new());
        // A name subscribed afresh starts over: a jump from an earlier
        // subscription's last message is no gap.
        let later = publish(&broker, 7, 9).await;
        fresh.mark(false, TOPIC);
        assert_eq!(fill(&mut gaps, &later[2]).await, Vec::<u64>::new());
        // A new epoch is taken as it comes.
        let mut reborn = later[2].clone();
        reborn.stamp.as_mut().unwrap().epoch = "other".into();
        reborn.stamp.as_mut().unwrap().offset.n = 1;
        assert_eq!(fill(&mut gaps, &reborn).await, Vec::<u64>::new());
    }

    #[tokio::test]
    async fn a_sweep_fills_silent_topics_and_live_copies_are_dropped() {
        let broker = Arc::new(MemoryBroker::new());
        let mut gaps = Gaps::new(broker.clone(), Arc::new(Fresh::default()));
        let d = publish(&broker, 1, 2).await;
        fill(&mut gaps, &d[0]).await;
        fill(&mut gaps, &d[1]).await;
        // Published while the subscription was down; nothing arrives live.
        let missed = publish(&broker, 3, 5).await;
        let swept = gaps.sweep().await;
        assert_eq!(ns(&swept), [3, 4, 5]);
        assert_eq!(&swept[0].payload[..], b"{\"i\":3}");
        // The same offsets arriving live are dropped, a newer one passes.
        for m in &missed {
            assert!(matches!(gaps.before(m).await, Before::Delivered), "{m:?}");
        }
        let next = publish(&broker, 6, 6).await;
        assert_eq!(fill(&mut gaps, &next[0]).await, Vec::<u64>::new());
        assert!(gaps.sweep().await.is_empty(), "nothing new");
    }
}

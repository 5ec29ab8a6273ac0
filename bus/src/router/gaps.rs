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
//! or dropped deliveries
//! ([`Subscription::restored`](crate::broker::Subscription); at most one
//! sweep a `SWEEP_INTERVAL`), the
//! dispatcher sweeps: it reads what came after the last message of every
//! channel it tracks (`MAX_SWEEP` of them, `SWEEP_CONCURRENCY` at a time,
//! within `SWEEP_BYTES` and `SWEEP_DEADLINE`), so a topic that fell silent
//! after the outage gets its last messages too. And a live message more
//! than one past the last one has exactly what lies between read first
//! (`MAX_GAP` messages, `MAX_GAP_BYTES`, `READ_TIMEOUT`). A message at or
//! before the last one, written no later than it (the same message again,
//! after a sweep delivered it), is dropped; one written later (a history
//! that lost its last writes but kept its epoch numbers again) passes. The
//! dispatcher waits for every read: deliveries queue meanwhile in the
//! broker subscription's bounded buffer.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;

use crate::broker::{Broker, Delivery, HistoryLimits, HistoryQuery, ReadOutcome, Stamp};

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
/// Most payload bytes one sweep holds; channels past it are filled when
/// their next message arrives.
const SWEEP_BYTES: usize = 64 << 20;
/// How long one sweep may hold the dispatcher; channels not read by then
/// are filled when their next message arrives.
const SWEEP_DEADLINE: Duration = Duration::from_secs(5);
/// Sweeps asked for sooner than this after the last one are skipped (a
/// node dropping deliveries because it is behind asks again and again;
/// its jumps are still filled as messages arrive).
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// Where a stamped delivery comes from: the pattern that matched it (a node
/// subscribed both ways receives it once per way), and its channel.
type Key = (Option<String>, String);

/// Topic names and patterns the node started or stopped receiving: what
/// was last seen on them belongs to another subscription, and a jump from
/// it is no gap.
#[derive(Debug, Default)]
pub(super) struct Fresh {
    pending: AtomicBool,
    names: Mutex<HashSet<(bool, String)>>,
}

impl Fresh {
    /// `name` (a pattern when `pattern`) gained its first local sink or
    /// lost its last; only topics keep history, so other names are not
    /// noted.
    pub(super) fn mark(&self, pattern: bool, name: &str) {
        if !name.starts_with("topic:") {
            return;
        }
        self.names
            .lock()
            .expect("lock")
            .insert((pattern, name.to_owned()));
        self.pending.store(true, Ordering::Release);
    }
}

/// What to do with a delivery.
#[derive(Debug)]
pub(super) enum Before {
    /// Fan these out first (oldest first; usually none), then the delivery.
    Fill(Vec<Delivery>),
    /// This message was fanned out already (a sweep read it): drop it.
    Delivered,
}

/// The dispatcher's gap finder: the last stamp fanned out per channel.
pub(super) struct Gaps {
    broker: Arc<dyn Broker>,
    last: HashMap<Key, Stamp>,
    fresh: Arc<Fresh>,
    /// When the last sweep ended.
    swept_at: Option<tokio::time::Instant>,
}

impl Gaps {
    pub(super) fn new(broker: Arc<dyn Broker>, fresh: Arc<Fresh>) -> Self {
        Self {
            broker,
            last: HashMap::new(),
            fresh,
            swept_at: None,
        }
    }

    /// What comes before `delivery`: the messages missing before it,
    /// oldest first (none unless it is stamped, more than one past the
    /// last one seen on its channel in the same epoch, and the history
    /// still holds them), or nothing at all when it was fanned out already.
    pub(super) async fn before(&mut self, delivery: &Delivery) -> Before {
        self.forget_fresh();
        let Some(stamp) = &delivery.stamp else {
            return Before::Fill(Vec::new());
        };
        let key = (delivery.pattern.clone(), delivery.channel.clone());
        let Some(last) = self.last.get_mut(&key) else {
            if self.last.len() >= MAX_TRACKED {
                self.last.clear();
            }
            self.last.insert(key, stamp.clone());
            return Before::Fill(Vec::new());
        };
        if last.epoch != stamp.epoch {
            tracing::info!(channel = %key.1, from = %last.epoch, to = %stamp.epoch,
                "a topic's history started a new epoch; what the old one held after \
                 the last message fanned out cannot be filled");
            *last = stamp.clone();
            return Before::Fill(Vec::new());
        }
        if stamp.offset.n <= last.offset.n {
            if stamp.offset.ms <= last.offset.ms {
                return Before::Delivered;
            }
            return Before::Fill(Vec::new());
        }
        let from = std::mem::replace(last, stamp.clone());
        if stamp.offset.n == from.offset.n + 1 {
            return Before::Fill(Vec::new());
        }
        let gap = stamp.offset.n - from.offset.n - 1;
        let query = HistoryQuery::Between {
            epoch: from.epoch.clone(),
            after: from.offset,
            before: stamp.offset,
        };
        let filled = read(&*self.broker, &key, &from, &query).await;
        tracing::info!(channel = %key.1, gap, filled = filled.len(),
            "filled a gap in a topic's offsets from its history");
        Before::Fill(filled)
    }

    /// After the subscription came back: what every tracked channel got
    /// after its last message, oldest first per channel.
    pub(super) async fn sweep(&mut self) -> Vec<Delivery> {
        if self
            .swept_at
            .is_some_and(|at| at.elapsed() < SWEEP_INTERVAL)
        {
            return Vec::new();
        }
        self.forget_fresh();
        let tracked: Vec<(Key, Stamp)> = self
            .last
            .iter()
            .take(MAX_SWEEP)
            .map(|(k, s)| (k.clone(), s.clone()))
            .collect();
        let channels = tracked.len();
        let broker = &*self.broker;
        let mut reads = futures_util::stream::iter(tracked)
            .map(|(key, from)| async move {
                let query = HistoryQuery::After {
                    epoch: from.epoch.clone(),
                    offset: from.offset,
                };
                let filled = read(broker, &key, &from, &query).await;
                (key, filled)
            })
            .buffer_unordered(SWEEP_CONCURRENCY);
        let deadline = tokio::time::sleep(SWEEP_DEADLINE);
        tokio::pin!(deadline);
        let (mut out, mut bytes, mut read_channels, mut over_budget) = (Vec::new(), 0, 0, 0);
        loop {
            let next = tokio::select! {
                _ = &mut deadline => break,
                next = reads.next() => next,
            };
            let Some((key, filled)) = next else { break };
            read_channels += 1;
            let size: usize = filled.iter().map(|d| d.payload.len()).sum();
            if bytes + size > SWEEP_BYTES {
                over_budget += 1;
                continue;
            }
            bytes += size;
            if let Some(newest) = filled.last().and_then(|d| d.stamp.clone()) {
                self.last.insert(key, newest);
                out.extend(filled);
            }
        }
        self.swept_at = Some(tokio::time::Instant::now());
        tracing::info!(
            channels,
            read = read_channels,
            over_budget,
            filled = out.len(),
            "swept the topics with history after the subscription came back; \
             the rest are filled when their next message arrives"
        );
        out
    }

    /// Drops what was last seen on names subscribed or unsubscribed since.
    fn forget_fresh(&mut self) {
        if !self.fresh.pending.swap(false, Ordering::AcqRel) {
            return;
        }
        let names = std::mem::take(&mut *self.fresh.names.lock().expect("lock"));
        self.last.retain(|(p, channel), _| match p {
            Some(p) => !names.contains(&(true, p.clone())),
            None => !names.contains(&(false, channel.clone())),
        });
    }
}

/// What `query` finds on `key`'s channel, as deliveries of `key`; nothing
/// when the history no longer holds all of it (logged).
async fn read(broker: &dyn Broker, key: &Key, from: &Stamp, query: &HistoryQuery) -> Vec<Delivery> {
    let (pattern, channel) = key;
    let limits = HistoryLimits {
        max: MAX_GAP,
        max_bytes: MAX_GAP_BYTES,
    };
    let read = tokio::time::timeout(READ_TIMEOUT, broker.read_history(channel, query, limits));
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
        .filter(|(offset, _)| offset.n > from.offset.n)
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
        let payloads = (from..=to).map(|i| Bytes::from(format!("{{\"i\":{i}}}")));
        publish_on(broker, TOPIC, payloads).await
    }

    /// Publishes `payloads` on `channel` with history; their deliveries.
    async fn publish_on(
        broker: &MemoryBroker,
        channel: &str,
        payloads: impl Iterator<Item = Bytes>,
    ) -> Vec<Delivery> {
        let batch: Vec<Outgoing> = payloads
            .map(|payload| Outgoing {
                channel: channel.into(),
                payload,
                history: Some(HistoryPolicy {
                    max_len: 10_000,
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
        // The topic has moved on far past what one read may hold: the gap
        // is read alone.
        publish(&broker, 7, 7 + MAX_GAP as u64).await;
        assert_eq!(
            fill(&mut gaps, &d[0]).await,
            Vec::<u64>::new(),
            "first seen"
        );
        assert_eq!(fill(&mut gaps, &d[1]).await, Vec::<u64>::new(), "next one");
        assert_eq!(fill(&mut gaps, &d[5]).await, [3, 4, 5], "the jump");
        // The same message again is dropped; a message numbered again by a
        // history that lost its last writes (written later) passes.
        assert!(matches!(gaps.before(&d[5]).await, Before::Delivered));
        let mut renumbered = d[4].clone();
        renumbered.stamp.as_mut().unwrap().offset.ms += 60_000;
        assert_eq!(fill(&mut gaps, &renumbered).await, Vec::<u64>::new());
        // Unstamped deliveries pass.
        let plain = Delivery {
            stamp: None,
            ..d[0].clone()
        };
        assert_eq!(fill(&mut gaps, &plain).await, Vec::<u64>::new());
        // A name subscribed afresh starts over: a jump from an earlier
        // subscription's last message is no gap.
        let later = publish(&broker, 3000, 3002).await;
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
        // Sweeps asked for again at once are skipped; a second later the
        // next one finds what it missed.
        let again = publish(&broker, 7, 7).await;
        assert!(gaps.sweep().await.is_empty(), "too soon");
        tokio::time::sleep(SWEEP_INTERVAL).await;
        assert_eq!(ns(&gaps.sweep().await), [7]);
        assert!(matches!(gaps.before(&again[0]).await, Before::Delivered));
    }

    /// A sweep holds at most `SWEEP_BYTES`: five topics that each missed
    /// 15 MiB are not all read at once; the one left over is filled when
    /// its next message arrives.
    #[tokio::test]
    async fn a_sweep_stops_at_its_byte_budget() {
        let broker = Arc::new(MemoryBroker::new());
        let mut gaps = Gaps::new(broker.clone(), Arc::new(Fresh::default()));
        let mib = Bytes::from(vec![b'x'; 1 << 20]);
        let topics: Vec<String> = (0..5).map(|t| format!("topic:w1/big-{t}")).collect();
        for topic in &topics {
            let first = publish_on(&broker, topic, std::iter::once(Bytes::new())).await;
            fill(&mut gaps, &first[0]).await;
            publish_on(&broker, topic, std::iter::repeat_n(mib.clone(), 15)).await;
        }
        let swept = gaps.sweep().await;
        let bytes: usize = swept.iter().map(|d| d.payload.len()).sum();
        assert!(bytes <= SWEEP_BYTES, "{bytes}");
        assert_eq!(swept.len(), 4 * 15, "four topics whole, one left");
        let left = topics
            .iter()
            .find(|t| !swept.iter().any(|d| &d.channel == *t))
            .unwrap();
        let next = publish_on(&broker, left, std::iter::once(Bytes::new())).await;
        assert_eq!(
            fill(&mut gaps, &next[0]).await,
            (2..=16).collect::<Vec<_>>()
        );
    }
}

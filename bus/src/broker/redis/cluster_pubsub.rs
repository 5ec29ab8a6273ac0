//! A node's subscription on a Redis Cluster, through the redis crate's
//! cluster connection in RESP3: exact channels are sharded (`SSUBSCRIBE` on
//! the shard owning each channel's slot), patterns are classic `PSUBSCRIBE`s
//! on the shard of their workspace's hash tag (see [`super::channels`]).
//!
//! The crate reconnects lost nodes and resubscribes after disconnects and
//! failovers. What it cannot do is take a subscription off a shard that is
//! still up but no longer owns the slot (a resharding): exact channels would
//! go quiet, patterns would stay behind on the old shard. So this
//! subscription rebuilds its connection, with everything the node wants,
//! when a shard unsubscribes a wanted channel (the server's signal that the
//! slot moved) or when the slot map changes (checked every few seconds, for
//! nodes that only hold patterns). A rebuild closes the old connection
//! before subscribing the new one: a short gap, never duplicates.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::future::try_join_all;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::Slot;
use redis::{ProtocolVersion, Script, Value};
use tokio::sync::{Mutex, mpsc};
use tokio_util::sync::CancellationToken;

use super::channels::ChannelNames;
use super::cluster_push::{Feed, Forwarder};
use super::connection::ClusterSeeds;
use crate::broker::{DELIVERY_BUFFER, Result, Subscriber, Subscription};

/// How often a subscription compares the cluster's slot map with the one
/// its connection was built on.
const TOPOLOGY_CHECK: Duration = Duration::from_secs(2);

/// Publishes a topic on the shard of its workspace (`lua/publish_topic.lua`).
static PUBLISH_TOPIC: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/publish_topic.lua")));

/// The topic publish script: sharded to the exact subscribers, classic (a
/// cluster-wide broadcast) only when the shard has pattern subscribers.
pub(super) fn publish_topic_script() -> &'static Script {
    &PUBLISH_TOPIC
}

/// Opens a subscription with its own cluster connection.
pub(super) async fn open(seeds: &ClusterSeeds, names: ChannelNames) -> Result<Subscription> {
    let (deliveries_tx, deliveries) = mpsc::channel(DELIVERY_BUFFER);
    let feed = Arc::new(Feed::new(deliveries_tx, names));
    let conn = connect(seeds, &feed).await?;
    let shared = Arc::new(Shared {
        seeds: seeds.clone(),
        feed,
        conn: Mutex::new(conn),
    });
    let stop = CancellationToken::new();
    tokio::spawn(maintain(shared.clone(), stop.clone()));
    Ok(Subscription {
        restored: shared.feed.restored.subscribe(),
        control: Arc::new(ClusterSubscriber { shared, stop }),
        deliveries,
    })
}

async fn connect(seeds: &ClusterSeeds, feed: &Arc<Feed>) -> Result<ClusterConnection> {
    let client = seeds
        .builder()
        .use_protocol(ProtocolVersion::RESP3)
        .push_sender(Forwarder(feed.clone()))
        .build()?;
    Ok(client.get_async_connection().await?)
}

#[derive(Debug, Clone, Copy)]
enum Op {
    Subscribe,
    Unsubscribe,
    PSubscribe,
    PUnsubscribe,
}

/// The connection and what it serves.
struct Shared {
    seeds: ClusterSeeds,
    feed: Arc<Feed>,
    /// The current connection. Held across subscription changes and
    /// rebuilds, so the two never interleave.
    conn: Mutex<ClusterConnection>,
}

impl Shared {
    /// Records the change in the wanted sets and applies it.
    async fn change(&self, op: Op, names: Vec<String>) -> Result<()> {
        let conn = self.conn.lock().await;
        {
            let (set, add) = match op {
                Op::Subscribe => (&self.feed.channels, true),
                Op::Unsubscribe => (&self.feed.channels, false),
                Op::PSubscribe => (&self.feed.patterns, true),
                Op::PUnsubscribe => (&self.feed.patterns, false),
            };
            let mut set = set.lock().expect("lock");
            for name in &names {
                if add {
                    set.insert(name.clone());
                } else {
                    set.remove(name);
                }
            }
        }
        apply(&conn, op, names).await
    }

    /// Replaces the connection with a fresh one (fresh slot map, fresh
    /// node connections) subscribed to everything the node wants.
    async fn rebuild(&self) -> Result<()> {
        let mut conn = self.conn.lock().await;
        let fresh = connect(&self.seeds, &self.feed).await?;
        // Dropping the old connection closes it and its subscriptions.
        *conn = fresh;
        let (channels, patterns) = self.feed.wanted();
        apply(&conn, Op::Subscribe, channels).await?;
        apply(&conn, Op::PSubscribe, patterns).await?;
        self.feed.restored.send_modify(|n| *n += 1);
        Ok(())
    }

    /// Which node serves each slot range, sorted; `None` if unknown.
    async fn slot_map(&self) -> Option<Vec<(i64, i64, String)>> {
        let mut conn = self.conn.lock().await.clone();
        let slots: Value = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query_async(&mut conn)
            .await
            .ok()?;
        Some(parse_slot_map(slots))
    }
}

/// Sends one command per slot (a subscribe command must not cross slots on
/// a cluster), all at once, and waits for every confirmation.
async fn apply(conn: &ClusterConnection, op: Op, names: Vec<String>) -> Result<()> {
    let mut groups: HashMap<Slot, Vec<String>> = HashMap::new();
    for name in names {
        groups.entry(Slot::for_key(&name)).or_default().push(name);
    }
    let calls = groups.into_values().map(|group| {
        let mut conn = conn.clone();
        async move {
            match op {
                Op::Subscribe => conn.ssubscribe(group).await,
                Op::Unsubscribe => conn.sunsubscribe(group).await,
                Op::PSubscribe => conn.psubscribe(group).await,
                Op::PUnsubscribe => conn.punsubscribe(group).await,
            }
        }
    });
    try_join_all(calls).await?;
    Ok(())
}

/// `CLUSTER SLOTS` reduced to (first slot, last slot, master id), sorted:
/// enough to notice that slots moved, and blind to replica order.
fn parse_slot_map(reply: Value) -> Vec<(i64, i64, String)> {
    let Value::Array(ranges) = reply else {
        return Vec::new();
    };
    let mut map: Vec<(i64, i64, String)> = ranges
        .into_iter()
        .filter_map(|range| {
            let Value::Array(parts) = range else {
                return None;
            };
            match parts.as_slice() {
                [
                    Value::Int(first),
                    Value::Int(last),
                    Value::Array(master),
                    ..,
                ] => {
                    let id = match master.as_slice() {
                        [_, _, Value::BulkString(id), ..] => String::from_utf8_lossy(id).into(),
                        [Value::BulkString(host), Value::Int(port), ..] => {
                            format!("{}:{port}", String::from_utf8_lossy(host))
                        }
                        _ => return None,
                    };
                    Some((*first, *last, id))
                }
                _ => None,
            }
        })
        .collect();
    map.sort();
    map
}

/// Rebuilds the connection when a slot the node listens to moved, until
/// the subscription is dropped.
async fn maintain(shared: Arc<Shared>, stop: CancellationToken) {
    let mut known = shared.slot_map().await;
    let mut tick = tokio::time::interval(TOPOLOGY_CHECK);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = shared.feed.moved.notified() => {}
            _ = tick.tick() => {
                let now = shared.slot_map().await;
                if now.is_none() || known.is_none() || now == known {
                    known = known.or(now);
                    continue;
                }
            }
        }
        tracing::info!("cluster slots moved; rebuilding the subscription connection");
        let mut backoff = Duration::from_millis(20);
        while let Err(err) = shared.rebuild().await {
            tracing::warn!(cause = %err, retry_in = ?backoff, "rebuilding the cluster subscription failed");
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(1));
        }
        known = shared.slot_map().await;
    }
}

/// Control half of a cluster subscription. Dropping it stops the
/// maintenance task and so closes the subscription's connection.
struct ClusterSubscriber {
    shared: Arc<Shared>,
    stop: CancellationToken,
}

impl std::fmt::Debug for ClusterSubscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterSubscriber")
            .field("names", &self.shared.feed.names)
            .finish_non_exhaustive()
    }
}

impl Drop for ClusterSubscriber {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl ClusterSubscriber {
    fn channels(&self, channels: &[String]) -> Vec<String> {
        let names = &self.shared.feed.names;
        channels.iter().map(|c| names.channel(c)).collect()
    }

    fn patterns(&self, patterns: &[String]) -> Result<Vec<String>> {
        let names = &self.shared.feed.names;
        patterns.iter().map(|p| names.pattern(p)).collect()
    }
}

#[async_trait]
impl Subscriber for ClusterSubscriber {
    async fn subscribe(&self, channels: &[String]) -> Result<()> {
        let names = self.channels(channels);
        self.shared.change(Op::Subscribe, names).await
    }

    async fn unsubscribe(&self, channels: &[String]) -> Result<()> {
        let names = self.channels(channels);
        self.shared.change(Op::Unsubscribe, names).await
    }

    async fn psubscribe(&self, patterns: &[String]) -> Result<()> {
        let names = self.patterns(patterns)?;
        self.shared.change(Op::PSubscribe, names).await
    }

    async fn punsubscribe(&self, patterns: &[String]) -> Result<()> {
        let names = self.patterns(patterns)?;
        self.shared.change(Op::PUnsubscribe, names).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str) -> Value {
        Value::Array(vec![
            Value::BulkString(b"127.0.0.1".to_vec()),
            Value::Int(7000),
            Value::BulkString(id.as_bytes().to_vec()),
        ])
    }

    #[test]
    fn slot_maps_compare_by_range_and_master_only() {
        let range = |first, last, master: &str, replica: Option<&str>| {
            let mut parts = vec![Value::Int(first), Value::Int(last), node(master)];
            parts.extend(replica.map(node));
            Value::Array(parts)
        };
        let a = parse_slot_map(Value::Array(vec![
            range(0, 99, "m1", Some("r1")),
            range(100, 16383, "m2", None),
        ]));
        let b = parse_slot_map(Value::Array(vec![
            range(100, 16383, "m2", Some("r2")),
            range(0, 99, "m1", None),
        ]));
        assert_eq!(a, b);
        let moved = parse_slot_map(Value::Array(vec![
            range(0, 98, "m1", None),
            range(99, 16383, "m2", None),
        ]));
        assert_ne!(a, moved);
    }
}

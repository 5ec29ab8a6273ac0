//! What only a Redis Cluster does: patterns it cannot route are refused, a
//! subscription follows its channel when the channel's slot moves to
//! another shard, and comes back when a shard restarts; a subscribe it
//! refuses leaves nothing in the node's index. (Everything else a cluster shares with a single Redis is in
//! the conformance suite, `conformance::redis_cluster::*`.)

use std::sync::Arc;
use std::time::Duration;

use bus::broker::redis::{RedisBroker, RedisOptions};
use bus::broker::{Broker, BrokerError};
use bus::router::{DeliverySink, Dispatched, MessageRouter, RouterConfig};
use bytes::Bytes;
use redis::AsyncCommands;
use testkit::RedisCluster;

use crate::support::{next, redis_cluster};

/// A cluster routes a pattern to the shard of its workspace, so a pattern
/// that names no workspace is refused instead of silently missing what other
/// shards publish; the subscription stays usable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patterns_without_a_workspace_are_refused() {
    let b = redis_cluster().await;
    let mut sub = b.broker.subscribe().await.unwrap();
    for pattern in ["*", "topic:*", "topic:w*/x", "inbox:w1/*"] {
        let err = sub.control.psubscribe(&[pattern.into()]).await.unwrap_err();
        assert!(
            matches!(err, BrokerError::Unsupported(_)),
            "{pattern}: {err}"
        );
    }
    sub.control
        .psubscribe(&["topic:w1/*".into()])
        .await
        .unwrap();
    let receivers = b
        .broker
        .publish("topic:w1/x", Bytes::from_static(b"ok"))
        .await
        .unwrap();
    assert_eq!(receivers, 1);
    let d = next(&mut sub.deliveries).await;
    assert_eq!(d.pattern.as_deref(), Some("topic:w1/*"));
}

struct Ignore;

impl DeliverySink for Ignore {
    fn deliver(&self, _: &Dispatched<'_>) {}
}

/// A subscribe the broker refuses takes back what it put in the node's
/// index: no subscription is left behind and the node's pattern budget is
/// not spent on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_subscribe_leaves_nothing_behind() {
    let b = redis_cluster().await;
    let config = RouterConfig {
        max_patterns: 2,
        ..RouterConfig::default()
    };
    let router = MessageRouter::new(b.broker.clone(), config).await.unwrap();
    let sink: Arc<dyn DeliverySink> = Arc::new(Ignore);
    let id = router.next_sink_id();
    // The second pattern names no workspace: the cluster refuses it.
    let refused = router
        .psubscribe(id, &sink, &["topic:w1/*".into(), "topic:*".into()])
        .await;
    assert!(refused.is_err(), "{refused:?}");
    assert_eq!(router.subscription_counts(), (0, 0));
    router
        .psubscribe(id, &sink, &["topic:w1/*".into(), "topic:w2/*".into()])
        .await
        .expect("the whole budget is still there");
    assert_eq!(router.subscription_counts(), (0, 2));
}

/// When a shard gives up a slot (a resharding), the node's subscriptions
/// follow it: an exact channel because the old owner unsubscribes it, a
/// pattern because the node notices the changed slot map. Afterwards every
/// publish arrives exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_follow_a_migrated_slot() {
    // A private cluster: moving slots would disturb the shared one.
    let cluster = RedisCluster::start();
    let options = RedisOptions::cluster(cluster.urls()).namespace("moving");
    let broker = RedisBroker::connect_with(options).await.unwrap();
    let (inbox, topic) = ("inbox:w1/a1", "topic:w2/news");
    let mut exact = broker.subscribe().await.unwrap();
    exact.control.subscribe(&[inbox.into()]).await.unwrap();
    let mut pattern = broker.subscribe().await.unwrap();
    pattern
        .control
        .psubscribe(&["topic:w2/*".into()])
        .await
        .unwrap();
    for (channel, sub) in [(inbox, &mut exact), (topic, &mut pattern)] {
        assert_eq!(publish(&broker, channel, "before").await, 1);
        assert_eq!(&next(&mut sub.deliveries).await.payload[..], b"before");
    }

    move_slot_of("moving:inbox:w1/a1", &cluster.urls()).await;
    move_slot_of("moving:topic:{w2}/news", &cluster.urls()).await;

    for (channel, sub) in [(inbox, &mut exact), (topic, &mut pattern)] {
        // Following is asynchronous: publish until the node is back.
        tokio::time::timeout(Duration::from_secs(15), async {
            while publish(&broker, channel, "probe").await == 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{channel} is delivered again after its slot moved"));
        assert_eq!(publish(&broker, channel, "after").await, 1);
        assert_eq!(&next(&mut sub.deliveries).await.payload[..], b"probe");
        assert_eq!(
            &next(&mut sub.deliveries).await.payload[..],
            b"after",
            "{channel}: no duplicates"
        );
    }
}

/// A shard that restarts (same port, same slots) gets the node's
/// subscriptions back, and commands on its slots work again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_shard_is_resubscribed() {
    let mut cluster = RedisCluster::start();
    let options = RedisOptions::cluster(cluster.urls()).namespace("restart");
    let broker = RedisBroker::connect_with(options).await.unwrap();
    let inbox = "inbox:w1/a1";
    let mut sub = broker.subscribe().await.unwrap();
    sub.control.subscribe(&[inbox.into()]).await.unwrap();
    assert_eq!(publish(&broker, inbox, "before").await, 1);
    assert_eq!(&next(&mut sub.deliveries).await.payload[..], b"before");

    let (_, owner) = owner_of("restart:inbox:w1/a1", &cluster.urls()).await;
    tokio::task::block_in_place(|| cluster.restart_node(owner));

    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match broker.publish(inbox, Bytes::from_static(b"probe")).await {
                Ok(1) => return,
                Ok(_) | Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    })
    .await
    .expect("the inbox is subscribed again after its shard restarted");
    assert_eq!(&next(&mut sub.deliveries).await.payload[..], b"probe");
}

async fn publish(broker: &RedisBroker, channel: &str, payload: &'static str) -> usize {
    broker
        .publish(channel, Bytes::from_static(payload.as_bytes()))
        .await
        .unwrap()
}

/// Connections to every node, and the index of the one owning `key`'s slot
/// (only the owner answers a read of the key; the others redirect).
async fn owner_of(key: &str, urls: &[String]) -> (Vec<redis::aio::MultiplexedConnection>, usize) {
    let mut nodes = Vec::new();
    for url in urls {
        let client = redis::Client::open(url.as_str()).unwrap();
        nodes.push(client.get_multiplexed_async_connection().await.unwrap());
    }
    let mut owner = None;
    for (i, node) in nodes.iter_mut().enumerate() {
        let read: redis::RedisResult<Option<String>> = node.get(key).await;
        if read.is_ok() {
            owner = Some(i);
        }
    }
    (nodes, owner.expect("a node owns the slot"))
}

/// Moves the (key-less) slot of `key` to another master, the way
/// `redis-cli --cluster reshard` does.
async fn move_slot_of(key: &str, urls: &[String]) {
    let (mut nodes, from) = owner_of(key, urls).await;
    let slot: u16 = redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg(key)
        .query_async(&mut nodes[0])
        .await
        .unwrap();
    let mut ids: Vec<String> = Vec::new();
    for node in &mut nodes {
        let mut myid = redis::cmd("CLUSTER");
        myid.arg("MYID");
        ids.push(myid.query_async(node).await.unwrap());
    }
    let to = (from + 1) % nodes.len();
    let setslot = |state: &str, id: &str| {
        redis::cmd("CLUSTER")
            .arg("SETSLOT")
            .arg(slot)
            .arg(state)
            .arg(id)
            .to_owned()
    };
    let _: () = setslot("IMPORTING", &ids[from])
        .query_async(&mut nodes[to])
        .await
        .unwrap();
    let _: () = setslot("MIGRATING", &ids[to])
        .query_async(&mut nodes[from])
        .await
        .unwrap();
    for i in [to, from, (from + 2) % nodes.len()] {
        let _: () = setslot("NODE", &ids[to])
            .query_async(&mut nodes[i])
            .await
            .unwrap();
    }
    // The old owner redirects once it has applied the new owner (a loaded
    // machine may take a moment to settle the epochs).
    let redirected = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            let read: redis::RedisResult<Option<String>> = nodes[from].get(key).await;
            if read.is_err() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(redirected.is_ok(), "the old owner redirects now");
}

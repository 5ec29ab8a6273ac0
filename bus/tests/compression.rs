//! Large payloads are compressed in Redis and nowhere else: what Redis
//! holds (a topic's history, a queue's messages) is the compressed frame,
//! what subscribers, history readers and queue consumers get is the exact
//! original; history byte bounds count original lengths; nodes with and
//! without compression read each other; a frame that does not open is
//! dropped, never handed on.

use std::sync::Arc;

use bus::broker::redis::{RedisBroker, RedisOptions};
use bus::broker::{
    Broker, HistoryLimits, HistoryPolicy, HistoryQuery, Outgoing, ReadOutcome, RetryPolicy,
};
use bus::message::AgentMessage;
use bytes::Bytes;
use serde_json::json;
use testkit::{TestRedis, TestRedisCluster};

use crate::support::next;

/// `bytes` of JSON that look like an agent's: records with repeating keys
/// and varied values (it compresses several times, as real JSON does).
fn agent_json(bytes: usize, seed: u64) -> String {
    let mut rows = Vec::new();
    let mut len = 0;
    let mut state = seed | 1;
    while len < bytes {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let status = ["queued", "running", "done", "failed"][(state % 4) as usize];
        let row = json!({
            "task": format!("task-{}", state % 100_000),
            "status": status,
            "score": (state % 1000) as f64 / 10.0,
            "owner": format!("agent-{}", state % 300),
        })
        .to_string();
        len += row.len() + 1;
        rows.push(row);
    }
    format!("{{\"rows\":[{}]}}", rows.join(","))
}

async fn broker(redis: &TestRedis, compress_over: Option<usize>) -> RedisBroker {
    let options = RedisOptions::new(&redis.url)
        .namespace(&redis.namespace)
        .compress_over(compress_over);
    RedisBroker::connect_with(options).await.unwrap()
}

fn kept() -> Option<HistoryPolicy> {
    Some(HistoryPolicy {
        max_len: 100,
        max_age: None,
    })
}

fn outgoing(channel: &str, body: &str, history: Option<HistoryPolicy>) -> Outgoing {
    Outgoing {
        channel: channel.to_owned(),
        payload: Bytes::from(body.to_owned()),
        history,
    }
}

const LOTS: HistoryLimits = HistoryLimits {
    max: 1000,
    max_bytes: 16 << 20,
};

async fn raw(redis: &TestRedis) -> redis::aio::MultiplexedConnection {
    redis::Client::open(redis.url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// A stream entry as Redis returns it: id and field/value pairs.
type StreamEntry = (String, Vec<(String, Vec<u8>)>);

/// The messages `topic`'s history stream holds, as Redis holds them.
async fn stored_history(redis: &TestRedis, topic: &str) -> Vec<Vec<u8>> {
    let entries: Vec<StreamEntry> = redis::cmd("XRANGE")
        .arg(format!("{}:hs:{topic}", redis.namespace))
        .arg("-")
        .arg("+")
        .query_async(&mut raw(redis).await)
        .await
        .unwrap();
    entries
        .into_iter()
        .map(|(_, mut fields)| fields.remove(0).1)
        .collect()
}

#[tokio::test]
async fn redis_holds_large_payloads_compressed_and_agents_get_them_whole() {
    let redis = TestRedis::new();
    let b = broker(&redis, Some(4096)).await;
    let topic = "topic:w1/reports";
    let mut sub = b.subscribe().await.unwrap();
    sub.control.subscribe(&[topic.into()]).await.unwrap();
    let big = agent_json(64 << 10, 1);
    let small = agent_json(1000, 2);
    b.publish_many(&[
        outgoing(topic, &big, kept()),
        outgoing(topic, &small, kept()),
    ])
    .await
    .unwrap();
    for want in [&big, &small] {
        let d = next(&mut sub.deliveries).await;
        assert_eq!(&d.payload[..], want.as_bytes());
        assert!(d.stamp.is_some());
    }
    // A publish outside history (a plain channel) arrives whole too.
    b.publish(topic, Bytes::from(big.clone())).await.unwrap();
    assert_eq!(&next(&mut sub.deliveries).await.payload[..], big.as_bytes());

    // What Redis keeps: the large one compressed, the small one as it is.
    let stored = stored_history(&redis, topic).await;
    assert!(stored[0].starts_with(b"\0Z"), "the 64 KiB message");
    assert!(
        stored[0].len() * 3 < big.len(),
        "{} of {}",
        stored[0].len(),
        big.len()
    );
    assert_eq!(&stored[1][..], small.as_bytes());

    // History reads give the originals back.
    let last = b
        .read_history(topic, &HistoryQuery::Last { count: 10 }, LOTS)
        .await
        .unwrap();
    let bodies: Vec<&[u8]> = last.entries.iter().map(|(_, m)| &m[..]).collect();
    assert_eq!(bodies, [big.as_bytes(), small.as_bytes()]);

    // The byte bound counts what agents would receive, not what Redis holds:
    // the 64 KiB message does not fit in 32 KiB although it is stored in
    // far less.
    let tight = HistoryLimits {
        max: 1000,
        max_bytes: 32 << 10,
    };
    let read = b
        .read_history(topic, &HistoryQuery::Last { count: 10 }, tight)
        .await
        .unwrap();
    assert_eq!(read.outcome, ReadOutcome::Truncated);
    assert_eq!(read.entries.len(), 1, "only the small one fits");
    let first = last.entries[0].0;
    let epoch = last.epoch.clone();
    let before = bus::broker::Offset {
        n: first.n - 1,
        ms: first.ms,
    };
    let behind = b
        .read_history(
            topic,
            &HistoryQuery::After {
                epoch,
                offset: before,
            },
            tight,
        )
        .await
        .unwrap();
    assert_eq!(behind.outcome, ReadOutcome::TooFarBehind { behind: 2 });
}

#[tokio::test]
async fn queues_store_large_messages_compressed_and_hand_them_back_whole() {
    let redis = TestRedis::new();
    let b = broker(&redis, Some(4096)).await;
    let queue = "w1/jobs";
    let big = AgentMessage::new("producer", json!({"doc": agent_json(32 << 10, 3)}));
    b.enqueue(queue, std::slice::from_ref(&big), 100)
        .await
        .unwrap();
    let mut conn = raw(&redis).await;
    let msgs = format!("{}:q:{{{queue}}}:msgs", redis.namespace);
    let stored: Vec<u8> = redis::cmd("HGET")
        .arg(&msgs)
        .arg(&big.id)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(stored.starts_with(b"\0Z"));
    assert!(stored.len() * 3 < big.to_json().len());
    let policy = RetryPolicy {
        max_attempts: 1,
        ..RetryPolicy::default()
    };
    let claimed = b
        .claim(queue, 10, std::time::Duration::from_secs(30), &policy)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].message.payload, big.payload);
    assert_eq!(claimed[0].message.id, big.id);
    // Rejected for good, it is read back whole from the dead letters too.
    b.reject(queue, &big.id, "no", false, &policy)
        .await
        .unwrap();
    let dead = b.dead_letters(queue, 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].message.payload, big.payload);
}

#[tokio::test]
async fn nodes_with_and_without_compression_read_each_other() {
    let redis = TestRedis::new();
    let on = broker(&redis, Some(1024)).await;
    let off = broker(&redis, None).await;
    let topic = "topic:w1/mixed";
    let mut on_sub = on.subscribe().await.unwrap();
    on_sub.control.subscribe(&[topic.into()]).await.unwrap();
    let mut off_sub = off.subscribe().await.unwrap();
    off_sub.control.subscribe(&[topic.into()]).await.unwrap();
    let (a, b) = (agent_json(8 << 10, 4), agent_json(8 << 10, 5));
    on.publish_many(&[outgoing(topic, &a, kept())])
        .await
        .unwrap();
    off.publish_many(&[outgoing(topic, &b, kept())])
        .await
        .unwrap();
    for sub in [&mut on_sub, &mut off_sub] {
        assert_eq!(&next(&mut sub.deliveries).await.payload[..], a.as_bytes());
        assert_eq!(&next(&mut sub.deliveries).await.payload[..], b.as_bytes());
    }
    for reader in [&on, &off] {
        let read = reader
            .read_history(topic, &HistoryQuery::Last { count: 10 }, LOTS)
            .await
            .unwrap();
        let bodies: Vec<&[u8]> = read.entries.iter().map(|(_, m)| &m[..]).collect();
        assert_eq!(bodies, [a.as_bytes(), b.as_bytes()]);
    }
    // The node without compression stored its message as it came.
    let stored = stored_history(&redis, topic).await;
    assert!(stored[0].starts_with(b"\0Z"));
    assert!(stored[1].starts_with(b"{"));
}

/// A compressed frame that does not open (written by hand into Redis) is
/// dropped with a warning; the next good message still arrives.
#[tokio::test]
async fn a_frame_that_does_not_open_is_dropped_not_delivered() {
    let redis = TestRedis::new();
    let b = broker(&redis, Some(4096)).await;
    let topic = "topic:w1/tampered";
    let mut sub = b.subscribe().await.unwrap();
    sub.control.subscribe(&[topic.into()]).await.unwrap();
    let mut conn = raw(&redis).await;
    let channel = format!("{}:{topic}", redis.namespace);
    for bad in [&b"\0Z99\nnot zstd"[..], b"\0Z999999999999\nxx"] {
        let _: i64 = redis::cmd("PUBLISH")
            .arg(&channel)
            .arg(bad)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    let good = agent_json(8 << 10, 6);
    b.publish(topic, Bytes::from(good.clone())).await.unwrap();
    assert_eq!(
        &next(&mut sub.deliveries).await.payload[..],
        good.as_bytes()
    );
}

/// On a cluster (sharded publishes, the history script per shard) large
/// payloads arrive whole, live and from history.
#[tokio::test]
async fn large_payloads_arrive_whole_on_a_cluster() {
    let cluster = TestRedisCluster::new();
    let options = RedisOptions::cluster(&cluster.urls).namespace(&cluster.namespace);
    let b: Arc<dyn Broker> = Arc::new(RedisBroker::connect_with(options).await.unwrap());
    let (topic, plain) = ("topic:w1/cluster-reports", "topic:w1/cluster-plain");
    let mut sub = b.subscribe().await.unwrap();
    sub.control
        .subscribe(&[topic.into(), plain.into()])
        .await
        .unwrap();
    let big = agent_json(64 << 10, 7);
    b.publish_many(&[outgoing(topic, &big, kept()), outgoing(plain, &big, None)])
        .await
        .unwrap();
    for _ in 0..2 {
        assert_eq!(&next(&mut sub.deliveries).await.payload[..], big.as_bytes());
    }
    let read = b
        .read_history(topic, &HistoryQuery::Last { count: 10 }, LOTS)
        .await
        .unwrap();
    assert_eq!(read.entries.len(), 1);
    assert_eq!(&read.entries[0].1[..], big.as_bytes());
    // And the shard holds it compressed.
    let client = redis::cluster::ClusterClient::new(cluster.urls.clone()).unwrap();
    let mut conn = client.get_async_connection().await.unwrap();
    let entries: Vec<StreamEntry> = redis::cmd("XRANGE")
        .arg(format!(
            "{}:hs:topic:{{w1}}/cluster-reports",
            cluster.namespace
        ))
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await
        .unwrap();
    let stored = &entries[0].1[0].1;
    assert!(stored.starts_with(b"\0Z") && stored.len() * 3 < big.len());
}

//! Redis restarts under a running bus: pub/sub (channels and patterns) and
//! commands work again without restarting anything on the bus side.

use std::sync::Arc;
use std::time::Duration;

use bus::broker::redis::RedisBroker;
use bus::broker::{Broker, RetryPolicy};
use bus::message::AgentMessage;
use bytes::Bytes;
use testkit::RedisServer;

use crate::support::next;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pubsub_and_commands_recover_after_redis_restarts() {
    let mut server = RedisServer::start();
    let broker: Arc<dyn Broker> = Arc::new(RedisBroker::connect(&server.url()).await.unwrap());
    let mut sub = broker.subscribe().await.unwrap();
    sub.control
        .subscribe(&["topic:w1/exact".into()])
        .await
        .unwrap();
    sub.control
        .psubscribe(&["topic:w1/p:*".into()])
        .await
        .unwrap();
    assert_eq!(
        broker
            .publish("topic:w1/exact", Bytes::from_static(b"before"))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        next(&mut sub.deliveries).await.payload,
        Bytes::from_static(b"before")
    );

    server.restart();

    // Delivery resumes once the supervisor has resubscribed; publish until a
    // subscriber is there again (PUBLISH returns 0 until then).
    for (channel, pattern) in [
        ("topic:w1/exact", None),
        ("topic:w1/p:1", Some("topic:w1/p:*")),
    ] {
        let resumed = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                match broker.publish(channel, Bytes::from_static(b"after")).await {
                    Ok(n) if n > 0 => return,
                    _ => tokio::time::sleep(Duration::from_millis(20)).await,
                }
            }
        })
        .await;
        assert!(resumed.is_ok(), "{channel} was not resubscribed");
        let d = next(&mut sub.deliveries).await;
        assert_eq!(d.channel, channel);
        assert_eq!(d.pattern.as_deref(), pattern);
        assert_eq!(d.payload, Bytes::from_static(b"after"));
    }

    // Commands through the ConnectionManager work again too.
    let m = AgentMessage::new("jobs", serde_json::json!(1));
    broker
        .enqueue("w1/jobs", std::slice::from_ref(&m), 10)
        .await
        .unwrap();
    let claimed = broker
        .claim(
            "w1/jobs",
            1,
            Duration::from_secs(30),
            &RetryPolicy::default(),
        )
        .await
        .unwrap();
    assert_eq!(claimed[0].message.id, m.id);
    assert!(broker.ack("w1/jobs", &m.id).await.unwrap());
}

/// A Redis that lost its scripts (restarted, `SCRIPT FLUSH`) answers
/// NOSCRIPT to a batch's history steps alone: they are loaded and run
/// again, nothing is kept twice, and offsets go on without a gap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_publishes_go_on_when_redis_lost_its_scripts() {
    use bus::broker::{HistoryLimits, HistoryPolicy, HistoryQuery, Outgoing};
    let server = RedisServer::start();
    let broker = RedisBroker::connect(&server.url()).await.unwrap();
    let kept = Some(HistoryPolicy {
        max_len: 100,
        max_age: None,
    });
    let batch = |from: u64| -> Vec<Outgoing> {
        (from..from + 3)
            .flat_map(|i| {
                ["topic:w1/a", "topic:w1/b"].map(|channel| Outgoing {
                    channel: channel.into(),
                    payload: Bytes::from(format!("{{\"i\":{i}}}")),
                    history: kept,
                })
            })
            .chain([Outgoing {
                channel: "topic:w1/plain".into(),
                payload: Bytes::from_static(b"{}"),
                history: None,
            }])
            .collect()
    };
    broker.publish_many(&batch(1)).await.unwrap();
    let mut conn = redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut conn)
        .await
        .unwrap();
    let published = broker.publish_many(&batch(4)).await.unwrap();
    let ns: Vec<Option<u64>> = published
        .iter()
        .map(|p| p.stamp.as_ref().map(|s| s.offset.n))
        .collect();
    let want: Vec<Option<u64>> = (4..7)
        .flat_map(|n| [Some(n), Some(n)])
        .chain([None])
        .collect();
    assert_eq!(ns, want);
    let limits = HistoryLimits {
        max: 100,
        max_bytes: 1 << 20,
    };
    let read = broker
        .read_history("topic:w1/a", &HistoryQuery::Last { count: 100 }, limits)
        .await
        .unwrap();
    let kept: Vec<u64> = read.entries.iter().map(|(o, _)| o.n).collect();
    assert_eq!(kept, (1..=6).collect::<Vec<_>>(), "each once");
}

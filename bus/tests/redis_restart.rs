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

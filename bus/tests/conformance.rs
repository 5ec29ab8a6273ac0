//! One conformance suite for every backend: each case runs on the memory
//! broker, on a real Redis and on a real three-master Redis Cluster
//! (`conformance::memory::*`, `conformance::redis::*`,
//! `conformance::redis_cluster::*`; the cluster is shared by the process,
//! each case has its own namespace).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bus::broker::{
    BrokerError, HistoryLimits, HistoryPolicy, HistoryQuery, Offset, Outgoing, ReadOutcome,
    RejectOutcome, RetryPolicy,
};
use bus::message::names::{self, Channel};
use bus::message::{AgentMessage, DeliveryMode};
use bus::router::{DeliverySink, Dispatched, MessageRouter, RouterConfig};
use bytes::Bytes;
use rand::{Rng, SeedableRng};
use serde_json::json;

use crate::support::{Backend, next};

const VISIBILITY: Duration = Duration::from_secs(30);

fn policy(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        base_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_secs(10),
    }
}

fn msg(n: usize, priority: u8) -> AgentMessage {
    AgentMessage::new("jobs", json!({ "n": n })).with_priority(priority)
}

pub(crate) async fn exact_channels(b: Backend) {
    let mut sub = b.broker.subscribe().await.unwrap();
    sub.control.subscribe(&["topic:w1/a".into()]).await.unwrap();
    assert_eq!(
        b.broker
            .publish("topic:w1/b", Bytes::from_static(b"no"))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        b.broker
            .publish("topic:w1/a", Bytes::from_static(b"yes"))
            .await
            .unwrap(),
        1
    );
    let d = next(&mut sub.deliveries).await;
    assert_eq!(d.channel, "topic:w1/a");
    assert_eq!(d.pattern, None);
    assert_eq!(&d.payload[..], b"yes");

    sub.control
        .unsubscribe(&["topic:w1/a".into()])
        .await
        .unwrap();
    assert_eq!(
        b.broker
            .publish("topic:w1/a", Bytes::from_static(b"gone"))
            .await
            .unwrap(),
        0
    );
}

pub(crate) async fn pattern_subscriptions(b: Backend) {
    let mut sub = b.broker.subscribe().await.unwrap();
    sub.control
        .psubscribe(&["topic:w1/agent:*".into()])
        .await
        .unwrap();
    sub.control
        .subscribe(&["topic:w1/agent:x".into()])
        .await
        .unwrap();
    for channel in ["topic:w2/agent:x", "topic:w1/other", "topic:w1/agen"] {
        assert_eq!(
            b.broker
                .publish(channel, Bytes::from_static(b"-"))
                .await
                .unwrap(),
            0,
            "{channel}"
        );
    }
    // Exact and pattern subscriptions both match: two deliveries, as Redis does.
    assert_eq!(
        b.broker
            .publish("topic:w1/agent:x", Bytes::from_static(b"1"))
            .await
            .unwrap(),
        2
    );
    let mut got = [
        next(&mut sub.deliveries).await,
        next(&mut sub.deliveries).await,
    ];
    got.sort_by_key(|d| d.pattern.clone());
    assert_eq!(got[0].pattern, None);
    assert_eq!(got[1].pattern.as_deref(), Some("topic:w1/agent:*"));
    assert!(got.iter().all(|d| d.channel == "topic:w1/agent:x"));

    assert_eq!(
        b.broker
            .publish("topic:w1/agent:y", Bytes::from_static(b"2"))
            .await
            .unwrap(),
        1
    );
    let d = next(&mut sub.deliveries).await;
    assert_eq!(
        (d.channel.as_str(), d.pattern.as_deref()),
        ("topic:w1/agent:y", Some("topic:w1/agent:*"))
    );

    sub.control
        .punsubscribe(&["topic:w1/agent:*".into()])
        .await
        .unwrap();
    assert_eq!(
        b.broker
            .publish("topic:w1/agent:y", Bytes::from_static(b"3"))
            .await
            .unwrap(),
        0
    );
}

pub(crate) async fn publish_order_is_kept(b: Backend) {
    let mut sub = b.broker.subscribe().await.unwrap();
    sub.control
        .subscribe(&["topic:w1/seq".into()])
        .await
        .unwrap();
    for i in 0..500u32 {
        b.broker
            .publish("topic:w1/seq", Bytes::from(i.to_string()))
            .await
            .unwrap();
    }
    for i in 0..500u32 {
        let d = next(&mut sub.deliveries).await;
        assert_eq!(d.payload, Bytes::from(i.to_string()));
    }
}

pub(crate) async fn priority_and_fifo_over_10k(b: Backend) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let messages: Vec<AgentMessage> = (0..10_000)
        .map(|n| msg(n, rng.random_range(0..10)))
        .collect();
    for chunk in messages.chunks(500) {
        assert_eq!(
            b.broker.enqueue("w1/jobs", chunk, u64::MAX).await.unwrap(),
            chunk.len()
        );
    }
    let order: HashMap<String, usize> = messages
        .iter()
        .enumerate()
        .map(|(i, m)| (m.id.clone(), i))
        .collect();
    let mut claimed = Vec::new();
    loop {
        let batch = b
            .broker
            .claim("w1/jobs", 250, VISIBILITY, &policy(3))
            .await
            .unwrap();
        if batch.is_empty() {
            break;
        }
        claimed.extend(batch);
    }
    assert_eq!(claimed.len(), 10_000);
    for pair in claimed.windows(2) {
        let (a, c) = (&pair[0].message, &pair[1].message);
        assert!(
            a.priority >= c.priority,
            "priority inversion: {} then {}",
            a.priority,
            c.priority
        );
        if a.priority == c.priority {
            assert!(
                order[&a.id] < order[&c.id],
                "FIFO broken inside priority {}",
                a.priority
            );
        }
    }
    assert!(claimed.iter().all(|c| c.message.attempts == 1));
}

pub(crate) async fn claims_are_atomic_under_50_consumers(b: Backend) {
    let messages: Vec<AgentMessage> = (0..5_000).map(|n| msg(n, 0)).collect();
    for chunk in messages.chunks(1000) {
        b.broker.enqueue("w1/work", chunk, u64::MAX).await.unwrap();
    }
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut workers = Vec::new();
    for _ in 0..50 {
        let broker = b.broker.clone();
        let seen = seen.clone();
        workers.push(tokio::spawn(async move {
            loop {
                let batch = broker
                    .claim("w1/work", 10, VISIBILITY, &policy(3))
                    .await
                    .unwrap();
                if batch.is_empty() {
                    return;
                }
                seen.lock()
                    .unwrap()
                    .extend(batch.into_iter().map(|c| c.message.id));
            }
        }));
    }
    for w in workers {
        w.await.unwrap();
    }
    let seen = seen.lock().unwrap().clone();
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(seen.len(), 5_000, "every message claimed once");
    assert_eq!(unique.len(), 5_000, "no message claimed twice");
    let stats = b.broker.stats("w1/work").await.unwrap();
    assert_eq!((stats.ready, stats.processing), (0, 5_000));
    for id in &seen {
        assert!(b.broker.ack("w1/work", id).await.unwrap());
    }
    let stats = b.broker.stats("w1/work").await.unwrap();
    assert_eq!(
        (stats.ready, stats.processing, stats.delayed, stats.dead),
        (0, 0, 0, 0)
    );
}

pub(crate) async fn ack_reject_retry_and_dead_letter(b: Backend) {
    let p = policy(3);
    let m = msg(1, 5);
    b.broker
        .enqueue("w1/q", std::slice::from_ref(&m), u64::MAX)
        .await
        .unwrap();
    assert_eq!(
        b.broker
            .reject("w1/q", &m.id, "not claimed", true, &p)
            .await
            .unwrap(),
        None
    );

    let first = b.broker.claim("w1/q", 1, VISIBILITY, &p).await.unwrap();
    assert_eq!(first[0].message.attempts, 1);
    let outcome = b
        .broker
        .reject("w1/q", &m.id, "busy", true, &p)
        .await
        .unwrap();
    assert_eq!(
        outcome,
        Some(RejectOutcome::Requeued {
            delay_ms: 100,
            attempts: 1
        })
    );
    assert_eq!(b.broker.stats("w1/q").await.unwrap().delayed, 1);
    assert!(
        b.broker
            .claim("w1/q", 1, VISIBILITY, &p)
            .await
            .unwrap()
            .is_empty(),
        "still backing off"
    );

    b.clock.advance(Duration::from_millis(100));
    let second = b.broker.claim("w1/q", 1, VISIBILITY, &p).await.unwrap();
    assert_eq!(second[0].message.attempts, 2);
    let outcome = b
        .broker
        .reject("w1/q", &m.id, "busy", true, &p)
        .await
        .unwrap();
    assert_eq!(
        outcome,
        Some(RejectOutcome::Requeued {
            delay_ms: 200,
            attempts: 2
        })
    );

    b.clock.advance(Duration::from_millis(200));
    let third = b.broker.claim("w1/q", 1, VISIBILITY, &p).await.unwrap();
    assert_eq!(third[0].message.attempts, 3);
    let outcome = b
        .broker
        .reject("w1/q", &m.id, "still broken", true, &p)
        .await
        .unwrap();
    assert_eq!(outcome, Some(RejectOutcome::DeadLettered { attempts: 3 }));

    let dead = b.broker.dead_letters("w1/q", 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].message.id, m.id);
    assert_eq!(dead[0].message.payload, m.payload);
    assert_eq!(dead[0].message.attempts, 3);
    assert_eq!(dead[0].reason, "still broken");
    assert!(
        !b.broker.ack("w1/q", &m.id).await.unwrap(),
        "dead letters are not acked"
    );

    // Reject without requeue goes straight to the dead-letter queue.
    let m2 = msg(2, 0);
    b.broker
        .enqueue("w1/q", std::slice::from_ref(&m2), u64::MAX)
        .await
        .unwrap();
    b.broker.claim("w1/q", 1, VISIBILITY, &p).await.unwrap();
    let outcome = b
        .broker
        .reject("w1/q", &m2.id, "poison", false, &p)
        .await
        .unwrap();
    assert_eq!(outcome, Some(RejectOutcome::DeadLettered { attempts: 1 }));
    let stats = b.broker.stats("w1/q").await.unwrap();
    assert_eq!(
        (stats.ready, stats.processing, stats.delayed, stats.dead),
        (0, 0, 0, 2)
    );
    assert!(!b.broker.ack("w1/q", "no-such-id").await.unwrap());
}

pub(crate) async fn acks_are_idempotent_for_a_while(b: Backend) {
    let p = policy(3);
    let m = msg(1, 0);
    b.broker
        .enqueue("w1/i", std::slice::from_ref(&m), u64::MAX)
        .await
        .unwrap();
    b.broker.claim("w1/i", 1, VISIBILITY, &p).await.unwrap();
    assert!(b.broker.ack("w1/i", &m.id).await.unwrap());
    assert!(
        b.broker.ack("w1/i", &m.id).await.unwrap(),
        "a repeated ack (a retry after a lost reply) succeeds"
    );
    b.clock
        .advance(bus::broker::ACK_MEMORY + Duration::from_millis(1));
    assert!(
        !b.broker.ack("w1/i", &m.id).await.unwrap(),
        "forgotten after the memory window"
    );
    let stats = b.broker.stats("w1/i").await.unwrap();
    assert_eq!((stats.ready, stats.processing), (0, 0));
}

pub(crate) async fn acks_in_batches(b: Backend) {
    let p = policy(3);
    let messages: Vec<AgentMessage> = (0..5).map(|i| msg(i, 0)).collect();
    b.broker.enqueue("w1/b", &messages, u64::MAX).await.unwrap();
    let claimed = b.broker.claim("w1/b", 3, VISIBILITY, &p).await.unwrap();
    assert_eq!(claimed.len(), 3);
    // Claimed, still ready, unknown, and a claimed one twice in one batch.
    let ids = vec![
        claimed[0].message.id.clone(),
        claimed[1].message.id.clone(),
        messages[4].id.clone(),
        "no-such-id".to_owned(),
        claimed[0].message.id.clone(),
    ];
    assert_eq!(
        b.broker.ack_many("w1/b", &ids).await.unwrap(),
        vec![true, true, true, false, true],
        "one answer per id, in order; a repeat within the batch is idempotent"
    );
    let stats = b.broker.stats("w1/b").await.unwrap();
    assert_eq!((stats.ready, stats.processing), (1, 1));
    assert_eq!(
        b.broker.ack_many("w1/b", &ids[..2]).await.unwrap(),
        vec![true, true],
        "a repeated batch (a retry after a lost reply) succeeds"
    );
}

pub(crate) async fn reclaim_after_visibility_timeout(b: Backend) {
    let p = policy(2);
    let m = msg(1, 0);
    b.broker
        .enqueue("w1/r", std::slice::from_ref(&m), u64::MAX)
        .await
        .unwrap();
    b.broker.claim("w1/r", 1, VISIBILITY, &p).await.unwrap();

    b.clock.advance(VISIBILITY - Duration::from_millis(1));
    assert_eq!(
        b.broker.reclaim("w1/r", &p).await.unwrap().requeued,
        0,
        "not yet expired"
    );
    b.clock.advance(Duration::from_millis(1));
    let outcome = b.broker.reclaim("w1/r", &p).await.unwrap();
    assert_eq!((outcome.requeued, outcome.dead_lettered), (1, 0));

    let again = b.broker.claim("w1/r", 1, VISIBILITY, &p).await.unwrap();
    assert_eq!(again[0].message.id, m.id);
    assert_eq!(again[0].message.attempts, 2);

    // Out of attempts: the lazy reclaim inside claim dead-letters it.
    b.clock.advance(VISIBILITY);
    assert!(
        b.broker
            .claim("w1/r", 1, VISIBILITY, &p)
            .await
            .unwrap()
            .is_empty()
    );
    let dead = b.broker.dead_letters("w1/r", 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert!(
        dead[0].reason.contains("visibility timeout"),
        "{}",
        dead[0].reason
    );
}

pub(crate) async fn stats_queues_and_limits(b: Backend) {
    let batch: Vec<AgentMessage> = (0..5).map(|n| msg(n, 0)).collect();
    assert_eq!(b.broker.enqueue("w1/s", &batch[..3], 4).await.unwrap(), 3);
    assert_eq!(
        b.broker.enqueue("w1/s", &batch[..3], 4).await.unwrap(),
        0,
        "ids already queued are skipped"
    );
    match b.broker.enqueue("w1/s", &batch[3..], 4).await {
        Err(BrokerError::QueueFull {
            limit: 4, added: 1, ..
        }) => {}
        other => panic!("expected QueueFull with 1 added, got {other:?}"),
    }
    b.broker
        .claim("w1/s", 1, VISIBILITY, &policy(3))
        .await
        .unwrap();
    let stats = b.broker.stats("w1/s").await.unwrap();
    assert_eq!(
        (stats.ready, stats.processing, stats.delayed, stats.dead),
        (3, 1, 0, 0)
    );
    assert_eq!(b.broker.stats("w1/none").await.unwrap(), Default::default());
    assert!(
        b.broker
            .queues()
            .await
            .unwrap()
            .contains(&"w1/s".to_owned())
    );
}

/// Depths of many queues at once come back in order and exact, whatever
/// shards the queues live on; the queue budget of a workspace admits
/// exactly its budget even when many new queues race for it.
pub(crate) async fn queue_depths_and_budget(b: Backend) {
    let queues: Vec<String> = (0..40).map(|i| format!("w{}/q{i}", i % 7)).collect();
    for (i, queue) in queues.iter().enumerate() {
        let batch: Vec<AgentMessage> = (0..=i % 5).map(|n| msg(n, 0)).collect();
        b.broker.enqueue(queue, &batch, 100).await.unwrap();
    }
    let mut asked = queues.clone();
    asked.push("w9/never".to_owned());
    let stats = b.broker.stats_many(&asked).await.unwrap();
    let ready: Vec<u64> = stats.iter().map(|s| s.ready).collect();
    let mut expected: Vec<u64> = (0..40).map(|i| (i % 5 + 1) as u64).collect();
    expected.push(0);
    assert_eq!(ready, expected);

    let racing = (0..20).map(|i| {
        let broker = b.broker.clone();
        async move {
            broker
                .admit_queue(&format!("budget/q{i}"), 5)
                .await
                .unwrap()
        }
    });
    let admitted = futures_util::future::join_all(racing).await;
    assert_eq!(admitted.iter().filter(|a| **a).count(), 5, "{admitted:?}");
    let first = admitted.iter().position(|a| *a).unwrap();
    assert!(
        b.broker
            .admit_queue(&format!("budget/q{first}"), 5)
            .await
            .unwrap(),
        "an admitted queue stays admitted when the budget is full"
    );
    assert!(!b.broker.admit_queue("budget/new", 5).await.unwrap());
    assert!(b.broker.admit_queue("other/new", 5).await.unwrap());
}

pub(crate) async fn waiting_workers_are_woken_by_enqueue(b: Backend) {
    let broker = b.broker.clone();
    // Register the waiter first, then enqueue: the waiter must return long
    // before its 60 s timeout, which only a wake-up can do.
    let waiter = tokio::spawn(async move {
        broker
            .wait_for_work("w1/wake", Duration::from_secs(60))
            .await
            .unwrap();
    });
    tokio::task::yield_now().await;
    let result = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            b.broker
                .enqueue("w1/wake", &[msg(0, 0)], u64::MAX)
                .await
                .unwrap();
            if waiter.is_finished() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(result.is_ok(), "the waiter was never woken");
}

/// Collects what a router delivers to one local sink.
struct Collect(Mutex<Vec<Bytes>>);

impl DeliverySink for Collect {
    fn deliver(&self, d: &Dispatched<'_>) {
        self.0.lock().unwrap().push(d.delivery.payload.clone());
    }
}

fn kept(max_len: u64) -> Option<HistoryPolicy> {
    Some(HistoryPolicy {
        max_len,
        max_age: None,
    })
}

fn outgoing(channel: &str, body: String, history: Option<HistoryPolicy>) -> Outgoing {
    Outgoing {
        channel: channel.to_owned(),
        payload: Bytes::from(body),
        history,
    }
}

const LOTS: HistoryLimits = HistoryLimits {
    max: 10_000,
    max_bytes: 1 << 20,
};

/// Messages kept in history are stamped with consecutive offsets, live and
/// in the history alike, and the history reads back as its contract says.
pub(crate) async fn history_offsets_are_consecutive_and_read_back(b: Backend) {
    let (topic, other) = ("topic:w1/orders", "topic:w1/plain");
    let mut sub = b.broker.subscribe().await.unwrap();
    sub.control
        .subscribe(&[topic.into(), other.into()])
        .await
        .unwrap();
    let batch: Vec<Outgoing> = (1..=50)
        .flat_map(|i| {
            [
                outgoing(topic, format!("{{\"i\":{i}}}"), kept(1000)),
                outgoing(other, format!("{{\"j\":{i}}}"), None),
            ]
        })
        .collect();
    let published = b.broker.publish_many(&batch).await.unwrap();
    let stamps: Vec<_> = published.iter().filter_map(|p| p.stamp.clone()).collect();
    assert_eq!(stamps.len(), 50);
    let epoch = stamps[0].epoch.clone();
    for (i, s) in stamps.iter().enumerate() {
        assert_eq!((s.offset.n, &s.epoch), (i as u64 + 1, &epoch));
    }
    // Live deliveries carry the same stamps, in order; plain ones none.
    let mut live = Vec::new();
    for _ in 0..100 {
        let d = next(&mut sub.deliveries).await;
        if d.channel == topic {
            live.push(d.stamp.expect("a stamp on a topic with history"));
        } else {
            assert_eq!(d.stamp, None);
        }
    }
    assert_eq!(live, stamps);

    let read = |query| {
        let broker = b.broker.clone();
        async move { broker.read_history(topic, &query, LOTS).await.unwrap() }
    };
    let head = read(HistoryQuery::Head).await;
    assert_eq!(
        (head.epoch.as_str(), head.head),
        (epoch.as_str(), stamps[49].offset)
    );
    assert!(head.entries.is_empty());
    let after = read(HistoryQuery::After {
        epoch: epoch.clone(),
        offset: stamps[9].offset,
    })
    .await;
    assert_eq!(after.outcome, ReadOutcome::Complete);
    let ns: Vec<u64> = after.entries.iter().map(|(o, _)| o.n).collect();
    assert_eq!(ns, (11..=50).collect::<Vec<_>>());
    assert_eq!(&after.entries[0].1[..], b"{\"i\":11}");
    // Between two offsets: exactly what lies between, however far the
    // topic has moved on.
    let between = read(HistoryQuery::Between {
        epoch: epoch.clone(),
        after: stamps[9].offset,
        before: stamps[14].offset,
    })
    .await;
    assert_eq!(between.outcome, ReadOutcome::Complete);
    let ns: Vec<u64> = between.entries.iter().map(|(o, _)| o.n).collect();
    assert_eq!(ns, [11, 12, 13, 14]);
    let few_between = b
        .broker
        .read_history(
            topic,
            &HistoryQuery::Between {
                epoch: epoch.clone(),
                after: stamps[9].offset,
                before: stamps[14].offset,
            },
            HistoryLimits {
                max: 4,
                max_bytes: 1 << 20,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        few_between.entries.len(),
        4,
        "the bound counts the gap only"
    );
    let last = read(HistoryQuery::Last { count: 5 }).await;
    let ns: Vec<u64> = last.entries.iter().map(|(o, _)| o.n).collect();
    assert_eq!(ns, [46, 47, 48, 49, 50]);
    let up_to_date = read(HistoryQuery::After {
        epoch: epoch.clone(),
        offset: stamps[49].offset,
    })
    .await;
    assert_eq!(
        (up_to_date.outcome, up_to_date.entries.len()),
        (ReadOutcome::Complete, 0)
    );
    // Each way a resume can fail says so.
    let other_epoch = read(HistoryQuery::After {
        epoch: "not-this-one".into(),
        offset: stamps[9].offset,
    })
    .await;
    assert_eq!(other_epoch.outcome, ReadOutcome::EpochChanged);
    let ahead = Offset {
        n: 51,
        ms: stamps[49].offset.ms,
    };
    let ahead = read(HistoryQuery::After {
        epoch: epoch.clone(),
        offset: ahead,
    })
    .await;
    assert_eq!(ahead.outcome, ReadOutcome::UnknownOffset);
    let few = HistoryLimits {
        max: 10,
        max_bytes: 1 << 20,
    };
    let query = HistoryQuery::After {
        epoch: epoch.clone(),
        offset: stamps[9].offset,
    };
    let too_many = b.broker.read_history(topic, &query, few).await.unwrap();
    assert_eq!(too_many.outcome, ReadOutcome::TooFarBehind { behind: 40 });
    assert!(too_many.entries.is_empty());
    let small = HistoryLimits {
        max: 10_000,
        max_bytes: 100,
    };
    let too_big = b.broker.read_history(topic, &query, small).await.unwrap();
    assert_eq!(too_big.outcome, ReadOutcome::TooFarBehind { behind: 40 });
    let truncated = b
        .broker
        .read_history(topic, &HistoryQuery::Last { count: 50 }, small)
        .await
        .unwrap();
    assert_eq!(truncated.outcome, ReadOutcome::Truncated);
    assert!(truncated.entries.len() < 50 && truncated.entries.last().unwrap().0.n == 50);
    // A topic never written has an epoch and an empty history.
    let fresh = b
        .broker
        .read_history("topic:w1/new", &HistoryQuery::Head, LOTS)
        .await
        .unwrap();
    assert_eq!(fresh.head.n, 0);
    assert!(!fresh.epoch.is_empty());
}

/// History keeps at least its bound (exactly on memory; Redis trims
/// approximately, keeping a few more), and a reader whose next message is
/// gone is told how many it missed.
pub(crate) async fn history_is_trimmed_and_says_what_was_missed(b: Backend) {
    let topic = "topic:w1/busy";
    let batch: Vec<Outgoing> = (1..=600)
        .map(|i| outgoing(topic, format!("{{\"i\":{i}}}"), kept(10)))
        .collect();
    let published = b.broker.publish_many(&batch).await.unwrap();
    let epoch = published[0].stamp.clone().unwrap().epoch;
    let all = b
        .broker
        .read_history(topic, &HistoryQuery::Last { count: 10_000 }, LOTS)
        .await
        .unwrap();
    let ns: Vec<u64> = all.entries.iter().map(|(o, _)| o.n).collect();
    assert!(ns.len() >= 10 && ns.len() < 600, "kept {}", ns.len());
    assert_eq!(*ns.last().unwrap(), 600);
    assert!(ns.windows(2).all(|w| w[1] == w[0] + 1), "consecutive");
    let first = ns[0];
    let from_start = b
        .broker
        .read_history(
            topic,
            &HistoryQuery::After {
                epoch,
                offset: published[0].stamp.clone().unwrap().offset,
            },
            LOTS,
        )
        .await
        .unwrap();
    assert_eq!(
        from_start.outcome,
        ReadOutcome::WindowExceeded { missed: first - 2 }
    );
}

async fn until<F: Fn() -> bool>(what: &str, f: F) {
    tokio::time::timeout(Duration::from_secs(10), async {
        while !f() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting for {what}"));
}

pub(crate) async fn router_inbox_and_pending(b: Backend) {
    let router = MessageRouter::new(b.broker.clone(), RouterConfig::default())
        .await
        .unwrap();
    let hello = || AgentMessage::new("x", json!("hi")).from_agent("a1");

    // Offline recipient: pubsub falls back to the inbox.
    let out = router
        .send_direct("w1", "a2", hello(), DeliveryMode::Pubsub)
        .await
        .unwrap();
    assert_eq!((out.live, out.stored), (0, true));
    let pending = router.pending("w1", "a2", 10).await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].message.to.as_deref(), Some("a2"));
    assert_eq!(pending[0].message.topic, "agent:a2:inbox");
    assert!(
        router
            .ack(&names::inbox_queue("w1", "a2"), &pending[0].message.id)
            .await
            .unwrap()
    );

    // Online recipient: live for pubsub, live and stored for both, wake for queue.
    let sink = Arc::new(Collect(Mutex::default()));
    let dyn_sink: Arc<dyn DeliverySink> = sink.clone();
    let id = router.next_sink_id();
    router
        .subscribe(id, &dyn_sink, &[names::inbox_channel("w1", "a2")])
        .await
        .unwrap();
    let out = router
        .send_direct("w1", "a2", hello(), DeliveryMode::Pubsub)
        .await
        .unwrap();
    assert_eq!((out.live, out.stored), (1, false));
    let out = router
        .send_direct("w1", "a2", hello(), DeliveryMode::Both)
        .await
        .unwrap();
    assert_eq!((out.live, out.stored), (1, true));
    let out = router
        .send_direct("w1", "a2", hello(), DeliveryMode::Queue)
        .await
        .unwrap();
    assert_eq!((out.live, out.stored), (1, true));
    until("three live deliveries", || {
        sink.0.lock().unwrap().len() == 3
    })
    .await;
    let got = sink.0.lock().unwrap().clone();
    assert_eq!(&got[2][..], bus::router::INBOX_WAKE);
    let live: AgentMessage = serde_json::from_slice(&got[0]).unwrap();
    assert_eq!(live.workspace.as_deref(), Some("w1"));
    assert_eq!(
        router.pending("w1", "a2", 10).await.unwrap().len(),
        2,
        "both + queue stored"
    );

    // Another workspace's agent of the same id shares nothing.
    assert!(router.pending("w2", "a2", 10).await.unwrap().is_empty());
}

pub(crate) async fn router_fans_out_once_per_node(b: Backend) {
    let router = MessageRouter::new(b.broker.clone(), RouterConfig::default())
        .await
        .unwrap();
    let topic = Channel::Topic {
        workspace: "w1".into(),
        name: "agent:news".into(),
    };
    let sinks: Vec<Arc<Collect>> = (0..20)
        .map(|_| Arc::new(Collect(Mutex::default())))
        .collect();
    for s in &sinks {
        let dyn_sink: Arc<dyn DeliverySink> = s.clone();
        router
            .subscribe(
                router.next_sink_id(),
                &dyn_sink,
                std::slice::from_ref(&topic),
            )
            .await
            .unwrap();
    }
    assert_eq!(
        router.subscription_counts(),
        (1, 0),
        "one broker subscription for 20 sinks"
    );
    let receivers = router
        .publish(&topic, AgentMessage::new("", json!(1)))
        .await
        .unwrap();
    assert_eq!(receivers, 1, "the broker delivers once to the node");
    until("every sink got it", || {
        sinks.iter().all(|s| s.0.lock().unwrap().len() == 1)
    })
    .await;
    let ws = router
        .broadcast_workspace("w1", AgentMessage::new("", json!(2)))
        .await
        .unwrap();
    assert_eq!(ws, 0, "nobody subscribed to the workspace channel");
}

macro_rules! conformance {
    ($backend:ident: $($case:ident),* $(,)?) => {
        mod $backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(crate::support::$backend().await).await;
                }
            )*
        }
    };
}

macro_rules! every_backend {
    ($($case:ident),* $(,)?) => {
        conformance!(memory: $($case),*);
        conformance!(redis: $($case),*);
        conformance!(redis_cluster: $($case),*);
    };
}

every_backend!(
    exact_channels,
    pattern_subscriptions,
    publish_order_is_kept,
    priority_and_fifo_over_10k,
    claims_are_atomic_under_50_consumers,
    ack_reject_retry_and_dead_letter,
    acks_are_idempotent_for_a_while,
    acks_in_batches,
    reclaim_after_visibility_timeout,
    stats_queues_and_limits,
    queue_depths_and_budget,
    waiting_workers_are_woken_by_enqueue,
    router_inbox_and_pending,
    router_fans_out_once_per_node,
    history_offsets_are_consecutive_and_read_back,
    history_is_trimmed_and_says_what_was_missed,
);

//! Criterion benchmarks of the two brokers: queue round trips and pub/sub.
//!
//! Every benchmark runs on the memory broker and on Redis. The Redis is a
//! private `redis-server` started here through `testkit::RedisServer` (and
//! killed when the run ends); without redis-server on PATH the run fails with
//! testkit's install hint instead of skipping.
//!
//! Run with `cargo bench -p bus --bench broker`; results are in
//! `docs/BENCHMARKS.md`.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bus::broker::memory::MemoryBroker;
use bus::broker::redis::{RedisBroker, RedisOptions};
use bus::broker::{Broker, RetryPolicy};
use bus::message::{AgentMessage, new_id};
use bytes::Bytes;
use criterion::{BatchSize, BenchmarkId, Criterion, Throughput};
use serde_json::json;
use testkit::RedisServer;
use tokio::runtime::Runtime;

/// Large enough that no benchmark ever fills a queue.
const MAX_LEN: u64 = 1_000_000;
const VISIBILITY: Duration = Duration::from_secs(30);
const BATCH: usize = 100;
const PAYLOAD_BYTES: usize = 256;

/// The brokers under test, by name.
struct Backends {
    all: Vec<(&'static str, Arc<dyn Broker>)>,
}

impl Backends {
    async fn connect(redis: &RedisServer) -> Self {
        let memory: Arc<dyn Broker> = Arc::new(MemoryBroker::new());
        let options = RedisOptions::new(redis.url()).namespace("bench");
        let redis_broker = RedisBroker::connect_with(options)
            .await
            .unwrap_or_else(|e| panic!("connect to the benchmark Redis at {}: {e}", redis.url()));
        Self {
            all: vec![("memory", memory), ("redis", Arc::new(redis_broker))],
        }
    }
}

/// A queue message with a fresh id and a small JSON payload (about 300 bytes
/// stored).
fn message(template: &AgentMessage) -> AgentMessage {
    let mut m = template.clone();
    m.id = new_id();
    m
}

fn template() -> AgentMessage {
    AgentMessage::new("bench", json!({ "data": "x".repeat(200) }))
}

/// `queue/enqueue_claim_ack` and `queue/batch100`.
fn queue(c: &mut Criterion, rt: &Runtime, backends: &Backends) {
    let policy = RetryPolicy::default();
    let template = template();
    let mut group = c.benchmark_group("queue");

    group.throughput(Throughput::Elements(1));
    for (name, broker) in &backends.all {
        let queue = "bench-single";
        group.bench_function(BenchmarkId::new("enqueue_claim_ack", name), |b| {
            b.to_async(rt).iter_batched(
                || message(&template),
                |msg| {
                    let broker = broker.clone();
                    async move {
                        let added = broker
                            .enqueue(queue, std::slice::from_ref(&msg), MAX_LEN)
                            .await
                            .expect("enqueue");
                        assert_eq!(added, 1);
                        let claimed = broker
                            .claim(queue, 1, VISIBILITY, &policy)
                            .await
                            .expect("claim");
                        assert_eq!(claimed.len(), 1);
                        let acked = broker
                            .ack(queue, &claimed[0].message.id)
                            .await
                            .expect("ack");
                        assert!(acked);
                    }
                },
                BatchSize::SmallInput,
            );
        });
    }

    group.throughput(Throughput::Elements(BATCH as u64));
    for (name, broker) in &backends.all {
        let queue = "bench-batch";
        group.bench_function(BenchmarkId::new("batch100", name), |b| {
            b.to_async(rt).iter_batched(
                || (0..BATCH).map(|_| message(&template)).collect::<Vec<_>>(),
                |batch| {
                    let broker = broker.clone();
                    async move {
                        let added = broker
                            .enqueue(queue, &batch, MAX_LEN)
                            .await
                            .expect("enqueue");
                        assert_eq!(added, BATCH);
                        let claimed = broker
                            .claim(queue, BATCH, VISIBILITY, &policy)
                            .await
                            .expect("claim");
                        assert_eq!(claimed.len(), BATCH);
                        let ids: Vec<String> = claimed.into_iter().map(|c| c.message.id).collect();
                        let acked = broker.ack_many(queue, &ids).await.expect("ack");
                        assert!(acked.into_iter().all(|a| a));
                    }
                },
                BatchSize::SmallInput,
            );
        });
    }
    group.finish();
}

/// `pubsub/publish` (publish and wait for the delivery) and
/// `pubsub/publish_no_wait` (publish only; a task drains the subscription).
fn pubsub(c: &mut Criterion, rt: &Runtime, backends: &Backends) {
    let payload = Bytes::from(vec![b'x'; PAYLOAD_BYTES]);
    let mut group = c.benchmark_group("pubsub");
    group.throughput(Throughput::Elements(1));

    for (name, broker) in &backends.all {
        let channel = format!("bench:round-trip:{name}");
        let subscription = rt.block_on(async {
            let sub = broker.subscribe().await.expect("subscribe");
            sub.control
                .subscribe(std::slice::from_ref(&channel))
                .await
                .expect("subscribe to the channel");
            sub
        });
        let control = subscription.control;
        // Behind a mutex only so each measured future can borrow it.
        let deliveries = Arc::new(tokio::sync::Mutex::new(subscription.deliveries));
        group.bench_function(BenchmarkId::new("publish", name), |b| {
            b.to_async(rt).iter_custom(|iters| {
                let broker = broker.clone();
                let deliveries = deliveries.clone();
                let payload = payload.clone();
                let channel = channel.clone();
                async move {
                    let mut deliveries = deliveries.lock().await;
                    let start = Instant::now();
                    for _ in 0..iters {
                        let received = broker
                            .publish(&channel, payload.clone())
                            .await
                            .expect("publish");
                        assert_eq!(received, 1, "one subscription listens");
                        let delivery = deliveries.recv().await.expect("subscription open");
                        black_box(delivery);
                    }
                    start.elapsed()
                }
            });
        });
        drop(control);
    }

    for (name, broker) in &backends.all {
        let channel = format!("bench:no-wait:{name}");
        let subscription = rt.block_on(async {
            let sub = broker.subscribe().await.expect("subscribe");
            sub.control
                .subscribe(std::slice::from_ref(&channel))
                .await
                .expect("subscribe to the channel");
            sub
        });
        let control = subscription.control;
        let mut deliveries = subscription.deliveries;
        let drained = Arc::new(AtomicU64::new(0));
        let drainer = {
            let drained = drained.clone();
            rt.spawn(async move {
                while deliveries.recv().await.is_some() {
                    drained.fetch_add(1, Ordering::Relaxed);
                }
            })
        };
        let unreceived = Arc::new(AtomicU64::new(0));
        group.bench_function(BenchmarkId::new("publish_no_wait", name), |b| {
            b.to_async(rt).iter(|| {
                let broker = broker.clone();
                let payload = payload.clone();
                let channel = channel.clone();
                let unreceived = unreceived.clone();
                async move {
                    let received = broker.publish(&channel, payload).await.expect("publish");
                    if received == 0 {
                        unreceived.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        });
        let missed = unreceived.load(Ordering::Relaxed);
        if missed > 0 {
            eprintln!(
                "pubsub/publish_no_wait/{name}: {missed} publishes reached no subscriber \
                 ({} drained)",
                drained.load(Ordering::Relaxed)
            );
        }
        drainer.abort();
        drop(control);
    }
    group.finish();
}

fn main() {
    // Declared first so it is dropped last, after the brokers and runtime.
    // Panics with testkit's install hint when redis-server is missing.
    let redis = RedisServer::start();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("build the tokio runtime");
    let backends = rt.block_on(Backends::connect(&redis));

    let mut criterion = Criterion::default()
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(5))
        .sample_size(30)
        .configure_from_args();
    queue(&mut criterion, &rt, &backends);
    pubsub(&mut criterion, &rt, &backends);
    criterion.final_summary();
}

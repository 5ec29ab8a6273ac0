//! Criterion benchmarks of the bus's hot paths without the network: frame
//! decode, message frame encode, and the router's fan-out of one delivery
//! to N local subscribers (memory broker).
//!
//! Run with `cargo bench -p bus --bench hot_paths`; results are in
//! `docs/BENCHMARKS.md`.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bus::broker::memory::MemoryBroker;
use bus::message::AgentMessage;
use bus::message::names::Channel;
use bus::protocol::{decode, message_frame};
use bus::router::{DeliverySink, Dispatched, MessageRouter, RouterConfig};
use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput};
use serde_json::json;
use tokio::runtime::Runtime;
use tokio::sync::Notify;

fn frames(c: &mut Criterion) {
    let mut group = c.benchmark_group("frames");
    let publish = r#"{"op":"publish","id":"7","topic":"agent:topic-3","payload":{"s":12,"k":3,"q":991,"t":1795770547390656,"w":1795770547390700,"p":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}}"#;
    group.throughput(Throughput::Elements(1));
    group.bench_function("decode_publish", |b| {
        b.iter(|| decode(black_box(publish)).unwrap())
    });
    let message = AgentMessage::new(
        "agent:topic-3",
        json!({"s": 12, "q": 991, "p": "x".repeat(64)}),
    )
    .in_workspace("ws-0")
    .from_agent("pub-1")
    .to_json();
    group.bench_function("encode_message_frame", |b| {
        b.iter(|| message_frame(black_box(None), None, black_box(&message)))
    });
    group.bench_function("serialize_message", |b| {
        let m = AgentMessage::new("agent:topic-3", json!({"s": 12, "q": 991}));
        b.iter(|| black_box(&m).to_json())
    });
    group.finish();
}

/// Counts deliveries and wakes the bench when the expected number arrived.
struct Counter {
    seen: AtomicU64,
    target: AtomicU64,
    done: Arc<Notify>,
}

impl DeliverySink for Counter {
    fn deliver(&self, d: &Dispatched<'_>) {
        // Like a connection: build the shared frame once, clone it per sink.
        let frame: Bytes = d.frame(|del| Bytes::from(message_frame(None, None, &del.payload)));
        black_box(frame);
        if self.seen.fetch_add(1, Ordering::Relaxed) + 1 == self.target.load(Ordering::Relaxed) {
            self.done.notify_one();
        }
    }
}

fn fanout(c: &mut Criterion) {
    let rt = Runtime::new().expect("runtime");
    let mut group = c.benchmark_group("fanout");
    for n in [10u64, 100, 1000] {
        let (router, counter, channel) = rt.block_on(async {
            let router = MessageRouter::new(Arc::new(MemoryBroker::new()), RouterConfig::default())
                .await
                .expect("router");
            let counter = Arc::new(Counter {
                seen: AtomicU64::new(0),
                target: AtomicU64::new(u64::MAX),
                done: Arc::new(Notify::new()),
            });
            let channel = Channel::Topic {
                workspace: "ws-0".into(),
                name: "agent:news".into(),
            };
            for _ in 0..n {
                let sink: Arc<dyn DeliverySink> = counter.clone();
                router
                    .subscribe(router.next_sink_id(), &sink, std::slice::from_ref(&channel))
                    .await
                    .expect("subscribe");
            }
            (router, counter, channel)
        });
        group.throughput(Throughput::Elements(n));
        group.bench_with_input(
            BenchmarkId::new("publish_to_local_subscribers", n),
            &n,
            |b, &n| {
                b.to_async(&rt).iter(|| {
                    let (router, counter, channel) =
                        (router.clone(), counter.clone(), channel.clone());
                    async move {
                        counter.seen.store(0, Ordering::Relaxed);
                        counter.target.store(n, Ordering::Relaxed);
                        let notified = counter.done.notified();
                        router
                            .publish(&channel, AgentMessage::new("agent:news", json!(1)))
                            .await
                            .expect("publish");
                        notified.await;
                    }
                })
            },
        );
    }
    group.finish();
}

fn main() {
    let mut c = Criterion::default()
        .configure_from_args()
        .measurement_time(std::time::Duration::from_secs(4))
        .sample_size(30);
    frames(&mut c);
    fanout(&mut c);
    c.final_summary();
}

//! Shared set-up: brokers on both backends with a hand-moved clock.

use std::sync::Arc;
use std::time::Duration;

use bus::broker::memory::MemoryBroker;
use bus::broker::redis::{RedisBroker, RedisOptions};
use bus::broker::{Broker, Delivery, ManualClock};
use testkit::TestRedis;
use tokio::sync::mpsc;

/// A broker under test, its clock, and the Redis it uses (kept alive).
pub struct Backend {
    pub broker: Arc<dyn Broker>,
    pub clock: ManualClock,
    pub _redis: Option<TestRedis>,
}

pub const START_MS: u64 = 1_700_000_000_000;

pub async fn memory() -> Backend {
    let clock = ManualClock::new(START_MS);
    Backend {
        broker: Arc::new(MemoryBroker::with_clock(Arc::new(clock.clone()))),
        clock,
        _redis: None,
    }
}

pub async fn redis() -> Backend {
    let redis = TestRedis::new();
    let clock = ManualClock::new(START_MS);
    let options = RedisOptions::new(&redis.url)
        .namespace(&redis.namespace)
        .clock(Arc::new(clock.clone()));
    let broker = RedisBroker::connect_with(options)
        .await
        .unwrap_or_else(|e| panic!("connect to Redis at {}: {e}", redis.url));
    Backend {
        broker: Arc::new(broker),
        clock,
        _redis: Some(redis),
    }
}

/// Receives the next delivery or fails the test after 10 s.
pub async fn next(rx: &mut mpsc::Receiver<Delivery>) -> Delivery {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("a delivery within 10 s")
        .expect("subscription open")
}

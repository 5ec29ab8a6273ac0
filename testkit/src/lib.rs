//! Test support for both crates' tests (a dev-dependency only; production
//! code that needs a local Redis uses `localredis`).
//!
//! [`TestRedis::new`] gives a test a Redis to talk to: the one at
//! `REDIS_URL` when that is set, a private [`RedisServer`] otherwise, plus a
//! namespace of its own so tests sharing a Redis never see each other's keys.
//! [`TestRedisCluster::new`] gives a test a cluster (`REDIS_CLUSTER_URLS`, or
//! one cluster shared by every test of the process) and a namespace.
//!
//! When redis-server is missing, these panic with a message that says how to
//! install it: a test never skips or passes silently without Redis.
//!
//! [`layers`] checks that a crate keeps the layer map its `lib.rs` opens
//! with (a source scan any crate's tests can run on their own `src`).

mod cluster;
pub mod layers;

pub use cluster::TestRedisCluster;
pub use localredis::{CLUSTER_INSTALL_HINT, INSTALL_HINT, RedisCluster, RedisServer, free_port};

use std::sync::atomic::{AtomicU64, Ordering};

/// A namespace no other test of any process uses.
pub fn unique_namespace() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "test-{}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    )
}

/// A Redis for one test: `REDIS_URL` when set, else a private server; and a
/// namespace no other test uses.
#[derive(Debug)]
pub struct TestRedis {
    /// The URL of the Redis to use: `REDIS_URL`, or the private server's.
    pub url: String,
    /// A namespace of this test's own, from [`unique_namespace`].
    pub namespace: String,
    server: Option<RedisServer>,
}

impl TestRedis {
    /// Uses `REDIS_URL` when set and not empty, else starts a private
    /// server; panics when redis-server is needed but missing.
    pub fn new() -> Self {
        let namespace = unique_namespace();
        match std::env::var("REDIS_URL") {
            Ok(url) if !url.is_empty() => Self {
                url,
                namespace,
                server: None,
            },
            _ => {
                let server = RedisServer::start();
                Self {
                    url: server.url(),
                    namespace,
                    server: Some(server),
                }
            }
        }
    }

    /// The private server, when this test started one.
    pub fn server(&self) -> Option<&RedisServer> {
        self.server.as_ref()
    }
}

impl Default for TestRedis {
    fn default() -> Self {
        Self::new()
    }
}

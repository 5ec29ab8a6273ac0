//! A Redis Cluster for a test: `REDIS_CLUSTER_URLS`, or one local cluster
//! shared by every test of the process (a cluster takes a second or two to
//! form; its nodes' watchdogs kill them when the process ends).

use std::sync::OnceLock;

use localredis::RedisCluster;

use crate::unique_namespace;

/// A Redis Cluster for one test: the nodes at `REDIS_CLUSTER_URLS` (comma
/// separated) when set, else one private cluster shared by every test of
/// this process; plus a namespace no other test uses.
#[derive(Debug)]
pub struct TestRedisCluster {
    /// Seed URLs, one per master.
    pub urls: Vec<String>,
    /// A namespace of this test's own, from [`unique_namespace`].
    pub namespace: String,
}

impl TestRedisCluster {
    /// Uses `REDIS_CLUSTER_URLS` when set and not blank, else the
    /// process's shared local cluster (started on first use).
    pub fn new() -> Self {
        let urls = match std::env::var("REDIS_CLUSTER_URLS") {
            Ok(urls) if !urls.trim().is_empty() => urls
                .split(',')
                .map(|u| u.trim().to_owned())
                .filter(|u| !u.is_empty())
                .collect(),
            _ => shared().urls(),
        };
        Self {
            urls,
            namespace: unique_namespace(),
        }
    }

    /// The seed URLs joined with commas, as `--redis` takes them.
    pub fn seeds(&self) -> String {
        self.urls.join(",")
    }
}

impl Default for TestRedisCluster {
    fn default() -> Self {
        Self::new()
    }
}

/// The process's shared cluster, started on first use. Its nodes die with
/// the process (see the watchdog).
fn shared() -> &'static RedisCluster {
    static SHARED: OnceLock<RedisCluster> = OnceLock::new();
    SHARED.get_or_init(RedisCluster::start)
}

//! How the broker reaches Redis: its options, and the command connection, a
//! reconnecting `ConnectionManager` on a single Redis or the redis crate's
//! cluster connection, which routes every command, pipeline and script to
//! the shard owning its keys. Both are one [`Commands`] so the broker's
//! scripts and pipelines run unchanged.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Value};

use crate::broker::{BrokerError, Clock, Result, SystemClock};

/// How to reach Redis and where this bus keeps its keys.
#[derive(Debug, Clone)]
pub struct RedisOptions {
    /// A Redis URL; with `cluster`, a comma-separated list of seed node
    /// URLs (one reachable node is enough, the others are discovered).
    pub url: String,
    /// Whether `url` points at a Redis Cluster (see `docs/CLUSTER.md`).
    pub cluster: bool,
    /// Prefix of every key and channel (without the `:`), so several buses
    /// or test runs can share one Redis. No glob characters or braces.
    pub namespace: String,
    /// Time source for visibility deadlines and backoff.
    pub clock: Arc<dyn Clock>,
    /// Bound on a single command's wait for its reply.
    pub response_timeout: Duration,
    /// Payloads at least this long are compressed in Redis (see
    /// [`super::compress`]); `None` sends every payload as it is.
    pub compress_over: Option<usize>,
}

impl RedisOptions {
    /// Options for one Redis at `url`, with the defaults: namespace `bus`, the
    /// system clock, a 2 s reply bound.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            cluster: false,
            namespace: "bus".to_owned(),
            clock: Arc::new(SystemClock),
            response_timeout: Duration::from_secs(2),
            compress_over: Some(super::compress::DEFAULT_COMPRESS_OVER),
        }
    }

    /// Compresses payloads of at least `over` bytes in Redis; `None` turns
    /// compression off (see [`super::compress`]).
    pub fn compress_over(mut self, over: Option<usize>) -> Self {
        self.compress_over = over;
        self
    }

    /// Options for a Redis Cluster reached through any of `seeds`.
    pub fn cluster<S: AsRef<str>>(seeds: impl IntoIterator<Item = S>) -> Self {
        let urls: Vec<String> = seeds.into_iter().map(|s| s.as_ref().to_owned()).collect();
        Self::new(urls.join(",")).cluster_mode(true)
    }

    /// Treats `url` as the seed list of a Redis Cluster (`true`) or as one
    /// Redis (`false`).
    pub fn cluster_mode(mut self, cluster: bool) -> Self {
        self.cluster = cluster;
        self
    }

    /// Sets the key and channel prefix (see the `namespace` field for why).
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// Sets the time source (a `ManualClock` in tests of deadlines and
    /// backoff).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }
}

/// How long to wait for a TCP connection to one Redis node.
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Where the broker's Redis is; subscriptions open their own connections
/// from it.
#[derive(Debug, Clone)]
pub(super) enum Endpoint {
    Single(redis::Client),
    Cluster(ClusterSeeds),
}

/// How to reach a Redis Cluster.
#[derive(Debug, Clone)]
pub(super) struct ClusterSeeds {
    /// Seed node URLs; the rest of the cluster is discovered from them.
    urls: Vec<String>,
    response_timeout: Duration,
}

impl ClusterSeeds {
    /// A cluster client builder with the broker's timeouts and retries.
    pub(super) fn builder(&self) -> ClusterClientBuilder {
        ClusterClientBuilder::new(self.urls.clone())
            .connection_timeout(CONNECT_TIMEOUT)
            .response_timeout(self.response_timeout)
            .retries(6)
            .min_retry_wait(20)
            .max_retry_wait(1000)
    }
}

impl Endpoint {
    /// Parses `url`: one URL, or on a cluster a comma-separated list of
    /// seed node URLs.
    pub(super) fn parse(url: &str, cluster: bool, response_timeout: Duration) -> Result<Self> {
        if !cluster {
            return Ok(Self::Single(redis::Client::open(url)?));
        }
        let urls: Vec<String> = url
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        if urls.is_empty() {
            return Err(invalid_config(
                "a Redis Cluster needs at least one seed URL",
            ));
        }
        Ok(Self::Cluster(ClusterSeeds {
            urls,
            response_timeout,
        }))
    }

    /// Opens the command connection.
    pub(super) async fn commands(&self, response_timeout: Duration) -> Result<Commands> {
        match self {
            Self::Single(client) => {
                let config = ConnectionManagerConfig::new()
                    // Few, short retries: while Redis is away requests fail
                    // fast (one stalled request would hold up everything
                    // behind it), and the next request after Redis is back
                    // reconnects.
                    .set_number_of_retries(3)
                    .set_min_delay(Duration::from_millis(20))
                    .set_max_delay(Duration::from_millis(100))
                    .set_connection_timeout(Some(CONNECT_TIMEOUT))
                    .set_response_timeout(Some(response_timeout));
                let manager = ConnectionManager::new_with_config(client.clone(), config).await?;
                Ok(Commands::Single(manager))
            }
            Self::Cluster(seeds) => {
                let client = seeds.builder().build()?;
                Ok(Commands::Cluster(client.get_async_connection().await?))
            }
        }
    }
}

pub(super) fn invalid_config(message: &'static str) -> BrokerError {
    BrokerError::Redis(redis::RedisError::from((
        redis::ErrorKind::InvalidClientConfig,
        message,
    )))
}

/// The broker's command connection. Clones share the underlying
/// connections.
#[derive(Clone)]
pub(super) enum Commands {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl fmt::Debug for Commands {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Single(_) => f.write_str("Commands::Single"),
            Self::Cluster(_) => f.write_str("Commands::Cluster"),
        }
    }
}

impl ConnectionLike for Commands {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

/// Runs a command, and once more if the connection had dropped: the
/// `ConnectionManager` (and the cluster connection, per node) reconnects in
/// the background, but the first call after a Redis restart still fails.
pub(super) async fn retry_once<T, F, Fut>(mut call: F) -> redis::RedisResult<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = redis::RedisResult<T>>,
{
    match call().await {
        Err(err) if err.is_connection_dropped() || err.is_io_error() => {
            tracing::debug!(cause = %err, "redis command failed on a dropped connection; retrying once");
            call().await
        }
        other => other,
    }
}

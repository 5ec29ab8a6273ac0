//! Where the bus under test runs: an in-process node (embedded), bus child
//! processes the simulator starts and stops (spawn), or nodes someone else
//! runs (external); plus the Redis behind them and the open-file budget.
//!
//! [`RunningTarget::start`] turns a scenario's [`Target`] and the command
//! line's [`TargetOptions`] into per-node WebSocket and HTTP URLs;
//! [`RunningTarget::stop`] shuts down whatever the simulator started.
//!
//! - [`spawn`]: finding the `bus` executable and running nodes as children.
//! - [`external`]: normalizing user-given URLs and checking them.
//! - [`probe`]: `GET /health` over plain HTTP (also used by the monitor).
//! - [`descriptors`]: whether a run's sockets fit in this process.
//! - `redis`: the Redis behind a started bus, its namespace, redacted URLs.
//! - `actuators`: fault actions on what the simulator started.
//! - [`proxy`]: the TCP proxy a network cut goes through.

mod actuators;
mod descriptors;
mod error;
mod external;
mod probe;
mod proxy;
mod redis;
mod spawn;
#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bus::config::{BrokerKind as BusBroker, BusConfig};
use bus::router::DeliveryFaults;
use bus::server::RunningServer;
use bus::state::AppState;
use futures_util::future::try_join_all;
use localredis::RedisServer;

pub use self::descriptors::{DESCRIPTOR_MARGIN, DescriptorCheck, descriptor_budget};
pub use self::error::TargetError;
pub use self::external::{Endpoint, normalize_url};
pub use self::probe::{HealthProbe, HealthResponse, ProbeError};
pub use self::proxy::Proxy;
pub use self::redis::redact_url;
use self::redis::{choose_redis, forget_namespace, unique_namespace};
pub use self::spawn::find_bus_binary;
use self::spawn::{BusNode, NodeSpec};
use crate::scenario::{BrokerKind, Target, TargetMode};

/// Connections one embedded node accepts: the simulator, not the node,
/// bounds the number of agents.
const EMBEDDED_MAX_CONNECTIONS: usize = 1_000_000;

/// Command-line settings that override or complete the scenario's target.
#[derive(Debug, Clone, Default)]
pub struct TargetOptions {
    /// `--redis`: the Redis to use instead of the scenario's `redis_url`.
    pub redis_url: Option<String>,
    /// `--target`: bus URLs; non-empty means external mode with these URLs,
    /// whatever the scenario says.
    pub urls: Vec<String>,
    /// The `bus` executable for spawn mode; when absent: `BUS_BIN`, the
    /// `bus` next to the running executable, then `bus` on `PATH`.
    pub bus_binary: Option<PathBuf>,
    /// HS256 secret the started nodes check agent tokens with; without it
    /// they run in development mode (identity from query parameters).
    pub jwt_secret: Option<String>,
    /// Start the private redis-server with an fsync'd append-only file, so a
    /// Redis restart loses nothing (for redis_restart faults).
    pub durable_redis: bool,
    /// Put a TCP proxy in front of every node, so a fault can cut the
    /// network (for network_cut faults).
    pub network_proxy: bool,
    /// TEST ONLY: faults an embedded node injects into its deliveries (the
    /// bus's hidden `--fault-*` flags), so tests can prove that the
    /// regression checks catch a misbehaving bus. None by default; ignored
    /// in the other modes.
    pub embedded_faults: DeliveryFaults,
}

/// The bus under test, running. Whatever the simulator started is stopped
/// by [`RunningTarget::stop`]; if that is never called (a panic, a failed
/// test), dropping it kills spawned nodes and the private redis-server.
#[derive(Debug)]
pub struct RunningTarget {
    /// `ws://ADDR/ws/connect` per node; agents are spread over them.
    pub ws_urls: Vec<String>,
    /// `http://ADDR` per node, in the order of `ws_urls`, for `/health` and
    /// REST.
    pub http_urls: Vec<String>,
    /// What the reports say the target was, e.g. "embedded bus on memory",
    /// "2 spawned bus nodes on redis://127.0.0.1:6379/" (no passwords).
    pub description: String,
    /// "memory", "redis", or what an external node reports ("unknown" if
    /// nothing).
    pub broker: String,
    /// The Redis behind the bus, when known, for the monitor's INFO polls.
    pub redis_url: Option<String>,
    /// Process ids of spawned nodes (empty in other modes), for CPU and
    /// memory sampling and process faults.
    pub bus_pids: Vec<u32>,
    /// Process id of the redis-server the simulator started, if it did.
    pub redis_pid: Option<u32>,
    /// The in-process node's state, to read queue and connection figures
    /// without going through HTTP.
    pub embedded: Option<AppState>,
    /// The Redis key namespace of the started nodes, unique per run so runs
    /// sharing a Redis never see each other's keys (`None` for external).
    pub namespace: Option<String>,
    /// Spawned nodes restarted during the run (a node kill): their counters
    /// began again, so the bus witness cannot compare them.
    restarted: std::sync::Mutex<std::collections::BTreeSet<usize>>,
    nodes: Nodes,
    redis: Option<Arc<Mutex<RedisServer>>>,
    /// One per node when the network can be cut; agents connect through it.
    proxies: Vec<Proxy>,
}

/// The handles of whatever runs the nodes.
#[derive(Debug)]
enum Nodes {
    Embedded(Box<RunningServer>),
    /// Each node with the spec that restarts it; `None` while killed.
    Spawned(tokio::sync::Mutex<Vec<(NodeSpec, Option<BusNode>)>>),
    External,
}

impl RunningTarget {
    /// Starts (or, in external mode, checks) the bus described by `target`
    /// and `options`.
    pub async fn start(target: &Target, options: &TargetOptions) -> Result<Self, TargetError> {
        let mode = if options.urls.is_empty() {
            target.mode
        } else {
            TargetMode::External
        };
        match mode {
            TargetMode::Embedded => Self::start_embedded(target, options).await,
            TargetMode::Spawn => Self::start_spawned(target, options).await,
            TargetMode::External => Self::start_external(target, options).await,
        }
    }

    async fn start_embedded(target: &Target, options: &TargetOptions) -> Result<Self, TargetError> {
        let redis = choose_redis(target, options).await?;
        let namespace = unique_namespace();
        let mut config = embedded_config(&target.bus_args)?;
        config.namespace = namespace.clone();
        config.node_id = Some("embedded".to_owned());
        config.jwt_secret = options.jwt_secret.clone();
        config.max_connections = EMBEDDED_MAX_CONNECTIONS;
        let faults = options.embedded_faults;
        config.fault_drop_ratio = faults.drop_ratio;
        config.fault_duplicate_ratio = faults.duplicate_ratio;
        config.fault_misroute_ratio = faults.misroute_ratio;
        config.fault_delay = faults.delay;
        if let Some(url) = &redis.url {
            config.broker = BusBroker::Redis;
            config.redis_url = url.clone();
        }
        let server = RunningServer::start(config)
            .await
            .map_err(TargetError::EmbeddedStart)?;
        Ok(Self {
            ws_urls: vec![server.ws_url()],
            http_urls: vec![server.http_url()],
            proxies: Vec::new(),
            description: format!("embedded bus on {}", redis.describe()),
            broker: target.broker.as_str().to_owned(),
            redis_url: redis.url.clone(),
            bus_pids: Vec::new(),
            redis_pid: redis.pid(),
            embedded: Some(server.state.clone()),
            namespace: Some(namespace),
            restarted: Default::default(),
            nodes: Nodes::Embedded(Box::new(server)),
            redis: redis.server.map(|r| Arc::new(Mutex::new(r))),
        }
        .with_proxies(options.network_proxy)
        .await)
    }

    async fn start_spawned(target: &Target, options: &TargetOptions) -> Result<Self, TargetError> {
        match (target.nodes, target.broker) {
            (0, _) => return Err(TargetError::NoNodes),
            (nodes @ 2.., BrokerKind::Memory) => {
                return Err(TargetError::MemoryBrokerNodes { nodes });
            }
            _ => {}
        }
        let binary = find_bus_binary(options.bus_binary.as_deref())?;
        let redis = choose_redis(target, options).await?;
        let namespace = unique_namespace();
        let specs: Vec<NodeSpec> = (0..target.nodes)
            .map(|i| NodeSpec {
                binary: binary.clone(),
                name: format!("node-{i}"),
                broker: target.broker.as_str(),
                redis_url: redis.url.clone(),
                namespace: namespace.clone(),
                jwt_secret: options.jwt_secret.clone(),
                listen: "127.0.0.1:0".to_owned(),
                extra_args: target.bus_args.clone(),
            })
            .collect();
        // On an error the nodes already started are dropped, which kills them.
        let nodes = try_join_all(specs.iter().map(BusNode::start)).await?;
        let count = nodes.len();
        Ok(Self {
            ws_urls: nodes.iter().map(BusNode::ws_url).collect(),
            http_urls: nodes.iter().map(BusNode::http_url).collect(),
            description: format!(
                "{count} spawned bus node{} on {}",
                if count == 1 { "" } else { "s" },
                redis.describe()
            ),
            broker: target.broker.as_str().to_owned(),
            redis_url: redis.url.clone(),
            bus_pids: nodes.iter().map(|node| node.pid).collect(),
            redis_pid: redis.pid(),
            embedded: None,
            namespace: Some(namespace),
            proxies: Vec::new(),
            restarted: Default::default(),
            nodes: Nodes::Spawned(tokio::sync::Mutex::new(
                specs
                    .into_iter()
                    .zip(nodes)
                    .map(|(mut spec, node)| {
                        spec.listen = node.addr.to_string();
                        (spec, Some(node))
                    })
                    .collect(),
            )),
            redis: redis.server.map(|r| Arc::new(Mutex::new(r))),
        }
        .with_proxies(options.network_proxy)
        .await)
    }

    async fn start_external(target: &Target, options: &TargetOptions) -> Result<Self, TargetError> {
        let urls = if options.urls.is_empty() {
            &target.urls
        } else {
            &options.urls
        };
        let (endpoints, broker) = external::connect(urls).await?;
        let ws_urls: Vec<String> = endpoints.iter().map(|e| e.ws_url.clone()).collect();
        Ok(Self {
            description: format!("external: {}", ws_urls.join(", ")),
            http_urls: endpoints.into_iter().map(|e| e.http_url).collect(),
            ws_urls,
            broker,
            redis_url: options
                .redis_url
                .clone()
                .or_else(|| target.redis_url.clone()),
            bus_pids: Vec::new(),
            redis_pid: None,
            embedded: None,
            namespace: None,
            restarted: Default::default(),
            nodes: Nodes::External,
            redis: None,
            proxies: Vec::new(),
        })
    }

    /// Number of bus nodes agents are spread over.
    pub fn node_count(&self) -> usize {
        self.ws_urls.len()
    }

    /// Whether spawned node `index` was restarted during the run.
    pub fn was_restarted(&self, index: usize) -> bool {
        self.restarted.lock().expect("lock").contains(&index)
    }

    /// Stops what the simulator started: the embedded node (graceful, its
    /// connections closed with 1001), spawned nodes (SIGTERM, SIGKILL after
    /// 10 s) and the private redis-server. External nodes are left alone.
    /// Everything is stopped even when one part fails; the first error is
    /// returned.
    /// Stops what the simulator started, then deletes every key of the
    /// run's namespace from a Redis it did not start (one it started is
    /// stopped and its files removed), so a run leaves nothing behind.
    pub async fn stop(self) -> Result<(), TargetError> {
        let Self {
            nodes,
            redis,
            redis_url,
            namespace,
            embedded,
            ..
        } = self;
        // The node's last handle goes before its Redis: a router still
        // alive would log reconnect attempts to the Redis stopped below.
        drop(embedded);
        let result = match nodes {
            Nodes::Embedded(server) => server.stop().await.map_err(TargetError::EmbeddedStop),
            Nodes::Spawned(nodes) => {
                let nodes = nodes.into_inner().into_iter().filter_map(|(_, n)| n);
                let stopped = futures_util::future::join_all(nodes.map(BusNode::stop));
                stopped
                    .await
                    .into_iter()
                    .find_map(Result::err)
                    .map_or(Ok(()), Err)
            }
            Nodes::External => Ok(()),
        };
        match (redis, redis_url, namespace) {
            (Some(server), _, _) => server.lock().expect("redis lock").stop(),
            (None, Some(url), Some(namespace)) => {
                if let Err(e) = forget_namespace(&url, &namespace).await {
                    tracing::warn!(cause = %e, %namespace, "could not delete the run's keys");
                }
            }
            _ => {}
        }
        result
    }
}

/// The embedded node's configuration: `bus` defaults plus the scenario's
/// `bus_args`.
fn embedded_config(bus_args: &[String]) -> Result<BusConfig, TargetError> {
    if bus_args.is_empty() {
        return Ok(BusConfig::embedded_memory());
    }
    use clap::Parser;
    let args = std::iter::once("bus").chain(bus_args.iter().map(String::as_str));
    let mut config = BusConfig::try_parse_from(args).map_err(|e| {
        TargetError::BusArgs(e.to_string().lines().next().unwrap_or_default().to_owned())
    })?;
    config.broker = BusBroker::Memory;
    config.listen = "127.0.0.1:0".parse().expect("valid address");
    Ok(config)
}

/// The bus's counts of one queue: read in process for an embedded node,
/// through `GET /queues/{workspace}/{queue}` otherwise.
pub async fn queue_stats(
    target: &RunningTarget,
    workspace: &str,
    queue: &str,
) -> Result<bus::broker::QueueStats, String> {
    if let Some(state) = &target.embedded {
        let scope = bus::message::names::Scope {
            workspace,
            agent: "sim",
        };
        let name = bus::message::names::resolve_queue(scope, queue).map_err(|e| e.to_string())?;
        return state
            .router
            .queue_stats(&name)
            .await
            .map_err(|e| e.to_string());
    }
    let http = target.http_urls.first().ok_or("no bus node")?;
    let url = format!("{}/queues/{workspace}/{queue}", http.trim_end_matches('/'));
    let (status, body) = HealthProbe::new(std::time::Duration::from_secs(5))
        .get(&url)
        .await
        .map_err(|e| e.to_string())?;
    if status != 200 {
        return Err(format!(
            "{url}: HTTP {status}: {}",
            String::from_utf8_lossy(&body)
        ));
    }
    #[derive(serde::Deserialize)]
    struct Answer {
        stats: bus::broker::QueueStats,
    }
    serde_json::from_slice::<Answer>(&body)
        .map(|a| a.stats)
        .map_err(|e| format!("{url}: {e}"))
}

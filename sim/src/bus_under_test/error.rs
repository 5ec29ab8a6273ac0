//! `TargetError`: every way starting, reaching or stopping the bus under test can fail.

use std::path::PathBuf;

use bus::server::ServerError;

/// What went wrong with the bus under test; each variant names the part
/// that failed and, where there is one, the fix.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// The in-process bus could not start (bad config, Redis unreachable).
    #[error("the embedded bus did not start: {0}")]
    EmbeddedStart(#[source] ServerError),
    /// The in-process bus failed while shutting down.
    #[error("the embedded bus did not stop cleanly: {0}")]
    EmbeddedStop(#[source] ServerError),
    /// Several nodes on the memory broker would not see each other's
    /// messages, so such a run would measure nothing useful.
    #[error(
        "{nodes} bus nodes on the memory broker cannot share messages: \
         use target.broker = \"redis\" for more than one node"
    )]
    MemoryBrokerNodes {
        /// The requested node count.
        nodes: u32,
    },
    /// Spawn mode with `nodes = 0`.
    #[error("target.nodes must be at least 1")]
    NoNodes,
    /// The scenario wants Redis without a URL and there is no redis-server
    /// to start a private one.
    #[error(
        "the scenario uses broker = \"redis\" without a redis_url, and {0}: \
         or pass --redis URL / set target.redis_url"
    )]
    RedisServerMissing(&'static str),
    /// A private redis-server was found but did not start.
    #[error("could not start a private redis-server: {0}")]
    RedisStart(String),
    /// Spawn mode without a `bus` executable.
    #[error(
        "the bus binary was not found (looked at: {looked}). Build it with \
         `cargo build --release -p bus` and put it next to the sim binary or on \
         PATH, or point BUS_BIN at it"
    )]
    BusBinaryNotFound {
        /// Every place searched, in order.
        looked: String,
    },
    /// The operating system refused to start a bus process.
    #[error("cannot start bus node {node} from {}: {source}", binary.display())]
    Spawn {
        /// The node's name (`node-<i>`).
        node: String,
        /// The executable used.
        binary: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A bus process ended before printing its listening address.
    #[error("bus node {node} exited before it was ready ({status}); its last log lines:\n{log}")]
    ExitedEarly {
        /// The node's name.
        node: String,
        /// Its exit status.
        status: String,
        /// The end of its stderr.
        log: String,
    },
    /// A bus process did not become ready in time.
    #[error(
        "bus node {node} did not print `bus listening on ADDR` within {timeout_s} s; \
         its last log lines:\n{log}"
    )]
    NotReady {
        /// The node's name.
        node: String,
        /// How long we waited.
        timeout_s: u64,
        /// The end of its stderr.
        log: String,
    },
    /// Waiting for a bus process to exit failed.
    #[error("stopping bus node {node} failed: {source}")]
    Stop {
        /// The node's name.
        node: String,
        /// Why.
        source: std::io::Error,
    },
    /// External mode with no URL anywhere.
    #[error("external mode needs bus URLs: set target.urls in the scenario or pass --target URL")]
    NoUrls,
    /// A URL that does not name a bus endpoint.
    #[error(
        "`{url}` is not a bus URL: {reason} (expected ws://host:port, \
         ws://host:port/ws/connect or http://host:port)"
    )]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A bus endpoint did not answer `GET /health` with a health report.
    #[error("the bus at {url} is not reachable: GET {health_url} failed: {reason}")]
    Unreachable {
        /// The URL as given.
        url: String,
        /// The health URL tried.
        health_url: String,
        /// What happened.
        reason: String,
    },
    /// The scenario's `target.bus_args` are not valid `bus` flags.
    #[error("target.bus_args: {0}")]
    BusArgs(String),
    /// A fault asked for something this target cannot do.
    #[error("cannot inject the fault: {0}")]
    NoFaultControl(&'static str),
}

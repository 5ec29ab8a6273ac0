//! `BusConfig`: every setting of a bus node, from CLI flags or the
//! environment, with the defaults documented in `bus --help`.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{CommandFactory, FromArgMatches, Parser, ValueEnum};

use crate::broker::RetryPolicy;
use crate::health::HealthThresholds;
use crate::message::history::{HistoryRule, MAX_HISTORY_RULES};
use crate::router::{DeliveryFaults, RouterConfig};

/// Which broker a node runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BrokerKind {
    /// Redis (production; several nodes share one Redis).
    Redis,
    /// In process (one node, nothing persisted; for trying things out).
    Memory,
}

fn duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (use e.g. 500ms, 30s, 2m)"))
}

/// A bus node: WebSocket endpoint for agents, REST for operators, on Redis.
#[derive(Debug, Clone, Parser)]
#[command(name = "bus", version, about, long_about = None)]
pub struct BusConfig {
    /// Address to listen on.
    #[arg(long, env = "BUS_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Broker backend.
    #[arg(long, env = "BUS_BROKER", value_enum, default_value = "redis")]
    pub broker: BrokerKind,

    /// Redis URL (for `--broker redis`); with `--redis-cluster`, a
    /// comma-separated list of seed node URLs.
    #[arg(
        long = "redis",
        env = "REDIS_URL",
        default_value = "redis://127.0.0.1:6379/"
    )]
    pub redis_url: String,

    /// `--redis` is a Redis Cluster: keys and channels are spread over its
    /// shards, exact channels use sharded pub/sub (Redis 7+). See
    /// docs/CLUSTER.md.
    #[arg(
        long,
        env = "BUS_REDIS_CLUSTER",
        value_parser = clap::builder::FalseyValueParser::new()
    )]
    pub redis_cluster: bool,

    /// Prefix of every Redis key and channel; nodes of one bus share it.
    #[arg(long, env = "BUS_NAMESPACE", default_value = "bus")]
    pub namespace: String,

    /// This node's name in logs, metrics and /health (default: random).
    #[arg(long, env = "BUS_NODE_ID")]
    pub node_id: Option<String>,

    /// HS256 secret for agent tokens. Without it the bus runs in development
    /// mode: identity comes from the `agent` and `workspace` query
    /// parameters, unchecked.
    #[arg(long, env = "BUS_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,

    /// Bearer token for the REST operator endpoints. Without it (and without
    /// a JWT secret) they are open; with only a JWT secret they take a token
    /// with `"admin": true`.
    #[arg(long, env = "BUS_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,

    /// Health probes slower than this make the node degraded.
    #[arg(long, env = "BUS_HEALTH_WARNING", value_parser = duration, default_value = "50ms")]
    pub health_warning: Duration,

    /// Health probes slower than this make the node unhealthy.
    #[arg(long, env = "BUS_HEALTH_CRITICAL", value_parser = duration, default_value = "200ms")]
    pub health_critical: Duration,

    /// How often the background health check runs.
    #[arg(long, env = "BUS_HEALTH_INTERVAL", value_parser = duration, default_value = "1s")]
    pub health_interval: Duration,

    /// How often the queue gauges of `/metrics` (`bus_queues`,
    /// `bus_queue_messages`) are refreshed. A refresh reads every queue's
    /// depth from the broker, so it runs in the background rather than on
    /// every scrape.
    #[arg(long, env = "BUS_QUEUE_GAUGE_INTERVAL", value_parser = duration, default_value = "10s")]
    pub queue_gauge_interval: Duration,

    /// How often the bus pings each WebSocket client.
    #[arg(long, env = "BUS_PING_INTERVAL", value_parser = duration, default_value = "30s")]
    pub ping_interval: Duration,

    /// A client silent for this long is disconnected (close code 4000).
    #[arg(long, env = "BUS_PING_TIMEOUT", value_parser = duration, default_value = "60s")]
    pub ping_timeout: Duration,

    /// Messages at least this many bytes long are compressed (zstd) in
    /// Redis: published, kept in history and stored in queues compressed,
    /// opened again before any agent sees them. 0 turns it off; a message
    /// that does not shrink travels as it is. Nodes read both forms
    /// whatever this says. The memory broker never compresses.
    #[arg(long, env = "BUS_COMPRESS_OVER", default_value_t = crate::broker::redis::DEFAULT_COMPRESS_OVER, value_name = "BYTES")]
    pub compress_over: usize,

    /// Largest WebSocket frame accepted; larger ones close with 1009.
    #[arg(long, env = "BUS_MAX_FRAME_BYTES", default_value_t = 1 << 20)]
    pub max_frame_bytes: usize,

    /// Most concurrent WebSocket connections on this node (503 beyond).
    #[arg(long, env = "BUS_MAX_CONNECTIONS", default_value_t = 50_000)]
    pub max_connections: usize,

    /// Most connections one agent may hold at once (0: unlimited).
    #[arg(long, env = "BUS_MAX_CONNECTIONS_PER_AGENT", default_value_t = 0)]
    pub max_connections_per_agent: usize,

    /// Most frames per second one connection may send (0: unlimited);
    /// beyond it requests get `rate_limited` errors.
    #[arg(long, env = "BUS_MAX_FRAMES_PER_SEC", default_value_t = 0)]
    pub max_frames_per_sec: u32,

    /// Frames queued for one client before it counts as a slow consumer
    /// and is disconnected (close code 4001).
    #[arg(long, env = "BUS_OUTBOUND_QUEUE", default_value_t = 4096)]
    pub outbound_queue: usize,

    /// Bytes of frames queued for one client before it counts as a slow
    /// consumer (close code 4001). A frame is always taken by an empty
    /// queue, so a connection holds at most this plus one frame. Keep it
    /// several times the largest message agents publish: a client that
    /// reads normally can still have two such frames queued at once.
    #[arg(long, env = "BUS_OUTBOUND_BYTES", default_value_t = 4 << 20)]
    pub outbound_bytes: usize,

    /// A client whose socket takes no batch of frames for this long is a
    /// slow consumer: closed with 4001 and its socket dropped, whether or
    /// not it ever reads again.
    #[arg(long, env = "BUS_WRITE_TIMEOUT", value_parser = duration, default_value = "10s")]
    pub write_timeout: Duration,

    /// A TCP connection that has not sent a complete HTTP request (the
    /// WebSocket upgrade included) within this time is closed.
    #[arg(long, env = "BUS_HANDSHAKE_TIMEOUT", value_parser = duration, default_value = "5s")]
    pub handshake_timeout: Duration,

    /// Longest a REST request may take, its body included (408 beyond):
    /// a client that trickles a body cannot hold a connection longer. A
    /// waiting claim answers a second before it.
    #[arg(long, env = "BUS_REQUEST_TIMEOUT", value_parser = duration, default_value = "40s")]
    pub request_timeout: Duration,

    /// Most topics one connection may subscribe to, besides its inbox,
    /// workspace and broadcast channels (`limit_exceeded` beyond).
    #[arg(long, env = "BUS_MAX_TOPICS_PER_CONNECTION", default_value_t = 1000)]
    pub max_topics_per_connection: usize,

    /// Most patterns one connection may subscribe to.
    #[arg(long, env = "BUS_MAX_PATTERNS_PER_CONNECTION", default_value_t = 100)]
    pub max_patterns_per_connection: usize,

    /// Most topic and pattern subscriptions the connections of one
    /// workspace hold together on this node.
    #[arg(
        long,
        env = "BUS_MAX_SUBSCRIPTIONS_PER_WORKSPACE",
        default_value_t = 100_000
    )]
    pub max_subscriptions_per_workspace: usize,

    /// Most distinct patterns this node holds at the broker. Redis matches
    /// every publish against every pattern of every node, so patterns cost
    /// all workspaces' publishes; the budget keeps that cost bounded.
    #[arg(long, env = "BUS_MAX_PATTERNS", default_value_t = 2_000)]
    pub max_patterns: usize,

    /// Topics that keep history, `GLOB=N[,T]` (repeatable): the topics of
    /// `workspace/topic` matching GLOB keep their last N messages (at most
    /// 100,000), and none older than T when given (at most 24h), in Redis
    /// beside their channel; their messages carry offsets, and a subscriber
    /// can resume from its last one (docs/PROTOCOL.md, "Topic history").
    /// The first matching rule wins. Every node of a bus must have the
    /// same rules. E.g. `--history 'acme/orders.*=1000,10m'`; in
    /// BUS_HISTORY, rules separated by `;`.
    #[arg(
        long = "history",
        env = "BUS_HISTORY",
        value_delimiter = ';',
        value_name = "GLOB=N[,T]"
    )]
    pub history: Vec<HistoryRule>,

    /// Most distinct patterns the connections of one workspace hold together
    /// on this node: a share of `--max-patterns`, so that one workspace
    /// cannot take the whole node's budget from the others.
    #[arg(long, env = "BUS_MAX_PATTERNS_PER_WORKSPACE", default_value_t = 500)]
    pub max_patterns_per_workspace: usize,

    /// Most queues one workspace may create (`limit_exceeded` for an
    /// enqueue to one more). Inboxes count too: one per agent that was sent a
    /// stored direct message.
    #[arg(long, env = "BUS_MAX_QUEUES_PER_WORKSPACE", default_value_t = 100_000)]
    pub max_queues_per_workspace: u64,

    /// How long shutdown waits for connections to drain.
    #[arg(long, env = "BUS_SHUTDOWN_TIMEOUT", value_parser = duration, default_value = "10s")]
    pub shutdown_timeout: Duration,

    /// How long a claimed queue message stays invisible before reclaim.
    #[arg(long, env = "BUS_VISIBILITY_TIMEOUT", value_parser = duration, default_value = "30s")]
    pub visibility_timeout: Duration,

    /// Deliveries of one queue message before it is dead-lettered.
    #[arg(long, env = "BUS_MAX_ATTEMPTS", default_value_t = 5)]
    pub max_attempts: u32,

    /// First retry delay of a rejected message (doubles each attempt).
    #[arg(long, env = "BUS_RETRY_BACKOFF", value_parser = duration, default_value = "100ms")]
    pub retry_backoff: Duration,

    /// Longest retry delay.
    #[arg(long, env = "BUS_MAX_RETRY_BACKOFF", value_parser = duration, default_value = "30s")]
    pub max_retry_backoff: Duration,

    /// Most messages one queue holds (all states); enqueues beyond get
    /// `queue_full`.
    #[arg(long, env = "BUS_QUEUE_MAX_LEN", default_value_t = 1_000_000)]
    pub queue_max_len: u64,

    /// Most messages one agent's inbox holds.
    #[arg(long, env = "BUS_INBOX_MAX_LEN", default_value_t = 10_000)]
    pub inbox_max_len: u64,

    // The delivery faults (see `router::DeliveryFaults`): hidden flags of a
    // bus built with the `test-faults` feature, plain fields otherwise (so
    // embedding programs compile either way; `validate` refuses them when
    // the feature is off).
    /// TEST ONLY: drop this fraction of deliveries to agents.
    #[cfg_attr(feature = "test-faults", arg(long, hide = true, default_value_t = 0.0))]
    #[cfg_attr(not(feature = "test-faults"), arg(skip))]
    pub fault_drop_ratio: f64,

    /// TEST ONLY: deliver this fraction twice.
    #[cfg_attr(feature = "test-faults", arg(long, hide = true, default_value_t = 0.0))]
    #[cfg_attr(not(feature = "test-faults"), arg(skip))]
    pub fault_duplicate_ratio: f64,

    /// TEST ONLY: also deliver this fraction to an agent that did not ask.
    #[cfg_attr(feature = "test-faults", arg(long, hide = true, default_value_t = 0.0))]
    #[cfg_attr(not(feature = "test-faults"), arg(skip))]
    pub fault_misroute_ratio: f64,

    /// TEST ONLY: add this delay to every delivery.
    #[cfg_attr(
        feature = "test-faults",
        arg(long, hide = true, value_parser = duration, default_value = "0ms")
    )]
    #[cfg_attr(not(feature = "test-faults"), arg(skip))]
    pub fault_delay: Duration,
}

impl Default for BusConfig {
    /// The defaults of `bus --help`, ignoring the environment.
    fn default() -> Self {
        let without_env = Self::command().mut_args(|arg| arg.env(None::<&str>));
        let matches = without_env.get_matches_from(["bus"]);
        Self::from_arg_matches(&matches).expect("the defaults parse")
    }
}

impl BusConfig {
    /// An in-process node on the memory broker, listening anywhere.
    pub fn embedded_memory() -> Self {
        Self {
            broker: BrokerKind::Memory,
            listen: "127.0.0.1:0".parse().expect("valid address"),
            ..Self::default()
        }
    }

    /// The health checker's thresholds from `--health-warning` and
    /// `--health-critical`.
    pub fn thresholds(&self) -> HealthThresholds {
        HealthThresholds {
            warning: self.health_warning,
            critical: self.health_critical,
        }
    }

    /// The router's settings (retries, visibility, queue and inbox bounds,
    /// faults) from their flags.
    pub fn router(&self) -> RouterConfig {
        RouterConfig {
            retry: RetryPolicy {
                max_attempts: self.max_attempts,
                base_backoff: self.retry_backoff,
                max_backoff: self.max_retry_backoff,
            },
            visibility: self.visibility_timeout,
            queue_max_len: self.queue_max_len,
            inbox_max_len: self.inbox_max_len,
            max_patterns: self.max_patterns,
            max_queues_per_workspace: self.max_queues_per_workspace,
            faults: self.faults(),
        }
    }

    /// The delivery faults the `fault_*` fields ask for.
    pub fn faults(&self) -> DeliveryFaults {
        DeliveryFaults {
            drop_ratio: self.fault_drop_ratio,
            duplicate_ratio: self.fault_duplicate_ratio,
            misroute_ratio: self.fault_misroute_ratio,
            delay: self.fault_delay,
        }
    }

    /// Checks settings that clap cannot.
    pub fn validate(&self) -> Result<(), String> {
        if self.health_warning > self.health_critical {
            return Err(format!(
                "--health-warning ({:?}) must not exceed --health-critical ({:?})",
                self.health_warning, self.health_critical
            ));
        }
        let faults = [
            self.fault_drop_ratio,
            self.fault_duplicate_ratio,
            self.fault_misroute_ratio,
        ];
        if faults.iter().any(|r| !(0.0..=1.0).contains(r)) {
            return Err("fault ratios must be between 0 and 1".into());
        }
        if !cfg!(feature = "test-faults") && !self.faults().is_none() {
            return Err(
                "delivery faults need a bus built with the `test-faults` cargo feature".into(),
            );
        }
        if self.ping_timeout <= self.ping_interval {
            return Err("--ping-timeout must be longer than --ping-interval".into());
        }
        if self.outbound_queue == 0 || self.max_connections == 0 || self.max_attempts == 0 {
            return Err(
                "--outbound-queue, --max-connections and --max-attempts must be at least 1".into(),
            );
        }
        if self.history.len() > MAX_HISTORY_RULES {
            return Err(format!("at most {MAX_HISTORY_RULES} --history rules"));
        }
        if self.outbound_bytes == 0 || self.write_timeout.is_zero() {
            return Err("--outbound-bytes and --write-timeout must be above zero".into());
        }
        if self.handshake_timeout.is_zero() || self.queue_gauge_interval.is_zero() {
            return Err("--handshake-timeout and --queue-gauge-interval must be above zero".into());
        }
        if self.request_timeout.is_zero() {
            return Err("--request-timeout must be above zero".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_documented_ones() {
        let c = BusConfig::default();
        assert_eq!(c.health_warning, Duration::from_millis(50));
        assert_eq!(c.health_critical, Duration::from_millis(200));
        assert_eq!(c.ping_interval, Duration::from_secs(30));
        assert_eq!(c.ping_timeout, Duration::from_secs(60));
        assert_eq!(c.broker, BrokerKind::Redis);
        assert!(c.validate().is_ok());
    }

    #[test]
    fn flags_parse_and_validate() {
        let c = BusConfig::try_parse_from([
            "bus",
            "--broker",
            "memory",
            "--listen",
            "127.0.0.1:0",
            "--health-warning",
            "300ms",
        ])
        .unwrap();
        assert_eq!(c.broker, BrokerKind::Memory);
        assert!(c.validate().unwrap_err().contains("--health-warning"));
        assert!(BusConfig::try_parse_from(["bus", "--ping-interval", "soon"]).is_err());
    }

    #[test]
    fn zero_intervals_and_timeouts_are_refused() {
        for (flag, value, said) in [
            ("--queue-gauge-interval", "0s", "--queue-gauge-interval"),
            ("--handshake-timeout", "0s", "--handshake-timeout"),
            ("--request-timeout", "0s", "--request-timeout"),
            ("--write-timeout", "0s", "--write-timeout"),
        ] {
            let c = BusConfig::try_parse_from(["bus", flag, value]).unwrap();
            let err = c.validate().unwrap_err();
            assert!(err.contains(said), "{flag} {value}: {err}");
        }
        assert_eq!(BusConfig::default().outbound_bytes, 4 << 20);
    }

    #[test]
    fn delivery_faults_exist_only_with_the_test_faults_feature() {
        let with_flag = BusConfig::try_parse_from(["bus", "--fault-drop-ratio", "0.1"]);
        assert_eq!(with_flag.is_ok(), cfg!(feature = "test-faults"));
        let embedded = BusConfig {
            fault_drop_ratio: 0.1,
            ..BusConfig::default()
        };
        assert_eq!(embedded.validate().is_ok(), cfg!(feature = "test-faults"));
        assert!(BusConfig::default().faults().is_none());
    }

    #[test]
    fn cluster_mode_takes_a_seed_list() {
        assert!(!BusConfig::default().redis_cluster);
        let c = BusConfig::try_parse_from([
            "bus",
            "--redis-cluster",
            "--redis",
            "redis://10.0.0.1:7000,redis://10.0.0.2:7000",
        ])
        .unwrap();
        assert!(c.redis_cluster);
        assert_eq!(c.redis_url, "redis://10.0.0.1:7000,redis://10.0.0.2:7000");
    }
}

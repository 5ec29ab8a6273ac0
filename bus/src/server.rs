//! Assembling and running a node: `build_state` connects the broker and
//! wires the parts, `app` is the HTTP router, `run` serves a bound listener
//! until the shutdown future completes, then drains connections.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::extract::Request;
use axum::routing::get;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::auth::Auth;
use crate::broker::memory::MemoryBroker;
use crate::broker::redis::{RedisBroker, RedisOptions};
use crate::broker::{Broker, BrokerError};
use crate::config::{BrokerKind, BusConfig};
use crate::health::HealthChecker;
use crate::protocol::close;
use crate::registry::Registry;
use crate::router::{MessageRouter, RouterError};
use crate::state::{AppState, Shared};
use crate::telemetry::Telemetry;

/// Why a node could not start or stopped serving.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A setting `BusConfig::validate` refused.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The configured broker could not be reached at start.
    #[error("cannot reach the broker at {url}: {source}")]
    Broker {
        /// The broker URL, as configured.
        url: String,
        /// What the broker said.
        source: BrokerError,
    },
    /// The node's broker subscription could not be opened.
    #[error(transparent)]
    Router(#[from] RouterError),
    /// Binding or serving the listener failed.
    #[error("serving HTTP failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Connects the configured broker and builds the node's shared state.
pub async fn build_state(config: BusConfig) -> Result<AppState, ServerError> {
    config.validate().map_err(ServerError::Config)?;
    let broker: Arc<dyn Broker> = match config.broker {
        BrokerKind::Memory => Arc::new(MemoryBroker::new()),
        BrokerKind::Redis => {
            let options = RedisOptions::new(&config.redis_url)
                .cluster_mode(config.redis_cluster)
                .namespace(&config.namespace)
                .compress_over(Some(config.compress_over).filter(|&n| n > 0));
            let broker =
                RedisBroker::connect_with(options)
                    .await
                    .map_err(|source| ServerError::Broker {
                        url: config.redis_url.clone(),
                        source,
                    })?;
            Arc::new(broker)
        }
    };
    build_state_on(config, broker).await
}

/// Builds a node on a broker the caller made (several embedded nodes can
/// share one memory broker this way).
pub async fn build_state_on(
    config: BusConfig,
    broker: Arc<dyn Broker>,
) -> Result<AppState, ServerError> {
    let node = config
        .node_id
        .clone()
        .unwrap_or_else(|| format!("node-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]));
    let router =
        MessageRouter::with_history(broker, config.router(), config.history.clone()).await?;
    let health = HealthChecker::new(router.clone(), node.clone(), config.thresholds());
    let auth = Auth::new(config.jwt_secret.as_deref(), config.admin_token.as_deref());
    Ok(AppState::new(Shared {
        telemetry: Telemetry::new(&node),
        node,
        router,
        health,
        registry: Registry::default(),
        auth,
        shutdown: CancellationToken::new(),
        config,
    }))
}

/// The node's HTTP routes: `/ws/connect` and the REST endpoints.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/ws/connect", get(crate::ws::connect))
        .merge(crate::rest::routes(state.clone()))
        .with_state(state)
}

/// Serves `listener` until `shutdown` completes; then refuses new
/// connections, closes every WebSocket with 1001 (after flushing what is
/// queued for it), and waits up to the shutdown timeout for them to go.
pub async fn run(
    listener: TcpListener,
    config: BusConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let state = build_state(config).await?;
    serve(listener, state, shutdown).await
}

/// [`run`] on a state built by the caller.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let config = &state.config;
    if config.outbound_bytes < 2 * config.max_frame_bytes {
        tracing::warn!(
            outbound_bytes = config.outbound_bytes,
            max_frame_bytes = config.max_frame_bytes,
            "--outbound-bytes is under twice --max-frame-bytes: a client that reads normally may be closed as a slow consumer when two large messages are queued for it at once"
        );
    }
    let probe = crate::ws::DeliveryProbe::start(&state);
    state.health.attach(probe.clone());
    let health_loop = state
        .health
        .spawn(state.config.health_interval, state.shutdown.clone());
    let gauges = tokio::spawn(queue_gauges(state.clone()));
    let app = app(state.clone());
    let connections = TaskTracker::new();
    let stop_http = CancellationToken::new();
    tokio::pin!(shutdown);
    loop {
        let (tcp, remote) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) if connection_gone(&err) => {
                    // That one client left before it was accepted.
                    tracing::debug!(cause = %err, "accept failed");
                    continue;
                }
                Err(err) => {
                    // Out of file descriptors and the like: refuse for a
                    // moment rather than spin.
                    tracing::warn!(cause = %err, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
        };
        connections.spawn(serve_connection(
            tcp,
            remote,
            app.clone(),
            state.config.handshake_timeout,
            stop_http.clone(),
        ));
    }
    drop(listener);
    drain(&state).await;
    stop_http.cancel();
    connections.close();
    if tokio::time::timeout(state.config.shutdown_timeout, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!("HTTP requests still running after the shutdown timeout");
    }
    state.shutdown.cancel();
    // The probe holds the node's state; it lets go now, not when Redis may
    // already be gone.
    probe.stop();
    let _ = health_loop.await;
    let _ = gauges.await;
    Ok(())
}

/// Whether an accept error concerns only the connection being accepted (it
/// was reset or aborted before the accept), so the next accept may follow
/// at once.
fn connection_gone(err: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset, Interrupted};
    matches!(
        err.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset | Interrupted
    )
}

/// Refreshes the queue gauges every `--queue-gauge-interval` until the
/// node shuts down.
async fn queue_gauges(state: AppState) {
    let mut ticks = tokio::time::interval(state.config.queue_gauge_interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = state.shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        match state.router.all_queue_stats().await {
            Ok(queues) => {
                let stats: Vec<_> = queues.into_iter().map(|(_, s)| s).collect();
                state.telemetry.queue_depths(&stats);
            }
            Err(err) => tracing::debug!(cause = %err, "queue gauges not refreshed"),
        }
    }
}

/// A pause after a failed accept (e.g. out of file descriptors).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Serves HTTP/1 on one accepted socket: a request whose head has not
/// fully arrived within `handshake_timeout` of the connection (or of the
/// previous response) closes it, so idle and half-sent connections cannot
/// hold a socket; an upgrade hands the socket to the WebSocket session.
async fn serve_connection(
    tcp: TcpStream,
    remote: SocketAddr,
    app: Router,
    handshake_timeout: Duration,
    stop: CancellationToken,
) {
    // Small frames must not wait for Nagle's algorithm (40 ms with delayed
    // acks on the other side).
    if let Err(err) = tcp.set_nodelay(true) {
        tracing::debug!(cause = %err, "could not set TCP_NODELAY");
    }
    let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(remote));
        app.clone().oneshot(request)
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(handshake_timeout);
    let connection = builder
        .serve_connection(TokioIo::new(tcp), service)
        .with_upgrades();
    tokio::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(err) = result {
                tracing::debug!(cause = %err, %remote, "HTTP connection ended with an error");
            }
        }
        _ = stop.cancelled() => {
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        }
    }
}

async fn drain(state: &AppState) {
    tracing::info!(connections = state.registry.len(), "shutting down");
    state.shutdown.cancel();
    state
        .registry
        .close_all(close::GOING_AWAY, "the bus is shutting down");
    let timeout = state.config.shutdown_timeout;
    if tokio::time::timeout(timeout, state.registry.wait_empty())
        .await
        .is_err()
    {
        tracing::warn!(
            left = state.registry.len(),
            ?timeout,
            "connections still open after the shutdown timeout"
        );
    }
}

/// A node running in the background of this process (for embedding and
/// tests): bound, serving, stopped by [`RunningServer::stop`].
#[derive(Debug)]
pub struct RunningServer {
    /// Where it listens (the real port when `listen` asked for 0).
    pub addr: SocketAddr,
    /// The node's shared state, for tests and embedders that look inside.
    pub state: AppState,
    stop: CancellationToken,
    task: JoinHandle<Result<(), ServerError>>,
}

impl RunningServer {
    /// Binds `config.listen` (port 0 for any free port) and serves.
    pub async fn start(config: BusConfig) -> Result<Self, ServerError> {
        let state = build_state(config).await?;
        Self::start_with_state(state).await
    }

    /// Binds `state.config.listen` and serves a node built by the caller
    /// (several nodes on one memory broker, a custom broker).
    pub async fn start_with_state(state: AppState) -> Result<Self, ServerError> {
        let listener = TcpListener::bind(state.config.listen).await?;
        let addr = listener.local_addr()?;
        let stop = CancellationToken::new();
        let signal = stop.clone();
        let task = tokio::spawn(serve(listener, state.clone(), async move {
            signal.cancelled().await
        }));
        Ok(Self {
            addr,
            state,
            stop,
            task,
        })
    }

    /// `ws://ADDR/ws/connect`.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws/connect", self.addr)
    }

    /// `http://ADDR`, for REST.
    pub fn http_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Shuts down gracefully and waits for it.
    pub async fn stop(self) -> Result<(), ServerError> {
        self.stop.cancel();
        match self.task.await {
            Ok(result) => result,
            Err(join) => Err(ServerError::Io(std::io::Error::other(join))),
        }
    }

    /// How long a graceful stop may take at most.
    pub fn shutdown_timeout(&self) -> Duration {
        self.state.config.shutdown_timeout
    }
}

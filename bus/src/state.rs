//! `AppState`: everything a node's handlers share, behind one cheap handle.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::auth::Auth;
use crate::config::BusConfig;
use crate::health::HealthChecker;
use crate::registry::Registry;
use crate::router::MessageRouter;
use crate::telemetry::Telemetry;

/// The shared state of one bus node. Clones are cheap.
#[derive(Debug, Clone)]
pub struct AppState(Arc<Shared>);

/// What every handler of a node shares, built once by `server::build_state`.
#[derive(Debug)]
pub struct Shared {
    /// The settings the node was started with.
    pub config: BusConfig,
    /// This node's name in /health, /metrics and logs.
    pub node: String,
    /// Publish, subscriptions, direct messages and queues.
    pub router: MessageRouter,
    /// The node probing itself, for `/health`.
    pub health: HealthChecker,
    /// The node's live connections.
    pub registry: Registry,
    /// How agents and operators are authenticated.
    pub auth: Auth,
    /// The node's metrics.
    pub telemetry: Telemetry,
    /// Cancelled when the node starts shutting down.
    pub shutdown: CancellationToken,
}

impl AppState {
    /// Wraps the shared parts in one cheap handle.
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

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

#[derive(Debug)]
pub struct Shared {
    pub config: BusConfig,
    /// This node's name in /health, /metrics and logs.
    pub node: String,
    pub router: MessageRouter,
    pub health: HealthChecker,
    pub registry: Registry,
    pub auth: Auth,
    pub telemetry: Telemetry,
    /// Cancelled when the node starts shutting down.
    pub shutdown: CancellationToken,
}

impl AppState {
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

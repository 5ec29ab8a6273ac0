//! The agent bus: a message bus for software agents on Redis.
//!
//! Data flow: agent (WebSocket) → `ws` handler → [`router`] → [`broker`] →
//! every bus node's subscription listener → `ws` connection registry →
//! subscribed agents.
//!
//! Modules, each using only the ones above it in this list:
//!
//! - [`message`]: `AgentMessage`, `DeliveryMode`, wire and broker names;
//!   [`protocol`]: the WebSocket frames; [`auth`]: tokens and identities;
//!   [`config`]: `BusConfig`.
//! - [`broker`]: the `Broker` trait with its Redis and in-memory backends.
//! - [`router`]: subscriptions of one node, publish, direct messages,
//!   broadcasts, queues; [`health`]: `HealthChecker`, the bus probing itself
//!   against latency thresholds; [`telemetry`]: Prometheus metrics.
//! - [`state`]: `AppState`, what handlers share.
//! - [`ws`]: `GET /ws/connect`, connections, sessions, the registry.
//! - [`rest`]: operator endpoints, `/health`, `/metrics`.
//! - [`server`]: building and running a node with graceful shutdown.

pub mod auth;
pub mod broker;
pub mod config;
pub mod health;
pub mod limits;
pub mod message;
pub mod protocol;
pub mod registry;
pub mod reply;
pub mod rest;
pub mod router;
pub mod server;
pub mod state;
pub mod telemetry;
pub mod ws;

//! The agent bus: a message bus for software agents on Redis.
//!
//! Data flow: agent (WebSocket) → [`ws`] session → [`router`] → [`broker`]
//! → every bus node's subscription listener → the router's local sinks →
//! subscribed agents' outbound queues. Operators use [`rest`].
//!
//! Layers, lowest first. A module uses only modules of the layers before
//! its own, never one of its own layer (`tests/layers.rs` checks this very
//! list against the sources):
//!
//! 1. [`limits`]: the request bounds REST and WebSocket share;
//!    [`message`]: `AgentMessage`, `DeliveryMode`, wire and broker names,
//!    the glob matcher.
//! 2. [`protocol`]: the WebSocket frames, the protocol's own types;
//!    [`auth`]: tokens, identities and what they may touch.
//! 3. [`broker`]: the `Broker` trait with its Redis and in-memory backends;
//!    [`registry`]: the node's connections (agent, workspace, subscriptions).
//! 4. [`router`]: subscriptions of one node, publish, direct messages,
//!    broadcasts, queues; [`telemetry`]: Prometheus metrics.
//! 5. [`health`]: `HealthChecker`, the bus probing itself through its
//!    router against latency thresholds.
//! 6. [`config`]: `BusConfig`, the binary's settings, which build the lower
//!    layers' own settings; [`reply`]: errors to wire codes and broker
//!    results to protocol types, for REST and WebSocket alike.
//! 7. [`state`]: `AppState`, what handlers share.
//! 8. [`ws`]: `GET /ws/connect`, connections, sessions and their op
//!    families; [`rest`]: operator endpoints, `/health`, `/metrics`.
//! 9. [`server`]: building and running a node with graceful shutdown.

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

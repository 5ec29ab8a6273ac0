//! The agent bus: a message bus for software agents on Redis.
//!
//! Data flow: agent (WebSocket) → `ws` handler → [`router`] → [`broker`] →
//! every bus node's subscription listener → `ws` connection registry →
//! subscribed agents.
//!
//! Modules, each using only the ones above it in this list:
//!
//! - [`message`]: `AgentMessage`, `DeliveryMode`, wire and broker names.
//! - [`broker`]: the `Broker` trait with its Redis and in-memory backends.
//! - [`router`]: subscriptions of one node, publish, direct messages,
//!   broadcasts, queues.
//! - [`health`]: `HealthChecker`: ping, write/read, pub/sub and queue round
//!   trips against latency thresholds.

pub mod broker;
pub mod health;
pub mod message;
pub mod router;

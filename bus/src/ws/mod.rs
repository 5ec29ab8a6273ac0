//! The WebSocket endpoint `GET /ws/connect`: authentication and the
//! node's limits before the upgrade, then one [`connection`] per agent (its
//! reader and writer tasks), its [`session`] decoding and dispatching the
//! protocol to one file per family of ops ([`topics`], [`history`],
//! [`direct`], [`queues`]), the replies still on their way ([`in_flight`]), the
//! topics held back while a resume replays their history ([`gate`]), and
//! its bounded [`outbound`] queue; and the node's [`DeliveryProbe`], which
//! sends a health probe through that same outbound path.

mod connection;
mod direct;
mod gate;
mod history;
mod in_flight;
mod outbound;
mod probe;
mod queues;
mod session;
mod topics;

use std::net::SocketAddr;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::json;

pub use self::probe::DeliveryProbe;
use crate::auth::{ConnectParams, bearer};
use crate::state::AppState;

/// `GET /ws/connect`: 401 for bad credentials, 503 when the node is full or
/// shutting down, otherwise the upgrade.
pub async fn connect(
    State(state): State<AppState>,
    Query(params): Query<ConnectParams>,
    remote: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    if state.shutdown.is_cancelled() {
        return refuse(StatusCode::SERVICE_UNAVAILABLE, "the bus is shutting down");
    }
    let identity = match state.auth.authenticate(bearer(&headers), &params) {
        Ok(identity) => identity,
        Err(err) => {
            state.telemetry.auth_failures.increment(1);
            return refuse(StatusCode::UNAUTHORIZED, &err.to_string());
        }
    };
    let config = &state.config;
    let entry = match state.registry.register(
        identity,
        remote.map(|Extension(ConnectInfo(addr))| addr),
        config.max_connections,
        config.max_connections_per_agent,
    ) {
        Ok(entry) => entry,
        Err(err) => {
            state.telemetry.connections_refused.increment(1);
            return refuse(StatusCode::SERVICE_UNAVAILABLE, &err.to_string());
        }
    };
    let max = config.max_frame_bytes;
    let cleanup = (state.clone(), entry.id);
    upgrade
        .max_message_size(max)
        .max_frame_size(max)
        // Frames fed in one batch go out in one write; the buffer only
        // grows with bursts, so idle connections stay small.
        .write_buffer_size(WRITE_BUFFER)
        // tungstenite's default read buffer is 128 KiB, zero-filled per
        // connection: most of an idle connection's memory. It grows for a
        // larger frame and keeps its size afterwards.
        .read_buffer_size(READ_BUFFER)
        .on_failed_upgrade(move |err| {
            tracing::debug!(cause = %err, "websocket upgrade failed");
            cleanup.0.registry.unregister(cleanup.1);
        })
        .on_upgrade(move |socket| connection::run(socket, state, entry))
}

fn refuse(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

/// Bytes of frames gathered before a socket write (a flush writes sooner).
const WRITE_BUFFER: usize = 64 * 1024;
/// Initial read buffer of a connection.
const READ_BUFFER: usize = 4 * 1024;

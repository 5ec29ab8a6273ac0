//! The wire protocol of `GET /ws/connect`: JSON text frames, each with an
//! `op`. Requests may carry an `id` (string or number) that their reply
//! echoes; every reply is `ok` or `error`. See `docs/PROTOCOL.md`.
//!
//! - `client`: what agents send ([`ClientFrame`]) and [`decode`].
//! - `server`: what the bus sends ([`ServerFrame`], [`OkResult`], [`Job`]).
//! - here: the [`ErrorCode`]s and close codes both directions share.

mod client;
mod server;

use serde::{Deserialize, Serialize};

pub use self::client::{
    BroadcastScope, CLIENT_OPS, ClientFrame, DecodeError, QueueItem, ResumePoint, decode,
};
pub use self::server::{
    HistoryEntry, Job, OkResult, RejectOutcome, ServerFrame, TopicHistory, message_frame,
};

/// A request id as the client sent it (string or number), echoed verbatim.
pub type RequestId = serde_json::Value;

/// Reads a field that is present as `Some`, even when its value is `null`
/// (plain `Option` would turn `null` into `None`, i.e. "absent"). With
/// `#[serde(default)]` an absent field stays `None`.
fn present<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<serde_json::Value>, D::Error> {
    serde_json::Value::deserialize(deserializer).map(Some)
}

/// Machine-readable error codes of `error` frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The frame is not JSON (or not a text frame).
    BadJson,
    /// `op` names no operation.
    UnknownOp,
    /// A field is missing, unknown or of the wrong type.
    BadFrame,
    /// A topic, pattern, queue or agent name is not valid.
    InvalidName,
    /// The name is valid but not the caller's to use.
    Forbidden,
    /// The name belongs to another workspace.
    CrossWorkspace,
    /// The queue or inbox holds its maximum.
    QueueFull,
    /// The caller exceeded its message rate.
    RateLimited,
    /// Too many requests of this kind are in progress on the connection.
    Busy,
    /// The broker could not be reached or failed.
    BrokerUnavailable,
    /// A per-connection, per-workspace or per-node budget is used up
    /// (subscriptions, patterns, queues); the request changed nothing.
    LimitExceeded,
    /// The topic keeps no history (no `--history` rule of the node covers
    /// it).
    NoHistory,
}

impl ErrorCode {
    /// Every code, for counters registered up front.
    pub const ALL: [ErrorCode; 12] = [
        ErrorCode::BadJson,
        ErrorCode::UnknownOp,
        ErrorCode::BadFrame,
        ErrorCode::InvalidName,
        ErrorCode::Forbidden,
        ErrorCode::CrossWorkspace,
        ErrorCode::QueueFull,
        ErrorCode::RateLimited,
        ErrorCode::Busy,
        ErrorCode::BrokerUnavailable,
        ErrorCode::LimitExceeded,
        ErrorCode::NoHistory,
    ];

    /// The code as it appears on the wire and in metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadJson => "bad_json",
            ErrorCode::UnknownOp => "unknown_op",
            ErrorCode::BadFrame => "bad_frame",
            ErrorCode::InvalidName => "invalid_name",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::CrossWorkspace => "cross_workspace",
            ErrorCode::QueueFull => "queue_full",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Busy => "busy",
            ErrorCode::BrokerUnavailable => "broker_unavailable",
            ErrorCode::LimitExceeded => "limit_exceeded",
            ErrorCode::NoHistory => "no_history",
        }
    }
}

/// WebSocket close codes the bus uses.
pub mod close {
    /// The bus is shutting down.
    pub const GOING_AWAY: u16 = 1001;
    /// A frame was larger than the configured maximum.
    pub const MESSAGE_TOO_BIG: u16 = 1009;
    /// The client stopped answering pings.
    pub const PING_TIMEOUT: u16 = 4000;
    /// The client did not read fast enough: its outbound queue filled up.
    pub const SLOW_CONSUMER: u16 = 4001;
}

#[cfg(test)]
mod tests;

//! The wire protocol of `GET /ws/connect`: JSON text frames, each with an
//! `op`. Requests may carry an `id` (string or number) that their reply
//! echoes; every reply is `ok` or `error`. See `docs/PROTOCOL.md`.
//!
//! Decoding is two steps so every failure gets a precise code: the envelope
//! (`op`, `id`) first, then the op's own fields.

use serde::{Deserialize, Serialize};

use crate::message::{AgentMessage, DeliveryMode, MessageKind};

/// A request id as the client sent it (string or number), echoed verbatim.
pub type RequestId = serde_json::Value;

/// Every frame an agent may send.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientFrame {
    /// Subscribe to topics (wire names, see `message::names`).
    Subscribe {
        /// Echoed in the reply, so a client with several requests in flight can
        /// pair them.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<RequestId>,
        /// Wire topics; one refused name refuses the whole request.
        topics: Vec<String>,
    },
    /// Subscribe to glob patterns over the workspace's topics.
    Psubscribe {
        /// Echoed in the reply, so a client with several requests in flight can
        /// pair them.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<RequestId>,
        /// Wire globs over the workspace's topics (`*`, `?`, `[..]`).
        patterns: Vec<String>,
    },
    /// Drops topics and patterns; needs no permission, since it only gives
    /// something up.
    Unsubscribe {
        /// Echoed in the reply, so a client with several requests in flight can
        /// pair them.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<RequestId>,
        /// Wire topics to drop.
        #[serde(default)]
        topics: Vec<String>,
        /// Wire patterns to drop, as they were subscribed.
        #[serde(default)]
        patterns: Vec<String>,
    },
    /// Publishes to a topic or the agent's workspace.
    Publish {
        /// Echoed in the reply, so a client with several requests in flight can
        /// pair them.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<RequestId>,
        /// The wire topic.
        topic: String,
        /// Application data, opaque to the bus.
        #[serde(default)]
        payload: serde_json::Value,
        /// What the message asks of its receivers.
        #[serde(default)]
        kind: MessageKind,
        /// Links a response to its request.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        correlation_id: Option<String>,
    },
    /// A direct message to another agent of the same workspace.
    Send {
        /// Echoed in the reply, so a client with several requests in flight can
        /// pair them.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<RequestId>,
        /// The recipient agent id.
        to: String,
        /// Must be the sender's own workspace when given; naming another one
        /// is refused (agents cannot message across workspaces).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        workspace: Option<String>,
        /// Application data, opaque to the bus.
        #[serde(default)]
        payload: serde_json::Value,
        /// Live, stored, or both (see the delivery contract).
        #[serde(default)]
        mode: DeliveryMode,
        /// What the message asks of its receiver.
        #[serde(default)]
        kind: MessageKind,
        /// Inbox queue priority for stored copies (higher first).
        #[serde(default)]
        priority: u8,
        /// Links a response to its request.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        correlation_id: Option<String>,
    },
    /// Sends to every agent of the workspace or, with a token that allows it,
    /// of the bus.
    Broadcast {
        /// Echoed in the reply, so a client with several requests in flight can
        /// pair them.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<RequestId>,
        /// The sender's workspace (default) or every workspace.
        #[serde(default)]
        scope: BroadcastScope,
        /// For workspace scope: must be the sender's own workspace when given.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        workspace: Option<String>,
        /// Application data, opaque to the bus.
        #[serde(default)]
        payload: serde_json::Value,
        /// What the message asks of its receivers.
        #[serde(default)]
        kind: MessageKind,
    },
    /// Adds one message or a batch to a queue of the workspace.
    Enqueue {
        /// Echoed in the reply, so a client with several requests in flight can
        /// pair them.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<RequestId>,
        /// The wire queue name.
        queue: String,
        /// One message (`null` is a payload too)...
        #[serde(
            default,
            deserialize_with = "present",
            skip_serializing_if = "Option::is_none"
        )]
        payload: Option<serde_json::Value>,
        /// Priority of the single `payload` (higher first).
        #[serde(default)]
        priority: u8,
        /// ...or a batch (one broker round trip).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        messages: Vec<QueueItem>,
    },
    /// Claims jobs from a queue, now or waiting for the first one.
    Dequeue {
        /// Echoed in the reply, so a client with several requests in flight can
        /// pair them.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<RequestId>,
        /// The wire queue name.
        queue: String,
        /// Most messages to claim (default 1, at most 100).
        #[serde(default = "one")]
        max: usize,
        /// How long to wait for the first message (default 0: do not wait;
        /// at most 30 000).
        #[serde(default)]
        wait_ms: u64,
    },
    /// Acks one message (`message_id`) or several in one broker call
    /// (`message_ids`, at most 1,000).
    Ack {
        /// Echoed in the reply, so a client with several requests in flight can
        /// pair them.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<RequestId>,
        /// The wire queue the jobs came from.
        queue: String,
        /// The one message to ack.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message_id: Option<String>,
        /// Several messages to ack in one broker call.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        message_ids: Vec<String>,
    },
    /// Gives a claimed job back: retried after backoff, or dead-lettered.
    Reject {
        /// Echoed in the reply, so a client with several requests in flight can
        /// pair them.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<RequestId>,
        /// The wire queue the job came from.
        queue: String,
        /// The job's message id.
        message_id: String,
        /// Why, kept with a dead letter (default "rejected").
        #[serde(default)]
        reason: String,
        /// Retry after backoff while attempts remain (default), or
        /// dead-letter now.
        #[serde(default = "yes")]
        requeue: bool,
    },
    /// Asks for a `pong`: a round trip through the session, e.g. to measure
    /// latency.
    Ping {
        /// Echoed in the reply, so a client with several requests in flight can
        /// pair them.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<RequestId>,
        /// Echoed in the pong as sent, `null` included.
        #[serde(
            default,
            deserialize_with = "present",
            skip_serializing_if = "Option::is_none"
        )]
        data: Option<serde_json::Value>,
    },
}

/// Reads a field that is present as `Some`, even when its value is `null`
/// (plain `Option` would turn `null` into `None`, i.e. "absent"). With
/// `#[serde(default)]` an absent field stays `None`.
fn present<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<serde_json::Value>, D::Error> {
    serde_json::Value::deserialize(deserializer).map(Some)
}

fn one() -> usize {
    1
}

fn yes() -> bool {
    true
}

/// Every op name a client may send, for `unknown_op` errors.
pub const CLIENT_OPS: [&str; 11] = [
    "subscribe",
    "psubscribe",
    "unsubscribe",
    "publish",
    "send",
    "broadcast",
    "enqueue",
    "dequeue",
    "ack",
    "reject",
    "ping",
];

/// Who a `broadcast` reaches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BroadcastScope {
    /// Every agent of the sender's workspace.
    #[default]
    Workspace,
    /// Every agent on the bus (needs `global_broadcast` in the token).
    Global,
}

/// One message of a batch enqueue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueItem {
    /// Application data, opaque to the bus.
    #[serde(default)]
    pub payload: serde_json::Value,
    /// Queue priority (higher first).
    #[serde(default)]
    pub priority: u8,
}

impl ClientFrame {
    /// The frame's op name, for replies (`re`) and per-op counters.
    pub fn op(&self) -> &'static str {
        match self {
            ClientFrame::Subscribe { .. } => "subscribe",
            ClientFrame::Psubscribe { .. } => "psubscribe",
            ClientFrame::Unsubscribe { .. } => "unsubscribe",
            ClientFrame::Publish { .. } => "publish",
            ClientFrame::Send { .. } => "send",
            ClientFrame::Broadcast { .. } => "broadcast",
            ClientFrame::Enqueue { .. } => "enqueue",
            ClientFrame::Dequeue { .. } => "dequeue",
            ClientFrame::Ack { .. } => "ack",
            ClientFrame::Reject { .. } => "reject",
            ClientFrame::Ping { .. } => "ping",
        }
    }

    /// The request id, when the client sent one.
    pub fn id(&self) -> Option<&RequestId> {
        match self {
            ClientFrame::Subscribe { id, .. }
            | ClientFrame::Psubscribe { id, .. }
            | ClientFrame::Unsubscribe { id, .. }
            | ClientFrame::Publish { id, .. }
            | ClientFrame::Send { id, .. }
            | ClientFrame::Broadcast { id, .. }
            | ClientFrame::Enqueue { id, .. }
            | ClientFrame::Dequeue { id, .. }
            | ClientFrame::Ack { id, .. }
            | ClientFrame::Reject { id, .. }
            | ClientFrame::Ping { id, .. } => id.as_ref(),
        }
    }
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
}

impl ErrorCode {
    /// Every code, for counters registered up front.
    pub const ALL: [ErrorCode; 10] = [
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

/// A job handed to an agent: a claimed queue message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// Wire name of the queue (use it to ack or reject).
    pub queue: String,
    /// The message, `attempts` counting this claim.
    pub message: AgentMessage,
    /// Clock time (ms since epoch) after which the claim is reclaimed.
    pub deadline_ms: u64,
}

/// What a `reject` did, as the wire tells it. The protocol's own type (the
/// broker has its own, converted at the edge in `reply`), so a change of the
/// broker's result is not a change of the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum RejectOutcome {
    /// Back in the queue after `delay_ms`.
    Requeued {
        /// How long the message waits before it can be claimed again.
        delay_ms: u64,
        /// Deliveries so far, this one included.
        attempts: u32,
    },
    /// Moved to the dead-letter queue.
    DeadLettered {
        /// Deliveries it had before it was given up.
        attempts: u32,
    },
}

/// Every frame the bus sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum ServerFrame {
    /// First frame of every connection: who the bus thinks you are.
    Welcome {
        /// This connection's id on the node (see `/ws/connections/{id}`).
        connection_id: u64,
        /// The agent id the bus identified.
        agent: String,
        /// Its workspace.
        workspace: String,
        /// The node serving the connection, for logs and support.
        node: String,
        /// Channels subscribed for you on connect.
        subscribed: Vec<String>,
    },
    /// The reply to a successful request.
    Ok {
        /// The request's id, when it had one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<RequestId>,
        /// The op this replies to.
        re: String,
        /// What the op did.
        #[serde(flatten)]
        result: OkResult,
    },
    /// A pub/sub delivery (topic, broadcast or direct).
    Message {
        /// For pattern subscriptions: the wire pattern that matched.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pattern: Option<String>,
        /// The message.
        message: AgentMessage,
    },
    /// A message from the agent's inbox queue: ack it on `queue`.
    Job {
        /// The claimed message and where to ack it.
        #[serde(flatten)]
        job: Job,
    },
    /// The answer to a `ping`.
    Pong {
        /// The ping's id, when it had one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<RequestId>,
        /// The ping's `data`, as sent.
        #[serde(
            default,
            deserialize_with = "present",
            skip_serializing_if = "Option::is_none"
        )]
        data: Option<serde_json::Value>,
    },
    /// A request failed, or a frame could not be read.
    Error {
        /// The request's id, when it had one and could be read.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<RequestId>,
        /// What went wrong, for programs.
        code: ErrorCode,
        /// What went wrong, for people.
        message: String,
    },
}

/// The op-specific part of an `ok` reply.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct OkResult {
    /// subscribe / unsubscribe: the topics now (un)subscribed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub topics: Vec<String>,
    /// psubscribe / unsubscribe: the patterns now (un)subscribed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub patterns: Vec<String>,
    /// publish / broadcast / send: nodes that received it live.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receivers: Option<usize>,
    /// send: whether a copy was stored in the recipient's inbox.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stored: Option<bool>,
    /// publish / send / broadcast / enqueue: ids of the messages created.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub message_ids: Vec<String>,
    /// dequeue: the claimed messages.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jobs: Option<Vec<Job>>,
    /// ack: whether the queue held the message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acked: Option<bool>,
    /// ack of `message_ids`: whether the queue held each, in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub acks: Vec<bool>,
    /// reject: what happened (absent when the message was not claimed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<RejectOutcome>,
}

impl ServerFrame {
    /// An `error` reply.
    pub fn error(id: Option<RequestId>, code: ErrorCode, message: impl Into<String>) -> Self {
        ServerFrame::Error {
            id,
            code,
            message: message.into(),
        }
    }

    /// An `ok` reply to op `re`.
    pub fn ok(id: Option<RequestId>, re: &str, result: OkResult) -> Self {
        ServerFrame::Ok {
            id,
            re: re.to_owned(),
            result,
        }
    }

    /// The JSON text of this frame.
    pub fn to_text(&self) -> String {
        serde_json::to_string(self).expect("server frames serialize")
    }
}

/// Builds a `message` push around an already-serialized message without
/// parsing it again: the bytes published to the broker become the frame.
pub fn message_frame(pattern: Option<&str>, message_json: &[u8]) -> String {
    let body = String::from_utf8_lossy(message_json);
    match pattern {
        None => format!(r#"{{"op":"message","message":{body}}}"#),
        Some(p) => {
            let p = serde_json::to_string(p).expect("strings serialize");
            format!(r#"{{"op":"message","pattern":{p},"message":{body}}}"#)
        }
    }
}

/// Why a frame could not be decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodeError {
    /// The frame's id, when the envelope could be read (so the error still
    /// pairs with its request).
    pub id: Option<RequestId>,
    /// Why the frame was refused.
    pub code: ErrorCode,
    /// What was wrong, for people.
    pub message: String,
}

#[derive(Deserialize)]
struct Envelope {
    op: Option<serde_json::Value>,
    #[serde(default)]
    id: Option<RequestId>,
}

/// Decodes one client frame, with a precise error code on failure.
pub fn decode(text: &str) -> Result<ClientFrame, DecodeError> {
    let not_object = |detail: String| DecodeError {
        id: None,
        code: ErrorCode::BadJson,
        message: format!("not a JSON object: {detail}"),
    };
    // Serde would also read a struct from a JSON array; frames are objects.
    if !text.trim_start().starts_with('{') {
        return Err(not_object("a frame must start with `{`".into()));
    }
    let envelope: Envelope = serde_json::from_str(text).map_err(|e| match e.classify() {
        // Valid JSON, but `op` or `id` given twice: which one counts would
        // be a guess, so the frame is refused as malformed.
        serde_json::error::Category::Data => DecodeError {
            id: None,
            code: ErrorCode::BadFrame,
            message: e.to_string(),
        },
        _ => not_object(e.to_string()),
    })?;
    let id = envelope.id.filter(|v| v.is_string() || v.is_number());
    let fail = |code, message: String| DecodeError {
        id: id.clone(),
        code,
        message,
    };
    let op = match envelope.op {
        Some(serde_json::Value::String(op)) => op,
        Some(_) => return Err(fail(ErrorCode::BadFrame, "`op` must be a string".into())),
        None => return Err(fail(ErrorCode::BadFrame, "missing field `op`".into())),
    };
    if !CLIENT_OPS.contains(&op.as_str()) {
        return Err(fail(
            ErrorCode::UnknownOp,
            format!(
                "unknown op {op:?}; expected one of {}",
                CLIENT_OPS.join(", ")
            ),
        ));
    }
    serde_json::from_str(text).map_err(|e| fail(ErrorCode::BadFrame, format!("{op}: {e}")))
}

#[cfg(test)]
mod tests;

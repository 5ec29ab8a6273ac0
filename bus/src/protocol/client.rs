//! What agents send: every client frame, and decoding a frame's text with
//! a precise error code for every way it can be wrong (the envelope, `op`
//! and `id`, first, then the op's own fields).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{ErrorCode, RequestId, present};
use crate::message::{DeliveryMode, MessageKind};

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
        /// Topics (of `topics`) that keep history, with the last offset and
        /// epoch the agent saw: what came after is replayed before live
        /// delivery goes on.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        resume: BTreeMap<String, ResumePoint>,
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
    /// The last messages of a topic that keeps history.
    History {
        /// Echoed in the reply, so a client with several requests in flight can
        /// pair them.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<RequestId>,
        /// The wire topic.
        topic: String,
        /// How many of its last messages (default 100, at most 1,000).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        last: Option<usize>,
    },
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

fn one() -> usize {
    1
}

fn yes() -> bool {
    true
}

/// Every op name a client may send, for `unknown_op` errors.
pub const CLIENT_OPS: [&str; 12] = [
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
    "history",
    "ping",
];

/// Where an agent stopped reading a topic with history: the offset and
/// epoch of the last message it saw there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResumePoint {
    /// The last offset seen (`"<ms>-<n>"`, as message pushes carry it).
    pub offset: String,
    /// The epoch it was in.
    pub epoch: String,
}

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
            ClientFrame::History { .. } => "history",
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
            | ClientFrame::History { id, .. }
            | ClientFrame::Ping { id, .. } => id.as_ref(),
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

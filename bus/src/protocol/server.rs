//! What the bus sends: every server frame, the `ok` reply's fields, and
//! the protocol's own types for what queues hand out (jobs, reject
//! outcomes), so that broker types never reach the wire.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{ErrorCode, RequestId, present};
use crate::message::AgentMessage;
use crate::message::history::Stamp;

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
        /// On topics with history: where the message sits in it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        offset: Option<String>,
        /// On topics with history: the history's epoch.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        epoch: Option<String>,
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
    /// publish to a topic with history: where the message sits in it;
    /// history: the topic's last offset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<String>,
    /// publish / history: the topic's history epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub epoch: Option<String>,
    /// subscribe: for each topic with history, where it stands and, when
    /// resumed, whether everything missed was recovered.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub history: BTreeMap<String, TopicHistory>,
    /// history: the topic read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// history: its last messages, oldest first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub messages: Option<Vec<HistoryEntry>>,
    /// history: whether the byte bound cut the answer short.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub truncated: Option<bool>,
}

/// Where a subscribed topic's history stands, in a `subscribe` reply.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicHistory {
    /// The history's epoch: resume with it.
    pub epoch: String,
    /// Live delivery goes on after this offset: the last one replayed
    /// (recovered), or the history's last one (not resumed, not recovered).
    pub offset: String,
    /// When resumed: whether every message after the agent's offset was
    /// replayed (no gap), or not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovered: Option<bool>,
    /// When resumed: how many messages were replayed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replayed: Option<u64>,
    /// When not recovered: why (`epoch_changed`, `window_exceeded`,
    /// `too_far_behind`, `unknown_offset`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When not recovered and it is known: how many messages the agent
    /// missed for good.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missed: Option<u64>,
}

/// One message of a `history` reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryEntry {
    /// Where it sits in the topic's history.
    pub offset: String,
    /// The message.
    pub message: AgentMessage,
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
pub fn message_frame(pattern: Option<&str>, stamp: Option<&Stamp>, message_json: &[u8]) -> String {
    let body = String::from_utf8_lossy(message_json);
    let mut frame = String::with_capacity(body.len() + 96);
    frame.push_str(r#"{"op":"message","#);
    if let Some(p) = pattern {
        let p = serde_json::to_string(p).expect("strings serialize");
        frame.push_str(r#""pattern":"#);
        frame.push_str(&p);
        frame.push(',');
    }
    if let Some(stamp) = stamp {
        // Offsets are digits and a dash; epochs are ours (hex), but are
        // written as JSON strings all the same.
        let epoch = serde_json::to_string(&stamp.epoch).expect("strings serialize");
        frame.push_str(&format!(r#""offset":"{}","epoch":{epoch},"#, stamp.offset));
    }
    frame.push_str(r#""message":"#);
    frame.push_str(&body);
    frame.push('}');
    frame
}

//! The message model: what agents send each other, how it is delivered, and
//! how names on the wire map onto broker channels and queues.

pub mod glob;
pub mod history;
pub mod names;

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// What a message asks of its receiver. Informational only: the bus routes all
/// kinds the same way, agents use it to pair requests with responses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    /// Asks the receiver to do something and answer with a `Response`.
    Request,
    /// Answers a `Request` (carrying its `correlation_id`).
    Response,
    /// Tells something; no answer expected.
    #[default]
    Notification,
    /// Tells the receiver to act; no answer expected.
    Command,
}

/// How a direct message reaches its recipient (see the delivery contract in
/// the design document).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryMode {
    /// At-most-once, live: pushed to the recipient if it is connected to any
    /// node; kept in its inbox otherwise.
    #[default]
    Pubsub,
    /// At-least-once: stored in the recipient's inbox queue until acked.
    Queue,
    /// Pushed live *and* stored in the inbox; the recipient dedupes by id.
    Both,
}

/// One message between agents. The same value travels over the wire, through
/// Redis pub/sub and inside queues, so its JSON form is part of the protocol.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentMessage {
    /// Unique per message (UUIDv7, so ids sort by creation time); receivers
    /// dedupe on it where a message may arrive twice.
    pub id: String,
    /// What the message asks of its receiver (routing ignores it).
    #[serde(default)]
    pub kind: MessageKind,
    /// Sending agent id (within `workspace`); `None` for operator/REST sends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Recipient agent id for direct messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// Workspace the message belongs to; `None` only for global broadcasts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<String>,
    /// Wire-level topic (workspace-relative, see [`names`]).
    pub topic: String,
    /// Application data, opaque to the bus.
    #[serde(default)]
    pub payload: serde_json::Value,
    /// Links a response to its request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    /// Higher is served first by queues; ignored by pub/sub.
    #[serde(default)]
    pub priority: u8,
    /// Creation time in microseconds since the Unix epoch.
    pub created_at_us: u64,
    /// How many times a queue has handed this message out (0 before the first
    /// claim). Set by the queue on each claim.
    #[serde(default)]
    pub attempts: u32,
}

impl AgentMessage {
    /// A new notification on `topic` with a fresh id and the current time.
    pub fn new(topic: impl Into<String>, payload: serde_json::Value) -> Self {
        Self {
            id: new_id(),
            kind: MessageKind::Notification,
            from: None,
            to: None,
            workspace: None,
            topic: topic.into(),
            payload,
            correlation_id: None,
            priority: 0,
            created_at_us: now_micros(),
            attempts: 0,
        }
    }

    /// Sets the kind.
    pub fn with_kind(mut self, kind: MessageKind) -> Self {
        self.kind = kind;
        self
    }

    /// Sets the sending agent.
    pub fn from_agent(mut self, agent: impl Into<String>) -> Self {
        self.from = Some(agent.into());
        self
    }

    /// Sets the recipient of a direct message.
    pub fn to_agent(mut self, agent: impl Into<String>) -> Self {
        self.to = Some(agent.into());
        self
    }

    /// Sets the workspace.
    pub fn in_workspace(mut self, workspace: impl Into<String>) -> Self {
        self.workspace = Some(workspace.into());
        self
    }

    /// Sets the queue priority (higher first).
    pub fn with_priority(mut self, priority: u8) -> Self {
        self.priority = priority;
        self
    }

    /// Links the message to the request it answers.
    pub fn with_correlation_id(mut self, id: impl Into<String>) -> Self {
        self.correlation_id = Some(id.into());
        self
    }

    /// The JSON form stored in brokers and sent on the wire.
    pub fn to_json(&self) -> Vec<u8> {
        // Serializing this struct cannot fail: every field is a plain value and
        // `payload` is already a valid JSON tree.
        serde_json::to_vec(self).expect("AgentMessage serializes")
    }
}

/// A fresh message id: UUIDv7 text, unique and roughly time-ordered.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Wall-clock microseconds since the Unix epoch.
pub fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trip_keeps_every_field() {
        let msg = AgentMessage::new("agent:research", serde_json::json!({"q": 1}))
            .with_kind(MessageKind::Request)
            .from_agent("a1")
            .to_agent("a2")
            .in_workspace("w1")
            .with_priority(7)
            .with_correlation_id("c-1");
        let back: AgentMessage = serde_json::from_slice(&msg.to_json()).unwrap();
        assert_eq!(back, msg);
    }

    #[test]
    fn kinds_and_modes_use_snake_case_on_the_wire() {
        assert_eq!(
            serde_json::to_string(&MessageKind::Request).unwrap(),
            "\"request\""
        );
        assert_eq!(
            serde_json::to_string(&DeliveryMode::Both).unwrap(),
            "\"both\""
        );
        let mode: DeliveryMode = serde_json::from_str("\"queue\"").unwrap();
        assert_eq!(mode, DeliveryMode::Queue);
    }

    #[test]
    fn ids_are_unique() {
        let a = new_id();
        let b = new_id();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
    }
}

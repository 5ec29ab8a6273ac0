//! The simulator's side of the bus protocol. Outgoing frames are written
//! into a reused buffer by hand; incoming frames are parsed into borrowed
//! views, so the receive path allocates nothing of its own per message.
//!
//! Every simulated message carries a small payload the receivers measure
//! with: `s` sender id, `k` channel key (topic id, priority, ...), `q` the
//! sender's sequence number on that channel, `t` the planned send instant
//! and `w` the actual send instant (µs on the run clock), `p` padding.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::Write;

use serde::de::{IgnoredAny, Visitor};
use serde::{Deserialize, Deserializer};

/// The measurement payload of a simulated message.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub struct Stamp {
    /// The sending agent's id in the plan.
    #[serde(default)]
    pub s: u32,
    /// The channel key (topic id, priority, ...).
    #[serde(default)]
    pub k: u32,
    /// The sender's sequence number on that channel.
    #[serde(default)]
    pub q: u64,
    /// Planned send instant, µs on the run clock.
    #[serde(default)]
    pub t: u64,
    /// Actual send instant, µs on the run clock.
    #[serde(default)]
    pub w: u64,
}

/// Appends `{"s":..,"k":..,"q":..,"t":..,"w":..,"p":"xxx"}` sized to about
/// `bytes`.
pub fn write_payload(out: &mut String, stamp: &Stamp, bytes: u32) {
    let start = out.len();
    let _ = write!(
        out,
        r#"{{"s":{},"k":{},"q":{},"t":{},"w":{},"p":""#,
        stamp.s, stamp.k, stamp.q, stamp.t, stamp.w
    );
    let used = out.len() - start + 2;
    for _ in used..bytes as usize {
        out.push('x');
    }
    out.push_str("\"}");
}

/// A JSON string literal (names are plain ASCII, but stay safe).
pub fn quoted(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A string borrowed from the frame when it has no escapes (always, for
/// what the bus sends), owned otherwise. Unlike `Cow<str>`, it also borrows
/// inside an `Option`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text<'a>(pub Cow<'a, str>);

impl std::ops::Deref for Text<'_> {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl PartialEq<&str> for Text<'_> {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct TextVisitor;
        impl<'de> Visitor<'de> for TextVisitor {
            type Value = Text<'de>;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }

            fn visit_borrowed_str<E: serde::de::Error>(
                self,
                v: &'de str,
            ) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(v)))
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }

            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        d.deserialize_str(TextVisitor)
    }
}

/// One frame from the bus, as much as the simulator reads of it.
#[derive(Debug, PartialEq, Deserialize)]
pub struct Incoming<'a> {
    /// The frame's kind: `message`, `job`, `ok`, `error`, ...
    #[serde(borrow)]
    pub op: Text<'a>,
    /// Replies: the id of the request answered; `None` when it had none.
    #[serde(default, borrow)]
    pub id: Option<Text<'a>>,
    /// `ok` replies: the op answered.
    #[serde(default, borrow)]
    pub re: Option<Text<'a>>,
    /// `error` frames: the machine-readable error code.
    #[serde(default, borrow)]
    pub code: Option<Text<'a>>,
    /// `message` pushes from a pattern subscription: the pattern that matched.
    #[serde(default, borrow)]
    pub pattern: Option<Text<'a>>,
    /// A message (pushes) — or, in `error` frames, the error's text, which
    /// reads as `None` here.
    #[serde(default, borrow, deserialize_with = "message_or_text")]
    pub message: Option<MessageView<'a>>,
    /// `job` pushes: the queue to ack on.
    #[serde(default, borrow)]
    pub queue: Option<Text<'a>>,
    /// `dequeue` replies.
    #[serde(default, borrow)]
    pub jobs: Option<Vec<JobView<'a>>>,
    /// Replies to an ack of one message: whether the queue held it.
    #[serde(default)]
    pub acked: Option<bool>,
    /// Replies to acks of several `message_ids`.
    #[serde(default)]
    pub acks: Option<Vec<bool>>,
    /// Replies to a `reject`: what became of the message; `None` when it
    /// was not claimed.
    #[serde(default)]
    pub outcome: Option<OutcomeView>,
    /// Ids of the messages an op created; skipped, not read.
    #[serde(default)]
    pub message_ids: Option<IgnoredAny>,
    /// `message` pushes on topics with history: where the message sits.
    #[serde(default, borrow)]
    pub offset: Option<Text<'a>>,
    /// ...and the history's epoch.
    #[serde(default, borrow)]
    pub epoch: Option<Text<'a>>,
    /// `subscribe` replies: where each topic with history stands, and what
    /// a resume recovered.
    #[serde(default)]
    pub history: Option<BTreeMap<String, HistoryView>>,
}

/// One topic's history in a `subscribe` reply.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct HistoryView {
    /// The history's epoch.
    #[serde(default)]
    pub epoch: String,
    /// Live delivery goes on after this offset.
    #[serde(default)]
    pub offset: String,
    /// When resumed: whether everything after the offset was replayed.
    #[serde(default)]
    pub recovered: Option<bool>,
    /// When resumed: how many messages were replayed.
    #[serde(default)]
    pub replayed: Option<u64>,
    /// When not recovered: why.
    #[serde(default)]
    pub reason: Option<String>,
    /// When not recovered and known: how many messages were missed.
    #[serde(default)]
    pub missed: Option<u64>,
}

/// A bus message, as much as the simulator reads of it.
#[derive(Debug, PartialEq, Deserialize)]
pub struct MessageView<'a> {
    /// The message's unique id.
    #[serde(borrow)]
    pub id: Text<'a>,
    /// `request`, `response`, `notification` or `command`; `None` when absent.
    #[serde(default, borrow)]
    pub kind: Option<Text<'a>>,
    /// The sending agent's id; `None` for operator/REST sends.
    #[serde(default, borrow)]
    pub from: Option<Text<'a>>,
    /// The recipient agent's id, for direct messages.
    #[serde(default, borrow)]
    pub to: Option<Text<'a>>,
    /// The message's workspace; `None` only for global broadcasts.
    #[serde(default, borrow)]
    pub workspace: Option<Text<'a>>,
    /// The wire-level topic.
    #[serde(borrow)]
    pub topic: Text<'a>,
    /// The measurement payload; `None` when the message carries none.
    #[serde(default)]
    pub payload: Option<Stamp>,
    /// Links a response to its request.
    #[serde(default, borrow)]
    pub correlation_id: Option<Text<'a>>,
    /// Queue priority (higher is served first); 0 when absent.
    #[serde(default)]
    pub priority: u8,
    /// How many times a queue has handed the message out, this claim
    /// included; 0 when absent.
    #[serde(default)]
    pub attempts: u32,
}

/// A job in a `dequeue` reply: a claimed queue message.
#[derive(Debug, PartialEq, Deserialize)]
pub struct JobView<'a> {
    /// The claimed message.
    #[serde(borrow)]
    pub message: MessageView<'a>,
}

/// What a `reject` did to the message, as its reply tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum OutcomeView {
    /// Put back in the queue, to be claimed again.
    Requeued {},
    /// Moved to the dead-letter queue.
    DeadLettered {},
}

/// `message` is an object in pushes and a string in `error` frames.
fn message_or_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<MessageView<'de>>, D::Error> {
    struct Either;
    impl<'de> Visitor<'de> for Either {
        type Value = Option<MessageView<'de>>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a message object or an error text")
        }

        fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            MessageView::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(Some)
        }

        fn visit_borrowed_str<E: serde::de::Error>(self, _: &'de str) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
    }
    d.deserialize_any(Either)
}

/// Parses one frame from the bus, borrowing from `text` where it can:
/// `message` pushes through the fast reader ([`super::scan`]) when it
/// takes them, everything else through serde_json.
pub fn parse(text: &str) -> Result<Incoming<'_>, serde_json::Error> {
    match super::scan::message_push(text) {
        Some(push) => Ok(push.into_incoming()),
        None => serde_json::from_str(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_are_sized_and_parse_back() {
        let stamp = Stamp {
            s: 7,
            k: 3,
            q: 99,
            t: 123_456,
            w: 123_999,
        };
        let mut out = String::new();
        write_payload(&mut out, &stamp, 256);
        assert_eq!(out.len(), 256);
        let back: Stamp = serde_json::from_str(&out).unwrap();
        assert_eq!(back, stamp);
        out.clear();
        write_payload(&mut out, &stamp, 1);
        assert!(
            serde_json::from_str::<Stamp>(&out).is_ok(),
            "tiny sizes stay valid"
        );
    }

    #[test]
    fn bus_frames_parse_borrowed() {
        let m = bus::message::AgentMessage::new(
            "agent:topic-1",
            serde_json::json!({"s":1,"k":2,"q":3,"t":4,"w":5,"p":"xx"}),
        )
        .in_workspace("ws-0");
        let text = bus::protocol::message_frame(Some("agent:*"), None, &m.to_json());
        let frame = parse(&text).unwrap();
        assert_eq!(frame.op, "message");
        assert!(matches!(
            frame.pattern,
            Some(Text(Cow::Borrowed("agent:*")))
        ));
        let msg = frame.message.unwrap();
        assert_eq!(msg.payload.unwrap().q, 3);
        assert_eq!(msg.workspace.as_deref(), Some("ws-0"));
        let error =
            parse(r#"{"op":"error","id":"7","code":"broker_unavailable","message":"redis: gone"}"#)
                .unwrap();
        assert_eq!(error.code.as_deref(), Some("broker_unavailable"));
        assert!(error.message.is_none());
        let reply = parse(r#"{"op":"ok","id":"d1","re":"dequeue","jobs":[]}"#).unwrap();
        assert_eq!(reply.jobs.unwrap().len(), 0);
        let reject = parse(r#"{"op":"ok","id":"r1","re":"reject","outcome":{"outcome":"dead_lettered","attempts":3}}"#).unwrap();
        assert!(matches!(reject.outcome, Some(OutcomeView::DeadLettered {})));
    }

    #[test]
    fn quoting_escapes() {
        let mut out = String::new();
        quoted(&mut out, "a\"b\\c");
        assert_eq!(out, r#""a\"b\\c""#);
    }
}

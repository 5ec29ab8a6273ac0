//! The WebSocket frame decoder (`bus::protocol::decode`) and the name rules
//! every decoded frame goes through next: never panics; a failure is one of
//! the decoder's three codes with a message and an id only when the client
//! sent a usable one; a success encodes back to the same frame.
//!
//! Input: the text of one frame (the WebSocket layer only hands UTF-8 text
//! frames to the decoder).

#![no_main]

use bus::message::names::{self, Scope};
use bus::protocol::{ClientFrame, ErrorCode, decode};
use libfuzzer_sys::fuzz_target;

const SCOPE: Scope<'static> = Scope {
    workspace: "w1",
    agent: "alice",
};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match decode(text) {
        Ok(frame) => {
            let again = serde_json::to_string(&frame).expect("client frames serialize");
            assert_eq!(decode(&again), Ok(frame.clone()), "re-encoded as {again}");
            resolve_names(&frame);
        }
        Err(err) => {
            assert!(
                matches!(
                    err.code,
                    ErrorCode::BadJson | ErrorCode::UnknownOp | ErrorCode::BadFrame
                ),
                "{err:?}"
            );
            assert!(!err.message.is_empty());
            assert!(
                err.id
                    .as_ref()
                    .is_none_or(|id| id.is_string() || id.is_number())
            );
        }
    }
});

/// What the session does with a frame's names before anything else.
fn resolve_names(frame: &ClientFrame) {
    match frame {
        ClientFrame::Subscribe { topics, .. } => topics.iter().for_each(|t| topic(t)),
        ClientFrame::Psubscribe { patterns, .. } => patterns.iter().for_each(|p| pattern(p)),
        ClientFrame::Unsubscribe {
            topics, patterns, ..
        } => {
            topics.iter().for_each(|t| topic(t));
            patterns.iter().for_each(|p| pattern(p));
        }
        ClientFrame::Publish { topic: t, .. } => topic(t),
        ClientFrame::Send { to, .. } => {
            let _ = names::validate_id("agent", to);
        }
        ClientFrame::Enqueue { queue, .. }
        | ClientFrame::Dequeue { queue, .. }
        | ClientFrame::Ack { queue, .. }
        | ClientFrame::Reject { queue, .. } => {
            let _ = names::resolve_queue(SCOPE, queue);
        }
        ClientFrame::Broadcast { .. } | ClientFrame::Ping { .. } => {}
    }
}

fn topic(wire: &str) {
    if let Ok(channel) = names::resolve_topic(SCOPE, wire) {
        assert_eq!(channel.workspace().unwrap_or("w1"), "w1", "{wire} escaped");
    }
}

fn pattern(wire: &str) {
    if let Ok(channel_pattern) = names::resolve_pattern(SCOPE, wire) {
        assert!(channel_pattern.starts_with("topic:w1/"), "{wire} escaped");
        assert_eq!(names::wire_pattern(&channel_pattern), wire);
        for channel in ["topic:w1/agent:research", "topic:w2/x", "inbox:w1/alice"] {
            let hit = bus::message::glob::matches(&channel_pattern, channel);
            assert!(
                !hit || channel.starts_with("topic:w1/"),
                "{wire} matched {channel}"
            );
        }
    }
}

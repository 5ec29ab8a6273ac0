//! proptest strategies for frames: hostile JSON text, and well-formed client
//! and server frames for round trips.

use bus::message::{AgentMessage, DeliveryMode, MessageKind};
use bus::protocol::{
    BroadcastScope, ClientFrame, ErrorCode, HistoryEntry, Job, OkResult, QueueItem, RejectOutcome,
    ResumePoint, ServerFrame, TopicHistory,
};
use proptest::prelude::*;
use serde_json::{Number, Value, json};

/// JSON text that parses, or nearly: every type, extreme and out-of-range
/// numbers, odd strings, and nesting deep enough to hit the parser's limit.
pub(crate) fn hostile_json() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("null".to_owned()),
        any::<bool>().prop_map(|b| b.to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| f.to_string()),
        proptest::sample::select(vec![
            "18446744073709551616",
            "-9223372036854775809",
            "1e400",
            "-1e400",
            "1e-400",
            "123456789012345678901234567890",
            "-0",
            "0.0",
            "256",
            "-1",
            "4294967296",
        ])
        .prop_map(str::to_owned),
        "\\PC{0,12}".prop_map(|s| Value::String(s).to_string()),
        proptest::sample::select(vec![
            "subscribe",
            "global",
            "workspace",
            "both",
            "queue",
            "request",
            "t",
            "q",
            "w1",
            "agent:alice:inbox",
            "*",
        ])
        .prop_map(|s| format!("{s:?}")),
        (1usize..300).prop_map(|depth| format!("{}{}", "[".repeat(depth), "]".repeat(depth))),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6)
                .prop_map(|items| format!("[{}]", items.join(","))),
            proptest::collection::vec(("[a-z_]{0,10}", inner), 0..6).prop_map(|entries| {
                let entries: Vec<String> =
                    entries.iter().map(|(k, v)| format!("{k:?}:{v}")).collect();
                format!("{{{}}}", entries.join(","))
            }),
        ]
    })
}

/// A JSON value of any shape (finite numbers only: JSON has no others).
pub(crate) fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| Number::from_f64(f).map(Value::Number)),
        "\\PC{0,16}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 5, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            proptest::collection::btree_map("\\PC{0,8}", inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// An id a client may send: a string or a number.
pub(crate) fn request_id() -> impl Strategy<Value = Value> {
    prop_oneof![
        "\\PC{0,16}".prop_map(Value::String),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| Number::from_f64(f).map(Value::Number)),
    ]
}

fn id() -> impl Strategy<Value = Option<Value>> {
    proptest::option::of(request_id())
}

/// Any text, kept short: long strings cost time and find nothing more.
fn text() -> impl Strategy<Value = String> {
    "\\PC{0,16}"
}

fn texts() -> impl Strategy<Value = Vec<String>> {
    proptest::collection::vec(text(), 0..4)
}

fn kind() -> impl Strategy<Value = MessageKind> {
    proptest::sample::select(vec![
        MessageKind::Request,
        MessageKind::Response,
        MessageKind::Notification,
        MessageKind::Command,
    ])
}

fn mode() -> impl Strategy<Value = DeliveryMode> {
    proptest::sample::select(vec![
        DeliveryMode::Pubsub,
        DeliveryMode::Queue,
        DeliveryMode::Both,
    ])
}

fn scope() -> impl Strategy<Value = BroadcastScope> {
    proptest::sample::select(vec![BroadcastScope::Workspace, BroadcastScope::Global])
}

/// Any client frame (values that `decode` must give back as they were).
pub(crate) fn client_frame() -> impl Strategy<Value = ClientFrame> {
    let item =
        (json_value(), any::<u8>()).prop_map(|(payload, priority)| QueueItem { payload, priority });
    prop_oneof![
        (
            id(),
            texts(),
            proptest::collection::btree_map(text(), (text(), text()), 0..3)
        )
            .prop_map(|(id, topics, resume)| ClientFrame::Subscribe {
                id,
                topics,
                resume: resume
                    .into_iter()
                    .map(|(topic, (offset, epoch))| (topic, ResumePoint { offset, epoch }))
                    .collect(),
            }),
        (id(), text(), proptest::option::of(any::<usize>()))
            .prop_map(|(id, topic, last)| ClientFrame::History { id, topic, last }),
        (id(), texts()).prop_map(|(id, patterns)| ClientFrame::Psubscribe { id, patterns }),
        (id(), texts(), texts()).prop_map(|(id, topics, patterns)| ClientFrame::Unsubscribe {
            id,
            topics,
            patterns
        }),
        (
            id(),
            text(),
            json_value(),
            kind(),
            proptest::option::of(text())
        )
            .prop_map(
                |(id, topic, payload, kind, correlation_id)| ClientFrame::Publish {
                    id,
                    topic,
                    payload,
                    kind,
                    correlation_id
                }
            ),
        (
            (id(), text(), proptest::option::of(text()), json_value()),
            (mode(), kind(), any::<u8>(), proptest::option::of(text()))
        )
            .prop_map(
                |((id, to, workspace, payload), (mode, kind, priority, correlation_id))| {
                    ClientFrame::Send {
                        id,
                        to,
                        workspace,
                        payload,
                        mode,
                        kind,
                        priority,
                        correlation_id,
                    }
                }
            ),
        (
            id(),
            scope(),
            proptest::option::of(text()),
            json_value(),
            kind()
        )
            .prop_map(
                |(id, scope, workspace, payload, kind)| ClientFrame::Broadcast {
                    id,
                    scope,
                    workspace,
                    payload,
                    kind
                }
            ),
        (
            id(),
            text(),
            proptest::option::of(json_value()),
            any::<u8>(),
            proptest::collection::vec(item, 0..3)
        )
            .prop_map(
                |(id, queue, payload, priority, messages)| ClientFrame::Enqueue {
                    id,
                    queue,
                    payload,
                    priority,
                    messages
                }
            ),
        (id(), text(), any::<usize>(), any::<u64>()).prop_map(|(id, queue, max, wait_ms)| {
            ClientFrame::Dequeue {
                id,
                queue,
                max,
                wait_ms,
            }
        }),
        (id(), text(), proptest::option::of(text()), texts()).prop_map(
            |(id, queue, message_id, message_ids)| ClientFrame::Ack {
                id,
                queue,
                message_id,
                message_ids
            }
        ),
        (id(), text(), text(), text(), any::<bool>()).prop_map(
            |(id, queue, message_id, reason, requeue)| ClientFrame::Reject {
                id,
                queue,
                message_id,
                reason,
                requeue
            }
        ),
        (id(), proptest::option::of(json_value()))
            .prop_map(|(id, data)| ClientFrame::Ping { id, data }),
    ]
}

pub(crate) fn agent_message() -> impl Strategy<Value = AgentMessage> {
    let optional = || proptest::option::of(text());
    (
        (text(), kind(), optional(), optional(), optional(), text()),
        (
            json_value(),
            optional(),
            any::<u8>(),
            any::<u64>(),
            any::<u32>(),
        ),
    )
        .prop_map(
            |(
                (id, kind, from, to, workspace, topic),
                (payload, correlation_id, priority, created_at_us, attempts),
            )| AgentMessage {
                id,
                kind,
                from,
                to,
                workspace,
                topic,
                payload,
                correlation_id,
                priority,
                created_at_us,
                attempts,
            },
        )
}

fn job() -> impl Strategy<Value = Job> {
    (text(), agent_message(), any::<u64>()).prop_map(|(queue, message, deadline_ms)| Job {
        queue,
        message,
        deadline_ms,
    })
}

fn topic_history() -> impl Strategy<Value = TopicHistory> {
    (
        (text(), text()),
        (
            proptest::option::of(any::<bool>()),
            proptest::option::of(any::<u64>()),
            proptest::option::of(text()),
            proptest::option::of(any::<u64>()),
        ),
    )
        .prop_map(
            |((epoch, offset), (recovered, replayed, reason, missed))| TopicHistory {
                epoch,
                offset,
                recovered,
                replayed,
                reason,
                missed,
            },
        )
}

fn ok_result() -> impl Strategy<Value = OkResult> {
    let outcome = prop_oneof![
        (any::<u64>(), any::<u32>())
            .prop_map(|(delay_ms, attempts)| RejectOutcome::Requeued { delay_ms, attempts }),
        any::<u32>().prop_map(|attempts| RejectOutcome::DeadLettered { attempts }),
    ];
    let entry =
        (text(), agent_message()).prop_map(|(offset, message)| HistoryEntry { offset, message });
    (
        (texts(), texts(), proptest::option::of(any::<usize>())),
        (proptest::option::of(any::<bool>()), texts()),
        (
            proptest::option::of(proptest::collection::vec(job(), 0..3)),
            proptest::option::of(any::<bool>()),
            proptest::option::of(outcome),
            proptest::collection::vec(any::<bool>(), 0..4),
        ),
        (
            proptest::option::of(text()),
            proptest::option::of(text()),
            proptest::collection::btree_map(text(), topic_history(), 0..3),
        ),
        (
            proptest::option::of(text()),
            proptest::option::of(proptest::collection::vec(entry, 0..2)),
            proptest::option::of(any::<bool>()),
        ),
    )
        .prop_map(
            |(
                (topics, patterns, receivers),
                (stored, message_ids),
                (jobs, acked, outcome, acks),
                (offset, epoch, history),
                (topic, messages, truncated),
            )| {
                OkResult {
                    topics,
                    patterns,
                    receivers,
                    stored,
                    message_ids,
                    jobs,
                    acked,
                    acks,
                    outcome,
                    offset,
                    epoch,
                    history,
                    topic,
                    messages,
                    truncated,
                }
            },
        )
}

fn error_code() -> impl Strategy<Value = ErrorCode> {
    let codes: Vec<ErrorCode> = [
        "bad_json",
        "unknown_op",
        "bad_frame",
        "invalid_name",
        "forbidden",
        "cross_workspace",
        "queue_full",
        "rate_limited",
        "busy",
        "broker_unavailable",
        "limit_exceeded",
        "no_history",
    ]
    .iter()
    .map(|code| serde_json::from_value(json!(code)).unwrap())
    .collect();
    proptest::sample::select(codes)
}

/// Any frame the bus may send.
pub(crate) fn server_frame() -> impl Strategy<Value = ServerFrame> {
    prop_oneof![
        (any::<u64>(), text(), text(), text(), texts()).prop_map(
            |(connection_id, agent, workspace, node, subscribed)| ServerFrame::Welcome {
                connection_id,
                agent,
                workspace,
                node,
                subscribed
            }
        ),
        (id(), text(), ok_result()).prop_map(|(id, re, result)| ServerFrame::Ok { id, re, result }),
        (
            proptest::option::of(text()),
            proptest::option::of((text(), text())),
            agent_message()
        )
            .prop_map(|(pattern, stamp, message)| {
                let (offset, epoch) = stamp.unzip();
                ServerFrame::Message {
                    pattern,
                    offset,
                    epoch,
                    message,
                }
            }),
        job().prop_map(|job| ServerFrame::Job { job }),
        (id(), proptest::option::of(json_value()))
            .prop_map(|(id, data)| ServerFrame::Pong { id, data }),
        (id(), error_code(), text()).prop_map(|(id, code, message)| ServerFrame::Error {
            id,
            code,
            message
        }),
    ]
}

//! Property tests of the frame decoder: no input makes it panic, every
//! failure is one precise error, and frames survive encode → decode.
//! (The `frame_decode` fuzz target of `fuzz/` explores the same ground for
//! longer; see docs/FUZZING.md.)

use bus::protocol::{CLIENT_OPS, ClientFrame, ErrorCode, decode};
use proptest::prelude::*;
use serde_json::Value;

use crate::frame_strategies::{client_frame, hostile_json, request_id, server_frame};

/// What `decode` must do with `text`, worked out from a plain JSON parse:
/// `Some(error)` when it must fail with that code and id, `None` when the
/// frame may decode (or fail as `bad_frame` on its fields).
fn expected_error(text: &str) -> Expected {
    let object = match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(object)) if text.trim_start().starts_with('{') => object,
        Ok(_) => return Expected::Error(ErrorCode::BadJson, None),
        // JSON the bus reads only as far as it must: nesting deeper than
        // serde_json's limit or a number out of range inside a field is not
        // noticed until that field is read, so the op decides the error.
        Err(err) if is_limit(&err) => return Expected::SomeError,
        Err(_) => return Expected::Error(ErrorCode::BadJson, None),
    };
    if ["op", "id"]
        .iter()
        .any(|key| top_level_keys(text).iter().filter(|k| k == key).count() > 1)
    {
        return Expected::Error(ErrorCode::BadFrame, None);
    }
    let id = object
        .get("id")
        .filter(|id| id.is_string() || id.is_number())
        .cloned();
    match object.get("op") {
        Some(Value::String(op)) if CLIENT_OPS.contains(&op.as_str()) => Expected::FrameOrBadFrame,
        Some(Value::String(_)) => Expected::Error(ErrorCode::UnknownOp, id),
        _ => Expected::Error(ErrorCode::BadFrame, id),
    }
}

enum Expected {
    Error(ErrorCode, Option<Value>),
    FrameOrBadFrame,
    /// Valid JSON syntax beyond the parser's limits: never a frame.
    SomeError,
}

/// The keys of a JSON object in order, repeats included (a `Value` keeps
/// only the last of repeated keys).
fn top_level_keys(text: &str) -> Vec<String> {
    struct Keys(Vec<String>);
    impl<'de> serde::Deserialize<'de> for Keys {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct Visitor;
            impl<'de> serde::de::Visitor<'de> for Visitor {
                type Value = Keys;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("an object")
                }
                fn visit_map<A: serde::de::MapAccess<'de>>(
                    self,
                    mut map: A,
                ) -> Result<Keys, A::Error> {
                    let mut keys = Vec::new();
                    while let Some((key, _)) = map.next_entry::<String, serde::de::IgnoredAny>()? {
                        keys.push(key);
                    }
                    Ok(Keys(keys))
                }
            }
            d.deserialize_map(Visitor)
        }
    }
    serde_json::from_str::<Keys>(text)
        .map(|keys| keys.0)
        .unwrap_or_default()
}

fn is_limit(err: &serde_json::Error) -> bool {
    let message = err.to_string();
    message.contains("recursion limit exceeded") || message.contains("number out of range")
}

/// Decodes `text` and checks the result against [`expected_error`].
fn check_decode(text: &str) -> Result<(), TestCaseError> {
    let result = decode(text);
    match (expected_error(text), result) {
        (Expected::Error(code, id), Err(err)) => {
            prop_assert_eq!(err.code, code, "{} -> {:?}", text, err);
            prop_assert_eq!(&err.id, &id);
            prop_assert!(!err.message.is_empty());
        }
        (Expected::SomeError, Err(err)) => {
            prop_assert!(!err.message.is_empty());
            prop_assert!(
                err.id
                    .as_ref()
                    .is_none_or(|id| id.is_string() || id.is_number())
            );
        }
        (Expected::FrameOrBadFrame, Ok(frame)) => {
            let again = serde_json::to_string(&frame).unwrap();
            prop_assert_eq!(decode(&again), Ok(frame));
        }
        (Expected::FrameOrBadFrame, Err(err)) => {
            prop_assert_eq!(err.code, ErrorCode::BadFrame, "{} -> {:?}", text, err);
            let prefix = format!("{}: ", op_of(text));
            prop_assert!(err.message.starts_with(&prefix), "{}", err.message);
        }
        (_, Ok(frame)) => {
            prop_assert!(false, "{} decoded as {:?}", text, frame);
        }
    }
    Ok(())
}

fn op_of(text: &str) -> String {
    let value: Value = serde_json::from_str(text).unwrap();
    value["op"].as_str().unwrap().to_owned()
}

/// A frame object built from hostile parts: `op` known, unknown or not a
/// string, fields of every op with values of any type and size.
fn hostile_frame() -> impl Strategy<Value = String> {
    let op = prop_oneof![
        4 => proptest::sample::select(CLIENT_OPS.to_vec()).prop_map(|op| format!("{op:?}")),
        1 => "[a-z_]{0,12}".prop_map(|op| format!("{op:?}")),
        1 => hostile_json(),
    ];
    let field = proptest::sample::select(vec![
        "id",
        "topics",
        "patterns",
        "topic",
        "payload",
        "kind",
        "correlation_id",
        "to",
        "workspace",
        "mode",
        "priority",
        "scope",
        "queue",
        "messages",
        "max",
        "wait_ms",
        "message_id",
        "reason",
        "requeue",
        "data",
        "op",
        "extra",
    ]);
    let fields = proptest::collection::vec((field, hostile_json()), 0..6);
    (proptest::option::of(op), fields).prop_map(|(op, fields)| {
        let mut parts: Vec<String> = op.into_iter().map(|op| format!("\"op\":{op}")).collect();
        parts.extend(fields.into_iter().map(|(k, v)| format!("{k:?}:{v}")));
        format!("{{{}}}", parts.join(","))
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(10_000))]

    #[test]
    fn any_text_decodes_or_fails_precisely(text in any::<String>()) {
        check_decode(&text)?;
    }

    #[test]
    fn any_bytes_decode_or_fail_precisely(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        check_decode(&String::from_utf8_lossy(&bytes))?;
    }

    #[test]
    fn json_like_text_decodes_or_fails_precisely(text in r#"\{[{}\[\]":,0-9a-z_ .eE+-]{0,80}"#) {
        check_decode(&text)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4_000))]

    #[test]
    fn hostile_frames_decode_or_fail_precisely(text in hostile_frame()) {
        check_decode(&text)?;
    }

    #[test]
    fn client_frames_survive_encode_then_decode(frame in client_frame()) {
        let text = serde_json::to_string(&frame).unwrap();
        prop_assert_eq!(decode(&text), Ok(frame));
    }

    #[test]
    fn server_frames_survive_encode_then_decode(frame in server_frame()) {
        let text = frame.to_text();
        let back: bus::protocol::ServerFrame = serde_json::from_str(&text).unwrap();
        prop_assert_eq!(back, frame);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    /// The bytes a publisher's message travels as become the `message` push
    /// without a re-parse; the push must still be a valid server frame.
    #[test]
    fn message_pushes_wrap_published_bytes(
        frame in server_frame(),
        pattern in proptest::option::of("[ -~]{1,20}"),
    ) {
        let bus::protocol::ServerFrame::Message { message, .. } = frame else {
            return Ok(());
        };
        let text = bus::protocol::message_frame(pattern.as_deref(), None, &message.to_json());
        let back: bus::protocol::ServerFrame = serde_json::from_str(&text).unwrap();
        prop_assert_eq!(
            back,
            bus::protocol::ServerFrame::Message {
                pattern,
                offset: None,
                epoch: None,
                message
            }
        );
    }

    /// Ids of any accepted type come back on errors.
    #[test]
    fn unknown_ops_echo_the_id(id in request_id(), op in "[a-z]{1,10}") {
        prop_assume!(!CLIENT_OPS.contains(&op.as_str()));
        let text = format!(r#"{{"op":{op:?},"id":{id}}}"#);
        let err = decode(&text).unwrap_err();
        prop_assert_eq!((err.code, err.id), (ErrorCode::UnknownOp, Some(id)));
    }
}

/// Nesting past serde_json's depth limit (127 levels, the frame included)
/// is refused as a bad field of the op, not a stack overflow.
#[test]
fn deep_nesting_is_a_bad_frame_not_a_crash() {
    for depth in [1, 126, 127, 128, 10_000, 1_000_000] {
        let payload = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        let text = format!(r#"{{"op":"publish","id":1,"topic":"t","payload":{payload}}}"#);
        match decode(&text) {
            Ok(ClientFrame::Publish { .. }) if depth <= 126 => {}
            Err(err) if depth > 126 => {
                assert_eq!((err.code, &err.id), (ErrorCode::BadFrame, &Some(1.into())));
                assert!(
                    err.message.starts_with("publish: recursion limit exceeded"),
                    "{err:?}"
                );
            }
            other => panic!("depth {depth}: {other:?}"),
        }
    }
}

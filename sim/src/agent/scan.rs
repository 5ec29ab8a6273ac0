//! A fast reader for the one frame that arrives hundreds of thousands of
//! times a second: the bus's `message` push. serde_json visited every field
//! of it and was half of the simulator's CPU at 500k deliveries/s; this
//! reader makes one pass over the frame to make sure it holds no escape
//! and no control character, after which every `"` in it delimits a
//! string (found eight bytes at a time), and then walks it once, taking
//! the fields the simulator reads and stepping over the rest.
//!
//! It only accepts what it reads exactly as serde_json
//! ([`super::wire::parse`]'s other path) would: a frame whose first key is
//! `"op":"message"`, without escapes or control characters (so no
//! whitespace but spaces), unsigned integers in their type's range, a
//! payload of scalars, no repeated field. Anything else makes it step aside
//! (`None`) and the frame is parsed by serde_json as before, so an unusual
//! frame costs a little more, never a different answer. A property test
//! below holds the two readers to the same answer on generated frames.

use std::borrow::Cow;

use super::wire::{Incoming, MessageView, Stamp, Text};

/// What the simulator reads of a `message` push.
#[derive(Debug, PartialEq)]
pub(super) struct Push<'a> {
    /// The pattern that matched, for pattern subscriptions.
    pub(super) pattern: Option<&'a str>,
    /// On topics with history: the message's offset and the epoch.
    pub(super) offset: Option<&'a str>,
    /// ...
    pub(super) epoch: Option<&'a str>,
    /// The message; `None` when the frame has none.
    pub(super) message: Option<MessageView<'a>>,
}

impl<'a> Push<'a> {
    /// The same frame as the general reader returns it.
    pub(super) fn into_incoming(self) -> Incoming<'a> {
        Incoming {
            op: borrowed("message"),
            id: None,
            re: None,
            code: None,
            pattern: self.pattern.map(borrowed),
            message: self.message,
            queue: None,
            jobs: None,
            acked: None,
            acks: None,
            outcome: None,
            message_ids: None,
            offset: self.offset.map(borrowed),
            epoch: self.epoch.map(borrowed),
            history: None,
        }
    }
}

/// The frame as serde_json reads it, if it is a `message` push this
/// reader accepts.
pub(super) fn message_push(text: &str) -> Option<Push<'_>> {
    const OPENING: &str = r#"{"op":"message""#;
    if !text.starts_with(OPENING) || !plain(text.as_bytes()) {
        return None;
    }
    let mut cursor = Cursor {
        text,
        at: OPENING.len(),
    };
    let mut push = Push {
        pattern: None,
        offset: None,
        epoch: None,
        message: None,
    };
    let mut seen = Seen::default();
    while cursor.next_member()? {
        match cursor.key()? {
            "pattern" => {
                seen.first(0)?;
                push.pattern = cursor.optional_string()?;
            }
            "message" => {
                seen.first(1)?;
                push.message = Some(cursor.message()?);
            }
            "offset" => {
                seen.first(2)?;
                push.offset = cursor.optional_string()?;
            }
            "epoch" => {
                seen.first(3)?;
                push.epoch = cursor.optional_string()?;
            }
            // Fields of other frames: serde_json knows what to make of them.
            "op" | "id" | "re" | "code" | "queue" | "jobs" | "acked" | "acks" | "outcome"
            | "message_ids" | "history" => return None,
            _ => cursor.skip_scalar()?,
        }
    }
    cursor.end_of_text()?;
    Some(push)
}

/// Whether `bytes` hold no backslash and no control character (below
/// 0x20), checked without an early exit so it runs many bytes at a time.
/// In such a frame every `"` opens or closes a string, and no string needs
/// unescaping or is refused by serde_json for a control character.
fn plain(bytes: &[u8]) -> bool {
    let flagged = bytes.iter().fold(0u8, |any, &b| {
        any | u8::from(b < 0x20) | u8::from(b == b'\\')
    });
    flagged == 0
}

fn borrowed(s: &str) -> Text<'_> {
    Text(Cow::Borrowed(s))
}

/// Where the first `"` of `bytes` is, eight bytes at a time: in each
/// eight-byte word, the bytes equal to `"` become zero, and the classic
/// zero-byte test marks them (its lowest mark is exact).
fn find_quote(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_le_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_le_bytes([0x80; 8]);
    const QUOTES: u64 = u64::from_le_bytes([b'"'; 8]);
    let mut words = bytes.chunks_exact(8);
    let mut at = 0;
    for word in words.by_ref() {
        let x = u64::from_le_bytes(word.try_into().expect("eight bytes")) ^ QUOTES;
        let marks = x.wrapping_sub(ONES) & !x & HIGHS;
        if marks != 0 {
            return Some(at + (marks.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    let tail = words.remainder();
    tail.iter().position(|&b| b == b'"').map(|p| at + p)
}

/// The fields already read (one bit each), so that a repeated one (which
/// serde_json refuses) is left to serde_json.
#[derive(Default)]
struct Seen(u32);

impl Seen {
    /// Marks field `bit`; `None` when it was already read.
    fn first(&mut self, bit: u32) -> Option<()> {
        let mask = 1 << bit;
        if self.0 & mask != 0 {
            return None;
        }
        self.0 |= mask;
        Some(())
    }

    fn has(&self, bit: u32) -> bool {
        self.0 & (1 << bit) != 0
    }
}

/// A position in the frame.
struct Cursor<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Cursor<'a> {
    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    /// Spaces; the frame has no other whitespace (see [`plain`]).
    fn skip_spaces(&mut self) {
        while let Some(b' ') = self.bytes().get(self.at) {
            self.at += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_spaces();
        self.bytes().get(self.at).copied()
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.at += 1)
    }

    /// After a member: true when another follows (its comma taken), false
    /// at the object's end (its brace taken).
    fn next_member(&mut self) -> Option<bool> {
        match self.peek()? {
            b',' => {
                self.at += 1;
                Some(true)
            }
            b'}' => {
                self.at += 1;
                Some(false)
            }
            _ => None,
        }
    }

    /// A member's key and its colon.
    fn key(&mut self) -> Option<&'a str> {
        let key = self.string()?;
        self.expect(b':')?;
        Some(key)
    }

    /// A string, borrowed: up to the next `"` (the frame is [`plain`], so
    /// that is its end, and it needs no unescaping).
    fn string(&mut self) -> Option<&'a str> {
        self.expect(b'"')?;
        let len = find_quote(&self.bytes()[self.at..])?;
        let start = self.at;
        self.at += len + 1;
        Some(&self.text[start..start + len])
    }

    /// A string or `null`.
    fn optional_string(&mut self) -> Option<Option<&'a str>> {
        if self.peek()? == b'n' {
            self.literal("null")?;
            return Some(None);
        }
        self.string().map(Some)
    }

    fn literal(&mut self, word: &str) -> Option<()> {
        self.skip_spaces();
        let rest = &self.text[self.at..];
        rest.starts_with(word).then(|| self.at += word.len())
    }

    /// An unsigned integer no larger than `max`, written as JSON allows
    /// (no leading zero, no fraction, no exponent).
    fn integer(&mut self, max: u64) -> Option<u64> {
        self.skip_spaces();
        let rest = &self.bytes()[self.at..];
        let (mut value, mut digits) = (0u64, 0usize);
        for &b in rest {
            if !b.is_ascii_digit() {
                break;
            }
            value = value.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
            digits += 1;
        }
        if digits == 0 || (digits > 1 && rest[0] == b'0') {
            return None;
        }
        if let Some(b'.' | b'e' | b'E') = rest.get(digits) {
            return None;
        }
        self.at += digits;
        (value <= max).then_some(value)
    }

    /// A string, an unsigned integer, `true`, `false` or `null`, unread.
    fn skip_scalar(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => self.string().map(drop),
            b't' => self.literal("true"),
            b'f' => self.literal("false"),
            b'n' => self.literal("null"),
            _ => self.integer(u64::MAX).map(drop),
        }
    }

    fn end_of_text(&mut self) -> Option<()> {
        self.skip_spaces();
        (self.at == self.text.len()).then_some(())
    }

    /// The `message` object.
    fn message(&mut self) -> Option<MessageView<'a>> {
        self.expect(b'{')?;
        let mut m = MessageView {
            id: borrowed(""),
            kind: None,
            from: None,
            to: None,
            workspace: None,
            topic: borrowed(""),
            payload: None,
            correlation_id: None,
            priority: 0,
            attempts: 0,
        };
        let mut seen = Seen::default();
        if self.peek()? == b'}' {
            return None;
        }
        loop {
            let key = self.key()?;
            match key {
                "id" => {
                    seen.first(0)?;
                    m.id = borrowed(self.string()?);
                }
                "topic" => {
                    seen.first(1)?;
                    m.topic = borrowed(self.string()?);
                }
                "kind" => {
                    seen.first(2)?;
                    m.kind = self.optional_string()?.map(borrowed);
                }
                "from" => {
                    seen.first(3)?;
                    m.from = self.optional_string()?.map(borrowed);
                }
                "to" => {
                    seen.first(4)?;
                    m.to = self.optional_string()?.map(borrowed);
                }
                "workspace" => {
                    seen.first(5)?;
                    m.workspace = self.optional_string()?.map(borrowed);
                }
                "correlation_id" => {
                    seen.first(6)?;
                    m.correlation_id = self.optional_string()?.map(borrowed);
                }
                "priority" => {
                    seen.first(7)?;
                    m.priority = u8::try_from(self.integer(u64::from(u8::MAX))?).ok()?;
                }
                "attempts" => {
                    seen.first(8)?;
                    m.attempts = u32::try_from(self.integer(u64::from(u32::MAX))?).ok()?;
                }
                "payload" => {
                    seen.first(9)?;
                    m.payload = self.payload()?;
                }
                _ => self.skip_scalar()?,
            }
            if !self.next_member()? {
                break;
            }
        }
        // `id` and `topic` have no default: without them serde_json fails.
        (seen.has(0) && seen.has(1)).then_some(m)
    }

    /// The measurement payload: `null`, or an object of scalars.
    fn payload(&mut self) -> Option<Option<Stamp>> {
        if self.peek()? == b'n' {
            self.literal("null")?;
            return Some(None);
        }
        self.expect(b'{')?;
        let mut stamp = Stamp::default();
        let mut seen = Seen::default();
        if self.peek()? == b'}' {
            self.at += 1;
            return Some(Some(stamp));
        }
        loop {
            let key = self.key()?;
            let field = match key {
                "s" => 0,
                "k" => 1,
                "q" => 2,
                "t" => 3,
                "w" => 4,
                _ => {
                    self.skip_scalar()?;
                    if !self.next_member()? {
                        break;
                    }
                    continue;
                }
            };
            seen.first(field)?;
            let value = self.integer(if field < 2 {
                u64::from(u32::MAX)
            } else {
                u64::MAX
            })?;
            match field {
                0 => stamp.s = u32::try_from(value).ok()?,
                1 => stamp.k = u32::try_from(value).ok()?,
                2 => stamp.q = value,
                3 => stamp.t = value,
                _ => stamp.w = value,
            }
            if !self.next_member()? {
                break;
            }
        }
        Some(Some(stamp))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The general reader alone (`wire::parse` tries this reader first).
    fn serde_reading(text: &str) -> Result<Incoming<'_>, serde_json::Error> {
        serde_json::from_str(text)
    }

    fn bus_frame(payload: serde_json::Value, pattern: Option<&str>) -> String {
        let m = bus::message::AgentMessage::new("agent:topic-1", payload)
            .in_workspace("ws-0")
            .from_agent("publishers-3");
        bus::protocol::message_frame(pattern, None, &m.to_json())
    }

    #[test]
    fn reads_the_bus_frames_the_simulator_gets_as_serde_json_does() {
        let stamp =
            serde_json::json!({"s":1003,"k":7,"q":123456,"t":12345678,"w":12345690,"p":"xxxxxxxx"});
        for pattern in [None, Some("agent:topic-*")] {
            let text = bus_frame(stamp.clone(), pattern);
            let fast = message_push(&text).expect("the fast reader takes the bus's own frames");
            assert_eq!(fast.pattern, pattern);
            assert_eq!(fast.message.as_ref().unwrap().payload.unwrap().q, 123_456);
            assert_eq!(fast.into_incoming(), serde_reading(&text).unwrap());
        }
    }

    use proptest::prelude::*;

    /// Strings with what JSON makes hard: quotes, backslashes, control
    /// characters, non-ASCII.
    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z0-9:_*-]{0,12}",
            proptest::string::string_regex("[a\\\"\u{0}-\u{1f}é😀 ]{0,6}").unwrap(),
        ]
    }

    fn scalar() -> impl Strategy<Value = serde_json::Value> {
        prop_oneof![
            any::<u64>().prop_map(serde_json::Value::from),
            (0u64..300).prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<f64>().prop_map(serde_json::Value::from),
            any::<bool>().prop_map(serde_json::Value::from),
            Just(serde_json::Value::Null),
            text().prop_map(serde_json::Value::from),
        ]
    }

    /// What the bus's frames hold: small numbers, plain names, nulls.
    fn plain_scalar() -> impl Strategy<Value = serde_json::Value> {
        prop_oneof![
            (0u64..300).prop_map(serde_json::Value::from),
            any::<u32>().prop_map(serde_json::Value::from),
            any::<u64>().prop_map(serde_json::Value::from),
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            "[a-z0-9:_*é-]{0,40}".prop_map(serde_json::Value::from),
        ]
    }

    fn value() -> impl Strategy<Value = serde_json::Value> {
        scalar().prop_recursive(2, 8, 3, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..3).prop_map(serde_json::Value::from),
                proptest::collection::btree_map("[a-z]{1,2}", inner, 0..3)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// A value of the type field `key` has in the bus's frames.
    fn typed(key: &str) -> BoxedStrategy<serde_json::Value> {
        let name = || "[a-z0-9:_*é-]{0,40}".prop_map(serde_json::Value::from);
        match key {
            "id" | "topic" | "p" => name().boxed(),
            "kind" | "from" | "to" | "workspace" | "correlation_id" => {
                prop_oneof![4 => name(), 1 => Just(serde_json::Value::Null)].boxed()
            }
            "priority" => (0u64..300).prop_map(serde_json::Value::from).boxed(),
            "attempts" | "s" | "k" => prop_oneof![
                8 => any::<u32>().prop_map(serde_json::Value::from),
                1 => any::<u64>().prop_map(serde_json::Value::from),
            ]
            .boxed(),
            "created_at_us" | "q" | "t" | "w" => {
                any::<u64>().prop_map(serde_json::Value::from).boxed()
            }
            _ => plain_scalar().boxed(),
        }
    }

    /// A member of a message or payload: mostly the fields the reader
    /// knows, mostly with values of their type, sometimes anything.
    fn member(keys: &'static [&'static str]) -> impl Strategy<Value = (String, serde_json::Value)> {
        let key = prop_oneof![
            6 => proptest::sample::select(keys).prop_map(str::to_owned),
            1 => "[a-z_]{1,8}",
        ];
        key.prop_flat_map(|key| {
            let value = prop_oneof![30 => typed(&key), 1 => scalar(), 1 => value()];
            (Just(key), value)
        })
    }

    /// An object written member by member, so keys may repeat and come in
    /// any order.
    fn object(members: &[(String, String)]) -> String {
        let inner: Vec<String> = members
            .iter()
            .map(|(k, v)| format!("{}:{v}", serde_json::to_string(k).unwrap()))
            .collect();
        format!("{{{}}}", inner.join(","))
    }

    fn frame() -> impl Strategy<Value = String> {
        const MESSAGE: &[&str] = &[
            "id",
            "kind",
            "from",
            "to",
            "workspace",
            "topic",
            "correlation_id",
            "priority",
            "attempts",
            "created_at_us",
        ];
        const PAYLOAD: &[&str] = &["s", "k", "q", "t", "w", "p"];
        let payload = proptest::collection::vec(member(PAYLOAD), 0..7).prop_map(|ms| {
            let ms: Vec<(String, String)> =
                ms.into_iter().map(|(k, v)| (k, v.to_string())).collect();
            object(&ms)
        });
        let message = (
            // Every field once, in the bus's order, or members drawn at
            // random (missing, repeated, unknown ones).
            prop_oneof![
                1 => MESSAGE
                    .iter()
                    .filter(|k| **k != "payload")
                    .map(|k| typed(k).prop_map(move |v| ((*k).to_owned(), v)))
                    .collect::<Vec<_>>(),
                2 => proptest::collection::vec(member(MESSAGE), 0..12),
            ],
            prop_oneof![8 => payload, 1 => value().prop_map(|v| v.to_string())],
            0usize..10,
        )
            .prop_map(|(ms, payload, at)| {
                let mut ms: Vec<(String, String)> =
                    ms.into_iter().map(|(k, v)| (k, v.to_string())).collect();
                ms.insert(at.min(ms.len()), ("payload".to_owned(), payload));
                object(&ms)
            });
        let top = prop_oneof![
            Just(("pattern".to_owned(), "\"agent:*\"".to_owned())),
            Just(("pattern".to_owned(), "null".to_owned())),
            Just(("offset".to_owned(), "\"1733155200123-42\"".to_owned())),
            Just(("epoch".to_owned(), "\"9f1c2ab47d3e8a01\"".to_owned())),
            Just(("id".to_owned(), "\"7\"".to_owned())),
            ("[a-z]{1,5}", plain_scalar()).prop_map(|(k, v)| (k, v.to_string())),
            ("[a-z]{1,5}", scalar()).prop_map(|(k, v)| (k, v.to_string())),
        ];
        let pretty = proptest::bool::weighted(0.1);
        (proptest::collection::vec(top, 0..2), message, pretty).prop_map(
            |(extra, message, pretty)| {
                let mut members = vec![("op".to_owned(), "\"message\"".to_owned())];
                members.extend(extra);
                members.push(("message".to_owned(), message));
                let text = object(&members);
                if pretty {
                    text.replace(',', " ,\n ")
                } else {
                    text
                }
            },
        )
    }

    /// Whenever the fast reader answers, serde_json gives the same answer;
    /// and it answers often enough that the comparison is not empty.
    #[test]
    fn the_fast_reader_agrees_with_serde_json() {
        let accepted = std::cell::Cell::new(0u32);
        let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(3000));
        runner
            .run(&frame(), |text| {
                if let Some(fast) = message_push(&text) {
                    accepted.set(accepted.get() + 1);
                    let slow = serde_reading(&text);
                    prop_assert!(slow.is_ok(), "serde_json refused {text}: {slow:?}");
                    prop_assert_eq!(fast.into_incoming(), slow.unwrap());
                }
                Ok(())
            })
            .unwrap();
        assert!(
            accepted.get() >= 300,
            "only {} of 3000 generated frames took the fast path",
            accepted.get()
        );
    }

    proptest! {

        #[test]
        fn the_fast_reader_takes_every_simulator_payload(
            s in any::<u32>(), k in any::<u32>(), q in any::<u64>(), t in any::<u64>(),
            w in any::<u64>(), bytes in 0u32..300, pattern in any::<bool>(),
        ) {
            let mut payload = String::new();
            super::super::wire::write_payload(&mut payload, &Stamp { s, k, q, t, w }, bytes);
            let payload: serde_json::Value = serde_json::from_str(&payload).unwrap();
            let text = bus_frame(payload, pattern.then_some("agent:*"));
            let fast = message_push(&text);
            prop_assert!(fast.is_some(), "{text}");
            let stamp = fast.unwrap().message.unwrap().payload.unwrap();
            prop_assert_eq!(stamp, Stamp { s, k, q, t, w });
        }
    }

    #[test]
    fn quotes_are_found_wherever_they_are() {
        for len in 0..40 {
            for at in 0..len {
                let mut bytes = vec![b'x'; len];
                bytes[at] = b'"';
                if at + 1 < len {
                    bytes[at + 1] = b'"';
                }
                assert_eq!(find_quote(&bytes), Some(at), "len {len}, quote at {at}");
            }
            assert_eq!(
                find_quote(&vec![0xa2; len]),
                None,
                "no quote in {len} bytes"
            );
        }
    }

    #[test]
    fn steps_aside_for_what_it_does_not_read() {
        let escaped = bus_frame(serde_json::json!({"s":1,"p":"a\"b"}), None);
        let nested = bus_frame(serde_json::json!({"s":1,"x":{"y":[1,2]}}), None);
        let negative = bus_frame(serde_json::json!({"s":-1}), None);
        let float = bus_frame(serde_json::json!({"t":1.5}), None);
        let too_big = bus_frame(serde_json::json!({"s":4294967296u64}), None);
        for text in [
            escaped.as_str(),
            nested.as_str(),
            negative.as_str(),
            float.as_str(),
            too_big.as_str(),
            r#"{"op":"ok","id":"1","re":"publish"}"#,
            r#"{"op":"message","message":{"id":"a","topic":"t"},"id":"x"}"#,
            r#"{"op":"message","message":{"id":"a","topic":"t","topic":"u"}}"#,
            r#"{"op":"message","message":{"id":"a"}}"#,
            r#"{"op":"message","message":{"id":"a","topic":"t"}} x"#,
            "{\"op\":\"message\",\"message\":{\"id\":\"a\\u0041\",\"topic\":\"t\"}}",
            "{\"op\":\"message\",\"message\":{\"id\":\"a\u{1}\",\"topic\":\"t\"}}",
        ] {
            assert!(message_push(text).is_none(), "{text}");
        }
    }
}

//! Human-readable durations ("250ms", "5s", "2m") as they appear in scenario files.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A duration written as text in a scenario file.
///
/// Scenario authors think in "5s" and "250ms", not in `{ secs, nanos }`
/// tables, so this newtype (de)serializes through `humantime` and its JSON
/// Schema is a string. Serializing writes the canonical humantime form, which
/// keeps [`Scenario::content_hash`](super::Scenario::content_hash) independent
/// of how the author spelled the value ("1000ms" and "1s" hash the same).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    /// Builds a duration from whole milliseconds (handy for defaults).
    pub const fn from_millis(ms: u64) -> Self {
        Self(Duration::from_millis(ms))
    }

    /// The wrapped standard duration.
    pub const fn get(self) -> Duration {
        self.0
    }
}

impl From<Duration> for HumanDuration {
    fn from(value: Duration) -> Self {
        Self(value)
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_zero() {
            return f.write_str("0s");
        }
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(DurationVisitor)
    }
}

/// Accepts only strings: a bare number would leave the unit to guesswork.
struct DurationVisitor;

impl Visitor<'_> for DurationVisitor {
    type Value = HumanDuration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a duration string such as \"250ms\", \"5s\" or \"2m\"")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
        humantime::parse_duration(text.trim())
            .map(HumanDuration)
            .map_err(|err| E::custom(format!("invalid duration {text:?}: {err}")))
    }
}

impl JsonSchema for HumanDuration {
    fn schema_name() -> Cow<'static, str> {
        "HumanDuration".into()
    }

    fn json_schema(_generator: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "A duration with a unit, e.g. \"250ms\", \"5s\", \"2m\", \"1h 30m\".",
            "pattern": "^\\s*([0-9]+\\s*[a-zµ]+\\s*)+$"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize, Serialize)]
    struct Holder {
        d: HumanDuration,
    }

    #[test]
    fn parses_common_units() {
        for (text, expected) in [
            ("250ms", Duration::from_millis(250)),
            ("5s", Duration::from_secs(5)),
            ("2m", Duration::from_secs(120)),
            ("1h 30m", Duration::from_secs(5400)),
            ("0ms", Duration::ZERO),
        ] {
            let holder: Holder = toml::from_str(&format!("d = {text:?}")).unwrap();
            assert_eq!(holder.d.get(), expected, "{text}");
        }
    }

    #[test]
    fn rejects_numbers_and_garbage() {
        assert!(toml::from_str::<Holder>("d = 5").is_err());
        let err = toml::from_str::<Holder>("d = \"5 parsecs\"").unwrap_err();
        assert!(err.message().contains("invalid duration"), "{err}");
    }

    #[test]
    fn serializes_canonically() {
        let a = HumanDuration(Duration::from_millis(1000));
        assert_eq!(a.to_string(), "1s");
        assert_eq!(HumanDuration::default().to_string(), "0s");
        assert_eq!(HumanDuration::from_millis(1500).to_string(), "1s 500ms");
    }
}

//! What a node of the scenario format's JSON Schema asks for, once its `$ref` is followed; in words, and as stand-in values.
//!
//! The schema is the one `json_schema()` publishes (generated from the
//! types by schemars), so `schema_check` and serde agree on what a scenario
//! may contain. Words are for "expected ..." ("a whole number (0 or
//! more)", "a duration such as \"30s\""); stand-ins are values of the
//! right type that let a copy of a file with mistakes be read on.

use std::sync::LazyLock;

use serde_json::{Map, Value as Json};
use toml::de::DeValue;

use super::error::{FieldPath, PathSegment};
use super::schema::Scenario;
use super::wording;

/// The format's schema, as `json_schema()` publishes it (generated once).
pub(super) static SCHEMA: LazyLock<Json> =
    LazyLock::new(|| schemars::schema_for!(Scenario).to_value());

/// Anything goes where a schema says nothing.
pub(super) static ANYTHING: Json = Json::Bool(true);

/// The definition whose values are written as durations ("30s").
pub(super) const DURATION: &str = "HumanDuration";

/// What a schema asks for, once its `$ref` is followed.
pub(super) enum Shape<'s> {
    /// One of a fixed set of strings (a Rust enum of unit variants).
    Choice {
        /// What the set is called, e.g. "behaviour".
        noun: String,
        /// The strings allowed.
        allowed: Vec<&'s str>,
    },
    /// Any of these schemas (`oneOf` / `anyOf`; null, which TOML cannot
    /// write, left out).
    Alternatives(Vec<&'s Json>),
    /// Values of these JSON types (null left out), further constrained by
    /// the schema's other keywords.
    Typed {
        /// "string", "integer", "number", "boolean", "array", "object".
        types: Vec<&'s str>,
        /// The schema itself, for `format`, bounds, `items`, `properties`.
        schema: &'s Json,
        /// The definition it came from, e.g. `HumanDuration`.
        name: Option<&'s str>,
    },
    /// No constraint.
    Anything,
}

/// The scenario schema's definitions (`$defs`), which `$ref`s point at.
#[derive(Debug, Clone, Copy)]
pub(super) struct Schemas<'s> {
    defs: Option<&'s Map<String, Json>>,
}

impl Schemas<'static> {
    /// The definitions of the scenario schema ([`SCHEMA`]).
    pub(super) fn of_scenarios() -> Self {
        Schemas {
            defs: SCHEMA.get("$defs").and_then(Json::as_object),
        }
    }
}

impl<'s> Schemas<'s> {
    /// What `schema` asks for.
    pub(super) fn shape(&self, schema: &'s Json) -> Shape<'s> {
        let (schema, name) = self.resolve(schema);
        let alternatives = ["oneOf", "anyOf"]
            .iter()
            .find_map(|k| schema.get(*k).and_then(Json::as_array));
        if let Some(alternatives) = alternatives {
            let consts: Option<Vec<&str>> = alternatives
                .iter()
                .map(|a| a.get("const").and_then(Json::as_str))
                .collect();
            if let Some(allowed) = consts {
                let noun = words_of(name.unwrap_or("value"));
                return Shape::Choice { noun, allowed };
            }
            let mut useful: Vec<&Json> = alternatives
                .iter()
                .filter(|a| self.resolve(a).0.get("type").and_then(Json::as_str) != Some("null"))
                .collect();
            return match useful.len() {
                1 => self.shape(useful.remove(0)),
                _ => Shape::Alternatives(useful),
            };
        }
        let types: Vec<&str> = match schema.get("type") {
            Some(Json::String(t)) => vec![t.as_str()],
            Some(Json::Array(ts)) => ts.iter().filter_map(Json::as_str).collect(),
            _ => return Shape::Anything,
        };
        let types = types.into_iter().filter(|t| *t != "null").collect();
        Shape::Typed {
            types,
            schema,
            name,
        }
    }

    /// The schema a `$ref` points at, and the definition's name.
    fn resolve(&self, mut schema: &'s Json) -> (&'s Json, Option<&'s str>) {
        let mut name = None;
        while let Some(reference) = schema.get("$ref").and_then(Json::as_str) {
            let key = reference.strip_prefix("#/$defs/").unwrap_or(reference);
            match self.defs.and_then(|defs| defs.get_key_value(key)) {
                Some((key, def)) => (schema, name) = (def, Some(key.as_str())),
                None => return (&ANYTHING, name),
            }
        }
        (schema, name)
    }

    /// Whether `value` is of a type `schema` takes (its content may still
    /// be wrong): picks the alternative of a `oneOf` that applies.
    pub(super) fn fits(&self, value: &DeValue<'_>, schema: &'s Json) -> bool {
        match self.shape(schema) {
            Shape::Anything => true,
            Shape::Choice { .. } => value.is_str(),
            Shape::Alternatives(all) => all.iter().any(|a| self.fits(value, a)),
            Shape::Typed { types, .. } => fits_types(value, &types),
        }
    }

    /// What a schema asks for, in words: "a whole number (0 or more)".
    pub(super) fn describe(&self, schema: &'s Json, at: &FieldPath) -> String {
        match self.shape(schema) {
            Shape::Anything => "anything".to_owned(),
            Shape::Choice { noun, allowed } => format!(
                "{} in quotes, one of: {}",
                wording::with_article(&noun),
                allowed.join(", ")
            ),
            Shape::Alternatives(all) => all
                .iter()
                .map(|a| self.describe(a, at))
                .collect::<Vec<_>>()
                .join(" or "),
            Shape::Typed {
                types,
                schema,
                name,
            } => types
                .iter()
                .map(|t| self.describe_type(t, schema, name, at))
                .collect::<Vec<_>>()
                .join(" or "),
        }
    }

    fn describe_type(
        &self,
        kind: &str,
        schema: &'s Json,
        name: Option<&str>,
        at: &FieldPath,
    ) -> String {
        match kind {
            "string" if name == Some(DURATION) => {
                "a duration such as \"30s\" or \"500ms\"".to_owned()
            }
            "string" if format_of(schema) == Some("ip") => {
                "an IP address such as \"10.0.0.2\"".to_owned()
            }
            "string" => "a string in quotes".to_owned(),
            "integer" => integer_words(integer_bounds(schema), false),
            "number" => "a number".to_owned(),
            "boolean" => "true or false".to_owned(),
            "object" => "a table".to_owned(),
            "array" => {
                let items = schema.get("items").unwrap_or(&ANYTHING);
                match self.shape(items) {
                    Shape::Typed { types, .. } if types == ["object"] => match at.0.last() {
                        Some(PathSegment::Key(key)) => {
                            format!("a list of tables ([[{key}]] sections)")
                        }
                        _ => "a list of tables".to_owned(),
                    },
                    Shape::Anything => "a list".to_owned(),
                    _ => format!("a list of: {}", self.describe(items, at)),
                }
            }
            other => other.to_owned(),
        }
    }

    /// Two different values of the type `schema` asks for. Only their type
    /// matters: a broken rule that the two copies do not both show is the
    /// stand-ins' doing (a fault after the end of a stand-in phase, a rule
    /// of a stand-in behaviour) and is not reported.
    pub(super) fn stand_ins(&self, schema: &'s Json) -> [toml::Value; 2] {
        [self.stand_in(schema, 0), self.stand_in(schema, 1)]
    }

    fn stand_in(&self, schema: &'s Json, copy: usize) -> toml::Value {
        let pick = |values: [&str; 2]| toml::Value::String(values[copy].to_owned());
        match self.shape(schema) {
            Shape::Choice { allowed, .. } => {
                let value = if copy == 0 {
                    allowed.first()
                } else {
                    allowed.last()
                };
                toml::Value::String(value.copied().unwrap_or_default().to_owned())
            }
            Shape::Alternatives(all) => all
                .first()
                .map_or(toml::Value::Table(toml::Table::new()), |a| {
                    self.stand_in(a, copy)
                }),
            Shape::Anything => toml::Value::Table(toml::Table::new()),
            Shape::Typed {
                types,
                schema,
                name,
            } => match types.first().copied().unwrap_or("object") {
                "string" if name == Some(DURATION) => pick(["1s", "1h"]),
                "string" if format_of(schema) == Some("ip") => pick(["127.0.0.1", "::1"]),
                "string" => pick(["stand-in", "another stand-in"]),
                "integer" => {
                    let (lo, hi) = integer_bounds(schema);
                    let wanted = [1, 1000][copy];
                    toml::Value::Integer(i128::clamp(wanted, lo, hi.max(lo)) as i64)
                }
                "number" => toml::Value::Float([1.0, 0.5][copy]),
                "boolean" => toml::Value::Boolean(copy == 1),
                "array" => toml::Value::Array(Vec::new()),
                _ => {
                    let mut table = toml::Table::new();
                    let properties = schema.get("properties").and_then(Json::as_object);
                    let required = schema.get("required").and_then(Json::as_array);
                    for name in required.into_iter().flatten().filter_map(Json::as_str) {
                        let property = properties.and_then(|p| p.get(name)).unwrap_or(&ANYTHING);
                        table.insert(name.to_owned(), self.stand_in(property, copy));
                    }
                    toml::Value::Table(table)
                }
            },
        }
    }
}

/// Whether a TOML value has one of these JSON types (a TOML integer is
/// also a number: serde reads `rate = 5` as 5.0).
pub(super) fn fits_types(value: &DeValue<'_>, types: &[&str]) -> bool {
    let kinds: &[&str] = match value {
        DeValue::String(_) => &["string"],
        DeValue::Integer(_) => &["integer", "number"],
        DeValue::Float(_) => &["number"],
        DeValue::Boolean(_) => &["boolean"],
        DeValue::Datetime(_) => &[],
        DeValue::Array(_) => &["array"],
        DeValue::Table(_) => &["object"],
    };
    types.iter().any(|t| kinds.contains(t))
}

/// A schema's `format`, e.g. "uint32" or "ip".
pub(super) fn format_of(schema: &Json) -> Option<&str> {
    schema.get("format").and_then(Json::as_str)
}

/// The whole numbers an integer schema allows: its `minimum` and `maximum`,
/// narrowed by its `format` (schemars writes `uint32` without a maximum).
pub(super) fn integer_bounds(schema: &Json) -> (i128, i128) {
    let (mut lo, mut hi) = match format_of(schema) {
        Some("uint8") => (0, i128::from(u8::MAX)),
        Some("uint16") => (0, i128::from(u16::MAX)),
        Some("uint32") => (0, i128::from(u32::MAX)),
        Some("uint64" | "uint") => (0, i128::from(u64::MAX)),
        Some("int32") => (i128::from(i32::MIN), i128::from(i32::MAX)),
        _ => (i128::from(i64::MIN), i128::from(i64::MAX)),
    };
    if let Some(min) = schema.get("minimum").and_then(Json::as_i64) {
        lo = lo.max(i128::from(min));
    }
    if let Some(max) = schema.get("maximum").and_then(Json::as_u64) {
        hi = hi.min(i128::from(max));
    }
    (lo, hi)
}

/// "a whole number (0 or more)", or the range when the number written is
/// `above` it or the range is narrow.
pub(super) fn integer_words((lo, hi): (i128, i128), above: bool) -> String {
    if lo == 0 && hi >= i128::from(u32::MAX) && !above {
        "a whole number (0 or more)".to_owned()
    } else if lo <= i128::from(i64::MIN) && hi >= i128::from(i64::MAX) {
        "a whole number".to_owned()
    } else {
        format!("a whole number from {lo} to {hi}")
    }
}

/// "TargetMode" → "target mode".
fn words_of(name: &str) -> String {
    let mut words = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            words.push(' ');
        }
        words.extend(c.to_lowercase());
    }
    words
}

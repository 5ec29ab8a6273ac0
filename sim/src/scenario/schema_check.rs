//! The first reading of a scenario: the spanned TOML document walked against the format's JSON Schema, every mistake found at once.
//!
//! What each node of the schema asks for comes from `schema_shape`. Each
//! unknown key, wrong type, value outside a fixed set, whole
//! number out of range, unreadable duration and missing required key is
//! recorded with its span (a key's own span for an unknown key, the table's
//! for a missing one) in plain words. The walk also writes down the edits
//! that make a copy of the document readable past each mistake (see
//! `read::past`), so the rule checks can run on the rest of the file.

use std::net::IpAddr;
use std::ops::Range;

use serde_json::Value as Json;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::error::{FieldPath, Found};
use super::schema_shape::{
    ANYTHING, DURATION, SCHEMA, Schemas, Shape, fits_types, format_of, integer_bounds,
    integer_words,
};
use super::wording;

/// A change to a copy of the document that reads past one mistake.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Edit {
    /// The entry goes (an unknown key, a bad optional value): serde then
    /// uses the default.
    Remove(FieldPath),
    /// The entry becomes a stand-in of the expected type (a bad or missing
    /// required value, a bad list item): one for each of the two copies.
    Put(FieldPath, [toml::Value; 2]),
}

/// What the walk found.
#[derive(Debug, Default)]
pub(super) struct Checked {
    /// Every mistake, in the order walked (not yet file order).
    pub found: Vec<Found>,
    /// Applied in order, these make a copy of the document readable.
    pub edits: Vec<Edit>,
    /// Fields that no longer say what the author wrote: rules broken under
    /// them are the stand-ins', not the author's.
    pub stand_ins: Vec<FieldPath>,
}

/// Walks `document` against the scenario schema.
pub(super) fn check(document: &Spanned<DeValue<'_>>) -> Checked {
    let mut walk = Walk {
        schemas: Schemas::of_scenarios(),
        checked: Checked::default(),
    };
    walk.value(document, &SCHEMA, &FieldPath::root());
    walk.checked
}

struct Walk<'s> {
    schemas: Schemas<'s>,
    checked: Checked,
}

impl<'s> Walk<'s> {
    fn found(&mut self, span: Range<usize>, field: &FieldPath, message: String) {
        self.checked.found.push((span, field.clone(), message));
    }

    /// Checks one value; false when it cannot be used as written (the
    /// caller then removes or replaces it). Mistakes inside a table or list
    /// are repaired there, and leave it usable.
    fn value(&mut self, value: &Spanned<DeValue<'_>>, schema: &'s Json, at: &FieldPath) -> bool {
        let span = value.span();
        match self.schemas.shape(schema) {
            Shape::Anything => true,
            Shape::Choice { noun, allowed } => match value.get_ref() {
                DeValue::String(text) if allowed.contains(&text.as_ref()) => true,
                DeValue::String(text) => {
                    self.found(span, at, wording::not_one_of(text, &noun, &allowed));
                    false
                }
                other => {
                    let expected = self.schemas.describe(schema, at);
                    self.found(span, at, expected_found(&expected, other));
                    false
                }
            },
            Shape::Alternatives(alternatives) => {
                let fitting = alternatives
                    .iter()
                    .find(|a| self.schemas.fits(value.get_ref(), a));
                match fitting {
                    Some(alternative) => self.value(value, alternative, at),
                    None => {
                        let expected = self.schemas.describe(schema, at);
                        self.found(span, at, expected_found(&expected, value.get_ref()));
                        false
                    }
                }
            }
            Shape::Typed {
                types,
                schema: typed,
                name,
            } => {
                if !fits_types(value.get_ref(), &types) {
                    let expected = self.schemas.describe(schema, at);
                    self.found(span, at, expected_found(&expected, value.get_ref()));
                    return false;
                }
                match value.get_ref() {
                    DeValue::Table(table) => self.table(table, span, typed, at),
                    DeValue::Array(items) => {
                        let item_schema = typed.get("items").unwrap_or(&ANYTHING);
                        for (i, item) in items.iter().enumerate() {
                            let here = at.index(i);
                            if !self.value(item, item_schema, &here) {
                                let stand_ins = self.schemas.stand_ins(item_schema);
                                self.replaced(Edit::Put(here.clone(), stand_ins), here);
                            }
                        }
                        true
                    }
                    scalar => match scalar_mistake(scalar, &types, typed, name) {
                        None => true,
                        Some(expected) => {
                            self.found(span, at, expected_found(&expected, scalar));
                            false
                        }
                    },
                }
            }
        }
    }

    /// Checks a table's keys and values, and that its required keys are
    /// there.
    fn table(
        &mut self,
        table: &DeTable<'_>,
        span: Range<usize>,
        schema: &'s Json,
        at: &FieldPath,
    ) -> bool {
        let properties = schema.get("properties").and_then(Json::as_object);
        let known: Vec<&str> =
            properties.map_or(Vec::new(), |p| p.keys().map(String::as_str).collect());
        let required: Vec<&str> = schema
            .get("required")
            .and_then(Json::as_array)
            .map_or(Vec::new(), |r| r.iter().filter_map(Json::as_str).collect());
        let extra = schema.get("additionalProperties").unwrap_or(&ANYTHING);
        let mut suggested = Vec::new();
        for (key, value) in table {
            let name = key.get_ref().as_ref();
            let here = at.key(name);
            if let Some(property) = properties.and_then(|p| p.get(name)) {
                if !self.value(value, property, &here) {
                    let edit = if required.contains(&name) {
                        Edit::Put(here.clone(), self.schemas.stand_ins(property))
                    } else {
                        Edit::Remove(here.clone())
                    };
                    self.replaced(edit, here);
                }
            } else if extra == &Json::Bool(false) {
                self.found(key.span(), &here, wording::unknown_key(name, &known));
                suggested.extend(wording::closest(name, &known));
                self.checked.edits.push(Edit::Remove(here));
            } else if !self.key_allowed(name, key.span(), schema, &here) {
                self.checked.edits.push(Edit::Remove(here));
            } else if !self.value(value, extra, &here) {
                self.replaced(Edit::Remove(here.clone()), here);
            }
        }
        for name in required.iter().filter(|name| !table.contains_key(**name)) {
            let here = at.key(name);
            // A misspelt key already says "did you mean" this one.
            if !suggested.contains(name) {
                self.found(
                    span.clone(),
                    &here,
                    format!("missing required key `{name}`"),
                );
            }
            let property = properties.and_then(|p| p.get(*name)).unwrap_or(&ANYTHING);
            self.replaced(
                Edit::Put(here.clone(), self.schemas.stand_ins(property)),
                here,
            );
        }
        true
    }

    /// A key of a map whose keys are a fixed set (`propertyNames`), e.g. an
    /// operation name under `thresholds.operations`.
    fn key_allowed(
        &mut self,
        name: &str,
        span: Range<usize>,
        schema: &'s Json,
        at: &FieldPath,
    ) -> bool {
        let Some(names) = schema.get("propertyNames") else {
            return true;
        };
        match self.schemas.shape(names) {
            Shape::Choice { noun, allowed } if !allowed.contains(&name) => {
                self.found(span, at, wording::not_one_of(name, &noun, &allowed));
                false
            }
            _ => true,
        }
    }

    fn replaced(&mut self, edit: Edit, stand_in: FieldPath) {
        self.checked.edits.push(edit);
        self.checked.stand_ins.push(stand_in);
    }
}

/// What is wrong with a scalar of the right type: the expected value in
/// words, or None when it is fine.
fn scalar_mistake(
    value: &DeValue<'_>,
    types: &[&str],
    schema: &Json,
    name: Option<&str>,
) -> Option<String> {
    match value {
        DeValue::String(text) if name == Some(DURATION) => humantime::parse_duration(text.trim())
            .is_err()
            .then(|| "a duration such as \"30s\" or \"500ms\"".to_owned()),
        DeValue::String(text) if format_of(schema) == Some("ip") => text
            .parse::<IpAddr>()
            .is_err()
            .then(|| "an IP address such as \"10.0.0.2\"".to_owned()),
        DeValue::Integer(integer) if !types.contains(&"number") => {
            let number = i128::from_str_radix(integer.as_str(), integer.radix()).ok();
            let bounds = integer_bounds(schema);
            match number {
                Some(n) if (bounds.0..=bounds.1).contains(&n) => None,
                _ => Some(integer_words(bounds, number.is_none_or(|n| n > bounds.1))),
            }
        }
        _ => None,
    }
}

fn expected_found(expected: &str, value: &DeValue<'_>) -> String {
    format!("expected {expected}, found {}", wording::found(value))
}

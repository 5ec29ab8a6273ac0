//! Every type error of a file, not only the first: serde stops at the first
//! unknown key, wrong type or bad value, so after each one the offending
//! entry is taken out of (or, when it is required, replaced by a stand-in
//! of the expected type in) a copy of the document, and the copy read
//! again, until it reads or nothing more can be recovered. Only the
//! errors are kept; the stand-ins never reach a scenario.

use std::ops::Range;

use toml::Spanned;
use toml::de::DeValue;

use super::error::{FieldPath, PathSegment};
use super::schema::Scenario;
use super::wording::{self, Said};

/// Most errors gathered from one file.
const MAX_ERRORS: usize = 50;

/// One error: where, which field, what (in plain words).
pub(super) type Found = (Range<usize>, FieldPath, String);

/// The type errors of a file, and what was read past them.
#[derive(Debug)]
pub(super) struct Unreadable {
    /// Every type error found, in the order found.
    pub found: Vec<Found>,
    /// The scenario read from the repaired copy, when every error could be
    /// repaired: its rule checks are worth running too, except under
    /// `stand_ins`.
    pub repaired: Option<Box<Scenario>>,
    /// Fields (or whole tables, for a replaced choice such as a behaviour)
    /// that hold stand-ins: rules broken there are the stand-ins', not the
    /// author's.
    pub stand_ins: Vec<FieldPath>,
}

/// Reads `text` (whose spanned `document` is already parsed) as a scenario,
/// or returns every type error found.
pub(super) fn deserialize(
    text: &str,
    document: &Spanned<DeValue<'_>>,
) -> Result<Scenario, Unreadable> {
    let syntax = |err: toml::de::Error| Unreadable {
        found: vec![(
            err.span().unwrap_or(0..0),
            FieldPath::root(),
            format!("not valid TOML: {}", err.message()),
        )],
        repaired: None,
        stand_ins: Vec::new(),
    };
    // First with toml's own reader, whose errors carry exact spans.
    let reader = toml::Deserializer::parse(text).map_err(syntax)?;
    let err = match serde_path_to_error::deserialize::<_, Scenario>(reader) {
        Ok(scenario) => return Ok(scenario),
        Err(err) => err,
    };
    let mut copy: toml::Value = toml::from_str(text).map_err(syntax)?;
    let mut found = Vec::new();
    let mut next = Some((
        FieldPath::from_serde(err.path()),
        err.inner().message().to_owned(),
        err.inner().span(),
    ));
    // Fields this recovery took out: their "missing" is not the author's.
    let mut taken: Vec<FieldPath> = Vec::new();
    let mut stand_ins = Vec::new();
    let mut repaired = None;
    let mut suggested: Vec<FieldPath> = Vec::new();
    while let Some((at, message, span)) = next.take() {
        let said = Said::of(&message);
        let field = match &said {
            Said::UnknownKey { key, .. } | Said::MissingKey(key) => key_path(&at, key),
            _ => at,
        };
        let plain = wording::plain(&message);
        if found.iter().any(|(_, f, m)| *f == field && *m == plain) {
            // A stand-in that did not help: nothing more to learn.
            break;
        }
        // A key reported missing because it was misspelt (and so taken out
        // as unknown, with this very name suggested) is one mistake, not two.
        let misspelt = suggested.contains(&field);
        if let Said::UnknownKey { key, allowed } = &said
            && let Some(name) = wording::closest(key, allowed)
        {
            let mut table = field.clone();
            table.0.pop();
            suggested.push(table.key(name));
        }
        if !(matches!(said, Said::MissingKey(_)) && (taken.contains(&field) || misspelt)) {
            let span = span.unwrap_or_else(|| field.locate(document));
            found.push((span, field.clone(), plain));
        }
        if found.len() >= MAX_ERRORS || !repair(&mut copy, &field, &said, &message) {
            break;
        }
        match said {
            Said::UnknownKey { .. } => {}
            Said::UnknownValue { .. } => {
                let mut table = field.clone();
                table.0.pop();
                stand_ins.push(table);
            }
            _ => stand_ins.push(field.clone()),
        }
        taken.push(field);
        match serde_path_to_error::deserialize::<_, Scenario>(copy.clone()) {
            Ok(scenario) => repaired = Some(Box::new(scenario)),
            Err(err) => {
                next = Some((
                    FieldPath::from_serde(err.path()),
                    err.inner().message().to_owned(),
                    None,
                ));
            }
        }
    }
    Err(Unreadable {
        found,
        repaired,
        stand_ins,
    })
}

/// The path of `key` in the table at `at` (serde's path may already end
/// with it).
fn key_path(at: &FieldPath, key: &str) -> FieldPath {
    match at.0.last() {
        Some(PathSegment::Key(last)) if last == key => at.clone(),
        _ => at.key(key),
    }
}

/// Makes the copy readable past this error: an unknown key goes; a bad
/// value is replaced by a stand-in of the type serde expected (removed
/// when none can be told). False when nothing could be done.
fn repair(copy: &mut toml::Value, field: &FieldPath, said: &Said, message: &str) -> bool {
    let Some((last, parent)) = field.0.split_last() else {
        return false;
    };
    let Some(table) = walk(copy, parent).and_then(toml::Value::as_table_mut) else {
        return false;
    };
    let PathSegment::Key(key) = last else {
        return false;
    };
    match said {
        Said::UnknownKey { .. } => table.remove(key).is_some(),
        Said::MissingKey(_) => match stand_in(message) {
            Some(value) => table.insert(key.clone(), value).is_none(),
            None => false,
        },
        // A bad map key (an unknown operation under `operations`): the
        // entry goes.
        Said::UnknownValue { value, .. }
            if table
                .get(key)
                .and_then(toml::Value::as_table)
                .is_some_and(|t| t.contains_key(value)) =>
        {
            let map = table.get_mut(key).and_then(toml::Value::as_table_mut);
            map.is_some_and(|m| m.remove(value).is_some())
        }
        Said::UnknownValue { allowed, .. } => match allowed.first() {
            Some(first) => {
                table.insert(key.clone(), toml::Value::String(first.clone()));
                true
            }
            None => table.remove(key).is_some(),
        },
        Said::Other => {
            match stand_in(message) {
                Some(value) => table.insert(key.clone(), value),
                None => table.remove(key),
            };
            true
        }
    }
}

fn walk<'a>(value: &'a mut toml::Value, path: &[PathSegment]) -> Option<&'a mut toml::Value> {
    let mut node = value;
    for segment in path {
        node = match segment {
            PathSegment::Key(key) => node.as_table_mut()?.get_mut(key)?,
            PathSegment::Index(i) => node.as_array_mut()?.get_mut(*i)?,
        };
    }
    Some(node)
}

/// A value of the type an "expected ..." message names.
fn stand_in(message: &str) -> Option<toml::Value> {
    let expected = message.rsplit_once("expected ").map(|(_, e)| e.trim())?;
    let value = match expected {
        e if e.starts_with('u') || e.starts_with('i') => toml::Value::Integer(1),
        e if e.starts_with('f') || e.contains("number") => toml::Value::Float(1.0),
        e if e.contains("bool") => toml::Value::Boolean(false),
        e if e.contains("duration") => toml::Value::String("1s".into()),
        e if e.contains("string") => toml::Value::String("x".into()),
        e if e.contains("sequence") => toml::Value::Array(Vec::new()),
        _ => return None,
    };
    Some(value)
}

//! Reading a scenario with serde once the schema check has walked it: exactly, from the text, or past the mistakes found, from an edited copy.
//!
//! Read exactly, serde may still find one mistake the schema does not
//! describe; it is worded like the others. Read past the mistakes, the copy
//! (the check's stand-ins in, unknown keys and bad optional values out)
//! gives the rule checks the rest of the file to look at; it is read twice,
//! with two sets of stand-ins, so that rules broken only by a stand-in can
//! be told apart.

use serde::Deserialize;
use toml::Spanned;
use toml::de::DeValue;

use super::error::{FieldPath, Found, PathSegment};
use super::schema::Scenario;
use super::schema_check::Edit;
use super::wording;

/// Reads `text` (whose spanned `document` is already parsed) as written.
pub(super) fn exactly(text: &str, document: &Spanned<DeValue<'_>>) -> Result<Scenario, Found> {
    let reader = toml::Deserializer::parse(text).map_err(|err| syntax(&err))?;
    serde_path_to_error::deserialize::<_, Scenario>(reader).map_err(|err| {
        let field = FieldPath::from_serde(err.path());
        let span = err.inner().span().unwrap_or_else(|| field.locate(document));
        (span, field, wording::plain(err.inner().message()))
    })
}

/// The mistake of a file that is not valid TOML. Nothing else can be
/// checked, so this is the only one reported.
pub(super) fn syntax(err: &toml::de::Error) -> Found {
    let message = format!(
        "not valid TOML, so nothing else in the file could be checked: {}",
        err.message()
    );
    (err.span().unwrap_or(0..0), FieldPath::root(), message)
}

/// Reads the two copies of `text` that `edits` make readable (each with
/// its own stand-ins), if they do.
pub(super) fn past(text: &str, edits: &[Edit]) -> Option<[Scenario; 2]> {
    let original: toml::Value = toml::from_str(text).ok()?;
    let read = |which: usize| {
        let mut copy = original.clone();
        for edit in edits {
            apply(&mut copy, edit, which);
        }
        Scenario::deserialize(copy).ok()
    };
    Some([read(0)?, read(1)?])
}

fn apply(copy: &mut toml::Value, edit: &Edit, which: usize) {
    let (Edit::Remove(field) | Edit::Put(field, _)) = edit;
    let Some((last, parent)) = field.0.split_last() else {
        return;
    };
    let Some(parent) = walk(copy, parent) else {
        return;
    };
    match (edit, last, parent) {
        (Edit::Remove(_), PathSegment::Key(key), toml::Value::Table(table)) => {
            table.remove(key);
        }
        (Edit::Put(_, values), PathSegment::Key(key), toml::Value::Table(table)) => {
            table.insert(key.clone(), values[which].clone());
        }
        (Edit::Put(_, values), PathSegment::Index(i), toml::Value::Array(items)) => {
            if let Some(item) = items.get_mut(*i) {
                *item = values[which].clone();
            }
        }
        _ => {}
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

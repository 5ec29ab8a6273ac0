//! Scenario files: the TOML schema, loading with located errors, validation, the load schedule and the JSON Schema.
//!
//! A scenario is read in four steps; a file with mistakes fails with a
//! [`ScenarioError`] listing every mistake found, in file order, each with
//! its file, line, column and field, in plain words:
//!
//! 1. TOML syntax, through toml's span-keeping parser (one error: the
//!    document cannot be read past it);
//! 2. `schema_check`: the spanned document walked against the JSON Schema
//!    of the format (`json_schema`; what each node asks for, in words and
//!    as stand-ins, from `schema_shape`), every unknown key, wrong type,
//!    value outside its set, missing key found at once, with suggestions
//!    for misspelt names (`wording`);
//! 3. `read`: serde (`deny_unknown_fields`, paths from
//!    `serde_path_to_error`) reads the file, or, when step 2 found
//!    mistakes, a copy with stand-ins for them;
//! 4. `validate`: the rules serde cannot express, every broken one, located
//!    by walking the document's spans to the offending field (not reported
//!    when a stand-in of step 3 broke it).

mod duration;
mod error;
mod group;
mod read;
mod scale;
mod schedule;
mod schema;
mod schema_check;
mod schema_shape;
mod validate;
mod wording;

#[cfg(test)]
mod all_at_once_tests;
#[cfg(test)]
mod tests;

use std::path::Path;

use sha2::{Digest, Sha256};
use toml::Spanned;
use toml::de::{DeTable, DeValue};

pub use duration::HumanDuration;
use error::Found;
pub use error::{FieldPath, Invalid, PathSegment, ScenarioError};
pub use group::{
    Arrival, Behaviour, BroadcastScope, Delivery, Group, PayloadBytes, TopicDistribution, Topics,
};
pub use scale::LoadScale;
pub use schema::{
    BrokerKind, Fault, FaultKind, OperationThreshold, Phase, PhaseKind, Scenario, Target,
    TargetMode, ThresholdOverride, Thresholds,
};

impl Scenario {
    /// Reads and validates the scenario file at `path`; errors name the path
    /// as given.
    pub fn load(path: impl AsRef<Path>) -> Result<Scenario, ScenarioError> {
        let path = path.as_ref();
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            file: file.clone(),
            source,
        })?;
        Scenario::parse(&text, &file)
    }

    /// Parses and validates scenario `text`; `origin` names it in errors
    /// (usually the file path).
    pub fn parse(text: &str, origin: &str) -> Result<Scenario, ScenarioError> {
        let all = |found: Vec<Found>| {
            let located = found
                .into_iter()
                .map(|(span, field, message)| Invalid::at(origin, text, span, field, &message));
            ScenarioError::from_mistakes(located.collect())
        };
        let document = DeTable::parse(text).map_err(|err| all(vec![read::syntax(&err)]))?;
        let document = Spanned::new(document.span(), DeValue::Table(document.into_inner()));
        let located = |issues: Vec<validate::Issue>| {
            issues
                .into_iter()
                .map(|issue| (issue.path.locate(&document), issue.path, issue.message))
                .collect::<Vec<_>>()
        };
        let checked = schema_check::check(&document);
        if checked.found.is_empty() {
            let scenario = read::exactly(text, &document).map_err(|found| all(vec![found]))?;
            let issues = validate::validate(&scenario);
            if issues.is_empty() {
                return Ok(scenario);
            }
            return Err(all(located(issues)));
        }
        // The rules the author broke, too: those broken in both copies read
        // past the mistakes (whatever the stand-ins), not at a stand-in.
        let mut found = checked.found;
        if let Some([one, other]) = read::past(text, &checked.edits) {
            let in_other = validate::validate(&other);
            let authors = validate::validate(&one)
                .into_iter()
                .filter(|i| in_other.contains(i))
                .filter(|i| !checked.stand_ins.iter().any(|s| i.path.starts_with(s)))
                .collect();
            found.extend(located(authors));
        }
        Err(all(found))
    }

    /// A stable fingerprint of the scenario's meaning: the SHA-256 (hex) of
    /// its canonical JSON form. Comments, key order, formatting and
    /// spellings of equal values ("1000ms" vs "1s") do not change it, so
    /// reports can tell whether two runs used the same scenario.
    pub fn content_hash(&self) -> String {
        let canonical = serde_json::to_vec(self).expect("a scenario always serializes to JSON");
        Sha256::digest(&canonical)
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect()
    }
}

/// The JSON Schema of scenario files, pretty-printed with a final newline.
///
/// `scenarios/scenario.schema.json` holds this text (a test keeps it true);
/// editors with a TOML language server use it for completion and checks.
pub fn json_schema() -> String {
    let schema = schemars::schema_for!(Scenario);
    let mut text = serde_json::to_string_pretty(&schema).expect("a schema always serializes");
    text.push('\n');
    text
}

//! Scenario files: the TOML schema, loading with located errors, validation, the load schedule and the JSON Schema.
//!
//! A scenario is read in three steps, each of which can only fail with a
//! [`ScenarioError`] listing every mistake found, in file order, each with
//! its file, line, column and field:
//!
//! 1. TOML syntax, through toml's span-keeping parser (one error: the
//!    document cannot be read past it);
//! 2. types, unknown keys and missing fields, through serde with
//!    `deny_unknown_fields` (the field path comes from
//!    `serde_path_to_error`), read again past each error by `recover`,
//!    worded for people with suggestions for misspelt names by `wording`;
//! 3. rules serde cannot express (`validate`, every broken rule), located
//!    by walking the parsed document's spans to the offending field.

mod duration;
mod error;
mod group;
mod recover;
mod scale;
mod schedule;
mod schema;
mod validate;
mod wording;

#[cfg(test)]
mod tests;

use std::path::Path;

use sha2::{Digest, Sha256};
use toml::Spanned;
use toml::de::{DeTable, DeValue};

pub use duration::HumanDuration;
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
        let one = |(span, field, message): recover::Found| {
            Invalid::at(origin, text, span, field, &message)
        };
        let all = |found: Vec<recover::Found>| {
            ScenarioError::from_mistakes(found.into_iter().map(one).collect())
        };
        let document = DeTable::parse(text).map_err(|err| {
            let message = format!("not valid TOML: {}", err.message());
            all(vec![(
                err.span().unwrap_or(0..0),
                FieldPath::root(),
                message,
            )])
        })?;
        let document = Spanned::new(document.span(), DeValue::Table(document.into_inner()));
        let located = |issues: Vec<validate::Issue>| {
            issues
                .into_iter()
                .map(|issue| (issue.path.locate(&document), issue.path, issue.message))
                .collect::<Vec<_>>()
        };
        let scenario = match recover::deserialize(text, &document) {
            Ok(scenario) => scenario,
            Err(unreadable) => {
                // The rules broken elsewhere than where stand-ins are, too.
                let mut found = unreadable.found;
                if let Some(repaired) = &unreadable.repaired {
                    let elsewhere = validate::validate(repaired)
                        .into_iter()
                        .filter(|i| !unreadable.stand_ins.iter().any(|s| i.path.starts_with(s)))
                        .collect();
                    found.extend(located(elsewhere));
                }
                return Err(all(found));
            }
        };
        let issues = validate::validate(&scenario);
        if !issues.is_empty() {
            return Err(all(located(issues)));
        }
        Ok(scenario)
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

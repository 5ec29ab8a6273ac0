//! The scenario parser and validator (`sim::scenario::Scenario::parse`):
//! never panics; every failure is located (file, a line and column inside the
//! text, a message); every accepted scenario can be scheduled and hashed.
//!
//! Input: the text of a scenario file.

#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use sim::scenario::Scenario;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Scenario::parse(text, "fuzz.toml") {
        Ok(scenario) => use_scenario(&scenario),
        Err(err) => {
            let invalid = err.invalid().expect("parsing text fails only as Invalid");
            assert_eq!(invalid.file, "fuzz.toml");
            assert!(invalid.line >= 1 && invalid.column >= 1, "{invalid}");
            assert!(invalid.line <= text.split('\n').count(), "{invalid}");
            assert!(!invalid.message.is_empty(), "{invalid:?}");
        }
    }
});

/// What a run does with a scenario before it connects anything.
fn use_scenario(scenario: &Scenario) {
    let total = scenario.total_duration();
    let _ = scenario.total_agents();
    for t in [
        Duration::ZERO,
        total / 2,
        total,
        total.saturating_add(Duration::from_secs(1)),
    ] {
        let (agents, rate) = scenario.schedule_at(t);
        assert!((0.0..=1.0).contains(&agents), "{agents} agents at {t:?}");
        assert!(rate >= 0.0, "{rate}");
    }
    assert_eq!(scenario.content_hash().len(), 64);
}

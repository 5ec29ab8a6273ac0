//! Property tests of the psubscribe glob matcher against a reference
//! implementation, on small random inputs and on long hostile patterns.

use bus::message::glob::matches;
use proptest::prelude::*;

use crate::glob_reference;

/// Patterns over a tiny alphabet, so that stars, classes, ranges, negation
/// and escapes meet the text often.
fn small_pattern() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        proptest::sample::select(vec![
            "a", "b", "*", "?", "[", "]", "^", "-", "\\", "[a-b]", "[^a]",
        ]),
        0..10,
    )
    .prop_map(|parts| parts.concat())
}

/// Long patterns of the shapes that make backtracking matchers explode.
fn hostile_pattern() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        proptest::sample::select(vec!["*", "a", "*a", "?", "[a-z]", "*[^b]", "b"]),
        1..80,
    )
    .prop_map(|parts| parts.concat().chars().take(200).collect())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(10_000))]

    #[test]
    fn agrees_with_the_reference(pattern in small_pattern(), text in "[ab\\-\\]\\\\*^]{0,12}") {
        prop_assert_eq!(
            matches(&pattern, &text),
            glob_reference::matches(pattern.as_bytes(), text.as_bytes()),
            "pattern {:?} text {:?}", pattern, text
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Exponential backtracking would not finish these (200-byte patterns
    /// against texts up to the longest channel name).
    #[test]
    fn agrees_on_long_hostile_patterns(pattern in hostile_pattern(), text in "[ab]{0,270}") {
        prop_assert_eq!(
            matches(&pattern, &text),
            glob_reference::matches(pattern.as_bytes(), text.as_bytes()),
            "pattern {:?} text {:?}", pattern, text
        );
    }
}

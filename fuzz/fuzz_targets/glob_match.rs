//! The glob matcher of psubscribe patterns: never panics, agrees with a
//! reference matcher, and stays within pattern × text work (libFuzzer's
//! timeout catches a matcher that backtracks exponentially).
//!
//! Input: `pattern` `\n` `text` (names never contain a newline).

#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../bus/tests/glob_reference.rs"]
mod glob_reference;

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let (pattern, text) = input.split_once('\n').unwrap_or((input, ""));
    let got = bus::message::glob::matches(pattern, text);
    // The reference needs pattern × text memory; real patterns and channels
    // are under 300 bytes, longer inputs only check the matcher's speed.
    if pattern.len() <= 300 && text.len() <= 300 {
        let want = glob_reference::matches(pattern.as_bytes(), text.as_bytes());
        assert_eq!(got, want, "pattern {pattern:?} text {text:?}");
    }
});

//! Redis-compatible glob matching (`*`, `?`, `[abc]`, `[^a-z]`, `\x`) over
//! names: the memory broker matches PSUBSCRIBE patterns exactly as Redis
//! does, and tokens' topic lists are checked with the same rules. It lives
//! with the names it matches, below both of its users.
//!
//! Patterns come from clients (psubscribe), so matching must stay cheap on
//! hostile ones: a naive port of Redis's recursive `stringmatchlen` retries
//! every `*` at every position and takes exponential time on patterns such
//! as `*a*a*a*a…b`. Every token other than `*` matches exactly one byte, so
//! only the most recent `*` ever needs to take more text: the matcher keeps
//! one resume point and runs in O(pattern × text) steps.

/// True when `text` matches the Redis glob `pattern` (the semantics of
/// Redis's `stringmatchlen`, case-sensitive).
pub fn matches(pattern: &str, text: &str) -> bool {
    match_counting(pattern.as_bytes(), text.as_bytes(), &mut 0)
}

/// The matcher, counting its steps in `steps` (each step consumes a pattern
/// token or moves the resume point), so tests can bound the work without
/// timing it.
fn match_counting(pattern: &[u8], text: &[u8], steps: &mut usize) -> bool {
    let (mut p, mut s) = (pattern, text);
    // Where to retry when a token fails: the pattern after the last `*` and
    // the text that `*` did not take yet.
    let mut resume: Option<(&[u8], &[u8])> = None;
    loop {
        *steps += 1;
        if let [b'*', rest @ ..] = p {
            p = rest;
            resume = Some((p, s));
            continue;
        }
        let Some((&c, s_rest)) = s.split_first() else {
            // Only stars match the empty rest of the text.
            return p.iter().all(|&b| b == b'*');
        };
        if let Some(p_rest) = match_one(p, c) {
            p = p_rest;
            s = s_rest;
            continue;
        }
        // The last `*` takes one more byte and the tokens after it retry.
        match resume {
            Some((star_p, [_, star_s @ ..])) => {
                p = star_p;
                s = star_s;
                resume = Some((p, s));
            }
            _ => return false,
        }
    }
}

/// Matches byte `c` against the single (non-`*`) token at the start of `p`;
/// returns the pattern after that token when it matches.
fn match_one(p: &[u8], c: u8) -> Option<&[u8]> {
    let (matched, rest) = match p {
        [] => return None,
        [b'?', rest @ ..] => (true, rest),
        [b'[', body @ ..] => match_class(body, c),
        [b'\\', x, rest @ ..] => (*x == c, rest),
        [x, rest @ ..] => (*x == c, rest),
    };
    matched.then_some(rest)
}

/// Matches `c` against a class body (after `[`); returns whether it matched
/// and the pattern after the closing `]` (or the end, as Redis does).
fn match_class(mut p: &[u8], c: u8) -> (bool, &[u8]) {
    let negate = p.first() == Some(&b'^');
    if negate {
        p = &p[1..];
    }
    let mut matched = false;
    loop {
        match p {
            [] => break,
            [b']', rest @ ..] => {
                p = rest;
                break;
            }
            [b'\\', x, rest @ ..] => {
                matched |= *x == c;
                p = rest;
            }
            [lo, b'-', hi, rest @ ..] if *hi != b']' => {
                let (lo, hi) = if lo <= hi { (*lo, *hi) } else { (*hi, *lo) };
                matched |= (lo..=hi).contains(&c);
                p = rest;
            }
            [x, rest @ ..] => {
                matched |= *x == c;
                p = rest;
            }
        }
    }
    (matched != negate, p)
}

#[cfg(test)]
mod tests {
    use super::{match_counting, matches};

    #[test]
    fn star_and_question_mark() {
        assert!(matches("*", ""));
        assert!(matches("*", "anything"));
        assert!(matches("topic:w1/*", "topic:w1/agent:x"));
        assert!(!matches("topic:w1/*", "topic:w2/agent:x"));
        assert!(matches("a?c", "abc"));
        assert!(!matches("a?c", "ac"));
        assert!(matches("a*b*c", "axxbyyc"));
        assert!(!matches("a*b*c", "axxbyy"));
    }

    #[test]
    fn classes_ranges_negation_and_escapes() {
        assert!(matches("h[ae]llo", "hello"));
        assert!(!matches("h[ae]llo", "hillo"));
        assert!(matches("h[^e]llo", "hallo"));
        assert!(!matches("h[^e]llo", "hello"));
        assert!(matches("h[a-c]llo", "hbllo"));
        assert!(!matches("h[a-c]llo", "hdllo"));
        assert!(matches("a\\*b", "a*b"));
        assert!(!matches("a\\*b", "axb"));
    }

    #[test]
    fn trailing_backslash_and_unclosed_class_follow_redis() {
        assert!(matches("a\\", "a\\"));
        assert!(!matches("a\\", "a"));
        assert!(matches("a[bc", "ab"));
        assert!(!matches("a[bc", "a"));
        assert!(!matches("[]", "]"));
        assert!(!matches("?", ""));
        assert!(matches("**", ""));
    }

    /// `*a*a*…*b` against `aaa…a` made the recursive port retry every star
    /// at every position (exponential time; a client could stall a node
    /// with one psubscribe). The work is now bounded by pattern × text.
    #[test]
    fn many_stars_take_at_most_pattern_times_text_steps() {
        for (pattern, text) in [
            (format!("{}b", "*a".repeat(100)), "a".repeat(200)),
            (format!("{}*", "*a".repeat(99)), "a".repeat(98)),
            ("*?".repeat(100), "x".repeat(99)),
            (format!("{}[^a]", "*[a-z]".repeat(60)), "a".repeat(200)),
        ] {
            let mut steps = 0;
            let matched = match_counting(pattern.as_bytes(), text.as_bytes(), &mut steps);
            assert!(!matched, "{pattern} should not match");
            let bound = (pattern.len() + 1) * (text.len() + 1);
            assert!(steps <= bound, "{steps} steps > {bound} for {pattern}");
        }
        assert!(matches(&"*a".repeat(100), &"a".repeat(200)));
    }
}

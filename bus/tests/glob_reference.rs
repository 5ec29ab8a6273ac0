//! A reference glob matcher for the property tests and the `glob_match` fuzz
//! target (which includes this file by path): the recursive definition of
//! Redis's `stringmatchlen` (what `bus::message::glob` was before it was
//! made iterative), made polynomial by remembering the (pattern, text)
//! positions that already failed. It shares no code with the production
//! matcher, so the two check each other.

use std::collections::HashSet;

/// Whether `text` matches the Redis glob `pattern`.
pub(crate) fn matches(pattern: &[u8], text: &[u8]) -> bool {
    Reference {
        pattern,
        text,
        failed: HashSet::new(),
    }
    .matches_from(0, 0)
}

struct Reference<'a> {
    pattern: &'a [u8],
    text: &'a [u8],
    /// (pattern offset, text offset) pairs known not to match.
    failed: HashSet<(usize, usize)>,
}

impl Reference<'_> {
    fn matches_from(&mut self, pi: usize, si: usize) -> bool {
        if self.failed.contains(&(pi, si)) {
            return false;
        }
        let matched = self.step(pi, si);
        if !matched {
            self.failed.insert((pi, si));
        }
        matched
    }

    fn step(&mut self, pi: usize, si: usize) -> bool {
        let (p, s) = (&self.pattern[pi..], &self.text[si..]);
        let Some(&pc) = p.first() else {
            return s.is_empty();
        };
        match pc {
            // `*` takes nothing, or one byte and stays.
            b'*' => {
                self.matches_from(pi + 1, si) || (!s.is_empty() && self.matches_from(pi, si + 1))
            }
            _ if s.is_empty() => false,
            b'?' => self.matches_from(pi + 1, si + 1),
            b'[' => {
                let (matched, class_len) = class(&p[1..], s[0]);
                matched && self.matches_from(pi + 1 + class_len, si + 1)
            }
            b'\\' if p.len() >= 2 => p[1] == s[0] && self.matches_from(pi + 2, si + 1),
            _ => pc == s[0] && self.matches_from(pi + 1, si + 1),
        }
    }
}

/// Matches `c` against the class body `p` (after `[`): whether it matched
/// and how many pattern bytes the body and its `]` take. An unclosed class
/// runs to the end of the pattern, as in Redis.
fn class(p: &[u8], c: u8) -> (bool, usize) {
    let mut i = 0;
    let negate = p.first() == Some(&b'^');
    if negate {
        i += 1;
    }
    let mut matched = false;
    while i < p.len() {
        if p[i] == b']' {
            i += 1;
            break;
        }
        if p[i] == b'\\' && i + 1 < p.len() {
            matched |= p[i + 1] == c;
            i += 2;
        } else if i + 2 < p.len() && p[i + 1] == b'-' && p[i + 2] != b']' {
            let (lo, hi) = (p[i].min(p[i + 2]), p[i].max(p[i + 2]));
            matched |= lo <= c && c <= hi;
            i += 3;
        } else {
            matched |= p[i] == c;
            i += 1;
        }
    }
    (matched != negate, i)
}

//! Plain wording for scenario mistakes, and suggestions for misspelt keys
//! and values (`strsim`): "unknown key `payload_byts` (did you mean
//! `payload_bytes`?)" rather than "unknown field `payload_byts`, expected
//! one of ...", "`publishr` is not a behaviour; one of: publisher, ... (did
//! you mean `publisher`?)", "found the string \"ten\"". Also rewords what
//! serde says about the few mistakes the schema check leaves to it.

use toml::de::DeValue;

/// How close a name must be to an allowed one to be suggested
/// (Jaro-Winkler similarity).
const CLOSE_ENOUGH: f64 = 0.8;

/// Lists of allowed keys up to this long are given in full when nothing is
/// close (a group takes twenty keys: too many for one line).
const KEYS_AT_MOST: usize = 12;

/// Lists of allowed values up to this long are always given.
const VALUES_AT_MOST: usize = 16;

/// "unknown key `k` (did you mean `x`?)", or with the allowed keys listed
/// when none is close and they are few.
pub(super) fn unknown_key(key: &str, allowed: &[&str]) -> String {
    match closest(key, allowed) {
        Some(name) => format!("unknown key `{key}` (did you mean `{name}`?)"),
        None if !allowed.is_empty() && allowed.len() <= KEYS_AT_MOST => {
            format!("unknown key `{key}`; allowed keys: {}", allowed.join(", "))
        }
        None => format!("unknown key `{key}`"),
    }
}

/// "`v` is not a behaviour; one of: a, b, c (did you mean `a`?)".
pub(super) fn not_one_of(value: &str, noun: &str, allowed: &[&str]) -> String {
    let mut said = format!("`{value}` is not {}", with_article(noun));
    if !allowed.is_empty() && allowed.len() <= VALUES_AT_MOST {
        said.push_str("; one of: ");
        said.push_str(&allowed.join(", "));
    }
    if let Some(name) = closest(value, allowed) {
        said.push_str(&format!(" (did you mean `{name}`?)"));
    }
    said
}

/// "a behaviour", "an operation".
pub(super) fn with_article(noun: &str) -> String {
    let vowel = noun.starts_with(['a', 'e', 'i', 'o', 'u']);
    format!("{} {noun}", if vowel { "an" } else { "a" })
}

/// What a value written in the file is, for "found ...": the string "ten",
/// the number -1, a table.
pub(super) fn found(value: &DeValue<'_>) -> String {
    match value {
        DeValue::String(text) => format!("the string {text:?}"),
        DeValue::Integer(integer) => {
            match i128::from_str_radix(integer.as_str(), integer.radix()) {
                Ok(number) => format!("the number {number}"),
                Err(_) => format!("the number {integer}"),
            }
        }
        DeValue::Float(float) => format!("the number {}", float.as_str()),
        DeValue::Boolean(b) => format!("the value {b}"),
        DeValue::Datetime(when) => format!("the date-time {when}"),
        DeValue::Array(_) => "a list".to_owned(),
        DeValue::Table(_) => "a table".to_owned(),
    }
}

/// The allowed name closest to `written`, when it is close.
pub(super) fn closest<'a>(written: &str, allowed: &[&'a str]) -> Option<&'a str> {
    allowed
        .iter()
        .map(|a| (strsim::jaro_winkler(written, a), *a))
        .filter(|(score, _)| *score >= CLOSE_ENOUGH)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, a)| a)
}

/// What a serde message is about.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Said {
    /// A key the table does not have (`deny_unknown_fields`).
    UnknownKey {
        /// The key written.
        key: String,
        /// The keys the table takes.
        allowed: Vec<String>,
    },
    /// A value that is not one of a fixed set (an enum).
    UnknownValue {
        /// The value written.
        value: String,
        /// The values allowed.
        allowed: Vec<String>,
    },
    /// A required key that is not there.
    MissingKey(String),
    /// Anything else (a wrong type, a bad duration, ...).
    Other,
}

impl Said {
    /// Reads serde's standard messages.
    fn of(message: &str) -> Said {
        if let Some(rest) = message.strip_prefix("unknown field ") {
            let (key, allowed) = name_and_list(rest);
            return Said::UnknownKey { key, allowed };
        }
        if let Some(rest) = message.strip_prefix("unknown variant ") {
            let (value, allowed) = name_and_list(rest);
            return Said::UnknownValue { value, allowed };
        }
        if let Some(rest) = message.strip_prefix("missing field ") {
            return Said::MissingKey(rest.trim().trim_matches('`').to_owned());
        }
        Said::Other
    }
}

/// "`x`, expected one of `a`, `b`" or "`x`, expected `a` or `b`" →
/// (x, [a, b]).
fn name_and_list(rest: &str) -> (String, Vec<String>) {
    let (name, expected) = rest.split_once(", expected").unwrap_or((rest, ""));
    let allowed = expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect();
    (name.trim().trim_matches('`').to_owned(), allowed)
}

/// The message a person reads for what serde or toml said.
pub(super) fn plain(message: &str) -> String {
    match Said::of(message) {
        Said::UnknownKey { key, allowed } => unknown_key(&key, &names(&allowed)),
        Said::UnknownValue { value, allowed } => {
            not_one_of(&value, "value allowed here", &names(&allowed))
        }
        Said::MissingKey(key) => format!("missing required key `{key}`"),
        Said::Other => invalid_type(message).unwrap_or_else(|| message.to_owned()),
    }
}

fn names(owned: &[String]) -> Vec<&str> {
    owned.iter().map(String::as_str).collect()
}

/// "invalid type: string \"ten\", expected u32" → "expected a whole number
/// (0 or more), found the string \"ten\"".
fn invalid_type(message: &str) -> Option<String> {
    let rest = message
        .strip_prefix("invalid type: ")
        .or_else(|| message.strip_prefix("invalid value: "))?;
    let (found, expected) = rest.rsplit_once(", expected ")?;
    Some(format!(
        "expected {}, found {}",
        expected_words(expected),
        found_words(found)
    ))
}

fn expected_words(expected: &str) -> String {
    let e = expected.trim();
    let words = match e {
        "u8" | "u16" | "u32" | "u64" | "usize" => "a whole number (0 or more)",
        "i8" | "i16" | "i32" | "i64" | "isize" => "a whole number",
        "f32" | "f64" => "a number",
        "a boolean" | "bool" => "true or false",
        "a string" => "a string in quotes",
        "a sequence" => "a list, e.g. [\"a\", \"b\"]",
        "a map" => "a table",
        _ if e.starts_with("struct ") || e.starts_with("a map") => "a table",
        _ => return e.to_owned(),
    };
    words.to_owned()
}

fn found_words(found: &str) -> String {
    let f = found.trim();
    for (kind, words) in [
        ("string ", "the string "),
        ("integer ", "the number "),
        ("floating point ", "the number "),
        ("boolean ", ""),
    ] {
        if let Some(value) = f.strip_prefix(kind) {
            return format!("{words}{}", value.trim_matches('`'));
        }
    }
    match f {
        "map" => "a table".to_owned(),
        "sequence" => "a list".to_owned(),
        _ => f.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn misspelt_keys_and_values_get_the_closest_name() {
        assert_eq!(
            plain("unknown field `payload_byts`, expected one of `name`, `count`, `payload_bytes`"),
            "unknown key `payload_byts` (did you mean `payload_bytes`?)"
        );
        assert_eq!(
            plain("unknown variant `publishr`, expected one of `publisher`, `subscriber`"),
            "`publishr` is not a value allowed here; one of: publisher, subscriber (did you mean `publisher`?)"
        );
        assert_eq!(
            not_one_of("publishr", "behaviour", &["publisher", "subscriber"]),
            "`publishr` is not a behaviour; one of: publisher, subscriber (did you mean `publisher`?)"
        );
        assert_eq!(
            not_one_of("tcp", "target mode", &["embedded", "spawn", "external"]),
            "`tcp` is not a target mode; one of: embedded, spawn, external"
        );
        assert_eq!(with_article("operation"), "an operation");
        // Nothing close: the short list instead.
        assert_eq!(
            plain("unknown field `zzz`, expected `name` or `count`"),
            "unknown key `zzz`; allowed keys: name, count"
        );
        // Nothing close and too many to list: the key alone.
        let many: Vec<String> = (0..20).map(|i| format!("key{i}")).collect();
        assert_eq!(unknown_key("colour", &names(&many)), "unknown key `colour`");
    }

    #[test]
    fn library_types_become_words() {
        assert_eq!(
            plain("invalid type: string \"ten\", expected u32"),
            "expected a whole number (0 or more), found the string \"ten\""
        );
        assert_eq!(
            plain("invalid type: integer `3`, expected a string"),
            "expected a string in quotes, found the number 3"
        );
        assert_eq!(
            plain("missing field `behaviour`"),
            "missing required key `behaviour`"
        );
        assert_eq!(plain("something else"), "something else");
    }
}

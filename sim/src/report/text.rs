//! How figures are written for people in the Markdown and HTML views:
//! milliseconds, ratios, sizes; and text escaped for markup.

use std::fmt::Write;

/// Milliseconds with two decimals ("12.35").
pub(super) fn ms(value: f64) -> String {
    format!("{value:.2}")
}

/// A rate per second, to one decimal ("330.0").
pub(super) fn rate(per_s: f64) -> String {
    format!("{per_s:.1}")
}

/// A ratio as a percentage with enough decimals to show small losses
/// ("0.010%"); exact zero is "0%".
pub(super) fn percent(ratio: f64) -> String {
    if ratio == 0.0 {
        "0%".to_owned()
    } else {
        format!("{:.3}%", ratio * 100.0)
    }
}

/// A byte count in binary units ("1.5 MiB").
pub(super) fn bytes(count: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = count;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{value:.0} {}", UNITS[0])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// An optional figure, or a dash.
pub(super) fn or_dash(value: Option<String>) -> String {
    value.unwrap_or_else(|| "–".to_owned())
}

/// Escapes text for XML and HTML attributes and content (JUnit files,
/// `report.html`); characters XML 1.0 cannot hold at all (most control
/// characters) become U+FFFD.
pub fn escape_markup(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => {
                let _ = write!(out, "&#{};", u32::from(c));
            }
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_read_well() {
        assert_eq!(ms(12.3456), "12.35");
        assert_eq!(percent(0.0), "0%");
        assert_eq!(percent(0.0001), "0.010%");
        assert_eq!(bytes(512.0), "512 B");
        assert_eq!(bytes(1536.0 * 1024.0), "1.5 MiB");
        assert_eq!(or_dash(None), "–");
    }

    #[test]
    fn escapes_markup_and_control_characters() {
        assert_eq!(
            escape_markup(r#"a<b>&"c"'d'"#),
            "a&lt;b&gt;&amp;&quot;c&quot;&apos;d&apos;"
        );
        assert_eq!(escape_markup("x\ny\u{1}"), "x&#10;y\u{FFFD}");
    }
}

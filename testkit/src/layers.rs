//! The layering check: a crate's `lib.rs` opens with a map of its modules
//! in layers, and a module may use only modules of lower layers. This reads
//! the map, scans the crate's sources (a small text scan, not a parser) and
//! lists every reference that goes up or sideways, so a test can fail on
//! it.
//!
//! The map is a numbered list in the `//!` comment of `lib.rs`, lowest
//! layer first; each item names its modules as `` [`name`]: what it owns ``
//! (several per item for modules of one layer, which must not use each
//! other either):
//!
//! ```text
//! //! 1. [`message`]: the message model.
//! //! 2. [`broker`]: the broker trait; [`auth`]: tokens.
//! //! 3. [`server`]: running a node.
//! ```
//!
//! A reference is `crate::name` (in `use` or in a path, `crate::{a, b}`
//! groups included) or `super::` reaching past the file's top-level module
//! to the crate root. Comments and string literals are skipped; `lib.rs`
//! and `main.rs` (the root and the binary) are not scanned. `super::` is
//! counted from the file's place in the module tree, so an inline module
//! (`mod tests { .. }`) reaching its file's parent is read as reaching one
//! level higher: good enough for `use super::*` and worth knowing.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

/// The layers of a crate's map, lowest first; each holds module names.
pub type Layers = Vec<Vec<String>>;

/// One reference from a module to a module of its own or a higher layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The file, relative to the scanned `src` directory.
    pub file: PathBuf,
    /// 1-based line of the reference.
    pub line: usize,
    /// The top-level module the file belongs to.
    pub from: String,
    /// The top-level module it refers to.
    pub to: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: `{}` uses `{}`, which is not in a lower layer",
            self.file.display(),
            self.line,
            self.from,
            self.to
        )
    }
}

/// Reads the layer map from the text of a `lib.rs`.
pub fn parse_map(lib_rs: &str) -> Result<Layers, String> {
    let mut layers: Layers = Vec::new();
    let mut in_item = false;
    for line in lib_rs.lines() {
        let Some(doc) = line.trim_start().strip_prefix("//!") else {
            in_item = false;
            continue;
        };
        let text = doc.trim();
        if let Some(rest) = numbered_item(text) {
            layers.push(module_names(rest));
            in_item = true;
        } else if in_item && !text.is_empty() && doc.starts_with("    ") {
            // A continuation line of the current item (indented).
            layers
                .last_mut()
                .expect("in an item")
                .extend(module_names(text));
        } else {
            in_item = false;
        }
    }
    if layers.is_empty() || layers.iter().any(Vec::is_empty) {
        return Err("no layer map (a numbered `//!` list of [`module`]: entries) in lib.rs".into());
    }
    Ok(layers)
}

/// The text after `N. ` when `text` starts a numbered list item.
fn numbered_item(text: &str) -> Option<&str> {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    text[digits..].strip_prefix(". ")
}

/// The names written as `` [`name`]: `` in one item of the map.
fn module_names(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("[`") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("`]") else { break };
        let name = &after[..end];
        if after[end + 2..].starts_with(':') && is_identifier(name) {
            names.push(name.to_owned());
        }
        rest = &after[end + 2..];
    }
    names
}

fn is_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !s.starts_with(|c: char| c.is_ascii_digit())
}

/// The top-level modules `lib.rs` declares (`mod x;`, `pub mod x;`, ...).
pub fn declared_modules(lib_rs: &str) -> Vec<String> {
    let code = strip_comments_and_strings(lib_rs);
    code.lines()
        .filter_map(|line| {
            let line = line.trim();
            let (_, rest) = line.split_once("mod ")?;
            let name = rest.strip_suffix(';')?.trim();
            let prefix = &line[..line.len() - rest.len() - 4];
            let visibility_only = prefix
                .split_whitespace()
                .all(|w| w == "pub" || w.starts_with("pub("));
            (visibility_only && is_identifier(name)).then(|| name.to_owned())
        })
        .collect()
}

/// Every reference in the sources under `src` from a module to one of its
/// own layer or above.
pub fn violations(src: &Path, layers: &[Vec<String>]) -> Result<Vec<Violation>, String> {
    let layer_of = |name: &str| layers.iter().position(|l| l.iter().any(|m| m == name));
    let mut files = Vec::new();
    collect_sources(src, &mut files)?;
    files.sort();
    let mut found = Vec::new();
    for path in files {
        let relative = path.strip_prefix(src).expect("below src").to_path_buf();
        let module_path = module_path(&relative);
        let Some(from) = module_path.first().cloned() else {
            continue;
        };
        let Some(from_layer) = layer_of(&from) else {
            continue;
        };
        let text = fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let code = strip_comments_and_strings(&text);
        for (line, to) in references(&code, module_path.len()) {
            if to == from {
                continue;
            }
            if layer_of(&to).is_some_and(|to_layer| to_layer >= from_layer) {
                found.push(Violation {
                    file: relative.clone(),
                    line,
                    from: from.clone(),
                    to,
                });
            }
        }
    }
    Ok(found)
}

/// Checks the crate whose sources are in `src`: its `lib.rs` map names
/// every declared module exactly once, and no module uses one of its own
/// layer or above. Panics with every problem found.
pub fn assert_layered(src: &Path) {
    let lib = src.join("lib.rs");
    let text =
        fs::read_to_string(&lib).unwrap_or_else(|e| panic!("cannot read {}: {e}", lib.display()));
    let layers = parse_map(&text).unwrap_or_else(|e| panic!("{}: {e}", lib.display()));
    let mut problems = Vec::new();
    let mapped: Vec<&String> = layers.iter().flatten().collect();
    let declared = declared_modules(&text);
    for name in &declared {
        match mapped.iter().filter(|m| **m == name).count() {
            1 => {}
            0 => problems.push(format!("module `{name}` is not in the map of lib.rs")),
            _ => problems.push(format!("module `{name}` is in the map more than once")),
        }
    }
    for name in mapped.iter().filter(|m| !declared.contains(m)) {
        problems.push(format!(
            "the map names `{name}`, which lib.rs does not declare"
        ));
    }
    match violations(src, &layers) {
        Ok(found) => problems.extend(found.iter().map(Violation::to_string)),
        Err(e) => problems.push(e),
    }
    assert!(
        problems.is_empty(),
        "the layer map of {} does not hold:\n{}",
        lib.display(),
        problems.join("\n")
    );
}

fn collect_sources(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), String> {
    let entries = fs::read_dir(dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
    for entry in entries {
        let path = entry.map_err(|e| e.to_string())?.path();
        if path.is_dir() {
            collect_sources(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    Ok(())
}

/// The module a source file is, as path segments (`ws/session.rs` →
/// `[ws, session]`, `ws/mod.rs` → `[ws]`); empty for the crate root and
/// the binary.
fn module_path(relative: &Path) -> Vec<String> {
    let mut segments: Vec<String> = relative
        .iter()
        .map(|s| s.to_string_lossy().into_owned())
        .collect();
    let Some(last) = segments.pop() else {
        return segments;
    };
    let stem = last.strip_suffix(".rs").unwrap_or(&last).to_owned();
    let at_root = segments.is_empty();
    match stem.as_str() {
        "lib" | "main" if at_root => return Vec::new(),
        "mod" => {}
        _ => segments.push(stem),
    }
    if segments.first().is_some_and(|s| s == "bin") {
        return Vec::new();
    }
    segments
}

/// The top-level modules `code` refers to, with their 1-based lines, for a
/// file `depth` modules below the crate root.
fn references(code: &str, depth: usize) -> Vec<(usize, String)> {
    let bytes = code.as_bytes();
    let mut out = Vec::new();
    let mut line = 1;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\n' {
            line += 1;
            i += 1;
            continue;
        }
        let boundary = i == 0 || !is_ident_byte(bytes[i - 1]) && bytes[i - 1] != b'$';
        if boundary && code[i..].starts_with("crate::") {
            let targets = path_heads(&code[i + "crate::".len()..]);
            out.extend(targets.into_iter().map(|t| (line, t)));
            i += "crate::".len();
            continue;
        }
        if boundary && code[i..].starts_with("super::") {
            let mut supers = 0;
            let mut j = i;
            while code[j..].starts_with("super::") {
                supers += 1;
                j += "super::".len();
            }
            if supers >= depth {
                out.extend(path_heads(&code[j..]).into_iter().map(|t| (line, t)));
            }
            i = j;
            continue;
        }
        i += 1;
    }
    out
}

/// The first segment of the path at the start of `rest`, or of each path
/// in a `{ .. }` group.
fn path_heads(rest: &str) -> Vec<String> {
    let rest = rest.trim_start();
    if let Some(group) = rest.strip_prefix('{') {
        let mut heads = Vec::new();
        let mut depth = 0usize;
        let mut item_start = true;
        for (k, c) in group.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => break,
                '}' => depth -= 1,
                ',' if depth == 0 => item_start = true,
                c if item_start && !c.is_whitespace() => {
                    item_start = false;
                    heads.push(identifier_at(&group[k..]));
                }
                _ => {}
            }
        }
        return heads.into_iter().filter(|h| !h.is_empty()).collect();
    }
    let head = identifier_at(rest);
    if head.is_empty() {
        Vec::new()
    } else {
        vec![head]
    }
}

fn identifier_at(s: &str) -> String {
    s.bytes()
        .take_while(|b| is_ident_byte(*b))
        .map(char::from)
        .collect()
}

fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// `text` with comments and the contents of string and character literals
/// blanked out (newlines kept, so line numbers stay true).
fn strip_comments_and_strings(text: &str) -> String {
    let mut lexer = Blanker {
        chars: text.chars().collect(),
        at: 0,
        out: String::with_capacity(text.len()),
    };
    while let Some(&c) = lexer.chars.get(lexer.at) {
        let next = lexer.chars.get(lexer.at + 1).copied();
        if c == '/' && next == Some('/') {
            lexer.line_comment();
        } else if c == '/' && next == Some('*') {
            lexer.block_comment();
        } else if let Some(hashes) = raw_string_start(&lexer.chars, lexer.at) {
            lexer.raw_string(hashes);
        } else if c == '"' {
            lexer.string();
        } else if c == '\'' && is_char_literal(&lexer.chars, lexer.at) {
            lexer.char_literal();
        } else {
            lexer.out.push(c);
            lexer.at += 1;
        }
    }
    lexer.out
}

/// The state of [`strip_comments_and_strings`]: the text, where it is, and
/// what it kept.
struct Blanker {
    chars: Vec<char>,
    at: usize,
    out: String,
}

impl Blanker {
    /// Blanks `n` characters (keeping newlines).
    fn blank(&mut self, n: usize) {
        for _ in 0..n {
            if let Some(&c) = self.chars.get(self.at) {
                self.out.push(if c == '\n' { '\n' } else { ' ' });
                self.at += 1;
            }
        }
    }

    fn starts_with(&self, s: &str) -> bool {
        s.chars()
            .enumerate()
            .all(|(k, c)| self.chars.get(self.at + k) == Some(&c))
    }

    fn line_comment(&mut self) {
        while self.chars.get(self.at).is_some_and(|c| *c != '\n') {
            self.blank(1);
        }
    }

    /// A `/* .. */` comment, nested ones included.
    fn block_comment(&mut self) {
        let mut depth = 0;
        while self.at < self.chars.len() {
            if self.starts_with("/*") {
                depth += 1;
                self.blank(2);
            } else if self.starts_with("*/") {
                depth -= 1;
                self.blank(2);
                if depth == 0 {
                    return;
                }
            } else {
                self.blank(1);
            }
        }
    }

    /// `r"..."` or `r#"..."#`, up to the closing quote and its hashes.
    fn raw_string(&mut self, hashes: usize) {
        self.blank(hashes + 2);
        let close = format!("\"{}", "#".repeat(hashes));
        while self.at < self.chars.len() && !self.starts_with(&close) {
            self.blank(1);
        }
        self.blank(close.len());
    }

    fn string(&mut self) {
        self.blank(1);
        while let Some(&c) = self.chars.get(self.at) {
            if c == '"' {
                break;
            }
            self.blank(if c == '\\' { 2 } else { 1 });
        }
        self.blank(1);
    }

    fn char_literal(&mut self) {
        self.blank(1);
        while let Some(&c) = self.chars.get(self.at) {
            if c == '\'' {
                break;
            }
            self.blank(if c == '\\' { 2 } else { 1 });
        }
        self.blank(1);
    }
}

/// The number of `#` when a raw string (`r"`, `r#"`, `br"`) starts at `i`.
fn raw_string_start(chars: &[char], i: usize) -> Option<usize> {
    if chars[i] != 'r' || (i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_')) {
        return None;
    }
    let hashes = chars[i + 1..].iter().take_while(|c| **c == '#').count();
    (chars.get(i + 1 + hashes) == Some(&'"')).then_some(hashes)
}

/// Whether the `'` at `i` opens a character literal rather than a lifetime.
fn is_char_literal(chars: &[char], i: usize) -> bool {
    match chars.get(i + 1) {
        Some('\\') => true,
        Some(_) => chars.get(i + 2) == Some(&'\''),
        None => false,
    }
}

#[cfg(test)]
mod tests;

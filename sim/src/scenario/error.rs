//! Scenario errors that point at a file, a line and column, and a field path.

use std::fmt;
use std::ops::Range;

use toml::Spanned;
use toml::de::DeValue;

/// Why a scenario could not be used. Every variant names the file; invalid
/// content also names the line, column and field, so the author can jump
/// straight to the mistake.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("{file}: cannot read the scenario: {source}")]
    Read {
        /// The path as given.
        file: String,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// The file was read but is not a valid scenario (syntax, type, unknown
    /// key, missing field or a broken rule): every mistake found, in file
    /// order (never empty).
    #[error("{}", lines(.0))]
    Invalid(Vec<Invalid>),
}

/// One mistake per line.
fn lines(all: &[Invalid]) -> String {
    all.iter()
        .map(Invalid::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

impl ScenarioError {
    /// The exit code the CLI uses for this error: a setup error
    /// ([`crate::exit::SETUP`]).
    pub fn exit_code(&self) -> i32 {
        crate::exit::SETUP
    }

    /// The first mistake of an invalid scenario, if that is the error.
    pub fn invalid(&self) -> Option<&Invalid> {
        self.all_invalid().first()
    }

    /// Every mistake of an invalid scenario, in file order (empty for a
    /// file that could not be read).
    pub fn all_invalid(&self) -> &[Invalid] {
        match self {
            ScenarioError::Invalid(all) => all,
            ScenarioError::Read { .. } => &[],
        }
    }

    /// An invalid scenario's error from its mistakes, sorted into file
    /// order.
    pub(super) fn from_mistakes(mut all: Vec<Invalid>) -> Self {
        all.sort_by_key(|i| (i.line, i.column));
        ScenarioError::Invalid(all)
    }
}

/// One mistake before it is placed in lines and columns: the bytes it
/// spans, its field and what is wrong (in plain words).
pub(super) type Found = (Range<usize>, FieldPath, String);

/// Where and what is wrong in a scenario file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// The file name (or origin name given to `parse`).
    pub file: String,
    /// 1-based line of the offending text.
    pub line: usize,
    /// 1-based column (in characters) of the offending text.
    pub column: usize,
    /// The field, e.g. `groups[1].rate`; empty for document-level syntax
    /// errors.
    pub field: FieldPath,
    /// What is wrong, on one line.
    pub message: String,
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file, self.line, self.column)?;
        if !self.field.is_root() {
            write!(f, "{}: ", self.field)?;
        }
        f.write_str(&self.message)
    }
}

impl Invalid {
    /// Builds the error for `field`, locating it in `source` from `span`
    /// (byte offsets). Newlines in the message are folded so the error stays
    /// on one line.
    pub(super) fn at(
        file: &str,
        source: &str,
        span: Range<usize>,
        field: FieldPath,
        message: &str,
    ) -> Self {
        let (line, column) = line_column(source, span.start);
        let message = message
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join("; ");
        Self {
            file: file.to_owned(),
            line,
            column,
            field,
            message,
        }
    }
}

/// One step of a field path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathSegment {
    /// A table key.
    Key(String),
    /// An array index.
    Index(usize),
}

/// A field's address in the document, displayed like `groups[1].topics.count`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldPath(pub Vec<PathSegment>);

impl FieldPath {
    /// The document itself.
    pub fn root() -> Self {
        Self::default()
    }

    /// Whether this is the document itself.
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// This path followed by a table key.
    pub fn key(&self, key: &str) -> Self {
        let mut next = self.clone();
        next.0.push(PathSegment::Key(key.to_owned()));
        next
    }

    /// This path followed by an array index.
    pub fn index(&self, index: usize) -> Self {
        let mut next = self.clone();
        next.0.push(PathSegment::Index(index));
        next
    }

    /// Whether this path is `prefix` or lies under it.
    pub fn starts_with(&self, prefix: &FieldPath) -> bool {
        self.0.starts_with(&prefix.0)
    }

    /// Converts serde_path_to_error's path; unknown segments end the path.
    pub(super) fn from_serde(path: &serde_path_to_error::Path) -> Self {
        use serde_path_to_error::Segment;
        let mut out = Self::root();
        for segment in path.iter() {
            match segment {
                Segment::Seq { index } => out.0.push(PathSegment::Index(*index)),
                Segment::Map { key } | Segment::Enum { variant: key } => {
                    out.0.push(PathSegment::Key(key.clone()));
                }
                Segment::Unknown => break,
            }
        }
        out
    }

    /// The span of this field in the parsed document: the value when the
    /// field is written in the file, else the nearest written ancestor (a
    /// defaulted or missing field is reported where its table is).
    pub(super) fn locate(&self, root: &Spanned<DeValue<'_>>) -> Range<usize> {
        let mut node = root;
        for segment in &self.0 {
            let next = match segment {
                PathSegment::Key(key) => node.get_ref().get(key.as_str()),
                PathSegment::Index(index) => node.get_ref().get(*index),
            };
            match next {
                Some(child) => node = child,
                None => break,
            }
        }
        node.span()
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                PathSegment::Key(key) if i == 0 => f.write_str(key)?,
                PathSegment::Key(key) => write!(f, ".{key}")?,
                PathSegment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

/// 1-based line and character column of a byte offset.
pub(super) fn line_column(source: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(source.len());
    let before = source.get(..offset).unwrap_or(source);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_display_like_code() {
        let path = FieldPath::root().key("groups").index(1).key("rate");
        assert_eq!(path.to_string(), "groups[1].rate");
        assert!(FieldPath::root().is_root());
    }

    #[test]
    fn line_and_column_are_one_based_and_count_characters() {
        let text = "a = 1\nbé = 2\n";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 6), (2, 1));
        let eq = text.find("= 2").unwrap();
        assert_eq!(line_column(text, eq), (2, 4));
        assert_eq!(line_column(text, 10_000), (3, 1));
    }
}

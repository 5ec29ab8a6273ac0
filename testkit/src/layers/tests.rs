//! The scanner on a fixture crate, with planted violations.

use super::*;

const MAP: &str = r#"//! A fixture crate.
//!
//! 1. [`low`]: the bottom; it links to [`high::Thing`] in prose.
//! 2. [`mid`]: the middle, [`side`]: its
//!    sibling.
//! 3. [`high`]: the top.

pub mod high;
pub mod low;
mod mid;
pub(crate) mod side;
"#;

fn layers() -> Layers {
    parse_map(MAP).unwrap()
}

/// A crate in a temporary directory: `files` as (path below src, text).
fn fixture(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (path, text) in files {
        let path = dir.path().join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }
    dir
}

fn found(files: &[(&str, &str)]) -> Vec<String> {
    let dir = fixture(files);
    violations(dir.path(), &layers())
        .unwrap()
        .iter()
        .map(|v| format!("{}:{} {}->{}", v.file.display(), v.line, v.from, v.to))
        .collect()
}

#[test]
fn the_map_is_read_in_order_with_continuation_lines() {
    assert_eq!(
        layers(),
        vec![
            vec!["low".to_owned()],
            vec!["mid".to_owned(), "side".to_owned()],
            vec!["high".to_owned()],
        ]
    );
    assert_eq!(declared_modules(MAP), ["high", "low", "mid", "side"]);
    assert!(parse_map("//! No map here.\n").is_err());
}

#[test]
fn downward_references_pass() {
    let files = [
        (
            "high/mod.rs",
            "use crate::mid::X;\nuse crate::{low, side::Y};\n",
        ),
        (
            "high/part.rs",
            "use super::Thing;\nfn f() { crate::low::g(); }\n",
        ),
        ("mid.rs", "use crate::low;\nuse crate::mid::Z;\n"),
    ];
    assert_eq!(found(&files), Vec::<String>::new());
}

#[test]
fn planted_violations_are_found() {
    let files = [
        ("low.rs", "use std::fmt;\nuse crate::high::Thing;\n"),
        ("mid.rs", "fn f() {\n    crate::high::run();\n}\n"),
        ("side.rs", "use crate::{low::A, mid::{B, C}};\n"),
        ("low/inner.rs", "use super::super::high;\n"),
    ];
    assert_eq!(
        found(&files),
        [
            "low/inner.rs:1 low->high",
            "low.rs:2 low->high",
            "mid.rs:2 mid->high",
            "side.rs:1 side->mid",
        ]
    );
}

#[test]
fn comments_strings_and_macro_crates_are_not_references() {
    let files = [(
        "low.rs",
        "//! See crate::high.\n\
             /* crate::high */ fn a() {}\n\
             const S: &str = \"crate::high\";\n\
             const R: &str = r#\"crate::high \"quoted\"\"#;\n\
             const C: char = '\"'; fn b<'a>(x: &'a str) {}\n\
             macro_rules! m { () => { $crate::high::x() }; }\n",
    )];
    assert_eq!(found(&files), Vec::<String>::new());
}

#[test]
fn the_whole_check_names_unmapped_modules() {
    let dir = fixture(&[
        ("lib.rs", &format!("{MAP}mod stray;\n")),
        ("stray.rs", "use crate::high;\n"),
    ]);
    let panic = std::panic::catch_unwind(|| assert_layered(dir.path())).unwrap_err();
    let message = panic.downcast_ref::<String>().unwrap();
    assert!(
        message.contains("module `stray` is not in the map"),
        "{message}"
    );
}

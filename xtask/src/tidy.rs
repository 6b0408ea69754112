//! Repository-wide checks that run with `cargo test -p xtask`: every Rust file opens with a `//!`
//! doc, and no file hides a test (an ignore attribute), expects a panic, leaves a `todo!` or a `dbg!`,
//! or has trailing whitespace.

use crate::project_root;
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n != "target") {
                rust_files(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn all_rust_files() -> Vec<PathBuf> {
    let root = project_root();
    let mut files = Vec::new();
    for dir in ["crates", "src", "benches", "xtask", "tests", "fuzz"] {
        rust_files(&root.join(dir), &mut files);
    }
    assert!(files.len() > 10, "found only {} Rust files", files.len());
    files
}

#[test]
fn every_file_opens_with_a_module_doc() {
    let missing: Vec<_> = all_rust_files()
        .into_iter()
        .filter(|f| !std::fs::read_to_string(f).unwrap().starts_with("//!"))
        .collect();
    assert!(
        missing.is_empty(),
        "files without a leading //! doc: {missing:#?}"
    );
}

#[test]
fn no_hidden_tests_or_leftovers() {
    // Spelled in pieces so that this file does not match itself.
    let forbidden = [
        concat!("#[", "ignore"),
        concat!("#[", "should_panic"),
        concat!("todo", "!("),
        concat!("dbg", "!("),
        concat!("unimplemented", "!("),
    ];
    let mut found = Vec::new();
    for file in all_rust_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        for (number, line) in text.lines().enumerate() {
            if let Some(bad) = forbidden.iter().find(|bad| line.contains(*bad)) {
                found.push(format!("{}:{}: {bad}", file.display(), number + 1));
            }
            if line.ends_with(' ') || line.ends_with('\t') {
                found.push(format!(
                    "{}:{}: trailing whitespace",
                    file.display(),
                    number + 1
                ));
            }
        }
    }
    assert!(found.is_empty(), "tidy: {found:#?}");
}

//! Integration tests of the protocol crate against the language-neutral fixtures in `fixtures/`.

mod fixtures;
mod schema;
mod standard_webhooks;
mod verify;

use std::path::{Path, PathBuf};

/// The repository's `fixtures/` directory.
pub(crate) fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

/// Every `*.json` payload of `payloads/<kind>/` (expectation files excluded), sorted by name,
/// with its bytes and its `.expected.json` when there is one.
pub(crate) fn payloads(kind: &str) -> Vec<(String, Vec<u8>, Option<serde_json::Value>)> {
    let dir = fixtures_dir().join("payloads").join(kind);
    let mut cases: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.ends_with(".json") && !name.ends_with(".expected.json")
        })
        .map(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let expected =
                std::fs::read(path.with_file_name(name.replace(".json", ".expected.json")))
                    .ok()
                    .map(|bytes| serde_json::from_slice(&bytes).expect("expectation is JSON"));
            (name, std::fs::read(&path).unwrap(), expected)
        })
        .collect();
    cases.sort_by(|a, b| a.0.cmp(&b.0));
    cases
}

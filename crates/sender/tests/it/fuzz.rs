//! The inputs the fuzz targets (`cargo xtask fuzz`) found failing, in `fixtures/fuzz/<target>/`,
//! each checked here for the property it broke, so that CI keeps them fixed.

use evo_siem_sender::service::Config;
use std::path::PathBuf;

/// Every file of `fixtures/fuzz/<target>/`, sorted.
fn inputs(target: &str) -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/fuzz")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

/// A message and its causes, as `anyhow` prints an error with `{:#}`.
fn chain(e: &dyn std::error::Error) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        message = format!("{message}: {s}");
        source = s.source();
    }
    message
}

/// The config target: a literal header value (`headers = { Authorization = "Splunk ..." }`) is a
/// credential, and the parse error of its line quoted the line, value included.
#[test]
fn config_errors_never_quote_a_header_value() {
    let files = inputs("config");
    assert!(!files.is_empty());
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let table: toml::Table = toml::from_str(&text).unwrap();
        let values: Vec<String> = table["integration"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|i| i.get("headers")?.as_table())
            .flat_map(|h| h.values().filter_map(|v| v.as_str().map(str::to_owned)))
            .collect();
        assert!(
            !values.is_empty(),
            "{}: no literal header value",
            file.display()
        );
        let error = Config::parse(&text).expect_err("the file is refused");
        let message = chain(&error);
        for value in &values {
            assert!(
                !message.contains(value.as_str()),
                "{}: the header value is in the error: {message}",
                file.display()
            );
        }
        // The error still says where and why.
        assert!(message.contains("line 7"), "{message}");
    }
}

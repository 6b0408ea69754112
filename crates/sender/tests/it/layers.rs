//! The sender's layers hold: no module uses one of a layer above its own (ARCHITECTURE.md,
//! "crates/sender"). Read from the sources, so a new upward `use` fails here, not in review.

use std::collections::BTreeMap;
use std::path::Path;

/// Each top-level module and its layer: core 0, storage 1, delivery 2, services 3.
const LAYERS: &[(&str, u8)] = &[
    ("settings", 0),
    ("filter", 0),
    ("batcher", 0),
    ("retry", 0),
    ("guard", 0),
    ("dispatch", 0),
    ("integration", 0),
    ("secrets", 0),
    ("spool", 1),
    ("store", 1),
    ("deliver", 2),
    ("schedule", 2),
    ("stats", 2),
    ("api", 3),
    ("service", 3),
];

/// What the crate root re-exports, by the module it comes from.
const ROOT: &[(&str, &str)] = &[
    ("Exclusions", "filter"),
    ("Integration", "integration"),
    ("IntegrationError", "integration"),
    ("Worker", "deliver"),
    ("Step", "deliver"),
    ("DeliveryStats", "stats"),
    ("LatencyHistogram", "stats"),
    ("AttemptCounters", "stats"),
    ("LATENCY_BUCKETS", "stats"),
    ("LastError", "stats"),
];

/// The first path segment of every `crate::` path in `code`, `use crate::{a, b::c}` included.
fn crate_paths(code: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0;
            let mut item = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        found.push(std::mem::take(&mut item));
                        continue;
                    }
                    _ => {}
                }
                if depth == 0 {
                    item.push(c);
                }
            }
            found.push(item);
        } else {
            found.push(rest.to_owned());
        }
    }
    found
        .iter()
        .map(|p| {
            p.trim()
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect::<String>()
        })
        .filter(|p| !p.is_empty())
        .collect()
}

fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_arrow_points_down() {
    let layers: BTreeMap<&str, u8> = LAYERS.iter().copied().collect();
    let root: BTreeMap<&str, &str> = ROOT.iter().copied().collect();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut upward = Vec::new();
    let mut placed = 0;
    for file in &files {
        let relative = file.strip_prefix(&src).unwrap();
        let top = relative
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_str()
            .unwrap()
            .trim_end_matches(".rs");
        if top == "lib" {
            continue;
        }
        let own = *layers
            .get(top)
            .unwrap_or_else(|| panic!("{top}: a new module: give it a layer in LAYERS"));
        placed += 1;
        let code = std::fs::read_to_string(file).unwrap();
        // A module's unit tests may build what they test from anywhere.
        let code = code.split("#[cfg(test)]").next().unwrap();
        for path in crate_paths(code) {
            let module = root.get(path.as_str()).copied().unwrap_or(&path);
            if let Some(&theirs) = layers.get(module)
                && theirs > own
            {
                upward.push(format!("{} uses {module}", relative.display()));
            }
        }
    }
    assert!(
        placed > 30,
        "only {placed} files read from {}",
        src.display()
    );
    assert!(upward.is_empty(), "arrows pointing up: {upward:#?}");
}

#[test]
fn paths_are_read_from_groups_too() {
    assert_eq!(
        crate_paths(
            "use crate::{api::App, store::{Registry, TokenStore}, Integration};\nx = crate::schedule::x;"
        ),
        ["api", "store", "Integration", "schedule"]
    );
}

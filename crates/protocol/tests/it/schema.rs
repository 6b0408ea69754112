//! The JSON Schema of v1 agrees with the crate: it accepts every valid payload and refuses the
//! invalid ones whose fault is one of shape or type.

use crate::{fixtures_dir, payloads};
use boon::{Compiler, SchemaIndex, Schemas};

fn compile() -> (Schemas, SchemaIndex) {
    let path = fixtures_dir().join("schema/batch-v1.schema.json");
    let schema: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let mut schemas = Schemas::new();
    let mut compiler = Compiler::new();
    compiler.enable_format_assertions();
    compiler
        .add_resource("batch-v1.schema.json", schema)
        .unwrap();
    let index = compiler
        .compile("batch-v1.schema.json", &mut schemas)
        .unwrap();
    (schemas, index)
}

#[test]
fn every_valid_payload_validates() {
    let (schemas, index) = compile();
    for (name, body, _) in payloads("valid") {
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
        if let Err(err) = schemas.validate(&value, index) {
            panic!("{name}: {err}");
        }
    }
}

/// The refusals a schema expresses. `count_mismatch` and the replay window are beyond JSON
/// Schema, and a body that is not JSON never reaches a schema validator.
const SCHEMA_REFUSALS: [&str; 5] = [
    "invalid_batch",
    "unsupported_schema_version",
    "empty_batch",
    "invalid_event_uuid",
    "invalid_generated_at",
];

#[test]
fn shape_errors_fail_the_schema() {
    let (schemas, index) = compile();
    let mut checked = 0;
    for (name, body, expected) in payloads("invalid") {
        let reason = expected
            .as_ref()
            .and_then(|e| e["reason"].as_str())
            .unwrap_or_default()
            .to_owned();
        let Ok(value) = serde_json::from_slice::<serde_json::Value>(&body) else {
            continue;
        };
        // Two refusals are stricter than JSON Schema can say: serde_json keeps the last of two
        // duplicate keys, and JSON Schema counts 1.706e+18 as an integer, which we refuse so that
        // nanoseconds are always written as exact integer literals.
        // The schema states the default contract; a receiver may choose to accept UUIDs only.
        if !SCHEMA_REFUSALS.contains(&reason.as_str())
            || ["duplicate-key.json", "ts-float.json"].contains(&name.as_str())
            || expected
                .as_ref()
                .is_some_and(|e| e.get("event_ids").is_some())
        {
            continue;
        }
        assert!(
            schemas.validate(&value, index).is_err(),
            "{name} ({reason}) passes the schema"
        );
        checked += 1;
    }
    assert!(checked >= 8, "only {checked} shape cases checked");
}

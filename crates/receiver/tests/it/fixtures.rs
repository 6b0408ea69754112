//! The shared fixtures through HTTP: every invalid payload gets its documented status and
//! reason code from the axum extractor, and every valid one is accepted.

use crate::common::SECRET;
use axum::Router;
use axum::routing::post;
use evo_siem_protocol::{Secret, headers, parse_rfc3339, sign};
use evo_siem_receiver::{Delivered, Receiver, Rejection, VerifiedBatch};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/payloads")
}

async fn handler(batch: VerifiedBatch) -> Result<Delivered, Rejection> {
    batch.commit().await
}

/// The clock the fixture is checked at: its `now`, else the body's own `generated_at`.
fn clock(expected: &serde_json::Value, body: &[u8]) -> SystemTime {
    let from_body = || {
        let value: serde_json::Value = serde_json::from_slice(body).ok()?;
        parse_rfc3339(value.get("generated_at")?.as_str()?)
    };
    expected
        .get("now")
        .and_then(|n| parse_rfc3339(n.as_str()?))
        .or_else(from_body)
        .unwrap_or_else(SystemTime::now)
}

/// Sends `body` signed with the test secret to the framework-free entry point, at `now`.
async fn status_of(
    receiver: &Receiver,
    body: Vec<u8>,
    now: SystemTime,
) -> Result<usize, Rejection> {
    let mut map = http::HeaderMap::new();
    map.insert(
        headers::SIGNATURE_256,
        sign(&Secret::new(SECRET), &body).parse().unwrap(),
    );
    let batch = receiver.accept(&map, body.into(), now).await?;
    Ok(batch.commit().await?.accepted)
}

fn cases(dir: &str) -> Vec<(String, Vec<u8>, serde_json::Value)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(fixtures().join(dir)).expect("fixture directory") {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.ends_with(".json") || name.ends_with(".expected.json") {
            continue;
        }
        let expected_path = path.with_file_name(name.replace(".json", ".expected.json"));
        let expected = std::fs::read(&expected_path)
            .map(|b| serde_json::from_slice(&b).expect("expected file is JSON"))
            .unwrap_or(serde_json::Value::Null);
        out.push((name, std::fs::read(&path).unwrap(), expected));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[tokio::test]
async fn every_invalid_fixture_gets_its_documented_status_and_reason() {
    let cases = cases("invalid");
    assert!(cases.len() >= 10, "only {} invalid fixtures", cases.len());
    for (name, body, expected) in cases {
        assert!(expected.is_object(), "{name} has no .expected.json");
        let mut builder = Receiver::builder().secret(SECRET);
        if let Some(limit) = expected
            .get("max_body_bytes")
            .and_then(serde_json::Value::as_u64)
        {
            builder = builder.max_body_bytes(limit as usize);
        }
        if expected
            .get("event_ids")
            .and_then(serde_json::Value::as_str)
            == Some("uuid")
        {
            builder = builder.event_ids(evo_siem_protocol::EventIds::UuidOnly);
        }
        let receiver = builder.build().unwrap();
        let now = clock(&expected, &body);
        let rejection = status_of(&receiver, body, now).await.expect_err(&name);
        assert_eq!(
            (rejection.status().as_u16() as u64, rejection.reason_code()),
            (
                expected["status"].as_u64().unwrap(),
                expected["reason"].as_str().unwrap()
            ),
            "{name}"
        );
    }
}

#[tokio::test]
async fn every_valid_fixture_is_accepted_through_axum() {
    use tower::ServiceExt;
    let cases = cases("valid");
    assert!(cases.len() >= 3, "only {} valid fixtures", cases.len());
    for (name, body, expected) in cases {
        let receiver = Receiver::builder().secret(SECRET).build().unwrap();
        // The extractor reads the wall clock, so check the replay window separately here.
        let now = clock(&expected, &body);
        let events = status_of(&receiver, body.clone(), now)
            .await
            .unwrap_or_else(|r| panic!("{name}: {r}"));
        assert!(events >= 1, "{name}");

        let unsigned = Receiver::builder()
            .allow_unsigned()
            .tolerance(std::time::Duration::MAX / 4)
            .build()
            .unwrap();
        let app = Router::new()
            .route("/webhook", post(handler))
            .with_state(unsigned);
        let response = app
            .oneshot(
                http::Request::post("/webhook")
                    .body(axum::body::Body::from(body))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(response.status(), http::StatusCode::OK, "{name}");
    }
}

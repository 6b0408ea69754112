//! Builders for realistic signed deliveries, shared by the test modules.

use axum::body::Body;
use evo_siem_protocol::{Secret, encode_batch, headers, sign};
use evo_siem_receiver::Receiver;
use serde_json::value::RawValue;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use uuid::Uuid;

pub(crate) const SECRET: &str = "whsec-test-7f3a9c";

/// A fixed clock: 2024-01-15T10:30:05.123Z, the seed's `generated_at`.
pub(crate) fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(1_705_314_605_123)
}

pub(crate) fn receiver() -> Receiver {
    Receiver::builder()
        .secret(SECRET)
        .build()
        .expect("valid receiver")
}

/// A realistic audit event with the given UUID.
pub(crate) fn event(uuid: Uuid, action: &str) -> Box<RawValue> {
    let json = serde_json::json!({
        "event_type": "create",
        "table": "events",
        "timestamp": "2024-01-15T10:30:00.000Z",
        "data": {
            "uuid": uuid.to_string(),
            "action": action,
            "status": "Success",
            "actor": {"kind": "User", "name": "josé@example.com"},
            "origin": {"hostname": "DESKTOP-ABC", "ipaddr": "2001:db8::17"},
            "target": {"kind": "User", "name": "josé@example.com"},
            "ts": 1_706_000_000_123_456_789_i64,
            "created_at": 1_706_000_000_123_456_789_i64,
        },
    });
    RawValue::from_string(json.to_string()).expect("valid JSON")
}

/// The body of a batch holding one event per UUID, stamped at `at`.
pub(crate) fn body(uuids: &[Uuid], at: SystemTime) -> Vec<u8> {
    let events: Vec<Box<RawValue>> = uuids.iter().map(|u| event(*u, "User login")).collect();
    let refs: Vec<&RawValue> = events.iter().map(|e| &**e).collect();
    encode_batch(&refs, at)
}

/// Signed request headers for `body`.
pub(crate) fn signed_headers(body: &[u8]) -> http::HeaderMap {
    let mut map = http::HeaderMap::new();
    let signature = sign(&Secret::new(SECRET), body);
    map.insert(headers::SIGNATURE_256, signature.parse().expect("ASCII"));
    map.insert(
        http::header::CONTENT_TYPE,
        "application/json".parse().expect("ASCII"),
    );
    map
}

/// A signed POST /webhook request carrying `body`.
pub(crate) fn request(body: Vec<u8>) -> http::Request<Body> {
    let mut req = http::Request::post("/webhook")
        .body(Body::empty())
        .expect("request");
    *req.headers_mut() = signed_headers(&body);
    *req.body_mut() = Body::from(body);
    req
}

pub(crate) fn uuids(n: usize) -> Vec<Uuid> {
    (0..n).map(|_| Uuid::new_v4()).collect()
}

//! Standard Webhooks: requests signed by the `standardwebhooks` crate (the specification's Rust
//! library) are accepted by the SDK, through the axum extractor and the plain function, with the
//! secret in its `whsec_` form or as configured for Evo signatures; forged, stale and
//! incomplete ones get their 401.

use crate::common::{self, SECRET};
use axum::Router;
use axum::body::Body;
use axum::http::StatusCode;
use axum::routing::post;
use evo_siem_protocol::{Secret, SignatureScheme, headers};
use evo_siem_receiver::{BuildError, Delivered, Receiver, Rejection, VerifiedBatch};
use http_body_util::BodyExt;
use standardwebhooks::Webhook;
use std::time::{SystemTime, UNIX_EPOCH};
use tower::ServiceExt;

/// The `whsec_` form of the test secret, as the sender shows it to a tenant.
fn whsec() -> String {
    Secret::new(SECRET).to_whsec()
}

fn unix(at: SystemTime) -> i64 {
    i64::try_from(at.duration_since(UNIX_EPOCH).unwrap().as_secs()).unwrap()
}

/// Headers of a request signed by the `standardwebhooks` crate with `whsec`, at `timestamp`.
fn signed_by_the_library(whsec: &str, id: &str, timestamp: i64, body: &[u8]) -> http::HeaderMap {
    let signature = Webhook::new(whsec)
        .expect("whsec_ secret")
        .sign(id, timestamp, body)
        .expect("UTF-8 body");
    let mut map = http::HeaderMap::new();
    map.insert(standardwebhooks::HEADER_WEBHOOK_ID, id.parse().unwrap());
    map.insert(
        standardwebhooks::HEADER_WEBHOOK_TIMESTAMP,
        timestamp.to_string().parse().unwrap(),
    );
    map.insert(
        standardwebhooks::HEADER_WEBHOOK_SIGNATURE,
        signature.parse().unwrap(),
    );
    map.insert(
        http::header::CONTENT_TYPE,
        "application/json".parse().unwrap(),
    );
    map
}

async fn send(app: &Router, headers: http::HeaderMap, body: Vec<u8>) -> (StatusCode, String) {
    let mut request = http::Request::post("/webhook")
        .body(Body::from(body))
        .unwrap();
    *request.headers_mut() = headers;
    let response = app.clone().oneshot(request).await.expect("infallible");
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(bytes.to_vec()).unwrap())
}

fn app(receiver: Receiver) -> Router {
    async fn webhook(batch: VerifiedBatch) -> Result<Delivered, Rejection> {
        batch.commit().await
    }
    Router::new()
        .route("/webhook", post(webhook))
        .with_state(receiver)
}

fn reason(body: &str) -> String {
    let value: serde_json::Value = serde_json::from_str(body).expect("JSON error body");
    value["error"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn the_axum_extractor_accepts_what_the_library_signs() {
    let receiver = Receiver::builder().whsec_secret(&whsec()).build().unwrap();
    let app = app(receiver);
    let now = SystemTime::now();
    let uuids = common::uuids(2);
    let body = common::body(&uuids, now);
    let id = uuid::Uuid::new_v4().to_string();
    let headers = signed_by_the_library(&whsec(), &id, unix(now), &body);
    let (status, text) = send(&app, headers.clone(), body.clone()).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert_eq!(text, r#"{"accepted":2,"duplicates":0}"#);

    // The same request again: verified again, and its events are duplicates.
    let (status, text) = send(&app, headers, body.clone()).await;
    assert_eq!(
        (status, text.as_str()),
        (StatusCode::OK, r#"{"accepted":0,"duplicates":2}"#)
    );

    // Another key: 401 with the usual JSON error body.
    let other = Secret::new("another-secret-of-the-test").to_whsec();
    let forged = signed_by_the_library(&other, &id, unix(now), &body);
    let (status, text) = send(&app, forged, body.clone()).await;
    assert_eq!(
        (status, reason(&text).as_str()),
        (StatusCode::UNAUTHORIZED, "signature_mismatch")
    );
    assert!(!text.contains(SECRET) && !text.contains("v1,"), "{text}");

    // Signed correctly, but ten minutes ago: a replay.
    let stale = signed_by_the_library(&whsec(), &id, unix(now) - 600, &body);
    let (status, text) = send(&app, stale, body).await;
    assert_eq!(
        (status, reason(&text).as_str()),
        (StatusCode::UNAUTHORIZED, "timestamp_too_old")
    );
}

#[tokio::test]
async fn the_plain_function_accepts_it_whatever_form_the_secret_was_given_in() {
    let now = common::now();
    let body = common::body(&common::uuids(1), now);
    let id = uuid::Uuid::new_v4();
    let headers = signed_by_the_library(&whsec(), &id.to_string(), unix(now), &body);
    for receiver in [
        Receiver::builder().whsec_secret(&whsec()).build().unwrap(),
        Receiver::builder().secret(SECRET).build().unwrap(),
        Receiver::builder()
            .secret(SECRET)
            .schemes([SignatureScheme::StandardWebhooks])
            .build()
            .unwrap(),
    ] {
        let batch = receiver
            .accept(&headers, body.clone().into(), now)
            .await
            .expect("verified");
        // Without X-Evo-Delivery-Id, the delivery is named by webhook-id.
        assert_eq!(batch.delivery_id(), Some(id));
        assert_eq!(batch.commit().await.unwrap().accepted, 1);
    }

    // An incomplete request says what is missing.
    let receiver = common::receiver();
    let mut no_timestamp = headers.clone();
    no_timestamp.remove(headers::WEBHOOK_TIMESTAMP);
    let rejection = receiver
        .accept(&no_timestamp, body.clone().into(), now)
        .await
        .unwrap_err();
    assert_eq!(rejection.reason_code(), "missing_webhook_timestamp");
    assert_eq!(rejection.status(), StatusCode::UNAUTHORIZED);

    // A receiver narrowed to Evo signatures does not take a Standard Webhooks one.
    let evo_only = Receiver::builder()
        .secret(SECRET)
        .schemes([SignatureScheme::Evo])
        .build()
        .unwrap();
    let rejection = evo_only
        .accept(&headers, body.clone().into(), now)
        .await
        .unwrap_err();
    assert_eq!(rejection.reason_code(), "missing_signature");

    // And one narrowed to Standard Webhooks does not take an Evo one.
    let standard_only = Receiver::builder()
        .secret(SECRET)
        .schemes([SignatureScheme::StandardWebhooks])
        .build()
        .unwrap();
    let rejection = standard_only
        .accept(&common::signed_headers(&body), body.into(), now)
        .await
        .unwrap_err();
    assert_eq!(rejection.reason_code(), "missing_signature");
}

#[test]
fn a_bad_whsec_secret_or_no_scheme_is_refused_at_build_time() {
    assert!(matches!(
        Receiver::builder().whsec_secret("MfKQ9r8G").build(),
        Err(BuildError::InvalidWhsec(_))
    ));
    assert!(matches!(
        Receiver::builder().whsec_secret("whsec_***").build(),
        Err(BuildError::InvalidWhsec(_))
    ));
    assert_eq!(
        Receiver::builder()
            .secret(SECRET)
            .schemes([])
            .build()
            .unwrap_err(),
        BuildError::NoScheme
    );
}

//! The axum extractor end to end: statuses, JSON error bodies, commit-after-handler, size limits.

use crate::common::{self, SECRET};
use axum::Router;
use axum::body::Body;
use axum::http::StatusCode;
use axum::routing::post;
use evo_siem_protocol::headers;
use evo_siem_receiver::{Delivered, Receiver, Rejection, VerifiedBatch};
use http_body_util::BodyExt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tower::ServiceExt;

type Seen = Arc<Mutex<Vec<String>>>;

/// A receiver app that records the UUIDs it processes; `fail` makes the handler error out.
fn app(receiver: Receiver, seen: Seen, fail: bool) -> Router {
    Router::new()
        .route(
            "/webhook",
            post(move |batch: VerifiedBatch| async move {
                if fail {
                    return Err((StatusCode::INTERNAL_SERVER_ERROR, "downstream down")
                        .into_response_parts());
                }
                seen.lock()
                    .unwrap()
                    .extend(batch.events().map(|e| e.data.uuid.to_string()));
                batch.commit().await.map_err(|r| r.into_response_parts())
            }),
        )
        .with_state(receiver)
}

trait IntoParts {
    fn into_response_parts(self) -> axum::response::Response;
}

impl<T: axum::response::IntoResponse> IntoParts for T {
    fn into_response_parts(self) -> axum::response::Response {
        self.into_response()
    }
}

async fn send(app: &Router, req: http::Request<Body>) -> (StatusCode, http::HeaderMap, String) {
    let response = app.clone().oneshot(req).await.expect("infallible");
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.expect("body").to_bytes();
    (
        parts.status,
        parts.headers,
        String::from_utf8(bytes.to_vec()).expect("UTF-8"),
    )
}

fn error_code(body: &str) -> String {
    let value: serde_json::Value = serde_json::from_str(body).expect("JSON error body");
    value["error"].as_str().expect("error code").to_owned()
}

#[tokio::test]
async fn valid_delivery_is_processed_once_and_redelivery_is_a_duplicate() {
    let seen = Seen::default();
    let app = app(common::receiver(), seen.clone(), false);
    let ids = common::uuids(3);
    let body = common::body(&ids, SystemTime::now());

    let (status, _, text) = send(&app, common::request(body.clone())).await;
    assert_eq!(
        (status, text.as_str()),
        (StatusCode::OK, r#"{"accepted":3,"duplicates":0}"#)
    );
    let (status, _, text) = send(&app, common::request(body)).await;
    assert_eq!(
        (status, text.as_str()),
        (StatusCode::OK, r#"{"accepted":0,"duplicates":3}"#)
    );

    let expected: Vec<String> = ids.iter().map(ToString::to_string).collect();
    assert_eq!(*seen.lock().unwrap(), expected);
}

#[tokio::test]
async fn handler_failure_releases_claims_so_the_retry_processes_them() {
    let receiver = common::receiver();
    let seen = Seen::default();
    let body = common::body(&common::uuids(2), SystemTime::now());

    let failing = app(receiver.clone(), seen.clone(), true);
    let (status, _, _) = send(&failing, common::request(body.clone())).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);

    let healthy = app(receiver, seen.clone(), false);
    let (status, _, text) = send(&healthy, common::request(body)).await;
    assert_eq!(
        (status, text.as_str()),
        (StatusCode::OK, r#"{"accepted":2,"duplicates":0}"#)
    );
    assert_eq!(seen.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn signature_and_replay_failures_are_401_with_a_reason_and_no_secret() {
    let app = app(common::receiver(), Seen::default(), false);
    let body = common::body(&common::uuids(1), SystemTime::now());

    let mut tampered = common::request(body.clone());
    *tampered.body_mut() = Body::from([&body[..body.len() - 2], b" }"].concat());
    let mut missing = common::request(body.clone());
    missing.headers_mut().remove(headers::SIGNATURE_256);
    let mut malformed = common::request(body.clone());
    malformed
        .headers_mut()
        .insert(headers::SIGNATURE_256, "sha1=abcd".parse().unwrap());
    let stale = common::request(common::body(
        &common::uuids(1),
        SystemTime::now() - Duration::from_secs(301),
    ));
    let future = common::request(common::body(
        &common::uuids(1),
        SystemTime::now() + Duration::from_secs(400),
    ));

    for (req, code) in [
        (tampered, "signature_mismatch"),
        (missing, "missing_signature"),
        (malformed, "malformed_signature"),
        (stale, "timestamp_too_old"),
        (future, "timestamp_too_new"),
    ] {
        let signature = req
            .headers()
            .get(headers::SIGNATURE_256)
            .map(|v| v.to_str().unwrap().to_owned());
        let (status, response_headers, text) = send(&app, req).await;
        assert_eq!(
            (status, error_code(&text).as_str()),
            (StatusCode::UNAUTHORIZED, code),
            "{text}"
        );
        assert_eq!(
            response_headers[http::header::CONTENT_TYPE],
            "application/json"
        );
        assert!(!text.contains(SECRET), "{text}");
        if let Some(signature) = signature {
            assert!(!text.contains(&signature[7..]), "{text}");
        }
    }
}

#[tokio::test]
async fn malformed_bodies_are_400() {
    let app = app(common::receiver(), Seen::default(), false);
    let now = evo_siem_protocol::format_generated_at(SystemTime::now());
    for (body, code) in [
        ("{not json".to_owned(), "malformed_json"),
        (
            format!(r#"{{"schema_version":"2","events":[],"count":0,"generated_at":"{now}"}}"#),
            "unsupported_schema_version",
        ),
        (
            format!(r#"{{"schema_version":"1","events":[],"count":0,"generated_at":"{now}"}}"#),
            "empty_batch",
        ),
        (
            r#"{"schema_version":"1","events":[]}"#.to_owned(),
            "invalid_batch",
        ),
    ] {
        let (status, _, text) = send(&app, common::request(body.into_bytes())).await;
        assert_eq!(
            (status, error_code(&text).as_str()),
            (StatusCode::BAD_REQUEST, code),
            "{text}"
        );
    }
}

#[tokio::test]
async fn declared_oversize_body_is_413_before_reading() {
    let receiver = Receiver::builder()
        .secret(SECRET)
        .max_body_bytes(1024)
        .build()
        .unwrap();
    let app = app(receiver, Seen::default(), false);
    let mut req = common::request(vec![b' '; 10]);
    req.headers_mut()
        .insert(http::header::CONTENT_LENGTH, "1000000".parse().unwrap());
    let (status, _, text) = send(&app, req).await;
    assert_eq!(
        (status, error_code(&text).as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large")
    );
}

#[tokio::test]
async fn streamed_oversize_body_is_413_without_buffering_past_the_limit() {
    let limit = 64 * 1024;
    let receiver = Receiver::builder()
        .secret(SECRET)
        .max_body_bytes(limit)
        .build()
        .unwrap();
    let app = app(receiver, Seen::default(), false);
    let produced = Arc::new(Mutex::new(0usize));
    let counter = produced.clone();
    // An endless body without Content-Length: the extractor must stop reading at the limit.
    let chunks = futures_chunks(move || {
        *counter.lock().unwrap() += 4096;
        bytes::Bytes::from(vec![b' '; 4096])
    });
    let mut req = common::request(Vec::new());
    *req.body_mut() = Body::from_stream(chunks);
    let (status, _, text) = send(&app, req).await;
    assert_eq!(
        (status, error_code(&text).as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large")
    );
    assert!(
        *produced.lock().unwrap() <= limit + 4096,
        "read {} bytes",
        produced.lock().unwrap()
    );
}

/// An endless stream of chunks made by `next`.
fn futures_chunks(
    next: impl FnMut() -> bytes::Bytes + Send + Unpin + 'static,
) -> impl futures_core::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send + 'static {
    struct Endless<F>(F);
    impl<F: FnMut() -> bytes::Bytes + Unpin> futures_core::Stream for Endless<F> {
        type Item = Result<bytes::Bytes, std::io::Error>;
        fn poll_next(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Self::Item>> {
            std::task::Poll::Ready(Some(Ok((self.0)())))
        }
    }
    Endless(next)
}

#[tokio::test]
async fn event_in_flight_elsewhere_gets_503_with_retry_after_then_succeeds() {
    let receiver = common::receiver();
    let ids = common::uuids(2);
    let body = common::body(&ids, SystemTime::now());
    let headers = common::signed_headers(&body);

    // Delivery A holds the claims while "processing".
    let first = receiver
        .accept(&headers, body.clone().into(), SystemTime::now())
        .await
        .unwrap();
    assert_eq!(first.events().len(), 2);

    // Delivery B (a retry after a timeout, say) must not answer 2xx while A's outcome is unknown.
    let app = app(receiver.clone(), Seen::default(), false);
    let (status, response_headers, text) = send(&app, common::request(body.clone())).await;
    assert_eq!(
        (status, error_code(&text).as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "event_in_flight")
    );
    assert_eq!(response_headers[http::header::RETRY_AFTER], "1");

    assert_eq!(first.commit().await.unwrap().accepted, 2);
    let (status, _, text) = send(&app, common::request(body)).await;
    assert_eq!(
        (status, text.as_str()),
        (StatusCode::OK, r#"{"accepted":0,"duplicates":2}"#)
    );
}

#[tokio::test]
async fn dropped_delivery_releases_its_claims() {
    let receiver = common::receiver();
    let body = common::body(&common::uuids(3), SystemTime::now());
    let headers = common::signed_headers(&body);
    let first = receiver
        .accept(&headers, body.clone().into(), SystemTime::now())
        .await
        .unwrap();
    drop(first);
    let again = receiver
        .accept(&headers, body.into(), SystemTime::now())
        .await
        .unwrap();
    assert_eq!((again.events().len(), again.duplicates()), (3, 0));
}

#[tokio::test]
async fn repeated_uuid_within_a_batch_is_processed_once() {
    let receiver = common::receiver();
    let id = common::uuids(1)[0];
    let body = common::body(&[id, id], SystemTime::now());
    let batch = receiver
        .accept(
            &common::signed_headers(&body),
            body.into(),
            SystemTime::now(),
        )
        .await
        .unwrap();
    assert_eq!((batch.events().len(), batch.duplicates()), (1, 1));
    assert_eq!(
        batch.commit().await.unwrap(),
        Delivered {
            accepted: 1,
            duplicates: 1
        }
    );
}

#[tokio::test]
async fn delivery_headers_and_raw_events_are_exposed() {
    let receiver = common::receiver();
    let ids = common::uuids(1);
    let body = common::body(&ids, SystemTime::now());
    let mut headers = common::signed_headers(&body);
    let delivery = uuid::Uuid::new_v4();
    headers.insert(headers::DELIVERY_ID, delivery.to_string().parse().unwrap());
    headers.insert(headers::DELIVERY_ATTEMPT, "3".parse().unwrap());
    let batch = receiver
        .accept(&headers, body.clone().into(), SystemTime::now())
        .await
        .unwrap();
    assert_eq!(
        (batch.delivery_id(), batch.attempt()),
        (Some(delivery), Some(3))
    );
    let raw = batch
        .events()
        .next()
        .unwrap()
        .raw_json()
        .unwrap()
        .to_owned();
    assert!(std::str::from_utf8(&body).unwrap().contains(&raw));
    assert_eq!(batch.body().as_ref(), &body[..]);
}

#[tokio::test]
async fn rotation_accepts_old_and_new_secret() {
    use evo_siem_protocol::{Secret, sign};
    let receiver = Receiver::builder()
        .secret("old-secret")
        .secret("new-secret")
        .build()
        .unwrap();
    for secret in ["old-secret", "new-secret"] {
        let body = common::body(&common::uuids(1), SystemTime::now());
        let mut headers = http::HeaderMap::new();
        headers.insert(
            headers::SIGNATURE_256,
            sign(&Secret::new(secret), &body).parse().unwrap(),
        );
        let batch = receiver
            .accept(&headers, body.into(), SystemTime::now())
            .await;
        assert_eq!(batch.map(|b| b.events().len()), Ok(1), "{secret}");
    }
}

#[tokio::test]
async fn unsigned_receivers_must_be_asked_for() {
    use evo_siem_receiver::BuildError;
    assert_eq!(
        Receiver::builder().build().unwrap_err(),
        BuildError::NoSecret
    );
    assert_eq!(
        Receiver::builder().secret("").build().unwrap_err(),
        BuildError::EmptySecret
    );
    let receiver = Receiver::builder().allow_unsigned().build().unwrap();
    let body = common::body(&common::uuids(1), SystemTime::now());
    let batch = receiver
        .accept(&http::HeaderMap::new(), body.into(), SystemTime::now())
        .await;
    assert_eq!(batch.map(|b| b.events().len()), Ok(1));
}

#[test]
fn debug_output_never_shows_the_secret() {
    let receiver = common::receiver();
    let debug = format!("{receiver:?}");
    assert!(!debug.contains(SECRET), "{debug}");
    assert!(debug.contains("<redacted>"), "{debug}");
}

#[test]
fn rejection_statuses_are_fixed() {
    use evo_siem_receiver::dedup::DedupError;
    assert_eq!(
        Rejection::InFlight.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        Rejection::DedupUnavailable(DedupError("down".into())).status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(Rejection::BodyUnreadable.status(), StatusCode::BAD_REQUEST);
}

//! axum integration: [`VerifiedBatch`] as an extractor, [`Rejection`] and [`Delivered`] as
//! responses.

use crate::{Delivered, Receiver, Rejection, VerifiedBatch, read_body};
use axum::extract::{FromRef, FromRequest, Request};
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, header};
use std::time::SystemTime;

/// Extracts a verified, deduplicated batch from the request, with the [`Receiver`] taken from
/// the router state through `FromRef`.
///
/// The request is rejected, with the JSON error body and status of [`Rejection`], when:
///
/// - `Content-Length` or the body exceeds the receiver's limit: 413, without reading past it;
/// - the signature is missing, malformed or wrong, in either scheme (`X-Evo-Signature-256`, or
///   Standard Webhooks' `webhook-id`, `webhook-timestamp` and `webhook-signature`): 401;
/// - `webhook-timestamp` is outside the replay window: 401;
/// - `generated_at` is outside the replay window: 401;
/// - the body is not a valid v1 batch (JSON, schema version, count, empty, UUIDs): 400;
/// - another delivery is processing one of the events, or the dedup store is down: 503 with
///   `Retry-After`.
///
/// ```
/// use axum::{Router, routing::post};
/// use evo_siem_receiver::{Delivered, Receiver, Rejection, VerifiedBatch};
///
/// async fn webhook(batch: VerifiedBatch) -> Result<Delivered, Rejection> {
///     for event in batch.events() {
///         println!("{} {}", event.data.uuid, event.data.action);
///     }
///     batch.commit().await
/// }
///
/// let receiver = Receiver::builder().secret("whsec-example").build()?;
/// let app: Router = Router::new().route("/webhook", post(webhook)).with_state(receiver);
/// # Ok::<(), evo_siem_receiver::BuildError>(())
/// ```
impl<S> FromRequest<S> for VerifiedBatch
where
    Receiver: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Rejection;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let receiver = Receiver::from_ref(state);
        let (parts, body) = req.into_parts();
        let body = match read_body(&parts.headers, body, receiver.max_body_bytes()).await {
            Ok(body) => body,
            Err(rejection) => {
                tracing::debug!(
                    target: crate::REJECTION_TARGET,
                    reason = rejection.reason_code(),
                    status = rejection.status().as_u16(),
                    "webhook delivery rejected: {rejection}"
                );
                return Err(rejection);
            }
        };
        receiver
            .accept(&parts.headers, body, SystemTime::now())
            .await
    }
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        let mut response = (
            self.status(),
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            self.body_json(),
        )
            .into_response();
        if let Some(seconds) = self.retry_after() {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

impl IntoResponse for Delivered {
    fn into_response(self) -> Response {
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            format!(
                r#"{{"accepted":{},"duplicates":{}}}"#,
                self.accepted, self.duplicates
            ),
        )
            .into_response()
    }
}

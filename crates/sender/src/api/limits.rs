//! Per-endpoint request body limits and the body-read deadline.
//!
//! Anyone who reaches the listener controls how much a request body weighs and how fast it
//! arrives. Each route therefore gets a `BodyLimit` fitting its job (16 MiB for ingest, 64 KiB
//! for a settings PUT, a few KiB for the small POSTs), enforced by `guard` before the handler
//! runs: a `Content-Length` over the limit is refused before a byte is read, a longer stream is
//! cut at the limit, both with `413 {"error": "body_too_large"}`. The same reader enforces a
//! minimum rate, so that a body trickling one byte a second cannot hold a connection (and its
//! slot under the connection cap) for hours: after a grace period the body must keep arriving at
//! an average of at least `body_min_bytes_per_sec`, or the request ends with
//! `408 {"error": "body_timeout"}` and the connection is closed.

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use std::time::Duration;
use tokio::time::Instant;

/// The largest settings PUT body, in bytes. Real settings take a few KiB; this is less than the
/// per-field limits would allow together (16 header values of 4 KiB plus 500 excluded actions
/// of 200 characters), so a tenant near those limits changes headers and excluded actions in
/// separate PUTs (a PUT keeps what it does not name).
pub const MAX_SETTINGS_BYTES: usize = 64 * 1024;

/// The largest body of the small POST endpoints (Test Saved Webhook, resume, dead-letter
/// replay) and of the requests that carry none, in bytes. A replay names dead-letter ids:
/// 1,000 UUIDs fit.
pub const MAX_SMALL_BYTES: usize = 48 * 1024;

/// How a body must arrive: at most `max` bytes, and after `grace`, at an average of at least
/// `min_bytes_per_sec` since the request's head was read.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyLimit {
    pub(crate) max: usize,
    pub(crate) grace: Duration,
    pub(crate) min_bytes_per_sec: u64,
}

impl BodyLimit {
    /// When reading must have gone past `read` bytes at the latest.
    fn deadline(&self, started: Instant, read: usize) -> Instant {
        let rate = self.min_bytes_per_sec.max(1);
        let earned = Duration::from_secs_f64(read as f64 / rate as f64);
        started + self.grace + earned
    }
}

fn refusal(status: StatusCode, error: &str, message: &str) -> Response {
    let mut response = super::errors::response(status, error, message);
    // What is left of the body is not read: the connection cannot carry another request.
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

fn too_large(max: usize) -> Response {
    refusal(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        &format!("the request body exceeds {max} bytes for this endpoint"),
    )
}

/// Reads the body under `limit`, then hands the request, with its body buffered, to the route.
pub(crate) async fn guard(
    State(limit): State<BodyLimit>,
    request: Request,
    next: Next,
) -> Response {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit.max as u64) {
        return too_large(limit.max);
    }
    let (parts, mut body) = request.into_parts();
    let started = Instant::now();
    let mut buffer = Vec::new();
    loop {
        let deadline = limit.deadline(started, buffer.len());
        let frame = tokio::time::timeout_at(
            deadline,
            std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx)),
        )
        .await;
        match frame {
            Err(_) => {
                tracing::debug!(
                    read = buffer.len(),
                    "request body too slow; closing the connection"
                );
                return refusal(
                    StatusCode::REQUEST_TIMEOUT,
                    "body_timeout",
                    &format!(
                        "the request body did not arrive at {} bytes a second or more",
                        limit.min_bytes_per_sec
                    ),
                );
            }
            Ok(None) => break,
            Ok(Some(Err(err))) => {
                tracing::debug!(error = %err, "request body unreadable");
                return refusal(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    "the request body could not be read",
                );
            }
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    if buffer.len() + data.len() > limit.max {
                        return too_large(limit.max);
                    }
                    buffer.extend_from_slice(&data);
                }
            }
        }
    }
    next.run(Request::from_parts(parts, Body::from(Bytes::from(buffer))))
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deadline_grows_with_what_was_read() {
        let limit = BodyLimit {
            max: 1024,
            grace: Duration::from_secs(10),
            min_bytes_per_sec: 1000,
        };
        let start = Instant::now();
        assert_eq!(limit.deadline(start, 0), start + Duration::from_secs(10));
        assert_eq!(limit.deadline(start, 5000), start + Duration::from_secs(15));
    }
}

//! Every request of the API gets an id: the client's `X-Request-Id` when it is a sensible one,
//! a new UUID otherwise. The id is returned in the answer's `X-Request-Id` and is a field
//! (`request_id`) of the span the request is answered in, so that every log line written while
//! answering it (a handler's, the body guard's, a spawned replay's) carries it: an operator
//! finds a tenant's failed call in the logs from the id the tenant quotes.
//!
//! The header is the tenant's (or anyone's who reaches the listener): it is hostile input.
//! Only 1 to [`MAX_LEN`] visible ASCII characters (`!` to `~`) are taken, so that an id can
//! neither forge log lines (no control characters, no newline), nor split a text log's fields
//! (no space), nor bloat every line; anything else is replaced by a new id.

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

/// The request and answer header carrying the id.
pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// The longest client id taken, in bytes.
pub const MAX_LEN: usize = 128;

/// The id of the request being answered, in the request's extensions for a handler that wants
/// it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

/// The client's id if it is acceptable (see the module docs).
fn acceptable(value: &HeaderValue) -> Option<String> {
    let bytes = value.as_bytes();
    let visible = |b: &u8| (b'!'..=b'~').contains(b);
    if (1..=MAX_LEN).contains(&bytes.len()) && bytes.iter().all(visible) {
        // Visible ASCII is UTF-8.
        std::str::from_utf8(bytes).ok().map(str::to_owned)
    } else {
        None
    }
}

/// The layer: takes or makes the id, answers the request inside a span holding it, and
/// returns it in the answer.
pub(crate) async fn layer(mut request: Request, next: Next) -> Response {
    let given = request.headers().get(&HEADER);
    let id = match given.map(acceptable) {
        Some(Some(id)) => id,
        Some(None) => {
            let id = uuid::Uuid::new_v4().to_string();
            tracing::debug!(request_id = %id, "X-Request-Id refused (1 to 128 visible ASCII characters); a new one is used");
            id
        }
        None => uuid::Uuid::new_v4().to_string(),
    };
    request.extensions_mut().insert(RequestId(id.clone()));
    // At ERROR level so that the span is enabled whenever any line is logged: a filter that
    // lets only warnings through must still give them their request id.
    let span = tracing::error_span!(
        "request",
        request_id = %id,
        method = %request.method(),
        path = request.uri().path(),
    );
    let started = tokio::time::Instant::now();
    let mut response = next.run(request).instrument(span.clone()).await;
    span.in_scope(|| {
        tracing::debug!(
            status = response.status().as_u16(),
            elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
            "answered"
        );
    });
    // The id is visible ASCII, taken or made: always a valid header value.
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(HEADER, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_short_visible_ascii_ids_are_taken() {
        let take = |bytes: &[u8]| acceptable(&HeaderValue::from_bytes(bytes).unwrap());
        assert_eq!(take(b"abc-123_X.y:z/=+"), Some("abc-123_X.y:z/=+".into()));
        assert_eq!(take(&[b'a'; MAX_LEN]), Some("a".repeat(MAX_LEN)));
        assert_eq!(take(&[b'a'; MAX_LEN + 1]), None);
        assert_eq!(take(b""), None);
        assert_eq!(take(b"two words"), None);
        assert_eq!(take(b"tab\there"), None);
        assert_eq!(take("caf\u{e9}".as_bytes()), None);
    }
}

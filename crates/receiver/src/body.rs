//! Reading a request body without ever buffering more than the limit.

use crate::Rejection;
use bytes::Bytes;
use evo_siem_protocol::Refusal;
use http::HeaderMap;
use http_body::Body;
use http_body_util::{BodyExt, LengthLimitError, Limited};

/// Reads `body` to its end, refusing with `body_too_large` as soon as it exceeds `limit` bytes.
///
/// A `Content-Length` above the limit is refused before a single byte is read. This is what the
/// axum extractor uses; call it yourself with hyper or any `http_body::Body`.
pub async fn read_body<B>(headers: &HeaderMap, body: B, limit: usize) -> Result<Bytes, Rejection>
where
    B: Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let too_large = || Rejection::Refused(Refusal::BodyTooLarge { limit });
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(too_large());
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(err) if err.is::<LengthLimitError>() => Err(too_large()),
        Err(_) => Err(Rejection::BodyUnreadable),
    }
}

//! `POST /v1/tenants/{tenant}/audit-events`: the platform hands events to the sender.
//!
//! The body is a JSON array of events or NDJSON (one event a line). All or nothing: one malformed
//! event refuses the whole request with 400 naming its index, and nothing of it is stored. 202
//! `{"accepted":N,"excluded":M}` is sent only once the accepted events are durable.

use super::App;
use crate::spool::{NewEvent, SpoolError};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use evo_siem_protocol::Event;
use serde_json::json;
use serde_json::value::RawValue;
use std::sync::Arc;
use subtle::ConstantTimeEq;

use super::errors::response as error;

/// Whether the request carries `Authorization: Bearer <token>`, compared in constant time.
fn authorized(headers: &HeaderMap, token: &[u8]) -> bool {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
        .unwrap_or_default();
    bool::from(presented.ct_eq(token))
}

/// Splits a body into the text of each event: the elements of a JSON array, or the lines of
/// NDJSON. NDJSON lines are not parsed here: the typed parse that follows checks each one whole.
fn split(body: &[u8]) -> Result<Vec<&str>, (usize, String)> {
    let text = std::str::from_utf8(body).map_err(|e| (0, format!("not UTF-8: {e}")))?;
    if text.trim_start().starts_with('[') {
        let raws: Vec<&RawValue> = serde_json::from_str(text)
            .map_err(|e| (0, format!("not a JSON array of events: {e}")))?;
        return Ok(raws.into_iter().map(RawValue::get).collect());
    }
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect())
}

pub(super) async fn ingest(
    State(app): State<Arc<App>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !authorized(&headers, app.ingest_token.as_bytes()) {
        return error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid ingest bearer token is required",
        );
    }
    let Some(integration) = app.registry.get(&tenant) else {
        return error(
            StatusCode::NOT_FOUND,
            "no_integration",
            "this tenant has no SIEM integration",
        );
    };
    let raws = match split(&body) {
        Ok(raws) if raws.is_empty() => {
            return error(
                StatusCode::BAD_REQUEST,
                "no_events",
                "the body holds no events",
            );
        }
        Ok(raws) => raws,
        Err((index, message)) => {
            let body = json!({ "error": "invalid_event", "index": index, "message": message });
            return (StatusCode::BAD_REQUEST, axum::Json(body)).into_response();
        }
    };
    let mut accepted = Vec::with_capacity(raws.len());
    let mut excluded = 0;
    for (index, raw) in raws.iter().enumerate() {
        // One typed parse checks the whole text; the text itself is what gets stored and sent.
        let event = match serde_json::from_str::<Event<'_>>(raw) {
            Ok(event) if evo_siem_protocol::is_valid_event_id(event.data.uuid.as_bytes()) => event,
            Ok(_) => {
                let body = json!({ "error": "invalid_event", "index": index, "message": "data.uuid is not an event id (1 to 128 bytes of printable ASCII)" });
                return (StatusCode::BAD_REQUEST, axum::Json(body)).into_response();
            }
            Err(e) => {
                let body =
                    json!({ "error": "invalid_event", "index": index, "message": e.to_string() });
                return (StatusCode::BAD_REQUEST, axum::Json(body)).into_response();
            }
        };
        if integration.exclusions().excludes(&event.data.action) {
            excluded += 1;
        } else {
            accepted.push(NewEvent {
                action: event.data.action.into_owned(),
                json: (*raw).to_owned(),
            });
        }
    }
    let count = accepted.len();
    if count > 0 {
        match app.spool.append(&tenant, accepted).await {
            Ok(()) => {}
            Err(SpoolError::Full { retry_after, .. }) => {
                let mut response = error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "backlog_full",
                    "this integration's backlog is full; retry later",
                );
                response.headers_mut().insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(retry_after.as_secs().max(1)),
                );
                return response;
            }
            Err(err) => {
                // Nothing of the request was stored; the spool's engine may be back in a
                // moment (a PostgreSQL failover, a full disk freed), so the platform retries.
                tracing::error!(tenant, error = %err, "ingest could not be stored");
                let mut response = error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "storage",
                    "the events could not be stored; retry later",
                );
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(5));
                return response;
            }
        }
    }
    if count > 0 {
        app.scheduler.mark(&tenant);
    }
    // Counted only for a request that was taken: a refused one is sent again.
    if excluded > 0 {
        app.stats_of(&tenant)
            .excluded
            .fetch_add(excluded as u64, std::sync::atomic::Ordering::Relaxed);
    }
    (
        StatusCode::ACCEPTED,
        axum::Json(json!({ "accepted": count, "excluded": excluded })),
    )
        .into_response()
}

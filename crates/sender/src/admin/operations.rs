//! An integration's status, its dead letters (list and replay), and resuming a paused one.
//!
//! The totals count since the sender started; the queue and the dead letters are read from the
//! spool, so they survive restarts.

use super::{ApiError, Permission, authorize};
use crate::DeliveryStats;
use crate::service::App;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use evo_siem_protocol::format_generated_at;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

/// Most dead letters one listing returns.
pub const MAX_LISTED: usize = 1000;

#[derive(Debug, Serialize)]
pub(crate) struct Status {
    tenant: String,
    /// `active`, `paused` (401/403/404/410 or a redirect: probed with backoff) or `failing`
    /// (the last attempt failed and is being retried).
    state: &'static str,
    queued_events: u64,
    queued_bytes: u64,
    oldest_queued_age_seconds: Option<f64>,
    last_success: Option<String>,
    last_error: Option<ErrorView>,
    /// Set when the stored settings no longer pass validation (a rule tightened since they
    /// were stored): the integration is paused, its events stay queued, until a valid PUT.
    #[serde(skip_serializing_if = "Option::is_none")]
    invalid_settings: Option<String>,
    dead_letters: usize,
    totals: Totals,
}

#[derive(Debug, Serialize)]
struct ErrorView {
    kind: &'static str,
    status: Option<u16>,
    at: String,
    detail: String,
}

#[derive(Debug, Serialize)]
struct Totals {
    delivered: u64,
    retried: u64,
    dead_lettered: u64,
    excluded: u64,
}

fn spool_error(err: impl std::fmt::Display) -> ApiError {
    tracing::error!(error = %err, "spool");
    ApiError::Internal
}

/// The counters of `tenant`'s integration, shared by the ingest API and its worker (created
/// here when the worker has not started yet).
pub(crate) fn stats_of(app: &App, tenant: &str) -> Arc<DeliveryStats> {
    crate::schedule::stats_entry(&app.stats, tenant)
}

/// 404 unless `tenant` has an integration (served, or paused for invalid stored settings).
fn exists(app: &App, tenant: &str) -> Result<(), ApiError> {
    if app.registry.get(tenant).is_some() || app.registry.problem(tenant).is_some() {
        Ok(())
    } else {
        Err(ApiError::NotFound)
    }
}

pub(crate) async fn status(
    State(app): State<Arc<App>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Status>, ApiError> {
    authorize(&app, &headers, &tenant, Permission::View).await?;
    exists(&app, &tenant)?;
    let backlog = app.spool.backlog(&tenant).await.map_err(spool_error)?;
    let oldest = app.spool.oldest(&tenant).await.map_err(spool_error)?;
    let dead = app.spool.dead_letters(&tenant).await.map_err(spool_error)?;
    let stats = stats_of(&app, &tenant);
    let invalid_settings = app.registry.problem(&tenant);
    let state = if invalid_settings.is_some() || stats.paused.load(Ordering::Relaxed) {
        "paused"
    } else if stats.failing.load(Ordering::Relaxed) {
        "failing"
    } else {
        "active"
    };
    let last_success = *stats
        .last_success
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let last_error = stats
        .last_error
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    Ok(Json(Status {
        tenant,
        state,
        queued_events: backlog.events,
        queued_bytes: backlog.bytes,
        oldest_queued_age_seconds: oldest.map(|at| {
            SystemTime::now()
                .duration_since(at)
                .unwrap_or_default()
                .as_secs_f64()
        }),
        last_success: last_success.map(format_generated_at),
        last_error: last_error.map(|e| ErrorView {
            kind: e.kind.as_str(),
            status: e.status,
            at: format_generated_at(e.at),
            detail: e.detail,
        }),
        invalid_settings,
        dead_letters: dead.len(),
        totals: Totals {
            delivered: stats.delivered.load(Ordering::Relaxed),
            retried: stats.retried.load(Ordering::Relaxed),
            dead_lettered: stats.dead_lettered.load(Ordering::Relaxed),
            excluded: stats.excluded.load(Ordering::Relaxed),
        },
    }))
}

#[derive(Debug, Serialize)]
pub(crate) struct DeadLetters {
    total: usize,
    dead_letters: Vec<DeadLetterView>,
}

#[derive(Debug, Serialize)]
struct DeadLetterView {
    id: i64,
    reason: String,
    at: String,
    /// The event exactly as ingested.
    event: Box<RawValue>,
}

pub(crate) async fn dead_letters(
    State(app): State<Arc<App>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Result<Json<DeadLetters>, ApiError> {
    authorize(&app, &headers, &tenant, Permission::View).await?;
    exists(&app, &tenant)?;
    let dead = app.spool.dead_letters(&tenant).await.map_err(spool_error)?;
    let total = dead.len();
    let dead_letters = dead
        .into_iter()
        .take(MAX_LISTED)
        .map(|d| DeadLetterView {
            id: d.id,
            reason: d.reason,
            at: format_generated_at(d.at),
            event: RawValue::from_string(d.json)
                .unwrap_or_else(|_| RawValue::from_string("null".into()).expect("valid JSON")),
        })
        .collect();
    Ok(Json(DeadLetters {
        total,
        dead_letters,
    }))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplayRequest {
    /// The dead letters to replay; all when absent.
    ids: Option<Vec<i64>>,
}

pub(crate) async fn replay(
    State(app): State<Arc<App>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    let principal = authorize(&app, &headers, &tenant, Permission::Manage).await?;
    exists(&app, &tenant)?;
    let request: ReplayRequest = if body.iter().all(u8::is_ascii_whitespace) {
        ReplayRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::BadRequest(format!("expected {{\"ids\": [..]}} or nothing: {e}"))
        })?
    };
    let replayed = app
        .spool
        .replay(&tenant, request.ids)
        .await
        .map_err(spool_error)?;
    tracing::info!(
        tenant,
        token = principal.token_id,
        replayed,
        "dead letters replayed"
    );
    app.scheduler.mark(&tenant);
    Ok(Json(serde_json::json!({ "replayed": replayed })))
}

pub(crate) async fn resume(
    State(app): State<Arc<App>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let principal = authorize(&app, &headers, &tenant, Permission::Manage).await?;
    exists(&app, &tenant)?;
    let stats = stats_of(&app, &tenant);
    let was_paused = stats.paused.load(Ordering::Relaxed);
    // The worker tries again now; a success clears the pause, a refusal pauses it again.
    app.scheduler.resume(&tenant);
    // Several instances: the one delivering this integration may be another.
    if let Some(shared) = &app.shared
        && let Err(err) = shared.resume(&tenant).await
    {
        tracing::error!(tenant, error = %err, "resume not shared with the other instances");
        return Err(ApiError::Internal);
    }
    tracing::info!(
        tenant,
        token = principal.token_id,
        was_paused,
        "integration resumed"
    );
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({ "was_paused": was_paused })),
    ))
}

//! An integration's status, its dead letters (list and replay), and resuming a paused one.
//!
//! The totals count since the sender started; the queue and the dead letters are read from the
//! spool, so they survive restarts.
//!
//! Dead letters scale to millions per integration: the status counts them in the store, the
//! listing is paged by a cursor (`?limit=`, `?after=`), and a replay of all of them moves
//! [`REPLAY_PAGE`] per transaction, so other tenants' ingest runs between the pages.

use super::{ApiError, FieldError, Permission, authorize};
use crate::DeliveryStats;
use crate::api::App;
use crate::spool::{REPLAY_PAGE, replay_all};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use evo_siem_protocol::format_generated_at;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::SystemTime;
use tracing::Instrument;

/// Most dead letters one page of the listing returns (`?limit=` at most).
pub const MAX_LISTED: usize = 1000;
/// Dead letters one page of the listing returns without `?limit=`.
pub const DEFAULT_LISTED: usize = 100;
/// Most ids one replay request may name; beyond, 422 (replay without ids moves them all).
pub const MAX_REPLAY_IDS: usize = 1000;

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
    dead_letters: u64,
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

fn stats_of(app: &App, tenant: &str) -> Arc<DeliveryStats> {
    app.stats_of(tenant)
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
    let dead = app
        .spool
        .dead_letter_count(&tenant)
        .await
        .map_err(spool_error)?;
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
        dead_letters: dead,
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
    /// Every dead letter of the integration, not only this page's.
    total: u64,
    dead_letters: Vec<DeadLetterView>,
    /// The `after` of the next page; `null` on the last one.
    next: Option<String>,
}

#[derive(Debug, Serialize)]
struct DeadLetterView {
    id: i64,
    reason: String,
    at: String,
    /// The event exactly as ingested.
    event: Box<RawValue>,
}

/// The listing's query: `limit` (1 to [`MAX_LISTED`], default [`DEFAULT_LISTED`]) and `after`
/// (a `next` of an earlier page). Anything else is a 400, so that a misspelt parameter is not
/// silently ignored.
fn page_query(query: Option<&str>) -> Result<(Option<i64>, usize), ApiError> {
    let (mut after, mut limit) = (None, DEFAULT_LISTED);
    for (key, value) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match &*key {
            "limit" => {
                limit = value
                    .parse()
                    .ok()
                    .filter(|l| (1..=MAX_LISTED).contains(l))
                    .ok_or_else(|| {
                        ApiError::BadRequest(format!("limit must be from 1 to {MAX_LISTED}"))
                    })?;
            }
            "after" => {
                // The cursor is the last id of the page before: opaque to clients, which only
                // pass back what `next` said.
                after = Some(value.parse().map_err(|_| {
                    ApiError::BadRequest("after must be the next of an earlier page".into())
                })?);
            }
            other => {
                return Err(ApiError::BadRequest(format!(
                    "unknown query parameter {other:?}: expected limit or after"
                )));
            }
        }
    }
    Ok((after, limit))
}

pub(crate) async fn dead_letters(
    State(app): State<Arc<App>>,
    Path(tenant): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Json<DeadLetters>, ApiError> {
    authorize(&app, &headers, &tenant, Permission::View).await?;
    exists(&app, &tenant)?;
    let (after, limit) = page_query(query.as_deref())?;
    let total = app
        .spool
        .dead_letter_count(&tenant)
        .await
        .map_err(spool_error)?;
    let page = app
        .spool
        .dead_letters(&tenant, after, limit)
        .await
        .map_err(spool_error)?;
    let dead_letters = page
        .letters
        .into_iter()
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
        next: page.next.map(|id| id.to_string()),
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
    let replayed = match request.ids {
        Some(ids) if ids.len() > MAX_REPLAY_IDS => {
            return Err(ApiError::Invalid(vec![FieldError {
                field: "ids".into(),
                message: format!(
                    "at most {MAX_REPLAY_IDS} ids per request ({} given); replay without ids for all",
                    ids.len()
                ),
            }]));
        }
        Some(ids) => app.spool.replay(&tenant, ids).await.map_err(spool_error)?,
        None => {
            // Its own task: a client that gives up waiting does not stop the replay half-way
            // (it would be harmless, each page being committed, but surprising).
            let task = {
                let (app, tenant) = (app.clone(), tenant.clone());
                // In the request's span, so that its log lines carry the request id.
                tokio::spawn(
                    async move {
                        replay_all(&*app.spool, &tenant, REPLAY_PAGE, |so_far| {
                            // The worker starts on the first page while the rest follow.
                            app.scheduler.mark(&tenant);
                            tracing::debug!(tenant, so_far, "dead letters replayed so far");
                        })
                        .await
                    }
                    .in_current_span(),
                )
            };
            task.await
                .map_err(|_| ApiError::Internal)?
                .map_err(spool_error)?
        }
    };
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
    if let Err(err) = app.store.resume(&tenant).await {
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

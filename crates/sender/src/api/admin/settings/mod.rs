//! `GET / PUT / DELETE /v1/tenants/{tenant}/siem-integration`.
//!
//! GET never returns a secret: it says whether a signing secret (and a next one, during a
//! rotation) is set, and lists header names with their values redacted. PUT changes what it
//! names and keeps what it does not: absent fields keep their value, `headers` entries are a new
//! value or `{"keep": true}` (names left out are removed), and the secrets take an operation:
//!
//! - `signing_secret`: `{"set": "..."}` replaces it (and drops a pending next one),
//!   `{"clear": true}` makes deliveries unsigned, `{"rotate": true}` retires the current secret
//!   and signs with the next one from now on, `{"keep": true}` (or absent) keeps it;
//! - `next_signing_secret`: `{"set": "..."}` adds a secret beside the current one (the sender
//!   keeps signing with the current one until the rotation; "Test Saved Webhook" can try the
//!   next one), `{"clear": true}` abandons a rotation.
//!
//! `signature_schemes` (`["evo"]` by default, `["standard-webhooks"]`, or both) chooses the
//! signature headers of the deliveries; Standard Webhooks libraries take the signing secret as
//! `whsec_` and the base64 of its bytes, which the tenant derives from the secret they set (the
//! API never returns a secret, in any form).
//!
//! Every field is validated before anything is stored: a 422 lists each invalid field and
//! nothing is changed.
//!
//! Write-only values stay with their endpoint: a PUT that moves `webhook_url` to another origin
//! (scheme, host or port) must give every header value and secret that would otherwise be kept
//! again (or remove them); otherwise a 422 names each one. Whoever can change the URL could
//! otherwise have the stored `Authorization` value or signature sent to a host of their choice.
//! A new path on the same origin keeps them.

mod update;
mod view;

use super::audit::{self, Change};
use super::{ApiError, FieldError, Permission, authorize};
use crate::api::App;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use std::net::SocketAddr;
use std::sync::Arc;
use update::{SettingsUpdate, apply, field, shape_error};
pub(crate) use view::SettingsView;

fn store_error(err: &crate::store::StoreError) -> ApiError {
    tracing::error!(error = %err, "integration store");
    ApiError::Internal
}

pub(crate) async fn get(
    State(app): State<Arc<App>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Result<Json<SettingsView>, ApiError> {
    authorize(&app, &headers, &tenant, Permission::View).await?;
    let settings = app
        .store
        .settings(&tenant)
        .await
        .map_err(|e| store_error(&e))?
        .ok_or(ApiError::NotFound)?;
    Ok(Json(SettingsView::of(&settings)))
}

pub(crate) async fn put(
    State(app): State<Arc<App>>,
    Path(tenant): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let principal = authorize(&app, &headers, &tenant, Permission::Manage).await?;
    let update: SettingsUpdate = match serde_json::from_slice(&body) {
        Ok(update) => update,
        Err(err) if err.is_data() => {
            return Err(ApiError::Invalid(vec![FieldError {
                field: "body".into(),
                message: shape_error(&err),
            }]));
        }
        Err(err) => return Err(ApiError::BadRequest(format!("not JSON: {err}"))),
    };
    let current = app
        .store
        .settings(&tenant)
        .await
        .map_err(|e| store_error(&e))?;
    let (settings, fields) =
        apply(&tenant, current.as_ref(), update, &app.allowed).map_err(ApiError::Invalid)?;
    if !app.store.has_key() && crate::secrets::has_secrets(&settings) {
        // Secrets are stored only sealed; the operator has not configured the key.
        let mut errors = Vec::new();
        let message = "this sender has no secrets key configured ([secrets] key_env or key_file), so it cannot store secrets or header values";
        if settings.signing_secret.is_some() || settings.next_signing_secret.is_some() {
            field(&mut errors, "signing_secret", message);
        }
        for name in settings.headers.keys() {
            field(&mut errors, format!("headers.{name}"), message);
        }
        return Err(ApiError::Invalid(errors));
    }
    app.store
        .put(&settings)
        .await
        .map_err(|e| store_error(&e))?;
    let change = if current.is_some() {
        Change::Updated
    } else {
        Change::Created
    };
    tracing::info!(tenant, token = principal.token_id, fields = ?fields, "SIEM integration {change:?}");
    if !fields.is_empty() {
        record(
            &app,
            &tenant,
            audit::event(change, &principal, Some(peer.ip()), &tenant, &fields),
        )
        .await;
    }
    let status = if current.is_some() {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(SettingsView::of(&settings))).into_response())
}

pub(crate) async fn delete(
    State(app): State<Arc<App>>,
    Path(tenant): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let principal = authorize(&app, &headers, &tenant, Permission::Manage).await?;
    let removed = app
        .store
        .remove(&tenant)
        .await
        .map_err(|e| store_error(&e))?;
    if !removed {
        return Err(ApiError::NotFound);
    }
    tracing::info!(
        tenant,
        token = principal.token_id,
        "SIEM integration deleted"
    );
    // Queued with the tenant's other events: delivered if the integration is created again.
    let fields = vec!["webhook_url".to_owned()];
    record(
        &app,
        &tenant,
        audit::event(
            Change::Deleted,
            &principal,
            Some(peer.ip()),
            &tenant,
            &fields,
        ),
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

/// Queues the audit event of a change; a failure is logged, as the change itself is made.
async fn record(app: &App, tenant: &str, event: crate::spool::NewEvent) {
    if let Err(err) = app.spool.append(tenant, vec![event]).await {
        tracing::warn!(tenant, error = %err, "the audit event of an integration change could not be queued");
    }
}

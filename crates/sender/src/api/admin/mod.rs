//! The tenant admin API, served on the ingest API's listener: a tenant's SIEM integration
//! settings (secrets write-only), authorized by bearer API tokens bound to a tenant and its
//! permissions.
//!
//! Authorization, in this order: no token or an unknown one → 401; a token of another tenant →
//! 404, exactly as for a tenant that does not exist, so that existence does not leak; a token
//! without the permission → 403. `integrations.siem.manage` is required for every change;
//! `integrations.siem.view` reads.

mod audit;
pub mod operations;
pub mod settings;
pub mod webhook_test;

pub use crate::settings::FieldError;
pub use crate::store::{Permission, Principal};

use crate::api::App;
use crate::store::StoreError;
use axum::Json;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// The OpenAPI 3.1 document of the ingest and admin API, served at `GET /v1/openapi.json`: an
/// `operationId` per operation, every status each one can answer with its headers
/// (`X-Request-Id`, `Retry-After`, `WWW-Authenticate`), the error codes of each status as an
/// enum, and response schemas that refuse unknown fields. Written by hand; the test
/// `tests/it/openapi.rs` keeps it exact: it makes every operation answer in every status listed
/// and validates each real answer against it.
pub const OPENAPI: &str = include_str!("openapi.json");

pub(crate) async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}

/// Most invalid fields a 422 answer lists. A PUT naming thousands of bad headers or excluded
/// actions (as many as fit in its 64 KiB body) must not make the answer as large: the first ones
/// are listed, and `omitted` says how many more there were.
pub const MAX_FIELD_ERRORS: usize = 100;

/// An error answer of the admin API, with a JSON body `{"error", "message"}`.
#[derive(Debug)]
pub(crate) enum ApiError {
    Unauthorized,
    NotFound,
    Forbidden(Permission),
    BadRequest(String),
    Invalid(Vec<FieldError>),
    /// This instance's copy of the shared tokens is older than allowed: it cannot tell a
    /// revoked token from a valid one.
    Stale,
    Internal,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, body) = match self {
            ApiError::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                json!({"error": "unauthorized", "message": "a valid admin API token is required"}),
            ),
            ApiError::NotFound => (
                StatusCode::NOT_FOUND,
                json!({"error": "not_found", "message": "no such SIEM integration"}),
            ),
            ApiError::Forbidden(permission) => (
                StatusCode::FORBIDDEN,
                json!({"error": "forbidden", "message": format!("this token lacks the {} permission", permission.as_str())}),
            ),
            ApiError::BadRequest(message) => (
                StatusCode::BAD_REQUEST,
                json!({"error": "bad_request", "message": message}),
            ),
            ApiError::Invalid(mut fields) => {
                let omitted = fields.len().saturating_sub(MAX_FIELD_ERRORS);
                fields.truncate(MAX_FIELD_ERRORS);
                let mut body = json!({"error": "invalid_settings", "message": "some fields are invalid; nothing was changed", "fields": fields});
                if omitted > 0 {
                    body["message"] = json!(format!(
                        "some fields are invalid; nothing was changed (the first {MAX_FIELD_ERRORS} are listed, {omitted} more omitted)"
                    ));
                    body["omitted"] = json!(omitted);
                }
                (StatusCode::UNPROCESSABLE_ENTITY, body)
            }
            ApiError::Stale => (
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"error": "shared_state_stale", "message": "this instance cannot refresh the shared admin tokens and settings; try again shortly or through another instance"}),
            ),
            ApiError::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"error": "internal", "message": "the request could not be completed; see the sender's log"}),
            ),
        };
        let mut response = (status, Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, "5".parse().expect("ASCII"));
        }
        response
    }
}

/// Checks the request's bearer token for `tenant` and `needed`; see the module docs for the
/// order of the checks. On a PostgreSQL spool whose copy of the shared tokens is older than
/// `max_staleness_ms`, every request is refused first with 503 `shared_state_stale`.
pub(crate) async fn authorize(
    app: &App,
    headers: &HeaderMap,
    tenant: &str,
    needed: Permission,
) -> Result<Principal, ApiError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    // The store refuses a stale copy before the token is even looked at (it may still hold a
    // revoked one).
    let principal = match app.store.authenticate(token).await {
        Err(StoreError::Stale { age }) => {
            tracing::warn!(
                age_ms = u64::try_from(age.as_millis()).unwrap_or(u64::MAX),
                "admin request refused: the shared state could not be synchronised for too long"
            );
            return Err(ApiError::Stale);
        }
        Err(err) => {
            tracing::error!(error = %err, "token store");
            return Err(ApiError::Internal);
        }
        Ok(principal) => principal,
    };
    let principal = principal.ok_or(ApiError::Unauthorized)?;
    if principal.tenant != tenant {
        return Err(ApiError::NotFound);
    }
    if !principal.may(needed) {
        return Err(ApiError::Forbidden(needed));
    }
    Ok(principal)
}

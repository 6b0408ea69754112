//! "Test Saved Webhook": one signed batch holding a synthetic test event, sent synchronously
//! through the same signer, outbound guard and client as real deliveries, and a diagnosis of
//! what happened. Not queued, not retried, rate-limited per tenant.
//!
//! `evo-siem send-test --url URL` runs [`diagnose`] from the command line.

use super::{ApiError, Permission, authorize};
use crate::Integration;
use crate::api::App;
use crate::dispatch::{Dispatcher, FailureKind};
use crate::retry::AttemptResult;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Tests per tenant per [`RATE_WINDOW`], at most.
pub const RATE_LIMIT: usize = 5;
/// The window of [`RATE_LIMIT`].
pub const RATE_WINDOW: Duration = Duration::from_secs(60);

/// What a test found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Diagnosis {
    /// The receiver answered 2xx.
    pub ok: bool,
    /// The status it answered, if it answered.
    pub status: Option<u16>,
    /// How long the attempt took, in milliseconds.
    pub latency_ms: f64,
    /// Why it failed, when it did.
    pub failure: Option<FailureKind>,
    /// What that means, in a sentence.
    pub diagnosis: String,
    /// The start of the receiver's answer, or the transport error (at most 512 bytes).
    pub detail: String,
    /// The test batch's `X-Evo-Delivery-Id`.
    pub delivery_id: String,
}

/// The synthetic event: `event_type` "test", action "SIEM webhook test", `data.test` true.
pub fn test_event(tenant: &str, actor: &str) -> String {
    let now = SystemTime::now();
    let ns = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
    json!({
        "event_type": "test",
        "table": "siem_integrations",
        "timestamp": evo_siem_protocol::format_generated_at(now),
        "data": {
            "uuid": uuid::Uuid::new_v4().to_string(),
            "action": "SIEM webhook test",
            "status": "Success",
            "actor": {"kind": "ApiToken", "name": actor},
            "origin": {"hostname": "evo-siem-admin-api", "ipaddr": ""},
            "target": {"kind": "SiemIntegration", "name": tenant},
            "ts": ns,
            "created_at": ns,
            "test": true,
        },
    })
    .to_string()
}

fn explain(failure: Option<FailureKind>, status: Option<u16>) -> &'static str {
    match (failure, status) {
        (None, _) => "the receiver accepted the test batch",
        (Some(FailureKind::HttpStatus), Some(401)) => {
            "the receiver refused the request as unauthenticated: it does not accept the signature (check the signing secret on both sides) or the authorization headers"
        }
        (Some(FailureKind::HttpStatus), Some(403)) => {
            "the receiver refused the request as forbidden: check the authorization headers"
        }
        (Some(FailureKind::HttpStatus), Some(404 | 410)) => {
            "nothing is served at this URL: check the webhook path"
        }
        (Some(FailureKind::HttpStatus), Some(413)) => "the receiver refused the body as too large",
        (Some(FailureKind::HttpStatus), Some(400 | 422)) => {
            "the receiver refused the batch as malformed: does it support schema version 1?"
        }
        (Some(FailureKind::HttpStatus), Some(429)) => {
            "the receiver is rate limiting: real deliveries would wait as it asks"
        }
        (Some(FailureKind::HttpStatus), Some(300..=399)) => {
            "the receiver answered with a redirect, which is never followed: use the final URL"
        }
        (Some(FailureKind::HttpStatus), Some(500..=599)) => {
            "the receiver failed or is unavailable: real deliveries would be retried"
        }
        (Some(FailureKind::HttpStatus), _) => "the receiver refused the test batch",
        (Some(FailureKind::Dns), _) => "the host name does not resolve",
        (Some(FailureKind::Blocked), _) => {
            "the host resolves only to addresses the outbound guard blocks (private, loopback, link-local, metadata)"
        }
        (Some(FailureKind::Connect), _) => {
            "nothing accepted the connection at this address and port"
        }
        (Some(FailureKind::Tls), _) => "the TLS handshake failed: check the certificate",
        (Some(FailureKind::Timeout), _) => "no answer within the attempt's timeout",
        (Some(FailureKind::Transport), _) => "the connection failed during the exchange",
    }
}

/// Sends one test batch to `integration` and diagnoses the answer.
pub async fn diagnose(
    dispatcher: &Dispatcher,
    integration: &Integration,
    actor: &str,
) -> Diagnosis {
    let event = test_event(integration.tenant(), actor);
    let delivery_id = uuid::Uuid::new_v4();
    let report = dispatcher
        .attempt(integration, &[event.as_str()], delivery_id, 1)
        .await;
    let status = match report.result {
        AttemptResult::Status { status, .. } => Some(status),
        AttemptResult::Transport => None,
    };
    Diagnosis {
        ok: report.failure.is_none(),
        status,
        latency_ms: report.latency.as_secs_f64() * 1000.0,
        failure: report.failure,
        diagnosis: explain(report.failure, status).to_owned(),
        detail: report.detail,
        delivery_id: delivery_id.to_string(),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestRequest {
    /// `current` (default) or `next`: the secret to sign with.
    secret: Option<String>,
}

pub(crate) async fn test(
    State(app): State<Arc<App>>,
    Path(tenant): Path<String>,
    ConnectInfo(_peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let principal = authorize(&app, &headers, &tenant, Permission::Manage).await?;
    let request: TestRequest = if body.iter().all(u8::is_ascii_whitespace) {
        TestRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::BadRequest(format!(
                "expected {{\"secret\": \"current\" | \"next\"}} or nothing: {e}"
            ))
        })?
    };
    let registry = app.registry.clone();
    let name = tenant.clone();
    let mut settings = tokio::task::spawn_blocking(move || registry.settings(&name))
        .await
        .map_err(|_| ApiError::Internal)?
        .map_err(|_| ApiError::Internal)?
        .ok_or(ApiError::NotFound)?;
    match request.secret.as_deref() {
        None | Some("current") => {}
        Some("next") => match settings.next_signing_secret.take() {
            Some(next) => settings.signing_secret = Some(next),
            None => return Err(ApiError::BadRequest("no next signing secret is set".into())),
        },
        Some(_) => {
            return Err(ApiError::BadRequest(
                "secret is \"current\" or \"next\"".into(),
            ));
        }
    }
    // Several instances: the count lives in PostgreSQL, so the limit holds however a load
    // balancer spreads the tests; a database that cannot count refuses the test (fail closed).
    let admitted = app
        .store
        .admit_test(&tenant, RATE_LIMIT, RATE_WINDOW)
        .await
        .map_err(|err| {
            tracing::error!(tenant, error = %err, "test rate limit not readable");
            ApiError::Internal
        })?;
    if let Err(wait) = admitted {
        let mut response = (
            StatusCode::TOO_MANY_REQUESTS,
            Json(json!({"error": "rate_limited", "message": format!("at most {RATE_LIMIT} tests a minute per tenant")})),
        )
            .into_response();
        response.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(wait.as_secs().max(1)),
        );
        return Ok(response);
    }
    let integration = settings.check(&app.allowed).map_err(|err| {
        tracing::error!(tenant, error = %err, "stored settings no longer build");
        ApiError::Internal
    })?;
    let actor = if principal.label.is_empty() {
        format!("api-token:{}", principal.token_id)
    } else {
        format!("{} (api-token:{})", principal.label, principal.token_id)
    };
    let diagnosis = diagnose(&app.dispatcher, &integration, &actor).await;
    tracing::info!(tenant, token = principal.token_id, ok = diagnosis.ok, status = ?diagnosis.status, failure = ?diagnosis.failure, "test webhook");
    Ok(Json(diagnosis).into_response())
}

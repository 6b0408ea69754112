//! [`Rejection`]: why a delivery was not accepted, with its HTTP status and JSON error body.

use crate::dedup::DedupError;
use evo_siem_protocol::Refusal;
use http::StatusCode;

/// The tracing target under which every rejection is logged (at DEBUG).
pub const REJECTION_TARGET: &str = "evo_siem_receiver::rejection";

/// Why a delivery was refused. Every variant has a fixed [`status`](Self::status) and a stable
/// [`reason_code`](Self::reason_code):
///
/// | reason | status |
/// |---|---|
/// | `missing_signature`, `malformed_signature`, `signature_mismatch` (either scheme) | 401 |
/// | `missing_webhook_id`, `missing_webhook_timestamp`, `invalid_webhook_timestamp`, `unsupported_signature_version` (Standard Webhooks) | 401 |
/// | `timestamp_too_old`, `timestamp_too_new` (replay window, on `generated_at` and `webhook-timestamp`) | 401 |
/// | `malformed_json`, `invalid_batch`, `unsupported_schema_version`, `count_mismatch`, `empty_batch`, `invalid_event_uuid`, `invalid_generated_at`, `body_unreadable` | 400 |
/// | `body_too_large` | 413 |
/// | `event_in_flight` (another delivery is processing one of the events; retry) | 503 |
/// | `dedup_unavailable` (the deduplication store cannot answer; retry) | 503 |
/// | `dedup_store_inconsistent` (the store answered for more or fewer UUIDs than asked; logged at ERROR) | 503 |
/// | `no_secret_configured` (receiver misconfiguration) | 500 |
///
/// The response body is `{"error":"<reason_code>","message":"<text>"}`; it never contains a
/// secret or the signature received.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    /// The request breaks the wire contract (signature, replay window, size, schema).
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// The body could not be read to its end (the client went away, or the stream failed).
    #[error("the request body could not be read")]
    BodyUnreadable,
    /// Another delivery holds an unexpired claim on one of the events; answering 2xx now could
    /// lose the event if that delivery fails, so the sender is asked to retry.
    #[error("another delivery of one of these events is being processed; retry later")]
    InFlight,
    /// The deduplication store cannot answer.
    #[error(transparent)]
    DedupUnavailable(#[from] DedupError),
    /// The deduplication store answered a claim with a different number of outcomes than UUIDs
    /// asked about: a bug in a custom [`DedupStore`](crate::dedup::DedupStore). Which events are
    /// fresh cannot be told, and a 2xx could skip events for good, so the sender is asked to
    /// retry (and the receiver logs the fault at ERROR).
    #[error(
        "the deduplication store answered for {answered} of {asked} events; the delivery cannot be deduplicated"
    )]
    DedupInconsistent {
        /// UUIDs the receiver asked about.
        asked: usize,
        /// Outcomes the store returned.
        answered: usize,
    },
}

impl Rejection {
    /// The HTTP status to answer with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Refused(refusal) => {
                StatusCode::from_u16(refusal.http_status()).unwrap_or(StatusCode::BAD_REQUEST)
            }
            Self::BodyUnreadable => StatusCode::BAD_REQUEST,
            Self::InFlight | Self::DedupUnavailable(_) | Self::DedupInconsistent { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }

    /// The stable, machine-readable reason code.
    pub fn reason_code(&self) -> &'static str {
        match self {
            Self::Refused(refusal) => refusal.reason_code(),
            Self::BodyUnreadable => "body_unreadable",
            Self::InFlight => "event_in_flight",
            Self::DedupUnavailable(_) => "dedup_unavailable",
            Self::DedupInconsistent { .. } => "dedup_store_inconsistent",
        }
    }

    /// Seconds the sender should wait before retrying, for the retryable (503) rejections.
    pub fn retry_after(&self) -> Option<u32> {
        match self {
            Self::InFlight | Self::DedupUnavailable(_) | Self::DedupInconsistent { .. } => Some(1),
            _ => None,
        }
    }

    /// The JSON error body: `{"error":"<reason_code>","message":"<text>"}`.
    pub fn body_json(&self) -> String {
        serde_json::json!({ "error": self.reason_code(), "message": self.to_string() }).to_string()
    }
}

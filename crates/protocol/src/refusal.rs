//! [`Refusal`]: every reason a batch is refused, with its reason code and HTTP status.

use crate::SignatureError;
use crate::standard_webhooks::StandardWebhooksError;

/// Why a webhook request was refused.
///
/// Each variant maps to one stable [`reason_code`](Self::reason_code) (the string put in JSON
/// error bodies and fixtures) and one [`http_status`](Self::http_status). Messages never contain
/// a secret or a signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// The body is larger than the configured limit (413).
    #[error("the body exceeds the limit of {limit} bytes")]
    BodyTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The signature is missing, malformed or wrong (401).
    #[error(transparent)]
    Signature(#[from] SignatureError),
    /// The Standard Webhooks headers are missing, malformed or do not match (401).
    #[error(transparent)]
    StandardWebhooks(#[from] StandardWebhooksError),
    /// `generated_at`, or `webhook-timestamp`, is further in the past than the tolerance: a
    /// possible replay (401).
    #[error(
        "generated_at (or webhook-timestamp) is {age_secs} s old, beyond the tolerance of {tolerance_secs} s"
    )]
    TimestampTooOld {
        /// How old the batch is, in whole seconds.
        age_secs: u64,
        /// The configured tolerance, in whole seconds.
        tolerance_secs: u64,
    },
    /// `generated_at`, or `webhook-timestamp`, is further in the future than the tolerance (401).
    #[error(
        "generated_at (or webhook-timestamp) is {ahead_secs} s in the future, beyond the tolerance of {tolerance_secs} s"
    )]
    TimestampTooNew {
        /// How far ahead the batch is, in whole seconds.
        ahead_secs: u64,
        /// The configured tolerance, in whole seconds.
        tolerance_secs: u64,
    },
    /// The body is not JSON (400).
    #[error("the body is not valid JSON: {detail}")]
    MalformedJson {
        /// serde_json's description, with line and column.
        detail: String,
    },
    /// The body is JSON but not a v1 batch: a missing field, a wrong type, a duplicate key (400).
    #[error("the body is not a valid batch: {detail}")]
    InvalidBatch {
        /// What is wrong, with line and column.
        detail: String,
    },
    /// `schema_version` is not `"1"` (400).
    #[error("unsupported schema_version {found:?}; this receiver speaks \"1\"")]
    UnsupportedSchemaVersion {
        /// The version found (at most 32 characters of it).
        found: String,
    },
    /// `count` differs from the number of events (400).
    #[error("count is {declared} but the batch holds {actual} events")]
    CountMismatch {
        /// The `count` field.
        declared: u64,
        /// The number of events present.
        actual: usize,
    },
    /// The batch holds no events (400).
    #[error("the batch holds no events")]
    EmptyBatch,
    /// An event's `data.uuid` is not an event id: empty, longer than 128 bytes, or holding a
    /// byte outside printable ASCII (400).
    #[error(
        "event {index} has a data.uuid that is not an event id (1 to 128 bytes of printable ASCII)"
    )]
    InvalidEventUuid {
        /// The event's index in the batch.
        index: usize,
    },
    /// An event's `data.uuid` is a valid id but not a UUID, and the verifier accepts UUIDs only
    /// ([`EventIds::UuidOnly`](crate::EventIds::UuidOnly)); same reason code as
    /// [`InvalidEventUuid`](Self::InvalidEventUuid) (400).
    #[error(
        "event {index} has a data.uuid that is not a UUID, and this receiver accepts UUIDs only"
    )]
    EventIdNotUuid {
        /// The event's index in the batch.
        index: usize,
    },
    /// `generated_at` is not an RFC 3339 time (400).
    #[error("generated_at is not an RFC 3339 time")]
    InvalidGeneratedAt,
}

impl Refusal {
    /// The stable, machine-readable reason code.
    pub fn reason_code(&self) -> &'static str {
        match self {
            Self::BodyTooLarge { .. } => "body_too_large",
            Self::Signature(e) => e.reason_code(),
            Self::StandardWebhooks(e) => e.reason_code(),
            Self::TimestampTooOld { .. } => "timestamp_too_old",
            Self::TimestampTooNew { .. } => "timestamp_too_new",
            Self::MalformedJson { .. } => "malformed_json",
            Self::InvalidBatch { .. } => "invalid_batch",
            Self::UnsupportedSchemaVersion { .. } => "unsupported_schema_version",
            Self::CountMismatch { .. } => "count_mismatch",
            Self::EmptyBatch => "empty_batch",
            Self::InvalidEventUuid { .. } | Self::EventIdNotUuid { .. } => "invalid_event_uuid",
            Self::InvalidGeneratedAt => "invalid_generated_at",
        }
    }

    /// The HTTP status a receiver answers with: 401 for authentication and replay, 413 for size,
    /// 400 for everything wrong with the body, 500 when no secret is configured.
    pub fn http_status(&self) -> u16 {
        match self {
            Self::BodyTooLarge { .. } => 413,
            Self::Signature(SignatureError::NoSecrets)
            | Self::StandardWebhooks(StandardWebhooksError::NoSecrets) => 500,
            Self::Signature(_)
            | Self::StandardWebhooks(_)
            | Self::TimestampTooOld { .. }
            | Self::TimestampTooNew { .. } => 401,
            Self::MalformedJson { .. }
            | Self::InvalidBatch { .. }
            | Self::UnsupportedSchemaVersion { .. }
            | Self::CountMismatch { .. }
            | Self::EmptyBatch
            | Self::InvalidEventUuid { .. }
            | Self::EventIdNotUuid { .. }
            | Self::InvalidGeneratedAt => 400,
        }
    }
}

//! [`Verifier`]: the whole receiver-side check of one request, pure and clock-injected.
//!
//! Order matters and is part of the contract: size first, then the signature over the raw bytes
//! (nothing is parsed before it is authenticated), then JSON, schema version, the replay window,
//! and the batch's own consistency.

use crate::batch::{Batch, SCHEMA_VERSION};
use crate::parse::WalkError;
use crate::{Refusal, Secret, parse_rfc3339, verify_signature};
use std::time::{Duration, SystemTime};
use uuid::Uuid;

/// Default replay tolerance: a batch whose `generated_at` is more than this far in the past or
/// the future is refused.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(5 * 60);

/// Default limit on a request body, in bytes (4 MiB; the sender's batches are far smaller).
pub const DEFAULT_MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// A batch that passed every check, borrowing from the body.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Verified<'a> {
    /// The parsed batch.
    pub batch: Batch<'a>,
    /// Each event's `data.uuid`, parsed, in event order.
    pub uuids: Vec<Uuid>,
    /// `generated_at`, parsed.
    pub generated_at: SystemTime,
    /// Which configured secret matched (`None` when unsigned batches are allowed).
    pub secret_index: Option<usize>,
}

/// Checks requests against the wire contract: signature, replay window, size and schema.
///
/// Build one with [`Verifier::new`] (one or several secrets, for rotation) or, for an endpoint
/// that deliberately accepts unsigned batches, [`Verifier::unsigned`].
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use evo_siem_protocol::{Secret, Verifier, sign};
///
/// let body = br#"{"schema_version":"1","count":1,"generated_at":"2024-01-15T10:30:05.123Z","events":[
///   {"event_type":"create","table":"events","timestamp":"2024-01-15T10:30:00.000Z","data":{
///     "uuid":"0b9e3a4c-6d0f-4a53-9a43-0c1b2c3d4e5f","action":"User login","status":"Success",
///     "actor":{"kind":"User","name":"user@example.com"},
///     "origin":{"hostname":"DESKTOP-ABC","ipaddr":"192.168.1.100"},
///     "target":{"kind":"User","name":"user@example.com"},
///     "ts":1706000000000000000,"created_at":1706000000000000000}}]}"#;
/// let secret = Secret::new("It's a Secret to Everybody");
/// let header = sign(&secret, body);
/// let now = UNIX_EPOCH + Duration::from_millis(1_705_314_606_000);
///
/// let verified = Verifier::new([secret]).verify(body, Some(header.as_bytes()), now)?;
/// assert_eq!(verified.batch.events[0].data.action, "User login");
/// assert_eq!(verified.batch.events[0].data.ts, 1_706_000_000_000_000_000);
/// # Ok::<(), evo_siem_protocol::Refusal>(())
/// ```
#[derive(Debug, Clone)]
pub struct Verifier {
    secrets: Option<Vec<Secret>>,
    tolerance: Duration,
    max_body_bytes: usize,
}

impl Verifier {
    /// A verifier that requires a signature by any one of `secrets`.
    ///
    /// An empty list refuses every request with [`SignatureError::NoSecrets`](crate::SignatureError::NoSecrets) (HTTP 500), so a
    /// misconfiguration fails closed.
    pub fn new(secrets: impl IntoIterator<Item = Secret>) -> Self {
        Self {
            secrets: Some(secrets.into_iter().collect()),
            tolerance: DEFAULT_TOLERANCE,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        }
    }

    /// A verifier for an integration without a signing secret: the signature header is ignored.
    /// Replay, size and schema checks still apply.
    pub fn unsigned() -> Self {
        Self {
            secrets: None,
            ..Self::new([])
        }
    }

    /// Sets the replay tolerance (default 5 minutes, in either direction).
    #[must_use]
    pub fn tolerance(mut self, tolerance: Duration) -> Self {
        self.tolerance = tolerance;
        self
    }

    /// Sets the body size limit in bytes (default 4 MiB).
    #[must_use]
    pub fn max_body_bytes(mut self, limit: usize) -> Self {
        self.max_body_bytes = limit;
        self
    }

    /// The body size limit in bytes.
    pub fn body_limit(&self) -> usize {
        self.max_body_bytes
    }

    /// The replay tolerance.
    pub fn replay_tolerance(&self) -> Duration {
        self.tolerance
    }

    /// Whether a signature is required.
    pub fn requires_signature(&self) -> bool {
        self.secrets.is_some()
    }

    /// Checks one request: `body` is the exact bytes received, `signature` the raw
    /// `X-Evo-Signature-256` value if any, `now` the receiver's clock.
    pub fn verify<'a>(
        &self,
        body: &'a [u8],
        signature: Option<&[u8]>,
        now: SystemTime,
    ) -> Result<Verified<'a>, Refusal> {
        if body.len() > self.max_body_bytes {
            return Err(Refusal::BodyTooLarge {
                limit: self.max_body_bytes,
            });
        }
        let secret_index = match &self.secrets {
            Some(secrets) => Some(verify_signature(signature, body, secrets)?),
            None => None,
        };
        let batch = parse_batch(body)?;
        let generated_at = parse_rfc3339(&batch.generated_at).ok_or(Refusal::InvalidGeneratedAt)?;
        check_window(generated_at, now, self.tolerance)?;
        let uuids = check_events(&batch)?;
        Ok(Verified {
            batch,
            uuids,
            generated_at,
            secret_index,
        })
    }
}

/// Parses a body as a v1 batch, telling a syntax error from a shape error and refusing other
/// schema versions by name even when their shape differs from v1.
pub fn parse_batch(body: &[u8]) -> Result<Batch<'_>, Refusal> {
    match crate::parse::parse(body) {
        Ok(batch) if batch.schema_version == SCHEMA_VERSION => Ok(batch),
        Ok(batch) => Err(unsupported(&batch.schema_version)),
        Err(err) => {
            if let Some(found) = other_schema_version(body) {
                return Err(unsupported(&found));
            }
            Err(match err {
                WalkError::Shape(detail) => Refusal::InvalidBatch { detail },
                // JSON of the wrong shape (an array, a string) is an invalid batch, not bad JSON.
                WalkError::Syntax(detail)
                    if std::str::from_utf8(body).is_ok()
                        && serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok() =>
                {
                    Refusal::InvalidBatch { detail }
                }
                WalkError::Syntax(detail) => Refusal::MalformedJson { detail },
            })
        }
    }
}

fn unsupported(found: &str) -> Refusal {
    Refusal::UnsupportedSchemaVersion {
        found: found.chars().take(32).collect(),
    }
}

/// On the error path only: the `schema_version` of a JSON object, when it is not "1".
fn other_schema_version(body: &[u8]) -> Option<String> {
    // A map, not a derived struct: serde lets a struct be read from an array too.
    let object: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(body).ok()?;
    match object.get("schema_version")? {
        serde_json::Value::String(v) if v == SCHEMA_VERSION => None,
        serde_json::Value::String(v) => Some(v.clone()),
        other => Some(other.to_string()),
    }
}

/// Refuses a `generated_at` outside `now ± tolerance`.
pub fn check_window(
    generated_at: SystemTime,
    now: SystemTime,
    tolerance: Duration,
) -> Result<(), Refusal> {
    let tolerance_secs = tolerance.as_secs();
    match now.duration_since(generated_at) {
        Ok(age) if age > tolerance => Err(Refusal::TimestampTooOld {
            age_secs: age.as_secs(),
            tolerance_secs,
        }),
        Ok(_) => Ok(()),
        Err(ahead) if ahead.duration() > tolerance => Err(Refusal::TimestampTooNew {
            ahead_secs: ahead.duration().as_secs(),
            tolerance_secs,
        }),
        Err(_) => Ok(()),
    }
}

/// Checks that the batch is non-empty, that `count` matches, and that every `data.uuid` is a
/// UUID; returns the parsed UUIDs.
pub fn check_events(batch: &Batch<'_>) -> Result<Vec<Uuid>, Refusal> {
    if batch.events.is_empty() {
        return Err(Refusal::EmptyBatch);
    }
    if batch.count != batch.events.len() as u64 {
        return Err(Refusal::CountMismatch {
            declared: batch.count,
            actual: batch.events.len(),
        });
    }
    batch
        .events
        .iter()
        .enumerate()
        .map(|(index, e)| {
            Uuid::try_parse(&e.data.uuid).map_err(|_| Refusal::InvalidEventUuid { index })
        })
        .collect()
}

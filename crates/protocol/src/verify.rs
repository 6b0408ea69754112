//! [`Verifier`]: the whole receiver-side check of one request, pure and clock-injected.
//!
//! Order matters and is part of the contract: size first, then the signature over the raw bytes
//! (nothing is parsed before it is authenticated; for Standard Webhooks, then the replay window
//! on `webhook-timestamp`), then JSON, schema version, the replay window on `generated_at`, and
//! the batch's own consistency.

use crate::batch::{Batch, Event, SCHEMA_VERSION};
use crate::parse::WalkError;
use crate::standard_webhooks::{self, StandardWebhooksError};
use crate::{
    EventIdError, EventIds, Refusal, Secret, SignatureError, SignatureHeaders, SignatureScheme,
    event_key, parse_rfc3339, verify_signature,
};
use std::ops::Range;
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
    /// Each event's deduplication key, in event order: its `data.uuid` when that is a UUID, a
    /// 128-bit keyed hash of the id otherwise (see [`event_key`]).
    pub uuids: Vec<Uuid>,
    /// `generated_at`, parsed.
    pub generated_at: SystemTime,
    /// Which configured secret matched (`None` when unsigned batches are allowed).
    pub secret_index: Option<usize>,
}

/// A batch that passed every check, held as its text and the byte range of each event rather
/// than as typed events: what [`Verifier::verify_indexed`] returns.
///
/// The whole body was validated (every event has every field, with its type), so typed events
/// can be built at any time, all of them ([`parse`](Self::parse)) or one at a time
/// ([`event`](Self::event)); an application that forwards each event's JSON as received
/// ([`event_json`](Self::event_json)) never pays for them.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct IndexedBatch<'a> {
    /// The body, checked to be UTF-8.
    pub text: &'a str,
    /// Each event's JSON text as a byte range of `text`, in event order.
    pub events: Vec<Range<usize>>,
    /// Each event's deduplication key, in event order: its `data.uuid` when that is a UUID, a
    /// 128-bit keyed hash of the id otherwise (see [`event_key`]).
    pub uuids: Vec<Uuid>,
    /// `generated_at`, parsed.
    pub generated_at: SystemTime,
    /// Which configured secret matched (`None` when unsigned batches are allowed).
    pub secret_index: Option<usize>,
}

impl<'a> IndexedBatch<'a> {
    /// The number of events.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Whether the batch holds no events (never true for a verified batch).
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Event `index`'s JSON exactly as received.
    pub fn event_json(&self, index: usize) -> Option<&'a str> {
        self.text.get(self.events.get(index)?.clone())
    }

    /// Event `index` as a typed [`Event`], built now from its text (which keeps it as
    /// [`Event::raw_json`]). It cannot fail for a verified batch: the result is a `Result` only
    /// because the text is parsed again.
    pub fn event(&self, index: usize) -> Option<Result<Event<'a>, serde_json::Error>> {
        self.event_json(index).map(Event::from_json)
    }

    /// The whole batch as a typed [`Batch`], built now (the same parse as [`Verifier::verify`]).
    pub fn parse(&self) -> Result<Batch<'a>, Refusal> {
        parse_batch(self.text.as_bytes())
    }
}

/// Checks requests against the wire contract: signature, replay window, size and schema.
///
/// Build one with [`Verifier::new`] (one or several secrets, for rotation) or, for an endpoint
/// that deliberately accepts unsigned batches, [`Verifier::unsigned`].
///
/// Both [signature schemes](SignatureScheme) are accepted unless [`schemes`](Self::schemes)
/// narrows them: `X-Evo-Signature-256`, and Standard Webhooks (`webhook-id`,
/// `webhook-timestamp`, `webhook-signature`). [`verify_with_headers`](Self::verify_with_headers)
/// takes every signature header of the request ([`SignatureHeaders`]); [`verify`](Self::verify)
/// takes `X-Evo-Signature-256` alone, as it always did. Every accepted scheme whose signature
/// header is present must verify (a request signed both ways is checked both ways), at least one
/// must be present, and a `webhook-timestamp` must be within the same replay window as
/// `generated_at`.
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
    schemes: Vec<SignatureScheme>,
    event_ids: EventIds,
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
            schemes: SignatureScheme::ALL.to_vec(),
            event_ids: EventIds::Any,
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

    /// Accepts only these signature schemes (default: both). A signature of another scheme is
    /// ignored, as if absent; an empty list refuses every signed request as missing its
    /// signature.
    #[must_use]
    pub fn schemes(mut self, schemes: impl IntoIterator<Item = SignatureScheme>) -> Self {
        self.schemes = schemes.into_iter().collect();
        self
    }

    /// Whether signatures of `scheme` are accepted.
    pub fn accepts(&self, scheme: SignatureScheme) -> bool {
        self.schemes.contains(&scheme)
    }

    /// Sets which event ids are accepted: any printable-ASCII id up to 128 bytes (the default,
    /// [`EventIds::Any`]) or UUIDs only ([`EventIds::UuidOnly`], the stricter contract).
    #[must_use]
    pub fn event_ids(mut self, policy: EventIds) -> Self {
        self.event_ids = policy;
        self
    }

    /// Which event ids are accepted.
    pub fn event_id_policy(&self) -> EventIds {
        self.event_ids
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
    ///
    /// This is [`verify_with_headers`](Self::verify_with_headers) with that one header.
    pub fn verify<'a>(
        &self,
        body: &'a [u8],
        signature: Option<&[u8]>,
        now: SystemTime,
    ) -> Result<Verified<'a>, Refusal> {
        self.verify_with_headers(body, &SignatureHeaders::evo(signature), now)
    }

    /// Checks one request given all its signature headers, in either scheme:
    ///
    /// ```
    /// use std::time::{Duration, UNIX_EPOCH};
    /// use evo_siem_protocol::{Secret, SignatureHeaders, Verifier, encode_batch, standard_webhooks};
    /// # let event = serde_json::value::RawValue::from_string(r#"{"event_type":"create","table":"events",
    /// #   "timestamp":"2024-01-15T10:30:00.000Z","data":{"uuid":"8f0c1a52-3b7e-4f0e-9c61-2d5e8a9b7c10",
    /// #   "action":"User login","status":"Success","actor":{"kind":"User","name":"ana@example.com"},
    /// #   "origin":{"hostname":"DESKTOP-ABC","ipaddr":"192.0.2.10"},"target":{"kind":"User",
    /// #   "name":"ana@example.com"},"ts":1706000000123456789,"created_at":1706000000123456789}}"#.to_owned())?;
    /// let now = UNIX_EPOCH + Duration::from_secs(1_705_314_605);
    /// let body = encode_batch(&[&*event], now);
    /// let secret = Secret::from_whsec("whsec_YS1zZWNyZXQtb2Ytc2l4dGVlbi1ieXRlcw==")?;
    /// let signature = standard_webhooks::sign(&secret, "msg_1", 1_705_314_605, &body);
    /// let request = [
    ///     ("webhook-id", "msg_1"),
    ///     ("webhook-timestamp", "1705314605"),
    ///     ("webhook-signature", signature.as_str()),
    /// ];
    /// let headers = SignatureHeaders::from_lookup(|name| {
    ///     request.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_bytes())
    /// });
    /// let verified = Verifier::new([secret]).verify_with_headers(&body, &headers, now)?;
    /// assert_eq!(verified.batch.count, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn verify_with_headers<'a>(
        &self,
        body: &'a [u8],
        headers: &SignatureHeaders<'_>,
        now: SystemTime,
    ) -> Result<Verified<'a>, Refusal> {
        if body.len() > self.max_body_bytes {
            return Err(Refusal::BodyTooLarge {
                limit: self.max_body_bytes,
            });
        }
        let secret_index = self.authenticate(body, headers, now)?;
        let batch = parse_batch(body)?;
        let generated_at = parse_rfc3339(&batch.generated_at).ok_or(Refusal::InvalidGeneratedAt)?;
        check_window(generated_at, now, self.tolerance)?;
        let uuids = check_events(&batch, self.event_ids)?;
        Ok(Verified {
            batch,
            uuids,
            generated_at,
            secret_index,
        })
    }
}

impl Verifier {
    /// The same checks as [`verify`](Self::verify), in the same order and with the same
    /// refusals, but the batch is validated rather than parsed into typed events: the result
    /// holds each event's byte range and UUID, and typed events are built only when asked for.
    ///
    /// This is the receiver's fast path. A one-pass scan validates the whole body against schema
    /// v1 without allocating per event; whatever it is not sure of (a refusal of any kind, an
    /// escaped key, a surrogate escape, deep nesting) goes through the typed parser, which
    /// decides, so every refusal keeps the reason code and message that `verify` gives.
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
    ///     "ts":1706000000000000000,"created_at":1706000000000000000,"geo":"PT"}}]}"#;
    /// let secret = Secret::new("It's a Secret to Everybody");
    /// let header = sign(&secret, body);
    /// let now = UNIX_EPOCH + Duration::from_millis(1_705_314_606_000);
    ///
    /// let batch = Verifier::new([secret]).verify_indexed(body, Some(header.as_bytes()), now)?;
    /// assert_eq!(batch.uuids[0].to_string(), "0b9e3a4c-6d0f-4a53-9a43-0c1b2c3d4e5f");
    /// assert!(batch.event_json(0).unwrap().ends_with(r#""geo":"PT"}}"#));
    /// let event = batch.event(0).unwrap().unwrap(); // typed, on demand
    /// assert_eq!(event.data.action, "User login");
    /// # Ok::<(), evo_siem_protocol::Refusal>(())
    /// ```
    pub fn verify_indexed<'a>(
        &self,
        body: &'a [u8],
        signature: Option<&[u8]>,
        now: SystemTime,
    ) -> Result<IndexedBatch<'a>, Refusal> {
        self.verify_indexed_with_headers(body, &SignatureHeaders::evo(signature), now)
    }

    /// [`verify_indexed`](Self::verify_indexed) given all the request's signature headers, in
    /// either scheme (see [`verify_with_headers`](Self::verify_with_headers)).
    pub fn verify_indexed_with_headers<'a>(
        &self,
        body: &'a [u8],
        headers: &SignatureHeaders<'_>,
        now: SystemTime,
    ) -> Result<IndexedBatch<'a>, Refusal> {
        if body.len() > self.max_body_bytes {
            return Err(Refusal::BodyTooLarge {
                limit: self.max_body_bytes,
            });
        }
        let secret_index = self.authenticate(body, headers, now)?;
        let indexed = std::str::from_utf8(body)
            .ok()
            .and_then(|text| Some((text, crate::index::scan(text, self.event_ids)?)));
        let Some((text, scan)) = indexed else {
            return self.index_typed(body, now, secret_index);
        };
        // The whole body is a valid v1 batch: the typed path would now check, in this order,
        // generated_at, the replay window, emptiness, count and the UUIDs. So do we.
        let generated_at =
            parse_rfc3339(&text[scan.generated_at.clone()]).ok_or(Refusal::InvalidGeneratedAt)?;
        check_window(generated_at, now, self.tolerance)?;
        check_counts(scan.count, scan.events.len())?;
        if let Some((index, why)) = scan.bad_uuid {
            return Err(id_refusal(index, why));
        }
        Ok(IndexedBatch {
            text,
            events: scan.events,
            uuids: scan.uuids,
            generated_at,
            secret_index,
        })
    }

    /// The signature check: every accepted scheme whose signature header is present must verify,
    /// and at least one must be present. Returns the index of the secret that matched (the
    /// `X-Evo-Signature-256` one when both are checked), `None` for an unsigned verifier.
    fn authenticate(
        &self,
        body: &[u8],
        headers: &SignatureHeaders<'_>,
        now: SystemTime,
    ) -> Result<Option<usize>, Refusal> {
        let Some(secrets) = &self.secrets else {
            return Ok(None);
        };
        if secrets.is_empty() {
            return Err(SignatureError::NoSecrets.into());
        }
        let evo = self.accepts(SignatureScheme::Evo) && headers.evo_signature.is_some();
        let standard =
            self.accepts(SignatureScheme::StandardWebhooks) && headers.webhook_signature.is_some();
        let mut matched = None;
        if evo {
            matched = Some(verify_signature(headers.evo_signature, body, secrets)?);
        }
        if standard {
            let checked = standard_webhooks::verify(
                headers.webhook_id,
                headers.webhook_timestamp,
                headers.webhook_signature,
                body,
                secrets,
            )?;
            let signed_at = SystemTime::UNIX_EPOCH
                .checked_add(Duration::from_secs(checked.timestamp))
                .ok_or(StandardWebhooksError::InvalidTimestamp)?;
            check_window(signed_at, now, self.tolerance)?;
            matched.get_or_insert(checked.secret_index);
        }
        match matched {
            Some(index) => Ok(Some(index)),
            None if self.accepts(SignatureScheme::Evo) => Err(SignatureError::Missing.into()),
            None => Err(StandardWebhooksError::MissingSignature.into()),
        }
    }

    /// The typed path, for whatever the scan was not sure of: it refuses with the exact reason,
    /// or accepts, and then the index is read off the typed events.
    fn index_typed<'a>(
        &self,
        body: &'a [u8],
        now: SystemTime,
        secret_index: Option<usize>,
    ) -> Result<IndexedBatch<'a>, Refusal> {
        let batch = parse_batch(body)?;
        let generated_at = parse_rfc3339(&batch.generated_at).ok_or(Refusal::InvalidGeneratedAt)?;
        check_window(generated_at, now, self.tolerance)?;
        let uuids = check_events(&batch, self.event_ids)?;
        // `parse_batch` succeeded, so the body is UTF-8 and each event's raw text borrows from it.
        let text = std::str::from_utf8(body).map_err(|e| Refusal::MalformedJson {
            detail: format!("invalid UTF-8 at byte {}", e.valid_up_to()),
        })?;
        let base = text.as_ptr().addr();
        let events = batch
            .events
            .iter()
            .map(|event| {
                let raw = event.raw_json().unwrap_or_default();
                let start = raw.as_ptr().addr().wrapping_sub(base);
                start..start + raw.len()
            })
            .collect();
        Ok(IndexedBatch {
            text,
            events,
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

/// Checks that the batch is non-empty, that `count` matches, and that every `data.uuid` is an
/// event id `ids` accepts; returns each event's deduplication key ([`event_key`]).
pub fn check_events(batch: &Batch<'_>, ids: EventIds) -> Result<Vec<Uuid>, Refusal> {
    check_counts(batch.count, batch.events.len())?;
    batch
        .events
        .iter()
        .enumerate()
        .map(|(index, e)| {
            event_key(e.data.uuid.as_bytes(), ids).map_err(|why| id_refusal(index, why))
        })
        .collect()
}

fn id_refusal(index: usize, why: EventIdError) -> Refusal {
    match why {
        EventIdError::NotUuid => Refusal::EventIdNotUuid { index },
        _ => Refusal::InvalidEventUuid { index },
    }
}

fn check_counts(count: u64, events: usize) -> Result<(), Refusal> {
    if events == 0 {
        return Err(Refusal::EmptyBatch);
    }
    if count != events as u64 {
        return Err(Refusal::CountMismatch {
            declared: count,
            actual: events,
        });
    }
    Ok(())
}

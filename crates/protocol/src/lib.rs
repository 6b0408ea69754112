//! The Evo SIEM webhook wire contract, schema v1: types, headers, signing, verification and
//! validation. This crate does no I/O; the sender, the receiver SDK, the mock SIEM and the
//! conformance harness all speak the contract through it.
//!
//! - [`Batch`], [`Event`], [`EventData`], [`Entity`], [`Origin`]: the wire types. They borrow
//!   from the input, keep unknown fields (`extra`) and keep each event's raw JSON
//!   ([`Event::raw_json`]). `ts` and `created_at` are exact `i64` nanoseconds.
//! - [`headers`]: header names and the reserved-header rule.
//! - [`sign`] and [`verify_signature`]: `X-Evo-Signature-256`, HMAC-SHA256, constant-time, with
//!   secret rotation.
//! - [`standard_webhooks`]: the opt-in second scheme, [Standard Webhooks](https://www.standardwebhooks.com/)
//!   (`webhook-id`, `webhook-timestamp`, `webhook-signature`), and the `whsec_` form of a
//!   [`Secret`] ([`Secret::to_whsec`], [`Secret::from_whsec`]). [`SignatureScheme`] names the
//!   schemes; [`SignatureHeaders`] carries a request's signature headers to the [`Verifier`].
//! - [`Verifier`]: the whole receiver-side check (size, signature, JSON, schema version, replay
//!   window, count, event ids) with an injected clock, refusing with a typed [`Refusal`] that carries
//!   its reason code and HTTP status. [`Verifier::verify_indexed`] makes the same checks with
//!   the same refusals but validates the batch instead of building typed events
//!   ([`IndexedBatch`]: each event's byte range and UUID; typed events on demand).
//! - [`event_key`]: an event id (`data.uuid`: a UUID, or any printable-ASCII id up to 128
//!   bytes such as the product page's `"evt-abc123"`) and the 16-byte key it deduplicates by.
//! - [`encode_batch`] and [`format_generated_at`]: what a sender writes.
//!
//! # Example
//!
//! ```
//! use std::time::SystemTime;
//! use evo_siem_protocol::{Refusal, Secret, SignatureError, Verifier, encode_batch, sign};
//! use serde_json::value::RawValue;
//!
//! let event = RawValue::from_string(r#"{"event_type":"create","table":"events",
//!   "timestamp":"2024-01-15T10:30:00.000Z","data":{"uuid":"8f0c1a52-3b7e-4f0e-9c61-2d5e8a9b7c10",
//!   "action":"User login","status":"Success","actor":{"kind":"User","name":"ana@example.com"},
//!   "origin":{"hostname":"DESKTOP-ABC","ipaddr":"192.0.2.10"},"target":{"kind":"User",
//!   "name":"ana@example.com"},"ts":1706000000123456789,"created_at":1706000000123456789,
//!   "geo":{"country":"PT"}}}"#.to_owned())?;
//! let now = SystemTime::now();
//! let body = encode_batch(&[&*event], now);
//! let secret = Secret::new("whsec-example");
//! let header = sign(&secret, &body);
//!
//! let verifier = Verifier::new([secret]);
//! let verified = verifier.verify(&body, Some(header.as_bytes()), now)?;
//! let event = &verified.batch.events[0];
//! assert_eq!(event.data.ts, 1_706_000_000_123_456_789); // exact, above 2^53
//! assert!(event.data.extra.get("geo").is_some()); // unknown fields are kept
//!
//! let mut tampered = body.clone();
//! tampered[20] ^= 1;
//! assert_eq!(
//!     verifier.verify(&tampered, Some(header.as_bytes()), now).unwrap_err(),
//!     Refusal::Signature(SignatureError::Mismatch),
//! );
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod batch;
mod encode;
mod event_id;
pub mod headers;
mod index;
mod parse;
mod refusal;
mod scheme;
mod secret;
mod signature;
pub mod standard_webhooks;
mod timestamp;
mod verify;
mod wire;

pub use batch::{Batch, Entity, Event, EventData, Origin, SCHEMA_VERSION};
pub use encode::{encode_batch, encode_batch_from_text};
pub use event_id::{EventIdError, EventIds, MAX_EVENT_ID_LEN, event_key, is_valid_event_id};
pub use refusal::Refusal;
pub use scheme::{SignatureHeaders, SignatureScheme, UnknownScheme};
pub use secret::Secret;
pub use signature::{SignatureError, TAG_LEN, parse_header, sign, tag, verify_signature};
pub use timestamp::{format_generated_at, parse_rfc3339};
pub use verify::{
    DEFAULT_MAX_BODY_BYTES, DEFAULT_TOLERANCE, IndexedBatch, Verified, Verifier, check_events,
    check_window, parse_batch,
};
pub use wire::{Extra, IntoOwned};

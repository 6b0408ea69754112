//! Building a batch body from events, as a sender does.

use crate::batch::{Batch, Event, SCHEMA_VERSION};
use crate::format_generated_at;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::time::SystemTime;

/// Writes the body of a batch holding `events` verbatim, stamped with `generated_at`.
///
/// Each event is copied as raw JSON, so fields the sender does not model (and the exact spelling
/// of large integers) reach the receiver unchanged. The caller keeps batches non-empty.
///
/// ```
/// use serde_json::value::RawValue;
/// use std::time::UNIX_EPOCH;
/// let event = RawValue::from_string(r#"{"data":{"uuid":"x"}}"#.to_owned()).unwrap();
/// let body = evo_siem_protocol::encode_batch(&[&*event], UNIX_EPOCH);
/// assert_eq!(
///     String::from_utf8(body).unwrap(),
///     r#"{"schema_version":"1","events":[{"data":{"uuid":"x"}}],"count":1,"generated_at":"1970-01-01T00:00:00.000Z"}"#,
/// );
/// ```
pub fn encode_batch(events: &[&RawValue], generated_at: SystemTime) -> Vec<u8> {
    let texts: Vec<&str> = events.iter().map(|e| e.get()).collect();
    encode_batch_from_text(&texts, generated_at)
}

/// [`encode_batch`] for events held as text that the caller has already checked to be JSON
/// objects (a sender validates every event when it is ingested, and keeps its text). Nothing is
/// parsed again; a string that is not a JSON object makes the body invalid, which receivers
/// refuse with 400.
pub fn encode_batch_from_text(events: &[&str], generated_at: SystemTime) -> Vec<u8> {
    let payload: usize = events.iter().map(|e| e.len() + 1).sum();
    let mut body = Vec::with_capacity(payload + 96);
    body.extend_from_slice(b"{\"schema_version\":\"");
    body.extend_from_slice(SCHEMA_VERSION.as_bytes());
    body.extend_from_slice(b"\",\"events\":[");
    for (i, event) in events.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(event.as_bytes());
    }
    body.extend_from_slice(b"],\"count\":");
    body.extend_from_slice(events.len().to_string().as_bytes());
    body.extend_from_slice(b",\"generated_at\":\"");
    body.extend_from_slice(format_generated_at(generated_at).as_bytes());
    body.extend_from_slice(b"\"}");
    body
}

impl<'a> Batch<'a> {
    /// A v1 batch of `events` stamped with `generated_at`, with `count` filled in.
    pub fn new(events: Vec<Event<'a>>, generated_at: SystemTime) -> Self {
        Batch {
            schema_version: Cow::Borrowed(SCHEMA_VERSION),
            count: events.len() as u64,
            events,
            generated_at: Cow::Owned(format_generated_at(generated_at)),
            extra: Default::default(),
        }
    }
}

//! The schema v1 wire types: [`Batch`], [`Event`], [`EventData`], [`Entity`], [`Origin`].
//!
//! Every type borrows from the input where it can (`Cow`), keeps unknown fields in `extra`, and
//! can be made `'static` with [`IntoOwned`]. `ts` and `created_at` are `i64` nanoseconds: serde_json
//! reads integers exactly, so values above 2^53 never pass through an `f64`.

use crate::wire::{IntoOwned, WireValue, wire_struct};
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;

/// The only schema version this crate speaks.
pub const SCHEMA_VERSION: &str = "1";

wire_struct! {
    /// One webhook request body: a batch of at least one event.
    ///
    /// `{"schema_version":"1","events":[...],"count":N,"generated_at":"2024-01-15T10:30:05.123Z"}`
    pub struct Batch<'a> {
        /// Always `"1"` for this contract; anything else is refused.
        pub schema_version: Cow<'a, str>,
        /// The events, in the sender's order.
        pub events: Vec<Event<'a>>,
        /// The number of events; must equal `events.len()`.
        pub count: u64,
        /// RFC 3339 UTC time of this attempt, stamped afresh (and signed) on every retry.
        pub generated_at: Cow<'a, str>,
    }
}

wire_struct! {
    /// One audit event.
    pub struct Event<'a> {
        /// What happened to the row, for example `create`.
        pub event_type: Cow<'a, str>,
        /// The platform table the event comes from, for example `events`.
        pub table: Cow<'a, str>,
        /// RFC 3339 time of the event.
        pub timestamp: Cow<'a, str>,
        /// The audit record itself.
        pub data: EventData<'a>,
    }
    private {
        /// The event's JSON exactly as received, when it was parsed from a batch or from text.
        raw: RawText<'a> = RawText(None),
    }
}

wire_struct! {
    /// The audit record of an [`Event`].
    pub struct EventData<'a> {
        /// The event's UUID: the deduplication key.
        pub uuid: Cow<'a, str>,
        /// The audit action name, for example `User login`; exclusions match it exactly.
        pub action: Cow<'a, str>,
        /// The outcome, for example `Success`.
        pub status: Cow<'a, str>,
        /// Who acted.
        pub actor: Entity<'a>,
        /// Where the action came from.
        pub origin: Origin<'a>,
        /// What was acted on.
        pub target: Entity<'a>,
        /// Event time in nanoseconds since the Unix epoch.
        pub ts: i64,
        /// Record creation time in nanoseconds since the Unix epoch.
        pub created_at: i64,
    }
}

wire_struct! {
    /// An actor or a target: a kind and a name.
    pub struct Entity<'a> {
        /// For example `User`.
        pub kind: Cow<'a, str>,
        /// For example `user@example.com`.
        pub name: Cow<'a, str>,
    }
}

wire_struct! {
    /// Where an action came from.
    pub struct Origin<'a> {
        /// The client's host name.
        pub hostname: Cow<'a, str>,
        /// The client's IP address, as text.
        pub ipaddr: Cow<'a, str>,
    }
}

impl<'a> Event<'a> {
    /// Parses one event from JSON text, keeping that text as its [`raw_json`](Self::raw_json).
    pub fn from_json(json: &'a str) -> Result<Self, serde_json::Error> {
        let raw: &'a RawValue = serde_json::from_str(json)?;
        Self::from_raw(raw)
    }

    fn from_raw(raw: &'a RawValue) -> Result<Self, serde_json::Error> {
        let mut event: Event<'a> = serde_json::from_str(raw.get())?;
        event.raw = RawText(Some(Cow::Borrowed(raw.get())));
        Ok(event)
    }

    /// Records the exact text this event was parsed from (the batch parser knows it by offset).
    pub(crate) fn set_raw(&mut self, text: &'a str) {
        self.raw = RawText(Some(Cow::Borrowed(text)));
    }

    /// The event's JSON exactly as received (unknown fields, key order and number spelling
    /// included), without re-serializing. `None` for an event built in code.
    pub fn raw_json(&self) -> Option<&str> {
        self.raw.0.as_deref()
    }

    /// The event as JSON: the received text when there is one, otherwise serialized.
    pub fn to_json(&self) -> String {
        match self.raw_json() {
            Some(raw) => raw.to_owned(),
            None => serde_json::to_string(self).expect("wire types always serialize"),
        }
    }
}

/// An event's received JSON text. It is a representation, not part of the value: two events
/// with the same fields are equal however their JSON was spelled.
#[derive(Debug, Clone)]
struct RawText<'a>(Option<Cow<'a, str>>);

impl PartialEq for RawText<'_> {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl IntoOwned for RawText<'_> {
    type Owned = RawText<'static>;
    fn into_owned(self) -> RawText<'static> {
        RawText(self.0.map(IntoOwned::into_owned))
    }
}

/// The `events` array: each element is taken as raw JSON first, so that every event keeps the
/// exact text it arrived as, and then parsed into the typed fields from that text.
impl<'de> WireValue<'de> for Vec<Event<'de>> {
    fn deserialize_wire<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct EventsVisitor;
        impl<'de> Visitor<'de> for EventsVisitor {
            type Value = Vec<Event<'de>>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array of events")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut events = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
                while let Some(raw) = seq.next_element::<&'de RawValue>()? {
                    let event = Event::from_raw(raw).map_err(|e| {
                        de::Error::custom(format_args!("event {}: {e}", events.len()))
                    })?;
                    events.push(event);
                }
                Ok(events)
            }
        }
        d.deserialize_seq(EventsVisitor)
    }
}

//! What the mock SIEM remembers: deliveries, unique events, and counters.

use serde::Serialize;

/// Counters, as `GET /_mock/stats` returns them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Requests to the webhook.
    pub deliveries: u64,
    /// Requests answered 2xx.
    pub accepted_deliveries: u64,
    /// Events in accepted deliveries, duplicates included.
    pub events_received: u64,
    /// Distinct event UUIDs received.
    pub unique_events: u64,
    /// Events received again.
    pub duplicate_events: u64,
    /// Requests a fault rule acted on.
    pub faults_injected: u64,
    /// Refused requests by kind.
    pub rejected: Rejected,
}

/// Refused requests by kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Rejected {
    /// Wrong or malformed signature.
    pub bad_signature: u64,
    /// No signature although a secret is configured.
    pub missing_signature: u64,
    /// `generated_at` outside the replay window.
    pub stale: u64,
    /// Not a valid v1 batch.
    pub malformed: u64,
    /// Another schema version.
    pub unsupported_schema: u64,
    /// Over the size limit.
    pub too_large: u64,
    /// Answered 503 because another delivery was processing one of the events at that moment:
    /// two deliveries of the same event overlapped.
    pub in_flight: u64,
    /// Answered 503 because the shared dedup store was unreachable.
    pub dedup_unavailable: u64,
}

impl Rejected {
    /// Counts a refusal by its reason code.
    pub(crate) fn count(&mut self, reason: &str) {
        let counter = match reason {
            "missing_signature" => &mut self.missing_signature,
            "malformed_signature" | "signature_mismatch" => &mut self.bad_signature,
            "timestamp_too_old" | "timestamp_too_new" => &mut self.stale,
            "unsupported_schema_version" => &mut self.unsupported_schema,
            "body_too_large" => &mut self.too_large,
            "event_in_flight" => &mut self.in_flight,
            "dedup_unavailable" => &mut self.dedup_unavailable,
            _ => &mut self.malformed,
        };
        *counter += 1;
    }
}

/// One request to the webhook, as `GET /_mock/deliveries` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Delivery {
    /// When the request arrived, in milliseconds since the Unix epoch.
    pub received_at_ms: u64,
    /// `X-Evo-Delivery-Id`, as sent.
    pub delivery_id: Option<String>,
    /// `X-Evo-Delivery-Attempt`, as sent.
    pub attempt: Option<String>,
    /// Request headers, with secret-bearing ones redacted.
    pub headers: Vec<(String, String)>,
    /// `accepted`, a refusal's reason code, or `fault:<what>` when a fault acted
    /// (`fault:status 503`, `fault:drop`, `fault:reset`, `fault:accept_then_hang`, `fault:delay 800ms`).
    pub verdict: String,
    /// The status answered (0 when the connection was dropped).
    pub status: u16,
    /// UUIDs of the events in the batch, in batch order: of every accepted batch, and of a
    /// batch answered by a status fault as far as it parses. Empty for refused batches.
    pub events: Vec<String>,
    /// Milliseconds from the batch's `generated_at` to its arrival (negative when ahead), when
    /// the body was read and parsed.
    pub age_ms: Option<i64>,
}

/// One distinct event, as `GET /_mock/events` lists them (first-arrival order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReceivedEvent {
    /// `data.uuid`.
    pub uuid: String,
    /// `data.action`.
    pub action: String,
    /// The event's JSON exactly as received.
    pub raw: String,
    /// When it first arrived, in milliseconds since the Unix epoch.
    pub received_at_ms: u64,
}

/// Header names whose values are never recorded.
pub(crate) fn redact(name: &str, value: &str) -> String {
    let name = name.to_ascii_lowercase();
    let secret = ["authorization", "cookie", "proxy-authorization"].contains(&name.as_str())
        || ["token", "secret", "key", "auth", "password"]
            .iter()
            .any(|w| name.contains(w));
    if secret {
        "<redacted>".to_owned()
    } else {
        value.to_owned()
    }
}

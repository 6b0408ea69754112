//! The properties every case must keep, checked against the mock SIEMs' records.

use super::case::{Case, IntegrationCase};
use evo_siem_mock::{Delivery, ReceivedEvent, Stats};
use serde::Serialize;
use std::collections::HashMap;

/// What one mock SIEM saw.
#[derive(Debug, Clone)]
pub struct Observed {
    /// Its counters.
    pub stats: Stats,
    /// Every request, in arrival order.
    pub deliveries: Vec<Delivery>,
    /// Distinct events, first arrivals in order.
    pub events: Vec<ReceivedEvent>,
}

/// A guarantee of the contract the suite checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Property {
    /// Every ingested, non-excluded event arrives, with its fields unchanged.
    AtLeastOnce,
    /// No excluded action arrives, and nothing that was never ingested; near misses do arrive.
    ExactFiltering,
    /// First arrivals come in ingest order, per integration.
    Order,
    /// Every delivery is a valid v1 batch: schema version, count, signature (or none when the
    /// integration has no secret), fresh `generated_at`.
    Envelope,
    /// Every delivery has an `X-Evo-Delivery-Id` that stays the same across the retries of a
    /// batch, with an `X-Evo-Delivery-Attempt` that increases.
    DeliveryIds,
    /// Every delivery carries the integration's headers.
    Headers,
}

impl Property {
    /// Every property, in report order.
    pub const ALL: [Property; 6] = [
        Property::AtLeastOnce,
        Property::ExactFiltering,
        Property::Order,
        Property::Envelope,
        Property::DeliveryIds,
        Property::Headers,
    ];
}

impl std::fmt::Display for Property {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Property::AtLeastOnce => "at-least-once",
            Property::ExactFiltering => "exact filtering",
            Property::Order => "order",
            Property::Envelope => "envelope",
            Property::DeliveryIds => "delivery ids",
            Property::Headers => "headers",
        })
    }
}

/// One broken guarantee.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// Which.
    pub property: Property,
    /// The integration's tenant.
    pub tenant: String,
    /// What was seen.
    pub detail: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.property, self.tenant, self.detail)
    }
}

/// How far `generated_at` may be from the arrival: a sender stamps each attempt as it sends it.
const MAX_AGE_MS: i64 = 30_000;

/// What the oracle found: each broken guarantee, and how many individual checks it made (an
/// event that had to arrive, an arrival that had to be expected, a delivery's envelope, ids and
/// headers): the report counts them rather than assuming them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Judgement {
    /// Every broken guarantee.
    pub violations: Vec<Violation>,
    /// Checks made, passed or not.
    pub checks: u64,
}

impl Judgement {
    /// Checks that held.
    pub fn passed(&self) -> u64 {
        self.checks.saturating_sub(self.violations.len() as u64)
    }
}

/// Checks every property of `case` against what each integration's SIEM observed.
pub fn check(case: &Case, observed: &[Observed]) -> Judgement {
    let mut violations = Vec::new();
    let mut checks = 0;
    for (integration, seen) in case.integrations.iter().zip(observed) {
        let mut violate = |property, detail: String| {
            violations.push(Violation {
                property,
                tenant: integration.tenant.clone(),
                detail,
            });
        };
        checks += arrivals(integration, seen, &mut violate);
        checks += envelopes(integration, seen, &mut violate);
        checks += delivery_ids(seen, case.restart_after.is_some(), &mut violate);
        checks += headers(integration, seen, &mut violate);
    }
    Judgement { violations, checks }
}

fn same_json(a: &str, b: &str) -> bool {
    match (
        serde_json::from_str::<serde_json::Value>(a),
        serde_json::from_str::<serde_json::Value>(b),
    ) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// Returns how many checks it made (each function below does).
fn arrivals(
    case: &IntegrationCase,
    seen: &Observed,
    violate: &mut impl FnMut(Property, String),
) -> u64 {
    let mut checks = 0;
    let ingested: HashMap<&str, (usize, &super::case::GenEvent)> = case
        .events
        .iter()
        .enumerate()
        .map(|(i, e)| (e.uuid.as_str(), (i, e)))
        .collect();
    let received: HashMap<&str, &ReceivedEvent> =
        seen.events.iter().map(|e| (e.uuid.as_str(), e)).collect();

    let mut missing = Vec::new();
    for event in case.expected() {
        checks += 1;
        match received.get(event.uuid.as_str()) {
            None => missing.push(event.uuid.as_str()),
            Some(got) if !same_json(&got.raw, &event.json) => violate(
                Property::AtLeastOnce,
                format!(
                    "event {} arrived changed: sent {} got {}",
                    event.uuid, event.json, got.raw
                ),
            ),
            Some(_) => {}
        }
    }
    if !missing.is_empty() {
        violate(
            Property::AtLeastOnce,
            format!(
                "{} of {} events never arrived (first: {})",
                missing.len(),
                case.expected().count(),
                missing[0]
            ),
        );
    }

    let mut last = None;
    for got in &seen.events {
        // Expected at all, not excluded, in order.
        checks += 2;
        match ingested.get(got.uuid.as_str()) {
            None => violate(
                Property::ExactFiltering,
                format!("event {} arrived but was never ingested", got.uuid),
            ),
            Some((_, event)) if case.excludes(&event.action) => violate(
                Property::ExactFiltering,
                format!(
                    "event {} of excluded action {:?} arrived",
                    got.uuid, event.action
                ),
            ),
            Some((index, _)) => {
                if last.is_some_and(|last| *index < last) {
                    violate(
                        Property::Order,
                        format!(
                            "event #{index} ({}) arrived first after event #{}",
                            got.uuid,
                            last.unwrap_or_default()
                        ),
                    );
                }
                last = Some(*index);
            }
        }
    }
    checks
}

fn header<'a>(delivery: &'a Delivery, name: &str) -> Option<&'a str> {
    delivery
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn envelopes(
    case: &IntegrationCase,
    seen: &Observed,
    violate: &mut impl FnMut(Property, String),
) -> u64 {
    // No overlap, no refusal; then each delivery's signature and age.
    let mut checks = 2;
    let r = &seen.stats.rejected;
    let refused = r.bad_signature
        + r.missing_signature
        + r.stale
        + r.malformed
        + r.unsupported_schema
        + r.too_large;
    if r.in_flight > 0 {
        // Batches of one integration go out one at a time: two deliveries holding the same
        // event at once means two deliverers (on a shared spool, a lease not honoured).
        violate(
            Property::Order,
            format!(
                "{} deliveries overlapped another delivery of the same events (event_in_flight)",
                r.in_flight
            ),
        );
    }
    if refused > 0 {
        violate(
            Property::Envelope,
            format!("the SIEM refused {refused} deliveries: {r:?}"),
        );
    }
    for delivery in &seen.deliveries {
        checks += 2;
        let signature = header(delivery, evo_siem_protocol::headers::SIGNATURE_256);
        match (&case.secret, signature) {
            (None, Some(_)) => violate(
                Property::Envelope,
                "a signature header on an integration without a secret".into(),
            ),
            (Some(_), None) => violate(Property::Envelope, "a delivery without a signature".into()),
            _ => {}
        }
        if let Some(age) = delivery.age_ms
            && age.abs() > MAX_AGE_MS
        {
            violate(
                Property::Envelope,
                format!(
                    "generated_at is {age} ms from the arrival (attempt {:?})",
                    delivery.attempt
                ),
            );
        }
    }
    checks
}

/// Attempts of one batch keep its id and count up. The mock SIEM is always listening, so every
/// attempt reaches it and the first one it sees of an id is attempt 1; only a restart (which
/// may cut a request short before the SIEM read it) excuses a later first attempt.
fn delivery_ids(
    seen: &Observed,
    restarted: bool,
    violate: &mut impl FnMut(Property, String),
) -> u64 {
    let mut checks = 0;
    let mut batches: HashMap<&str, (u32, &[String])> = HashMap::new();
    // Each id's attempts and their `generated_at`, as the SIEM saw them: arrival minus age
    // (within 1 ms).
    let mut stamps: HashMap<&str, Vec<(u32, i64)>> = HashMap::new();
    for delivery in &seen.deliveries {
        checks += 1;
        let Some(id) = delivery.delivery_id.as_deref() else {
            violate(
                Property::DeliveryIds,
                "a delivery without X-Evo-Delivery-Id".into(),
            );
            continue;
        };
        if uuid::Uuid::try_parse(id).is_err() {
            violate(
                Property::DeliveryIds,
                format!("delivery id {id:?} is not a UUID"),
            );
        }
        let Some(attempt) = delivery
            .attempt
            .as_deref()
            .and_then(|a| a.parse::<u32>().ok())
            .filter(|a| *a >= 1)
        else {
            violate(
                Property::DeliveryIds,
                format!(
                    "delivery {id}: X-Evo-Delivery-Attempt {:?} is not a number from 1",
                    delivery.attempt
                ),
            );
            continue;
        };
        if let Some(age) = delivery.age_ms {
            let stamped = i64::try_from(delivery.received_at_ms).unwrap_or(i64::MAX) - age;
            stamps.entry(id).or_default().push((attempt, stamped));
        }
        match batches.get_mut(id) {
            None => {
                if attempt != 1 && !restarted {
                    violate(
                        Property::DeliveryIds,
                        format!("delivery {id}: the first attempt seen is attempt {attempt}"),
                    );
                }
                batches.insert(id, (attempt, delivery.events.as_slice()));
            }
            Some((last, events)) => {
                if attempt <= *last {
                    violate(
                        Property::DeliveryIds,
                        format!("delivery {id}: attempt {attempt} arrived after attempt {last}"),
                    );
                }
                *last = attempt;
                if !delivery.events.is_empty() {
                    if !events.is_empty() && *events != delivery.events.as_slice() {
                        violate(
                            Property::DeliveryIds,
                            format!(
                                "delivery {id}: attempt {attempt} holds other events than an earlier attempt"
                            ),
                        );
                    }
                    *events = delivery.events.as_slice();
                }
            }
        }
    }
    // Attempts of one batch are at least the retry floor apart, so a stamp no later than the
    // previous attempt's (allowing 1 ms for the estimate) was reused. Compared in attempt order,
    // not arrival order: a delayed attempt may be recorded after the next one.
    for (id, mut attempts) in stamps {
        attempts.sort_unstable();
        attempts.dedup_by_key(|(attempt, _)| *attempt);
        for pair in attempts.windows(2) {
            checks += 1;
            let ((_, before), (attempt, stamped)) = (pair[0], pair[1]);
            if stamped <= before + 1 {
                violate(
                    Property::Envelope,
                    format!(
                        "delivery {id}: attempt {attempt} carries the generated_at of an earlier attempt (each attempt is stamped as it is sent)"
                    ),
                );
            }
        }
    }
    checks
}

fn headers(
    case: &IntegrationCase,
    seen: &Observed,
    violate: &mut impl FnMut(Property, String),
) -> u64 {
    let mut checks = 0;
    for delivery in &seen.deliveries {
        for (name, value) in &case.headers {
            checks += 1;
            match header(delivery, name) {
                None => violate(Property::Headers, format!("header {name} missing")),
                // The mock SIEM does not record the values of credential headers.
                Some("<redacted>") => {}
                Some(got) if got != value => {
                    violate(
                        Property::Headers,
                        format!("header {name} is {got:?}, not {value:?}"),
                    );
                }
                Some(_) => {}
            }
        }
    }
    checks
}

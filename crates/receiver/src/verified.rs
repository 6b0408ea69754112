//! [`VerifiedBatch`]: an accepted delivery, its fresh events, and the claim that commit settles.

use crate::Rejection;
use crate::dedup::{ClaimOutcome, ClaimToken, DedupStore};
use bytes::Bytes;
use evo_siem_protocol::{Batch, Event, IndexedBatch, parse_batch};
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;
use uuid::Uuid;

self_cell::self_cell!(
    /// The body bytes and the verified batch's index into them (event ranges and UUIDs).
    pub(crate) struct Indexed {
        owner: Bytes,
        #[covariant]
        dependent: IndexedBatch,
    }
    impl {Debug}
);

self_cell::self_cell!(
    /// The body bytes and the typed batch parsed from them, borrowing them without copies.
    struct Typed {
        owner: Bytes,
        #[covariant]
        dependent: Batch,
    }
    impl {Debug}
);

/// The claims a delivery holds: the store's answer for each event of the batch. Released when
/// the [`VerifiedBatch`] is dropped, unless committed.
#[derive(Debug)]
pub(crate) struct Claims {
    pub(crate) store: Arc<dyn DedupStore>,
    pub(crate) token: ClaimToken,
    /// One outcome per event, in batch order; the `Claimed` ones are this delivery's fresh
    /// events. Kept as the store returned it, so that accepting a batch builds no other list.
    pub(crate) outcomes: Vec<ClaimOutcome>,
}

/// The positions of the `Claimed` outcomes, with their count known in advance.
struct FreshIndices<'b> {
    outcomes: std::iter::Enumerate<std::slice::Iter<'b, ClaimOutcome>>,
    left: usize,
}

impl Iterator for FreshIndices<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        if self.left == 0 {
            return None;
        }
        let (index, _) = self
            .outcomes
            .find(|(_, outcome)| **outcome == ClaimOutcome::Claimed)?;
        self.left -= 1;
        Some(index)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for FreshIndices<'_> {}

/// A delivery that passed verification, validation and deduplication.
///
/// [`raw_events`](Self::raw_events) and [`events`](Self::events) are the events no earlier
/// delivery processed: this delivery holds a claim on each. Process them, then call
/// [`commit`](Self::commit) and answer with the [`Delivered`] it returns. If you return an error
/// instead, or the request is dropped, the claims are released when this value is dropped, so
/// the sender's retry processes the events.
///
/// The whole body was validated before anything was claimed, but typed events are built only
/// when first asked for ([`events`](Self::events), [`batch`](Self::batch)): forwarding each
/// event's JSON as received ([`raw_events`](Self::raw_events)) never builds them.
#[derive(Debug)]
pub struct VerifiedBatch {
    indexed: Indexed,
    typed: OnceLock<Typed>,
    claims: Claims,
    /// How many outcomes are `Claimed`.
    fresh: usize,
    /// Whether the claims are still to be released on drop: true until a commit is under way.
    held: bool,
    delivery_id: Option<Uuid>,
    attempt: Option<u32>,
}

/// One fresh event of a [`VerifiedBatch`] as received: its JSON text and its UUID, without a
/// typed parse ([`parse`](Self::parse) builds the typed [`Event`] when you want one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawEvent<'a> {
    json: &'a str,
    uuid: Uuid,
    index: usize,
}

impl<'a> RawEvent<'a> {
    /// The event's JSON exactly as received: unknown fields, key order and number spelling
    /// included. Forward this to the SIEM and nothing is lost.
    pub fn raw_json(&self) -> &'a str {
        self.json
    }

    /// The event's deduplication key: its `data.uuid` when that is a UUID (in any letter case),
    /// else a 128-bit hash of the exact id ([`evo_siem_protocol::event_key`]), so the same id
    /// always gives the same key, in every receiver and every store.
    pub fn uuid(&self) -> Uuid {
        self.uuid
    }

    /// The event's position in the batch (duplicates included).
    pub fn index(&self) -> usize {
        self.index
    }

    /// The typed event, parsed now from [`raw_json`](Self::raw_json), which it keeps. The batch
    /// was validated as a whole, so this does not fail for an event of a verified batch.
    pub fn parse(&self) -> Result<Event<'a>, serde_json::Error> {
        Event::from_json(self.json)
    }
}

impl VerifiedBatch {
    pub(crate) fn new(
        indexed: Indexed,
        claims: Claims,
        delivery_id: Option<Uuid>,
        attempt: Option<u32>,
    ) -> Self {
        let fresh = claims
            .outcomes
            .iter()
            .filter(|outcome| **outcome == ClaimOutcome::Claimed)
            .count();
        Self {
            indexed,
            typed: OnceLock::new(),
            claims,
            fresh,
            held: true,
            delivery_id,
            attempt,
        }
    }

    /// The events to process, as received (JSON text and UUID): those not seen before, in
    /// batch order. The cheapest way to forward events: no typed event is built.
    pub fn raw_events(&self) -> impl ExactSizeIterator<Item = RawEvent<'_>> + '_ {
        let indexed = self.indexed.borrow_dependent();
        self.fresh_indices().map(move |index| RawEvent {
            json: &indexed.text[indexed.events[index].clone()],
            uuid: indexed.uuids[index],
            index,
        })
    }

    /// The events to process, typed: those not seen before, in batch order. The first call
    /// (of this or [`batch`](Self::batch)) parses the batch into typed events.
    pub fn events(&self) -> impl ExactSizeIterator<Item = &Event<'_>> + '_ {
        let events = &self.batch().events;
        self.fresh_indices().map(move |i| &events[i])
    }

    fn fresh_indices(&self) -> FreshIndices<'_> {
        FreshIndices {
            outcomes: self.claims.outcomes.iter().enumerate(),
            left: self.fresh,
        }
    }

    /// Whether another delivery holds a claim on one of the events.
    pub(crate) fn in_flight(&self) -> bool {
        self.claims.outcomes.contains(&ClaimOutcome::InFlight)
    }

    /// The keys this delivery claimed, as one list: the batch's own when it claimed every
    /// event (the common case, no copy), else the claimed ones gathered.
    fn claimed_keys(&self) -> std::borrow::Cow<'_, [Uuid]> {
        let uuids = &self.indexed.borrow_dependent().uuids;
        if self.fresh == uuids.len() {
            std::borrow::Cow::Borrowed(uuids)
        } else {
            std::borrow::Cow::Owned(self.fresh_indices().map(|i| uuids[i]).collect())
        }
    }

    /// The whole batch as received, duplicates included, typed (parsed on the first call).
    ///
    /// # Panics
    ///
    /// Never for a batch this crate verified: the body was validated as a whole against schema
    /// v1 before it was accepted, and property tests check that the typed parser accepts every
    /// body that validation accepts. Should that ever fail, a panic drops the request, which
    /// releases the claims, so the sender retries and no event is lost.
    pub fn batch(&self) -> &Batch<'_> {
        self.typed
            .get_or_init(|| {
                Typed::new(self.indexed.borrow_owner().clone(), |body| {
                    parse_batch(body).expect("a verified body parses into a typed batch")
                })
            })
            .borrow_dependent()
    }

    /// The number of events in the batch, duplicates included.
    pub fn len(&self) -> usize {
        self.indexed.borrow_dependent().len()
    }

    /// Whether the batch holds no event (never true: an empty batch is refused).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many events of the batch were duplicates (seen before, or repeated in the batch).
    pub fn duplicates(&self) -> usize {
        self.len() - self.fresh
    }

    /// `X-Evo-Delivery-Id` (without it, `webhook-id`), when present and a UUID.
    pub fn delivery_id(&self) -> Option<Uuid> {
        self.delivery_id
    }

    /// `X-Evo-Delivery-Attempt`, when present and a number.
    pub fn attempt(&self) -> Option<u32> {
        self.attempt
    }

    /// The batch's signed `generated_at`.
    pub fn generated_at(&self) -> SystemTime {
        self.indexed.borrow_dependent().generated_at
    }

    /// The exact body bytes that were verified.
    pub fn body(&self) -> &Bytes {
        self.indexed.borrow_owner()
    }

    /// Marks the fresh events as processed. Call it only after the application has handed them
    /// off; answer 2xx only after it returned `Ok`.
    pub async fn commit(mut self) -> Result<Delivered, Rejection> {
        // Not released if this future is dropped mid-commit: the store may have committed
        // already, and the claim TTL covers it if not.
        self.held = false;
        if self.fresh > 0 {
            let keys = self.claimed_keys();
            if let Err(err) = self.claims.store.commit(&keys, self.claims.token).await {
                drop(keys);
                self.held = true; // Dropping `self` releases them.
                return Err(err.into());
            }
        }
        Ok(Delivered {
            accepted: self.fresh,
            duplicates: self.duplicates(),
        })
    }
}

impl Drop for VerifiedBatch {
    fn drop(&mut self) {
        if self.held && self.fresh > 0 {
            let keys = self.claimed_keys().into_owned();
            self.claims.store.release(keys, self.claims.token);
        }
    }
}

/// Proof that a delivery was committed; with the `axum` feature it is the 200 response
/// `{"accepted":N,"duplicates":M}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "answer the sender with this only after committing"]
pub struct Delivered {
    /// Fresh events processed.
    pub accepted: usize,
    /// Duplicate events skipped.
    pub duplicates: usize,
}

//! [`VerifiedBatch`]: an accepted delivery, its fresh events, and the claim that commit settles.

use crate::Rejection;
use crate::dedup::{ClaimToken, DedupStore};
use bytes::Bytes;
use evo_siem_protocol::{Batch, Event, Verified};
use std::sync::Arc;
use std::time::SystemTime;
use uuid::Uuid;

self_cell::self_cell!(
    /// The body bytes and the batch parsed from them, borrowing them without copies.
    pub(crate) struct Parsed {
        owner: Bytes,
        #[covariant]
        dependent: Verified,
    }
    impl {Debug}
);

/// The claims a delivery holds; released on drop unless committed.
#[derive(Debug)]
pub(crate) struct ClaimGuard {
    store: Arc<dyn DedupStore>,
    token: ClaimToken,
    pub(crate) keys: Vec<Uuid>,
}

impl ClaimGuard {
    pub(crate) fn new(store: Arc<dyn DedupStore>, token: ClaimToken) -> Self {
        Self {
            store,
            token,
            keys: Vec::new(),
        }
    }
}

impl Drop for ClaimGuard {
    fn drop(&mut self) {
        if !self.keys.is_empty() {
            self.store
                .release(std::mem::take(&mut self.keys), self.token);
        }
    }
}

/// A delivery that passed verification, parsing and deduplication.
///
/// [`events`](Self::events) are the events no earlier delivery processed: this delivery holds a
/// claim on each. Process them, then call [`commit`](Self::commit) and answer with the
/// [`Delivered`] it returns. If you return an error instead, or the request is dropped, the
/// claims are released when this value is dropped, so the sender's retry processes the events.
#[derive(Debug)]
pub struct VerifiedBatch {
    parsed: Parsed,
    fresh: Vec<usize>,
    guard: ClaimGuard,
    delivery_id: Option<Uuid>,
    attempt: Option<u32>,
}

impl VerifiedBatch {
    pub(crate) fn new(
        parsed: Parsed,
        fresh: Vec<usize>,
        guard: ClaimGuard,
        delivery_id: Option<Uuid>,
        attempt: Option<u32>,
    ) -> Self {
        Self {
            parsed,
            fresh,
            guard,
            delivery_id,
            attempt,
        }
    }

    /// The events to process: those not seen before, in batch order.
    pub fn events(&self) -> impl ExactSizeIterator<Item = &Event<'_>> + '_ {
        let events = &self.parsed.borrow_dependent().batch.events;
        self.fresh.iter().map(move |&i| &events[i])
    }

    /// The whole batch as received, duplicates included.
    pub fn batch(&self) -> &Batch<'_> {
        &self.parsed.borrow_dependent().batch
    }

    /// How many events of the batch were duplicates (seen before, or repeated in the batch).
    pub fn duplicates(&self) -> usize {
        self.batch().events.len() - self.fresh.len()
    }

    /// `X-Evo-Delivery-Id`, when present and a UUID.
    pub fn delivery_id(&self) -> Option<Uuid> {
        self.delivery_id
    }

    /// `X-Evo-Delivery-Attempt`, when present and a number.
    pub fn attempt(&self) -> Option<u32> {
        self.attempt
    }

    /// The batch's signed `generated_at`.
    pub fn generated_at(&self) -> SystemTime {
        self.parsed.borrow_dependent().generated_at
    }

    /// The exact body bytes that were verified.
    pub fn body(&self) -> &Bytes {
        self.parsed.borrow_owner()
    }

    /// Marks the fresh events as processed. Call it only after the application has handed them
    /// off; answer 2xx only after it returned `Ok`.
    pub async fn commit(mut self) -> Result<Delivered, Rejection> {
        let keys = std::mem::take(&mut self.guard.keys);
        let store = Arc::clone(&self.guard.store);
        if let Err(err) = store.commit(&keys, self.guard.token).await {
            self.guard.keys = keys; // Dropping `self` releases them.
            return Err(err.into());
        }
        Ok(Delivered {
            accepted: self.fresh.len(),
            duplicates: self.duplicates(),
        })
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

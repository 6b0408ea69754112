//! Deduplication by event UUID: the [`DedupStore`] trait and its claim / commit / release protocol.
//!
//! A delivery first **claims** the UUIDs of its batch. A UUID already committed is a duplicate; a
//! UUID claimed by another delivery still in progress is *in flight*, and the receiver answers 503
//! so that the sender retries later, never 2xx for an event whose fate is not yet known. Once the
//! application has processed the fresh events, the delivery **commits** them (they are now seen
//! for the store's time-to-live). If the application fails or the request is dropped, the claim
//! is **released** and a redelivery processes the event. Claims also expire on their own after a
//! short TTL, which covers a receiver that dies mid-batch when the store is shared.

mod memory;
mod seen;

pub use memory::{MemoryDedup, MemoryDedupConfig};

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use uuid::Uuid;

/// The future returned by [`DedupStore`] methods: boxed so that the trait is object-safe and a
/// receiver can hold any store behind `Arc<dyn DedupStore>`.
pub type DedupFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, DedupError>> + Send + 'a>>;

/// Identifies the delivery that holds a claim, so that only its owner commits or releases it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClaimToken(pub u128);

impl ClaimToken {
    /// A fresh random token.
    pub fn random() -> Self {
        Self(Uuid::new_v4().as_u128())
    }
}

/// What a claim found for one UUID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimOutcome {
    /// This delivery now holds the claim: hand the event to the application.
    Claimed,
    /// The event was committed earlier: a duplicate, skip it.
    Seen,
    /// Another delivery holds an unexpired claim: its outcome is not known yet.
    InFlight,
}

/// The store could not answer (for a shared store: the server is unreachable). The receiver
/// answers 503 so that the sender retries; it never answers 2xx without deduplication.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the deduplication store is unavailable: {0}")]
pub struct DedupError(pub String);

/// A deduplication store: atomic claim, commit after processing, release on failure.
///
/// Implementations must make [`claim`](Self::claim) atomic per UUID: when several deliveries
/// claim the same UUID concurrently, exactly one gets [`ClaimOutcome::Claimed`]. The in-memory
/// [`MemoryDedup`] is the default; a shared store (Redis) lets several receivers deduplicate
/// together.
pub trait DedupStore: Send + Sync + fmt::Debug + 'static {
    /// Claims each UUID of `uuids` for `token`, returning one outcome per UUID in order.
    ///
    /// Exactly one per UUID: an answer of another length cannot be matched to the events, so
    /// the receiver refuses the delivery (503 `dedup_store_inconsistent`, logged at ERROR)
    /// rather than skip events under a 2xx.
    ///
    /// A batch may repeat a UUID: every occurrence after the first is reported as
    /// [`ClaimOutcome::Seen`]. A delivery claims once, with a token of its own.
    fn claim<'a>(
        &'a self,
        uuids: &'a [Uuid],
        token: ClaimToken,
    ) -> DedupFuture<'a, Vec<ClaimOutcome>>;

    /// Marks `uuids`, claimed by `token` and processed, as seen.
    fn commit<'a>(&'a self, uuids: &'a [Uuid], token: ClaimToken) -> DedupFuture<'a, ()>;

    /// Gives up the claims `token` holds on `uuids` so that a redelivery processes them.
    ///
    /// Called from `Drop`, so it cannot be awaited: a store that needs I/O does it in the
    /// background, and its claim TTL covers a release that never arrives.
    fn release(&self, uuids: Vec<Uuid>, token: ClaimToken);
}

//! The durable spool: events wait here, on disk, until a 2xx for the batch holding them.
//!
//! [`Spool`] is the small trait the dispatcher and the ingest API use; [`SqliteSpool`] is the
//! embedded default. A PostgreSQL spool for several sender instances implements the same trait.

mod sqlite;

pub use sqlite::SqliteSpool;

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, SystemTime};

/// The future returned by [`Spool`] methods, boxed so the trait is object-safe.
pub type SpoolFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, SpoolError>> + Send + 'a>>;

/// An event handed to the spool: its audit action (for exclusion when the batch is built) and its
/// JSON exactly as ingested.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    /// `data.action`.
    pub action: String,
    /// The event's JSON text.
    pub json: String,
}

/// An event in the spool, in ingest order by `id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpooledEvent {
    /// Its position in the spool: increases with ingest order.
    pub id: i64,
    /// `data.action`.
    pub action: String,
    /// The event's JSON text.
    pub json: String,
}

/// How much an integration has waiting.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Backlog {
    /// Events queued.
    pub events: u64,
    /// Bytes of event JSON queued.
    pub bytes: u64,
}

/// Per-integration bounds on the backlog; an ingest that would pass them is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BacklogLimits {
    /// Most events queued per integration. Default: 10,000,000.
    pub max_events: u64,
    /// Most bytes of event JSON queued per integration. Default: 4 GiB.
    pub max_bytes: u64,
}

impl Default for BacklogLimits {
    fn default() -> Self {
        Self {
            max_events: 10_000_000,
            max_bytes: 4 << 30,
        }
    }
}

/// A refused event, kept for an admin to inspect and replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The spool position the event had.
    pub id: i64,
    /// The event's JSON text.
    pub json: String,
    /// Why it was refused, for example `http 422` or `larger than max_batch_bytes`.
    pub reason: String,
    /// When it was refused.
    pub at: SystemTime,
}

/// Why the spool could not do what was asked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpoolError {
    /// The integration's backlog is at its limit: refuse the ingest (HTTP 503) and let the
    /// platform retry after `retry_after`. Nothing of the refused request was stored.
    #[error(
        "the backlog of this integration is full ({backlog_events} events, {backlog_bytes} bytes queued)"
    )]
    Full {
        /// Events queued now.
        backlog_events: u64,
        /// Bytes queued now.
        backlog_bytes: u64,
        /// When to try again.
        retry_after: Duration,
    },
    /// The storage failed (disk full, I/O error, corrupted file).
    #[error("spool storage error: {0}")]
    Storage(String),
    /// The spool is shutting down.
    #[error("the spool is closed")]
    Closed,
}

/// Durable storage of queued events, per integration, in ingest order.
pub trait Spool: Send + Sync + std::fmt::Debug + 'static {
    /// Stores `events` for `integration`, all or nothing. Resolves only once they are durable on
    /// disk; only then may the ingest be acknowledged.
    fn append(&self, integration: &str, events: Vec<NewEvent>) -> SpoolFuture<'_, ()>;

    /// The oldest `limit` events of `integration`, in ingest order.
    fn pending(&self, integration: &str, limit: usize) -> SpoolFuture<'_, Vec<SpooledEvent>>;

    /// Removes delivered events (after a 2xx for the batch holding them).
    fn ack(&self, integration: &str, ids: Vec<i64>) -> SpoolFuture<'_, ()>;

    /// Moves one event from the queue to the dead-letter store, with the reason.
    fn dead_letter(&self, integration: &str, id: i64, reason: String) -> SpoolFuture<'_, ()>;

    /// The dead letters of `integration`, oldest first.
    fn dead_letters(&self, integration: &str) -> SpoolFuture<'_, Vec<DeadLetter>>;

    /// What `integration` has waiting.
    fn backlog(&self, integration: &str) -> SpoolFuture<'_, Backlog>;

    /// When the oldest event `integration` has waiting was queued (`None` when none is, or when
    /// it was queued before the spool recorded times).
    fn oldest(&self, integration: &str) -> SpoolFuture<'_, Option<SystemTime>>;

    /// Puts dead letters back at the end of the queue: all of `integration`'s, or those with
    /// the given ids. Returns how many.
    fn replay(&self, integration: &str, ids: Option<Vec<i64>>) -> SpoolFuture<'_, u64>;
}

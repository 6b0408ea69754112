//! The durable spool: events wait here, on disk, until a 2xx for the batch holding them.
//!
//! [`Spool`] is the small trait the dispatcher and the ingest API use; [`SqliteSpool`] is the
//! embedded default, for one sender instance. [`PostgresSpool`] keeps the queue in PostgreSQL so
//! that several sender instances share it: any instance takes ingest, and a lease per integration
//! (see [`Spool::keep_leases`] and [`Spool::holds`]) makes sure that only one of them delivers
//! an integration's queue at a time, so batches still go out one at a time and in order.

pub(crate) mod postgres;
pub mod scratch;
mod sqlite;

pub use postgres::{PostgresOptions, PostgresSpool};
pub use sqlite::SqliteSpool;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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
    /// The dead letter's own id, from a sequence of the dead-letter store: it increases in the
    /// order events were refused, and it is what listings page by and replays name. It is not
    /// the queue position: the two id spaces are separate, so that a queue id met again (a
    /// sequence restarted by a restore) can never cost a record.
    pub id: i64,
    /// The queue position the event had when it was refused.
    pub event_id: i64,
    /// The event's JSON text.
    pub json: String,
    /// Why it was refused, for example `http 422` or `larger than max_batch_bytes`.
    pub reason: String,
    /// When it was refused.
    pub at: SystemTime,
}

/// One page of an integration's dead letters, oldest first (see [`Spool::dead_letters`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeadLetterPage {
    /// At most the page size asked for, in id order.
    pub letters: Vec<DeadLetter>,
    /// The cursor of the next page (the id of this page's last letter) when there is one more
    /// letter after this page, `None` at the end.
    pub next: Option<i64>,
}

/// What one [`Spool::replay_page`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplayPage {
    /// Dead letters moved back to the queue by this page.
    pub moved: u64,
    /// The highest dead-letter id the replay covers: the bound given, or, when none was, the
    /// highest id present when this page ran (`None` when there were no dead letters). Pass it
    /// to the next page, so that events refused again during the replay are not replayed again.
    pub through: Option<i64>,
}

/// Dead letters moved back to the queue per transaction by [`replay_all`]: small enough
/// that one page holds the spool (on SQLite, its single writer) for milliseconds, so other
/// tenants' ingest interleaves with a replay of millions.
pub const REPLAY_PAGE: usize = 1000;

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
    /// SQLite failed: a statement refused, a full disk, an I/O error, a corrupted or unreadable
    /// file. The driver's [`rusqlite::Error`] is the source (see [`SqliteError`]).
    #[error(transparent)]
    Sqlite(SqliteError),
    /// PostgreSQL refused a statement or the connection failed; the driver's error is the
    /// source (its server message, or its chain of causes, is in the text).
    #[error("spool storage error: {}", postgres::describe(.0))]
    Postgres(#[source] tokio_postgres::Error),
    /// A PostgreSQL step other than a spool statement failed, named by `what` (with a hint where
    /// one helps), for example reaching the server to create a scratch database; the driver's
    /// error is the source.
    #[error("spool storage error: {what}: {}", postgres::describe(.source))]
    PostgresStep {
        /// What was being done.
        what: &'static str,
        /// The driver's error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// No PostgreSQL connection could be had from the pool: none came free in time, or the pool
    /// is closed. (A connection the server refused is [`SpoolError::Postgres`].)
    #[error("spool storage error: {0}")]
    Pool(#[source] deadpool_postgres::PoolError),
    /// The PostgreSQL connection pool could not be built.
    #[error("spool storage error: {0}")]
    PoolBuild(#[source] deadpool_postgres::BuildError),
    /// `what` did not answer within its bound (for the spool and the shared state, `timeout` of
    /// [`PostgresOptions`]): a storage error, never a hang.
    #[error("spool storage error: {what} did not answer in time")]
    Timeout {
        /// What did not answer, for example `PostgreSQL`.
        what: &'static str,
    },
    /// A PostgreSQL connection string does not parse. The parser's error is not kept: it may
    /// quote the string, which may hold a password.
    #[error("spool storage error: the PostgreSQL connection string is invalid")]
    InvalidConnectionString,
    /// TLS to PostgreSQL could not be set up (no protocol version in common with the crypto
    /// provider, no usable platform verifier); rustls's error is the source.
    #[error("spool storage error: PostgreSQL TLS setup: {0}")]
    Tls(#[source] rustls::Error),
    /// The file system failed: the spool's directory could not be created, or its writer thread
    /// could not be started.
    #[error("spool storage error: {0}")]
    Io(#[source] std::io::Error),
    /// A blocking task doing spool work panicked or was cancelled; the runtime's error is the
    /// source.
    #[error("spool storage error: {0}")]
    Join(#[source] tokio::task::JoinError),
    /// A task panicked or was cancelled where only a reference to the runtime's error was at
    /// hand (it is not `Clone`), so it was logged there: the scheduler's delivery task, whose
    /// failure ends its run like a spool error. `what` names the task.
    #[error("spool storage error: {what} failed")]
    TaskFailed {
        /// The task.
        what: &'static str,
    },
    /// A count does not fit the database's integer type.
    #[error("spool storage error: {0}")]
    OutOfRange(#[source] std::num::TryFromIntError),
    /// The spool is shutting down.
    #[error("the spool is closed")]
    Closed,
    /// This instance no longer holds the integration's lease (on a shared spool): another
    /// instance delivers it now, and nothing of its queue was changed.
    #[error("this instance no longer holds the integration's lease")]
    LeaseLost,
}

/// A SQLite error, shared: one failed group transaction of the writer thread answers every
/// request in the group with the same error, and the driver's error is not `Clone`.
///
/// Its [`source`](std::error::Error::source) is the driver's error itself, so that the source
/// of a [`SpoolError::Sqlite`] downcasts to [`rusqlite::Error`].
#[derive(Debug, Clone)]
pub struct SqliteError(Arc<rusqlite::Error>);

impl SqliteError {
    /// The driver's error, for example to read its SQLite result code.
    pub fn inner(&self) -> &rusqlite::Error {
        &self.0
    }
}

impl From<rusqlite::Error> for SqliteError {
    fn from(err: rusqlite::Error) -> Self {
        Self(Arc::new(err))
    }
}

impl From<rusqlite::Error> for SpoolError {
    fn from(err: rusqlite::Error) -> Self {
        Self::Sqlite(err.into())
    }
}

impl std::fmt::Display for SqliteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "spool storage error: {}", self.0)
    }
}

impl std::error::Error for SqliteError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}

/// What a worker asks of [`Spool::holds`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// Between batches: whether this instance holds the lease and keeps it. An instance that
    /// holds more than its share of integrations gives this one up now (so integrations spread
    /// over the instances that are alive) and answers `false`.
    Next,
    /// In the middle of a batch: whether this instance still holds the lease; never gives it up.
    Keep,
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

    /// One page of `integration`'s dead letters in id order (the order they were refused):
    /// at most `limit` of them, those with an id above `after` (from the start when `None`).
    /// The page's `next` is the `after` of the following page.
    fn dead_letters(
        &self,
        integration: &str,
        after: Option<i64>,
        limit: usize,
    ) -> SpoolFuture<'_, DeadLetterPage>;

    /// How many dead letters `integration` has, counted by the store (an index range), never by
    /// reading them.
    fn dead_letter_count(&self, integration: &str) -> SpoolFuture<'_, u64>;

    /// What `integration` has waiting.
    fn backlog(&self, integration: &str) -> SpoolFuture<'_, Backlog>;

    /// The integrations that have events queued, in one query: what the scheduler looks at
    /// when it starts, and, on a shared spool, to find events queued through another instance.
    fn queued(&self) -> SpoolFuture<'_, Vec<String>>;

    /// When the oldest event `integration` has waiting was queued (`None` when none is, or when
    /// it was queued before the spool recorded times).
    fn oldest(&self, integration: &str) -> SpoolFuture<'_, Option<SystemTime>>;

    /// Puts the dead letters of `integration` with the given ids back at the end of the queue,
    /// in the order they were refused, in one transaction; ids that are not `integration`'s dead
    /// letters are skipped. Returns how many moved. Callers bound the list (the admin API takes
    /// at most 1,000 ids); [`replay_all`] is the way to replay everything.
    fn replay(&self, integration: &str, ids: Vec<i64>) -> SpoolFuture<'_, u64>;

    /// Puts the oldest `limit` dead letters of `integration` with an id at most `through` (no
    /// bound when `None`: see [`ReplayPage::through`]) back at the end of the queue, in the order
    /// they were refused, in one short transaction of its own.
    fn replay_page(
        &self,
        integration: &str,
        through: Option<i64>,
        limit: usize,
    ) -> SpoolFuture<'_, ReplayPage>;

    /// How long a lease lasts unless renewed, when this spool is shared by several instances;
    /// `None` (the default) when one process owns the spool and leases are not needed.
    fn lease_ttl(&self) -> Option<Duration> {
        None
    }

    /// The lease keeper's round, run by each instance every third of [`Spool::lease_ttl`]: in a
    /// few statements for all integrations, it records that this instance is alive, renews
    /// every lease it holds, takes free leases of integrations with events queued (up to its
    /// share), and gives up leases beyond its share. Resolves to the integrations whose lease
    /// it took in this round, which the scheduler then looks at. A spool owned by one process
    /// has no leases: nothing to do.
    fn keep_leases(&self) -> SpoolFuture<'_, Vec<String>> {
        Box::pin(async { Ok(Vec::new()) })
    }

    /// Whether this instance holds the lease on delivering `integration`'s queue, from what the
    /// lease keeper last renewed (no statement): a lease counts as held until a margin before
    /// it would expire, so an instance that stalls stops sending before another may take over.
    /// While it does not hold it, [`Spool::pending`] returns nothing and [`Spool::ack`] and
    /// [`Spool::dead_letter`] fail with [`SpoolError::LeaseLost`]. A spool owned by one process
    /// always holds it.
    fn holds(&self, integration: &str, hold: Hold) -> bool {
        let _ = (integration, hold);
        true
    }

    /// Integrations that got events through another instance, as they are committed (on
    /// PostgreSQL, `LISTEN`/`NOTIFY`), so that the holder of their lease need not poll. `None`
    /// for a spool owned by one process (its own ingest tells the scheduler). Called once.
    fn arrivals(&self) -> Option<tokio::sync::mpsc::Receiver<String>> {
        None
    }

    /// Gives up this instance's lease on `integration`, so another instance can take over at
    /// once (on shutdown, or when the integration is removed).
    fn release(&self, integration: &str) -> SpoolFuture<'_, ()> {
        let _ = integration;
        Box::pin(async { Ok(()) })
    }

    /// Says this instance is leaving (a graceful shutdown): its leases are released and it no
    /// longer counts among the instances that share the integrations.
    fn leave(&self) -> SpoolFuture<'_, ()> {
        Box::pin(async { Ok(()) })
    }

    /// What all integrations have waiting, in one query whatever their number: the totals, and
    /// the `oldest` integrations whose oldest queued event was queued first (oldest first), with
    /// their backlog. For `/metrics`, which must not cost a query per integration.
    fn backlog_summary(&self, oldest: usize) -> SpoolFuture<'_, BacklogSummary>;
}

/// A page of at most `limit` letters from `letters`, read with one more than `limit` so that
/// the cursor says whether another page follows.
pub(crate) fn page_of(mut letters: Vec<DeadLetter>, limit: usize) -> DeadLetterPage {
    let next = if letters.len() > limit {
        letters.truncate(limit);
        letters.last().map(|l| l.id)
    } else {
        None
    };
    DeadLetterPage { letters, next }
}

/// Puts every dead letter `integration` has now back at the end of the queue, in the order they
/// were refused, `page` at a time: each page is its own short transaction (on SQLite, its own
/// request to the writer thread), so other requests get in between. `progress` is called after
/// each page with the total moved so far. Returns how many moved.
///
/// Events refused again while it runs stay dead letters: the replay stops at the highest id
/// present when it began, so a receiver that still refuses them cannot keep it going. Stopped
/// half-way (the future dropped, the storage failing), the pages done stay done and the rest
/// stay dead letters, in order: running it again finishes the job.
pub async fn replay_all<S: Spool + ?Sized>(
    spool: &S,
    integration: &str,
    page: usize,
    mut progress: impl FnMut(u64) + Send,
) -> Result<u64, SpoolError> {
    let page = page.max(1);
    let (mut through, mut total) = (None, 0);
    loop {
        let step = spool.replay_page(integration, through, page).await?;
        total += step.moved;
        if step.moved > 0 {
            progress(total);
        }
        // Fewer than a page: nothing up to the bound is left (another replay of the same
        // integration running at once may have taken some; it moves the rest).
        if step.moved < page as u64 {
            return Ok(total);
        }
        through = step.through;
    }
}

pub(crate) fn unix_ms(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A stored time; 0 is "unknown" (events queued before the column existed).
pub(crate) fn from_unix_ms(ms: i64) -> Option<SystemTime> {
    u64::try_from(ms)
        .ok()
        .filter(|ms| *ms > 0)
        .map(|ms| UNIX_EPOCH + Duration::from_millis(ms))
}

/// The `data.action` of a stored event (validated at ingest), for the exclusion check at batch
/// time; an event that no longer parses gets an empty action and is sent as it is.
pub(crate) fn action_of(json: &str) -> String {
    #[derive(serde::Deserialize)]
    struct Data {
        action: String,
    }
    #[derive(serde::Deserialize)]
    struct Event {
        data: Data,
    }
    serde_json::from_str::<Event>(json)
        .map(|e| e.data.action)
        .unwrap_or_default()
}

/// What every integration has waiting, summed, and the integrations waiting longest (see
/// [`Spool::backlog_summary`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BacklogSummary {
    /// Events and bytes queued, over all integrations.
    pub total: Backlog,
    /// Integrations with at least one event queued.
    pub integrations: u64,
    /// The integrations whose oldest queued event was queued first, oldest first.
    pub oldest: Vec<Waiting>,
}

/// An integration with events queued, in a [`BacklogSummary`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    /// The integration (its tenant).
    pub integration: String,
    /// What it has queued.
    pub backlog: Backlog,
    /// When its oldest queued event was queued (`None` when the spool did not record it).
    pub since: Option<SystemTime>,
}

/// Builds a [`BacklogSummary`] from rows of `(integration, events, bytes, oldest event's
/// at_unix_ms, integrations, total events, total bytes)`, the last three repeated on every row
/// (window functions), as both backends' queries return them.
pub(crate) fn summary_from_rows(
    rows: impl IntoIterator<Item = (String, i64, i64, i64, i64, i64, i64)>,
    oldest: usize,
) -> BacklogSummary {
    let count = |n: i64| u64::try_from(n).unwrap_or(0);
    let mut summary = BacklogSummary::default();
    for (integration, events, bytes, at, integrations, total_events, total_bytes) in rows {
        summary.integrations = count(integrations);
        summary.total = Backlog {
            events: count(total_events),
            bytes: count(total_bytes),
        };
        // The queries ask for at least one row so that the totals come back even when no
        // integration is wanted.
        if summary.oldest.len() < oldest {
            summary.oldest.push(Waiting {
                integration,
                backlog: Backlog {
                    events: count(events),
                    bytes: count(bytes),
                },
                since: from_unix_ms(at),
            });
        }
    }
    summary
}

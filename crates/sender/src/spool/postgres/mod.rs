//! [`PostgresSpool`]: the spool in PostgreSQL, shared by several sender instances.
//!
//! Any instance takes ingest: an append is one transaction (the backlog row's bound check, then
//! every event in one `INSERT ... SELECT FROM unnest(...)`), and it resolves only after the
//! commit, so an acknowledged ingest survives the loss of the instance that took it.
//!
//! Delivery is single-consumer per integration, which is what keeps batches in order: an
//! instance delivers an integration's queue only while it holds that integration's lease, a row
//! in `spool_leases` with an expiry it renews (every third of the lease's life, and during long
//! attempts and backoff waits). [`Spool::pending`] checks the lease in the same statement, so an
//! instance that lost its lease (it was paused, cut off, or killed) cannot start another batch;
//! at worst the batch it had in flight is sent again by the next holder, which is the "one
//! duplicate batch per lease lost" the design allows. Row claims with `FOR UPDATE SKIP LOCKED`
//! would add nothing here: there is never a second consumer of the same queue to skip past.
//!
//! Integrations spread over the instances alive: each instance records a heartbeat in
//! `spool_instances` when it asks for a lease, takes a free lease only while it holds fewer than
//! its share (`ceil(integrations / instances alive)`), and gives one up, between batches, when it
//! holds more.
//!
//! The schema is created and upgraded by versioned migrations (`spool_migrations` records which
//! ran), applied at start-up under an advisory lock so that instances starting together do not race.
//!
//! The code is split by job: `options` and `tls` (how to connect), `migrations` (the schema),
//! `queue` (append, pending, ack, backlogs), `lease` (who delivers what), `arrivals`
//! (`LISTEN`/`NOTIFY`) and `dead_letters` (refused events and their replay). This file holds
//! the spool itself, its connection, and the [`Spool`] implementation, which bounds every call
//! in time and hands it to those modules.

mod arrivals;
mod dead_letters;
mod lease;
mod migrations;
mod options;
mod queue;
mod tls;

pub use options::PostgresOptions;

use super::{
    Backlog, BacklogLimits, BacklogSummary, DeadLetterPage, Hold, NewEvent, ReplayPage, Spool,
    SpoolError, SpoolFuture, SpooledEvent,
};
use arrivals::ListenerConfig;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use lease::LeaseBook;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio_postgres::NoTls;

/// The spool in PostgreSQL. See the module docs for ingest, leases and order.
#[derive(Clone)]
pub struct PostgresSpool {
    pool: Pool,
    limits: BacklogLimits,
    lease_ttl: Duration,
    timeout: Duration,
    instance: String,
    /// The leases this instance holds, as the lease keeper last renewed them.
    leases: Arc<Mutex<LeaseBook>>,
    /// How to open the `LISTEN` connection (outside the pool: it stays open).
    listener: Arc<ListenerConfig>,
}

impl fmt::Debug for PostgresSpool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresSpool")
            .field("instance", &self.instance)
            .field("lease_ttl", &self.lease_ttl)
            .finish_non_exhaustive()
    }
}

/// A database error as a spool error, the driver's error kept as its source.
pub(crate) fn db(err: tokio_postgres::Error) -> SpoolError {
    SpoolError::Postgres(err)
}

/// The full text of a database error: its `Display` says only "db error" for server errors.
pub(crate) fn describe(err: &tokio_postgres::Error) -> String {
    match err.as_db_error() {
        Some(db) => format!("postgres: {}", db.message()),
        None => {
            // "error performing TLS handshake" alone does not say why: add the causes.
            let mut text = err.to_string();
            let mut source = std::error::Error::source(err);
            while let Some(cause) = source {
                text.push_str(": ");
                text.push_str(&cause.to_string());
                source = cause.source();
            }
            text
        }
    }
}

impl PostgresSpool {
    /// Connects, applies the migrations not yet applied, and returns the spool.
    pub async fn connect(
        options: PostgresOptions,
        limits: BacklogLimits,
    ) -> Result<Self, SpoolError> {
        let config = options.config()?;
        let manager_config = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let tls = tls::connector(config.get_ssl_mode())?;
        let listener = Arc::new(ListenerConfig {
            config: config.clone(),
            tls: tls.clone(),
        });
        let manager = match tls {
            Some(tls) => Manager::from_config(config, tls, manager_config),
            None => Manager::from_config(config, NoTls, manager_config),
        };
        let pool = Pool::builder(manager)
            .max_size(options.pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(options.timeout))
            .create_timeout(Some(options.timeout))
            .recycle_timeout(Some(options.timeout))
            .build()
            .map_err(SpoolError::PoolBuild)?;
        let spool = Self {
            pool,
            limits,
            lease_ttl: options.lease_ttl,
            timeout: options.timeout,
            instance: options.instance,
            leases: Arc::default(),
            listener,
        };
        spool.bounded(spool.migrate()).await?;
        Ok(spool)
    }

    /// Whether this spool's connections to PostgreSQL are encrypted (TLS), as the server sees
    /// them: logged at start, so that an operator can tell what `sslmode` gave.
    pub async fn encrypted(&self) -> Result<bool, SpoolError> {
        self.bounded(async {
            let client = self.client().await?;
            let row = client
                .query_opt(
                    "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                    &[],
                )
                .await
                .map_err(db)?;
            Ok(row.is_some_and(|r| r.get::<_, bool>(0)))
        })
        .await
    }

    /// This instance's name in the lease table.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// The connection pool, for the integration store's shared tables in the same database.
    pub(crate) fn pool(&self) -> &deadpool_postgres::Pool {
        &self.pool
    }

    /// How long any one statement may take.
    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Runs `op` with the statement bound; a database that does not answer in time is a storage
    /// error, never a hang.
    async fn bounded<T>(
        &self,
        op: impl Future<Output = Result<T, SpoolError>>,
    ) -> Result<T, SpoolError> {
        tokio::time::timeout(self.timeout, op)
            .await
            .map_err(|_| SpoolError::Timeout { what: "PostgreSQL" })?
    }

    /// A connection from the pool; a failure to connect is the driver's error.
    async fn client(&self) -> Result<deadpool_postgres::Object, SpoolError> {
        self.pool.get().await.map_err(|e| match e {
            deadpool_postgres::PoolError::Backend(e) => db(e),
            other => SpoolError::Pool(other),
        })
    }
}

impl Spool for PostgresSpool {
    fn append(&self, integration: &str, events: Vec<NewEvent>) -> SpoolFuture<'_, ()> {
        let integration = integration.to_owned();
        Box::pin(self.bounded(self.append_now(integration, events)))
    }

    fn pending(&self, integration: &str, limit: usize) -> SpoolFuture<'_, Vec<SpooledEvent>> {
        let integration = integration.to_owned();
        Box::pin(self.bounded(self.pending_now(integration, limit)))
    }

    fn ack(&self, integration: &str, ids: Vec<i64>) -> SpoolFuture<'_, ()> {
        let integration = integration.to_owned();
        Box::pin(self.bounded(self.ack_now(integration, ids)))
    }

    fn dead_letter(&self, integration: &str, id: i64, reason: String) -> SpoolFuture<'_, ()> {
        let integration = integration.to_owned();
        Box::pin(self.bounded(self.dead_letter_now(integration, id, reason)))
    }

    fn dead_letters(
        &self,
        integration: &str,
        after: Option<i64>,
        limit: usize,
    ) -> SpoolFuture<'_, DeadLetterPage> {
        let integration = integration.to_owned();
        Box::pin(self.bounded(self.dead_letters_now(integration, after, limit)))
    }

    fn dead_letter_count(&self, integration: &str) -> SpoolFuture<'_, u64> {
        let integration = integration.to_owned();
        Box::pin(self.bounded(self.dead_letter_count_now(integration)))
    }

    fn backlog(&self, integration: &str) -> SpoolFuture<'_, Backlog> {
        let integration = integration.to_owned();
        Box::pin(self.bounded(self.backlog_now(integration)))
    }

    fn queued(&self) -> SpoolFuture<'_, Vec<String>> {
        Box::pin(self.bounded(self.queued_now()))
    }

    fn oldest(&self, integration: &str) -> SpoolFuture<'_, Option<SystemTime>> {
        let integration = integration.to_owned();
        Box::pin(self.bounded(self.oldest_now(integration)))
    }

    fn replay(&self, integration: &str, ids: Vec<i64>) -> SpoolFuture<'_, u64> {
        let integration = integration.to_owned();
        Box::pin(self.bounded(self.replay_now(integration, ids)))
    }

    fn replay_page(
        &self,
        integration: &str,
        through: Option<i64>,
        limit: usize,
    ) -> SpoolFuture<'_, ReplayPage> {
        let integration = integration.to_owned();
        Box::pin(self.bounded(self.replay_page_now(integration, through, limit)))
    }

    fn lease_ttl(&self) -> Option<Duration> {
        Some(self.lease_ttl)
    }

    fn keep_leases(&self) -> SpoolFuture<'_, Vec<String>> {
        Box::pin(self.bounded(self.keep_leases_now()))
    }

    fn holds(&self, integration: &str, hold: Hold) -> bool {
        self.holds_now(integration, hold)
    }

    fn arrivals(&self) -> Option<tokio::sync::mpsc::Receiver<String>> {
        Some(self.arrivals_now())
    }

    fn release(&self, integration: &str) -> SpoolFuture<'_, ()> {
        let integration = integration.to_owned();
        Box::pin(self.bounded(self.release_now(integration)))
    }

    fn leave(&self) -> SpoolFuture<'_, ()> {
        Box::pin(self.bounded(self.leave_now()))
    }

    fn backlog_summary(&self, oldest: usize) -> SpoolFuture<'_, BacklogSummary> {
        Box::pin(self.bounded(self.backlog_summary_now(oldest)))
    }
}

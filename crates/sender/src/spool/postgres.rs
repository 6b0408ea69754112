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

use super::{
    Backlog, BacklogLimits, DeadLetter, DeadLetterPage, Hold, NewEvent, ReplayPage, Spool,
    SpoolError, SpoolFuture, SpooledEvent, action_of, from_unix_ms, page_of, unix_ms,
};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio_postgres::NoTls;
use tokio_postgres_rustls::MakeRustlsConnect;

/// Schema versions, applied in order; `spool_migrations` records which ran.
const MIGRATIONS: &[&str] = &[
    "
    CREATE TABLE spool_events (
        id BIGSERIAL PRIMARY KEY,
        integration TEXT NOT NULL,
        action TEXT NOT NULL,
        json TEXT NOT NULL,
        size BIGINT NOT NULL,
        at_unix_ms BIGINT NOT NULL
    );
    CREATE INDEX spool_events_by_integration ON spool_events (integration, id);
    CREATE TABLE spool_dead_letters (
        id BIGINT PRIMARY KEY,
        integration TEXT NOT NULL,
        json TEXT NOT NULL,
        reason TEXT NOT NULL,
        at_unix_ms BIGINT NOT NULL
    );
    CREATE INDEX spool_dead_letters_by_integration ON spool_dead_letters (integration, id);
    CREATE TABLE spool_backlogs (
        integration TEXT PRIMARY KEY,
        events BIGINT NOT NULL,
        bytes BIGINT NOT NULL
    );
    CREATE TABLE spool_leases (
        integration TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        expires_at TIMESTAMPTZ NOT NULL
    );
    CREATE TABLE spool_instances (
        holder TEXT PRIMARY KEY,
        expires_at TIMESTAMPTZ NOT NULL
    );
",
    "
    CREATE TABLE shared_integrations (
        tenant TEXT PRIMARY KEY,
        settings TEXT NOT NULL,
        seed TEXT
    );
    CREATE TABLE shared_admin_tokens (
        hash TEXT PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        label TEXT NOT NULL,
        tenant TEXT NOT NULL,
        permissions TEXT NOT NULL,
        created_unix_ms BIGINT NOT NULL
    );
    CREATE TABLE shared_version (
        one BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one),
        version BIGINT NOT NULL
    );
    INSERT INTO shared_version (version) VALUES (0);
",
    "
    ALTER TABLE shared_integrations ADD COLUMN resumes BIGINT NOT NULL DEFAULT 0;
",
    // Test Saved Webhook runs per tenant, so that its rate limit holds across the instances
    // (`SharedState::admit_test`).
    "
    CREATE TABLE shared_test_runs (
        tenant TEXT NOT NULL,
        at TIMESTAMPTZ NOT NULL DEFAULT now()
    );
    CREATE INDEX shared_test_runs_by_tenant ON shared_test_runs (tenant, at);
",
    // Dead letters get ids of their own (increasing in the order events are refused) and keep
    // the event's queue id beside them. Keyed by the event id with `ON CONFLICT DO NOTHING`, a
    // dead letter whose id met an earlier one (a sequence restarted by a restore) left the
    // queue without a record. Existing rows keep their ids; the sequence continues above them.
    "
    ALTER TABLE spool_dead_letters ADD COLUMN event_id BIGINT;
    UPDATE spool_dead_letters SET event_id = id;
    ALTER TABLE spool_dead_letters ALTER COLUMN event_id SET NOT NULL;
    CREATE SEQUENCE spool_dead_letters_id_seq OWNED BY spool_dead_letters.id;
    SELECT setval('spool_dead_letters_id_seq',
                  coalesce((SELECT max(id) FROM spool_dead_letters), 0) + 1, false);
    ALTER TABLE spool_dead_letters
        ALTER COLUMN id SET DEFAULT nextval('spool_dead_letters_id_seq');
",
];

/// Serialises migrations between instances starting at once (an arbitrary, fixed key).
const MIGRATION_LOCK: i64 = 0x6576_6f5f_7370_6f6f;
/// The class of the advisory locks serialising an integration's replays (with the hash of its
/// name); two-key locks never meet the one-key migration lock.
const REPLAY_LOCK: i32 = 0x6576_6f72;

/// How to reach PostgreSQL and how to share it.
#[derive(Clone)]
pub struct PostgresOptions {
    /// The connection string: a `postgres://` URL or libpq `key=value` pairs. It may hold a
    /// password, so it is never logged or shown in `Debug`.
    pub url: String,
    /// Connections in the pool. Default: 8.
    pub pool_size: usize,
    /// How long a lease lasts unless renewed. Default: 10 s. An instance that dies holds its
    /// integrations for at most this long.
    pub lease_ttl: Duration,
    /// Bound on every statement and on waiting for a connection. Default: 10 s.
    pub timeout: Duration,
    /// This instance's name in the lease table. Default: a fresh random one per start, so that a
    /// restarted instance never mistakes its predecessor's leases for its own.
    pub instance: String,
}

impl PostgresOptions {
    /// Options with the defaults, for `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            pool_size: 8,
            lease_ttl: Duration::from_secs(10),
            timeout: Duration::from_secs(10),
            instance: format!("sender-{}", uuid::Uuid::new_v4().simple()),
        }
    }
}

impl fmt::Debug for PostgresOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresOptions")
            .field("url", &"<redacted>")
            .field("pool_size", &self.pool_size)
            .field("lease_ttl", &self.lease_ttl)
            .field("timeout", &self.timeout)
            .field("instance", &self.instance)
            .finish()
    }
}

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

/// This instance's leases, kept by [`Spool::keep_leases`] and read by [`Spool::holds`].
#[derive(Debug, Default)]
struct LeaseBook {
    /// Each held lease and until when it counts as held here: the instant its last renewal was
    /// sent, plus its life, minus a margin.
    held: HashMap<String, Instant>,
    /// Leases beyond this instance's share, to give up between batches.
    surplus: usize,
    /// Leases given up between batches, deleted at the next round.
    given_up: Vec<String>,
}

/// The connection settings of the `LISTEN` connection.
struct ListenerConfig {
    config: tokio_postgres::Config,
    tls: Option<MakeRustlsConnect>,
}

/// The channel on which appends announce the integration they queued events for.
const ARRIVALS: &str = "evo_siem_arrivals";

impl fmt::Debug for PostgresSpool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresSpool")
            .field("instance", &self.instance)
            .field("lease_ttl", &self.lease_ttl)
            .finish_non_exhaustive()
    }
}

/// A database error as a storage error. tokio-postgres errors carry the server's message and
/// never the connection string.
fn storage(err: impl fmt::Display) -> SpoolError {
    SpoolError::Storage(err.to_string())
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
        // libpq's `verify-ca` and `verify-full` are not in tokio-postgres's vocabulary: both
        // are `require` here, which verifies the certificate and the host name.
        let url = options
            .url
            .replace("sslmode=verify-full", "sslmode=require")
            .replace("sslmode=verify-ca", "sslmode=require");
        let mut config: tokio_postgres::Config = url.parse().map_err(|_| {
            SpoolError::Storage("the PostgreSQL connection string is invalid".into())
        })?;
        config.connect_timeout(options.timeout);
        if config.get_application_name().is_none() {
            config.application_name("evo-siem-sender");
        }
        let manager_config = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        // `require` (and `verify-ca`, `verify-full`): TLS, with the server's certificate and
        // host name verified against the system's roots. `prefer` (the default, as in libpq):
        // TLS when the server offers it, without verifying the certificate, which keeps the
        // traffic from passive eavesdroppers but not from an active attacker (use
        // `verify-full` for that); plain when the server has no TLS. `disable`: plain.
        let tls = match config.get_ssl_mode() {
            tokio_postgres::config::SslMode::Require => Some(MakeRustlsConnect::new(tls_config()?)),
            tokio_postgres::config::SslMode::Prefer => {
                Some(MakeRustlsConnect::new(unverified_tls_config()?))
            }
            _ => None,
        };
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
            .map_err(storage)?;
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
            .map_err(|_| SpoolError::Storage("PostgreSQL did not answer in time".into()))?
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, SpoolError> {
        self.pool.get().await.map_err(|e| match e {
            deadpool_postgres::PoolError::Backend(e) => db(e),
            other => storage(other),
        })
    }

    /// Applies the migrations not yet applied, all in one transaction under an advisory lock:
    /// an instance starting at the same time waits, then finds them applied.
    async fn migrate(&self) -> Result<(), SpoolError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(db)?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS spool_migrations (
                version INTEGER PRIMARY KEY,
                applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
            )",
        )
        .await
        .map_err(db)?;
        let done: i32 = tx
            .query_one(
                "SELECT coalesce(max(version), 0) FROM spool_migrations",
                &[],
            )
            .await
            .map_err(db)?
            .get(0);
        for (index, sql) in MIGRATIONS.iter().enumerate() {
            let version = i32::try_from(index + 1).map_err(storage)?;
            if version <= done {
                continue;
            }
            tx.batch_execute(sql).await.map_err(db)?;
            tx.execute(
                "INSERT INTO spool_migrations (version) VALUES ($1)",
                &[&version],
            )
            .await
            .map_err(db)?;
            tracing::info!(version, "spool schema migrated");
        }
        tx.commit().await.map_err(db)
    }

    async fn append_now(
        &self,
        integration: String,
        events: Vec<NewEvent>,
    ) -> Result<(), SpoolError> {
        let count = i64::try_from(events.len()).map_err(storage)?;
        let sizes: Vec<i64> = events.iter().map(|e| e.json.len() as i64).collect();
        let bytes: i64 = sizes.iter().sum();
        let (max_events, max_bytes) = (
            i64::try_from(self.limits.max_events).unwrap_or(i64::MAX),
            i64::try_from(self.limits.max_bytes).unwrap_or(i64::MAX),
        );
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db)?;
        // The bound check and the count update in one statement: the row lock it takes orders
        // concurrent appends to one integration across instances.
        let room = if count > max_events || bytes > max_bytes {
            None
        } else {
            tx.query_opt(
                "INSERT INTO spool_backlogs (integration, events, bytes) VALUES ($1, $2, $3)
                 ON CONFLICT (integration) DO UPDATE
                    SET events = spool_backlogs.events + EXCLUDED.events,
                        bytes = spool_backlogs.bytes + EXCLUDED.bytes
                    WHERE spool_backlogs.events + EXCLUDED.events <= $4
                      AND spool_backlogs.bytes + EXCLUDED.bytes <= $5
                 RETURNING events",
                &[&integration, &count, &bytes, &max_events, &max_bytes],
            )
            .await
            .map_err(db)?
        };
        if room.is_none() {
            let backlog = backlog_of(&tx, &integration).await?;
            return Err(SpoolError::Full {
                backlog_events: backlog.events,
                backlog_bytes: backlog.bytes,
                retry_after: Duration::from_secs(5),
            });
        }
        let (actions, jsons): (Vec<String>, Vec<String>) =
            events.into_iter().map(|e| (e.action, e.json)).unzip();
        insert_events(&tx, &integration, &actions, &jsons, &sizes).await?;
        notify(&tx, &integration).await?;
        tx.commit().await.map_err(db)
    }

    async fn pending_now(
        &self,
        integration: String,
        limit: usize,
    ) -> Result<Vec<SpooledEvent>, SpoolError> {
        let client = self.client().await?;
        let select = client
            .prepare_cached(
                "SELECT e.id, e.action, e.json FROM spool_events e
                 WHERE e.integration = $1
                   AND EXISTS (SELECT 1 FROM spool_leases l
                               WHERE l.integration = $1 AND l.holder = $3 AND l.expires_at > now())
                 ORDER BY e.id LIMIT $2",
            )
            .await
            .map_err(db)?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = client
            .query(&select, &[&integration, &limit, &self.instance])
            .await
            .map_err(db)?;
        Ok(rows
            .iter()
            .map(|r| SpooledEvent {
                id: r.get(0),
                action: r.get(1),
                json: r.get(2),
            })
            .collect())
    }

    async fn ack_now(&self, integration: String, ids: Vec<i64>) -> Result<(), SpoolError> {
        let client = self.client().await?;
        // Fenced: only while this instance holds the lease, checked in the same statement, so
        // an instance that lost it deletes nothing of the new holder's.
        let ack = client
            .prepare_cached(
                "WITH lease AS (
                    SELECT 1 FROM spool_leases
                    WHERE integration = $1 AND holder = $3 AND expires_at > now()
                 ), gone AS (
                    DELETE FROM spool_events
                    WHERE integration = $1 AND id = ANY($2) AND EXISTS (SELECT 1 FROM lease)
                    RETURNING size
                 ), counted AS (
                    UPDATE spool_backlogs
                       SET events = events - (SELECT count(*) FROM gone),
                           bytes = bytes - (SELECT coalesce(sum(size), 0) FROM gone)
                    WHERE integration = $1
                 )
                 SELECT EXISTS (SELECT 1 FROM lease)",
            )
            .await
            .map_err(db)?;
        let held: bool = client
            .query_one(&ack, &[&integration, &ids, &self.instance])
            .await
            .map_err(db)?
            .get(0);
        if held {
            Ok(())
        } else {
            self.forget(&integration);
            Err(SpoolError::LeaseLost)
        }
    }

    /// Drops a lease from this instance's book (the database says it is not held).
    fn forget(&self, integration: &str) {
        self.book().held.remove(integration);
    }

    fn book(&self) -> std::sync::MutexGuard<'_, LeaseBook> {
        self.leases
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn dead_letter_now(
        &self,
        integration: String,
        id: i64,
        reason: String,
    ) -> Result<(), SpoolError> {
        let client = self.client().await?;
        let held: bool = client
            .query_one(
                "WITH lease AS (
                    SELECT 1 FROM spool_leases
                    WHERE integration = $1 AND holder = $5 AND expires_at > now()
                 ), gone AS (
                    DELETE FROM spool_events
                    WHERE integration = $1 AND id = $2 AND EXISTS (SELECT 1 FROM lease)
                    RETURNING id, json, size
                 ), kept AS (
                    INSERT INTO spool_dead_letters (event_id, integration, json, reason, at_unix_ms)
                    SELECT id, $1, json, $3, $4 FROM gone
                    ON CONFLICT (id) DO NOTHING
                 ), counted AS (
                    UPDATE spool_backlogs
                       SET events = events - (SELECT count(*) FROM gone),
                           bytes = bytes - (SELECT coalesce(sum(size), 0) FROM gone)
                    WHERE integration = $1
                 )
                 SELECT EXISTS (SELECT 1 FROM lease)",
                &[
                    &integration,
                    &id,
                    &reason,
                    &unix_ms(SystemTime::now()),
                    &self.instance,
                ],
            )
            .await
            .map_err(db)?
            .get(0);
        if held {
            Ok(())
        } else {
            self.forget(&integration);
            Err(SpoolError::LeaseLost)
        }
    }

    async fn dead_letters_now(
        &self,
        integration: String,
        after: Option<i64>,
        limit: usize,
    ) -> Result<DeadLetterPage, SpoolError> {
        let client = self.client().await?;
        // One more than the page: whether a next page exists, without a count.
        let rows = client
            .query(
                "SELECT id, event_id, json, reason, at_unix_ms FROM spool_dead_letters
                 WHERE integration = $1 AND id > $2 ORDER BY id LIMIT $3",
                &[
                    &integration,
                    &after.unwrap_or(i64::MIN),
                    &i64::try_from(limit).unwrap_or(i64::MAX).saturating_add(1),
                ],
            )
            .await
            .map_err(db)?;
        let letters = rows
            .iter()
            .map(|r| DeadLetter {
                id: r.get(0),
                event_id: r.get(1),
                json: r.get(2),
                reason: r.get(3),
                at: from_unix_ms(r.get(4)).unwrap_or(UNIX_EPOCH),
            })
            .collect();
        Ok(page_of(letters, limit))
    }

    async fn dead_letter_count_now(&self, integration: String) -> Result<u64, SpoolError> {
        let client = self.client().await?;
        let count: i64 = client
            .query_one(
                "SELECT count(*) FROM spool_dead_letters WHERE integration = $1",
                &[&integration],
            )
            .await
            .map_err(db)?
            .get(0);
        Ok(u64::try_from(count).unwrap_or(0))
    }

    async fn oldest_now(&self, integration: String) -> Result<Option<SystemTime>, SpoolError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT at_unix_ms FROM spool_events WHERE integration = $1 ORDER BY id LIMIT 1",
                &[&integration],
            )
            .await
            .map_err(db)?;
        Ok(row.and_then(|r| from_unix_ms(r.get(0))))
    }

    async fn replay_now(&self, integration: String, ids: Vec<i64>) -> Result<u64, SpoolError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db)?;
        lock_replays(&tx, &integration).await?;
        let letters = tx
            .query(
                "DELETE FROM spool_dead_letters WHERE integration = $1 AND id = ANY($2)
                 RETURNING id, json",
                &[&integration, &ids],
            )
            .await
            .map_err(db)?;
        let moved = requeue(&tx, &integration, &letters).await?;
        tx.commit().await.map_err(db)?;
        Ok(moved)
    }

    async fn replay_page_now(
        &self,
        integration: String,
        through: Option<i64>,
        limit: usize,
    ) -> Result<ReplayPage, SpoolError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db)?;
        lock_replays(&tx, &integration).await?;
        let through: Option<i64> = match through {
            Some(through) => Some(through),
            None => tx
                .query_one(
                    "SELECT max(id) FROM spool_dead_letters WHERE integration = $1",
                    &[&integration],
                )
                .await
                .map_err(db)?
                .get(0),
        };
        let Some(bound) = through else {
            return Ok(ReplayPage::default());
        };
        let letters = tx
            .query(
                "WITH page AS (
                    SELECT id FROM spool_dead_letters
                    WHERE integration = $1 AND id <= $2 ORDER BY id LIMIT $3
                 )
                 DELETE FROM spool_dead_letters d USING page WHERE d.id = page.id
                 RETURNING d.id, d.json",
                &[
                    &integration,
                    &bound,
                    &i64::try_from(limit).unwrap_or(i64::MAX),
                ],
            )
            .await
            .map_err(db)?;
        let moved = requeue(&tx, &integration, &letters).await?;
        tx.commit().await.map_err(db)?;
        Ok(ReplayPage { moved, through })
    }

    /// One round of the lease keeper (see [`Spool::keep_leases`]).
    async fn keep_leases_now(&self) -> Result<Vec<String>, SpoolError> {
        let ttl = self.lease_ttl.as_secs_f64();
        // Counted from before the statement: the database's expiry is later than this.
        let sent = Instant::now();
        let given_up = std::mem::take(&mut self.book().given_up);
        let client = self.client().await?;
        // The heartbeat, the leases given up between batches, and the renewal of the others,
        // in one statement.
        let renewed = client
            .query(
                "WITH beat AS (
                    INSERT INTO spool_instances (holder, expires_at)
                    VALUES ($1, now() + make_interval(secs => $2))
                    ON CONFLICT (holder) DO UPDATE SET expires_at = EXCLUDED.expires_at
                 ), gone AS (
                    DELETE FROM spool_leases WHERE holder = $1 AND integration = ANY($3)
                 )
                 UPDATE spool_leases SET expires_at = now() + make_interval(secs => $2)
                 WHERE holder = $1 AND NOT (integration = ANY($3))
                 RETURNING integration",
                &[&self.instance, &ttl, &given_up],
            )
            .await
            .map_err(db)?;
        for tenant in &given_up {
            tracing::info!(
                tenant,
                instance = self.instance,
                "lease handed over to spread integrations"
            );
        }
        let mut held: HashMap<String, Instant> = renewed
            .iter()
            .map(|r| (r.get::<_, String>(0), sent + self.lease_ttl - self.margin()))
            .collect();
        // This instance's share: the integrations that have a lease or events, over the
        // instances alive.
        let counts = client
            .query_one(
                "SELECT
                    (SELECT count(*) FROM spool_instances WHERE expires_at > now()),
                    (SELECT count(*) FROM (
                        SELECT integration FROM spool_leases
                        UNION SELECT integration FROM spool_backlogs WHERE events > 0) AS wanted)",
                &[],
            )
            .await
            .map_err(db)?;
        let (alive, wanted): (i64, i64) = (counts.get(0), counts.get(1));
        let share = usize::try_from((wanted + alive.max(1) - 1) / alive.max(1)).unwrap_or(0);
        let mut taken = Vec::new();
        if held.len() < share {
            let room = i64::try_from(share - held.len()).unwrap_or(0);
            let rows = client
                .query(
                    "INSERT INTO spool_leases (integration, holder, expires_at)
                     SELECT b.integration, $1, now() + make_interval(secs => $2)
                     FROM spool_backlogs b LEFT JOIN spool_leases l USING (integration)
                     WHERE b.events > 0 AND (l.integration IS NULL OR l.expires_at <= now())
                     ORDER BY random() LIMIT $3
                     ON CONFLICT (integration) DO UPDATE
                        SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at
                        WHERE spool_leases.expires_at <= now()
                     RETURNING integration",
                    &[&self.instance, &ttl, &room],
                )
                .await
                .map_err(db)?;
            for row in rows {
                let tenant: String = row.get(0);
                held.insert(tenant.clone(), sent + self.lease_ttl - self.margin());
                taken.push(tenant);
            }
        }
        let mut surplus = held.len().saturating_sub(share);
        if surplus > 0 {
            // Leases of integrations with nothing queued go at once; busy ones between batches.
            let surplus_i64 = i64::try_from(surplus).unwrap_or(0);
            let released = client
                .query(
                    "DELETE FROM spool_leases WHERE holder = $1 AND integration IN (
                        SELECT l.integration FROM spool_leases l
                        LEFT JOIN spool_backlogs b USING (integration)
                        WHERE l.holder = $1 AND coalesce(b.events, 0) = 0
                        LIMIT $2)
                     RETURNING integration",
                    &[&self.instance, &surplus_i64],
                )
                .await
                .map_err(db)?;
            for row in released {
                held.remove(&row.get::<_, String>(0));
                surplus -= 1;
            }
        }
        let mut book = self.book();
        for tenant in book.held.keys() {
            if !held.contains_key(tenant) && !given_up.contains(tenant) {
                tracing::warn!(tenant, instance = self.instance, "lease lost");
            }
        }
        book.held = held;
        book.surplus = surplus;
        drop(book);
        for tenant in &taken {
            tracing::info!(tenant, instance = self.instance, "lease taken");
        }
        Ok(taken)
    }

    /// Takes `integration`'s lease now if it is free (or already this instance's), whatever
    /// this instance's share; resolves to whether it holds it. For tests and tools: the lease
    /// keeper takes leases by itself.
    pub async fn take_lease(&self, integration: &str) -> Result<bool, SpoolError> {
        let ttl = self.lease_ttl.as_secs_f64();
        let sent = Instant::now();
        let taken = self
            .bounded(async {
                let client = self.client().await?;
                client
                    .query_opt(
                        "INSERT INTO spool_leases (integration, holder, expires_at)
                         VALUES ($1, $2, now() + make_interval(secs => $3))
                         ON CONFLICT (integration) DO UPDATE
                            SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at
                            WHERE spool_leases.holder = EXCLUDED.holder
                               OR spool_leases.expires_at <= now()
                         RETURNING holder",
                        &[&integration, &self.instance, &ttl],
                    )
                    .await
                    .map_err(db)
            })
            .await?
            .is_some();
        if taken {
            self.book().held.insert(
                integration.to_owned(),
                sent + self.lease_ttl - self.margin(),
            );
        }
        Ok(taken)
    }

    /// How long before a lease expires this instance stops counting it as held: room for a
    /// clock that runs a little fast and a statement that took long.
    fn margin(&self) -> Duration {
        self.lease_ttl / 5
    }

    fn holds_now(&self, integration: &str, hold: Hold) -> bool {
        let mut book = self.book();
        let held = book
            .held
            .get(integration)
            .is_some_and(|until| Instant::now() < *until);
        if held && hold == Hold::Next && book.surplus > 0 {
            book.surplus -= 1;
            book.held.remove(integration);
            book.given_up.push(integration.to_owned());
            return false;
        }
        held
    }

    async fn release_now(&self, integration: String) -> Result<(), SpoolError> {
        self.forget(&integration);
        let client = self.client().await?;
        client
            .execute(
                "DELETE FROM spool_leases WHERE integration = $1 AND holder = $2",
                &[&integration, &self.instance],
            )
            .await
            .map_err(db)?;
        Ok(())
    }
}

/// Announces, on commit, that `integration` has new events (see [`Spool::arrivals`]).
async fn notify(
    tx: &deadpool_postgres::Transaction<'_>,
    integration: &str,
) -> Result<(), SpoolError> {
    tx.execute("SELECT pg_notify($1, $2)", &[&ARRIVALS, &integration])
        .await
        .map_err(db)?;
    Ok(())
}

/// Keeps a `LISTEN` connection open and forwards each announced integration to `tx`, until the
/// receiver is dropped; reconnects after a failure. A notification that does not fit in `tx` is
/// dropped: the scheduler's periodic look at the queues finds its events anyway.
async fn listen(config: Arc<ListenerConfig>, tx: tokio::sync::mpsc::Sender<String>) {
    while !tx.is_closed() {
        let result = match &config.tls {
            Some(tls) => match config.config.connect(tls.clone()).await {
                Ok((client, connection)) => forward(client, connection, &tx).await,
                Err(err) => Err(err),
            },
            None => match config.config.connect(NoTls).await {
                Ok((client, connection)) => forward(client, connection, &tx).await,
                Err(err) => Err(err),
            },
        };
        if let Err(err) = result {
            tracing::warn!(error = %describe(&err), "the LISTEN connection failed; reconnecting");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Drives one `LISTEN` connection until it closes, the receiver is dropped, or it fails.
async fn forward<S, T>(
    client: tokio_postgres::Client,
    mut connection: tokio_postgres::Connection<S, T>,
    tx: &tokio::sync::mpsc::Sender<String>,
) -> Result<(), tokio_postgres::Error>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let statement = format!("LISTEN {ARRIVALS}");
    let listening = client.batch_execute(&statement);
    let mut listening = std::pin::pin!(listening);
    let mut listened = false;
    let mut check = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            done = &mut listening, if !listened => {
                done?;
                listened = true;
            }
            message = std::future::poll_fn(|cx| connection.poll_message(cx)) => match message {
                Some(Ok(tokio_postgres::AsyncMessage::Notification(n))) => {
                    let _ = tx.try_send(n.payload().to_owned());
                }
                Some(Ok(_)) => {}
                Some(Err(err)) => return Err(err),
                None => return Ok(()),
            },
            _ = check.tick() => if tx.is_closed() {
                return Ok(());
            },
        }
    }
}

/// Serialises the replays of one integration (across instances) for the rest of `tx`, so that
/// two replays at once move pages one after the other and the queue keeps the refusal order.
async fn lock_replays(
    tx: &deadpool_postgres::Transaction<'_>,
    integration: &str,
) -> Result<(), SpoolError> {
    tx.execute(
        "SELECT pg_advisory_xact_lock($1, hashtext($2))",
        &[&REPLAY_LOCK, &integration],
    )
    .await
    .map_err(db)?;
    Ok(())
}

/// Puts deleted dead letters (rows of `id, json`) back at the end of `integration`'s queue, in
/// the order they were refused, and counts them in its backlog. Returns how many.
async fn requeue(
    tx: &deadpool_postgres::Transaction<'_>,
    integration: &str,
    rows: &[tokio_postgres::Row],
) -> Result<u64, SpoolError> {
    let mut letters: Vec<(i64, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    // `RETURNING` promises no order.
    letters.sort_unstable_by_key(|(id, _)| *id);
    let actions: Vec<String> = letters.iter().map(|(_, json)| action_of(json)).collect();
    let sizes: Vec<i64> = letters.iter().map(|(_, json)| json.len() as i64).collect();
    let jsons: Vec<String> = letters.into_iter().map(|(_, json)| json).collect();
    let count = i64::try_from(jsons.len()).map_err(storage)?;
    if count > 0 {
        insert_events(tx, integration, &actions, &jsons, &sizes).await?;
        let bytes: i64 = sizes.iter().sum();
        tx.execute(
            "INSERT INTO spool_backlogs (integration, events, bytes) VALUES ($1, $2, $3)
             ON CONFLICT (integration) DO UPDATE
                SET events = spool_backlogs.events + EXCLUDED.events,
                    bytes = spool_backlogs.bytes + EXCLUDED.bytes",
            &[&integration, &count, &bytes],
        )
        .await
        .map_err(db)?;
    }
    Ok(count as u64)
}

/// Queues events at the end of `integration`'s queue, in the order given, in one statement.
async fn insert_events(
    tx: &deadpool_postgres::Transaction<'_>,
    integration: &str,
    actions: &[String],
    jsons: &[String],
    sizes: &[i64],
) -> Result<(), SpoolError> {
    let insert = tx
        .prepare_cached(
            "INSERT INTO spool_events (integration, action, json, size, at_unix_ms)
             SELECT $1, t.action, t.json, t.size, $5
             FROM unnest($2::text[], $3::text[], $4::int8[]) WITH ORDINALITY
                AS t(action, json, size, n)
             ORDER BY t.n",
        )
        .await
        .map_err(db)?;
    tx.execute(
        &insert,
        &[
            &integration,
            &actions,
            &jsons,
            &sizes,
            &unix_ms(SystemTime::now()),
        ],
    )
    .await
    .map_err(db)?;
    Ok(())
}

/// The TLS client settings: the platform's verifier and roots, the crypto provider the sender's
/// HTTPS client uses.
fn tls_config() -> Result<rustls::ClientConfig, SpoolError> {
    use rustls_platform_verifier::BuilderVerifierExt;
    let tls = |e: rustls::Error| SpoolError::Storage(format!("PostgreSQL TLS setup: {e}"));
    Ok(
        rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(tls)?
        .with_platform_verifier()
        .map_err(tls)?
        .with_no_client_auth(),
    )
}

/// The TLS client settings of `sslmode=prefer`: any certificate is accepted (the handshake's
/// signatures are still checked), as libpq does in this mode.
fn unverified_tls_config() -> Result<rustls::ClientConfig, SpoolError> {
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = |e: rustls::Error| SpoolError::Storage(format!("PostgreSQL TLS setup: {e}"));
    Ok(
        rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(tls)?
            .dangerous()
            .with_custom_certificate_verifier(std::sync::Arc::new(AnyCertificate(provider)))
            .with_no_client_auth(),
    )
}

/// Accepts the server's certificate whatever it is (`sslmode=prefer`), and checks that the
/// server holds its key.
#[derive(Debug)]
struct AnyCertificate(std::sync::Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

async fn backlog_of(
    client: &impl deadpool_postgres::GenericClient,
    integration: &str,
) -> Result<Backlog, SpoolError> {
    let row = client
        .query_opt(
            "SELECT events, bytes FROM spool_backlogs WHERE integration = $1",
            &[&integration],
        )
        .await
        .map_err(db)?;
    Ok(row.map_or_else(Backlog::default, |r| Backlog {
        events: u64::try_from(r.get::<_, i64>(0)).unwrap_or(0),
        bytes: u64::try_from(r.get::<_, i64>(1)).unwrap_or(0),
    }))
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
        Box::pin(self.bounded(async move {
            let client = self.client().await?;
            backlog_of(&client, &integration).await
        }))
    }

    fn queued(&self) -> SpoolFuture<'_, Vec<String>> {
        Box::pin(self.bounded(async move {
            let client = self.client().await?;
            let rows = client
                .query(
                    "SELECT integration FROM spool_backlogs WHERE events > 0",
                    &[],
                )
                .await
                .map_err(db)?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        }))
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
        let (tx, rx) = tokio::sync::mpsc::channel(1024);
        tokio::spawn(listen(self.listener.clone(), tx));
        Some(rx)
    }

    fn release(&self, integration: &str) -> SpoolFuture<'_, ()> {
        let integration = integration.to_owned();
        Box::pin(self.bounded(self.release_now(integration)))
    }

    fn leave(&self) -> SpoolFuture<'_, ()> {
        self.book().held.clear();
        Box::pin(self.bounded(async move {
            let client = self.client().await?;
            client
                .execute(
                    "WITH gone AS (DELETE FROM spool_leases WHERE holder = $1)
                     DELETE FROM spool_instances WHERE holder = $1",
                    &[&self.instance],
                )
                .await
                .map_err(db)?;
            Ok(())
        }))
    }

    fn backlog_summary(&self, oldest: usize) -> SpoolFuture<'_, super::BacklogSummary> {
        Box::pin(self.bounded(async move {
            let client = self.client().await?;
            // The counters table gives the backlogs; the oldest event of each integration with
            // a backlog is one index probe (LATERAL ... LIMIT 1), not a scan of the queue. The
            // totals ride on every row as window functions, computed before the LIMIT.
            let limit = i64::try_from(oldest.max(1)).unwrap_or(i64::MAX);
            let rows = client
                .query(
                    "SELECT b.integration, b.events, b.bytes, e.at_unix_ms,
                            count(*) OVER (), (sum(b.events) OVER ())::int8,
                            (sum(b.bytes) OVER ())::int8
                     FROM spool_backlogs b
                     CROSS JOIN LATERAL (
                         SELECT id, at_unix_ms FROM spool_events
                         WHERE integration = b.integration ORDER BY id LIMIT 1
                     ) e
                     WHERE b.events > 0
                     ORDER BY e.id LIMIT $1",
                    &[&limit],
                )
                .await
                .map_err(db)?;
            Ok(super::summary_from_rows(
                rows.iter().map(|r| {
                    (
                        r.get(0),
                        r.get(1),
                        r.get(2),
                        r.get(3),
                        r.get(4),
                        r.get(5),
                        r.get(6),
                    )
                }),
                oldest,
            ))
        }))
    }
}

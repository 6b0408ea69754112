//! The PostgreSQL schema: versioned migrations, applied at start-up.
//!
//! `spool_migrations` records which versions ran. They are applied in one transaction under an
//! advisory lock, so that instances starting together do not race: the second waits, then finds
//! them applied.

use super::{PostgresSpool, db};
use crate::spool::SpoolError;

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

impl PostgresSpool {
    /// Applies the migrations not yet applied, all in one transaction under an advisory lock:
    /// an instance starting at the same time waits, then finds them applied.
    pub(super) async fn migrate(&self) -> Result<(), SpoolError> {
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
            let version = i32::try_from(index + 1).map_err(SpoolError::OutOfRange)?;
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
}

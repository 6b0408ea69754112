//! The SQLite schema: versioned migrations, applied when the spool is opened.
//!
//! `PRAGMA user_version` records how many ran; each runs in its own transaction with the
//! version it sets, so a spool stopped half-way through an upgrade resumes where it stopped.

use crate::spool::SpoolError;
use rusqlite::Connection;

/// Schema versions, applied in order; `PRAGMA user_version` records how many ran.
const MIGRATIONS: &[&str] = &[
    "
    CREATE TABLE events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        integration TEXT NOT NULL,
        action TEXT NOT NULL,
        json TEXT NOT NULL,
        size INTEGER NOT NULL
    );
    CREATE INDEX events_by_integration ON events (integration, id);
    CREATE TABLE dead_letters (
        id INTEGER PRIMARY KEY,
        integration TEXT NOT NULL,
        json TEXT NOT NULL,
        reason TEXT NOT NULL,
        at_unix_ms INTEGER NOT NULL
    );
    CREATE INDEX dead_letters_by_integration ON dead_letters (integration, id);
",
    "
    ALTER TABLE events ADD COLUMN at_unix_ms INTEGER NOT NULL DEFAULT 0;
",
    // Dead letters get ids of their own (increasing in the order events are refused) and keep
    // the event's queue id beside them. Keyed by the event id, a dead letter whose id met an
    // earlier one (a sequence restarted by a restore) failed its insert, and with it the whole
    // group transaction, every time the worker tried again. Existing rows keep their ids, and
    // AUTOINCREMENT continues above them.
    "
    CREATE TABLE dead_letters_v3 (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        event_id INTEGER NOT NULL,
        integration TEXT NOT NULL,
        json TEXT NOT NULL,
        reason TEXT NOT NULL,
        at_unix_ms INTEGER NOT NULL
    );
    INSERT INTO dead_letters_v3 (id, event_id, integration, json, reason, at_unix_ms)
        SELECT id, id, integration, json, reason, at_unix_ms FROM dead_letters ORDER BY id;
    DROP TABLE dead_letters;
    ALTER TABLE dead_letters_v3 RENAME TO dead_letters;
    CREATE INDEX dead_letters_by_integration ON dead_letters (integration, id);
",
];

/// Applies the migrations not yet applied, each in its own transaction with the version it
/// records.
pub(super) fn migrate(conn: &mut Connection) -> Result<(), SpoolError> {
    let done: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    for (version, sql) in MIGRATIONS.iter().enumerate().skip(done as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", version as i64 + 1)?;
        tx.commit()?;
    }
    Ok(())
}

//! The backlog summary of `/metrics`, read on a connection of its own.
//!
//! It scans the whole queue (one pass, grouped by integration), so it does not go through the
//! writer thread: a read-only connection in WAL mode sees the last commit and blocks neither the
//! writer nor is blocked by it, and it runs on a blocking thread, off the async runtime.

use crate::spool::{BacklogSummary, SpoolError, summary_from_rows};
use rusqlite::{Connection, params};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// What all integrations have waiting, read from the spool file at `path` (see
/// `Spool::backlog_summary`).
pub(super) async fn backlog_summary(
    path: Arc<Path>,
    oldest: usize,
) -> Result<BacklogSummary, SpoolError> {
    tokio::task::spawn_blocking(move || {
        // WAL: this reader sees the last commit and blocks neither the writer nor it.
        let conn = Connection::open_with_flags(
            &path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(Duration::from_secs(5))?;
        // One pass over the queue grouped by integration. `at_unix_ms` next to `min(id)`
        // is SQLite's bare column: the value from the row holding the minimum, i.e. the
        // integration's oldest queued event. The totals ride on every row as window
        // functions, computed before the LIMIT.
        let mut stmt = conn.prepare(
            "SELECT integration, events, bytes, first_at,
                    count(*) OVER (), sum(events) OVER (), sum(bytes) OVER ()
             FROM (SELECT integration, count(*) AS events, sum(size) AS bytes,
                          min(id) AS first_id, at_unix_ms AS first_at
                   FROM events GROUP BY integration)
             ORDER BY first_id LIMIT ?1",
        )?;
        let limit = i64::try_from(oldest.max(1)).unwrap_or(i64::MAX);
        let rows = stmt
            .query_map(params![limit], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(summary_from_rows(rows, oldest))
    })
    .await
    .map_err(SpoolError::Join)?
}

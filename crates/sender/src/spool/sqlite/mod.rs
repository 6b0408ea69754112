//! [`SqliteSpool`]: the embedded spool, one SQLite file in WAL mode with group commit.
//!
//! One thread owns the connection. Requests arrive on a bounded channel; the thread takes every
//! request waiting (up to a bound), applies them in one transaction and commits once, so many
//! concurrent ingests share one fsync. Each caller is answered only after that commit: an append
//! that resolved is on disk (`synchronous=FULL`), and a `kill -9` at any moment loses none of
//! them. Async callers never block: they await the channel and a oneshot reply.
//!
//! The code is split by job: `schema` (the migrations), `requests` (what the handle asks the
//! writer thread and how it is answered), `writer` (the thread and its group transactions) and
//! `summary` (the `/metrics` scan, on a connection of its own). This file holds the handle,
//! [`SqliteSpool`], and its [`Spool`] implementation, which turns each call into a request.

mod requests;
mod schema;
mod summary;
mod writer;

use super::{
    Backlog, BacklogLimits, BacklogSummary, DeadLetterPage, NewEvent, ReplayPage, Spool,
    SpoolError, SpoolFuture, SpooledEvent,
};
use requests::{Op, Reply};
use rusqlite::Connection;
use std::path::Path;
use std::time::SystemTime;
use tokio::sync::{mpsc, oneshot};

/// The embedded spool: a SQLite database in a file. See the module docs for how it commits.
#[derive(Debug, Clone)]
pub struct SqliteSpool {
    ops: mpsc::Sender<Op>,
    /// The database file, for [`Spool::backlog_summary`], which reads on a connection of its
    /// own so that a scan of the whole queue never holds up the writer.
    path: std::sync::Arc<Path>,
}

impl SqliteSpool {
    /// Opens (creating if needed) the spool at `path` and starts its writer thread.
    pub fn open(path: &Path, limits: BacklogLimits) -> Result<Self, SpoolError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(SpoolError::Io)?;
        }
        let mut conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        schema::migrate(&mut conn)?;
        let ops = writer::start(conn, limits)?;
        Ok(Self {
            ops,
            path: path.into(),
        })
    }

    /// Sends a request to the writer thread and waits for its answer.
    fn call<T: Send + 'static>(
        &self,
        op: impl FnOnce(Reply<T>) -> Op + Send + 'static,
    ) -> SpoolFuture<'_, T> {
        Box::pin(async move {
            let (reply, answer) = oneshot::channel();
            self.ops
                .send(op(reply))
                .await
                .map_err(|_| SpoolError::Closed)?;
            answer.await.map_err(|_| SpoolError::Closed)?
        })
    }
}

impl Spool for SqliteSpool {
    fn append(&self, integration: &str, events: Vec<NewEvent>) -> SpoolFuture<'_, ()> {
        let integration = integration.to_owned();
        self.call(move |reply| Op::Append {
            integration,
            events,
            reply,
        })
    }

    fn pending(&self, integration: &str, limit: usize) -> SpoolFuture<'_, Vec<SpooledEvent>> {
        let integration = integration.to_owned();
        self.call(move |reply| Op::Pending {
            integration,
            limit,
            reply,
        })
    }

    fn ack(&self, integration: &str, ids: Vec<i64>) -> SpoolFuture<'_, ()> {
        let integration = integration.to_owned();
        self.call(move |reply| Op::Ack {
            integration,
            ids,
            reply,
        })
    }

    fn dead_letter(&self, integration: &str, id: i64, reason: String) -> SpoolFuture<'_, ()> {
        let integration = integration.to_owned();
        self.call(move |reply| Op::DeadLetter {
            integration,
            id,
            reason,
            reply,
        })
    }

    fn dead_letters(
        &self,
        integration: &str,
        after: Option<i64>,
        limit: usize,
    ) -> SpoolFuture<'_, DeadLetterPage> {
        let integration = integration.to_owned();
        self.call(move |reply| Op::DeadLetters {
            integration,
            after,
            limit,
            reply,
        })
    }

    fn dead_letter_count(&self, integration: &str) -> SpoolFuture<'_, u64> {
        let integration = integration.to_owned();
        self.call(move |reply| Op::DeadLetterCount { integration, reply })
    }

    fn backlog(&self, integration: &str) -> SpoolFuture<'_, Backlog> {
        let integration = integration.to_owned();
        self.call(move |reply| Op::Backlog { integration, reply })
    }

    fn queued(&self) -> SpoolFuture<'_, Vec<String>> {
        self.call(|reply| Op::Queued { reply })
    }

    fn oldest(&self, integration: &str) -> SpoolFuture<'_, Option<SystemTime>> {
        let integration = integration.to_owned();
        self.call(move |reply| Op::Oldest { integration, reply })
    }

    fn replay(&self, integration: &str, ids: Vec<i64>) -> SpoolFuture<'_, u64> {
        let integration = integration.to_owned();
        self.call(move |reply| Op::Replay {
            integration,
            ids,
            reply,
        })
    }

    fn backlog_summary(&self, oldest: usize) -> SpoolFuture<'_, BacklogSummary> {
        Box::pin(summary::backlog_summary(self.path.clone(), oldest))
    }

    /// One request to the writer thread per page: the requests queued meanwhile (other
    /// tenants' appends) are applied before the next page is even asked for.
    fn replay_page(
        &self,
        integration: &str,
        through: Option<i64>,
        limit: usize,
    ) -> SpoolFuture<'_, ReplayPage> {
        let integration = integration.to_owned();
        self.call(move |reply| Op::ReplayPage {
            integration,
            through,
            limit,
            reply,
        })
    }
}

#[cfg(test)]
mod tests;

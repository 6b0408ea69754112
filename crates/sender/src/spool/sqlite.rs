//! [`SqliteSpool`]: the embedded spool, one SQLite file in WAL mode with group commit.
//!
//! One thread owns the connection. Requests arrive on a bounded channel; the thread takes every
//! request waiting (up to a bound), applies them in one transaction and commits once, so many
//! concurrent ingests share one fsync. Each caller is answered only after that commit: an append
//! that resolved is on disk (`synchronous=FULL`), and a `kill -9` at any moment loses none of
//! them. Async callers never block: they await the channel and a oneshot reply.

use super::{
    Backlog, BacklogLimits, DeadLetter, DeadLetterPage, NewEvent, ReplayPage, Spool, SpoolError,
    SpoolFuture, SpooledEvent, action_of, from_unix_ms, page_of, unix_ms,
};
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, oneshot};

/// Requests waiting for the writer, at most; callers wait for room (backpressure).
const QUEUE_BOUND: usize = 4096;
/// Requests applied in one transaction, at most.
const GROUP_BOUND: usize = 1024;

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

type Reply<T> = oneshot::Sender<Result<T, SpoolError>>;

enum Op {
    Append {
        integration: String,
        events: Vec<NewEvent>,
        reply: Reply<()>,
    },
    Pending {
        integration: String,
        limit: usize,
        reply: Reply<Vec<SpooledEvent>>,
    },
    Ack {
        integration: String,
        ids: Vec<i64>,
        reply: Reply<()>,
    },
    DeadLetter {
        integration: String,
        id: i64,
        reason: String,
        reply: Reply<()>,
    },
    DeadLetters {
        integration: String,
        after: Option<i64>,
        limit: usize,
        reply: Reply<DeadLetterPage>,
    },
    DeadLetterCount {
        integration: String,
        reply: Reply<u64>,
    },
    Backlog {
        integration: String,
        reply: Reply<Backlog>,
    },
    Oldest {
        integration: String,
        reply: Reply<Option<SystemTime>>,
    },
    Queued {
        reply: Reply<Vec<String>>,
    },
    Replay {
        integration: String,
        ids: Vec<i64>,
        reply: Reply<u64>,
    },
    ReplayPage {
        integration: String,
        through: Option<i64>,
        limit: usize,
        reply: Reply<ReplayPage>,
    },
}

impl Op {
    /// The integration whose backlog the request may change.
    fn integration(&self) -> Option<&str> {
        match self {
            Op::Append { integration, .. }
            | Op::Ack { integration, .. }
            | Op::DeadLetter { integration, .. }
            | Op::Replay { integration, .. }
            | Op::ReplayPage { integration, .. } => Some(integration),
            _ => None,
        }
    }
}

/// The embedded spool: a SQLite database in a file. See the module docs for how it commits.
#[derive(Debug, Clone)]
pub struct SqliteSpool {
    ops: mpsc::Sender<Op>,
    /// The database file, for [`Spool::backlog_summary`], which reads on a connection of its
    /// own so that a scan of the whole queue never holds up the writer.
    path: std::sync::Arc<Path>,
}

fn storage(err: impl std::fmt::Display) -> SpoolError {
    SpoolError::Storage(err.to_string())
}

impl SqliteSpool {
    /// Opens (creating if needed) the spool at `path` and starts its writer thread.
    pub fn open(path: &Path, limits: BacklogLimits) -> Result<Self, SpoolError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(storage)?;
        }
        let mut conn = Connection::open(path).map_err(storage)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(storage)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(storage)?;
        migrate(&mut conn)?;
        let backlogs = load_backlogs(&conn)?;
        let (ops, rx) = mpsc::channel(QUEUE_BOUND);
        std::thread::Builder::new()
            .name("evo-siem-spool".into())
            .spawn(move || {
                Writer {
                    conn,
                    limits,
                    backlogs,
                }
                .run(rx);
            })
            .map_err(storage)?;
        Ok(Self {
            ops,
            path: path.into(),
        })
    }

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

fn migrate(conn: &mut Connection) -> Result<(), SpoolError> {
    let done: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(storage)?;
    for (version, sql) in MIGRATIONS.iter().enumerate().skip(done as usize) {
        let tx = conn.transaction().map_err(storage)?;
        tx.execute_batch(sql).map_err(storage)?;
        tx.pragma_update(None, "user_version", version as i64 + 1)
            .map_err(storage)?;
        tx.commit().map_err(storage)?;
    }
    Ok(())
}

fn load_backlogs(conn: &Connection) -> Result<HashMap<String, Backlog>, SpoolError> {
    let mut stmt = conn
        .prepare("SELECT integration, count(*), sum(size) FROM events GROUP BY integration")
        .map_err(storage)?;
    let rows = stmt
        .query_map([], |r| {
            let (events, bytes): (i64, i64) = (r.get(1)?, r.get(2)?);
            Ok((
                r.get::<_, String>(0)?,
                Backlog {
                    events: events as u64,
                    bytes: bytes as u64,
                },
            ))
        })
        .map_err(storage)?;
    rows.collect::<Result<_, _>>().map_err(storage)
}

struct Writer {
    conn: Connection,
    limits: BacklogLimits,
    backlogs: HashMap<String, Backlog>,
}

/// A reply to send once the transaction is committed.
enum Deferred {
    Unit(Reply<()>),
    Events(Reply<Vec<SpooledEvent>>, Vec<SpooledEvent>),
    Dead(Reply<DeadLetterPage>, DeadLetterPage),
    Replayed(Reply<ReplayPage>, ReplayPage),
    Backlog(Reply<Backlog>, Backlog),
    Oldest(Reply<Option<SystemTime>>, Option<SystemTime>),
    Count(Reply<u64>, u64),
    Names(Reply<Vec<String>>, Vec<String>),
}

impl Deferred {
    fn send(self, failure: Option<&str>) {
        let err = || SpoolError::Storage(failure.unwrap_or_default().to_owned());
        // A caller that went away no longer needs its answer.
        let _ = match (self, failure) {
            (Deferred::Unit(r), None) => r.send(Ok(())).map_err(drop),
            (Deferred::Unit(r), Some(_)) => r.send(Err(err())).map_err(drop),
            (Deferred::Events(r, v), None) => r.send(Ok(v)).map_err(drop),
            (Deferred::Events(r, _), Some(_)) => r.send(Err(err())).map_err(drop),
            (Deferred::Dead(r, v), None) => r.send(Ok(v)).map_err(drop),
            (Deferred::Dead(r, _), Some(_)) => r.send(Err(err())).map_err(drop),
            (Deferred::Backlog(r, v), None) => r.send(Ok(v)).map_err(drop),
            (Deferred::Backlog(r, _), Some(_)) => r.send(Err(err())).map_err(drop),
            (Deferred::Oldest(r, v), None) => r.send(Ok(v)).map_err(drop),
            (Deferred::Oldest(r, _), Some(_)) => r.send(Err(err())).map_err(drop),
            (Deferred::Count(r, v), None) => r.send(Ok(v)).map_err(drop),
            (Deferred::Count(r, _), Some(_)) => r.send(Err(err())).map_err(drop),
            (Deferred::Replayed(r, v), None) => r.send(Ok(v)).map_err(drop),
            (Deferred::Replayed(r, _), Some(_)) => r.send(Err(err())).map_err(drop),
            (Deferred::Names(r, v), None) => r.send(Ok(v)).map_err(drop),
            (Deferred::Names(r, _), Some(_)) => r.send(Err(err())).map_err(drop),
        };
    }
}

impl Writer {
    fn run(mut self, mut rx: mpsc::Receiver<Op>) {
        let mut group = Vec::with_capacity(GROUP_BOUND);
        while let Some(first) = rx.blocking_recv() {
            group.push(first);
            while group.len() < GROUP_BOUND {
                match rx.try_recv() {
                    Ok(op) => group.push(op),
                    Err(_) => break,
                }
            }
            self.apply(&mut group);
        }
    }

    /// Applies a group of requests in one transaction and answers them after the commit.
    ///
    /// Only appends need the commit on disk before answering. Losing an acknowledgement or a
    /// dead-letter move to a power cut means the events are sent again, which at-least-once
    /// allows; so a group without appends commits without waiting for an fsync.
    fn apply(&mut self, group: &mut Vec<Op>) {
        let durable = group.iter().any(|op| {
            matches!(
                op,
                Op::Append { .. } | Op::Replay { .. } | Op::ReplayPage { .. }
            )
        });
        let level = if durable { "FULL" } else { "NORMAL" };
        if let Err(err) = self.conn.pragma_update(None, "synchronous", level) {
            // Never acknowledge an append without knowing it will be on disk.
            tracing::error!(error = %err, "cannot set the spool's synchronous level");
            let message = err.to_string();
            for op in group.drain(..) {
                fail(op, &message);
            }
            return;
        }
        // What a failed transaction must restore: the backlogs of the integrations this group
        // touches only, so that a write costs the same with ten integrations or ten thousand.
        let before: Vec<(String, Option<Backlog>)> = group
            .iter()
            .filter_map(Op::integration)
            .collect::<std::collections::HashSet<&str>>()
            .into_iter()
            .map(|name| (name.to_owned(), self.backlogs.get(name).copied()))
            .collect();
        let mut deferred = Vec::with_capacity(group.len());
        let result = (|| -> rusqlite::Result<()> {
            let tx = self.conn.transaction()?;
            for op in group.drain(..) {
                match op {
                    Op::Append {
                        integration,
                        events,
                        reply,
                    } => {
                        let backlog = self.backlogs.entry(integration.clone()).or_default();
                        let bytes: u64 = events.iter().map(|e| e.json.len() as u64).sum();
                        if backlog.events + events.len() as u64 > self.limits.max_events
                            || backlog.bytes + bytes > self.limits.max_bytes
                        {
                            let _ = reply.send(Err(SpoolError::Full {
                                backlog_events: backlog.events,
                                backlog_bytes: backlog.bytes,
                                retry_after: Duration::from_secs(5),
                            }));
                            continue;
                        }
                        let mut insert = tx.prepare_cached(
                            "INSERT INTO events (integration, action, json, size, at_unix_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
                        )?;
                        let at = unix_ms(SystemTime::now());
                        for event in &events {
                            insert.execute(params![
                                integration,
                                event.action,
                                event.json,
                                event.json.len() as i64,
                                at
                            ])?;
                        }
                        backlog.events += events.len() as u64;
                        backlog.bytes += bytes;
                        deferred.push(Deferred::Unit(reply));
                    }
                    Op::Pending {
                        integration,
                        limit,
                        reply,
                    } => {
                        let mut select = tx.prepare_cached(
                            "SELECT id, action, json FROM events WHERE integration = ?1 ORDER BY id LIMIT ?2",
                        )?;
                        let rows = select.query_map(params![integration, limit as i64], |r| {
                            Ok(SpooledEvent {
                                id: r.get(0)?,
                                action: r.get(1)?,
                                json: r.get(2)?,
                            })
                        })?;
                        deferred.push(Deferred::Events(reply, rows.collect::<Result<_, _>>()?));
                    }
                    Op::Ack {
                        integration,
                        ids,
                        reply,
                    } => {
                        for id in ids {
                            remove_event(&tx, &mut self.backlogs, &integration, id)?;
                        }
                        deferred.push(Deferred::Unit(reply));
                    }
                    Op::DeadLetter {
                        integration,
                        id,
                        reason,
                        reply,
                    } => {
                        let at = unix_ms(SystemTime::now());
                        tx.prepare_cached(
                            "INSERT INTO dead_letters (event_id, integration, json, reason, at_unix_ms)
                             SELECT id, integration, json, ?3, ?4 FROM events WHERE integration = ?1 AND id = ?2",
                        )?
                        .execute(params![integration, id, reason, at])?;
                        remove_event(&tx, &mut self.backlogs, &integration, id)?;
                        deferred.push(Deferred::Unit(reply));
                    }
                    Op::DeadLetters {
                        integration,
                        after,
                        limit,
                        reply,
                    } => {
                        // One more than the page: whether a next page exists, without a count.
                        let mut select = tx.prepare_cached(
                            "SELECT id, event_id, json, reason, at_unix_ms FROM dead_letters
                             WHERE integration = ?1 AND id > ?2 ORDER BY id LIMIT ?3",
                        )?;
                        let rows = select.query_map(
                            params![
                                integration,
                                after.unwrap_or(i64::MIN),
                                (limit as i64).saturating_add(1)
                            ],
                            |r| {
                                Ok(DeadLetter {
                                    id: r.get(0)?,
                                    event_id: r.get(1)?,
                                    json: r.get(2)?,
                                    reason: r.get(3)?,
                                    at: from_unix_ms(r.get(4)?).unwrap_or(UNIX_EPOCH),
                                })
                            },
                        )?;
                        let letters = rows.collect::<Result<Vec<_>, _>>()?;
                        deferred.push(Deferred::Dead(reply, page_of(letters, limit)));
                    }
                    Op::DeadLetterCount { integration, reply } => {
                        let count: i64 = tx
                            .prepare_cached(
                                "SELECT count(*) FROM dead_letters WHERE integration = ?1",
                            )?
                            .query_row(params![integration], |r| r.get(0))?;
                        deferred.push(Deferred::Count(reply, count as u64));
                    }
                    Op::Backlog { integration, reply } => {
                        let backlog = self.backlogs.get(&integration).copied().unwrap_or_default();
                        deferred.push(Deferred::Backlog(reply, backlog));
                    }
                    Op::Queued { reply } => {
                        // The writer keeps every backlog in memory: no statement needed.
                        let names = self
                            .backlogs
                            .iter()
                            .filter(|(_, b)| b.events > 0)
                            .map(|(name, _)| name.clone())
                            .collect();
                        deferred.push(Deferred::Names(reply, names));
                    }
                    Op::Oldest { integration, reply } => {
                        let at: Option<i64> = tx
                            .prepare_cached(
                                "SELECT at_unix_ms FROM events WHERE integration = ?1 ORDER BY id LIMIT 1",
                            )?
                            .query_row(params![integration], |r| r.get(0))
                            .optional()?;
                        deferred.push(Deferred::Oldest(reply, at.and_then(from_unix_ms)));
                    }
                    Op::Replay {
                        integration,
                        mut ids,
                        reply,
                    } => {
                        // In the order they were refused, whatever the order asked.
                        ids.sort_unstable();
                        ids.dedup();
                        let mut replayed = 0;
                        for id in ids {
                            let letter: Option<String> = tx
                                .prepare_cached(
                                    "DELETE FROM dead_letters WHERE integration = ?1 AND id = ?2
                                     RETURNING json",
                                )?
                                .query_row(params![integration, id], |r| r.get(0))
                                .optional()?;
                            if let Some(json) = letter {
                                requeue(&tx, &mut self.backlogs, &integration, &json)?;
                                replayed += 1;
                            }
                        }
                        deferred.push(Deferred::Count(reply, replayed));
                    }
                    Op::ReplayPage {
                        integration,
                        through,
                        limit,
                        reply,
                    } => {
                        let through = match through {
                            Some(through) => Some(through),
                            None => tx
                                .prepare_cached(
                                    "SELECT max(id) FROM dead_letters WHERE integration = ?1",
                                )?
                                .query_row(params![integration], |r| r.get(0))?,
                        };
                        let letters: Vec<(i64, String)> = match through {
                            None => Vec::new(),
                            Some(through) => {
                                let mut select = tx.prepare_cached(
                                    "SELECT id, json FROM dead_letters
                                     WHERE integration = ?1 AND id <= ?2 ORDER BY id LIMIT ?3",
                                )?;
                                let rows = select.query_map(
                                    params![integration, through, limit as i64],
                                    |r| Ok((r.get(0)?, r.get(1)?)),
                                )?;
                                rows.collect::<Result<_, _>>()?
                            }
                        };
                        if let Some((last, _)) = letters.last() {
                            // The page is every letter up to its last id: one range delete.
                            tx.prepare_cached(
                                "DELETE FROM dead_letters WHERE integration = ?1 AND id <= ?2",
                            )?
                            .execute(params![integration, last])?;
                        }
                        let moved = letters.len() as u64;
                        for (_, json) in letters {
                            requeue(&tx, &mut self.backlogs, &integration, &json)?;
                        }
                        deferred.push(Deferred::Replayed(reply, ReplayPage { moved, through }));
                    }
                }
            }
            tx.commit()
        })();
        match result {
            Ok(()) => deferred.into_iter().for_each(|d| d.send(None)),
            Err(err) => {
                tracing::error!(error = %err, "spool transaction failed; its requests are refused");
                // Dropped requests (after a failed statement) are answered by their dropped
                // reply channels as `Closed`; the others get the storage error.
                group.clear();
                for (name, backlog) in before {
                    match backlog {
                        Some(backlog) => self.backlogs.insert(name, backlog),
                        None => self.backlogs.remove(&name),
                    };
                }
                let message = err.to_string();
                deferred.into_iter().for_each(|d| d.send(Some(&message)));
            }
        }
    }
}

/// Deletes one queued event and takes it off the integration's backlog; an id that is not
/// queued (already acknowledged, or another integration's) changes nothing.
fn remove_event(
    tx: &rusqlite::Transaction<'_>,
    backlogs: &mut HashMap<String, Backlog>,
    integration: &str,
    id: i64,
) -> rusqlite::Result<()> {
    let size: Option<i64> = tx
        .prepare_cached("DELETE FROM events WHERE integration = ?1 AND id = ?2 RETURNING size")?
        .query_row(params![integration, id], |r| r.get(0))
        .optional()?;
    if let (Some(size), Some(backlog)) = (size, backlogs.get_mut(integration)) {
        backlog.events -= 1;
        backlog.bytes -= size as u64;
    }
    Ok(())
}

/// Queues a replayed event at the end of `integration`'s queue, with a new position, and counts
/// it in the backlog.
fn requeue(
    tx: &rusqlite::Transaction<'_>,
    backlogs: &mut HashMap<String, Backlog>,
    integration: &str,
    json: &str,
) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO events (integration, action, json, size, at_unix_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        integration,
        action_of(json),
        json,
        json.len() as i64,
        unix_ms(SystemTime::now())
    ])?;
    let backlog = backlogs.entry(integration.to_owned()).or_default();
    backlog.events += 1;
    backlog.bytes += json.len() as u64;
    Ok(())
}

/// Answers a request that could not be applied.
fn fail(op: Op, message: &str) {
    let err = || SpoolError::Storage(message.to_owned());
    let _ = match op {
        Op::Append { reply, .. } | Op::Ack { reply, .. } | Op::DeadLetter { reply, .. } => {
            reply.send(Err(err())).map_err(drop)
        }
        Op::Pending { reply, .. } => reply.send(Err(err())).map_err(drop),
        Op::DeadLetters { reply, .. } => reply.send(Err(err())).map_err(drop),
        Op::Backlog { reply, .. } => reply.send(Err(err())).map_err(drop),
        Op::Oldest { reply, .. } => reply.send(Err(err())).map_err(drop),
        Op::DeadLetterCount { reply, .. } => reply.send(Err(err())).map_err(drop),
        Op::ReplayPage { reply, .. } => reply.send(Err(err())).map_err(drop),
        Op::Queued { reply } => reply.send(Err(err())).map_err(drop),
        Op::Replay { reply, .. } => reply.send(Err(err())).map_err(drop),
    };
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

    fn backlog_summary(&self, oldest: usize) -> SpoolFuture<'_, super::BacklogSummary> {
        let path = self.path.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                // WAL: this reader sees the last commit and blocks neither the writer nor it.
                let conn = Connection::open_with_flags(
                    &path,
                    rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
                        | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )
                .map_err(storage)?;
                conn.busy_timeout(Duration::from_secs(5)).map_err(storage)?;
                // One pass over the queue grouped by integration. `at_unix_ms` next to `min(id)`
                // is SQLite's bare column: the value from the row holding the minimum, i.e. the
                // integration's oldest queued event. The totals ride on every row as window
                // functions, computed before the LIMIT.
                let mut stmt = conn
                    .prepare(
                        "SELECT integration, events, bytes, first_at,
                                count(*) OVER (), sum(events) OVER (), sum(bytes) OVER ()
                         FROM (SELECT integration, count(*) AS events, sum(size) AS bytes,
                                      min(id) AS first_id, at_unix_ms AS first_at
                               FROM events GROUP BY integration)
                         ORDER BY first_id LIMIT ?1",
                    )
                    .map_err(storage)?;
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
                    })
                    .map_err(storage)?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(storage)?;
                Ok(super::summary_from_rows(rows, oldest))
            })
            .await
            .map_err(storage)?
        })
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

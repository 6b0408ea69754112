//! The writer thread: the one owner of the spool's connection, committing groups of requests.
//!
//! It takes every request waiting (up to a bound), applies them in one transaction and commits
//! once, so many concurrent ingests share one fsync; each request is answered only after that
//! commit. It keeps every integration's backlog in memory (loaded at start), so the bound check
//! of an append and the backlog questions cost no statement.

use super::requests::{Deferred, Op, fail};
use crate::spool::{
    Backlog, BacklogLimits, DeadLetter, ReplayPage, SpoolError, SpooledEvent, SqliteError,
    action_of, from_unix_ms, page_of, unix_ms,
};
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;

/// Requests waiting for the writer, at most; callers wait for room (backpressure).
const QUEUE_BOUND: usize = 4096;
/// Requests applied in one transaction, at most.
const GROUP_BOUND: usize = 1024;

/// Starts the writer thread on `conn` (migrated), with the backlogs it holds; returns the
/// channel its requests go to.
pub(super) fn start(
    conn: Connection,
    limits: BacklogLimits,
) -> Result<mpsc::Sender<Op>, SpoolError> {
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
        .map_err(SpoolError::Io)?;
    Ok(ops)
}

/// Every integration's backlog, counted from the queue once, at start.
fn load_backlogs(conn: &Connection) -> Result<HashMap<String, Backlog>, SpoolError> {
    let mut stmt =
        conn.prepare("SELECT integration, count(*), sum(size) FROM events GROUP BY integration")?;
    let rows = stmt.query_map([], |r| {
        let (events, bytes): (i64, i64) = (r.get(1)?, r.get(2)?);
        Ok((
            r.get::<_, String>(0)?,
            Backlog {
                events: events as u64,
                bytes: bytes as u64,
            },
        ))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The writer thread's state: the connection, the bounds, and the backlogs it keeps current.
struct Writer {
    conn: Connection,
    limits: BacklogLimits,
    backlogs: HashMap<String, Backlog>,
}

impl Writer {
    /// Applies the requests, a group at a time, until every handle is dropped.
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
            let failure = SqliteError::from(err);
            for op in group.drain(..) {
                fail(op, &failure);
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
                let failure = SqliteError::from(err);
                deferred.into_iter().for_each(|d| d.send(Some(&failure)));
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

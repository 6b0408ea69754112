//! Dead letters: events the receiver refused, kept in `spool_dead_letters` with the reason,
//! listed and counted page by page, and replayed to the end of the queue.
//!
//! Moving an event to the dead letters is fenced by the lease like an acknowledgement (only the
//! holder may change the queue). Replays of one integration are serialised across instances by
//! an advisory lock, so pages run one after the other and the queue keeps the refusal order.

use super::{PostgresSpool, db, queue::insert_events};
use crate::spool::{
    DeadLetter, DeadLetterPage, ReplayPage, SpoolError, action_of, from_unix_ms, page_of, unix_ms,
};
use std::time::{SystemTime, UNIX_EPOCH};

/// The class of the advisory locks serialising an integration's replays (with the hash of its
/// name); two-key locks never meet the one-key migration lock.
const REPLAY_LOCK: i32 = 0x6576_6f72;

impl PostgresSpool {
    /// Moves one event to the dead letters (see `Spool::dead_letter`).
    pub(super) async fn dead_letter_now(
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

    /// One page of dead letters (see `Spool::dead_letters`).
    pub(super) async fn dead_letters_now(
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

    /// How many dead letters (see `Spool::dead_letter_count`).
    pub(super) async fn dead_letter_count_now(
        &self,
        integration: String,
    ) -> Result<u64, SpoolError> {
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

    /// Replays the dead letters named (see `Spool::replay`).
    pub(super) async fn replay_now(
        &self,
        integration: String,
        ids: Vec<i64>,
    ) -> Result<u64, SpoolError> {
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

    /// Replays one page of dead letters (see `Spool::replay_page`).
    pub(super) async fn replay_page_now(
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
    let count = i64::try_from(jsons.len()).map_err(SpoolError::OutOfRange)?;
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

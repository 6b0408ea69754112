//! The queue: appends, the pending events of an integration, acknowledgements, and what is
//! waiting (backlogs, the integrations with events queued, the oldest event).
//!
//! `spool_backlogs` keeps each integration's event and byte counts, changed in the same
//! transaction as the queue: the bound check of an append is one row update (its row lock
//! orders concurrent appends to one integration across instances), and the backlog questions
//! never count the queue. Reading and removing events is fenced by the lease in the same
//! statement (see `lease.rs`).

use super::{PostgresSpool, arrivals::notify, db};
use crate::spool::{
    Backlog, BacklogSummary, NewEvent, SpoolError, SpooledEvent, from_unix_ms, summary_from_rows,
    unix_ms,
};
use std::time::{Duration, SystemTime};

impl PostgresSpool {
    /// Queues `events` after checking the bound (see `Spool::append`).
    pub(super) async fn append_now(
        &self,
        integration: String,
        events: Vec<NewEvent>,
    ) -> Result<(), SpoolError> {
        let count = i64::try_from(events.len()).map_err(SpoolError::OutOfRange)?;
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

    /// The oldest `limit` events, while this instance holds the lease (see `Spool::pending`).
    pub(super) async fn pending_now(
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

    /// Removes delivered events, while this instance holds the lease (see `Spool::ack`).
    pub(super) async fn ack_now(
        &self,
        integration: String,
        ids: Vec<i64>,
    ) -> Result<(), SpoolError> {
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

    /// When the oldest queued event was queued (see `Spool::oldest`).
    pub(super) async fn oldest_now(
        &self,
        integration: String,
    ) -> Result<Option<SystemTime>, SpoolError> {
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

    /// What `integration` has waiting (see `Spool::backlog`).
    pub(super) async fn backlog_now(&self, integration: String) -> Result<Backlog, SpoolError> {
        let client = self.client().await?;
        backlog_of(&client, &integration).await
    }

    /// The integrations with events queued (see `Spool::queued`).
    pub(super) async fn queued_now(&self) -> Result<Vec<String>, SpoolError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT integration FROM spool_backlogs WHERE events > 0",
                &[],
            )
            .await
            .map_err(db)?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// What all integrations have waiting, in one query (see `Spool::backlog_summary`).
    pub(super) async fn backlog_summary_now(
        &self,
        oldest: usize,
    ) -> Result<BacklogSummary, SpoolError> {
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
        Ok(summary_from_rows(
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
    }
}

/// Queues events at the end of `integration`'s queue, in the order given, in one statement.
pub(super) async fn insert_events(
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

/// What `integration` has waiting, from its counters row.
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

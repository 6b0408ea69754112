//! Leases: which instance delivers which integration's queue.
//!
//! A lease is a row of `spool_leases` with an expiry its holder renews; `spool_instances` holds a
//! heartbeat per instance, so that each knows how many share the integrations. The lease keeper's
//! round (`Spool::keep_leases`) renews, takes and gives up leases in a few statements for all
//! integrations, and records the outcome in this instance's [`LeaseBook`], which `Spool::holds`
//! reads without a statement. The queue's own statements check the lease again in the database (see
//! `queue.rs` and `dead_letters.rs`); the book lets an instance stop before its lease expires, and
//! give up leases beyond its share between batches.

use super::{PostgresSpool, db};
use crate::spool::{Hold, SpoolError};
use std::collections::HashMap;
use std::future::Future;
use std::time::{Duration, Instant};

/// This instance's leases, kept by `Spool::keep_leases` and read by `Spool::holds`.
#[derive(Debug, Default)]
pub(super) struct LeaseBook {
    /// Each held lease and until when it counts as held here: the instant its last renewal was
    /// sent, plus its life, minus a margin.
    held: HashMap<String, Instant>,
    /// Leases beyond this instance's share, to give up between batches.
    surplus: usize,
    /// Leases given up between batches, deleted at the next round.
    given_up: Vec<String>,
}

impl PostgresSpool {
    /// Drops a lease from this instance's book (the database says it is not held).
    pub(super) fn forget(&self, integration: &str) {
        self.book().held.remove(integration);
    }

    /// This instance's lease book, locked; a lock poisoned by a panic is used as it is.
    fn book(&self) -> std::sync::MutexGuard<'_, LeaseBook> {
        self.leases
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// One round of the lease keeper (see `Spool::keep_leases`).
    pub(super) async fn keep_leases_now(&self) -> Result<Vec<String>, SpoolError> {
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

    /// Whether this instance holds `integration`'s lease (see `Spool::holds`).
    pub(super) fn holds_now(&self, integration: &str, hold: Hold) -> bool {
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

    /// Gives up this instance's lease on `integration` (see `Spool::release`).
    pub(super) async fn release_now(&self, integration: String) -> Result<(), SpoolError> {
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

    /// Says this instance is leaving (see `Spool::leave`): its book is emptied at once, so it stops
    /// delivering before the statement runs; the statement deletes its leases and its heartbeat.
    pub(super) fn leave_now(&self) -> impl Future<Output = Result<(), SpoolError>> + '_ {
        self.book().held.clear();
        async move {
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
        }
    }
}

//! [`Worker`]: one integration's delivery state machine, from the spool to the SIEM and back.
//!
//! A worker is not a task: the [`Scheduler`](crate::schedule::Scheduler) runs it when there is
//! something to do (events arrived, a linger or backoff deadline passed, a resume) and parks it
//! otherwise, so an idle or waiting integration costs nothing. Each [`Worker::step`] does at most
//! one attempt and then says what it needs next: to step again, to wait for a deadline, or nothing
//! until events arrive.
//!
//! Per integration, batches go out one at a time, in ingest order. A batch being retried is
//! remembered by its span of spool positions and its delivery id, not by its events, so a
//! thousand integrations in backoff hold no batch in memory; each attempt reads the events again
//! and uses the integration's settings as they are at that attempt.

use crate::Integration;
use crate::batcher::{Plan, plan};
use crate::dispatch::{AttemptReport, Dispatcher};
use crate::retry::{AttemptResult, Backoff, Outcome, classify};
use crate::spool::{Hold, Spool, SpoolError, SpooledEvent};
use crate::stats::{DeliveryStats, LastError, lock};
use crate::store::Registry;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};
use uuid::Uuid;

/// What one step of the worker did, and what it needs next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Events were delivered, excluded or dead-lettered, or a batch was split: step again.
    Progress,
    /// The next batch is not due yet (linger), or another instance holds the lease: step again
    /// after this long, or earlier when events arrive.
    Wait(Duration),
    /// An attempt failed and the batch is retried after this long (backoff, `Retry-After`, or a
    /// pause): events arriving meanwhile do not shorten it; a resume or a settings change does.
    Backoff(Duration),
    /// The queue is empty: nothing to do until events arrive.
    Idle,
    /// The integration was removed from the registry (events stay queued).
    Removed,
}

/// A batch being delivered: which queued events it holds and how far its delivery got. Only the
/// span is kept; the events are read again for each attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Batch {
    /// The spool position of its first event.
    first: i64,
    /// The spool position of its last event.
    last: i64,
    /// How many events it holds.
    count: usize,
    /// Stable across the retries of this batch.
    delivery_id: Uuid,
    /// Attempts made so far.
    attempts: u32,
    /// Failed attempts in a row, for the backoff.
    retries: u32,
}

impl Batch {
    fn of(events: &[SpooledEvent]) -> Self {
        Self {
            first: events.first().map_or(0, |e| e.id),
            last: events.last().map_or(0, |e| e.id),
            count: events.len(),
            delivery_id: Uuid::new_v4(),
            attempts: 0,
            retries: 0,
        }
    }

    fn holds(&self, events: &[SpooledEvent]) -> bool {
        events.len() == self.count
            && events.first().map(|e| e.id) == Some(self.first)
            && events.last().map(|e| e.id) == Some(self.last)
    }
}

/// Delivers one integration's queue, one step at a time.
#[derive(Debug)]
pub struct Worker {
    tenant: String,
    spool: Arc<dyn Spool>,
    dispatcher: Dispatcher,
    integration: Arc<Integration>,
    backoff: Backoff,
    rng: fastrand::Rng,
    stats: Arc<DeliveryStats>,
    /// The oldest queued event and when this worker first saw it, for `linger`.
    head: Option<(i64, Instant)>,
    /// When set, the integration is read from here at every step, so changes apply at once.
    registry: Option<Arc<Registry>>,
    /// Batches being delivered, the one to attempt next on top. A split replaces a batch by its
    /// halves, the left one on top, so the right half waits until the left one is settled.
    batches: Vec<Batch>,
    /// Whether the lease was held at the last check, to log changes.
    leased: bool,
}

impl Worker {
    /// A worker for `integration`.
    pub fn new(
        spool: Arc<dyn Spool>,
        dispatcher: Dispatcher,
        integration: Arc<Integration>,
        backoff: Backoff,
    ) -> Self {
        Self {
            tenant: integration.tenant().to_owned(),
            spool,
            dispatcher,
            integration,
            backoff,
            rng: fastrand::Rng::new(),
            stats: Arc::default(),
            head: None,
            registry: None,
            batches: Vec::new(),
            leased: false,
        }
    }

    /// Makes the worker follow `registry`: each step uses the integration in force then, and the
    /// worker stops when the integration is removed.
    #[must_use]
    pub fn following(mut self, registry: Arc<Registry>) -> Self {
        self.registry = Some(registry);
        self
    }

    /// Keeps its counters in `stats` (shared with the admin API, and kept when the worker is
    /// replaced).
    #[must_use]
    pub fn with_stats(mut self, stats: Arc<DeliveryStats>) -> Self {
        self.stats = stats;
        self
    }

    /// The worker's counters.
    pub fn stats(&self) -> Arc<DeliveryStats> {
        self.stats.clone()
    }

    /// The tenant whose queue this worker delivers.
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// Whether a batch is being delivered (attempted at least once and not settled yet).
    pub fn mid_batch(&self) -> bool {
        !self.batches.is_empty()
    }

    /// Forgets the batches being delivered: they stay queued and are planned again from the
    /// oldest event. Used when the worker's lease or its run was lost.
    pub fn abandon(&mut self) {
        self.batches.clear();
        self.head = None;
    }

    /// Does the next thing due: plans a batch and attempts it, or makes the next attempt of the
    /// batch being retried, with the integration's settings as they are now.
    pub async fn step(&mut self) -> Result<Step, SpoolError> {
        if let Some(registry) = &self.registry {
            match registry.get(&self.tenant) {
                Some(current) => self.integration = current,
                None => return Ok(Step::Removed),
            }
        }
        if !self.holds_lease() {
            // Another instance delivers this integration; the lease keeper tells the scheduler
            // when this one takes the lease.
            return Ok(Step::Idle);
        }
        if self.batches.is_empty() {
            return self.plan_next().await;
        }
        self.retry_top().await
    }

    /// Reads the oldest events and, when a batch is due, attempts it.
    async fn plan_next(&mut self) -> Result<Step, SpoolError> {
        let limits = *self.integration.limits();
        let pending = self
            .spool
            .pending(&self.tenant, limits.max_events())
            .await?;
        let Some(first_id) = pending.first().map(|e| e.id) else {
            self.head = None;
            return Ok(Step::Idle);
        };
        let Some(kept) = self.drop_excluded(pending).await? else {
            return Ok(Step::Progress);
        };
        let since = match self.head {
            Some((id, since)) if id == first_id => since,
            _ => self.head.insert((first_id, Instant::now())).1,
        };
        let sizes: Vec<usize> = kept.iter().map(|e| e.json.len()).collect();
        match plan(&sizes, since.elapsed(), &limits) {
            Plan::Idle => Ok(Step::Idle),
            Plan::Wait(after) => Ok(Step::Wait(after)),
            Plan::TooLarge => {
                self.dead_letter(&kept[0], "larger than max_batch_bytes".into())
                    .await?;
                Ok(Step::Progress)
            }
            Plan::Send(n) => {
                self.head = None;
                let events = &kept[..n];
                self.batches.push(Batch::of(events));
                self.attempt(events).await
            }
        }
    }

    /// The next attempt of the batch on top of the stack: its events are read again, and the
    /// exclusions in force now apply to them too.
    async fn retry_top(&mut self) -> Result<Step, SpoolError> {
        let Some(top) = self.batches.last().copied() else {
            return Ok(Step::Progress);
        };
        let pending = self.spool.pending(&self.tenant, top.count).await?;
        let Some(kept) = self.drop_excluded(pending).await? else {
            // Events of the batch were excluded meanwhile: the rest is planned afresh.
            self.abandon();
            return Ok(Step::Progress);
        };
        if !top.holds(&kept) {
            // The queue's head is not what the batch held (on a shared spool, a transaction
            // that committed late; or the lease changed hands): plan again from the head.
            self.abandon();
            return Ok(Step::Progress);
        }
        self.attempt(&kept).await
    }

    /// Acks the events excluded by the list in force now; `None` when there were some (the
    /// caller steps again), otherwise the events to send.
    async fn drop_excluded(
        &mut self,
        pending: Vec<SpooledEvent>,
    ) -> Result<Option<Vec<SpooledEvent>>, SpoolError> {
        let (excluded, kept): (Vec<SpooledEvent>, Vec<SpooledEvent>) = pending
            .into_iter()
            .partition(|e| self.integration.exclusions().excludes(&e.action));
        if excluded.is_empty() {
            return Ok(Some(kept));
        }
        self.spool
            .ack(&self.tenant, excluded.iter().map(|e| e.id).collect())
            .await?;
        self.stats
            .excluded
            .fetch_add(excluded.len() as u64, Ordering::Relaxed);
        Ok(None)
    }

    /// One attempt at the batch on top of the stack, whose events are `events`, and what the
    /// answer means for it.
    async fn attempt(&mut self, events: &[SpooledEvent]) -> Result<Step, SpoolError> {
        let Some(top) = self.batches.last_mut() else {
            return Ok(Step::Progress);
        };
        top.attempts += 1;
        let (delivery_id, attempt) = (top.delivery_id, top.attempts);
        let refs: Vec<&str> = events.iter().map(|e| e.json.as_str()).collect();
        let report = self
            .dispatcher
            .attempt(&self.integration, &refs, delivery_id, attempt)
            .await;
        let outcome = classify(report.result, events.len());
        tracing::debug!(tenant = self.tenant, %delivery_id, attempt, ?outcome, latency = ?report.latency, "attempt");
        self.record(&report, outcome);
        match outcome {
            Outcome::Delivered => {
                self.batches.pop();
                self.spool
                    .ack(&self.tenant, events.iter().map(|e| e.id).collect())
                    .await?;
                self.stats
                    .delivered
                    .fetch_add(events.len() as u64, Ordering::Relaxed);
                self.stats.paused.store(false, Ordering::Relaxed);
                Ok(Step::Progress)
            }
            Outcome::Split => {
                self.batches.pop();
                let (left, right) = events.split_at(events.len() / 2);
                self.batches.push(Batch::of(right));
                self.batches.push(Batch::of(left));
                Ok(Step::Progress)
            }
            Outcome::DeadLetter => {
                self.batches.pop();
                let status = match report.result {
                    AttemptResult::Status { status, .. } => status,
                    AttemptResult::Transport => 0,
                };
                self.dead_letter(&events[0], format!("http {status}: {}", report.detail))
                    .await?;
                Ok(Step::Progress)
            }
            Outcome::Retry { after } => {
                self.stats.retried.fetch_add(1, Ordering::Relaxed);
                Ok(Step::Backoff(self.next_delay(after)))
            }
            Outcome::Pause => {
                self.stats.retried.fetch_add(1, Ordering::Relaxed);
                if !self.stats.paused.swap(true, Ordering::Relaxed) {
                    tracing::warn!(tenant = self.tenant, detail = %report.detail, "integration paused");
                }
                Ok(Step::Backoff(self.next_delay(None)))
            }
        }
    }

    /// The wait before the next attempt of the batch on top, which just failed.
    fn next_delay(&mut self, retry_after: Option<Duration>) -> Duration {
        let retries = self.batches.last_mut().map_or(1, |top| {
            top.retries += 1;
            top.retries
        });
        self.backoff.delay(retries, retry_after, &mut self.rng)
    }

    /// On a shared spool, whether this instance holds the integration's lease now (the lease
    /// keeper's view; no statement). Checked before every attempt: an instance that lost its
    /// lease, or stalled past it, sends nothing more.
    fn holds_lease(&mut self) -> bool {
        // Mid-batch the lease is only kept, never handed over: another instance would send
        // the rest of the queue while this batch is unsettled.
        let hold = if self.batches.is_empty() {
            Hold::Next
        } else {
            Hold::Keep
        };
        let held = self.spool.holds(&self.tenant, hold);
        if held != self.leased {
            if held {
                tracing::info!(
                    tenant = self.tenant,
                    "lease held: this instance delivers the integration"
                );
            } else if self.spool.lease_ttl().is_some() {
                tracing::info!(tenant = self.tenant, "lease given up or lost");
            }
            self.leased = held;
        }
        if !held {
            self.abandon();
        }
        held
    }

    /// Gives up the lease on a shared spool, so that another instance carries on at once instead
    /// of after the lease expires.
    pub async fn hand_over(&mut self) {
        self.abandon();
        // Releasing a lease this instance does not hold changes nothing.
        if self.spool.lease_ttl().is_some() {
            if let Err(err) = self.spool.release(&self.tenant).await {
                tracing::warn!(tenant = self.tenant, error = %err, "lease not released; it expires by itself");
            }
            self.leased = false;
        }
    }

    /// Keeps the integration's status and counters up to date with an attempt.
    fn record(&self, report: &AttemptReport, outcome: Outcome) {
        let stats = &self.stats;
        stats.latency.observe(report.latency);
        let counter = match outcome {
            Outcome::Delivered => &stats.attempts.delivered,
            Outcome::Retry { .. } => &stats.attempts.retried,
            Outcome::Split => &stats.attempts.split,
            Outcome::DeadLetter => &stats.attempts.dead_lettered,
            Outcome::Pause => &stats.attempts.paused,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        match report.failure {
            None => {
                stats.failing.store(false, Ordering::Relaxed);
                *lock(&stats.last_success) = Some(SystemTime::now());
            }
            Some(kind) => {
                // A refused single event is the event's problem, not the integration's.
                if outcome != Outcome::DeadLetter && outcome != Outcome::Split {
                    stats.failing.store(true, Ordering::Relaxed);
                }
                let status = match report.result {
                    AttemptResult::Status { status, .. } => Some(status),
                    AttemptResult::Transport => None,
                };
                *lock(&stats.last_error) = Some(LastError {
                    kind,
                    status,
                    at: SystemTime::now(),
                    detail: report.detail.clone(),
                });
            }
        }
    }

    async fn dead_letter(&self, event: &SpooledEvent, reason: String) -> Result<(), SpoolError> {
        tracing::warn!(tenant = self.tenant, event = event.id, %reason, "event dead-lettered");
        self.spool
            .dead_letter(&self.tenant, event.id, reason)
            .await?;
        self.stats.dead_lettered.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

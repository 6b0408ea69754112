//! [`Worker`]: one integration's delivery loop, from the spool to the SIEM and back.
//!
//! Each integration has its own worker task, so a SIEM that hangs until every timeout only ever
//! delays its own queue. Per integration, batches go out one at a time, in ingest order.

use crate::Integration;
use crate::batcher::{Plan, plan};
use crate::dispatch::Dispatcher;
use crate::registry::Registry;
use crate::retry::{AttemptResult, Backoff, Outcome, classify};
use crate::spool::{Hold, Spool, SpoolError, SpooledEvent};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};
use uuid::Uuid;

/// Counters and recent history of one integration's delivery, readable while the worker runs
/// (the admin API's status and `/metrics` read them).
#[derive(Debug, Default)]
pub struct DeliveryStats {
    /// Events delivered (2xx).
    pub delivered: AtomicU64,
    /// Events dropped because their action is excluded.
    pub excluded: AtomicU64,
    /// Attempts that are retried (after 408, 429, 5xx, transport errors, or while paused).
    pub retried: AtomicU64,
    /// Events moved to the dead-letter store.
    pub dead_lettered: AtomicU64,
    /// Whether the integration is paused (401, 403, 404, 410, redirect) and being probed.
    pub paused: AtomicBool,
    /// Whether the last attempt failed (the integration is failing until the next 2xx).
    pub failing: AtomicBool,
    /// Attempts by how they ended.
    pub attempts: AttemptCounters,
    /// Attempt latencies.
    pub latency: LatencyHistogram,
    /// When a batch was last delivered.
    pub last_success: std::sync::Mutex<Option<SystemTime>>,
    /// The last failed attempt.
    pub last_error: std::sync::Mutex<Option<LastError>>,
    /// Wakes the worker from a pause or a backoff wait (`POST .../resume`).
    pub resume: tokio::sync::Notify,
    /// Wakes an idle worker when this instance took events for its integration, so that it
    /// need not poll the spool often.
    pub arrived: tokio::sync::Notify,
}

/// Attempts by outcome.
#[derive(Debug, Default)]
pub struct AttemptCounters {
    /// Answered 2xx.
    pub delivered: AtomicU64,
    /// To be retried (408, 429, 5xx, transport errors).
    pub retried: AtomicU64,
    /// Split in halves (413, or 400/422 on several events).
    pub split: AtomicU64,
    /// A single event refused and dead-lettered.
    pub dead_lettered: AtomicU64,
    /// Paused (401, 403, 404, 410, redirects).
    pub paused: AtomicU64,
}

/// The last failed attempt of an integration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastError {
    /// What failed.
    pub kind: crate::dispatch::FailureKind,
    /// The status, when the receiver answered.
    pub status: Option<u16>,
    /// When.
    pub at: SystemTime,
    /// A bounded snippet of the answer, or the transport error.
    pub detail: String,
}

/// A fixed-bucket histogram of attempt latencies, in the Prometheus shape (cumulative buckets
/// are computed when read).
#[derive(Debug, Default)]
pub struct LatencyHistogram {
    counts: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    sum_micros: AtomicU64,
}

/// Upper bounds of the latency buckets, in seconds.
pub const LATENCY_BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

impl LatencyHistogram {
    /// Records one attempt.
    pub fn observe(&self, latency: Duration) {
        let seconds = latency.as_secs_f64();
        let bucket = LATENCY_BUCKETS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.counts[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(
            u64::try_from(latency.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// Cumulative counts per bucket (the last one is `+Inf`, the total), and the sum in seconds.
    pub fn snapshot(&self) -> (Vec<u64>, f64) {
        let mut total = 0;
        let cumulative = self
            .counts
            .iter()
            .map(|c| {
                total += c.load(Ordering::Relaxed);
                total
            })
            .collect();
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        (cumulative, sum)
    }
}

fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What one step of the worker did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Events were delivered, excluded or dead-lettered: step again.
    Progress,
    /// The next batch is not due yet: step again after this long, or when events arrive.
    Wait(Duration),
    /// The queue is empty.
    Idle,
    /// The integration was removed from the registry: the worker stops (events stay queued).
    Removed,
}

/// Delivers one integration's queue.
#[derive(Debug)]
pub struct Worker {
    spool: Arc<dyn Spool>,
    dispatcher: Dispatcher,
    integration: Arc<Integration>,
    backoff: Backoff,
    rng: fastrand::Rng,
    stats: Arc<DeliveryStats>,
    /// The oldest queued event and when this worker first saw it, for `linger`.
    head: Option<(i64, Instant)>,
    /// Set while `run` runs: a backoff wait ends early when it says stop.
    shutdown: Option<tokio::sync::watch::Receiver<bool>>,
    /// When set, the integration is read from here at every step, so changes apply at once.
    registry: Option<Arc<Registry>>,
    /// On a shared spool: until when the lease this worker holds needs no renewal, or, while it
    /// does not hold it, when to ask again.
    lease: LeaseState,
}

/// A worker's view of its lease on a shared spool (see [`Spool::lease`]).
#[derive(Debug, Clone, Copy)]
enum LeaseState {
    /// Not asked yet, or to be asked again now.
    Unknown,
    /// Held; renew from this instant on.
    Held(Instant),
    /// Another instance holds it; ask again from this instant on.
    Elsewhere(Instant),
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
            spool,
            dispatcher,
            integration,
            backoff,
            rng: fastrand::Rng::new(),
            stats: Arc::default(),
            head: None,
            shutdown: None,
            registry: None,
            lease: LeaseState::Unknown,
        }
    }

    /// Makes the worker follow `registry`: each step uses the integration in force then, and the
    /// worker stops when the integration is removed.
    #[must_use]
    pub fn following(mut self, registry: Arc<Registry>) -> Self {
        self.registry = Some(registry);
        self
    }

    /// Keeps its counters in `stats` (shared with the ingest API, and kept when the worker is
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

    /// Builds and delivers the next batch if one is due, retrying it until it is settled
    /// (delivered, split and delivered, or dead-lettered).
    pub async fn step(&mut self) -> Result<Step, SpoolError> {
        let tenant = self.integration.tenant().to_owned();
        if let Some(registry) = &self.registry {
            match registry.get(&tenant) {
                Some(current) => self.integration = current,
                None => return Ok(Step::Removed),
            }
        }
        if let Some(wait) = self.hold_lease(&tenant).await? {
            self.head = None;
            return Ok(Step::Wait(wait));
        }
        let limits = *self.integration.limits();
        let pending = self.spool.pending(&tenant, limits.max_events()).await?;
        let Some(first_id) = pending.first().map(|e| e.id) else {
            self.head = None;
            return Ok(Step::Idle);
        };
        // The exclusion list in force now decides, even for events queued before it changed.
        let (excluded, kept): (Vec<SpooledEvent>, Vec<SpooledEvent>) = pending
            .into_iter()
            .partition(|e| self.integration.exclusions().excludes(&e.action));
        if !excluded.is_empty() {
            self.spool
                .ack(&tenant, excluded.iter().map(|e| e.id).collect())
                .await?;
            self.stats
                .excluded
                .fetch_add(excluded.len() as u64, Ordering::Relaxed);
            return Ok(Step::Progress);
        }
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
                self.deliver(&kept[..n]).await?;
                self.head = None;
                Ok(Step::Progress)
            }
        }
    }

    /// On a shared spool, makes sure this worker holds its integration's lease before a batch;
    /// returns how long to wait when another instance holds it. A no-op on a spool that one
    /// process owns.
    async fn hold_lease(&mut self, tenant: &str) -> Result<Option<Duration>, SpoolError> {
        let Some(ttl) = self.spool.lease_ttl() else {
            return Ok(None);
        };
        let now = Instant::now();
        match self.lease {
            LeaseState::Held(renew_at) if now < renew_at => return Ok(None),
            LeaseState::Elsewhere(ask_at) if now < ask_at => return Ok(Some(ask_at - now)),
            _ => {}
        }
        // Renewed at a third of its life, a lease survives two missed renewals.
        if self.spool.lease(tenant, Hold::Next).await? {
            if !matches!(self.lease, LeaseState::Held(_)) {
                tracing::info!(
                    tenant,
                    "lease taken: this instance delivers the integration"
                );
            }
            self.lease = LeaseState::Held(now + ttl / 3);
            Ok(None)
        } else {
            if matches!(self.lease, LeaseState::Held(_)) {
                tracing::info!(tenant, "lease given up or lost");
            }
            // Often enough that a lease handed over to spread the load is taken again soon;
            // jittered, so that instances waiting for the same lease do not ask in step.
            let wait = ttl / 8 + ttl.mul_f64(self.rng.f64() / 8.0);
            self.lease = LeaseState::Elsewhere(now + wait);
            Ok(Some(wait))
        }
    }

    /// Runs `work` (an attempt or a backoff wait) while renewing the lease on a shared spool;
    /// `None` when the lease was lost or could not be renewed, so the batch must be abandoned to
    /// the instance that holds the lease now.
    async fn leased<T>(&self, work: impl std::future::Future<Output = T>) -> Option<T> {
        let Some(ttl) = self.spool.lease_ttl() else {
            return Some(work.await);
        };
        let every = ttl / 3;
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        let mut work = std::pin::pin!(work);
        let tenant = self.integration.tenant();
        loop {
            tokio::select! {
                out = &mut work => return Some(out),
                _ = ticks.tick() => match self.spool.lease(tenant, Hold::Keep).await {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!(tenant, "lease lost during a batch; the batch is left to its new holder");
                        return None;
                    }
                    Err(err) => {
                        tracing::warn!(tenant, error = %err, "lease not renewed; the batch is left for later");
                        return None;
                    }
                },
            }
        }
    }

    /// Runs until `shutdown` says stop; an attempt in flight finishes first. A storage error is
    /// logged and retried after a second: the events stay in the spool.
    pub async fn run(
        mut self,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> Result<(), SpoolError> {
        // Backoff waits inside a delivery watch it too, so that a stop does not wait out a
        // retry schedule (or, during an outage, the whole shutdown grace).
        self.shutdown = Some(shutdown.clone());
        while !*shutdown.borrow() {
            let pause = match self.step().await {
                Ok(Step::Progress) => continue,
                Ok(Step::Wait(after)) => after.min(Duration::from_millis(200)),
                // A shared spool is polled less often: each poll is a round trip to the
                // database, and ingest through this instance wakes the worker anyway.
                Ok(Step::Idle) if self.spool.lease_ttl().is_some() => Duration::from_millis(250),
                Ok(Step::Idle) => Duration::from_millis(50),
                Ok(Step::Removed) => {
                    self.hand_over().await;
                    return Ok(());
                }
                Err(SpoolError::Closed) => return Err(SpoolError::Closed),
                Err(err) => {
                    tracing::error!(tenant = self.integration.tenant(), error = %err, "spool error; retrying");
                    Duration::from_secs(1)
                }
            };
            let stats = self.stats.clone();
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = stats.arrived.notified() => {}
                _ = shutdown.changed() => {}
            }
        }
        self.hand_over().await;
        Ok(())
    }

    /// Gives up the lease on a shared spool, so that another instance carries on at once instead
    /// of after the lease expires.
    async fn hand_over(&mut self) {
        // Also after a batch abandoned at shutdown (the state is then `Unknown`): releasing a
        // lease this instance does not hold changes nothing.
        if self.spool.lease_ttl().is_some() && !matches!(self.lease, LeaseState::Elsewhere(_)) {
            let tenant = self.integration.tenant().to_owned();
            if let Err(err) = self.spool.release(&tenant).await {
                tracing::warn!(tenant, error = %err, "lease not released; it expires by itself");
            }
            self.lease = LeaseState::Unknown;
        }
    }

    /// Keeps the integration's status and counters up to date with an attempt.
    fn record(&self, report: &crate::dispatch::AttemptReport, outcome: Outcome) {
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

    /// Waits `delay`, or less if the worker is told to stop or to resume; returns whether it is
    /// stopping.
    async fn wait_or_stop(&self, delay: Duration) -> bool {
        let resume = self.stats.clone();
        match self.shutdown.clone() {
            Some(mut shutdown) => {
                let stopped = tokio::select! {
                    _ = tokio::time::sleep(delay) => false,
                    _ = resume.resume.notified() => false,
                    _ = shutdown.wait_for(|stop| *stop) => true,
                };
                stopped || *shutdown.borrow()
            }
            None => {
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = resume.resume.notified() => {}
                }
                false
            }
        }
    }

    async fn dead_letter(&self, event: &SpooledEvent, reason: String) -> Result<(), SpoolError> {
        tracing::warn!(tenant = self.integration.tenant(), event = event.id, %reason, "event dead-lettered");
        self.spool
            .dead_letter(self.integration.tenant(), event.id, reason)
            .await?;
        self.stats.dead_lettered.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Delivers one batch with one delivery id until it is settled (`true`), or leaves it queued
    /// when the worker stops or loses its lease (`false`).
    async fn deliver(&mut self, batch: &[SpooledEvent]) -> Result<bool, SpoolError> {
        let refs: Vec<&str> = batch.iter().map(|e| e.json.as_str()).collect();
        let delivery_id = Uuid::new_v4();
        let (mut attempt, mut retries) = (0u32, 0u32);
        loop {
            attempt += 1;
            let Some(report) = self
                .leased(
                    self.dispatcher
                        .attempt(&self.integration, &refs, delivery_id, attempt),
                )
                .await
            else {
                self.lease = LeaseState::Unknown;
                return Ok(false);
            };
            let outcome = classify(report.result, batch.len());
            tracing::debug!(tenant = self.integration.tenant(), %delivery_id, attempt, ?outcome, latency = ?report.latency, "attempt");
            self.record(&report, outcome);
            match outcome {
                Outcome::Delivered => {
                    self.spool
                        .ack(
                            self.integration.tenant(),
                            batch.iter().map(|e| e.id).collect(),
                        )
                        .await?;
                    self.stats
                        .delivered
                        .fetch_add(batch.len() as u64, Ordering::Relaxed);
                    self.stats.paused.store(false, Ordering::Relaxed);
                    return Ok(true);
                }
                Outcome::Split => {
                    let (left, right) = batch.split_at(batch.len() / 2);
                    // The right half only once the left one is settled: sending it while the
                    // left stays queued would deliver events out of order.
                    if !Box::pin(self.deliver(left)).await? {
                        return Ok(false);
                    }
                    return Box::pin(self.deliver(right)).await;
                }
                Outcome::DeadLetter => {
                    let status = match report.result {
                        AttemptResult::Status { status, .. } => status,
                        AttemptResult::Transport => 0,
                    };
                    self.dead_letter(&batch[0], format!("http {status}: {}", report.detail))
                        .await?;
                    return Ok(true);
                }
                Outcome::Retry { after } => {
                    retries += 1;
                    self.stats.retried.fetch_add(1, Ordering::Relaxed);
                    let delay = self.backoff.delay(retries, after, &mut self.rng);
                    // Stopping, or the lease lost: the batch stays queued.
                    if self.leased(self.wait_or_stop(delay)).await.unwrap_or(true) {
                        self.lease = LeaseState::Unknown;
                        return Ok(false);
                    }
                }
                Outcome::Pause => {
                    retries += 1;
                    self.stats.retried.fetch_add(1, Ordering::Relaxed);
                    if !self.stats.paused.swap(true, Ordering::Relaxed) {
                        tracing::warn!(tenant = self.integration.tenant(), detail = %report.detail, "integration paused");
                    }
                    let delay = self.backoff.delay(retries, None, &mut self.rng);
                    if self.leased(self.wait_or_stop(delay)).await.unwrap_or(true) {
                        self.lease = LeaseState::Unknown;
                        return Ok(false);
                    }
                }
            }
        }
    }
}

//! [`DeliveryStats`]: each integration's delivery counters and recent history, written by its
//! [`Worker`](crate::Worker) and read by the admin API's status and `/metrics`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

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

pub(crate) fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

//! [`TestRuns`]: the count of a tenant's "Test Saved Webhook" runs on a single instance.
//!
//! Several instances count in PostgreSQL instead ([`super::SharedState::admit_test`]), so that a
//! tenant behind a load balancer cannot test once per instance.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Each tenant's recent test runs, in memory. Bounded: a tenant keeps at most `limit` instants,
/// and only tenants with an integration reach it (the admin API checks that first).
#[derive(Debug, Default)]
pub(crate) struct TestRuns {
    recent: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl TestRuns {
    /// Counts a run for `tenant` if fewer than `limit` ran in the last `window`; otherwise says
    /// how long until the oldest leaves the window.
    pub(crate) fn admit(
        &self,
        tenant: &str,
        limit: usize,
        window: Duration,
    ) -> Result<(), Duration> {
        let mut recent = self
            .recent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        let times = recent.entry(tenant.to_owned()).or_default();
        while times
            .front()
            .is_some_and(|t| now.duration_since(*t) >= window)
        {
            times.pop_front();
        }
        if times.len() >= limit {
            let oldest = times.front().copied().unwrap_or(now);
            return Err(window.saturating_sub(now.duration_since(oldest)));
        }
        times.push_back(now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenant_gets_limit_runs_a_window_and_others_are_not_affected() {
        let runs = TestRuns::default();
        let window = Duration::from_secs(60);
        for _ in 0..3 {
            assert!(runs.admit("acme", 3, window).is_ok());
        }
        let wait = runs.admit("acme", 3, window).unwrap_err();
        assert!(wait > Duration::from_secs(55) && wait <= window, "{wait:?}");
        assert!(runs.admit("globex", 3, window).is_ok());
    }
}

//! `GET /metrics`: OpenMetrics text for Evo's operators. It may name tenants, so it takes the
//! platform's ingest token, not a tenant's admin token.
//!
//! The cardinality is bounded whatever the number of integrations: every figure is an aggregate
//! over all integrations (by state, by attempt outcome, totals, one latency histogram), and only
//! the integrations that need attention get series of their own, at most
//! [`MetricsConfig::max_tenant_series`] of them, chosen in this order:
//!
//! 1. paused integrations (401, 403, 404, 410 or a redirect), by tenant name;
//! 2. failing integrations (the last attempt failed), by tenant name;
//! 3. integrations whose oldest queued event has waited at least [`WAITING_ATTENTION`], oldest
//!    first.
//!
//! Names sort the first two groups so that the same tenants keep their series from one scrape to
//! the next (new series at every scrape are a cost to Prometheus too); how many paused or failing
//! ones were left out is `evo_siem_tenant_series_omitted`. The detail of any tenant is in its
//! status API.
//!
//! The backlog figures come from one spool query ([`Spool::backlog_summary`]); the counters are
//! read from memory. Only the paused and failing integrations shown that are not among the
//! longest-waiting ones cost a query each, so at most `max_tenant_series`.

use super::App;
use crate::LATENCY_BUCKETS;
use crate::spool::{Backlog, BacklogSummary, Spool};
use crate::{DeliveryStats, LatencyHistogram};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use serde::Deserialize;
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};
use subtle::ConstantTimeEq;

/// The `[metrics]` table of the sender's configuration.
///
/// ```toml
/// [metrics]
/// max_tenant_series = 50   # integrations with series of their own, at most
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Most integrations given series of their own (those needing attention: paused, failing,
    /// or waiting longest; see the module docs); every other figure is an aggregate.
    pub max_tenant_series: usize,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            max_tenant_series: DEFAULT_MAX_TENANT_SERIES,
        }
    }
}

const DEFAULT_MAX_TENANT_SERIES: usize = 50;

/// A backlog whose oldest event has waited this long makes its integration one that needs
/// attention. Shorter waits are normal batching (`linger`) and retries; showing them would give
/// new series at every scrape without telling anything.
pub const WAITING_ATTENTION: Duration = Duration::from_secs(60);

/// The content type of the OpenMetrics text format, which Prometheus negotiates and reads.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

pub(crate) async fn metrics(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
        .unwrap_or_default();
    if !bool::from(presented.ct_eq(app.ingest_token.as_bytes())) {
        return super::errors::response(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "the platform's bearer token is required",
        );
    }
    let tenants = app.registry.tenants();
    // Every counter ever created, removed integrations included, so that the totals never go
    // down; the states count the integrations in force only.
    let stats: Vec<(String, Arc<DeliveryStats>)> = app
        .stats
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .iter()
        .map(|(tenant, stats)| (tenant.clone(), stats.clone()))
        .collect();
    let cap = app.metrics.max_tenant_series;
    match snapshot(app.spool.as_ref(), &tenants, &stats, cap, SystemTime::now()).await {
        Ok(snapshot) => match render(snapshot) {
            Ok(text) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response(),
            Err(err) => {
                tracing::error!(error = %err, "cannot encode /metrics");
                super::errors::response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "the metrics could not be encoded; see the sender's log",
                )
            }
        },
        Err(err) => {
            tracing::warn!(error = %err, "spool unreadable for /metrics");
            let mut response = super::errors::response(
                StatusCode::SERVICE_UNAVAILABLE,
                "storage",
                "the spool could not be read; try again",
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, axum::http::HeaderValue::from(5));
            response
        }
    }
}

/// An integration's state, as the status API names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IntegrationState {
    Active,
    Failing,
    Paused,
}

impl IntegrationState {
    const ALL: [IntegrationState; 3] = [Self::Active, Self::Failing, Self::Paused];

    fn of(stats: &DeliveryStats) -> Self {
        if stats.paused.load(Ordering::Relaxed) {
            Self::Paused
        } else if stats.failing.load(Ordering::Relaxed) {
            Self::Failing
        } else {
            Self::Active
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Failing => "failing",
            Self::Paused => "paused",
        }
    }
}

/// An integration shown with series of its own.
#[derive(Debug, Clone, PartialEq)]
struct Shown {
    tenant: String,
    state: IntegrationState,
    backlog: Backlog,
    /// Age of its oldest queued event, in seconds (0 when none).
    oldest_age: f64,
}

/// Everything one scrape says, read at once and then encoded.
#[derive(Debug, Default)]
struct Snapshot {
    /// Integrations in force by state: active, failing, paused.
    states: [u64; 3],
    /// Attempts by outcome, in the order of [`OUTCOMES`].
    attempts: [u64; 5],
    delivered: u64,
    excluded: u64,
    dead_lettered: u64,
    /// Cumulative counts per latency bucket (the last is `+Inf`), and the sum in seconds.
    latency: (Vec<u64>, f64),
    backlog: BacklogSummary,
    /// Age of the oldest queued event of all, in seconds (0 when none).
    oldest_age: f64,
    shown: Vec<Shown>,
    omitted: u64,
}

const OUTCOMES: [&str; 5] = ["delivered", "retried", "split", "dead_lettered", "paused"];

fn age(since: Option<SystemTime>, now: SystemTime) -> f64 {
    since.map_or(0.0, |at| {
        now.duration_since(at).unwrap_or_default().as_secs_f64()
    })
}

async fn snapshot(
    spool: &dyn Spool,
    tenants: &[String],
    stats: &[(String, Arc<DeliveryStats>)],
    cap: usize,
    now: SystemTime,
) -> Result<Snapshot, crate::spool::SpoolError> {
    let mut snap = Snapshot {
        latency: (vec![0; LATENCY_BUCKETS.len() + 1], 0.0),
        ..Snapshot::default()
    };
    for (_, s) in stats {
        let a = &s.attempts;
        for (total, counter) in snap.attempts.iter_mut().zip([
            &a.delivered,
            &a.retried,
            &a.split,
            &a.dead_lettered,
            &a.paused,
        ]) {
            *total += counter.load(Ordering::Relaxed);
        }
        snap.delivered += s.delivered.load(Ordering::Relaxed);
        snap.excluded += s.excluded.load(Ordering::Relaxed);
        snap.dead_lettered += s.dead_lettered.load(Ordering::Relaxed);
        add_latency(&mut snap.latency, &s.latency);
    }
    let in_force: HashSet<&str> = tenants.iter().map(String::as_str).collect();
    let mut paused = Vec::new();
    let mut failing = Vec::new();
    let mut with_stats = 0;
    for (tenant, s) in stats {
        if !in_force.contains(tenant.as_str()) {
            continue;
        }
        with_stats += 1;
        let state = IntegrationState::of(s);
        snap.states[state as usize] += 1;
        match state {
            IntegrationState::Paused => paused.push(tenant.as_str()),
            IntegrationState::Failing => failing.push(tenant.as_str()),
            IntegrationState::Active => {}
        }
    }
    // An integration whose worker has not started yet has no counters: it is active.
    snap.states[IntegrationState::Active as usize] += (in_force.len() - with_stats) as u64;
    paused.sort_unstable();
    failing.sort_unstable();

    // The longest-waiting integrations: one query, however many integrations there are.
    snap.backlog = spool.backlog_summary(cap).await?;
    snap.oldest_age = age(snap.backlog.oldest.first().and_then(|w| w.since), now);
    let waiting: Vec<_> = snap
        .backlog
        .oldest
        .iter()
        .filter(|w| in_force.contains(w.integration.as_str()))
        .filter(|w| age(w.since, now) >= WAITING_ATTENTION.as_secs_f64())
        .collect();

    let mut chosen: Vec<(&str, IntegrationState)> = Vec::new();
    let mut seen = HashSet::new();
    let candidates = paused
        .iter()
        .map(|t| (*t, IntegrationState::Paused))
        .chain(failing.iter().map(|t| (*t, IntegrationState::Failing)))
        .chain(
            waiting
                .iter()
                .map(|w| (w.integration.as_str(), IntegrationState::Active)),
        );
    for (tenant, state) in candidates {
        if !seen.insert(tenant) {
            continue;
        }
        if chosen.len() < cap {
            chosen.push((tenant, state));
        } else if state != IntegrationState::Active {
            // Counted for paused and failing ones only: the spool names no more than `cap`
            // waiting integrations, so how many more wait is known in aggregate only.
            snap.omitted += 1;
        }
    }
    for (tenant, state) in chosen {
        let known = snap.backlog.oldest.iter().find(|w| w.integration == tenant);
        let (backlog, oldest_age) = match known {
            Some(w) => (w.backlog, age(w.since, now)),
            // Paused or failing but not among the longest waiting: its own figures, one query
            // each, for at most `cap` integrations.
            None => (
                spool.backlog(tenant).await?,
                age(spool.oldest(tenant).await?, now),
            ),
        };
        snap.shown.push(Shown {
            tenant: tenant.to_owned(),
            state,
            backlog,
            oldest_age,
        });
    }
    Ok(snap)
}

fn add_latency(into: &mut (Vec<u64>, f64), histogram: &LatencyHistogram) {
    let (buckets, sum) = histogram.snapshot();
    for (total, count) in into.0.iter_mut().zip(buckets) {
        *total += count;
    }
    into.1 += sum;
}

fn render(snapshot: Snapshot) -> Result<String, std::fmt::Error> {
    let mut registry = prometheus_client::registry::Registry::default();
    registry.register_collector(Box::new(snapshot));
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry)?;
    Ok(text)
}

impl Collector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        use MetricType::{Counter, Gauge, Histogram};
        let mut family = encoder.encode_descriptor(
            "evo_siem_integrations",
            "Integrations in force, by state (as in the status API).",
            None,
            Gauge,
        )?;
        for state in IntegrationState::ALL {
            family
                .encode_family(&[("state", state.name())])?
                .encode_gauge(&self.states[state as usize])?;
        }
        for (name, help, value) in [
            (
                "evo_siem_integrations_waiting",
                "Integrations with at least one event queued.",
                self.backlog.integrations,
            ),
            (
                "evo_siem_backlog_events",
                "Events queued, over all integrations.",
                self.backlog.total.events,
            ),
            (
                "evo_siem_backlog_bytes",
                "Bytes of event JSON queued, over all integrations.",
                self.backlog.total.bytes,
            ),
            (
                "evo_siem_tenant_series_omitted",
                "Paused or failing integrations left without series of their own (over [metrics] max_tenant_series).",
                self.omitted,
            ),
        ] {
            encoder
                .encode_descriptor(name, help, None, Gauge)?
                .encode_gauge(&value)?;
        }
        encoder
            .encode_descriptor(
                "evo_siem_oldest_event_age_seconds",
                "Age of the oldest queued event of all integrations (0 when none).",
                None,
                Gauge,
            )?
            .encode_gauge(&self.oldest_age)?;

        // Counter names are given without `_total`: the OpenMetrics encoder appends it.
        let mut family = encoder.encode_descriptor(
            "evo_siem_delivery_attempts",
            "Delivery attempts (one batch POSTed once), by how they ended.",
            None,
            Counter,
        )?;
        for (outcome, value) in OUTCOMES.iter().zip(self.attempts) {
            family
                .encode_family(&[("outcome", *outcome)])?
                .encode_counter::<NoLabelSet, _, u64>(&value, None)?;
        }
        for (name, help, value) in [
            (
                "evo_siem_events_delivered",
                "Events delivered (their batch answered 2xx).",
                self.delivered,
            ),
            (
                "evo_siem_events_excluded",
                "Events dropped as excluded actions, never sent.",
                self.excluded,
            ),
            (
                "evo_siem_events_dead_lettered",
                "Events moved to the dead-letter store.",
                self.dead_lettered,
            ),
        ] {
            encoder
                .encode_descriptor(name, help, None, Counter)?
                .encode_counter::<NoLabelSet, _, u64>(&value, None)?;
        }

        let (cumulative, sum) = &self.latency;
        // The encoder takes each bucket's own count and accumulates them itself.
        let bounds = LATENCY_BUCKETS.iter().copied().chain([f64::INFINITY]);
        let mut previous = 0;
        let buckets: Vec<(f64, u64)> = bounds
            .zip(cumulative)
            .map(|(bound, total)| {
                let own = total - previous;
                previous = *total;
                (bound, own)
            })
            .collect();
        encoder
            .encode_descriptor(
                "evo_siem_attempt_duration_seconds",
                "Duration of delivery attempts, all integrations.",
                None,
                Histogram,
            )?
            .encode_histogram::<NoLabelSet>(
                *sum,
                cumulative.last().copied().unwrap_or(0),
                &buckets,
                None,
            )?;

        let mut family = encoder.encode_descriptor(
            "evo_siem_tenant_state",
            "1 for each integration needing attention (paused, failing, or waiting longest), with its state.",
            None,
            Gauge,
        )?;
        for shown in &self.shown {
            family
                .encode_family(&[
                    ("tenant", shown.tenant.as_str()),
                    ("state", shown.state.name()),
                ])?
                .encode_gauge(&1u64)?;
        }
        for (name, help, events) in [
            (
                "evo_siem_tenant_backlog_events",
                "Events queued, for each integration needing attention.",
                true,
            ),
            (
                "evo_siem_tenant_backlog_bytes",
                "Bytes of event JSON queued, for each integration needing attention.",
                false,
            ),
        ] {
            let mut family = encoder.encode_descriptor(name, help, None, Gauge)?;
            for shown in &self.shown {
                let value = if events {
                    shown.backlog.events
                } else {
                    shown.backlog.bytes
                };
                family
                    .encode_family(&[("tenant", shown.tenant.as_str())])?
                    .encode_gauge(&value)?;
            }
        }
        let mut family = encoder.encode_descriptor(
            "evo_siem_tenant_oldest_event_age_seconds",
            "Age of the oldest queued event, for each integration needing attention (0 when none).",
            None,
            Gauge,
        )?;
        for shown in &self.shown {
            family
                .encode_family(&[("tenant", shown.tenant.as_str())])?
                .encode_gauge(&shown.oldest_age)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spool::{NewEvent, SqliteSpool};

    fn event() -> NewEvent {
        NewEvent {
            action: "User logout".into(),
            json: "{}".into(),
        }
    }

    #[tokio::test]
    async fn attention_goes_to_paused_then_failing_then_the_longest_waiting_up_to_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let spool = SqliteSpool::open(&dir.path().join("spool.db"), Default::default()).unwrap();
        for tenant in ["waits-longest", "waits-next", "failing", "quiet"] {
            spool.append(tenant, vec![event()]).await.unwrap();
        }
        let tenants: Vec<String> = ["paused", "failing", "waits-longest", "waits-next", "quiet"]
            .map(String::from)
            .into();
        let stats: Vec<(String, Arc<DeliveryStats>)> = tenants
            .iter()
            .map(|t| (t.clone(), Arc::default()))
            .collect();
        stats[0].1.paused.store(true, Ordering::Relaxed);
        stats[1].1.failing.store(true, Ordering::Relaxed);
        let shown = |snap: &Snapshot| {
            snap.shown
                .iter()
                .map(|s| (s.tenant.clone(), s.state.name()))
                .collect::<Vec<_>>()
        };

        // Now: nothing has waited a minute; only the paused and the failing one need attention.
        let snap = snapshot(&spool, &tenants, &stats, 50, SystemTime::now())
            .await
            .unwrap();
        assert_eq!(
            shown(&snap),
            [("paused".into(), "paused"), ("failing".into(), "failing")]
        );
        assert_eq!(snap.states, [3, 1, 1]);
        assert_eq!(snap.backlog.total.events, 4);
        assert_eq!(snap.shown[1].backlog.events, 1);

        // Two minutes later every backlog needs attention; the cap keeps the first three.
        let later = SystemTime::now() + Duration::from_secs(120);
        let snap = snapshot(&spool, &tenants, &stats, 3, later).await.unwrap();
        assert_eq!(
            shown(&snap),
            [
                ("paused".into(), "paused"),
                ("failing".into(), "failing"),
                ("waits-longest".into(), "active"),
            ]
        );
        assert!(snap.shown[2].oldest_age >= 120.0);
        assert_eq!(snap.omitted, 0);
        // A cap of one leaves the failing one out, and says so.
        let snap = snapshot(&spool, &tenants, &stats, 1, later).await.unwrap();
        assert_eq!(shown(&snap), [("paused".into(), "paused")]);
        assert_eq!(snap.omitted, 1);
        let text = render(snap).unwrap();
        assert!(
            text.contains("evo_siem_tenant_series_omitted 1\n"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}

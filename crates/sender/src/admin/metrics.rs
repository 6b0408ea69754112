//! `GET /metrics`: Prometheus text format, for Evo's operators (it names every tenant), so it
//! takes the platform's ingest token, not a tenant's admin token.

use crate::LATENCY_BUCKETS;
use crate::service::App;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::SystemTime;
use subtle::ConstantTimeEq;

/// A label value with `\`, `"` and newlines escaped, as the text format requires.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

pub(crate) async fn metrics(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
        .unwrap_or_default();
    if !bool::from(presented.ct_eq(app.ingest_token.as_bytes())) {
        return (
            StatusCode::UNAUTHORIZED,
            "the platform's bearer token is required\n",
        )
            .into_response();
    }
    let mut tenants = app.registry.tenants();
    tenants.sort();
    let mut out = String::new();
    let mut gauges = Vec::new();
    for tenant in &tenants {
        let backlog = app.spool.backlog(tenant).await.unwrap_or_default();
        let oldest = app.spool.oldest(tenant).await.ok().flatten().map(|at| {
            SystemTime::now()
                .duration_since(at)
                .unwrap_or_default()
                .as_secs_f64()
        });
        gauges.push((tenant, backlog, oldest));
    }
    let metric = |out: &mut String, name: &str, kind: &str, help: &str| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    };
    metric(
        &mut out,
        "evo_siem_backlog_events",
        "gauge",
        "Events queued per integration.",
    );
    for (tenant, backlog, _) in &gauges {
        let _ = writeln!(
            out,
            "evo_siem_backlog_events{{tenant=\"{}\"}} {}",
            label(tenant),
            backlog.events
        );
    }
    metric(
        &mut out,
        "evo_siem_backlog_bytes",
        "gauge",
        "Bytes of event JSON queued per integration.",
    );
    for (tenant, backlog, _) in &gauges {
        let _ = writeln!(
            out,
            "evo_siem_backlog_bytes{{tenant=\"{}\"}} {}",
            label(tenant),
            backlog.bytes
        );
    }
    metric(
        &mut out,
        "evo_siem_oldest_event_age_seconds",
        "gauge",
        "Age of the oldest queued event (0 when none).",
    );
    for (tenant, _, oldest) in &gauges {
        let _ = writeln!(
            out,
            "evo_siem_oldest_event_age_seconds{{tenant=\"{}\"}} {:.3}",
            label(tenant),
            oldest.unwrap_or(0.0)
        );
    }
    let stats: Vec<_> = tenants
        .iter()
        .map(|t| (t, super::operations::stats_of(&app, t)))
        .collect();
    metric(
        &mut out,
        "evo_siem_deliveries_total",
        "counter",
        "Delivery attempts by outcome.",
    );
    for (tenant, s) in &stats {
        let a = &s.attempts;
        for (outcome, counter) in [
            ("delivered", &a.delivered),
            ("retried", &a.retried),
            ("split", &a.split),
            ("dead_lettered", &a.dead_lettered),
            ("paused", &a.paused),
        ] {
            let _ = writeln!(
                out,
                "evo_siem_deliveries_total{{tenant=\"{}\",outcome=\"{outcome}\"}} {}",
                label(tenant),
                counter.load(Ordering::Relaxed)
            );
        }
    }
    metric(
        &mut out,
        "evo_siem_attempt_duration_seconds",
        "histogram",
        "Duration of delivery attempts.",
    );
    for (tenant, s) in &stats {
        let (buckets, sum) = s.latency.snapshot();
        let tenant = label(tenant);
        for (bound, count) in LATENCY_BUCKETS.iter().zip(&buckets) {
            let _ = writeln!(
                out,
                "evo_siem_attempt_duration_seconds_bucket{{tenant=\"{tenant}\",le=\"{bound}\"}} {count}"
            );
        }
        let total = buckets.last().copied().unwrap_or(0);
        let _ = writeln!(
            out,
            "evo_siem_attempt_duration_seconds_bucket{{tenant=\"{tenant}\",le=\"+Inf\"}} {total}"
        );
        let _ = writeln!(
            out,
            "evo_siem_attempt_duration_seconds_sum{{tenant=\"{tenant}\"}} {sum:.6}"
        );
        let _ = writeln!(
            out,
            "evo_siem_attempt_duration_seconds_count{{tenant=\"{tenant}\"}} {total}"
        );
    }
    for (name, help, pick) in [
        ("evo_siem_events_delivered_total", "Events delivered.", 0),
        (
            "evo_siem_events_excluded_total",
            "Events dropped as excluded actions.",
            1,
        ),
        (
            "evo_siem_events_dead_lettered_total",
            "Events moved to the dead-letter store.",
            2,
        ),
    ] {
        metric(&mut out, name, "counter", help);
        for (tenant, s) in &stats {
            let value = match pick {
                0 => s.delivered.load(Ordering::Relaxed),
                1 => s.excluded.load(Ordering::Relaxed),
                _ => s.dead_lettered.load(Ordering::Relaxed),
            };
            let _ = writeln!(out, "{name}{{tenant=\"{}\"}} {value}", label(tenant));
        }
    }
    metric(
        &mut out,
        "evo_siem_integration_paused",
        "gauge",
        "1 when the integration is paused.",
    );
    for (tenant, s) in &stats {
        let _ = writeln!(
            out,
            "evo_siem_integration_paused{{tenant=\"{}\"}} {}",
            label(tenant),
            u8::from(s.paused.load(Ordering::Relaxed))
        );
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
        .into_response()
}

//! The verdict: the summary table and what failed, computed from what the mock SIEM recorded
//! against what the feeder handed over.

use crate::TENANTS;
use crate::status::ms;
use crate::tracker::Tracker;
use evo_siem_mock::MockSiem;
use evo_siem_sender::service::Sender;
use evo_siem_workload::percentiles::Summary;

/// Prints the summary table and the verdict; returns what failed.
pub(crate) fn summarize(t: &mut Tracker, siem: &MockSiem, sender: &Sender) -> Vec<String> {
    t.poll(siem);
    let stats = siem.stats();
    let retried: Vec<u64> = TENANTS
        .iter()
        .map(|(tenant, _)| {
            sender
                .stats(tenant)
                .map_or(0, |s| s.retried.load(std::sync::atomic::Ordering::Relaxed))
        })
        .collect();
    let summary = Summary::of(&mut t.latencies);
    let signature_refusals = stats.rejected.bad_signature + stats.rejected.missing_signature;
    let other_refusals = stats.rejected.stale
        + stats.rejected.malformed
        + stats.rejected.unsupported_schema
        + stats.rejected.too_large;
    let missing = t.missing();
    let mut out = String::new();
    let mut row = |name: &str, a: String, b: String, total: String| {
        out.push_str(&format!("  {name:<34} {a:>9} {b:>9} {total:>9}\n"));
    };
    row("", TENANTS[0].0.into(), TENANTS[1].0.into(), "total".into());
    let both = |v: [u64; 2]| {
        (
            v[0].to_string(),
            v[1].to_string(),
            (v[0] + v[1]).to_string(),
        )
    };
    let (a, b, total) = both(t.ingested);
    row("events ingested", a, b, total);
    let (a, b, total) = both(t.excluded);
    row("excluded (never sent)", a, b, total);
    let (a, b, total) = both(t.delivered);
    row("delivered (distinct, at the SIEM)", a, b, total);
    let (a, b, total) = both([retried[0], retried[1]]);
    row("retried attempts (sender)", a, b, total);
    let dash = || "-".to_owned();
    row("missing", dash(), dash(), missing.to_string());
    row(
        "excluded that arrived",
        dash(),
        dash(),
        t.excluded_arrived.to_string(),
    );
    row(
        "duplicates at the SIEM",
        dash(),
        dash(),
        stats.duplicate_events.to_string(),
    );
    row(
        "deliveries / faults injected",
        dash(),
        dash(),
        format!("{}/{}", stats.deliveries, stats.faults_injected),
    );
    row(
        "signature refusals",
        dash(),
        dash(),
        signature_refusals.to_string(),
    );
    if let Some(s) = summary {
        row(
            "latency ingest → SIEM p50 / p99",
            dash(),
            dash(),
            format!("{}/{}", ms(s.p50), ms(s.p99)),
        );
    }
    let mut failures = Vec::new();
    if missing > 0 {
        failures.push(format!("{missing} events never arrived"));
    }
    if t.excluded_arrived > 0 {
        failures.push(format!("{} excluded events arrived", t.excluded_arrived));
    }
    if t.unknown_arrived > 0 {
        failures.push(format!(
            "{} events arrived that were never ingested",
            t.unknown_arrived
        ));
    }
    if signature_refusals > 0 || other_refusals > 0 {
        failures.push(format!(
            "the SIEM refused {} deliveries",
            signature_refusals + other_refusals
        ));
    }
    if t.filter_mismatches > 0 {
        failures.push(format!(
            "{} ingest answers counted exclusions differently",
            t.filter_mismatches
        ));
    }
    if t.refused_requests > 0 {
        failures.push(format!(
            "{} ingest requests were refused",
            t.refused_requests
        ));
    }
    println!("{out}");
    let delivered_total: u64 = t.delivered.iter().sum();
    if failures.is_empty() {
        println!(
            "verdict: PASS  every non-excluded event delivered ({delivered_total}), no excluded event delivered, every delivery's signature valid ({} accepted)",
            stats.accepted_deliveries
        );
    } else {
        println!("verdict: FAIL  {}", failures.join("; "));
    }
    failures
}

//! The clock-skew scenario: the SIEM's clock runs minutes off for a few seconds, then is right
//! again, and the report says what the sender did about it, as measured at the SIEM.
//!
//! For [`SKEW_WINDOW`] after the events are ingested, the mock SIEM judges the replay window by
//! a clock [`SKEW_S`] seconds ahead (first half) and then as many behind (second half), so it
//! refuses every delivery as stale (401, as the contract says). The contract makes 401 a pause:
//! the events stay queued, the sender probes with backoff, and delivers everything once the
//! clock is right. The scenario measures how many deliveries were refused and how often the
//! sender probed, whether an event was lost, and how long after the skew everything had
//! arrived; the suite's properties (at-least-once first) must hold across it, the refusals
//! inside the skew excepted.

use super::case::{GenEvent, IntegrationCase};
use super::{Case, CaseError, Observed, SenderUnderTest, SuiteOptions, setup};
use evo_siem_mock::faults::{Action, Rule, When};
use evo_siem_mock::{MockSiem, MockSiemConfig};
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde::Serialize;
use std::time::{Duration, Instant, SystemTime};

/// How far off the SIEM's clock is: ten minutes, twice the replay window's tolerance.
pub const SKEW_S: i64 = 600;
/// How long the clock is off (ahead for the first half, behind for the second).
pub const SKEW_WINDOW: Duration = Duration::from_secs(3);
/// Events ingested for the scenario.
const EVENTS: usize = 40;
/// A refusal recorded this close after the skew's end still counts as inside it: the mock's
/// window starts a moment after the scenario's clock reading.
const EDGE_MS: i64 = 50;

/// What the sender did about a SIEM whose clock was off, measured at the SIEM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClockSkewReport {
    /// How far off the SIEM's clock was, in seconds (ahead, then as many behind).
    pub skew_s: i64,
    /// How long it was off, in milliseconds.
    pub window_ms: u64,
    /// Events ingested (none excluded), all before the skew ended.
    pub events: u64,
    /// Deliveries the SIEM refused as stale (401) while its clock was off.
    pub refused: u64,
    /// Deliveries refused as stale after the clock was right again: the sender's own stamps
    /// were stale (a violation of the envelope property).
    pub refused_after: u64,
    /// The median time between two refused attempts, in milliseconds: the sender's probe
    /// interval while paused (`None` with fewer than two refusals).
    pub probe_interval_ms: Option<u64>,
    /// Events that never arrived.
    pub lost: u64,
    /// Events that arrived more than once.
    pub duplicates: u64,
    /// From the end of the skew to the first delivery the SIEM accepted, in milliseconds.
    pub first_accepted_after_ms: Option<i64>,
    /// From the end of the skew to the arrival of the last event, in milliseconds: the time to
    /// recover (`None` when an event never arrived).
    pub recovered_after_ms: Option<i64>,
}

/// The scenario's events: realistic ones from the suite's generator, seeded by `seed`.
fn events(seed: u64) -> Result<Vec<GenEvent>, CaseError> {
    let mut bytes = [0_u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    bytes[8] = 0x5c; // Not the property cases' stream.
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &bytes),
    );
    (0..EVENTS)
        .map(|_| {
            super::case::event()
                .new_tree(&mut runner)
                .map(|tree| tree.current())
                .map_err(setup)
        })
        .collect()
}

/// The SIEM's clock: `SKEW_S` ahead for the first half of the window, as far behind for the
/// second.
fn skew_rules() -> Vec<Rule> {
    let window = u64::try_from(SKEW_WINDOW.as_millis()).unwrap_or(u64::MAX);
    vec![
        Rule {
            when: When::Window {
                from_ms: 0,
                until_ms: window / 2,
            },
            action: Action::ClockSkew { seconds: SKEW_S },
        },
        Rule {
            when: When::Window {
                from_ms: window / 2,
                until_ms: window,
            },
            action: Action::ClockSkew { seconds: -SKEW_S },
        },
    ]
}

fn unix_ms(at: SystemTime) -> i64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Runs the scenario against `sut` and measures it. `Err` when the harness could not run it,
/// when the skew did not take (nothing refused: the scenario proved nothing), or when a property
/// broke (events lost, stale stamps after the skew, ...).
pub(super) async fn run<S: SenderUnderTest>(
    sut: &mut S,
    options: &SuiteOptions,
) -> Result<ClockSkewReport, (Option<ClockSkewReport>, String)> {
    let harness = |e: CaseError| (None, e.to_string());
    let dir = tempfile::tempdir().map_err(|e| harness(setup(e)))?;
    let secret = uuid::Uuid::new_v4().simple().to_string();
    let integration = IntegrationCase {
        tenant: "skew".into(),
        secret: Some(secret.clone()),
        headers: Vec::new(),
        excluded: Vec::new(),
        max_batch_events: 8,
        max_batch_bytes: 65_536,
        linger_ms: 0,
        events: events(options.seed).map_err(harness)?,
        chunk: 10,
        faults: skew_rules(),
    };
    let case = Case {
        integrations: vec![integration],
        restart_after: None,
        fault_seed: 0,
    };
    let siem = MockSiem::start(
        ([127, 0, 0, 1], 0).into(),
        MockSiemConfig::signed([secret.as_str()]),
    )
    .await
    .map_err(|e| harness(setup(e)))?;
    let token = uuid::Uuid::new_v4().to_string();
    let config = super::sender_config(
        dir.path(),
        &case,
        std::slice::from_ref(&siem),
        &token,
        options,
    )
    .map_err(|e| harness(setup(e)))?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| harness(setup(e)))?;
    let addr = sut
        .start(&config)
        .await
        .map_err(|e| (None, format!("sender: cannot start: {e}")))?;

    // The skew starts now, before the first event is ingested.
    let skew_start = SystemTime::now();
    siem.set_faults(skew_rules())
        .map_err(|e| harness(setup(e)))?;
    let skew_end_ms = unix_ms(skew_start + SKEW_WINDOW);
    for (n, (tenant, body)) in super::requests(&case).iter().enumerate() {
        let addrs = sut.ingest_addrs();
        let target = addrs.get(n % addrs.len().max(1)).copied().unwrap_or(addr);
        let answer = client
            .post(format!("http://{target}/v1/tenants/{tenant}/audit-events"))
            .bearer_auth(&token)
            .header("content-type", "application/x-ndjson")
            .body(body.clone())
            .send()
            .await;
        match answer {
            Ok(answer) if answer.status().as_u16() == 202 => {}
            Ok(answer) => {
                sut.stop().await;
                return Err((
                    None,
                    format!("sender: ingest request {n} answered {}", answer.status()),
                ));
            }
            Err(e) => {
                sut.stop().await;
                return Err((None, format!("sender: ingest request {n}: {e}")));
            }
        }
    }
    let deadline = Instant::now() + SKEW_WINDOW + options.deadline;
    let siems = std::slice::from_ref(&siem);
    while Instant::now() < deadline && !super::all_arrived(&case, siems) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(super::QUIET).await;
    sut.stop().await;

    let deliveries = siem.deliveries();
    // Refused as stale: `timestamp_too_old` (clock ahead) or `timestamp_too_new` (behind).
    let stale = |d: &&evo_siem_mock::Delivery| d.verdict.starts_with("timestamp_too_");
    let received =
        |d: &evo_siem_mock::Delivery| i64::try_from(d.received_at_ms).unwrap_or(i64::MAX);
    let refused: Vec<i64> = deliveries
        .iter()
        .filter(stale)
        .map(received)
        .filter(|at| *at <= skew_end_ms + EDGE_MS)
        .collect();
    let refused_after = deliveries.iter().filter(stale).count() - refused.len();
    let mut gaps: Vec<i64> = refused.windows(2).map(|w| w[1] - w[0]).collect();
    gaps.sort_unstable();
    let events = siem.events();
    let seen: std::collections::HashSet<&str> = events.iter().map(|e| e.uuid.as_str()).collect();
    let expected = &case.integrations[0].events;
    let lost = expected
        .iter()
        .filter(|e| !seen.contains(e.uuid.as_str()))
        .count();
    let stats = siem.stats();
    let report = ClockSkewReport {
        skew_s: SKEW_S,
        window_ms: u64::try_from(SKEW_WINDOW.as_millis()).unwrap_or(u64::MAX),
        events: expected.len() as u64,
        refused: refused.len() as u64,
        refused_after: refused_after as u64,
        probe_interval_ms: gaps
            .get(gaps.len() / 2)
            .map(|gap| u64::try_from(*gap).unwrap_or(0)),
        lost: lost as u64,
        duplicates: stats.duplicate_events,
        first_accepted_after_ms: deliveries
            .iter()
            .find(|d| d.status == 200)
            .map(|d| received(d) - skew_end_ms),
        recovered_after_ms: (lost == 0)
            .then(|| {
                events
                    .iter()
                    .map(|e| i64::try_from(e.received_at_ms).unwrap_or(i64::MAX))
                    .max()
            })
            .flatten()
            .map(|last| last - skew_end_ms),
    };
    if report.refused == 0 {
        return Err((
            Some(report),
            "harness: the SIEM refused nothing while its clock was off: the skew did not take"
                .into(),
        ));
    }
    // The refusals the skew caused are the SIEM's doing; every other property holds as in any
    // case, at-least-once first.
    let mut observed = Observed {
        stats,
        deliveries,
        events,
    };
    observed.stats.rejected.stale = observed.stats.rejected.stale.saturating_sub(report.refused);
    let judgement = super::check(&case, std::slice::from_ref(&observed));
    if !judgement.violations.is_empty() {
        let reason = CaseError::Violations(judgement.violations).to_string();
        return Err((Some(report), format!("clock skew: {reason}")));
    }
    Ok(report)
}

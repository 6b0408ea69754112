//! The mock SIEM against the real sender: recording, statistics, verification and faults seen
//! from the sender's side. Here rather than in the mock SIEM's crate, so that the mock depends
//! on no sender, not even in its tests.

use evo_siem_mock::faults::Rule;
use evo_siem_mock::{MockSiem, MockSiemConfig};
use evo_siem_protocol::Secret;
use evo_siem_sender::batcher::BatchLimits;
use evo_siem_sender::dispatch::{DispatchSettings, Dispatcher};
use evo_siem_sender::retry::Backoff;
use evo_siem_sender::spool::{BacklogLimits, NewEvent, Spool, SqliteSpool};
use evo_siem_sender::{Integration, Step, Worker};
use std::sync::Arc;
use std::time::Duration;

fn event(n: usize) -> NewEvent {
    let json = format!(
        r#"{{"event_type":"create","table":"events","timestamp":"2024-01-15T10:30:00.000Z","data":{{"uuid":"{}","action":"User logout","status":"Success","actor":{{"kind":"User","name":"zoë{n}@example.com"}},"origin":{{"hostname":"h","ipaddr":"192.0.2.1"}},"target":{{"kind":"User","name":"u"}},"ts":1706000000123456789,"created_at":1706000000123456789,"extra":{{"n":{n}}}}}}}"#,
        uuid::Uuid::new_v4()
    );
    NewEvent {
        action: "User logout".into(),
        json,
    }
}

async fn deliver(siem: &MockSiem, secret: &str, events: Vec<NewEvent>) -> Worker {
    let dir = tempfile::tempdir().unwrap();
    let spool = Arc::new(
        SqliteSpool::open(&dir.path().join("spool.db"), BacklogLimits::default()).unwrap(),
    );
    spool.append("acme", events).await.unwrap();
    let allowed = vec!["127.0.0.1/32".parse().unwrap()];
    let integration = Integration::new("acme", &siem.webhook_url(), &allowed)
        .unwrap()
        .with_secret(Secret::new(secret))
        .with_limits(BatchLimits::new(100, 1 << 20, Duration::ZERO).unwrap());
    let settings = DispatchSettings {
        timeout: Duration::from_secs(1),
        allowed,
        ..DispatchSettings::default()
    };
    let backoff = Backoff::new(Duration::from_millis(10), Duration::from_millis(20)).unwrap();
    let mut worker = Worker::new(
        spool,
        Dispatcher::new(&settings).unwrap(),
        Arc::new(integration),
        backoff,
    );
    for _ in 0..50 {
        match worker.step().await.unwrap() {
            Step::Idle => return worker,
            Step::Wait(after) | Step::Backoff(after) => tokio::time::sleep(after).await,
            Step::Progress | Step::Removed => {}
        }
    }
    panic!("not drained");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_verifies_and_survives_faults_with_the_sender() {
    let siem = MockSiem::start(
        "127.0.0.1:0".parse().unwrap(),
        MockSiemConfig::signed(["whsec-mock"]),
    )
    .await
    .unwrap();
    let rules: Vec<Rule> = serde_json::from_str(
        r#"[{"when": {"first": 2}, "action": {"status": 503, "retry_after": 0}},
            {"when": {"nth": 3}, "action": "accept_then_hang"},
            {"when": {"nth": 4}, "action": "drop"},
            {"when": {"nth": 5}, "action": "reset"}]"#,
    )
    .unwrap();
    siem.set_faults(rules).unwrap();
    let events: Vec<NewEvent> = (0..5).map(event).collect();
    let texts: Vec<String> = events.iter().map(|e| e.json.clone()).collect();
    deliver(&siem, "whsec-mock", events).await;

    let stats = siem.stats();
    // Two refusals, one accepted but never answered (the sender timed out), one connection
    // closed and one reset without an answer, one accepted.
    assert_eq!((stats.deliveries, stats.accepted_deliveries), (6, 2));
    assert_eq!(stats.faults_injected, 5);
    assert_eq!(
        (
            stats.events_received,
            stats.unique_events,
            stats.duplicate_events
        ),
        (10, 5, 5)
    );
    let deliveries = siem.deliveries();
    let verdicts: Vec<&str> = deliveries.iter().map(|d| d.verdict.as_str()).collect();
    assert_eq!(
        verdicts,
        [
            "fault:status 503",
            "fault:status 503",
            "fault:accept_then_hang",
            "fault:drop",
            "fault:reset",
            "accepted"
        ]
    );
    // A status fault reads the batch and records what it held; a dropped one cannot.
    let held: Vec<usize> = deliveries.iter().map(|d| d.events.len()).collect();
    assert_eq!(held, [5, 5, 5, 0, 0, 5]);
    let age = deliveries[5].age_ms.unwrap();
    assert!((-5_000..5_000).contains(&age), "{age}");
    let attempts: Vec<&str> = deliveries
        .iter()
        .map(|d| d.attempt.as_deref().unwrap())
        .collect();
    assert_eq!(attempts, ["1", "2", "3", "4", "5", "6"]);
    assert!(
        deliveries
            .iter()
            .all(|d| d.delivery_id == deliveries[0].delivery_id)
    );
    // Unique events, first-arrival order, exact text (unknown fields and non-ASCII included).
    let raw: Vec<String> = siem.events().into_iter().map(|e| e.raw).collect();
    assert_eq!(raw, texts);
    // Polling from an index returns only what came after it, with arrival times.
    let later = siem.events_from(3);
    assert_eq!(later.len(), 2);
    assert_eq!(later[0].raw, texts[3]);
    assert!(later[0].received_at_ms > 1_700_000_000_000);
    assert!(siem.events_from(99).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_is_counted_and_exposed_over_http() {
    let siem = MockSiem::start(
        "127.0.0.1:0".parse().unwrap(),
        MockSiemConfig::signed(["right"]),
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let spool = Arc::new(
        SqliteSpool::open(&dir.path().join("spool.db"), BacklogLimits::default()).unwrap(),
    );
    spool.append("acme", vec![event(0)]).await.unwrap();
    let allowed = vec!["127.0.0.1/32".parse().unwrap()];
    let integration = Integration::new("acme", &siem.webhook_url(), &allowed)
        .unwrap()
        .with_secret(Secret::new("wrong"));
    let settings = DispatchSettings {
        allowed,
        ..DispatchSettings::default()
    };
    let dispatcher = Dispatcher::new(&settings).unwrap();
    let report = dispatcher
        .attempt(
            &integration,
            &[&spool.pending("acme", 1).await.unwrap()[0].json],
            uuid::Uuid::new_v4(),
            1,
        )
        .await;
    assert_eq!(
        report.result,
        evo_siem_sender::retry::AttemptResult::Status {
            status: 401,
            retry_after: None
        }
    );

    let base = format!("http://{}", siem.addr());
    let stats: serde_json::Value = reqwest::get(format!("{base}/_mock/stats"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["rejected"]["bad_signature"], 1);
    assert_eq!(stats["deliveries"], 1);
    let deliveries: serde_json::Value = reqwest::get(format!("{base}/_mock/deliveries"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(deliveries[0]["verdict"], "signature_mismatch");
    let client = reqwest::Client::new();
    assert_eq!(
        client
            .delete(format!("{base}/_mock/state"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        204
    );
    let stats: serde_json::Value = reqwest::get(format!("{base}/_mock/stats"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["deliveries"], 0);
}

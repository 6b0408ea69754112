//! The Splunk HEC output against a fake HEC that follows the documented formats.

use crate::common::{
    SECRET, body, deliver, deliver_with, event, events, metric, metrics_text, relay_from_toml, uuid,
};
use crate::fakes::{HecState, hec};
use serde_json::Value;
use std::time::{Duration, Instant};

const TOKEN: &str = "a1b2c3d4-0000-4000-8000-hec-token";

fn output(url: &str, extra: &str) -> String {
    format!(
        "[[output]]\ntype = \"splunk_hec\"\nurl = \"{url}\"\ntoken_env = \"HEC_TOKEN\"\ntimeout_ms = 2000\n{extra}"
    )
}

fn parsed(events: &[String]) -> Vec<Value> {
    events
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_arrive_as_hec_event_objects_with_the_token() {
    let (url, fake) = hec(HecState {
        token: TOKEN.into(),
        indexes: Some(vec!["evo".into()]),
        ..HecState::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (relay, _) = relay_from_toml(
        dir.path(),
        &output(&url, "index = \"evo\"\nsource = \"evo-relay\"\n"),
        &[("HEC_TOKEN", TOKEN)],
    )
    .await;
    let batch = events(3);
    assert_eq!(deliver(&relay.webhook_url(), &batch).await.0, 200);
    let fake = fake.lock().unwrap();
    assert_eq!(fake.requests.len(), 1);
    let (headers, objects) = &fake.requests[0];
    assert_eq!(*objects, 3);
    assert_eq!(headers["authorization"], format!("Splunk {TOKEN}"));
    assert_eq!(headers["content-type"], "application/json");
    assert!(uuid::Uuid::try_parse(&headers["x-splunk-request-channel"]).is_ok());
    let sent: Vec<Value> = fake.indexed.iter().map(|o| o["event"].clone()).collect();
    assert_eq!(sent, parsed(&batch));
    for object in &fake.indexed {
        assert_eq!(object["time"].to_string(), "1706000000.123");
        assert_eq!(object["sourcetype"], "evo:siem:audit");
        assert_eq!(object["index"], "evo");
        assert_eq!(object["source"], "evo-relay");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_hec_is_retried_within_the_delivery() {
    let (url, fake) = hec(HecState {
        token: TOKEN.into(),
        busy_first: 2,
        ..HecState::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (relay, _) = relay_from_toml(dir.path(), &output(&url, ""), &[("HEC_TOKEN", TOKEN)]).await;
    let batch = events(2);
    assert_eq!(deliver(&relay.webhook_url(), &batch).await.0, 200);
    let fake = fake.lock().unwrap();
    assert_eq!(fake.requests.len(), 3);
    assert_eq!(fake.indexed.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hec_busy_past_the_budget_is_a_503_and_the_retry_delivers() {
    let (url, fake) = hec(HecState {
        token: TOKEN.into(),
        busy_always: true,
        ..HecState::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (relay, _) = relay_from_toml(
        dir.path(),
        &format!("request_timeout_ms = 1500\n{}", output(&url, "")),
        &[("HEC_TOKEN", TOKEN)],
    )
    .await;
    let batch = events(2);
    let began = Instant::now();
    let response = deliver_with(&relay.webhook_url(), SECRET, body(&batch)).await;
    assert_eq!(response.status().as_u16(), 503);
    assert!(response.headers().contains_key("retry-after"));
    assert!(response.text().await.unwrap().contains("splunk_hec (busy)"));
    assert!(
        began.elapsed() < Duration::from_secs(3),
        "{:?}",
        began.elapsed()
    );
    assert!(
        fake.lock().unwrap().requests.len() >= 3,
        "retried within the budget"
    );
    let text = metrics_text(&relay).await;
    assert_eq!(
        metric(
            &text,
            "evo_siem_relay_output_failures_total{output=\"splunk_hec\",kind=\"busy\"}"
        ),
        1.0
    );

    fake.lock().unwrap().busy_always = false;
    assert_eq!(deliver(&relay.webhook_url(), &batch).await.0, 200);
    assert_eq!(fake.lock().unwrap().indexed.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_is_a_503_at_once_and_never_shows() {
    let (url, fake) = hec(HecState {
        token: "the-right-token".into(),
        ..HecState::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (relay, _) = relay_from_toml(dir.path(), &output(&url, ""), &[("HEC_TOKEN", TOKEN)]).await;
    let (status, answer) = deliver(&relay.webhook_url(), &events(1)).await;
    assert_eq!(status, 503);
    assert!(answer.contains("splunk_hec (auth)"), "{answer}");
    assert!(!answer.contains(TOKEN));
    assert_eq!(
        fake.lock().unwrap().requests.len(),
        1,
        "an auth failure is not retried"
    );
    let text = metrics_text(&relay).await;
    assert!(!text.contains(TOKEN));
    assert_eq!(
        metric(
            &text,
            "evo_siem_relay_output_failures_total{output=\"splunk_hec\",kind=\"auth\"}"
        ),
        1.0
    );
    assert!(!format!("{:?}", relay.relay()).contains(TOKEN));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incorrect_index_is_a_503_not_a_dead_letter() {
    let (url, fake) = hec(HecState {
        token: TOKEN.into(),
        indexes: Some(vec!["main".into()]),
        ..HecState::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (relay, dead) = relay_from_toml(
        dir.path(),
        &output(&url, "index = \"evo\"\n"),
        &[("HEC_TOKEN", TOKEN)],
    )
    .await;
    let (status, answer) = deliver(&relay.webhook_url(), &events(2)).await;
    assert_eq!(status, 503, "{answer}");
    assert!(answer.contains("http_status"), "{answer}");
    assert!(!dead.exists());
    assert!(fake.lock().unwrap().indexed.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_event_goes_to_the_dead_letters_and_the_others_are_indexed() {
    let (url, fake) = hec(HecState {
        token: TOKEN.into(),
        ..HecState::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (relay, dead) =
        relay_from_toml(dir.path(), &output(&url, ""), &[("HEC_TOKEN", TOKEN)]).await;
    let poison = event(&uuid(), "POISON", "Success");
    let batch = vec![
        events(1).remove(0),
        poison.clone(),
        events(1).remove(0),
        events(1).remove(0),
    ];
    let (status, answer) = deliver(&relay.webhook_url(), &batch).await;
    assert_eq!(
        (status, answer.as_str()),
        (200, r#"{"accepted":4,"duplicates":0}"#)
    );
    let indexed: Vec<Value> = fake
        .lock()
        .unwrap()
        .indexed
        .iter()
        .map(|o| o["event"].clone())
        .collect();
    assert_eq!(
        indexed,
        parsed(&[batch[0].clone(), batch[2].clone(), batch[3].clone()])
    );
    let letters = std::fs::read_to_string(&dead).unwrap();
    let letter: Value = serde_json::from_str(letters.trim()).unwrap();
    assert_eq!(letter["output"], "splunk_hec");
    assert_eq!(letter["event"], parsed(&[poison])[0]);
    assert_eq!(
        letter["reason"],
        "HTTP 400, HEC code 6: Invalid data format"
    );
    let text = metrics_text(&relay).await;
    assert_eq!(
        metric(
            &text,
            "evo_siem_relay_dead_letters_total{output=\"splunk_hec\"}"
        ),
        1.0
    );
    assert_eq!(
        metric(
            &text,
            "evo_siem_relay_events_forwarded_total{output=\"splunk_hec\"}"
        ),
        3.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_batch_goes_out_in_requests_under_the_limit() {
    let (url, fake) = hec(HecState {
        token: TOKEN.into(),
        ..HecState::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (relay, _) = relay_from_toml(
        dir.path(),
        &output(&url, "max_request_bytes = 2048\n"),
        &[("HEC_TOKEN", TOKEN)],
    )
    .await;
    let batch = events(10);
    assert_eq!(deliver(&relay.webhook_url(), &batch).await.0, 200);
    let fake = fake.lock().unwrap();
    // About 500 bytes an event object: four to a request of at most 2048 bytes.
    let sizes: Vec<usize> = fake.requests.iter().map(|(_, n)| *n).collect();
    assert_eq!(sizes, [4, 4, 2]);
    let indexed: Vec<Value> = fake.indexed.iter().map(|o| o["event"].clone()).collect();
    assert_eq!(indexed, parsed(&batch));
}

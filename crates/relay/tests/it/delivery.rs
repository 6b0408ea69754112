//! The delivery semantics: 2xx only after every output acknowledged; 503 with Retry-After and
//! released claims otherwise; dead letters; the SDK's refusals; health, metrics, reopen, stop.

use crate::common::{
    SECRET, Scripted, Step, body, deliver, deliver_with, event, events, metric, metrics_text,
    receiver, start, uuid,
};
use evo_siem_relay::Relay;
use evo_siem_relay::config::Format;
use evo_siem_relay::outputs::FileOutput;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn lines(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn file_output(path: &std::path::Path) -> Arc<FileOutput> {
    Arc::new(FileOutput::new("file".into(), Format::Raw, path.to_owned()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_events_reach_the_file_exactly_as_received_and_duplicates_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.ndjson");
    let relay = Relay::builder(receiver())
        .output(file_output(&path))
        .dead_letter_path(dir.path().join("dead.ndjson"))
        .build();
    let running = start(relay).await;
    let mut batch = events(3);
    // Line breaks between tokens are JSON whitespace: the line stays one line.
    batch[1] = batch[1].replacen(",\"table\"", ",\n  \"table\"", 1);
    let (status, answer) = deliver(&running.webhook_url(), &batch).await;
    assert_eq!(
        (status, answer.as_str()),
        (200, r#"{"accepted":3,"duplicates":0}"#)
    );
    let written = lines(&path);
    assert_eq!(written.len(), 3);
    assert_eq!(written[0], batch[0]);
    assert_eq!(written[1], batch[1].replace('\n', " "));
    assert_eq!(written[2], batch[2]);
    serde_json::from_str::<serde_json::Value>(&written[1]).unwrap();

    // A redelivery (signed afresh) forwards nothing twice; a new event in it goes through.
    let mut again = batch.clone();
    again.push(event(&uuid(), "User logout", "Success"));
    let (status, answer) = deliver(&running.webhook_url(), &again).await;
    assert_eq!(
        (status, answer.as_str()),
        (200, r#"{"accepted":1,"duplicates":3}"#)
    );
    assert_eq!(lines(&path).len(), 4);
    assert_eq!(lines(&path)[3], again[3]);

    let text = metrics_text(&running).await;
    assert_eq!(
        metric(
            &text,
            "evo_siem_relay_events_forwarded_total{output=\"file\"}"
        ),
        4.0
    );
    assert_eq!(metric(&text, "evo_siem_relay_events_received_total"), 4.0);
    assert_eq!(metric(&text, "evo_siem_relay_events_duplicate_total"), 3.0);
    assert_eq!(
        metric(
            &text,
            "evo_siem_relay_deliveries_total{outcome=\"accepted\"}"
        ),
        2.0
    );
    running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_output_failure_is_a_503_and_the_retry_forwards_the_events_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.ndjson");
    let flaky = Scripted::new("flaky", vec![Step::Fail, Step::Ack]);
    let relay = Relay::builder(receiver())
        .output(file_output(&path))
        .output(flaky.clone())
        .retry_after_secs(7)
        .dead_letter_path(dir.path().join("dead.ndjson"))
        .build();
    let running = start(relay).await;
    let batch = events(3);

    let response = deliver_with(&running.webhook_url(), SECRET, body(&batch)).await;
    assert_eq!(response.status().as_u16(), 503);
    assert_eq!(response.headers()["retry-after"], "7");
    let answer: serde_json::Value = response.json().await.unwrap();
    assert_eq!(answer["error"], "output_failed");
    assert_eq!(
        answer["message"],
        "not acknowledged by flaky (connect); retry later"
    );
    // The file took them, but the delivery as a whole was not acknowledged.
    assert_eq!(lines(&path).len(), 3);

    // The claims were released: the retry forwards every event again, to every output.
    let (status, answer) = deliver(&running.webhook_url(), &batch).await;
    assert_eq!(
        (status, answer.as_str()),
        (200, r#"{"accepted":3,"duplicates":0}"#)
    );
    assert_eq!(
        lines(&path).len(),
        6,
        "duplicates in the file, never a loss"
    );
    assert_eq!(flaky.received(), batch);
    assert_eq!(flaky.calls(), 2);

    let text = metrics_text(&running).await;
    assert_eq!(
        metric(
            &text,
            "evo_siem_relay_output_failures_total{output=\"flaky\",kind=\"connect\"}"
        ),
        1.0
    );
    assert_eq!(
        metric(
            &text,
            "evo_siem_relay_deliveries_total{outcome=\"output_failed\"}"
        ),
        1.0
    );
    assert_eq!(
        metric(
            &text,
            "evo_siem_relay_events_forwarded_total{output=\"flaky\"}"
        ),
        3.0
    );
    running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_output_slower_than_the_budget_is_a_503_in_time() {
    let dir = tempfile::tempdir().unwrap();
    let slow = Scripted::new(
        "slow",
        vec![Step::Sleep(Duration::from_secs(30)), Step::Ack],
    );
    let relay = Relay::builder(receiver())
        .output(slow.clone())
        .request_timeout(Duration::from_millis(300))
        .dead_letter_path(dir.path().join("dead.ndjson"))
        .build();
    let running = start(relay).await;
    let batch = events(2);
    let began = Instant::now();
    let (status, answer) = deliver(&running.webhook_url(), &batch).await;
    assert_eq!(status, 503, "{answer}");
    assert!(answer.contains("slow (timeout)"), "{answer}");
    assert!(
        began.elapsed() < Duration::from_secs(5),
        "{:?}",
        began.elapsed()
    );
    let (status, _) = deliver(&running.webhook_url(), &batch).await;
    assert_eq!(status, 200);
    assert_eq!(slow.received(), batch);
    running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_refused_for_good_goes_to_the_dead_letter_file_and_the_rest_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.ndjson");
    let dead = dir.path().join("dead.ndjson");
    let picky = Scripted::new("picky", vec![Step::Refuse(vec![1]), Step::Ack]);
    let relay = Relay::builder(receiver())
        .output(file_output(&path))
        .output(picky.clone())
        .dead_letter_path(&dead)
        .build();
    let running = start(relay).await;
    let batch = events(3);
    let (status, answer) = deliver(&running.webhook_url(), &batch).await;
    assert_eq!(
        (status, answer.as_str()),
        (200, r#"{"accepted":3,"duplicates":0}"#)
    );
    assert_eq!(picky.received(), [batch[0].clone(), batch[2].clone()]);
    assert_eq!(lines(&path), batch);

    let letters = lines(&dead);
    assert_eq!(letters.len(), 1);
    let letter: serde_json::Value = serde_json::from_str(&letters[0]).unwrap();
    assert_eq!(letter["output"], "picky");
    assert_eq!(letter["reason"], "scripted refusal of record 1");
    let event: serde_json::Value = serde_json::from_str(&batch[1]).unwrap();
    assert_eq!(letter["uuid"], event["data"]["uuid"]);
    assert_eq!(letter["event"], event);
    assert!(letter["time"].as_str().unwrap().ends_with('Z'));
    // The event is exactly as received inside the letter.
    assert!(letters[0].contains(&batch[1]));

    let text = metrics_text(&running).await;
    assert_eq!(
        metric(&text, "evo_siem_relay_dead_letters_total{output=\"picky\"}"),
        1.0
    );
    assert_eq!(
        metric(&text, "evo_siem_relay_dead_letters_total{output=\"file\"}"),
        0.0
    );
    assert_eq!(
        metric(
            &text,
            "evo_siem_relay_events_forwarded_total{output=\"picky\"}"
        ),
        2.0
    );
    assert_eq!(
        metric(
            &text,
            "evo_siem_relay_events_forwarded_total{output=\"file\"}"
        ),
        3.0
    );
    running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_that_cannot_be_written_is_a_503_and_nothing_is_committed() {
    let dir = tempfile::tempdir().unwrap();
    let picky = Scripted::new("picky", vec![Step::Refuse(vec![0])]);
    let relay = Relay::builder(receiver())
        .output(picky.clone())
        .dead_letter_path(dir.path().join("no-such-dir").join("dead.ndjson"))
        .build();
    let running = start(relay).await;
    let batch = events(2);
    let (status, answer) = deliver(&running.webhook_url(), &batch).await;
    assert_eq!(status, 503);
    assert!(answer.contains("dead_letter_failed"), "{answer}");
    // Not committed: the same events are new to the next delivery.
    let (_, answer) = deliver(&running.webhook_url(), &batch).await;
    assert!(answer.contains("dead_letter_failed"), "{answer}");
    assert_eq!(picky.calls(), 2);
    running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_deliveries_get_the_sdks_statuses_and_reach_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let spy = Scripted::new("spy", vec![Step::Ack]);
    let relay = Relay::builder(
        evo_siem_receiver::Receiver::builder()
            .secret(SECRET)
            .max_body_bytes(64 * 1024)
            .build()
            .unwrap(),
    )
    .output(spy.clone())
    .dead_letter_path(dir.path().join("dead.ndjson"))
    .build();
    let running = start(relay).await;
    let url = running.webhook_url();
    let client = reqwest::Client::new();

    let unsigned = client
        .post(&url)
        .header("content-type", "application/json")
        .body(body(&events(1)))
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status().as_u16(), 401);
    assert!(unsigned.text().await.unwrap().contains("missing_signature"));

    let forged = deliver_with(&url, "another-secret", body(&events(1))).await;
    assert_eq!(forged.status().as_u16(), 401);

    let mut wrong_count = String::from_utf8(body(&events(2))).unwrap();
    wrong_count = wrong_count.replace("\"count\":2", "\"count\":3");
    let response = deliver_with(&url, SECRET, wrong_count.into_bytes()).await;
    assert_eq!(response.status().as_u16(), 400);

    let huge = vec![event(&uuid(), &"x".repeat(70 * 1024), "Success")];
    let response = deliver_with(&url, SECRET, body(&huge)).await;
    assert_eq!(response.status().as_u16(), 413);

    assert_eq!(spy.calls(), 0);
    let text = metrics_text(&running).await;
    assert_eq!(
        metric(
            &text,
            "evo_siem_relay_rejections_total{reason=\"missing_signature\"}"
        ),
        1.0
    );
    assert_eq!(
        metric(
            &text,
            "evo_siem_relay_rejections_total{reason=\"signature_mismatch\"}"
        ),
        1.0
    );
    assert_eq!(
        metric(
            &text,
            "evo_siem_relay_rejections_total{reason=\"count_mismatch\"}"
        ),
        1.0
    );
    assert_eq!(
        metric(
            &text,
            "evo_siem_relay_rejections_total{reason=\"body_too_large\"}"
        ),
        1.0
    );
    assert_eq!(
        metric(
            &text,
            "evo_siem_relay_deliveries_total{outcome=\"rejected\"}"
        ),
        4.0
    );
    running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_deliveries_than_allowed_at_once_are_answered_503_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let slow = Scripted::new("slow", vec![Step::Sleep(Duration::from_millis(1500))]);
    let relay = Relay::builder(receiver())
        .output(slow.clone())
        .max_concurrent_requests(1)
        .dead_letter_path(dir.path().join("dead.ndjson"))
        .build();
    let running = start(relay).await;
    let url = running.webhook_url();
    let first = tokio::spawn({
        let url = url.clone();
        async move { deliver(&url, &events(1)).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let began = Instant::now();
    let (status, answer) = deliver(&url, &events(1)).await;
    assert_eq!(status, 503);
    assert!(answer.contains("relay_busy"), "{answer}");
    assert!(began.elapsed() < Duration::from_millis(1000));
    assert_eq!(first.await.unwrap().0, 200);
    running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_and_metrics_answer() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::builder(receiver())
        .output(file_output(&dir.path().join("a.ndjson")))
        .output(Scripted::new("spare", vec![Step::Ack]))
        .dead_letter_path(dir.path().join("dead.ndjson"))
        .build();
    let running = start(relay).await;
    let health: serde_json::Value = reqwest::get(format!("http://{}/healthz", running.addr()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        health,
        serde_json::json!({"status": "ok", "outputs": ["file", "spare"]})
    );
    let response = reqwest::get(format!("http://{}/metrics", running.addr()))
        .await
        .unwrap();
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let text = response.text().await.unwrap();
    for series in [
        "evo_siem_relay_events_forwarded_total{output=\"file\"} 0",
        "evo_siem_relay_events_forwarded_total{output=\"spare\"} 0",
        "evo_siem_relay_dead_letters_total{output=\"spare\"} 0",
        "evo_siem_relay_deliveries_total{outcome=\"busy\"} 0",
        "# TYPE evo_siem_relay_output_latency_seconds histogram",
        "# TYPE evo_siem_relay_delivery_latency_seconds histogram",
    ] {
        assert!(text.contains(series), "{series} missing from\n{text}");
    }
    assert!(text.ends_with("# EOF\n"));
    running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopen_follows_a_log_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.ndjson");
    let relay = Relay::builder(receiver())
        .output(file_output(&path))
        .dead_letter_path(dir.path().join("dead.ndjson"))
        .build();
    let running = start(relay).await;
    let first = events(2);
    assert_eq!(deliver(&running.webhook_url(), &first).await.0, 200);
    let rotated = dir.path().join("audit.ndjson.1");
    std::fs::rename(&path, &rotated).unwrap();
    running.relay().reopen().await;
    let second = events(1);
    assert_eq!(deliver(&running.webhook_url(), &second).await.0, 200);
    assert_eq!(lines(&rotated), first);
    assert_eq!(lines(&path), second);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode & 0o007, 0, "not readable by others: {mode:o}");
    running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_answers_the_delivery_in_progress() {
    let dir = tempfile::tempdir().unwrap();
    let slow = Scripted::new("slow", vec![Step::Sleep(Duration::from_millis(800))]);
    let relay = Relay::builder(receiver())
        .output(slow.clone())
        .dead_letter_path(dir.path().join("dead.ndjson"))
        .build();
    let running = start(relay).await;
    let url = running.webhook_url();
    let addr = running.addr();
    let batch = events(2);
    let in_flight = tokio::spawn({
        let batch = batch.clone();
        async move { deliver(&url, &batch).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    running.shutdown().await.unwrap();
    assert_eq!(in_flight.await.unwrap().0, 200);
    assert_eq!(slow.received(), batch);
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "still listening"
    );
}

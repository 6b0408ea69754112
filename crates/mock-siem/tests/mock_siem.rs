//! The mock SIEM's faults and its control API, over raw HTTP.

use evo_siem_mock::faults::Rule;
use evo_siem_mock::{MockSiem, MockSiemConfig};
use std::time::Duration;

/// A raw HTTP/1.1 request with a long body of which only the first `sent` bytes are written;
/// returns what the server sent back before the connection ended, or the read error.
async fn partial_request(siem: &MockSiem, sent: usize) -> std::io::Result<Vec<u8>> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(siem.addr()).await?;
    let head = "POST /webhook HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100000\r\n\r\n";
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(&vec![b' '; sent]).await?;
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer))
        .await
        .expect("the connection must end")?;
    Ok(answer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_closes_without_an_answer_and_reset_resets_mid_body() {
    let siem = MockSiem::start("127.0.0.1:0".parse().unwrap(), MockSiemConfig::unsigned())
        .await
        .unwrap();
    let rules: Vec<Rule> = serde_json::from_str(
        r#"[{"when": {"nth": 1}, "action": "drop"}, {"when": {"nth": 2}, "action": "reset"}]"#,
    )
    .unwrap();
    siem.set_faults(rules).unwrap();
    // Closed in order, with not one byte of a response.
    assert_eq!(partial_request(&siem, 10).await.unwrap(), b"");
    // Reset while the body is still coming.
    let err = partial_request(&siem, 4096).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{err}");
    // Then back to normal: a refusal of a batch of the wrong shape is an HTTP answer again.
    let client = reqwest::Client::new();
    let status = client
        .post(siem.webhook_url())
        .body("{}")
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status.as_u16(), 400);
    let verdicts: Vec<String> = siem.deliveries().into_iter().map(|d| d.verdict).collect();
    assert_eq!(verdicts, ["fault:drop", "fault:reset", "invalid_batch"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_are_set_over_http_checked_and_cleared() {
    let siem = MockSiem::start("127.0.0.1:0".parse().unwrap(), MockSiemConfig::unsigned())
        .await
        .unwrap();
    let client = reqwest::Client::new();
    let faults = format!("http://{}/_mock/faults", siem.addr());
    let bad = client
        .post(&faults)
        .header("content-type", "application/json")
        .body(r#"[{"when": {"probability": 2}, "action": "drop"}]"#)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status().as_u16(), 422);
    let body: serde_json::Value = bad.json().await.unwrap();
    assert_eq!(body["error"], "invalid_fault");

    let window = r#"[{"when": {"window": {"from_ms": 0, "until_ms": 60000}}, "action": {"status": 429, "retry_after": 7}}]"#;
    let set = client
        .post(&faults)
        .header("content-type", "application/json")
        .body(window)
        .send()
        .await
        .unwrap();
    assert_eq!(set.status().as_u16(), 204);
    let answer = client
        .post(siem.webhook_url())
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 429);
    assert_eq!(answer.headers()["retry-after"], "7");

    let cleared = client.delete(&faults).send().await.unwrap();
    assert_eq!(cleared.status().as_u16(), 204);
    let answer = client
        .post(siem.webhook_url())
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 400);
    assert_eq!(siem.stats().faults_injected, 1);
}

/// A signed batch of one fresh event, stamped at `at`.
fn signed_batch(at: std::time::SystemTime) -> (Vec<u8>, String) {
    let event = format!(
        r#"{{"event_type":"create","table":"events","timestamp":"2024-01-15T10:30:00.000Z","data":{{"uuid":"{}","action":"User login","status":"Success","actor":{{"kind":"User","name":"a@example.com"}},"origin":{{"hostname":"h","ipaddr":"192.0.2.1"}},"target":{{"kind":"User","name":"a@example.com"}},"ts":1706000000123456789,"created_at":1706000000123456789}}}}"#,
        uuid::Uuid::new_v4()
    );
    let event = serde_json::value::RawValue::from_string(event).unwrap();
    let body = evo_siem_protocol::encode_batch(&[&*event], at);
    let signature = evo_siem_protocol::sign(&evo_siem_protocol::Secret::new("skew"), &body);
    (body, signature)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clock_skew_judges_the_replay_window_by_the_skewed_clock() {
    let siem = MockSiem::start(
        "127.0.0.1:0".parse().unwrap(),
        MockSiemConfig::signed(["skew"]),
    )
    .await
    .unwrap();
    let rules: Vec<Rule> = serde_json::from_str(
        r#"[{"when": {"nth": 1}, "action": {"clock_skew_s": 600}},
            {"when": {"nth": 2}, "action": {"clock_skew_s": -600}},
            {"when": {"nth": 3}, "action": {"clock_skew_s": -600}},
            {"when": {"nth": 4}, "action": {"clock_skew_s": 60}}]"#,
    )
    .unwrap();
    siem.set_faults(rules).unwrap();
    let client = reqwest::Client::new();
    let now = std::time::SystemTime::now();
    let ten_minutes = Duration::from_secs(600);
    let mut answers = Vec::new();
    // A fresh batch to a clock 10 minutes ahead, then 10 minutes behind: stale both ways; a
    // batch stamped 10 minutes ago to the clock 10 minutes behind: fresh by that clock; a fresh
    // batch to a clock a minute ahead (inside the window); no fault.
    for at in [now, now, now - ten_minutes, now, now] {
        let (body, signature) = signed_batch(at);
        let answer = client
            .post(siem.webhook_url())
            .header("content-type", "application/json")
            .header(evo_siem_protocol::headers::SIGNATURE_256, signature)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = answer.status().as_u16();
        let body: serde_json::Value = answer.json().await.unwrap_or_default();
        answers.push((status, body["error"].as_str().map(str::to_owned)));
    }
    let refused = |reason: &str| (401, Some(reason.to_owned()));
    assert_eq!(
        answers,
        [
            refused("timestamp_too_old"),
            refused("timestamp_too_new"),
            (200, None),
            (200, None),
            (200, None)
        ]
    );
    let stats = siem.stats();
    assert_eq!((stats.rejected.stale, stats.faults_injected), (2, 4));
    let verdicts: Vec<String> = siem.deliveries().into_iter().map(|d| d.verdict).collect();
    assert_eq!(
        verdicts,
        [
            "timestamp_too_old",
            "timestamp_too_new",
            "accepted",
            "accepted",
            "accepted"
        ]
    );
    // Ages are measured on the true clock: the third batch is ten minutes old.
    let ages: Vec<i64> = siem
        .deliveries()
        .iter()
        .map(|d| d.age_ms.unwrap_or_default() / 60_000)
        .collect();
    assert_eq!(ages, [0, 0, 10, 0, 0]);
}

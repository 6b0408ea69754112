//! Issue 13, hardening: retry pacing against a hostile endpoint, configuration refusals and
//! sources, and the data directory's permissions, all through the public `Sender`.

use evo_siem_sender::service::{Config, Sender};
use std::time::{Duration, Instant};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

const TOKEN: &str = "ingest-token-for-hardening";

/// A configuration with `acme` delivering to `siem` (no linger), defaults everywhere else, and
/// `extra` appended to the top level.
fn config_text(dir: &std::path::Path, siem: &str, extra: &str) -> String {
    let token_file = dir.join("ingest-token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    format!(
        r#"
        listen = "127.0.0.1:0"
        data_dir = "{}"
        ingest_token_file = "{}"
        allow_private_targets = ["127.0.0.1/32"]
        {extra}

        [[integration]]
        tenant = "acme"
        webhook_url = "{siem}/webhook"
        linger_ms = 0
        "#,
        dir.join("data").display(),
        token_file.display(),
    )
}

async fn ingest_one(sender: &Sender) {
    let body = serde_json::to_string(&[crate::common::event_json(0, "User logout")]).unwrap();
    let status = reqwest::Client::new()
        .post(format!(
            "http://{}/v1/tenants/acme/audit-events",
            sender.addr()
        ))
        .bearer_auth(TOKEN)
        .body(body)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 202);
}

/// An endpoint answering `503` with `Retry-After: 0` for ten seconds gets a handful of attempts
/// (at 0, 1, 2, 4 and 8 s with the default 1 s floor and base), not one per round trip.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_zero_is_paced_by_the_floor_and_the_backoff() {
    let siem = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503).insert_header("Retry-After", "0"))
        .mount(&siem)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let config: Config = toml::from_str(&config_text(dir.path(), &siem.uri(), "")).unwrap();
    let sender = Sender::start(&config).await.unwrap();
    ingest_one(&sender).await;
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let attempts = siem.received_requests().await.unwrap().len();
    sender.shutdown().await;
    assert!(
        (2..=6).contains(&attempts),
        "{attempts} attempts in {:?}",
        started.elapsed()
    );
}

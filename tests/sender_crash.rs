//! Crash safety of the whole sender: `evo-siem sender` is killed with SIGKILL at random moments
//! while the platform ingests and while it delivers, then restarted; every event it acknowledged
//! (202) must reach the SIEM. Duplicates are allowed, and counted.

use axum::Router;
use axum::routing::post;
use std::collections::{HashMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What reached the SIEM.
#[derive(Debug, Default)]
struct Arrivals {
    /// How often each event UUID arrived.
    by_uuid: HashMap<String, usize>,
    /// Arrivals of the excluded action, which must never reach the SIEM.
    excluded: usize,
}

type Received = Arc<Mutex<Arrivals>>;

/// The action the integration excludes.
const EXCLUDED: &str = "User login";

/// A SIEM that records how often each event UUID arrived, and any excluded action.
async fn sink() -> (String, Received) {
    let received = Received::default();
    let seen = received.clone();
    let app = Router::new().route(
        "/webhook",
        post(move |body: axum::body::Bytes| {
            let seen = seen.clone();
            async move {
                let batch: serde_json::Value = serde_json::from_slice(&body).unwrap();
                let mut seen = seen.lock().unwrap();
                for event in batch["events"].as_array().unwrap() {
                    if event["data"]["action"] == EXCLUDED {
                        seen.excluded += 1;
                    }
                    *seen
                        .by_uuid
                        .entry(event["data"]["uuid"].as_str().unwrap().to_owned())
                        .or_default() += 1;
                }
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/webhook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, received)
}

fn start(config: &std::path::Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_evo-siem"))
        .args(["sender", "--config", config.to_str().unwrap()])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

async fn wait_healthy(client: &reqwest::Client, base: &str) {
    let started = Instant::now();
    while client.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the sender did not start"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `n` events as NDJSON, every `excluded_every`-th with the excluded action "User login"; returns
/// the UUIDs of the others (those the SIEM must receive) and the body.
fn events(n: usize, excluded_every: usize) -> (Vec<String>, String) {
    let mut kept = Vec::new();
    let mut body = String::new();
    for i in 0..n {
        let uuid = uuid::Uuid::new_v4().to_string();
        let action = if i % excluded_every == 0 {
            EXCLUDED
        } else {
            "User logout"
        };
        if action != EXCLUDED {
            kept.push(uuid.clone());
        }
        body += &format!(
            r#"{{"event_type":"create","table":"events","timestamp":"2024-01-15T10:30:00.000Z","data":{{"uuid":"{uuid}","action":"{action}","status":"Success","actor":{{"kind":"User","name":"ana@example.com"}},"origin":{{"hostname":"h","ipaddr":"192.0.2.1"}},"target":{{"kind":"User","name":"ana@example.com"}},"ts":1706000000123456789,"created_at":1706000000123456789}}}}"#
        );
        body.push('\n');
    }
    (kept, body)
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(3))]

    /// Over kill moments and event streams: every acknowledged, non-excluded event arrives.
    #[test]
    fn sigkill_at_random_moments_loses_no_acknowledged_event(
        rounds in proptest::collection::vec((20u64..400, 1usize..150), 2..5),
        excluded_every in 2usize..7,
    ) {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        runtime.block_on(crash_scenario(rounds, excluded_every));
    }
}

async fn crash_scenario(rounds: Vec<(u64, usize)>, excluded_every: usize) {
    let (siem, received) = sink().await;
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(dir.path().join("token"), "crash-token").unwrap();
    let config = dir.path().join("sender.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:{port}\"\ndata_dir = \"{dir}\"\ningest_token_file = \"{dir}/token\"\n\
             allow_private_targets = [\"127.0.0.1/32\"]\n\n[[integration]]\ntenant = \"acme\"\n\
             webhook_url = \"{siem}\"\nexcluded_actions = [\"User login\"]\nmax_batch_events = 50\nlinger_ms = 5\n",
            dir = dir.path().display()
        ),
    )
    .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let mut acknowledged = HashSet::new();

    for &(kill_after_ms, per_request) in &rounds {
        let mut child = start(&config);
        wait_healthy(&client, &base).await;
        let deadline = Instant::now() + Duration::from_millis(kill_after_ms);
        while Instant::now() < deadline {
            let (uuids, body) = events(per_request, excluded_every);
            let response = client
                .post(format!("{base}/v1/tenants/acme/audit-events"))
                .bearer_auth("crash-token")
                .body(body)
                .send()
                .await;
            if response.is_ok_and(|r| r.status().as_u16() == 202) {
                acknowledged.extend(uuids);
            }
        }
        child.kill().unwrap(); // SIGKILL: mid-ingest and mid-delivery.
        child.wait().unwrap();
    }

    // A last start delivers what is left.
    let mut child = start(&config);
    wait_healthy(&client, &base).await;
    let started = Instant::now();
    let missing = loop {
        let missing: Vec<String> = {
            let seen = received.lock().unwrap();
            acknowledged
                .iter()
                .filter(|u| !seen.by_uuid.contains_key(*u))
                .cloned()
                .collect()
        };
        if missing.is_empty() || started.elapsed() > Duration::from_secs(30) {
            break missing;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    child.kill().unwrap();
    child.wait().unwrap();
    let duplicates: usize = received
        .lock()
        .unwrap()
        .by_uuid
        .values()
        .map(|n| n - 1)
        .sum();
    println!(
        "{} acknowledged events, {} duplicates after {} SIGKILLs",
        acknowledged.len(),
        duplicates,
        rounds.len()
    );
    assert!(!acknowledged.is_empty(), "nothing was ingested");
    assert_eq!(
        received.lock().unwrap().excluded,
        0,
        "an excluded action reached the SIEM"
    );
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged events lost",
        missing.len(),
        acknowledged.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_cleanly_and_a_restart_delivers_the_rest() {
    // A SIEM that refuses everything, so events stay queued across the stop.
    let refusing = Router::new().route(
        "/webhook",
        post(|| async { (axum::http::StatusCode::SERVICE_UNAVAILABLE, "busy") }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let refusing_url = format!("http://{}/webhook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, refusing).await.unwrap() });
    let (siem, received) = sink().await;

    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(dir.path().join("token"), "term-token").unwrap();
    let write_config = |url: &str| {
        let config = dir.path().join("sender.toml");
        std::fs::write(
            &config,
            format!(
                "listen = \"127.0.0.1:{port}\"\ndata_dir = \"{dir}\"\ningest_token_file = \"{dir}/token\"\n\
                 allow_private_targets = [\"127.0.0.1/32\"]\n\n[[integration]]\ntenant = \"acme\"\n\
                 webhook_url = \"{url}\"\nlinger_ms = 5\n",
                dir = dir.path().display()
            ),
        )
        .unwrap();
        config
    };
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();

    let mut child = start(&write_config(&refusing_url));
    wait_healthy(&client, &base).await;
    let (uuids, body) = events(40, usize::MAX);
    let response = client
        .post(format!("{base}/v1/tenants/acme/audit-events"))
        .bearer_auth("term-token")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 202);
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let started = Instant::now();
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        assert!(
            started.elapsed() < Duration::from_secs(40),
            "no exit after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(exit.success(), "{exit:?}");

    // The same spool, a SIEM that accepts: everything queued is delivered.
    let mut child = start(&write_config(&siem));
    wait_healthy(&client, &base).await;
    let started = Instant::now();
    while uuids
        .iter()
        .any(|u| !received.lock().unwrap().by_uuid.contains_key(u))
    {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "queued events not delivered after restart"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

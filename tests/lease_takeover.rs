//! Two `evo-siem sender` processes on one PostgreSQL spool: one holds the integration's lease
//! and delivers, the other delivers nothing of it; when the holder is killed with SIGKILL
//! (no hand-over, as in a crash), the other takes the integration over once the lease expires,
//! and every acknowledged event arrives.

use axum::Router;
use axum::routing::post;
use evo_siem_sender::spool::scratch::ScratchDatabase;
use std::collections::HashSet;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

type Arrived = Arc<Mutex<HashSet<String>>>;

async fn sink() -> (String, Arrived) {
    let arrived = Arrived::default();
    let seen = arrived.clone();
    let app = Router::new().route(
        "/webhook",
        post(move |body: axum::body::Bytes| {
            let seen = seen.clone();
            async move {
                let batch: serde_json::Value = serde_json::from_slice(&body).unwrap();
                let mut seen = seen.lock().unwrap();
                for event in batch["events"].as_array().unwrap() {
                    seen.insert(event["data"]["uuid"].as_str().unwrap().to_owned());
                }
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/webhook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, arrived)
}

/// One instance: its own data directory and port, the shared spool.
struct Instance {
    child: Child,
    base: String,
}

fn start(dir: &std::path::Path, spool_url: &str, siem: &str) -> Instance {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(dir.join("token"), "lease-token").unwrap();
    std::fs::write(dir.join("spool-url"), spool_url).unwrap();
    let config = dir.join("sender.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:{port}\"\ndata_dir = \"{dir}\"\ningest_token_file = \"{dir}/token\"\n\
             allow_private_targets = [\"127.0.0.1/32\"]\n\n[spool]\nbackend = \"postgres\"\n\
             url_file = \"{dir}/spool-url\"\nlease_ttl_ms = 600\n\n[[integration]]\ntenant = \"acme\"\n\
             webhook_url = \"{siem}\"\nlinger_ms = 0\n",
            dir = dir.display()
        ),
    )
    .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_evo-siem"))
        .args(["sender", "--config", config.to_str().unwrap()])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Instance {
        child,
        base: format!("http://127.0.0.1:{port}"),
    }
}

async fn wait_healthy(client: &reqwest::Client, base: &str) {
    let started = Instant::now();
    while client.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(started.elapsed() < Duration::from_secs(20), "no start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Ten events ingested through `base`; their UUIDs.
async fn ingest(client: &reqwest::Client, base: &str) -> Vec<String> {
    let uuids: Vec<String> = (0..10).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    let body: Vec<String> = uuids
        .iter()
        .map(|uuid| {
            format!(
                r#"{{"event_type":"create","table":"events","timestamp":"2024-01-15T10:30:00.000Z","data":{{"uuid":"{uuid}","action":"User logout","status":"Success","actor":{{"kind":"User","name":"ana@example.com"}},"origin":{{"hostname":"h","ipaddr":"192.0.2.1"}},"target":{{"kind":"User","name":"ana@example.com"}},"ts":1706000000123456789,"created_at":1706000000123456789}}}}"#
            )
        })
        .collect();
    let status = client
        .post(format!("{base}/v1/tenants/acme/audit-events"))
        .bearer_auth("lease-token")
        .body(body.join("\n"))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 202);
    uuids
}

/// The events this instance delivered, from its `/metrics`.
async fn delivered_by(client: &reqwest::Client, base: &str) -> u64 {
    let text = client
        .get(format!("{base}/metrics"))
        .bearer_auth("lease-token")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("evo_siem_events_delivered_total "))
        .unwrap_or_else(|| panic!("no delivered count in {text}"))
        .parse()
        .unwrap()
}

async fn wait_arrived(arrived: &Arrived, want: &HashSet<String>) {
    let started = Instant::now();
    loop {
        let missing = want.difference(&arrived.lock().unwrap()).count();
        if missing == 0 {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{missing} of {} acknowledged events never arrived",
            want.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_other_instance_takes_over_when_the_holder_is_killed() {
    tokio::task::spawn_blocking(evo_siem_test_services::postgres)
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("PostgreSQL for the tests: {e}"));
    let db = ScratchDatabase::create().await.unwrap();
    let (siem, arrived) = sink().await;
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let mut instances: Vec<Instance> = dirs
        .iter()
        .map(|dir| start(dir.path(), db.url(), &siem))
        .collect();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    for instance in &instances {
        wait_healthy(&client, &instance.base).await;
    }
    let mut acknowledged = HashSet::new();
    for n in 0..4 {
        acknowledged.extend(ingest(&client, &instances[n % 2].base).await);
    }
    wait_arrived(&arrived, &acknowledged).await;

    // One instance delivered all of it (one holder per integration), the other nothing. The
    // sink has the events a moment before the holder's counters do (it counts once the 2xx is
    // back), so the counts are read until they add up.
    let counted = Instant::now();
    let before = loop {
        let before = [
            delivered_by(&client, &instances[0].base).await,
            delivered_by(&client, &instances[1].base).await,
        ];
        if before[0] + before[1] >= 40 || counted.elapsed() > Duration::from_secs(10) {
            break before;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let holder = usize::from(before[1] > 0);
    assert_eq!(before[holder], 40, "{before:?}");
    assert_eq!(before[1 - holder], 0, "{before:?}");

    // The holder dies without handing over.
    let mut dead = instances.remove(holder);
    dead.child.kill().unwrap();
    dead.child.wait().unwrap();
    let mut survivor = instances.remove(0);
    let took_over = Instant::now();
    for _ in 0..4 {
        acknowledged.extend(ingest(&client, &survivor.base).await);
    }
    wait_arrived(&arrived, &acknowledged).await;
    // The survivor delivered them: a takeover, not a resurrection.
    let counted = Instant::now();
    let mut delivered = delivered_by(&client, &survivor.base).await;
    while delivered < 40 && counted.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        delivered = delivered_by(&client, &survivor.base).await;
    }
    assert_eq!(delivered, 40);
    println!(
        "takeover and 40 events delivered {} ms after the SIGKILL",
        took_over.elapsed().as_millis()
    );
    survivor.child.kill().unwrap();
    survivor.child.wait().unwrap();
}

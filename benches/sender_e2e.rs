//! The sender end to end on this machine: ingest API → SQLite spool (fsync on commit) → batch →
//! sign → POST to a local sink answering 200 → delete. Prints sustained events/s and the spool's
//! append rate. Target: 100,000 events/s with the default durability.

mod common;

use common::Rng;
use evo_siem_sender::service::{Config, Sender};
use evo_siem_workload::generate::Generator;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

const EVENTS: usize = 200_000;
const PER_REQUEST: usize = 1_000;
const CONCURRENT_REQUESTS: usize = 4;

/// `n` events of the workload generator (the demo's and `evo-siem generate`'s) as NDJSON.
fn ndjson(rng: &mut Rng, n: usize) -> String {
    Generator::new(rng.next(), "acme", std::time::SystemTime::now())
        .take(n)
        .map(|e| e.json + "\n")
        .collect()
}

fn main() {
    if std::env::args().any(|a| a == "--test" || a == "--list") {
        return; // `cargo test --benches` only checks that it builds.
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (sink_addr, received) = common::counting_sink().await;

        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("token"), "bench-token").unwrap();
        std::fs::write(dir.path().join("secret"), "whsec-bench-7f3a9c2e").unwrap();
        // The signing secret is stored encrypted, under this key.
        std::fs::write(dir.path().join("secrets-key"), "ZXZvLXNpZW0gYmVuY2gga2V5LCAzMiBieXRlcyBvay4=").unwrap();
        let config: Config = toml::from_str(&format!(
            r#"
            listen = "127.0.0.1:0"
            data_dir = "{dir}"
            ingest_token_file = "{dir}/token"
            allow_private_targets = ["127.0.0.1/32"]
            [secrets]
            key_file = "{dir}/secrets-key"
            [[integration]]
            tenant = "acme"
            webhook_url = "http://{sink_addr}/webhook"
            signing_secret_file = "{dir}/secret"
            linger_ms = 50
            "#,
            dir = dir.path().display()
        ))
        .unwrap();
        let sender = Sender::start(&config).await.unwrap();
        let url = format!("http://{}/v1/tenants/acme/audit-events", sender.addr());
        let mut rng = Rng(0x1234_5678_9ABC_DEF1);
        let bodies: Vec<String> = (0..EVENTS / PER_REQUEST).map(|_| ndjson(&mut rng, PER_REQUEST)).collect();
        let client = reqwest::Client::new();

        let started = Instant::now();
        let mut ingest_done = Duration::ZERO;
        let chunks: Vec<Vec<String>> = bodies.chunks(CONCURRENT_REQUESTS).map(<[String]>::to_vec).collect();
        for chunk in chunks {
            let requests = chunk.into_iter().map(|body| {
                let (client, url) = (client.clone(), url.clone());
                tokio::spawn(async move {
                    let response = client.post(url).bearer_auth("bench-token").body(body).send().await.unwrap();
                    assert_eq!(response.status().as_u16(), 202);
                })
            });
            for request in requests.collect::<Vec<_>>() {
                request.await.unwrap();
            }
            ingest_done = started.elapsed();
        }
        while received.load(Ordering::Relaxed) < EVENTS as u64 {
            assert!(started.elapsed() < Duration::from_secs(300), "not delivered in 5 minutes");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let total = started.elapsed();
        println!(
            "sender e2e: {EVENTS} events ingested in {:.2} s ({:.0} events/s durable ingest), delivered in {:.2} s: {:.0} events/s end to end (target >= 100000)",
            ingest_done.as_secs_f64(),
            EVENTS as f64 / ingest_done.as_secs_f64(),
            total.as_secs_f64(),
            EVENTS as f64 / total.as_secs_f64(),
        );
        sender.shutdown().await;
    });
}

//! What scaling out costs and buys on this machine: the sender end to end (ingest API → spool →
//! batch → sign → POST to a local sink answering 200 → delete) with the embedded SQLite spool,
//! then with one PostgreSQL spool shared by 1, 2 and 3 sender instances, in one run, to the same
//! sink. Six integrations, so that the leases spread over the instances; the ingest requests
//! take turns over the instances, as behind a load balancer.
//!
//! All instances run in this process, on the same two cores as PostgreSQL and the sink: on this
//! machine more instances cannot add CPU, so the figures show the cost of the shared engine and
//! of coordination, not the gain of more machines. Needs PostgreSQL (started through
//! `scripts/services.sh` when it is down).

mod common;

use common::Rng;
use evo_siem_sender::service::{Config, Sender};
use evo_siem_sender::spool::scratch::ScratchDatabase;
use evo_siem_workload::generate::Generator;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const TENANTS: usize = 6;
const EVENTS: usize = 60_000;
const PER_REQUEST: usize = 500;
const CONCURRENT_REQUESTS: usize = 4;

/// `n` events of the workload generator as NDJSON.
fn ndjson(rng: &mut Rng, tenant: &str, n: usize) -> String {
    Generator::new(rng.next(), tenant, std::time::SystemTime::now())
        .take(n)
        .map(|e| e.json + "\n")
        .collect()
}

fn config(dir: &std::path::Path, sink: std::net::SocketAddr, spool: &str) -> Config {
    std::fs::write(dir.join("token"), "bench-token").unwrap();
    std::fs::write(dir.join("secret"), "whsec-bench-7f3a9c2e").unwrap();
    // The signing secret is stored encrypted, under this key (the same for every instance).
    std::fs::write(
        dir.join("secrets-key"),
        "ZXZvLXNpZW0gYmVuY2gga2V5LCAzMiBieXRlcyBvay4=",
    )
    .unwrap();
    let mut text = format!(
        r#"
        listen = "127.0.0.1:0"
        data_dir = "{dir}"
        ingest_token_file = "{dir}/token"
        allow_private_targets = ["127.0.0.1/32"]
        {spool}
        [secrets]
        key_file = "{dir}/secrets-key"
        "#,
        dir = dir.display()
    );
    for t in 0..TENANTS {
        text.push_str(&format!(
            r#"
            [[integration]]
            tenant = "tenant{t}"
            webhook_url = "http://{sink}/tenant{t}"
            signing_secret_file = "{dir}/secret"
            linger_ms = 50
            "#,
            dir = dir.display()
        ));
    }
    toml::from_str(&text).unwrap()
}

/// Ingests every body through the senders in turn and waits until the sink has them all;
/// returns (ingest events/s, end-to-end events/s).
async fn measure(
    senders: &[Sender],
    received: &AtomicU64,
    bodies: &[(String, String)],
) -> (f64, f64) {
    let client = reqwest::Client::new();
    let before = received.load(Ordering::Relaxed);
    let started = Instant::now();
    for (round, chunk) in bodies.chunks(CONCURRENT_REQUESTS).enumerate() {
        let requests: Vec<_> = chunk
            .iter()
            .enumerate()
            .map(|(i, (tenant, body))| {
                let sender = &senders[(round * CONCURRENT_REQUESTS + i) % senders.len()];
                let url = format!("http://{}/v1/tenants/{tenant}/audit-events", sender.addr());
                let (client, body) = (client.clone(), body.clone());
                tokio::spawn(async move {
                    let response = client
                        .post(url)
                        .bearer_auth("bench-token")
                        .body(body)
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(response.status().as_u16(), 202);
                })
            })
            .collect();
        for request in requests {
            request.await.unwrap();
        }
    }
    let ingest = started.elapsed();
    while received.load(Ordering::Relaxed) - before < EVENTS as u64 {
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "not delivered in 5 minutes"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let total = started.elapsed();
    (
        EVENTS as f64 / ingest.as_secs_f64(),
        EVENTS as f64 / total.as_secs_f64(),
    )
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
        let mut rng = Rng(0x5CA1_E001_5CA1_E001);
        let bodies: Vec<(String, String)> = (0..EVENTS / PER_REQUEST)
            .map(|i| {
                let tenant = format!("tenant{}", i % TENANTS);
                let body = ndjson(&mut rng, &tenant, PER_REQUEST);
                (tenant, body)
            })
            .collect();
        let mut rows = Vec::new();

        let dir = tempfile::tempdir().unwrap();
        let sender = Sender::start(&config(dir.path(), sink_addr, "")).await.unwrap();
        rows.push(("SQLite, 1 instance".to_owned(), measure(std::slice::from_ref(&sender), &received, &bodies).await));
        sender.shutdown().await;

        for instances in 1..=3 {
            evo_siem_test_services::postgres().expect("PostgreSQL (scripts/services.sh)");
            let database = ScratchDatabase::create().await.expect("PostgreSQL (bash scripts/services.sh)");
            let dirs: Vec<_> = (0..instances).map(|_| tempfile::tempdir().unwrap()).collect();
            let mut senders = Vec::new();
            for dir in &dirs {
                std::fs::write(dir.path().join("spool-url"), database.url()).unwrap();
                let spool = format!(
                    "[spool]\nbackend = \"postgres\"\nurl_file = \"{}/spool-url\"\n",
                    dir.path().display()
                );
                senders.push(Sender::start(&config(dir.path(), sink_addr, &spool)).await.unwrap());
            }
            // Measure the steady state: once every integration is leased and each instance
            // holds its share.
            let (client, connection) = tokio_postgres::connect(database.url(), tokio_postgres::NoTls).await.unwrap();
            tokio::spawn(connection);
            let share = TENANTS.div_ceil(instances) as i64;
            let spread = Instant::now();
            loop {
                let held: Vec<i64> = client
                    .query("SELECT count(*) FROM spool_leases WHERE expires_at > now() GROUP BY holder", &[])
                    .await
                    .unwrap()
                    .iter()
                    .map(|r| r.get(0))
                    .collect();
                if held.len() == instances && held.iter().all(|n| *n <= share) && held.iter().sum::<i64>() == TENANTS as i64 {
                    break;
                }
                assert!(spread.elapsed() < Duration::from_secs(60), "leases did not spread: {held:?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let spread = spread.elapsed();
            let figures = measure(&senders, &received, &bodies).await;
            rows.push((format!("PostgreSQL, {instances} instance{}", if instances > 1 { "s" } else { "" }), figures));
            println!("scale out: {instances} instance(s): leases spread over them in {:.1} s", spread.as_secs_f64());
            for sender in senders {
                sender.shutdown().await;
            }
            tokio::task::spawn_blocking(move || drop(database)).await.unwrap();
        }

        println!("\nscale out: {EVENTS} events, {TENANTS} integrations, {PER_REQUEST} events a request, {CONCURRENT_REQUESTS} requests at a time");
        println!("{:<24} {:>16} {:>16} {:>8}", "spool", "ingest ev/s", "end to end ev/s", "vs SQLite");
        let base = rows[0].1.1;
        for (name, (ingest, e2e)) in &rows {
            println!("scale out: {name:<24} {ingest:>12.0} {e2e:>16.0} {:>8.2}", e2e / base);
        }
    });
}

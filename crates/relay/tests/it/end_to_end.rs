//! End to end: the real sender delivers through the relay to a real rsyslog and to a file,
//! through a SIEM outage and a relay restart, and nothing is lost.

use crate::common::{SECRET, event, uuid};
use crate::syslog::Rsyslog;
use evo_siem_relay::{Relay, RelayConfig};
use evo_siem_sender::service::{Config, Sender};
use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

const INGEST_TOKEN: &str = "e2e-ingest-token";

async fn start_relay(
    dir: &Path,
    addr: SocketAddr,
    rsyslog: &Rsyslog,
) -> evo_siem_relay::RunningRelay {
    let text = format!(
        r#"
        listen = "{addr}"
        signing_secret_file = "{dir}/secret"
        request_timeout_ms = 3000
        retry_after_secs = 1
        dead_letter_path = "{dir}/dead.ndjson"
        [[output]]
        type = "syslog"
        address = "{syslog}"
        timeout_ms = 1000
        [[output]]
        type = "file"
        path = "{dir}/audit.ndjson"
        "#,
        dir = dir.display(),
        syslog = rsyslog.address(),
    );
    let config = RelayConfig::parse(&text).unwrap();
    let relay = Relay::from_config(&config, &|_: &str| None).unwrap();
    // The same port every time: the sender's webhook URL does not change across restarts.
    let began = Instant::now();
    loop {
        match relay.clone().start(addr).await {
            Ok(running) => return running,
            Err(err) if began.elapsed() < Duration::from_secs(5) => {
                eprintln!("rebinding {addr}: {err}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(err) => panic!("{err}"),
        }
    }
}

async fn ingest(sender: &Sender, events: &[String]) {
    let response = reqwest::Client::new()
        .post(format!(
            "http://{}/v1/tenants/acme/audit-events",
            sender.addr()
        ))
        .bearer_auth(INGEST_TOKEN)
        .body(events.join("\n"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status().as_u16(),
        202,
        "{}",
        response.text().await.unwrap()
    );
}

fn uuid_of(json: &str) -> String {
    let value: serde_json::Value = serde_json::from_str(json).unwrap();
    value["data"]["uuid"].as_str().unwrap().to_owned()
}

/// Each distinct event of `lines` (JSON texts), by UUID, checking that every copy is the text
/// ingested; and the number of duplicates.
fn distinct(lines: &[String], ingested: &HashMap<String, String>) -> (BTreeSet<String>, usize) {
    let mut seen = BTreeSet::new();
    let mut duplicates = 0;
    for line in lines {
        let id = uuid_of(line);
        assert_eq!(Some(line), ingested.get(&id), "an event arrived altered");
        if !seen.insert(id) {
            duplicates += 1;
        }
    }
    (seen, duplicates)
}

fn file_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn syslog_jsons(rsyslog: &Rsyslog) -> Vec<String> {
    rsyslog
        .received()
        .iter()
        .map(|l| l.splitn(8, ' ').nth(7).unwrap().to_owned())
        .collect()
}

fn batch(n: usize, phase: &str) -> Vec<String> {
    (0..n)
        .map(|i| event(&uuid(), &format!("{phase} {i}"), "Success"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sender_to_relay_to_rsyslog_and_a_file_through_an_outage_and_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let Some(rsyslog) = Rsyslog::start(dir) else {
        return;
    };
    std::fs::write(dir.join("secret"), SECRET).unwrap();
    std::fs::write(dir.join("token"), INGEST_TOKEN).unwrap();
    std::fs::write(
        dir.join("secrets-key"),
        "ZXZvLXNpZW0gYmVuY2gga2V5LCAzMiBieXRlcyBvay4=",
    )
    .unwrap();
    let addr: SocketAddr = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap()
    };
    let relay = start_relay(dir, addr, &rsyslog).await;

    let config = Config::parse(&format!(
        r#"
        listen = "127.0.0.1:0"
        data_dir = "{dir}/sender"
        ingest_token_file = "{dir}/token"
        allow_private_targets = ["127.0.0.1/32"]
        [delivery]
        attempt_timeout_ms = 10000
        retry_base_ms = 100
        retry_cap_ms = 500
        retry_floor_ms = 100
        [secrets]
        key_file = "{dir}/secrets-key"
        [[integration]]
        tenant = "acme"
        webhook_url = "http://{addr}/webhook"
        signing_secret_file = "{dir}/secret"
        max_batch_events = 20
        linger_ms = 50
        "#,
        dir = dir.display()
    ))
    .unwrap();
    let sender = Sender::start(&config).await.unwrap();
    let mut ingested: HashMap<String, String> = HashMap::new();
    let audit = dir.join("audit.ndjson");
    let wait_until = |what: &'static str, done: &dyn Fn() -> bool| {
        let began = Instant::now();
        loop {
            if done() {
                return;
            }
            assert!(
                began.elapsed() < Duration::from_secs(60),
                "{what}: not in 60 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };

    // 1. All up.
    let first = batch(60, "first");
    ingested.extend(first.iter().map(|e| (uuid_of(e), e.clone())));
    ingest(&sender, &first).await;
    let audit_path = audit.clone();
    tokio::task::block_in_place(|| {
        wait_until("the first events in the file", &|| {
            file_lines(&audit_path).len() >= 60
        });
    });

    // 2. The SIEM goes down: the relay answers 503, the sender keeps the events.
    rsyslog.stop();
    let second = batch(60, "second");
    ingested.extend(second.iter().map(|e| (uuid_of(e), e.clone())));
    ingest(&sender, &second).await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    // 3. The relay restarts while the SIEM is still down, and events keep coming meanwhile.
    relay.shutdown().await.unwrap();
    let third = batch(60, "third");
    ingested.extend(third.iter().map(|e| (uuid_of(e), e.clone())));
    ingest(&sender, &third).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let relay = start_relay(dir, addr, &rsyslog).await;
    tokio::time::sleep(Duration::from_secs(1)).await;

    // 4. The SIEM returns: everything arrives, in both outputs.
    rsyslog.restart();
    let everything: BTreeSet<String> = ingested.keys().cloned().collect();
    tokio::task::block_in_place(|| {
        wait_until("every event in rsyslog and in the file", &|| {
            distinct(&syslog_jsons(&rsyslog), &ingested).0 == everything
                && distinct(&file_lines(&audit), &ingested).0 == everything
        });
    });
    let (in_syslog, syslog_duplicates) = distinct(&syslog_jsons(&rsyslog), &ingested);
    let (in_file, file_duplicates) = distinct(&file_lines(&audit), &ingested);
    assert_eq!(in_syslog.len(), 180);
    assert_eq!(in_file.len(), 180);
    eprintln!(
        "end to end: 180 events; duplicates: {syslog_duplicates} in rsyslog, {file_duplicates} in the file"
    );
    assert!(!dir.join("dead.ndjson").exists());
    sender.shutdown().await;
    relay.shutdown().await.unwrap();
}

//! Several sender instances on one PostgreSQL spool share their integration settings and admin
//! tokens: a token minted once works on every instance, a change made through one instance's
//! admin API is read back through any other at once and applied by every instance's workers
//! within seconds, a restart with the same file does not undo it, and a revocation holds
//! everywhere.

use crate::common::ScratchDatabase;
use evo_siem_sender::service::{Config, Sender};
use evo_siem_sender::spool::{BacklogLimits, PostgresOptions, PostgresSpool};
use evo_siem_sender::store::{Permission, TokenRow};
use std::time::{Duration, Instant};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

fn config(dir: &tempfile::TempDir, db: &ScratchDatabase, webhook: &str) -> Config {
    crate::common::pg_sender_config(dir, db, webhook, 900)
}

async fn siem() -> MockServer {
    let siem = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&siem)
        .await;
    siem
}

async fn call(
    method: &str,
    sender: &Sender,
    token: &str,
    body: Option<&str>,
) -> (u16, serde_json::Value) {
    let url = format!("http://{}/v1/tenants/acme/siem-integration", sender.addr());
    let client = reqwest::Client::new();
    let mut request = match method {
        "GET" => client.get(url),
        "PUT" => client.put(url),
        _ => client.delete(url),
    }
    .bearer_auth(token);
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_owned());
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

async fn eventually(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let started = Instant::now();
    while !done().await {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "timed out: {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The shared state, and a manage token for `acme` minted there (as `evo-siem admin token
/// create` does) once `senders` all accept it.
async fn shared_token(
    db: &ScratchDatabase,
    senders: [&Sender; 2],
) -> (evo_siem_sender::store::SharedState, String, TokenRow) {
    let admin = PostgresSpool::connect(
        PostgresOptions::new(db.url.clone()),
        BacklogLimits::default(),
    )
    .await
    .unwrap();
    let admin = evo_siem_sender::store::SharedState::on(&admin);
    let (token, row) = TokenRow::mint("acme", &[Permission::Manage], "alice").unwrap();
    admin.insert_token(&row).await.unwrap();
    for sender in senders {
        eventually("the token works on every instance", async || {
            call("GET", sender, &token, None).await.0 == 200
        })
        .await;
    }
    (admin, token, row)
}

async fn ingest(sender: &Sender, n: usize) -> u16 {
    reqwest::Client::new()
        .post(format!(
            "http://{}/v1/tenants/acme/audit-events",
            sender.addr()
        ))
        .bearer_auth("ingest-token")
        .body(crate::common::event_json(n, "Create user").to_string())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_share_settings_and_tokens() {
    let db = ScratchDatabase::new().await;
    let (old_siem, new_siem) = (siem().await, siem().await);
    let old_url = format!("{}/webhook", old_siem.uri());
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let a = Sender::start(&config(&dirs[0], &db, &old_url))
        .await
        .unwrap();
    let b = Sender::start(&config(&dirs[1], &db, &old_url))
        .await
        .unwrap();

    // A token minted once (as `evo-siem admin token create` does) works on both instances.
    let (admin, token, row) = shared_token(&db, [&a, &b]).await;

    // A change through one instance reads back at once through the other...
    let put = format!(
        r#"{{"webhook_url": "{}/webhook", "excluded_actions": ["User login"]}}"#,
        new_siem.uri()
    );
    assert_eq!(call("PUT", &a, &token, Some(&put)).await.0, 200);
    let (status, view) = call("GET", &b, &token, None).await;
    assert_eq!(status, 200);
    assert!(
        view["webhook_url"]
            .as_str()
            .unwrap()
            .starts_with(&new_siem.uri()),
        "{view}"
    );
    // ... and, once each instance copied it (within `SYNC_EVERY`), whichever delivers uses it.
    for sender in [&a, &b] {
        eventually("the change copied to every instance", async || {
            sender
                .registry()
                .get("acme")
                .is_some_and(|i| i.url().as_str().starts_with(&new_siem.uri()))
        })
        .await;
    }
    for n in 0..4 {
        assert_eq!(ingest(if n % 2 == 0 { &a } else { &b }, n).await, 202);
    }
    eventually("deliveries go to the new webhook", async || {
        let events: usize = new_siem
            .received_requests()
            .await
            .unwrap()
            .iter()
            .map(|r| {
                serde_json::from_slice::<serde_json::Value>(&r.body).unwrap()["count"]
                    .as_u64()
                    .unwrap() as usize
            })
            .sum();
        events >= 4
    })
    .await;

    // A restart with the same file keeps the change made at run time.
    a.shutdown().await;
    let a = Sender::start(&config(&dirs[0], &db, &old_url))
        .await
        .unwrap();
    let (_, view) = call("GET", &a, &token, None).await;
    assert!(
        view["webhook_url"]
            .as_str()
            .unwrap()
            .starts_with(&new_siem.uri()),
        "{view}"
    );
    assert_eq!(view["excluded_actions"], serde_json::json!(["User login"]));

    // A revocation holds everywhere.
    assert!(admin.revoke_token(&row.id).await.unwrap());
    for sender in [&a, &b] {
        eventually("the revoked token is refused everywhere", async || {
            call("GET", sender, &token, None).await.0 == 401
        })
        .await;
    }

    // A removal through one instance removes the integration from the other.
    let (token, row) = TokenRow::mint("acme", &[Permission::Manage], "bob").unwrap();
    admin.insert_token(&row).await.unwrap();
    eventually("the new token works on b", async || {
        call("GET", &b, &token, None).await.0 == 200
    })
    .await;
    assert_eq!(call("DELETE", &b, &token, None).await.0, 204);
    eventually(
        "the other instance stops taking events for it",
        async || ingest(&a, 99).await == 404,
    )
    .await;
    a.shutdown().await;
    b.shutdown().await;
}

/// `POST .../resume` through an instance that does not hold the integration's lease still ends
/// the holder's wait: the SIEM asked for a minute, the resume makes it a moment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_reaches_the_instance_holding_the_lease() {
    let db = ScratchDatabase::new().await;
    let siem = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503).insert_header("retry-after", "60"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&siem)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&siem)
        .await;
    let url = format!("{}/webhook", siem.uri());
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let a = Sender::start(&config(&dirs[0], &db, &url)).await.unwrap();
    let b = Sender::start(&config(&dirs[1], &db, &url)).await.unwrap();
    let (_, token, _) = shared_token(&db, [&a, &b]).await;
    assert_eq!(ingest(&a, 1).await, 202);
    let retried = |sender: &Sender| {
        sender
            .stats("acme")
            .is_some_and(|s| s.retried.load(std::sync::atomic::Ordering::Relaxed) > 0)
    };
    eventually("the first attempt is refused", async || {
        retried(&a) || retried(&b)
    })
    .await;
    let other = if retried(&a) { &b } else { &a };
    let url = format!(
        "http://{}/v1/tenants/acme/siem-integration/resume",
        other.addr()
    );
    let response = reqwest::Client::new()
        .post(url)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 202);
    let started = Instant::now();
    eventually("delivered well before the minute is up", async || {
        siem.received_requests().await.unwrap().len() >= 2
    })
    .await;
    assert!(started.elapsed() < Duration::from_secs(15));
    a.shutdown().await;
    b.shutdown().await;
}

/// Start-up seeding on PostgreSQL takes every integration of the file in one transaction: new
/// ones and changed ones are applied, unchanged ones (secrets compared opened, not as sealed
/// text) are not, and a change made at run time since survives a start with the same file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_file_is_seeded_whole_and_only_what_changed_is_applied() {
    use evo_siem_sender::secrets::SecretsKey;
    use evo_siem_sender::settings::IntegrationSettings;
    let db = ScratchDatabase::new().await;
    let spool = PostgresSpool::connect(
        PostgresOptions::new(db.url.clone()),
        BacklogLimits::default(),
    )
    .await
    .unwrap();
    let key = SecretsKey::parse("ZXZvLXNpZW0gYmVuY2gga2V5LCAzMiBieXRlcyBvay4=").unwrap();
    let shared = evo_siem_sender::store::SharedState::on(&spool).with_key(Some(key));
    let file: Vec<IntegrationSettings> = (0..300)
        .map(|i| {
            let mut s = IntegrationSettings::new(format!("t{i}"), "https://siem.example.com/e");
            s.signing_secret = Some(format!("secret-of-tenant-{i:04}"));
            s
        })
        .collect();
    assert_eq!(shared.seed_all(&file).await.unwrap().len(), 300);
    // The same file again: nothing applied (the sealed texts differ, the secrets do not).
    assert!(shared.seed_all(&file).await.unwrap().is_empty());
    // Changed at run time, then the same file: the run-time change stays.
    let mut changed = file[7].clone();
    changed.excluded_actions = vec!["User login".into()];
    shared.put(&changed).await.unwrap();
    assert!(shared.seed_all(&file).await.unwrap().is_empty());
    assert_eq!(shared.settings("t7").await.unwrap(), Some(changed));
    // A file that changes one integration and adds one: exactly those two applied.
    let mut next = file.clone();
    next[3].linger_ms = Some(10);
    next.push(IntegrationSettings::new(
        "new",
        "https://siem.example.com/e",
    ));
    let mut applied = shared.seed_all(&next).await.unwrap();
    applied.sort();
    assert_eq!(applied, ["new", "t3"]);
    assert_eq!(
        shared.settings("t3").await.unwrap().unwrap().linger_ms,
        Some(10)
    );
}

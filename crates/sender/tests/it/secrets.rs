//! Issue 13, credentials: signing secrets and header values sealed at rest, a wrong or missing
//! key refused at start, plaintext rows of the previous version sealed, rekey, the shared
//! PostgreSQL table, and a stored integration that no longer validates paused instead of
//! stopping the others.

use evo_siem_protocol::{Secret, Verifier};
use evo_siem_sender::secrets::SecretsKey;
use evo_siem_sender::service::{Config, Sender};
use evo_siem_sender::{settings::IntegrationSettings, store::Registry};
use std::path::Path;
use std::time::{Duration, Instant};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

const TOKEN: &str = "ingest-token-for-secrets";
const SIGNING: &str = "stored-signing-secret-0123456789";
const AUTH: &str = "Splunk stored-hec-token-0123456789";
const OTHER_KEY: &str = "b3RoZXIga2V5IG9mIDMyIGJ5dGVzIGZvciB0ZXN0cyE=";

/// A configuration with `acme` (signed, with an Authorization header read from a file) when
/// `with_integration`, and `key` (base64) as its secrets key when given.
fn config(dir: &Path, siem: &str, key: Option<&str>, with_integration: bool) -> Config {
    std::fs::write(dir.join("token"), TOKEN).unwrap();
    std::fs::write(dir.join("signing"), SIGNING).unwrap();
    std::fs::write(dir.join("auth"), AUTH).unwrap();
    let secrets = match key {
        Some(key) => {
            std::fs::write(dir.join("key"), key).unwrap();
            format!("[secrets]\nkey_file = \"{}/key\"\n", dir.display())
        }
        None => String::new(),
    };
    let integration = if with_integration {
        format!(
            "[[integration]]\ntenant = \"acme\"\nwebhook_url = \"{siem}/acme\"\nsigning_secret_file = \"{dir}/signing\"\nheaders = {{ Authorization = {{ file = \"{dir}/auth\" }} }}\nlinger_ms = 0\n",
            dir = dir.display()
        )
    } else {
        String::new()
    };
    toml::from_str(&format!(
        "listen = \"127.0.0.1:0\"\ndata_dir = \"{dir}/data\"\ningest_token_file = \"{dir}/token\"\nallow_private_targets = [\"127.0.0.1/32\"]\n{secrets}{integration}",
        dir = dir.display()
    ))
    .unwrap()
}

async fn siem() -> MockServer {
    let siem = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&siem)
        .await;
    siem
}

async fn ingest(sender: &Sender, tenant: &str) -> String {
    let event = crate::common::event_json(0, "User logout");
    let uuid = event["data"]["uuid"].as_str().unwrap().to_owned();
    let status = reqwest::Client::new()
        .post(format!(
            "http://{}/v1/tenants/{tenant}/audit-events",
            sender.addr()
        ))
        .bearer_auth(TOKEN)
        .body(event.to_string())
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 202);
    uuid
}

/// Waits for the request carrying `uuid` and checks it is signed with [`SIGNING`] and carries
/// [`AUTH`].
async fn delivered_signed(siem: &MockServer, uuid: &str) {
    let started = Instant::now();
    loop {
        let requests = siem.received_requests().await.unwrap();
        if let Some(request) = requests
            .iter()
            .find(|r| String::from_utf8_lossy(&r.body).contains(uuid))
        {
            let signature = request.headers.get("x-evo-signature-256").unwrap();
            Verifier::new([Secret::new(SIGNING)])
                .verify(
                    &request.body,
                    Some(signature.as_bytes()),
                    std::time::SystemTime::now(),
                )
                .expect("signed with the stored secret");
            assert_eq!(request.headers.get("authorization").unwrap(), AUTH);
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "not delivered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every byte of the integration store: the database and its WAL.
fn store_bytes(dir: &Path) -> Vec<u8> {
    let mut bytes = Vec::new();
    for name in ["integrations.db", "integrations.db-wal"] {
        if let Ok(b) = std::fs::read(dir.join("data").join(name)) {
            bytes.extend(b);
        }
    }
    assert!(!bytes.is_empty());
    bytes
}

fn holds(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

fn assert_sealed(dir: &Path) {
    let bytes = store_bytes(dir);
    for secret in [SIGNING, "stored-hec-token"] {
        assert!(!holds(&bytes, secret), "{secret} in plaintext in the store");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_sealed_at_rest_and_a_wrong_or_missing_key_stops_the_start() {
    let siem = siem().await;
    let dir = tempfile::tempdir().unwrap();
    let key = SecretsKey::generate().unwrap();
    let sender = Sender::start(&config(dir.path(), &siem.uri(), Some(&key), true))
        .await
        .unwrap();
    let uuid = ingest(&sender, "acme").await;
    delivered_signed(&siem, &uuid).await;
    sender.shutdown().await;
    assert_sealed(dir.path());

    let wrong = Sender::start(&config(dir.path(), &siem.uri(), Some(OTHER_KEY), true))
        .await
        .unwrap_err()
        .to_string();
    let other_id = SecretsKey::parse(OTHER_KEY).unwrap().id().to_owned();
    let right_id = SecretsKey::parse(&key).unwrap().id().to_owned();
    assert!(
        wrong.contains("wrong key") && wrong.contains(&other_id) && wrong.contains(&right_id),
        "{wrong}"
    );
    let missing = Sender::start(&config(dir.path(), &siem.uri(), None, true))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        missing.contains("no secrets key is configured"),
        "{missing}"
    );
    for message in [&wrong, &missing] {
        assert!(!message.contains(SIGNING) && !message.contains(AUTH) && !message.contains(&key));
    }
    // A fresh store with a secret in the file and no key: refused, naming what to configure.
    let fresh = tempfile::tempdir().unwrap();
    let refused = Sender::start(&config(fresh.path(), &siem.uri(), None, true))
        .await
        .unwrap_err()
        .to_string();
    assert!(refused.contains("configure a secrets key"), "{refused}");
    // The right key still works: nothing was changed by the refused starts.
    let sender = Sender::start(&config(dir.path(), &siem.uri(), Some(&key), true))
        .await
        .unwrap();
    let uuid = ingest(&sender, "acme").await;
    delivered_signed(&siem, &uuid).await;
    sender.shutdown().await;
}

/// The settings the previous version would have stored for `acme`, as JSON with plaintext
/// secrets.
fn plaintext_settings(siem: &str) -> IntegrationSettings {
    IntegrationSettings {
        tenant: "acme".into(),
        webhook_url: format!("{siem}/acme"),
        signing_secret: Some(SIGNING.into()),
        next_signing_secret: None,
        headers: [("Authorization".to_owned(), AUTH.to_owned())].into(),
        signature_schemes: evo_siem_sender::settings::default_signature_schemes(),
        excluded_actions: vec![],
        max_batch_events: None,
        max_batch_bytes: None,
        linger_ms: Some(0),
    }
}

/// Writes rows into `integrations.db` as given (`tenant`, settings JSON, seed JSON), as an
/// earlier version or a corrupted store would have them.
fn write_rows(dir: &Path, rows: &[(&str, String, Option<String>)]) {
    std::fs::create_dir_all(dir.join("data")).unwrap();
    let conn = rusqlite::Connection::open(dir.join("data/integrations.db")).unwrap();
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS integrations (tenant TEXT PRIMARY KEY, settings TEXT NOT NULL, seed TEXT);",
    )
    .unwrap();
    for (tenant, settings, seed) in rows {
        conn.execute(
            "INSERT INTO integrations (tenant, settings, seed) VALUES (?1, ?2, ?3)",
            rusqlite::params![tenant, settings, seed],
        )
        .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_rows_of_the_previous_version_are_sealed_at_the_first_start_with_a_key() {
    let siem = siem().await;
    let dir = tempfile::tempdir().unwrap();
    let json = serde_json::to_string(&plaintext_settings(&siem.uri())).unwrap();
    write_rows(dir.path(), &[("acme", json.clone(), Some(json))]);
    assert!(holds(&store_bytes(dir.path()), SIGNING));
    // Without a key the plaintext secrets are neither served nor left as they are.
    let refused = Sender::start(&config(dir.path(), &siem.uri(), None, false))
        .await
        .unwrap_err()
        .to_string();
    assert!(refused.contains("configure a secrets key"), "{refused}");
    let key = SecretsKey::generate().unwrap();
    let sender = Sender::start(&config(dir.path(), &siem.uri(), Some(&key), false))
        .await
        .unwrap();
    assert_sealed(dir.path());
    let uuid = ingest(&sender, "acme").await;
    delivered_signed(&siem, &uuid).await;
    sender.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rekey_moves_every_secret_to_the_new_key_and_the_old_one_stops_working() {
    let siem = siem().await;
    let dir = tempfile::tempdir().unwrap();
    let old = SecretsKey::generate().unwrap();
    let new = SecretsKey::generate().unwrap();
    let sender = Sender::start(&config(dir.path(), &siem.uri(), Some(&old), true))
        .await
        .unwrap();
    sender.shutdown().await;
    let (old_key, new_key) = (
        SecretsKey::parse(&old).unwrap(),
        SecretsKey::parse(&new).unwrap(),
    );
    assert_eq!(
        Registry::rekey(&dir.path().join("data"), Some(&old_key), &new_key).unwrap(),
        1
    );
    // Run again (an interrupted rekey): nothing left to do.
    assert_eq!(
        Registry::rekey(&dir.path().join("data"), Some(&old_key), &new_key).unwrap(),
        0
    );
    assert_sealed(dir.path());
    let sender = Sender::start(&config(dir.path(), &siem.uri(), Some(&new), true))
        .await
        .unwrap();
    let uuid = ingest(&sender, "acme").await;
    delivered_signed(&siem, &uuid).await;
    sender.shutdown().await;
    let refused = Sender::start(&config(dir.path(), &siem.uri(), Some(&old), true))
        .await
        .unwrap_err()
        .to_string();
    assert!(refused.contains("wrong key"), "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shared_postgresql_table_holds_no_plaintext_secret() {
    let siem = siem().await;
    let db = crate::common::ScratchDatabase::new().await;
    let dir = tempfile::tempdir().unwrap();
    // A row as the previous version stored it, before any instance of this one starts.
    let spool = evo_siem_sender::spool::PostgresSpool::connect(
        evo_siem_sender::spool::PostgresOptions::new(db.url.clone()),
        Default::default(),
    )
    .await
    .unwrap();
    drop(spool);
    let (client, connection) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let mut legacy = plaintext_settings(&siem.uri());
    legacy.tenant = "globex".into();
    legacy.webhook_url = format!("{}/globex", siem.uri());
    client
        .execute(
            "INSERT INTO shared_integrations (tenant, settings) VALUES ('globex', $1)",
            &[&serde_json::to_string(&legacy).unwrap()],
        )
        .await
        .unwrap();

    let mut config =
        crate::common::pg_sender_config(&dir, &db, &format!("{}/acme", siem.uri()), 3000);
    std::fs::write(dir.path().join("signing"), SIGNING).unwrap();
    std::fs::write(dir.path().join("auth"), AUTH).unwrap();
    config.integrations[0].signing_secret_file = Some(dir.path().join("signing"));
    config.integrations[0].headers.insert(
        "Authorization".into(),
        evo_siem_sender::service::HeaderValueConfig::File {
            file: dir.path().join("auth"),
        },
    );
    let sender = Sender::start(&config).await.unwrap();
    for tenant in ["acme", "globex"] {
        let uuid = ingest_with(&sender, tenant).await;
        delivered_signed(&siem, &uuid).await;
    }
    let rows = client
        .query(
            "SELECT settings, coalesce(seed, '') FROM shared_integrations",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    for row in rows {
        for column in [row.get::<_, String>(0), row.get(1)] {
            assert!(
                !column.contains(SIGNING) && !column.contains("stored-hec-token"),
                "a plaintext secret in shared_integrations: {column}"
            );
        }
    }
    sender.shutdown().await;
}

/// [`ingest`] with the ingest token of [`crate::common::pg_sender_config`].
async fn ingest_with(sender: &Sender, tenant: &str) -> String {
    let event = crate::common::event_json(0, "User logout");
    let uuid = event["data"]["uuid"].as_str().unwrap().to_owned();
    let status = reqwest::Client::new()
        .post(format!(
            "http://{}/v1/tenants/{tenant}/audit-events",
            sender.addr()
        ))
        .bearer_auth("ingest-token")
        .body(event.to_string())
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 202);
    uuid
}

/// A stored integration that no longer passes validation (here a webhook URL to a private
/// address outside the allow-list, as a tightened rule would leave it) does not stop the sender:
/// the others are served, its status says paused and why, and a PUT with valid settings fixes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_integration_that_no_longer_validates_is_paused_and_the_others_deliver() {
    let siem = siem().await;
    let dir = tempfile::tempdir().unwrap();
    let good = plaintext_settings(&siem.uri());
    let mut broken = good.clone();
    broken.tenant = "globex".into();
    broken.webhook_url = "https://10.1.2.3/globex".into();
    let key = SecretsKey::generate().unwrap();
    let sealed = |s: &IntegrationSettings| {
        evo_siem_sender::secrets::seal_settings(s, Some(&SecretsKey::parse(&key).unwrap())).unwrap()
    };
    write_rows(
        dir.path(),
        &[
            ("acme", sealed(&good), None),
            ("globex", sealed(&broken), None),
        ],
    );
    let sender = Sender::start(&config(dir.path(), &siem.uri(), Some(&key), false))
        .await
        .unwrap();
    let uuid = ingest(&sender, "acme").await;
    delivered_signed(&siem, &uuid).await;

    let tokens = evo_siem_sender::store::TokenStore::open(&dir.path().join("data")).unwrap();
    let (token, _) = tokens
        .create(
            "globex",
            &[evo_siem_sender::store::Permission::Manage],
            "ops",
        )
        .unwrap();
    let base = format!(
        "http://{}/v1/tenants/globex/siem-integration",
        sender.addr()
    );
    let client = reqwest::Client::new();
    let status: serde_json::Value = client
        .get(format!("{base}/status"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["state"], "paused", "{status}");
    let reason = status["invalid_settings"].as_str().unwrap_or_default();
    assert!(reason.contains("webhook_url"), "{status}");
    assert!(!status.to_string().contains(SIGNING) && !status.to_string().contains(AUTH));

    // A valid PUT (the new origin needs the credentials again) fixes it: served at once.
    let put = serde_json::json!({
        "webhook_url": format!("{}/globex", siem.uri()),
        "signing_secret": {"set": SIGNING},
        "headers": {"Authorization": AUTH},
    });
    let answer = client
        .put(&base)
        .bearer_auth(&token)
        .json(&put)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let status: serde_json::Value = client
        .get(format!("{base}/status"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["state"], "active", "{status}");
    assert!(status.get("invalid_settings").is_none(), "{status}");
    let uuid = ingest(&sender, "globex").await;
    delivered_signed(&siem, &uuid).await;
    sender.shutdown().await;
}

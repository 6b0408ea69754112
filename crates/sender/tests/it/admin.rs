//! The tenant admin API over HTTP: the authorization matrix, validation, write-only secrets,
//! changes applied without a restart, and the audit event of each change.

use evo_siem_sender::service::{Config, Sender};
use evo_siem_sender::store::{Permission, TokenRow, TokenStore};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

pub(crate) const INGEST_TOKEN: &str = "ingest-token-for-admin-tests";
/// Secrets the tests set; none may appear in a response or a log line.
const SECRETS: [&str; 3] = [
    "signing-secret-one-0123456789",
    "signing-secret-two-0123456789",
    "Splunk hec-token-0123456789",
];

use crate::common::logs;

pub(crate) struct Fixture {
    pub(crate) sender: Sender,
    pub(crate) siem: MockServer,
    pub(crate) base: String,
    pub(crate) manage: String,
    pub(crate) view: String,
    pub(crate) other_tenant: String,
    _dir: tempfile::TempDir,
    pub(crate) db: Option<crate::common::ScratchDatabase>,
}

async fn fixture() -> Fixture {
    fixture_with("").await
}

/// A sender with `acme` and `globex` delivering to a wiremock SIEM; `extra` goes into the
/// configuration's top level (a `[delivery]` table, say).
async fn fixture_with(extra: &str) -> Fixture {
    fixture_on(extra, false).await
}

/// As [`fixture_with`], with the spool on a PostgreSQL database of its own when `postgres`.
async fn fixture_on(extra: &str, postgres: bool) -> Fixture {
    fixture_tuned(extra, postgres, |_| {}).await
}

/// As [`fixture_on`], with the configuration changed by `tune` before the sender starts.
pub(crate) async fn fixture_tuned(
    extra: &str,
    postgres: bool,
    tune: impl FnOnce(&mut Config),
) -> Fixture {
    logs();
    let siem = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&siem)
        .await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ingest-token"), INGEST_TOKEN).unwrap();
    let db = if postgres {
        Some(crate::common::ScratchDatabase::new().await)
    } else {
        None
    };
    let spool = match &db {
        Some(db) => {
            std::fs::write(dir.path().join("spool-url"), &db.url).unwrap();
            format!(
                "[spool]\nbackend = \"postgres\"\nurl_file = \"{}/spool-url\"\n",
                dir.path().display()
            )
        }
        None => String::new(),
    };
    let mut config: Config = toml::from_str(&format!(
        r#"
        listen = "127.0.0.1:0"
        data_dir = "{dir}"
        ingest_token_file = "{dir}/ingest-token"
        allow_private_targets = ["127.0.0.1/32"]
        {extra}
        {spool}
        {secrets}
        [[integration]]
        tenant = "acme"
        webhook_url = "{siem}/webhook"
        linger_ms = 0
        [[integration]]
        tenant = "globex"
        webhook_url = "{siem}/globex"
        linger_ms = 0
        "#,
        dir = dir.path().display(),
        siem = siem.uri(),
        secrets = crate::common::secrets_table(dir.path()),
    ))
    .unwrap();
    tune(&mut config);
    let sender = Sender::start(&config).await.unwrap();
    let tokens = TokenStore::open(dir.path()).unwrap();
    // On a PostgreSQL spool the shared state is the reference for tokens (the local store is a
    // copy that the sender overwrites): mint there, and locally too so they work at once.
    let shared = match &db {
        Some(db) => Some(evo_siem_sender::store::SharedState::on(
            &evo_siem_sender::spool::PostgresSpool::connect(
                evo_siem_sender::spool::PostgresOptions::new(db.url.clone()),
                Default::default(),
            )
            .await
            .unwrap(),
        )),
        None => None,
    };
    let mint = async |tenant: &str, permission: Permission, label: &str| {
        let (token, row) = TokenRow::mint(tenant, &[permission], label).unwrap();
        if let Some(shared) = &shared {
            shared.insert_token(&row).await.unwrap();
        }
        tokens.insert(&row).unwrap();
        token
    };
    let manage = mint("acme", Permission::Manage, "alice").await;
    let view = mint("acme", Permission::View, "auditor").await;
    let other_tenant = mint("globex", Permission::Manage, "mallory").await;
    Fixture {
        base: format!("http://{}", sender.addr()),
        sender,
        siem,
        manage,
        view,
        other_tenant,
        _dir: dir,
        db,
    }
}

async fn call(
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, serde_json::Value) {
    let client = reqwest::Client::new();
    let mut request = client.request(method.parse().unwrap(), url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_owned());
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    for secret in SECRETS {
        assert!(!text.contains(secret), "a secret in a response: {text}");
    }
    (status, serde_json::from_str(&text).unwrap_or_default())
}

/// Who calls.
#[derive(Debug, Clone, Copy)]
enum Caller {
    NoToken,
    BadToken,
    OtherTenant,
    ViewOnly,
    Manage,
}

const CALLERS: [Caller; 5] = [
    Caller::NoToken,
    Caller::BadToken,
    Caller::OtherTenant,
    Caller::ViewOnly,
    Caller::Manage,
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_authorization_matrix_holds_for_every_endpoint() {
    let f = fixture().await;
    let settings = format!("{}/v1/tenants/acme/siem-integration", f.base);
    let update = r#"{"excluded_actions": ["User login"]}"#;
    // (method, url, body, needs manage, status for a manager)
    let endpoints: Vec<(&str, String, Option<&str>, bool, u16)> = vec![
        ("GET", settings.clone(), None, false, 200),
        ("PUT", settings.clone(), Some(update), true, 200),
        ("GET", format!("{settings}/status"), None, false, 200),
        ("GET", format!("{settings}/dead-letters"), None, false, 200),
        (
            "POST",
            format!("{settings}/dead-letters/replay"),
            None,
            true,
            200,
        ),
        ("POST", format!("{settings}/resume"), None, true, 202),
        ("POST", format!("{settings}/test"), None, true, 200),
        ("DELETE", settings.clone(), None, true, 204),
    ];
    for (method, url, body, needs_manage, ok) in &endpoints {
        for caller in CALLERS {
            // Each row starts from an existing integration.
            let (status, _) = call(
                "PUT",
                &settings,
                Some(&f.manage),
                Some(r#"{"webhook_url": "http://127.0.0.1:9/hook"}"#),
            )
            .await;
            assert!(status == 200 || status == 201, "{status}");
            let token = match caller {
                Caller::NoToken => None,
                Caller::BadToken => {
                    Some("evo_adm_0000000000000000000000000000000000000000000000000000000000000000")
                }
                Caller::OtherTenant => Some(f.other_tenant.as_str()),
                Caller::ViewOnly => Some(f.view.as_str()),
                Caller::Manage => Some(f.manage.as_str()),
            };
            let expected = match caller {
                Caller::NoToken | Caller::BadToken => 401,
                Caller::OtherTenant => 404,
                Caller::ViewOnly if *needs_manage => 403,
                Caller::ViewOnly | Caller::Manage => *ok,
            };
            let (status, answer) = call(method, url, token, *body).await;
            assert_eq!(status, expected, "{method} {url} as {caller:?}: {answer}");
            if status >= 400 {
                assert!(answer["error"].is_string(), "{answer}");
            }
        }
    }
    // A tenant that does not exist looks exactly like another tenant's.
    let (status, answer) = call(
        "GET",
        &format!("{}/v1/tenants/nobody/siem-integration", f.base),
        Some(&f.manage),
        None,
    )
    .await;
    assert_eq!((status, answer["error"].as_str()), (404, Some("not_found")));
    f.sender.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_change_without_a_restart_secrets_stay_write_only_and_changes_are_audited() {
    let f = fixture().await;
    let settings = format!("{}/v1/tenants/acme/siem-integration", f.base);
    let put = format!(
        r#"{{"webhook_url": "{}/webhook", "headers": {{"Authorization": "{}"}},
            "signing_secret": {{"set": "{}"}}, "excluded_actions": ["User login"]}}"#,
        f.siem.uri(),
        SECRETS[2],
        SECRETS[0]
    );
    let (status, view) = call("PUT", &settings, Some(&f.manage), Some(&put)).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(
        view["signing_secret"],
        serde_json::json!({"set": true, "next_set": false})
    );
    assert_eq!(
        view["headers"],
        serde_json::json!({"Authorization": "<redacted>"})
    );
    let (_, view) = call("GET", &settings, Some(&f.view), None).await;
    assert_eq!(view["excluded_actions"], serde_json::json!(["User login"]));

    // A rotation: the next secret waits beside the current one, then replaces it.
    let (status, view) = call(
        "PUT",
        &settings,
        Some(&f.manage),
        Some(&format!(
            r#"{{"next_signing_secret": {{"set": "{}"}}}}"#,
            SECRETS[1]
        )),
    )
    .await;
    assert_eq!(
        (status, &view["signing_secret"]["next_set"]),
        (200, &serde_json::json!(true))
    );
    let (status, _) = call(
        "PUT",
        &settings,
        Some(&f.manage),
        Some(r#"{"signing_secret": {"rotate": true}}"#),
    )
    .await;
    assert_eq!(status, 200);

    // Invalid: each field named, nothing applied.
    let (status, answer) = call(
        "PUT",
        &settings,
        Some(&f.manage),
        Some(r#"{"webhook_url": "ftp://x", "headers": {"Content-Type": "text/plain"}, "linger_ms": -1}"#),
    )
    .await;
    assert_eq!(status, 422, "{answer}");
    let (status, answer) = call(
        "PUT",
        &settings,
        Some(&f.manage),
        Some(r#"{"webhook_url": "ftp://x", "headers": {"Content-Type": "text/plain", "Transfer-Encoding": "chunked", "Proxy-Authorization": "Basic eA==", "Upgrade": "h2c"}, "excluded_actions": [""]}"#),
    )
    .await;
    assert_eq!(status, 422);
    let fields: Vec<&str> = answer["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        [
            "webhook_url",
            "headers.Content-Type",
            "headers.Proxy-Authorization",
            "headers.Transfer-Encoding",
            "headers.Upgrade",
            "excluded_actions[0]"
        ]
    );
    let (_, view) = call("GET", &settings, Some(&f.manage), None).await;
    assert_eq!(view["excluded_actions"], serde_json::json!(["User login"]));
    let (status, _) = call("PUT", &settings, Some(&f.manage), Some("{not json")).await;
    assert_eq!(status, 400);

    // The changes apply at once: an event ingested now is signed with the rotated secret and
    // carries the header; each change arrived as an audit event naming its fields, no secrets.
    let event = serde_json::json!({"event_type":"create","table":"events","timestamp":"2024-01-15T10:30:00.000Z","data":{"uuid": uuid::Uuid::new_v4().to_string(),"action":"User logout","status":"Success","actor":{"kind":"User","name":"ana@example.com"},"origin":{"hostname":"h","ipaddr":"192.0.2.1"},"target":{"kind":"User","name":"ana@example.com"},"ts":1706000000123456789_i64,"created_at":1706000000123456789_i64}});
    let response = reqwest::Client::new()
        .post(format!("{}/v1/tenants/acme/audit-events", f.base))
        .bearer_auth(INGEST_TOKEN)
        .body(event.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 202);
    let started = Instant::now();
    let (audit, delivered) = loop {
        let requests = f.siem.received_requests().await.unwrap();
        let bodies: Vec<(serde_json::Value, &wiremock::Request)> = requests
            .iter()
            .filter(|r| r.url.path() == "/webhook")
            .map(|r| (serde_json::from_slice(&r.body).unwrap(), r))
            .collect();
        let events: Vec<(serde_json::Value, &wiremock::Request)> = bodies
            .iter()
            .flat_map(|(b, r)| {
                b["events"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(move |e| (e.clone(), *r))
            })
            .collect();
        let audit: Vec<serde_json::Value> = events
            .iter()
            .filter(|(e, _)| e["table"] == "siem_integrations")
            .map(|(e, _)| e.clone())
            .collect();
        let mine = events
            .iter()
            .find(|(e, _)| e["data"]["uuid"] == event["data"]["uuid"]);
        if audit.len() >= 3
            && let Some((_, request)) = mine
        {
            let signature = request
                .headers
                .get("x-evo-signature-256")
                .unwrap()
                .to_str()
                .unwrap()
                .to_owned();
            let expected =
                evo_siem_protocol::sign(&evo_siem_protocol::Secret::new(SECRETS[1]), &request.body);
            assert_eq!(signature, expected, "signed with the rotated secret");
            assert_eq!(request.headers.get("authorization").unwrap(), SECRETS[2]);
            break (audit, true);
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "not delivered: {} audit events",
            audit.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(delivered);
    let audit_text = serde_json::to_string(&audit).unwrap();
    for secret in SECRETS {
        assert!(!audit_text.contains(secret), "a secret in an audit event");
    }
    assert_eq!(audit[0]["data"]["action"], "SIEM integration updated");
    assert_eq!(
        audit[0]["data"]["actor"]["name"]
            .as_str()
            .unwrap()
            .split(' ')
            .next(),
        Some("alice")
    );
    assert_eq!(audit[0]["data"]["target"]["name"], "acme");
    let changed: Vec<&str> = audit[0]["data"]["changed_fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    // The URL is the one the configuration file set: unchanged, so not listed.
    assert_eq!(changed, ["headers", "signing_secret", "excluded_actions"]);
    assert_eq!(
        audit[1]["data"]["changed_fields"],
        serde_json::json!(["next_signing_secret"])
    );
    f.sender.shutdown().await;

    let logged = String::from_utf8_lossy(&logs().lock().unwrap()).into_owned();
    assert!(logged.contains("SIEM integration"), "the capture works");
    for secret in SECRETS {
        assert!(!logged.contains(secret), "a secret in the logs");
    }
}

pub(crate) fn ingest_body(actions: &[&str]) -> (Vec<String>, String) {
    let mut uuids = Vec::new();
    let lines: Vec<String> = actions
        .iter()
        .map(|action| {
            let uuid = uuid::Uuid::new_v4().to_string();
            uuids.push(uuid.clone());
            serde_json::json!({"event_type":"create","table":"events","timestamp":"2024-01-15T10:30:00.000Z","data":{"uuid": uuid,"action": action,"status":"Success","actor":{"kind":"User","name":"ana@example.com"},"origin":{"hostname":"h","ipaddr":"192.0.2.1"},"target":{"kind":"User","name":"ana@example.com"},"ts":1706000000123456789_i64,"created_at":1706000000123456789_i64}}).to_string()
        })
        .collect();
    (uuids, lines.join("\n"))
}

async fn ingest(f: &Fixture, actions: &[&str]) -> Vec<String> {
    let (uuids, body) = ingest_body(actions);
    let response = reqwest::Client::new()
        .post(format!("{}/v1/tenants/acme/audit-events", f.base))
        .bearer_auth(INGEST_TOKEN)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 202);
    uuids
}

async fn wait_for(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let started = Instant::now();
    while !done().await {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "timed out waiting: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A wiremock answer: 422 for a batch holding the action "Poison", 200 otherwise.
struct RefusePoison;

impl wiremock::Respond for RefusePoison {
    fn respond(&self, request: &wiremock::Request) -> ResponseTemplate {
        if String::from_utf8_lossy(&request.body).contains("\"Poison\"") {
            ResponseTemplate::new(422).set_body_string(r#"{"error":"invalid_event"}"#)
        } else {
            ResponseTemplate::new(200)
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_listed_by_pages_and_replayed_all() {
    dead_letters_are_listed_by_pages_and_replayed_all_on(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_listed_by_pages_and_replayed_all_on_postgres() {
    dead_letters_are_listed_by_pages_and_replayed_all_on(true).await;
}

/// Issue 12: `?limit=` and `?after=` page the listing, `total` and the status count every dead
/// letter, a bad query is a 400, more than 1,000 ids a 422, and a replay of all answers with
/// how many went back.
async fn dead_letters_are_listed_by_pages_and_replayed_all_on(postgres: bool) {
    let f = fixture_on("", postgres).await;
    let base = format!("{}/v1/tenants/acme/siem-integration", f.base);
    let list = format!("{base}/dead-letters");
    f.siem.reset().await;
    Mock::given(method("POST"))
        .respond_with(RefusePoison)
        .mount(&f.siem)
        .await;
    ingest(&f, &["Poison"; 250]).await;
    wait_for("250 dead letters", async || {
        call("GET", &format!("{list}?limit=1"), Some(&f.view), None)
            .await
            .1["total"]
            == 250
    })
    .await;
    let (_, status) = call("GET", &format!("{base}/status"), Some(&f.view), None).await;
    assert_eq!(status["dead_letters"], 250);

    let (code, first) = call("GET", &list, Some(&f.view), None).await;
    assert_eq!(code, 200);
    assert_eq!(
        first["dead_letters"].as_array().unwrap().len(),
        100,
        "default limit"
    );
    let mut ids = Vec::new();
    let mut sizes = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let url = match &after {
            Some(after) => format!("{list}?limit=100&after={after}"),
            None => format!("{list}?limit=100"),
        };
        let (code, page) = call("GET", &url, Some(&f.view), None).await;
        assert_eq!((code, &page["total"]), (200, &serde_json::json!(250)));
        let letters = page["dead_letters"].as_array().unwrap();
        sizes.push(letters.len());
        ids.extend(letters.iter().map(|l| l["id"].as_i64().unwrap()));
        assert!(
            letters
                .iter()
                .all(|l| l["event"]["data"]["action"] == "Poison")
        );
        match page["next"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => {
                assert!(page["next"].is_null(), "{page}");
                break;
            }
        }
    }
    assert_eq!(sizes, [100, 100, 50]);
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "in id order, no repeats"
    );

    for query in ["limit=0", "limit=1001", "limit=ten", "after=abc", "page=2"] {
        let (code, answer) = call("GET", &format!("{list}?{query}"), Some(&f.view), None).await;
        assert_eq!(
            (code, &answer["error"]),
            (400, &serde_json::json!("bad_request")),
            "{query}"
        );
    }
    let (code, _) = call("GET", &format!("{list}?limit=1000"), Some(&f.view), None).await;
    assert_eq!(code, 200);
    let too_many = serde_json::json!({ "ids": (0..1001).collect::<Vec<i64>>() }).to_string();
    let replay = format!("{list}/replay");
    let (code, answer) = call("POST", &replay, Some(&f.manage), Some(&too_many)).await;
    assert_eq!(
        (code, &answer["fields"][0]["field"]),
        (422, &serde_json::json!("ids"))
    );

    // The receiver is fixed: all of them back, in one call.
    f.siem.reset().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&f.siem)
        .await;
    let (code, answer) = call("POST", &replay, Some(&f.manage), None).await;
    assert_eq!((code, &answer["replayed"]), (200, &serde_json::json!(250)));
    let (_, after_replay) = call("GET", &list, Some(&f.view), None).await;
    assert_eq!(after_replay["total"], 0);
    assert!(
        after_replay["next"].is_null() && after_replay["dead_letters"] == serde_json::json!([])
    );
    wait_for("the replayed events delivered", async || {
        call("GET", &format!("{base}/status"), Some(&f.view), None)
            .await
            .1["queued_events"]
            == 0
    })
    .await;
    f.sender.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_dead_letters_replay_resume_and_metrics() {
    status_dead_letters_replay_resume_and_metrics_on(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_dead_letters_replay_resume_and_metrics_on_postgres() {
    status_dead_letters_replay_resume_and_metrics_on(true).await;
}

async fn status_dead_letters_replay_resume_and_metrics_on(postgres: bool) {
    // Backoff waits of a minute: only a resume ends them early.
    let f = fixture_on(
        "[delivery]\nretry_base_ms = 60000\nretry_cap_ms = 60000\n",
        postgres,
    )
    .await;
    let base = format!("{}/v1/tenants/acme/siem-integration", f.base);
    f.siem.reset().await;
    Mock::given(method("POST"))
        .respond_with(RefusePoison)
        .mount(&f.siem)
        .await;

    // A poison event is isolated and dead-lettered; the good one is delivered; the excluded one
    // is counted.
    let exclude = r#"{"excluded_actions": ["User login"]}"#;
    assert_eq!(
        call("PUT", &base, Some(&f.manage), Some(exclude)).await.0,
        200
    );
    ingest(&f, &["User logout", "Poison", "User login"]).await;
    wait_for("a dead letter", async || {
        call("GET", &format!("{base}/dead-letters"), Some(&f.view), None)
            .await
            .1["total"]
            == 1
    })
    .await;
    let (_, dead) = call("GET", &format!("{base}/dead-letters"), Some(&f.view), None).await;
    let letter = &dead["dead_letters"][0];
    assert_eq!(letter["event"]["data"]["action"], "Poison");
    assert!(
        letter["reason"].as_str().unwrap().starts_with("http 422"),
        "{letter}"
    );
    let (_, status) = call("GET", &format!("{base}/status"), Some(&f.view), None).await;
    assert_eq!(status["state"], "active", "{status}");
    assert_eq!(status["dead_letters"], 1);
    assert_eq!(status["totals"]["dead_lettered"], 1);
    assert_eq!(status["totals"]["excluded"], 1);
    assert_eq!(status["last_error"]["kind"], "http_status");
    assert_eq!(status["last_error"]["status"], 422);
    assert!(status["last_success"].is_string());
    assert_eq!(status["queued_events"], 0);

    // The receiver is fixed; a replay puts the event back and it is delivered.
    f.siem.reset().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&f.siem)
        .await;
    let (code, replayed) = call(
        "POST",
        &format!("{base}/dead-letters/replay"),
        Some(&f.manage),
        Some(&format!(r#"{{"ids": [{}]}}"#, letter["id"])),
    )
    .await;
    assert_eq!((code, &replayed["replayed"]), (200, &serde_json::json!(1)));
    wait_for("the replayed event delivered", async || {
        call("GET", &format!("{base}/status"), Some(&f.view), None)
            .await
            .1["totals"]["delivered"]
            // The good event, the audit event of the PUT, the replayed one.
            == 3
    })
    .await;

    // A 401 pauses the integration; events wait; resume tries again at once.
    f.siem.reset().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(401))
        .mount(&f.siem)
        .await;
    ingest(&f, &["User logout"]).await;
    wait_for("paused", async || {
        call("GET", &format!("{base}/status"), Some(&f.view), None)
            .await
            .1["state"]
            == "paused"
    })
    .await;
    let (_, status) = call("GET", &format!("{base}/status"), Some(&f.view), None).await;
    assert_eq!(status["queued_events"], 1);
    assert!(status["oldest_queued_age_seconds"].as_f64().unwrap() >= 0.0);
    assert_eq!(status["last_error"]["status"], 401);
    f.siem.reset().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&f.siem)
        .await;
    let (code, answer) = call("POST", &format!("{base}/resume"), Some(&f.manage), None).await;
    assert_eq!(
        (code, &answer["was_paused"]),
        (202, &serde_json::json!(true))
    );
    wait_for("delivered after resume", async || {
        let status = call("GET", &format!("{base}/status"), Some(&f.view), None)
            .await
            .1;
        status["state"] == "active" && status["queued_events"] == 0
    })
    .await;

    // Metrics: the platform token, OpenMetrics text, aggregates over every integration.
    let metrics = format!("{}/metrics", f.base);
    let (code, _) = call("GET", &metrics, Some(&f.manage), None).await;
    assert_eq!(code, 401);
    let answer = reqwest::Client::new()
        .get(&metrics)
        .bearer_auth(INGEST_TOKEN)
        .send()
        .await
        .unwrap();
    assert!(
        answer.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text"),
    );
    let text = answer.text().await.unwrap();
    for line in [
        "evo_siem_backlog_events 0",
        "evo_siem_integrations{state=\"active\"} 2",
        "evo_siem_integrations{state=\"paused\"} 0",
        "evo_siem_delivery_attempts_total{outcome=\"dead_lettered\"} 1",
        "evo_siem_delivery_attempts_total{outcome=\"paused\"}",
        "evo_siem_events_delivered_total 4",
        "evo_siem_events_dead_lettered_total 1",
        "evo_siem_events_excluded_total 1",
        "evo_siem_attempt_duration_seconds_bucket{le=\"+Inf\"}",
        "# TYPE evo_siem_attempt_duration_seconds histogram",
        "# TYPE evo_siem_delivery_attempts counter",
        "# EOF",
    ] {
        assert!(text.contains(line), "{line} missing:\n{text}");
    }
    // Nobody needs attention: no series names a tenant.
    assert!(!text.contains("tenant=\""), "{text}");
    f.sender.shutdown().await;
}

/// A receiver built on the receiver SDK, verifying with `secret`; `delay` before answering.
async fn receiver(secret: &str, delay: Duration) -> String {
    use axum::routing::post;
    let receiver = evo_siem_receiver::Receiver::builder()
        .secret(secret)
        .build()
        .unwrap();
    let app = axum::Router::new().route(
        "/webhook",
        post(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let receiver = receiver.clone();
                async move {
                    tokio::time::sleep(delay).await;
                    match receiver
                        .accept(&headers, body, std::time::SystemTime::now())
                        .await
                    {
                        Ok(batch) => {
                            axum::response::IntoResponse::into_response(batch.commit().await)
                        }
                        Err(rejection) => axum::response::IntoResponse::into_response(rejection),
                    }
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/webhook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_saved_webhook_diagnoses_success_refusal_unreachable_and_timeout() {
    let f = fixture_with("[delivery]\nattempt_timeout_ms = 1000\n").await;
    let base = format!("{}/v1/tenants/acme/siem-integration", f.base);
    let good = receiver(SECRETS[0], Duration::ZERO).await;
    let slow = receiver(SECRETS[0], Duration::from_secs(5)).await;
    let closed = format!(
        "http://{}/webhook",
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
    );
    let set = |url: &str, secret: &str| {
        format!(r#"{{"webhook_url": "{url}", "signing_secret": {{"set": "{secret}"}}}}"#)
    };
    let test = async || call("POST", &format!("{base}/test"), Some(&f.manage), None).await;

    assert_eq!(
        call("PUT", &base, Some(&f.manage), Some(&set(&good, SECRETS[0])))
            .await
            .0,
        200
    );
    let (code, d) = test().await;
    assert_eq!(
        (code, &d["ok"], &d["status"]),
        (200, &serde_json::json!(true), &serde_json::json!(200)),
        "{d}"
    );
    assert!(d["latency_ms"].as_f64().unwrap() > 0.0);

    assert_eq!(
        call("PUT", &base, Some(&f.manage), Some(&set(&good, SECRETS[1])))
            .await
            .0,
        200
    );
    let (_, d) = test().await;
    assert_eq!(
        (&d["ok"], &d["status"], &d["failure"]),
        (
            &serde_json::json!(false),
            &serde_json::json!(401),
            &serde_json::json!("http_status")
        ),
        "{d}"
    );
    assert!(
        d["diagnosis"].as_str().unwrap().contains("signature"),
        "{d}"
    );
    assert!(
        d["detail"].as_str().unwrap().contains("signature_mismatch"),
        "{d}"
    );
    // The right secret waiting as the next one: a test with it passes before the rotation.
    let next = format!(r#"{{"next_signing_secret": {{"set": "{}"}}}}"#, SECRETS[0]);
    assert_eq!(
        call("PUT", &base, Some(&f.manage), Some(&next)).await.0,
        200
    );
    let (_, d) = call(
        "POST",
        &format!("{base}/test"),
        Some(&f.manage),
        Some(r#"{"secret": "next"}"#),
    )
    .await;
    assert_eq!(d["ok"], true, "{d}");

    assert_eq!(
        call(
            "PUT",
            &base,
            Some(&f.manage),
            Some(&set(&closed, SECRETS[0]))
        )
        .await
        .0,
        200
    );
    let (_, d) = test().await;
    assert_eq!(
        (&d["ok"], &d["failure"]),
        (&serde_json::json!(false), &serde_json::json!("connect")),
        "{d}"
    );

    assert_eq!(
        call("PUT", &base, Some(&f.manage), Some(&set(&slow, SECRETS[0])))
            .await
            .0,
        200
    );
    let (_, d) = test().await;
    assert_eq!(d["failure"], "timeout", "{d}");

    // Five tests a minute per tenant.
    let (code, answer) = test().await;
    assert_eq!(
        (code, answer["error"].as_str()),
        (429, Some("rate_limited"))
    );
    f.sender.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_test_to_a_blocked_or_unresolvable_host_says_so() {
    use evo_siem_sender::api::admin::webhook_test::diagnose;
    use evo_siem_sender::dispatch::{DispatchSettings, Dispatcher, GuardedResolver, Lookup};
    let lookup: Lookup = Arc::new(|host: String| {
        Box::pin(async move {
            match host.as_str() {
                "internal.example" => Ok(vec![
                    "10.0.0.8".parse().unwrap(),
                    "169.254.169.254".parse().unwrap(),
                ]),
                _ => Err(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "failed to lookup address information: Name or service not known",
                )),
            }
        })
    });
    let settings = DispatchSettings::default();
    let dispatcher = Dispatcher::with_resolver(
        &settings,
        GuardedResolver::with_lookup(Arc::from(Vec::new()), lookup),
    )
    .unwrap();
    for (host, kind) in [("internal.example", "blocked"), ("nowhere.example", "dns")] {
        let integration =
            evo_siem_sender::Integration::new("acme", &format!("https://{host}/hook"), &[])
                .unwrap();
        let d = diagnose(&dispatcher, &integration, "test").await;
        assert_eq!(serde_json::to_value(&d).unwrap()["failure"], kind, "{d:?}");
        assert!(!d.ok);
    }
}

/// A wiremock answer recording each request's path-free details: 503 with `Retry-After: 1`.
async fn failing_siem() -> MockServer {
    let bad = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503).insert_header("retry-after", "1"))
        .mount(&bad)
        .await;
    bad
}

fn header_of(request: &wiremock::Request, name: &str) -> String {
    request
        .headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// A batch being retried takes the settings in force at its next attempt: a PUT of a new URL,
/// secret and headers reaches it without a restart, and it keeps its delivery id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_being_retried_uses_the_settings_in_force_at_its_next_attempt() {
    let f = fixture().await;
    let settings = format!("{}/v1/tenants/acme/siem-integration", f.base);
    let bad = failing_siem().await;
    let put = format!(r#"{{"webhook_url": "{}/old"}}"#, bad.uri());
    let (status, _) = call("PUT", &settings, Some(&f.manage), Some(&put)).await;
    assert_eq!(status, 200);
    let uuids = ingest(&f, &["User logout", "User logout"]).await;
    wait_for("a failed attempt", async || {
        !bad.received_requests().await.unwrap().is_empty()
    })
    .await;
    let first = bad.received_requests().await.unwrap()[0].clone();

    let put = format!(
        r#"{{"webhook_url": "{}/new", "signing_secret": {{"set": "{}"}}, "headers": {{"Authorization": "{}"}}}}"#,
        f.siem.uri(),
        SECRETS[0],
        SECRETS[2]
    );
    let (status, answer) = call("PUT", &settings, Some(&f.manage), Some(&put)).await;
    assert_eq!(status, 200, "{answer}");
    // The batch that failed at the old URL is retried, with its delivery id, at the new one.
    let retried = async || {
        f.siem
            .received_requests()
            .await
            .unwrap()
            .into_iter()
            .find(|r| {
                r.url.path() == "/new"
                    && header_of(r, "x-evo-delivery-id") == header_of(&first, "x-evo-delivery-id")
            })
    };
    wait_for("the retry at the new URL", async || {
        retried().await.is_some()
    })
    .await;
    let request = retried().await.unwrap();
    assert!(
        header_of(&request, "x-evo-delivery-attempt")
            .parse::<u32>()
            .unwrap()
            >= 2
    );
    assert_eq!(header_of(&request, "authorization"), SECRETS[2]);
    let verified = evo_siem_protocol::Verifier::new([evo_siem_protocol::Secret::new(SECRETS[0])])
        .verify(
            &request.body,
            Some(header_of(&request, "x-evo-signature-256").as_bytes()),
            std::time::SystemTime::now(),
        );
    assert!(verified.is_ok(), "not signed with the new secret");
    // Nothing more for the old URL, nothing left queued, every event at the new URL.
    let old_attempts = bad.received_requests().await.unwrap().len();
    wait_for("an empty queue", async || {
        let (_, status) = call("GET", &format!("{settings}/status"), Some(&f.view), None).await;
        status["queued_events"] == 0
    })
    .await;
    let bodies: String = f
        .siem
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path() == "/new")
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect();
    assert!(uuids.iter().all(|u| bodies.contains(u.as_str())));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(bad.received_requests().await.unwrap().len(), old_attempts);
}

/// A tenant paused on 401 who fixes the credential and presses resume is delivered at once,
/// not after its backoff or a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_tenant_who_fixes_its_credential_and_resumes_is_delivered() {
    // Long pauses: only the fix and the resume can end this one within the test.
    let f = fixture_with("[delivery]\nretry_base_ms = 60000\nretry_cap_ms = 60000\n").await;
    let settings = format!("{}/v1/tenants/acme/siem-integration", f.base);
    let strict = MockServer::start().await;
    Mock::given(method("POST"))
        .and(wiremock::matchers::header("authorization", SECRETS[2]))
        .respond_with(ResponseTemplate::new(200))
        .with_priority(1)
        .mount(&strict)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(401))
        .with_priority(2)
        .mount(&strict)
        .await;
    let put = format!(
        r#"{{"webhook_url": "{}/hook", "headers": {{"Authorization": "wrong"}}}}"#,
        strict.uri()
    );
    assert_eq!(
        call("PUT", &settings, Some(&f.manage), Some(&put)).await.0,
        200
    );
    ingest(&f, &["User logout"]).await;
    wait_for("the pause", async || {
        let (_, status) = call("GET", &format!("{settings}/status"), Some(&f.view), None).await;
        status["state"] == "paused"
    })
    .await;
    let put = format!(r#"{{"headers": {{"Authorization": "{}"}}}}"#, SECRETS[2]);
    assert_eq!(
        call("PUT", &settings, Some(&f.manage), Some(&put)).await.0,
        200
    );
    let (status, _) = call("POST", &format!("{settings}/resume"), Some(&f.manage), None).await;
    assert_eq!(status, 202);
    let started = Instant::now();
    wait_for("the delivery after the fix", async || {
        let (_, status) = call("GET", &format!("{settings}/status"), Some(&f.view), None).await;
        status["queued_events"] == 0
    })
    .await;
    assert!(started.elapsed() < Duration::from_secs(10));
    let (_, status) = call("GET", &format!("{settings}/status"), Some(&f.view), None).await;
    assert_eq!(status["state"], "active", "{status}");
}

/// A DELETE stops the deliveries of a batch being retried: no attempt after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_stops_the_retries_of_a_batch() {
    let f = fixture().await;
    let settings = format!("{}/v1/tenants/acme/siem-integration", f.base);
    let bad = failing_siem().await;
    let put = format!(r#"{{"webhook_url": "{}/hook"}}"#, bad.uri());
    assert_eq!(
        call("PUT", &settings, Some(&f.manage), Some(&put)).await.0,
        200
    );
    ingest(&f, &["User logout"]).await;
    wait_for("two failed attempts", async || {
        bad.received_requests().await.unwrap().len() >= 2
    })
    .await;
    assert_eq!(
        call("DELETE", &settings, Some(&f.manage), None).await.0,
        204
    );
    let after_delete = bad.received_requests().await.unwrap().len();
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert_eq!(
        bad.received_requests().await.unwrap().len(),
        after_delete,
        "attempts went on after the DELETE"
    );
}

/// A webhook URL's credentials are refused without being echoed, and a token in its query never
/// leaves through the status, an attempt's detail (Test Saved Webhook) or a log line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_url_credentials_and_query_values_never_leave() {
    const PASSWORD: &str = "url-password-0123456789";
    const TOKEN: &str = "url-query-token-0123456789";
    let f = fixture_with("[delivery]\nretry_base_ms = 60000\nretry_cap_ms = 60000\n").await;
    let base = format!("{}/v1/tenants/acme/siem-integration", f.base);
    // A closed port on the allowed loopback address: every attempt fails to connect.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };

    let (status, answer) = call(
        "PUT",
        &base,
        Some(&f.manage),
        Some(&format!(
            r#"{{"webhook_url": "http://user:{PASSWORD}@127.0.0.1:{port}/hook?token={TOKEN}"}}"#
        )),
    )
    .await;
    assert_eq!(status, 422, "{answer}");
    let text = answer.to_string();
    assert!(!text.contains(PASSWORD) && !text.contains(TOKEN), "{text}");

    let url = format!("http://127.0.0.1:{port}/hook?token={TOKEN}&channel=evo");
    let (status, answer) = call(
        "PUT",
        &base,
        Some(&f.manage),
        Some(&format!(r#"{{"webhook_url": "{url}"}}"#)),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    ingest(&f, &["User logout"]).await;
    wait_for("a failed attempt", async || {
        !call("GET", &format!("{base}/status"), Some(&f.view), None)
            .await
            .1["last_error"]
            .is_null()
    })
    .await;
    let (_, status) = call("GET", &format!("{base}/status"), Some(&f.view), None).await;
    assert_eq!(status["last_error"]["kind"], "connect", "{status}");
    let text = status.to_string();
    assert!(!text.contains(TOKEN), "the token in the status: {text}");

    let (code, diagnosis) = call("POST", &format!("{base}/test"), Some(&f.manage), None).await;
    assert_eq!(code, 200, "{diagnosis}");
    assert_eq!(diagnosis["failure"], "connect", "{diagnosis}");
    let text = diagnosis.to_string();
    assert!(!text.contains(TOKEN), "the token in the detail: {text}");

    let logs = String::from_utf8_lossy(&logs().lock().unwrap()).into_owned();
    assert!(!logs.contains(PASSWORD), "the password in the logs");
    assert!(!logs.contains(TOKEN), "the token in the logs");
    f.sender.shutdown().await;
}

/// Write-only values stay with their endpoint: a PUT moving the webhook URL to another origin
/// without giving the stored header values and secret again is refused (422 naming each), and
/// neither a delivery nor Test Saved Webhook carries the old `Authorization` value or a
/// signature to the new origin. Given again, they are accepted and used there; a new path on the
/// same origin keeps them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_origin_gets_no_stored_credential_unless_it_is_given_again() {
    let f = fixture().await;
    let settings = format!("{}/v1/tenants/acme/siem-integration", f.base);
    let put = format!(
        r#"{{"webhook_url": "{}/old", "signing_secret": {{"set": "{}"}}, "next_signing_secret": {{"set": "{}"}}, "headers": {{"Authorization": "{}"}}}}"#,
        f.siem.uri(),
        SECRETS[0],
        SECRETS[1],
        SECRETS[2]
    );
    let (status, answer) = call("PUT", &settings, Some(&f.manage), Some(&put)).await;
    assert_eq!(status, 200, "{answer}");
    // Same origin, another path: the values stay.
    let put = format!(r#"{{"webhook_url": "{}/moved"}}"#, f.siem.uri());
    let (status, answer) = call("PUT", &settings, Some(&f.manage), Some(&put)).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["signing_secret"]["set"], true, "{answer}");

    // Another origin (another port of the same host): refused, naming what to give again.
    let attacker = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&attacker)
        .await;
    for put in [
        format!(r#"{{"webhook_url": "{}/steal"}}"#, attacker.uri()),
        format!(
            r#"{{"webhook_url": "{}/steal", "headers": {{"Authorization": {{"keep": true}}}}, "signing_secret": {{"keep": true}}}}"#,
            attacker.uri()
        ),
        format!(
            r#"{{"webhook_url": "{}/steal", "headers": {{"Authorization": {{"keep": true}}}}, "signing_secret": {{"rotate": true}}}}"#,
            attacker.uri()
        ),
    ] {
        let (status, answer) = call("PUT", &settings, Some(&f.manage), Some(&put)).await;
        assert_eq!(status, 422, "{answer}");
        let fields: Vec<&str> = answer["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].as_str().unwrap())
            .collect();
        assert!(fields.contains(&"headers.Authorization"), "{answer}");
        assert!(fields.contains(&"signing_secret"), "{answer}");
    }
    // Nothing changed: a delivery and Test Saved Webhook still go to the old endpoint.
    let (_, view) = call("GET", &settings, Some(&f.view), None).await;
    assert!(view["webhook_url"].as_str().unwrap().ends_with("/moved"));
    let uuids = ingest(&f, &["User logout"]).await;
    wait_for("the delivery at the old endpoint", async || {
        f.siem
            .received_requests()
            .await
            .unwrap()
            .iter()
            .any(|r| String::from_utf8_lossy(&r.body).contains(&uuids[0]))
    })
    .await;
    let (status, answer) = call("POST", &format!("{settings}/test"), Some(&f.manage), None).await;
    assert_eq!(status, 200, "{answer}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        attacker.received_requests().await.unwrap().is_empty(),
        "a request reached the new origin"
    );

    // Given again: accepted, and the new values are what the new origin gets.
    let new_auth = "Splunk new-endpoint-token";
    let put = format!(
        r#"{{"webhook_url": "{}/new", "headers": {{"Authorization": "{new_auth}"}}, "signing_secret": {{"set": "{}"}}}}"#,
        attacker.uri(),
        SECRETS[1]
    );
    let (status, answer) = call("PUT", &settings, Some(&f.manage), Some(&put)).await;
    assert_eq!(status, 200, "{answer}");
    let (status, answer) = call("POST", &format!("{settings}/test"), Some(&f.manage), None).await;
    assert_eq!(status, 200, "{answer}");
    let uuids = ingest(&f, &["User logout"]).await;
    wait_for("the delivery at the new endpoint", async || {
        attacker
            .received_requests()
            .await
            .unwrap()
            .iter()
            .any(|r| String::from_utf8_lossy(&r.body).contains(&uuids[0]))
    })
    .await;
    let requests = attacker.received_requests().await.unwrap();
    assert!(requests.len() >= 2, "the test and the delivery");
    for request in &requests {
        assert_eq!(header_of(request, "authorization"), new_auth);
        let verified =
            evo_siem_protocol::Verifier::new([evo_siem_protocol::Secret::new(SECRETS[1])]).verify(
                &request.body,
                Some(header_of(request, "x-evo-signature-256").as_bytes()),
                std::time::SystemTime::now(),
            );
        assert!(verified.is_ok(), "not signed with the secret given again");
    }
}

/// A 422 never echoes a submitted secret or header value, whatever shape it came in (a string
/// where an operation object is expected, a number, a bad header value, a short secret).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_422_never_echoes_a_submitted_secret_or_header_value() {
    let f = fixture().await;
    let settings = format!("{}/v1/tenants/acme/siem-integration", f.base);
    let bodies = [
        format!(r#"{{"signing_secret": "{}"}}"#, SECRETS[0]),
        format!(r#"{{"next_signing_secret": "{}"}}"#, SECRETS[1]),
        format!(
            r#"{{"signing_secret": {{"set": "{}", "keep": "{}"}}}}"#,
            SECRETS[0], SECRETS[1]
        ),
        format!(r#"{{"signing_secret": {{"keep": "{}"}}}}"#, SECRETS[0]),
        format!(r#"{{"headers": {{"Authorization": ["{}"]}}}}"#, SECRETS[2]),
        format!(
            r#"{{"headers": {{"Authorization": "{}\u0001"}}}}"#,
            SECRETS[2]
        ),
        format!(r#"{{"headers": {{"Host": "{}"}}}}"#, SECRETS[2]),
        format!(r#"{{"headers": "{}"}}"#, SECRETS[2]),
        r#"{"signing_secret": {"set": "short-sekrit"}}"#.to_owned(),
    ];
    for body in bodies {
        // `call` fails on any response holding one of SECRETS.
        let (status, answer) = call("PUT", &settings, Some(&f.manage), Some(&body)).await;
        assert_eq!(status, 422, "{body}: {answer}");
        assert!(!answer.to_string().contains("short-sekrit"), "{answer}");
    }
}

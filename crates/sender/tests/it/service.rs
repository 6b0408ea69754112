//! The sender service over HTTP: authentication, tenants, all-or-nothing validation, backpressure,
//! and events ingested through the API arriving at the SIEM.

use evo_siem_sender::service::{Config, Sender};
use std::time::{Duration, Instant};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

const TOKEN: &str = "ingest-token-for-tests";

fn config(dir: &std::path::Path, siem: &str, extra: &str) -> Config {
    let token_file = dir.join("ingest-token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let text = format!(
        r#"
        listen = "127.0.0.1:0"
        data_dir = "{}"
        ingest_token_file = "{}"
        allow_private_targets = ["127.0.0.1/32"]
        {extra}
        {secrets}
        [[integration]]
        tenant = "acme"
        webhook_url = "{siem}/webhook"
        excluded_actions = ["User login"]
        linger_ms = 0
        "#,
        dir.display(),
        token_file.display(),
        secrets = crate::common::secrets_table(dir),
    );
    toml::from_str(&text).unwrap()
}

fn event(n: usize, action: &str) -> serde_json::Value {
    crate::common::event_json(n, action)
}

async fn post(
    sender: &Sender,
    tenant: &str,
    token: Option<&str>,
    body: String,
) -> (u16, serde_json::Value) {
    let mut request = reqwest::Client::new()
        .post(format!(
            "http://{}/v1/tenants/{tenant}/audit-events",
            sender.addr()
        ))
        .body(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingested_events_reach_the_siem_and_bad_requests_are_refused() {
    let siem = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&siem)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let sender = Sender::start(&config(dir.path(), &siem.uri(), ""))
        .await
        .unwrap();

    let batch = serde_json::to_string(&[
        event(0, "User logout"),
        event(1, "User login"),
        event(2, "Role assigned"),
    ])
    .unwrap();
    assert_eq!(post(&sender, "acme", None, batch.clone()).await.0, 401);
    assert_eq!(
        post(&sender, "acme", Some("wrong"), batch.clone()).await.0,
        401
    );
    assert_eq!(
        post(&sender, "globex", Some(TOKEN), batch.clone()).await.0,
        404
    );

    // One bad event refuses the whole request, naming it.
    let mut bad = vec![event(3, "User logout"), event(4, "User logout")];
    bad[1]["data"]["ts"] = serde_json::json!("yesterday");
    let (status, body) = post(
        &sender,
        "acme",
        Some(TOKEN),
        serde_json::to_string(&bad).unwrap(),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str(), body["index"].as_u64()),
        (400, Some("invalid_event"), Some(1))
    );

    let (status, body) = post(&sender, "acme", Some(TOKEN), batch).await;
    assert_eq!(
        (status, body),
        (202, serde_json::json!({"accepted": 2, "excluded": 1}))
    );
    // Event ids as the platform writes them: any printable ASCII up to 128 bytes, such as the
    // product page's "evt-abc123", but not an empty one, nor a longer one.
    for bad_id in ["", &"e".repeat(129), "evt-\u{7}"] {
        let mut bad = event(7, "User logout");
        bad["data"]["uuid"] = bad_id.into();
        let (status, body) = post(&sender, "acme", Some(TOKEN), format!("[{bad}]")).await;
        assert_eq!(
            (status, body["error"].as_str(), body["index"].as_u64()),
            (400, Some("invalid_event"), Some(0)),
            "{bad_id:?}"
        );
    }
    let mut seed_id = event(6, "User logout");
    seed_id["data"]["uuid"] = "evt-abc123".into();
    let ndjson = format!("{}\n{}\n", event(5, "User logout"), seed_id);
    let (status, body) = post(&sender, "acme", Some(TOKEN), ndjson).await;
    assert_eq!(
        (status, body),
        (202, serde_json::json!({"accepted": 2, "excluded": 0}))
    );

    let stats = sender.stats("acme").unwrap();
    let started = Instant::now();
    while stats.delivered.load(std::sync::atomic::Ordering::Relaxed) < 4 {
        assert!(started.elapsed() < Duration::from_secs(5), "not delivered");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let sent: Vec<String> = siem
        .received_requests()
        .await
        .unwrap()
        .iter()
        .flat_map(|r| {
            let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
            body["events"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["data"]["actor"]["name"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(
        sent,
        [
            "user0@example.com",
            "user2@example.com",
            "user5@example.com",
            "user6@example.com"
        ]
    );
    sender.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_backlog_answers_503_with_retry_after() {
    let siem = MockServer::start().await;
    // The SIEM is down, so the backlog only grows.
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&siem)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let sender = Sender::start(&config(dir.path(), &siem.uri(), "backlog_max_events = 3"))
        .await
        .unwrap();
    let two = serde_json::to_string(&[event(0, "A"), event(1, "B")]).unwrap();
    assert_eq!(post(&sender, "acme", Some(TOKEN), two.clone()).await.0, 202);
    let response = reqwest::Client::new()
        .post(format!(
            "http://{}/v1/tenants/acme/audit-events",
            sender.addr()
        ))
        .bearer_auth(TOKEN)
        .body(two)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 503);
    assert!(response.headers().get("retry-after").is_some());
    sender.shutdown().await;
}

#[test]
fn the_example_config_parses_and_mistakes_are_refused() {
    use evo_siem_sender::service::ConfigError;
    let example =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/sender-local.toml");
    let config = Config::load(&example).unwrap();
    assert_eq!(
        (
            config.integrations.len(),
            config.integrations[0].tenant.as_str()
        ),
        (1, "acme")
    );

    let typo = "listen = \"127.0.0.1:0\"\ndata_dir = \"d\"\ningest_token_env = \"T\"\nlisen = 1\n";
    assert!(
        toml::from_str::<Config>(typo)
            .unwrap_err()
            .to_string()
            .contains("unknown field `lisen`")
    );

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("empty"), "\n").unwrap();
    let empty = format!(
        "listen = \"127.0.0.1:0\"\ndata_dir = \"d\"\ningest_token_file = \"{}\"\n",
        dir.path().join("empty").display()
    );
    let config: Config = toml::from_str(&empty).unwrap();
    assert!(matches!(
        config.ingest_token(),
        Err(ConfigError::EmptySecretFile { .. })
    ));

    let internal = format!(
        "{empty}[[integration]]\ntenant = \"acme\"\nwebhook_url = \"https://10.0.0.8/hook\"\n"
    );
    let config: Config = toml::from_str(&internal).unwrap();
    let err = config.integrations().unwrap_err().to_string();
    assert_eq!(
        err,
        "integration acme: webhook_url: 10.0.0.8 is a private address"
    );

    // Hop-by-hop headers are refused like the sender's own ones, in the admin API's words.
    for name in [
        "Transfer-Encoding",
        "Connection",
        "Proxy-Authorization",
        "TE",
    ] {
        let hop = format!(
            "{empty}[[integration]]\ntenant = \"acme\"\nwebhook_url = \"https://siem.example.com/hook\"\nheaders = {{ \"{name}\" = \"x\" }}\n"
        );
        let config: Config = toml::from_str(&hop).unwrap();
        let err = config.integrations().unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("integration acme: headers.{name}: "))
                && err.contains("hop-by-hop headers"),
            "{name}: {err}"
        );
    }

    // [delivery]: defaults when absent, each key optional, nonsense refused.
    assert_eq!(
        config.delivery,
        evo_siem_sender::service::DeliveryConfig::default()
    );
    let tuned: Config = toml::from_str(&format!(
        "{empty}[delivery]\nattempt_timeout_ms = 1500\nretry_base_ms = 20\n"
    ))
    .unwrap();
    let dispatch = tuned.delivery.dispatch(Vec::new()).unwrap();
    assert_eq!(dispatch.timeout, std::time::Duration::from_millis(1500));
    assert_eq!(dispatch.connect_timeout, std::time::Duration::from_secs(5));
    assert_eq!(
        tuned.delivery.backoff().unwrap().ceiling(2),
        std::time::Duration::from_millis(40)
    );
    let zero: Config = toml::from_str(&format!("{empty}[delivery]\nretry_base_ms = 0\n")).unwrap();
    assert_eq!(
        zero.delivery.backoff().unwrap_err().to_string(),
        "[delivery]: the base delay must be greater than zero"
    );
    // The pacing floor: 1 s unless the operator lowers it; zero is refused.
    assert_eq!(
        tuned.delivery.backoff().unwrap().floor(),
        std::time::Duration::from_secs(1)
    );
    let floored: Config =
        toml::from_str(&format!("{empty}[delivery]\nretry_floor_ms = 5\n")).unwrap();
    assert_eq!(
        floored.delivery.backoff().unwrap().floor(),
        std::time::Duration::from_millis(5)
    );
    let zero: Config = toml::from_str(&format!("{empty}[delivery]\nretry_floor_ms = 0\n")).unwrap();
    assert_eq!(
        zero.delivery.backoff().unwrap_err().to_string(),
        "[delivery]: the retry floor must be greater than zero"
    );
    let zero: Config =
        toml::from_str(&format!("{empty}[delivery]\nattempt_timeout_ms = 0\n")).unwrap();
    assert!(matches!(
        zero.delivery.dispatch(Vec::new()),
        Err(evo_siem_sender::service::ConfigError::Delivery(reason))
            if reason == "timeouts must be greater than zero"
    ));
}

/// The configuration file goes through the admin API's check: what a PUT refuses, the file
/// refuses too, with the same field names and messages, and no secret in them.
#[test]
fn the_configuration_file_refuses_what_the_admin_api_refuses() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("token"), "t").unwrap();
    std::fs::write(dir.path().join("short"), "ten-bytes!").unwrap();
    let headers: Vec<String> = (0..17).map(|i| format!("\"X-H{i}\" = \"v\"")).collect();
    let text = format!(
        "listen = \"127.0.0.1:0\"\ndata_dir = \"unused\"\ningest_token_file = {token:?}\n[[integration]]\ntenant = \"acme\"\nwebhook_url = \"https://siem.example.com/hook\"\nsigning_secret_file = {short:?}\nheaders = {{ {headers} }}\nexcluded_actions = [\"\"]\nmax_batch_events = 0\nmax_batch_bytes = 10\nlinger_ms = 3600000\n",
        token = dir.path().join("token"),
        short = dir.path().join("short"),
        headers = headers.join(", "),
    );
    let config = Config::parse(&text).unwrap();
    let err = config.settings().unwrap_err();
    let evo_siem_sender::service::ConfigError::Settings(invalid) = &err else {
        panic!("not a settings error: {err}");
    };
    let fields: Vec<&str> = invalid.fields.iter().map(|f| f.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "headers",
            "signing_secret",
            "excluded_actions[0]",
            "max_batch_events",
            "max_batch_bytes",
            "linger_ms"
        ]
    );
    assert!(!err.to_string().contains("ten-bytes"), "{err}");
    // The same values through the admin API's own check, field for field.
    let mut settings = evo_siem_sender::settings::IntegrationSettings::new(
        "acme",
        "https://siem.example.com/hook",
    );
    settings.signing_secret = Some("ten-bytes!".into());
    settings.headers = (0..17).map(|i| (format!("X-H{i}"), "v".into())).collect();
    settings.excluded_actions = vec![String::new()];
    settings.max_batch_events = Some(0);
    settings.max_batch_bytes = Some(10);
    settings.linger_ms = Some(3_600_000);
    assert_eq!(settings.check(&[]).unwrap_err(), *invalid);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn integrations_change_at_run_time_and_survive_a_restart() {
    use evo_siem_sender::settings::IntegrationSettings;
    let siem = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&siem)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), &siem.uri(), "");
    let sender = Sender::start(&config).await.unwrap();
    let one = |action: &str| serde_json::to_string(&[event(0, action)]).unwrap();

    // A tenant added while the sender runs gets a worker and takes events at once.
    let globex = IntegrationSettings {
        tenant: "globex".into(),
        webhook_url: format!("{}/webhook", siem.uri()),
        signing_secret: Some("globex-signing-secret".into()),
        next_signing_secret: None,
        headers: Default::default(),
        signature_schemes: evo_siem_sender::settings::default_signature_schemes(),
        excluded_actions: vec![],
        max_batch_events: None,
        max_batch_bytes: None,
        linger_ms: Some(0),
    };
    sender.registry().put(&globex).unwrap();
    assert_eq!(
        post(&sender, "globex", Some(TOKEN), one("User logout"))
            .await
            .0,
        202
    );
    let started = Instant::now();
    while sender
        .stats("globex")
        .is_none_or(|s| s.delivered.load(std::sync::atomic::Ordering::Relaxed) < 1)
    {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the new tenant's events were not delivered"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // A changed exclusion list applies to the next request, without a restart.
    let mut acme = sender.registry().settings("acme").unwrap().unwrap();
    acme.excluded_actions.push("User logout".into());
    sender.registry().put(&acme).unwrap();
    let (_, body) = post(&sender, "acme", Some(TOKEN), one("User logout")).await;
    assert_eq!(body, serde_json::json!({"accepted": 0, "excluded": 1}));
    sender.shutdown().await;

    // A restart with the same file keeps both run-time changes.
    let sender = Sender::start(&config).await.unwrap();
    assert_eq!(
        post(&sender, "globex", Some(TOKEN), one("User logout"))
            .await
            .0,
        202
    );
    let (_, body) = post(&sender, "acme", Some(TOKEN), one("User logout")).await;
    assert_eq!(body, serde_json::json!({"accepted": 0, "excluded": 1}));
    assert!(sender.registry().remove("globex").unwrap());
    assert_eq!(
        post(&sender, "globex", Some(TOKEN), one("User logout"))
            .await
            .0,
        404
    );
    sender.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_during_an_outage_does_not_wait_out_the_backoff_and_keeps_the_batch() {
    let siem = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&siem)
        .await;
    let dir = tempfile::tempdir().unwrap();
    // Backoff waits of up to a minute: far longer than the wait for the shutdown below.
    let slow = "[delivery]\nretry_base_ms = 60000\nretry_cap_ms = 60000\n";
    let config = config(dir.path(), &siem.uri(), slow);
    let sender = Sender::start(&config).await.unwrap();
    let body = serde_json::to_string(&[event(0, "User logout")]).unwrap();
    assert_eq!(post(&sender, "acme", Some(TOKEN), body).await.0, 202);
    let started = Instant::now();
    while sender
        .stats("acme")
        .unwrap()
        .retried
        .load(std::sync::atomic::Ordering::Relaxed)
        == 0
    {
        assert!(started.elapsed() < Duration::from_secs(20), "no retry");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Well under both the backoff and the 30 s shutdown grace.
    tokio::time::timeout(Duration::from_secs(10), sender.shutdown())
        .await
        .expect("the shutdown waited out the retry schedule");

    // The batch stayed queued: the next start delivers it.
    siem.reset().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&siem)
        .await;
    let sender = Sender::start(&config).await.unwrap();
    let started = Instant::now();
    while siem.received_requests().await.unwrap().is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "not redelivered"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    sender.shutdown().await;
}

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
        {secrets}
        [[integration]]
        tenant = "acme"
        webhook_url = "{siem}/webhook"
        linger_ms = 0
        "#,
        dir.join("data").display(),
        token_file.display(),
        secrets = crate::common::secrets_table(dir),
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

/// Two `[[integration]]` tables for one tenant are refused with both lines, not merged; a
/// configuration built without its text (`toml::from_str`) is refused at start, too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_configured_twice_is_refused_with_both_lines() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = config_text(dir.path(), "http://127.0.0.1:9", "");
    text.push_str(
        "\n[[integration]]\ntenant = \"globex\"\nwebhook_url = \"http://127.0.0.1:9/g\"\n\
         \n[[integration]]\ntenant = \"acme\"\nwebhook_url = \"http://127.0.0.1:9/other\"\n",
    );
    let line = |needle: &str, nth: usize| {
        text.lines()
            .enumerate()
            .filter(|(_, l)| l.contains(needle))
            .nth(nth)
            .map(|(i, _)| i + 1)
            .unwrap()
    };
    let (first, second) = (line("tenant = \"acme\"", 0), line("tenant = \"acme\"", 1));
    let path = dir.path().join("sender.toml");
    std::fs::write(&path, &text).unwrap();
    let err = Config::load(&path).unwrap_err().to_string();
    assert_eq!(
        err,
        format!("integration acme is configured twice (lines {first} and {second})")
    );

    let config: Config = toml::from_str(&text).unwrap();
    let err = Sender::start(&config).await.err().unwrap().to_string();
    assert!(
        err.contains("integration acme is configured twice"),
        "{err}"
    );
}

/// Header values read from a file or an environment variable, as signing secrets are; a missing
/// one is refused naming the header and the variable or file, never a value.
#[test]
fn header_values_come_from_the_file_an_env_var_or_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let auth = dir.path().join("acme-auth");
    std::fs::write(&auth, "Splunk 0000-from-a-file\n").unwrap();
    // The workspace forbids `unsafe`, so a test cannot set a variable: cargo sets this one for
    // every test process.
    let headers = format!(
        "headers = {{ Authorization = {{ file = \"{}\" }}, X-Package = {{ env = \"CARGO_PKG_NAME\" }}, X-Plain = \"plain\" }}",
        auth.display()
    );
    let text = config_text(dir.path(), "http://127.0.0.1:9", "").replace(
        "linger_ms = 0",
        &format!("linger_ms = 0\n        {headers}"),
    );
    let settings = Config::parse(&text).unwrap().settings().unwrap();
    let headers = &settings[0].headers;
    assert_eq!(headers["Authorization"], "Splunk 0000-from-a-file");
    assert_eq!(headers["X-Package"], env!("CARGO_PKG_NAME"));
    assert_eq!(headers["X-Plain"], "plain");
    // Debug of the parsed file shows where a value comes from, never a value.
    let debug = format!("{:?}", Config::parse(&text).unwrap());
    assert!(!debug.contains("plain\""), "{debug}");

    let missing = |header: &str| {
        let text = config_text(dir.path(), "http://127.0.0.1:9", "").replace(
            "linger_ms = 0",
            &format!("linger_ms = 0\n        headers = {{ Authorization = {header} }}"),
        );
        Config::parse(&text)
            .unwrap()
            .settings()
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        missing("{ env = \"EVO_SIEM_TEST_NEVER_SET_7F3A\" }"),
        "integration acme: headers.Authorization: environment variable EVO_SIEM_TEST_NEVER_SET_7F3A is not set"
    );
    let absent = dir.path().join("absent");
    let err = missing(&format!("{{ file = \"{}\" }}", absent.display()));
    assert!(
        err.starts_with(&format!(
            "integration acme: headers.Authorization: cannot read {}",
            absent.display()
        )),
        "{err}"
    );
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "\n").unwrap();
    let err = missing(&format!("{{ file = \"{}\" }}", empty.display()));
    assert!(
        err.contains("headers.Authorization") && err.contains("is empty"),
        "{err}"
    );
    // A value that is neither a string nor one of the two sources.
    let text = config_text(dir.path(), "http://127.0.0.1:9", "").replace(
        "linger_ms = 0",
        "linger_ms = 0\n        headers = { Authorization = { vault = \"x\" } }",
    );
    let err = Config::parse(&text).unwrap_err().to_string();
    assert!(
        err.contains("{ env = \"VAR\" } or { file = \"PATH\" }"),
        "{err}"
    );
}

/// Every entry of `dir` with its Unix mode.
#[cfg(unix)]
fn modes(dir: &std::path::Path) -> Vec<(String, u32)> {
    use std::os::unix::fs::PermissionsExt;
    let mut modes: Vec<(String, u32)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let mode = e.metadata().unwrap().permissions().mode() & 0o777;
            (e.file_name().to_string_lossy().into_owned(), mode)
        })
        .collect();
    modes.sort();
    modes
}

/// `data_dir` is created 0700 and every file the sender writes in it (the databases, their WAL
/// and shared-memory files) is 0600, whatever the umask; an existing directory with 0755 and a
/// database left 0644 by an older version are tightened.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_dir_is_private_to_the_sender() {
    use std::os::unix::fs::PermissionsExt;
    let siem = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&siem)
        .await;
    for existing in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        if existing {
            std::fs::create_dir(&data).unwrap();
            std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
            std::fs::write(data.join("spool.db"), b"").unwrap();
            std::fs::set_permissions(
                data.join("spool.db"),
                std::fs::Permissions::from_mode(0o644),
            )
            .unwrap();
        }
        let config: Config = toml::from_str(&config_text(dir.path(), &siem.uri(), "")).unwrap();
        let sender = Sender::start(&config).await.unwrap();
        ingest_one(&sender).await;
        let started = Instant::now();
        while siem.received_requests().await.unwrap().len() < 1 + usize::from(existing) {
            assert!(started.elapsed() < Duration::from_secs(20), "not delivered");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let dir_mode = std::fs::metadata(&data).unwrap().permissions().mode() & 0o777;
        let files = modes(&data);
        sender.shutdown().await;
        assert_eq!(dir_mode, 0o700, "existing: {existing}");
        let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
        for expected in [
            "integrations.db",
            "integrations.db-wal",
            "spool.db",
            "spool.db-wal",
        ] {
            assert!(names.contains(&expected), "{names:?}");
        }
        for (name, mode) in &files {
            assert_eq!(*mode, 0o600, "{name} is {mode:o} (existing: {existing})");
        }
    }
}

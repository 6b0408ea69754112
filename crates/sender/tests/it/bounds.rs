//! Issue 13, hardening: what a tenant, or anyone reaching the listener, can make the sender do
//! or hold. Bounded answers and body limits per endpoint, a connection cap and deadlines for
//! heads and bodies on the listener, a Test Saved Webhook limit that holds across the instances
//! of a PostgreSQL spool, and admin requests refused once an instance's copy of the shared
//! tokens is too old to trust.

use evo_siem_sender::service::{Config, Sender};
use evo_siem_sender::store::{Permission, TokenRow, TokenStore};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

const INGEST_TOKEN: &str = "ingest-token-for-bounds";

struct Fixture {
    sender: Sender,
    manage: String,
    _siem: MockServer,
    _dir: tempfile::TempDir,
}

/// A sender with `acme` delivering to a wiremock SIEM, on SQLite, and a manage token of `acme`;
/// `tables` is appended after the top-level keys (a `[listener]` table, say).
async fn fixture(tables: &str) -> Fixture {
    let siem = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&siem)
        .await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ingest-token"), INGEST_TOKEN).unwrap();
    let config: Config = toml::from_str(&format!(
        r#"
        listen = "127.0.0.1:0"
        data_dir = "{dir}"
        ingest_token_file = "{dir}/ingest-token"
        allow_private_targets = ["127.0.0.1/32"]
        {tables}
        [[integration]]
        tenant = "acme"
        webhook_url = "{siem}/webhook"
        linger_ms = 0
        "#,
        dir = dir.path().display(),
        siem = siem.uri(),
    ))
    .unwrap();
    let sender = Sender::start(&config).await.unwrap();
    let (manage, row) = TokenRow::mint("acme", &[Permission::Manage], "alice").unwrap();
    TokenStore::open(dir.path()).unwrap().insert(&row).unwrap();
    Fixture {
        sender,
        manage,
        _siem: siem,
        _dir: dir,
    }
}

async fn request(
    sender: &Sender,
    method: &str,
    path: &str,
    token: &str,
    body: String,
) -> (u16, String) {
    let response = reqwest::Client::new()
        .request(
            method.parse().unwrap(),
            format!("http://{}{path}", sender.addr()),
        )
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

fn ingest_body(n: usize) -> String {
    serde_json::to_string(
        &(0..n)
            .map(|i| crate::common::event_json(i, "User logout"))
            .collect::<Vec<_>>(),
    )
    .unwrap()
}

/// A PUT with thousands of invalid headers gets a 422 listing the first 100 and saying how
/// many more there were, not an answer as large as the request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_reports_at_most_100_field_errors() {
    let f = fixture("").await;
    let headers: serde_json::Map<String, serde_json::Value> = (0..3000)
        .map(|i| (format!("Bad Name{i}"), serde_json::json!("x")))
        .collect();
    let body = serde_json::json!({ "headers": headers }).to_string();
    assert!(body.len() < 64 * 1024, "{} bytes", body.len());
    let (status, text) = request(
        &f.sender,
        "PUT",
        "/v1/tenants/acme/siem-integration",
        &f.manage,
        body,
    )
    .await;
    assert_eq!(status, 422, "{text}");
    let answer: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(answer["error"], "invalid_settings");
    assert_eq!(answer["fields"].as_array().unwrap().len(), 100);
    // "headers" (too many) and one per header name.
    assert_eq!(answer["omitted"], 3001 - 100);
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("2901 more omitted"),
        "{text}"
    );
    assert!(text.len() < 16 * 1024, "{} bytes", text.len());
}

/// Each endpoint has a body limit fitting its job: 64 KiB for a settings PUT, small ones for the
/// small POSTs, 16 MiB still for ingest; over it, 413 with a JSON error, whether the length is
/// declared or the body is chunked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_endpoint_has_a_body_limit_fitting_its_job() {
    let f = fixture("").await;
    let padding = |n: usize| format!(r#"{{"excluded_actions": ["{}"]}}"#, "a".repeat(n));
    for (method, path, body) in [
        (
            "PUT",
            "/v1/tenants/acme/siem-integration",
            padding(65 * 1024),
        ),
        (
            "POST",
            "/v1/tenants/acme/siem-integration/test",
            padding(49 * 1024),
        ),
        (
            "POST",
            "/v1/tenants/acme/siem-integration/resume",
            padding(49 * 1024),
        ),
        (
            "POST",
            "/v1/tenants/acme/siem-integration/dead-letters/replay",
            padding(49 * 1024),
        ),
    ] {
        let (status, text) = request(&f.sender, method, path, &f.manage, body).await;
        assert_eq!(status, 413, "{method} {path}: {text}");
        let answer: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(answer["error"], "body_too_large", "{method} {path}");
    }
    // A declared length over the limit is answered before the body is read (the client is
    // still sending it, so this one speaks raw HTTP).
    let mut stream = TcpStream::connect(f.sender.addr()).await.unwrap();
    let head = format!(
        "POST /v1/tenants/acme/audit-events HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {INGEST_TOKEN}\r\ncontent-length: {}\r\n\r\n",
        17 * 1024 * 1024
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let answer = read_answer(&mut stream, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("body_too_large"), "{answer}");

    // Under their limits, the same endpoints read the body: a 60 KiB PUT is judged (422 for the
    // overlong action), a 3 MiB ingest (over axum's 2 MB default) is accepted.
    let (status, text) = request(
        &f.sender,
        "PUT",
        "/v1/tenants/acme/siem-integration",
        &f.manage,
        padding(60 * 1024),
    )
    .await;
    assert_eq!(status, 422, "{text}");
    let big = ingest_body(3 * 1024 * 1024 / 400);
    assert!(big.len() > 2 * 1024 * 1024);
    let (status, text) = request(
        &f.sender,
        "POST",
        "/v1/tenants/acme/audit-events",
        INGEST_TOKEN,
        big,
    )
    .await;
    assert_eq!(status, 202, "{text}");

    // A chunked body without a length is cut at the limit as well.
    let mut stream = TcpStream::connect(f.sender.addr()).await.unwrap();
    let chunk = "a".repeat(8 * 1024);
    let mut raw = format!(
        "POST /v1/tenants/acme/siem-integration/resume HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\ntransfer-encoding: chunked\r\n\r\n",
        f.manage
    );
    for _ in 0..8 {
        raw.push_str(&format!("{:x}\r\n{chunk}\r\n", chunk.len()));
    }
    raw.push_str("0\r\n\r\n");
    stream.write_all(raw.as_bytes()).await.unwrap();
    let answer = read_answer(&mut stream, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("body_too_large"), "{answer}");
}

/// What arrives on `stream` until it closes or `within` passes.
async fn read_answer(stream: &mut TcpStream, within: Duration) -> String {
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(within, async {
        let mut buffer = [0u8; 4096];
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buffer[..n]),
            }
        }
    })
    .await;
    String::from_utf8_lossy(&answer).into_owned()
}

/// Whether the server closed `stream` within `within` (end of stream or a reset), having sent
/// at most an error answer.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    tokio::time::timeout(within, async {
        let mut buffer = [0u8; 1024];
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

/// Sends a request head (`head`) or a body a byte every 100 ms; how long until the server
/// answered or closed, and what it answered.
async fn trickle(addr: std::net::SocketAddr, head: bool) -> (Duration, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let text = if head {
        "POST /v1/tenants/acme/audit-events HTTP/1.1\r\nhost: x\r\n".to_owned()
    } else {
        stream
            .write_all(
                format!(
                    "POST /v1/tenants/acme/audit-events HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {INGEST_TOKEN}\r\ncontent-length: 1000\r\n\r\n"
                )
                .as_bytes(),
            )
            .await
            .unwrap();
        "x".repeat(1000)
    };
    let started = Instant::now();
    let mut answer = String::new();
    for byte in text.bytes() {
        if stream.write_all(&[byte]).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        if started.elapsed() > Duration::from_secs(10) {
            break;
        }
        let mut buffer = [0u8; 1024];
        if let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_millis(1), stream.read(&mut buffer)).await
        {
            answer.push_str(&String::from_utf8_lossy(&buffer[..n]));
            break;
        }
    }
    (started.elapsed(), answer)
}

const SHORT_LISTENER: &str =
    "[listener]\nheader_timeout_ms = 1000\nbody_timeout_ms = 1000\nbody_min_bytes_per_sec = 1024\n";

/// A thousand connections that send nothing, and a few that trickle a request head or a body a
/// byte at a time, neither keep an ingest from being answered at once nor stay open past the
/// listener's deadlines.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_trickling_connections_are_closed_and_do_not_block_ingest() {
    let f = fixture(SHORT_LISTENER).await;
    let addr = f.sender.addr();
    let mut idle = Vec::new();
    for _ in 0..1000 {
        idle.push(TcpStream::connect(addr).await.unwrap());
    }
    let heads = tokio::spawn(trickle(addr, true));
    let bodies = tokio::spawn(trickle(addr, false));

    let started = Instant::now();
    let (status, text) = request(
        &f.sender,
        "POST",
        "/v1/tenants/acme/audit-events",
        INGEST_TOKEN,
        ingest_body(1),
    )
    .await;
    assert_eq!(status, 202, "{text}");
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );

    // The idle ones are closed after the header timeout (1 s), every one of them.
    let deadline = Instant::now() + Duration::from_secs(5);
    for stream in &mut idle {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            closed_within(stream, left).await,
            "an idle connection is still open"
        );
    }
    let (took, answer) = heads.await.unwrap();
    assert!(
        took < Duration::from_secs(3),
        "a trickled head held on {took:?}: {answer}"
    );
    let (took, answer) = bodies.await.unwrap();
    assert!(
        took < Duration::from_secs(3),
        "a trickled body held on {took:?}"
    );
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("body_timeout"), "{answer}");
}

/// With every connection slot held, a new connection is not served until a slot frees (here
/// when the idle holders time out); then it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_cap_holds() {
    let f = fixture(&format!("{SHORT_LISTENER}max_connections = 20\n")).await;
    let addr = f.sender.addr();
    let mut holders = Vec::new();
    for _ in 0..20 {
        holders.push(TcpStream::connect(addr).await.unwrap());
    }
    // Give the loop a moment to accept all twenty.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut late = TcpStream::connect(addr).await.unwrap();
    late.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let mut buffer = [0u8; 1024];
    let early = tokio::time::timeout(Duration::from_millis(500), late.read(&mut buffer)).await;
    assert!(early.is_err(), "served beyond the cap");
    let n = tokio::time::timeout(Duration::from_secs(5), late.read(&mut buffer))
        .await
        .expect("served once the holders timed out")
        .unwrap();
    let answer = String::from_utf8_lossy(&buffer[..n]);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(started.elapsed() >= Duration::from_millis(500));
    drop(holders);
}

/// The shared state of `db`, and a manage token of `acme` minted there (as `evo-siem admin
/// token create` does), once every sender accepts it.
async fn shared_token(
    db: &crate::common::ScratchDatabase,
    senders: &[&Sender],
) -> (evo_siem_sender::store::SharedState, String, TokenRow) {
    let admin = evo_siem_sender::spool::PostgresSpool::connect(
        evo_siem_sender::spool::PostgresOptions::new(db.url.clone()),
        Default::default(),
    )
    .await
    .unwrap();
    let admin = evo_siem_sender::store::SharedState::on(&admin);
    let (token, row) = TokenRow::mint("acme", &[Permission::Manage], "alice").unwrap();
    admin.insert_token(&row).await.unwrap();
    for sender in senders {
        let started = Instant::now();
        while request(
            sender,
            "GET",
            "/v1/tenants/acme/siem-integration",
            &token,
            String::new(),
        )
        .await
        .0 != 200
        {
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "the token never worked"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    (admin, token, row)
}

async fn siem() -> MockServer {
    let siem = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&siem)
        .await;
    siem
}

/// Test Saved Webhook's 5 a minute per tenant hold across the instances of one PostgreSQL spool:
/// five tests through one instance, and the sixth through the other is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_test_rate_limit_holds_across_instances() {
    let db = crate::common::ScratchDatabase::new().await;
    let siem = siem().await;
    let url = format!("{}/webhook", siem.uri());
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let a = Sender::start(&crate::common::pg_sender_config(&dirs[0], &db, &url, 900))
        .await
        .unwrap();
    let b = Sender::start(&crate::common::pg_sender_config(&dirs[1], &db, &url, 900))
        .await
        .unwrap();
    let (_admin, token, _) = shared_token(&db, &[&a, &b]).await;
    let test = "/v1/tenants/acme/siem-integration/test";
    for n in 1..=5 {
        let (status, text) = request(&a, "POST", test, &token, String::new()).await;
        assert_eq!(status, 200, "test {n} through A: {text}");
    }
    let (status, text) = request(&b, "POST", test, &token, String::new()).await;
    assert_eq!(status, 429, "the sixth test, through B: {text}");
    assert!(text.contains("rate_limited"), "{text}");
    let (status, _) = request(&a, "POST", test, &token, String::new()).await;
    assert_eq!(status, 429, "and through A again");
    a.shutdown().await;
    b.shutdown().await;
}

/// An instance that cannot refresh its copy of the shared tokens refuses admin requests with
/// 503 once the copy is older than `max_staleness_ms`, instead of honouring a token revoked
/// meanwhile; once it syncs again, the revocation holds (401).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_copy_of_the_shared_tokens_is_not_trusted() {
    let db = crate::common::ScratchDatabase::new().await;
    let siem = siem().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config =
        crate::common::pg_sender_config(&dir, &db, &format!("{}/webhook", siem.uri()), 900);
    config.spool.max_staleness_ms = 1_500;
    let sender = Sender::start(&config).await.unwrap();
    let (_admin, token, row) = shared_token(&db, &[&sender]).await;
    let settings = "/v1/tenants/acme/siem-integration";

    // The instance can no longer read the shared version, so every sync fails; the token is
    // then revoked behind its back.
    let (client, connection) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
        .batch_execute("ALTER TABLE shared_version RENAME TO shared_version_away")
        .await
        .unwrap();
    client
        .execute("DELETE FROM shared_admin_tokens WHERE id = $1", &[&row.id])
        .await
        .unwrap();

    let started = Instant::now();
    let answer = loop {
        let (status, text) = request(&sender, "GET", settings, &token, String::new()).await;
        if status != 200 {
            break (status, text);
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "a revoked token is still honoured {:?} after the last sync",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(answer.0, 503, "{}", answer.1);
    assert!(answer.1.contains("shared_state_stale"), "{}", answer.1);

    // Syncing again (with the version bump the revocation would have made): the copy is fresh
    // and the revocation holds.
    client
        .batch_execute(
            "BEGIN; ALTER TABLE shared_version_away RENAME TO shared_version;
             UPDATE shared_version SET version = version + 1; COMMIT",
        )
        .await
        .unwrap();
    let started = Instant::now();
    loop {
        let (status, text) = request(&sender, "GET", settings, &token, String::new()).await;
        if status == 401 {
            break;
        }
        assert_eq!(status, 503, "{text}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "never synced again"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    sender.shutdown().await;
}

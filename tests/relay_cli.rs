//! End-to-end tests of `evo-siem relay`: the real binary forwards a signed batch to a file,
//! reopens it on SIGHUP, stops with exit 0 on SIGTERM, refuses a bad configuration with exit 2,
//! and never prints the secret.

use evo_siem_protocol::{Secret, encode_batch_from_text, headers, sign};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

const SECRET: &str = "relay-cli-secret-never-printed";

fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// One HTTP/1.1 request; the status code, or `None` when nothing listens.
fn request(addr: SocketAddr, head: &str, body: &[u8]) -> Option<u16> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(head.as_bytes()).ok()?;
    stream.write_all(body).ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    answer.split(' ').nth(1)?.parse().ok()
}

fn deliver(addr: SocketAddr, event: &str) -> Option<u16> {
    let body = encode_batch_from_text(&[event], SystemTime::now());
    let head = format!(
        "POST /webhook HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n{}: {}\r\nConnection: close\r\n\r\n",
        body.len(),
        headers::SIGNATURE_256,
        sign(&Secret::new(SECRET), &body),
    );
    request(addr, &head, &body)
}

fn event() -> String {
    format!(
        r#"{{"event_type":"create","table":"events","timestamp":"2024-01-15T10:30:00.000Z","data":{{"uuid":"{}","action":"User login","status":"Success","actor":{{"kind":"User","name":"ana@example.com"}},"origin":{{"hostname":"h","ipaddr":"192.0.2.1"}},"target":{{"kind":"User","name":"ana@example.com"}},"ts":1706000000123456789,"created_at":1706000000123456789}}}}"#,
        uuid::Uuid::new_v4()
    )
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let began = Instant::now();
    while !done() {
        assert!(
            began.elapsed() < Duration::from_secs(10),
            "{what}: not in 10 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn relay_forwards_reopens_on_sighup_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let audit = dir.path().join("audit.ndjson");
    let config = dir.path().join("relay.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"{addr}\"\nsigning_secret_env = \"EVO_RELAY_SECRET\"\n\
             dead_letter_path = \"{}\"\n[[output]]\ntype = \"file\"\npath = \"{}\"\n",
            dir.path().join("dead.ndjson").display(),
            audit.display()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_evo-siem"))
        .args(["relay", "--config", config.to_str().unwrap()])
        .env("EVO_RELAY_SECRET", SECRET)
        .env("RUST_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let health = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    wait_for("listening", || request(addr, &health, b"") == Some(200));

    let first = event();
    assert_eq!(deliver(addr, &first), Some(200));
    let rotated = dir.path().join("audit.ndjson.1");
    std::fs::rename(&audit, &rotated).unwrap();
    signal(&child, "HUP");
    wait_for("reopened", || audit.exists());
    let second = event();
    assert_eq!(deliver(addr, &second), Some(200));
    assert_eq!(std::fs::read_to_string(&rotated).unwrap(), first + "\n");
    assert_eq!(std::fs::read_to_string(&audit).unwrap(), second + "\n");

    signal(&child, "TERM");
    wait_for("stopped", || child.try_wait().unwrap().is_some());
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{:?}", output.status);
    let logs = String::from_utf8_lossy(&output.stderr);
    assert!(logs.contains("relay listening"), "{logs}");
    assert!(logs.contains("relay stopped"), "{logs}");
    assert!(!logs.contains(SECRET));
}

#[test]
fn a_bad_configuration_exits_2_naming_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("relay.toml");
    std::fs::write(
        &config,
        "listen = \"127.0.0.1:0\"\nsigning_secret_env = \"EVO_RELAY_UNSET\"\n\
         [[output]]\ntype = \"file\"\npath = \"a.ndjson\"\n",
    )
    .unwrap();
    let run = |config: &std::path::Path| {
        Command::new(env!("CARGO_BIN_EXE_evo-siem"))
            .args(["relay", "--config", config.to_str().unwrap()])
            .env_remove("EVO_RELAY_UNSET")
            .output()
            .unwrap()
    };
    let output = run(&config);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("EVO_RELAY_UNSET"), "{stderr}");

    std::fs::write(
        &config,
        "listen = \"127.0.0.1:0\"\nsignin_secret_env = \"X\"\n",
    )
    .unwrap();
    let output = run(&config);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("signin_secret_env"));
}

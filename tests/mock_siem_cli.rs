//! `evo-siem mock-siem` as an operator runs it: secrets from a file, JSON log lines, and a clean
//! stop (exit 0) on SIGTERM.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

const SECRET: &str = "a-mock-siem-secret-from-a-file";

/// Starts the mock SIEM on a free port; returns it, its address, and its standard error's lines
/// as they come.
fn start(args: &[&str]) -> (Child, String, mpsc::Receiver<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_evo-siem"))
        .args(["mock-siem", "--listen", "127.0.0.1:0"])
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let (lines, received) = mpsc::channel();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    let mut seen = Vec::new();
    let addr = loop {
        let line = received
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("the mock SIEM did not start: {seen:#?}"));
        if let Some(url) = line.strip_prefix("mock SIEM listening: deliver to http://") {
            break url.split('/').next().unwrap().to_owned();
        }
        seen.push(line);
    };
    (child, addr, received)
}

/// POSTs a one-event batch stamped now, signed with `secret`; returns the status.
fn deliver(addr: &str, secret: &str) -> u16 {
    let template = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/payloads/valid/seed-example.json"
    ))
    .unwrap();
    let now = evo_siem_protocol::format_generated_at(SystemTime::now());
    let body = template.replace("2024-01-15T10:30:05.123Z", &now).replace(
        "8f14e45f-ceea-4e6b-9d2a-2f2d0c2a7b31",
        &uuid::Uuid::new_v4().to_string(),
    );
    let signature =
        evo_siem_protocol::sign(&evo_siem_protocol::Secret::new(secret), body.as_bytes());
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "POST /webhook HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         X-Evo-Signature-256: {signature}\r\nX-Evo-Delivery-Id: {}\r\nX-Evo-Delivery-Attempt: 1\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        uuid::Uuid::new_v4(),
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
        .split(' ')
        .nth(1)
        .and_then(|status| status.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {answer}"))
}

fn sigterm(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Waits for the child to exit, at most `within`.
fn exit_within(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(exit) = child.try_wait().unwrap() {
            return exit;
        }
        if started.elapsed() > within {
            let _ = child.kill();
            panic!("still running {within:?} after SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_secret_from_a_file_json_logs_and_sigterm_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("secret");
    std::fs::write(&secret_file, format!("{SECRET}\n")).unwrap();
    let (mut child, addr, lines) = start(&[
        "--secret-file",
        secret_file.to_str().unwrap(),
        "--log-format",
        "json",
    ]);
    // The file's secret (without its newline) verifies; another does not.
    assert_eq!(deliver(&addr, SECRET), 200);
    assert_eq!(deliver(&addr, "another-secret-entirely"), 401);

    sigterm(&child);
    let exit = exit_within(&mut child, Duration::from_secs(5));
    assert!(exit.success(), "{exit:?}");

    // Every log line is a JSON object with the event's fields; the refusal's reason is one.
    let logged: Vec<String> = lines.try_iter().collect();
    let json: Vec<serde_json::Value> = logged
        .iter()
        .filter(|line| line.starts_with('{'))
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    assert!(
        json.iter()
            .any(|line| line["fields"]["message"] == "mock SIEM stopping"),
        "{logged:#?}"
    );
    assert!(
        json.iter()
            .all(|line| line["level"].is_string() && line["target"].is_string()),
        "{logged:#?}"
    );
    for line in &logged {
        assert!(!line.contains(SECRET), "the secret in a log line: {line}");
    }
}

#[test]
fn sigterm_stops_an_idle_mock_siem_at_once() {
    let (mut child, _addr, _lines) = start(&[]);
    let started = Instant::now();
    sigterm(&child);
    let exit = exit_within(&mut child, Duration::from_secs(5));
    assert!(exit.success(), "{exit:?}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

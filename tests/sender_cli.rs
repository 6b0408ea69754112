//! `evo-siem sender` as an operator runs it: the configuration from `EVO_SIEM_CONFIG`, the log
//! as JSON lines, each request's id in the lines written while answering it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A raw HTTP/1.1 GET with `X-Request-Id: id`; returns the answer's head.
fn get(port: u16, path: &str, id: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: x\r\nX-Request-Id: {id}\r\nConnection: close\r\n\r\n"
    )?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    Ok(answer)
}

#[test]
fn json_log_lines_carry_each_requests_id() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(dir.path().join("token"), "json-log-token").unwrap();
    let config = dir.path().join("sender.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:{port}\"\ndata_dir = \"{dir}/data\"\ningest_token_file = \"{dir}/token\"\n",
            dir = dir.path().display()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_evo-siem"))
        .args(["sender", "--log-format", "json"])
        .env("EVO_SIEM_CONFIG", &config)
        .env("RUST_LOG", "info,evo_siem_sender::api=debug")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let id = format!("json-line-{}", std::process::id());
    let started = Instant::now();
    let answer = loop {
        match get(port, "/healthz", &id) {
            Ok(answer) => break answer,
            Err(_) if started.elapsed() < Duration::from_secs(30) => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(err) => {
                let _ = child.kill();
                panic!("the sender did not answer: {err}");
            }
        }
    };
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains(&format!("x-request-id: {id}")),
        "{answer}"
    );
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(child.wait().unwrap().success(), "{stderr}");

    let lines: Vec<serde_json::Value> = BufReader::new(stderr.as_bytes())
        .lines()
        .map(|line| {
            let line = line.unwrap();
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
        })
        .collect();
    let answered = lines
        .iter()
        .find(|line| line["fields"]["message"] == "answered" && line["span"]["request_id"] == id)
        .unwrap_or_else(|| panic!("no line of request {id}: {stderr}"));
    assert_eq!(answered["fields"]["status"], 200, "{answered}");
    assert_eq!(answered["span"]["path"], "/healthz", "{answered}");
    assert!(
        lines
            .iter()
            .any(|line| line["fields"]["message"] == "shutting down"),
        "{stderr}"
    );
}

//! `server::run`, as the binary runs it: SIGHUP reopens the files (logrotate), SIGTERM stops.
//! The signals are sent to this test process with kill(1); `run` has installed its handlers
//! before it listens, and the test waits for `/healthz` first.

use crate::common::{SECRET, deliver, events};
use evo_siem_relay::RelayConfig;
use std::process::Command;
use std::time::{Duration, Instant};

fn signal(name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &std::process::id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

fn lines(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reopens_the_file_and_sigterm_stops() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.ndjson");
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let config = RelayConfig::parse(&format!(
        "listen = \"{addr}\"\nsigning_secret_env = \"S\"\ndead_letter_path = \"{}\"\n\
         [[output]]\ntype = \"file\"\npath = \"{}\"\n",
        dir.path().join("dead.ndjson").display(),
        path.display()
    ))
    .unwrap();
    let running = tokio::spawn(async move {
        evo_siem_relay::server::run(&config, &|name: &str| {
            (name == "S").then(|| SECRET.to_owned())
        })
        .await
    });
    let began = Instant::now();
    while reqwest::get(format!("http://{addr}/healthz"))
        .await
        .is_err()
    {
        assert!(began.elapsed() < Duration::from_secs(10), "not listening");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let url = format!("http://{addr}/webhook");
    let first = events(2);
    assert_eq!(deliver(&url, &first).await.0, 200);

    let rotated = dir.path().join("audit.ndjson.1");
    std::fs::rename(&path, &rotated).unwrap();
    signal("HUP");
    let began = Instant::now();
    while !path.exists() {
        assert!(began.elapsed() < Duration::from_secs(10), "not reopened");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let second = events(1);
    assert_eq!(deliver(&url, &second).await.0, 200);
    assert_eq!(lines(&rotated), first);
    assert_eq!(lines(&path), second);

    signal("TERM");
    tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("stopped on SIGTERM")
        .unwrap()
        .unwrap();
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

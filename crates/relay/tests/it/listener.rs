//! The listener's bounds: connections beyond `max_connections` wait, idle ones are closed.

use crate::common::{Scripted, Step, deliver, events, receiver, start};
use evo_siem_relay::Relay;
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;

async fn healthz(addr: std::net::SocketAddr, timeout: Duration) -> bool {
    reqwest::Client::new()
        .get(format!("http://{addr}/healthz"))
        .timeout(timeout)
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_limit_wait_and_idle_ones_are_closed() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::builder(receiver())
        .output(Scripted::new("spy", vec![Step::Ack]))
        .max_connections(2)
        .idle_timeout(Duration::from_millis(600))
        .dead_letter_path(dir.path().join("dead.ndjson"))
        .build();
    let running = start(relay).await;
    let addr = running.addr();
    let mut idle = Vec::new();
    for _ in 0..2 {
        idle.push(tokio::net::TcpStream::connect(addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !healthz(addr, Duration::from_millis(300)).await,
        "a third connection is not served"
    );

    // The two silent connections are closed by the relay once idle for the timeout...
    let began = Instant::now();
    for stream in &mut idle {
        let mut buf = [0u8; 16];
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .expect("closed in time")
            .unwrap_or(0);
        assert_eq!(n, 0);
    }
    assert!(
        began.elapsed() < Duration::from_secs(2),
        "{:?}",
        began.elapsed()
    );
    // ... and the next connection is served.
    assert!(healthz(addr, Duration::from_secs(2)).await);
    running.shutdown().await.unwrap();
}

// hyper keeps polling a connection's read side while its request is processed, so the idle
// timeout bounds a delivery too: by default it is twice the request timeout (and at least a
// minute), which a delivery never reaches, since its outputs are cut at the request timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_idle_timeout_never_cuts_a_delivery() {
    let dir = tempfile::tempdir().unwrap();
    let slow = Scripted::new(
        "slow",
        vec![Step::Sleep(Duration::from_secs(30)), Step::Ack],
    );
    let relay = Relay::builder(receiver())
        .output(slow.clone())
        .request_timeout(Duration::from_millis(800))
        .dead_letter_path(dir.path().join("dead.ndjson"))
        .build();
    let running = start(relay).await;
    let batch = events(2);
    // Cut by the request timeout, answered: not a dropped connection.
    let (status, answer) = deliver(&running.webhook_url(), &batch).await;
    assert_eq!(status, 503, "{answer}");
    let (status, _) = deliver(&running.webhook_url(), &batch).await;
    assert_eq!(status, 200);
    running.shutdown().await.unwrap();
}

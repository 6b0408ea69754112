//! The load driver against a stub ingest API: it paces, bounds concurrency, counts what the
//! sender acknowledged and tallies errors by kind.

use axum::Router;
use axum::body::Bytes;
use axum::http::StatusCode;
use axum::routing::post;
use evo_siem_workload::load::{self, LoadError, LoadOptions};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

#[derive(Default)]
struct Stub {
    requests: AtomicUsize,
    in_flight: AtomicUsize,
    most_in_flight: AtomicUsize,
}

/// An ingest API that takes 20 ms a request, refuses every fifth with 503 and excludes the
/// events of action "User login".
async fn stub() -> (String, Arc<Stub>) {
    let stub = Arc::new(Stub::default());
    let state = stub.clone();
    let app = Router::new().route(
        "/v1/tenants/acme/audit-events",
        post(move |body: Bytes| {
            let stub = state.clone();
            async move {
                let n = stub.requests.fetch_add(1, Ordering::SeqCst) + 1;
                let now = stub.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                stub.most_in_flight.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
                stub.in_flight.fetch_sub(1, Ordering::SeqCst);
                if n % 5 == 0 {
                    return (StatusCode::SERVICE_UNAVAILABLE, String::new());
                }
                let text = String::from_utf8(body.to_vec()).unwrap();
                let excluded = text
                    .lines()
                    .filter(|l| l.contains("\"User login\""))
                    .count();
                let accepted = text.lines().count() - excluded;
                (
                    StatusCode::ACCEPTED,
                    format!(r#"{{"accepted":{accepted},"excluded":{excluded}}}"#),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, stub)
}

fn options(url: String) -> LoadOptions {
    LoadOptions {
        url,
        tenant: "acme".into(),
        token: "load-token".into(),
        rate: 2_000,
        duration: Duration::from_secs(1),
        batch: 50,
        concurrency: 2,
        timeout: Duration::from_secs(5),
        seed: 1,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paces_bounds_concurrency_and_counts() {
    let (url, stub) = stub().await;
    let report = load::run(&options(url)).await.unwrap();
    // 2,000 events/s in requests of 50 for one second: 40 requests scheduled.
    assert_eq!(report.requests, 40);
    assert_eq!(report.events_sent, 2_000);
    assert_eq!(stub.requests.load(Ordering::SeqCst), 40);
    assert!(stub.most_in_flight.load(Ordering::SeqCst) <= 2);
    assert_eq!(report.errors.get("status 503"), Some(&8));
    // Every event of an acknowledged request is either queued or excluded.
    assert_eq!(report.accepted + report.excluded, 32 * 50);
    assert!(report.excluded > 0);
    let latency = report.latency.unwrap();
    assert_eq!(latency.count, 32);
    assert!(latency.p50 >= Duration::from_millis(20));
    assert!(report.achieved_rate > 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_sender_is_an_error_count_not_a_crash() {
    // A port nobody listens on: bound, then closed.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut options = options(format!("http://{addr}"));
    options.duration = Duration::from_millis(100);
    let report = load::run(&options).await.unwrap();
    assert_eq!(report.errors.get("connect"), Some(&report.requests));
    assert!(report.latency.is_none());
}

#[tokio::test]
async fn nonsense_settings_are_refused_and_the_token_stays_out_of_debug() {
    let mut bad = options("ftp://example.invalid".into());
    assert!(matches!(load::run(&bad).await, Err(LoadError::Url)));
    bad.url = "http://127.0.0.1:9".into();
    bad.rate = 0;
    assert!(matches!(load::run(&bad).await, Err(LoadError::Invalid(_))));
    assert!(!format!("{bad:?}").contains("load-token"));
}

//! The receiver suite is a real oracle: the mock SIEM (the receiver SDK) passes every check, and
//! deliberately broken receivers are caught.

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use evo_siem_conformance::receiver::{ReceiverTarget, Verdict, run};
use evo_siem_mock::{MockSiem, MockSiemConfig};
use evo_siem_protocol::{Secret, Verifier, headers};
use std::time::{Duration, SystemTime};

const SECRET: &str = "whsec-conformance";

fn target(url: String) -> ReceiverTarget {
    ReceiverTarget {
        url,
        secret: Secret::new(SECRET),
        max_body: 4 * 1024 * 1024,
        timeout: Duration::from_secs(10),
    }
}

/// Serves `verifier` as a receiver that answers 200 for anything it accepts.
async fn serve(verifier: Option<Verifier>) -> String {
    serve_lax(verifier, |_| false).await
}

/// Like [`serve`], but answers 200 to the refusals `overlook` picks.
async fn serve_lax(
    verifier: Option<Verifier>,
    overlook: fn(&evo_siem_protocol::Refusal) -> bool,
) -> String {
    let app = Router::new().route(
        "/webhook",
        post(move |headers: HeaderMap, body: Bytes| {
            let verifier = verifier.clone();
            async move {
                let Some(verifier) = verifier else {
                    return StatusCode::OK;
                };
                let signature = headers.get(headers::SIGNATURE_256).map(|v| v.as_bytes());
                match verifier.verify(&body, signature, SystemTime::now()) {
                    Ok(_) => StatusCode::OK,
                    Err(refusal) if overlook(&refusal) => StatusCode::OK,
                    Err(refusal) => StatusCode::from_u16(refusal.http_status()).unwrap(),
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/webhook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

fn failed(results: &[evo_siem_conformance::receiver::CheckResult]) -> Vec<&'static str> {
    results
        .iter()
        .filter(|r| r.verdict == Verdict::Fail)
        .map(|r| r.name)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mock_siem_passes_every_check() {
    let siem = MockSiem::start(
        "127.0.0.1:0".parse().unwrap(),
        MockSiemConfig::signed([SECRET]),
    )
    .await
    .unwrap();
    let results = run(&target(siem.webhook_url())).await.unwrap();
    assert_eq!(results.len(), 14);
    // The oversized body may end in a closed connection instead of a readable 413: a warning.
    let not_passed: Vec<_> = results
        .iter()
        .filter(|r| r.verdict != Verdict::Pass && r.name != "body over the limit")
        .collect();
    assert!(not_passed.is_empty(), "{not_passed:#?}");
    assert_ne!(results[13].verdict, Verdict::Fail);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_skips_verification_fails() {
    let results = run(&target(serve(None).await)).await.unwrap();
    let failed = failed(&results);
    for check in [
        "missing signature",
        "wrong secret",
        "tampered body",
        "bit-flipped signature",
        "generated_at 10 minutes old",
        "schema_version \"2\"",
        "count mismatch",
        "empty events",
    ] {
        assert!(failed.contains(&check), "{check} not caught: {failed:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_accepts_stale_requests_fails_exactly_there() {
    let lax = Verifier::new([Secret::new(SECRET)]).tolerance(Duration::from_secs(86_400));
    let results = run(&target(serve(Some(lax)).await)).await.unwrap();
    assert_eq!(
        failed(&results),
        [
            "generated_at 10 minutes old",
            "generated_at 10 minutes ahead"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_accepts_schema_2_fails_exactly_there() {
    let strict = Verifier::new([Secret::new(SECRET)]);
    let url = serve_lax(Some(strict), |refusal| {
        refusal.reason_code() == "unsupported_schema_version"
    })
    .await;
    let results = run(&target(url)).await.unwrap();
    assert_eq!(failed(&results), ["schema_version \"2\""]);
}

//! The receiver suite is a real oracle: the mock SIEM (the receiver SDK) passes every check, and
//! deliberately broken receivers are caught.

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use evo_siem_conformance::receiver::{REDELIVERY_AFTER_2XX, ReceiverTarget, Verdict, run};
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
        scheme: evo_siem_protocol::SignatureScheme::Evo,
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
    assert_eq!(results.len(), 18);
    // The oversized body may end in a closed connection instead of a readable 413: a warning.
    let not_passed: Vec<_> = results
        .iter()
        .filter(|r| r.verdict != Verdict::Pass && r.name != "body over the limit")
        .collect();
    assert!(not_passed.is_empty(), "{not_passed:#?}");
    assert!(results.iter().all(|r| r.verdict != Verdict::Fail));
    // The duplicates were judged from the SDK's counts, not waved through.
    assert!(results.iter().all(|r| r.note.is_none()), "{results:#?}");
}

/// Serves the receiver SDK's `receiver` (axum extractor and responses), with no other limit
/// than the SDK's own.
async fn serve_sdk(receiver: evo_siem_receiver::Receiver) -> String {
    use evo_siem_receiver::{Delivered, Rejection, VerifiedBatch};
    async fn webhook(batch: VerifiedBatch) -> Result<Delivered, Rejection> {
        batch.commit().await
    }
    let app = Router::new()
        .route("/webhook", post(webhook))
        .with_state(receiver);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/webhook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

/// A dedup store that forgets: every UUID is new every time.
#[derive(Debug)]
struct Forgetful;

impl evo_siem_receiver::dedup::DedupStore for Forgetful {
    fn claim<'a>(
        &'a self,
        uuids: &'a [uuid::Uuid],
        _token: evo_siem_receiver::dedup::ClaimToken,
    ) -> evo_siem_receiver::dedup::DedupFuture<'a, Vec<evo_siem_receiver::dedup::ClaimOutcome>>
    {
        Box::pin(async move {
            Ok(vec![
                evo_siem_receiver::dedup::ClaimOutcome::Claimed;
                uuids.len()
            ])
        })
    }
    fn commit<'a>(
        &'a self,
        _uuids: &'a [uuid::Uuid],
        _token: evo_siem_receiver::dedup::ClaimToken,
    ) -> evo_siem_receiver::dedup::DedupFuture<'a, ()> {
        Box::pin(async { Ok(()) })
    }
    fn release(&self, _uuids: Vec<uuid::Uuid>, _token: evo_siem_receiver::dedup::ClaimToken) {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_does_not_deduplicate_fails_exactly_there() {
    let receiver = evo_siem_receiver::Receiver::builder()
        .secret(SECRET)
        .dedup(Forgetful)
        .build()
        .unwrap();
    let results = run(&target(serve_sdk(receiver).await)).await.unwrap();
    assert_eq!(
        failed(&results),
        [REDELIVERY_AFTER_2XX, "same event in a new delivery"]
    );
}

/// When a receiver that answers before committing commits, if ever.
#[derive(Clone, Copy)]
enum LateCommit {
    /// In a background task, this long after the answer.
    After(std::time::Duration),
    /// Right after the answer, into a store whose commit fails (the claims are released).
    Failing,
}

/// A dedup store whose commits fail: what a receiver sees when its store goes away between its
/// answer and its commit.
#[derive(Debug)]
struct CommitFails(evo_siem_receiver::dedup::MemoryDedup);

impl evo_siem_receiver::dedup::DedupStore for CommitFails {
    fn claim<'a>(
        &'a self,
        uuids: &'a [uuid::Uuid],
        token: evo_siem_receiver::dedup::ClaimToken,
    ) -> evo_siem_receiver::dedup::DedupFuture<'a, Vec<evo_siem_receiver::dedup::ClaimOutcome>>
    {
        self.0.claim(uuids, token)
    }
    fn commit<'a>(
        &'a self,
        _uuids: &'a [uuid::Uuid],
        _token: evo_siem_receiver::dedup::ClaimToken,
    ) -> evo_siem_receiver::dedup::DedupFuture<'a, ()> {
        Box::pin(async {
            Err(evo_siem_receiver::dedup::DedupError(
                "the store went away".into(),
            ))
        })
    }
    fn release(&self, uuids: Vec<uuid::Uuid>, token: evo_siem_receiver::dedup::ClaimToken) {
        self.0.release(uuids, token);
    }
}

/// A receiver built on the SDK that answers 200 with the SDK's counts as soon as the batch is
/// verified and claimed, and commits only afterwards (`late`): a fault between the answer and
/// the commit loses the events, since the sender drops what was answered 2xx.
async fn serve_answering_before_commit(late: LateCommit) -> String {
    use evo_siem_receiver::{Delivered, Receiver, VerifiedBatch};
    let builder = Receiver::builder().secret(SECRET);
    let receiver = match late {
        LateCommit::After(_) => builder.build().unwrap(),
        LateCommit::Failing => builder
            .dedup(CommitFails(evo_siem_receiver::dedup::MemoryDedup::default()))
            .build()
            .unwrap(),
    };
    let webhook = move |batch: VerifiedBatch| async move {
        let answer = Delivered {
            accepted: batch.len() - batch.duplicates(),
            duplicates: batch.duplicates(),
        };
        tokio::spawn(async move {
            if let LateCommit::After(lag) = late {
                tokio::time::sleep(lag).await;
            }
            let _ = batch.commit().await;
        });
        answer
    };
    let app = Router::new()
        .route("/webhook", post(webhook))
        .with_state(receiver);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/webhook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_answers_before_it_commits_fails_exactly_there() {
    // It commits a while after its answer: the redelivery that follows the 2xx finds the
    // events still claimed by a delivery in progress.
    let url = serve_answering_before_commit(LateCommit::After(Duration::from_secs(5))).await;
    let results = run(&target(url)).await.unwrap();
    assert_eq!(
        failed(&results),
        [REDELIVERY_AFTER_2XX, "same event in a new delivery"]
    );
    let redelivery = results
        .iter()
        .find(|r| r.name == REDELIVERY_AFTER_2XX)
        .unwrap();
    assert_eq!(redelivery.status, Some(503), "{redelivery:#?}");
    let note = redelivery.note.as_deref().unwrap_or_default();
    assert!(
        note.contains("event_in_flight") && note.contains("a 2xx before the commit"),
        "{note}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_whose_commit_fails_after_its_answer_fails_exactly_there() {
    // Its commit fails after it answered 200, so the claims are released and the events are
    // new again: whatever the timing, the redelivery is not counted as a duplicate.
    let url = serve_answering_before_commit(LateCommit::Failing).await;
    let results = run(&target(url)).await.unwrap();
    assert_eq!(
        failed(&results),
        [REDELIVERY_AFTER_2XX, "same event in a new delivery"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_without_a_body_limit_fails_exactly_there() {
    // Neither the framework's limit nor the verifier's: the body is read whatever its size.
    let lax = Verifier::new([Secret::new(SECRET)]).max_body_bytes(usize::MAX);
    let url = serve_unbounded(lax).await;
    let results = run(&target(url)).await.unwrap();
    assert_eq!(failed(&results), ["body over the limit"]);
}

/// Like [`serve`] with `verifier`, with axum's own body limit off.
async fn serve_unbounded(verifier: Verifier) -> String {
    let app = Router::new()
        .route(
            "/webhook",
            post(move |headers: HeaderMap, body: Bytes| {
                let verifier = verifier.clone();
                async move {
                    let signature = headers.get(headers::SIGNATURE_256).map(|v| v.as_bytes());
                    match verifier.verify(&body, signature, SystemTime::now()) {
                        Ok(_) => StatusCode::OK,
                        Err(refusal) => StatusCode::from_u16(refusal.http_status()).unwrap(),
                    }
                }
            }),
        )
        .layer(axum::extract::DefaultBodyLimit::disable());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/webhook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

/// A receiver that verifies with `check(body, presented hex)`, then (when it passes) runs the
/// real verifier with the right signature for everything else.
async fn serve_own_check(check: fn(&[u8], &str) -> bool) -> String {
    let verifier = Verifier::new([Secret::new(SECRET)]);
    let app = Router::new().route(
        "/webhook",
        post(move |headers: HeaderMap, body: Bytes| {
            let verifier = verifier.clone();
            async move {
                let presented = headers
                    .get(headers::SIGNATURE_256)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("sha256="))
                    .unwrap_or_default();
                if !check(&body, presented) {
                    return StatusCode::UNAUTHORIZED;
                }
                let right = evo_siem_protocol::sign(&Secret::new(SECRET), &body);
                match verifier.verify(&body, Some(right.as_bytes()), SystemTime::now()) {
                    Ok(_) => StatusCode::OK,
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

fn hmac_hex(body: &[u8]) -> String {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_compares_signatures_by_prefix_fails_exactly_there() {
    let url = serve_own_check(|body, presented| {
        !presented.is_empty() && hmac_hex(body).starts_with(presented)
    })
    .await;
    let results = run(&target(url)).await.unwrap();
    assert_eq!(failed(&results), ["truncated signature"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_reserializes_before_verifying_fails_there() {
    // It parses the body and signs its own compact serialization of it: the bytes sent are not
    // the bytes it checks.
    let url = serve_own_check(|body, presented| {
        let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
            return hmac_hex(body) == presented;
        };
        hmac_hex(&serde_json::to_vec(&value).unwrap()) == presented
    })
    .await;
    let results = run(&target(url)).await.unwrap();
    assert!(
        failed(&results).contains(&"valid batch, spaced and escaped"),
        "{:?}",
        failed(&results)
    );
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

fn standard_webhooks_target(url: String) -> ReceiverTarget {
    ReceiverTarget {
        scheme: evo_siem_protocol::SignatureScheme::StandardWebhooks,
        ..target(url)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sdk_receiver_for_standard_webhooks_passes_every_check() {
    use evo_siem_protocol::SignatureScheme;
    // Configured as a tenant would: the secret in its whsec_ form, Standard Webhooks alone.
    let receiver = evo_siem_receiver::Receiver::builder()
        .whsec_secret(&Secret::new(SECRET).to_whsec())
        .schemes([SignatureScheme::StandardWebhooks])
        .build()
        .unwrap();
    let results = run(&standard_webhooks_target(serve_sdk(receiver).await))
        .await
        .unwrap();
    assert_eq!(results.len(), 21);
    let not_passed: Vec<_> = results
        .iter()
        .filter(|r| r.verdict != Verdict::Pass && r.name != "body over the limit")
        .collect();
    assert!(not_passed.is_empty(), "{not_passed:#?}");
    assert!(results.iter().all(|r| r.note.is_none()), "{results:#?}");

    // An Evo-only receiver refuses every signed request of this suite: the suite really signs
    // the Standard Webhooks way.
    let evo_only = evo_siem_receiver::Receiver::builder()
        .secret(SECRET)
        .schemes([SignatureScheme::Evo])
        .build()
        .unwrap();
    let results = run(&standard_webhooks_target(serve_sdk(evo_only).await))
        .await
        .unwrap();
    assert!(
        failed(&results).contains(&"valid signed batch"),
        "{results:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standard_webhooks_receiver_without_its_replay_window_fails_exactly_there() {
    use evo_siem_protocol::standard_webhooks;
    // Checks the signature over id, timestamp and body, but never looks at the time it carries.
    let app = Router::new().route(
        "/webhook",
        post(move |headers: HeaderMap, body: Bytes| async move {
            let get = |name: &str| headers.get(name).map(|v| v.as_bytes());
            let signed = standard_webhooks::verify(
                get(headers::WEBHOOK_ID),
                get(headers::WEBHOOK_TIMESTAMP),
                get(headers::WEBHOOK_SIGNATURE),
                &body,
                &[Secret::new(SECRET)],
            );
            if signed.is_err() {
                return StatusCode::UNAUTHORIZED;
            }
            let body_checks = Verifier::unsigned().verify(&body, None, SystemTime::now());
            match body_checks {
                Ok(_) => StatusCode::OK,
                Err(refusal) => StatusCode::from_u16(refusal.http_status()).unwrap(),
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/webhook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let results = run(&standard_webhooks_target(url)).await.unwrap();
    assert_eq!(
        failed(&results),
        [
            "webhook-timestamp 10 minutes old",
            "webhook-timestamp 10 minutes ahead"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_takes_uuids_only_fails_exactly_there() {
    // It would refuse the product page's own example payload ("evt-abc123").
    let strict =
        Verifier::new([Secret::new(SECRET)]).event_ids(evo_siem_protocol::EventIds::UuidOnly);
    let results = run(&target(serve(Some(strict)).await)).await.unwrap();
    assert_eq!(failed(&results), ["event id that is not a UUID (evt-...)"]);
}

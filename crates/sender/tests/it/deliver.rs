//! Delivery end to end against wiremock: each row of the retry table, signing and headers,
//! exclusions, the outbound guard, and isolation between integrations.

use evo_siem_protocol::{Secret, Verifier, headers};
use evo_siem_sender::batcher::BatchLimits;
use evo_siem_sender::dispatch::{DispatchSettings, Dispatcher, GuardedResolver};
use evo_siem_sender::retry::{AttemptResult, Backoff};
use evo_siem_sender::spool::{BacklogLimits, NewEvent, Spool, SqliteSpool};
use evo_siem_sender::{Exclusions, Integration, Step, Worker};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const SECRET: &str = "whsec-sender-test";

struct Fixture {
    _dir: tempfile::TempDir,
    spool: Arc<SqliteSpool>,
    server: MockServer,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let spool = Arc::new(
        SqliteSpool::open(&dir.path().join("spool.db"), BacklogLimits::default()).unwrap(),
    );
    Fixture {
        _dir: dir,
        spool,
        server: MockServer::start().await,
    }
}

fn allowed() -> Vec<ipnet::IpNet> {
    vec!["127.0.0.1/32".parse().unwrap()]
}

fn settings() -> DispatchSettings {
    DispatchSettings {
        timeout: Duration::from_secs(2),
        allowed: allowed(),
        ..DispatchSettings::default()
    }
}

fn integration(fx: &Fixture, tenant: &str) -> Integration {
    Integration::new(tenant, &format!("{}/webhook", fx.server.uri()), &allowed())
        .unwrap()
        .with_secret(Secret::new(SECRET))
        .with_header("Authorization", "Splunk 0000-1111")
        .unwrap()
        .with_limits(BatchLimits::new(100, 1 << 20, Duration::ZERO).unwrap())
}

fn worker(fx: &Fixture, integration: Integration) -> Worker {
    let backoff = Backoff::new(Duration::from_millis(10), Duration::from_millis(40)).unwrap();
    Worker::new(
        fx.spool.clone(),
        Dispatcher::new(&settings()).unwrap(),
        Arc::new(integration),
        backoff,
    )
}

fn event(n: usize, action: &str) -> NewEvent {
    NewEvent {
        action: action.to_owned(),
        json: crate::common::event_json(n, action).to_string(),
    }
}

async fn ingest(fx: &Fixture, tenant: &str, events: Vec<NewEvent>) {
    fx.spool.append(tenant, events).await.unwrap();
}

/// Steps the worker until its queue is empty, waiting out its linger and backoff as the
/// scheduler would.
async fn drain(worker: &mut Worker) {
    for _ in 0..100 {
        match worker.step().await.unwrap() {
            Step::Idle => return,
            Step::Wait(after) | Step::Backoff(after) => tokio::time::sleep(after).await,
            Step::Progress | Step::Removed => {}
        }
    }
    panic!("the queue did not drain");
}

/// The `seq` of every event in a request, in order.
fn seqs(request: &Request) -> Vec<u64> {
    let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
    body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["data"]["seq"].as_u64().unwrap())
        .collect()
}

fn header<'r>(request: &'r Request, name: &str) -> &'r str {
    request
        .headers
        .get(name)
        .map(|v| v.to_str().unwrap())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_2xx_delivers_a_signed_v1_batch_with_every_header_and_empties_the_queue() {
    let fx = fixture().await;
    Mock::given(method("POST"))
        .and(path("/webhook"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&fx.server)
        .await;
    ingest(
        &fx,
        "acme",
        (0..3).map(|n| event(n, "User login")).collect(),
    )
    .await;
    let mut worker = worker(&fx, integration(&fx, "acme"));
    drain(&mut worker).await;

    let requests = fx.server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(seqs(request), [0, 1, 2]);
    assert_eq!(header(request, "content-type"), "application/json");
    assert_eq!(header(request, "authorization"), "Splunk 0000-1111");
    assert_eq!(header(request, headers::DELIVERY_ATTEMPT), "1");
    assert!(uuid::Uuid::parse_str(header(request, headers::DELIVERY_ID)).is_ok());
    let signature = header(request, headers::SIGNATURE_256).as_bytes();
    let verified = Verifier::new([Secret::new(SECRET)]).verify(
        &request.body,
        Some(signature),
        SystemTime::now(),
    );
    assert_eq!(verified.map(|v| v.batch.events.len()), Ok(3));
    assert_eq!(fx.spool.backlog("acme").await.unwrap().events, 0);
    assert_eq!(worker.stats().delivered.load(Ordering::Relaxed), 3);
}

#[tokio::test]
async fn no_secret_means_no_signature_header() {
    let fx = fixture().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&fx.server)
        .await;
    ingest(&fx, "acme", vec![event(0, "User login")]).await;
    let unsigned =
        Integration::new("acme", &format!("{}/webhook", fx.server.uri()), &allowed()).unwrap();
    drain(&mut worker(
        &fx,
        unsigned.with_limits(BatchLimits::new(10, 1 << 20, Duration::ZERO).unwrap()),
    ))
    .await;
    let requests = fx.server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1);
    assert!(requests[0].headers.get(headers::SIGNATURE_256).is_none());
}

/// 408, 429, 500 and 503 are retried with the same delivery id and an increasing attempt number,
/// each attempt stamped and signed afresh.
#[tokio::test]
async fn retryable_statuses_are_retried_with_a_stable_delivery_id() {
    for status in [408, 429, 500, 503] {
        let fx = fixture().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(status))
            .up_to_n_times(2)
            .with_priority(1)
            .mount(&fx.server)
            .await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200))
            .with_priority(2)
            .mount(&fx.server)
            .await;
        ingest(
            &fx,
            "acme",
            vec![event(0, "User login"), event(1, "User login")],
        )
        .await;
        let mut worker = worker(&fx, integration(&fx, "acme"));
        drain(&mut worker).await;
        let requests = fx.server.received_requests().await.unwrap();
        let ids: Vec<&str> = requests
            .iter()
            .map(|r| header(r, headers::DELIVERY_ID))
            .collect();
        let attempts: Vec<&str> = requests
            .iter()
            .map(|r| header(r, headers::DELIVERY_ATTEMPT))
            .collect();
        assert_eq!(attempts, ["1", "2", "3"], "{status}");
        assert!(ids.iter().all(|id| *id == ids[0]), "{status}: {ids:?}");
        assert_eq!(
            worker.stats().retried.load(Ordering::Relaxed),
            2,
            "{status}"
        );
        assert_eq!(
            fx.spool.backlog("acme").await.unwrap().events,
            0,
            "{status}"
        );
    }
}

#[tokio::test]
async fn retry_after_in_seconds_and_as_a_date_is_honoured() {
    for as_date in [false, true] {
        // A date has whole seconds: three seconds ahead is at least two away.
        let value = if as_date {
            httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(3))
        } else {
            "1".to_owned()
        };
        let fx = fixture().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", value.as_str()))
            .up_to_n_times(1)
            .with_priority(1)
            .mount(&fx.server)
            .await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200))
            .with_priority(2)
            .mount(&fx.server)
            .await;
        ingest(&fx, "acme", vec![event(0, "User login")]).await;
        let started = Instant::now();
        drain(&mut worker(&fx, integration(&fx, "acme"))).await;
        // The backoff alone would wait at most 40 ms.
        assert!(
            started.elapsed() >= Duration::from_millis(900),
            "{value}: {:?}",
            started.elapsed()
        );
        assert_eq!(fx.server.received_requests().await.unwrap().len(), 2);
    }
}

#[tokio::test]
async fn a_413_splits_the_batch_and_keeps_the_order() {
    let fx = fixture().await;
    // Refuse any batch of more than two events.
    Mock::given(method("POST"))
        .respond_with(|request: &Request| {
            if seqs(request).len() > 2 {
                ResponseTemplate::new(413)
            } else {
                ResponseTemplate::new(200)
            }
        })
        .mount(&fx.server)
        .await;
    ingest(
        &fx,
        "acme",
        (0..6).map(|n| event(n, "User login")).collect(),
    )
    .await;
    let mut worker = worker(&fx, integration(&fx, "acme"));
    drain(&mut worker).await;
    let delivered: Vec<u64> = fx
        .server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| seqs(r).len() <= 2)
        .flat_map(seqs)
        .collect();
    assert_eq!(delivered, [0, 1, 2, 3, 4, 5]);
    assert_eq!(worker.stats().delivered.load(Ordering::Relaxed), 6);
}

/// A stop while the left half of a split batch waits for its retry leaves both halves queued:
/// sending the right half first would deliver events out of order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_during_a_split_does_not_send_the_right_half_first() {
    let fx = fixture().await;
    Mock::given(method("POST"))
        .respond_with(|request: &Request| {
            let seqs = seqs(request);
            if seqs.len() > 2 {
                ResponseTemplate::new(413)
            } else if seqs.contains(&0) {
                ResponseTemplate::new(503).insert_header("retry-after", "60")
            } else {
                ResponseTemplate::new(200)
            }
        })
        .mount(&fx.server)
        .await;
    ingest(
        &fx,
        "acme",
        (0..4).map(|n| event(n, "User login")).collect(),
    )
    .await;
    let mut worker = worker(&fx, integration(&fx, "acme"));
    // Steps until the left half waits for its retry; then the worker is dropped, as a stop does.
    let mut steps = 0;
    while !matches!(worker.step().await.unwrap(), Step::Backoff(_)) {
        steps += 1;
        assert!(steps < 10, "the left half was never retried");
    }
    drop(worker);
    let sent: Vec<Vec<u64>> = fx
        .server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(seqs)
        .collect();
    assert_eq!(
        sent,
        [vec![0, 1, 2, 3], vec![0, 1]],
        "the right half went first"
    );
    assert_eq!(fx.spool.pending("acme", 10).await.unwrap().len(), 4);
}

#[tokio::test]
async fn a_400_is_bisected_down_to_the_poison_event_which_is_dead_lettered() {
    let fx = fixture().await;
    Mock::given(method("POST"))
        .and(body_string_contains("Poison"))
        .respond_with(ResponseTemplate::new(400).set_body_string("schema violation in event"))
        .with_priority(1)
        .mount(&fx.server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .with_priority(2)
        .mount(&fx.server)
        .await;
    let mut events: Vec<NewEvent> = (0..7).map(|n| event(n, "User login")).collect();
    events[4] = event(4, "Poison");
    ingest(&fx, "acme", events).await;
    let mut worker = worker(&fx, integration(&fx, "acme"));
    drain(&mut worker).await;

    let dead = fx
        .spool
        .dead_letters("acme", None, 10)
        .await
        .unwrap()
        .letters;
    assert_eq!(dead.len(), 1);
    assert!(dead[0].json.contains("Poison"));
    assert_eq!(dead[0].reason, "http 400: schema violation in event");
    let delivered: Vec<u64> = fx
        .server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| !String::from_utf8_lossy(&r.body).contains("Poison"))
        .flat_map(seqs)
        .collect();
    assert_eq!(delivered, [0, 1, 2, 3, 5, 6]);
    assert_eq!(worker.stats().dead_lettered.load(Ordering::Relaxed), 1);
}

/// 401, 403, 404 and 410 pause the integration; its events stay queued and are delivered once
/// the receiver is fixed. A redirect pauses too, and is never followed.
#[tokio::test]
async fn auth_and_gone_statuses_pause_and_keep_the_events() {
    for status in [401, 403, 404, 410, 302] {
        let fx = fixture().await;
        let template = ResponseTemplate::new(status)
            .insert_header("Location", format!("{}/elsewhere", fx.server.uri()));
        Mock::given(method("POST"))
            .and(path("/webhook"))
            .respond_with(template)
            .up_to_n_times(3)
            .with_priority(1)
            .mount(&fx.server)
            .await;
        Mock::given(method("POST"))
            .and(path("/webhook"))
            .respond_with(ResponseTemplate::new(200))
            .with_priority(2)
            .mount(&fx.server)
            .await;
        Mock::given(method("POST"))
            .and(path("/elsewhere"))
            .respond_with(ResponseTemplate::new(200))
            .expect(0)
            .mount(&fx.server)
            .await;
        ingest(&fx, "acme", vec![event(0, "User login")]).await;
        let mut worker = worker(&fx, integration(&fx, "acme"));
        let stats = worker.stats();
        let watcher = tokio::spawn(async move {
            // The pause is visible while the receiver refuses.
            for _ in 0..200 {
                if stats.paused.load(Ordering::Relaxed) {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            false
        });
        drain(&mut worker).await;
        assert!(watcher.await.unwrap(), "{status}: never paused");
        assert!(
            !worker.stats().paused.load(Ordering::Relaxed),
            "{status}: still paused after delivery"
        );
        assert_eq!(
            fx.server.received_requests().await.unwrap().len(),
            4,
            "{status}"
        );
        assert_eq!(
            worker.stats().delivered.load(Ordering::Relaxed),
            1,
            "{status}"
        );
    }
}

#[tokio::test]
async fn a_timeout_and_a_dropped_connection_are_retried() {
    let fx = fixture().await;
    // Slower than the 2-second timeout, once.
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(3)))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&fx.server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .with_priority(2)
        .mount(&fx.server)
        .await;
    ingest(&fx, "acme", vec![event(0, "User login")]).await;
    let mut worker = worker(&fx, integration(&fx, "acme"));
    drain(&mut worker).await;
    assert_eq!(worker.stats().retried.load(Ordering::Relaxed), 1);
    assert_eq!(worker.stats().delivered.load(Ordering::Relaxed), 1);

    // Nothing listens on this port any more: the connection is refused, and retried.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let integration =
        Integration::new("acme", &format!("http://{closed}/webhook"), &allowed()).unwrap();
    let report = Dispatcher::new(&settings())
        .unwrap()
        .attempt(&integration, &[], uuid::Uuid::new_v4(), 1)
        .await;
    assert_eq!(report.result, AttemptResult::Transport);
    assert!(report.detail.starts_with("connect"), "{}", report.detail);
}

/// A receiver that closes the first connection in the middle of reading the request, without a
/// word, then answers 200: the batch is sent again, with the same delivery id.
#[tokio::test]
async fn a_connection_dropped_mid_request_is_retried() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let mut ids = Vec::new();
        for connection in 0..2 {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            // Read the head and a little of the body, then either drop or answer.
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = socket.read(&mut buf).await.unwrap();
                request.extend_from_slice(&buf[..n]);
            }
            let head = String::from_utf8_lossy(&request).to_lowercase();
            let id = head
                .lines()
                .find_map(|l| l.strip_prefix("x-evo-delivery-id: "))
                .unwrap()
                .to_owned();
            ids.push(id);
            if connection == 0 {
                drop(socket); // No answer at all.
            } else {
                let length = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length: "))
                    .unwrap()
                    .trim()
                    .parse::<usize>()
                    .unwrap();
                let body_so_far = request.len() - (head.find("\r\n\r\n").unwrap() + 4);
                let mut remaining = length - body_so_far;
                while remaining > 0 {
                    remaining -= socket.read(&mut buf[..remaining.min(4096)]).await.unwrap();
                }
                socket
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .await
                    .unwrap();
            }
        }
        ids
    });
    let fx = fixture().await;
    ingest(&fx, "acme", vec![event(0, "User login")]).await;
    let integration =
        Integration::new("acme", &format!("http://{addr}/webhook"), &allowed()).unwrap();
    let mut worker = worker(
        &fx,
        integration.with_limits(BatchLimits::new(10, 1 << 20, Duration::ZERO).unwrap()),
    );
    drain(&mut worker).await;
    let ids = server.await.unwrap();
    assert_eq!(ids.len(), 2);
    assert_eq!(ids[0], ids[1], "a retry keeps its delivery id");
    assert_eq!(worker.stats().retried.load(Ordering::Relaxed), 1);
    assert_eq!(worker.stats().delivered.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn excluded_actions_are_never_sent_and_are_counted() {
    let fx = fixture().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&fx.server)
        .await;
    let actions = [
        "User login",
        "User logout",
        "user login",
        "User login ",
        "User login",
    ];
    ingest(
        &fx,
        "acme",
        actions
            .iter()
            .enumerate()
            .map(|(n, a)| event(n, a))
            .collect(),
    )
    .await;
    let integration = integration(&fx, "acme").with_exclusions(Exclusions::new(["User login"]));
    let mut worker = worker(&fx, integration);
    drain(&mut worker).await;
    let sent: Vec<u64> = fx
        .server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .flat_map(seqs)
        .collect();
    assert_eq!(sent, [1, 2, 3]);
    assert_eq!(worker.stats().excluded.load(Ordering::Relaxed), 2);
}

#[tokio::test]
async fn the_guard_refuses_internal_addresses_even_when_dns_changes_its_answer() {
    // Two listeners that count connections at the same port: 127.0.0.1, where the allowed first
    // answer connects, and 127.0.0.2, where the second answer would connect if the guard did
    // not check every connection again. Both loopback, so a broken guard costs nothing here.
    let count = async |ip: &str, port: u16| {
        let listener = tokio::net::TcpListener::bind((ip, port)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let seen = accepted.clone();
        tokio::spawn(async move {
            while let Ok((_conn, _)) = listener.accept().await {
                seen.fetch_add(1, Ordering::Relaxed);
            }
        });
        (port, accepted)
    };
    let (port, allowed_side) = count("127.0.0.1", 0).await;
    let (_, trap) = count("127.0.0.2", port).await;
    // A rebinding DNS: the first answer is allowed (the local test server), every later one is
    // internal. Every connection is checked again, so the later ones never connect. (All traffic
    // stays on this machine: 127.0.0.1 is the only address ever connected to.)
    let answers = Arc::new(std::sync::Mutex::new(vec![
        "127.0.0.1",
        "127.0.0.2",
        "169.254.169.254",
        "10.0.0.7",
        "::ffff:192.168.0.1",
    ]));
    let lookup: evo_siem_sender::dispatch::Lookup = Arc::new(move |_host: String| {
        let answer = answers.lock().unwrap().remove(0).parse().unwrap();
        Box::pin(async move { Ok(vec![answer]) })
    });
    // The URL names a host, so the guard acts at connection time.
    let integration = Integration::new(
        "acme",
        &format!("https://siem.example.test:{port}/webhook"),
        &[],
    )
    .unwrap();
    let resolver = GuardedResolver::with_lookup(allowed().into(), lookup);
    let dispatcher = Dispatcher::with_resolver(&settings(), resolver).unwrap();
    // The allowed answer connects (and fails the TLS handshake with a listener that says
    // nothing), not because of the guard.
    let first = dispatcher
        .attempt(&integration, &[], uuid::Uuid::new_v4(), 1)
        .await;
    assert_eq!(first.result, AttemptResult::Transport);
    assert!(!first.detail.contains("outbound guard"), "{}", first.detail);
    for class in ["loopback", "link-local", "private", "private"] {
        let report = dispatcher
            .attempt(&integration, &[], uuid::Uuid::new_v4(), 1)
            .await;
        assert_eq!(report.result, AttemptResult::Transport);
        assert!(
            report.detail.contains("blocked by the outbound guard"),
            "{}",
            report.detail
        );
        assert!(report.detail.contains(class), "{}", report.detail);
    }
    // The first answer was connected to, the second never.
    assert_eq!(allowed_side.load(Ordering::Relaxed), 1);
    assert_eq!(trap.load(Ordering::Relaxed), 0);
}

/// Each transport failure gets its kind from the types of its causes: a refused connection, a
/// peer that does not speak TLS, one that never answers, a name that does not resolve, and one
/// that resolves only to blocked addresses.
#[tokio::test]
async fn transport_failures_are_classified_by_their_type() {
    use evo_siem_sender::dispatch::{FailureKind, Lookup};
    use tokio::io::AsyncWriteExt;
    let attempt = async |dispatcher: &Dispatcher, url: &str| {
        let integration = Integration::new("acme", url, &allowed()).unwrap();
        let report = dispatcher
            .attempt(&integration, &[], uuid::Uuid::new_v4(), 1)
            .await;
        assert_eq!(report.result, AttemptResult::Transport, "{url}");
        (report.failure, report.detail)
    };
    let dispatcher = Dispatcher::new(&DispatchSettings {
        timeout: Duration::from_millis(500),
        ..settings()
    })
    .unwrap();

    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let (failure, detail) = attempt(&dispatcher, &format!("http://{closed}/")).await;
    assert_eq!(failure, Some(FailureKind::Connect), "{detail}");

    // A plain HTTP server behind an https:// URL: the TLS handshake fails.
    let plain = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let plain_addr = plain.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = plain.accept().await {
            let _ = stream
                .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
                .await;
        }
    });
    let (failure, detail) = attempt(&dispatcher, &format!("https://{plain_addr}/")).await;
    assert_eq!(failure, Some(FailureKind::Tls), "{detail}");

    // Accepts, then never says a word.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_addr = silent.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = silent.accept().await {
            held.push(stream);
        }
    });
    let (failure, detail) = attempt(&dispatcher, &format!("http://{silent_addr}/")).await;
    assert_eq!(failure, Some(FailureKind::Timeout), "{detail}");

    // The resolver's answers, whatever their messages say.
    let lookup: Lookup = Arc::new(|host: String| {
        Box::pin(async move {
            match host.as_str() {
                "internal.example" => Ok(vec!["169.254.169.254".parse().unwrap()]),
                _ => Err(std::io::Error::other("no such host")),
            }
        })
    });
    let dispatcher = Dispatcher::with_resolver(
        &settings(),
        GuardedResolver::with_lookup(Arc::from(Vec::new()), lookup),
    )
    .unwrap();
    let (failure, detail) = attempt(&dispatcher, "https://nowhere.example/").await;
    assert_eq!(failure, Some(FailureKind::Dns), "{detail}");
    let (failure, detail) = attempt(&dispatcher, "https://internal.example/").await;
    assert_eq!(failure, Some(FailureKind::Blocked), "{detail}");
}

/// The request's headers as an `http::HeaderMap`, for the `standardwebhooks` crate.
fn header_map(request: &Request) -> http::HeaderMap {
    let mut map = http::HeaderMap::new();
    for (name, value) in &request.headers {
        map.append(
            http::HeaderName::from_bytes(name.as_str().as_bytes()).unwrap(),
            http::HeaderValue::from_bytes(value.as_bytes()).unwrap(),
        );
    }
    map
}

/// The Unix second of the body's `generated_at`.
fn generated_at_secs(request: &Request) -> u64 {
    let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
    evo_siem_protocol::parse_rfc3339(body["generated_at"].as_str().unwrap())
        .unwrap()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// With both schemes, every attempt carries both signatures: the `standardwebhooks` crate (what
/// a customer's Standard Webhooks verifier runs) accepts each attempt, keyed with the `whsec_`
/// form of the secret; `webhook-id` is the delivery id, stable across retries, and
/// `webhook-timestamp` the second of the attempt's `generated_at`.
#[tokio::test]
async fn standard_webhooks_deliveries_verify_with_the_standardwebhooks_crate() {
    use evo_siem_protocol::SignatureScheme;
    let fx = fixture().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(2)
        .with_priority(1)
        .mount(&fx.server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .with_priority(2)
        .mount(&fx.server)
        .await;
    ingest(
        &fx,
        "acme",
        vec![event(0, "User login"), event(1, "User login")],
    )
    .await;
    let both = integration(&fx, "acme").with_schemes(vec![
        SignatureScheme::Evo,
        SignatureScheme::StandardWebhooks,
    ]);
    drain(&mut worker(&fx, both)).await;

    let requests = fx.server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 3);
    let library = standardwebhooks::Webhook::new(&Secret::new(SECRET).to_whsec()).unwrap();
    let ours = Verifier::new([Secret::new(SECRET)]).schemes([SignatureScheme::StandardWebhooks]);
    for request in &requests {
        library
            .verify(&request.body, &header_map(request))
            .unwrap_or_else(|e| {
                panic!(
                    "attempt {}: {e}",
                    header(request, headers::DELIVERY_ATTEMPT)
                )
            });
        assert_eq!(
            header(request, headers::WEBHOOK_ID),
            header(request, headers::DELIVERY_ID)
        );
        assert_eq!(
            header(request, headers::WEBHOOK_TIMESTAMP),
            generated_at_secs(request).to_string()
        );
        // The Evo signature is still there and still verifies.
        let evo = header(request, headers::SIGNATURE_256).as_bytes();
        let verified = Verifier::new([Secret::new(SECRET)]).verify(
            &request.body,
            Some(evo),
            SystemTime::now(),
        );
        assert!(verified.is_ok(), "{verified:?}");
        let standard = evo_siem_protocol::SignatureHeaders::from_lookup(|name| {
            request.headers.get(name).map(|v| v.as_bytes())
        });
        assert!(
            ours.verify_with_headers(&request.body, &standard, SystemTime::now())
                .is_ok()
        );
    }
    let ids: Vec<&str> = requests
        .iter()
        .map(|r| header(r, headers::WEBHOOK_ID))
        .collect();
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    // A library keyed with another secret refuses it.
    let other = standardwebhooks::Webhook::new(&Secret::new("another-secret").to_whsec()).unwrap();
    assert!(
        other
            .verify(&requests[0].body, &header_map(&requests[0]))
            .is_err()
    );
}

/// Standard Webhooks alone: no `X-Evo-*` header at all, and the library still verifies.
#[tokio::test]
async fn standard_webhooks_alone_sends_no_x_evo_header() {
    use evo_siem_protocol::SignatureScheme;
    let fx = fixture().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&fx.server)
        .await;
    ingest(&fx, "acme", vec![event(0, "User login")]).await;
    let standard = integration(&fx, "acme").with_schemes(vec![SignatureScheme::StandardWebhooks]);
    drain(&mut worker(&fx, standard)).await;
    let requests = fx.server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1);
    let names: Vec<&str> = requests[0].headers.keys().map(|n| n.as_str()).collect();
    assert!(!names.iter().any(|n| n.starts_with("x-evo-")), "{names:?}");
    assert!(uuid::Uuid::parse_str(header(&requests[0], headers::WEBHOOK_ID)).is_ok());
    let library = standardwebhooks::Webhook::new(&Secret::new(SECRET).to_whsec()).unwrap();
    library
        .verify(&requests[0].body, &header_map(&requests[0]))
        .unwrap();
}

/// Settings in force: the schemes are read at every attempt. A batch first tried with Evo
/// signatures is retried, after the tenant switches to Standard Webhooks, with Standard Webhooks
/// headers only, under the same delivery id.
#[tokio::test]
async fn a_change_of_signature_schemes_applies_to_the_next_attempt() {
    use evo_siem_sender::secrets::SecretsKey;
    use evo_siem_sender::settings::IntegrationSettings;
    use evo_siem_sender::store::Registry;
    let fx = fixture().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&fx.server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .with_priority(2)
        .mount(&fx.server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let registry = Arc::new(
        Registry::open(
            dir.path(),
            allowed(),
            Some(SecretsKey::from_bytes(&[7; 32])),
        )
        .unwrap(),
    );
    let mut stored = IntegrationSettings::new("acme", format!("{}/webhook", fx.server.uri()));
    stored.signing_secret = Some(SECRET.into());
    stored.linger_ms = Some(0);
    let integration = registry.put(&stored).unwrap();
    ingest(&fx, "acme", vec![event(0, "User login")]).await;
    let backoff = Backoff::new(Duration::from_millis(10), Duration::from_millis(40)).unwrap();
    let mut worker = Worker::new(
        fx.spool.clone(),
        Dispatcher::new(&settings()).unwrap(),
        integration,
        backoff,
    )
    .following(registry.clone());
    // The first attempt (Evo) gets the 503.
    while fx.server.received_requests().await.unwrap().is_empty() {
        worker.step().await.unwrap();
    }
    stored.signature_schemes = vec!["standard-webhooks".into()];
    registry.put(&stored).unwrap();
    drain(&mut worker).await;

    let requests = fx.server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 2);
    assert!(requests[0].headers.get(headers::SIGNATURE_256).is_some());
    assert!(
        requests[0]
            .headers
            .get(headers::WEBHOOK_SIGNATURE)
            .is_none()
    );
    assert!(requests[1].headers.get(headers::SIGNATURE_256).is_none());
    assert_eq!(
        header(&requests[1], headers::WEBHOOK_ID),
        header(&requests[0], headers::DELIVERY_ID)
    );
    let library = standardwebhooks::Webhook::new(&Secret::new(SECRET).to_whsec()).unwrap();
    library
        .verify(&requests[1].body, &header_map(&requests[1]))
        .unwrap();
}

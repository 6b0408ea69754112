//! The Redis store on a real server (127.0.0.1:6379, started through `scripts/services.sh` when
//! it is down; `EVO_SIEM_REDIS_URL` points elsewhere). Each test uses keys of its own prefix.

use bytes::Bytes;
use evo_siem_dedup_redis::{RedisDedup, RedisDedupConfig};
use evo_siem_receiver::Receiver;
use evo_siem_receiver::dedup::{ClaimOutcome, ClaimToken, DedupStore};
use std::time::{Duration, SystemTime};
use uuid::Uuid;

/// The server's URL, once it answers.
fn url() -> String {
    evo_siem_test_services::redis().unwrap_or_else(|e| panic!("Redis for the tests: {e}"));
    std::env::var("EVO_SIEM_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".into())
}

fn config() -> RedisDedupConfig {
    RedisDedupConfig::new(url()).prefix(format!("evo-siem-test:{}:", Uuid::new_v4()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claim_commit_release_keep_the_protocol() {
    let store = RedisDedup::new(config()).unwrap();
    let (a, b) = (ClaimToken::random(), ClaimToken::random());
    let (x, y) = (Uuid::new_v4(), Uuid::new_v4());
    use ClaimOutcome::{Claimed, InFlight, Seen};
    // A repeat inside one batch is reported as seen.
    assert_eq!(
        store.claim(&[x, y, x], a).await.unwrap(),
        [Claimed, Claimed, Seen]
    );
    assert_eq!(store.claim(&[x, y], b).await.unwrap(), [InFlight, InFlight]);
    // Release only removes the claims its owner holds.
    store.release(vec![x, y], b);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(store.claim(&[x], b).await.unwrap(), [InFlight]);
    store.commit(&[x], a).await.unwrap();
    store.release(vec![y], a);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(store.claim(&[x, y], b).await.unwrap(), [Seen, Claimed]);
    assert!(store.claim(&[], b).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_left_by_a_dead_receiver_expires_and_the_event_is_processed() {
    let store = RedisDedup::new(config().claim_ttl(Duration::from_millis(300))).unwrap();
    let x = Uuid::new_v4();
    // The claimer dies: no commit, no release.
    assert_eq!(
        store.claim(&[x], ClaimToken::random()).await.unwrap(),
        [ClaimOutcome::Claimed]
    );
    assert_eq!(
        store.claim(&[x], ClaimToken::random()).await.unwrap(),
        [ClaimOutcome::InFlight]
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        store.claim(&[x], ClaimToken::random()).await.unwrap(),
        [ClaimOutcome::Claimed]
    );
}

const SECRET: &str = "whsec-redis-tests";

fn signed_batch(n: usize) -> (http::HeaderMap, Bytes) {
    let events: Vec<String> = (0..n)
        .map(|i| format!(r#"{{"event_type":"create","table":"events","timestamp":"2024-01-15T10:30:00.000Z","data":{{"uuid":"{}","action":"User login","status":"Success","actor":{{"kind":"User","name":"u{i}@example.com"}},"origin":{{"hostname":"h","ipaddr":"192.0.2.1"}},"target":{{"kind":"User","name":"u"}},"ts":1706000000123456789,"created_at":1706000000123456789}}}}"#, Uuid::new_v4()))
        .collect();
    let refs: Vec<&str> = events.iter().map(String::as_str).collect();
    let body = evo_siem_protocol::encode_batch_from_text(&refs, SystemTime::now());
    let mut headers = http::HeaderMap::new();
    let signature = evo_siem_protocol::sign(&evo_siem_protocol::Secret::new(SECRET), &body);
    headers.insert(
        evo_siem_protocol::headers::SIGNATURE_256,
        signature.parse().unwrap(),
    );
    (headers, Bytes::from(body))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receivers_sharing_redis_process_each_event_exactly_once() {
    let config = config();
    let receivers: Vec<Receiver> = (0..4)
        .map(|_| {
            Receiver::builder()
                .secret(SECRET)
                .dedup(RedisDedup::new(config.clone()).unwrap())
                .build()
                .unwrap()
        })
        .collect();
    let batches: Vec<_> = (0..20).map(|_| signed_batch(25)).collect();
    // Every batch to every receiver at once, each delivery retried until it gets a 2xx (as a
    // sender would after a 503), counting the events handed to the application.
    let mut tasks = Vec::new();
    for receiver in &receivers {
        for (headers, body) in &batches {
            let (receiver, headers, body) = (receiver.clone(), headers.clone(), body.clone());
            tasks.push(tokio::spawn(async move {
                loop {
                    match receiver
                        .accept(&headers, body.clone(), SystemTime::now())
                        .await
                    {
                        Ok(batch) => {
                            let fresh: Vec<String> =
                                batch.events().map(|e| e.data.uuid.to_string()).collect();
                            let _delivered = batch.commit().await.unwrap();
                            return fresh;
                        }
                        Err(rejection) => {
                            assert_eq!(rejection.status().as_u16(), 503, "{rejection:?}");
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                    }
                }
            }));
        }
    }
    let mut processed = Vec::new();
    for task in tasks {
        processed.extend(task.await.unwrap());
    }
    let unique: std::collections::HashSet<&String> = processed.iter().collect();
    assert_eq!(processed.len(), 20 * 25, "some event was processed twice");
    assert_eq!(unique.len(), 20 * 25);
}

/// A redis-server of this test's own, on a free port, so it can be stopped and started again.
struct OwnRedis {
    port: u16,
    child: Option<tokio::process::Child>,
}

impl OwnRedis {
    async fn start(port: u16) -> Self {
        let child = tokio::process::Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server is installed (scripts/services.sh)");
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Self {
            port,
            child: Some(child),
        }
    }

    async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_the_receiver_answers_503_and_recovers_by_itself() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut redis = OwnRedis::start(port).await;
    let store = RedisDedup::new(
        RedisDedupConfig::new(format!("redis://127.0.0.1:{}/", redis.port))
            .timeout(Duration::from_millis(500)),
    )
    .unwrap();
    let receiver = Receiver::builder()
        .secret(SECRET)
        .dedup(store)
        .build()
        .unwrap();
    // The status and reason code answered: a 503 for another reason (a claim in progress, say)
    // would not show that the store's absence is what the receiver reports.
    let accept = async |receiver: &Receiver| {
        let (headers, body) = signed_batch(3);
        match receiver.accept(&headers, body, SystemTime::now()).await {
            Ok(batch) => match batch.commit().await {
                Ok(_) => (200, "delivered"),
                Err(r) => (r.status().as_u16(), r.reason_code()),
            },
            Err(rejection) => (rejection.status().as_u16(), rejection.reason_code()),
        }
    };
    assert_eq!(accept(&receiver).await, (200, "delivered"));
    redis.stop().await;
    assert_eq!(accept(&receiver).await, (503, "dedup_unavailable"));
    assert_eq!(accept(&receiver).await, (503, "dedup_unavailable"));
    let _redis = OwnRedis::start(port).await;
    let started = std::time::Instant::now();
    while accept(&receiver).await != (200, "delivered") {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "did not recover"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `rediss://`: a redis-server of the test's own listening with TLS only, its certificate signed
/// by a CA made for the test. With that CA the store claims and commits; with the machine's
/// trust store (which does not know the CA) it refuses to talk to the server: 503, never a
/// fallback to plaintext.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_works_with_the_servers_ca_and_only_with_it() {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    std::fs::write(path("ca.pem"), ca.pem()).unwrap();
    std::fs::write(path("cert.pem"), cert.pem()).unwrap();
    std::fs::write(path("key.pem"), key.serialize_pem()).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = tokio::process::Command::new("redis-server")
        .args([
            "--port",
            "0",
            "--tls-port",
            &port.to_string(),
            "--tls-cert-file",
            &path("cert.pem"),
            "--tls-key-file",
            &path("key.pem"),
            "--tls-ca-cert-file",
            &path("ca.pem"),
            "--tls-auth-clients",
            "no",
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("redis-server is installed (scripts/services.sh)");
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let url = format!("rediss://127.0.0.1:{port}/");
    let trusted = RedisDedup::new(
        RedisDedupConfig::new(&url)
            .ca_pem(ca.pem())
            .prefix(format!("tls-{}:", Uuid::new_v4()))
            .timeout(Duration::from_secs(5)),
    )
    .unwrap();
    let uuids = [Uuid::new_v4()];
    let token = ClaimToken::random();
    assert_eq!(
        trusted.claim(&uuids, token).await.unwrap(),
        [ClaimOutcome::Claimed]
    );
    trusted.commit(&uuids, token).await.unwrap();
    assert_eq!(
        trusted.claim(&uuids, ClaimToken::random()).await.unwrap(),
        [ClaimOutcome::Seen]
    );
    let untrusted =
        RedisDedup::new(RedisDedupConfig::new(&url).timeout(Duration::from_secs(2))).unwrap();
    let refused = untrusted.claim(&uuids, ClaimToken::random()).await;
    assert!(refused.is_err(), "{refused:?}");
    server.kill().await.unwrap();
}

#[test]
fn the_configuration_never_shows_the_password() {
    let config = RedisDedupConfig::new("rediss://:hunter2-pass@redis.example:6380/0");
    let shown = format!("{config:?}");
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(shown.contains("rediss://<redacted>"), "{shown}");
}

//! Several sender instances on one PostgreSQL spool: one deliverer per integration at a time,
//! takeover when a holder dies, integrations spread over the instances alive, migrations that
//! instances starting together apply once, and a sender that carries on another's queue.

use crate::common::ScratchDatabase;
use evo_siem_sender::service::{Config, Sender};
use evo_siem_sender::spool::{
    BacklogLimits, Hold, NewEvent, PostgresOptions, PostgresSpool, Spool, SpoolError,
};
use std::time::{Duration, Instant};

async fn instance(db: &ScratchDatabase, ttl: Duration) -> PostgresSpool {
    let mut options = PostgresOptions::new(db.url.clone());
    options.lease_ttl = ttl;
    PostgresSpool::connect(options, BacklogLimits::default())
        .await
        .unwrap()
}

fn pg_sender(dir: &tempfile::TempDir, db: &ScratchDatabase, webhook: &str) -> Config {
    crate::common::pg_sender_config(dir, db, webhook, 600)
}

fn event(n: usize) -> NewEvent {
    NewEvent {
        action: "User login".into(),
        json: format!(r#"{{"n":{n}}}"#),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_instance_delivers_an_integration_until_its_lease_expires() {
    let db = ScratchDatabase::new().await;
    let ttl = Duration::from_millis(1500);
    let (a, b) = (instance(&db, ttl).await, instance(&db, ttl).await);
    // Either instance takes ingest.
    a.append("acme", vec![event(1)]).await.unwrap();
    b.append("acme", vec![event(2)]).await.unwrap();

    // The keeper takes the lease of a queue with events; the other instance finds it taken.
    assert_eq!(a.keep_leases().await.unwrap(), ["acme"]);
    assert!(b.keep_leases().await.unwrap().is_empty(), "a second holder");
    assert!(a.holds("acme", Hold::Keep));
    assert!(!b.holds("acme", Hold::Keep));
    assert_eq!(a.pending("acme", 10).await.unwrap().len(), 2);
    // Without the lease, nothing to deliver: an instance that lost it cannot start a batch.
    assert!(b.pending("acme", 10).await.unwrap().is_empty());

    // A holder that renews keeps it past its first expiry.
    for _ in 0..3 {
        tokio::time::sleep(ttl / 3).await;
        assert!(a.keep_leases().await.unwrap().is_empty());
        assert!(a.holds("acme", Hold::Keep));
        assert!(b.keep_leases().await.unwrap().is_empty());
    }

    // A holder that stops renewing (killed, or stalled) loses it once it expires; the other
    // carries on.
    let died = Instant::now();
    while b.keep_leases().await.unwrap().is_empty() {
        assert!(
            died.elapsed() < ttl * 4,
            "no takeover after the lease expired"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        died.elapsed() >= ttl / 2,
        "taken over before the lease expired"
    );
    assert!(b.holds("acme", Hold::Keep));
    assert_eq!(b.pending("acme", 10).await.unwrap().len(), 2);
    // The old holder, stalled past its lease, counts it lost without asking, reads nothing,
    // and can neither acknowledge nor dead-letter anything of the new holder's.
    assert!(!a.holds("acme", Hold::Keep));
    assert!(a.pending("acme", 10).await.unwrap().is_empty());
    let ids: Vec<i64> = b
        .pending("acme", 10)
        .await
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect();
    assert!(matches!(
        a.ack("acme", ids.clone()).await,
        Err(SpoolError::LeaseLost)
    ));
    assert!(matches!(
        a.dead_letter("acme", ids[0], "refused".into()).await,
        Err(SpoolError::LeaseLost)
    ));
    assert_eq!(b.pending("acme", 10).await.unwrap().len(), 2);
    assert!(
        b.dead_letters("acme", None, 10)
            .await
            .unwrap()
            .letters
            .is_empty()
    );
    assert_eq!(b.backlog("acme").await.unwrap().events, 2);

    // A release hands over at once.
    b.release("acme").await.unwrap();
    assert!(!b.holds("acme", Hold::Keep));
    assert_eq!(a.keep_leases().await.unwrap(), ["acme"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn integrations_spread_over_the_instances_alive() {
    let db = ScratchDatabase::new().await;
    let ttl = Duration::from_secs(5);
    let tenants = ["t1", "t2", "t3", "t4"];
    let a = instance(&db, ttl).await;
    for t in tenants {
        a.append(t, vec![event(1)]).await.unwrap();
    }
    assert_eq!(
        a.keep_leases().await.unwrap().len(),
        4,
        "alone, a takes every integration"
    );
    // b comes up: its first round counts it as alive, and every lease is taken.
    let b = instance(&db, ttl).await;
    assert!(b.keep_leases().await.unwrap().is_empty());
    // a's next round finds it holds more than its share; between batches it gives up what is
    // beyond it, and b takes what is free.
    a.keep_leases().await.unwrap();
    let kept: Vec<&str> = tenants
        .into_iter()
        .filter(|t| a.holds(t, Hold::Next))
        .collect();
    assert_eq!(kept.len(), 2, "{kept:?}");
    a.keep_leases().await.unwrap();
    assert_eq!(b.keep_leases().await.unwrap().len(), 2);
    let mut held = (0, 0);
    for t in tenants {
        let (by_a, by_b) = (a.holds(t, Hold::Keep), b.holds(t, Hold::Keep));
        assert!(by_a != by_b, "{t}: exactly one holder");
        held.0 += usize::from(by_a);
        held.1 += usize::from(by_b);
    }
    assert_eq!(held, (2, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_starting_together_migrate_once() {
    let db = ScratchDatabase::new().await;
    let starts: Vec<_> = (0..4)
        .map(|_| {
            let url = db.url.clone();
            tokio::spawn(async move {
                PostgresSpool::connect(PostgresOptions::new(url), BacklogLimits::default()).await
            })
        })
        .collect();
    for start in starts {
        start.await.unwrap().unwrap();
    }
    let (client, connection) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let versions: Vec<i32> = client
        .query("SELECT version FROM spool_migrations ORDER BY version", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(versions, [1, 2, 3, 4, 5]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_url_or_a_server_away_is_a_clear_error_without_the_password() {
    let err = PostgresSpool::connect(
        PostgresOptions::new("postgres://evo:hunter2-secret@127.0.0.1:1/spool"),
        BacklogLimits::default(),
    )
    .await
    .unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(!text.contains("hunter2"), "{text}");
    assert!(text.contains("spool storage error"), "{text}");
    let err = PostgresSpool::connect(
        PostgresOptions::new("postgres://evo:hunter2-secret@127.0.0.1:5432/x?sslmode=bogus"),
        BacklogLimits::default(),
    )
    .await
    .unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(
        !text.contains("hunter2") && text.contains("invalid"),
        "{text}"
    );
    let options = PostgresOptions::new("postgres://evo:hunter2-secret@db/spool");
    assert!(!format!("{options:?}").contains("hunter2"));
}

// The holder killed with SIGKILL and the other instance taking over: `tests/lease_takeover.rs`
// at the root, where the instances are `evo-siem sender` processes.

/// The spool's database gone: ingest is refused with 503 and `Retry-After` (the platform sends
/// it again), never acknowledged, and the sender keeps running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_is_refused_with_503_while_the_spool_cannot_commit() {
    let db = ScratchDatabase::new().await;
    let dir = tempfile::tempdir().unwrap();
    let config = pg_sender(&dir, &db, "http://127.0.0.1:9/webhook");
    let sender = Sender::start(&config).await.unwrap();
    let ingest = || {
        reqwest::Client::new()
            .post(format!(
                "http://{}/v1/tenants/acme/audit-events",
                sender.addr()
            ))
            .bearer_auth("ingest-token")
            .body(crate::common::event_json(1, "Create user").to_string())
            .send()
    };
    assert_eq!(ingest().await.unwrap().status(), 202);
    drop(db); // Dropped with its connections: every statement now fails.
    let refused = ingest().await.unwrap();
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.headers()["retry-after"], "5");
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "storage");
    sender.shutdown().await;
}

/// `sslmode=require` means a verified certificate: the local server's self-signed one is refused
/// with a clear error, instead of an encrypted connection to whoever answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sslmode_require_verifies_the_servers_certificate() {
    let db = ScratchDatabase::new().await;
    let (client, connection) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let ssl: String = client.query_one("SHOW ssl", &[]).await.unwrap().get(0);
    let separator = if db.url.contains('?') { '&' } else { '?' };
    let result = PostgresSpool::connect(
        PostgresOptions::new(format!("{}{separator}sslmode=require", db.url)),
        BacklogLimits::default(),
    )
    .await;
    // Either way the connection is never made without a certificate this machine trusts.
    let err = result
        .expect_err("no trusted certificate on the test server")
        .to_string();
    if ssl == "on" {
        assert!(err.to_lowercase().contains("certificate"), "{err}");
    } else {
        assert!(
            err.to_lowercase().contains("tls") || err.contains("SSL"),
            "{err}"
        );
    }
}

/// The default `sslmode` (`prefer`) encrypts whenever the server offers TLS; `disable` does not;
/// `verify-full` is accepted and, like `require`, never connects without a certificate this
/// machine trusts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sslmode_prefer_encrypts_and_verify_full_verifies() {
    let db = ScratchDatabase::new().await;
    let (client, connection) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let ssl: String = client.query_one("SHOW ssl", &[]).await.unwrap().get(0);
    let separator = if db.url.contains('?') { '&' } else { '?' };
    let with = |mode: &str| PostgresOptions::new(format!("{}{separator}sslmode={mode}", db.url));

    let default = PostgresSpool::connect(
        PostgresOptions::new(db.url.clone()),
        BacklogLimits::default(),
    )
    .await
    .unwrap();
    assert_eq!(
        default.encrypted().await.unwrap(),
        ssl == "on",
        "server ssl={ssl}"
    );
    let plain = PostgresSpool::connect(with("disable"), BacklogLimits::default())
        .await
        .unwrap();
    assert!(!plain.encrypted().await.unwrap());
    let err = PostgresSpool::connect(with("verify-full"), BacklogLimits::default())
        .await
        .expect_err("no trusted certificate on the test server")
        .to_string()
        .to_lowercase();
    assert!(
        err.contains("certificate") || err.contains("tls") || err.contains("ssl"),
        "{err}"
    );
}

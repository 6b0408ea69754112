//! Several relays behind one load balancer share their deduplication on Redis
//! (`scripts/services.sh` starts one on 127.0.0.1:6379; `EVO_SIEM_REDIS_URL` points elsewhere).

use crate::common::{deliver, events, relay_from_toml};

fn redis_url() -> String {
    evo_siem_test_services::redis().expect("Redis for the relay's dedup tests");
    std::env::var("EVO_SIEM_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_relays_on_one_redis_forward_each_event_once_and_release_on_failure() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = format!("evo-siem-relay-test:{}:", uuid::Uuid::new_v4());
    let config = |name: &str, extra: &str| {
        format!(
            "[dedup]\nbackend = \"redis\"\nurl_env = \"REDIS_URL\"\nprefix = \"{prefix}\"\n\
             [[output]]\ntype = \"file\"\npath = \"{}\"\n{extra}",
            dir.path().join(format!("{name}.ndjson")).display()
        )
    };
    let url = redis_url();
    let vars = [("REDIS_URL", url.as_str())];
    let (a, _) = relay_from_toml(dir.path(), &config("a", ""), &vars).await;
    // Relay b has a second output that is down: syslog on a port nobody listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let broken =
        format!("[[output]]\ntype = \"syslog\"\naddress = \"{closed}\"\ntimeout_ms = 500\n");
    let (b, _) = relay_from_toml(dir.path(), &config("b", &broken), &vars).await;

    let first = events(3);
    let (status, answer) = deliver(&a.webhook_url(), &first).await;
    assert_eq!(
        (status, answer.as_str()),
        (200, r#"{"accepted":3,"duplicates":0}"#)
    );
    // The same events through the other relay: duplicates, forwarded nowhere.
    let (status, answer) = deliver(&b.webhook_url(), &first).await;
    assert_eq!(
        (status, answer.as_str()),
        (200, r#"{"accepted":0,"duplicates":3}"#)
    );

    // New events fail on b; its claims in Redis are released, so a takes them at once.
    let second = events(2);
    let (status, _) = deliver(&b.webhook_url(), &second).await;
    assert_eq!(status, 503);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let (status, answer) = deliver(&a.webhook_url(), &second).await;
    assert_eq!(
        (status, answer.as_str()),
        (200, r#"{"accepted":2,"duplicates":0}"#)
    );
    let lines = std::fs::read_to_string(dir.path().join("a.ndjson")).unwrap();
    assert_eq!(lines.lines().count(), 5);
}

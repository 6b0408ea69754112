//! Tokens, passwords and URLs with credentials appear in no log line, at DEBUG, even when the
//! destination refuses them.
//!
//! A test binary of its own: tracing caches each log call site's interest process-wide, so a
//! scoped subscriber in a binary whose other tests run (and log) on other threads at the same
//! time may miss lines, and the check that the expected lines are there would fail at random.

#[path = "it/common.rs"]
#[allow(dead_code)]
mod common;
#[path = "it/fakes.rs"]
#[allow(dead_code)]
mod fakes;

use common::{deliver, events, relay_from_toml};
use fakes::{EsState, HecState, elasticsearch, hec};
use std::io::Write;
use std::sync::{Arc, Mutex};

/// A `MakeWriter` into a shared buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Self;
    fn make_writer(&'a self) -> Self {
        self.clone()
    }
}

// One thread: every task of the relay, and of its HTTP clients, logs into this test's
// subscriber.
#[tokio::test(flavor = "current_thread")]
async fn refused_credentials_never_reach_the_logs() {
    const TOKEN: &str = "hec-token-4f1d9a7e-never-logged";
    const PASSWORD: &str = "es-password-never-logged";
    const SECRET: &str = "redis-password-never-logged";
    let logs = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("debug")
        .with_writer(logs.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let (hec_url, _) = hec(HecState {
        token: "another-token".into(),
        ..HecState::default()
    })
    .await;
    let (es_url, _) = elasticsearch(EsState {
        authorization: "Basic another".into(),
        ..EsState::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let outputs = format!(
        "[[output]]\ntype = \"splunk_hec\"\nurl = \"{hec_url}\"\ntoken_env = \"HEC_TOKEN\"\n\
         [[output]]\ntype = \"elasticsearch\"\nurl = \"{es_url}\"\nindex = \"evo\"\nusername = \"elastic\"\npassword_env = \"ES_PASSWORD\"\n"
    );
    let vars = [("HEC_TOKEN", TOKEN), ("ES_PASSWORD", PASSWORD)];
    let (relay, _) = relay_from_toml(dir.path(), &outputs, &vars).await;
    let (status, answer) = deliver(&relay.webhook_url(), &events(2)).await;
    assert_eq!(status, 503, "{answer}");
    assert!(
        answer.contains("splunk_hec (auth)") && answer.contains("elasticsearch (auth)"),
        "{answer}"
    );
    relay.shutdown().await.unwrap();

    // A Redis URL with a password that Redis refuses (it has none set here) or that cannot
    // connect: the relay refuses the delivery, and says why without the URL.
    evo_siem_test_services::redis().expect("Redis for the relay's dedup test");
    let redis =
        std::env::var("EVO_SIEM_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".into());
    let redis = redis.replacen("redis://", &format!("redis://:{SECRET}@"), 1);
    let toml = format!(
        "[dedup]\nbackend = \"redis\"\nurl_env = \"REDIS_URL\"\nprefix = \"evo-siem-relay-test:{}:\"\n{outputs}",
        uuid::Uuid::new_v4()
    );
    let (relay, _) = relay_from_toml(
        dir.path(),
        &toml,
        &[vars[0], vars[1], ("REDIS_URL", &redis)],
    )
    .await;
    let (status, redis_answer) = deliver(&relay.webhook_url(), &events(2)).await;
    assert_eq!(status, 503, "{redis_answer}");
    relay.shutdown().await.unwrap();

    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(!text.is_empty());
    for secret in [
        TOKEN,
        PASSWORD,
        SECRET,
        "ZWxhc3RpYzplcy1wYXNzd29yZC1uZXZlci1sb2dnZWQ=",
    ] {
        assert!(!text.contains(secret), "{secret} in the logs:\n{text}");
    }
    assert!(
        text.contains("splunk_hec") && text.contains("HEC code 4"),
        "{text}"
    );
    assert!(text.contains("dedup_unavailable"), "{text}");
    for answer in [answer, redis_answer] {
        assert!(!answer.contains(TOKEN) && !answer.contains(PASSWORD) && !answer.contains(SECRET));
    }
}

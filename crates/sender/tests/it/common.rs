//! Helpers shared by the test modules.

use std::sync::{Arc, Mutex, OnceLock};

/// Every log line of this test binary, at every level, as text (spans with their fields).
pub(crate) fn logs() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writer = buffer.clone();
        // Plain text: a workspace build turns on tracing-subscriber's colours (its `ansi`
        // feature), which would split `status=200` with escape codes.
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || Capture(writer.clone()))
            .finish();
        let _ = tracing::subscriber::set_global_default(subscriber);
        buffer
    })
}

/// What [`logs`] has captured so far.
pub(crate) fn logged() -> String {
    String::from_utf8_lossy(&logs().lock().unwrap()).into_owned()
}

struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A realistic audit event; `n` is kept in `data.seq` and in the actor's name so that tests can
/// tell events apart and check their order.
pub(crate) fn event_json(n: usize, action: &str) -> serde_json::Value {
    serde_json::json!({
        "event_type": "create", "table": "events", "timestamp": "2024-01-15T10:30:00.000Z",
        "data": {
            "uuid": uuid::Uuid::new_v4().to_string(), "action": action, "status": "Success",
            "actor": {"kind": "User", "name": format!("user{n}@example.com")},
            "origin": {"hostname": "DESKTOP-ABC", "ipaddr": "192.0.2.1"},
            "target": {"kind": "User", "name": "user@example.com"},
            "ts": 1_706_000_000_123_456_789_i64 + n as i64, "created_at": 1_706_000_000_123_456_789_i64,
            "seq": n,
        },
    })
}

/// A PostgreSQL database of its own for one test, dropped when the test ends.
pub(crate) struct ScratchDatabase {
    /// Kept so that the database lives as long as the test.
    _db: evo_siem_sender::spool::scratch::ScratchDatabase,
    /// The URL of the new database.
    pub(crate) url: String,
}

impl ScratchDatabase {
    /// On the local server, started first if it is down (`evo_siem_test_services`).
    pub(crate) async fn new() -> Self {
        tokio::task::spawn_blocking(evo_siem_test_services::postgres)
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("PostgreSQL for the tests: {e}"));
        let inner = evo_siem_sender::spool::scratch::ScratchDatabase::create()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        Self {
            url: inner.url().to_owned(),
            _db: inner,
        }
    }
}

/// The secrets key the tests seal stored secrets with (base64 of 32 bytes).
pub(crate) const SECRETS_KEY: &str = "ZXZvLXNpZW0gdGVzdCBrZXkgMzIgYnl0ZXMgbG9uZyE=";

/// Writes [`SECRETS_KEY`] into `dir` and returns the `[secrets]` table naming it.
pub(crate) fn secrets_table(dir: &std::path::Path) -> String {
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("secrets-key");
    std::fs::write(&path, SECRETS_KEY).unwrap();
    format!("[secrets]\nkey_file = \"{}\"\n", path.display())
}

/// A sender configuration on the spool in `db`, with `acme` delivering to `webhook` (no linger),
/// its ingest token `ingest-token`, leases of `lease_ttl_ms`.
pub(crate) fn pg_sender_config(
    dir: &tempfile::TempDir,
    db: &ScratchDatabase,
    webhook: &str,
    lease_ttl_ms: u64,
) -> evo_siem_sender::service::Config {
    std::fs::write(dir.path().join("token"), "ingest-token").unwrap();
    std::fs::write(dir.path().join("spool-url"), &db.url).unwrap();
    toml::from_str(&format!(
        r#"
        listen = "127.0.0.1:0"
        data_dir = "{dir}"
        ingest_token_file = "{dir}/token"
        allow_private_targets = ["127.0.0.1/32"]
        [spool]
        backend = "postgres"
        url_file = "{dir}/spool-url"
        lease_ttl_ms = {lease_ttl_ms}
        {secrets}
        [[integration]]
        tenant = "acme"
        webhook_url = "{webhook}"
        linger_ms = 0
        "#,
        dir = dir.path().display(),
        secrets = secrets_table(dir.path()),
    ))
    .unwrap()
}

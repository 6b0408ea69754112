//! Helpers shared by the test modules.

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
///
/// The server is the one `scripts/services.sh` starts (`EVO_SIEM_TEST_POSTGRES` overrides the
/// maintenance URL, `postgres://postgres@127.0.0.1:5432/postgres` by default).
pub(crate) struct ScratchDatabase {
    admin: String,
    name: String,
    /// The URL of the new database.
    pub(crate) url: String,
}

fn admin_url() -> String {
    std::env::var("EVO_SIEM_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

async fn admin_client(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| {
            panic!("PostgreSQL is not reachable at {url} ({e}); run `bash scripts/services.sh`")
        });
    tokio::spawn(connection);
    client
}

impl ScratchDatabase {
    pub(crate) async fn new() -> Self {
        let admin = admin_url();
        let name = format!("evo_siem_test_{}", uuid::Uuid::new_v4().simple());
        admin_client(&admin)
            .await
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        let mut url = url::Url::parse(&admin).unwrap();
        url.set_path(&name);
        Self {
            admin,
            name,
            url: url.to_string(),
        }
    }
}

impl Drop for ScratchDatabase {
    fn drop(&mut self) {
        let (admin, name) = (self.admin.clone(), self.name.clone());
        // Drop cannot await; a thread with its own runtime can, whatever runtime the test had.
        let _ = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(async {
                    admin_client(&admin)
                        .await
                        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await
                })
        })
        .join();
    }
}

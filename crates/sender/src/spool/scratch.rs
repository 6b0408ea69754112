//! [`ScratchDatabase`]: a PostgreSQL database of its own for one test or benchmark run, dropped
//! afterwards, so that runs on one server never see each other's spool.

use super::SpoolError;

/// The maintenance URL used when `EVO_SIEM_TEST_POSTGRES` is unset: the server that
/// `scripts/services.sh` starts.
pub const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A database created for one run and dropped (connections and all) when this value is dropped.
#[derive(Debug)]
pub struct ScratchDatabase {
    admin: String,
    name: String,
    url: String,
}

async fn connect(url: &str) -> Result<tokio_postgres::Client, SpoolError> {
    let (client, connection) = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        tokio_postgres::connect(url, tokio_postgres::NoTls),
    )
    .await
    .map_err(|_| SpoolError::Timeout { what: "PostgreSQL" })?
    .map_err(|source| SpoolError::PostgresStep {
        what: "PostgreSQL is not reachable (`bash scripts/services.sh` starts it)",
        source,
    })?;
    tokio::spawn(connection);
    Ok(client)
}

impl ScratchDatabase {
    /// Creates a database with a fresh name on the server of `EVO_SIEM_TEST_POSTGRES` (or
    /// [`DEFAULT_ADMIN_URL`]), which must be a `postgres://` URL of a role allowed to create
    /// databases.
    pub async fn create() -> Result<Self, SpoolError> {
        let admin = std::env::var("EVO_SIEM_TEST_POSTGRES")
            .unwrap_or_else(|_| DEFAULT_ADMIN_URL.to_owned());
        Self::create_on(&admin).await
    }

    /// Creates a database with a fresh name on the server `admin` reaches.
    pub async fn create_on(admin: &str) -> Result<Self, SpoolError> {
        // Like the spool's own connection string, the URL may hold a password: the error
        // says only that it is invalid.
        let mut url = url::Url::parse(admin).map_err(|_| SpoolError::InvalidConnectionString)?;
        let name = format!("evo_siem_test_{}", uuid::Uuid::new_v4().simple());
        connect(admin)
            .await?
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .map_err(|source| SpoolError::PostgresStep {
                what: "cannot create a database",
                source,
            })?;
        url.set_path(&name);
        Ok(Self {
            admin: admin.to_owned(),
            name,
            url: url.to_string(),
        })
    }

    /// The connection URL of the new database.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for ScratchDatabase {
    fn drop(&mut self) {
        let (admin, name) = (self.admin.clone(), self.name.clone());
        // Drop cannot await; a thread with its own runtime can, inside or outside a runtime.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(async {
                connect(&admin)
                    .await
                    .map_err(|e| e.to_string())?
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await
                    .map_err(|e| e.to_string())
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            tracing::warn!(database = self.name, "scratch database not dropped");
        }
    }
}

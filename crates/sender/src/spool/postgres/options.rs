//! [`PostgresOptions`]: how to reach PostgreSQL and how to share it, and how the connection
//! string becomes the driver's settings.
//!
//! The connection string may hold a password: it is never logged, never shown in `Debug`, and
//! never quoted in an error.

use crate::spool::SpoolError;
use std::fmt;
use std::time::Duration;

/// How to reach PostgreSQL and how to share it.
#[derive(Clone)]
pub struct PostgresOptions {
    /// The connection string: a `postgres://` URL or libpq `key=value` pairs. It may hold a
    /// password, so it is never logged or shown in `Debug`.
    pub url: String,
    /// Connections in the pool. Default: 8.
    pub pool_size: usize,
    /// How long a lease lasts unless renewed. Default: 10 s. An instance that dies holds its
    /// integrations for at most this long.
    pub lease_ttl: Duration,
    /// Bound on every statement and on waiting for a connection. Default: 10 s.
    pub timeout: Duration,
    /// This instance's name in the lease table. Default: a fresh random one per start, so that a
    /// restarted instance never mistakes its predecessor's leases for its own.
    pub instance: String,
}

impl PostgresOptions {
    /// Options with the defaults, for `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            pool_size: 8,
            lease_ttl: Duration::from_secs(10),
            timeout: Duration::from_secs(10),
            instance: format!("sender-{}", uuid::Uuid::new_v4().simple()),
        }
    }
}

impl fmt::Debug for PostgresOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresOptions")
            .field("url", &"<redacted>")
            .field("pool_size", &self.pool_size)
            .field("lease_ttl", &self.lease_ttl)
            .field("timeout", &self.timeout)
            .field("instance", &self.instance)
            .finish()
    }
}

impl PostgresOptions {
    /// The driver's settings from the connection string, bounded by [`Self::timeout`], with
    /// this program's name unless the string names one.
    pub(super) fn config(&self) -> Result<tokio_postgres::Config, SpoolError> {
        // libpq's `verify-ca` and `verify-full` are not in tokio-postgres's vocabulary: both
        // are `require` here, which verifies the certificate and the host name.
        let url = self
            .url
            .replace("sslmode=verify-full", "sslmode=require")
            .replace("sslmode=verify-ca", "sslmode=require");
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|_| SpoolError::InvalidConnectionString)?;
        config.connect_timeout(self.timeout);
        if config.get_application_name().is_none() {
            config.application_name("evo-siem-sender");
        }
        Ok(config)
    }
}

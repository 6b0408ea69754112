//! The sender's TOML configuration (`evo-siem sender --config FILE`).
//!
//! ```toml
//! listen = "127.0.0.1:7700"                  # ingest API
//! data_dir = "evo-siem-data"                 # spool and state
//! ingest_token_env = "EVO_SIEM_INGEST_TOKEN" # bearer token the platform uses to ingest
//!                                            # (or ingest_token_file = "/run/secrets/ingest")
//! allow_private_targets = ["127.0.0.1/32"]   # outbound-guard exceptions, for local testing only
//!
//! [[integration]]
//! tenant = "acme"
//! webhook_url = "https://siem.example.com/evo"
//! signing_secret_env = "ACME_SIEM_SECRET"    # optional (or signing_secret_file = "...")
//! headers = { Authorization = "Splunk 00000000-0000-0000-0000-000000000000" }  # optional
//! excluded_actions = ["User login"]          # optional
//! max_batch_events = 500                     # optional
//! max_batch_bytes = 1048576                  # optional
//! linger_ms = 1000                           # optional
//!
//! [delivery]                                 # optional; the defaults are shown
//! connect_timeout_ms = 5000                  # TCP and TLS connection
//! attempt_timeout_ms = 30000                 # a whole attempt, response included
//! retry_base_ms = 1000                       # backoff: full jitter in [0, base * 2^(n-1)] ...
//! retry_cap_ms = 600000                      # ... capped here
//!
//! [spool]                                    # optional; the default is SQLite in data_dir
//! backend = "postgres"                       # "sqlite" or "postgres" (several instances)
//! url_env = "EVO_SIEM_SPOOL_URL"             # postgres: variable holding the connection URL
//!                                            # (or url_file = "/run/secrets/spool-url")
//! pool_size = 8                              # postgres: connections per instance
//! lease_ttl_ms = 10000                       # postgres: how long a dead instance holds its
//!                                            # integrations before another takes over
//!
//! [metrics]                                  # optional
//! max_tenant_series = 50                     # integrations with series of their own, at most
//! ```
//!
//! Secrets are never in the file: the file names environment variables that hold them.

use crate::Integration;
use crate::admin::MetricsConfig;
use crate::dispatch::DispatchSettings;
use crate::registry::{IntegrationSettings, RegistryError};
use crate::retry::Backoff;
use crate::spool::{BacklogLimits, PostgresOptions};
use ipnet::IpNet;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Why the configuration cannot be used. Messages name the field or variable, never a secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has unknown or mistyped keys.
    #[error("{0}")]
    Parse(#[from] toml::de::Error),
    /// An environment variable the file names is unset or empty.
    #[error("environment variable {var} ({what}) is not set")]
    MissingEnv {
        /// The variable.
        var: String,
        /// What it should hold.
        what: &'static str,
    },
    /// Neither or both of `ingest_token_env` and `ingest_token_file` are set.
    #[error("set exactly one of ingest_token_env and ingest_token_file")]
    NoIngestToken,
    /// A secret file is empty.
    #[error("the secret file {path} is empty")]
    EmptySecretFile {
        /// The file.
        path: PathBuf,
    },
    /// The `[spool]` table is incomplete or out of range.
    #[error("[spool]: {0}")]
    Spool(&'static str),
    /// A `[delivery]` setting is out of range.
    #[error("[delivery]: {0}")]
    Delivery(String),
    /// A setting is out of range or refused.
    #[error("integration {tenant}: {reason}")]
    Invalid {
        /// The tenant of the integration.
        tenant: String,
        /// What is wrong.
        reason: String,
    },
}

fn default_max_events() -> u64 {
    BacklogLimits::default().max_events
}

fn default_max_bytes() -> u64 {
    BacklogLimits::default().max_bytes
}

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address of the ingest API.
    pub listen: SocketAddr,
    /// Directory of the spool and state.
    pub data_dir: PathBuf,
    /// Environment variable holding the platform's ingest bearer token.
    pub ingest_token_env: Option<String>,
    /// Or a file holding it (a mounted secret); one trailing newline is ignored.
    pub ingest_token_file: Option<PathBuf>,
    /// Private networks the outbound guard lets through (local testing only).
    #[serde(default)]
    pub allow_private_targets: Vec<IpNet>,
    /// Most events queued per integration before ingest is refused with 503.
    #[serde(default = "default_max_events")]
    pub backlog_max_events: u64,
    /// Most bytes queued per integration before ingest is refused with 503.
    #[serde(default = "default_max_bytes")]
    pub backlog_max_bytes: u64,
    /// Timeouts and retry pacing.
    #[serde(default)]
    pub delivery: DeliveryConfig,
    /// Where the spool lives.
    #[serde(default)]
    pub spool: SpoolConfig,
    /// What `/metrics` shows.
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// The integrations this file seeds.
    #[serde(default, rename = "integration")]
    pub integrations: Vec<IntegrationConfig>,
}

/// The `[delivery]` table: timeouts and retry pacing, the same for every integration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliveryConfig {
    /// Time to establish the TCP and TLS connection, in milliseconds.
    pub connect_timeout_ms: u64,
    /// Time for a whole attempt, response included, in milliseconds.
    pub attempt_timeout_ms: u64,
    /// The backoff's base delay, in milliseconds.
    pub retry_base_ms: u64,
    /// The backoff's cap, in milliseconds.
    pub retry_cap_ms: u64,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        let dispatch = DispatchSettings::default();
        let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        Self {
            connect_timeout_ms: millis(dispatch.connect_timeout),
            attempt_timeout_ms: millis(dispatch.timeout),
            retry_base_ms: 1_000,
            retry_cap_ms: 600_000,
        }
    }
}

impl DeliveryConfig {
    /// The backoff, checked.
    pub fn backoff(&self) -> Result<Backoff, ConfigError> {
        Backoff::new(
            Duration::from_millis(self.retry_base_ms),
            Duration::from_millis(self.retry_cap_ms),
        )
        .map_err(|e| ConfigError::Delivery(e.to_string()))
    }

    /// The dispatcher's settings, with `allowed` as the outbound guard's exceptions.
    pub fn dispatch(&self, allowed: Vec<IpNet>) -> Result<DispatchSettings, ConfigError> {
        if self.connect_timeout_ms == 0 || self.attempt_timeout_ms == 0 {
            return Err(ConfigError::Delivery(
                "timeouts must be greater than zero".into(),
            ));
        }
        Ok(DispatchSettings {
            connect_timeout: Duration::from_millis(self.connect_timeout_ms),
            timeout: Duration::from_millis(self.attempt_timeout_ms),
            allowed,
        })
    }
}

/// The `[spool]` table: which engine keeps the queue.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpoolConfig {
    /// `sqlite` (the default: one instance, a file in `data_dir`) or `postgres` (shared by
    /// several instances).
    #[serde(default)]
    pub backend: SpoolBackend,
    /// `postgres`: the environment variable holding the connection URL, so that no password
    /// sits in the file.
    pub url_env: Option<String>,
    /// `postgres`: or a file holding it (a mounted secret); one trailing newline is ignored.
    pub url_file: Option<PathBuf>,
    /// `postgres`: connections per instance.
    #[serde(default = "default_pool_size")]
    pub pool_size: usize,
    /// `postgres`: how long a lease on an integration lasts unless renewed, in milliseconds.
    #[serde(default = "default_lease_ttl_ms")]
    pub lease_ttl_ms: u64,
}

/// The spool engines.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SpoolBackend {
    /// Embedded SQLite, for one instance.
    #[default]
    Sqlite,
    /// PostgreSQL, for several instances.
    Postgres,
}

fn default_pool_size() -> usize {
    8
}

fn default_lease_ttl_ms() -> u64 {
    10_000
}

impl Default for SpoolConfig {
    fn default() -> Self {
        Self {
            backend: SpoolBackend::Sqlite,
            url_env: None,
            url_file: None,
            pool_size: default_pool_size(),
            lease_ttl_ms: default_lease_ttl_ms(),
        }
    }
}

impl SpoolConfig {
    /// The PostgreSQL options, with the URL read from its variable; `None` for SQLite.
    pub fn postgres(&self) -> Result<Option<PostgresOptions>, ConfigError> {
        if self.backend != SpoolBackend::Postgres {
            return Ok(None);
        }
        let url = match (&self.url_env, &self.url_file) {
            (Some(var), None) => env(var, "the spool's PostgreSQL URL")?,
            (None, Some(path)) => read_secret(path)?,
            _ => {
                return Err(ConfigError::Spool(
                    "backend = \"postgres\" needs exactly one of url_env and url_file",
                ));
            }
        };
        if self.lease_ttl_ms < 300 || self.pool_size == 0 {
            return Err(ConfigError::Spool(
                "lease_ttl_ms must be at least 300 and pool_size at least 1",
            ));
        }
        let mut options = PostgresOptions::new(url);
        options.pool_size = self.pool_size;
        options.lease_ttl = Duration::from_millis(self.lease_ttl_ms);
        Ok(Some(options))
    }
}

/// One `[[integration]]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntegrationConfig {
    /// The tenant; also the path segment of its ingest URL.
    pub tenant: String,
    /// Where to deliver.
    pub webhook_url: String,
    /// Environment variable holding the signing secret; no signature when absent.
    pub signing_secret_env: Option<String>,
    /// Or a file holding it (a mounted secret); one trailing newline is ignored.
    pub signing_secret_file: Option<PathBuf>,
    /// Authorization headers, sent verbatim.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Audit actions not forwarded (exact match).
    #[serde(default)]
    pub excluded_actions: Vec<String>,
    /// Most events per batch.
    pub max_batch_events: Option<usize>,
    /// Most bytes per batch body.
    pub max_batch_bytes: Option<usize>,
    /// Most time the oldest event waits for a batch to fill, in milliseconds.
    pub linger_ms: Option<u64>,
}

fn env(var: &str, what: &'static str) -> Result<String, ConfigError> {
    std::env::var(var)
        .ok()
        .filter(|v| !v.is_empty())
        .ok_or_else(|| ConfigError::MissingEnv {
            var: var.to_owned(),
            what,
        })
}

/// A secret from a file, without one trailing newline; an empty one is refused.
fn read_secret(path: &Path) -> Result<String, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.into(),
        source,
    })?;
    let secret = text.strip_suffix('\n').unwrap_or(&text);
    let secret = secret.strip_suffix('\r').unwrap_or(secret);
    if secret.is_empty() {
        return Err(ConfigError::EmptySecretFile { path: path.into() });
    }
    Ok(secret.to_owned())
}

impl Config {
    /// Reads and parses `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        Ok(toml::from_str(&text)?)
    }

    /// The ingest token, from its environment variable or its file.
    pub fn ingest_token(&self) -> Result<String, ConfigError> {
        match (&self.ingest_token_env, &self.ingest_token_file) {
            (Some(var), None) => env(var, "the ingest token"),
            (None, Some(path)) => read_secret(path),
            _ => Err(ConfigError::NoIngestToken),
        }
    }

    /// The spool's backlog bounds.
    pub fn backlog_limits(&self) -> BacklogLimits {
        BacklogLimits {
            max_events: self.backlog_max_events,
            max_bytes: self.backlog_max_bytes,
        }
    }

    /// Every integration's settings, with secrets read from their variables or files.
    pub fn settings(&self) -> Result<Vec<IntegrationSettings>, ConfigError> {
        self.integrations
            .iter()
            .map(IntegrationConfig::settings)
            .collect()
    }

    /// Every integration, checked.
    pub fn integrations(&self) -> Result<Vec<Integration>, ConfigError> {
        self.settings()?
            .iter()
            .map(|s| {
                s.build(&self.allow_private_targets).map_err(|e| match e {
                    RegistryError::Invalid { tenant, reason } => {
                        ConfigError::Invalid { tenant, reason }
                    }
                    other => ConfigError::Invalid {
                        tenant: s.tenant.clone(),
                        reason: other.to_string(),
                    },
                })
            })
            .collect()
    }
}

impl IntegrationConfig {
    fn settings(&self) -> Result<IntegrationSettings, ConfigError> {
        let signing_secret = match (&self.signing_secret_env, &self.signing_secret_file) {
            (Some(var), None) => Some(env(var, "a signing secret")?),
            (None, Some(path)) => Some(read_secret(path)?),
            (None, None) => None,
            (Some(_), Some(_)) => {
                return Err(ConfigError::Invalid {
                    tenant: self.tenant.clone(),
                    reason: "set signing_secret_env or signing_secret_file, not both".into(),
                });
            }
        };
        Ok(IntegrationSettings {
            tenant: self.tenant.clone(),
            webhook_url: self.webhook_url.clone(),
            signing_secret,
            next_signing_secret: None,
            headers: self.headers.clone(),
            excluded_actions: self.excluded_actions.clone(),
            max_batch_events: self.max_batch_events,
            max_batch_bytes: self.max_batch_bytes,
            linger_ms: self.linger_ms,
        })
    }
}

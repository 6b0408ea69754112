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
//! headers = { Authorization = { env = "ACME_SIEM_AUTH" } }  # optional: a value, { env = "VAR" }
//!                                            # or { file = "/run/secrets/acme-auth" }
//! signature_schemes = ["evo"]                # optional: "evo", "standard-webhooks" or both
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
//! retry_floor_ms = 1000                      # no retry of a batch sooner than this, whatever
//!                                            # the receiver answers (Retry-After: 0 included)
//!
//! [secrets]                                  # the key sealing signing secrets and header
//! key_env = "EVO_SIEM_SECRETS_KEY"           # values at rest: 32 bytes in base64 or hex (or
//!                                            # key_file = "/run/secrets/evo-siem-key");
//!                                            # needed once any integration has a secret
//!
//! [spool]                                    # optional; the default is SQLite in data_dir
//! backend = "postgres"                       # "sqlite" or "postgres" (several instances)
//! url_env = "EVO_SIEM_SPOOL_URL"             # postgres: variable holding the connection URL
//!                                            # (or url_file = "/run/secrets/spool-url")
//! pool_size = 8                              # postgres: connections per instance
//! lease_ttl_ms = 10000                       # postgres: how long a dead instance holds its
//!                                            # integrations before another takes over
//! max_staleness_ms = 30000                   # postgres: admin requests get 503 once this
//!                                            # instance's copy of the shared tokens and
//!                                            # settings could not be refreshed for this long
//!
//! [listener]                                 # optional; the defaults are shown
//! max_connections = 4096                     # open connections at once; more wait in the
//!                                            # kernel's accept backlog until one closes
//! header_timeout_ms = 10000                  # a request head must arrive within this time of
//!                                            # the connection opening or of the previous
//!                                            # response: also the idle keep-alive timeout
//! body_timeout_ms = 10000                    # grace for a request body, after which ...
//! body_min_bytes_per_sec = 16384             # ... it must average at least this rate (408)
//!
//! [metrics]                                  # optional
//! max_tenant_series = 50                     # integrations with series of their own, at most
//! ```
//!
//! Request bodies are limited per endpoint (413 above): ingest 16 MiB, a settings PUT 64 KiB,
//! the other requests 48 KiB (`service::limits`). A 422 of a settings PUT lists at most the
//! first 100 invalid fields.
//!
//! Secrets need not be in the file: it names the environment variables (or files) that hold
//! them, header values included. A tenant named by two `[[integration]]` tables is refused.

use crate::Integration;
use crate::api::MetricsConfig;
use crate::dispatch::DispatchSettings;
use crate::retry::{Backoff, DEFAULT_RETRY_FLOOR};
use crate::secrets::SecretsKey;
use crate::settings::IntegrationSettings;
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
    /// The file is not valid TOML or has unknown or mistyped keys. The message says what and
    /// where, but never quotes the line: a header value on it may be a credential.
    #[error("{message} (line {line}, column {column})")]
    Parse {
        /// What is wrong (the TOML parser's message, without the quoted line).
        message: String,
        /// The line (1-based) where it was found.
        line: usize,
        /// The column (1-based, in characters) where it was found.
        column: usize,
    },
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
    /// A `[listener]` setting is out of range.
    #[error("[listener]: {0}")]
    Listener(&'static str),
    /// A `[delivery]` setting is out of range.
    #[error("[delivery]: {0}")]
    Delivery(String),
    /// Two `[[integration]]` tables name the same tenant: refused rather than merged, since
    /// which one should win is the operator's call.
    #[error("integration {tenant} is configured twice{at}")]
    DuplicateTenant {
        /// The tenant.
        tenant: String,
        /// Where, when the text is known: ` (lines 4 and 12)`.
        at: String,
    },
    /// The `[secrets]` key is set twice, or is not a 32-byte key.
    #[error("[secrets]: {0}")]
    Secrets(String),
    /// `data_dir` cannot be created or its permissions set.
    #[error("data_dir {path}: {source}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// An integration's settings are refused, with every invalid field: the check is the admin
    /// API's, so the file cannot hold what a PUT would refuse.
    #[error(transparent)]
    Settings(#[from] crate::settings::InvalidSettings),
    /// An integration table is contradictory (a secret from both a variable and a file).
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
    /// What one client may hold of the ingest and admin listener.
    #[serde(default)]
    pub listener: ListenerConfig,
    /// The key sealing secrets at rest.
    #[serde(default)]
    pub secrets: SecretsConfig,
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
    /// The shortest wait before any retry of a batch, in milliseconds, whatever the receiver
    /// answered (`Retry-After: 0`, a past date, an instant failure). An operator setting: a
    /// tenant's endpoint must not be able to keep the sender re-sending a batch in a tight loop.
    /// Tests lower it to run fast; zero is refused.
    pub retry_floor_ms: u64,
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
            retry_floor_ms: u64::try_from(DEFAULT_RETRY_FLOOR.as_millis()).unwrap_or(u64::MAX),
        }
    }
}

impl DeliveryConfig {
    /// The backoff, with its floor, checked.
    pub fn backoff(&self) -> Result<Backoff, ConfigError> {
        Backoff::new(
            Duration::from_millis(self.retry_base_ms),
            Duration::from_millis(self.retry_cap_ms),
        )
        .and_then(|b| b.with_floor(Duration::from_millis(self.retry_floor_ms)))
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

/// The `[listener]` table: bounds on what clients of the ingest and admin API may hold. Anyone
/// who can reach the listener could otherwise open connections that send nothing, or trickle a
/// request, until the sender runs out of file descriptors or tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ListenerConfig {
    /// Most connections open at once. Further connections are not accepted until one closes:
    /// they wait in the kernel's accept backlog (and time out there on the client's side), so
    /// that a flood costs the sender no task and no descriptor.
    pub max_connections: usize,
    /// Time for a request head to arrive, in milliseconds, counted from the connection's
    /// opening or from the end of its previous response: bounds both a slow head and an idle
    /// keep-alive connection.
    pub header_timeout_ms: u64,
    /// Time a request body may take before the minimum rate applies, in milliseconds.
    pub body_timeout_ms: u64,
    /// The average rate, from the request head on, below which a body is cut off with 408 once
    /// `body_timeout_ms` has passed.
    pub body_min_bytes_per_sec: u64,
}

impl Default for ListenerConfig {
    fn default() -> Self {
        Self {
            max_connections: 4096,
            header_timeout_ms: 10_000,
            body_timeout_ms: 10_000,
            body_min_bytes_per_sec: 16 * 1024,
        }
    }
}

impl ListenerConfig {
    /// Refuses zero for any bound: zero would refuse every connection or request.
    pub fn check(&self) -> Result<(), ConfigError> {
        if self.max_connections == 0
            || self.header_timeout_ms == 0
            || self.body_timeout_ms == 0
            || self.body_min_bytes_per_sec == 0
        {
            return Err(ConfigError::Listener(
                "max_connections, header_timeout_ms, body_timeout_ms and body_min_bytes_per_sec must be greater than zero",
            ));
        }
        Ok(())
    }
}

/// The `[secrets]` table: where the key sealing signing secrets and header values at rest
/// ([`crate::secrets`]) is read from. Like every other secret, it is never in the file itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretsConfig {
    /// The environment variable holding the key (32 bytes in base64 or hex).
    pub key_env: Option<String>,
    /// Or a file holding it (a mounted secret).
    pub key_file: Option<PathBuf>,
}

impl SecretsConfig {
    /// The key, read from its variable or file; `None` when neither is set. Errors name the
    /// variable or file, never the value.
    pub fn key(&self) -> Result<Option<SecretsKey>, ConfigError> {
        let (text, from) = match (&self.key_env, &self.key_file) {
            (None, None) => return Ok(None),
            (Some(var), None) => (
                env(var, "the secrets key")?,
                format!("environment variable {var}"),
            ),
            (None, Some(path)) => (read_secret(path)?, format!("file {}", path.display())),
            (Some(_), Some(_)) => {
                return Err(ConfigError::Secrets(
                    "set key_env or key_file, not both".into(),
                ));
            }
        };
        SecretsKey::parse(&text)
            .map(Some)
            .map_err(|e| ConfigError::Secrets(format!("{from}: {e}")))
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
    /// `postgres`: how stale this instance's copy of the shared admin tokens and settings may
    /// grow, in milliseconds, while refreshing it keeps failing. Past it, admin requests are
    /// refused with 503 `shared_state_stale` rather than judged by tokens that may have been
    /// revoked meanwhile.
    #[serde(default = "default_max_staleness_ms")]
    pub max_staleness_ms: u64,
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

fn default_max_staleness_ms() -> u64 {
    30_000
}

impl Default for SpoolConfig {
    fn default() -> Self {
        Self {
            backend: SpoolBackend::Sqlite,
            url_env: None,
            url_file: None,
            pool_size: default_pool_size(),
            lease_ttl_ms: default_lease_ttl_ms(),
            max_staleness_ms: default_max_staleness_ms(),
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
        if self.max_staleness_ms < 1_000 {
            // Copies are refreshed every second: less would refuse admin requests between two
            // successful refreshes.
            return Err(ConfigError::Spool("max_staleness_ms must be at least 1000"));
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
    /// Authorization headers, sent verbatim: each a value, or where to read it.
    #[serde(default)]
    pub headers: BTreeMap<String, HeaderValueConfig>,
    /// How deliveries are signed: `"evo"`, `"standard-webhooks"` or both (default `["evo"]`).
    #[serde(default = "crate::settings::default_signature_schemes")]
    pub signature_schemes: Vec<String>,
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

/// One header's value in `[[integration]]`: given in the file, or read at start-up from an
/// environment variable or a file (one trailing newline ignored), as signing secrets are, so
/// that a bearer token need not sit in the configuration file.
///
/// ```toml
/// headers = { Authorization = { env = "ACME_SIEM_AUTH" }, X-Tenant = "acme" }
/// # or: headers = { Authorization = { file = "/run/secrets/acme-auth" } }
/// ```
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(
    untagged,
    expecting = "a header value: a string, { env = \"VAR\" } or { file = \"PATH\" }"
)]
pub enum HeaderValueConfig {
    /// The value itself.
    Value(String),
    /// The environment variable holding it.
    Env {
        /// The variable's name.
        env: String,
    },
    /// The file holding it.
    File {
        /// The file's path.
        file: PathBuf,
    },
}

impl std::fmt::Debug for HeaderValueConfig {
    /// Never the value: an `Authorization` header is a credential.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Value(_) => f.write_str("Value(<redacted>)"),
            Self::Env { env } => f.debug_struct("Env").field("env", env).finish(),
            Self::File { file } => f.debug_struct("File").field("file", file).finish(),
        }
    }
}

impl From<String> for HeaderValueConfig {
    fn from(value: String) -> Self {
        Self::Value(value)
    }
}

impl HeaderValueConfig {
    /// The value, read from its variable or file; errors name the header of `tenant`, never a
    /// value.
    fn resolve(&self, tenant: &str, header: &str) -> Result<String, ConfigError> {
        let invalid = |reason: String| ConfigError::Invalid {
            tenant: tenant.to_owned(),
            reason: format!("headers.{header}: {reason}"),
        };
        match self {
            Self::Value(value) => Ok(value.clone()),
            Self::Env { env: var } => std::env::var(var)
                .ok()
                .filter(|v| !v.is_empty())
                .ok_or_else(|| invalid(format!("environment variable {var} is not set"))),
            Self::File { file } => read_secret(file).map_err(|e| invalid(e.to_string())),
        }
    }
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

/// A parse error without the line the TOML parser quotes (`toml::de::Error`'s `Display` shows
/// it, header values included): its message, and where.
fn parse_error(text: &str, error: &toml::de::Error) -> ConfigError {
    let offset = error.span().map_or(0, |span| span.start);
    let line_start = text
        .get(..offset)
        .and_then(|before| before.rfind('\n'))
        .map_or(0, |at| at + 1);
    let column = text
        .get(line_start..offset)
        .map_or(0, |before| before.chars().count())
        + 1;
    ConfigError::Parse {
        message: error.message().trim_end().to_owned(),
        line: line_of(text, offset),
        column,
    }
}

/// The line (1-based) of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset).map_or(0, |t| t.matches('\n').count()) + 1
}

/// The first tenant named by two `[[integration]]` tables of `text`, with both lines.
fn duplicate_tenant_lines(text: &str) -> Option<(String, usize, usize)> {
    use toml::de::{DeTable, DeValue};
    let document = DeTable::parse(text).ok()?;
    let integrations = document.get_ref().get("integration")?;
    let DeValue::Array(tables) = integrations.get_ref() else {
        return None;
    };
    // Byte offsets, turned into line numbers only for the pair found: counting lines for every
    // tenant would make a file of 10,000 integrations quadratic to check.
    let mut first_seen: BTreeMap<&str, usize> = BTreeMap::new();
    for table in tables.iter() {
        let DeValue::Table(table) = table.get_ref() else {
            continue;
        };
        let Some(tenant) = table.get("tenant") else {
            continue;
        };
        let DeValue::String(name) = tenant.get_ref() else {
            continue;
        };
        let at = tenant.span().start;
        if let Some(first) = first_seen.insert(name, at) {
            return Some((name.to_string(), line_of(text, first), line_of(text, at)));
        }
    }
    None
}

impl Config {
    /// Reads and parses `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        Self::parse(&text)
    }

    /// Parses the text of a configuration file. Beyond what serde checks, a tenant named by two
    /// `[[integration]]` tables is refused with both line numbers.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let config: Self = toml::from_str(text).map_err(|e| parse_error(text, &e))?;
        if let Some((tenant, first, second)) = duplicate_tenant_lines(text) {
            return Err(ConfigError::DuplicateTenant {
                tenant,
                at: format!(" (lines {first} and {second})"),
            });
        }
        // Parsed from a table that the scan above cannot see: still refused, without lines.
        config.check_duplicates()?;
        Ok(config)
    }

    /// Refuses a tenant named by two integrations: merging them silently would leave one of
    /// them unapplied, unnoticed.
    fn check_duplicates(&self) -> Result<(), ConfigError> {
        let mut seen = std::collections::BTreeSet::new();
        match self
            .integrations
            .iter()
            .find(|i| !seen.insert(i.tenant.as_str()))
        {
            Some(twice) => Err(ConfigError::DuplicateTenant {
                tenant: twice.tenant.clone(),
                at: String::new(),
            }),
            None => Ok(()),
        }
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

    /// Every integration's settings, with secrets and header values read from their variables
    /// or files, each checked as the admin API checks a PUT ([`IntegrationSettings::check`]).
    /// A tenant named twice is refused.
    pub fn settings(&self) -> Result<Vec<IntegrationSettings>, ConfigError> {
        Ok(self.checked()?.into_iter().map(|(s, _)| s).collect())
    }

    /// Every integration, checked.
    pub fn integrations(&self) -> Result<Vec<Integration>, ConfigError> {
        Ok(self.checked()?.into_iter().map(|(_, i)| i).collect())
    }

    fn checked(&self) -> Result<Vec<(IntegrationSettings, Integration)>, ConfigError> {
        self.check_duplicates()?;
        self.integrations
            .iter()
            .map(|config| {
                let settings = config.settings()?;
                let integration = settings.check(&self.allow_private_targets)?;
                Ok((settings, integration))
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
            headers: self
                .headers
                .iter()
                .map(|(name, value)| Ok((name.clone(), value.resolve(&self.tenant, name)?)))
                .collect::<Result<_, ConfigError>>()?,
            signature_schemes: self.signature_schemes.clone(),
            excluded_actions: self.excluded_actions.clone(),
            max_batch_events: self.max_batch_events,
            max_batch_bytes: self.max_batch_bytes,
            linger_ms: self.linger_ms,
        })
    }
}

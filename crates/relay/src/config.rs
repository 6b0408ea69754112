//! The relay's TOML configuration (`evo-siem relay --config relay.toml`), in the sender's style:
//! typed, unknown keys refused, and no secret in the file, only the names of the environment
//! variables or files that hold them.
//!
//! ```toml
//! listen = "0.0.0.0:8090"                     # the webhook, /healthz and /metrics
//! path = "/webhook"                           # optional; the webhook's path
//! signing_secret_env = ["EVO_SIEM_SECRET"]    # one or several (rotation); and/or
//! # signing_secret_file = ["/run/secrets/evo-siem"]
//! replay_window_secs = 300                    # optional; refuse older or newer batches
//! max_body_bytes = 4194304                    # optional; 413 above
//! request_timeout_ms = 20000                  # optional; every output must acknowledge a
//!                                             # batch within this, or the answer is 503
//! retry_after_secs = 5                        # optional; the Retry-After of a 503
//! max_concurrent_requests = 64                # optional; more at once are answered 503
//! max_connections = 1024                      # optional; open connections at once (more wait
//!                                             # in the kernel's backlog)
//! dead_letter_path = "dead-letter.ndjson"     # optional; events an output refused for good
//!
//! [dedup]                                     # optional
//! backend = "memory"                          # "memory" (default) or "redis"
//! # url_env = "EVO_SIEM_REDIS_URL"            # redis: the variable holding redis://...
//! # url_file = "/run/secrets/redis-url"       # or a file holding it
//! # prefix = "evo-siem:relay:"                # redis: key prefix
//! # capacity = 1000000                        # memory: UUIDs remembered at most
//! # ttl_secs = 86400                          # how long a UUID is remembered
//!
//! [[output]]
//! type = "file"                               # NDJSON, one event a line, fsync'd
//! path = "/var/log/evo/audit.ndjson"
//!
//! [[output]]
//! type = "syslog"                             # RFC 5424 over TCP, octet counting (RFC 6587)
//! address = "127.0.0.1:6514"
//! tls = true                                  # optional; ca_file, server_name
//!
//! [[output]]
//! type = "splunk_hec"
//! url = "https://splunk.example.com:8088"
//! token_env = "SPLUNK_HEC_TOKEN"              # or token_file
//!
//! [[output]]
//! type = "elasticsearch"                      # also OpenSearch
//! url = "https://es.example.com:9200"
//! index = "evo-audit"
//! api_key_env = "ES_API_KEY"                  # or username + password_env / password_file
//! ```
//!
//! Every output also takes `name` (its label in metrics and logs; the type by default),
//! `format` (`"raw"`, the default: each event's JSON as received; or `"ocsf"`: its OCSF
//! mapping, [`crate::ocsf`]) and, for network outputs, `timeout_ms` (one
//! call) and `ca_file` (a PEM bundle trusted in addition to the system's roots).
//!
//! [`RelayConfig::parse`] checks the file; [`RelayConfig::signing_secrets`] and the outputs'
//! builders read the secrets through an environment lookup passed in (the process's in
//! production, a map in tests). Errors name the key, variable or file, never a value.

use evo_siem_protocol::Secret;
use serde::{Deserialize, Deserializer};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Looks an environment variable up: `std::env::var` in production ([`process_env`]), a map in
/// tests (which must not change the process's environment).
pub type EnvLookup<'a> = &'a (dyn Fn(&str) -> Option<String> + Sync);

/// The process's environment, for [`EnvLookup`].
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Why the configuration cannot be used. Messages name the key, variable or file, never a
/// secret's value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read {path}: {error}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why (not a `source`, so that a report of the chain says it once).
        error: std::io::Error,
    },
    /// The file is not valid TOML, or has unknown, missing or mistyped keys.
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
    /// A secret file is empty.
    #[error("the secret file {path} is empty")]
    EmptySecretFile {
        /// The file.
        path: PathBuf,
    },
    /// A top-level setting is out of range or missing.
    #[error("{0}")]
    Invalid(String),
    /// The `[dedup]` table is incomplete or out of range.
    #[error("[dedup]: {0}")]
    Dedup(String),
    /// An `[[output]]` table is incomplete or out of range.
    #[error("output {output}: {reason}")]
    Output {
        /// The output's name.
        output: String,
        /// What is wrong.
        reason: String,
    },
}

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelayConfig {
    /// Address of the webhook, `/healthz` and `/metrics`.
    pub listen: SocketAddr,
    /// The webhook's path. Default `/webhook`.
    #[serde(default = "default_path")]
    pub path: String,
    /// Environment variables each holding a signing secret; any one may match (rotation).
    #[serde(default, deserialize_with = "one_or_many")]
    pub signing_secret_env: Vec<String>,
    /// Files each holding a signing secret (one trailing newline ignored).
    #[serde(default, deserialize_with = "one_or_many")]
    pub signing_secret_file: Vec<PathBuf>,
    /// A batch whose signed `generated_at` is further than this from now is refused (401).
    #[serde(default = "default_replay_window_secs")]
    pub replay_window_secs: u64,
    /// Largest request body, in bytes (413 above).
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// The time budget of one delivery, in milliseconds: reading the body and every output's
    /// acknowledgement. Keep it below the sender's attempt timeout (30 s by default).
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: u64,
    /// The `Retry-After` of a 503, in seconds.
    #[serde(default = "default_retry_after_secs")]
    pub retry_after_secs: u32,
    /// Deliveries processed at once; more are answered 503 at once (the relay keeps no queue).
    #[serde(default = "default_max_concurrent_requests")]
    pub max_concurrent_requests: usize,
    /// Connections open at once; further ones wait in the kernel's accept backlog. A connection
    /// idle (nothing read or written) for twice `request_timeout_ms`, and at least a minute, is
    /// closed.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Where events an output refused for good are written, with the reason (NDJSON).
    #[serde(default = "default_dead_letter_path")]
    pub dead_letter_path: PathBuf,
    /// The deduplication store.
    #[serde(default)]
    pub dedup: DedupConfig,
    /// Where events go; at least one.
    #[serde(default, rename = "output")]
    pub outputs: Vec<OutputConfig>,
}

fn default_path() -> String {
    "/webhook".into()
}
fn default_replay_window_secs() -> u64 {
    evo_siem_protocol::DEFAULT_TOLERANCE.as_secs()
}
fn default_max_body_bytes() -> usize {
    evo_siem_protocol::DEFAULT_MAX_BODY_BYTES
}
fn default_request_timeout_ms() -> u64 {
    20_000
}
fn default_retry_after_secs() -> u32 {
    5
}
fn default_max_concurrent_requests() -> usize {
    64
}
fn default_max_connections() -> usize {
    1024
}
fn default_dead_letter_path() -> PathBuf {
    "dead-letter.ndjson".into()
}

/// A string or a list of strings: `signing_secret_env = "VAR"` or `= ["OLD", "NEW"]`.
fn one_or_many<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged, expecting = "a string or a list of strings")]
    enum OneOrMany<T> {
        One(T),
        Many(Vec<T>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(one) => vec![one],
        OneOrMany::Many(many) => many,
    })
}

/// The `[dedup]` table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DedupConfig {
    /// `memory` (one relay) or `redis` (several relays behind one load balancer).
    #[serde(default)]
    pub backend: DedupBackend,
    /// `redis`: the environment variable holding the URL (`redis://[:password@]host:port/db`).
    pub url_env: Option<String>,
    /// `redis`: or a file holding it.
    pub url_file: Option<PathBuf>,
    /// `redis`: the key prefix. Default `evo-siem:relay:`.
    pub prefix: Option<String>,
    /// `memory`: how many UUIDs are remembered at most. Default 1,000,000.
    pub capacity: Option<usize>,
    /// How long a UUID is remembered, in seconds. Default 24 hours: keep it longer than the
    /// sender's retry horizon.
    pub ttl_secs: Option<u64>,
}

impl Default for DedupConfig {
    fn default() -> Self {
        Self {
            backend: DedupBackend::Memory,
            url_env: None,
            url_file: None,
            prefix: None,
            capacity: None,
            ttl_secs: None,
        }
    }
}

/// The deduplication engines.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DedupBackend {
    /// In this process: one relay.
    #[default]
    Memory,
    /// Redis, shared by several relays.
    Redis,
}

/// How an output writes each event.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// The event's JSON exactly as received.
    #[default]
    Raw,
    /// The event mapped to its OCSF class ([`crate::ocsf`]), the original kept in `raw_data`.
    Ocsf,
}

/// One `[[output]]` table, by its `type`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OutputConfig {
    /// NDJSON to a local file.
    File(FileConfig),
    /// RFC 5424 syslog over TCP (optionally TLS).
    Syslog(SyslogConfig),
    /// Splunk's HTTP Event Collector.
    SplunkHec(SplunkHecConfig),
    /// Elasticsearch (or OpenSearch) `_bulk`.
    Elasticsearch(ElasticsearchConfig),
}

impl OutputConfig {
    /// The configured name, if any.
    pub fn name(&self) -> Option<&str> {
        match self {
            Self::File(c) => c.name.as_deref(),
            Self::Syslog(c) => c.name.as_deref(),
            Self::SplunkHec(c) => c.name.as_deref(),
            Self::Elasticsearch(c) => c.name.as_deref(),
        }
    }

    /// The `type`, as written in the file.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::File(_) => "file",
            Self::Syslog(_) => "syslog",
            Self::SplunkHec(_) => "splunk_hec",
            Self::Elasticsearch(_) => "elasticsearch",
        }
    }

    /// The output's format.
    pub fn format(&self) -> Format {
        match self {
            Self::File(c) => c.format,
            Self::Syslog(c) => c.format,
            Self::SplunkHec(c) => c.format,
            Self::Elasticsearch(c) => c.format,
        }
    }
}

/// `type = "file"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Label in metrics and logs.
    pub name: Option<String>,
    /// `raw` or `ocsf`.
    #[serde(default)]
    pub format: Format,
    /// The file, created if missing, appended to; reopened on SIGHUP (after logrotate).
    pub path: PathBuf,
}

/// `type = "syslog"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyslogConfig {
    /// Label in metrics and logs.
    pub name: Option<String>,
    /// `raw` or `ocsf`.
    #[serde(default)]
    pub format: Format,
    /// `host:port` of the collector.
    pub address: String,
    /// Whether to speak TLS (RFC 5425).
    #[serde(default)]
    pub tls: bool,
    /// With TLS: a PEM bundle of CAs trusted in addition to the system's.
    pub ca_file: Option<PathBuf>,
    /// With TLS: the name the certificate must carry. Default: the address's host.
    pub server_name: Option<String>,
    /// The syslog facility: `kern`, `user`, ..., `audit`, `local0` to `local7`. Default
    /// `local0`.
    pub facility: Option<String>,
    /// RFC 5424 APP-NAME. Default `evo-siem`.
    pub app_name: Option<String>,
    /// RFC 5424 HOSTNAME. Default: this machine's name.
    pub hostname: Option<String>,
    /// Time to connect (TLS handshake included) and to write one batch, in milliseconds.
    #[serde(default = "default_output_timeout_ms")]
    pub timeout_ms: u64,
}

/// `type = "splunk_hec"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplunkHecConfig {
    /// Label in metrics and logs.
    pub name: Option<String>,
    /// `raw` or `ocsf`.
    #[serde(default)]
    pub format: Format,
    /// The HEC base URL, `https://host:8088`; `/services/collector/event` is appended.
    pub url: String,
    /// The environment variable holding the HEC token.
    pub token_env: Option<String>,
    /// Or a file holding it.
    pub token_file: Option<PathBuf>,
    /// The index; the token's default when absent.
    pub index: Option<String>,
    /// The sourcetype. Default `evo:siem:audit` (`evo:siem:ocsf` with `format = "ocsf"`).
    pub sourcetype: Option<String>,
    /// The source; HEC's default when absent.
    pub source: Option<String>,
    /// The host field; HEC's default when absent.
    pub host: Option<String>,
    /// A PEM bundle of CAs trusted in addition to the system's.
    pub ca_file: Option<PathBuf>,
    /// Time for one HTTP call, in milliseconds.
    #[serde(default = "default_output_timeout_ms")]
    pub timeout_ms: u64,
    /// Largest request body; a batch is split into several requests above it. Default
    /// 1,000,000 (HEC's historical `max_content_length`).
    #[serde(default = "default_hec_max_request_bytes")]
    pub max_request_bytes: usize,
}

/// `type = "elasticsearch"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ElasticsearchConfig {
    /// Label in metrics and logs.
    pub name: Option<String>,
    /// `raw` or `ocsf`.
    #[serde(default)]
    pub format: Format,
    /// The cluster's base URL, `https://host:9200`; `/_bulk` is appended.
    pub url: String,
    /// The index (or data stream) written to.
    pub index: String,
    /// The environment variable holding an API key (the encoded form ES returns).
    pub api_key_env: Option<String>,
    /// Or a file holding it.
    pub api_key_file: Option<PathBuf>,
    /// Basic authentication: the user.
    pub username: Option<String>,
    /// Basic authentication: the environment variable holding the password.
    pub password_env: Option<String>,
    /// Or a file holding it.
    pub password_file: Option<PathBuf>,
    /// An ingest pipeline to run the documents through.
    pub pipeline: Option<String>,
    /// A PEM bundle of CAs trusted in addition to the system's.
    pub ca_file: Option<PathBuf>,
    /// Time for one HTTP call, in milliseconds.
    #[serde(default = "default_output_timeout_ms")]
    pub timeout_ms: u64,
    /// Largest `_bulk` body; a batch is split above it. Default 10 MB.
    #[serde(default = "default_es_max_request_bytes")]
    pub max_request_bytes: usize,
}

fn default_output_timeout_ms() -> u64 {
    10_000
}
fn default_hec_max_request_bytes() -> usize {
    1_000_000
}
fn default_es_max_request_bytes() -> usize {
    10_000_000
}

/// A credential read from the environment or a file: never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretString(String);

impl SecretString {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value; only for building the request that carries it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretString(<redacted>)")
    }
}

/// A secret from an environment variable or a file: exactly one of the two must be given.
pub(crate) fn secret_from(
    env: EnvLookup<'_>,
    var: Option<&str>,
    file: Option<&Path>,
    what: &'static str,
) -> Result<Option<SecretString>, ConfigError> {
    match (var, file) {
        (None, None) => Ok(None),
        (Some(var), None) => env_secret(env, var, what).map(Some),
        (None, Some(path)) => read_secret(path).map(|s| Some(SecretString(s))),
        (Some(_), Some(_)) => Err(ConfigError::Invalid(format!(
            "{what}: set the environment variable or the file, not both"
        ))),
    }
}

fn env_secret(
    env: EnvLookup<'_>,
    var: &str,
    what: &'static str,
) -> Result<SecretString, ConfigError> {
    env(var)
        .filter(|v| !v.is_empty())
        .map(SecretString)
        .ok_or_else(|| ConfigError::MissingEnv {
            var: var.to_owned(),
            what,
        })
}

/// A secret from a file, without one trailing newline; an empty one is refused.
fn read_secret(path: &Path) -> Result<String, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
        path: path.into(),
        error,
    })?;
    let secret = text.strip_suffix('\n').unwrap_or(&text);
    let secret = secret.strip_suffix('\r').unwrap_or(secret);
    if secret.is_empty() {
        return Err(ConfigError::EmptySecretFile { path: path.into() });
    }
    Ok(secret.to_owned())
}

impl RelayConfig {
    /// Reads and parses `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: path.into(),
            error,
        })?;
        Self::parse(&text)
    }

    /// Parses and checks the text of a configuration file (secrets are not read yet).
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let config: Self = toml::from_str(text)?;
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<(), ConfigError> {
        let invalid = |m: &str| Err(ConfigError::Invalid(m.to_owned()));
        if !self.path.starts_with('/') {
            return invalid("path must start with /");
        }
        if matches!(self.path.as_str(), "/healthz" | "/metrics") {
            return invalid("path cannot be /healthz or /metrics");
        }
        if self.signing_secret_env.is_empty() && self.signing_secret_file.is_empty() {
            return invalid(
                "no signing secret: set signing_secret_env or signing_secret_file (the relay only accepts signed batches)",
            );
        }
        if self.replay_window_secs == 0 {
            return invalid("replay_window_secs must be greater than zero");
        }
        if self.max_body_bytes == 0
            || self.request_timeout_ms == 0
            || self.max_concurrent_requests == 0
            || self.max_connections == 0
        {
            return invalid(
                "max_body_bytes, request_timeout_ms, max_concurrent_requests and max_connections must be greater than zero",
            );
        }
        if self.outputs.is_empty() {
            return invalid("no [[output]]: configure at least one");
        }
        let names = self.output_names();
        for (i, name) in names.iter().enumerate() {
            if names[..i].contains(name) {
                return invalid(&format!("two outputs are named {name:?}"));
            }
        }
        match self.dedup.backend {
            DedupBackend::Memory => {
                if self.dedup.url_env.is_some()
                    || self.dedup.url_file.is_some()
                    || self.dedup.prefix.is_some()
                {
                    return Err(ConfigError::Dedup(
                        "url_env, url_file and prefix are for backend = \"redis\"".into(),
                    ));
                }
            }
            DedupBackend::Redis => {
                if self.dedup.url_env.is_some() == self.dedup.url_file.is_some() {
                    return Err(ConfigError::Dedup(
                        "backend = \"redis\" needs exactly one of url_env and url_file".into(),
                    ));
                }
                if self.dedup.capacity.is_some() {
                    return Err(ConfigError::Dedup(
                        "capacity is for backend = \"memory\"".into(),
                    ));
                }
            }
        }
        if self.dedup.capacity == Some(0) || self.dedup.ttl_secs == Some(0) {
            return Err(ConfigError::Dedup(
                "capacity and ttl_secs must be greater than zero".into(),
            ));
        }
        for (output, name) in self.outputs.iter().zip(&names) {
            crate::outputs::check(output).map_err(|reason| ConfigError::Output {
                output: name.clone(),
                reason,
            })?;
        }
        Ok(())
    }

    /// Each output's name: the configured one, or its type (with `-2`, `-3`, ... when several
    /// outputs of one type have no name).
    pub fn output_names(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::with_capacity(self.outputs.len());
        for output in &self.outputs {
            let name = match output.name() {
                Some(name) => name.to_owned(),
                None => {
                    let kind = output.kind();
                    let earlier = self
                        .outputs
                        .iter()
                        .take(names.len())
                        .filter(|o| o.name().is_none() && o.kind() == kind)
                        .count();
                    if earlier == 0 {
                        kind.to_owned()
                    } else {
                        format!("{kind}-{}", earlier + 1)
                    }
                }
            };
            names.push(name);
        }
        names
    }

    /// The signing secrets, from their variables and files, in the order given.
    pub fn signing_secrets(&self, env: EnvLookup<'_>) -> Result<Vec<Secret>, ConfigError> {
        let mut secrets = Vec::new();
        for var in &self.signing_secret_env {
            secrets.push(Secret::new(env_secret(env, var, "a signing secret")?.0));
        }
        for path in &self.signing_secret_file {
            secrets.push(Secret::new(read_secret(path)?));
        }
        Ok(secrets)
    }

    /// The replay window.
    pub fn replay_window(&self) -> Duration {
        Duration::from_secs(self.replay_window_secs)
    }

    /// The time budget of one delivery.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    /// The Redis URL, for `backend = "redis"`.
    pub fn redis_url(&self, env: EnvLookup<'_>) -> Result<Option<SecretString>, ConfigError> {
        if self.dedup.backend != DedupBackend::Redis {
            return Ok(None);
        }
        secret_from(
            env,
            self.dedup.url_env.as_deref(),
            self.dedup.url_file.as_deref(),
            "the Redis URL",
        )
    }
}

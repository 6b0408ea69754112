//! Where events go: one small trait, [`Output`], and its four implementations.
//!
//! The relay hands each output the new events of one delivery as [`Record`]s and waits for the
//! output's answer before it answers the sender:
//!
//! - `Ok(Sent)`: every record was acknowledged by the destination (written and flushed to disk,
//!   written to the syslog socket, accepted by HEC, created or already present in
//!   Elasticsearch), except those listed in [`Sent::refused`], which the destination refuses
//!   for good and the relay writes to its dead-letter file;
//! - `Err(OutputError)`: the destination did not acknowledge them all in time; the relay
//!   answers 503 and releases its deduplication claims, so the sender's retry brings the events
//!   back (to every output: duplicates are possible, a loss is not).
//!
//! An output keeps no queue: it sends what it is given, within the deadline it is given.

mod elasticsearch;
mod file;
mod http;
mod splunk_hec;
mod syslog;

pub use elasticsearch::ElasticsearchOutput;
pub use file::FileOutput;
pub use splunk_hec::SplunkHecOutput;
pub use syslog::SyslogOutput;

use crate::ConfigError;
use crate::config::{EnvLookup, Format, OutputConfig};
use evo_siem_protocol::Event;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use tokio::time::Instant;
use uuid::Uuid;

/// The future an [`Output`] returns: boxed, so that outputs live behind `Arc<dyn Output>`.
pub type OutputFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, OutputError>> + Send + 'a>>;

/// One event, as an output receives it.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    /// The parsed event (for metadata such as its time, type and status).
    pub event: &'a Event<'a>,
    /// The event's identity (Elasticsearch's `_id`): its `data.uuid` when that is a UUID, else a
    /// 128-bit hash of the id ([`evo_siem_protocol::event_key`]), stable across deliveries.
    pub uuid: Uuid,
    /// The event in the output's [`Format`], as one line of JSON: the received text (its line
    /// breaks, which JSON only allows as whitespace, turned into spaces), or its OCSF mapping.
    pub payload: &'a str,
}

/// An output's acknowledgement of a whole slice of records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sent {
    /// The records the destination refuses for good (by index in the slice sent), with its
    /// reason; they go to the dead-letter file. Every other record was acknowledged.
    pub refused: Vec<Refused>,
}

/// A record the destination refuses for good: resending it cannot succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// Its index in the slice sent.
    pub index: usize,
    /// The destination's reason, for the dead-letter file.
    pub reason: String,
}

/// What kind of failure an output met; the `kind` label of the failures metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FailureKind {
    /// The destination could not be reached (DNS, refused or reset connection).
    Connect,
    /// The TLS handshake or the certificate failed.
    Tls,
    /// The destination did not answer within the output's or the delivery's time.
    Timeout,
    /// A local I/O error (the disk, the socket).
    Io,
    /// The destination refused the credentials.
    Auth,
    /// The destination is overloaded (429, 503, HEC code 9, bulk items 429).
    Busy,
    /// Another unexpected HTTP status.
    HttpStatus,
    /// An answer the output cannot read.
    BadResponse,
}

impl FailureKind {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Tls => "tls",
            Self::Timeout => "timeout",
            Self::Io => "io",
            Self::Auth => "auth",
            Self::Busy => "busy",
            Self::HttpStatus => "http_status",
            Self::BadResponse => "bad_response",
        }
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An output did not acknowledge every record. The message describes the destination's
/// answer; it never holds a token, a password or a URL's credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct OutputError {
    /// The kind, for metrics.
    pub kind: FailureKind,
    /// What happened.
    pub message: String,
}

impl OutputError {
    /// An error of `kind`.
    pub fn new(kind: FailureKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// The deadline of the delivery passed.
    pub fn deadline() -> Self {
        Self::new(
            FailureKind::Timeout,
            "not acknowledged within the delivery's time budget",
        )
    }
}

/// A destination for events. Implementations keep no queue and never answer `Ok` for a record
/// the destination has not acknowledged.
pub trait Output: Send + Sync + fmt::Debug + 'static {
    /// The output's name: its label in metrics and logs.
    fn name(&self) -> &str;

    /// Its type, as in the configuration (`file`, `syslog`, ...).
    fn kind(&self) -> &'static str;

    /// The format it wants its records' payloads in.
    fn format(&self) -> Format;

    /// Sends `records` and waits for the destination's acknowledgement, until `deadline` at
    /// the latest (the caller also enforces it, dropping the future).
    fn send<'a>(&'a self, records: &'a [Record<'a>], deadline: Instant) -> OutputFuture<'a, Sent>;

    /// Reopens files after a log rotation (SIGHUP). Nothing for network outputs.
    fn reopen(&self) -> OutputFuture<'_, ()> {
        Box::pin(async { Ok(()) })
    }
}

/// Checks one `[[output]]` table without reading any secret; the reason names the key.
pub(crate) fn check(config: &OutputConfig) -> Result<(), String> {
    match config {
        OutputConfig::File(c) => {
            if c.path.as_os_str().is_empty() {
                return Err("path is empty".into());
            }
            Ok(())
        }
        OutputConfig::Syslog(c) => syslog::check(c),
        OutputConfig::SplunkHec(c) => splunk_hec::check(c),
        OutputConfig::Elasticsearch(c) => elasticsearch::check(c),
    }
}

/// Builds the output a (checked) table describes, reading its secrets through `env`.
pub fn build(
    config: &OutputConfig,
    name: String,
    env: EnvLookup<'_>,
) -> Result<Arc<dyn Output>, ConfigError> {
    let output_error = |reason: String| ConfigError::Output {
        output: name.clone(),
        reason,
    };
    check(config).map_err(output_error)?;
    Ok(match config {
        OutputConfig::File(c) => Arc::new(FileOutput::new(name, c.format, c.path.clone())),
        OutputConfig::Syslog(c) => {
            Arc::new(SyslogOutput::new(name.clone(), c).map_err(output_error)?)
        }
        OutputConfig::SplunkHec(c) => Arc::new(SplunkHecOutput::new(name.clone(), c, env)?),
        OutputConfig::Elasticsearch(c) => Arc::new(ElasticsearchOutput::new(name.clone(), c, env)?),
    })
}

//! `type = "syslog"`: RFC 5424 messages over TCP with octet-counting framing (RFC 6587), or over
//! TLS (RFC 5425, same framing), one message per event:
//!
//! ```text
//! 612 <110>1 2024-01-23T09:33:20.123456Z relay-1 evo-siem 4242 create - {"event_type":"create",...}
//! ```
//!
//! - PRI: the configured facility (default `local0`) and severity `info` (6) for an event whose
//!   `data.status` is `Success`, `notice` (5) otherwise;
//! - TIMESTAMP: the event's `data.ts`, UTC, microseconds (RFC 5424 allows no more);
//! - HOSTNAME: `hostname`, or this machine's name; APP-NAME: `app_name` (default `evo-siem`);
//!   PROCID: the relay's process id; MSGID: the event's `event_type`; no structured data;
//! - MSG: the event's JSON (as received, or its OCSF mapping), without a BOM.
//!
//! One connection is kept open and reused. A batch is acknowledged once all its messages are
//! written to the socket and flushed (through TLS when it is on). Before writing on a kept
//! connection the output checks whether the collector closed it (a restarted rsyslog does), and
//! connects afresh if so, so that a batch is not written into a connection the peer already
//! left. Syslog over TCP has no application acknowledgement: what the collector had buffered but
//! not yet written when it died is lost to it. Use the file output next to it, or a collector
//! with a disk queue, when that matters.

use super::{FailureKind, Output, OutputError, OutputFuture, Record, Sent};
use crate::config::{Format, SyslogConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Mutex;
use tokio::time::Instant;

const FACILITIES: [&str; 24] = [
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv",
    "ftp", "ntp", "audit", "alert", "clock", "local0", "local1", "local2", "local3", "local4",
    "local5", "local6", "local7",
];

fn facility_code(name: &str) -> Option<u8> {
    FACILITIES
        .iter()
        .position(|f| *f == name)
        .and_then(|i| u8::try_from(i).ok())
}

/// `host:port` or `[v6]:port`, split.
fn split_address(address: &str) -> Option<(&str, u16)> {
    let (host, port) = address.rsplit_once(':')?;
    let port = port.parse().ok().filter(|p| *p != 0)?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    (!host.is_empty() && !host.contains(' ')).then_some((host, port))
}

pub(crate) fn check(config: &SyslogConfig) -> Result<(), String> {
    if split_address(&config.address).is_none() {
        return Err(format!("address {:?} is not host:port", config.address));
    }
    if !config.tls && (config.ca_file.is_some() || config.server_name.is_some()) {
        return Err("ca_file and server_name need tls = true".into());
    }
    if let Some(facility) = &config.facility
        && facility_code(facility).is_none()
    {
        return Err(format!(
            "facility {facility:?} is not one of {}",
            FACILITIES.join(", ")
        ));
    }
    for (key, value, max) in [
        ("app_name", config.app_name.as_deref(), 48),
        ("hostname", config.hostname.as_deref(), 255),
    ] {
        if let Some(value) = value
            && (value.is_empty()
                || value.len() > max
                || !value.bytes().all(|b| (33..=126).contains(&b)))
        {
            return Err(format!(
                "{key} must be 1 to {max} printable ASCII characters without spaces"
            ));
        }
    }
    if config.timeout_ms == 0 {
        return Err("timeout_ms must be greater than zero".into());
    }
    Ok(())
}

/// A connection to the collector, plain or TLS.
trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Stream for T {}

/// Forwards events to a syslog collector.
pub struct SyslogOutput {
    name: String,
    format: Format,
    address: String,
    tls: Option<(tokio_rustls::TlsConnector, ServerName<'static>)>,
    facility: u8,
    /// `HOSTNAME APP-NAME PROCID`, ready to splice into each header.
    origin: String,
    timeout: Duration,
    connection: Mutex<Option<Box<dyn Stream>>>,
}

impl fmt::Debug for SyslogOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SyslogOutput")
            .field("name", &self.name)
            .field("address", &self.address)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

/// This machine's name, or RFC 5424's NILVALUE.
fn machine_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty() && h.len() <= 255 && h.bytes().all(|b| (33..=126).contains(&b)))
        .unwrap_or_else(|| "-".into())
}

fn tls_connector(
    config: &SyslogConfig,
    host: &str,
) -> Result<(tokio_rustls::TlsConnector, ServerName<'static>), String> {
    let mut extra = Vec::new();
    if let Some(path) = &config.ca_file {
        for cert in CertificateDer::pem_file_iter(path)
            .map_err(|e| format!("ca_file {}: {e}", path.display()))?
        {
            extra.push(cert.map_err(|e| format!("ca_file {}: {e}", path.display()))?);
        }
        if extra.is_empty() {
            return Err(format!("ca_file {}: no certificate", path.display()));
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier =
        rustls_platform_verifier::Verifier::new_with_extra_roots(extra, Arc::clone(&provider))
            .map_err(|e| format!("TLS roots: {e}"))?;
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    let name = config.server_name.as_deref().unwrap_or(host);
    let server_name = ServerName::try_from(name.to_owned())
        .map_err(|_| format!("server_name {name:?} is not a DNS name or an IP address"))?;
    Ok((tokio_rustls::TlsConnector::from(Arc::new(tls)), server_name))
}

/// Whether the collector closed (or reset) a kept connection. Polls a read once without
/// waiting: end of stream or an error means closed; a collector has nothing to say otherwise,
/// and whatever it said is discarded.
fn peer_closed(stream: &mut dyn Stream) -> bool {
    let mut buf = [0u8; 1024];
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        let mut read = ReadBuf::new(&mut buf);
        match Pin::new(&mut *stream).poll_read(&mut cx, &mut read) {
            Poll::Ready(Ok(())) if read.filled().is_empty() => return true,
            Poll::Ready(Ok(())) => {}
            Poll::Ready(Err(_)) => return true,
            Poll::Pending => return false,
        }
    }
}

/// RFC 5424 TIMESTAMP of `ns` nanoseconds since the epoch, in microseconds; NILVALUE when out
/// of range.
fn timestamp(ns: i64) -> String {
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
    );
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ns))
        .ok()
        .filter(|t| (0..=9999).contains(&t.year()))
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| "-".into())
}

/// RFC 5424 MSGID: printable ASCII, at most 32 characters, NILVALUE when empty.
fn msgid(event_type: &str) -> String {
    let id: String = event_type
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(32)
        .collect();
    if id.is_empty() { "-".into() } else { id }
}

impl SyslogOutput {
    /// The output a (checked) `[[output]]` table describes.
    pub fn new(name: String, config: &SyslogConfig) -> Result<Self, String> {
        check(config)?;
        let Some((host, _)) = split_address(&config.address) else {
            return Err(format!("address {:?} is not host:port", config.address));
        };
        let tls = if config.tls {
            Some(tls_connector(config, host)?)
        } else {
            None
        };
        let facility = config
            .facility
            .as_deref()
            .map_or(Some(16), facility_code)
            .unwrap_or(16);
        let hostname = config.hostname.clone().unwrap_or_else(machine_name);
        let app_name = config.app_name.as_deref().unwrap_or("evo-siem");
        Ok(Self {
            name,
            format: config.format,
            address: config.address.clone(),
            tls,
            facility,
            origin: format!("{hostname} {app_name} {}", std::process::id()),
            timeout: Duration::from_millis(config.timeout_ms),
            connection: Mutex::new(None),
        })
    }

    /// One framed message: `LEN SP <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID - MSG`.
    fn frame(&self, record: &Record<'_>, out: &mut Vec<u8>) {
        let severity = if record.event.data.status == "Success" {
            6
        } else {
            5
        };
        let message = format!(
            "<{}>1 {} {} {} - {}",
            u16::from(self.facility) * 8 + severity,
            timestamp(record.event.data.ts),
            self.origin,
            msgid(&record.event.event_type),
            record.payload
        );
        out.extend_from_slice(message.len().to_string().as_bytes());
        out.push(b' ');
        out.extend_from_slice(message.as_bytes());
    }

    async fn connect(&self) -> Result<Box<dyn Stream>, OutputError> {
        let tcp = TcpStream::connect(self.address.as_str())
            .await
            .map_err(|e| {
                OutputError::new(FailureKind::Connect, format!("{}: {e}", self.address))
            })?;
        let _ = tcp.set_nodelay(true);
        match &self.tls {
            None => Ok(Box::new(tcp)),
            Some((connector, server_name)) => {
                let tls = connector
                    .connect(server_name.clone(), tcp)
                    .await
                    .map_err(|e| {
                        OutputError::new(FailureKind::Tls, format!("{}: {e}", self.address))
                    })?;
                Ok(Box::new(tls))
            }
        }
    }

    /// Writes `frames` on the kept connection, or on a new one; one more try on a new
    /// connection when a kept one fails.
    async fn write(&self, frames: &[u8], deadline: Instant) -> Result<(), OutputError> {
        let mut slot = self.connection.lock().await;
        let mut reused = false;
        if let Some(stream) = slot.as_mut() {
            if peer_closed(stream.as_mut()) {
                tracing::debug!(output = %self.name, "the collector closed the connection; reconnecting");
                *slot = None;
            } else {
                reused = true;
            }
        }
        loop {
            let limit = (Instant::now() + self.timeout).min(deadline);
            let stream = match slot.as_mut() {
                Some(stream) => stream,
                None => {
                    let stream = tokio::time::timeout_at(limit, self.connect())
                        .await
                        .map_err(|_| {
                            OutputError::new(
                                FailureKind::Timeout,
                                format!("connecting to {}", self.address),
                            )
                        })??;
                    slot.insert(stream)
                }
            };
            let written = tokio::time::timeout_at(limit, async {
                stream.write_all(frames).await?;
                stream.flush().await
            })
            .await;
            let err = match written {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(e)) => {
                    OutputError::new(FailureKind::Io, format!("writing to {}: {e}", self.address))
                }
                Err(_) => {
                    OutputError::new(FailureKind::Timeout, format!("writing to {}", self.address))
                }
            };
            // Whatever part of the batch went out, the connection's state is unknown now.
            *slot = None;
            if !reused || Instant::now() >= deadline {
                return Err(err);
            }
            reused = false;
        }
    }
}

impl Output for SyslogOutput {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "syslog"
    }

    fn format(&self) -> Format {
        self.format
    }

    fn send<'a>(&'a self, records: &'a [Record<'a>], deadline: Instant) -> OutputFuture<'a, Sent> {
        Box::pin(async move {
            let mut frames =
                Vec::with_capacity(records.iter().map(|r| r.payload.len() + 128).sum());
            for record in records {
                self.frame(record, &mut frames);
            }
            self.write(&frames, deadline).await?;
            Ok(Sent::default())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_facilities_and_fields() {
        assert_eq!(split_address("127.0.0.1:6514"), Some(("127.0.0.1", 6514)));
        assert_eq!(split_address("[::1]:514"), Some(("::1", 514)));
        assert_eq!(
            split_address("syslog.example.com:601"),
            Some(("syslog.example.com", 601))
        );
        assert_eq!(split_address("127.0.0.1"), None);
        assert_eq!(split_address("127.0.0.1:0"), None);
        assert_eq!(split_address(":514"), None);
        assert_eq!(facility_code("local0"), Some(16));
        assert_eq!(facility_code("audit"), Some(13));
        assert_eq!(facility_code("local8"), None);
        assert_eq!(
            timestamp(1_706_000_000_123_456_789),
            "2024-01-23T08:53:20.123456Z"
        );
        assert_eq!(timestamp(i64::MIN), "1677-09-21T00:12:43.145224Z");
        assert_eq!(msgid("create"), "create");
        assert_eq!(msgid("a b\u{e9}c"), "abc");
        assert_eq!(msgid(""), "-");
        assert_eq!(msgid(&"x".repeat(40)).len(), 32);
    }
}

//! [`Dispatcher`]: one attempt at delivering one batch, through the guarded client.

use super::resolver::GuardedResolver;
use crate::Integration;
use crate::retry::{AttemptResult, parse_retry_after};
use evo_siem_protocol::{
    SignatureScheme, encode_batch_from_text, headers, sign, standard_webhooks,
};
use http::{HeaderValue, header};
use ipnet::IpNet;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use uuid::Uuid;

/// At most this much of a response body is kept for diagnostics.
pub const SNIPPET_BYTES: usize = 512;

/// Timeouts and the outbound guard's allow-list.
#[derive(Debug, Clone)]
pub struct DispatchSettings {
    /// Time to establish the TCP and TLS connection. Default: 5 s.
    pub connect_timeout: Duration,
    /// Time for the whole attempt, response included. Default: 30 s.
    pub timeout: Duration,
    /// Private networks the sender may post to anyway (local testing only). Default: none.
    pub allowed: Vec<IpNet>,
}

impl Default for DispatchSettings {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(30),
            allowed: Vec::new(),
        }
    }
}

/// Why an attempt did not get a 2xx, for diagnosis (status, "Test Saved Webhook", metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The host name did not resolve.
    Dns,
    /// Every address of the host is in a blocked class (the outbound guard).
    Blocked,
    /// The TCP connection was refused or could not be established in time.
    Connect,
    /// The TLS handshake failed (certificate, protocol).
    Tls,
    /// No complete answer within the attempt's timeout.
    Timeout,
    /// The receiver answered with a status other than 2xx.
    HttpStatus,
    /// Another transport failure (a reset connection, a malformed answer).
    Transport,
}

impl FailureKind {
    /// The kind's name in JSON and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Dns => "dns",
            FailureKind::Blocked => "blocked",
            FailureKind::Connect => "connect",
            FailureKind::Tls => "tls",
            FailureKind::Timeout => "timeout",
            FailureKind::HttpStatus => "http_status",
            FailureKind::Transport => "transport",
        }
    }

    /// The kind of a transport error, from the types in its chain of causes (the guard's
    /// [`AllBlocked`](super::AllBlocked), the resolver's [`LookupFailed`](super::LookupFailed),
    /// [`rustls::Error`], the kind of an [`std::io::Error`]) and reqwest's own flags; never from
    /// the words of a message.
    fn of(err: &reqwest::Error) -> Self {
        let mut io_kind = None;
        for cause in causes(err) {
            if cause.is::<super::resolver::AllBlocked>() {
                return FailureKind::Blocked;
            }
            if cause.is::<super::resolver::LookupFailed>() {
                return FailureKind::Dns;
            }
            if cause.is::<rustls::Error>() {
                return FailureKind::Tls;
            }
            if let Some(io) = cause.downcast_ref::<std::io::Error>() {
                io_kind.get_or_insert(io.kind());
            }
        }
        use std::io::ErrorKind;
        if err.is_timeout() || io_kind == Some(ErrorKind::TimedOut) {
            return FailureKind::Timeout;
        }
        let refused = matches!(
            io_kind,
            Some(
                ErrorKind::ConnectionRefused
                    | ErrorKind::HostUnreachable
                    | ErrorKind::NetworkUnreachable
                    | ErrorKind::AddrNotAvailable
            )
        );
        if refused || err.is_connect() {
            FailureKind::Connect
        } else {
            FailureKind::Transport
        }
    }
}

/// `err` and its causes, outermost first. An [`std::io::Error`] wrapping another error reports
/// that error's cause as its `source()`, skipping the wrapped error itself (a `rustls::Error`
/// inside an `io::Error`, say): here the wrapped error comes next instead.
fn causes<'e>(
    err: &'e (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'e (dyn std::error::Error + 'static)> {
    let mut pending = Some(err);
    std::iter::from_fn(move || {
        let cause = pending.take()?;
        let wrapped = cause
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
            .map(|inner| inner as &(dyn std::error::Error + 'static));
        pending = wrapped.or_else(|| cause.source());
        Some(cause)
    })
}

/// What one attempt did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptReport {
    /// The result, for [`classify`](crate::retry::classify).
    pub result: AttemptResult,
    /// Why it failed; `None` for a 2xx.
    pub failure: Option<FailureKind>,
    /// How long the attempt took.
    pub latency: Duration,
    /// A bounded snippet of the response body, or the transport error.
    pub detail: String,
}

/// Sends batches: HTTP/1.1 or 2 over rustls, redirects never followed, proxies never used (the
/// environment's proxy variables are ignored), every address checked.
#[derive(Debug, Clone)]
pub struct Dispatcher {
    client: reqwest::Client,
}

impl Dispatcher {
    /// A dispatcher resolving host names with the system resolver.
    pub fn new(settings: &DispatchSettings) -> Result<Self, reqwest::Error> {
        let allowed: Arc<[IpNet]> = settings.allowed.clone().into();
        Self::with_resolver(settings, GuardedResolver::new(allowed))
    }

    /// A dispatcher with a given resolver (tests inject a fake DNS).
    pub fn with_resolver(
        settings: &DispatchSettings,
        resolver: GuardedResolver,
    ) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            // Never through a proxy from the environment (HTTPS_PROXY, ALL_PROXY, ...): a proxy
            // resolves and connects to the target itself, so the guard would never see the
            // address and an internal host would be reached.
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(settings.connect_timeout)
            .timeout(settings.timeout)
            .dns_resolver(Arc::new(resolver))
            .user_agent(concat!("evo-siem/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { client })
    }

    /// Sends `events` (JSON objects, as validated at ingest) once to `integration`: a fresh
    /// `generated_at`, signed afresh, with the delivery id (stable across retries) and the
    /// attempt number.
    ///
    /// The headers follow the integration's [signature schemes](Integration::schemes):
    /// `X-Evo-Delivery-Id`, `X-Evo-Delivery-Attempt` and `X-Evo-Signature-256` for
    /// [`SignatureScheme::Evo`]; `webhook-id` (the delivery id), `webhook-timestamp` (the Unix
    /// second of `generated_at`) and `webhook-signature` for
    /// [`SignatureScheme::StandardWebhooks`]. One signature per scheme, by the current secret:
    /// a `next_signing_secret` signs nothing until the rotation makes it the current one.
    pub async fn attempt(
        &self,
        integration: &Integration,
        events: &[&str],
        delivery_id: Uuid,
        attempt: u32,
    ) -> AttemptReport {
        let now = SystemTime::now();
        let body = encode_batch_from_text(events, now);
        let mut request = self
            .client
            .post(integration.url().clone())
            .headers(integration.headers().clone())
            .header(
                header::CONTENT_TYPE,
                HeaderValue::from_static(headers::CONTENT_TYPE_JSON),
            );
        if integration.uses(SignatureScheme::Evo) {
            request = request
                .header(headers::DELIVERY_ID, delivery_id.to_string())
                .header(headers::DELIVERY_ATTEMPT, attempt.to_string());
            if let Some(secret) = integration.secret() {
                request = request.header(headers::SIGNATURE_256, sign(secret, &body));
            }
        }
        if integration.uses(SignatureScheme::StandardWebhooks) {
            // The same instant as generated_at, which is `now` to the millisecond.
            let timestamp = now
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let id = delivery_id.to_string();
            if let Some(secret) = integration.secret() {
                request = request.header(
                    headers::WEBHOOK_SIGNATURE,
                    standard_webhooks::sign(secret, &id, timestamp, &body),
                );
            }
            request = request
                .header(headers::WEBHOOK_ID, id)
                .header(headers::WEBHOOK_TIMESTAMP, timestamp.to_string());
        }
        let started = Instant::now();
        match request.body(body).send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let retry_after = response
                    .headers()
                    .get(header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| parse_retry_after(v, SystemTime::now()));
                let detail = snippet(response).await;
                AttemptReport {
                    result: AttemptResult::Status {
                        status,
                        retry_after,
                    },
                    failure: (!(200..300).contains(&status)).then_some(FailureKind::HttpStatus),
                    latency: started.elapsed(),
                    detail,
                }
            }
            Err(err) => {
                // The URL may carry a token in its query: the error's text goes to the status,
                // the logs and Test Saved Webhook, so it must not name the URL.
                let err = err.without_url();
                AttemptReport {
                    result: AttemptResult::Transport,
                    failure: Some(FailureKind::of(&err)),
                    latency: started.elapsed(),
                    detail: describe(&err),
                }
            }
        }
    }
}

/// The first [`SNIPPET_BYTES`] of a response body, read without buffering more.
async fn snippet(mut response: reqwest::Response) -> String {
    let mut kept = Vec::new();
    while kept.len() < SNIPPET_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                kept.extend_from_slice(&chunk[..chunk.len().min(SNIPPET_BYTES - kept.len())]);
            }
            _ => break,
        }
    }
    String::from_utf8_lossy(&kept).into_owned()
}

/// A transport error as one line: its kind and its causes. `err` carries no URL
/// ([`reqwest::Error::without_url`]), and no cause names one.
fn describe(err: &reqwest::Error) -> String {
    let kind = if err.is_timeout() {
        "timeout"
    } else if err.is_connect() {
        "connect"
    } else {
        "transport"
    };
    let mut text = format!("{kind}: {err}");
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

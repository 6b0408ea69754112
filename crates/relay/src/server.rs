//! The relay's HTTP side: `POST /webhook` (the path is configurable), `GET /healthz`,
//! `GET /metrics`, and a graceful stop.
//!
//! One delivery, in order:
//!
//! 1. a permit out of `max_concurrent_requests`, or 503 at once (the relay keeps no queue);
//! 2. the body, read within the size limit and the delivery's time budget (413, 408);
//! 3. [`Receiver::accept`]: signature, replay window, schema, and deduplication claims on the
//!    events no earlier delivery forwarded (the SDK's 401 / 400 / 503);
//! 4. every output gets the new events at once, and all must acknowledge them before the
//!    deadline;
//! 5. if any did not: 503 with `Retry-After`, and dropping the batch releases the claims, so
//!    that the sender's retry forwards the events again;
//! 6. otherwise the events an output refused for good go to the dead-letter file (on the disk
//!    before the answer), the claims are committed, and the answer is 200
//!    `{"accepted":N,"duplicates":M}`.

use crate::config::{ConfigError, DedupBackend, EnvLookup, Format, RelayConfig};
use crate::dead_letter::{DeadLetter, DeadLetterFile};
use crate::metrics::{Metrics, Outcome};
use crate::outputs::{self, Output, OutputError, Record, Sent};
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use evo_siem_protocol::{Event, EventIds, event_key};
use evo_siem_receiver::dedup::{MemoryDedup, MemoryDedupConfig};
use evo_siem_receiver::{Receiver, Rejection, read_body};
use std::borrow::Cow;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use uuid::Uuid;

/// Why the relay cannot run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RelayError {
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The receiver SDK refused its settings.
    #[error("receiver: {0}")]
    Receiver(#[from] evo_siem_receiver::BuildError),
    /// The listener cannot be bound, or serving failed.
    #[error("listener {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The signal handlers cannot be installed.
    #[error("cannot handle signals: {0}")]
    Signals(std::io::Error),
}

/// Builds a [`Relay`] from parts: what [`Relay::from_config`] does, open to code that brings
/// its own [`Receiver`] or [`Output`]s (tests, or an embedding service).
#[derive(Debug)]
pub struct RelayBuilder {
    receiver: Receiver,
    outputs: Vec<Arc<dyn Output>>,
    dead_letter_path: PathBuf,
    request_timeout: Duration,
    retry_after_secs: u32,
    max_concurrent_requests: usize,
    max_connections: usize,
    idle_timeout: Option<Duration>,
    path: String,
}

impl RelayBuilder {
    /// Adds an output.
    #[must_use]
    pub fn output(mut self, output: Arc<dyn Output>) -> Self {
        self.outputs.push(output);
        self
    }

    /// The dead-letter file. Default `dead-letter.ndjson`.
    #[must_use]
    pub fn dead_letter_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.dead_letter_path = path.into();
        self
    }

    /// The time budget of one delivery. Default 20 s.
    #[must_use]
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// The `Retry-After` of a 503, in seconds. Default 5.
    #[must_use]
    pub fn retry_after_secs(mut self, secs: u32) -> Self {
        self.retry_after_secs = secs;
        self
    }

    /// Deliveries processed at once. Default 64.
    #[must_use]
    pub fn max_concurrent_requests(mut self, n: usize) -> Self {
        self.max_concurrent_requests = n.max(1);
        self
    }

    /// Connections open at once. Default 1024.
    #[must_use]
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = n.max(1);
        self
    }

    /// How long a connection may stay idle (nothing read or written) before it is closed.
    /// Default: twice the request timeout, and at least a minute, so that a delivery waiting
    /// for its outputs is never cut.
    #[must_use]
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = Some(timeout);
        self
    }

    /// The webhook's path. Default `/webhook`.
    #[must_use]
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.path = path.into();
        self
    }

    /// The relay.
    pub fn build(self) -> Relay {
        let metrics = Metrics::new(self.outputs.iter().map(|o| o.name()));
        Relay {
            inner: Arc::new(Inner {
                receiver: self.receiver,
                outputs: self.outputs,
                dead_letter: DeadLetterFile::new(self.dead_letter_path),
                metrics,
                permits: Semaphore::new(self.max_concurrent_requests),
                request_timeout: self.request_timeout,
                retry_after_secs: self.retry_after_secs,
                max_connections: self.max_connections,
                idle_timeout: self
                    .idle_timeout
                    .unwrap_or_else(|| (self.request_timeout * 2).max(Duration::from_secs(60))),
                path: self.path,
            }),
        }
    }
}

/// The relay: a receiver, its outputs, the dead-letter file and the metrics. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Relay {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    receiver: Receiver,
    outputs: Vec<Arc<dyn Output>>,
    dead_letter: DeadLetterFile,
    metrics: Metrics,
    permits: Semaphore,
    request_timeout: Duration,
    retry_after_secs: u32,
    max_connections: usize,
    idle_timeout: Duration,
    path: String,
}

impl Relay {
    /// Starts a [`RelayBuilder`] around `receiver`.
    pub fn builder(receiver: Receiver) -> RelayBuilder {
        RelayBuilder {
            receiver,
            outputs: Vec::new(),
            dead_letter_path: "dead-letter.ndjson".into(),
            request_timeout: Duration::from_secs(20),
            retry_after_secs: 5,
            max_concurrent_requests: 64,
            max_connections: 1024,
            idle_timeout: None,
            path: "/webhook".into(),
        }
    }

    /// The relay a configuration describes, its secrets read through `env`.
    pub fn from_config(config: &RelayConfig, env: EnvLookup<'_>) -> Result<Self, RelayError> {
        let mut receiver = Receiver::builder()
            .tolerance(config.replay_window())
            .max_body_bytes(config.max_body_bytes);
        for secret in config.signing_secrets(env)? {
            receiver = receiver.secret(secret);
        }
        let ttl = Duration::from_secs(config.dedup.ttl_secs.unwrap_or(24 * 60 * 60));
        // A claim must outlive the slowest delivery, or a retry could forward the events while
        // the first delivery is still sending them.
        let claim_ttl = Duration::from_secs(120).max(config.request_timeout() * 2);
        let receiver = match config.dedup.backend {
            DedupBackend::Memory => {
                let mut memory = MemoryDedupConfig::default().ttl(ttl).claim_ttl(claim_ttl);
                if let Some(capacity) = config.dedup.capacity {
                    memory = memory.capacity(capacity);
                }
                receiver.dedup(MemoryDedup::new(memory))
            }
            DedupBackend::Redis => {
                let url = config
                    .redis_url(env)?
                    .ok_or_else(|| ConfigError::Dedup("the Redis URL is not configured".into()))?;
                // A prefix of its own, so that relays never share keys with other receivers on
                // the same Redis.
                let redis = evo_siem_dedup_redis::RedisDedupConfig::new(url.expose())
                    .ttl(ttl)
                    .claim_ttl(claim_ttl)
                    .prefix(config.dedup.prefix.as_deref().unwrap_or("evo-siem:relay:"));
                let store = evo_siem_dedup_redis::RedisDedup::new(redis)
                    .map_err(|e| ConfigError::Dedup(e.0))?;
                receiver.dedup(store)
            }
        };
        let mut builder = Self::builder(receiver.build()?)
            .dead_letter_path(config.dead_letter_path.clone())
            .request_timeout(config.request_timeout())
            .retry_after_secs(config.retry_after_secs)
            .max_concurrent_requests(config.max_concurrent_requests)
            .max_connections(config.max_connections)
            .path(config.path.clone());
        for (output, name) in config.outputs.iter().zip(config.output_names()) {
            builder = builder.output(outputs::build(output, name, env)?);
        }
        Ok(builder.build())
    }

    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// The outputs, in configuration order.
    pub fn outputs(&self) -> &[Arc<dyn Output>] {
        &self.inner.outputs
    }

    /// The router: the webhook, `/healthz` and `/metrics`.
    pub fn router(&self) -> Router {
        Router::new()
            .route(&self.inner.path, post(webhook))
            .route("/healthz", get(healthz))
            .route("/metrics", get(metrics))
            .with_state(Arc::clone(&self.inner))
    }

    /// Reopens every file (the outputs' and the dead-letter file), as on SIGHUP after a log
    /// rotation. Failures are logged; the next write tries to open the file again.
    pub async fn reopen(&self) {
        for output in &self.inner.outputs {
            if let Err(err) = output.reopen().await {
                tracing::error!(output = output.name(), error = %err, "cannot reopen");
            }
        }
        self.inner.dead_letter.reopen();
    }

    /// Binds `addr` and serves in a task of its own until [`RunningRelay::shutdown`].
    pub async fn start(self, addr: SocketAddr) -> Result<RunningRelay, RelayError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| RelayError::Listen { addr, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| RelayError::Listen { addr, source })?;
        let listener = crate::listener::BoundedListener::new(
            listener,
            self.inner.max_connections,
            self.inner.idle_timeout,
        );
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let router = self.router();
        let task = tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await
        });
        Ok(RunningRelay {
            addr,
            relay: self,
            stop,
            task,
        })
    }
}

/// A relay serving in the background.
#[derive(Debug)]
pub struct RunningRelay {
    addr: SocketAddr,
    relay: Relay,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl RunningRelay {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The webhook's URL.
    pub fn webhook_url(&self) -> String {
        format!("http://{}{}", self.addr, self.relay.inner.path)
    }

    /// The relay.
    pub fn relay(&self) -> &Relay {
        &self.relay
    }

    /// Stops accepting connections and waits for the deliveries in progress to be answered.
    pub async fn shutdown(self) -> Result<(), RelayError> {
        let _ = self.stop.send(());
        match self.task.await {
            Ok(result) => result.map_err(|source| RelayError::Listen {
                addr: self.addr,
                source,
            }),
            Err(join) => Err(RelayError::Listen {
                addr: self.addr,
                source: std::io::Error::other(join),
            }),
        }
    }
}

/// Runs the relay a configuration describes until SIGTERM or Ctrl-C; SIGHUP reopens files.
pub async fn run(config: &RelayConfig, env: EnvLookup<'_>) -> Result<(), RelayError> {
    use tokio::signal::unix::{SignalKind, signal};
    let relay = Relay::from_config(config, env)?;
    let mut hangup = signal(SignalKind::hangup()).map_err(RelayError::Signals)?;
    let mut terminate = signal(SignalKind::terminate()).map_err(RelayError::Signals)?;
    let running = relay.clone().start(config.listen).await?;
    tracing::info!(
        addr = %running.addr(),
        path = %config.path,
        outputs = ?config.output_names(),
        "relay listening"
    );
    loop {
        tokio::select! {
            _ = hangup.recv() => {
                tracing::info!("SIGHUP: reopening files");
                relay.reopen().await;
            }
            _ = terminate.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    tracing::info!("stopping: answering the deliveries in progress");
    running.shutdown().await?;
    tracing::info!("relay stopped");
    Ok(())
}

fn json_response(status: StatusCode, body: String) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

/// 503 with `Retry-After`, and a reason code in the body.
fn unavailable(retry_after: u32, reason: &str, message: &str) -> Response {
    let body = serde_json::json!({ "error": reason, "message": message }).to_string();
    let mut response = json_response(StatusCode::SERVICE_UNAVAILABLE, body);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
    response
}

fn rejected(relay: &Inner, rejection: Rejection) -> Response {
    relay.metrics.rejection(rejection.reason_code());
    relay.metrics.delivery(Outcome::Rejected);
    tracing::debug!(
        reason = rejection.reason_code(),
        status = rejection.status().as_u16(),
        "delivery rejected: {rejection}"
    );
    rejection.into_response()
}

/// The received text of an event on one line. JSON allows line breaks only as whitespace
/// between tokens (inside strings they must be escaped), so turning them into spaces keeps the
/// same JSON value, and an NDJSON file or a syslog line whole.
pub fn one_line(raw: &str) -> Cow<'_, str> {
    if raw.contains(['\n', '\r']) {
        Cow::Owned(raw.replace(['\n', '\r'], " "))
    } else {
        Cow::Borrowed(raw)
    }
}

async fn webhook(State(relay): State<Arc<Inner>>, request: Request) -> Response {
    let started = Instant::now();
    let deadline = started + relay.request_timeout;
    let retry_after = relay.retry_after_secs;
    let Ok(_permit) = relay.permits.try_acquire() else {
        relay.metrics.delivery(Outcome::Busy);
        return unavailable(
            retry_after,
            "relay_busy",
            "too many deliveries in progress; retry later",
        );
    };
    let (parts, body) = request.into_parts();
    let limit = relay.receiver.max_body_bytes();
    let body = match tokio::time::timeout_at(deadline, read_body(&parts.headers, body, limit)).await
    {
        Ok(Ok(body)) => body,
        Ok(Err(rejection)) => return rejected(&relay, rejection),
        Err(_) => {
            relay.metrics.rejection("body_timeout");
            relay.metrics.delivery(Outcome::Rejected);
            let body = serde_json::json!({
                "error": "body_timeout",
                "message": "the request body did not arrive within the time budget",
            });
            return json_response(StatusCode::REQUEST_TIMEOUT, body.to_string());
        }
    };
    let batch = match relay
        .receiver
        .accept(&parts.headers, body, SystemTime::now())
        .await
    {
        Ok(batch) => batch,
        Err(rejection) => return rejected(&relay, rejection),
    };
    let events: Vec<&Event<'_>> = batch.events().collect();
    relay.metrics.batch(events.len(), batch.duplicates());
    if events.is_empty() {
        return match batch.commit().await {
            Ok(delivered) => {
                relay.metrics.delivery(Outcome::Accepted);
                delivered.into_response()
            }
            Err(rejection) => rejected(&relay, rejection),
        };
    }

    let fresh = events.len();
    let forwarded = forward(&relay, &events, deadline).await;
    drop(events);
    let refused_by = match forwarded {
        Forwarded::All { refused_by } => refused_by,
        Forwarded::OutputsFailed(failed) => {
            relay.metrics.delivery(Outcome::OutputFailed);
            relay.metrics.delivery_latency(started.elapsed());
            // Dropping `batch` releases the claims: the sender's retry forwards these events
            // again.
            drop(batch);
            return unavailable(
                retry_after,
                "output_failed",
                &format!("not acknowledged by {}; retry later", failed.join(", ")),
            );
        }
        Forwarded::DeadLetterFailed => {
            relay.metrics.delivery(Outcome::OutputFailed);
            drop(batch);
            return unavailable(
                retry_after,
                "dead_letter_failed",
                "events refused by an output cannot be written to the dead-letter file; retry later",
            );
        }
    };
    match batch.commit().await {
        Ok(delivered) => {
            for (output, refused) in relay.outputs.iter().zip(refused_by) {
                relay
                    .metrics
                    .forwarded(output.name(), fresh.saturating_sub(refused));
                if refused > 0 {
                    relay.metrics.dead_letters(output.name(), refused);
                }
            }
            relay.metrics.delivery(Outcome::Accepted);
            relay.metrics.delivery_latency(started.elapsed());
            delivered.into_response()
        }
        Err(rejection) => rejected(&relay, rejection),
    }
}

/// What became of one delivery's new events.
enum Forwarded {
    /// Every output acknowledged them; these many per output (in order) went to the
    /// dead-letter file.
    All { refused_by: Vec<usize> },
    /// These outputs (`name (kind)`) did not acknowledge them.
    OutputsFailed(Vec<String>),
    /// Every output answered, but the dead letters could not be written.
    DeadLetterFailed,
}

/// The records of `events` with these payloads (as many as there are payloads).
fn records<'a>(
    events: &[&'a Event<'a>],
    uuids: &[Uuid],
    payloads: impl Iterator<Item = &'a str>,
) -> Vec<Record<'a>> {
    events
        .iter()
        .zip(uuids)
        .zip(payloads)
        .map(|((event, uuid), payload)| Record {
            event,
            uuid: *uuid,
            payload,
        })
        .collect()
}

/// Sends `events` to every output at once, waits for all of them (until `deadline`), and
/// writes the events refused for good to the dead-letter file.
async fn forward(relay: &Inner, events: &[&Event<'_>], deadline: Instant) -> Forwarded {
    // The SDK checked every id, so none falls back to nil here; whatever policy it applied, an
    // id it let through has this key.
    let uuids: Vec<Uuid> = events
        .iter()
        .map(|e| event_key(e.data.uuid.as_bytes(), EventIds::Any).unwrap_or_default())
        .collect();
    let raw: Vec<Cow<'_, str>> = events
        .iter()
        .map(|e| match e.raw_json() {
            Some(raw) => one_line(raw),
            None => Cow::Owned(e.to_json()),
        })
        .collect();
    let wants_ocsf = relay.outputs.iter().any(|o| o.format() == Format::Ocsf);
    let ocsf: Vec<String> = if wants_ocsf {
        events
            .iter()
            .zip(&raw)
            .map(|(event, raw)| crate::ocsf::to_json(event, raw))
            .collect()
    } else {
        Vec::new()
    };
    let raw_records = records(events, &uuids, raw.iter().map(|r| &**r));
    let ocsf_records = records(events, &uuids, ocsf.iter().map(String::as_str));

    let sends = relay.outputs.iter().map(|output| {
        let records = match output.format() {
            Format::Raw => &raw_records,
            Format::Ocsf => &ocsf_records,
        };
        let metrics = &relay.metrics;
        async move {
            let began = Instant::now();
            let result = tokio::time::timeout_at(deadline, output.send(records, deadline))
                .await
                .unwrap_or_else(|_| Err(OutputError::deadline()));
            metrics.output_latency(output.name(), began.elapsed());
            result
        }
    });
    let results: Vec<Result<Sent, OutputError>> = futures_util::future::join_all(sends).await;

    let mut failed = Vec::new();
    for (output, result) in relay.outputs.iter().zip(&results) {
        if let Err(err) = result {
            relay.metrics.failure(output.name(), err.kind.as_str());
            tracing::warn!(
                output = output.name(),
                kind = err.kind.as_str(),
                events = events.len(),
                "output did not acknowledge the delivery: {}",
                err.message
            );
            failed.push(format!("{} ({})", output.name(), err.kind));
        }
    }
    if !failed.is_empty() {
        return Forwarded::OutputsFailed(failed);
    }

    let mut letters = Vec::new();
    let mut refused_by = vec![0_usize; relay.outputs.len()];
    for ((output, result), refused) in relay.outputs.iter().zip(&results).zip(&mut refused_by) {
        let Ok(sent) = result else { continue };
        for refusal in &sent.refused {
            let Some(record) = raw_records.get(refusal.index) else {
                continue;
            };
            *refused += 1;
            letters.push(DeadLetter {
                output: output.name(),
                reason: &refusal.reason,
                uuid: &record.event.data.uuid,
                event: &raw[refusal.index],
            });
            tracing::warn!(
                output = output.name(),
                uuid = %record.uuid,
                reason = %refusal.reason,
                "event refused for good: written to the dead-letter file"
            );
        }
    }
    if let Err(err) = relay.dead_letter.write(&letters).await {
        tracing::error!(
            path = %relay.dead_letter.path().display(),
            error = %err,
            "cannot write the dead-letter file; the delivery is refused so that it is retried"
        );
        relay.metrics.failure("dead_letter", "io");
        return Forwarded::DeadLetterFailed;
    }
    Forwarded::All { refused_by }
}

async fn healthz(State(relay): State<Arc<Inner>>) -> Response {
    let outputs: Vec<&str> = relay.outputs.iter().map(|o| o.name()).collect();
    json_response(
        StatusCode::OK,
        serde_json::json!({ "status": "ok", "outputs": outputs }).to_string(),
    )
}

async fn metrics(State(relay): State<Arc<Inner>>) -> Response {
    match relay.metrics.encode() {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static(
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
            )],
            text,
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

//! A local mock SIEM for Evo SIEM webhooks, for developing and testing on one machine.
//!
//! It is built on the receiver SDK, so it verifies signatures (one or several secrets, or none),
//! applies the replay window, deduplicates by event UUID and answers with the SDK's statuses. It
//! records every delivery and can misbehave on demand ([`faults`]).
//!
//! - `POST /webhook` (the path is configurable): the webhook.
//! - `GET /_mock/stats`, `GET /_mock/events` (unique events, first-arrival order, raw JSON),
//!   `GET /_mock/deliveries`, `DELETE /_mock/state`.
//! - `POST /_mock/faults` (a list of [`faults::Rule`]), `DELETE /_mock/faults`.
//! - `GET /`: a page that shows the deliveries, the stats and the rules in force, live, and sets
//!   and clears the common faults with a form (see the `ui` module; it works without JavaScript).
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use evo_siem_mock::{MockSiem, MockSiemConfig};
//! let siem = MockSiem::start("127.0.0.1:0".parse().unwrap(), MockSiemConfig::signed(["whsec-test"])).await?;
//! println!("deliver to {}", siem.webhook_url());
//! // ... run a sender against it, then:
//! assert_eq!(siem.stats().rejected.bad_signature, 0);
//! # Ok(()) }
//! ```

mod fault_form;
pub mod faults;
mod html;
mod page;
mod pretty_json;
mod record;
mod serve;
mod ui;

pub use record::{Delivery, ReceivedEvent, Rejected, Stats};

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use evo_siem_protocol::Secret;
use evo_siem_receiver::{Receiver, read_body};
use faults::{Action, Faults, Rule};
use serve::{Ending, Kill};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// How the mock SIEM verifies.
#[derive(Debug, Clone)]
pub struct MockSiemConfig {
    secrets: Vec<Secret>,
    dedup: Option<Arc<dyn evo_siem_receiver::dedup::DedupStore>>,
    path: String,
    max_body_bytes: usize,
    seed: u64,
}

impl MockSiemConfig {
    /// Requires a signature by any of `secrets`.
    pub fn signed<S: Into<Secret>>(secrets: impl IntoIterator<Item = S>) -> Self {
        Self {
            secrets: secrets.into_iter().map(Into::into).collect(),
            ..Self::unsigned()
        }
    }

    /// Accepts unsigned batches (an integration without a signing secret).
    pub fn unsigned() -> Self {
        Self {
            secrets: Vec::new(),
            dedup: None,
            path: "/webhook".into(),
            max_body_bytes: 4 * 1024 * 1024,
            seed: 0,
        }
    }

    /// Serves the webhook at `path` instead of `/webhook`.
    #[must_use]
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.path = path.into();
        self
    }

    /// Deduplicates in `store` instead of in memory: several mock SIEMs sharing a Redis store
    /// behave like several receivers behind one load balancer.
    #[must_use]
    pub fn dedup(mut self, store: Arc<dyn evo_siem_receiver::dedup::DedupStore>) -> Self {
        self.dedup = Some(store);
        self
    }

    /// The seed of the fault generator.
    #[must_use]
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
}

#[derive(Debug, Default)]
struct Records {
    stats: Stats,
    deliveries: Vec<Delivery>,
    events: Vec<ReceivedEvent>,
    /// Each distinct event's deduplication key ([`event_key`]) and its index in `events`: an id
    /// in capitals and in lower case is one event, as for a receiver.
    seen: HashMap<uuid::Uuid, usize>,
}

/// The key the mock counts an event id by: the same as the receiver SDK's.
fn event_key(id: &str) -> uuid::Uuid {
    evo_siem_protocol::event_key(id.as_bytes(), evo_siem_protocol::EventIds::Any)
        .unwrap_or_default()
}

#[derive(Debug)]
struct Shared {
    receiver: Receiver,
    max_body_bytes: usize,
    /// The webhook's path, shown on the page.
    path: String,
    /// How many signing secrets verify deliveries (never which), shown on the page.
    secrets: usize,
    records: Mutex<Records>,
    faults: Mutex<Faults>,
    /// A version number bumped on every change of the records or the rules, for the page's live
    /// view. A watch channel holds one value, so a slow or stalled viewer costs no memory: it
    /// just sees the latest version when it looks again.
    changes: tokio::sync::watch::Sender<u64>,
}

impl Shared {
    fn records(&self) -> std::sync::MutexGuard<'_, Records> {
        self.records
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn faults(&self) -> std::sync::MutexGuard<'_, Faults> {
        self.faults
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn set_faults(&self, rules: Vec<Rule>) {
        self.faults().set(rules);
        self.changed();
    }

    /// Forgets every delivery and event (the counters too); the fault rules stay.
    fn clear_records(&self) {
        *self.records() = Records::default();
        self.changed();
    }

    /// Tells the page's live viewers that something changed.
    fn changed(&self) {
        self.changes
            .send_modify(|version| *version = version.wrapping_add(1));
    }

    fn next_fault(&self) -> Option<Action> {
        self.faults().next()
    }
}

/// A running mock SIEM.
#[derive(Debug)]
pub struct MockSiem {
    addr: SocketAddr,
    path: String,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for MockSiem {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl MockSiem {
    /// Starts serving on `listen` (`127.0.0.1:0` picks a free port).
    pub async fn start(listen: SocketAddr, config: MockSiemConfig) -> std::io::Result<Self> {
        let secrets = config.secrets.len();
        let mut builder = Receiver::builder().max_body_bytes(config.max_body_bytes);
        if config.secrets.is_empty() {
            builder = builder.allow_unsigned();
        }
        for secret in config.secrets {
            builder = builder.secret(secret);
        }
        if let Some(store) = config.dedup {
            builder = builder.dedup_shared(store);
        }
        let receiver = builder
            .build()
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let shared = Arc::new(Shared {
            receiver,
            max_body_bytes: config.max_body_bytes,
            path: config.path.clone(),
            secrets,
            records: Mutex::default(),
            faults: Mutex::new(Faults::new(config.seed)),
            changes: tokio::sync::watch::Sender::new(0),
        });
        let router = ui::routes()
            .route(&config.path, post(webhook))
            .route("/_mock/stats", get(|State(s): State<Arc<Shared>>| async move { Json(s.records().stats.clone()) }))
            .route("/_mock/events", get(|State(s): State<Arc<Shared>>| async move { Json(s.records().events.clone()) }))
            .route(
                "/_mock/deliveries",
                get(|State(s): State<Arc<Shared>>| async move { Json(s.records().deliveries.clone()) }),
            )
            .route(
                "/_mock/state",
                axum::routing::delete(|State(s): State<Arc<Shared>>| async move {
                    s.clear_records();
                    StatusCode::NO_CONTENT
                }),
            )
            .route("/_mock/faults", post(set_faults).delete(clear_faults))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let server = tokio::spawn(serve::serve(listener, router));
        Ok(Self {
            addr,
            path: config.path,
            shared,
            server,
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The webhook URL to configure in a sender.
    pub fn webhook_url(&self) -> String {
        format!("http://{}{}", self.addr, self.path)
    }

    /// The counters so far.
    pub fn stats(&self) -> Stats {
        self.shared.records().stats.clone()
    }

    /// Every request so far.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.shared.records().deliveries.clone()
    }

    /// The distinct events so far, in first-arrival order.
    pub fn events(&self) -> Vec<ReceivedEvent> {
        self.shared.records().events.clone()
    }

    /// The distinct events from the `from`-th on (counted from 0), for polling without copying
    /// what was already seen.
    pub fn events_from(&self, from: usize) -> Vec<ReceivedEvent> {
        self.shared
            .records()
            .events
            .get(from..)
            .map(<[ReceivedEvent]>::to_vec)
            .unwrap_or_default()
    }

    /// Replaces the fault rules (and restarts the request count and the clock of time windows).
    pub fn set_faults(&self, rules: Vec<Rule>) -> Result<(), faults::InvalidRule> {
        faults::validate(&rules)?;
        self.shared.set_faults(rules);
        Ok(())
    }

    /// The fault rules in force, as set through the API, the page or [`MockSiem::set_faults`].
    pub fn fault_rules(&self) -> Vec<Rule> {
        self.shared.faults().rules().to_vec()
    }

    /// Forgets every delivery and event (the counters too); the fault rules stay.
    pub fn clear_records(&self) {
        self.shared.clear_records();
    }
}

async fn set_faults(State(shared): State<Arc<Shared>>, Json(rules): Json<Vec<Rule>>) -> Response {
    if let Err(err) = faults::validate(&rules) {
        let body = serde_json::json!({"error": "invalid_fault", "message": err.to_string()});
        return (StatusCode::UNPROCESSABLE_ENTITY, Json(body)).into_response();
    }
    shared.set_faults(rules);
    StatusCode::NO_CONTENT.into_response()
}

async fn clear_faults(State(shared): State<Arc<Shared>>) -> StatusCode {
    shared.set_faults(Vec::new());
    StatusCode::NO_CONTENT
}

/// How long `accept_then_hang` holds a connection before closing it, so that a long run of such
/// faults cannot pile up connections without bound.
const HANG_FOR: Duration = Duration::from_secs(300);

/// Ends the request's connection without an answer; only returns when the request did not come
/// through [`serve::serve`] (then it answers 503).
async fn end_connection(kill: Option<&Arc<Kill>>, ending: Ending) -> Response {
    match kill {
        Some(kill) => {
            kill.fire(ending);
            std::future::pending().await
        }
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            "fault injected by the mock SIEM",
        )
            .into_response(),
    }
}

/// The UUIDs and the age of a batch that is not verified (a faulted request), as far as it
/// parses.
fn peek(bytes: &[u8], now: SystemTime) -> (Vec<String>, Option<i64>) {
    match evo_siem_protocol::parse_batch(bytes) {
        Ok(batch) => (
            batch
                .events
                .iter()
                .map(|e| e.data.uuid.to_string())
                .collect(),
            age_ms(&batch.generated_at, now),
        ),
        Err(_) => (Vec::new(), None),
    }
}

fn unix_ms(at: SystemTime) -> u64 {
    at.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Milliseconds from `generated_at` to `now` (negative when it is in the future).
fn age_ms(generated_at: &str, now: SystemTime) -> Option<i64> {
    let at = evo_siem_protocol::parse_rfc3339(generated_at)?;
    Some(match now.duration_since(at) {
        Ok(age) => i64::try_from(age.as_millis()).unwrap_or(i64::MAX),
        Err(ahead) => -i64::try_from(ahead.duration().as_millis()).unwrap_or(i64::MAX),
    })
}

async fn webhook(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let kill = parts.extensions.get::<Arc<Kill>>().cloned();
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    // The arrival: what a delivery's age is measured to, whatever a delay fault or a slow body
    // adds before the batch is verified (at `now`, below).
    let arrived = SystemTime::now();
    let mut delivery = Delivery {
        received_at_ms: unix_ms(arrived),
        delivery_id: header(evo_siem_protocol::headers::DELIVERY_ID),
        attempt: header(evo_siem_protocol::headers::DELIVERY_ATTEMPT),
        headers: parts
            .headers
            .iter()
            .map(|(n, v)| {
                (
                    n.to_string(),
                    record::redact(n.as_str(), v.to_str().unwrap_or("<binary>")),
                )
            })
            .collect(),
        verdict: String::new(),
        status: 0,
        events: Vec::new(),
        age_ms: None,
    };
    let fault = shared.next_fault();
    if let Some(action) = &fault {
        shared.records().stats.faults_injected += 1;
        delivery.verdict = format!("fault:{}", action.name());
    }
    match fault {
        Some(Action::Drop) => {
            record_delivery(&shared, delivery);
            return end_connection(kill.as_ref(), Ending::Close).await;
        }
        Some(Action::Reset) => {
            // Take the first part of the body, so that the reset comes mid-request.
            let mut body = body;
            let _ = http_body_util::BodyExt::frame(&mut body).await;
            record_delivery(&shared, delivery);
            return end_connection(kill.as_ref(), Ending::Reset).await;
        }
        Some(Action::DelayMs(ms)) => tokio::time::sleep(Duration::from_millis(ms)).await,
        _ => {}
    }
    // The receiver's clock: the true time, or a skewed one under a clock-skew fault, which the
    // SDK then judges the replay window by. Arrivals and ages are recorded on the true clock.
    let true_now = SystemTime::now();
    let now = fault
        .as_ref()
        .map_or(true_now, |action| action.clock(true_now));
    let bytes = match read_body(&parts.headers, body, shared.max_body_bytes).await {
        Ok(bytes) => bytes,
        Err(rejection) => return refused(&shared, delivery, rejection),
    };
    if let Some(Action::Status {
        status,
        retry_after,
    }) = fault
    {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        (delivery.events, delivery.age_ms) = peek(&bytes, arrived);
        delivery.status = status.as_u16();
        record_delivery(&shared, delivery);
        let mut response = (status, "fault injected by the mock SIEM").into_response();
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        return response;
    }
    let batch = match shared.receiver.accept(&parts.headers, bytes, now).await {
        Ok(batch) => batch,
        Err(rejection) => return refused(&shared, delivery, rejection),
    };
    delivery.age_ms = age_ms(&batch.batch().generated_at, arrived);
    {
        let mut records = shared.records();
        let records = &mut *records;
        for event in &batch.batch().events {
            let uuid = event.data.uuid.to_string();
            delivery.events.push(uuid.clone());
            records.stats.events_received += 1;
            if let std::collections::hash_map::Entry::Vacant(entry) =
                records.seen.entry(event_key(&uuid))
            {
                entry.insert(records.events.len());
                records.stats.unique_events += 1;
                records.events.push(ReceivedEvent {
                    uuid,
                    action: event.data.action.to_string(),
                    raw: event.raw_json().unwrap_or_default().to_owned(),
                    received_at_ms: unix_ms(true_now),
                });
            } else {
                records.stats.duplicate_events += 1;
            }
        }
    }
    let response = match batch.commit().await {
        Ok(delivered) => {
            if fault != Some(Action::AcceptThenHang) {
                delivery.verdict = "accepted".into();
            }
            delivery.status = 200;
            shared.records().stats.accepted_deliveries += 1;
            delivered.into_response()
        }
        Err(rejection) => return refused(&shared, delivery, rejection),
    };
    if fault == Some(Action::AcceptThenHang) {
        delivery.status = 0;
        record_delivery(&shared, delivery);
        // The batch is committed; the sender never hears so and times out.
        tokio::time::sleep(HANG_FOR).await;
        return end_connection(kill.as_ref(), Ending::Close).await;
    }
    record_delivery(&shared, delivery);
    response
}

fn refused(
    shared: &Shared,
    mut delivery: Delivery,
    rejection: evo_siem_receiver::Rejection,
) -> Response {
    delivery.verdict = rejection.reason_code().to_owned();
    delivery.status = rejection.status().as_u16();
    shared
        .records()
        .stats
        .rejected
        .count(rejection.reason_code());
    record_delivery(shared, delivery);
    rejection.into_response()
}

fn record_delivery(shared: &Shared, delivery: Delivery) {
    {
        let mut records = shared.records();
        records.stats.deliveries += 1;
        records.deliveries.push(delivery);
    }
    shared.changed();
}

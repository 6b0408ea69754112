//! The sender suite is a real oracle: the real sender passes it, and senders with one guarantee
//! broken fail it, each on the property it breaks. The broken senders are the real sender with
//! its configuration tampered with, or behind a proxy that lies to it about the SIEM's answers.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use evo_siem_conformance::sender::{
    self, InProcess, Property, SenderUnderTest, StartError, SuiteOptions, SuiteReport,
};
use std::net::SocketAddr;
use std::sync::Arc;

fn options(cases: u32) -> SuiteOptions {
    SuiteOptions {
        cases,
        max_events: 60,
        max_shrink_iters: 0,
        ..SuiteOptions::default()
    }
}

/// For the broken senders: what never arrives is given up on sooner.
fn impatient(cases: u32) -> SuiteOptions {
    SuiteOptions {
        deadline: std::time::Duration::from_secs(3),
        ..options(cases)
    }
}

#[test]
fn the_real_sender_passes() {
    let report = sender::run(&options(12), InProcess::default);
    print!("{}", sender::table(&report));
    assert!(report.failure.is_none(), "{}", sender::table(&report));
    assert_eq!(report.totals.cases, 12);
    // Counted, not assumed: at least one check per event that had to arrive and three per
    // delivery (signature, age, delivery id).
    let t = &report.totals;
    assert!(
        t.checks_passed >= (t.events - t.excluded) + 3 * t.deliveries,
        "{} checks for {} events and {} deliveries",
        t.checks_passed,
        t.events - t.excluded,
        t.deliveries
    );
    assert!(report.totals.faults_injected > 0);
    assert!(report.totals.excluded > 0);
    assert!(report.totals.restarts > 0);
    // The SIEM's clock was off: it refused deliveries as stale (so the skew took), the sender
    // kept the events and delivered them all soon after the clock was right.
    let skew = report
        .clock_skew
        .as_ref()
        .expect("the clock-skew scenario ran");
    assert!(skew.refused >= 2, "{skew:?}");
    assert_eq!((skew.lost, skew.refused_after), (0, 0), "{skew:?}");
    let recovered = skew.recovered_after_ms.expect("every event arrived");
    assert!((0..5_000).contains(&recovered), "{skew:?}");
}

/// Asserts the suite failed on `property`.
fn assert_caught(report: &SuiteReport, property: Property) {
    let table = sender::table(report);
    println!("{table}");
    let failure = report
        .failure
        .as_ref()
        .unwrap_or_else(|| panic!("not caught:\n{table}"));
    assert!(
        failure.reason.contains(&format!("{property} (")),
        "caught, but not on {property}:\n{table}"
    );
}

/// The real sender with every exclusion list removed from its configuration.
#[derive(Default)]
struct IgnoresExclusions(InProcess);

impl SenderUnderTest for IgnoresExclusions {
    async fn start(&mut self, config: &toml::Table) -> Result<SocketAddr, StartError> {
        let mut config = config.clone();
        if let Some(toml::Value::Array(integrations)) = config.get_mut("integration") {
            for integration in integrations {
                if let toml::Value::Table(table) = integration {
                    table.remove("excluded_actions");
                }
            }
        }
        self.0.start(&config).await
    }
    async fn kill(&mut self) {
        self.0.kill().await;
    }
    async fn stop(&mut self) {
        self.0.stop().await;
    }
}

#[test]
fn a_sender_that_ignores_exclusions_is_caught() {
    let report = sender::run(&impatient(8), IgnoresExclusions::default);
    assert_caught(&report, Property::ExactFiltering);
}

/// What the lying proxy changes on the way.
#[derive(Clone, Copy, PartialEq)]
enum Lie {
    /// Answers 200 when the SIEM answered 5xx or could not be reached: the sender drops the
    /// batch, believing it delivered.
    SuccessOn5xx,
    /// Answers 200 when the SIEM answered 401: the sender drops a batch refused as stale (by a
    /// SIEM whose clock is off) instead of pausing with it queued.
    SuccessOn401,
    /// Strips the signature header on the way to the SIEM.
    StripSignature,
    /// Replaces the delivery id with a new one on every attempt.
    FreshDeliveryIds,
    /// Sends each batch's events in reverse order (signed again, so only the order is wrong).
    ReverseEvents,
    /// Leaves out the integration's own headers (its `Authorization`, say).
    DropIntegrationHeaders,
    /// Drops a field (`data.status`) from every event, signed again.
    DropField,
    /// Rounds every event's `ts` (a nanosecond count above 2^53) through a double, signed again.
    RoundIntegers,
    /// Sends every attempt of a batch with the `generated_at` of its first attempt, signed again.
    ReuseStamp,
}

impl Lie {
    /// Whether the body is rewritten (and so signed again).
    fn rewrites(self) -> bool {
        matches!(
            self,
            Lie::ReverseEvents | Lie::DropField | Lie::RoundIntegers | Lie::ReuseStamp
        )
    }
}

/// The real sender behind a proxy that lies.
struct Lying {
    inner: InProcess,
    lie: Lie,
    proxies: Vec<tokio::task::JoinHandle<()>>,
}

impl Lying {
    fn new(lie: Lie) -> Self {
        Self {
            inner: InProcess::default(),
            lie,
            proxies: Vec::new(),
        }
    }
}

struct Proxy {
    targets: Vec<String>,
    /// Each integration's signing secret, to sign a rewritten body again.
    secrets: Vec<Option<evo_siem_protocol::Secret>>,
    /// Each integration's own header names, lower case.
    custom: Vec<Vec<String>>,
    lie: Lie,
    client: reqwest::Client,
    /// Each delivery id's first `generated_at` (for [`Lie::ReuseStamp`]).
    stamps: std::sync::Mutex<std::collections::HashMap<String, serde_json::Value>>,
}

/// The body as the lie wants it.
fn rewrite(proxy: &Proxy, headers: &HeaderMap, body: &[u8]) -> Vec<u8> {
    let Ok(mut batch) = serde_json::from_slice::<serde_json::Value>(body) else {
        return body.to_vec();
    };
    let events = batch["events"].as_array_mut();
    match (proxy.lie, events) {
        (Lie::ReverseEvents, Some(events)) => events.reverse(),
        (Lie::DropField, Some(events)) => {
            for event in events {
                if let Some(data) = event["data"].as_object_mut() {
                    data.remove("status");
                }
            }
        }
        (Lie::RoundIntegers, Some(events)) => {
            for event in events {
                if let Some(ts) = event["data"]["ts"].as_i64() {
                    event["data"]["ts"] = serde_json::json!(ts as f64 as i64);
                }
            }
        }
        (Lie::ReuseStamp, _) => {
            let id = headers
                .get("x-evo-delivery-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            let mut stamps = proxy.stamps.lock().unwrap();
            let first = stamps
                .entry(id)
                .or_insert_with(|| batch["generated_at"].clone());
            batch["generated_at"] = first.clone();
        }
        _ => {}
    }
    serde_json::to_vec(&batch).unwrap()
}

async fn forward(
    State(proxy): State<Arc<Proxy>>,
    Path(index): Path<usize>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, HeaderMap, Bytes) {
    let body = if proxy.lie.rewrites() {
        Bytes::from(rewrite(&proxy, &headers, &body))
    } else {
        body
    };
    let mut request = proxy.client.post(&proxy.targets[index]);
    if proxy.lie.rewrites()
        && let Some(secret) = &proxy.secrets[index]
    {
        request = request.header(
            "x-evo-signature-256",
            evo_siem_protocol::sign(secret, &body),
        );
    }
    let mut request = request.body(body);
    for (name, value) in &headers {
        if name == "host" || name == "content-length" {
            continue;
        }
        if proxy.lie.rewrites() && name == "x-evo-signature-256" {
            continue;
        }
        if proxy.lie == Lie::DropIntegrationHeaders
            && proxy.custom[index].iter().any(|c| c == name.as_str())
        {
            continue;
        }
        if proxy.lie == Lie::StripSignature && name == "x-evo-signature-256" {
            continue;
        }
        if proxy.lie == Lie::FreshDeliveryIds && name == "x-evo-delivery-id" {
            request = request.header(name, uuid::Uuid::new_v4().to_string());
            continue;
        }
        request = request.header(name, value);
    }
    match request.send().await {
        Ok(response) if proxy.lie == Lie::SuccessOn5xx && response.status().is_server_error() => {
            (StatusCode::OK, HeaderMap::new(), Bytes::new())
        }
        Ok(response) if proxy.lie == Lie::SuccessOn401 && response.status().as_u16() == 401 => {
            (StatusCode::OK, HeaderMap::new(), Bytes::new())
        }
        Ok(response) => {
            let status = StatusCode::from_u16(response.status().as_u16()).unwrap();
            let mut answer = HeaderMap::new();
            if let Some(after) = response.headers().get("retry-after") {
                answer.insert("retry-after", after.as_bytes().try_into().unwrap());
            }
            (status, answer, response.bytes().await.unwrap_or_default())
        }
        Err(_) if proxy.lie == Lie::SuccessOn5xx => {
            (StatusCode::OK, HeaderMap::new(), Bytes::new())
        }
        Err(_) => (StatusCode::BAD_GATEWAY, HeaderMap::new(), Bytes::new()),
    }
}

impl SenderUnderTest for Lying {
    async fn start(&mut self, config: &toml::Table) -> Result<SocketAddr, StartError> {
        let mut config = config.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let mut targets = Vec::new();
        let mut secrets = Vec::new();
        let mut custom = Vec::new();
        if let Some(toml::Value::Array(integrations)) = config.get_mut("integration") {
            for integration in integrations {
                if let toml::Value::Table(table) = integration {
                    secrets.push(
                        table
                            .get("signing_secret_file")
                            .and_then(|f| f.as_str())
                            .map(|f| {
                                evo_siem_protocol::Secret::new(std::fs::read_to_string(f).unwrap())
                            }),
                    );
                    custom.push(
                        table
                            .get("headers")
                            .and_then(|h| h.as_table())
                            .map(|h| h.keys().map(|k| k.to_ascii_lowercase()).collect())
                            .unwrap_or_default(),
                    );
                    let target = table["webhook_url"].as_str().unwrap().to_owned();
                    table.insert(
                        "webhook_url".into(),
                        format!("{base}/{}", targets.len()).into(),
                    );
                    targets.push(target);
                }
            }
        }
        let proxy = Arc::new(Proxy {
            targets,
            secrets,
            custom,
            stamps: Default::default(),
            lie: self.lie,
            client: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(5))
                .build()?,
        });
        let app = Router::new()
            .route("/{index}", post(forward))
            .with_state(proxy);
        self.proxies.push(tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        }));
        self.inner.start(&config).await
    }
    async fn kill(&mut self) {
        self.inner.kill().await;
        self.proxies.drain(..).for_each(|p| p.abort());
    }
    async fn stop(&mut self) {
        self.inner.stop().await;
        self.proxies.drain(..).for_each(|p| p.abort());
    }
}

#[test]
fn a_sender_that_drops_a_batch_on_5xx_is_caught() {
    let report = sender::run(&impatient(12), || Lying::new(Lie::SuccessOn5xx));
    assert_caught(&report, Property::AtLeastOnce);
}

#[test]
fn a_sender_that_drops_a_batch_refused_as_stale_is_caught_by_the_clock_skew() {
    // No case of the property tests answers 401: only the clock-skew scenario sees it.
    let report = sender::run(&impatient(2), || Lying::new(Lie::SuccessOn401));
    assert_caught(&report, Property::AtLeastOnce);
    assert_eq!(
        report.failure.as_ref().map(|f| f.case.as_str()),
        Some("the clock-skew scenario")
    );
    let skew = report.clock_skew.as_ref().expect("measured");
    assert!(skew.lost > 0, "{skew:?}");
}

#[test]
fn a_sender_that_does_not_sign_is_caught() {
    let report = sender::run(&impatient(4), || Lying::new(Lie::StripSignature));
    assert_caught(&report, Property::Envelope);
}

#[test]
fn a_sender_that_changes_the_delivery_id_on_retry_is_caught() {
    // Fresh ids on retries do not break a receiver's dedup (it dedups by event), but they break
    // the contract's promise that lets a SIEM tell a retry from a new batch.
    let report = sender::run(&impatient(12), || Lying::new(Lie::FreshDeliveryIds));
    assert_caught(&report, Property::DeliveryIds);
}

#[test]
fn a_sender_that_reorders_events_is_caught() {
    let report = sender::run(&impatient(8), || Lying::new(Lie::ReverseEvents));
    assert_caught(&report, Property::Order);
}

#[test]
fn a_sender_that_leaves_out_the_integration_headers_is_caught() {
    let report = sender::run(&impatient(8), || Lying::new(Lie::DropIntegrationHeaders));
    assert_caught(&report, Property::Headers);
}

#[test]
fn a_sender_that_drops_a_field_of_an_event_is_caught() {
    let report = sender::run(&impatient(4), || Lying::new(Lie::DropField));
    assert_caught(&report, Property::AtLeastOnce);
}

#[test]
fn a_sender_that_rounds_large_integers_is_caught() {
    let report = sender::run(&impatient(4), || Lying::new(Lie::RoundIntegers));
    assert_caught(&report, Property::AtLeastOnce);
}

#[test]
fn a_sender_that_reuses_the_first_attempts_generated_at_is_caught() {
    let report = sender::run(&impatient(12), || Lying::new(Lie::ReuseStamp));
    assert_caught(&report, Property::Envelope);
}

/// A spool that leaves the lease out: the real PostgreSQL spool for everything but what the
/// lease fences. It says it always holds the lease (`holds`), and reads and deletes the queue's
/// rows with the spool's own statements minus their lease condition, so that an instance
/// delivers whatever is queued, whoever holds the integration's lease.
#[derive(Debug)]
struct LeaseBlind {
    inner: Arc<dyn Spool>,
    db: Arc<tokio_postgres::Client>,
}

use evo_siem_sender::spool::{
    Backlog, BacklogSummary, DeadLetterPage, Hold, NewEvent, ReplayPage, Spool, SpoolError,
    SpoolFuture, SpooledEvent,
};

impl Spool for LeaseBlind {
    fn append(&self, integration: &str, events: Vec<NewEvent>) -> SpoolFuture<'_, ()> {
        self.inner.append(integration, events)
    }
    fn pending(&self, integration: &str, limit: usize) -> SpoolFuture<'_, Vec<SpooledEvent>> {
        let integration = integration.to_owned();
        Box::pin(async move {
            let rows = self
                .db
                .query(
                    "SELECT id, action, json FROM spool_events WHERE integration = $1
                     ORDER BY id LIMIT $2",
                    &[&integration, &(limit as i64)],
                )
                .await
                .map_err(SpoolError::Postgres)?;
            Ok(rows
                .iter()
                .map(|r| SpooledEvent {
                    id: r.get(0),
                    action: r.get(1),
                    json: r.get(2),
                })
                .collect())
        })
    }
    fn ack(&self, integration: &str, ids: Vec<i64>) -> SpoolFuture<'_, ()> {
        let integration = integration.to_owned();
        Box::pin(async move {
            self.db
                .execute(
                    "WITH gone AS (
                        DELETE FROM spool_events WHERE integration = $1 AND id = ANY($2)
                        RETURNING size)
                     UPDATE spool_backlogs
                        SET events = events - (SELECT count(*) FROM gone),
                            bytes = bytes - (SELECT coalesce(sum(size), 0) FROM gone)
                     WHERE integration = $1",
                    &[&integration, &ids],
                )
                .await
                .map_err(SpoolError::Postgres)?;
            Ok(())
        })
    }
    fn dead_letter(&self, integration: &str, id: i64, reason: String) -> SpoolFuture<'_, ()> {
        self.inner.dead_letter(integration, id, reason)
    }
    fn dead_letters(
        &self,
        integration: &str,
        after: Option<i64>,
        limit: usize,
    ) -> SpoolFuture<'_, DeadLetterPage> {
        self.inner.dead_letters(integration, after, limit)
    }
    fn dead_letter_count(&self, integration: &str) -> SpoolFuture<'_, u64> {
        self.inner.dead_letter_count(integration)
    }
    fn backlog(&self, integration: &str) -> SpoolFuture<'_, Backlog> {
        self.inner.backlog(integration)
    }
    fn queued(&self) -> SpoolFuture<'_, Vec<String>> {
        self.inner.queued()
    }
    fn oldest(&self, integration: &str) -> SpoolFuture<'_, Option<std::time::SystemTime>> {
        self.inner.oldest(integration)
    }
    fn replay(&self, integration: &str, ids: Vec<i64>) -> SpoolFuture<'_, u64> {
        self.inner.replay(integration, ids)
    }
    fn replay_page(
        &self,
        integration: &str,
        through: Option<i64>,
        limit: usize,
    ) -> SpoolFuture<'_, ReplayPage> {
        self.inner.replay_page(integration, through, limit)
    }
    fn lease_ttl(&self) -> Option<std::time::Duration> {
        self.inner.lease_ttl()
    }
    fn keep_leases(&self) -> SpoolFuture<'_, Vec<String>> {
        self.inner.keep_leases()
    }
    /// The check left out.
    fn holds(&self, _integration: &str, _hold: Hold) -> bool {
        true
    }
    fn arrivals(&self) -> Option<tokio::sync::mpsc::Receiver<String>> {
        self.inner.arrivals()
    }
    fn release(&self, integration: &str) -> SpoolFuture<'_, ()> {
        self.inner.release(integration)
    }
    fn leave(&self) -> SpoolFuture<'_, ()> {
        self.inner.leave()
    }
    fn backlog_summary(&self, oldest: usize) -> SpoolFuture<'_, BacklogSummary> {
        self.inner.backlog_summary(oldest)
    }
}

/// Several real senders, in this process, on one PostgreSQL spool (a scratch database per
/// case), as `Cluster` runs them as child processes; `blind` wraps each one's spool in
/// [`LeaseBlind`]. A restart stops one instance, in turn, and starts it again.
struct InProcessCluster {
    blind: bool,
    instances: usize,
    dir: tempfile::TempDir,
    running: Vec<Option<evo_siem_sender::service::Sender>>,
    database: Option<evo_siem_sender::spool::scratch::ScratchDatabase>,
    next_kill: usize,
}

impl InProcessCluster {
    fn new(blind: bool) -> Self {
        evo_siem_test_services::postgres().expect("PostgreSQL for the shared spool");
        Self {
            blind,
            instances: 3,
            dir: tempfile::tempdir().unwrap(),
            running: Vec::new(),
            database: None,
            next_kill: 0,
        }
    }
}

impl SenderUnderTest for InProcessCluster {
    async fn start(&mut self, config: &toml::Table) -> Result<SocketAddr, StartError> {
        if self.database.is_none() {
            self.database = Some(evo_siem_sender::spool::scratch::ScratchDatabase::create().await?);
        }
        let url = self
            .database
            .as_ref()
            .map(|d| d.url().to_owned())
            .unwrap_or_default();
        let url_file = self.dir.path().join("spool-url");
        std::fs::write(&url_file, &url)?;
        let data_dir = config["data_dir"].as_str().unwrap_or("data").to_owned();
        self.running.resize_with(self.instances, || None);
        for (i, slot) in self.running.iter_mut().enumerate() {
            if slot.is_some() {
                continue;
            }
            let mut config = config.clone();
            config.insert("data_dir".into(), format!("{data_dir}/instance-{i}").into());
            let mut spool = toml::Table::new();
            spool.insert("backend".into(), "postgres".into());
            spool.insert(
                "url_file".into(),
                url_file.to_string_lossy().into_owned().into(),
            );
            spool.insert("pool_size".into(), 4.into());
            spool.insert("lease_ttl_ms".into(), 1_000.into());
            config.insert("spool".into(), spool.into());
            let config: evo_siem_sender::service::Config = toml::Table::try_into(config)?;
            let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
            tokio::spawn(connection);
            let db = Arc::new(client);
            let blind = self.blind;
            let sender =
                evo_siem_sender::service::Sender::start_with_spool_layer(&config, move |inner| {
                    if blind {
                        Arc::new(LeaseBlind { inner, db })
                    } else {
                        inner
                    }
                })
                .await?;
            *slot = Some(sender);
        }
        Ok(self.ingest_addrs()[0])
    }
    async fn kill(&mut self) {
        let i = self.next_kill % self.instances;
        self.next_kill += 1;
        if let Some(Some(sender)) = self.running.get_mut(i).map(Option::take) {
            sender.shutdown().await;
        }
    }
    async fn stop(&mut self) {
        for slot in &mut self.running {
            if let Some(sender) = slot.take() {
                sender.shutdown().await;
            }
        }
        let database = self.database.take();
        let _ = tokio::task::spawn_blocking(move || drop(database)).await;
    }
    fn ingest_addrs(&self) -> Vec<SocketAddr> {
        self.running.iter().flatten().map(|s| s.addr()).collect()
    }
}

#[test]
fn a_sender_that_leaves_the_lease_out_on_postgresql_is_caught() {
    // The same cluster with the lease honoured passes: what is caught is the lease left out.
    let control = sender::run(
        &SuiteOptions {
            clock_skew: false,
            ..options(4)
        },
        || InProcessCluster::new(false),
    );
    assert!(control.failure.is_none(), "{}", sender::table(&control));
    let report = sender::run(
        &SuiteOptions {
            clock_skew: false,
            ..impatient(24)
        },
        || InProcessCluster::new(true),
    );
    assert_caught(&report, Property::Order);
}

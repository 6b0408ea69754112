//! The scheduler: an idle integration costs no spool query, a marked one is delivered, a hanging
//! SIEM delays only its own integration, and a removed integration stops at once.

use evo_siem_sender::dispatch::{DispatchSettings, Dispatcher};
use evo_siem_sender::retry::Backoff;
use evo_siem_sender::schedule::{Scheduler, SchedulerOptions, StatsMap, stats_entry};
use evo_siem_sender::spool::{
    Backlog, BacklogLimits, BacklogSummary, DeadLetterPage, Hold, NewEvent, ReplayPage, Spool,
    SpoolFuture, SpooledEvent, SqliteSpool,
};
use evo_siem_sender::{settings::IntegrationSettings, store::Registry};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

/// A spool that counts the reads of queues, to prove what the scheduler does not do.
#[derive(Debug)]
struct Counting {
    inner: SqliteSpool,
    pending: AtomicU64,
}

impl Spool for Counting {
    fn append(&self, integration: &str, events: Vec<NewEvent>) -> SpoolFuture<'_, ()> {
        self.inner.append(integration, events)
    }
    fn pending(&self, integration: &str, limit: usize) -> SpoolFuture<'_, Vec<SpooledEvent>> {
        self.pending.fetch_add(1, Ordering::Relaxed);
        self.inner.pending(integration, limit)
    }
    fn ack(&self, integration: &str, ids: Vec<i64>) -> SpoolFuture<'_, ()> {
        self.inner.ack(integration, ids)
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
    fn oldest(&self, integration: &str) -> SpoolFuture<'_, Option<SystemTime>> {
        self.inner.oldest(integration)
    }
    fn replay(&self, integration: &str, ids: Vec<i64>) -> SpoolFuture<'_, u64> {
        self.inner.replay(integration, ids)
    }
    fn backlog_summary(&self, oldest: usize) -> SpoolFuture<'_, BacklogSummary> {
        self.inner.backlog_summary(oldest)
    }
    fn replay_page(
        &self,
        integration: &str,
        through: Option<i64>,
        limit: usize,
    ) -> SpoolFuture<'_, ReplayPage> {
        self.inner.replay_page(integration, through, limit)
    }
    fn holds(&self, integration: &str, hold: Hold) -> bool {
        self.inner.holds(integration, hold)
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    spool: Arc<Counting>,
    registry: Arc<Registry>,
    stats: StatsMap,
    scheduler: Scheduler,
    _stop: tokio::sync::watch::Sender<bool>,
}

fn allowed() -> Vec<ipnet::IpNet> {
    vec!["127.0.0.1/32".parse().unwrap()]
}

fn settings(tenant: &str, url: &str) -> IntegrationSettings {
    IntegrationSettings {
        tenant: tenant.to_owned(),
        webhook_url: url.to_owned(),
        signing_secret: None,
        next_signing_secret: None,
        headers: Default::default(),
        signature_schemes: evo_siem_sender::settings::default_signature_schemes(),
        excluded_actions: Vec::new(),
        max_batch_events: None,
        max_batch_bytes: None,
        linger_ms: Some(0),
    }
}

/// A scheduler over `integrations` (tenant, URL), with `queued` events already in the spool.
async fn start(integrations: &[(String, String)], queued: &[(&str, usize)]) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let spool = Arc::new(Counting {
        inner: SqliteSpool::open(&dir.path().join("spool.db"), BacklogLimits::default()).unwrap(),
        pending: AtomicU64::new(0),
    });
    for (tenant, count) in queued {
        spool
            .append(tenant, (0..*count).map(event).collect())
            .await
            .unwrap();
    }
    let registry = Arc::new(Registry::open(dir.path(), allowed(), None).unwrap());
    for (tenant, url) in integrations {
        registry.put(&settings(tenant, url)).unwrap();
    }
    let dispatcher = Dispatcher::new(&DispatchSettings {
        timeout: Duration::from_secs(30),
        allowed: allowed(),
        ..DispatchSettings::default()
    })
    .unwrap();
    let stats = StatsMap::default();
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let (scheduler, _task) = Scheduler::start(
        registry.clone(),
        spool.clone(),
        dispatcher,
        Backoff::new(Duration::from_millis(10), Duration::from_millis(40)).unwrap(),
        stats.clone(),
        SchedulerOptions::default(),
        shutdown,
    );
    Fixture {
        _dir: dir,
        spool,
        registry,
        stats,
        scheduler,
        _stop: stop,
    }
}

fn event(n: usize) -> NewEvent {
    NewEvent {
        action: "User login".into(),
        json: crate::common::event_json(n, "User login").to_string(),
    }
}

async fn wait_until(what: &str, within: Duration, done: impl Fn() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < within, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn delivered(fx: &Fixture, tenant: &str) -> u64 {
    stats_entry(&fx.stats, tenant)
        .delivered
        .load(Ordering::Relaxed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_integrations_cost_no_spool_reads_and_a_marked_one_is_delivered() {
    let siem = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&siem)
        .await;
    let url = format!("{}/webhook", siem.uri());
    let integrations: Vec<(String, String)> = (0..1000)
        .map(|n| (format!("tenant-{n}"), url.clone()))
        .collect();
    // One integration has events left from a previous run: found at start, without polling.
    let fx = start(&integrations, &[("tenant-7", 3)]).await;
    wait_until("the queued events", Duration::from_secs(5), || {
        delivered(&fx, "tenant-7") == 3
    })
    .await;
    let reads = fx.spool.pending.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        fx.spool.pending.load(Ordering::Relaxed),
        reads,
        "idle integrations were polled"
    );

    fx.spool
        .append("tenant-500", (0..2).map(event).collect())
        .await
        .unwrap();
    fx.scheduler.mark("tenant-500");
    wait_until("the marked events", Duration::from_secs(5), || {
        delivered(&fx, "tenant-500") == 2
    })
    .await;
    assert!(
        fx.spool.pending.load(Ordering::Relaxed) - reads <= 3,
        "more than the marked queue was read"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_siem_does_not_delay_a_healthy_one() {
    let hanging = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(30)))
        .mount(&hanging)
        .await;
    let healthy = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&healthy)
        .await;
    let fx = start(
        &[
            ("stuck".into(), format!("{}/webhook", hanging.uri())),
            ("fine".into(), format!("{}/webhook", healthy.uri())),
        ],
        &[("stuck", 5)],
    )
    .await;
    // The stuck one is in its attempt; now the healthy one gets events.
    let started = Instant::now();
    while hanging.received_requests().await.unwrap().is_empty() {
        assert!(started.elapsed() < Duration::from_secs(5), "no attempt");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    fx.spool
        .append("fine", (0..5).map(event).collect())
        .await
        .unwrap();
    fx.scheduler.mark("fine");
    wait_until(
        "the healthy SIEM's delivery",
        Duration::from_secs(1),
        || delivered(&fx, "fine") == 5,
    )
    .await;
    assert_eq!(fx.spool.backlog("stuck").await.unwrap().events, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_integration_stops_its_attempt_in_flight() {
    use tokio::io::AsyncReadExt;
    // A SIEM that reads the request and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/webhook", listener.local_addr().unwrap());
    let fx = start(&[("gone".into(), url)], &[("gone", 2)]).await;
    let (mut conn, _) = tokio::time::timeout(Duration::from_secs(5), listener.accept())
        .await
        .expect("no attempt")
        .unwrap();
    let mut request = vec![0u8; 64 * 1024];
    let read = conn.read(&mut request).await.unwrap();
    assert!(read > 0);

    fx.registry.remove("gone").unwrap();
    // The attempt is dropped at once: the sender closes the connection long before its 30 s
    // timeout.
    let closed = tokio::time::timeout(Duration::from_secs(3), async {
        loop {
            match conn.read(&mut request).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the attempt went on after the removal");
    // No new attempt, nothing delivered, the events stay queued for a re-created integration.
    let again = tokio::time::timeout(Duration::from_millis(500), listener.accept()).await;
    assert!(again.is_err(), "a removed integration was attempted again");
    assert_eq!(delivered(&fx, "gone"), 0);
    assert_eq!(fx.spool.backlog("gone").await.unwrap().events, 2);
}

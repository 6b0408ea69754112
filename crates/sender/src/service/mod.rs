//! The sender service: the ingest API, the delivery scheduler, graceful shutdown.

mod config;
mod ingest;
pub mod limits;
mod listener;

pub use config::{
    Config, ConfigError, DeliveryConfig, HeaderValueConfig, IntegrationConfig, ListenerConfig,
    SecretsConfig, SpoolBackend, SpoolConfig,
};

use crate::DeliveryStats;
use crate::admin::{self, TokenStore};
use crate::dispatch::Dispatcher;
use crate::registry::Registry;
use crate::schedule::{Scheduler, SchedulerOptions, StatsMap};
use crate::shared::{Freshness, SYNC_EVERY, Seen, SharedState};
use crate::spool::{PostgresSpool, Spool, SqliteSpool};
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{MethodRouter, get, post};
use limits::{BodyLimit, MAX_SETTINGS_BYTES, MAX_SMALL_BYTES};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// The largest ingest request body, in bytes.
pub const MAX_INGEST_BYTES: usize = 16 * 1024 * 1024;

/// How long shutdown waits for attempts in flight.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// How long shutdown waits for ingest requests in progress before closing their connections.
pub const HTTP_GRACE: Duration = Duration::from_secs(2);

/// Why the service could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The spool could not be opened.
    #[error(transparent)]
    Spool(#[from] crate::spool::SpoolError),
    /// The listener or the HTTP client could not be set up.
    #[error("{0}")]
    Io(String),
}

/// What every request handler shares.
pub(crate) struct App {
    pub(crate) ingest_token: String,
    pub(crate) registry: Arc<Registry>,
    pub(crate) spool: Arc<dyn Spool>,
    pub(crate) tokens: Arc<TokenStore>,
    /// The outbound guard's allow-list, for validating webhook URLs.
    pub(crate) allowed: Vec<ipnet::IpNet>,
    /// Each integration's delivery counters.
    pub(crate) stats: StatsMap,
    /// The client of real deliveries, for "Test Saved Webhook".
    pub(crate) dispatcher: Dispatcher,
    pub(crate) test_limiter: admin::TestLimiter,
    /// Told of ingests and resumes.
    pub(crate) scheduler: Scheduler,
    /// What `/metrics` shows.
    pub(crate) metrics: crate::admin::metrics::MetricsConfig,
    /// On a PostgreSQL spool: the settings and tokens shared with the other instances.
    pub(crate) shared: Option<SharedState>,
    /// On a PostgreSQL spool: how fresh this instance's copy of them is.
    pub(crate) freshness: Option<Arc<Freshness>>,
}

/// A running sender.
#[derive(Debug)]
pub struct Sender {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
    stats: StatsMap,
    registry: Arc<Registry>,
}

impl Sender {
    /// Opens the spool and the integration store (seeding it from the file), starts a worker per
    /// integration and the ingest API.
    pub async fn start(config: &Config) -> Result<Self, ServiceError> {
        let ingest_token = config.ingest_token()?;
        config.listener.check()?;
        crate::data_dir::prepare(config)?;
        let registry = Arc::new(
            Registry::open(
                &config.data_dir,
                config.allow_private_targets.clone(),
                config.secrets.key()?,
            )
            .map_err(|e| ServiceError::Io(e.to_string()))?,
        );
        let tokens = Arc::new(
            TokenStore::open(&config.data_dir).map_err(|e| ServiceError::Io(e.to_string()))?,
        );
        let (spool, shared): (Arc<dyn Spool>, Option<SharedState>) = match config
            .spool
            .postgres()?
        {
            Some(options) => {
                let spool = PostgresSpool::connect(options, config.backlog_limits()).await?;
                let tls = spool.encrypted().await?;
                tracing::info!(
                    instance = spool.instance(),
                    tls,
                    "spool: PostgreSQL, shared with the other instances"
                );
                let shared = spool.shared().with_key(registry.key().cloned());
                // Secrets the previous version stored in plaintext: sealed before use.
                let sealed = shared
                    .seal_plaintext()
                    .await
                    .map_err(|e| ServiceError::Io(e.to_string()))?;
                if sealed > 0 {
                    tracing::info!(
                        integrations = sealed,
                        "shared secrets stored in plaintext by an earlier version are now encrypted"
                    );
                }
                (Arc::new(spool), Some(shared))
            }
            None => (
                Arc::new(SqliteSpool::open(
                    &config.data_dir.join("spool.db"),
                    config.backlog_limits(),
                )?),
                None,
            ),
        };
        let from_file = config.settings()?;
        let applied = match &shared {
            // Several instances: the file is applied once for all of them.
            Some(shared) => {
                let mut applied = Vec::new();
                for settings in &from_file {
                    if shared
                        .seed(settings)
                        .await
                        .map_err(|e| ServiceError::Io(e.to_string()))?
                    {
                        applied.push(settings.tenant.clone());
                    }
                }
                applied
            }
            None => registry
                .seed_all(&from_file)
                .map_err(|e| ServiceError::Io(e.to_string()))?,
        };
        for tenant in &applied {
            tracing::info!(
                tenant,
                "integration settings applied from the configuration file"
            );
        }
        let mut seen = Seen::default();
        if let Some(shared) = &shared {
            shared
                .sync(&mut seen, &registry, &tokens)
                .await
                .map_err(|e| ServiceError::Io(e.to_string()))?;
        }
        let settings = config
            .delivery
            .dispatch(config.allow_private_targets.clone())?;
        let backoff = config.delivery.backoff()?;
        let dispatcher = Dispatcher::new(&settings).map_err(|e| ServiceError::Io(e.to_string()))?;
        let (stop, shutdown) = watch::channel(false);
        let mut tasks = JoinSet::new();
        let stats = StatsMap::default();
        let (scheduler, scheduling) = Scheduler::start(
            registry.clone(),
            spool.clone(),
            dispatcher.clone(),
            backoff,
            stats.clone(),
            SchedulerOptions::default(),
            shutdown.clone(),
        );
        tasks.spawn(async move {
            if let Err(err) = scheduling.await {
                tracing::error!(error = %err, "the scheduler stopped");
            }
        });
        let freshness = shared.as_ref().map(|_| {
            Arc::new(Freshness::new(Duration::from_millis(
                config.spool.max_staleness_ms,
            )))
        });
        if let (Some(shared), Some(freshness)) = (&shared, &freshness) {
            tasks.spawn(follow(
                shared.clone(),
                seen,
                Copies {
                    registry: registry.clone(),
                    tokens: tokens.clone(),
                    freshness: freshness.clone(),
                },
                scheduler.clone(),
                shutdown.clone(),
            ));
        }
        let app = Arc::new(App {
            ingest_token,
            registry: registry.clone(),
            spool,
            tokens,
            allowed: config.allow_private_targets.clone(),
            stats: stats.clone(),
            dispatcher,
            test_limiter: admin::TestLimiter::default(),
            scheduler,
            metrics: config.metrics,
            shared,
            freshness,
        });
        // Each route reads its body under a limit fitting its job (see `limits`).
        let listen = config.listener;
        let limited = |route: MethodRouter<Arc<App>>, max: usize| {
            route.layer(axum::middleware::from_fn_with_state(
                BodyLimit {
                    max,
                    grace: Duration::from_millis(listen.body_timeout_ms),
                    min_bytes_per_sec: listen.body_min_bytes_per_sec,
                },
                limits::guard,
            ))
        };
        let router = Router::new()
            .route(
                "/v1/tenants/{tenant}/audit-events",
                limited(post(ingest::ingest), MAX_INGEST_BYTES),
            )
            .route(
                "/v1/tenants/{tenant}/siem-integration",
                limited(
                    get(admin::settings::get)
                        .put(admin::settings::put)
                        .delete(admin::settings::delete),
                    MAX_SETTINGS_BYTES,
                ),
            )
            .route(
                "/v1/tenants/{tenant}/siem-integration/test",
                limited(post(admin::webhook_test::test), MAX_SMALL_BYTES),
            )
            .route(
                "/v1/tenants/{tenant}/siem-integration/status",
                limited(get(admin::operations::status), MAX_SMALL_BYTES),
            )
            .route(
                "/v1/tenants/{tenant}/siem-integration/dead-letters",
                limited(get(admin::operations::dead_letters), MAX_SMALL_BYTES),
            )
            .route(
                "/v1/tenants/{tenant}/siem-integration/dead-letters/replay",
                limited(post(admin::operations::replay), MAX_SMALL_BYTES),
            )
            .route(
                "/v1/tenants/{tenant}/siem-integration/resume",
                limited(post(admin::operations::resume), MAX_SMALL_BYTES),
            )
            .route(
                "/metrics",
                limited(get(admin::metrics::metrics), MAX_SMALL_BYTES),
            )
            .route(
                "/v1/openapi.json",
                limited(get(admin::openapi), MAX_SMALL_BYTES),
            )
            .route("/healthz", limited(get(|| async { "ok" }), MAX_SMALL_BYTES))
            // The guard has buffered the body by then; the extractors' own limit (2 MB by
            // default) must not cut an ingest below its 16 MiB.
            .layer(DefaultBodyLimit::max(MAX_INGEST_BYTES))
            .with_state(app);
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|e| ServiceError::Io(e.to_string()))?;
        let addr = listener
            .local_addr()
            .map_err(|e| ServiceError::Io(e.to_string()))?;
        let options = listener::ListenerOptions {
            max_connections: listen.max_connections,
            header_timeout: Duration::from_millis(listen.header_timeout_ms),
        };
        tasks.spawn(listener::serve(
            listener, router, options, shutdown, HTTP_GRACE,
        ));
        tracing::info!(%addr, "sender listening");
        Ok(Self {
            addr,
            stop,
            tasks,
            stats,
            registry,
        })
    }

    /// The ingest API's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The delivery counters of `tenant`'s integration.
    pub fn stats(&self, tenant: &str) -> Option<Arc<DeliveryStats>> {
        self.stats
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(tenant)
            .cloned()
    }

    /// The integrations in force; changes apply without a restart.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// Stops taking events, lets attempts in flight finish (up to [`SHUTDOWN_GRACE`]), and stops.
    /// Whatever was not delivered stays in the spool for the next start.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                "attempts still in flight after the grace period; they will be retried at the next start"
            );
            self.tasks.abort_all();
        }
    }
}

/// This instance's copies of the shared state, and how fresh they are.
struct Copies {
    registry: Arc<Registry>,
    tokens: Arc<TokenStore>,
    freshness: Arc<Freshness>,
}

/// Keeps this instance's copy of the shared settings and tokens current (see [`SharedState`]).
async fn follow(
    shared: SharedState,
    mut seen: Seen,
    copies: Copies,
    scheduler: Scheduler,
    mut shutdown: watch::Receiver<bool>,
) {
    let Copies {
        registry,
        tokens,
        freshness,
    } = copies;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(SYNC_EVERY) => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
        match shared.sync(&mut seen, &registry, &tokens).await {
            Ok(resumed) => {
                freshness.synced();
                // A resume asked of another instance: this one may hold the lease.
                for tenant in resumed {
                    scheduler.resume(&tenant);
                }
            }
            Err(err) => tracing::warn!(error = %err, "shared settings not synchronised; retrying"),
        }
    }
}

/// Runs the sender until SIGTERM or Ctrl-C, then shuts it down gracefully.
pub async fn run(config: &Config) -> Result<(), ServiceError> {
    let sender = Sender::start(config).await?;
    wait_for_signal().await;
    tracing::info!("shutting down");
    sender.shutdown().await;
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

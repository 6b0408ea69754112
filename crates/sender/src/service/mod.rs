//! The sender service: start-up wiring (configuration, spool, integration store, scheduler,
//! listener) and graceful shutdown. The work itself is done below: the HTTP API in
//! [`crate::api`], delivery in [`crate::schedule`], storage in [`crate::spool`] and
//! [`crate::store`].

pub mod commands;
mod config;
mod data_dir;
mod listener;

pub use crate::api::MAX_INGEST_BYTES;
pub use config::{
    Config, ConfigError, DeliveryConfig, HeaderValueConfig, IntegrationConfig, ListenerConfig,
    SecretsConfig, SpoolBackend, SpoolConfig,
};

use crate::DeliveryStats;
use crate::api::{self, App, BodyPace};
use crate::dispatch::Dispatcher;
use crate::schedule::{Scheduler, SchedulerOptions, StatsMap};
use crate::spool::{PostgresSpool, Spool, SqliteSpool};
use crate::store::{IntegrationStore, Registry, SharedState, StoreError};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinSet;

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
    /// The integration store could not be opened or seeded.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The HTTP client of deliveries could not be built.
    #[error("cannot build the delivery client: {0}")]
    Client(#[source] reqwest::Error),
    /// The listener could not be bound.
    #[error("cannot listen on the configured address: {0}")]
    Listen(#[source] std::io::Error),
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
        Self::start_with_spool_layer(config, |spool| spool).await
    }

    /// Like [`Sender::start`], with the spool the configuration opens passed through `layer`
    /// before the ingest API and the scheduler get it: a seam for the conformance suite's own
    /// tests, which wrap the spool to build deliberately broken senders (one that leaves the
    /// lease out on PostgreSQL), and for instrumentation. The `evo-siem` binary never calls it;
    /// [`Sender::start`] is this with the spool unchanged. The integration store's shared state
    /// is opened on the spool before `layer` sees it.
    pub async fn start_with_spool_layer(
        config: &Config,
        layer: impl FnOnce(Arc<dyn Spool>) -> Arc<dyn Spool>,
    ) -> Result<Self, ServiceError> {
        let ingest_token = config.ingest_token()?;
        config.listener.check()?;
        data_dir::prepare(config)?;
        let store = IntegrationStore::open(
            &config.data_dir,
            config.allow_private_targets.clone(),
            config.secrets.key()?,
        )?;
        let (spool, store): (Arc<dyn Spool>, IntegrationStore) = match config.spool.postgres()? {
            Some(options) => {
                let spool = PostgresSpool::connect(options, config.backlog_limits()).await?;
                let tls = spool.encrypted().await?;
                tracing::info!(
                    instance = spool.instance(),
                    tls,
                    "spool: PostgreSQL, shared with the other instances"
                );
                let max_staleness = Duration::from_millis(config.spool.max_staleness_ms);
                let store = store.share(SharedState::on(&spool), max_staleness).await?;
                (Arc::new(spool), store)
            }
            None => (
                Arc::new(SqliteSpool::open(
                    &config.data_dir.join("spool.db"),
                    config.backlog_limits(),
                )?),
                store,
            ),
        };
        let spool = layer(spool);
        let store = Arc::new(store);
        for tenant in store.seed(&config.settings()?).await? {
            tracing::info!(
                tenant,
                "integration settings applied from the configuration file"
            );
        }
        let registry = store.registry().clone();
        let settings = config
            .delivery
            .dispatch(config.allow_private_targets.clone())?;
        let backoff = config.delivery.backoff()?;
        let dispatcher = Dispatcher::new(&settings).map_err(ServiceError::Client)?;
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
        let resumes = scheduler.clone();
        if let Some(follow) = store.follow(move |tenant| resumes.resume(tenant), shutdown.clone()) {
            tasks.spawn(follow);
        }
        let app = Arc::new(App {
            ingest_token,
            store,
            registry: registry.clone(),
            spool,
            allowed: config.allow_private_targets.clone(),
            stats: stats.clone(),
            dispatcher,
            scheduler,
            metrics: config.metrics,
        });
        let listen = config.listener;
        let router = api::router(
            app,
            BodyPace {
                grace: Duration::from_millis(listen.body_timeout_ms),
                min_bytes_per_sec: listen.body_min_bytes_per_sec,
            },
        );
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(ServiceError::Listen)?;
        let addr = listener.local_addr().map_err(ServiceError::Listen)?;
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

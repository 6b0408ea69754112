//! The sender service: the ingest API, one delivery worker per integration, graceful shutdown.

mod config;
mod ingest;

pub use config::{Config, ConfigError, IntegrationConfig};

use crate::dispatch::{DispatchSettings, Dispatcher};
use crate::retry::Backoff;
use crate::spool::{Spool, SqliteSpool};
use crate::{DeliveryStats, Integration, Worker};
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// The largest ingest request body, in bytes.
pub const MAX_INGEST_BYTES: usize = 16 * 1024 * 1024;

/// How long shutdown waits for attempts in flight.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

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

pub(crate) struct App {
    ingest_token: String,
    integrations: HashMap<String, Arc<Integration>>,
    spool: Arc<dyn Spool>,
}

/// A running sender.
#[derive(Debug)]
pub struct Sender {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
    stats: HashMap<String, Arc<DeliveryStats>>,
}

impl Sender {
    /// Opens the spool, starts a worker per integration and the ingest API.
    pub async fn start(config: &Config) -> Result<Self, ServiceError> {
        let integrations = config.integrations()?;
        let ingest_token = config.ingest_token()?;
        let spool: Arc<dyn Spool> = Arc::new(SqliteSpool::open(
            &config.data_dir.join("spool.db"),
            config.backlog_limits(),
        )?);
        let settings = DispatchSettings {
            allowed: config.allow_private_targets.clone(),
            ..DispatchSettings::default()
        };
        let dispatcher = Dispatcher::new(&settings).map_err(|e| ServiceError::Io(e.to_string()))?;
        let (stop, shutdown) = watch::channel(false);
        let mut tasks = JoinSet::new();
        let mut stats = HashMap::new();
        let mut by_tenant = HashMap::new();
        for integration in integrations {
            let integration = Arc::new(integration);
            let worker = Worker::new(
                spool.clone(),
                dispatcher.clone(),
                integration.clone(),
                Backoff::default(),
            );
            stats.insert(integration.tenant().to_owned(), worker.stats());
            let shutdown = shutdown.clone();
            let tenant = integration.tenant().to_owned();
            tasks.spawn(async move {
                if let Err(err) = worker.run(shutdown).await {
                    tracing::error!(tenant, error = %err, "delivery worker stopped");
                }
            });
            by_tenant.insert(integration.tenant().to_owned(), integration);
        }
        let app = Arc::new(App {
            ingest_token,
            integrations: by_tenant,
            spool,
        });
        let router = Router::new()
            .route("/v1/tenants/{tenant}/audit-events", post(ingest::ingest))
            .route("/healthz", get(|| async { "ok" }))
            .layer(DefaultBodyLimit::max(MAX_INGEST_BYTES))
            .with_state(app);
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|e| ServiceError::Io(e.to_string()))?;
        let addr = listener
            .local_addr()
            .map_err(|e| ServiceError::Io(e.to_string()))?;
        let mut http_shutdown = shutdown;
        tasks.spawn(async move {
            let stopping = async move {
                let _ = http_shutdown.wait_for(|stop| *stop).await;
            };
            if let Err(err) = axum::serve(listener, router)
                .with_graceful_shutdown(stopping)
                .await
            {
                tracing::error!(error = %err, "ingest API stopped");
            }
        });
        tracing::info!(%addr, "sender listening");
        Ok(Self {
            addr,
            stop,
            tasks,
            stats,
        })
    }

    /// The ingest API's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The delivery counters of `tenant`'s integration.
    pub fn stats(&self, tenant: &str) -> Option<Arc<DeliveryStats>> {
        self.stats.get(tenant).cloned()
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

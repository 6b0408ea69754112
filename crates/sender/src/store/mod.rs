//! The integration store: every tenant's integration settings and the admin API tokens, behind
//! one type, [`IntegrationStore`], whether the sender runs alone or as one of several instances.
//!
//! - Alone (SQLite spool): the settings and tokens live in `integrations.db` in the data
//!   directory ([`Registry`], [`TokenStore`]).
//! - Several instances (PostgreSQL spool): PostgreSQL holds the reference ([`SharedState`]);
//!   each instance keeps `integrations.db` as its copy, so that the hot paths (authenticating a
//!   request, reading an integration for a batch) stay local, and follows the reference
//!   ([`IntegrationStore::follow`]).
//!
//! The services (ingest, admin API, start-up) call the same methods either way; which
//! implementation answers is decided once, when the store is opened.

pub mod local;
pub mod shared;
mod test_runs;
pub mod tokens;

pub use local::{Registry, RegistryError};
pub use shared::{SharedError, SharedState};
pub use tokens::{Permission, Principal, TokenError, TokenRow, TokenStore};

use crate::settings::IntegrationSettings;
use shared::{Freshness, SYNC_EVERY, Seen};
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use test_runs::TestRuns;
use tokio::sync::watch;

/// Why the integration store could not answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// This instance's `integrations.db` failed, or settings were refused.
    #[error(transparent)]
    Local(#[from] RegistryError),
    /// The state shared with the other instances could not be read or changed.
    #[error(transparent)]
    Shared(#[from] SharedError),
    /// The token table failed.
    #[error(transparent)]
    Tokens(#[from] TokenError),
    /// This instance's copy of the shared tokens and settings is older than allowed: it cannot
    /// tell a revoked token from a valid one.
    #[error("the shared state could not be synchronised for {age:?}")]
    Stale {
        /// How long since the last successful sync.
        age: Duration,
    },
    /// A blocking task of the store did not complete.
    #[error("a task of the integration store failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// The integrations and tokens of this sender, local or shared with other instances.
#[derive(Debug)]
pub struct IntegrationStore {
    registry: Arc<Registry>,
    tokens: Arc<TokenStore>,
    backend: Backend,
}

/// Where the reference lives.
#[derive(Debug)]
enum Backend {
    /// In `integrations.db`: this instance is the only one.
    Local { test_runs: TestRuns },
    /// In PostgreSQL; `integrations.db` holds this instance's copy.
    Shared {
        state: SharedState,
        freshness: Arc<Freshness>,
        seen: tokio::sync::Mutex<Seen>,
    },
}

impl IntegrationStore {
    /// Opens the local store in `data_dir` (settings sealed under `key`, webhook URLs checked
    /// against the outbound guard's allow-list `allowed`).
    pub fn open(
        data_dir: &Path,
        allowed: Vec<ipnet::IpNet>,
        key: Option<crate::secrets::SecretsKey>,
    ) -> Result<Self, StoreError> {
        Ok(Self {
            registry: Arc::new(Registry::open(data_dir, allowed, key)?),
            tokens: Arc::new(TokenStore::open(data_dir)?),
            backend: Backend::Local {
                test_runs: TestRuns::default(),
            },
        })
    }

    /// Makes the shared state the reference: secrets a previous version stored there in
    /// plaintext are sealed, and admin requests are refused once this instance's copy is older
    /// than `max_staleness`. [`Self::seed`] then takes the shared state into the copy.
    pub async fn share(
        self,
        state: SharedState,
        max_staleness: Duration,
    ) -> Result<Self, StoreError> {
        let state = state.with_key(self.registry.key().cloned());
        let sealed = state.seal_plaintext().await?;
        if sealed > 0 {
            tracing::info!(
                integrations = sealed,
                "shared secrets stored in plaintext by an earlier version are now encrypted"
            );
        }
        Ok(Self {
            backend: Backend::Shared {
                state,
                freshness: Arc::new(Freshness::new(max_staleness)),
                seen: Default::default(),
            },
            ..self
        })
    }

    /// Applies the configuration file's integrations at start-up (see [`Registry::seed`]:
    /// the file wins when it changed since it was last applied, by any instance) and, with
    /// several instances, takes the shared state into this instance's copy. Returns the
    /// tenants whose file settings were applied.
    pub async fn seed(&self, from_file: &[IntegrationSettings]) -> Result<Vec<String>, StoreError> {
        match &self.backend {
            Backend::Local { .. } => {
                let registry = self.registry.clone();
                let all = from_file.to_vec();
                Ok(tokio::task::spawn_blocking(move || registry.seed_all(&all)).await??)
            }
            Backend::Shared { state, seen, .. } => {
                let applied = state.seed_all(from_file).await?;
                state
                    .sync(&mut *seen.lock().await, &self.registry, &self.tokens)
                    .await?;
                Ok(applied)
            }
        }
    }

    /// The integrations in force on this instance: what workers and ingest read on every use.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// Whether a secrets key is configured (settings holding a secret can be stored).
    pub fn has_key(&self) -> bool {
        self.registry.has_key()
    }

    /// With several instances, the task that keeps this instance's copy current: it checks the
    /// shared state every second and calls `resumed` for each tenant whose resume was asked of
    /// another instance (this one may hold the lease). `None` when this instance is alone.
    pub fn follow(
        self: &Arc<Self>,
        resumed: impl Fn(&str) + Send + 'static,
        mut shutdown: watch::Receiver<bool>,
    ) -> Option<impl Future<Output = ()> + Send + 'static> {
        if matches!(self.backend, Backend::Local { .. }) {
            return None;
        }
        let store = self.clone();
        Some(async move {
            let Backend::Shared {
                state,
                freshness,
                seen,
            } = &store.backend
            else {
                return;
            };
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(SYNC_EVERY) => {}
                    _ = shutdown.wait_for(|stop| *stop) => return,
                }
                let synced = state
                    .sync(&mut *seen.lock().await, &store.registry, &store.tokens)
                    .await;
                match synced {
                    Ok(tenants) => {
                        freshness.synced();
                        for tenant in tenants {
                            resumed(&tenant);
                        }
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, "shared settings not synchronised; retrying");
                    }
                }
            }
        })
    }

    /// The stored settings of `tenant`. With several instances they are read from the
    /// reference, so that a read after a write sees it whichever instance answers.
    pub async fn settings(&self, tenant: &str) -> Result<Option<IntegrationSettings>, StoreError> {
        match &self.backend {
            Backend::Shared { state, .. } => Ok(state.settings(tenant).await?),
            Backend::Local { .. } => {
                let registry = self.registry.clone();
                let tenant = tenant.to_owned();
                Ok(tokio::task::spawn_blocking(move || registry.settings(&tenant)).await??)
            }
        }
    }

    /// Checks and stores `settings`, and applies them on this instance at once (the others, if
    /// any, take them within a second).
    pub async fn put(&self, settings: &IntegrationSettings) -> Result<(), StoreError> {
        if let Backend::Shared { state, .. } = &self.backend {
            // Checked here first: the reference must not take what this instance refuses.
            settings
                .check(self.registry.allowed())
                .map_err(RegistryError::from)?;
            state.put(settings).await?;
        }
        let registry = self.registry.clone();
        let settings = settings.clone();
        tokio::task::spawn_blocking(move || registry.put(&settings)).await??;
        Ok(())
    }

    /// Removes `tenant`'s integration (its queued events stay in the spool); whether it had one.
    pub async fn remove(&self, tenant: &str) -> Result<bool, StoreError> {
        let shared = match &self.backend {
            Backend::Shared { state, .. } => Some(state.remove(tenant).await?),
            Backend::Local { .. } => None,
        };
        let registry = self.registry.clone();
        let name = tenant.to_owned();
        let local = tokio::task::spawn_blocking(move || registry.remove(&name)).await??;
        Ok(shared.unwrap_or(local))
    }

    /// Tells the other instances, if any, that `tenant`'s pause or backoff wait should end now:
    /// the instance holding its lease may not be the one that was asked.
    pub async fn resume(&self, tenant: &str) -> Result<(), StoreError> {
        if let Backend::Shared { state, .. } = &self.backend {
            state.resume(tenant).await?;
        }
        Ok(())
    }

    /// Counts a "Test Saved Webhook" run of `tenant` if fewer than `limit` ran in the last
    /// `window` (on every instance together); otherwise `Ok(Err(wait))`.
    pub async fn admit_test(
        &self,
        tenant: &str,
        limit: usize,
        window: Duration,
    ) -> Result<Result<(), Duration>, StoreError> {
        match &self.backend {
            Backend::Local { test_runs } => Ok(test_runs.admit(tenant, limit, window)),
            Backend::Shared { state, .. } => Ok(state.admit_test(tenant, limit, window).await?),
        }
    }

    /// The principal of a bearer `token`, `None` when absent, unknown, revoked or not shaped
    /// like a token (empty, or over 256 bytes: not looked up). With several instances, refused
    /// with [`StoreError::Stale`] first when this instance's copy of the tokens is older than
    /// allowed: it may still hold a token revoked elsewhere.
    pub async fn authenticate(&self, token: Option<&str>) -> Result<Option<Principal>, StoreError> {
        if let Backend::Shared { freshness, .. } = &self.backend
            && let Some(age) = freshness.stale()
        {
            return Err(StoreError::Stale { age });
        }
        let Some(token) = token.filter(|t| !t.is_empty() && t.len() <= 256) else {
            return Ok(None);
        };
        let tokens = self.tokens.clone();
        let token = token.to_owned();
        Ok(tokio::task::spawn_blocking(move || tokens.authenticate(&token)).await??)
    }
}

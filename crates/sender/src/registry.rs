//! [`Registry`]: the integrations the sender serves, kept in its own store so that they can change
//! while it runs (the configuration file only seeds them).
//!
//! Settings live in `integrations.db` beside the spool, one row a tenant, as JSON. Signing secrets
//! and header values are stored as given, so the data directory must be readable by the sender
//! only. Workers and the ingest API read the registry on every use, so a change applies to the
//! next batch without a restart.

use crate::batcher::BatchLimits;
use crate::{Exclusions, Integration, IntegrationError};
use evo_siem_protocol::Secret;
use ipnet::IpNet;
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

/// One tenant's integration settings as stored: everything needed to build an [`Integration`].
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntegrationSettings {
    /// The tenant.
    pub tenant: String,
    /// Where to deliver.
    pub webhook_url: String,
    /// The signing secret; batches are unsigned without one.
    #[serde(default)]
    pub signing_secret: Option<String>,
    /// A secret added beside the current one for a rotation: not used for signing until the
    /// rotation makes it the current one.
    #[serde(default)]
    pub next_signing_secret: Option<String>,
    /// Authorization headers, sent verbatim.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Audit actions not forwarded (exact match).
    #[serde(default)]
    pub excluded_actions: Vec<String>,
    /// Most events per batch (default 500).
    #[serde(default)]
    pub max_batch_events: Option<usize>,
    /// Most bytes per batch body (default 1 MiB).
    #[serde(default)]
    pub max_batch_bytes: Option<usize>,
    /// Most time the oldest event waits for a batch to fill, in milliseconds (default 1000).
    #[serde(default)]
    pub linger_ms: Option<u64>,
}

impl std::fmt::Debug for IntegrationSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IntegrationSettings")
            .field("tenant", &self.tenant)
            .field(
                "webhook_url",
                &crate::guard::redact_url_str(&self.webhook_url),
            )
            .field(
                "signing_secret",
                &self.signing_secret.as_ref().map(|_| "<redacted>"),
            )
            .field(
                "next_signing_secret",
                &self.next_signing_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("excluded_actions", &self.excluded_actions)
            .finish_non_exhaustive()
    }
}

/// Why settings were refused or could not be stored.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// The settings are invalid.
    #[error("integration {tenant}: {reason}")]
    Invalid {
        /// The tenant.
        tenant: String,
        /// What is wrong.
        reason: String,
    },
    /// The store failed.
    #[error("integration store: {0}")]
    Storage(String),
}

fn storage(err: impl std::fmt::Display) -> RegistryError {
    RegistryError::Storage(err.to_string())
}

impl IntegrationSettings {
    /// Checks the settings and builds the integration; `allowed` is the outbound guard's allow-list.
    pub fn build(&self, allowed: &[IpNet]) -> Result<Integration, RegistryError> {
        let invalid = |reason: String| RegistryError::Invalid {
            tenant: self.tenant.clone(),
            reason,
        };
        let defaults = BatchLimits::default();
        let limits = BatchLimits::new(
            self.max_batch_events.unwrap_or(defaults.max_events()),
            self.max_batch_bytes.unwrap_or(defaults.max_bytes()),
            self.linger_ms
                .map_or(defaults.linger(), Duration::from_millis),
        )
        .map_err(|e| invalid(e.to_string()))?;
        let mut integration = Integration::new(&self.tenant, &self.webhook_url, allowed)
            .map_err(|e: IntegrationError| invalid(e.to_string()))?
            .with_exclusions(Exclusions::new(self.excluded_actions.iter().cloned()))
            .with_limits(limits);
        if let Some(secret) = self.signing_secret.as_ref().filter(|s| !s.is_empty()) {
            integration = integration.with_secret(Secret::new(secret.clone()));
        }
        for (name, value) in &self.headers {
            integration = integration
                .with_header(name, value)
                .map_err(|e| invalid(e.to_string()))?;
        }
        Ok(integration)
    }
}

/// The integrations in force, backed by `integrations.db`.
#[derive(Debug)]
pub struct Registry {
    conn: Mutex<Connection>,
    allowed: Vec<IpNet>,
    current: RwLock<HashMap<String, Arc<Integration>>>,
    changed: tokio::sync::Notify,
}

impl Registry {
    /// Opens the store in `data_dir` and loads every integration in it.
    pub fn open(data_dir: &Path, allowed: Vec<IpNet>) -> Result<Self, RegistryError> {
        std::fs::create_dir_all(data_dir).map_err(storage)?;
        let conn = Connection::open(data_dir.join("integrations.db")).map_err(storage)?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;
             CREATE TABLE IF NOT EXISTS integrations (
                 tenant TEXT PRIMARY KEY,
                 settings TEXT NOT NULL,
                 seed TEXT  -- the configuration file's settings when they were last applied
             );",
        )
        .map_err(storage)?;
        let rows: Vec<String> = {
            let mut stmt = conn
                .prepare("SELECT settings FROM integrations")
                .map_err(storage)?;
            let rows = stmt.query_map([], |r| r.get(0)).map_err(storage)?;
            rows.collect::<Result<_, _>>().map_err(storage)?
        };
        let mut current = HashMap::new();
        for row in rows {
            let settings: IntegrationSettings = serde_json::from_str(&row).map_err(storage)?;
            current.insert(settings.tenant.clone(), Arc::new(settings.build(&allowed)?));
        }
        Ok(Self {
            conn: Mutex::new(conn),
            allowed,
            current: RwLock::new(current),
            changed: Default::default(),
        })
    }

    /// Applies the configuration file's `settings` for a tenant at start-up. The file wins when it
    /// is new or changed since it was last applied; otherwise the stored settings stay, so that
    /// changes made at run time survive a restart. Returns whether the file's settings were applied.
    pub fn seed(&self, settings: &IntegrationSettings) -> Result<bool, RegistryError> {
        let seed = serde_json::to_string(settings).map_err(storage)?;
        let last: Option<Option<String>> = self
            .lock()
            .query_row(
                "SELECT seed FROM integrations WHERE tenant = ?1",
                params![settings.tenant],
                |r| r.get(0),
            )
            .optional()
            .map_err(storage)?;
        if last.flatten().as_deref() == Some(seed.as_str()) {
            return Ok(false);
        }
        self.put(settings)?;
        self.lock()
            .execute(
                "UPDATE integrations SET seed = ?2 WHERE tenant = ?1",
                params![settings.tenant, seed],
            )
            .map_err(storage)?;
        Ok(true)
    }

    /// Checks, stores and applies `settings`, replacing the tenant's integration if it has one.
    pub fn put(&self, settings: &IntegrationSettings) -> Result<Arc<Integration>, RegistryError> {
        let integration = Arc::new(settings.build(&self.allowed)?);
        let json = serde_json::to_string(settings).map_err(storage)?;
        self.lock()
            .execute(
                "INSERT INTO integrations (tenant, settings) VALUES (?1, ?2)
                 ON CONFLICT (tenant) DO UPDATE SET settings = excluded.settings",
                params![settings.tenant, json],
            )
            .map_err(storage)?;
        self.write()
            .insert(settings.tenant.clone(), integration.clone());
        self.changed.notify_one();
        Ok(integration)
    }

    /// Removes the tenant's integration; its queued events stay in the spool.
    pub fn remove(&self, tenant: &str) -> Result<bool, RegistryError> {
        let removed = self
            .lock()
            .execute(
                "DELETE FROM integrations WHERE tenant = ?1",
                params![tenant],
            )
            .map_err(storage)?;
        self.write().remove(tenant);
        self.changed.notify_one();
        Ok(removed > 0)
    }

    /// The stored settings of a tenant.
    pub fn settings(&self, tenant: &str) -> Result<Option<IntegrationSettings>, RegistryError> {
        let conn = self
            .conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let json: Option<String> = conn
            .query_row(
                "SELECT settings FROM integrations WHERE tenant = ?1",
                params![tenant],
                |r| r.get(0),
            )
            .optional()
            .map_err(storage)?;
        json.map(|j| serde_json::from_str(&j).map_err(storage))
            .transpose()
    }

    /// The tenant's integration in force now.
    pub fn get(&self, tenant: &str) -> Option<Arc<Integration>> {
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(tenant)
            .cloned()
    }

    /// Every tenant with an integration.
    pub fn tenants(&self) -> Vec<String> {
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .keys()
            .cloned()
            .collect()
    }

    /// Resolves at the next change (one waiter: the service's supervisor).
    pub async fn changed(&self) {
        self.changed.notified().await;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Arc<Integration>>> {
        self.current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

//! [`Registry`]: the integrations the sender serves, kept in its own store so that they can change
//! while it runs (the configuration file only seeds them).
//!
//! Settings live in `integrations.db` beside the spool, one row a tenant, as JSON. Signing secrets
//! and header values are sealed under the secrets key ([`crate::secrets`]); a store holding a
//! secret needs a key, and rows left in plaintext by the previous version are sealed when the
//! store is opened with one. Workers and the ingest API read the registry on every use, so a
//! change applies to the next batch without a restart.
//!
//! A stored integration that no longer passes validation (a rule tightened since it was stored)
//! does not stop the others: it is kept aside as paused, with its reason ([`Registry::problem`]),
//! until a valid PUT replaces it.

use crate::Integration;
use crate::secrets::{self, SecretsError, SecretsKey};
use crate::settings::{IntegrationSettings, InvalidSettings};
use ipnet::IpNet;
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};

/// Why settings were refused or could not be stored.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// The settings are invalid.
    #[error(transparent)]
    Invalid(#[from] InvalidSettings),
    /// `integrations.db` failed.
    #[error("integration store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The data directory could not be created.
    #[error("integration store: {0}")]
    Io(#[from] std::io::Error),
    /// A secret could not be sealed or opened: no key, a wrong key, an altered value.
    #[error("integration store: {0}")]
    Secrets(#[from] SecretsError),
}

/// The integrations in force, backed by `integrations.db`.
#[derive(Debug)]
pub struct Registry {
    conn: Mutex<Connection>,
    allowed: Vec<IpNet>,
    key: Option<SecretsKey>,
    current: RwLock<HashMap<String, Arc<Integration>>>,
    /// Stored integrations refused by validation at start-up, with why: paused, not served.
    broken: RwLock<HashMap<String, String>>,
    changed: tokio::sync::Notify,
}

fn open_store(data_dir: &Path) -> Result<Connection, RegistryError> {
    std::fs::create_dir_all(data_dir)?;
    let conn = Connection::open(data_dir.join("integrations.db"))?;
    // secure_delete: a row rewritten (sealed, rekeyed) leaves no copy of its old bytes in the
    // file's free pages.
    conn.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA secure_delete=ON;
         CREATE TABLE IF NOT EXISTS integrations (
             tenant TEXT PRIMARY KEY,
             settings TEXT NOT NULL,
             seed TEXT  -- the configuration file's settings when they were last applied
         );",
    )?;
    Ok(conn)
}

/// Every row: tenant, stored settings, stored seed.
type Row = (String, String, Option<String>);

fn rows(conn: &Connection) -> Result<Vec<Row>, RegistryError> {
    let mut stmt = conn.prepare("SELECT tenant, settings, seed FROM integrations")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Re-seals `json` under `keys[0]` when it holds plaintext or a value under another key;
/// `None` when it is already as wanted.
fn reseal(
    json: &str,
    keys: &[&SecretsKey],
) -> Result<(IntegrationSettings, Option<String>), RegistryError> {
    let opened = secrets::open_settings(json, keys)?;
    if !opened.had_plaintext && !opened.other_key {
        return Ok((opened.settings, None));
    }
    let sealed = secrets::seal_settings(&opened.settings, keys.first().copied())?;
    Ok((opened.settings, Some(sealed)))
}

/// Writes `settings` and `seed` of every row whose sealing changed, then checkpoints the WAL so
/// that no plaintext or old-key frame stays in it.
fn rewrite(
    conn: &mut Connection,
    rows: &[Row],
    keys: &[&SecretsKey],
) -> Result<(Vec<(String, IntegrationSettings)>, usize), RegistryError> {
    let tx = conn.transaction()?;
    let mut loaded = Vec::new();
    let mut rewritten = 0;
    for (tenant, settings, seed) in rows {
        let (opened, resealed) = reseal(settings, keys)?;
        let seed = seed.as_deref().map(|s| reseal(s, keys)).transpose()?;
        if let Some(json) = &resealed {
            tx.execute(
                "UPDATE integrations SET settings = ?2 WHERE tenant = ?1",
                params![tenant, json],
            )?;
        }
        if let Some((_, Some(json))) = &seed {
            tx.execute(
                "UPDATE integrations SET seed = ?2 WHERE tenant = ?1",
                params![tenant, json],
            )?;
        }
        if resealed.is_some() || matches!(seed, Some((_, Some(_)))) {
            rewritten += 1;
        }
        loaded.push((tenant.clone(), opened));
    }
    tx.commit()?;
    if rewritten > 0 {
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")?;
    }
    Ok((loaded, rewritten))
}

impl Registry {
    /// Opens the store in `data_dir` and loads every integration in it, opening the secrets with
    /// `key`. Rows holding secrets in plaintext (written by the previous version) are sealed
    /// now; without a key they stop the start ([`SecretsError::KeyRequired`]), as does a secret
    /// sealed under another key. A row that no longer passes validation is kept aside as paused
    /// ([`Registry::problem`]) and the others are served.
    pub fn open(
        data_dir: &Path,
        allowed: Vec<IpNet>,
        key: Option<SecretsKey>,
    ) -> Result<Self, RegistryError> {
        let mut conn = open_store(data_dir)?;
        let rows = rows(&conn)?;
        let keys: Vec<&SecretsKey> = key.iter().collect();
        // Without a key, a row holding a plaintext secret is refused here (KeyRequired)
        // rather than served as it is.
        let (loaded, sealed) = rewrite(&mut conn, &rows, &keys)?;
        if sealed > 0 {
            tracing::info!(
                integrations = sealed,
                "secrets stored in plaintext by an earlier version are now encrypted"
            );
        }
        let mut current = HashMap::new();
        let mut broken = HashMap::new();
        for (tenant, settings) in loaded {
            match settings.check(&allowed) {
                Ok(integration) => {
                    current.insert(tenant, Arc::new(integration));
                }
                Err(invalid) => {
                    let reason = invalid.to_string();
                    tracing::error!(
                        tenant,
                        reason,
                        "stored integration no longer valid: paused until its settings are fixed"
                    );
                    broken.insert(tenant, reason);
                }
            }
        }
        Ok(Self {
            conn: Mutex::new(conn),
            allowed,
            key,
            current: RwLock::new(current),
            broken: RwLock::new(broken),
            changed: Default::default(),
        })
    }

    /// Re-seals every secret of the store in `data_dir` under `new`; `old` opens the values
    /// sealed before (plaintext ones are sealed too). Values already under `new` stay, so a rekey
    /// interrupted and run again completes. Run it with the sender stopped. Returns how many
    /// integrations were rewritten.
    pub fn rekey(
        data_dir: &Path,
        old: Option<&SecretsKey>,
        new: &SecretsKey,
    ) -> Result<usize, RegistryError> {
        let mut conn = open_store(data_dir)?;
        let rows = rows(&conn)?;
        let mut keys = vec![new];
        keys.extend(old);
        Ok(rewrite(&mut conn, &rows, &keys)?.1)
    }

    /// The outbound guard's allow-list that webhook URLs are checked against.
    pub fn allowed(&self) -> &[IpNet] {
        &self.allowed
    }

    /// Whether a secrets key is configured (settings holding a secret can be stored).
    pub fn has_key(&self) -> bool {
        self.key.is_some()
    }

    /// The secrets key, to share it with [`super::shared::SharedState`].
    pub fn key(&self) -> Option<&SecretsKey> {
        self.key.as_ref()
    }

    /// Why `tenant`'s stored integration is paused without being served (it no longer passes
    /// validation); `None` when it is served or unknown.
    pub fn problem(&self, tenant: &str) -> Option<String> {
        self.broken
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(tenant)
            .cloned()
    }

    /// Applies the configuration file's `settings` for a tenant at start-up. The file wins when it
    /// is new or changed since it was last applied; otherwise the stored settings stay, so that
    /// changes made at run time survive a restart. Returns whether the file's settings were applied.
    pub fn seed(&self, settings: &IntegrationSettings) -> Result<bool, RegistryError> {
        let last: Option<Option<String>> = self
            .lock()
            .query_row(
                "SELECT seed FROM integrations WHERE tenant = ?1",
                params![settings.tenant],
                |r| r.get(0),
            )
            .optional()?;
        // Sealed with fresh nonces: compared opened, not as text.
        if let Some(last) = last.flatten()
            && secrets::open_settings(&last, &self.key.iter().collect::<Vec<_>>())?.settings
                == *settings
        {
            return Ok(false);
        }
        let seed = secrets::seal_settings(settings, self.key.as_ref())?;
        self.put(settings)?;
        self.lock().execute(
            "UPDATE integrations SET seed = ?2 WHERE tenant = ?1",
            params![settings.tenant, seed],
        )?;
        Ok(true)
    }

    /// [`Registry::seed`] for every integration of the configuration file, in one transaction:
    /// one disk sync for ten thousand integrations instead of two each. Returns the tenants
    /// whose file settings were applied. Called at start-up, before anything else uses the store.
    pub fn seed_all(&self, all: &[IntegrationSettings]) -> Result<Vec<String>, RegistryError> {
        self.lock().execute_batch("BEGIN")?;
        let mut applied = Vec::new();
        for settings in all {
            match self.seed(settings) {
                Ok(true) => applied.push(settings.tenant.clone()),
                Ok(false) => {}
                Err(err) => {
                    let _ = self.lock().execute_batch("ROLLBACK");
                    return Err(err);
                }
            }
        }
        self.lock().execute_batch("COMMIT")?;
        Ok(applied)
    }

    /// Checks, stores and applies `settings`, replacing the tenant's integration if it has one.
    pub fn put(&self, settings: &IntegrationSettings) -> Result<Arc<Integration>, RegistryError> {
        let integration = Arc::new(settings.check(&self.allowed)?);
        let json = secrets::seal_settings(settings, self.key.as_ref())?;
        self.lock().execute(
            "INSERT INTO integrations (tenant, settings) VALUES (?1, ?2)
                 ON CONFLICT (tenant) DO UPDATE SET settings = excluded.settings",
            params![settings.tenant, json],
        )?;
        self.write()
            .insert(settings.tenant.clone(), integration.clone());
        self.broken_mut().remove(&settings.tenant);
        self.changed.notify_one();
        Ok(integration)
    }

    /// Removes the tenant's integration; its queued events stay in the spool.
    pub fn remove(&self, tenant: &str) -> Result<bool, RegistryError> {
        let removed = self.lock().execute(
            "DELETE FROM integrations WHERE tenant = ?1",
            params![tenant],
        )?;
        self.write().remove(tenant);
        self.broken_mut().remove(tenant);
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
            .optional()?;
        let keys: Vec<&SecretsKey> = self.key.iter().collect();
        json.map(|j| Ok(secrets::open_settings(&j, &keys)?.settings))
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

    fn broken_mut(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, String>> {
        self.broken
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Arc<Integration>>> {
        self.current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

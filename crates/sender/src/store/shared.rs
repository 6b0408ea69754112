//! [`SharedState`]: the integration settings and admin tokens that the sender instances of one
//! PostgreSQL spool share, so that a change made through any instance's admin API (or a token
//! created with `evo-siem admin token create`) holds on every instance.
//!
//! PostgreSQL is the reference; each instance keeps its local store (`integrations.db`) as a
//! copy, so that the hot paths (authenticating a request, reading an integration for a batch)
//! stay local and synchronous. Every write bumps one version counter in the same transaction;
//! each instance checks the counter every [`SYNC_EVERY`] and, when it moved, takes the whole
//! shared state into its copy (`SharedState::sync`). Reads of settings by the admin API go to
//! PostgreSQL, so that a read after a write sees it whichever instance answers; other instances'
//! workers and token checks see a change within about a second.
//!
//! Secrets in `shared_integrations` (its `settings` and `seed`) are sealed under the secrets key
//! ([`crate::secrets`]), as in `integrations.db`; every instance must be given the same key
//! ([`SharedState::with_key`]).

use super::local::{Registry, RegistryError};
use super::tokens::{TokenError, TokenRow, TokenStore};
use crate::secrets::{self, SecretsError, SecretsKey};
use crate::settings::IntegrationSettings;
use crate::spool::SpoolError;
use crate::spool::postgres::db;
use deadpool_postgres::Pool;
use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// How often an instance checks whether the shared state changed.
pub const SYNC_EVERY: Duration = Duration::from_secs(1);

/// Why the shared state could not be read or changed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SharedError {
    /// PostgreSQL failed or did not answer in time.
    #[error(transparent)]
    Storage(#[from] SpoolError),
    /// The local copy could not be updated.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The local token copy could not be updated.
    #[error(transparent)]
    Tokens(#[from] TokenError),
    /// A secret could not be sealed or opened: no key, a wrong key, an altered value.
    #[error("shared integration settings: {0}")]
    Secrets(#[from] SecretsError),
    /// Stored settings no longer parse.
    #[error("shared settings of {tenant} are unreadable: {reason}")]
    Corrupt {
        /// The tenant.
        tenant: String,
        /// Why.
        reason: String,
    },
}

/// How fresh an instance's copy of the shared state is: when a sync last succeeded, and how old
/// that may grow before admin requests are refused (`[spool] max_staleness_ms`). While syncing
/// fails, a token revoked through another instance (or the CLI) is still in this instance's
/// copy; past the bound, refusing every admin request is safer than honouring it.
#[derive(Debug)]
pub(crate) struct Freshness {
    synced: std::sync::Mutex<tokio::time::Instant>,
    max: Duration,
}

impl Freshness {
    /// Fresh now (the start-up sync just succeeded), stale after `max` without [`Self::synced`].
    pub(crate) fn new(max: Duration) -> Self {
        Self {
            synced: std::sync::Mutex::new(tokio::time::Instant::now()),
            max,
        }
    }

    /// Records a successful sync (whether or not anything had changed).
    pub(crate) fn synced(&self) {
        *self
            .synced
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = tokio::time::Instant::now();
    }

    /// How long since the last successful sync, when that is longer than allowed.
    pub(crate) fn stale(&self) -> Option<Duration> {
        let age = self
            .synced
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .elapsed();
        (age > self.max).then_some(age)
    }
}

/// What an instance has taken from the shared state so far.
#[derive(Debug, Default)]
pub(crate) struct Seen {
    /// The version copied last; `None` before the first copy.
    pub(crate) version: Option<i64>,
    /// Each tenant's resume count, to tell when another instance asked for a resume.
    pub(crate) resumes: std::collections::HashMap<String, i64>,
}

/// Settings and tokens in PostgreSQL, shared by the instances of one spool.
#[derive(Clone)]
pub struct SharedState {
    pool: Pool,
    timeout: Duration,
    key: Option<SecretsKey>,
}

impl std::fmt::Debug for SharedState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedState").finish_non_exhaustive()
    }
}

fn corrupt(tenant: &str, err: SecretsError) -> SharedError {
    match err {
        SecretsError::Unreadable { reason, .. } => SharedError::Corrupt {
            tenant: tenant.to_owned(),
            reason,
        },
        other => SharedError::Secrets(other),
    }
}

const BUMP: &str = "UPDATE shared_version SET version = version + 1";

impl SharedState {
    /// The shared tables in the database of `spool` (its migrations create them).
    pub fn on(spool: &crate::spool::PostgresSpool) -> Self {
        Self {
            pool: spool.pool().clone(),
            timeout: spool.timeout(),
            key: None,
        }
    }

    /// Seals and opens the shared secrets with `key` (the same on every instance). Without a
    /// key, settings holding a secret can be neither stored nor read.
    #[must_use]
    pub fn with_key(mut self, key: Option<SecretsKey>) -> Self {
        self.key = key;
        self
    }

    fn parse(&self, tenant: &str, json: &str) -> Result<IntegrationSettings, SharedError> {
        let keys: Vec<&SecretsKey> = self.key.iter().collect();
        let opened = secrets::open_settings(json, &keys).map_err(|e| corrupt(tenant, e))?;
        if opened.had_plaintext && self.key.is_none() {
            // Never serve a plaintext secret: the start migrates them only with a key.
            secrets::seal_settings(&opened.settings, None).map_err(|e| corrupt(tenant, e))?;
        }
        Ok(opened.settings)
    }

    fn to_json(&self, settings: &IntegrationSettings) -> Result<String, SharedError> {
        secrets::seal_settings(settings, self.key.as_ref())
            .map_err(|e| corrupt(&settings.tenant, e))
    }

    /// Re-seals every secret in `shared_integrations` under `keys[0]` (plaintext ones from the
    /// previous version, and those under the other `keys`), in one transaction; values already
    /// under `keys[0]` stay. Returns how many integrations were rewritten.
    async fn reseal_all(&self, keys: &[&SecretsKey]) -> Result<usize, SharedError> {
        self.bounded(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(db)?;
            let rows = tx
                .query(
                    "SELECT tenant, settings, seed FROM shared_integrations FOR UPDATE",
                    &[],
                )
                .await
                .map_err(db)?;
            let mut rewritten = 0;
            for row in &rows {
                let tenant: String = row.get(0);
                let mut changed = false;
                let mut columns = Vec::new();
                for json in [row.get::<_, Option<String>>(1), row.get(2)] {
                    let Some(json) = json else {
                        columns.push(None);
                        continue;
                    };
                    let opened =
                        secrets::open_settings(&json, keys).map_err(|e| corrupt(&tenant, e))?;
                    if opened.had_plaintext || opened.other_key {
                        changed = true;
                        columns.push(Some(
                            secrets::seal_settings(&opened.settings, keys.first().copied())
                                .map_err(|e| corrupt(&tenant, e))?,
                        ));
                    } else {
                        columns.push(Some(json));
                    }
                }
                if changed {
                    tx.execute(
                        "UPDATE shared_integrations SET settings = $2, seed = $3 WHERE tenant = $1",
                        &[&tenant, &columns[0], &columns[1]],
                    )
                    .await
                    .map_err(db)?;
                    rewritten += 1;
                }
            }
            if rewritten > 0 {
                tx.execute(BUMP, &[]).await.map_err(db)?;
            }
            tx.commit().await.map_err(db)?;
            Ok(rewritten)
        })
        .await
    }

    /// Seals the secrets that the previous version stored in plaintext (the migration, run at
    /// start-up); without a key, a plaintext secret is an error ([`SecretsError::KeyRequired`]).
    pub async fn seal_plaintext(&self) -> Result<usize, SharedError> {
        let keys: Vec<&SecretsKey> = self.key.iter().collect();
        self.reseal_all(&keys).await
    }

    /// Re-seals every shared secret under `new`; `old` opens those sealed before. Values
    /// already under `new` stay, so an interrupted rekey run again completes. Stop every
    /// instance first: one still running with the old key can neither read nor write them.
    pub async fn rekey(
        &self,
        old: Option<&SecretsKey>,
        new: &SecretsKey,
    ) -> Result<usize, SharedError> {
        let mut keys = vec![new];
        keys.extend(old);
        self.reseal_all(&keys).await
    }

    async fn bounded<T>(
        &self,
        op: impl Future<Output = Result<T, SharedError>>,
    ) -> Result<T, SharedError> {
        tokio::time::timeout(self.timeout, op)
            .await
            .map_err(|_| SharedError::Storage(SpoolError::Timeout { what: "PostgreSQL" }))?
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, SharedError> {
        self.pool.get().await.map_err(|e| {
            SharedError::Storage(match e {
                deadpool_postgres::PoolError::Backend(e) => db(e),
                other => SpoolError::Pool(other),
            })
        })
    }

    /// Runs one statement and bumps the version in the same transaction, so that every
    /// instance copies the change; returns the rows the statement touched.
    async fn change(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<u64, SharedError> {
        self.bounded(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(db)?;
            let touched = tx.execute(sql, params).await.map_err(db)?;
            tx.execute(BUMP, &[]).await.map_err(db)?;
            tx.commit().await.map_err(db)?;
            Ok(touched)
        })
        .await
    }

    /// The settings of `tenant`.
    pub async fn settings(&self, tenant: &str) -> Result<Option<IntegrationSettings>, SharedError> {
        self.bounded(async {
            let row = self
                .client()
                .await?
                .query_opt(
                    "SELECT settings FROM shared_integrations WHERE tenant = $1",
                    &[&tenant],
                )
                .await
                .map_err(db)?;
            row.map(|r| self.parse(tenant, r.get(0))).transpose()
        })
        .await
    }

    /// Stores `settings` (already checked) for every instance.
    pub async fn put(&self, settings: &IntegrationSettings) -> Result<(), SharedError> {
        let json = self.to_json(settings)?;
        self.change(
            "INSERT INTO shared_integrations (tenant, settings) VALUES ($1, $2)
             ON CONFLICT (tenant) DO UPDATE SET settings = EXCLUDED.settings",
            &[&settings.tenant, &json],
        )
        .await?;
        Ok(())
    }

    /// Removes `tenant`'s integration for every instance; whether it had one.
    pub async fn remove(&self, tenant: &str) -> Result<bool, SharedError> {
        let removed = self
            .change(
                "DELETE FROM shared_integrations WHERE tenant = $1",
                &[&tenant],
            )
            .await?;
        Ok(removed > 0)
    }

    /// [`Registry::seed`] on the shared state: the configuration file's settings win when they
    /// are new or changed since they were last applied by any instance, so that instances
    /// started with the same file apply it once and keep the changes made at run time since.
    pub async fn seed(&self, settings: &IntegrationSettings) -> Result<bool, SharedError> {
        Ok(!self
            .seed_all(std::slice::from_ref(settings))
            .await?
            .is_empty())
    }

    /// [`Self::seed`] for every integration of the configuration file, in one transaction
    /// and three statements however many there are: ten thousand integrations start in a
    /// fraction of a second, not one round trip (and one advisory lock) each. Returns the
    /// tenants whose file settings were applied.
    pub async fn seed_all(&self, all: &[IntegrationSettings]) -> Result<Vec<String>, SharedError> {
        if all.is_empty() {
            return Ok(Vec::new());
        }
        let tenants: Vec<&str> = all.iter().map(|s| s.tenant.as_str()).collect();
        self.bounded(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(db)?;
            // Serialises instances seeding at once (the same lock for every tenant: a start
            // takes it once).
            tx.execute("SELECT pg_advisory_xact_lock(hashtext('evo-siem seed all'))", &[])
                .await
                .map_err(db)?;
            let rows = tx
                .query(
                    "SELECT tenant, seed FROM shared_integrations WHERE tenant = ANY($1)",
                    &[&tenants],
                )
                .await
                .map_err(db)?;
            let last: std::collections::HashMap<String, Option<String>> =
                rows.iter().map(|r| (r.get(0), r.get(1))).collect();
            let mut changed = Vec::new();
            let mut sealed = Vec::new();
            for settings in all {
                // Sealed with fresh nonces: compared opened, not as text.
                if let Some(Some(seed)) = last.get(&settings.tenant)
                    && self.parse(&settings.tenant, seed)? == *settings
                {
                    continue;
                }
                changed.push(settings.tenant.clone());
                sealed.push(self.to_json(settings)?);
            }
            if changed.is_empty() {
                return Ok(changed);
            }
            tx.execute(
                "INSERT INTO shared_integrations (tenant, settings, seed)
                 SELECT tenant, settings, settings FROM UNNEST($1::TEXT[], $2::TEXT[]) AS t(tenant, settings)
                 ON CONFLICT (tenant) DO UPDATE SET settings = EXCLUDED.settings, seed = EXCLUDED.seed",
                &[&changed, &sealed],
            )
            .await
            .map_err(db)?;
            tx.execute(BUMP, &[]).await.map_err(db)?;
            tx.commit().await.map_err(db)?;
            Ok(changed)
        })
        .await
    }

    /// Asks every instance to end `tenant`'s pause or backoff wait now (`POST .../resume`): the
    /// one holding the integration's lease may not be the one that was asked.
    pub async fn resume(&self, tenant: &str) -> Result<(), SharedError> {
        self.change(
            "UPDATE shared_integrations SET resumes = resumes + 1 WHERE tenant = $1",
            &[&tenant],
        )
        .await?;
        Ok(())
    }

    /// Stores a token ([`TokenRow::mint`]) for every instance.
    pub async fn insert_token(&self, row: &TokenRow) -> Result<(), SharedError> {
        self.change(
            "INSERT INTO shared_admin_tokens (hash, id, label, tenant, permissions, created_unix_ms)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[&row.hash, &row.id, &row.label, &row.tenant, &row.permissions, &row.created_unix_ms],
        )
        .await?;
        Ok(())
    }

    /// Revokes the token with public id `id` on every instance; whether there was one.
    pub async fn revoke_token(&self, id: &str) -> Result<bool, SharedError> {
        let removed = self
            .change("DELETE FROM shared_admin_tokens WHERE id = $1", &[&id])
            .await?;
        Ok(removed > 0)
    }

    /// Counts a Test Saved Webhook run of `tenant` against `limit` runs per `window`, for every
    /// instance at once: `Ok(Ok(()))` when admitted (and counted), `Ok(Err(wait))` when the
    /// limit is reached, with how long until the oldest run leaves the window. A per-instance
    /// count would let a tenant behind a load balancer test `limit` times per instance.
    pub async fn admit_test(
        &self,
        tenant: &str,
        limit: usize,
        window: Duration,
    ) -> Result<Result<(), Duration>, SharedError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let window_ms = i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
        self.bounded(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(db)?;
            // Serialises the instances admitting the same tenant, so two cannot both take the
            // last slot.
            tx.execute(
                "SELECT pg_advisory_xact_lock(hashtext('evo-siem test ' || $1))",
                &[&tenant],
            )
            .await
            .map_err(db)?;
            tx.execute(
                "DELETE FROM shared_test_runs
                 WHERE tenant = $1 AND at <= now() - make_interval(secs => $2::BIGINT / 1000.0)",
                &[&tenant, &window_ms],
            )
            .await
            .map_err(db)?;
            let row = tx
                .query_one(
                    "SELECT count(*), COALESCE(
                         EXTRACT(EPOCH FROM (min(at) + make_interval(secs => $2::BIGINT / 1000.0) - now())) * 1000,
                         0)::BIGINT
                     FROM shared_test_runs WHERE tenant = $1",
                    &[&tenant, &window_ms],
                )
                .await
                .map_err(db)?;
            let (count, wait_ms): (i64, i64) = (row.get(0), row.get(1));
            if count >= limit {
                return Ok(Err(Duration::from_millis(
                    u64::try_from(wait_ms).unwrap_or(0),
                )));
            }
            tx.execute(
                "INSERT INTO shared_test_runs (tenant) VALUES ($1)",
                &[&tenant],
            )
            .await
            .map_err(db)?;
            tx.commit().await.map_err(db)?;
            Ok(Ok(()))
        })
        .await
    }

    /// Every token.
    pub async fn tokens(&self) -> Result<Vec<TokenRow>, SharedError> {
        self.bounded(async {
            let rows = self
                .client()
                .await?
                .query(
                    "SELECT hash, id, label, tenant, permissions, created_unix_ms
                     FROM shared_admin_tokens ORDER BY tenant, created_unix_ms",
                    &[],
                )
                .await
                .map_err(db)?;
            Ok(rows
                .iter()
                .map(|r| TokenRow {
                    hash: r.get(0),
                    id: r.get(1),
                    label: r.get(2),
                    tenant: r.get(3),
                    permissions: r.get(4),
                    created_unix_ms: r.get(5),
                })
                .collect())
        })
        .await
    }

    /// When the shared state's version differs from `seen.version`, copies all of it into
    /// `registry` and `tokens`, and returns the tenants resumed since `seen` (none at the first
    /// sync); an empty list when nothing changed.
    pub(crate) async fn sync(
        &self,
        seen: &mut Seen,
        registry: &Arc<Registry>,
        tokens: &Arc<TokenStore>,
    ) -> Result<Vec<String>, SharedError> {
        let (version, settings, token_rows) = {
            let client = self.bounded(self.client()).await?;
            let version: i64 = self
                .bounded(async {
                    Ok(client
                        .query_one("SELECT version FROM shared_version", &[])
                        .await
                        .map_err(db)?
                        .get(0))
                })
                .await?;
            if seen.version == Some(version) {
                return Ok(Vec::new());
            }
            let rows = self
                .bounded(async {
                    client
                        .query(
                            "SELECT tenant, settings, resumes FROM shared_integrations",
                            &[],
                        )
                        .await
                        .map_err(|e| SharedError::Storage(db(e)))
                })
                .await?;
            let mut settings = BTreeMap::new();
            let mut resumed = Vec::new();
            for row in &rows {
                let tenant: String = row.get(0);
                let resumes: i64 = row.get(2);
                let before = seen.resumes.insert(tenant.clone(), resumes);
                if seen.version.is_some() && before.is_some_and(|b| b < resumes) {
                    resumed.push(tenant.clone());
                }
                let parsed = self.parse(&tenant, row.get(1))?;
                settings.insert(tenant, parsed);
            }
            (version, (settings, resumed), self.tokens().await?)
        };
        let (settings, resumed) = settings;
        let (registry, tokens) = (registry.clone(), tokens.clone());
        // The local stores are SQLite: their writes run on a blocking thread.
        tokio::task::spawn_blocking(move || -> Result<(), SharedError> {
            for (tenant, wanted) in &settings {
                if registry.settings(tenant)?.as_ref() == Some(wanted) {
                    continue;
                }
                match registry.put(wanted) {
                    Ok(_) => {
                        tracing::info!(tenant, "integration settings taken from the shared state");
                    }
                    // Refused here (this instance's outbound guard differs, say): the others
                    // still apply, and this one keeps what it had.
                    Err(RegistryError::Invalid(invalid)) => {
                        tracing::error!(
                            tenant,
                            reason = %invalid,
                            "shared integration settings refused by this instance"
                        );
                    }
                    Err(err) => return Err(err.into()),
                }
            }
            let shared: HashSet<&String> = settings.keys().collect();
            for tenant in registry.tenants() {
                if !shared.contains(&tenant) {
                    registry.remove(&tenant)?;
                    tracing::info!(tenant, "integration removed by the shared state");
                }
            }
            tokens.replace_all(&token_rows)?;
            Ok(())
        })
        .await
        .map_err(|e| SharedError::Storage(SpoolError::Join(e)))??;
        seen.version = Some(version);
        Ok(resumed)
    }
}

//! Admin API tokens: random bearer tokens, stored only as SHA-256 hashes, each bound to a
//! principal (a tenant and its permissions).
//!
//! Tokens carry 256 bits from the operating system's CSPRNG, so a fast hash is enough: there is
//! nothing to brute-force, and a lookup by hash costs one SHA-256. The table lives in
//! `integrations.db`; `evo-siem admin token create` and `revoke` write it while the sender runs.
//! Every request looks its token up in the table (one indexed read; the admin API is not a hot
//! path), so a revocation takes effect at the next request, with no cache to expire.

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// What a token may do. `Manage` implies `View`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Permission {
    /// `integrations.siem.view`: read the settings (secrets redacted), status, dead letters.
    #[serde(rename = "integrations.siem.view")]
    View,
    /// `integrations.siem.manage`: everything, including changes, tests, replays and resume.
    #[serde(rename = "integrations.siem.manage")]
    Manage,
}

impl Permission {
    /// The permission's name as the product page spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::View => "integrations.siem.view",
            Permission::Manage => "integrations.siem.manage",
        }
    }
}

impl std::str::FromStr for Permission {
    type Err = TokenError;

    fn from_str(s: &str) -> Result<Self, TokenError> {
        match s {
            "integrations.siem.view" => Ok(Permission::View),
            "integrations.siem.manage" => Ok(Permission::Manage),
            other => Err(TokenError::UnknownPermission(other.to_owned())),
        }
    }
}

/// Who a token speaks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Principal {
    /// The token's public id (not the token).
    pub token_id: String,
    /// A label given at creation, for people reading audit events.
    pub label: String,
    /// The tenant the token belongs to.
    pub tenant: String,
    /// What it may do.
    pub permissions: BTreeSet<Permission>,
}

impl Principal {
    /// Whether the principal holds `permission` (`Manage` implies `View`).
    pub fn may(&self, permission: Permission) -> bool {
        self.permissions.contains(&permission)
            || (permission == Permission::View && self.permissions.contains(&Permission::Manage))
    }
}

/// Why a token operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Not a permission this API knows.
    #[error("unknown permission {0:?}: use integrations.siem.view or integrations.siem.manage")]
    UnknownPermission(String),
    /// A token needs a tenant and at least one permission.
    #[error("a token needs a tenant and at least one permission")]
    Incomplete,
    /// The operating system's random generator failed.
    #[error("no randomness available: {0}")]
    Random(getrandom::Error),
    /// `integrations.db` failed.
    #[error("token store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The data directory could not be created.
    #[error("token store: {0}")]
    Io(#[from] std::io::Error),
}

fn hash(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// A stored token: its hash (never the token) and its principal, as kept in `api_tokens` and,
/// on a PostgreSQL spool, shared by the instances.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenRow {
    /// SHA-256 of the token, hex.
    pub hash: String,
    /// The public id: the first 12 hex digits of the hash.
    pub id: String,
    /// The label given at creation.
    pub label: String,
    /// The tenant.
    pub tenant: String,
    /// Permission names, comma-separated.
    pub permissions: String,
    /// When it was created.
    pub created_unix_ms: i64,
}

impl std::fmt::Debug for TokenRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenRow")
            .field("id", &self.id)
            .field("tenant", &self.tenant)
            .field("permissions", &self.permissions)
            .finish_non_exhaustive()
    }
}

impl TokenRow {
    /// A new random token for `tenant` with `permissions`: the token (to show once) and the row
    /// to store.
    pub fn mint(
        tenant: &str,
        permissions: &[Permission],
        label: &str,
    ) -> Result<(String, TokenRow), TokenError> {
        if tenant.is_empty() || permissions.is_empty() {
            return Err(TokenError::Incomplete);
        }
        let mut bytes = [0_u8; 32];
        getrandom::fill(&mut bytes).map_err(TokenError::Random)?;
        let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let token = format!("evo_adm_{secret}");
        let hashed = hash(&token);
        let permissions: BTreeSet<Permission> = permissions.iter().copied().collect();
        let names: Vec<&str> = permissions.iter().map(|p| p.as_str()).collect();
        let created_unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        let row = TokenRow {
            id: hashed[..12].to_owned(),
            hash: hashed,
            label: label.to_owned(),
            tenant: tenant.to_owned(),
            permissions: names.join(","),
            created_unix_ms,
        };
        Ok((token, row))
    }

    /// Who the token speaks for.
    pub fn principal(&self) -> Result<Principal, TokenError> {
        Ok(Principal {
            token_id: self.id.clone(),
            label: self.label.clone(),
            tenant: self.tenant.clone(),
            permissions: self
                .permissions
                .split(',')
                .map(str::parse)
                .collect::<Result<_, _>>()?,
        })
    }
}

fn insert_row(conn: &Connection, row: &TokenRow) -> Result<(), TokenError> {
    conn.execute(
        "INSERT INTO api_tokens (hash, id, label, tenant, permissions, created_unix_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            row.hash,
            row.id,
            row.label,
            row.tenant,
            row.permissions,
            row.created_unix_ms
        ],
    )?;
    Ok(())
}

/// The tokens, backed by the `api_tokens` table of `integrations.db`.
#[derive(Debug)]
pub struct TokenStore {
    conn: Mutex<Connection>,
}

impl TokenStore {
    /// Opens (and creates if needed) the table in `data_dir/integrations.db`.
    pub fn open(data_dir: &Path) -> Result<Self, TokenError> {
        std::fs::create_dir_all(data_dir)?;
        let conn = Connection::open(data_dir.join("integrations.db"))?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL;
             CREATE TABLE IF NOT EXISTS api_tokens (
                 hash TEXT PRIMARY KEY,
                 id TEXT NOT NULL UNIQUE,
                 label TEXT NOT NULL,
                 tenant TEXT NOT NULL,
                 permissions TEXT NOT NULL,
                 created_unix_ms INTEGER NOT NULL
             );",
        )?;
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Creates a token for `tenant` with `permissions`; returns the token (shown once, never
    /// stored) and its principal.
    pub fn create(
        &self,
        tenant: &str,
        permissions: &[Permission],
        label: &str,
    ) -> Result<(String, Principal), TokenError> {
        let (token, row) = TokenRow::mint(tenant, permissions, label)?;
        self.insert(&row)?;
        Ok((token, row.principal()?))
    }

    /// Stores a token minted elsewhere ([`TokenRow::mint`]).
    pub fn insert(&self, row: &TokenRow) -> Result<(), TokenError> {
        insert_row(&self.conn(), row)
    }

    /// Makes the stored tokens exactly `rows`, in one transaction (an instance taking the
    /// tokens shared by the instances of a PostgreSQL spool).
    pub fn replace_all(&self, rows: &[TokenRow]) -> Result<(), TokenError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute("DELETE FROM api_tokens", [])?;
        for row in rows {
            insert_row(&tx, row)?;
        }
        Ok(tx.commit()?)
    }

    /// The principal of `token`, or `None` when it is unknown or revoked. Blocking: call it from
    /// a blocking thread.
    pub fn authenticate(&self, token: &str) -> Result<Option<Principal>, TokenError> {
        let hashed = hash(token);
        let row: Option<(String, String, String, String)> = self
            .conn()
            .query_row(
                "SELECT id, label, tenant, permissions FROM api_tokens WHERE hash = ?1",
                params![hashed],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()?;
        let Some((token_id, label, tenant, names)) = row else {
            return Ok(None);
        };
        let permissions = names
            .split(',')
            .map(str::parse)
            .collect::<Result<BTreeSet<Permission>, _>>()?;
        Ok(Some(Principal {
            token_id,
            label,
            tenant,
            permissions,
        }))
    }

    /// Every token's principal (never the tokens), by tenant.
    pub fn list(&self) -> Result<Vec<Principal>, TokenError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare("SELECT id, label, tenant, permissions FROM api_tokens ORDER BY tenant, created_unix_ms")
            ?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
            ))
        })?;
        let mut principals = Vec::new();
        for row in rows {
            let (token_id, label, tenant, names) = row?;
            principals.push(Principal {
                token_id,
                label,
                tenant,
                permissions: names.split(',').map(str::parse).collect::<Result<_, _>>()?,
            });
        }
        Ok(principals)
    }

    /// Revokes the token with public id `id`; it is refused from the next request on.
    pub fn revoke(&self, id: &str) -> Result<bool, TokenError> {
        let removed = self
            .conn()
            .execute("DELETE FROM api_tokens WHERE id = ?1", params![id])?;
        Ok(removed > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_stored_hashed_and_bound_to_their_principal() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::open(dir.path()).unwrap();
        let (token, principal) = store
            .create("acme", &[Permission::Manage], "alice")
            .unwrap();
        let (other, _) = store.create("acme", &[Permission::View], "bob").unwrap();
        assert_ne!(token, other);
        assert!(token.starts_with("evo_adm_") && token.len() == 8 + 64);
        assert_eq!(store.authenticate(&token).unwrap(), Some(principal.clone()));
        assert!(principal.may(Permission::View) && principal.may(Permission::Manage));
        assert_eq!(store.authenticate("evo_adm_guess").unwrap(), None);

        // Only the hash is on disk.
        let db = std::fs::read(dir.path().join("integrations.db")).unwrap();
        let wal = std::fs::read(dir.path().join("integrations.db-wal")).unwrap_or_default();
        for bytes in [db, wal] {
            let secret = &token.as_bytes()[8..];
            assert!(!bytes.windows(64).any(|w| w == secret));
        }

        // A token created or revoked by another process (`evo-siem admin token create` or
        // `revoke`) counts from the next request.
        let other_process = TokenStore::open(dir.path()).unwrap();
        let (late, _) = other_process
            .create("globex", &[Permission::View], "")
            .unwrap();
        let seen = store.authenticate(&late).unwrap().unwrap();
        assert_eq!(seen.tenant, "globex");
        assert!(!seen.may(Permission::Manage));
        assert!(other_process.revoke(&principal.token_id).unwrap());
        assert_eq!(store.authenticate(&token).unwrap(), None);
        assert_eq!(store.list().unwrap().len(), 2);
    }

    #[test]
    fn permissions_parse_by_their_product_names() {
        assert_eq!(
            "integrations.siem.manage".parse::<Permission>().unwrap(),
            Permission::Manage
        );
        assert!(matches!(
            "integrations.siem.admin".parse::<Permission>(),
            Err(TokenError::UnknownPermission(name)) if name == "integrations.siem.admin"
        ));
    }
}

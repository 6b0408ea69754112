//! What the `evo-siem admin` commands do to the integration store of a sender, given its
//! configuration: the tokens of one instance live in its data directory, those of several
//! instances in the PostgreSQL state they share; `rekey` re-seals both. The choice is made
//! here from the configuration, so the binary only parses arguments and prints.

use super::{Config, ConfigError};
use crate::secrets::SecretsKey;
use crate::spool::{PostgresSpool, SpoolError};
use crate::store::{
    Permission, Principal, Registry, RegistryError, SharedError, SharedState, TokenError, TokenRow,
    TokenStore,
};

/// Why an admin command failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError {
    /// The configuration names no usable store.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The PostgreSQL spool could not be reached.
    #[error("cannot reach the PostgreSQL spool: {0}")]
    Spool(#[from] SpoolError),
    /// The local token table failed.
    #[error(transparent)]
    Tokens(#[from] TokenError),
    /// The local integration store failed.
    #[error(transparent)]
    Local(#[from] RegistryError),
    /// The shared state failed.
    #[error(transparent)]
    Shared(#[from] SharedError),
}

/// The admin API tokens of the sender configured by a file.
#[derive(Debug)]
pub enum TokenAdmin {
    /// One instance: its data directory (written while it runs; read at every request).
    Local(TokenStore),
    /// Several instances on a PostgreSQL spool: the state they share (each takes a change
    /// within a second).
    Shared(SharedState),
}

impl TokenAdmin {
    /// Opens the token store of the sender that `config` describes.
    pub async fn open(config: &Config) -> Result<Self, CommandError> {
        match config.spool.postgres()? {
            None => Ok(Self::Local(TokenStore::open(&config.data_dir)?)),
            Some(options) => {
                let spool = PostgresSpool::connect(options, config.backlog_limits()).await?;
                Ok(Self::Shared(SharedState::on(&spool)))
            }
        }
    }

    /// Creates a token for `tenant` with `permissions`; returns the token (shown once, never
    /// stored) and its principal.
    pub async fn create(
        &self,
        tenant: &str,
        permissions: &[Permission],
        label: &str,
    ) -> Result<(String, Principal), CommandError> {
        match self {
            Self::Local(store) => Ok(store.create(tenant, permissions, label)?),
            Self::Shared(shared) => {
                let (token, row) = TokenRow::mint(tenant, permissions, label)?;
                shared.insert_token(&row).await?;
                Ok((token, row.principal()?))
            }
        }
    }

    /// Every token's principal (never the tokens).
    pub async fn list(&self) -> Result<Vec<Principal>, CommandError> {
        match self {
            Self::Local(store) => Ok(store.list()?),
            Self::Shared(shared) => Ok(shared
                .tokens()
                .await?
                .iter()
                .map(TokenRow::principal)
                .collect::<Result<_, _>>()?),
        }
    }

    /// Revokes the token with public id `id`; whether there was one.
    pub async fn revoke(&self, id: &str) -> Result<bool, CommandError> {
        match self {
            Self::Local(store) => Ok(store.revoke(id)?),
            Self::Shared(shared) => Ok(shared.revoke_token(id).await?),
        }
    }
}

/// How many integrations a rekey re-sealed, in each place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rekeyed {
    /// In the data directory's `integrations.db`.
    pub local: usize,
    /// In the shared PostgreSQL tables; `None` on a SQLite spool.
    pub shared: Option<usize>,
}

/// Re-seals every stored secret of the sender that `config` describes under `new`; `old` opens
/// those sealed before. Run it with the sender stopped. Values already under `new` stay, so an
/// interrupted rekey run again completes.
pub async fn rekey(
    config: &Config,
    old: Option<&SecretsKey>,
    new: &SecretsKey,
) -> Result<Rekeyed, CommandError> {
    let data_dir = config.data_dir.clone();
    let (old_key, new_key) = (old.cloned(), new.clone());
    let local =
        tokio::task::spawn_blocking(move || Registry::rekey(&data_dir, old_key.as_ref(), &new_key))
            .await
            .map_err(|e| RegistryError::Io(std::io::Error::other(e)))??;
    let shared = match config.spool.postgres()? {
        None => None,
        Some(options) => {
            let spool = PostgresSpool::connect(options, config.backlog_limits()).await?;
            Some(SharedState::on(&spool).rekey(old, new).await?)
        }
    };
    Ok(Rekeyed { local, shared })
}

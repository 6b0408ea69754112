//! `evo-siem admin token create | list | revoke`: admin API tokens in the sender's data
//! directory or, when the sender's spool is PostgreSQL, in the state its instances share.
//! `evo-siem admin rekey`: the stored secrets re-encrypted under a new secrets key.

use crate::cli::{AdminCommand, RekeyArgs, TokenCommand};
use anyhow::{Context, bail};
use evo_siem_sender::admin::{Permission, Principal, TokenRow, TokenStore};
use evo_siem_sender::registry::Registry;
use evo_siem_sender::service::{Config, SecretsConfig};
use evo_siem_sender::shared::SharedState;
use evo_siem_sender::spool::PostgresSpool;
use std::process::ExitCode;

/// Where the tokens of the sender configured by a file live.
enum Tokens {
    /// One instance: its data directory.
    Local(TokenStore),
    /// Several instances on a PostgreSQL spool: the state they share (each takes a change
    /// within a second).
    Shared(tokio::runtime::Runtime, SharedState),
}

impl Tokens {
    fn open(config: &std::path::Path) -> anyhow::Result<Self> {
        let config = Config::load(config)?;
        match config.spool.postgres()? {
            None => Ok(Tokens::Local(
                TokenStore::open(&config.data_dir).context("cannot open the token store")?,
            )),
            Some(options) => {
                let runtime = tokio::runtime::Runtime::new()?;
                let spool = runtime
                    .block_on(PostgresSpool::connect(options, config.backlog_limits()))
                    .context("cannot reach the PostgreSQL spool")?;
                Ok(Tokens::Shared(runtime, spool.shared()))
            }
        }
    }

    fn create(
        &self,
        tenant: &str,
        permissions: &[Permission],
        label: &str,
    ) -> anyhow::Result<(String, Principal)> {
        match self {
            Tokens::Local(store) => Ok(store.create(tenant, permissions, label)?),
            Tokens::Shared(runtime, shared) => {
                let (token, row) = TokenRow::mint(tenant, permissions, label)?;
                runtime.block_on(shared.insert_token(&row))?;
                Ok((token, row.principal()?))
            }
        }
    }

    fn list(&self) -> anyhow::Result<Vec<Principal>> {
        match self {
            Tokens::Local(store) => Ok(store.list()?),
            Tokens::Shared(runtime, shared) => runtime
                .block_on(shared.tokens())?
                .iter()
                .map(|row| Ok(row.principal()?))
                .collect(),
        }
    }

    fn revoke(&self, id: &str) -> anyhow::Result<bool> {
        match self {
            Tokens::Local(store) => Ok(store.revoke(id)?),
            Tokens::Shared(runtime, shared) => Ok(runtime.block_on(shared.revoke_token(id))?),
        }
    }
}

/// `evo-siem admin rekey`: every stored secret re-sealed under the new key.
fn rekey(args: &RekeyArgs) -> anyhow::Result<()> {
    let config = Config::load(&args.config)?;
    let key = |env: &Option<String>, file: &Option<std::path::PathBuf>| SecretsConfig {
        key_env: env.clone(),
        key_file: file.clone(),
    };
    let new = key(&args.new_key_env, &args.new_key_file)
        .key()
        .context("the new key")?
        .context("give the new key with --new-key-env or --new-key-file")?;
    let old = if args.old_key_env.is_some() || args.old_key_file.is_some() {
        key(&args.old_key_env, &args.old_key_file).key()
    } else {
        config.secrets.key()
    }
    .context("the old key")?;
    let local = Registry::rekey(&config.data_dir, old.as_ref(), &new)
        .context("cannot rekey the integration store")?;
    eprintln!(
        "{local} integration(s) in {} re-encrypted under key {}",
        config.data_dir.join("integrations.db").display(),
        new.id()
    );
    if let Some(options) = config.spool.postgres()? {
        let runtime = tokio::runtime::Runtime::new()?;
        let shared = runtime.block_on(async {
            let spool = PostgresSpool::connect(options, config.backlog_limits())
                .await
                .context("cannot reach the PostgreSQL spool")?;
            spool
                .shared()
                .rekey(old.as_ref(), &new)
                .await
                .context("cannot rekey the shared integrations")
        })?;
        eprintln!(
            "{shared} shared integration(s) re-encrypted under key {}",
            new.id()
        );
    }
    eprintln!("now point [secrets] at the new key and start the sender");
    Ok(())
}

pub(crate) fn run(command: &AdminCommand) -> anyhow::Result<ExitCode> {
    let command = match command {
        AdminCommand::Token(command) => command,
        AdminCommand::Rekey(args) => {
            rekey(args)?;
            return Ok(ExitCode::SUCCESS);
        }
    };
    match command {
        TokenCommand::Create(args) => {
            let permissions = args
                .permissions
                .iter()
                .map(|p| p.parse::<Permission>())
                .collect::<Result<Vec<_>, _>>()?;
            if args.tenant.is_empty() {
                bail!("--tenant must not be empty");
            }
            let (token, principal) =
                Tokens::open(&args.config)?.create(&args.tenant, &permissions, &args.label)?;
            eprintln!(
                "token {} for tenant {} ({}); shown once, keep it in a secret store:",
                principal.token_id,
                principal.tenant,
                permissions
                    .iter()
                    .map(|p| p.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            println!("{token}");
        }
        TokenCommand::List(args) => {
            for p in Tokens::open(&args.config)?.list()? {
                let permissions: Vec<&str> = p.permissions.iter().map(|p| p.as_str()).collect();
                println!(
                    "{}\t{}\t{}\t{}",
                    p.token_id,
                    p.tenant,
                    permissions.join(","),
                    p.label
                );
            }
        }
        TokenCommand::Revoke(args) => {
            if !Tokens::open(&args.config)?.revoke(&args.id)? {
                bail!("no token with id {}", args.id);
            }
            eprintln!("token {} revoked", args.id);
        }
    }
    Ok(ExitCode::SUCCESS)
}

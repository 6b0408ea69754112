//! `evo-siem admin token create | list | revoke`: admin API tokens in the sender's data
//! directory or, when the sender's spool is PostgreSQL, in the state its instances share.

use crate::cli::{AdminCommand, TokenCommand};
use anyhow::{Context, bail};
use evo_siem_sender::admin::{Permission, Principal, TokenRow, TokenStore};
use evo_siem_sender::service::Config;
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

pub(crate) fn run(command: &AdminCommand) -> anyhow::Result<ExitCode> {
    let AdminCommand::Token(command) = command;
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

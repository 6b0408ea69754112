//! `evo-siem admin token create | list | revoke`: admin API tokens in the sender's data
//! directory.

use crate::cli::{AdminCommand, TokenCommand};
use anyhow::{Context, bail};
use evo_siem_sender::admin::{Permission, TokenStore};
use evo_siem_sender::service::Config;
use std::process::ExitCode;

fn store(config: &std::path::Path) -> anyhow::Result<TokenStore> {
    let config = Config::load(config)?;
    TokenStore::open(&config.data_dir).context("cannot open the token store")
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
                store(&args.config)?.create(&args.tenant, &permissions, &args.label)?;
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
            for p in store(&args.config)?.list()? {
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
            if !store(&args.config)?.revoke(&args.id)? {
                bail!("no token with id {}", args.id);
            }
            eprintln!("token {} revoked", args.id);
        }
    }
    Ok(ExitCode::SUCCESS)
}

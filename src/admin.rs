//! `evo-siem admin token create | list | revoke`: admin API tokens in the sender's data
//! directory or, when the sender's spool is PostgreSQL, in the state its instances share.
//! `evo-siem admin rekey`: the stored secrets re-encrypted under a new secrets key.

use crate::cli::{AdminCommand, RekeyArgs, TokenCommand};
use anyhow::{Context, bail};
use evo_siem_sender::service::commands::{TokenAdmin, rekey as rekey_stores};
use evo_siem_sender::service::{Config, SecretsConfig};
use evo_siem_sender::store::Permission;
use std::process::ExitCode;

/// The token store of the sender configured by `config`, and a runtime to drive it.
fn tokens(config: &std::path::Path) -> anyhow::Result<(tokio::runtime::Runtime, TokenAdmin)> {
    let config = Config::load(config)?;
    let runtime = tokio::runtime::Runtime::new()?;
    let tokens = runtime
        .block_on(TokenAdmin::open(&config))
        .context("cannot open the token store")?;
    Ok((runtime, tokens))
}

/// `evo-siem admin rekey`: every stored secret re-sealed under the new key.
fn rekey(args: &RekeyArgs) -> anyhow::Result<()> {
    let config = Config::load(&args.config.path)?;
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
    let rekeyed = tokio::runtime::Runtime::new()?
        .block_on(rekey_stores(&config, old.as_ref(), &new))
        .context("cannot rekey the stored secrets")?;
    eprintln!(
        "{} integration(s) in {} re-encrypted under key {}",
        rekeyed.local,
        config.data_dir.join("integrations.db").display(),
        new.id()
    );
    if let Some(shared) = rekeyed.shared {
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
            let (runtime, tokens) = tokens(&args.config.path)?;
            let (token, principal) =
                runtime.block_on(tokens.create(&args.tenant, &permissions, &args.label))?;
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
            let (runtime, tokens) = tokens(&args.config.path)?;
            for p in runtime.block_on(tokens.list())? {
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
            let (runtime, tokens) = tokens(&args.config.path)?;
            if !runtime.block_on(tokens.revoke(&args.id))? {
                bail!("no token with id {}", args.id);
            }
            eprintln!("token {} revoked", args.id);
        }
    }
    Ok(ExitCode::SUCCESS)
}

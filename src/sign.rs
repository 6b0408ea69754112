//! `evo-siem sign`, `evo-siem verify` and `evo-siem whsec`.

use crate::cli::{SchemeArg, SecretArgs, SignArgs, VerifyArgs};
use crate::secret_source;
use anyhow::Context;
use evo_siem_protocol::{standard_webhooks, verify_signature};
use std::io::{Read, Write};
use std::path::Path;
use std::process::ExitCode;

/// Reads the exact bytes of `input`, or of stdin for `-` or `None`.
fn read_input(input: Option<&Path>) -> anyhow::Result<Vec<u8>> {
    match input {
        Some(path) if path != Path::new("-") => {
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
        }
        _ => {
            let mut body = Vec::new();
            std::io::stdin()
                .read_to_end(&mut body)
                .context("cannot read standard input")?;
            Ok(body)
        }
    }
}

pub(crate) fn sign(args: &SignArgs) -> anyhow::Result<ExitCode> {
    let secrets = secret_source::load(&args.secrets)?;
    let body = read_input(args.input.as_deref())?;
    let mut out = std::io::stdout().lock();
    match args.scheme.scheme {
        SchemeArg::Evo => {
            for secret in &secrets {
                writeln!(out, "{}", evo_siem_protocol::sign(secret, &body))?;
            }
        }
        SchemeArg::StandardWebhooks => {
            let id = args
                .scheme
                .webhook_id
                .clone()
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
            let timestamp = match args.scheme.webhook_timestamp {
                Some(timestamp) => timestamp,
                None => std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .context("the clock is before 1970")?
                    .as_secs(),
            };
            // One v1 entry per secret, as a sender does during a rotation.
            let signatures: Vec<String> = secrets
                .iter()
                .map(|secret| standard_webhooks::sign(secret, &id, timestamp, &body))
                .collect();
            writeln!(out, "webhook-id: {id}")?;
            writeln!(out, "webhook-timestamp: {timestamp}")?;
            writeln!(out, "webhook-signature: {}", signatures.join(" "))?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn whsec(args: &SecretArgs) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    for secret in secret_source::load(args)? {
        writeln!(out, "{}", secret.to_whsec())?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn verify(args: &VerifyArgs) -> anyhow::Result<ExitCode> {
    let secrets = secret_source::load(&args.secrets)?;
    let body = read_input(args.input.as_deref())?;
    if args.scheme.scheme == SchemeArg::StandardWebhooks {
        let id = args
            .scheme
            .webhook_id
            .as_deref()
            .context("--scheme standard-webhooks needs --webhook-id")?;
        let timestamp = args
            .scheme
            .webhook_timestamp
            .context("--scheme standard-webhooks needs --webhook-timestamp")?
            .to_string();
        let checked = standard_webhooks::verify(
            Some(id.as_bytes()),
            Some(timestamp.as_bytes()),
            Some(args.signature.as_bytes()),
            &body,
            &secrets,
        );
        return Ok(match checked {
            Ok(checked) if secrets.len() > 1 => {
                println!("valid (secret {})", checked.secret_index + 1);
                ExitCode::SUCCESS
            }
            Ok(_) => {
                println!("valid");
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("invalid: {}: {err}", err.reason_code());
                ExitCode::from(1)
            }
        });
    }
    match verify_signature(Some(args.signature.as_bytes()), &body, &secrets) {
        Ok(index) if secrets.len() > 1 => println!("valid (secret {})", index + 1),
        Ok(_) => println!("valid"),
        Err(err) => {
            eprintln!("invalid: {}: {err}", err.reason_code());
            return Ok(ExitCode::from(1));
        }
    }
    Ok(ExitCode::SUCCESS)
}

//! `evo-siem sign` and `evo-siem verify`.

use crate::cli::{SignArgs, VerifyArgs};
use crate::secret_source;
use anyhow::Context;
use evo_siem_protocol::verify_signature;
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
    for secret in &secrets {
        writeln!(out, "{}", evo_siem_protocol::sign(secret, &body))?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn verify(args: &VerifyArgs) -> anyhow::Result<ExitCode> {
    let secrets = secret_source::load(&args.secrets)?;
    let body = read_input(args.input.as_deref())?;
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

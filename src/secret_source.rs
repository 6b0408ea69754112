//! Loading secrets from environment variables and files, never from argv.

use crate::cli::SecretArgs;
use anyhow::{Context, bail};
use evo_siem_protocol::Secret;
use std::path::Path;

/// The value of environment variable `var`, which must be set and not empty.
fn from_env(var: &str, what: &str) -> anyhow::Result<String> {
    let value = std::env::var(var)
        .with_context(|| format!("cannot read {what} from environment variable {var}"))?;
    if value.is_empty() {
        bail!("environment variable {var} is empty");
    }
    Ok(value)
}

/// The content of the file at `path` without one trailing newline (`\n` or `\r\n`), which
/// must not be empty. Files written by editors and `echo` end with a newline that is not part
/// of the secret.
fn from_file(path: &Path, what: &str) -> anyhow::Result<String> {
    let mut value = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read {what} from the file {}", path.display()))?;
    if value.ends_with('\n') {
        value.pop();
        if value.ends_with('\r') {
            value.pop();
        }
    }
    if value.is_empty() {
        bail!("the file {} is empty ({what})", path.display());
    }
    Ok(value)
}

/// The signing secrets named by `args`, environment variables first, in the order given; none
/// when `args` names none.
///
/// Errors name the variable or the path, never a secret's value.
pub(crate) fn load_any(args: &SecretArgs) -> anyhow::Result<Vec<Secret>> {
    let mut secrets = Vec::new();
    for var in &args.env {
        secrets.push(Secret::new(from_env(var, "the secret")?));
    }
    for path in &args.file {
        secrets.push(Secret::new(from_file(path, "the secret")?));
    }
    Ok(secrets)
}

/// As [`load_any`], but at least one secret must be named.
pub(crate) fn load(args: &SecretArgs) -> anyhow::Result<Vec<Secret>> {
    let secrets = load_any(args)?;
    if secrets.is_empty() {
        bail!("no secret given: use --secret-env VAR or --secret-file PATH");
    }
    Ok(secrets)
}

/// One secret value (`what`, a token or a URL with a password) from the environment variable
/// `env` or, when it is not given, the file `file`; clap makes sure one of them is.
#[cfg(any(feature = "workload", feature = "redis"))]
pub(crate) fn one(env: Option<&str>, file: Option<&Path>, what: &str) -> anyhow::Result<String> {
    match (env, file) {
        (Some(var), _) => from_env(var, what),
        (None, Some(path)) => from_file(path, what),
        (None, None) => bail!("{what} is not given"),
    }
}

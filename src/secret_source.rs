//! Loading signing secrets from environment variables and files, never from argv.

use crate::cli::SecretArgs;
use anyhow::{Context, bail};
use evo_siem_protocol::Secret;

/// The secrets named by `args`, environment variables first, in the order given.
///
/// Errors name the variable or the path, never a secret's value.
pub(crate) fn load(args: &SecretArgs) -> anyhow::Result<Vec<Secret>> {
    let mut secrets = Vec::new();
    for var in &args.env {
        let value = std::env::var(var)
            .with_context(|| format!("cannot read the secret from environment variable {var}"))?;
        if value.is_empty() {
            bail!("environment variable {var} is empty");
        }
        secrets.push(Secret::new(value));
    }
    for path in &args.file {
        let mut value = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the secret file {}", path.display()))?;
        // Files written by editors and `echo` end with a newline that is not part of the secret.
        if value.ends_with('\n') {
            value.pop();
            if value.ends_with('\r') {
                value.pop();
            }
        }
        if value.is_empty() {
            bail!("the secret file {} is empty", path.display());
        }
        secrets.push(Secret::new(value));
    }
    if secrets.is_empty() {
        bail!("no secret given: use --secret-env VAR or --secret-file PATH");
    }
    Ok(secrets)
}

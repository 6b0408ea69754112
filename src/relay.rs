//! `evo-siem relay --config FILE`: runs the relay until SIGTERM or Ctrl-C.

use crate::cli::SenderArgs;
use anyhow::Context;
use evo_siem_relay::RelayConfig;
use evo_siem_relay::config::process_env;
use std::process::ExitCode;

pub(crate) fn run(args: &SenderArgs) -> anyhow::Result<ExitCode> {
    crate::logging::init(args.log.log_format, "info");
    let config = RelayConfig::load(&args.config.path)?;
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(evo_siem_relay::server::run(&config, &process_env))?;
    Ok(ExitCode::SUCCESS)
}

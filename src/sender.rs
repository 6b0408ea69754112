//! `evo-siem sender --config FILE`: runs the sender service until SIGTERM or Ctrl-C.

use crate::cli::SenderArgs;
use anyhow::Context;
use evo_siem_sender::service::{self, Config};
use std::process::ExitCode;

pub(crate) fn run(args: &SenderArgs) -> anyhow::Result<ExitCode> {
    crate::logging::init(args.log.log_format, "info");
    let config = Config::load(&args.config.path)?;
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(service::run(&config))?;
    Ok(ExitCode::SUCCESS)
}

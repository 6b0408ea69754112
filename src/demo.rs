//! `evo-siem demo`: the flags, then the `evo-siem-demo` crate does the rest.

use crate::cli::DemoArgs;
use anyhow::Context;
use evo_siem_demo::DemoOptions;
use std::process::ExitCode;

pub(crate) fn run(args: &DemoArgs) -> anyhow::Result<ExitCode> {
    crate::logging::init(args.log.log_format, "error");
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let verdict = runtime.block_on(evo_siem_demo::run(&DemoOptions {
        rate: args.rate,
        duration: args.duration,
        seed: args.seed,
        keep: args.keep,
    }))?;
    Ok(if verdict.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

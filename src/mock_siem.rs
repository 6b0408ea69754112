//! `evo-siem mock-siem`: runs the mock SIEM until Ctrl-C.

use crate::cli::{MockSiemArgs, SecretArgs};
use crate::secret_source;
use anyhow::Context;
use evo_siem_mock::{MockSiem, MockSiemConfig};
use std::process::ExitCode;

pub(crate) fn run(args: &MockSiemArgs) -> anyhow::Result<ExitCode> {
    crate::logging::init("info,evo_siem_receiver=debug");
    let config = if args.secret_env.is_empty() {
        MockSiemConfig::unsigned()
    } else {
        let sources = SecretArgs {
            env: args.secret_env.clone(),
            file: Vec::new(),
        };
        MockSiemConfig::signed(secret_source::load(&sources)?)
    };
    let config = config.path(args.path.clone()).seed(args.seed);
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async {
        let siem = MockSiem::start(args.listen, config)
            .await
            .context("cannot start the mock SIEM")?;
        eprintln!("mock SIEM listening: deliver to {}", siem.webhook_url());
        eprintln!("inspect: curl -s http://{}/_mock/stats", siem.addr());
        tokio::signal::ctrl_c()
            .await
            .context("cannot wait for Ctrl-C")?;
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

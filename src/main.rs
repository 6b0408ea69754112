//! `evo-siem`: the command line of the evo-siem workspace.
//!
//! This binary is thin glue over the library crates. Exit codes:
//!
//! - `0`: success (for `verify`: the signature is valid);
//! - `1`: `verify` found the signature invalid (the reason code is printed on stderr);
//! - `2`: a usage, configuration or I/O error.
//!
//! Cargo features choose the subcommands compiled in (`Cargo.toml`): the default builds all of
//! them; `--no-default-features` builds Evo's production binary, with `sender`, `admin`, `sign`,
//! `verify` and `send-test` only.
//!
//! A broken pipe on stdout (`evo-siem sign … | head -c0`) exits 0, as the reader chose to stop.

mod admin;
mod cli;
#[cfg(feature = "conformance")]
mod conformance;
#[cfg(feature = "demo")]
mod demo;
#[cfg(feature = "workload")]
mod generate;
#[cfg(feature = "workload")]
mod load;
mod logging;
#[cfg(feature = "mock-siem")]
mod mock_siem;
#[cfg(feature = "relay")]
mod relay;
mod secret_source;
mod send_test;
mod sender;
mod sign;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let result = match cli.command {
        cli::Command::Admin(command) => admin::run(&command),
        cli::Command::SendTest(args) => send_test::run(&args),
        #[cfg(feature = "demo")]
        cli::Command::Demo(args) => demo::run(&args),
        #[cfg(feature = "workload")]
        cli::Command::Generate(args) => generate::run(&args),
        #[cfg(feature = "workload")]
        cli::Command::Load(args) => load::run(&args),
        cli::Command::Sign(args) => sign::sign(&args),
        cli::Command::Verify(args) => sign::verify(&args),
        cli::Command::Whsec(args) => sign::whsec(&args),
        cli::Command::Sender(args) => sender::run(&args),
        #[cfg(feature = "mock-siem")]
        cli::Command::MockSiem(args) => mock_siem::run(&args),
        #[cfg(feature = "relay")]
        cli::Command::Relay(args) => relay::run(&args),
        #[cfg(feature = "conformance")]
        cli::Command::Conformance(cli::ConformanceCommand::Receiver(args)) => {
            conformance::receiver(&args)
        }
        #[cfg(feature = "conformance")]
        cli::Command::Conformance(cli::ConformanceCommand::Sender(args)) => {
            conformance::sender(&args)
        }
    };
    match result {
        Ok(code) => code,
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("evo-siem: {err:#}");
            ExitCode::from(2)
        }
    }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

//! Project chores, run as `cargo xtask <task>` (the alias is in `.cargo/config.toml`).
//!
//! - `bench [--receiver] [ARGS...]`: run the criterion benchmarks and print each figure next to
//!   its target; ARGS go to the benchmark harness (for example `--quick`, or a filter such as
//!   `accept`); `--receiver` runs only the receiver's (verify, accept, dedup).
//! - `conformance [--cases N] [--seed S] [--release]`: the sender suite (in process, then as a
//!   child process restarted with SIGKILL, then as three instances on one PostgreSQL spool) and
//!   the receiver suite (against the SDK's example and the mock SIEM), one summary table;
//!   non-zero exit on any failure.
//! - `bench-http [--rounds N] [--secs S] [--conns C] [--client epoll|spin|both]`: the receiver
//!   SDK's axum extractor against a bare axum handler over loopback HTTP, with a load generator
//!   that signs fresh batches (a sleeping and a spinning client), server and client each pinned
//!   to its own core (`taskset`); beside them two floors (the HMAC check alone, the SDK's checks
//!   without its store) and the peers' pipeline, in the same rounds.
//! - `fuzz [--minutes N] [--target NAME] [--setup]`: the AFL++ fuzz targets of `fuzz/`, each
//!   N minutes (default 10), one at a time; installs cargo-afl first when it is missing.
//! - `mutants [--package NAME] [--file GLOB] [--cargo-test-arg ARG] [--jobs N] [--list]
//!   [-- ARGS]`: cargo-mutants on the files that carry the guarantees (signatures,
//!   verification, deduplication, filter, batching, retries, guard, spool writes), with the
//!   share of viable mutants that survive.
//! - `help`: this list.
//!
//! The tidy checks (a `//!` doc on every file, no ignored tests, …) are a test:
//! `cargo test -p xtask`.

mod bench;
mod conformance;
mod fuzz;
mod http_bench;
mod mutants;
#[cfg(test)]
mod tidy;

use std::path::PathBuf;

const HELP: &str = "\
cargo xtask <task>

tasks:
  bench [--receiver] [ARGS...]
                    run the benchmarks (verify, accept, dedup, sender_e2e, scale_out) and
                    summarize them against the targets; ARGS go to the criterion harness,
                    e.g. `--quick` or `accept`; --receiver: only verify, accept and dedup
  conformance [--cases N] [--seed S] [--release]
                    the sender suite (N cases in process, default 64, and N/2 with the
                    sender as a child process restarted by SIGKILL, N/2 with three
                    instances on one PostgreSQL spool) and the receiver suite
                    (against the SDK's example receiver and the mock SIEM); one summary table
  bench-http [--rounds N] [--secs S] [--conns C] [--client epoll|spin|both]
                    the receiver SDK's axum extractor against a bare axum handler over
                    loopback HTTP (1 KiB and 64 KiB signed batches, fresh UUIDs and
                    signatures per request), server and client pinned to cores 0 and 1;
                    in the same rounds the HMAC check alone, the SDK's checks without its
                    store, and the peers' pipeline (svix verify + serde_json + lru)
  fuzz [--minutes N] [--target NAME] [--setup]
                    the fuzz targets of fuzz/ (signature_header, verify, ingest,
                    retry_after, config) under AFL++, each N minutes (default 10), one
                    at a time, niced; installs cargo-afl when missing; --setup only
                    installs and builds; crashing inputs go to fixtures/fuzz/<target>/
  mutants [--package NAME] [--file GLOB] [--cargo-test-arg ARG] [--jobs N] [--list] [-- ARGS]
                    cargo-mutants (installed when missing) on the files that carry the
                    guarantees, per crate (evo-siem-protocol, evo-siem-receiver,
                    evo-siem-sender); prints caught / missed and the share of viable mutants
                    that survive (target at most 5 %); --file narrows a crate to some of
                    its files in scope, --cargo-test-arg goes to cargo test (--lib,
                    --tests), ARGS to the test binaries
  help              print this help

The tidy checks run as a test: cargo test -p xtask";

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        Some("bench") => bench::run(&args.collect::<Vec<_>>()),
        Some("conformance") => conformance::run(&args.collect::<Vec<_>>()),
        Some("fuzz") => fuzz::run(&args.collect::<Vec<_>>()),
        Some("bench-http") => http_bench::run(&args.collect::<Vec<_>>()),
        Some("mutants") => mutants::run(&args.collect::<Vec<_>>()),
        // The pieces bench-http runs as pinned child processes.
        Some("http-server") => http_bench::serve(&args.collect::<Vec<_>>()),
        Some("http-load") => http_bench::load(&args.collect::<Vec<_>>()),
        Some("http-inproc") => http_bench::inproc(&args.collect::<Vec<_>>()),
        Some("help" | "--help" | "-h") | None => {
            println!("{HELP}");
            Ok(())
        }
        Some(other) => anyhow::bail!("unknown task {other:?}\n\n{HELP}"),
    }
}

/// The repository root: xtask lives one level below it.
fn project_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask is inside the repository")
        .to_path_buf()
}

/// Installs the cargo subcommand `tool` (`cargo install <krate> --locked`, niced) unless
/// `cargo <tool> --version` answers: tasks install what they need, nobody installs by hand.
fn ensure_cargo_tool(tool: &str, krate: &str) -> anyhow::Result<()> {
    let present = cargo()
        .args([tool, "--version"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if present {
        return Ok(());
    }
    println!("{krate} is missing: running `nice -n 10 cargo install {krate} --locked`");
    let status = std::process::Command::new("nice")
        .args(["-n", "10"])
        .arg(cargo().get_program())
        .args(["install", krate, "--locked"])
        .status()
        .map_err(|e| anyhow::anyhow!("cannot run cargo install: {e}"))?;
    if !status.success() {
        anyhow::bail!("cargo install {krate} failed: {status}");
    }
    Ok(())
}

/// The cargo that runs this xtask, so that toolchain overrides carry through.
fn cargo() -> std::process::Command {
    std::process::Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

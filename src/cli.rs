//! The command-line grammar (clap derive); each subcommand's logic lives in its own module.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// Signed, batched SIEM webhooks for Evo tenant audit events.
#[derive(Debug, Parser)]
#[command(name = "evo-siem", version, about, long_about = None)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Print the X-Evo-Signature-256 value of a body.
    #[command(
        long_about = "Print the X-Evo-Signature-256 value (sha256=<hex>) of the exact bytes of \
FILE, or of standard input when FILE is - or absent.\n\n\
Example:\n  EVO_SIEM_SECRET=change-me evo-siem sign --secret-env EVO_SIEM_SECRET body.json"
    )]
    Sign(SignArgs),
    /// Check an X-Evo-Signature-256 value against a body.
    #[command(
        long_about = "Check an X-Evo-Signature-256 value against the exact bytes of FILE (or \
standard input). Exits 0 and prints `valid` when the signature matches one of the secrets, 1 with \
the reason when it does not, 2 on usage or I/O errors. Give --secret-env or --secret-file several \
times during a secret rotation: any one may match.\n\n\
Example:\n  evo-siem verify --secret-env EVO_SIEM_SECRET --signature \"sha256=…\" body.json"
    )]
    Verify(VerifyArgs),
    /// Run the sender: ingest API, spool, delivery to each integration's SIEM.
    #[command(
        long_about = "Run the sender: the ingest API (POST /v1/tenants/{tenant}/audit-events), \
the durable spool, and one delivery worker per integration. Stops on SIGTERM or Ctrl-C, letting \
attempts in flight finish; undelivered events stay in the spool for the next start.\n\n\
Example:\n  EVO_SIEM_INGEST_TOKEN=change-me evo-siem sender --config sender.toml\n\n\
See crates/sender/README.md for the configuration keys."
    )]
    Sender(SenderArgs),
    /// Run a mock SIEM that verifies, records and can misbehave on demand.
    #[command(
        long_about = "Run a mock SIEM: it verifies deliveries with the receiver SDK (one or \
several secrets, or unsigned when no --secret-env is given), records them, and can misbehave on \
demand. Inspect it with GET /_mock/stats, /_mock/events, /_mock/deliveries; reset with DELETE \
/_mock/state; inject faults with POST /_mock/faults.\n\n\
Examples:\n  EVO_SIEM_SECRET=change-me evo-siem mock-siem --listen 127.0.0.1:8080 --secret-env EVO_SIEM_SECRET\n  \
evo-siem mock-siem --fail-first 3 --fail-status 429 --retry-after 2 --drop-rate 0.05 --seed 7"
    )]
    MockSiem(MockSiemArgs),
    /// Check a receiver (or sender) against the wire contract.
    #[command(subcommand)]
    Conformance(ConformanceCommand),
}

#[derive(Debug, Subcommand)]
pub(crate) enum ConformanceCommand {
    /// Send a battery of deliveries to a receiver URL and judge each answer.
    #[command(
        long_about = "Send a battery of deliveries to a receiver and judge each answer: a \
valid batch and its redelivery must get 2xx; unsigned, forged, tampered and stale ones 401; \
malformed ones 400; an oversized one 413. Another 4xx than the recommended one is a warning; \
a 2xx or 5xx where a refusal is due is a failure. Exits 1 on any failure.\n\n\
Example:\n  EVO_SIEM_SECRET=change-me evo-siem conformance receiver --url http://127.0.0.1:8080/webhook --secret-env EVO_SIEM_SECRET"
    )]
    Receiver(ReceiverSuiteArgs),
    /// Property-test the sender end to end against mock SIEMs that misbehave.
    #[command(
        long_about = "Property-test the sender end to end: generated event streams, \
integration settings and fault scripts (statuses, dropped and reset connections, batches \
accepted and never answered, delays), some cases restarting the sender half-way. Checks \
at-least-once delivery, exact filtering, order, the envelope (schema, count, signature, \
freshness), delivery ids across retries and the integration's headers. Duplicates are \
counted, never a failure. Exits 1 on any failure, printing the shrunk failing case.\n\n\
Examples:\n  evo-siem conformance sender --cases 64\n  \
evo-siem conformance sender --process child --cases 8   # restarts are SIGKILL"
    )]
    Sender(SenderSuiteArgs),
}

/// Where the sender under test runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum SenderProcess {
    /// In this process; a restart is a graceful shutdown and a new start.
    InProcess,
    /// `evo-siem sender` in a child process (this binary); a restart is SIGKILL.
    Child,
}

#[derive(Debug, Args)]
pub(crate) struct SenderSuiteArgs {
    /// Cases to run.
    #[arg(long, default_value_t = 32)]
    pub(crate) cases: u32,
    /// Seed of the case generator: the same seed runs the same cases.
    #[arg(long, default_value_t = 0)]
    pub(crate) seed: u64,
    /// Most events per integration in a case.
    #[arg(long, default_value_t = 120)]
    pub(crate) max_events: usize,
    /// Where the sender runs.
    #[arg(long, value_enum, default_value_t = SenderProcess::InProcess)]
    pub(crate) process: SenderProcess,
    /// `table` or `json`.
    #[arg(long, default_value = "table")]
    pub(crate) format: String,
}

#[derive(Debug, Args)]
pub(crate) struct ReceiverSuiteArgs {
    /// The receiver's webhook URL.
    #[arg(long)]
    pub(crate) url: String,
    #[command(flatten)]
    pub(crate) secrets: SecretArgs,
    /// The receiver's body limit in bytes; one byte more is sent.
    #[arg(long, default_value_t = 8 * 1024 * 1024)]
    pub(crate) max_body: usize,
    /// `table` or `json`.
    #[arg(long, default_value = "table")]
    pub(crate) format: String,
}

#[derive(Debug, Args)]
pub(crate) struct MockSiemArgs {
    /// Address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub(crate) listen: std::net::SocketAddr,
    /// Environment variable holding an accepted signing secret (repeatable).
    #[arg(long = "secret-env", value_name = "VAR")]
    pub(crate) secret_env: Vec<String>,
    /// Path of the webhook.
    #[arg(long, default_value = "/webhook")]
    pub(crate) path: String,
    /// Seed of the fault generator, so that probabilistic faults replay.
    #[arg(long, default_value_t = 0)]
    pub(crate) seed: u64,
    /// Fault rules from a JSON file (the body `POST /_mock/faults` takes); checked before the
    /// flags below. For each request the first matching rule acts.
    #[arg(long, value_name = "FILE", help_heading = "Faults")]
    pub(crate) faults: Option<PathBuf>,
    /// Answer --fail-status to the first N requests.
    #[arg(long, value_name = "N", help_heading = "Faults")]
    pub(crate) fail_first: Option<u64>,
    /// Close the connection without answering, with this probability (0 to 1).
    #[arg(long, value_name = "P", help_heading = "Faults")]
    pub(crate) drop_rate: Option<f64>,
    /// Answer --fail-status with this probability (0 to 1).
    #[arg(long, value_name = "P", help_heading = "Faults")]
    pub(crate) fail_rate: Option<f64>,
    /// The status of --fail-first and --fail-rate.
    #[arg(
        long,
        value_name = "CODE",
        default_value_t = 503,
        help_heading = "Faults"
    )]
    pub(crate) fail_status: u16,
    /// A Retry-After, in seconds, with --fail-first and --fail-rate answers.
    #[arg(long, value_name = "SECS", help_heading = "Faults")]
    pub(crate) retry_after: Option<u64>,
    /// Delay every request no other fault took by this long.
    #[arg(long, value_name = "MS", help_heading = "Faults")]
    pub(crate) delay_ms: Option<u64>,
}

#[derive(Debug, Args)]
pub(crate) struct SenderArgs {
    /// The TOML configuration file.
    #[arg(long, value_name = "FILE")]
    pub(crate) config: PathBuf,
}

/// Where secrets come from: never the command line, where other users and shell history see it.
#[derive(Debug, Args)]
pub(crate) struct SecretArgs {
    /// Read a signing secret from this environment variable (repeatable for rotation).
    #[arg(long = "secret-env", value_name = "VAR")]
    pub(crate) env: Vec<String>,
    /// Read a signing secret from this file; one trailing newline is ignored (repeatable).
    #[arg(long = "secret-file", value_name = "PATH")]
    pub(crate) file: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct SignArgs {
    #[command(flatten)]
    pub(crate) secrets: SecretArgs,
    /// The body to sign; `-` or absent for standard input.
    #[arg(value_name = "FILE")]
    pub(crate) input: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    #[command(flatten)]
    pub(crate) secrets: SecretArgs,
    /// The X-Evo-Signature-256 value received, `sha256=<hex>`.
    #[arg(long, value_name = "VALUE")]
    pub(crate) signature: String,
    /// The body received; `-` or absent for standard input.
    #[arg(value_name = "FILE")]
    pub(crate) input: Option<PathBuf>,
}

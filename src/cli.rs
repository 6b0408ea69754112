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

/// How a report is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum OutputFormat {
    /// Aligned text for people.
    Table,
    /// One JSON document on standard output, for scripts.
    Json,
}

/// How the receiver suite signs its requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum SchemeArg {
    /// `X-Evo-Signature-256`, with `X-Evo-Delivery-Id` and `X-Evo-Delivery-Attempt`.
    Evo,
    /// Standard Webhooks alone: `webhook-id`, `webhook-timestamp`, `webhook-signature`.
    StandardWebhooks,
}

impl From<SchemeArg> for evo_siem_protocol::SignatureScheme {
    fn from(arg: SchemeArg) -> Self {
        match arg {
            SchemeArg::Evo => Self::Evo,
            SchemeArg::StandardWebhooks => Self::StandardWebhooks,
        }
    }
}

/// The configuration file, for every command that reads one (the sender's, or the relay's).
#[derive(Debug, Args)]
pub(crate) struct ConfigArg {
    /// The TOML configuration file.
    #[arg(
        short = 'c',
        long = "config",
        value_name = "FILE",
        env = "EVO_SIEM_CONFIG"
    )]
    pub(crate) path: PathBuf,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// See the whole pipeline work, and survive a SIEM outage, in about 30 seconds.
    #[command(
        long_about = "Start a mock SIEM and a sender in this process (temporary data directory, \
random signing secret, two tenants each with an excluded action), feed them realistic audit \
events, make the SIEM fail half-way (503, then 429 with Retry-After, then dropped connections) \
and recover. A status line shows ingested, delivered, excluded, duplicates, backlog, the oldest \
undelivered event's age and delivery latency. The summary's verdict comes from the mock SIEM's \
records: every non-excluded event delivered, none excluded delivered, every signature valid; \
exit 1 if not.\n\n\
Examples:\n  evo-siem demo\n  evo-siem demo --rate 1000 --duration 60s\n  \
evo-siem demo --keep   # then carry on by hand with the printed commands"
    )]
    #[cfg(feature = "demo")]
    Demo(DemoArgs),
    /// Write realistic audit events as NDJSON.
    #[command(
        long_about = "Write realistic audit events as NDJSON (one event a line): a weighted \
mix of actions, the tenant's own users and API keys, origins from the documentation address \
ranges, targets that fit the action, nanosecond timestamps. The same --seed and --start give the \
same events. With --tenants above 1, --out-dir is required and each tenant gets its own file.\n\n\
Examples:\n  evo-siem generate --count 5 --seed 7\n  \
evo-siem generate --count 100000 --tenants 3 --out-dir events/"
    )]
    #[cfg(feature = "workload")]
    Generate(GenerateArgs),
    /// Drive a running sender's ingest API at a target rate and report.
    #[command(
        long_about = "Drive a running sender's ingest API (POST URL/v1/tenants/TENANT/audit-events) \
at a target rate of events per second with bounded concurrency, and report the achieved rate, \
ingest latency percentiles and errors by kind: the tool for sizing a deployment. It only ever \
sends to the URL it is given. Exits 1 when no request was acknowledged.\n\n\
Example:\n  EVO_SIEM_INGEST_TOKEN=local-token evo-siem load --url http://127.0.0.1:7700 \\\n    \
--token-env EVO_SIEM_INGEST_TOKEN --rate 20000 --duration 30s"
    )]
    #[cfg(feature = "workload")]
    Load(LoadArgs),
    /// Print the signature headers of a body (X-Evo-Signature-256, or Standard Webhooks').
    #[command(
        long_about = "Print the X-Evo-Signature-256 value (sha256=<hex>) of the exact bytes of \
FILE, or of standard input when FILE is - or absent. With --scheme standard-webhooks, print the \
three Standard Webhooks headers instead (webhook-id, webhook-timestamp and webhook-signature, \
`v1,` + base64 of the HMAC-SHA256 of `id.timestamp.body`), for --webhook-id (default: a new \
UUID) at --webhook-timestamp (default: now).\n\n\
Examples:\n  EVO_SIEM_SECRET=change-me evo-siem sign --secret-env EVO_SIEM_SECRET body.json\n  \
evo-siem sign --scheme standard-webhooks --secret-env EVO_SIEM_SECRET body.json"
    )]
    Sign(SignArgs),
    /// Check a signature against a body (X-Evo-Signature-256, or Standard Webhooks').
    #[command(
        long_about = "Check an X-Evo-Signature-256 value against the exact bytes of FILE (or \
standard input). Exits 0 and prints `valid` when the signature matches one of the secrets, 1 with \
the reason when it does not, 2 on usage or I/O errors. Give --secret-env or --secret-file several \
times during a secret rotation: any one may match. With --scheme standard-webhooks, --signature \
is the webhook-signature value and --webhook-id and --webhook-timestamp are required (the replay \
window is not applied: this checks the signature only).\n\n\
Examples:\n  evo-siem verify --secret-env EVO_SIEM_SECRET --signature \"sha256=…\" body.json\n  \
evo-siem verify --scheme standard-webhooks --secret-env EVO_SIEM_SECRET --webhook-id ID \\\n    \
--webhook-timestamp 1706000000 --signature \"v1,…\" body.json"
    )]
    Verify(VerifyArgs),
    /// Print a signing secret in the `whsec_` form Standard Webhooks libraries take.
    #[command(
        long_about = "Print each secret read (--secret-env, --secret-file) as `whsec_` + the \
base64 of its bytes: the form the Standard Webhooks libraries (Python, JavaScript, Go, ...) \
take for an integration whose signature_schemes include \"standard-webhooks\". It is the same \
key; the sender needs nothing else. The output is the secret: send it only where the secret \
goes.\n\n\
Example:\n  evo-siem whsec --secret-file /run/secrets/evo-siem-signing"
    )]
    Whsec(SecretArgs),
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
several secrets from --secret-env or --secret-file, or unsigned when none is given), records them, and can misbehave on \
demand. Inspect it with GET /_mock/stats, /_mock/events, /_mock/deliveries; reset with DELETE \
/_mock/state; inject faults with POST /_mock/faults. Stops on SIGTERM or Ctrl-C and exits 0.\n\n\
Examples:\n  EVO_SIEM_SECRET=change-me evo-siem mock-siem --listen 127.0.0.1:8080 --secret-env EVO_SIEM_SECRET\n  \
evo-siem mock-siem --fail-first 3 --fail-status 429 --retry-after 2s --drop-rate 0.05 --seed 7"
    )]
    #[cfg(feature = "mock-siem")]
    MockSiem(MockSiemArgs),
    /// Verify, deduplicate and forward Evo's webhooks to a SIEM's own intake.
    #[command(
        long_about = "Serve the webhook with the receiver SDK and forward every new event to \
the configured outputs (NDJSON file, syslog, Splunk HEC, Elasticsearch/OpenSearch), answering \
2xx only once all of them acknowledged it. SIGHUP reopens files; SIGTERM stops gracefully.\n\n\
Example:\n  EVO_SIEM_SECRET=change-me evo-siem relay --config relay.toml\n\n\
See crates/relay/README.md for the configuration keys."
    )]
    #[cfg(feature = "relay")]
    Relay(SenderArgs),
    /// Send one signed test batch to a webhook URL and diagnose the answer.
    #[command(
        long_about = "Send one signed batch holding a synthetic test event (event_type \"test\", \
action \"SIEM webhook test\") to URL, through the sender's own signer, outbound guard and \
client, and diagnose the answer: ok, HTTP status, latency, and on failure the kind (http_status, \
dns, blocked, connect, tls, timeout) with the start of the answer. Not queued, not retried. \
Exits 0 when the receiver accepted it, 1 when not.\n\n\
Examples:\n  EVO_SIEM_SECRET=change-me evo-siem send-test --url https://siem.example.com/evo --secret-env EVO_SIEM_SECRET\n  \
evo-siem send-test --url http://127.0.0.1:8080/webhook --allow-private 127.0.0.1/32 --secret-env EVO_SIEM_SECRET"
    )]
    SendTest(SendTestArgs),
    /// Manage admin API tokens.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Check a receiver (or sender) against the wire contract.
    #[command(subcommand)]
    #[cfg(feature = "conformance")]
    Conformance(ConformanceCommand),
}

#[cfg(feature = "conformance")]
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
evo-siem conformance sender --process child --cases 8   # restarts are SIGKILL\n  \
evo-siem conformance sender --process cluster --instances 3   # one PostgreSQL spool"
    )]
    Sender(SenderSuiteArgs),
}

#[derive(Debug, Args)]
pub(crate) struct SendTestArgs {
    /// The webhook URL.
    #[arg(long)]
    pub(crate) url: String,
    #[command(flatten)]
    pub(crate) secrets: SecretArgs,
    /// A header to send, `Name: value` (repeatable). Its value shows in the process list: give
    /// a secret one (an Authorization header) with --header-file instead.
    #[arg(long = "header", value_name = "NAME: VALUE")]
    pub(crate) headers: Vec<String>,
    /// A file of headers to send, one `Name: value` per line (repeatable; blank lines and lines
    /// starting with `#` are skipped): how a secret header stays out of the process list.
    #[arg(long = "header-file", value_name = "PATH")]
    pub(crate) header_files: Vec<std::path::PathBuf>,
    /// A private network the outbound guard lets through (local testing only; repeatable).
    #[arg(long = "allow-private", value_name = "CIDR")]
    pub(crate) allow_private: Vec<String>,
    /// Time for the attempt (500ms, 10s, 2m).
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub(crate) timeout: std::time::Duration,
    /// How the diagnosis is printed.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub(crate) format: OutputFormat,
}

#[derive(Debug, Subcommand)]
pub(crate) enum AdminCommand {
    /// Admin API tokens: create, list, revoke.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Re-encrypt every stored secret under a new secrets key.
    #[command(
        long_about = "Re-encrypt the signing secrets and header values stored by the sender (its \
integrations.db and, when its spool is PostgreSQL, the shared tables) under a new secrets key. \
The old key is read as the configuration's [secrets] says, unless --old-key-env or \
--old-key-file names it; values stored in plaintext by an earlier version are encrypted too. \
Stop the sender (every instance) first, then point its [secrets] at the new key and start it. \
Run it again after an interruption: values already under the new key are left as they are. \
With several instances, run it with each instance's configuration (the shared tables are \
rekeyed once).\n\n\
Example:\n  evo-siem admin rekey --config sender.toml --new-key-file /run/secrets/evo-siem-key-2"
    )]
    Rekey(RekeyArgs),
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("new").required(true).args(["new_key_env", "new_key_file"])))]
#[command(group(clap::ArgGroup::new("old").args(["old_key_env", "old_key_file"])))]
pub(crate) struct RekeyArgs {
    /// Its data directory, spool and current key.
    #[command(flatten)]
    pub(crate) config: ConfigArg,
    /// The environment variable holding the new key (32 bytes in base64 or hex).
    #[arg(long, value_name = "VAR")]
    pub(crate) new_key_env: Option<String>,
    /// Or the file holding it.
    #[arg(long, value_name = "PATH")]
    pub(crate) new_key_file: Option<PathBuf>,
    /// The environment variable holding the old key, instead of the configuration's.
    #[arg(long, value_name = "VAR")]
    pub(crate) old_key_env: Option<String>,
    /// Or the file holding it.
    #[arg(long, value_name = "PATH")]
    pub(crate) old_key_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum TokenCommand {
    /// Create a token and print it, once: only its hash is stored.
    #[command(
        long_about = "Create an admin API token for a tenant with the given permissions, and \
print it on standard output, once: only its SHA-256 hash is stored, in the sender's data \
directory. A running sender accepts it at once.\n\n\
Example:\n  evo-siem admin token create --config sender.toml --tenant acme \\\n    \
--permission integrations.siem.manage --label \"alice (security team)\""
    )]
    Create(TokenCreateArgs),
    /// List the tokens (ids, labels, tenants, permissions; never the tokens).
    List(TokenListArgs),
    /// Revoke a token by its id.
    Revoke(TokenRevokeArgs),
}

#[derive(Debug, Args)]
pub(crate) struct TokenCreateArgs {
    #[command(flatten)]
    pub(crate) config: ConfigArg,
    /// The tenant the token belongs to.
    #[arg(long)]
    pub(crate) tenant: String,
    /// `integrations.siem.manage` or `integrations.siem.view` (repeatable).
    #[arg(long = "permission", value_name = "PERMISSION", required = true)]
    pub(crate) permissions: Vec<String>,
    /// Who or what holds the token; it names the actor in audit events.
    #[arg(long, default_value = "")]
    pub(crate) label: String,
}

#[derive(Debug, Args)]
pub(crate) struct TokenListArgs {
    #[command(flatten)]
    pub(crate) config: ConfigArg,
}

#[derive(Debug, Args)]
pub(crate) struct TokenRevokeArgs {
    #[command(flatten)]
    pub(crate) config: ConfigArg,
    /// The token's id, as `list` shows it.
    #[arg(long)]
    pub(crate) id: String,
}

#[cfg(feature = "conformance")]
/// Where the sender under test runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum SenderProcess {
    /// In this process; a restart is a graceful shutdown and a new start.
    InProcess,
    /// `evo-siem sender` in a child process (this binary); a restart is SIGKILL.
    Child,
    /// `--instances` children sharing one PostgreSQL spool (a database of their own per case,
    /// on the server of EVO_SIEM_TEST_POSTGRES); a restart is SIGKILL to one of them.
    Cluster,
}

#[cfg(feature = "conformance")]
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
    /// With `--process cluster`: how many instances.
    #[arg(long, default_value_t = 3)]
    pub(crate) instances: usize,
    /// With `--process cluster`: the instances' lease time (500ms, 1s, 2m).
    #[arg(long, value_parser = parse_duration, default_value = "1s")]
    pub(crate) lease_ttl: std::time::Duration,
    /// How the report is printed.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub(crate) format: OutputFormat,
    #[command(flatten)]
    pub(crate) log: LogArgs,
}

#[cfg(feature = "conformance")]
#[derive(Debug, Args)]
pub(crate) struct ReceiverSuiteArgs {
    /// The receiver's webhook URL.
    #[arg(long)]
    pub(crate) url: String,
    #[command(flatten)]
    pub(crate) secrets: SecretArgs,
    /// The receiver's body limit in bytes; one byte more is sent. The default is the receiver
    /// SDK's (`evo_siem_protocol::DEFAULT_MAX_BODY_BYTES`, 4 MiB).
    #[arg(long, default_value_t = evo_siem_protocol::DEFAULT_MAX_BODY_BYTES)]
    pub(crate) max_body: usize,
    /// How requests are signed: the receiver under test verifies this scheme. The secret is
    /// given as for Evo signatures; a Standard Webhooks receiver takes its `whsec_` form.
    #[arg(long, value_enum, default_value_t = SchemeArg::Evo)]
    pub(crate) signature_scheme: SchemeArg,
    /// How the results are printed.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub(crate) format: OutputFormat,
}

#[cfg(feature = "mock-siem")]
#[derive(Debug, Args)]
pub(crate) struct MockSiemArgs {
    /// Address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub(crate) listen: std::net::SocketAddr,
    /// The signing secrets it accepts; none: deliveries are not verified.
    #[command(flatten)]
    pub(crate) secrets: SecretArgs,
    /// Path of the webhook.
    #[arg(long, default_value = "/webhook")]
    pub(crate) path: String,
    /// Seed of the fault generator, so that probabilistic faults replay.
    #[arg(long, default_value_t = 0)]
    pub(crate) seed: u64,
    /// Deduplicate in Redis, at the URL this environment variable holds (redis://host:port/),
    /// shared with other mock SIEMs, instead of in memory.
    #[cfg(feature = "redis")]
    #[arg(long, value_name = "VAR", conflicts_with = "redis_url_file")]
    pub(crate) redis_url_env: Option<String>,
    /// Or the file holding that URL (it may carry a password); one trailing newline is ignored.
    #[cfg(feature = "redis")]
    #[arg(long, value_name = "PATH")]
    pub(crate) redis_url_file: Option<PathBuf>,
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
    /// A Retry-After with --fail-first and --fail-rate answers, in whole seconds (2s, 1m).
    #[arg(long, value_name = "DURATION", value_parser = parse_whole_seconds, help_heading = "Faults")]
    pub(crate) retry_after: Option<u64>,
    /// Delay every request no other fault took by this long (800ms, 2s).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, help_heading = "Faults")]
    pub(crate) delay: Option<std::time::Duration>,
    #[command(flatten)]
    pub(crate) log: LogArgs,
}

/// A duration, the one syntax of every duration flag: a number and its unit, `ms`, `s`, `m`
/// or `h` (`500ms`, `10s`, `1.5s`, `2m`, `1h`); `0` alone is zero. A bare number is refused
/// rather than guessed: some flags used to take milliseconds, others seconds.
pub(crate) fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(at) => text.split_at(at),
        None if text == "0" => return Ok(std::time::Duration::ZERO),
        None => {
            return Err(format!(
                "{text:?} has no unit: write it as {text}s, {text}ms or {text}m"
            ));
        }
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration such as 500ms, 30s or 2m"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => {
            return Err(format!(
                "unknown unit {unit:?} in {text:?}: use ms, s, m or h"
            ));
        }
    };
    std::time::Duration::try_from_secs_f64(seconds).map_err(|e| format!("{text:?}: {e}"))
}

/// A duration in the syntax of [`parse_duration`] that is a whole number of seconds, as the
/// seconds of a `Retry-After` header.
#[cfg(feature = "mock-siem")]
pub(crate) fn parse_whole_seconds(text: &str) -> Result<u64, String> {
    let duration = parse_duration(text)?;
    if duration.subsec_nanos() != 0 {
        return Err(format!("{text:?} is not a whole number of seconds"));
    }
    Ok(duration.as_secs())
}

#[cfg(feature = "demo")]
#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Events per second fed to the sender (all tenants together).
    #[arg(long, default_value_t = 200)]
    pub(crate) rate: u32,
    /// How long to feed events (30s, 2m); the SIEM fails during the middle third.
    #[arg(long, value_parser = parse_duration, default_value = "20s")]
    pub(crate) duration: std::time::Duration,
    /// Seed of the event generator.
    #[arg(long, default_value_t = 1)]
    pub(crate) seed: u64,
    /// Leave the sender and the mock SIEM running at the end and print how to use them.
    #[arg(long)]
    pub(crate) keep: bool,
    #[command(flatten)]
    pub(crate) log: LogArgs,
}

#[cfg(feature = "workload")]
#[derive(Debug, Args)]
pub(crate) struct GenerateArgs {
    /// Events to write (all tenants together).
    #[arg(long)]
    pub(crate) count: u64,
    /// Seed of the generator; random when absent.
    #[arg(long)]
    pub(crate) seed: Option<u64>,
    /// Number of tenants (acme, globex, initech, ...).
    #[arg(long, default_value_t = 1)]
    pub(crate) tenants: usize,
    /// Actions to draw from: one per line, optionally a tab and a weight.
    #[arg(long, value_name = "FILE")]
    pub(crate) actions_file: Option<PathBuf>,
    /// Write one `<tenant>.ndjson` per tenant here instead of standard output.
    #[arg(long, value_name = "DIR")]
    pub(crate) out_dir: Option<PathBuf>,
    /// Timestamp of the first event (RFC 3339); now when absent.
    #[arg(long, value_name = "RFC3339")]
    pub(crate) start: Option<String>,
}

#[cfg(feature = "workload")]
#[derive(Debug, Args)]
pub(crate) struct LoadArgs {
    /// The sender's base URL.
    #[arg(long)]
    pub(crate) url: String,
    /// Environment variable holding the ingest bearer token.
    #[arg(
        long,
        value_name = "VAR",
        required_unless_present = "token_file",
        conflicts_with = "token_file"
    )]
    pub(crate) token_env: Option<String>,
    /// Or the file holding it; one trailing newline is ignored.
    #[arg(long, value_name = "PATH")]
    pub(crate) token_file: Option<PathBuf>,
    /// The tenant whose ingest endpoint is driven.
    #[arg(long, default_value = "acme")]
    pub(crate) tenant: String,
    /// Target events per second.
    #[arg(long)]
    pub(crate) rate: u64,
    /// How long to send (500ms, 30s, 2m).
    #[arg(long, value_parser = parse_duration)]
    pub(crate) duration: std::time::Duration,
    /// Events per request.
    #[arg(long, default_value_t = 100)]
    pub(crate) batch: usize,
    /// Most requests in flight.
    #[arg(long, default_value_t = 8)]
    pub(crate) concurrency: usize,
    /// Time for one request (500ms, 10s).
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub(crate) timeout: std::time::Duration,
    /// Seed of the event generator.
    #[arg(long, default_value_t = 0)]
    pub(crate) seed: u64,
    /// How the report is printed.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub(crate) format: OutputFormat,
    #[command(flatten)]
    pub(crate) log: LogArgs,
}

#[derive(Debug, Args)]
pub(crate) struct SenderArgs {
    #[command(flatten)]
    pub(crate) config: ConfigArg,
    #[command(flatten)]
    pub(crate) log: LogArgs,
}

/// How a long-running command logs (to standard error).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum LogFormat {
    /// One line of text per event, for people.
    Text,
    /// One JSON object per line with the event's fields and those of its spans (a request's
    /// `request_id`, say), for a log pipeline.
    Json,
}

/// The logging flags of every long-running command; `RUST_LOG` filters, as usual.
#[derive(Debug, Args)]
pub(crate) struct LogArgs {
    /// The log lines' format.
    #[arg(long, value_enum, env = "EVO_SIEM_LOG_FORMAT", default_value_t = LogFormat::Text)]
    pub(crate) log_format: LogFormat,
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

/// Which signature `sign` and `verify` deal with, and Standard Webhooks' signed headers.
#[derive(Debug, Args)]
pub(crate) struct SchemeArgs {
    /// The signature scheme.
    #[arg(long, value_enum, default_value_t = SchemeArg::Evo)]
    pub(crate) scheme: SchemeArg,
    /// Standard Webhooks: the webhook-id (the delivery id). `sign` makes a new UUID without it.
    #[arg(long, value_name = "ID")]
    pub(crate) webhook_id: Option<String>,
    /// Standard Webhooks: the webhook-timestamp, Unix seconds. `sign` uses now without it.
    #[arg(long, value_name = "SECS")]
    pub(crate) webhook_timestamp: Option<u64>,
}

#[derive(Debug, Args)]
pub(crate) struct SignArgs {
    #[command(flatten)]
    pub(crate) secrets: SecretArgs,
    #[command(flatten)]
    pub(crate) scheme: SchemeArgs,
    /// The body to sign; `-` or absent for standard input.
    #[arg(value_name = "FILE")]
    pub(crate) input: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    #[command(flatten)]
    pub(crate) secrets: SecretArgs,
    #[command(flatten)]
    pub(crate) scheme: SchemeArgs,
    /// The signature received: the X-Evo-Signature-256 value (`sha256=<hex>`), or with
    /// --scheme standard-webhooks the webhook-signature value (`v1,<base64>`).
    #[arg(long, value_name = "VALUE")]
    pub(crate) signature: String,
    /// The body received; `-` or absent for standard input.
    #[arg(value_name = "FILE")]
    pub(crate) input: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use std::time::Duration;

    fn parse(args: &[&str]) -> Result<Command, clap::Error> {
        Cli::try_parse_from(std::iter::once("evo-siem").chain(args.iter().copied()))
            .map(|cli| cli.command)
    }

    #[test]
    fn durations_read_like_people_write_them() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert!(parse_duration("45").unwrap_err().contains("no unit"));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("3 days").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("5d").is_err());
    }

    /// Every duration flag of every command takes the one syntax, and refuses a bare number.
    #[test]
    fn every_duration_flag_takes_the_same_syntax() {
        let mut flags: Vec<(Vec<&str>, &str)> = vec![(
            vec!["send-test", "--url", "https://x.example", "--timeout"],
            "timeout",
        )];
        if cfg!(feature = "demo") {
            flags.push((vec!["demo", "--duration"], "duration"));
        }
        if cfg!(feature = "workload") {
            let load = vec!["load", "--url", "u", "--token-env", "T", "--rate", "1"];
            let mut timeout = load.clone();
            timeout.extend(["--duration", "1s", "--timeout"]);
            let mut duration = load.clone();
            duration.push("--duration");
            flags.push((timeout, "timeout"));
            flags.push((duration, "duration"));
        }
        if cfg!(feature = "conformance") {
            flags.push((vec!["conformance", "sender", "--lease-ttl"], "lease-ttl"));
        }
        if cfg!(feature = "mock-siem") {
            flags.push((vec!["mock-siem", "--delay"], "delay"));
            flags.push((vec!["mock-siem", "--retry-after"], "retry-after"));
        }
        for (args, name) in flags {
            for (value, ok) in [
                ("2s", true),
                ("1m", true),
                ("2", false),
                ("2 parsecs", false),
            ] {
                let mut args = args.clone();
                args.push(value);
                let parsed = parse(&args);
                assert_eq!(parsed.is_ok(), ok, "--{name} {value}: {parsed:?}");
            }
        }
    }

    #[cfg(feature = "mock-siem")]
    #[test]
    fn a_retry_after_is_whole_seconds() {
        assert_eq!(parse_whole_seconds("2s"), Ok(2));
        assert_eq!(parse_whole_seconds("1m"), Ok(60));
        assert!(parse_whole_seconds("1500ms").is_err());
    }

    #[cfg(feature = "conformance")]
    #[test]
    fn the_lease_ttl_reaches_the_suite_as_given() {
        match parse(&["conformance", "sender", "--lease-ttl", "750ms"]).unwrap() {
            Command::Conformance(ConformanceCommand::Sender(args)) => {
                assert_eq!(args.lease_ttl, Duration::from_millis(750));
            }
            other => panic!("{other:?}"),
        }
    }

    /// `-c` and `--config` name the sender's configuration for every command that reads it.
    #[test]
    fn every_command_reading_the_configuration_takes_dash_c() {
        let commands: &[&[&str]] = &[
            &["sender"],
            &["admin", "token", "list"],
            &["admin", "token", "revoke", "--id", "x"],
            &[
                "admin",
                "token",
                "create",
                "--tenant",
                "acme",
                "--permission",
                "p",
            ],
            &["admin", "rekey", "--new-key-env", "K"],
            #[cfg(feature = "relay")]
            &["relay"],
        ];
        for command in commands {
            for flag in ["-c", "--config"] {
                let mut args = command.to_vec();
                args.extend([flag, "sender.toml"]);
                let config = match parse(&args).unwrap() {
                    Command::Sender(args) => args.config,
                    #[cfg(feature = "relay")]
                    Command::Relay(args) => args.config,
                    Command::Admin(AdminCommand::Rekey(args)) => args.config,
                    Command::Admin(AdminCommand::Token(TokenCommand::List(args))) => args.config,
                    Command::Admin(AdminCommand::Token(TokenCommand::Revoke(args))) => args.config,
                    Command::Admin(AdminCommand::Token(TokenCommand::Create(args))) => args.config,
                    other => panic!("{other:?}"),
                };
                assert_eq!(config.path, PathBuf::from("sender.toml"), "{args:?}");
            }
        }
    }

    #[test]
    fn formats_are_named_values() {
        let send_test = ["send-test", "--url", "https://x.example", "--format"];
        let parsed = parse(&[&send_test[..], &["json"]].concat()).unwrap();
        assert!(matches!(
            parsed,
            Command::SendTest(SendTestArgs {
                format: OutputFormat::Json,
                ..
            })
        ));
        let err = parse(&[&send_test[..], &["yaml"]].concat()).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::InvalidValue);
        assert!(err.to_string().contains("table, json"), "{err}");
        let sender = parse(&["sender", "-c", "f", "--log-format", "json"]).unwrap();
        assert!(matches!(
            sender,
            Command::Sender(SenderArgs {
                log: LogArgs {
                    log_format: LogFormat::Json
                },
                ..
            })
        ));
        let err = parse(&["sender", "-c", "f", "--log-format", "xml"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::InvalidValue);
    }

    /// The receiver suite sends one byte over the SDK's own default limit, so that a receiver
    /// built with the defaults is checked at its edge.
    #[cfg(feature = "conformance")]
    #[test]
    fn the_receiver_suite_defaults_to_the_sdks_body_limit() {
        let args = parse(&["conformance", "receiver", "--url", "u", "--secret-env", "S"]).unwrap();
        let Command::Conformance(ConformanceCommand::Receiver(args)) = args else {
            panic!("{args:?}");
        };
        let receiver = evo_siem_receiver::Receiver::builder()
            .secret("a secret of the receiver suite's test")
            .build()
            .unwrap();
        assert_eq!(args.max_body, receiver.max_body_bytes());
    }
}

//! The Evo SIEM relay: the service between Evo's signed webhooks and a SIEM's own intake.
//!
//! No SIEM verifies an HMAC signature itself. The relay does it with the receiver SDK
//! ([`evo_siem_receiver`]: signature, replay window, body limit, deduplication by event UUID in
//! memory or on Redis) and forwards every event that is new to each configured output: an
//! NDJSON file, a syslog collector (RFC 5424 over TCP or TLS), Splunk's HTTP Event Collector,
//! Elasticsearch or OpenSearch.
//!
//! Its one rule: **answer 2xx only after every output acknowledged every new event of the
//! batch**. An output that fails or times out makes the answer 503 with `Retry-After`, and the
//! deduplication claims are released, so Evo's retry forwards the events again (duplicates are
//! possible, a loss is not). Evo's spool is the buffer; the relay keeps no queue. An event an
//! output refuses for good goes to a dead-letter file, with the reason, and does not block the
//! rest.
//!
//! - [`config`]: the TOML file (`evo-siem relay --config relay.toml`).
//! - [`server`]: the webhook, `/healthz`, `/metrics`, graceful stop, SIGHUP.
//! - [`outputs`]: the [`Output`](outputs::Output) trait and its implementations.
//! - [`ocsf`]: `format = "ocsf"`, the mapping of Evo audit events to OCSF classes.
//! - [`dead_letter`], [`metrics`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use evo_siem_relay::{RelayConfig, config::process_env, server};
//! let config = RelayConfig::load("relay.toml".as_ref())?;
//! server::run(&config, &process_env).await?;
//! # Ok(()) }
//! ```

mod append;
pub mod config;
pub mod dead_letter;
mod listener;
pub mod metrics;
pub mod ocsf;
pub mod outputs;
pub mod server;

pub use config::{ConfigError, RelayConfig};
pub use server::{Relay, RelayBuilder, RelayError, RunningRelay};

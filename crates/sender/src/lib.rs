//! The Evo SIEM webhook sender: what Evo runs to deliver each tenant's audit events to its SIEM,
//! at least once, from a durable spool, with retries that respect the receiver.
//!
//! Four layers, each using only those below it:
//!
//! - **Services.** [`service`]: `evo-siem sender --config FILE`: configuration, start-up wiring,
//!   the listener, graceful shutdown ([`service::Sender`], [`service::Config`]), and what the
//!   `evo-siem admin` commands do ([`service::commands`]). [`api`]: the HTTP API on the
//!   listener: ingest, the tenant admin API ([`api::admin`]: settings with secrets write-only,
//!   status, dead letters, Test Saved Webhook), `/metrics`.
//! - **Delivery.** [`schedule`]: runs each integration's [`Worker`] only when it has work, on a
//!   bounded pool of delivery tasks, with every deadline in one timer queue
//!   ([`schedule::Scheduler`]). [`Worker`]: one integration's delivery state machine: plan a
//!   batch, drop excluded actions, send it, and settle it by the retry table (delivered,
//!   retried, split, dead-lettered, paused); each step is one attempt, with the settings in
//!   force at that attempt.
//! - **Storage.** [`spool`]: the durable spool behind a small trait ([`spool::SqliteSpool`]
//!   commits groups of requests in one transaction; [`spool::PostgresSpool`] serves several
//!   instances). [`store`]: the integrations and admin tokens, one type
//!   ([`store::IntegrationStore`]) whether the sender runs alone (`integrations.db`) or with
//!   other instances (PostgreSQL as the reference, a local copy for the hot paths).
//! - **Core.** [`settings`]: an integration's settings and the one check every source of them
//!   goes through. [`Integration`]: checked settings; secrets never in `Debug`. [`Exclusions`]:
//!   excluded audit actions, matched exactly. [`batcher`]: when a batch closes, and the exact
//!   size of a body. [`retry`]: what an attempt's result means, capped exponential backoff with
//!   full jitter, both forms of `Retry-After`. [`dispatch`]: one attempt over HTTP through the
//!   outbound guard's resolver. [`guard`]: address classes and URL rules (SSRF). [`secrets`]:
//!   secrets sealed at rest (XChaCha20-Poly1305) under the operator's key.

// Core: what one integration's delivery is made of; no I/O but the HTTP attempt.
pub mod batcher;
pub mod dispatch;
mod filter;
pub mod guard;
mod integration;
pub mod retry;
pub mod secrets;
pub mod settings;
// Storage: the spool of events, the store of integrations and tokens.
pub mod spool;
pub mod store;
// Delivery: one integration's state machine, and the scheduler that runs them.
mod deliver;
pub mod schedule;
mod stats;
// Services: the HTTP API, and the service that wires everything together.
pub mod api;
pub mod service;

pub use deliver::{Step, Worker};
pub use filter::Exclusions;
pub use integration::{Integration, IntegrationError};
pub use stats::{AttemptCounters, DeliveryStats, LATENCY_BUCKETS, LastError, LatencyHistogram};

//! The Evo SIEM webhook sender: what Evo runs to deliver each tenant's audit events to its SIEM,
//! at least once, from a durable spool, with retries that respect the receiver.
//!
//! - [`service`]: `evo-siem sender --config FILE`: the ingest API, the scheduler, graceful
//!   shutdown ([`service::Sender`], [`service::Config`]).
//! - [`schedule`]: runs each integration's [`Worker`] only when it has work, on a bounded pool
//!   of delivery tasks, with every deadline in one timer queue ([`schedule::Scheduler`]).
//! - [`spool`]: the durable spool behind a small trait; [`spool::SqliteSpool`] commits groups of
//!   requests in one transaction so concurrent ingests share an fsync, and bounds each
//!   integration's backlog.
//! - [`Worker`]: one integration's delivery state machine: plan a batch, drop excluded actions,
//!   send it, and settle it by the retry table (delivered, retried, split, dead-lettered,
//!   paused); each step is one attempt, with the settings in force at that attempt.
//! - [`dispatch`]: one attempt over HTTP ([`dispatch::Dispatcher`]), resolving through the
//!   outbound guard ([`dispatch::GuardedResolver`]) so only checked addresses are connected to.
//! - [`Integration`]: one tenant's settings, checked when built; secrets never in `Debug`.
//! - [`Exclusions`]: excluded audit actions, matched exactly and case-sensitively.
//! - [`batcher`]: when a batch closes (events, body bytes including the envelope, linger), and the
//!   exact size of a body.
//! - [`retry`]: what an attempt's result means ([`retry::classify`]), capped exponential backoff
//!   with full jitter ([`retry::Backoff`]), and both forms of `Retry-After`.
//! - [`guard`]: the outbound guard's address classes and URL rules (SSRF).
//!
//! - [`registry`]: the integrations in force, kept in the sender's own store (the configuration
//!   file only seeds it) so that they can change while the sender runs.
//! - [`secrets`]: signing secrets and header values sealed at rest (XChaCha20-Poly1305) under the
//!   operator's key, in `integrations.db` and the shared PostgreSQL tables.
//! - [`admin`]: the tenant admin API on the same listener: SIEM integration settings with
//!   secrets write-only, bearer API tokens bound to a tenant and its permissions.

pub mod admin;
pub mod batcher;
mod data_dir;
mod deliver;
pub mod dispatch;
mod filter;
pub mod guard;
mod integration;
pub mod registry;
pub mod retry;
pub mod schedule;
pub mod secrets;
pub mod service;
pub mod shared;
pub mod spool;
mod stats;

pub use deliver::{Step, Worker};
pub use filter::Exclusions;
pub use integration::{Integration, IntegrationError};
pub use stats::{AttemptCounters, DeliveryStats, LATENCY_BUCKETS, LastError, LatencyHistogram};

//! The Evo SIEM webhook sender: what Evo runs to deliver each tenant's audit events to its SIEM.
//!
//! This crate is being built in slices (issue 4). What is here today is the pure core that the
//! spool, the dispatcher and the service will be driven by:
//!
//! - [`Exclusions`]: excluded audit actions, matched exactly and case-sensitively.
//! - [`batcher`]: when a batch closes (events, body bytes including the envelope, linger), and the
//!   exact size of a body.
//! - [`retry`]: what an attempt's result means ([`retry::classify`]), capped exponential backoff
//!   with full jitter ([`retry::Backoff`]), and both forms of `Retry-After`.
//! - [`guard`]: the outbound guard's address classes and URL rules (SSRF).
//! - [`spool`]: the durable spool behind a small trait; [`spool::SqliteSpool`] commits groups of
//!   requests in one transaction so concurrent ingests share an fsync, and bounds each
//!   integration's backlog.
//!
//! Still to come: the dispatcher (reqwest, rustls, resolving and
//! connecting through the guard), and `evo-siem sender --config FILE`.

pub mod batcher;
mod deliver;
pub mod dispatch;
mod filter;
pub mod guard;
mod integration;
pub mod retry;
pub mod service;
pub mod spool;

pub use deliver::{DeliveryStats, Step, Worker};
pub use filter::Exclusions;
pub use integration::{Integration, IntegrationError};

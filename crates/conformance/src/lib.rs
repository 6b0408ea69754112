//! Conformance checks for Evo SIEM webhooks.
//!
//! - [`sender`]: the sender suite, property tests of a sender end to end against mock SIEMs
//!   that misbehave: at-least-once delivery, exact filtering, order, the envelope, delivery ids
//!   and headers, across faults and restarts. `evo-siem conformance sender` runs it.
//! - [`receiver`]: the receiver suite, a battery of deliveries (valid, replayed, unsigned,
//!   forged, stale, malformed, oversized) sent to any receiver URL, each judged against the
//!   answer a conforming receiver gives. `evo-siem conformance receiver --url URL --secret-env
//!   VAR` runs it.
//!
//! `cargo xtask conformance` runs both, the receiver suite against the SDK's example receiver
//! and the mock SIEM.

pub mod receiver;
pub mod sender;

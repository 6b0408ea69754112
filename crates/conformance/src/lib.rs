//! Conformance checks for Evo SIEM webhooks.
//!
//! [`receiver`]: the receiver suite, a battery of deliveries (valid, replayed, unsigned, forged,
//! stale, malformed, oversized) sent to any receiver URL, each judged against the answer a
//! conforming receiver gives. `evo-siem conformance receiver --url URL --secret-env VAR` runs it.
//! The sender suite (property tests of the real sender against the mock SIEM) comes next.

pub mod receiver;

//! Workloads for Evo SIEM: realistic audit events and load on a sender's ingest API.
//!
//! - [`generate`]: a seeded generator of realistic audit events (a weighted mix of actions,
//!   users and service accounts per tenant, origins, targets, nanosecond timestamps), the one
//!   `evo-siem generate`, `evo-siem demo` and the benchmarks use. The same seed gives the same
//!   events.
//! - [`load`]: drives a running sender's ingest API at a target rate with bounded concurrency and
//!   reports the achieved rate, latency percentiles and errors (`evo-siem load`).

pub mod generate;
pub mod load;
pub mod percentiles;

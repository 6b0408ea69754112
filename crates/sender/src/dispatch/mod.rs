//! Delivery attempts over HTTP: the guarded resolver and the [`Dispatcher`].

mod client;
mod resolver;

pub use client::{AttemptReport, DispatchSettings, Dispatcher, FailureKind, SNIPPET_BYTES};
pub use resolver::{AllBlocked, GuardedResolver, Lookup, LookupFailed};

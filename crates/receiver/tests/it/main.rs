//! Integration tests of the receiver SDK, in one binary: HTTP behaviour through the axum
//! extractor, deduplication under interleavings and concurrency, and the shared fixtures.

mod broken_store;
mod common;
mod dedup;
mod fixtures;
mod http;
mod robustness;
mod standard_webhooks;
mod store_calls;

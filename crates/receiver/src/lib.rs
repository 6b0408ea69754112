//! Receiver SDK for Evo SIEM webhooks: everything a customer's ingest service needs to accept
//! Evo's signed, batched audit events safely.
//!
//! - **Verify before parsing**, in constant time, against one or several secrets (rotation).
//! - **Replay window**: the signed `generated_at` must be within the tolerance (default 5 min).
//! - **The whole batch validated, typed events built on demand**: each fresh event's JSON as
//!   received and its deduplication key ([`VerifiedBatch::raw_events`]) cost no typed parse; typed events that
//!   keep unknown fields ([`evo_siem_protocol::Event`], [`VerifiedBatch::events`]) are built on
//!   first use.
//! - **Deduplication by `data.uuid`** with claim / commit / release ([`dedup`]): an event is
//!   handed to you only if no other delivery has processed or is processing it, and marked seen
//!   only once you commit, so a crash in between means a redelivery, not a lost event. Event ids
//!   are UUIDs (compared as 16 bytes) or, as the platform also writes them (`"evt-abc123"`), any
//!   id of 1 to 128 bytes of printable ASCII (compared by a 128-bit hash of the exact text);
//!   [`ReceiverBuilder::event_ids`] can require UUIDs.
//! - **Correct statuses by themselves**: 401 / 400 / 413 / 503 with a JSON reason code
//!   ([`Rejection`]); 200 only from [`VerifiedBatch::commit`].
//!
//! # With axum
//!
//! ```no_run
//! use axum::{Router, routing::post};
//! use evo_siem_receiver::{Delivered, Receiver, Rejection, VerifiedBatch};
//!
//! async fn webhook(batch: VerifiedBatch) -> Result<Delivered, Rejection> {
//!     for event in batch.raw_events() {
//!         println!("{}", event.raw_json()); // forward to your SIEM, exactly as received
//!     }
//!     batch.commit().await // 200 only once the events are handed off
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let receiver = Receiver::builder().secret(std::env::var("EVO_SIEM_SECRET")?).build()?;
//! let app = Router::new().route("/webhook", post(webhook)).with_state(receiver);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, app).await?;
//! # Ok(()) }
//! ```
//!
//! # Without a framework
//!
//! ```
//! # use evo_siem_receiver::{Receiver, Rejection};
//! # use std::time::SystemTime;
//! # async fn handle(receiver: &Receiver, headers: http::HeaderMap, body: bytes::Bytes) -> (u16, String) {
//! match receiver.accept(&headers, body, SystemTime::now()).await {
//!     Ok(batch) => {
//!         for event in batch.events() { /* hand off */ }
//!         match batch.commit().await {
//!             Ok(done) => (200, format!("accepted {}", done.accepted)),
//!             Err(rejection) => (rejection.status().as_u16(), rejection.body_json()),
//!         }
//!     }
//!     Err(rejection) => (rejection.status().as_u16(), rejection.body_json()),
//! }
//! # }
//! ```

#[cfg(feature = "axum")]
mod axum;
mod body;
pub mod dedup;
mod receiver;
mod rejection;
mod verified;

pub use body::read_body;
pub use evo_siem_protocol as protocol;
pub use receiver::{BuildError, Receiver, ReceiverBuilder};
pub use rejection::{REJECTION_TARGET, Rejection};
pub use verified::{Delivered, RawEvent, VerifiedBatch};

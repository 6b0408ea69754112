//! The pipeline a user assembles from peers today, the receiver's yardstick: svix's
//! `Webhook::verify` (the `standardwebhooks` crate, svix's own code), serde_json into owned typed
//! structs, `Uuid::parse_str`, and an `lru::LruCache<Uuid, ()>` remembering the UUIDs seen.
//!
//! Shared by `benches/accept.rs` (in process) and `cargo xtask bench-http` (behind a plain axum
//! handler), so both measure the same code. Standalone: it names no item of the crate that
//! includes it.

use serde::Deserialize;
use std::num::NonZeroUsize;
use uuid::Uuid;

/// A batch as owned, typed structs, as an application would declare it.
#[derive(Deserialize)]
#[allow(dead_code)] // Parsed for the cost of it, as an application would.
pub(crate) struct Batch {
    pub(crate) schema_version: String,
    pub(crate) events: Vec<Event>,
    pub(crate) count: u64,
    pub(crate) generated_at: String,
}

#[derive(Deserialize)]
#[allow(dead_code)]
pub(crate) struct Event {
    pub(crate) event_type: String,
    pub(crate) table: String,
    pub(crate) timestamp: String,
    pub(crate) data: Data,
}

#[derive(Deserialize)]
#[allow(dead_code)]
pub(crate) struct Data {
    pub(crate) uuid: String,
    pub(crate) action: String,
    pub(crate) status: String,
    pub(crate) actor: Entity,
    pub(crate) origin: Origin,
    pub(crate) target: Entity,
    pub(crate) ts: i64,
    pub(crate) created_at: i64,
}

#[derive(Deserialize)]
#[allow(dead_code)]
pub(crate) struct Entity {
    pub(crate) kind: String,
    pub(crate) name: String,
}

#[derive(Deserialize)]
#[allow(dead_code)]
pub(crate) struct Origin {
    pub(crate) hostname: String,
    pub(crate) ipaddr: String,
}

/// Why the peers' pipeline refused a delivery; the HTTP handler answers 401 or 400.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PeerRefusal {
    Signature,
    Body,
}

/// Verify, parse, deduplicate, with its own LRU.
pub(crate) struct PeerPipeline {
    pub(crate) webhook: standardwebhooks::Webhook,
    pub(crate) seen: lru::LruCache<Uuid, ()>,
}

impl PeerPipeline {
    /// `key`: the HMAC key's bytes (what a `whsec_` secret decodes to); `capacity`: UUIDs kept.
    pub(crate) fn new(key: &[u8], capacity: usize) -> Self {
        Self {
            webhook: standardwebhooks::Webhook::from_bytes(key.to_vec()).expect("a non-empty key"),
            seen: lru::LruCache::new(NonZeroUsize::new(capacity).expect("a capacity above 0")),
        }
    }

    /// Verifies the Standard Webhooks headers, parses, and hands off each event not seen
    /// before; the number of fresh events.
    pub(crate) fn accept(
        &mut self,
        headers: &http::HeaderMap,
        body: &[u8],
    ) -> Result<usize, PeerRefusal> {
        self.webhook
            .verify(body, headers)
            .map_err(|_| PeerRefusal::Signature)?;
        let batch: Batch = serde_json::from_slice(body).map_err(|_| PeerRefusal::Body)?;
        if batch.count != batch.events.len() as u64 {
            return Err(PeerRefusal::Body);
        }
        let mut fresh = 0;
        for event in &batch.events {
            let uuid = Uuid::parse_str(&event.data.uuid).map_err(|_| PeerRefusal::Body)?;
            if self.seen.get(&uuid).is_none() {
                std::hint::black_box(&event.data.action); // hand the event off
                self.seen.put(uuid, ());
                fresh += 1;
            }
        }
        Ok(fresh)
    }
}

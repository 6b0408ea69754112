//! Realistic batches for the benchmarks: audit events from the workload generator (the one the
//! demo and `evo-siem generate` use), about 400 bytes each, with varied actions, actors and
//! addresses, v4 UUIDs and nanosecond timestamps above 2^53.

#![allow(dead_code)] // Each bench uses part of this module.

use evo_siem_protocol::{Secret, encode_batch, headers, sign};
use evo_siem_workload::generate::Generator;
use serde_json::value::RawValue;
use std::time::SystemTime;
use uuid::Uuid;

pub(crate) mod peers;

pub(crate) const SECRET: &str = "whsec-bench-7f3a9c2e";

/// A tiny xorshift generator: deterministic, and fast enough not to show in the setup.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A random version-4 UUID.
    pub(crate) fn uuid(&mut self) -> Uuid {
        let bits = (u128::from(self.next()) << 64) | u128::from(self.next());
        uuid::Builder::from_random_bytes(bits.to_le_bytes()).into_uuid()
    }
}

/// A body of about `bytes` bytes and its event count.
pub(crate) fn batch_body(rng: &mut Rng, bytes: usize) -> (Vec<u8>, usize) {
    let mut generator = Generator::new(rng.next(), "acme", SystemTime::now());
    let mut events = Vec::new();
    let mut size = 100;
    while size < bytes {
        let e = generator.next_event().json;
        size += e.len() + 1;
        events.push(RawValue::from_string(e).expect("valid JSON"));
    }
    let refs: Vec<&RawValue> = events.iter().map(|e| &**e).collect();
    (encode_batch(&refs, SystemTime::now()), refs.len())
}

/// Overwrites every `"uuid":"…"` in `body` with a fresh UUID of the same length, in place, so a
/// body can be reused without the receiver seeing duplicates.
pub(crate) fn refresh_uuids(rng: &mut Rng, body: &mut [u8]) {
    const KEY: &[u8] = b"\"uuid\":\"";
    let mut at = 0;
    while let Some(found) = body[at..].windows(KEY.len()).position(|w| w == KEY) {
        let start = at + found + KEY.len();
        let mut text = [0u8; 36];
        rng.uuid().hyphenated().encode_lower(&mut text);
        body[start..start + 36].copy_from_slice(&text);
        at = start + 36;
    }
}

/// Signed request headers for `body`.
pub(crate) fn signed_headers(body: &[u8]) -> http::HeaderMap {
    let mut map = http::HeaderMap::new();
    let value = sign(&Secret::new(SECRET), body);
    map.insert(headers::SIGNATURE_256, value.parse().expect("ASCII"));
    map
}

/// A webhook sink answering 200 on any path and counting events by each batch's `count`, read
/// from the body's tail so that the sink costs little of the cores the sender runs on.
pub(crate) async fn counting_sink() -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicU64>,
) {
    use std::sync::atomic::{AtomicU64, Ordering};
    let received = std::sync::Arc::new(AtomicU64::new(0));
    let counter = received.clone();
    let count = move |body: axum::body::Bytes| {
        let counter = counter.clone();
        async move {
            let tail = std::str::from_utf8(&body[body.len().saturating_sub(64)..]).unwrap();
            let count = tail.rsplit_once("\"count\":").unwrap().1;
            let digits: String = count.chars().take_while(char::is_ascii_digit).collect();
            counter.fetch_add(digits.parse::<u64>().unwrap(), Ordering::Relaxed);
            "ok"
        }
    };
    let sink = axum::Router::new().route("/{*path}", axum::routing::post(count));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, sink).await.unwrap() });
    (addr, received)
}

//! The receiver against the peers, in the same run. Full accept of realistic batches (signature,
//! validation, dedup claim and commit, as `Receiver::accept` + `VerifiedBatch::commit` do it) on
//! one core, with fresh UUIDs and a fresh signature every iteration and the default store full
//! (a long-running receiver's steady state), next to the pipeline a user assembles from peers:
//! svix `Webhook::verify` + serde_json into owned structs + `Uuid::parse_str` + an
//! `lru::LruCache<Uuid, ()>` of 1 M, also full. The pieces (parse alone, verify + parse) run in
//! the same group so the cost split is visible.
//!
//! After criterion, interleaved rounds (every pipeline on every batch size in turn, on the same
//! bodies) give the ratios that count on a shared machine: `accept ratio:` lines, repeated by
//! `cargo xtask bench`; `EVO_SIEM_BENCH_ROUNDS` sets how many (default 9). Targets: full accept >= 1.0 M events/s on one core (stretch 1.5 M),
//! >= 2.0x the peers (stretch 2.5x), 64 KiB batches >= 0.9x the 1 MiB rate per event.

mod common;

use common::peers::PeerPipeline;
use common::{Rng, batch_body, refresh_uuids, signed_headers};
use criterion::{Criterion, Throughput};
use evo_siem_protocol::{Secret, Verifier, headers, parse_batch};
use evo_siem_receiver::Receiver;
use evo_siem_receiver::dedup::{ClaimToken, MemoryDedup};
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// The default store's capacity, and the peers' LRU capacity.
const STORE: usize = 1_000_000;

/// The peers' pipeline with its own steady-state (full) LRU, and svix's signing.
struct Peers {
    pipeline: PeerPipeline,
}

impl Peers {
    fn new(rng: &mut Rng) -> Self {
        let mut pipeline = PeerPipeline::new(common::SECRET.as_bytes(), STORE);
        for _ in 0..STORE {
            pipeline.seen.put(rng.uuid(), ());
        }
        Self { pipeline }
    }

    /// Standard Webhooks headers, signed with svix itself, with a fresh message id.
    fn headers(&self, rng: &mut Rng, body: &[u8]) -> http::HeaderMap {
        let id = format!("msg_{}", rng.uuid().simple());
        let ts = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let signature = self.pipeline.webhook.sign(&id, ts, body).unwrap();
        let mut map = http::HeaderMap::new();
        map.insert("webhook-id", id.parse().unwrap());
        map.insert("webhook-timestamp", ts.to_string().parse().unwrap());
        map.insert("webhook-signature", signature.parse().unwrap());
        map
    }

    /// Verify, parse, deduplicate: returns the number of fresh events.
    fn accept(&mut self, headers: &http::HeaderMap, body: &[u8]) -> usize {
        self.pipeline.accept(headers, body).unwrap()
    }
}

/// The SDK with its default store, filled to capacity before anything is timed.
struct Ours {
    receiver: Receiver,
    runtime: tokio::runtime::Runtime,
}

impl Ours {
    fn new(rng: &mut Rng) -> Self {
        let store = Arc::new(MemoryDedup::default());
        let mut keys = Vec::with_capacity(1000);
        // Shards fill unevenly: half as many again fills every one of them.
        for _ in 0..STORE * 3 / 2 / 1000 {
            keys.clear();
            keys.extend((0..1000).map(|_| rng.uuid()));
            store.commit_now(&keys, ClaimToken(0));
        }
        assert_eq!(store.len(), STORE, "the store starts full");
        let receiver = Receiver::builder()
            .secret(common::SECRET)
            .dedup_shared(store)
            .build()
            .unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        Self { receiver, runtime }
    }

    /// Accept + commit; `typed` also walks every fresh event's typed fields.
    fn accept(&self, headers: &http::HeaderMap, body: bytes::Bytes, typed: bool) -> usize {
        self.runtime.block_on(async {
            let batch = self
                .receiver
                .accept(headers, body, SystemTime::now())
                .await
                .unwrap();
            if typed {
                for event in batch.events() {
                    black_box(&event.data.action);
                }
            } else {
                for event in batch.raw_events() {
                    black_box(event.raw_json()); // hand the event off, as received
                }
            }
            batch.commit().await.unwrap().accepted
        })
    }
}

/// One body of about `bytes`, reused with fresh UUIDs each iteration.
struct Case {
    label: &'static str,
    body: Vec<u8>,
    events: usize,
}

fn cases(rng: &mut Rng) -> [Case; 2] {
    let make = |rng: &mut Rng, label, bytes| {
        let (body, events) = batch_body(rng, bytes);
        Case {
            label,
            body,
            events,
        }
    };
    [
        make(rng, "1MiB", 1024 * 1024),
        make(rng, "64KiB", 64 * 1024),
    ]
}

fn criterion_benches(c: &mut Criterion, rng: &mut Rng, ours: &Ours, peers: &mut Peers) {
    let [big, small] = cases(rng);
    let mut group = c.benchmark_group("accept");
    group.sample_size(30);
    group.throughput(Throughput::Elements(big.events as u64));
    let body = &big.body;
    let header = signed_headers(body);

    group.bench_function("parse", |b| {
        b.iter(|| parse_batch(black_box(body)).unwrap().events.len());
    });

    let verifier = Verifier::new([Secret::new(common::SECRET)]);
    group.bench_function("verify_and_parse", |b| {
        let signature = header.get(headers::SIGNATURE_256).map(|v| v.as_bytes());
        b.iter(|| {
            verifier
                .verify(black_box(body), signature, SystemTime::now())
                .unwrap()
                .uuids
                .len()
        });
    });
    group.bench_function("verify_and_validate", |b| {
        let signature = header.get(headers::SIGNATURE_256).map(|v| v.as_bytes());
        b.iter(|| {
            verifier
                .verify_indexed(black_box(body), signature, SystemTime::now())
                .unwrap()
                .len()
        });
    });

    // The HTTP bench's 1 KiB request (3 events), in process: where a small batch's time goes.
    let tiny = {
        let (body, events) = batch_body(rng, 1024);
        Case {
            label: "1KiB",
            body,
            events,
        }
    };
    group.throughput(Throughput::Elements(tiny.events as u64));
    group.bench_function("verify_and_validate/1KiB", |b| {
        let header = signed_headers(&tiny.body);
        let signature = header.get(headers::SIGNATURE_256).map(|v| v.as_bytes());
        b.iter(|| {
            verifier
                .verify_indexed(black_box(&tiny.body), signature, SystemTime::now())
                .unwrap()
                .len()
        });
    });
    for case in [&big, &small, &tiny] {
        group.throughput(Throughput::Elements(case.events as u64));
        for (name, typed) in [("full_accept", false), ("full_accept_typed", true)] {
            group.bench_function(format!("{name}/{}", case.label), |b| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    let mut body = case.body.clone();
                    for _ in 0..iters {
                        // Fresh UUIDs and a fresh signature every time, outside the timed part.
                        refresh_uuids(rng, &mut body);
                        let headers = signed_headers(&body);
                        let bytes = bytes::Bytes::from(body.clone());
                        let start = Instant::now();
                        let accepted = ours.accept(&headers, bytes, typed);
                        total += start.elapsed();
                        assert_eq!(accepted, case.events);
                    }
                    total
                });
            });
        }
        group.bench_function(format!("peers/{}", case.label), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut body = case.body.clone();
                for _ in 0..iters {
                    refresh_uuids(rng, &mut body);
                    let headers = peers.headers(rng, &body);
                    let start = Instant::now();
                    let accepted = peers.accept(&headers, &body);
                    total += start.elapsed();
                    assert_eq!(accepted, case.events);
                }
                total
            });
        });
    }
    group.finish();
}

/// Rounds in which every pipeline runs on every batch size in turn (ours, ours with typed
/// events, the peers'; 1 MiB then 64 KiB), so that load from other work on the machine falls
/// on all of them alike; the medians of the per-round rates and ratios.
fn interleaved(rng: &mut Rng, ours: &Ours, peers: &mut Peers, rounds: usize) {
    let [big, small] = cases(rng);
    // Batches per pipeline and round: about 50 ms of work each.
    let plan = [(&big, 20), (&small, 320)];
    let mut bodies = [big.body.clone(), small.body.clone()];
    // rates[case][pipeline] per round.
    let mut rates = [[(); 3].map(|()| Vec::new()), [(); 3].map(|()| Vec::new())];
    for _ in 0..rounds {
        for (c, (case, batches)) in plan.iter().enumerate() {
            for (pipeline, series) in rates[c].iter_mut().enumerate() {
                let body = &mut bodies[c];
                let mut spent = Duration::ZERO;
                for _ in 0..*batches {
                    refresh_uuids(rng, body);
                    if pipeline == 2 {
                        let headers = peers.headers(rng, body);
                        let start = Instant::now();
                        black_box(peers.accept(&headers, body));
                        spent += start.elapsed();
                    } else {
                        let headers = signed_headers(body);
                        let bytes = bytes::Bytes::from(body.clone());
                        let start = Instant::now();
                        black_box(ours.accept(&headers, bytes, pipeline == 1));
                        spent += start.elapsed();
                    }
                }
                series.push((case.events * batches) as f64 / spent.as_secs_f64());
            }
        }
    }
    let ratio = |a: &[f64], b: &[f64]| median(a.iter().zip(b).map(|(x, y)| x / y).collect());
    let [big_rates, small_rates] = &rates;
    println!(
        "accept ratio: 1MiB ({} events) full accept {:.2} M events/s (target >= 1.0, stretch 1.5), \
         peers {:.2} M events/s: {:.2}x the peers (target >= 2.0, stretch 2.5); \
         with typed events {:.2} M events/s, {:.2}x",
        big.events,
        median(big_rates[0].clone()) / 1e6,
        median(big_rates[2].clone()) / 1e6,
        ratio(&big_rates[0], &big_rates[2]),
        median(big_rates[1].clone()) / 1e6,
        ratio(&big_rates[1], &big_rates[2]),
    );
    println!(
        "accept ratio: 64KiB ({} events) full accept {:.2} M events/s, {:.2} of the 1 MiB rate \
         (target >= 0.9); peers {:.2} M events/s: {:.2}x; with typed events {:.2} M",
        small.events,
        median(small_rates[0].clone()) / 1e6,
        ratio(&small_rates[0], &big_rates[0]),
        median(small_rates[2].clone()) / 1e6,
        ratio(&small_rates[0], &small_rates[2]),
        median(small_rates[1].clone()) / 1e6,
    );
    println!("accept ratio: medians of {rounds} interleaved rounds, one core, stores full");
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    // `cargo test --benches` and `cargo bench -- --test` only check that benchmarks run.
    let quick = std::env::args().any(|a| a == "--test" || a == "--list");
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let ours = Ours::new(&mut rng);
    let mut peers = Peers::new(&mut rng);
    criterion_benches(&mut criterion, &mut rng, &ours, &mut peers);
    criterion.final_summary();
    if !quick {
        let rounds = std::env::var("EVO_SIEM_BENCH_ROUNDS")
            .ok()
            .and_then(|r| r.parse().ok())
            .unwrap_or(9);
        interleaved(&mut rng, &ours, &mut peers, rounds);
    }
}

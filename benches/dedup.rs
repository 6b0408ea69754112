//! The dedup stores: claim+commit throughput on batches of 1,000 fresh UUIDs for the in-memory
//! store (direct, and through the async `DedupStore` trait) and for the Redis store on the local
//! server (started through `scripts/services.sh` when down; `EVO_SIEM_REDIS_URL` to point
//! elsewhere); then the in-memory store's resident memory per remembered UUID at 1 M and 10 M
//! entries (RSS delta from /proc, so it counts allocator overhead). Target: under 32 bytes an
//! entry at 10 M.
//!
//! Beside it, what the user's design names: an `lru::LruCache<Uuid, ()>` doing the same job
//! (`get`, then `put` when absent), full at 1 M, and its bytes per entry at 1 M and 10 M, so
//! that the reason for the ring store is a figure anyone can reproduce.

mod common;

use common::Rng;
use criterion::{Criterion, Throughput};
use evo_siem_dedup_redis::{RedisDedup, RedisDedupConfig};
use evo_siem_receiver::dedup::{ClaimToken, DedupStore, MemoryDedup, MemoryDedupConfig};
use std::hint::black_box;
use std::num::NonZeroUsize;
use std::time::{Duration, Instant};
use uuid::Uuid;

fn claim_commit(c: &mut Criterion) {
    let store = MemoryDedup::default();
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let mut group = c.benchmark_group("dedup");
    group.throughput(Throughput::Elements(1000));
    group.bench_function("claim_commit_1000", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for i in 0..iters {
                let keys: Vec<Uuid> = (0..1000).map(|_| rng.uuid()).collect();
                let token = ClaimToken(u128::from(i));
                let start = Instant::now();
                black_box(store.claim_now(&keys, token));
                store.commit_now(&keys, token);
                total += start.elapsed();
            }
            total
        });
    });
    group.finish();
}

/// Both stores full (1 M) before timing: every fresh UUID also evicts the oldest, a
/// long-running receiver's steady state.
fn full_stores(c: &mut Criterion) {
    const FULL: usize = 1_000_000;
    let mut rng = Rng(0x5851_F42D_4C95_7F2D);
    let memory = MemoryDedup::default();
    let mut keys = Vec::with_capacity(1000);
    // Shards fill unevenly: half as many again fills every one of them.
    for _ in 0..FULL * 3 / 2 / 1000 {
        keys.clear();
        keys.extend((0..1000).map(|_| rng.uuid()));
        memory.commit_now(&keys, ClaimToken(0));
    }
    let mut lru = lru::LruCache::<Uuid, ()>::new(NonZeroUsize::new(FULL).unwrap());
    for _ in 0..FULL {
        lru.put(rng.uuid(), ());
    }
    let mut group = c.benchmark_group("dedup");
    group.throughput(Throughput::Elements(1000));
    group.bench_function("memory_full_claim_commit_1000", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for i in 0..iters {
                let keys: Vec<Uuid> = (0..1000).map(|_| rng.uuid()).collect();
                let token = ClaimToken(u128::from(i));
                let start = Instant::now();
                black_box(memory.claim_now(&keys, token));
                memory.commit_now(&keys, token);
                total += start.elapsed();
            }
            total
        });
    });
    group.bench_function("lru_full_get_put_1000", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let keys: Vec<Uuid> = (0..1000).map(|_| rng.uuid()).collect();
                let start = Instant::now();
                for key in &keys {
                    if lru.get(key).is_none() {
                        lru.put(*key, ());
                    }
                }
                total += start.elapsed();
            }
            total
        });
    });
    group.finish();
}

/// Claim+commit through the async trait, as a receiver does: the same work for both stores.
fn through_trait(c: &mut Criterion, name: &str, store: &dyn DedupStore) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut group = c.benchmark_group("dedup");
    group.throughput(Throughput::Elements(1000));
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let keys: Vec<Uuid> = (0..1000).map(|_| rng.uuid()).collect();
                let token = ClaimToken::random();
                let start = Instant::now();
                runtime.block_on(async {
                    black_box(store.claim(&keys, token).await.unwrap());
                    store.commit(&keys, token).await.unwrap();
                });
                total += start.elapsed();
            }
            total
        });
    });
    group.finish();
}

/// Resident set size in bytes.
fn rss() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// Resident bytes per entry of a store holding `entries` UUIDs. Run in a child process of its
/// own (see `main`): memory freed by an earlier measurement would otherwise be reused without
/// showing in the RSS.
fn bytes_per_entry(store: &str, entries: usize) {
    let mut rng = Rng(0xDEAD_BEEF_CAFE_F00D ^ entries as u64);
    let before = rss();
    let (name, held) = if store == "lru" {
        let mut lru = lru::LruCache::<Uuid, ()>::new(NonZeroUsize::new(entries).unwrap());
        for _ in 0..entries {
            lru.put(rng.uuid(), ());
        }
        let held = lru.len();
        std::mem::forget(lru); // Measured, not freed: the process ends here.
        ("lru::LruCache<Uuid, ()>", held)
    } else {
        let store = MemoryDedup::new(MemoryDedupConfig::default().capacity(entries));
        let mut keys = Vec::with_capacity(1000);
        for _ in 0..entries / 1000 {
            keys.clear();
            keys.extend((0..1000).map(|_| rng.uuid()));
            store.commit_now(&keys, ClaimToken(0));
        }
        let held = store.len();
        std::mem::forget(store);
        ("MemoryDedup", held)
    };
    let delta = rss().saturating_sub(before);
    let target = if store != "lru" && entries >= 10_000_000 {
        " (target < 32)"
    } else {
        ""
    };
    println!(
        "dedup memory: {name}, {entries} entries inserted, {held} held, {:.1} bytes/entry{target} (RSS delta {:.1} MiB)",
        delta as f64 / held as f64,
        delta as f64 / (1024.0 * 1024.0),
    );
}

/// Runs [`bytes_per_entry`] in a fresh process of this benchmark binary.
fn measure_in_child(store: &str, entries: usize) {
    let run = std::env::current_exe().and_then(|exe| {
        std::process::Command::new(exe)
            .env("EVO_SIEM_DEDUP_MEMORY", format!("{store}:{entries}"))
            .status()
    });
    if !matches!(run, Ok(status) if status.success()) {
        println!("dedup memory: {store} at {entries} entries could not be measured: {run:?}");
    }
}

fn main() {
    if let Ok(spec) = std::env::var("EVO_SIEM_DEDUP_MEMORY") {
        let (store, entries) = spec.split_once(':').expect("STORE:ENTRIES");
        bytes_per_entry(store, entries.parse().expect("a number of entries"));
        return;
    }
    let mut criterion = Criterion::default().configure_from_args();
    claim_commit(&mut criterion);
    full_stores(&mut criterion);
    // `cargo test --benches` and `cargo bench -- --test` only check that benchmarks run.
    let quick = std::env::args().any(|a| a == "--test" || a == "--list");
    through_trait(
        &mut criterion,
        "memory_trait_claim_commit_1000",
        &MemoryDedup::default(),
    );
    if !quick {
        evo_siem_test_services::redis().expect("Redis (scripts/services.sh)");
        let url = std::env::var("EVO_SIEM_REDIS_URL")
            .unwrap_or_else(|_| "redis://127.0.0.1:6379/".into());
        let config = RedisDedupConfig::new(url)
            .prefix(format!("evo-siem-bench:{}:", Uuid::new_v4()))
            .ttl(Duration::from_secs(600));
        through_trait(
            &mut criterion,
            "redis_claim_commit_1000",
            &RedisDedup::new(config).unwrap(),
        );
    }
    criterion.final_summary();
    if !quick {
        for entries in [1_000_000, 10_000_000] {
            measure_in_child("memory", entries);
            measure_in_child("lru", entries);
        }
    }
}

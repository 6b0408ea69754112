//! The dedup stores: claim+commit throughput on batches of 1,000 fresh UUIDs for the in-memory
//! store (direct, and through the async `DedupStore` trait) and for the Redis store on the local
//! server (started through `scripts/services.sh` when down; `EVO_SIEM_REDIS_URL` to point
//! elsewhere); then the in-memory store's resident memory per remembered UUID at 1 M and 10 M
//! entries (RSS delta from /proc, so it counts allocator overhead). Targets: bytes per entry at
//! most 64.

mod common;

use common::Rng;
use criterion::{Criterion, Throughput};
use evo_siem_dedup_redis::{RedisDedup, RedisDedupConfig};
use evo_siem_receiver::dedup::{ClaimToken, DedupStore, MemoryDedup, MemoryDedupConfig};
use std::hint::black_box;
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

fn bytes_per_entry(entries: usize) {
    let mut rng = Rng(0xDEAD_BEEF_CAFE_F00D ^ entries as u64);
    let before = rss();
    let store = MemoryDedup::new(MemoryDedupConfig::default().capacity(entries));
    let mut keys = Vec::with_capacity(1000);
    for _ in 0..entries / 1000 {
        keys.clear();
        keys.extend((0..1000).map(|_| rng.uuid()));
        store.commit_now(&keys, ClaimToken(0));
    }
    let held = store.len();
    let delta = rss().saturating_sub(before);
    println!(
        "dedup memory: {entries} entries inserted, {held} held, {:.1} bytes/entry (RSS delta {:.1} MiB)",
        delta as f64 / held as f64,
        delta as f64 / (1024.0 * 1024.0),
    );
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    claim_commit(&mut criterion);
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
        bytes_per_entry(1_000_000);
        bytes_per_entry(10_000_000);
    }
}

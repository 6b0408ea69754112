//! Signature verification next to raw HMAC-SHA256 of the same bytes, in the same run, so their
//! ratio can be read off despite a noisy machine. Target: verify at 0.90 of raw or better.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use evo_siem_protocol::{Secret, sign, verify_signature};
use hmac::{KeyInit, Mac};
use std::hint::black_box;

fn verify(c: &mut Criterion) {
    let secret = Secret::new("whsec-bench-7f3a9c2e");
    let mut group = c.benchmark_group("verify");
    for (label, size) in [("1KiB", 1024), ("64KiB", 64 * 1024), ("1MiB", 1024 * 1024)] {
        let body: Vec<u8> = (0..size)
            .map(|i| b"{\"event\":\"User login\"}"[i % 22])
            .collect();
        let header = sign(&secret, &body);
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::new("raw_hmac", label), &body, |b, body| {
            b.iter(|| {
                let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.expose()).unwrap();
                mac.update(black_box(body));
                black_box(mac.finalize().into_bytes())
            });
        });
        group.bench_with_input(
            BenchmarkId::new("verify_signature", label),
            &body,
            |b, body| {
                let secrets = [secret.clone()];
                b.iter(|| {
                    verify_signature(
                        Some(black_box(header.as_bytes())),
                        black_box(body),
                        &secrets,
                    )
                });
            },
        );
    }
    group.finish();
}

criterion_group!(benches, verify);
criterion_main!(benches);

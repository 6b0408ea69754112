//! Full accept of a 1 MiB batch of realistic events: signature, parse, validation, dedup claim
//! and commit, as `Receiver::accept` + `VerifiedBatch::commit` do it, on one core. The pieces
//! (parse alone, verify+parse) run in the same group so the cost split is visible.
//! Target: 1,000,000 events/s for the full accept.

mod common;

use common::{Rng, batch_body, refresh_uuids, signed_headers};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use evo_siem_protocol::{Secret, Verifier, headers, parse_batch};
use evo_siem_receiver::Receiver;
use std::hint::black_box;
use std::time::{Duration, Instant, SystemTime};

fn accept(c: &mut Criterion) {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let (body, events) = batch_body(&mut rng, 1024 * 1024);
    let header = signed_headers(&body);
    let mut group = c.benchmark_group("accept");
    group.throughput(Throughput::Elements(events as u64));
    group.sample_size(30);

    group.bench_function("parse", |b| {
        b.iter(|| parse_batch(black_box(&body)).unwrap().events.len());
    });

    let verifier = Verifier::new([Secret::new(common::SECRET)]);
    group.bench_function("verify_and_parse", |b| {
        let signature = header.get(headers::SIGNATURE_256).map(|v| v.as_bytes());
        b.iter(|| {
            verifier
                .verify(black_box(&body), signature, SystemTime::now())
                .unwrap()
                .uuids
                .len()
        });
    });

    // The default store (1 M UUIDs): after the first few hundred batches it is full and every
    // commit also evicts the oldest entry, which is a long-running receiver's steady state.
    let receiver = Receiver::builder().secret(common::SECRET).build().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    group.bench_function("full_accept", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut body = body.clone();
            for _ in 0..iters {
                // Fresh UUIDs and a fresh signature every time, outside the timed part.
                refresh_uuids(&mut rng, &mut body);
                let headers = signed_headers(&body);
                let bytes = bytes::Bytes::from(body.clone());
                let start = Instant::now();
                runtime.block_on(async {
                    let batch = receiver
                        .accept(&headers, bytes, SystemTime::now())
                        .await
                        .unwrap();
                    assert_eq!(batch.events().len(), events);
                    let delivered = batch.commit().await.unwrap();
                    black_box(delivered.accepted);
                });
                total += start.elapsed();
            }
            total
        });
    });
    group.finish();
}

criterion_group!(benches, accept);
criterion_main!(benches);

//! The SQLite spool alone: durable append throughput (one fsync per group commit, 8 concurrent
//! writers appending 1,000 events each time), the process's resident memory with 10 M events
//! queued (target: at most 256 MiB), and how long reading the next batch takes then.
//! `SPOOL_BENCH_EVENTS` changes the count (default 10,000,000; about 4 GB of disk).

use evo_siem_sender::spool::{BacklogLimits, NewEvent, Spool, SqliteSpool};
use std::sync::Arc;
use std::time::Instant;

fn rss_mib() -> f64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: f64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0.0);
    pages * 4096.0 / (1024.0 * 1024.0)
}

fn main() {
    if std::env::args().any(|a| a == "--test" || a == "--list") {
        return; // `cargo test --benches` only checks that it builds.
    }
    let total: usize = std::env::var("SPOOL_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let spool = Arc::new(SqliteSpool::open(&dir.path().join("spool.db"), BacklogLimits::default()).unwrap());
        let event = r#"{"event_type":"create","table":"events","timestamp":"2024-01-15T10:30:00.000Z","data":{"uuid":"8f14e45f-ceea-4e6b-9d2a-2f2d0c2a7b31","action":"User logout","status":"Success","actor":{"kind":"User","name":"user@example.com"},"origin":{"hostname":"DESKTOP-ABC","ipaddr":"192.168.1.100"},"target":{"kind":"User","name":"user@example.com"},"ts":1706000000000000000,"created_at":1706000000000000000}}"#;
        let before = rss_mib();
        let started = Instant::now();
        let writers = 8;
        let per_writer = total / writers / 1000;
        let tasks: Vec<_> = (0..writers)
            .map(|_| {
                let spool = spool.clone();
                tokio::spawn(async move {
                    for _ in 0..per_writer {
                        let batch = (0..1000)
                            .map(|_| NewEvent { action: "User logout".into(), json: event.to_owned() })
                            .collect();
                        spool.append("acme", batch).await.unwrap();
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        let elapsed = started.elapsed();
        let queued = spool.backlog("acme").await.unwrap();
        let read = Instant::now();
        let next = spool.pending("acme", 500).await.unwrap();
        println!(
            "spool: {} events appended durably in {:.1} s = {:.0} events/s; RSS {:.0} MiB with {} queued \
             ({:.0} MiB before); next batch of {} read in {:.1} ms (target RSS <= 256 MiB)",
            queued.events,
            elapsed.as_secs_f64(),
            queued.events as f64 / elapsed.as_secs_f64(),
            rss_mib(),
            queued.events,
            before,
            next.len(),
            read.elapsed().as_secs_f64() * 1e3,
        );
    });
}

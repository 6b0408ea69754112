//! `cargo xtask bench`: run the benchmarks, then read criterion's estimates and print each figure
//! next to its target. Ratios within one run are what to compare: the machine is shared.

use crate::{cargo, project_root};
use anyhow::{Context, bail};
use serde_json::Value;
use std::path::Path;

pub(crate) fn run(args: &[String]) -> anyhow::Result<()> {
    // `--receiver`: only the receiver's benches (verify, accept, dedup) and their summary.
    let receiver_only = args.iter().any(|a| a == "--receiver");
    let harness_args: Vec<&String> = args.iter().filter(|a| *a != "--receiver").collect();
    let root = project_root();
    // Captured (and printed) so that the lines the benches print themselves, the interleaved
    // ratios and the memory figures, can be repeated in the summary.
    let micro = cargo()
        .current_dir(&root)
        .args([
            "bench", "--bench", "verify", "--bench", "accept", "--bench", "dedup", "--",
        ])
        .args(harness_args)
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("cannot run cargo bench")?;
    let micro_out = String::from_utf8_lossy(&micro.stdout).into_owned();
    print!("{micro_out}");
    if !micro.status.success() {
        bail!("cargo bench failed: {}", micro.status);
    }
    if receiver_only {
        return summarize(&root.join("target/criterion"), &micro_out, receiver_only);
    }
    // The whole-pipeline figures are runs, not criterion samples; scale_out needs PostgreSQL.
    let services = std::process::Command::new("bash")
        .arg(root.join("scripts/services.sh"))
        .status()
        .context("cannot run scripts/services.sh")?;
    if !services.success() {
        bail!("scripts/services.sh failed: {services}");
    }
    let status = cargo()
        .current_dir(&root)
        .args(["bench", "--bench", "sender_e2e", "--bench", "scale_out"])
        .status()
        .context("cannot run cargo bench")?;
    if !status.success() {
        bail!("cargo bench failed: {status}");
    }
    // The sender against the number of integrations: a child process per case. Its table is
    // captured to be repeated in the summary (it also goes to the terminal as it comes).
    let tenants = cargo()
        .current_dir(&root)
        .args(["bench", "--bench", "tenants"])
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("cannot run cargo bench --bench tenants")?;
    let tenants_table = String::from_utf8_lossy(&tenants.stdout).into_owned();
    print!("{tenants_table}");
    if !tenants.status.success() {
        bail!("cargo bench --bench tenants failed: {}", tenants.status);
    }
    summarize(&root.join("target/criterion"), &micro_out, receiver_only)?;
    println!("\n== the sender at many integrations (--bench tenants) ==");
    for line in tenants_table
        .lines()
        .filter(|l| l.starts_with('|') || l.starts_with("tenants:"))
    {
        println!("{line}");
    }
    Ok(())
}

/// Mean time of one iteration of one benchmark in nanoseconds, from its latest run.
fn mean_ns(dir: &Path) -> Option<f64> {
    let file = std::fs::read(dir.join("new/estimates.json")).ok()?;
    serde_json::from_slice::<Value>(&file).ok()?["mean"]["point_estimate"].as_f64()
}

/// Throughput per second of one benchmark: (value, unit), from its latest run.
fn throughput(dir: &Path) -> Option<(f64, &'static str)> {
    let mean_ns = mean_ns(dir)?;
    let spec: Value =
        serde_json::from_slice(&std::fs::read(dir.join("new/benchmark.json")).ok()?).ok()?;
    let per_iter = &spec["throughput"];
    let (amount, unit) = if let Some(bytes) = per_iter["Bytes"].as_f64() {
        (bytes, "B/s")
    } else {
        (per_iter["Elements"].as_f64()?, "elem/s")
    };
    Some((amount / (mean_ns * 1e-9), unit))
}

fn summarize(criterion: &Path, bench_output: &str, receiver_only: bool) -> anyhow::Result<()> {
    println!("\n== summary (mean of the latest run) ==");
    for size in ["1KiB", "64KiB", "1MiB"] {
        let raw = throughput(&criterion.join("verify/raw_hmac").join(size));
        let verify = throughput(&criterion.join("verify/verify_signature").join(size));
        if let (Some((raw, _)), Some((verify, _))) = (raw, verify) {
            println!(
                "verify {size:>5}: {:7.0} MB/s vs raw HMAC {:7.0} MB/s = {:.2} of raw (target >= 0.90)",
                verify / 1e6,
                raw / 1e6,
                verify / raw
            );
        }
    }
    let accept = |name: &str| throughput(&criterion.join("accept").join(name)).map(|t| t.0);
    for (name, what) in [
        ("parse", "typed parse alone"),
        (
            "verify_and_parse",
            "verify + typed parse (Verifier::verify)",
        ),
        (
            "verify_and_validate",
            "verify + validate (Verifier::verify_indexed)",
        ),
    ] {
        if let Some(rate) = accept(name) {
            println!("accept {name:>19}: {rate:10.0} events/s ({what}, 1 MiB)");
        }
    }
    let (full, peers) = (accept("full_accept_1MiB"), accept("peers_1MiB"));
    if let (Some(full), Some(peers)) = (full, peers) {
        println!(
            "accept full, 1 MiB, store full: {full:10.0} events/s (target >= 1,000,000, stretch 1,500,000); \
             peers {peers:.0} events/s: {:.2}x (target >= 2.0, stretch 2.5)",
            full / peers
        );
    }
    if let (Some(typed), Some(peers)) = (accept("full_accept_typed_1MiB"), peers) {
        println!(
            "accept full with typed events, 1 MiB: {typed:10.0} events/s, {:.2}x the peers",
            typed / peers
        );
    }
    if let (Some(small), Some(full)) = (accept("full_accept_64KiB"), full) {
        println!(
            "accept full, 64 KiB: {small:10.0} events/s = {:.2} of the 1 MiB rate per event (target >= 0.9)",
            small / full
        );
    }
    // Per batch: the in-process side of bench-http's 1 KiB figure.
    let micros = |name: &str| mean_ns(&criterion.join("accept").join(name)).map(|ns| ns / 1e3);
    if let (Some(validate), Some(full), Some(peers)) = (
        micros("verify_and_validate_1KiB"),
        micros("full_accept_1KiB"),
        micros("peers_1KiB"),
    ) {
        println!(
            "accept full, 1 KiB batch, store full: {full:.2} µs a batch, of which verify + validate \
             {validate:.2} µs; peers {peers:.2} µs: {:.2}x",
            peers / full
        );
    }
    println!(
        "(criterion means, one after the other; the interleaved rounds below are the ratios that count)"
    );
    for line in bench_output
        .lines()
        .filter(|l| l.starts_with("accept ratio:") || l.starts_with("dedup memory:"))
    {
        println!("{line}");
    }
    for (name, what) in [
        ("claim_commit_1000", "in memory"),
        (
            "memory_trait_claim_commit_1000",
            "in memory, through the DedupStore trait",
        ),
        (
            "redis_claim_commit_1000",
            "Redis, shared by several receivers",
        ),
    ] {
        if let Some((rate, _)) = throughput(&criterion.join("dedup").join(name)) {
            println!("dedup claim+commit: {rate:10.0} UUIDs/s (batches of 1,000; {what})");
        }
    }
    let dedup = |name: &str| throughput(&criterion.join("dedup").join(name)).map(|t| t.0);
    if let (Some(memory), Some(lru)) = (
        dedup("memory_full_claim_commit_1000"),
        dedup("lru_full_get_put_1000"),
    ) {
        println!(
            "dedup, both full at 1 M: MemoryDedup claim+commit {memory:.0} UUIDs/s, lru get+put {lru:.0} UUIDs/s ({:.2}x)",
            memory / lru
        );
    }
    println!("http: `cargo xtask bench-http` (server and client pinned to their own cores)");
    if receiver_only {
        return Ok(());
    }
    println!("sender end to end: see the `sender e2e:` line above (target >= 100,000 events/s)");
    println!("scaling out: see the `scale out:` lines above (SQLite vs PostgreSQL, 1-3 instances)");
    println!("spool: see the `spool:` line above (target RSS <= 256 MiB with 10 M queued)");
    Ok(())
}

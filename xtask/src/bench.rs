//! `cargo xtask bench`: run the benchmarks, then read criterion's estimates and print each figure
//! next to its target. Ratios within one run are what to compare: the machine is shared.

use crate::{cargo, project_root};
use anyhow::{Context, bail};
use serde_json::Value;
use std::path::Path;

pub(crate) fn run(harness_args: &[String]) -> anyhow::Result<()> {
    let root = project_root();
    let status = cargo()
        .current_dir(&root)
        .args([
            "bench", "--bench", "verify", "--bench", "accept", "--bench", "dedup", "--",
        ])
        .args(harness_args)
        .status()
        .context("cannot run cargo bench")?;
    if !status.success() {
        bail!("cargo bench failed: {status}");
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
    summarize(&root.join("target/criterion"))?;
    println!("\n== the sender at many integrations (--bench tenants) ==");
    for line in tenants_table
        .lines()
        .filter(|l| l.starts_with('|') || l.starts_with("tenants:"))
    {
        println!("{line}");
    }
    Ok(())
}

/// Throughput per second of one benchmark: (value, unit), from its latest run.
fn throughput(dir: &Path) -> Option<(f64, &'static str)> {
    let read = |file: &str| -> Option<Value> {
        serde_json::from_slice(&std::fs::read(dir.join(file)).ok()?).ok()
    };
    let mean_ns = read("new/estimates.json")?["mean"]["point_estimate"].as_f64()?;
    let spec = read("new/benchmark.json")?;
    let per_iter = &spec["throughput"];
    let (amount, unit) = if let Some(bytes) = per_iter["Bytes"].as_f64() {
        (bytes, "B/s")
    } else {
        (per_iter["Elements"].as_f64()?, "elem/s")
    };
    Some((amount / (mean_ns * 1e-9), unit))
}

fn summarize(criterion: &Path) -> anyhow::Result<()> {
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
    for (name, target) in [
        ("parse", None),
        ("verify_and_parse", None),
        ("full_accept", Some(1_000_000.0)),
    ] {
        if let Some((rate, _)) = throughput(&criterion.join("accept").join(name)) {
            let goal = target.map_or(String::new(), |t: f64| format!(" (target >= {t:.0})"));
            println!("accept {name:>16}: {rate:10.0} events/s{goal}");
        }
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
    println!("dedup bytes per entry: see the `dedup memory:` lines above (target <= 64)");
    println!("sender end to end: see the `sender e2e:` line above (target >= 100,000 events/s)");
    println!("scaling out: see the `scale out:` lines above (SQLite vs PostgreSQL, 1-3 instances)");
    println!("spool: see the `spool:` line above (target RSS <= 256 MiB with 10 M queued)");
    Ok(())
}

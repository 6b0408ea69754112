//! The sender against the number of integrations: what one `evo-siem sender` process
//! costs when it has 100, 1,000 or 10,000 integrations (one per tenant) on the SQLite spool, and
//! 1,000 on PostgreSQL shared by two instances; then whether 1,000 broken endpoints slow a healthy
//! integration down.
//!
//! The sender runs as a child process (the optimised binary, built by this bench with the bench
//! profile so that it shares the bench's compiled dependencies), so that its CPU and memory are
//! read from `/proc/<pid>` alone; the mock SIEM (signed, recording) runs in this process.
//!
//! Per case: start-up (spawn until `/healthz` answers), idle CPU over the idle window with an empty
//! spool (utime + stime of the child, as % of one core), on PostgreSQL the transactions per second
//! per instance while idle (`pg_stat_database.xact_commit` of the scratch database), resident
//! memory with an empty spool, CPU per event to ingest and deliver `EVENTS_PER_TENANT` events per
//! tenant (one request per tenant, until the mock SIEM has them all), and `/metrics`: size, series
//! and time to answer.
//!
//! `EVO_SIEM_BENCH_QUICK=1` (or `--quick`) shortens the idle window from 30 s to 5 s and the
//! paced run of the latency case; `EVO_SIEM_BENCH_TENANTS=100,1000` picks the SQLite sizes.
//! Needs PostgreSQL (started through `scripts/services.sh` when it is down).

mod common;

use anyhow::{Context, bail};
use common::{Rng, SECRET};
use evo_siem_mock::{MockSiem, MockSiemConfig};
use evo_siem_sender::spool::scratch::ScratchDatabase;
use evo_siem_workload::generate::Generator;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const TOKEN: &str = "bench-ingest-token";
const EVENTS_PER_TENANT: usize = 10;
/// Ingest requests in flight at once.
const CONCURRENT_REQUESTS: usize = 16;
/// Broken integrations beside the healthy one in the latency case: half time out, half refuse.
const BROKEN: usize = 1_000;

fn main() -> anyhow::Result<()> {
    let quick = std::env::args().any(|a| a == "--quick")
        || std::env::var("EVO_SIEM_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
    let idle = if quick {
        Duration::from_secs(5)
    } else {
        Duration::from_secs(30)
    };
    let sizes: Vec<usize> = match std::env::var("EVO_SIEM_BENCH_TENANTS") {
        Ok(list) => list
            .split(',')
            .map(|n| n.trim().parse())
            .collect::<Result<_, _>>()
            .context("EVO_SIEM_BENCH_TENANTS: a comma-separated list of numbers")?,
        Err(_) => vec![100, 1_000, 10_000],
    };
    let binary = build_sender()?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let mock = MockSiem::start(
            "127.0.0.1:0".parse()?,
            MockSiemConfig::signed([SECRET]).path("/webhook"),
        )
        .await?;
        let mut rows = Vec::new();
        for &n in &sizes {
            rows.push(case(&binary, &mock, n, Spool::Sqlite, idle).await?);
        }
        rows.push(
            case(
                &binary,
                &mock,
                1_000,
                Spool::Postgres { instances: 2 },
                idle,
            )
            .await?,
        );
        let paced = if quick { 5 } else { 15 };
        let alone = latency(&binary, &mock, 0, paced).await?;
        let crowded = latency(&binary, &mock, BROKEN, paced).await?;
        print_table(&rows, alone, crowded, idle);
        anyhow::Ok(())
    })
}

/// Builds the sender with the bench profile (optimised like `--release`, sharing the bench's
/// compiled dependencies) and returns its path.
fn build_sender() -> anyhow::Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let status = Command::new(cargo)
        .current_dir(root)
        .args(["build", "--profile", "bench", "--bin", "evo-siem"])
        .status()
        .context("cannot run cargo build")?;
    if !status.success() {
        bail!("cargo build --profile bench --bin evo-siem failed: {status}");
    }
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    Ok(target.join("release/evo-siem"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Spool {
    Sqlite,
    Postgres { instances: usize },
}

/// One case's figures; per instance where there are several.
#[derive(Debug)]
struct Row {
    label: String,
    startup: Duration,
    idle_cpu_percent: f64,
    pg_xacts_per_s: Option<f64>,
    rss_mib: f64,
    cpu_per_event_us: f64,
    metrics_bytes: usize,
    metrics_series: usize,
    metrics_ms: f64,
}

/// A running `evo-siem sender`.
struct Instance {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Instance {
    fn drop(&mut self) {
        // The bench is done with it; SIGKILL loses nothing that matters here.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free port on loopback (bound, then released for the child to take).
fn free_port() -> anyhow::Result<SocketAddr> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

/// Writes a configuration with `integrations` as (tenant, webhook URL, linger_ms), starts the
/// sender and waits until `/healthz` answers; returns it and the start-up time.
async fn start(
    binary: &Path,
    dir: &Path,
    integrations: &[(String, String, u64)],
    spool: &str,
) -> anyhow::Result<(Instance, Duration)> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("token"), TOKEN)?;
    std::fs::write(dir.join("secret"), SECRET)?;
    // The signing secrets are stored sealed under this key (the same for every instance).
    std::fs::write(
        dir.join("secrets-key"),
        "ZXZvLXNpZW0gYmVuY2gga2V5LCAzMiBieXRlcyBvay4=",
    )?;
    let addr = free_port()?;
    let mut text = format!(
        "listen = \"{addr}\"\ndata_dir = \"{dir}\"\ningest_token_file = \"{dir}/token\"\n\
         allow_private_targets = [\"127.0.0.1/32\"]\n{spool}\n\
         [secrets]\nkey_file = \"{dir}/secrets-key\"\n",
        dir = dir.display()
    );
    for (tenant, url, linger) in integrations {
        let _ = write!(
            text,
            "[[integration]]\ntenant = \"{tenant}\"\nwebhook_url = \"{url}\"\n\
             signing_secret_file = \"{dir}/secret\"\nlinger_ms = {linger}\n",
            dir = dir.display()
        );
    }
    std::fs::write(dir.join("sender.toml"), text)?;
    let log = std::fs::File::create(dir.join("sender.log"))?;
    let started = Instant::now();
    let child = Command::new(binary)
        .args(["sender", "--config"])
        .arg(dir.join("sender.toml"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .context("cannot start evo-siem sender")?;
    let mut instance = Instance { child, addr };
    let client = reqwest::Client::new();
    loop {
        let healthy = client
            .get(format!("http://{addr}/healthz"))
            .timeout(Duration::from_secs(1))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if healthy {
            return Ok((instance, started.elapsed()));
        }
        if let Some(status) = instance.child.try_wait()? {
            bail!(
                "the sender exited ({status}); see {}",
                dir.join("sender.log").display()
            );
        }
        if started.elapsed() > Duration::from_secs(300) {
            bail!("the sender did not answer /healthz within 300 s");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Clock ticks per second of `/proc/<pid>/stat` times (USER_HZ, 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

/// CPU time the process has used, user and system, in seconds.
fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name, in parentheses, may hold spaces: count fields after it.
    let rest = &stat[stat.rfind(')').context("malformed stat")? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name and state.
    let (utime, stime): (u64, u64) = (fields[11].parse()?, fields[12].parse()?);
    Ok((utime + stime) as f64 / TICKS_PER_SECOND)
}

/// Resident memory, in MiB.
fn rss_mib(pid: u32) -> anyhow::Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .context("no VmRSS")?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()?;
    Ok(kib / 1024.0)
}

/// Committed transactions of database `name` so far.
async fn xact_commits(name: &str) -> anyhow::Result<i64> {
    let admin = std::env::var("EVO_SIEM_TEST_POSTGRES")
        .unwrap_or_else(|_| evo_siem_sender::spool::scratch::DEFAULT_ADMIN_URL.to_owned());
    let (client, connection) = tokio_postgres::connect(&admin, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    // Counters are flushed by each backend at most every second or so; ask for fresh ones.
    client
        .batch_execute("SELECT pg_stat_clear_snapshot()")
        .await?;
    let row = client
        .query_one(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = $1",
            &[&name],
        )
        .await?;
    Ok(row.get(0))
}

async fn case(
    binary: &Path,
    mock: &MockSiem,
    tenants: usize,
    spool: Spool,
    idle: Duration,
) -> anyhow::Result<Row> {
    let dir = tempfile::tempdir()?;
    let webhook = format!("http://{}/webhook", mock.addr());
    let integrations: Vec<(String, String, u64)> = (0..tenants)
        .map(|t| (format!("t{t:05}"), webhook.clone(), 1000))
        .collect();
    let (db, spool_toml, instances, label) = match spool {
        Spool::Sqlite => (None, String::new(), 1, format!("{tenants} SQLite")),
        Spool::Postgres { instances } => {
            evo_siem_test_services::postgres()?;
            let db = ScratchDatabase::create().await?;
            std::fs::write(dir.path().join("spool-url"), db.url())?;
            let toml = format!(
                "[spool]\nbackend = \"postgres\"\nurl_file = \"{}/spool-url\"\n",
                dir.path().display()
            );
            (
                Some(db),
                toml,
                instances,
                format!("{tenants} PostgreSQL, {instances} instances"),
            )
        }
    };
    eprintln!("tenants: {label}: starting");
    let mut senders = Vec::new();
    let mut startup = Duration::ZERO;
    for i in 0..instances {
        let (instance, took) = start(
            binary,
            &dir.path().join(format!("instance{i}")),
            &integrations,
            &spool_toml,
        )
        .await?;
        startup = startup.max(took);
        senders.push(instance);
    }
    // Let the start-up work (workers starting, leases spreading) settle before measuring idle.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let pids: Vec<u32> = senders.iter().map(|s| s.child.id()).collect();
    let db_name = db
        .as_ref()
        .map(|db| db.url().rsplit('/').next().unwrap_or_default().to_owned());
    let cpu_before: Vec<f64> = pids
        .iter()
        .map(|p| cpu_seconds(*p))
        .collect::<Result<_, _>>()?;
    let xacts_before = match &db_name {
        Some(name) => Some(xact_commits(name).await?),
        None => None,
    };
    let idle_started = Instant::now();
    tokio::time::sleep(idle).await;
    let idle_took = idle_started.elapsed().as_secs_f64();
    let cpu_after: Vec<f64> = pids
        .iter()
        .map(|p| cpu_seconds(*p))
        .collect::<Result<_, _>>()?;
    let idle_cpu_percent = cpu_after
        .iter()
        .zip(&cpu_before)
        .map(|(a, b)| (a - b) / idle_took * 100.0)
        .sum::<f64>()
        / instances as f64;
    let pg_xacts_per_s = match (&db_name, xacts_before) {
        (Some(name), Some(before)) => {
            let after = xact_commits(name).await?;
            Some((after - before) as f64 / idle_took / instances as f64)
        }
        _ => None,
    };
    let rss = pids
        .iter()
        .map(|p| rss_mib(*p))
        .sum::<anyhow::Result<f64>>()?
        / instances as f64;
    eprintln!("tenants: {label}: idle {idle_cpu_percent:.1}% of a core, {rss:.0} MiB");

    // Ingest: EVENTS_PER_TENANT events per tenant in one request, turn by turn over the
    // instances, until the mock SIEM has them all.
    // Fresh UUIDs per case: the mock SIEM counts unique events over the whole run.
    let mut rng = Rng(0x5eed ^ tenants as u64 ^ ((instances as u64) << 40));
    let bodies: Vec<(String, String)> = integrations
        .iter()
        .map(|(tenant, _, _)| {
            let body = Generator::new(rng.next(), tenant, SystemTime::now())
                .take(EVENTS_PER_TENANT)
                .map(|e| e.json + "\n")
                .collect();
            (tenant.clone(), body)
        })
        .collect();
    let expected = mock.stats().unique_events + (tenants * EVENTS_PER_TENANT) as u64;
    let addrs: Vec<SocketAddr> = senders.iter().map(|s| s.addr).collect();
    let cpu_before: Vec<f64> = pids
        .iter()
        .map(|p| cpu_seconds(*p))
        .collect::<Result<_, _>>()?;
    ingest_all(&addrs, bodies).await?;
    let delivered_by = Instant::now() + Duration::from_secs(600);
    while mock.stats().unique_events < expected {
        if Instant::now() > delivered_by {
            bail!("{label}: not every event reached the mock SIEM within 600 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let cpu_after: Vec<f64> = pids
        .iter()
        .map(|p| cpu_seconds(*p))
        .collect::<Result<_, _>>()?;
    let cpu: f64 = cpu_after.iter().zip(&cpu_before).map(|(a, b)| a - b).sum();
    let cpu_per_event_us = cpu / (tenants * EVENTS_PER_TENANT) as f64 * 1e6;

    // /metrics, of the first instance, once everything is delivered.
    let client = reqwest::Client::new();
    let asked = Instant::now();
    let answer = client
        .get(format!("http://{}/metrics", addrs[0]))
        .bearer_auth(TOKEN)
        .timeout(Duration::from_secs(300))
        .send()
        .await?;
    if !answer.status().is_success() {
        bail!("/metrics answered {}", answer.status());
    }
    let text = answer.text().await?;
    let metrics_ms = asked.elapsed().as_secs_f64() * 1e3;
    let metrics_series = text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .count();
    drop(senders);
    drop(db);
    Ok(Row {
        label,
        startup,
        idle_cpu_percent,
        pg_xacts_per_s,
        rss_mib: rss,
        cpu_per_event_us,
        metrics_bytes: text.len(),
        metrics_series,
        metrics_ms,
    })
}

/// POSTs every (tenant, NDJSON body), `CONCURRENT_REQUESTS` at a time, over `addrs` in turn.
async fn ingest_all(addrs: &[SocketAddr], bodies: Vec<(String, String)>) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let permits = std::sync::Arc::new(tokio::sync::Semaphore::new(CONCURRENT_REQUESTS));
    let mut tasks = tokio::task::JoinSet::new();
    for (i, (tenant, body)) in bodies.into_iter().enumerate() {
        let permit = permits.clone().acquire_owned().await?;
        let url = format!(
            "http://{}/v1/tenants/{tenant}/audit-events",
            addrs[i % addrs.len()]
        );
        let client = client.clone();
        tasks.spawn(async move {
            let _permit = permit;
            let answer = client
                .post(url)
                .bearer_auth(TOKEN)
                .body(body)
                .send()
                .await?;
            if answer.status().as_u16() != 202 {
                bail!("ingest answered {}", answer.status());
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok(())
}

/// The healthy integration's delivery latency (ingest request sent until the mock SIEM recorded
/// the event), with `broken` integrations beside it, half of them on an endpoint that accepts
/// connections and never answers, half on a closed port, each with one event to deliver. Events
/// go one a request, 20 a second, for `seconds`; returns (p50, p99) in milliseconds.
async fn latency(
    binary: &Path,
    mock: &MockSiem,
    broken: usize,
    seconds: u64,
) -> anyhow::Result<(f64, f64)> {
    // Accepts and holds every connection, never answering.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let silent_addr = silent.local_addr()?;
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let closed = free_port()?;
    let mut integrations = vec![(
        "healthy".to_owned(),
        format!("http://{}/webhook", mock.addr()),
        0,
    )];
    for b in 0..broken {
        let target = if b % 2 == 0 { silent_addr } else { closed };
        integrations.push((
            format!("broken{b:04}"),
            format!("http://{target}/webhook"),
            0,
        ));
    }
    let dir = tempfile::tempdir()?;
    eprintln!("tenants: latency with {broken} broken integrations: starting");
    let (sender, _) = start(binary, dir.path(), &integrations, "").await?;
    let client = reqwest::Client::new();
    let mut rng = Rng(0x1a7e ^ broken as u64);
    if broken > 0 {
        let bodies = integrations[1..]
            .iter()
            .map(|(tenant, _, _)| {
                let event = Generator::new(rng.next(), tenant, SystemTime::now())
                    .next_event()
                    .json;
                (tenant.clone(), event)
            })
            .collect();
        ingest_all(&[sender.addr], bodies).await?;
        // Let the broken ones fail their first attempts and start backing off.
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    let mut generator = Generator::new(rng.next(), "healthy", SystemTime::now());
    let mut sent: HashMap<String, u64> = HashMap::new();
    let first = mock.events().len();
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    for _ in 0..seconds * 20 {
        tick.tick().await;
        let event = generator.next_event();
        let uuid = serde_json::from_str::<serde_json::Value>(&event.json)?["data"]["uuid"]
            .as_str()
            .context("no uuid")?
            .to_owned();
        sent.insert(uuid, unix_ms());
        let answer = client
            .post(format!(
                "http://{}/v1/tenants/healthy/audit-events",
                sender.addr
            ))
            .bearer_auth(TOKEN)
            .body(event.json)
            .send()
            .await?;
        if answer.status().as_u16() != 202 {
            bail!("ingest answered {}", answer.status());
        }
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut latencies = loop {
        let received: Vec<f64> = mock
            .events_from(first)
            .iter()
            .filter_map(|e| {
                sent.get(&e.uuid)
                    .map(|at| e.received_at_ms.saturating_sub(*at) as f64)
            })
            .collect();
        if received.len() >= sent.len() {
            break received;
        }
        if Instant::now() > deadline {
            bail!("the healthy integration's events did not all arrive within 120 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    drop(sender);
    holder.abort();
    latencies.sort_by(f64::total_cmp);
    let rank = |p: f64| {
        latencies[((p * latencies.len() as f64).ceil() as usize).clamp(1, latencies.len()) - 1]
    };
    Ok((rank(0.50), rank(0.99)))
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn print_table(rows: &[Row], alone: (f64, f64), crowded: (f64, f64), idle: Duration) {
    println!(
        "\ntenants: one integration per tenant, release sender as a child process, idle window {} s, {EVENTS_PER_TENANT} events per tenant",
        idle.as_secs()
    );
    println!(
        "| integrations | start-up | idle CPU (% of a core, per instance) | PostgreSQL xact/s per instance, idle | RSS, empty spool | CPU per event (ingest + delivery) | /metrics size | series | render |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        println!(
            "| {} | {:.2} s | {:.1} % | {} | {:.0} MiB | {:.0} µs | {:.1} KB | {} | {:.1} ms |",
            r.label,
            r.startup.as_secs_f64(),
            r.idle_cpu_percent,
            r.pg_xacts_per_s
                .map_or_else(|| "-".to_owned(), |x| format!("{x:.0}")),
            r.rss_mib,
            r.cpu_per_event_us,
            r.metrics_bytes as f64 / 1e3,
            r.metrics_series,
            r.metrics_ms,
        );
    }
    for r in rows {
        println!(
            "tenants: {}: idle {:.1}% of a core, {} series in /metrics ({:.1} ms)",
            r.label, r.idle_cpu_percent, r.metrics_series, r.metrics_ms
        );
    }
    println!(
        "tenants: healthy integration p50/p99 delivery latency: alone {:.0}/{:.0} ms, beside {BROKEN} broken (timeouts and refusals) {:.0}/{:.0} ms: p99 ratio {:.2}",
        alone.0,
        alone.1,
        crowded.0,
        crowded.1,
        crowded.1 / alone.1.max(1.0)
    );
}

//! `evo-siem demo`: the whole pipeline in one process, through a SIEM outage, in about 30 s.
//!
//! A mock SIEM and a sender start with a generated configuration in a temporary directory; a
//! feeder ingests realistic events for two tenants over the sender's HTTP API; half-way the SIEM
//! fails (503, then 429 with `Retry-After`, then dropped connections) and recovers. The verdict
//! is computed from what the mock SIEM recorded, against what the feeder handed over.

use crate::cli::DemoArgs;
use anyhow::{Context, bail};
use evo_siem_mock::faults::{Action, Rule, When};
use evo_siem_mock::{MockSiem, MockSiemConfig};
use evo_siem_sender::service::{Config, Sender};
use evo_siem_workload::generate::Generator;
use evo_siem_workload::percentiles::Summary;
use std::collections::{HashMap, HashSet, VecDeque};
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The demo's tenants and the action each one excludes.
const TENANTS: [(&str, &str); 2] = [("acme", "User login"), ("globex", "Token refreshed")];

/// How long to wait for the backlog to drain once feeding stops.
const DRAIN_LIMIT: Duration = Duration::from_secs(60);

fn unix_ms(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// What was handed to the sender and what reached the SIEM.
#[derive(Debug, Default)]
struct Tracker {
    /// Events the SIEM must receive: uuid → (tenant, when handed to the sender, Unix ms).
    expected: HashMap<String, (usize, u64)>,
    /// Events of excluded actions, which must never arrive.
    excluded_uuids: HashSet<String>,
    /// The expected events in ingest order, for the age of the oldest undelivered one.
    order: VecDeque<(String, u64)>,
    arrived: HashSet<String>,
    /// Mock SIEM events already looked at.
    seen: usize,
    latencies: Vec<Duration>,
    ingested: [u64; 2],
    excluded: [u64; 2],
    delivered: [u64; 2],
    excluded_arrived: u64,
    unknown_arrived: u64,
    refused_requests: u64,
    /// Requests whose `excluded` count differs from the demo's own count.
    filter_mismatches: u64,
}

impl Tracker {
    /// Takes the SIEM's new arrivals into account.
    fn poll(&mut self, siem: &MockSiem) {
        for event in siem.events_from(self.seen) {
            self.seen += 1;
            match self.expected.get(&event.uuid) {
                Some(&(tenant, sent_ms)) => {
                    if self.arrived.insert(event.uuid) {
                        self.delivered[tenant] += 1;
                        self.latencies.push(Duration::from_millis(
                            event.received_at_ms.saturating_sub(sent_ms),
                        ));
                    }
                }
                None if self.excluded_uuids.contains(&event.uuid) => self.excluded_arrived += 1,
                None => self.unknown_arrived += 1,
            }
        }
        while self
            .order
            .front()
            .is_some_and(|(uuid, _)| self.arrived.contains(uuid))
        {
            self.order.pop_front();
        }
    }

    fn missing(&self) -> u64 {
        (self.expected.len() - self.arrived.len()) as u64
    }
}

fn lock(tracker: &Mutex<Tracker>) -> std::sync::MutexGuard<'_, Tracker> {
    tracker
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Ingests `rate` events a second for `duration`, the tenants taking turns, over HTTP.
async fn feed(
    ingest: String,
    token: String,
    rate: u32,
    duration: Duration,
    seed: u64,
    tracker: Arc<Mutex<Tracker>>,
) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("a client with a timeout builds");
    let start = SystemTime::now();
    let mut generators: Vec<Generator> = TENANTS
        .iter()
        .map(|(tenant, _)| Generator::new(seed, tenant, start))
        .collect();
    let tick = Duration::from_millis(100);
    let mut ticker = tokio::time::interval(tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let began = Instant::now();
    let mut owed = 0.0_f64;
    let mut turn = 0;
    while began.elapsed() < duration {
        ticker.tick().await;
        owed += f64::from(rate) * tick.as_secs_f64();
        let n = owed.floor() as usize;
        owed -= n as f64;
        if n == 0 {
            continue;
        }
        let tenant = turn % TENANTS.len();
        turn += 1;
        let (name, excluded_action) = TENANTS[tenant];
        let events: Vec<_> = generators[tenant].by_ref().take(n).collect();
        let sent_ms = unix_ms(SystemTime::now());
        let mine_excluded = events
            .iter()
            .filter(|e| e.action == excluded_action)
            .count() as u64;
        {
            let mut t = lock(&tracker);
            for event in &events {
                if event.action == excluded_action {
                    t.excluded_uuids.insert(event.uuid.clone());
                } else {
                    t.expected.insert(event.uuid.clone(), (tenant, sent_ms));
                    t.order.push_back((event.uuid.clone(), sent_ms));
                }
            }
        }
        let body: Vec<&str> = events.iter().map(|e| e.json.as_str()).collect();
        let answer = client
            .post(format!("{ingest}/v1/tenants/{name}/audit-events"))
            .bearer_auth(&token)
            .header("content-type", "application/x-ndjson")
            .body(body.join("\n"))
            .send()
            .await;
        let acknowledged = match answer {
            Ok(response) if response.status().as_u16() == 202 => {
                let bytes = response.bytes().await.unwrap_or_default();
                serde_json::from_slice::<serde_json::Value>(&bytes).ok()
            }
            _ => None,
        };
        let mut t = lock(&tracker);
        match acknowledged {
            Some(answer) => {
                t.ingested[tenant] += n as u64;
                t.excluded[tenant] += mine_excluded;
                if answer["excluded"].as_u64() != Some(mine_excluded) {
                    t.filter_mismatches += 1;
                }
            }
            None => {
                // Not taken: the SIEM owes nothing for these.
                t.refused_requests += 1;
                for event in &events {
                    t.expected.remove(&event.uuid);
                    t.excluded_uuids.remove(&event.uuid);
                }
                t.order
                    .retain(|(uuid, _)| !events.iter().any(|e| &e.uuid == uuid));
            }
        }
    }
}

/// The SIEM's outage: three phases of `phase` each, starting now.
fn outage(phase: Duration) -> Vec<Rule> {
    let ms = u64::try_from(phase.as_millis()).unwrap_or(u64::MAX / 4);
    let window = |k: u64| When::Window {
        from_ms: k * ms,
        until_ms: (k + 1) * ms,
    };
    vec![
        Rule {
            when: window(0),
            action: Action::Status {
                status: 503,
                retry_after: None,
            },
        },
        Rule {
            when: window(1),
            action: Action::Status {
                status: 429,
                retry_after: Some(1),
            },
        },
        Rule {
            when: window(2),
            action: Action::Drop,
        },
    ]
}

/// Prints status lines: rewritten in place on a terminal, every 2 s otherwise.
struct Status {
    terminal: bool,
    last_plain: Option<Instant>,
}

impl Status {
    fn line(&mut self, text: &str) {
        let mut err = std::io::stderr().lock();
        if self.terminal {
            let _ = write!(err, "\r\x1b[2K{text}");
        } else if self
            .last_plain
            .is_none_or(|at| at.elapsed() >= Duration::from_secs(2))
        {
            self.last_plain = Some(Instant::now());
            let _ = writeln!(err, "{text}");
        }
        let _ = err.flush();
    }

    fn note(&mut self, text: &str) {
        let mut err = std::io::stderr().lock();
        if self.terminal {
            let _ = write!(err, "\r\x1b[2K");
        }
        let _ = writeln!(err, "{text}");
    }
}

fn ms(d: Duration) -> String {
    if d >= Duration::from_secs(10) {
        format!("{:.0}s", d.as_secs_f64())
    } else if d >= Duration::from_secs(1) {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        format!("{}ms", d.as_millis())
    }
}

fn status_text(
    t: &Tracker,
    elapsed: Duration,
    sender: &Sender,
    siem: &MockSiem,
    phase: &str,
) -> String {
    let delivered: u64 = TENANTS
        .iter()
        .filter_map(|(tenant, _)| sender.stats(tenant))
        .map(|s| s.delivered.load(std::sync::atomic::Ordering::Relaxed))
        .sum();
    let ingested: u64 = t.ingested.iter().sum();
    let excluded: u64 = t.excluded.iter().sum();
    let backlog = (ingested - excluded).saturating_sub(t.arrived.len() as u64);
    let now = unix_ms(SystemTime::now());
    let oldest = t.order.front().map_or(Duration::ZERO, |(_, sent)| {
        Duration::from_millis(now.saturating_sub(*sent))
    });
    let latency = Summary::of(&mut t.latencies.clone()).map_or_else(
        || "-".to_owned(),
        |s| format!("{}/{}", ms(s.p50), ms(s.p99)),
    );
    format!(
        "{:>5.1}s  ingested {ingested}  delivered {delivered}  excluded {excluded}  duplicates {}  backlog {backlog}  oldest {}  p50/p99 {latency}  SIEM {phase}",
        elapsed.as_secs_f64(),
        siem.stats().duplicate_events,
        ms(oldest),
    )
}

pub(crate) fn run(args: &DemoArgs) -> anyhow::Result<ExitCode> {
    if args.rate == 0 || args.duration.is_zero() {
        bail!("--rate and --duration must be positive");
    }
    crate::logging::init("error");
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(demo(args))
}

async fn demo(args: &DemoArgs) -> anyhow::Result<ExitCode> {
    let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
    let secret = format!("whsec-{}", uuid::Uuid::new_v4().simple());
    let token = uuid::Uuid::new_v4().simple().to_string();
    std::fs::write(dir.path().join("signing-secret"), &secret)?;
    std::fs::write(dir.path().join("ingest-token"), &token)?;
    // The sender stores the signing secret encrypted, under a key of its own.
    let key = evo_siem_sender::secrets::SecretsKey::generate()
        .context("no randomness for the secrets key")?;
    std::fs::write(dir.path().join("secrets-key"), key)?;
    let siem = MockSiem::start(
        ([127, 0, 0, 1], 0).into(),
        MockSiemConfig::signed([secret.as_str()]),
    )
    .await
    .context("cannot start the mock SIEM")?;
    let mut config = format!(
        "listen = \"127.0.0.1:0\"\ndata_dir = {:?}\ningest_token_file = {:?}\nallow_private_targets = [\"127.0.0.1/32\"]\n\n[delivery]\nattempt_timeout_ms = 2000\nretry_base_ms = 100\nretry_cap_ms = 1000\nretry_floor_ms = 100\n\n[secrets]\nkey_file = {:?}\n",
        dir.path().join("data"),
        dir.path().join("ingest-token"),
        dir.path().join("secrets-key"),
    );
    for (tenant, excluded) in TENANTS {
        config.push_str(&format!(
            "\n[[integration]]\ntenant = \"{tenant}\"\nwebhook_url = \"{}\"\nsigning_secret_file = {:?}\nexcluded_actions = [\"{excluded}\"]\nlinger_ms = 100\n",
            siem.webhook_url(),
            dir.path().join("signing-secret"),
        ));
    }
    let config: Config = toml::from_str(&config).context("the demo's configuration")?;
    let sender = Sender::start(&config)
        .await
        .context("cannot start the sender")?;
    let ingest = format!("http://{}", sender.addr());

    let mut status = Status {
        terminal: std::io::stderr().is_terminal(),
        last_plain: None,
    };
    status.note(&format!(
        "evo-siem demo: a sender ({ingest}) delivering to a mock SIEM ({}), tenants {} (excluding {:?}) and {} (excluding {:?}), {} events/s for {:.0} s",
        siem.webhook_url(),
        TENANTS[0].0,
        TENANTS[0].1,
        TENANTS[1].0,
        TENANTS[1].1,
        args.rate,
        args.duration.as_secs_f64()
    ));
    let tracker = Arc::new(Mutex::new(Tracker::default()));
    let feeder = tokio::spawn(feed(
        ingest.clone(),
        token.clone(),
        args.rate,
        args.duration,
        args.seed,
        tracker.clone(),
    ));

    let began = Instant::now();
    let outage_at = args.duration / 2;
    let phase = (args.duration / 9).max(Duration::from_millis(500));
    let mut outage_started = None;
    let mut recovered = false;
    let mut drain_started = None;
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let elapsed = began.elapsed();
        if outage_started.is_none() && elapsed >= outage_at {
            siem.set_faults(outage(phase))?;
            outage_started = Some(Instant::now());
            status.note(&format!(
                "{:>5.1}s  the SIEM fails: 503 for {}, then 429 with Retry-After: 1 for {}, then drops connections for {}",
                elapsed.as_secs_f64(),
                ms(phase),
                ms(phase),
                ms(phase)
            ));
        }
        if let Some(at) = outage_started
            && !recovered
            && at.elapsed() >= phase * 3
        {
            siem.set_faults(Vec::new())?;
            recovered = true;
            status.note(&format!(
                "{:>5.1}s  the SIEM is back",
                elapsed.as_secs_f64()
            ));
        }
        let text = {
            let mut t = lock(&tracker);
            t.poll(&siem);
            let phase_name = match outage_started {
                Some(at) if !recovered => match at.elapsed().as_millis() / phase.as_millis().max(1)
                {
                    0 => "503",
                    1 => "429",
                    _ => "dropping",
                },
                _ => "ok",
            };
            status_text(&t, elapsed, &sender, &siem, phase_name)
        };
        status.line(&text);
        if feeder.is_finished() && recovered {
            let start = *drain_started.get_or_insert_with(Instant::now);
            let done = lock(&tracker).missing() == 0;
            if done || start.elapsed() > DRAIN_LIMIT {
                break;
            }
        }
    }
    // Late stray deliveries (an excluded event would show up here).
    tokio::time::sleep(Duration::from_millis(300)).await;
    status.note("");
    let failures = summarize(&mut lock(&tracker), &siem, &sender);
    if args.keep {
        let tokens = evo_siem_sender::admin::TokenStore::open(&dir.path().join("data"))?;
        let (admin_token, _) = tokens.create(
            TENANTS[0].0,
            &[evo_siem_sender::admin::Permission::Manage],
            "demo",
        )?;
        keep(&ingest, &siem, &token, &admin_token, dir.path());
        tokio::signal::ctrl_c()
            .await
            .context("cannot wait for Ctrl-C")?;
    }
    feeder.abort();
    sender.shutdown().await;
    Ok(if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Prints the summary table and the verdict; returns what failed.
fn summarize(t: &mut Tracker, siem: &MockSiem, sender: &Sender) -> Vec<String> {
    t.poll(siem);
    let stats = siem.stats();
    let retried: Vec<u64> = TENANTS
        .iter()
        .map(|(tenant, _)| {
            sender
                .stats(tenant)
                .map_or(0, |s| s.retried.load(std::sync::atomic::Ordering::Relaxed))
        })
        .collect();
    let summary = Summary::of(&mut t.latencies);
    let signature_refusals = stats.rejected.bad_signature + stats.rejected.missing_signature;
    let other_refusals = stats.rejected.stale
        + stats.rejected.malformed
        + stats.rejected.unsupported_schema
        + stats.rejected.too_large;
    let missing = t.missing();
    let mut out = String::new();
    let mut row = |name: &str, a: String, b: String, total: String| {
        out.push_str(&format!("  {name:<34} {a:>9} {b:>9} {total:>9}\n"));
    };
    row("", TENANTS[0].0.into(), TENANTS[1].0.into(), "total".into());
    let both = |v: [u64; 2]| {
        (
            v[0].to_string(),
            v[1].to_string(),
            (v[0] + v[1]).to_string(),
        )
    };
    let (a, b, total) = both(t.ingested);
    row("events ingested", a, b, total);
    let (a, b, total) = both(t.excluded);
    row("excluded (never sent)", a, b, total);
    let (a, b, total) = both(t.delivered);
    row("delivered (distinct, at the SIEM)", a, b, total);
    let (a, b, total) = both([retried[0], retried[1]]);
    row("retried attempts (sender)", a, b, total);
    let dash = || "-".to_owned();
    row("missing", dash(), dash(), missing.to_string());
    row(
        "excluded that arrived",
        dash(),
        dash(),
        t.excluded_arrived.to_string(),
    );
    row(
        "duplicates at the SIEM",
        dash(),
        dash(),
        stats.duplicate_events.to_string(),
    );
    row(
        "deliveries / faults injected",
        dash(),
        dash(),
        format!("{}/{}", stats.deliveries, stats.faults_injected),
    );
    row(
        "signature refusals",
        dash(),
        dash(),
        signature_refusals.to_string(),
    );
    if let Some(s) = summary {
        row(
            "latency ingest → SIEM p50 / p99",
            dash(),
            dash(),
            format!("{}/{}", ms(s.p50), ms(s.p99)),
        );
    }
    let mut failures = Vec::new();
    if missing > 0 {
        failures.push(format!("{missing} events never arrived"));
    }
    if t.excluded_arrived > 0 {
        failures.push(format!("{} excluded events arrived", t.excluded_arrived));
    }
    if t.unknown_arrived > 0 {
        failures.push(format!(
            "{} events arrived that were never ingested",
            t.unknown_arrived
        ));
    }
    if signature_refusals > 0 || other_refusals > 0 {
        failures.push(format!(
            "the SIEM refused {} deliveries",
            signature_refusals + other_refusals
        ));
    }
    if t.filter_mismatches > 0 {
        failures.push(format!(
            "{} ingest answers counted exclusions differently",
            t.filter_mismatches
        ));
    }
    if t.refused_requests > 0 {
        failures.push(format!(
            "{} ingest requests were refused",
            t.refused_requests
        ));
    }
    println!("{out}");
    let delivered_total: u64 = t.delivered.iter().sum();
    if failures.is_empty() {
        println!(
            "verdict: PASS  every non-excluded event delivered ({delivered_total}), no excluded event delivered, every delivery's signature valid ({} accepted)",
            stats.accepted_deliveries
        );
    } else {
        println!("verdict: FAIL  {}", failures.join("; "));
    }
    failures
}

fn keep(ingest: &str, siem: &MockSiem, token: &str, admin_token: &str, dir: &std::path::Path) {
    let mock = format!("http://{}", siem.addr());
    println!(
        "
The sender and the mock SIEM keep running; Ctrl-C stops both.
  sender ingest API   {ingest}/v1/tenants/{{acme,globex}}/audit-events
  ingest token        {token}
  admin token (acme)  {admin_token}
  mock SIEM webhook   {webhook}
  signing secret      in {secret}
  data directory      {data} (removed at exit)

Carry on by hand:
  curl -s {mock}/_mock/stats
  curl -s {mock}/_mock/events | head -c 800
  evo-siem generate --count 10 | curl -s -H 'Authorization: Bearer {token}' --data-binary @- {ingest}/v1/tenants/acme/audit-events
  curl -s -X POST {mock}/_mock/faults -H 'content-type: application/json' -d '[{{\"when\":{{\"first\":3}},\"action\":{{\"status\":503}}}}]'
  EVO_SIEM_INGEST_TOKEN={token} evo-siem load --url {ingest} --token-env EVO_SIEM_INGEST_TOKEN --rate 2000 --duration 10s
  curl -s -H 'Authorization: Bearer {admin_token}' {ingest}/v1/tenants/acme/siem-integration
  curl -s -H 'Authorization: Bearer {admin_token}' {ingest}/v1/tenants/acme/siem-integration/status
  curl -s -X POST -H 'Authorization: Bearer {admin_token}' {ingest}/v1/tenants/acme/siem-integration/test
  curl -s -H 'Authorization: Bearer {token}' {ingest}/metrics | grep acme",
        webhook = siem.webhook_url(),
        secret = dir.join("signing-secret").display(),
        data = dir.display(),
    );
}

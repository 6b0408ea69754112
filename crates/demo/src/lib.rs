//! `evo-siem demo`: the whole pipeline in one process, through a SIEM outage, in about 30 s.
//!
//! A mock SIEM and a sender start with a generated configuration in a temporary directory; a
//! feeder ingests realistic events for two tenants over the sender's HTTP API; half-way
//! the SIEM fails (503, then 429 with `Retry-After`, then dropped connections) and recovers. The
//! verdict ([`Verdict`]) is computed from what the mock SIEM recorded against what the feeder
//! handed over: every event that is not excluded delivered, none excluded
//! delivered, no signature refused.
//!
//! The binary only parses `evo-siem demo`'s flags into [`DemoOptions`] and calls [`run`].

mod feed;
mod status;
mod tracker;
mod verdict;

use evo_siem_mock::faults::{Action, Rule, When};
use evo_siem_mock::{MockSiem, MockSiemConfig};
use evo_siem_sender::service::{Config, Sender};
use feed::feed;
use status::{Status, ms, status_text};
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tracker::{Tracker, lock};
use verdict::summarize;

/// The demo's tenants and the action each one excludes.
const TENANTS: [(&str, &str); 2] = [("acme", "User login"), ("globex", "Token refreshed")];

/// How long to wait for the backlog to drain once feeding stops.
const DRAIN_LIMIT: Duration = Duration::from_secs(60);

/// How the demo runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DemoOptions {
    /// Events per second fed to the sender (all tenants together).
    pub rate: u32,
    /// How long to feed events; the SIEM fails during the middle third.
    pub duration: Duration,
    /// Seed of the event generator.
    pub seed: u64,
    /// Leave the sender and the mock SIEM running at the end, print how to use them, and stop
    /// at Ctrl-C.
    pub keep: bool,
}

/// Why the demo could not run (a failed verdict is not an error: see [`Verdict`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DemoError {
    /// The rate or the duration is zero.
    #[error("--rate and --duration must be positive")]
    Options,
    /// The temporary directory or a file in it could not be written.
    #[error("cannot set the demo up: {0}")]
    Setup(#[source] std::io::Error),
    /// No randomness for the secrets key.
    #[error("no randomness for the secrets key: {0}")]
    Random(#[source] std::io::Error),
    /// The mock SIEM could not start.
    #[error("cannot start the mock SIEM: {0}")]
    MockSiem(#[source] std::io::Error),
    /// The generated configuration was refused.
    #[error("the demo's configuration: {0}")]
    Config(#[from] evo_siem_sender::service::ConfigError),
    /// The sender could not start.
    #[error("cannot start the sender: {0}")]
    Sender(#[from] evo_siem_sender::service::ServiceError),
    /// The feeder's HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    /// The outage's fault rules were refused by the mock SIEM.
    #[error("the outage's faults: {0}")]
    Faults(#[source] evo_siem_mock::faults::InvalidRule),
    /// The admin token for `--keep` could not be created.
    #[error("cannot create the admin token: {0}")]
    Tokens(#[source] evo_siem_sender::store::TokenError),
}

/// What the demo found: empty `failures` is a pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// What went wrong, one line each: events missing, excluded events delivered, refusals.
    pub failures: Vec<String>,
}

impl Verdict {
    /// Whether every check held.
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
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

/// Runs the demo: prints its progress on standard error and the summary table and verdict on
/// standard output, and returns the verdict. With [`DemoOptions::keep`], waits for Ctrl-C
/// before stopping the sender and the mock SIEM.
pub async fn run(options: &DemoOptions) -> Result<Verdict, DemoError> {
    if options.rate == 0 || options.duration.is_zero() {
        return Err(DemoError::Options);
    }
    let args = options;
    let dir = tempfile::tempdir().map_err(DemoError::Setup)?;
    let secret = format!("whsec-{}", uuid::Uuid::new_v4().simple());
    let token = uuid::Uuid::new_v4().simple().to_string();
    std::fs::write(dir.path().join("signing-secret"), &secret).map_err(DemoError::Setup)?;
    std::fs::write(dir.path().join("ingest-token"), &token).map_err(DemoError::Setup)?;
    // The sender stores the signing secret encrypted, under a key of its own.
    let key = evo_siem_sender::secrets::SecretsKey::generate().map_err(DemoError::Random)?;
    std::fs::write(dir.path().join("secrets-key"), key).map_err(DemoError::Setup)?;
    let siem = MockSiem::start(
        ([127, 0, 0, 1], 0).into(),
        MockSiemConfig::signed([secret.as_str()]),
    )
    .await
    .map_err(DemoError::MockSiem)?;
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
    let config = Config::parse(&config)?;
    let sender = Sender::start(&config).await?;
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
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(DemoError::Client)?;
    let feeder = tokio::spawn(feed(
        client,
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
            siem.set_faults(outage(phase)).map_err(DemoError::Faults)?;
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
            siem.set_faults(Vec::new()).map_err(DemoError::Faults)?;
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
        let tokens = evo_siem_sender::store::TokenStore::open(&dir.path().join("data"))
            .map_err(DemoError::Tokens)?;
        let (admin_token, _) = tokens
            .create(
                TENANTS[0].0,
                &[evo_siem_sender::store::Permission::Manage],
                "demo",
            )
            .map_err(DemoError::Tokens)?;
        keep(&ingest, &siem, &token, &admin_token, dir.path());
        tokio::signal::ctrl_c().await.map_err(DemoError::Setup)?;
    }
    feeder.abort();
    sender.shutdown().await;
    Ok(Verdict { failures })
}

/// Prints how to carry on by hand with the sender and the mock SIEM still running.
pub(crate) fn keep(
    ingest: &str,
    siem: &MockSiem,
    token: &str,
    admin_token: &str,
    dir: &std::path::Path,
) {
    let mock = format!("http://{}", siem.addr());
    println!(
        "
The sender and the mock SIEM keep running; Ctrl-C stops both.
  sender ingest API   {ingest}/v1/tenants/{{acme,globex}}/audit-events
  ingest token        {token}
  admin token (acme)  {admin_token}
  mock SIEM webhook   {webhook}
  mock SIEM page      {mock}/  (open it in a browser: deliveries live, faults by form)
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

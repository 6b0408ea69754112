//! Load on a running sender's ingest API: `POST {url}/v1/tenants/{tenant}/audit-events` at a
//! target rate of events per second, in NDJSON requests of `batch` events, with at most
//! `concurrency` requests in flight. It only ever sends to the URL it is given.
//!
//! Requests are scheduled at fixed intervals from the start; when the sender falls behind and all
//! permits are taken, the next request waits for one, so the achieved rate shows the sender's
//! capacity. Latency is measured from the moment a request is sent, so time spent waiting for a
//! permit is not in it: read it next to the achieved rate.

use crate::generate::Generator;
use crate::percentiles::Summary;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// What to send, where, and how fast.
#[derive(Clone)]
pub struct LoadOptions {
    /// The sender's base URL, e.g. `http://127.0.0.1:7700`.
    pub url: String,
    /// The tenant whose ingest endpoint is driven.
    pub tenant: String,
    /// The ingest bearer token.
    pub token: String,
    /// Target events per second.
    pub rate: u64,
    /// How long to send.
    pub duration: Duration,
    /// Events per request.
    pub batch: usize,
    /// Most requests in flight.
    pub concurrency: usize,
    /// Time for one request.
    pub timeout: Duration,
    /// Seed of the event generator.
    pub seed: u64,
}

impl std::fmt::Debug for LoadOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadOptions")
            .field("url", &self.url)
            .field("tenant", &self.tenant)
            .field("token", &"<redacted>")
            .field("rate", &self.rate)
            .field("duration", &self.duration)
            .field("batch", &self.batch)
            .field("concurrency", &self.concurrency)
            .field("timeout", &self.timeout)
            .field("seed", &self.seed)
            .finish()
    }
}

/// Why a load run could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// A setting is zero or out of range.
    #[error("{0}")]
    Invalid(&'static str),
    /// The URL is not an `http://` or `https://` URL.
    #[error("the URL must start with http:// or https://")]
    Url,
    /// The HTTP client cannot be built.
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

/// What a load run did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LoadReport {
    /// Requests sent.
    pub requests: u64,
    /// Events in those requests.
    pub events_sent: u64,
    /// Events the sender acknowledged (202): queued.
    pub accepted: u64,
    /// Events the sender acknowledged and dropped as excluded.
    pub excluded: u64,
    /// Failed requests by kind (`status 503`, `timeout`, `connect`, `transport`).
    pub errors: BTreeMap<String, u64>,
    /// Time from the first request to the last answer.
    pub elapsed: Duration,
    /// Acknowledged events per second.
    pub achieved_rate: f64,
    /// Latency of acknowledged requests.
    pub latency: Option<Summary>,
}

fn lock(tally: &Mutex<Tally>) -> std::sync::MutexGuard<'_, Tally> {
    tally
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[derive(Default)]
struct Tally {
    accepted: u64,
    excluded: u64,
    errors: BTreeMap<String, u64>,
    latencies: Vec<Duration>,
}

/// Runs the load and reports.
pub async fn run(options: &LoadOptions) -> Result<LoadReport, LoadError> {
    if options.rate == 0 || options.batch == 0 || options.concurrency == 0 {
        return Err(LoadError::Invalid(
            "rate, batch and concurrency must be at least 1",
        ));
    }
    if options.duration.is_zero() || options.timeout.is_zero() {
        return Err(LoadError::Invalid("duration and timeout must be positive"));
    }
    let base = options.url.trim_end_matches('/');
    if !(base.starts_with("http://") || base.starts_with("https://")) {
        return Err(LoadError::Url);
    }
    let endpoint = format!("{base}/v1/tenants/{}/audit-events", options.tenant);
    let client = reqwest::Client::builder()
        .timeout(options.timeout)
        .build()
        .map_err(|e| LoadError::Client(e.to_string()))?;
    let interval = Duration::from_secs_f64(options.batch as f64 / options.rate as f64);
    let permits = Arc::new(Semaphore::new(options.concurrency));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let mut generator = Generator::new(options.seed, &options.tenant, SystemTime::now());
    let mut in_flight = JoinSet::new();
    let (mut requests, mut events_sent) = (0_u64, 0_u64);
    let start = Instant::now();
    let end = start + options.duration;
    loop {
        let due = start + interval.mul_f64(requests as f64);
        if due >= end {
            break;
        }
        tokio::time::sleep_until(due.into()).await;
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break;
        };
        while in_flight.try_join_next().is_some() {}
        let body: Vec<String> = generator
            .by_ref()
            .take(options.batch)
            .map(|e| e.json)
            .collect();
        requests += 1;
        events_sent += options.batch as u64;
        let request = client
            .post(&endpoint)
            .bearer_auth(&options.token)
            .header("content-type", "application/x-ndjson")
            .body(body.join("\n"));
        let tally = tally.clone();
        in_flight.spawn(async move {
            let sent = Instant::now();
            let outcome = match request.send().await {
                Ok(response) if response.status().as_u16() == 202 => {
                    let latency = sent.elapsed();
                    let body = response.bytes().await.unwrap_or_default();
                    let answer: serde_json::Value =
                        serde_json::from_slice(&body).unwrap_or_default();
                    Ok((answer, latency))
                }
                Ok(response) => Err(format!("status {}", response.status().as_u16())),
                Err(err) if err.is_timeout() => Err("timeout".to_owned()),
                Err(err) if err.is_connect() => Err("connect".to_owned()),
                Err(_) => Err("transport".to_owned()),
            };
            drop(permit);
            let mut tally = lock(&tally);
            match outcome {
                Ok((answer, latency)) => {
                    tally.accepted += answer["accepted"].as_u64().unwrap_or_default();
                    tally.excluded += answer["excluded"].as_u64().unwrap_or_default();
                    tally.latencies.push(latency);
                }
                Err(kind) => *tally.errors.entry(kind).or_default() += 1,
            }
        });
    }
    while in_flight.join_next().await.is_some() {}
    let elapsed = start.elapsed();
    let mut tally = lock(&tally);
    let acknowledged = tally.accepted + tally.excluded;
    Ok(LoadReport {
        requests,
        events_sent,
        accepted: tally.accepted,
        excluded: tally.excluded,
        errors: std::mem::take(&mut tally.errors),
        elapsed,
        achieved_rate: acknowledged as f64 / elapsed.as_secs_f64().max(f64::EPSILON),
        latency: Summary::of(&mut tally.latencies),
    })
}

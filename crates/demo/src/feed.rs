//! The feeder: realistic events ingested at a steady rate over the sender's HTTP API, the
//! tenants taking turns, each one recorded in the [`Tracker`] before it is sent.

use crate::TENANTS;
use crate::tracker::{Tracker, lock, unix_ms};
use evo_siem_workload::generate::Generator;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// Ingests `rate` events a second for `duration`, the tenants taking turns, over HTTP.
pub(crate) async fn feed(
    client: reqwest::Client,
    ingest: String,
    token: String,
    rate: u32,
    duration: Duration,
    seed: u64,
    tracker: Arc<Mutex<Tracker>>,
) {
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

//! Helpers: events, signed deliveries, a scripted output, and a relay on a free port.

use evo_siem_protocol::{Secret, encode_batch_from_text, headers, sign};
use evo_siem_receiver::Receiver;
use evo_siem_relay::config::Format;
use evo_siem_relay::outputs::{
    FailureKind, Output, OutputError, OutputFuture, Record, Refused, Sent,
};
use evo_siem_relay::{Relay, RunningRelay};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

pub(crate) const SECRET: &str = "whsec-relay-tests";

/// An audit event with this UUID and action, unknown fields and non-ASCII text included.
pub(crate) fn event(uuid: &str, action: &str, status: &str) -> String {
    format!(
        r#"{{"event_type":"create","table":"events","timestamp":"2024-01-15T10:30:00.000Z","data":{{"uuid":"{uuid}","action":"{action}","status":"{status}","actor":{{"kind":"User","name":"zoë@example.com"}},"origin":{{"hostname":"DESKTOP-ABC","ipaddr":"192.0.2.10"}},"target":{{"kind":"User","name":"ana@example.com"}},"ts":1706000000123456789,"created_at":1706000000123456789,"geo":{{"country":"PT"}}}},"tenant_hint":"acme"}}"#
    )
}

pub(crate) fn uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// `n` fresh events.
pub(crate) fn events(n: usize) -> Vec<String> {
    (0..n)
        .map(|_| event(&uuid(), "User login", "Success"))
        .collect()
}

/// A signed body of `events`, stamped now.
pub(crate) fn body(events: &[String]) -> Vec<u8> {
    let texts: Vec<&str> = events.iter().map(String::as_str).collect();
    encode_batch_from_text(&texts, SystemTime::now())
}

/// POSTs `events` to `url`, signed with `secret`.
pub(crate) async fn deliver_with(url: &str, secret: &str, body: Vec<u8>) -> reqwest::Response {
    let signature = sign(&Secret::new(secret), &body);
    reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header(headers::DELIVERY_ID, uuid())
        .header(headers::DELIVERY_ATTEMPT, "1")
        .header(headers::SIGNATURE_256, signature)
        .timeout(Duration::from_secs(30))
        .body(body)
        .send()
        .await
        .unwrap()
}

/// POSTs `events`, signed with [`SECRET`]; the status and the body.
pub(crate) async fn deliver(url: &str, events: &[String]) -> (u16, String) {
    let response = deliver_with(url, SECRET, body(events)).await;
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

pub(crate) fn receiver() -> Receiver {
    Receiver::builder().secret(SECRET).build().unwrap()
}

/// Starts `relay` on a free port of 127.0.0.1.
pub(crate) async fn start(relay: Relay) -> RunningRelay {
    relay.start("127.0.0.1:0".parse().unwrap()).await.unwrap()
}

/// A value of a metric line (`name{labels} value`) in the `/metrics` text; 0 when absent.
pub(crate) fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |v| v.parse().unwrap())
}

pub(crate) async fn metrics_text(running: &RunningRelay) -> String {
    reqwest::get(format!("http://{}/metrics", running.addr()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// What a [`Scripted`] output does with each send, in turn (the last one repeats).
#[derive(Debug, Clone)]
pub(crate) enum Step {
    Ack,
    Fail,
    /// Refuse the records at these indexes for good.
    Refuse(Vec<usize>),
    /// Wait this long, then acknowledge.
    Sleep(Duration),
}

/// An output that follows a script and records the payloads it acknowledged.
#[derive(Debug)]
pub(crate) struct Scripted {
    name: String,
    steps: Vec<Step>,
    calls: AtomicUsize,
    pub(crate) received: Mutex<Vec<String>>,
}

impl Scripted {
    pub(crate) fn new(name: &str, steps: Vec<Step>) -> Arc<Self> {
        Arc::new(Self {
            name: name.into(),
            steps,
            calls: AtomicUsize::new(0),
            received: Mutex::new(Vec::new()),
        })
    }

    pub(crate) fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    pub(crate) fn received(&self) -> Vec<String> {
        self.received.lock().unwrap().clone()
    }
}

impl Output for Scripted {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "scripted"
    }

    fn format(&self) -> Format {
        Format::Raw
    }

    fn send<'a>(
        &'a self,
        records: &'a [Record<'a>],
        _deadline: tokio::time::Instant,
    ) -> OutputFuture<'a, Sent> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        let step = self.steps[n.min(self.steps.len() - 1)].clone();
        Box::pin(async move {
            let refused = match step {
                Step::Ack => Vec::new(),
                Step::Fail => {
                    return Err(OutputError::new(FailureKind::Connect, "scripted failure"));
                }
                Step::Refuse(indexes) => indexes,
                Step::Sleep(time) => {
                    tokio::time::sleep(time).await;
                    Vec::new()
                }
            };
            let mut received = self.received.lock().unwrap();
            for (i, record) in records.iter().enumerate() {
                if !refused.contains(&i) {
                    received.push(record.payload.to_owned());
                }
            }
            Ok(Sent {
                refused: refused
                    .into_iter()
                    .map(|index| Refused {
                        index,
                        reason: format!("scripted refusal of record {index}"),
                    })
                    .collect(),
            })
        })
    }
}

/// Starts the relay that `toml` (listen, secret and dead-letter lines are added) describes,
/// with these environment variables; the relay and its dead-letter file.
pub(crate) async fn relay_from_toml(
    dir: &std::path::Path,
    toml: &str,
    vars: &[(&str, &str)],
) -> (RunningRelay, std::path::PathBuf) {
    let dead = dir.join("dead.ndjson");
    let text = format!(
        "listen = \"127.0.0.1:0\"\nsigning_secret_env = \"EVO_SIEM_SECRET\"\ndead_letter_path = \"{}\"\n{toml}",
        dead.display()
    );
    let config = evo_siem_relay::RelayConfig::parse(&text).unwrap();
    let mut vars: std::collections::HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    vars.insert("EVO_SIEM_SECRET".into(), SECRET.into());
    let relay = Relay::from_config(&config, &move |name: &str| vars.get(name).cloned()).unwrap();
    (start(relay).await, dead)
}

//! The sender suite is a real oracle: the real sender passes it, and senders with one guarantee
//! broken fail it, each on the property it breaks. The broken senders are the real sender with
//! its configuration tampered with, or behind a proxy that lies to it about the SIEM's answers.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use evo_siem_conformance::sender::{
    self, InProcess, Property, SenderUnderTest, StartError, SuiteOptions, SuiteReport,
};
use std::net::SocketAddr;
use std::sync::Arc;

fn options(cases: u32) -> SuiteOptions {
    SuiteOptions {
        cases,
        max_events: 60,
        max_shrink_iters: 0,
        ..SuiteOptions::default()
    }
}

/// For the broken senders: what never arrives is given up on sooner.
fn impatient(cases: u32) -> SuiteOptions {
    SuiteOptions {
        deadline: std::time::Duration::from_secs(3),
        ..options(cases)
    }
}

#[test]
fn the_real_sender_passes() {
    let report = sender::run(&options(12), InProcess::default);
    print!("{}", sender::table(&report));
    assert!(report.failure.is_none(), "{}", sender::table(&report));
    assert_eq!(report.totals.cases, 12);
    // Counted, not assumed: at least one check per event that had to arrive and three per
    // delivery (signature, age, delivery id).
    let t = &report.totals;
    assert!(
        t.checks_passed >= (t.events - t.excluded) + 3 * t.deliveries,
        "{} checks for {} events and {} deliveries",
        t.checks_passed,
        t.events - t.excluded,
        t.deliveries
    );
    assert!(report.totals.faults_injected > 0);
    assert!(report.totals.excluded > 0);
    assert!(report.totals.restarts > 0);
}

/// Asserts the suite failed on `property`.
fn assert_caught(report: &SuiteReport, property: Property) {
    let table = sender::table(report);
    println!("{table}");
    let failure = report
        .failure
        .as_ref()
        .unwrap_or_else(|| panic!("not caught:\n{table}"));
    assert!(
        failure.reason.contains(&format!("{property} (")),
        "caught, but not on {property}:\n{table}"
    );
}

/// The real sender with every exclusion list removed from its configuration.
#[derive(Default)]
struct IgnoresExclusions(InProcess);

impl SenderUnderTest for IgnoresExclusions {
    async fn start(&mut self, config: &toml::Table) -> Result<SocketAddr, StartError> {
        let mut config = config.clone();
        if let Some(toml::Value::Array(integrations)) = config.get_mut("integration") {
            for integration in integrations {
                if let toml::Value::Table(table) = integration {
                    table.remove("excluded_actions");
                }
            }
        }
        self.0.start(&config).await
    }
    async fn kill(&mut self) {
        self.0.kill().await;
    }
    async fn stop(&mut self) {
        self.0.stop().await;
    }
}

#[test]
fn a_sender_that_ignores_exclusions_is_caught() {
    let report = sender::run(&impatient(8), IgnoresExclusions::default);
    assert_caught(&report, Property::ExactFiltering);
}

/// What the lying proxy changes on the way.
#[derive(Clone, Copy, PartialEq)]
enum Lie {
    /// Answers 200 when the SIEM answered 5xx or could not be reached: the sender drops the
    /// batch, believing it delivered.
    SuccessOn5xx,
    /// Strips the signature header on the way to the SIEM.
    StripSignature,
    /// Replaces the delivery id with a new one on every attempt.
    FreshDeliveryIds,
}

/// The real sender behind a proxy that lies.
struct Lying {
    inner: InProcess,
    lie: Lie,
    proxies: Vec<tokio::task::JoinHandle<()>>,
}

impl Lying {
    fn new(lie: Lie) -> Self {
        Self {
            inner: InProcess::default(),
            lie,
            proxies: Vec::new(),
        }
    }
}

struct Proxy {
    targets: Vec<String>,
    lie: Lie,
    client: reqwest::Client,
}

async fn forward(
    State(proxy): State<Arc<Proxy>>,
    Path(index): Path<usize>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, HeaderMap, Bytes) {
    let mut request = proxy.client.post(&proxy.targets[index]).body(body);
    for (name, value) in &headers {
        if name == "host" || name == "content-length" {
            continue;
        }
        if proxy.lie == Lie::StripSignature && name == "x-evo-signature-256" {
            continue;
        }
        if proxy.lie == Lie::FreshDeliveryIds && name == "x-evo-delivery-id" {
            request = request.header(name, uuid::Uuid::new_v4().to_string());
            continue;
        }
        request = request.header(name, value);
    }
    match request.send().await {
        Ok(response) if proxy.lie == Lie::SuccessOn5xx && response.status().is_server_error() => {
            (StatusCode::OK, HeaderMap::new(), Bytes::new())
        }
        Ok(response) => {
            let status = StatusCode::from_u16(response.status().as_u16()).unwrap();
            let mut answer = HeaderMap::new();
            if let Some(after) = response.headers().get("retry-after") {
                answer.insert("retry-after", after.as_bytes().try_into().unwrap());
            }
            (status, answer, response.bytes().await.unwrap_or_default())
        }
        Err(_) if proxy.lie == Lie::SuccessOn5xx => {
            (StatusCode::OK, HeaderMap::new(), Bytes::new())
        }
        Err(_) => (StatusCode::BAD_GATEWAY, HeaderMap::new(), Bytes::new()),
    }
}

impl SenderUnderTest for Lying {
    async fn start(&mut self, config: &toml::Table) -> Result<SocketAddr, StartError> {
        let mut config = config.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let mut targets = Vec::new();
        if let Some(toml::Value::Array(integrations)) = config.get_mut("integration") {
            for integration in integrations {
                if let toml::Value::Table(table) = integration {
                    let target = table["webhook_url"].as_str().unwrap().to_owned();
                    table.insert(
                        "webhook_url".into(),
                        format!("{base}/{}", targets.len()).into(),
                    );
                    targets.push(target);
                }
            }
        }
        let proxy = Arc::new(Proxy {
            targets,
            lie: self.lie,
            client: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(5))
                .build()?,
        });
        let app = Router::new()
            .route("/{index}", post(forward))
            .with_state(proxy);
        self.proxies.push(tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        }));
        self.inner.start(&config).await
    }
    async fn kill(&mut self) {
        self.inner.kill().await;
        self.proxies.drain(..).for_each(|p| p.abort());
    }
    async fn stop(&mut self) {
        self.inner.stop().await;
        self.proxies.drain(..).for_each(|p| p.abort());
    }
}

#[test]
fn a_sender_that_drops_a_batch_on_5xx_is_caught() {
    let report = sender::run(&impatient(12), || Lying::new(Lie::SuccessOn5xx));
    assert_caught(&report, Property::AtLeastOnce);
}

#[test]
fn a_sender_that_does_not_sign_is_caught() {
    let report = sender::run(&impatient(4), || Lying::new(Lie::StripSignature));
    assert_caught(&report, Property::Envelope);
}

#[test]
fn a_sender_that_changes_the_delivery_id_on_retry_is_caught() {
    // Fresh ids on retries do not break a receiver's dedup (it dedups by event), but they break
    // the contract's promise that lets a SIEM tell a retry from a new batch.
    let report = sender::run(&impatient(12), || Lying::new(Lie::FreshDeliveryIds));
    assert_caught(&report, Property::DeliveryIds);
}

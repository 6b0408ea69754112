//! `/metrics` at many integrations: the number of series does not grow with them; only the
//! integrations needing attention get series of their own, at most `max_tenant_series`.

use crate::common::event_json;
use evo_siem_sender::service::{Config, Sender};
use std::fmt::Write;
use std::time::{Duration, Instant};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const TOKEN: &str = "ingest-token-for-metrics-tests";

/// A sender with `integrations` tenants (`t0000`, ...), of which the first `paused` deliver to an
/// endpoint answering 401 and are sent one event each, so that they end up paused.
async fn scrape_with(integrations: usize, paused: usize) -> String {
    let siem = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/gone"))
        .respond_with(ResponseTemplate::new(401))
        .mount(&siem)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&siem)
        .await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("token"), TOKEN).unwrap();
    let mut file = format!(
        "listen = \"127.0.0.1:0\"\ndata_dir = \"{dir}\"\ningest_token_file = \"{dir}/token\"\n\
         allow_private_targets = [\"127.0.0.1/32\"]\n",
        dir = dir.path().display()
    );
    for n in 0..integrations {
        let endpoint = if n < paused { "gone" } else { "ok" };
        let _ = write!(
            file,
            "[[integration]]\ntenant = \"t{n:04}\"\nwebhook_url = \"{}/{endpoint}\"\nlinger_ms = 0\n",
            siem.uri()
        );
    }
    let config: Config = toml::from_str(&file).unwrap();
    let sender = Sender::start(&config).await.unwrap();
    let base = format!("http://{}", sender.addr());
    let client = reqwest::Client::new();
    for n in 0..paused {
        let answer = client
            .post(format!("{base}/v1/tenants/t{n:04}/audit-events"))
            .bearer_auth(TOKEN)
            .json(&[event_json(n, "User logout")])
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status().as_u16(), 202);
    }
    let started = Instant::now();
    let text = loop {
        let text = client
            .get(format!("{base}/metrics"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if text.contains(&format!(
            "evo_siem_integrations{{state=\"paused\"}} {paused}\n"
        )) {
            break text;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the integrations did not all pause:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    sender.shutdown().await;
    text
}

/// Sample lines (not `#` comments).
fn samples(text: &str) -> Vec<&str> {
    text.lines().filter(|l| !l.starts_with('#')).collect()
}

/// Sample lines naming a tenant.
fn tenant_samples(text: &str) -> usize {
    samples(text)
        .iter()
        .filter(|l| l.contains("tenant=\""))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn series_stay_bounded_as_integrations_grow_and_paused_tenants_appear() {
    let few = scrape_with(50, 5).await;
    // Paused and queued events: the paused tenants show, with their backlog.
    for n in 0..5 {
        let line = format!("evo_siem_tenant_state{{tenant=\"t{n:04}\",state=\"paused\"}} 1");
        assert!(few.contains(&line), "{line} missing:\n{few}");
        let line = format!("evo_siem_tenant_backlog_events{{tenant=\"t{n:04}\"}} 1");
        assert!(few.contains(&line), "{line} missing:\n{few}");
    }
    assert!(
        few.contains("evo_siem_integrations{state=\"active\"} 45\n"),
        "{few}"
    );
    assert!(few.contains("evo_siem_backlog_events 5\n"), "{few}");
    assert!(few.contains("evo_siem_tenant_series_omitted 0\n"), "{few}");
    // Four series per tenant shown, no more.
    assert_eq!(tenant_samples(&few), 5 * 4, "{few}");

    // 40 times the integrations, 60 of them paused: 50 shown (the cap), 10 counted as omitted.
    let many = scrape_with(2_000, 60).await;
    assert_eq!(tenant_samples(&many), 50 * 4);
    assert!(
        many.contains("evo_siem_tenant_series_omitted 10\n"),
        "{many}"
    );
    assert!(many.contains("evo_siem_integrations{state=\"active\"} 1940\n"));
    assert!(many.contains("tenant=\"t0000\",state=\"paused\""));
    assert!(
        !many.contains("tenant=\"t0050\""),
        "by name, the first 50 paused"
    );
    // Apart from the capped per-tenant series, exactly the same series.
    assert_eq!(
        samples(&few).len() - tenant_samples(&few),
        samples(&many).len() - tenant_samples(&many),
        "few:\n{few}\nmany:\n{many}"
    );
}

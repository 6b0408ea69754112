//! The Elasticsearch output against a fake `_bulk` that follows the documented formats.

use crate::common::{deliver, event, events, metric, metrics_text, relay_from_toml, uuid};
use crate::fakes::{EsState, elasticsearch};
use serde_json::Value;
use std::collections::HashSet;

const API_KEY: &str = "VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw==";

fn output(url: &str, extra: &str) -> String {
    format!(
        "[[output]]\ntype = \"elasticsearch\"\nurl = \"{url}\"\nindex = \"evo-audit\"\ntimeout_ms = 2000\n{extra}"
    )
}

fn key_output(url: &str) -> String {
    output(url, "api_key_env = \"ES_API_KEY\"\n")
}

fn id_of(event: &str) -> String {
    let value: Value = serde_json::from_str(event).unwrap();
    value["data"]["uuid"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_event_is_created_under_its_uuid_and_a_redelivery_is_a_conflict_not_a_copy() {
    let (url, fake) = elasticsearch(EsState {
        authorization: format!("ApiKey {API_KEY}"),
        ..EsState::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (relay, _) =
        relay_from_toml(dir.path(), &key_output(&url), &[("ES_API_KEY", API_KEY)]).await;
    let batch = events(3);
    assert_eq!(deliver(&relay.webhook_url(), &batch).await.0, 200);
    {
        let fake = fake.lock().unwrap();
        assert_eq!(fake.content_types, ["application/x-ndjson"]);
        for event in &batch {
            let stored = &fake.documents[&("evo-audit".to_owned(), id_of(event))];
            assert_eq!(*stored, serde_json::from_str::<Value>(event).unwrap());
        }
    }
    // A second relay (its memory dedup empty, as after a restart) sends them again: 409s,
    // counted as present.
    relay.shutdown().await.unwrap();
    let (relay, dead) =
        relay_from_toml(dir.path(), &key_output(&url), &[("ES_API_KEY", API_KEY)]).await;
    let (status, answer) = deliver(&relay.webhook_url(), &batch).await;
    assert_eq!(
        (status, answer.as_str()),
        (200, r#"{"accepted":3,"duplicates":0}"#)
    );
    assert_eq!(fake.lock().unwrap().documents.len(), 3);
    assert!(!dead.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_bulk_results_retry_only_what_failed_and_dead_letter_what_cannot_map() {
    let batch = vec![
        event(&uuid(), "User login", "Success"),
        event(&uuid(), "MAPPING-CONFLICT", "Success"),
        event(&uuid(), "User login", "Success"),
        event(&uuid(), "User logout", "Success"),
        event(&uuid(), "Role changed", "Success"),
    ];
    let busy: HashSet<String> = [id_of(&batch[2]), id_of(&batch[4])].into();
    let (url, fake) = elasticsearch(EsState {
        authorization: format!("ApiKey {API_KEY}"),
        busy_once: busy,
        ..EsState::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (relay, dead) =
        relay_from_toml(dir.path(), &key_output(&url), &[("ES_API_KEY", API_KEY)]).await;
    let (status, answer) = deliver(&relay.webhook_url(), &batch).await;
    assert_eq!(
        (status, answer.as_str()),
        (200, r#"{"accepted":5,"duplicates":0}"#)
    );
    {
        let fake = fake.lock().unwrap();
        assert_eq!(
            fake.requests,
            [5, 2],
            "only the two 429 items are sent again"
        );
        let ids: HashSet<String> = fake.documents.keys().map(|(_, id)| id.clone()).collect();
        let expected: HashSet<String> = [0, 2, 3, 4].iter().map(|&i| id_of(&batch[i])).collect();
        assert_eq!(ids, expected);
    }
    let letter: Value =
        serde_json::from_str(std::fs::read_to_string(&dead).unwrap().trim()).unwrap();
    assert_eq!(letter["output"], "elasticsearch");
    assert_eq!(letter["uuid"], id_of(&batch[1]));
    assert_eq!(
        letter["reason"],
        "400 mapper_parsing_exception: failed to parse field [data.action] of type [long]"
    );
    let text = metrics_text(&relay).await;
    assert_eq!(
        metric(
            &text,
            "evo_siem_relay_dead_letters_total{output=\"elasticsearch\"}"
        ),
        1.0
    );
    assert_eq!(
        metric(
            &text,
            "evo_siem_relay_events_forwarded_total{output=\"elasticsearch\"}"
        ),
        4.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_down_is_a_503_and_the_retry_after_it_returns_delivers() {
    let (url, fake) = elasticsearch(EsState {
        authorization: format!("ApiKey {API_KEY}"),
        down: true,
        ..EsState::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (relay, _) = relay_from_toml(
        dir.path(),
        &format!("request_timeout_ms = 1000\n{}", key_output(&url)),
        &[("ES_API_KEY", API_KEY)],
    )
    .await;
    let batch = events(2);
    let (status, answer) = deliver(&relay.webhook_url(), &batch).await;
    assert_eq!(status, 503);
    assert!(answer.contains("elasticsearch (busy)"), "{answer}");
    fake.lock().unwrap().down = false;
    assert_eq!(deliver(&relay.webhook_url(), &batch).await.0, 200);
    assert_eq!(fake.lock().unwrap().documents.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_authentication_and_refused_credentials() {
    // "elastic:changeme-password" in base64.
    let (url, fake) = elasticsearch(EsState {
        authorization: "Basic ZWxhc3RpYzpjaGFuZ2VtZS1wYXNzd29yZA==".into(),
        ..EsState::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let basic = output(
        &url,
        "username = \"elastic\"\npassword_env = \"ES_PASSWORD\"\n",
    );
    let (relay, _) =
        relay_from_toml(dir.path(), &basic, &[("ES_PASSWORD", "changeme-password")]).await;
    assert_eq!(deliver(&relay.webhook_url(), &events(1)).await.0, 200);
    assert_eq!(fake.lock().unwrap().documents.len(), 1);
    relay.shutdown().await.unwrap();

    let (relay, _) =
        relay_from_toml(dir.path(), &basic, &[("ES_PASSWORD", "wrong-password")]).await;
    let (status, answer) = deliver(&relay.webhook_url(), &events(1)).await;
    assert_eq!(status, 503);
    assert!(answer.contains("elasticsearch (auth)"), "{answer}");
    assert!(!answer.contains("wrong-password"));
    let text = metrics_text(&relay).await;
    assert_eq!(
        metric(
            &text,
            "evo_siem_relay_output_failures_total{output=\"elasticsearch\",kind=\"auth\"}"
        ),
        1.0
    );
}

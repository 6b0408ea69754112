//! The crate agrees with every fixture: signature vectors, valid payloads and invalid payloads.

use crate::{fixtures_dir, payloads};
use evo_siem_protocol::{
    Batch, EventIds, Secret, Verifier, event_key, parse_rfc3339, sign, verify_signature,
};
use serde_json::Value;
use std::time::SystemTime;

const TEST_SECRET: &str = "fixture-test-secret";

fn signatures() -> Value {
    let bytes = std::fs::read(fixtures_dir().join("signatures.json")).unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[test]
fn signing_vectors_match() {
    let vectors = signatures()["vectors"].as_array().unwrap().clone();
    assert!(vectors.len() >= 8, "only {} vectors", vectors.len());
    assert_eq!(vectors[0]["name"], "github-published-example");
    for v in vectors {
        let secret = Secret::new(v["secret"].as_str().unwrap());
        let body = v["body"].as_str().unwrap().as_bytes();
        let expected = v["expected"].as_str().unwrap();
        assert_eq!(sign(&secret, body), expected, "{}", v["name"]);
        assert_eq!(
            verify_signature(Some(expected.as_bytes()), body, &[secret]),
            Ok(0),
            "{}",
            v["name"]
        );
    }
}

#[test]
fn verification_cases_give_the_documented_outcome() {
    let cases = signatures()["verification"].as_array().unwrap().clone();
    assert!(cases.len() >= 10, "only {} verification cases", cases.len());
    for case in cases {
        let secrets: Vec<Secret> = case["secrets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| Secret::new(s.as_str().unwrap()))
            .collect();
        let header = case["header"].as_str().map(str::as_bytes);
        let outcome = verify_signature(header, case["body"].as_str().unwrap().as_bytes(), &secrets);
        let got = match outcome {
            Ok(index) => serde_json::json!({ "ok": index }),
            Err(err) => serde_json::json!({ "reason": err.reason_code() }),
        };
        assert_eq!(got, case["expected"], "{}", case["name"]);
    }
}

/// The body's own `generated_at`: valid fixtures are checked at the time they were made.
fn own_time(body: &[u8]) -> SystemTime {
    let value: Value = serde_json::from_slice(body).unwrap();
    parse_rfc3339(value["generated_at"].as_str().unwrap()).unwrap()
}

#[test]
fn valid_payloads_verify_and_round_trip() {
    let cases = payloads("valid");
    assert!(cases.len() >= 5, "only {} valid payloads", cases.len());
    let secret = Secret::new(TEST_SECRET);
    for (name, body, _) in cases {
        let header = sign(&secret, &body);
        let verified = Verifier::new([secret.clone()])
            .verify(&body, Some(header.as_bytes()), own_time(&body))
            .unwrap_or_else(|r| panic!("{name}: {r}"));
        let batch = &verified.batch;
        assert_eq!(batch.count as usize, batch.events.len(), "{name}");

        // Each event's raw JSON is the exact text of the body, in order.
        let text = std::str::from_utf8(&body).unwrap();
        let mut from = 0;
        for event in &batch.events {
            let raw = event.raw_json().unwrap();
            let at = text[from..]
                .find(raw)
                .unwrap_or_else(|| panic!("{name}: raw text not in body"));
            from += at + raw.len();
        }

        // parse -> serialize -> parse keeps every value, unknown fields and exact integers included.
        let reserialized = serde_json::to_vec(batch).unwrap();
        let original: Value = serde_json::from_slice(&body).unwrap();
        let again: Value = serde_json::from_slice(&reserialized).unwrap();
        assert_eq!(original, again, "{name}");
        let reparsed: Batch<'_> = serde_json::from_slice(&reserialized).unwrap();
        assert_eq!(&reparsed, batch, "{name}");
    }
}

#[test]
fn large_nanoseconds_are_exact() {
    let (_, body, _) = payloads("valid")
        .into_iter()
        .find(|(n, _, _)| n == "large-nanoseconds.json")
        .unwrap();
    let batch = evo_siem_protocol::parse_batch(&body).unwrap();
    let ts: Vec<(i64, i64)> = batch
        .events
        .iter()
        .map(|e| (e.data.ts, e.data.created_at))
        .collect();
    assert_eq!(
        ts,
        [
            (1_706_000_000_123_456_789, 1_706_000_000_123_456_791),
            (i64::MAX, 9_007_199_254_740_993),
            (-1, 0)
        ]
    );
}

#[test]
fn unknown_fields_survive_at_every_level() {
    let (_, body, _) = payloads("valid")
        .into_iter()
        .find(|(n, _, _)| n == "unknown-fields.json")
        .unwrap();
    let batch = evo_siem_protocol::parse_batch(&body).unwrap();
    let event = &batch.events[0];
    assert!(batch.extra.get("trace").is_some() && batch.extra.get("region").is_some());
    assert!(event.extra.get("tenant").is_some());
    assert_eq!(
        event.data.extra.get("request_id").map(|r| r.get()),
        Some("null")
    );
    assert!(event.data.actor.extra.get("mfa").is_some());
    assert!(event.data.origin.extra.get("user_agent").is_some());
    assert_eq!(
        event.data.target.extra.get("id").map(|r| r.get()),
        Some("184467440737095516")
    );
}

#[test]
fn invalid_payloads_get_their_documented_refusal() {
    let cases = payloads("invalid");
    assert!(cases.len() >= 15, "only {} invalid payloads", cases.len());
    let secret = Secret::new(TEST_SECRET);
    for (name, body, expected) in cases {
        let expected = expected.unwrap_or_else(|| panic!("{name} has no .expected.json"));
        let mut verifier = Verifier::new([secret.clone()]);
        if let Some(limit) = expected.get("max_body_bytes").and_then(Value::as_u64) {
            verifier = verifier.max_body_bytes(limit as usize);
        }
        if expected.get("event_ids").and_then(Value::as_str) == Some("uuid") {
            verifier = verifier.event_ids(EventIds::UuidOnly);
        }
        let now = expected
            .get("now")
            .and_then(|n| parse_rfc3339(n.as_str()?))
            .or_else(|| {
                let value: Value = serde_json::from_slice(&body).ok()?;
                parse_rfc3339(value.get("generated_at")?.as_str()?)
            })
            .unwrap_or_else(SystemTime::now);
        let header = sign(&secret, &body);
        let refusal = verifier
            .verify(&body, Some(header.as_bytes()), now)
            .expect_err(&name);
        assert_eq!(
            (u64::from(refusal.http_status()), refusal.reason_code()),
            (
                expected["status"].as_u64().unwrap(),
                expected["reason"].as_str().unwrap()
            ),
            "{name}: {refusal}"
        );
    }
}

#[test]
fn standard_webhooks_vectors_match() {
    use evo_siem_protocol::standard_webhooks;
    let vectors = signatures()["standard_webhooks"]["vectors"]
        .as_array()
        .unwrap()
        .clone();
    assert!(vectors.len() >= 5, "only {} vectors", vectors.len());
    assert_eq!(
        vectors[0]["name"],
        "standard-webhooks-specification-example"
    );
    for v in vectors {
        let name = &v["name"];
        let whsec = v["secret"].as_str().unwrap();
        let secret = Secret::from_whsec(whsec).unwrap();
        assert_eq!(secret.to_whsec(), whsec, "{name}");
        let (id, timestamp) = (v["id"].as_str().unwrap(), v["timestamp"].as_u64().unwrap());
        let body = v["body"].as_str().unwrap().as_bytes();
        let expected = v["expected"].as_str().unwrap();
        assert_eq!(
            standard_webhooks::sign(&secret, id, timestamp, body),
            expected,
            "{name}"
        );
        let checked = standard_webhooks::verify(
            Some(id.as_bytes()),
            Some(timestamp.to_string().as_bytes()),
            Some(expected.as_bytes()),
            body,
            &[secret],
        );
        assert_eq!(checked.map(|c| c.secret_index), Ok(0), "{name}");
    }
}

#[test]
fn standard_webhooks_verification_cases_give_the_documented_outcome() {
    use evo_siem_protocol::standard_webhooks;
    let cases = signatures()["standard_webhooks"]["verification"]
        .as_array()
        .unwrap()
        .clone();
    assert!(cases.len() >= 10, "only {} verification cases", cases.len());
    for case in cases {
        let secrets: Vec<Secret> = case["secrets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| Secret::from_whsec(s.as_str().unwrap()).unwrap())
            .collect();
        let text = |key: &str| case[key].as_str().map(str::as_bytes);
        let outcome = standard_webhooks::verify(
            text("id"),
            text("timestamp"),
            text("header"),
            case["body"].as_str().unwrap().as_bytes(),
            &secrets,
        );
        let got = match outcome {
            Ok(checked) => serde_json::json!({ "ok": checked.secret_index }),
            Err(err) => serde_json::json!({ "reason": err.reason_code() }),
        };
        assert_eq!(got, case["expected"], "{}", case["name"]);
    }
}

#[test]
fn event_ids_as_the_platform_writes_them() {
    let (_, body, _) = payloads("valid")
        .into_iter()
        .find(|(n, _, _)| n == "event-ids.json")
        .unwrap();
    let secret = Secret::new(TEST_SECRET);
    let header = sign(&secret, &body);
    let verifier = Verifier::new([secret]);
    let typed = verifier
        .verify(&body, Some(header.as_bytes()), own_time(&body))
        .unwrap();
    let indexed = verifier
        .verify_indexed(&body, Some(header.as_bytes()), own_time(&body))
        .unwrap();
    assert_eq!(
        typed.uuids, indexed.uuids,
        "both paths derive the same keys"
    );
    let ids: Vec<&str> = typed.batch.events.iter().map(|e| &*e.data.uuid).collect();
    // A UUID in capitals deduplicates with its lowercase spelling: by its 16 bytes.
    assert_eq!(
        typed.uuids[0].to_string(),
        ids[0].to_ascii_lowercase(),
        "{ids:?}"
    );
    // The others by a hash of their exact text, each its own key.
    for (id, key) in ids.iter().zip(&typed.uuids) {
        assert_eq!(event_key(id.as_bytes(), EventIds::Any).as_ref(), Ok(key));
    }
    let mut distinct = typed.uuids.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), ids.len());
    // A receiver that wants UUIDs only refuses the second event, the product page's "evt-abc123".
    let strict = verifier.event_ids(EventIds::UuidOnly);
    let refusal = strict
        .verify_indexed(&body, Some(header.as_bytes()), own_time(&body))
        .unwrap_err();
    assert_eq!(
        refusal,
        evo_siem_protocol::Refusal::EventIdNotUuid { index: 1 }
    );
    assert_eq!(refusal.reason_code(), "invalid_event_uuid");
}

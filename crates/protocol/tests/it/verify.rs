//! The [`Verifier`]'s limits at their exact bounds (body size, replay window, in both directions),
//! its defaults, and the two result shapes (`verify` and `verify_indexed`) agreeing.

use crate::payloads;
use evo_siem_protocol::{
    DEFAULT_MAX_BODY_BYTES, DEFAULT_TOLERANCE, EventIds, IndexedBatch, Refusal, Secret,
    SignatureScheme, Verified, Verifier, encode_batch, sign,
};
use serde_json::value::RawValue;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// 2024-01-15T10:30:05.123Z: the `generated_at` of every body built here.
fn generated_at() -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(1_705_314_605_123)
}

/// The events of the `multi-event.json` fixture (several, with distinct ids), stamped at
/// [`generated_at`].
fn body() -> Vec<u8> {
    let (_, bytes, _) = payloads("valid")
        .into_iter()
        .find(|(name, _, _)| name == "multi-event.json")
        .expect("multi-event.json");
    let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    let events: Vec<Box<RawValue>> = value["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| RawValue::from_string(e.to_string()).unwrap())
        .collect();
    assert!(events.len() >= 2, "multi-event.json holds several events");
    let refs: Vec<&RawValue> = events.iter().map(|e| &**e).collect();
    encode_batch(&refs, generated_at())
}

/// Both entry points, signed, so each check is seen through `verify` and `verify_indexed`.
fn both(
    verifier: &Verifier,
    body: &[u8],
    now: SystemTime,
) -> (Result<(), Refusal>, Result<(), Refusal>) {
    let secret = Secret::new("verify-test-secret");
    let header = sign(&secret, body);
    let typed = verifier
        .verify(body, Some(header.as_bytes()), now)
        .map(|_| ());
    let indexed = verifier
        .verify_indexed(body, Some(header.as_bytes()), now)
        .map(|_| ());
    (typed, indexed)
}

fn verifier() -> Verifier {
    Verifier::new([Secret::new("verify-test-secret")])
}

#[test]
fn a_body_of_exactly_the_limit_is_accepted_and_one_byte_more_is_refused() {
    let body = body();
    let at_limit = verifier().max_body_bytes(body.len());
    assert_eq!(both(&at_limit, &body, generated_at()), (Ok(()), Ok(())));
    let below = verifier().max_body_bytes(body.len() - 1);
    let refused = Err(Refusal::BodyTooLarge {
        limit: body.len() - 1,
    });
    assert_eq!(
        both(&below, &body, generated_at()),
        (refused.clone(), refused)
    );
}

#[test]
fn the_default_body_limit_is_four_mebibytes() {
    assert_eq!(DEFAULT_MAX_BODY_BYTES, 4 * 1024 * 1024);
    // JSON allows trailing whitespace: pad a real batch to exactly the limit, then one byte more.
    let mut body = body();
    body.resize(DEFAULT_MAX_BODY_BYTES, b' ');
    assert_eq!(both(&verifier(), &body, generated_at()), (Ok(()), Ok(())));
    body.push(b' ');
    let refused = Err(Refusal::BodyTooLarge {
        limit: DEFAULT_MAX_BODY_BYTES,
    });
    assert_eq!(
        both(&verifier(), &body, generated_at()),
        (refused.clone(), refused)
    );
}

#[test]
fn the_replay_window_includes_its_bounds_in_both_directions() {
    let body = body();
    let verifier = verifier(); // the default tolerance: 5 minutes
    assert_eq!(DEFAULT_TOLERANCE, Duration::from_secs(300));
    let ms = Duration::from_millis(1);
    let tolerance = Duration::from_secs(300);
    for now in [
        generated_at(),
        generated_at() + tolerance,
        generated_at() - tolerance,
    ] {
        assert_eq!(both(&verifier, &body, now), (Ok(()), Ok(())), "{now:?}");
    }
    let old = Err(Refusal::TimestampTooOld {
        age_secs: 300,
        tolerance_secs: 300,
    });
    assert_eq!(
        both(&verifier, &body, generated_at() + tolerance + ms),
        (old.clone(), old)
    );
    let new = Err(Refusal::TimestampTooNew {
        ahead_secs: 300,
        tolerance_secs: 300,
    });
    assert_eq!(
        both(&verifier, &body, generated_at() - tolerance - ms),
        (new.clone(), new)
    );
}

#[test]
fn a_configured_tolerance_replaces_the_default() {
    let body = body();
    let verifier = verifier().tolerance(Duration::from_secs(30));
    assert_eq!(verifier.replay_tolerance(), Duration::from_secs(30));
    let now = generated_at() + Duration::from_secs(31);
    let old = Err(Refusal::TimestampTooOld {
        age_secs: 31,
        tolerance_secs: 30,
    });
    assert_eq!(both(&verifier, &body, now), (old.clone(), old));
    let now = generated_at() + Duration::from_secs(30);
    assert_eq!(both(&verifier, &body, now), (Ok(()), Ok(())));
}

#[test]
fn the_configuration_reads_back() {
    let signed = verifier();
    assert!(signed.requires_signature());
    assert_eq!(signed.body_limit(), DEFAULT_MAX_BODY_BYTES);
    assert_eq!(signed.replay_tolerance(), DEFAULT_TOLERANCE);
    assert_eq!(signed.event_id_policy(), EventIds::Any);
    assert!(signed.accepts(SignatureScheme::Evo));
    assert!(signed.accepts(SignatureScheme::StandardWebhooks));

    let narrowed = Verifier::unsigned()
        .max_body_bytes(1000)
        .schemes([SignatureScheme::StandardWebhooks])
        .event_ids(EventIds::UuidOnly);
    assert!(!narrowed.requires_signature());
    assert_eq!(narrowed.body_limit(), 1000);
    assert_eq!(narrowed.event_id_policy(), EventIds::UuidOnly);
    assert!(!narrowed.accepts(SignatureScheme::Evo));
    assert!(narrowed.accepts(SignatureScheme::StandardWebhooks));
}

#[test]
fn an_unsigned_verifier_accepts_a_batch_without_a_signature() {
    let body = body();
    let verified = Verifier::unsigned()
        .verify(&body, None, generated_at())
        .expect("unsigned batches are accepted");
    assert_eq!(verified.secret_index, None);
    // A signing verifier refuses the same request.
    assert!(matches!(
        verifier().verify(&body, None, generated_at()),
        Err(Refusal::Signature(_))
    ));
}

/// `verify` and `verify_indexed` describe the same batch: the same events, text, keys and time.
fn assert_same(typed: &Verified<'_>, indexed: &IndexedBatch<'_>) {
    let n = typed.batch.events.len();
    assert_eq!(indexed.len(), n);
    assert!(!indexed.is_empty());
    assert_eq!(indexed.uuids, typed.uuids);
    assert_eq!(indexed.generated_at, typed.generated_at);
    assert_eq!(indexed.secret_index, typed.secret_index);
    for (i, event) in typed.batch.events.iter().enumerate() {
        assert_eq!(indexed.event_json(i), event.raw_json(), "event {i}");
        assert_eq!(indexed.event(i).unwrap().unwrap(), *event, "event {i}");
    }
    assert_eq!(indexed.event_json(n), None);
    assert!(indexed.event(n).is_none());
    assert_eq!(indexed.parse().unwrap(), typed.batch);
}

#[test]
fn the_indexed_batch_holds_each_event_as_received() {
    let body = body();
    let secret = Secret::new("verify-test-secret");
    let header = sign(&secret, &body);
    let verifier = Verifier::new([Secret::new("another"), secret]);
    let typed = verifier
        .verify(&body, Some(header.as_bytes()), generated_at())
        .unwrap();
    let indexed = verifier
        .verify_indexed(&body, Some(header.as_bytes()), generated_at())
        .unwrap();
    assert_eq!(typed.secret_index, Some(1));
    assert_same(&typed, &indexed);
}

#[test]
fn the_indexed_batch_is_the_same_when_the_typed_parser_decides() {
    // An escaped key and a surrogate-pair escape are left to the typed parser by the one-pass
    // scan: the ranges then come from the typed events, and must still be each event's text.
    let text = String::from_utf8(body()).unwrap();
    let escaped = text.replacen("\"action\"", "\"\\u0061ction\"", 1).replacen(
        "User login",
        "User \\ud83d\\ude00 login",
        1,
    );
    assert_ne!(escaped, text);
    let body = escaped.into_bytes();
    let verifier = Verifier::unsigned();
    let typed = verifier.verify(&body, None, generated_at()).unwrap();
    let indexed = verifier
        .verify_indexed(&body, None, generated_at())
        .unwrap();
    assert!(typed.batch.events.len() >= 2);
    assert_same(&typed, &indexed);
}

#[test]
fn an_unsupported_schema_version_is_named_in_at_most_32_characters() {
    let long = "2".repeat(40);
    let body = String::from_utf8(body()).unwrap().replacen(
        "\"schema_version\":\"1\"",
        &format!("\"schema_version\":\"{long}\""),
        1,
    );
    let refused = Err(Refusal::UnsupportedSchemaVersion {
        found: "2".repeat(32),
    });
    let unsigned = Verifier::unsigned();
    assert_eq!(
        unsigned
            .verify(body.as_bytes(), None, generated_at())
            .map(|_| ()),
        refused
    );
    assert_eq!(
        unsigned
            .verify_indexed(body.as_bytes(), None, generated_at())
            .map(|_| ()),
        refused
    );
}

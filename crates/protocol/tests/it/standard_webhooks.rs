//! The [`Verifier`] with Standard Webhooks headers: either scheme, both, the replay window on
//! `webhook-timestamp` as well as on `generated_at`, and a verifier narrowed to one scheme.

use crate::payloads;
use evo_siem_protocol::{
    Refusal, Secret, SignatureError, SignatureHeaders, SignatureScheme, Verifier, encode_batch,
    sign,
    standard_webhooks::{self, StandardWebhooksError},
};
use serde_json::value::RawValue;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const ID: &str = "0b9e3a4c-6d0f-4a53-9a43-0c1b2c3d4e5f";
const AT: u64 = 1_705_314_605;

fn body() -> Vec<u8> {
    let (_, bytes, _) = payloads("valid").remove(0);
    let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    let events: Vec<Box<RawValue>> = value["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| RawValue::from_string(e.to_string()).unwrap())
        .collect();
    let refs: Vec<&RawValue> = events.iter().map(|e| &**e).collect();
    encode_batch(&refs, at(AT))
}

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

struct Request {
    evo: Option<String>,
    id: Option<String>,
    timestamp: Option<String>,
    signature: Option<String>,
}

impl Request {
    fn standard(secret: &Secret, body: &[u8], timestamp: u64) -> Self {
        Self {
            evo: None,
            id: Some(ID.into()),
            timestamp: Some(timestamp.to_string()),
            signature: Some(standard_webhooks::sign(secret, ID, timestamp, body)),
        }
    }

    fn headers(&self) -> SignatureHeaders<'_> {
        SignatureHeaders::from_lookup(|name| {
            match name {
                "x-evo-signature-256" => self.evo.as_deref(),
                "webhook-id" => self.id.as_deref(),
                "webhook-timestamp" => self.timestamp.as_deref(),
                "webhook-signature" => self.signature.as_deref(),
                other => panic!("asked for {other}"),
            }
            .map(str::as_bytes)
        })
    }
}

#[test]
fn either_scheme_or_both_verify() {
    let secret = Secret::new("a-secret-of-sixteen-bytes");
    let body = body();
    let verifier = Verifier::new([Secret::new("old-secret-000000"), secret.clone()]);
    let mut request = Request::standard(&secret, &body, AT);
    let verified = verifier.verify_with_headers(&body, &request.headers(), at(AT + 3));
    assert_eq!(verified.map(|v| v.secret_index), Ok(Some(1)));
    let indexed = verifier.verify_indexed_with_headers(&body, &request.headers(), at(AT + 3));
    assert_eq!(indexed.map(|v| v.secret_index), Ok(Some(1)));

    // Both: both are checked, so a bad one of either refuses the request.
    request.evo = Some(sign(&secret, &body));
    assert!(
        verifier
            .verify_with_headers(&body, &request.headers(), at(AT))
            .is_ok()
    );
    request.evo = Some(sign(&Secret::new("another-secret-000"), &body));
    assert_eq!(
        verifier
            .verify_with_headers(&body, &request.headers(), at(AT))
            .unwrap_err(),
        Refusal::Signature(SignatureError::Mismatch)
    );
    request.evo = Some(sign(&secret, &body));
    request.id = Some("another-id".into());
    assert_eq!(
        verifier
            .verify_indexed_with_headers(&body, &request.headers(), at(AT))
            .unwrap_err(),
        Refusal::StandardWebhooks(StandardWebhooksError::Mismatch)
    );

    // Neither: missing.
    let none = Request {
        evo: None,
        id: None,
        timestamp: None,
        signature: None,
    };
    assert_eq!(
        verifier
            .verify_with_headers(&body, &none.headers(), at(AT))
            .unwrap_err(),
        Refusal::Signature(SignatureError::Missing)
    );
}

#[test]
fn the_replay_window_applies_to_webhook_timestamp_and_to_generated_at() {
    let secret = Secret::new("a-secret-of-sixteen-bytes");
    let body = body(); // generated_at = AT
    let verifier = Verifier::new([secret.clone()]).tolerance(Duration::from_secs(60));
    // A webhook-timestamp far from now is refused, even though generated_at is fine ...
    let old = Request::standard(&secret, &body, AT - 61);
    let refusal = verifier
        .verify_with_headers(&body, &old.headers(), at(AT))
        .unwrap_err();
    assert_eq!(
        refusal,
        Refusal::TimestampTooOld {
            age_secs: 61,
            tolerance_secs: 60
        }
    );
    let new = Request::standard(&secret, &body, AT + 61);
    let refusal = verifier
        .verify_indexed_with_headers(&body, &new.headers(), at(AT))
        .unwrap_err();
    assert_eq!(
        refusal,
        Refusal::TimestampTooNew {
            ahead_secs: 61,
            tolerance_secs: 60
        }
    );
    // ... and a fresh webhook-timestamp does not excuse an old generated_at.
    let fresh = Request::standard(&secret, &body, AT + 120);
    let refusal = verifier
        .verify_with_headers(&body, &fresh.headers(), at(AT + 120))
        .unwrap_err();
    assert_eq!(
        refusal,
        Refusal::TimestampTooOld {
            age_secs: 120,
            tolerance_secs: 60
        }
    );
    assert_eq!(refusal.reason_code(), "timestamp_too_old");
    assert_eq!(refusal.http_status(), 401);
}

#[test]
fn a_verifier_narrowed_to_one_scheme_ignores_the_other() {
    let secret = Secret::new("a-secret-of-sixteen-bytes");
    let body = body();
    let standard = Request::standard(&secret, &body, AT);
    let evo_only = Verifier::new([secret.clone()]).schemes([SignatureScheme::Evo]);
    assert_eq!(
        evo_only
            .verify_with_headers(&body, &standard.headers(), at(AT))
            .unwrap_err(),
        Refusal::Signature(SignatureError::Missing)
    );
    let standard_only =
        Verifier::new([secret.clone()]).schemes([SignatureScheme::StandardWebhooks]);
    assert!(
        standard_only
            .verify_with_headers(&body, &standard.headers(), at(AT))
            .is_ok()
    );
    let evo = sign(&secret, &body);
    let refusal = standard_only
        .verify(&body, Some(evo.as_bytes()), at(AT))
        .unwrap_err();
    assert_eq!(
        refusal,
        Refusal::StandardWebhooks(StandardWebhooksError::MissingSignature)
    );
    assert_eq!(refusal.reason_code(), "missing_signature");
    // A webhook-signature without its id is refused with its own reason.
    let mut no_id = Request::standard(&secret, &body, AT);
    no_id.id = None;
    let refusal = standard_only
        .verify_with_headers(&body, &no_id.headers(), at(AT))
        .unwrap_err();
    assert_eq!(refusal.reason_code(), "missing_webhook_id");
}

#[test]
fn names_of_the_schemes() {
    for scheme in SignatureScheme::ALL {
        assert_eq!(scheme.as_str().parse::<SignatureScheme>(), Ok(scheme));
    }
    assert_eq!(
        "standard-webhooks".parse(),
        Ok(SignatureScheme::StandardWebhooks)
    );
    assert!("Evo".parse::<SignatureScheme>().is_err());
}

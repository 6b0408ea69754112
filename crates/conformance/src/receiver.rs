//! The receiver suite: a battery of deliveries, each with the answer a conforming receiver gives.
//!
//! A 2xx or 5xx where a refusal is due is a failure; a refusal with another 4xx than the
//! recommended one is a warning.
//!
//! Deduplication is judged from the answer's body when the receiver gives the SDK's
//! `{"accepted": N, "duplicates": M}` (the receiver SDK, the mock SIEM and the relay do): the same
//! events sent again, in the same delivery or a new one, must count as duplicates, never be
//! accepted (handed over) twice. A receiver whose 2xx carries no such counts gets a warning on
//! those checks: the suite cannot tell from outside whether it deduplicates.

use evo_siem_protocol::{
    Secret, SignatureScheme, encode_batch, format_generated_at, headers, sign, standard_webhooks,
};
use serde::Serialize;
use serde_json::value::RawValue;
use std::time::{Duration, SystemTime};

/// The name of the check that redelivers the first batch as soon as it was answered 2xx: it
/// proves that the 2xx came after the events were committed.
pub const REDELIVERY_AFTER_2XX: &str = "same batch again, right after its 2xx";

/// What to check and how.
#[derive(Debug, Clone)]
pub struct ReceiverTarget {
    /// The webhook URL.
    pub url: String,
    /// The secret the receiver verifies with.
    pub secret: Secret,
    /// The receiver's body limit; the suite sends one byte more than this. The receiver SDK's
    /// default is `evo_siem_protocol::DEFAULT_MAX_BODY_BYTES` (4 MiB), which
    /// `evo-siem conformance receiver` uses unless `--max-body` says otherwise.
    pub max_body: usize,
    /// Time for each request. Default 10 s.
    pub timeout: Duration,
    /// How the suite signs its requests: `X-Evo-Signature-256` with the `X-Evo-Delivery-*`
    /// headers ([`SignatureScheme::Evo`]), or Standard Webhooks alone (`webhook-id`,
    /// `webhook-timestamp`, `webhook-signature`, no `X-Evo-*` header), which adds checks of
    /// its own (a stale `webhook-timestamp`, a changed `webhook-id`).
    pub scheme: SignatureScheme,
}

/// The expected answer of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Expect {
    /// Any 2xx.
    Accept,
    /// A refusal; this status is recommended, any other 4xx is a warning.
    Refuse(u16),
}

/// How a check went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// As the contract says.
    Pass,
    /// Refused, but with another 4xx than the recommended status.
    Warn,
    /// Accepted what must be refused, refused what must be accepted, 5xx, or no answer.
    Fail,
}

/// One check's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckResult {
    /// What was sent.
    pub name: &'static str,
    /// What a conforming receiver answers.
    pub expect: Expect,
    /// The status received, or `None` when the request failed.
    pub status: Option<u16>,
    /// The verdict.
    pub verdict: Verdict,
    /// Why, when the status alone does not say it (a duplicate accepted again, counts missing).
    pub note: Option<String>,
}

/// What a 2xx's body must say of the batch's one event, when it gives the SDK's counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Counts {
    /// Nothing to check.
    Any,
    /// `{"accepted": 1, "duplicates": 0}`: the event is new.
    New,
    /// `{"accepted": 0, "duplicates": 1}`: the event was handed over already.
    Duplicate,
}

/// Judges a 2xx's body against `want`: `None` when it holds, else the verdict and why.
fn judge_counts(want: Counts, body: &[u8]) -> Option<(Verdict, String)> {
    let expected = match want {
        Counts::Any => return None,
        Counts::New => (1, 0),
        Counts::Duplicate => (0, 1),
    };
    let counts = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| Some((v["accepted"].as_u64()?, v["duplicates"].as_u64()?)));
    match counts {
        None => Some((
            Verdict::Warn,
            "the answer gives no {\"accepted\", \"duplicates\"} counts: deduplication not checked"
                .into(),
        )),
        Some(got) if got == expected => None,
        Some((accepted, duplicates)) => Some((
            Verdict::Fail,
            format!(
                "answered accepted {accepted}, duplicates {duplicates}; expected accepted {}, duplicates {}{}",
                expected.0,
                expected.1,
                if want == Counts::Duplicate {
                    " (an event handed over twice)"
                } else {
                    ""
                }
            ),
        )),
    }
}

/// Why a 5xx for events already answered 2xx fails: they were not committed when the 2xx went.
fn uncommitted_note(status: u16, body: &[u8]) -> String {
    let reason = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_owned));
    format!(
        "answered {status}{} for events it had answered 2xx for: they were not committed when it answered (a 2xx before the commit)",
        reason.map(|r| format!(" {r}")).unwrap_or_default()
    )
}

/// Judges a status against an expectation.
pub fn judge(expect: Expect, status: Option<u16>) -> Verdict {
    match (expect, status) {
        (Expect::Accept, Some(200..=299)) => Verdict::Pass,
        (Expect::Refuse(want), Some(got)) if got == want => Verdict::Pass,
        (Expect::Refuse(_), Some(400..=499)) => Verdict::Warn,
        _ => Verdict::Fail,
    }
}

fn event(uuid: &str) -> Box<RawValue> {
    let json = format!(
        r#"{{"event_type":"create","table":"events","timestamp":"2024-01-15T10:30:00.000Z","data":{{"uuid":"{uuid}","action":"User login","status":"Success","actor":{{"kind":"User","name":"conformance@example.com"}},"origin":{{"hostname":"conformance","ipaddr":"192.0.2.1"}},"target":{{"kind":"User","name":"conformance@example.com"}},"ts":1706000000123456789,"created_at":1706000000123456789}}}}"#
    );
    RawValue::from_string(json).expect("valid JSON")
}

fn fresh_body(at: SystemTime) -> Vec<u8> {
    let e = event(&uuid::Uuid::new_v4().to_string());
    encode_batch(&[&*e], at)
}

/// How a case is signed; the signature itself is made when the request is sent, in the
/// target's scheme, over the case's body, delivery id and signing time.
enum Signature {
    /// No signature header.
    None,
    /// A correct signature by this secret.
    By(Secret),
    /// A signature by this secret, then changed.
    Mangled(Secret, fn(&mut String)),
    /// This header value as it is.
    Literal(&'static str),
}

/// One request of the battery: body, signature and expectation.
struct Case {
    name: &'static str,
    body: Vec<u8>,
    signature: Signature,
    /// The `webhook-timestamp` (Standard Webhooks only).
    signed_at: SystemTime,
    /// The `webhook-id` sent, when not the one signed (Standard Webhooks only).
    sent_id: Option<String>,
    /// Changes the body after it was signed.
    tamper: bool,
    expect: Expect,
    counts: Counts,
    delivery_id: String,
    attempt: u32,
}

impl Case {
    /// The signature header's value, in `scheme`, before tampering.
    fn signature(&self, scheme: SignatureScheme) -> Option<String> {
        let sign_with = |secret: &Secret| match scheme {
            SignatureScheme::StandardWebhooks => {
                standard_webhooks::sign(secret, &self.delivery_id, unix(self.signed_at), &self.body)
            }
            _ => sign(secret, &self.body),
        };
        match &self.signature {
            Signature::None => None,
            Signature::By(secret) => Some(sign_with(secret)),
            Signature::Mangled(secret, mangle) => {
                let mut value = sign_with(secret);
                mangle(&mut value);
                Some(value)
            }
            Signature::Literal(value) => Some((*value).to_owned()),
        }
    }
}

fn unix(at: SystemTime) -> u64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn battery(target: &ReceiverTarget) -> Vec<Case> {
    let now = SystemTime::now();
    let secret = &target.secret;
    let signed = |name, body: Vec<u8>, expect| Case {
        name,
        signature: Signature::By(secret.clone()),
        signed_at: now,
        sent_id: None,
        tamper: false,
        body,
        expect,
        counts: Counts::Any,
        delivery_id: uuid::Uuid::new_v4().to_string(),
        attempt: 1,
    };
    let first = uuid::Uuid::new_v4().to_string();
    let valid = encode_batch(&[&*event(&first)], now);
    let mut cases = vec![Case {
        counts: Counts::New,
        ..signed("valid signed batch", valid.clone(), Expect::Accept)
    }];
    let first_id = cases[0].delivery_id.clone();
    // Sent as soon as the first answer came: a 2xx says the events are committed, so they are
    // duplicates now. A receiver that answered before committing (and commits later, or never)
    // either still holds them (a 5xx, `event_in_flight` from the SDK) or takes them again.
    cases.push(Case {
        name: REDELIVERY_AFTER_2XX,
        delivery_id: first_id,
        attempt: 2,
        counts: Counts::Duplicate,
        ..signed("", valid, Expect::Accept)
    });
    // The same event in another delivery (a sender that restarted mid-batch sends it again in
    // a batch of its own): handed over once, counted as a duplicate the second time.
    let again = encode_batch(&[&*event(&first)], now + Duration::from_millis(1));
    cases.push(Case {
        counts: Counts::Duplicate,
        ..signed("same event in a new delivery", again, Expect::Accept)
    });
    // The signature is checked over the bytes as sent: insignificant whitespace, escapes and a
    // large integer are the sender's to choose. A receiver that parses and re-serializes before
    // verifying refuses this valid batch.
    let stamp = format_generated_at(now);
    let spaced = format!(
        "{{ \"schema_version\" : \"1\",\n  \"events\" : [ {{\"event_type\":\"create\",\"table\":\"events\",\"timestamp\":\"2024-01-15T10:30:00.000Z\",\"data\":{{ \"uuid\" : \"{}\", \"action\":\"User login\",\"status\":\"Success\",\"actor\":{{\"kind\":\"User\",\"name\":\"jos\\u00e9@example.com\"}},\"origin\":{{\"hostname\":\"conformance\",\"ipaddr\":\"192.0.2.1\"}},\"target\":{{\"kind\":\"User\",\"name\":\"conformance@example.com\"}},\"ts\":1706000000123456789,\"created_at\":1706000000123456789 }} }} ],\n  \"count\" : 1, \"generated_at\" : \"{stamp}\" }}\n",
        uuid::Uuid::new_v4()
    );
    cases.push(Case {
        counts: Counts::New,
        ..signed(
            "valid batch, spaced and escaped",
            spaced.into_bytes(),
            Expect::Accept,
        )
    });
    // Event ids as the platform writes them: the product page's example is "evt-abc123".
    let vendor_id = format!("evt-{}", uuid::Uuid::new_v4().simple());
    cases.push(Case {
        counts: Counts::New,
        ..signed(
            "event id that is not a UUID (evt-...)",
            encode_batch(&[&*event(&vendor_id)], now),
            Expect::Accept,
        )
    });

    let body = fresh_body(now);
    cases.push(Case {
        signature: Signature::None,
        ..signed("missing signature", body, Expect::Refuse(401))
    });
    let body = fresh_body(now);
    cases.push(Case {
        signature: Signature::By(Secret::new("not-the-receivers-secret")),
        ..signed("wrong secret", body, Expect::Refuse(401))
    });
    cases.push(Case {
        tamper: true,
        ..signed("tampered body", fresh_body(now), Expect::Refuse(401))
    });
    // One bit of the last digit flipped ('0' and '4' are a hex digit and a canonical last
    // base64 digit both, before the padding).
    cases.push(Case {
        signature: Signature::Mangled(secret.clone(), |sig| {
            let at = sig.trim_end_matches('=').len() - 1;
            let flipped = if sig.as_bytes()[at] == b'0' { "4" } else { "0" };
            sig.replace_range(at..=at, flipped);
        }),
        ..signed(
            "bit-flipped signature",
            fresh_body(now),
            Expect::Refuse(401),
        )
    });
    cases.push(Case {
        signature: Signature::Literal("sha1=abc"),
        ..signed(
            "malformed signature header",
            fresh_body(now),
            Expect::Refuse(401),
        )
    });
    // The first 16 digits of the right signature: a receiver that compares only as many
    // digits as it was given (a prefix) accepts it.
    cases.push(Case {
        signature: Signature::Mangled(secret.clone(), |sig| {
            let prefix = sig.find(['=', ',']).map_or(0, |at| at + 1);
            sig.truncate(prefix + 16);
        }),
        ..signed("truncated signature", fresh_body(now), Expect::Refuse(401))
    });
    if target.scheme == SignatureScheme::StandardWebhooks {
        // The signed timestamp is checked too, not only the body's generated_at.
        cases.push(Case {
            signed_at: now - Duration::from_secs(600),
            ..signed(
                "webhook-timestamp 10 minutes old",
                fresh_body(now),
                Expect::Refuse(401),
            )
        });
        cases.push(Case {
            signed_at: now + Duration::from_secs(600),
            ..signed(
                "webhook-timestamp 10 minutes ahead",
                fresh_body(now),
                Expect::Refuse(401),
            )
        });
        // The signature covers the id: a receiver that signs the body alone accepts this.
        cases.push(Case {
            sent_id: Some(uuid::Uuid::new_v4().to_string()),
            ..signed("webhook-id changed", fresh_body(now), Expect::Refuse(401))
        });
    }
    cases.push(signed(
        "generated_at 10 minutes old",
        fresh_body(now - Duration::from_secs(600)),
        Expect::Refuse(401),
    ));
    cases.push(signed(
        "generated_at 10 minutes ahead",
        fresh_body(now + Duration::from_secs(600)),
        Expect::Refuse(401),
    ));

    let e = event(&uuid::Uuid::new_v4().to_string());
    let v2 = format!(
        r#"{{"schema_version":"2","events":[{}],"count":1,"generated_at":"{stamp}"}}"#,
        e.get()
    );
    cases.push(signed(
        "schema_version \"2\"",
        v2.into_bytes(),
        Expect::Refuse(400),
    ));
    cases.push(signed(
        "malformed JSON",
        br#"{"schema_version":"1","events":[{"#.to_vec(),
        Expect::Refuse(400),
    ));
    let mismatch = format!(
        r#"{{"schema_version":"1","events":[{}],"count":2,"generated_at":"{stamp}"}}"#,
        e.get()
    );
    cases.push(signed(
        "count mismatch",
        mismatch.into_bytes(),
        Expect::Refuse(400),
    ));
    let empty =
        format!(r#"{{"schema_version":"1","events":[],"count":0,"generated_at":"{stamp}"}}"#);
    cases.push(signed(
        "empty events",
        empty.into_bytes(),
        Expect::Refuse(400),
    ));
    let mut huge = fresh_body(now);
    huge.resize(target.max_body + 1, b' ');
    cases.push(signed("body over the limit", huge, Expect::Refuse(413)));
    cases
}

/// Why the suite could not run at all.
#[derive(Debug, thiserror::Error)]
#[error("cannot build the HTTP client: {0}")]
pub struct SuiteError(String);

/// Runs every check against `target`, in order.
pub async fn run(target: &ReceiverTarget) -> Result<Vec<CheckResult>, SuiteError> {
    let client = reqwest::Client::builder()
        .timeout(target.timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| SuiteError(e.to_string()))?;
    let mut results = Vec::new();
    for mut case in battery(target) {
        let signature = case.signature(target.scheme);
        if case.tamper {
            let at = case.body.len() / 2;
            case.body[at] = if case.body[at] == b'a' { b'b' } else { b'a' };
        }
        let mut request = client
            .post(&target.url)
            .header("content-type", "application/json");
        if target.scheme == SignatureScheme::StandardWebhooks {
            let id = case.sent_id.as_deref().unwrap_or(&case.delivery_id);
            request = request
                .header(headers::WEBHOOK_ID, id)
                .header(headers::WEBHOOK_TIMESTAMP, unix(case.signed_at).to_string());
            if let Some(signature) = &signature {
                request = request.header(headers::WEBHOOK_SIGNATURE, signature.as_str());
            }
        } else {
            request = request
                .header(headers::DELIVERY_ID, case.delivery_id.as_str())
                .header(headers::DELIVERY_ATTEMPT, case.attempt.to_string());
            if let Some(signature) = &signature {
                request = request.header(headers::SIGNATURE_256, signature.as_str());
            }
        }
        let answer = match request.body(case.body).send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                Some((status, response.bytes().await.unwrap_or_default()))
            }
            Err(_) => None,
        };
        let status = answer.as_ref().map(|(status, _)| *status);
        let mut verdict = judge(case.expect, status);
        let mut note = None;
        match &answer {
            Some((200..=299, body)) => {
                if let Some((counted, why)) = judge_counts(case.counts, body) {
                    verdict = counted;
                    note = Some(why);
                }
            }
            Some((status @ 500..=599, body)) if case.counts == Counts::Duplicate => {
                note = Some(uncommitted_note(*status, body));
            }
            _ => {}
        }
        // A receiver that refuses a large body from its Content-Length often closes the connection
        // before the client has finished sending, so no status can be read: not proof of a fault.
        if case.expect == Expect::Refuse(413) && status.is_none() {
            verdict = Verdict::Warn;
        }
        results.push(CheckResult {
            name: case.name,
            expect: case.expect,
            status,
            verdict,
            note,
        });
    }
    Ok(results)
}

/// The results as a readable table.
pub fn table(results: &[CheckResult]) -> String {
    let mut out = format!(
        "{:<38} {:<10} {:<6} {}\n",
        "check", "expected", "got", "verdict"
    );
    for r in results {
        let expected = match r.expect {
            Expect::Accept => "2xx".to_owned(),
            Expect::Refuse(s) => s.to_string(),
        };
        let got = r.status.map_or("none".to_owned(), |s| s.to_string());
        out += &format!(
            "{:<38} {:<10} {:<6} {:?}{}\n",
            r.name,
            expected,
            got,
            r.verdict,
            r.note
                .as_deref()
                .map(|n| format!(": {n}"))
                .unwrap_or_default()
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts() {
        assert_eq!(judge(Expect::Accept, Some(204)), Verdict::Pass);
        assert_eq!(judge(Expect::Accept, Some(401)), Verdict::Fail);
        assert_eq!(judge(Expect::Refuse(401), Some(401)), Verdict::Pass);
        assert_eq!(judge(Expect::Refuse(401), Some(403)), Verdict::Warn);
        assert_eq!(judge(Expect::Refuse(401), Some(200)), Verdict::Fail);
        assert_eq!(judge(Expect::Refuse(400), Some(500)), Verdict::Fail);
        assert_eq!(judge(Expect::Refuse(400), None), Verdict::Fail);
    }

    #[test]
    fn counts_tell_a_duplicate_handed_over_again() {
        let body = |a: u64, d: u64| format!(r#"{{"accepted":{a},"duplicates":{d}}}"#);
        assert_eq!(judge_counts(Counts::Duplicate, body(0, 1).as_bytes()), None);
        assert_eq!(
            judge_counts(Counts::Duplicate, body(1, 0).as_bytes()).map(|(v, _)| v),
            Some(Verdict::Fail)
        );
        assert_eq!(judge_counts(Counts::New, body(1, 0).as_bytes()), None);
        assert_eq!(
            judge_counts(Counts::New, b"ok").map(|(v, _)| v),
            Some(Verdict::Warn)
        );
        assert_eq!(judge_counts(Counts::Any, b"ok"), None);
    }
}

//! The receiver suite: a battery of deliveries, each with the answer a conforming receiver gives.
//!
//! A 2xx or 5xx where a refusal is due is a failure; a refusal with another 4xx than the
//! recommended one is a warning.

use evo_siem_protocol::{Secret, encode_batch, format_generated_at, headers, sign};
use serde::Serialize;
use serde_json::value::RawValue;
use std::time::{Duration, SystemTime};

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

/// One request of the battery: body, signature header (if any) and expectation.
struct Case {
    name: &'static str,
    body: Vec<u8>,
    signature: Option<String>,
    expect: Expect,
    delivery_id: String,
    attempt: u32,
}

fn battery(target: &ReceiverTarget) -> Vec<Case> {
    let now = SystemTime::now();
    let secret = &target.secret;
    let signed = |name, body: Vec<u8>, expect| Case {
        name,
        signature: Some(sign(secret, &body)),
        body,
        expect,
        delivery_id: uuid::Uuid::new_v4().to_string(),
        attempt: 1,
    };
    let valid = fresh_body(now);
    let mut cases = vec![signed("valid signed batch", valid.clone(), Expect::Accept)];
    let first_id = cases[0].delivery_id.clone();
    cases.push(Case {
        name: "same batch again (attempt 2)",
        delivery_id: first_id,
        attempt: 2,
        ..signed("", valid, Expect::Accept)
    });

    let body = fresh_body(now);
    cases.push(Case {
        signature: None,
        ..signed("missing signature", body, Expect::Refuse(401))
    });
    let body = fresh_body(now);
    cases.push(Case {
        signature: Some(sign(&Secret::new("not-the-receivers-secret"), &body)),
        ..signed("wrong secret", body, Expect::Refuse(401))
    });
    let body = fresh_body(now);
    let mut tampered = signed("tampered body", body, Expect::Refuse(401));
    let at = tampered.body.len() / 2;
    tampered.body[at] = if tampered.body[at] == b'a' {
        b'b'
    } else {
        b'a'
    };
    cases.push(tampered);
    let body = fresh_body(now);
    let mut flipped = signed("bit-flipped signature", body, Expect::Refuse(401));
    if let Some(sig) = flipped.signature.as_mut() {
        let last = sig.pop().unwrap_or('0');
        sig.push(if last == '0' { '1' } else { '0' });
    }
    cases.push(flipped);
    let body = fresh_body(now);
    cases.push(Case {
        signature: Some("sha1=abc".into()),
        ..signed("malformed signature header", body, Expect::Refuse(401))
    });
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

    let stamp = format_generated_at(now);
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
    for case in battery(target) {
        let mut request = client
            .post(&target.url)
            .header("content-type", "application/json")
            .header(headers::DELIVERY_ID, case.delivery_id.as_str())
            .header(headers::DELIVERY_ATTEMPT, case.attempt.to_string());
        if let Some(signature) = &case.signature {
            request = request.header(headers::SIGNATURE_256, signature.as_str());
        }
        let status = request
            .body(case.body)
            .send()
            .await
            .ok()
            .map(|r| r.status().as_u16());
        let mut verdict = judge(case.expect, status);
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
        });
    }
    Ok(results)
}

/// The results as a readable table.
pub fn table(results: &[CheckResult]) -> String {
    let mut out = format!(
        "{:<34} {:<10} {:<6} {}\n",
        "check", "expected", "got", "verdict"
    );
    for r in results {
        let expected = match r.expect {
            Expect::Accept => "2xx".to_owned(),
            Expect::Refuse(s) => s.to_string(),
        };
        let got = r.status.map_or("none".to_owned(), |s| s.to_string());
        out += &format!(
            "{:<34} {:<10} {:<6} {:?}\n",
            r.name, expected, got, r.verdict
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
}

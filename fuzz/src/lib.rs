//! The bodies of the fuzz targets, one function per target, each taking the raw input and
//! panicking when a property fails. The AFL++ mains (`src/bin/<target>.rs`, feature `afl`) call
//! them; `src/bin/replay.rs` runs them on saved inputs without AFL++.
//!
//! Every target asserts properties, not only the absence of a panic:
//!
//! - [`signature_header`]: `parse_header` accepts exactly `sha256=` and 64 hex digits (either
//!   case), and an accepted value gives back the bytes its digits spell; a refusal names the
//!   right fault; the header verifies a body only when it carries that body's tag.
//! - [`verify`]: an arbitrary body signed correctly gets the same answer from
//!   `Verifier::verify` and `Verifier::verify_indexed` (the same refusal, or the same events,
//!   keys and timestamp); an arbitrary header is refused as a signature fault unless it is the
//!   right signature; a rotation finds the matching secret.
//! - [`standard_webhooks`]: `parse_timestamp` and `parse_signatures` agree with a plain reading
//!   of the headers; `standard_webhooks::verify` accepts exactly when one `v1` entry is the
//!   body's signature over the id and timestamp as received, with any secret of a rotation; and
//!   `Verifier::verify_with_headers` and `verify_indexed_with_headers` give the same answer for
//!   arbitrary Standard Webhooks headers, the same as the `X-Evo-Signature-256` path once the
//!   signature is right and the timestamp inside the window, and the header's own refusal when
//!   it is not.
//! - [`ingest`]: what the sender's ingest parser accepts is a list of JSON objects with valid
//!   event ids; the same events as a JSON array and as NDJSON give the same result; and a batch
//!   of them, as the sender encodes it, is accepted by the receiver's `Verifier`.
//! - [`retry_after`]: `parse_retry_after` never panics; delay-seconds give exactly that delay,
//!   an HTTP-date never more than the time until it (before year 10000) and one second less a
//!   second later; the backoff built on it stays between its floor and `MAX_RETRY_AFTER`.
//! - [`config`]: the sender's TOML configuration, parsed and checked as `evo-siem sender` does,
//!   never panics, and no error message (nor the configuration's `Debug`) holds a secret: not
//!   the values of the variables or the file it names, not a literal header value.

use evo_siem_protocol::standard_webhooks::{
    self, MAX_SIGNATURES, StandardWebhooksError, parse_signatures, parse_timestamp,
};
use evo_siem_protocol::{
    DEFAULT_TOLERANCE, EventIds, Refusal, Secret, SignatureError, SignatureHeaders,
    SignatureScheme, TAG_LEN, Verifier, encode_batch_from_text, event_key, is_valid_event_id,
    parse_header, parse_rfc3339, tag, verify_signature,
};
use evo_siem_sender::api::parse_ingest_body;
use evo_siem_sender::retry::{Backoff, MAX_RETRY_AFTER, parse_retry_after};
use evo_siem_sender::service::Config;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A target's body: it takes one input and panics when a property fails.
pub type Body = fn(&[u8]);

/// Every target: its name (the binary's and the corpus directory's) and its body.
pub const TARGETS: &[(&str, Body)] = &[
    ("signature_header", signature_header),
    ("verify", verify),
    ("standard_webhooks", standard_webhooks),
    ("ingest", ingest),
    ("retry_after", retry_after),
    ("config", config),
];

/// The body of the target called `name`.
pub fn target(name: &str) -> Option<Body> {
    TARGETS.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
}

const SECRET: &str = "fuzz-signing-secret";

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// `parse_header` on arbitrary bytes, against a plain reading of the format.
pub fn signature_header(data: &[u8]) {
    let parsed = parse_header(data);
    let expected = match data.strip_prefix(b"sha256=") {
        None => Err(SignatureError::WrongPrefix),
        Some(hex) if hex.iter().any(|&c| hex_value(c).is_none()) => Err(SignatureError::BadHex),
        Some(hex) if hex.len() != 2 * TAG_LEN => Err(SignatureError::WrongLength),
        Some(hex) => {
            let mut bytes = [0u8; TAG_LEN];
            for (byte, pair) in bytes.iter_mut().zip(hex.chunks_exact(2)) {
                *byte = hex_value(pair[0]).unwrap() << 4 | hex_value(pair[1]).unwrap();
            }
            Ok(bytes)
        }
    };
    assert_eq!(
        parsed,
        expected,
        "header {:?}",
        String::from_utf8_lossy(data)
    );
    if let Err(e) = parsed {
        assert_eq!(e.reason_code(), "malformed_signature");
    }
    // Verification: the header verifies this body only when it carries this body's tag.
    let secret = Secret::new(SECRET);
    let body = b"{\"fuzz\":true}";
    let verified = verify_signature(Some(data), body, std::slice::from_ref(&secret));
    match parsed {
        Ok(claimed) if claimed == tag(&secret, body) => assert_eq!(verified, Ok(0)),
        Ok(_) => assert_eq!(verified, Err(SignatureError::Mismatch)),
        Err(e) => assert_eq!(verified, Err(e)),
    }
}

/// The clock a [`verify`] input asks for: the body's own `generated_at` (so that the checks
/// after the replay window are reached), just outside the window on either side, or a fixed time.
fn clock(flags: u8, body: &[u8]) -> SystemTime {
    let fixed = UNIX_EPOCH + Duration::from_secs(1_705_314_605);
    let own = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| parse_rfc3339(v.get("generated_at")?.as_str()?))
        .unwrap_or(fixed);
    let beyond = DEFAULT_TOLERANCE + Duration::from_secs(1);
    match (flags >> 2) & 3 {
        0 => own,
        1 => own + beyond,
        2 => own.checked_sub(beyond).unwrap_or(UNIX_EPOCH),
        _ => fixed,
    }
}

/// Input: a flags byte (bit 0: UUIDs only; bit 1: a 512-byte body limit; bits 2-3: the clock,
/// see `clock`; bit 4: no header at all), the length of a header, the header, then the body.
pub fn verify(data: &[u8]) {
    let [flags, header_len, rest @ ..] = data else {
        return;
    };
    let (header, body) = rest.split_at(usize::from(*header_len).min(rest.len()));
    let header = (flags & 0x10 == 0).then_some(header);
    let now = clock(*flags, body);
    let secret = Secret::new(SECRET);
    let mut verifier = Verifier::new([secret.clone()]);
    if flags & 1 != 0 {
        verifier = verifier.event_ids(EventIds::UuidOnly);
    }
    if flags & 2 != 0 {
        verifier = verifier.max_body_bytes(512);
    }

    // 1. Signed correctly: verify and verify_indexed agree.
    let signed = evo_siem_protocol::sign(&secret, body);
    let typed = verifier.verify(body, Some(signed.as_bytes()), now);
    let indexed = verifier.verify_indexed(body, Some(signed.as_bytes()), now);
    match (&typed, &indexed) {
        (Ok(v), Ok(i)) => {
            assert_eq!(v.uuids, i.uuids);
            assert_eq!(v.generated_at, i.generated_at);
            assert_eq!((v.secret_index, i.secret_index), (Some(0), Some(0)));
            assert_eq!(v.batch.events.len(), i.len());
            assert!(!i.is_empty());
            assert_eq!(v.batch.count, i.len() as u64);
            for (k, event) in v.batch.events.iter().enumerate() {
                assert_eq!(event.raw_json(), i.event_json(k), "event {k}'s text");
                let key = event_key(event.data.uuid.as_bytes(), verifier.event_id_policy());
                assert_eq!(key, Ok(v.uuids[k]), "event {k}'s key");
                let rebuilt = i
                    .event(k)
                    .expect("in range")
                    .expect("a verified event parses");
                assert_eq!(&rebuilt, event);
            }
            assert_eq!(i.parse().as_ref(), Ok(&v.batch));
            // Unsigned, the same body passes the same checks.
            let unsigned = Verifier::unsigned()
                .event_ids(verifier.event_id_policy())
                .max_body_bytes(verifier.body_limit())
                .verify(body, None, now)
                .expect("accepted when signed, accepted unsigned");
            assert_eq!(unsigned.uuids, v.uuids);
            // A rotation: the second secret matches.
            let rotated = Verifier::new([Secret::new("old-secret"), secret.clone()])
                .event_ids(verifier.event_id_policy())
                .max_body_bytes(verifier.body_limit())
                .verify(body, Some(signed.as_bytes()), now)
                .expect("accepted with one secret, accepted with it second");
            assert_eq!(rotated.secret_index, Some(1));
        }
        (Err(a), Err(b)) => {
            assert_eq!(a, b, "verify and verify_indexed refuse differently");
            assert!(
                !matches!(a, Refusal::Signature(_)),
                "a correct signature refused: {a}"
            );
        }
        _ => panic!("verify: {typed:?}\nverify_indexed: {indexed:?}"),
    }

    // 2. An arbitrary header: only the right signature gets past the signature check.
    let right = header.is_some_and(|h| parse_header(h) == Ok(tag(&secret, body)));
    let too_large = body.len() > verifier.body_limit();
    for (got, reference) in [
        (
            verifier.verify(body, header, now).map(|v| v.uuids),
            typed.map(|v| v.uuids),
        ),
        (
            verifier.verify_indexed(body, header, now).map(|i| i.uuids),
            indexed.map(|i| i.uuids),
        ),
    ] {
        if right {
            assert_eq!(got, reference, "the right signature, another answer");
        } else if too_large {
            assert!(matches!(got, Err(Refusal::BodyTooLarge { .. })), "{got:?}");
        } else {
            assert!(
                matches!(got, Err(Refusal::Signature(_))),
                "a header that is not this body's signature got {got:?}"
            );
        }
    }
}

/// Unix seconds of `at` (0 before the epoch).
fn unix(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Whether `text` is the standard, padded base64 of 32 bytes, read plainly: 43 digits of the
/// alphabet and `=`, the last digit carrying 4 bits and 2 zero bits (a non-zero trailing bit is
/// another encoding of the same bytes, which the decoder refuses).
fn is_base64_tag(text: &[u8]) -> bool {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let [digits @ .., last, b'='] = text else {
        return false;
    };
    digits.len() == 42
        && digits.iter().all(|d| ALPHABET.contains(d))
        && ALPHABET
            .iter()
            .position(|d| d == last)
            .is_some_and(|value| value & 0b11 == 0)
}

/// Input: a flags byte, the lengths of `webhook-id`, `webhook-timestamp` and
/// `webhook-signature`, those three values, then the body. Flags: bits 0-1 leave out the id,
/// the timestamp; bit 2 leaves out the signature; bit 3 adds the right `v1` entry (made over
/// the id as given, lossily UTF-8, and the clock's second) after the given ones, bit 4 puts the
/// timestamp just outside the window when it does; bits 5-6 choose the schemes (both, Standard
/// Webhooks only, Evo only); bit 7 adds a right `X-Evo-Signature-256` too.
pub fn standard_webhooks(data: &[u8]) {
    let [flags, id_len, ts_len, sig_len, rest @ ..] = data else {
        return;
    };
    let (id, rest) = rest.split_at(usize::from(*id_len).min(rest.len()));
    let (timestamp, rest) = rest.split_at(usize::from(*ts_len).min(rest.len()));
    let (signature, body) = rest.split_at(usize::from(*sig_len).min(rest.len()));
    let secret = Secret::new(SECRET);
    let now = clock(0, body);

    // 1. The header parsers against a plain reading.
    let digits =
        !timestamp.is_empty() && timestamp.len() <= 19 && timestamp.iter().all(u8::is_ascii_digit);
    let expected = digits
        .then(|| std::str::from_utf8(timestamp).ok()?.parse::<u64>().ok())
        .flatten()
        .ok_or(StandardWebhooksError::InvalidTimestamp);
    assert_eq!(parse_timestamp(timestamp), expected, "{timestamp:?}");
    let entries: Vec<&[u8]> = signature
        .split(|&b| b == b' ')
        .filter(|e| !e.is_empty())
        .collect();
    let v1: Vec<&[u8]> = entries
        .iter()
        .filter_map(|e| e.strip_prefix(b"v1,"))
        .collect();
    match parse_signatures(signature) {
        Ok(tags) => {
            assert_eq!(tags.len(), v1.len());
            assert!((1..=MAX_SIGNATURES).contains(&tags.len()));
            assert!(entries.iter().all(|e| e.contains(&b',')));
            assert!(v1.iter().all(|s| is_base64_tag(s)), "{v1:?}");
        }
        Err(StandardWebhooksError::NoSupportedSignature) => {
            assert!(v1.is_empty());
            assert!(entries.iter().all(|e| e.contains(&b',')));
        }
        Err(StandardWebhooksError::MalformedSignature) => assert!(
            entries.iter().any(|e| !e.contains(&b','))
                || v1.len() > MAX_SIGNATURES
                || v1.iter().any(|s| !is_base64_tag(s)),
            "refused as malformed: {signature:?}"
        ),
        Err(other) => panic!("parse_signatures: {other:?}"),
    }

    // 2. The headers as sent: maybe with the right entry added.
    let id_text = String::from_utf8_lossy(id).into_owned();
    let signed_at = if flags & 0x10 == 0 {
        unix(now)
    } else {
        unix(now) + DEFAULT_TOLERANCE.as_secs() + 1
    };
    let (timestamp, signature) = if flags & 0x08 != 0 {
        let right = standard_webhooks::sign(&secret, &id_text, signed_at, body);
        let mut value = signature.to_vec();
        if !value.is_empty() {
            value.push(b' ');
        }
        value.extend_from_slice(right.as_bytes());
        (signed_at.to_string().into_bytes(), value)
    } else {
        (timestamp.to_vec(), signature.to_vec())
    };
    let id = if flags & 0x08 != 0 {
        id_text.as_bytes()
    } else {
        id
    };
    let mut headers = SignatureHeaders::default();
    headers.webhook_id = (flags & 0x01 == 0).then_some(id);
    headers.webhook_timestamp = (flags & 0x02 == 0).then_some(&timestamp[..]);
    headers.webhook_signature = (flags & 0x04 == 0).then_some(&signature[..]);
    let checked = standard_webhooks::verify(
        headers.webhook_id,
        headers.webhook_timestamp,
        headers.webhook_signature,
        body,
        std::slice::from_ref(&secret),
    );
    // Accepted exactly when one v1 entry is the body's signature over the id and timestamp as
    // received, and every entry is well-formed.
    if let (Some(i), Some(t), Some(s)) = (
        headers.webhook_id,
        headers.webhook_timestamp,
        headers.webhook_signature,
    ) {
        let own = std::str::from_utf8(i).ok().and_then(|i| {
            let ts = std::str::from_utf8(t).ok()?.parse::<u64>().ok()?;
            (ts.to_string().as_bytes() == t).then(|| standard_webhooks::sign(&secret, i, ts, body))
        });
        match (&checked, parse_timestamp(t), parse_signatures(s)) {
            (Ok(c), Ok(ts), Ok(_)) => {
                assert_eq!(c.timestamp, ts);
                if let Some(own) = &own {
                    let entry = own.strip_prefix("v1,").expect("v1");
                    assert!(
                        s.split(|&b| b == b' ')
                            .any(|e| e.strip_prefix(b"v1,") == Some(entry.as_bytes())),
                        "accepted without its own signature among the entries"
                    );
                }
            }
            (Err(e), Err(te), _) => assert_eq!(*e, te),
            (Err(e), Ok(_), Err(se)) => assert_eq!(*e, se),
            (Err(e), Ok(_), Ok(_)) => {
                assert_eq!(*e, StandardWebhooksError::Mismatch);
                if let Some(own) = &own {
                    let entry = own.strip_prefix("v1,").expect("v1");
                    assert!(
                        !s.split(|&b| b == b' ')
                            .any(|e| e.strip_prefix(b"v1,") == Some(entry.as_bytes())),
                        "its own signature among the entries, refused"
                    );
                }
            }
            (Ok(_), _, _) => panic!("accepted with an unreadable header: {checked:?}"),
        }
        // A rotation finds the same signature with the secret second.
        let rotated = standard_webhooks::verify(
            Some(i),
            Some(t),
            Some(s),
            body,
            &[Secret::new("old-secret"), secret.clone()],
        );
        match (&checked, &rotated) {
            (Ok(c), Ok(r)) => assert_eq!((c.secret_index, r.secret_index), (0, 1)),
            (Err(a), Err(b)) => assert_eq!(a, b),
            _ => panic!("one secret: {checked:?}; rotation: {rotated:?}"),
        }
        if flags & 0x08 != 0 && parse_signatures(s).is_ok() {
            assert!(checked.is_ok(), "the right entry refused: {checked:?}");
        }
    } else {
        assert!(checked.is_err());
    }

    // 3. The verifier: both paths agree, and the body's answer does not depend on the scheme.
    let schemes: &[SignatureScheme] = match (flags >> 5) & 3 {
        1 => &[SignatureScheme::StandardWebhooks],
        2 => &[SignatureScheme::Evo],
        _ => &SignatureScheme::ALL,
    };
    let evo = evo_siem_protocol::sign(&secret, body);
    headers.evo_signature = (flags & 0x80 != 0).then_some(evo.as_bytes());
    let verifier = Verifier::new([secret.clone()]).schemes(schemes.iter().copied());
    let typed = verifier.verify_with_headers(body, &headers, now);
    let indexed = verifier.verify_indexed_with_headers(body, &headers, now);
    match (&typed, &indexed) {
        (Ok(v), Ok(i)) => {
            assert_eq!(v.uuids, i.uuids);
            assert_eq!(v.generated_at, i.generated_at);
            assert_eq!((v.secret_index, i.secret_index), (Some(0), Some(0)));
        }
        (Err(a), Err(b)) => assert_eq!(a, b, "verify and verify_indexed refuse differently"),
        _ => panic!("verify: {typed:?}\nverify_indexed: {indexed:?}"),
    }
    let reference = Verifier::new([secret.clone()])
        .verify(body, Some(evo.as_bytes()), now)
        .map(|v| v.uuids);
    let got = typed.map(|v| v.uuids);
    let standard =
        verifier.accepts(SignatureScheme::StandardWebhooks) && headers.webhook_signature.is_some();
    let evo_used = verifier.accepts(SignatureScheme::Evo) && headers.evo_signature.is_some();
    if body.len() > verifier.body_limit() {
        assert!(matches!(got, Err(Refusal::BodyTooLarge { .. })), "{got:?}");
    } else if standard {
        match checked {
            Err(e) if !evo_used => assert_eq!(got, Err(Refusal::StandardWebhooks(e))),
            Err(_) => assert!(got.is_err(), "a wrong webhook-signature accepted"),
            Ok(c) => {
                // Past what a `SystemTime` can hold, the timestamp is refused as unreadable.
                let Some(at) = UNIX_EPOCH.checked_add(Duration::from_secs(c.timestamp)) else {
                    assert_eq!(
                        got,
                        Err(Refusal::StandardWebhooks(
                            StandardWebhooksError::InvalidTimestamp
                        ))
                    );
                    return;
                };
                let inside = at.max(now).duration_since(at.min(now)).unwrap_or_default()
                    <= DEFAULT_TOLERANCE;
                if inside {
                    assert_eq!(got, reference, "the scheme changed the body's answer");
                } else {
                    assert!(
                        matches!(
                            got,
                            Err(Refusal::TimestampTooOld { .. } | Refusal::TimestampTooNew { .. })
                        ),
                        "a webhook-timestamp outside the window: {got:?}"
                    );
                }
            }
        }
    } else if evo_used {
        assert_eq!(
            got, reference,
            "the right X-Evo-Signature-256, another answer"
        );
    } else {
        assert!(
            matches!(
                got,
                Err(Refusal::Signature(SignatureError::Missing)
                    | Refusal::StandardWebhooks(StandardWebhooksError::MissingSignature))
            ),
            "no signature the verifier accepts, yet {got:?}"
        );
    }
}

/// The sender's ingest parser on an arbitrary body.
pub fn ingest(data: &[u8]) {
    let Ok(events) = parse_ingest_body(data) else {
        return;
    };
    for (k, (raw, event)) in events.iter().enumerate() {
        // A JSON object, as `encode_batch_from_text` requires of what the sender stores. By the
        // grammar (RFC 8259): unknown fields are kept as text, so a number beyond an `f64`
        // (`1e400`) is valid JSON here although `serde_json::Value` cannot hold it.
        let valid = serde_json::from_str::<serde::de::IgnoredAny>(raw);
        assert!(valid.is_ok(), "event {k} is not JSON: {raw:?}");
        assert!(
            raw.starts_with('{'),
            "event {k} is not a JSON object: {raw:?}"
        );
        assert!(is_valid_event_id(event.data.uuid.as_bytes()), "event {k}");
        let again = evo_siem_protocol::Event::from_json(raw).expect("parses again");
        assert_eq!(&again, event);
    }
    if events.is_empty() {
        return;
    }
    // Inside valid JSON a line break can only be whitespace: as spaces, every event fits a line.
    let texts: Vec<String> = events
        .iter()
        .map(|(raw, _)| raw.replace(['\n', '\r'], " "))
        .collect();
    let array = format!("[{}]", texts.join(","));
    let ndjson = texts.join("\n");
    let from_array = parse_ingest_body(array.as_bytes()).expect("the events as a JSON array");
    let from_ndjson = parse_ingest_body(ndjson.as_bytes()).expect("the events as NDJSON");
    assert_eq!(from_array.len(), events.len());
    assert_eq!(from_array, from_ndjson, "JSON array and NDJSON disagree");
    for ((text, event), (expected, original)) in from_array.iter().zip(texts.iter().zip(&events)) {
        assert_eq!(text, expected, "an event's text changed");
        // Unknown fields keep their text, line breaks included: compare where there were none.
        if text == &original.0 {
            assert_eq!(event, &original.1, "an event changed");
        }
    }
    // What the sender accepts, a receiver accepts: the batch it would send verifies.
    let raws: Vec<&str> = events.iter().map(|(raw, _)| *raw).collect();
    let at = UNIX_EPOCH + Duration::from_secs(1_705_314_605);
    let body = encode_batch_from_text(&raws, at);
    let verified = Verifier::unsigned()
        .verify(&body, None, at)
        .unwrap_or_else(|e| panic!("the sender's batch is refused: {e}"));
    assert_eq!(verified.batch.events.len(), events.len());
    for (event, raw) in verified.batch.events.iter().zip(&raws) {
        assert_eq!(
            event.raw_json(),
            Some(*raw),
            "an event's text changed in the batch"
        );
    }
    let indexed = Verifier::unsigned()
        .verify_indexed(&body, None, at)
        .unwrap_or_else(|e| panic!("the sender's batch is refused by verify_indexed: {e}"));
    assert_eq!(indexed.uuids, verified.uuids);
}

/// 9999-12-31T23:59:59Z, the last second an HTTP-date can name.
const LAST_HTTP_DATE: u64 = 253_402_300_799;

/// `parse_retry_after` on an arbitrary value, at several clocks.
pub fn retry_after(data: &[u8]) {
    let Ok(value) = std::str::from_utf8(data) else {
        return;
    };
    let seconds = value.trim().parse::<u64>().ok();
    let mut rng = fastrand_seed(data);
    for now_secs in [0, 1_445_412_480, 1_705_314_605, LAST_HTTP_DATE] {
        let now = UNIX_EPOCH + Duration::from_secs(now_secs);
        let got = parse_retry_after(value, now);
        match (seconds, got) {
            (Some(s), got) => assert_eq!(got, Some(Duration::from_secs(s))),
            (None, None) => {}
            (None, Some(delay)) => {
                // An HTTP-date: never beyond the last date there is, relative to now.
                assert!(
                    delay <= Duration::from_secs(LAST_HTTP_DATE - now_secs),
                    "{delay:?}"
                );
                // A second later, a second less (or still now).
                let later = parse_retry_after(value, now + Duration::from_secs(1));
                assert_eq!(later, Some(delay.saturating_sub(Duration::from_secs(1))));
            }
        }
        // What the backoff makes of it: between the floor and MAX_RETRY_AFTER (or the
        // backoff's own lower bound, when that is longer).
        let backoff = Backoff::default();
        for retry in [1, 2, 10, 40] {
            let wait = backoff.delay(retry, got, &mut rng);
            assert!(wait >= backoff.floor());
            assert!(
                wait <= MAX_RETRY_AFTER.max(backoff.lower_bound(retry)),
                "{wait:?}"
            );
            if let Some(asked) = got {
                assert!(wait >= asked.min(MAX_RETRY_AFTER));
            }
        }
    }
}

fn fastrand_seed(data: &[u8]) -> fastrand::Rng {
    let seed = data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    fastrand::Rng::with_seed(seed)
}

/// The file a [`config`] input may name for a secret (`*_file`, `{ file = ... }`); any other
/// path is not read.
pub const PLANTED_FILE: &str = "/tmp/evo-siem-fuzz-planted-secret";
/// What [`PLANTED_FILE`] holds.
const PLANTED_FILE_VALUE: &str = "PLANTED-file-secret-0c1d";
/// The variables a [`config`] input may name, each set to a planted secret.
pub const PLANTED_VARS: &[&str] = &[
    "EVO_SIEM_INGEST_TOKEN",
    "EVO_SIEM_SECRET",
    "EVO_SIEM_SECRETS_KEY",
    "EVO_SIEM_SPOOL_URL",
    "ACME_SIEM_SECRET",
    "ACME_SIEM_AUTH",
];

fn planted_value(var: &str) -> String {
    format!("PLANTED-{var}-secret-7e1f")
}

fn plant() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        for var in PLANTED_VARS {
            // SAFETY: the fuzz target is single-threaded, and this runs before anything reads
            // the environment.
            unsafe { std::env::set_var(var, planted_value(var)) };
        }
        std::fs::write(PLANTED_FILE, PLANTED_FILE_VALUE).expect("cannot write the planted file");
    });
}

/// Every error message of the checks `evo-siem sender` makes on start-up, with its causes, and
/// the configuration's `Debug`. `read_files`: whether the checks that read files may run.
fn config_messages(text: &str, read_files: bool) -> Vec<String> {
    fn chain(e: &dyn std::error::Error) -> String {
        let mut message = e.to_string();
        let mut source = e.source();
        while let Some(s) = source {
            message.push_str(": ");
            message.push_str(&s.to_string());
            source = s.source();
        }
        message
    }
    let config = match Config::parse(text) {
        Ok(config) => config,
        Err(e) => return vec![chain(&e)],
    };
    let mut messages = vec![format!("{config:?}")];
    let mut record = |r: Result<(), evo_siem_sender::service::ConfigError>| {
        if let Err(e) = r {
            messages.push(chain(&e));
        }
    };
    record(config.delivery.backoff().map(drop));
    record(
        config
            .delivery
            .dispatch(config.allow_private_targets.clone())
            .map(drop),
    );
    record(config.listener.check());
    let _ = config.backlog_limits();
    if read_files {
        record(config.ingest_token().map(drop));
        record(config.secrets.key().map(drop));
        record(config.spool.postgres().map(drop));
        record(config.settings().map(drop));
        record(config.integrations().map(drop));
    }
    messages
}

/// Whether every path the file names for a secret is [`PLANTED_FILE`] (no other file is read).
fn only_planted_files(value: &toml::Value, key: &str) -> bool {
    let is_file_key = key == "file" || key.ends_with("_file");
    match value {
        toml::Value::String(s) => !is_file_key || s == PLANTED_FILE,
        toml::Value::Array(items) => items.iter().all(|v| only_planted_files(v, key)),
        toml::Value::Table(table) => table.iter().all(|(k, v)| only_planted_files(v, k)),
        _ => !is_file_key,
    }
}

/// The literal header values of the file (`headers = { Authorization = "..." }`) that are long
/// enough to be told apart and spelled exactly once in the text.
fn literal_header_values(table: &toml::Table, text: &str) -> Vec<String> {
    let Some(toml::Value::Array(integrations)) = table.get("integration") else {
        return Vec::new();
    };
    integrations
        .iter()
        .filter_map(|i| i.get("headers")?.as_table())
        .flat_map(|headers| headers.values())
        .filter_map(|v| v.as_str())
        .filter(|v| v.len() >= 8 && text.matches(*v).count() == 1)
        .map(str::to_owned)
        .collect()
}

/// `value` with each ASCII letter and digit moved to the next one: the same shape, other text.
fn rotate(value: &str) -> String {
    value
        .chars()
        .map(|c| match c {
            'z' => 'a',
            'Z' => 'A',
            '9' => '0',
            c if c.is_ascii_alphanumeric() => (c as u8 + 1) as char,
            c => c,
        })
        .collect()
}

/// The sender's configuration file, parsed and checked.
pub fn config(data: &[u8]) {
    plant();
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let table = toml::from_str::<toml::Table>(text).ok();
    let read_files = table
        .as_ref()
        .is_some_and(|t| t.iter().all(|(k, v)| only_planted_files(v, k)));
    let messages = config_messages(text, read_files);
    // The planted values are never in the text: finding one in a message is a leak.
    let planted: Vec<String> = PLANTED_VARS
        .iter()
        .map(|v| planted_value(v))
        .chain([PLANTED_FILE_VALUE.to_owned()])
        .collect();
    for message in &messages {
        for secret in &planted {
            assert!(
                text.contains(secret.as_str()) || !message.contains(secret.as_str()),
                "a secret in a message: {message}"
            );
        }
    }
    // A literal header value found in a message is a leak when it follows the value: the same
    // file with the value spelled otherwise gives the new spelling in the same place.
    for value in table
        .as_ref()
        .map(|t| literal_header_values(t, text))
        .unwrap_or_default()
    {
        if !messages.iter().any(|m| m.contains(&value)) {
            continue;
        }
        let other = rotate(&value);
        if other == value {
            continue;
        }
        let changed = config_messages(&text.replace(&value, &other), read_files);
        for message in &changed {
            assert!(
                !message.contains(&other),
                "a header value in a message: {message}"
            );
        }
    }
}

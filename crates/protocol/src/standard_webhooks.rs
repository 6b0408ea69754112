//! [Standard Webhooks](https://www.standardwebhooks.com/) signatures, the opt-in second scheme:
//! `webhook-id`, `webhook-timestamp` and `webhook-signature`, and the `whsec_` form of a secret.
//!
//! `webhook-signature` is a space-separated list of `version,signature` entries; the `v1` ones
//! are `v1,` and the standard base64 (padded) of the HMAC-SHA256 of
//! `{webhook-id}.{webhook-timestamp}.{body}`, keyed with the secret's bytes. Entries of other
//! versions are ignored; any `v1` entry made by any configured secret is enough (rotation).
//!
//! The key is the same bytes as for `X-Evo-Signature-256`. Standard Webhooks libraries take it
//! as `whsec_` followed by the base64 of those bytes ([`Secret::to_whsec`],
//! [`Secret::from_whsec`]).
//!
//! ```
//! use evo_siem_protocol::Secret;
//! use evo_siem_protocol::standard_webhooks::{sign, verify};
//!
//! let secret = Secret::from_whsec("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")?;
//! let header = sign(&secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, br#"{"test": 2432232314}"#);
//! assert_eq!(header, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
//!
//! let checked = verify(
//!     Some(b"msg_p5jXN8AQM9LWM0D4loKWxJek"),
//!     Some(b"1614265330"),
//!     Some(header.as_bytes()),
//!     br#"{"test": 2432232314}"#,
//!     &[secret],
//! )?;
//! assert_eq!((checked.secret_index, checked.timestamp), (0, 1614265330));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::Secret;
use crate::signature::{TAG_LEN, tags_equal};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::Mac;

/// The version tag of the signatures this crate makes and checks.
pub const SIGNATURE_VERSION: &str = "v1";

/// The prefix of a secret in the form Standard Webhooks libraries take.
pub const SECRET_PREFIX: &str = "whsec_";

/// Most `v1` entries read from one `webhook-signature` header (a rotation needs two; more is
/// an attempt to make the receiver compute comparisons for nothing).
pub const MAX_SIGNATURES: usize = 8;

/// Why a Standard Webhooks signature was refused. Each variant has a stable
/// [`reason_code`](Self::reason_code); the messages never quote a header value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StandardWebhooksError {
    /// No `webhook-signature` header, although a secret is configured.
    #[error("the webhook-signature header is missing")]
    MissingSignature,
    /// A `webhook-signature` header without a `webhook-id`.
    #[error("the webhook-id header is missing")]
    MissingId,
    /// A `webhook-signature` header without a `webhook-timestamp`.
    #[error("the webhook-timestamp header is missing")]
    MissingTimestamp,
    /// `webhook-timestamp` is not Unix seconds (ASCII digits).
    #[error("the webhook-timestamp header is not a number of Unix seconds")]
    InvalidTimestamp,
    /// An entry without a comma, a `v1` entry that is not the base64 of 32 bytes, or more than
    /// [`MAX_SIGNATURES`] `v1` entries.
    #[error("the webhook-signature header is malformed")]
    MalformedSignature,
    /// The header holds no `v1` entry (only other versions).
    #[error("the webhook-signature header holds no v1 signature")]
    NoSupportedSignature,
    /// Well-formed `v1` signatures, none of which a configured secret produces.
    #[error("the webhook-signature does not match the id, timestamp and body")]
    Mismatch,
    /// Verification was asked for with an empty list of secrets: a configuration error.
    #[error("no signing secret is configured")]
    NoSecrets,
}

impl StandardWebhooksError {
    /// The stable, machine-readable reason code. Missing, malformed and mismatching signatures
    /// share the codes of `X-Evo-Signature-256`'s refusals; the id and the timestamp have their
    /// own.
    pub fn reason_code(self) -> &'static str {
        match self {
            Self::MissingSignature => "missing_signature",
            Self::MissingId => "missing_webhook_id",
            Self::MissingTimestamp => "missing_webhook_timestamp",
            Self::InvalidTimestamp => "invalid_webhook_timestamp",
            Self::MalformedSignature => "malformed_signature",
            Self::NoSupportedSignature => "unsupported_signature_version",
            Self::Mismatch => "signature_mismatch",
            Self::NoSecrets => "no_secret_configured",
        }
    }
}

/// Why a `whsec_` secret could not be read. Never quotes the secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WhsecError {
    /// The text does not start with `whsec_`.
    #[error("a Standard Webhooks secret starts with \"whsec_\"")]
    MissingPrefix,
    /// What follows `whsec_` is not standard, padded base64 of at least one byte.
    #[error("what follows \"whsec_\" is not standard base64")]
    InvalidBase64,
}

/// A `webhook-signature` that verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Checked {
    /// Which configured secret matched.
    pub secret_index: usize,
    /// `webhook-timestamp`, in Unix seconds (check it against the replay window).
    pub timestamp: u64,
}

impl Secret {
    /// The secret in the form Standard Webhooks libraries take: `whsec_` and the standard,
    /// padded base64 of the key bytes. It *is* the secret: show it only to whoever set it, and
    /// never log it.
    ///
    /// ```
    /// use evo_siem_protocol::Secret;
    /// let secret = Secret::new("a-secret-of-sixteen-bytes");
    /// assert_eq!(secret.to_whsec(), "whsec_YS1zZWNyZXQtb2Ytc2l4dGVlbi1ieXRlcw==");
    /// assert_eq!(Secret::from_whsec(&secret.to_whsec()), Ok(secret));
    /// ```
    pub fn to_whsec(&self) -> String {
        let mut out = String::from(SECRET_PREFIX);
        STANDARD.encode_string(self.expose(), &mut out);
        out
    }

    /// Reads a secret given in the `whsec_` form: the key is the base64-decoded bytes, the same
    /// key a Standard Webhooks library derives from that text.
    pub fn from_whsec(text: &str) -> Result<Self, WhsecError> {
        let encoded = text
            .strip_prefix(SECRET_PREFIX)
            .ok_or(WhsecError::MissingPrefix)?;
        let bytes = zeroize::Zeroizing::new(
            STANDARD
                .decode(encoded)
                .map_err(|_| WhsecError::InvalidBase64)?,
        );
        if bytes.is_empty() {
            return Err(WhsecError::InvalidBase64);
        }
        Ok(Secret::from_bytes(bytes.as_slice()))
    }
}

/// The raw HMAC-SHA256 tag of `{id}.{timestamp}.{body}` under `secret`, without copying the
/// body.
fn tag(secret: &Secret, id: &[u8], timestamp: &[u8], body: &[u8]) -> [u8; TAG_LEN] {
    let mut mac = secret.mac();
    mac.update(id);
    mac.update(b".");
    mac.update(timestamp);
    mac.update(b".");
    mac.update(body);
    mac.finalize().into_bytes().into()
}

/// Signs one request: the `webhook-signature` value, `v1,` and the base64 of the HMAC-SHA256 of
/// `{id}.{timestamp}.{body}`.
pub fn sign(secret: &Secret, id: &str, timestamp: u64, body: &[u8]) -> String {
    let tag = tag(
        secret,
        id.as_bytes(),
        timestamp.to_string().as_bytes(),
        body,
    );
    let mut out = String::from("v1,");
    STANDARD.encode_string(tag, &mut out);
    out
}

/// Parses a `webhook-signature` value into the tags of its `v1` entries, in order.
///
/// Entries are separated by spaces (several spaces count as one); each is `version,signature`.
/// Entries of another version are skipped; a `v1` entry must hold the base64 of 32 bytes.
pub fn parse_signatures(value: &[u8]) -> Result<Vec<[u8; TAG_LEN]>, StandardWebhooksError> {
    let mut tags = Vec::new();
    for entry in value.split(|&b| b == b' ').filter(|e| !e.is_empty()) {
        let comma = entry
            .iter()
            .position(|&b| b == b',')
            .ok_or(StandardWebhooksError::MalformedSignature)?;
        let (version, signature) = (&entry[..comma], &entry[comma + 1..]);
        if version != SIGNATURE_VERSION.as_bytes() {
            continue;
        }
        if tags.len() == MAX_SIGNATURES {
            return Err(StandardWebhooksError::MalformedSignature);
        }
        let mut tag = [0u8; TAG_LEN];
        match STANDARD.decode_slice(signature, &mut tag) {
            Ok(TAG_LEN) if signature.len() == 44 => tags.push(tag),
            _ => return Err(StandardWebhooksError::MalformedSignature),
        }
    }
    if tags.is_empty() {
        return Err(StandardWebhooksError::NoSupportedSignature);
    }
    Ok(tags)
}

/// Parses `webhook-timestamp`: ASCII digits, Unix seconds.
pub fn parse_timestamp(value: &[u8]) -> Result<u64, StandardWebhooksError> {
    if value.is_empty() || value.len() > 19 || !value.iter().all(u8::is_ascii_digit) {
        return Err(StandardWebhooksError::InvalidTimestamp);
    }
    std::str::from_utf8(value)
        .ok()
        .and_then(|digits| digits.parse().ok())
        .ok_or(StandardWebhooksError::InvalidTimestamp)
}

/// Verifies one request's Standard Webhooks headers (`None`: absent) against `body`, with
/// every configured secret; any `v1` entry made by any one of `secrets` is enough. Tags are
/// compared in constant time. The signature covers the headers as received.
///
/// The timestamp is returned, not checked: the caller applies its replay window
/// ([`Verifier`](crate::Verifier) does, with the same tolerance as for `generated_at`).
pub fn verify(
    id: Option<&[u8]>,
    timestamp: Option<&[u8]>,
    signature: Option<&[u8]>,
    body: &[u8],
    secrets: &[Secret],
) -> Result<Checked, StandardWebhooksError> {
    if secrets.is_empty() {
        return Err(StandardWebhooksError::NoSecrets);
    }
    let signature = signature.ok_or(StandardWebhooksError::MissingSignature)?;
    let id = id.ok_or(StandardWebhooksError::MissingId)?;
    let timestamp_text = timestamp.ok_or(StandardWebhooksError::MissingTimestamp)?;
    let timestamp = parse_timestamp(timestamp_text)?;
    let claimed = parse_signatures(signature)?;
    for (secret_index, secret) in secrets.iter().enumerate() {
        let expected = tag(secret, id, timestamp_text, body);
        // Every claimed tag is compared, so the time taken does not tell which one matched.
        let matched = claimed
            .iter()
            .fold(false, |any, tag| any | tags_equal(&expected, tag));
        if matched {
            return Ok(Checked {
                secret_index,
                timestamp,
            });
        }
    }
    Err(StandardWebhooksError::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ID: &[u8] = b"msg_p5jXN8AQM9LWM0D4loKWxJek";

    fn secret() -> Secret {
        Secret::from_whsec("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap()
    }

    #[test]
    fn the_specifications_example() {
        // standard-webhooks' own test vector (libraries/rust and the other languages' tests).
        let header = sign(
            &secret(),
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(header, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn malformed_headers_say_why() {
        let body = b"{}";
        let good = sign(&secret(), "msg_p5jXN8AQM9LWM0D4loKWxJek", 1, body);
        let check = |id: Option<&[u8]>, ts: Option<&[u8]>, sig: Option<&str>| {
            verify(id, ts, sig.map(str::as_bytes), body, &[secret()])
        };
        use StandardWebhooksError as E;
        assert_eq!(check(Some(ID), Some(b"1"), None), Err(E::MissingSignature));
        assert_eq!(check(None, Some(b"1"), Some(&good)), Err(E::MissingId));
        assert_eq!(check(Some(ID), None, Some(&good)), Err(E::MissingTimestamp));
        for ts in [
            &b""[..],
            b"-1",
            b"+1",
            b"1.5",
            b" 1",
            b"99999999999999999999",
        ] {
            assert_eq!(
                check(Some(ID), Some(ts), Some(&good)),
                Err(E::InvalidTimestamp)
            );
        }
        for sig in [
            "v1",
            "v1,",
            "v1,abc",
            "v1,!!!!",
            "garbage",
            &good[..good.len() - 1],
        ] {
            assert_eq!(
                check(Some(ID), Some(b"1"), Some(sig)),
                Err(E::MalformedSignature),
                "{sig}"
            );
        }
        assert_eq!(
            check(Some(ID), Some(b"1"), Some("")),
            Err(E::NoSupportedSignature)
        );
        let v2 = good.replacen("v1,", "v2,", 1);
        assert_eq!(
            check(Some(ID), Some(b"1"), Some(&v2)),
            Err(E::NoSupportedSignature)
        );
        // Other versions are skipped, extra spaces too.
        let mixed = format!("v1a,xyz  {good} v2,abc");
        assert_eq!(
            check(Some(ID), Some(b"1"), Some(&mixed)).map(|c| c.timestamp),
            Ok(1)
        );
        assert_eq!(check(Some(ID), Some(b"2"), Some(&good)), Err(E::Mismatch));
        assert_eq!(
            verify(Some(ID), Some(b"1"), Some(good.as_bytes()), body, &[]),
            Err(E::NoSecrets)
        );
        let many = [good.as_str(); MAX_SIGNATURES + 1].join(" ");
        assert_eq!(
            check(Some(ID), Some(b"1"), Some(&many)),
            Err(E::MalformedSignature)
        );
    }

    #[test]
    fn rotation_any_entry_any_secret() {
        let (old, new, other) = (
            Secret::new("old-secret"),
            Secret::new("new-secret"),
            Secret::new("x"),
        );
        let body = b"{\"a\":1}";
        let both = format!(
            "{} {}",
            sign(&other, "id", 5, body),
            sign(&new, "id", 5, body)
        );
        let checked = verify(
            Some(b"id"),
            Some(b"5"),
            Some(both.as_bytes()),
            body,
            &[old.clone(), new],
        );
        assert_eq!(checked.map(|c| c.secret_index), Ok(1));
        assert_eq!(
            verify(Some(b"id"), Some(b"5"), Some(both.as_bytes()), body, &[old]),
            Err(StandardWebhooksError::Mismatch)
        );
    }

    /// Found by mutation testing: the bounds of a timestamp, and a signature sent twice.
    #[test]
    fn timestamp_bounds_and_a_repeated_entry() {
        assert_eq!(
            parse_timestamp(b"1000000000000000000"),
            Ok(1_000_000_000_000_000_000)
        ); // 19 digits
        for bad in [
            &b""[..],
            b"10000000000000000000",
            b"-1",
            b"+1",
            b"1 ",
            b"1.0",
        ] {
            assert_eq!(
                parse_timestamp(bad),
                Err(StandardWebhooksError::InvalidTimestamp),
                "{bad:?}"
            );
        }
        // A sender may list the same signature twice: one match is enough, however many.
        let signature = sign(&secret(), "msg_1", 1_614_265_330, b"{}");
        let twice = format!("{signature} {signature}");
        let checked = verify(
            Some(b"msg_1"),
            Some(b"1614265330"),
            Some(twice.as_bytes()),
            b"{}",
            &[secret()],
        );
        assert_eq!(checked.map(|c| c.secret_index), Ok(0));
    }

    #[test]
    fn whsec_form() {
        assert_eq!(Secret::from_whsec("MfKQ"), Err(WhsecError::MissingPrefix));
        assert_eq!(Secret::from_whsec("whsec_"), Err(WhsecError::InvalidBase64));
        assert_eq!(
            Secret::from_whsec("whsec_@@@@"),
            Err(WhsecError::InvalidBase64)
        );
        assert_eq!(
            Secret::from_whsec("whsec_YQ"),
            Err(WhsecError::InvalidBase64)
        ); // unpadded
        assert_eq!(Secret::from_whsec("whsec_YQ=="), Ok(Secret::new("a")));
        assert_eq!(Secret::new("a").to_whsec(), "whsec_YQ==");
    }

    proptest! {
        #[test]
        fn sign_then_verify_round_trips(
            key in proptest::collection::vec(any::<u8>(), 1..64),
            id in "[a-zA-Z0-9_-]{1,40}",
            ts in 0u64..=4_000_000_000,
            body in proptest::collection::vec(any::<u8>(), 0..256),
        ) {
            let secret = Secret::from_bytes(key);
            prop_assert_eq!(Secret::from_whsec(&secret.to_whsec()), Ok(secret.clone()));
            let header = sign(&secret, &id, ts, &body);
            let checked = verify(Some(id.as_bytes()), Some(ts.to_string().as_bytes()), Some(header.as_bytes()), &body, &[secret]);
            prop_assert_eq!(checked, Ok(Checked { secret_index: 0, timestamp: ts }));
        }

        #[test]
        fn any_flipped_body_bit_fails(body in proptest::collection::vec(any::<u8>(), 1..256), bit in any::<prop::sample::Index>()) {
            let secret = Secret::new("s3cr3t");
            let header = sign(&secret, "id", 7, &body);
            let mut tampered = body;
            let bit = bit.index(tampered.len() * 8);
            tampered[bit / 8] ^= 1 << (bit % 8);
            prop_assert_eq!(
                verify(Some(b"id"), Some(b"7"), Some(header.as_bytes()), &tampered, &[secret]),
                Err(StandardWebhooksError::Mismatch)
            );
        }
    }
}

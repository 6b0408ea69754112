//! `X-Evo-Signature-256`: signing, and constant-time verification against one or several secrets.

use crate::Secret;
use crate::headers::SIGNATURE_PREFIX;
use hmac::Mac;
use subtle::ConstantTimeEq;

/// Length of an HMAC-SHA256 tag in bytes.
pub const TAG_LEN: usize = 32;

/// Why a signature header was refused. Each variant has a stable [`reason_code`](Self::reason_code).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// No `X-Evo-Signature-256` header, although a secret is configured.
    #[error("the X-Evo-Signature-256 header is missing")]
    Missing,
    /// The header does not start with `sha256=`.
    #[error("the signature header does not start with \"sha256=\"")]
    WrongPrefix,
    /// The part after `sha256=` holds a character that is not a hex digit.
    #[error("the signature is not hexadecimal")]
    BadHex,
    /// The hex digest is not 64 digits (32 bytes) long.
    #[error("the signature is not 64 hex digits long")]
    WrongLength,
    /// A well-formed signature that no configured secret produces for this body.
    #[error("the signature does not match the body")]
    Mismatch,
    /// Verification was asked for with an empty list of secrets: a configuration error.
    #[error("no signing secret is configured")]
    NoSecrets,
}

impl SignatureError {
    /// The stable, machine-readable reason code for this refusal.
    pub fn reason_code(self) -> &'static str {
        match self {
            Self::Missing => "missing_signature",
            Self::WrongPrefix | Self::BadHex | Self::WrongLength => "malformed_signature",
            Self::Mismatch => "signature_mismatch",
            Self::NoSecrets => "no_secret_configured",
        }
    }
}

/// Computes the raw HMAC-SHA256 tag of `body` under `secret`.
pub fn tag(secret: &Secret, body: &[u8]) -> [u8; TAG_LEN] {
    let mut mac = secret.mac();
    mac.update(body);
    mac.finalize().into_bytes().into()
}

/// Signs `body`: returns the `X-Evo-Signature-256` value, `sha256=` and 64 lowercase hex digits.
///
/// ```
/// use evo_siem_protocol::{Secret, sign};
/// // GitHub's published X-Hub-Signature-256 example.
/// assert_eq!(
///     sign(&Secret::new("It's a Secret to Everybody"), b"Hello, World!"),
///     "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
/// );
/// ```
pub fn sign(secret: &Secret, body: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let tag = tag(secret, body);
    let mut out = String::with_capacity(SIGNATURE_PREFIX.len() + 2 * TAG_LEN);
    out.push_str(SIGNATURE_PREFIX);
    for byte in tag {
        out.push(HEX[usize::from(byte >> 4)] as char);
        out.push(HEX[usize::from(byte & 0x0f)] as char);
    }
    out
}

/// Parses a header value into the 32 tag bytes it carries.
///
/// Hex digits are accepted in either case; surrounding whitespace is not. A value of the wrong
/// length that also holds a non-hex character is reported as bad hex.
pub fn parse_header(value: &[u8]) -> Result<[u8; TAG_LEN], SignatureError> {
    let hex = value
        .strip_prefix(SIGNATURE_PREFIX.as_bytes())
        .ok_or(SignatureError::WrongPrefix)?;
    if hex.len() != 2 * TAG_LEN {
        return Err(
            if hex.iter().all(|&c| HEX_VALUES[usize::from(c)] != INVALID) {
                SignatureError::WrongLength
            } else {
                SignatureError::BadHex
            },
        );
    }
    let mut tag = [0u8; TAG_LEN];
    let mut invalid = 0u8;
    for (byte, pair) in tag.iter_mut().zip(hex.chunks_exact(2)) {
        let (hi, lo) = (
            HEX_VALUES[usize::from(pair[0])],
            HEX_VALUES[usize::from(pair[1])],
        );
        invalid |= (hi | lo) & INVALID;
        *byte = (hi << 4) | (lo & 0x0f);
    }
    if invalid != 0 {
        return Err(SignatureError::BadHex);
    }
    Ok(tag)
}

const INVALID: u8 = 0x80;

/// Each byte's value as a hex digit, or `INVALID`: one table load per digit, no branches.
const HEX_VALUES: [u8; 256] = {
    let mut table = [INVALID; 256];
    let mut i = 0;
    while i < 10 {
        table[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        table[b'a' as usize + i] = 10 + i as u8;
        table[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    table
};

/// Compares two tags in constant time. Folding the XOR of four 64-bit words has no early exit,
/// and `subtle` keeps the final test from being turned into a branch on the data; comparing
/// byte by byte with `subtle` costs about 100 ns, a tenth of verifying a 1 KiB body.
pub(crate) fn tags_equal(a: &[u8; TAG_LEN], b: &[u8; TAG_LEN]) -> bool {
    let diff = a
        .chunks_exact(8)
        .zip(b.chunks_exact(8))
        .map(|(x, y)| {
            let word = |c: &[u8]| u64::from_ne_bytes(c.try_into().expect("chunks of 8"));
            word(x) ^ word(y)
        })
        .fold(0u64, |acc, d| acc | d);
    bool::from(diff.ct_eq(&0))
}

/// Verifies a signature header against `body` with every configured secret.
///
/// `header` is the raw header value, or `None` when the request had none. Any one of `secrets`
/// may match (so a new secret can be added beside the old one during rotation); the index of the
/// secret that matched is returned. Tags are compared in constant time with `subtle`.
///
/// ```
/// use evo_siem_protocol::{Secret, SignatureError, sign, verify_signature};
/// let (old, new) = (Secret::new("old"), Secret::new("new"));
/// let header = sign(&new, b"{}");
/// assert_eq!(verify_signature(Some(header.as_bytes()), b"{}", &[old.clone(), new]), Ok(1));
/// assert_eq!(
///     verify_signature(Some(header.as_bytes()), b"{}", &[old]),
///     Err(SignatureError::Mismatch),
/// );
/// ```
pub fn verify_signature(
    header: Option<&[u8]>,
    body: &[u8],
    secrets: &[Secret],
) -> Result<usize, SignatureError> {
    if secrets.is_empty() {
        return Err(SignatureError::NoSecrets);
    }
    let claimed = parse_header(header.ok_or(SignatureError::Missing)?)?;
    for (index, secret) in secrets.iter().enumerate() {
        if tags_equal(&tag(secret, body), &claimed) {
            return Ok(index);
        }
    }
    Err(SignatureError::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn malformed_headers_say_why() {
        let good = sign(&Secret::new("k"), b"x");
        let hex = &good[7..];
        let cases: &[(&str, SignatureError)] = &[
            ("", SignatureError::WrongPrefix),
            ("sha1=00", SignatureError::WrongPrefix),
            ("SHA256=00", SignatureError::WrongPrefix),
            ("sha256=", SignatureError::WrongLength),
            ("sha256=abc", SignatureError::WrongLength),
            ("sha256=zz", SignatureError::BadHex),
        ];
        for (value, expected) in cases {
            assert_eq!(parse_header(value.as_bytes()), Err(*expected), "{value:?}");
        }
        let long = format!("sha256={hex}00");
        assert_eq!(
            parse_header(long.as_bytes()),
            Err(SignatureError::WrongLength)
        );
        let bad_tail = format!("sha256={hex}g");
        assert_eq!(
            parse_header(bad_tail.as_bytes()),
            Err(SignatureError::BadHex)
        );
        let upper = format!("sha256={}", hex.to_uppercase());
        assert_eq!(
            parse_header(upper.as_bytes()),
            parse_header(good.as_bytes())
        );
    }

    #[test]
    fn every_byte_outside_the_hex_digits_is_refused_at_any_position() {
        // Found by mutation testing: two bad digits side by side, and the bytes next to the
        // digit ranges (':' after '9', 'g' after 'f', '@' before 'A', '/' before '0').
        let hex = &sign(&Secret::new("k"), b"x")[7..];
        for at in [0, 31, 62] {
            for bad in ["zz", "::", "/0", "0:", "@a", "gA", "`f", "G0"] {
                let mut digits = hex.to_owned();
                digits.replace_range(at..at + 2, bad);
                let header = format!("sha256={digits}");
                assert_eq!(
                    parse_header(header.as_bytes()),
                    Err(SignatureError::BadHex),
                    "{header}"
                );
            }
        }
        for byte in 0..=255u8 {
            let valid = byte.is_ascii_hexdigit();
            let header = format!("sha256={}{}", char::from(byte), &hex[1..]);
            assert_eq!(
                parse_header(header.as_bytes()).is_ok(),
                valid,
                "{byte:#04x}"
            );
        }
    }

    #[test]
    fn missing_header_and_no_secrets() {
        assert_eq!(
            verify_signature(None, b"x", &[Secret::new("k")]),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            verify_signature(None, b"x", &[]),
            Err(SignatureError::NoSecrets)
        );
    }

    proptest! {
        #[test]
        fn sign_then_verify_round_trips(secret in ".{0,40}", body in proptest::collection::vec(any::<u8>(), 0..512)) {
            let secret = Secret::new(secret);
            let header = sign(&secret, &body);
            prop_assert_eq!(verify_signature(Some(header.as_bytes()), &body, &[secret]), Ok(0));
        }

        #[test]
        fn any_flipped_body_bit_fails(body in proptest::collection::vec(any::<u8>(), 1..512), bit in any::<prop::sample::Index>()) {
            let secret = Secret::new("s3cr3t");
            let header = sign(&secret, &body);
            let mut tampered = body;
            let bit = bit.index(tampered.len() * 8);
            tampered[bit / 8] ^= 1 << (bit % 8);
            prop_assert_eq!(verify_signature(Some(header.as_bytes()), &tampered, &[secret]), Err(SignatureError::Mismatch));
        }

        #[test]
        fn any_flipped_signature_bit_fails(body in proptest::collection::vec(any::<u8>(), 0..256), bit in 0usize..(TAG_LEN * 8)) {
            let secret = Secret::new("s3cr3t");
            let mut tag = tag(&secret, &body);
            tag[bit / 8] ^= 1 << (bit % 8);
            let header: String = std::iter::once("sha256=".to_owned())
                .chain(tag.iter().map(|b| format!("{b:02x}")))
                .collect();
            prop_assert_eq!(verify_signature(Some(header.as_bytes()), &body, &[secret]), Err(SignatureError::Mismatch));
        }

        /// The same change in two of the tag's 8-byte words: a comparison that folded the words'
        /// differences with XOR instead of OR would see them cancel out (found by mutation
        /// testing).
        #[test]
        fn the_same_flip_in_two_words_fails(body in proptest::collection::vec(any::<u8>(), 0..64), bit in 0usize..64, words in (0usize..4, 1usize..4)) {
            let secret = Secret::new("s3cr3t");
            let mut tag = tag(&secret, &body);
            let (first, second) = (words.0, (words.0 + words.1) % 4);
            for word in [first, second] {
                tag[word * 8 + bit / 8] ^= 1 << (bit % 8);
            }
            let header: String = std::iter::once("sha256=".to_owned())
                .chain(tag.iter().map(|b| format!("{b:02x}")))
                .collect();
            prop_assert_eq!(verify_signature(Some(header.as_bytes()), &body, &[secret]), Err(SignatureError::Mismatch));
        }

        #[test]
        fn rotation_accepts_old_and_new(body in proptest::collection::vec(any::<u8>(), 0..256)) {
            let (old, new, other) = (Secret::new("old"), Secret::new("new"), Secret::new("other"));
            let both = [old.clone(), new.clone()];
            prop_assert_eq!(verify_signature(Some(sign(&old, &body).as_bytes()), &body, &both), Ok(0));
            prop_assert_eq!(verify_signature(Some(sign(&new, &body).as_bytes()), &body, &both), Ok(1));
            prop_assert_eq!(verify_signature(Some(sign(&other, &body).as_bytes()), &body, &both), Err(SignatureError::Mismatch));
        }
    }
}

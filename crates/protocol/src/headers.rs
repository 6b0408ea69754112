//! Header names of the wire contract, and the rule that keeps an integration's own headers from
//! overriding them.

/// Names one batch delivery; every retry of the same batch carries the same UUID.
pub const DELIVERY_ID: &str = "x-evo-delivery-id";

/// The attempt number of this delivery: `1` for the first try, then `2`, `3`, ...
pub const DELIVERY_ATTEMPT: &str = "x-evo-delivery-attempt";

/// `sha256=` followed by the lowercase hex HMAC-SHA256 of the exact body bytes. Sent only when a
/// signing secret is configured; the same format as GitHub's `X-Hub-Signature-256`.
pub const SIGNATURE_256: &str = "x-evo-signature-256";

/// The prefix of every [`SIGNATURE_256`] value.
pub const SIGNATURE_PREFIX: &str = "sha256=";

/// The content type of every batch.
pub const CONTENT_TYPE_JSON: &str = "application/json";

/// Headers that the sender always sets itself (compared case-insensitively).
const RESERVED: [&str; 3] = ["host", "content-length", "content-type"];

/// Whether `name` is a header an integration's own authorization headers may not set: `Host`,
/// `Content-Length`, `Content-Type` and every `X-Evo-*` header, in any letter case.
///
/// ```
/// use evo_siem_protocol::headers::is_reserved;
/// assert!(is_reserved("Content-Type"));
/// assert!(is_reserved("X-EVO-Signature-256"));
/// assert!(!is_reserved("Authorization"));
/// ```
pub fn is_reserved(name: &str) -> bool {
    RESERVED.iter().any(|r| r.eq_ignore_ascii_case(name))
        || name
            .get(..6)
            .is_some_and(|p| p.eq_ignore_ascii_case("x-evo-"))
}

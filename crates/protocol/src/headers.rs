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

/// Standard Webhooks (opt-in per integration): the delivery id, the same value as
/// [`DELIVERY_ID`], stable across retries.
pub const WEBHOOK_ID: &str = "webhook-id";

/// Standard Webhooks: Unix seconds of this attempt, the instant of the body's `generated_at`.
pub const WEBHOOK_TIMESTAMP: &str = "webhook-timestamp";

/// Standard Webhooks: space-separated `v1,<base64 HMAC-SHA256 of id.timestamp.body>` entries
/// (see [`crate::standard_webhooks`]).
pub const WEBHOOK_SIGNATURE: &str = "webhook-signature";

/// The content type of every batch.
pub const CONTENT_TYPE_JSON: &str = "application/json";

/// Headers that the sender always sets itself, and hop-by-hop headers, which describe one
/// connection rather than the request and which an integration setting could use to corrupt the
/// framing of the request (`Transfer-Encoding`, `Connection`) or to switch protocols (`Upgrade`).
/// Compared case-insensitively; every `Proxy-*`, `X-Evo-*` and `Webhook-*` name is reserved too.
const RESERVED: [&str; 9] = [
    "host",
    "content-length",
    "content-type",
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Name prefixes reserved whole: the wire contract's own headers (`X-Evo-*`, and the Standard
/// Webhooks `webhook-*` ones), and the proxy headers (`Proxy-Authorization`,
/// `Proxy-Connection`, ...), which are hop-by-hop too.
const RESERVED_PREFIXES: [&str; 3] = ["x-evo-", "webhook-", "proxy-"];

/// Whether `name` is a header an integration's own authorization headers may not set, in any
/// letter case: `Host`, `Content-Length`, `Content-Type`, every `X-Evo-*` and every `Webhook-*`
/// header (the sender sets them, `webhook-id`, `webhook-timestamp` and `webhook-signature` for
/// Standard Webhooks), and the hop-by-hop headers `Connection`, `Keep-Alive`, `TE`, `Trailer`,
/// `Transfer-Encoding`, `Upgrade` and every `Proxy-*` header (they belong to the connection, and
/// would let a setting change how the request is framed or where it goes).
///
/// ```
/// use evo_siem_protocol::headers::is_reserved;
/// assert!(is_reserved("Content-Type"));
/// assert!(is_reserved("X-EVO-Signature-256"));
/// assert!(is_reserved("Webhook-Signature"));
/// assert!(is_reserved("Transfer-Encoding"));
/// assert!(is_reserved("Proxy-Authorization"));
/// assert!(!is_reserved("Authorization"));
/// ```
pub fn is_reserved(name: &str) -> bool {
    RESERVED.iter().any(|r| r.eq_ignore_ascii_case(name))
        || RESERVED_PREFIXES.iter().any(|prefix| {
            name.get(..prefix.len())
                .is_some_and(|p| p.eq_ignore_ascii_case(prefix))
        })
}

#[cfg(test)]
mod tests {
    use super::is_reserved;

    #[test]
    fn reserved_names_in_any_case() {
        for name in [
            "Host",
            "content-length",
            "CONTENT-TYPE",
            "X-Evo-Delivery-Id",
            "x-evo-anything",
            // Standard Webhooks: set by the sender when the integration chooses it.
            "webhook-id",
            "Webhook-Timestamp",
            "WEBHOOK-SIGNATURE",
            "webhook-anything",
            // Hop-by-hop: they describe the connection, not the request.
            "Connection",
            "Keep-Alive",
            "TE",
            "te",
            "Trailer",
            "Transfer-Encoding",
            "transfer-encoding",
            "Upgrade",
            "Proxy-Authorization",
            "proxy-connection",
            "PROXY-Anything",
        ] {
            assert!(is_reserved(name), "{name}");
        }
        for name in [
            "Authorization",
            "X-Splunk-Request-Channel",
            "Proxy",
            "Trailers",
            "Tenant",
            "X-Evo",
            "Webhook",
            "X-Webhook-Id",
            "Connections",
        ] {
            assert!(!is_reserved(name), "{name}");
        }
    }
}

//! [`SignatureScheme`]: which signature headers a request carries, and [`SignatureHeaders`]:
//! their values, taken from any header map.

use crate::headers;
use std::fmt;

/// A way of signing deliveries. An integration chooses one or both; a [`Verifier`](crate::Verifier)
/// accepts both unless told otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum SignatureScheme {
    /// `X-Evo-Signature-256: sha256=<hex HMAC-SHA256 of the body>` (the default).
    Evo,
    /// Standard Webhooks: `webhook-id`, `webhook-timestamp` and
    /// `webhook-signature: v1,<base64 HMAC-SHA256 of id.timestamp.body>`
    /// ([`crate::standard_webhooks`]).
    StandardWebhooks,
}

impl SignatureScheme {
    /// Every scheme, in their order of preference.
    pub const ALL: [SignatureScheme; 2] = [SignatureScheme::Evo, SignatureScheme::StandardWebhooks];

    /// The scheme's name in settings and on the command line: `evo` or `standard-webhooks`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Evo => "evo",
            Self::StandardWebhooks => "standard-webhooks",
        }
    }
}

impl fmt::Display for SignatureScheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not a [`SignatureScheme`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown signature scheme {0:?}: expected \"evo\" or \"standard-webhooks\"")]
pub struct UnknownScheme(pub String);

impl std::str::FromStr for SignatureScheme {
    type Err = UnknownScheme;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str() == name)
            .ok_or_else(|| UnknownScheme(name.chars().take(64).collect()))
    }
}

/// The signature headers of one request, as raw values (`None`: absent), whatever the HTTP
/// library: build it with [`from_lookup`](Self::from_lookup) over your header map, or with
/// [`evo`](Self::evo) when you only have `X-Evo-Signature-256`.
///
/// ```
/// use evo_siem_protocol::SignatureHeaders;
/// let request = [("webhook-id", "msg_1"), ("webhook-timestamp", "1705314605")];
/// let headers = SignatureHeaders::from_lookup(|name| {
///     request.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_bytes())
/// });
/// assert_eq!(headers.webhook_id, Some(&b"msg_1"[..]));
/// assert_eq!(headers.evo_signature, None);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SignatureHeaders<'a> {
    /// `X-Evo-Signature-256`.
    pub evo_signature: Option<&'a [u8]>,
    /// `webhook-id`.
    pub webhook_id: Option<&'a [u8]>,
    /// `webhook-timestamp`.
    pub webhook_timestamp: Option<&'a [u8]>,
    /// `webhook-signature`.
    pub webhook_signature: Option<&'a [u8]>,
}

impl<'a> SignatureHeaders<'a> {
    /// Only an `X-Evo-Signature-256` value (or none): what [`Verifier::verify`](crate::Verifier::verify) takes.
    pub fn evo(signature: Option<&'a [u8]>) -> Self {
        Self {
            evo_signature: signature,
            ..Self::default()
        }
    }

    /// Reads the four headers through `get`, called with each lowercase name
    /// ([`headers::SIGNATURE_256`], [`headers::WEBHOOK_ID`], [`headers::WEBHOOK_TIMESTAMP`],
    /// [`headers::WEBHOOK_SIGNATURE`]); with `http::HeaderMap`:
    /// `SignatureHeaders::from_lookup(|name| map.get(name).map(|v| v.as_bytes()))`.
    pub fn from_lookup(mut get: impl FnMut(&str) -> Option<&'a [u8]>) -> Self {
        Self {
            evo_signature: get(headers::SIGNATURE_256),
            webhook_id: get(headers::WEBHOOK_ID),
            webhook_timestamp: get(headers::WEBHOOK_TIMESTAMP),
            webhook_signature: get(headers::WEBHOOK_SIGNATURE),
        }
    }
}

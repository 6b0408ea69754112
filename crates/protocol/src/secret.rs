//! [`Secret`]: a signing secret that never prints itself.

use std::fmt;
use zeroize::Zeroizing;

/// A webhook signing secret.
///
/// The HMAC key is the secret's UTF-8 bytes, exactly as configured. `Debug` and `Display` print
/// `Secret(<redacted>)` so the secret cannot leak through logs or error messages, and the bytes
/// are zeroed when the value is dropped.
///
/// ```
/// use evo_siem_protocol::Secret;
/// let secret = Secret::new("It's a Secret to Everybody");
/// assert_eq!(format!("{secret:?}"), "Secret(<redacted>)");
/// assert_eq!(secret.to_string(), "<redacted>");
/// ```
#[derive(Clone)]
pub struct Secret(Zeroizing<Vec<u8>>);

impl Secret {
    /// Wraps a secret given as text (its UTF-8 bytes are the HMAC key).
    pub fn new(secret: impl Into<String>) -> Self {
        Self(Zeroizing::new(secret.into().into_bytes()))
    }

    /// Wraps a secret given as raw bytes.
    pub fn from_bytes(bytes: impl Into<Vec<u8>>) -> Self {
        Self(Zeroizing::new(bytes.into()))
    }

    /// The key bytes. Only the signing code needs them; never log them.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// Whether the secret has no bytes (an empty key is legal HMAC, but almost always a mistake).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Compared in constant time, so a comparison with a guess leaks nothing about the secret.
impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        bool::from(subtle::ConstantTimeEq::ct_eq(&self.0[..], &other.0[..]))
    }
}

impl Eq for Secret {}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self::new(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self::new(value)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

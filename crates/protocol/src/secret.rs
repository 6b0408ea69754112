//! [`Secret`]: a signing secret that never prints itself.

use hmac::KeyInit;
use std::fmt;
use zeroize::Zeroizing;

pub(crate) type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// A webhook signing secret.
///
/// The HMAC key is the secret's UTF-8 bytes, exactly as configured. `Debug` and `Display` print
/// `Secret(<redacted>)` so the secret cannot leak through logs or error messages, and the bytes
/// are zeroed when the value is dropped.
///
/// It also holds the HMAC-SHA256 state with the key already absorbed (the inner and outer pads
/// hashed), so that every signature or check clones that state instead of keying from scratch:
/// two SHA-256 blocks saved a message, which is a tenth of the MAC of a 1 KiB batch. That state
/// is as secret as the key and is zeroed on drop as well.
///
/// ```
/// use evo_siem_protocol::Secret;
/// let secret = Secret::new("It's a Secret to Everybody");
/// assert_eq!(format!("{secret:?}"), "Secret(<redacted>)");
/// assert_eq!(secret.to_string(), "<redacted>");
/// ```
#[derive(Clone)]
pub struct Secret {
    key: Zeroizing<Vec<u8>>,
    keyed: HmacSha256,
}

impl Secret {
    /// Wraps a secret given as text (its UTF-8 bytes are the HMAC key).
    pub fn new(secret: impl Into<String>) -> Self {
        Self::from_bytes(secret.into().into_bytes())
    }

    /// Wraps a secret given as raw bytes.
    pub fn from_bytes(bytes: impl Into<Vec<u8>>) -> Self {
        let key = Zeroizing::new(bytes.into());
        let keyed = HmacSha256::new_from_slice(&key).expect("HMAC accepts keys of any length");
        Self { key, keyed }
    }

    /// A fresh HMAC-SHA256 with this key, ready for the message.
    pub(crate) fn mac(&self) -> HmacSha256 {
        self.keyed.clone()
    }

    /// The key bytes. Only the signing code needs them; never log them.
    pub fn expose(&self) -> &[u8] {
        &self.key
    }

    /// Whether the secret has no bytes (an empty key is legal HMAC, but almost always a mistake).
    pub fn is_empty(&self) -> bool {
        self.key.is_empty()
    }
}

/// Compared in constant time, so a comparison with a guess leaks nothing about the secret.
impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        bool::from(subtle::ConstantTimeEq::ct_eq(&self.key[..], &other.key[..]))
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

//! Event ids (`data.uuid`) and the 16-byte deduplication key each one maps to.
//!
//! The platform writes UUIDs, but the product page's own example carries `"evt-abc123"`, and a
//! receiver must not fail on the vendor's documented example. So an event id is any non-empty
//! string of printable ASCII (`' '` to `'~'`) of at most [`MAX_EVENT_ID_LEN`] bytes:
//!
//! - a UUID-shaped id (any letter case, and the other spellings [`Uuid::try_parse`] accepts)
//!   deduplicates by its 16 bytes, as it always did, so `8F14…` and `8f14…` are the same event;
//! - any other id deduplicates by a 128-bit keyed hash of its exact text
//!   ([`event_key`]), which fits the same fixed-size stores (in memory, Redis) as a UUID.
//!
//! The hash is HMAC-SHA256 under a fixed, public key, truncated to 128 bits. It is fixed so that
//! every receiver instance, every restart and every shared store derive the same key for the same
//! id; it is SHA-256 so that a sender cannot craft two ids that collide (about 2^64 work), nor an
//! id that collides with a given UUID (about 2^128). [`EventIds::UuidOnly`] keeps refusing
//! non-UUID ids for receivers that want the stricter contract.

use hmac::{KeyInit, Mac};
use std::sync::LazyLock;
use uuid::Uuid;

/// The longest event id accepted, in bytes.
pub const MAX_EVENT_ID_LEN: usize = 128;

/// Which event ids a receiver accepts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum EventIds {
    /// Any non-empty printable-ASCII id of at most [`MAX_EVENT_ID_LEN`] bytes (the default).
    #[default]
    Any,
    /// UUIDs only: any other id is refused with `invalid_event_uuid`.
    UuidOnly,
}

/// Why an event id was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EventIdError {
    /// Empty, longer than [`MAX_EVENT_ID_LEN`] bytes, or holding a byte outside printable ASCII.
    #[error("not an event id (1 to 128 bytes of printable ASCII)")]
    Invalid,
    /// A valid id that is not a UUID, refused under [`EventIds::UuidOnly`].
    #[error("not a UUID, and this receiver accepts UUID event ids only")]
    NotUuid,
}

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// The key of the id hash. Public on purpose: see the module documentation.
const ID_HASH_KEY: &[u8] = b"evo-siem event id key v1";

/// The HMAC state with the key already absorbed: each id then costs its own blocks only.
static KEYED: LazyLock<HmacSha256> =
    LazyLock::new(|| HmacSha256::new_from_slice(ID_HASH_KEY).expect("any key length"));

/// Whether `id` is a valid event id: 1 to [`MAX_EVENT_ID_LEN`] bytes of printable ASCII.
pub fn is_valid_event_id(id: &[u8]) -> bool {
    !id.is_empty() && id.len() <= MAX_EVENT_ID_LEN && id.iter().all(|b| (b' '..=b'~').contains(b))
}

/// The 16-byte deduplication key of an event id: the UUID itself when the id is one, a 128-bit
/// keyed hash of the exact id otherwise (returned as a [`Uuid`] value so that every store keeps
/// one fixed-size key type).
///
/// ```
/// use evo_siem_protocol::{EventIdError, EventIds, event_key};
/// let upper = event_key(b"8F14E45F-CEEA-4E6B-9D2A-2F2D0C2A7B31", EventIds::Any)?;
/// let lower = event_key(b"8f14e45f-ceea-4e6b-9d2a-2f2d0c2a7b31", EventIds::Any)?;
/// assert_eq!(upper, lower); // one event, whatever the case
/// assert_eq!(lower.to_string(), "8f14e45f-ceea-4e6b-9d2a-2f2d0c2a7b31");
///
/// let seed = event_key(b"evt-abc123", EventIds::Any)?; // the product page's example
/// assert_eq!(seed, event_key(b"evt-abc123", EventIds::Any)?); // stable
/// assert_ne!(seed, event_key(b"EVT-ABC123", EventIds::Any)?); // exact text
/// assert_eq!(event_key(b"evt-abc123", EventIds::UuidOnly), Err(EventIdError::NotUuid));
/// assert_eq!(event_key(b"", EventIds::Any), Err(EventIdError::Invalid));
/// # Ok::<(), EventIdError>(())
/// ```
pub fn event_key(id: &[u8], policy: EventIds) -> Result<Uuid, EventIdError> {
    if let Ok(uuid) = Uuid::try_parse_ascii(id) {
        return Ok(uuid);
    }
    if !is_valid_event_id(id) {
        return Err(EventIdError::Invalid);
    }
    if policy == EventIds::UuidOnly {
        return Err(EventIdError::NotUuid);
    }
    let mut mac = KEYED.clone();
    mac.update(id);
    let digest = mac.finalize().into_bytes();
    let mut key = [0u8; 16];
    key.copy_from_slice(&digest[..16]);
    Ok(Uuid::from_bytes(key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn bounds_of_a_valid_id() {
        assert!(is_valid_event_id(b"x"));
        assert!(is_valid_event_id(&[b'a'; MAX_EVENT_ID_LEN]));
        assert!(!is_valid_event_id(&[b'a'; MAX_EVENT_ID_LEN + 1]));
        assert!(is_valid_event_id(b" ~"));
        for bad in [
            &b""[..],
            b"tab\there",
            b"nl\n",
            b"del\x7f",
            "zo\u{eb}".as_bytes(),
        ] {
            assert!(!is_valid_event_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn the_hash_is_pinned() {
        // Stores outlive releases (Redis keys, the relay's state): the key of an id may never
        // change, or a redelivery after an upgrade would be taken for a new event.
        assert_eq!(
            event_key(b"evt-abc123", EventIds::Any).unwrap().to_string(),
            "fda7b82f-4ed7-f0e1-09b8-132b899cf6cf" // Python: hmac.new(KEY, id, sha256).digest()[:16]
        );
    }

    proptest! {
        #[test]
        fn distinct_ids_get_distinct_keys(a in "[ -~]{1,128}", b in "[ -~]{1,128}") {
            prop_assume!(a != b && Uuid::try_parse(&a).is_err() && Uuid::try_parse(&b).is_err());
            prop_assert_ne!(
                event_key(a.as_bytes(), EventIds::Any).unwrap(),
                event_key(b.as_bytes(), EventIds::Any).unwrap()
            );
        }

        #[test]
        fn uuids_keep_their_bytes_in_any_case(bytes in any::<[u8; 16]>()) {
            let uuid = Uuid::from_bytes(bytes);
            let upper = uuid.hyphenated().to_string().to_uppercase();
            prop_assert_eq!(event_key(upper.as_bytes(), EventIds::UuidOnly), Ok(uuid));
            prop_assert_eq!(event_key(uuid.to_string().as_bytes(), EventIds::Any), Ok(uuid));
        }
    }
}

//! Secrets at rest: signing secrets and header values are stored encrypted, in `integrations.db`
//! and in the shared PostgreSQL tables, under a 32-byte key the operator keeps outside them
//! (`[secrets] key_env` or `key_file`).
//!
//! Each value is sealed on its own with XChaCha20-Poly1305 and a fresh random 192-bit nonce
//! (random nonces of that size never repeat in practice, so no counter has to be kept across
//! instances). The tenant and the field (`signing_secret`, `headers.Authorization`, ...) are the
//! associated data, so a sealed value copied to another tenant or field does not open. Every
//! sealed value records the key's id (the first 8 bytes of its SHA-256, in hex), so that a wrong
//! key is named as such at start-up rather than read as tampering.
//!
//! In the stored settings JSON, a sealed value is an object
//! `{"sealed": "<base64 of nonce and ciphertext>", "key_id": "<hex>"}` where the previous version
//! kept a string; a string is a value left in plaintext by that version, which
//! [`open_settings`] reads and reports so that the store re-seals it (the migration).

use crate::settings::IntegrationSettings;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

const NONCE_LEN: usize = 24;

/// Why a key could not be read or a stored value could not be opened. Messages name the tenant,
/// the field and the key ids, never a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SecretsError {
    /// The key is not 32 bytes in base64 or hex.
    #[error("the secrets key must be 32 bytes, written in base64 (44 characters) or hex (64)")]
    BadKey,
    /// The value was sealed under another key.
    #[error(
        "integration {tenant}: {field} was encrypted under key {stored}, but the configured secrets key is {configured}: wrong key?"
    )]
    WrongKey {
        /// The tenant.
        tenant: String,
        /// The field.
        field: String,
        /// The id of the key it was sealed under.
        stored: String,
        /// The id of the key configured.
        configured: String,
    },
    /// A sealed value is stored but no key is configured.
    #[error(
        "integration {tenant}: {field} is encrypted (key {stored}) but no secrets key is configured ([secrets] key_env or key_file)"
    )]
    NoKey {
        /// The tenant.
        tenant: String,
        /// The field.
        field: String,
        /// The id of the key it was sealed under.
        stored: String,
    },
    /// A secret is to be stored, or is stored in plaintext, and no key is configured.
    #[error(
        "integration {tenant}: {field} is a secret, and secrets are stored only encrypted: configure a secrets key ([secrets] key_env or key_file)"
    )]
    KeyRequired {
        /// The tenant.
        tenant: String,
        /// The field.
        field: String,
    },
    /// The value does not open under the key it names: altered, or moved from another tenant or
    /// field.
    #[error("integration {tenant}: {field} does not decrypt (altered, or moved from elsewhere)")]
    Corrupt {
        /// The tenant.
        tenant: String,
        /// The field.
        field: String,
    },
    /// The stored settings are not the expected JSON.
    #[error("integration {tenant}: stored settings unreadable: {reason}")]
    Unreadable {
        /// The tenant (or `?` when unknown).
        tenant: String,
        /// Why (a serde message: names a field and a type, not a value).
        reason: String,
    },
}

/// The key that seals secrets at rest. `Debug` shows its id only.
#[derive(Clone)]
pub struct SecretsKey {
    cipher: XChaCha20Poly1305,
    id: String,
}

impl std::fmt::Debug for SecretsKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretsKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl SecretsKey {
    /// A key from 32 raw bytes.
    pub fn from_bytes(bytes: &[u8; 32]) -> Self {
        let digest = Sha256::digest(bytes);
        let id = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        Self {
            cipher: XChaCha20Poly1305::new(bytes.into()),
            id,
        }
    }

    /// A key written as base64 (standard alphabet, 44 characters) or hex (64 characters);
    /// surrounding whitespace is ignored.
    pub fn parse(text: &str) -> Result<Self, SecretsError> {
        let text = text.trim();
        let bytes = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            (0..32)
                .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16))
                .collect::<Result<Vec<u8>, _>>()
                .map_err(|_| SecretsError::BadKey)?
        } else {
            BASE64.decode(text).map_err(|_| SecretsError::BadKey)?
        };
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| SecretsError::BadKey)?;
        Ok(Self::from_bytes(&bytes))
    }

    /// A new random key, in base64 (for the demo, the conformance suite and tests).
    pub fn generate() -> std::io::Result<String> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| std::io::Error::other(e.to_string()))?;
        Ok(BASE64.encode(bytes))
    }

    /// The key's id: the first 8 bytes of its SHA-256, in hex. Not secret.
    pub fn id(&self) -> &str {
        &self.id
    }

    fn aad(tenant: &str, field: &str) -> Vec<u8> {
        format!("evo-siem secret v1\0{tenant}\0{field}").into_bytes()
    }

    /// Seals `plaintext` as `field` of `tenant`.
    fn seal(&self, tenant: &str, field: &str, plaintext: &str) -> Result<Value, SecretsError> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|e| SecretsError::Unreadable {
            tenant: tenant.to_owned(),
            reason: format!("no randomness for a nonce: {e}"),
        })?;
        let aad = Self::aad(tenant, field);
        let sealed = self
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: &aad,
                },
            )
            .map_err(|_| SecretsError::Corrupt {
                tenant: tenant.to_owned(),
                field: field.to_owned(),
            })?;
        let mut data = nonce.to_vec();
        data.extend_from_slice(&sealed);
        Ok(serde_json::json!({"sealed": BASE64.encode(data), "key_id": self.id}))
    }

    fn open(&self, tenant: &str, field: &str, data: &str) -> Result<String, SecretsError> {
        let corrupt = || SecretsError::Corrupt {
            tenant: tenant.to_owned(),
            field: field.to_owned(),
        };
        let data = BASE64.decode(data).map_err(|_| corrupt())?;
        if data.len() < NONCE_LEN {
            return Err(corrupt());
        }
        let (nonce, sealed) = data.split_at(NONCE_LEN);
        let aad = Self::aad(tenant, field);
        let plain = self
            .cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: &aad,
                },
            )
            .map_err(|_| corrupt())?;
        String::from_utf8(plain).map_err(|_| corrupt())
    }
}

/// The secret fields of settings: `(field name, value)`.
fn secret_fields(settings: &IntegrationSettings) -> Vec<(String, &str)> {
    let mut fields = Vec::new();
    if let Some(s) = &settings.signing_secret {
        fields.push(("signing_secret".to_owned(), s.as_str()));
    }
    if let Some(s) = &settings.next_signing_secret {
        fields.push(("next_signing_secret".to_owned(), s.as_str()));
    }
    for (name, value) in &settings.headers {
        fields.push((format!("headers.{name}"), value.as_str()));
    }
    fields
}

/// Whether `settings` hold any secret (a signing secret or a header value).
pub fn has_secrets(settings: &IntegrationSettings) -> bool {
    !secret_fields(settings).is_empty()
}

/// The stored form of `settings`: JSON with every secret sealed under `key`. Without a key,
/// settings holding a secret are refused ([`SecretsError::KeyRequired`]).
pub fn seal_settings(
    settings: &IntegrationSettings,
    key: Option<&SecretsKey>,
) -> Result<String, SecretsError> {
    let unreadable = |e: serde_json::Error| SecretsError::Unreadable {
        tenant: settings.tenant.clone(),
        reason: e.to_string(),
    };
    let mut json = serde_json::to_value(settings).map_err(unreadable)?;
    let fields = secret_fields(settings);
    if let Some((field, _)) = fields.first()
        && key.is_none()
    {
        return Err(SecretsError::KeyRequired {
            tenant: settings.tenant.clone(),
            field: field.clone(),
        });
    }
    if let Some(key) = key {
        for (field, value) in fields {
            let sealed = key.seal(&settings.tenant, &field, value)?;
            *slot(&mut json, &field).ok_or_else(|| SecretsError::Unreadable {
                tenant: settings.tenant.clone(),
                reason: format!("no {field}"),
            })? = sealed;
        }
    }
    serde_json::to_string(&json).map_err(unreadable)
}

/// The JSON value of `field` (`signing_secret`, `headers.NAME`) in stored settings.
fn slot<'a>(json: &'a mut Value, field: &str) -> Option<&'a mut Value> {
    match field.strip_prefix("headers.") {
        Some(name) => json.get_mut("headers")?.get_mut(name),
        None => json.get_mut(field),
    }
}

/// What [`open_settings`] found.
#[derive(Debug)]
pub struct Opened {
    /// The settings, secrets in the clear.
    pub settings: IntegrationSettings,
    /// Some secret was stored in plaintext (by the previous version): re-seal the row.
    pub had_plaintext: bool,
    /// Some secret was sealed under a key other than the one to seal with now (rekey).
    pub other_key: bool,
}

/// Reads stored settings, opening every sealed secret with `key` (or, for `rekey`, with the
/// first of `keys` whose id matches). Plaintext secrets (the previous version's rows) are read as
/// they are and reported in [`Opened::had_plaintext`].
pub fn open_settings(json: &str, keys: &[&SecretsKey]) -> Result<Opened, SecretsError> {
    let mut value: Value = serde_json::from_str(json).map_err(|e| SecretsError::Unreadable {
        tenant: "?".into(),
        reason: e.to_string(),
    })?;
    let tenant = value
        .get("tenant")
        .and_then(Value::as_str)
        .unwrap_or("?")
        .to_owned();
    let mut fields: Vec<String> = ["signing_secret", "next_signing_secret"]
        .into_iter()
        .filter(|f| value.get(*f).is_some_and(|v| !v.is_null()))
        .map(str::to_owned)
        .collect();
    if let Some(Value::Object(headers)) = value.get("headers") {
        fields.extend(headers.keys().map(|name| format!("headers.{name}")));
    }
    let (mut had_plaintext, mut other_key) = (false, false);
    for field in fields {
        let Some(slot) = slot(&mut value, &field) else {
            continue;
        };
        let Value::Object(sealed) = slot else {
            had_plaintext = true;
            continue;
        };
        let (data, stored) = sealed_parts(sealed).ok_or_else(|| SecretsError::Corrupt {
            tenant: tenant.clone(),
            field: field.clone(),
        })?;
        let Some(key) = keys.iter().find(|k| k.id == stored) else {
            return Err(match keys.first() {
                Some(configured) => SecretsError::WrongKey {
                    tenant,
                    field,
                    stored,
                    configured: configured.id.clone(),
                },
                None => SecretsError::NoKey {
                    tenant,
                    field,
                    stored,
                },
            });
        };
        if !std::ptr::eq(*key, keys[0]) {
            other_key = true;
        }
        *slot = Value::String(key.open(&tenant, &field, &data)?);
    }
    let settings = serde_json::from_value(value).map_err(|e| SecretsError::Unreadable {
        tenant: tenant.clone(),
        reason: e.to_string(),
    })?;
    Ok(Opened {
        settings,
        had_plaintext,
        other_key,
    })
}

fn sealed_parts(sealed: &Map<String, Value>) -> Option<(String, String)> {
    Some((
        sealed.get("sealed")?.as_str()?.to_owned(),
        sealed.get("key_id")?.as_str()?.to_owned(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn settings(tenant: &str) -> IntegrationSettings {
        IntegrationSettings {
            tenant: tenant.into(),
            webhook_url: "https://siem.example.com/evo".into(),
            signing_secret: Some("the-signing-secret-0123".into()),
            next_signing_secret: None,
            headers: BTreeMap::from([("Authorization".into(), "Splunk hec-token".into())]),
            signature_schemes: crate::settings::default_signature_schemes(),
            excluded_actions: vec![],
            max_batch_events: None,
            max_batch_bytes: None,
            linger_ms: None,
        }
    }

    #[test]
    fn sealed_settings_hide_secrets_and_open_only_with_their_key_tenant_and_field() {
        let key = SecretsKey::parse(&SecretsKey::generate().unwrap()).unwrap();
        let other = SecretsKey::parse(&"ab".repeat(32)).unwrap();
        let json = seal_settings(&settings("acme"), Some(&key)).unwrap();
        assert!(!json.contains("the-signing-secret") && !json.contains("hec-token"));
        assert!(json.contains(key.id()));
        let opened = open_settings(&json, &[&key]).unwrap();
        assert_eq!(opened.settings, settings("acme"));
        assert!(!opened.had_plaintext && !opened.other_key);
        // Sealed twice: different nonces.
        assert_ne!(json, seal_settings(&settings("acme"), Some(&key)).unwrap());
        assert!(matches!(
            open_settings(&json, &[&other]).unwrap_err(),
            SecretsError::WrongKey { .. }
        ));
        assert!(matches!(
            open_settings(&json, &[]).unwrap_err(),
            SecretsError::NoKey { .. }
        ));
        // Moved to another tenant, or to another field: does not open.
        let moved = json.replace("\"tenant\":\"acme\"", "\"tenant\":\"globex\"");
        assert!(matches!(
            open_settings(&moved, &[&key]).unwrap_err(),
            SecretsError::Corrupt { .. }
        ));
        let mut value: Value = serde_json::from_str(&json).unwrap();
        value["next_signing_secret"] = value["signing_secret"].clone();
        assert!(matches!(
            open_settings(&value.to_string(), &[&key]).unwrap_err(),
            SecretsError::Corrupt { .. }
        ));
        // Plaintext (the previous version's rows) is read and reported.
        let plain = serde_json::to_string(&settings("acme")).unwrap();
        assert!(open_settings(&plain, &[&key]).unwrap().had_plaintext);
        assert!(matches!(
            seal_settings(&settings("acme"), None).unwrap_err(),
            SecretsError::KeyRequired { .. }
        ));
        assert!(!format!("{key:?}").contains(&SecretsKey::generate().unwrap()));
        assert!(matches!(
            SecretsKey::parse("too short"),
            Err(SecretsError::BadKey)
        ));
    }
}

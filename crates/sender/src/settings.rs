//! [`IntegrationSettings`]: one tenant's integration as it is stored and edited, and the one
//! function that checks it ([`IntegrationSettings::check`]).
//!
//! The configuration file, the admin API, the local store and the shared store all go through
//! [`IntegrationSettings::check`], so a value refused by one is refused by all: a 10-byte
//! signing secret or a 100-header integration cannot enter through the file when the API would
//! refuse it. The bounds are public constants so that documentation and clients can quote them.

use crate::batcher::BatchLimits;
use crate::{Exclusions, Integration};
use evo_siem_protocol::{Secret, SignatureScheme};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// Most headers an integration may set.
pub const MAX_HEADERS: usize = 16;
/// Longest header value, in bytes.
pub const MAX_HEADER_VALUE: usize = 4096;
/// Most excluded actions.
pub const MAX_EXCLUDED_ACTIONS: usize = 500;
/// Longest excluded action, in characters.
pub const MAX_ACTION_LEN: usize = 200;
/// Shortest and longest signing secret, in bytes.
pub const SECRET_LEN: std::ops::RangeInclusive<usize> = 16..=512;
/// Longest webhook URL.
pub const MAX_URL_LEN: usize = 2048;
/// Bounds of `max_batch_events`.
pub const MAX_BATCH_EVENTS: std::ops::RangeInclusive<usize> = 1..=10_000;
/// Bounds of `max_batch_bytes`.
pub const MAX_BATCH_BYTES: std::ops::RangeInclusive<usize> = 4096..=16 * 1024 * 1024;
/// The signature schemes an integration uses when it names none: `["evo"]`,
/// `X-Evo-Signature-256` alone.
pub fn default_signature_schemes() -> Vec<String> {
    vec![SignatureScheme::Evo.as_str().to_owned()]
}

/// Bounds of `linger_ms`.
pub const LINGER_MS: std::ops::RangeInclusive<u64> = 0..=60_000;

/// One invalid field of an integration's settings (in a 422 answer of the admin API, or in the
/// error of a configuration file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// The field: `webhook_url`, `headers.Authorization`, `excluded_actions[3]`, ...
    pub field: String,
    /// What is wrong with it; never its value when it is a secret.
    pub message: String,
}

impl FieldError {
    /// `field` is invalid because of `message`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Settings refused by [`IntegrationSettings::check`]: every invalid field, in the order of the
/// settings' fields.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("integration {tenant}: {}", summary(.fields))]
pub struct InvalidSettings {
    /// The tenant.
    pub tenant: String,
    /// Each invalid field, with why.
    pub fields: Vec<FieldError>,
}

fn summary(fields: &[FieldError]) -> String {
    fields
        .iter()
        .map(|f| format!("{}: {}", f.field, f.message))
        .collect::<Vec<_>>()
        .join("; ")
}

/// One tenant's integration settings as stored: everything needed to build an [`Integration`].
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntegrationSettings {
    /// The tenant.
    pub tenant: String,
    /// Where to deliver.
    pub webhook_url: String,
    /// The signing secret; batches are unsigned without one.
    #[serde(default)]
    pub signing_secret: Option<String>,
    /// A secret added beside the current one for a rotation: not used for signing until the
    /// rotation makes it the current one.
    #[serde(default)]
    pub next_signing_secret: Option<String>,
    /// Authorization headers, sent verbatim.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// How deliveries are signed: `"evo"` (`X-Evo-Signature-256`), `"standard-webhooks"`
    /// (`webhook-id`, `webhook-timestamp`, `webhook-signature`) or both; default `["evo"]`.
    /// With Standard Webhooks alone, the `X-Evo-*` headers are not sent.
    #[serde(default = "default_signature_schemes")]
    pub signature_schemes: Vec<String>,
    /// Audit actions not forwarded (exact match).
    #[serde(default)]
    pub excluded_actions: Vec<String>,
    /// Most events per batch (default 500).
    #[serde(default)]
    pub max_batch_events: Option<usize>,
    /// Most bytes per batch body (default 1 MiB).
    #[serde(default)]
    pub max_batch_bytes: Option<usize>,
    /// Most time the oldest event waits for a batch to fill, in milliseconds (default 1000).
    #[serde(default)]
    pub linger_ms: Option<u64>,
}

impl std::fmt::Debug for IntegrationSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IntegrationSettings")
            .field("tenant", &self.tenant)
            .field(
                "webhook_url",
                &crate::guard::redact_url_str(&self.webhook_url),
            )
            .field(
                "signing_secret",
                &self.signing_secret.as_ref().map(|_| "<redacted>"),
            )
            .field(
                "next_signing_secret",
                &self.next_signing_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("signature_schemes", &self.signature_schemes)
            .field("excluded_actions", &self.excluded_actions)
            .finish_non_exhaustive()
    }
}

impl IntegrationSettings {
    /// Settings for `tenant` delivering to `webhook_url`, everything else at its default.
    pub fn new(tenant: impl Into<String>, webhook_url: impl Into<String>) -> Self {
        Self {
            tenant: tenant.into(),
            webhook_url: webhook_url.into(),
            signing_secret: None,
            next_signing_secret: None,
            headers: BTreeMap::new(),
            signature_schemes: default_signature_schemes(),
            excluded_actions: Vec::new(),
            max_batch_events: None,
            max_batch_bytes: None,
            linger_ms: None,
        }
    }

    /// Checks every field and builds the integration; `allowed` is the outbound guard's
    /// allow-list. Every invalid field is reported, not only the first, and no message quotes
    /// a secret or a header value.
    pub fn check(&self, allowed: &[IpNet]) -> Result<Integration, InvalidSettings> {
        let mut errors = Vec::new();
        let mut invalid = |field: String, message: String| {
            errors.push(FieldError { field, message });
        };
        let url = if self.webhook_url.len() > MAX_URL_LEN {
            invalid(
                "webhook_url".into(),
                format!("longer than {MAX_URL_LEN} characters"),
            );
            None
        } else {
            match Integration::new(&self.tenant, &self.webhook_url, allowed) {
                Ok(integration) => Some(integration),
                Err(crate::IntegrationError::Url(blocked)) => {
                    invalid("webhook_url".into(), blocked.to_string());
                    None
                }
                Err(err) => {
                    invalid("webhook_url".into(), err.to_string());
                    None
                }
            }
        };
        if self.headers.len() > MAX_HEADERS {
            invalid("headers".into(), format!("at most {MAX_HEADERS} headers"));
        }
        for (name, value) in &self.headers {
            let path = format!("headers.{name}");
            if evo_siem_protocol::headers::is_reserved(name) {
                invalid(
                    path,
                    "Host, Content-Length, Content-Type, X-Evo-* and Webhook-* are set by the sender, and hop-by-hop headers (Connection, Keep-Alive, TE, Trailer, Transfer-Encoding, Upgrade, Proxy-*) may not be set".into(),
                );
            } else if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                invalid(path, "not a valid header name".into());
            } else if value.len() > MAX_HEADER_VALUE {
                invalid(path, format!("value longer than {MAX_HEADER_VALUE} bytes"));
            } else if value.is_empty() || http::HeaderValue::from_str(value).is_err() {
                // CR, LF and other control characters would let a value inject headers.
                invalid(
                    path,
                    "the value must be non-empty visible text, without CR or LF".into(),
                );
            }
        }
        for (name, secret) in [
            ("signing_secret", &self.signing_secret),
            ("next_signing_secret", &self.next_signing_secret),
        ] {
            if let Some(secret) = secret
                && !SECRET_LEN.contains(&secret.len())
            {
                invalid(
                    name.into(),
                    format!(
                        "a secret has {} to {} bytes",
                        SECRET_LEN.start(),
                        SECRET_LEN.end()
                    ),
                );
            }
        }
        let schemes = check_schemes(&self.signature_schemes, &mut invalid);
        if self.next_signing_secret.is_some() && self.signing_secret.is_none() {
            invalid(
                "next_signing_secret".into(),
                "there is no current secret to rotate from: set signing_secret instead".into(),
            );
        }
        if self.excluded_actions.len() > MAX_EXCLUDED_ACTIONS {
            invalid(
                "excluded_actions".into(),
                format!("at most {MAX_EXCLUDED_ACTIONS} actions"),
            );
        }
        for (i, action) in self.excluded_actions.iter().enumerate() {
            if action.is_empty() {
                invalid(format!("excluded_actions[{i}]"), "empty".into());
            } else if action.chars().count() > MAX_ACTION_LEN {
                invalid(
                    format!("excluded_actions[{i}]"),
                    format!("longer than {MAX_ACTION_LEN} characters"),
                );
            }
        }
        let between = |range: std::fmt::Arguments<'_>| format!("between {range}");
        if let Some(n) = self.max_batch_events
            && !MAX_BATCH_EVENTS.contains(&n)
        {
            invalid(
                "max_batch_events".into(),
                between(format_args!(
                    "{} and {}",
                    MAX_BATCH_EVENTS.start(),
                    MAX_BATCH_EVENTS.end()
                )),
            );
        }
        if let Some(n) = self.max_batch_bytes
            && !MAX_BATCH_BYTES.contains(&n)
        {
            invalid(
                "max_batch_bytes".into(),
                between(format_args!(
                    "{} and {}",
                    MAX_BATCH_BYTES.start(),
                    MAX_BATCH_BYTES.end()
                )),
            );
        }
        if let Some(ms) = self.linger_ms
            && !LINGER_MS.contains(&ms)
        {
            invalid(
                "linger_ms".into(),
                between(format_args!(
                    "{} and {}",
                    LINGER_MS.start(),
                    LINGER_MS.end()
                )),
            );
        }
        let refused = |errors: Vec<FieldError>| InvalidSettings {
            tenant: self.tenant.clone(),
            fields: errors,
        };
        let Some(mut integration) = url.filter(|_| errors.is_empty()) else {
            return Err(refused(errors));
        };
        let defaults = BatchLimits::default();
        let limits = BatchLimits::new(
            self.max_batch_events.unwrap_or(defaults.max_events()),
            self.max_batch_bytes.unwrap_or(defaults.max_bytes()),
            self.linger_ms
                .map_or(defaults.linger(), Duration::from_millis),
        )
        .map_err(|e| refused(vec![FieldError::new("settings", e.to_string())]))?;
        integration = integration
            .with_exclusions(Exclusions::new(self.excluded_actions.iter().cloned()))
            .with_limits(limits)
            .with_schemes(schemes);
        if let Some(secret) = &self.signing_secret {
            integration = integration.with_secret(Secret::new(secret.clone()));
        }
        for (name, value) in &self.headers {
            integration = integration.with_header(name, value).map_err(|e| {
                refused(vec![FieldError::new(
                    format!("headers.{name}"),
                    e.to_string(),
                )])
            })?;
        }
        Ok(integration)
    }
}

/// The schemes named by `names`, reporting each unknown or repeated name (and an empty list)
/// through `invalid`.
fn check_schemes(
    names: &[String],
    invalid: &mut impl FnMut(String, String),
) -> Vec<SignatureScheme> {
    if names.is_empty() {
        invalid(
            "signature_schemes".into(),
            "name at least one scheme: \"evo\", \"standard-webhooks\" or both".into(),
        );
    }
    let mut schemes = Vec::new();
    for (i, name) in names.iter().enumerate() {
        match name.parse::<SignatureScheme>() {
            Ok(scheme) if schemes.contains(&scheme) => invalid(
                format!("signature_schemes[{i}]"),
                format!("{scheme} is named twice"),
            ),
            Ok(scheme) => schemes.push(scheme),
            Err(_) => invalid(
                format!("signature_schemes[{i}]"),
                "unknown scheme: expected \"evo\" or \"standard-webhooks\"".into(),
            ),
        }
    }
    schemes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_invalid_field_is_reported_without_its_secret() {
        let mut settings = IntegrationSettings::new("acme", "http://example.com/hook");
        settings.signing_secret = Some("short-secret".into());
        settings.headers.insert("Host".into(), "x".into());
        settings
            .headers
            .insert("X-Ok".into(), "a\r\nInjected: yes".into());
        settings.excluded_actions = vec!["User login".into(), String::new()];
        settings.max_batch_events = Some(0);
        settings.max_batch_bytes = Some(10);
        settings.linger_ms = Some(3_600_000);
        let err = settings.check(&[]).unwrap_err();
        let fields: Vec<&str> = err.fields.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "webhook_url",
                "headers.Host",
                "headers.X-Ok",
                "signing_secret",
                "excluded_actions[1]",
                "max_batch_events",
                "max_batch_bytes",
                "linger_ms"
            ]
        );
        let text = err.to_string();
        assert!(
            !text.contains("short-secret") && !text.contains("Injected"),
            "{text}"
        );
    }

    #[test]
    fn valid_settings_build_the_integration_they_describe() {
        let mut settings = IntegrationSettings::new("acme", "https://siem.example.com/evo");
        settings.signing_secret = Some("a-secret-of-sixteen-bytes".into());
        settings
            .headers
            .insert("Authorization".into(), "Bearer t".into());
        settings.excluded_actions = vec!["User login".into()];
        settings.max_batch_events = Some(10);
        let integration = settings.check(&[]).unwrap();
        assert_eq!(integration.tenant(), "acme");
        assert!(integration.secret().is_some());
        assert_eq!(integration.headers().len(), 1);
        assert!(integration.exclusions().excludes("User login"));
        assert_eq!(integration.limits().max_events(), 10);
    }

    #[test]
    fn signature_schemes_are_named_once_each_and_known() {
        let mut settings = IntegrationSettings::new("acme", "https://siem.example.com/evo");
        assert_eq!(
            settings.check(&[]).unwrap().schemes(),
            [SignatureScheme::Evo]
        );
        settings.signature_schemes = vec!["standard-webhooks".into(), "evo".into()];
        assert_eq!(
            settings.check(&[]).unwrap().schemes(),
            [SignatureScheme::StandardWebhooks, SignatureScheme::Evo]
        );
        let refused = |schemes: &[&str]| {
            let mut settings = settings.clone();
            settings.signature_schemes = schemes.iter().map(|s| (*s).to_owned()).collect();
            settings.check(&[]).unwrap_err().fields
        };
        assert_eq!(
            refused(&[]),
            [FieldError::new(
                "signature_schemes",
                "name at least one scheme: \"evo\", \"standard-webhooks\" or both"
            )]
        );
        assert_eq!(
            refused(&["evo", "standard-webhooks", "evo"]),
            [FieldError::new(
                "signature_schemes[2]",
                "evo is named twice"
            )]
        );
        assert_eq!(
            refused(&["evo", "Standard-Webhooks", "svix"])
                .iter()
                .map(|e| e.field.as_str())
                .collect::<Vec<_>>(),
            ["signature_schemes[1]", "signature_schemes[2]"]
        );
        // Stored settings from before the field existed get the default.
        let old: IntegrationSettings = serde_json::from_str(
            r#"{"tenant":"acme","webhook_url":"https://siem.example.com/evo"}"#,
        )
        .unwrap();
        assert_eq!(old.signature_schemes, ["evo"]);
    }

    #[test]
    fn a_next_secret_needs_a_current_one() {
        let mut settings = IntegrationSettings::new("acme", "https://siem.example.com/evo");
        settings.next_signing_secret = Some("a-secret-of-sixteen-bytes".into());
        let err = settings.check(&[]).unwrap_err();
        assert_eq!(err.fields[0].field, "next_signing_secret");
    }
}

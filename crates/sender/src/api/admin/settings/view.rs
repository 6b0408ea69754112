//! What `GET .../siem-integration` answers: the settings with every secret replaced by whether
//! it is set, and header names with their values redacted.

use crate::batcher::BatchLimits;
use crate::settings::IntegrationSettings;
use serde::Serialize;
use std::collections::BTreeMap;

/// What GET answers.
#[derive(Debug, Serialize)]
pub(crate) struct SettingsView {
    tenant: String,
    webhook_url: String,
    headers: BTreeMap<String, &'static str>,
    signing_secret: SecretState,
    signature_schemes: Vec<String>,
    excluded_actions: Vec<String>,
    max_batch_events: usize,
    max_batch_bytes: usize,
    linger_ms: u64,
}

#[derive(Debug, Serialize)]
struct SecretState {
    /// Deliveries are signed.
    set: bool,
    /// A next secret waits for the rotation.
    next_set: bool,
}

impl SettingsView {
    pub(crate) fn of(settings: &IntegrationSettings) -> Self {
        let defaults = BatchLimits::default();
        Self {
            tenant: settings.tenant.clone(),
            webhook_url: settings.webhook_url.clone(),
            headers: settings
                .headers
                .keys()
                .map(|name| (name.clone(), "<redacted>"))
                .collect(),
            signing_secret: SecretState {
                set: settings.signing_secret.is_some(),
                next_set: settings.next_signing_secret.is_some(),
            },
            signature_schemes: settings.signature_schemes.clone(),
            excluded_actions: settings.excluded_actions.clone(),
            max_batch_events: settings.max_batch_events.unwrap_or(defaults.max_events()),
            max_batch_bytes: settings.max_batch_bytes.unwrap_or(defaults.max_bytes()),
            linger_ms: settings
                .linger_ms
                .unwrap_or(u64::try_from(defaults.linger().as_millis()).unwrap_or(u64::MAX)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::admin::settings::update::apply;
    use crate::api::admin::settings::update::tests::{allowed, update};

    #[test]
    fn the_view_never_shows_a_secret() {
        let (settings, _) = apply(
            "acme",
            None,
            update(
                r#"{"webhook_url": "http://127.0.0.1:9/hook", "headers": {"Authorization": "Splunk s3cr3t"},
                    "signing_secret": {"set": "first-secret-0123456789"}}"#,
            ),
            &allowed(),
        )
        .unwrap();
        let json = serde_json::to_string(&SettingsView::of(&settings)).unwrap();
        assert!(
            !json.contains("s3cr3t") && !json.contains("first-secret"),
            "{json}"
        );
        assert!(
            json.contains(r#""headers":{"Authorization":"<redacted>"}"#),
            "{json}"
        );
        assert!(
            json.contains(r#""signing_secret":{"set":true,"next_set":false}"#),
            "{json}"
        );
    }
}

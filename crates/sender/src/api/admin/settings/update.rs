//! A settings PUT: the body's shape, the operations on secrets and kept headers, and the rule
//! that write-only values never follow the webhook URL to another origin. The values
//! themselves are checked by [`IntegrationSettings::check`], as the configuration file's are.

use super::super::FieldError;
use crate::settings::IntegrationSettings;
use serde::Deserialize;
use std::collections::BTreeMap;

/// A header in a PUT: a new value, or `{"keep": true}`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum HeaderUpdate {
    Value(String),
    Keep { keep: bool },
}

/// An operation on a secret: exactly one of the fields.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretOp {
    set: Option<String>,
    clear: Option<bool>,
    keep: Option<bool>,
    rotate: Option<bool>,
}

/// The body of a PUT.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SettingsUpdate {
    webhook_url: Option<String>,
    headers: Option<BTreeMap<String, HeaderUpdate>>,
    signing_secret: Option<SecretOp>,
    next_signing_secret: Option<SecretOp>,
    signature_schemes: Option<Vec<String>>,
    excluded_actions: Option<Vec<String>>,
    max_batch_events: Option<usize>,
    max_batch_bytes: Option<usize>,
    linger_ms: Option<u64>,
}

pub(super) fn field(
    errors: &mut Vec<FieldError>,
    field: impl Into<String>,
    message: impl Into<String>,
) {
    errors.push(FieldError {
        field: field.into(),
        message: message.into(),
    });
}

/// Applies `update` to `current` (or to nothing, when creating); returns the new settings and
/// the names of the fields that changed, or every invalid field. The operations (keep, rotate,
/// a move to another origin) are checked here; the values themselves by
/// [`IntegrationSettings::check`], the same function the configuration file goes through.
pub(super) fn apply(
    tenant: &str,
    current: Option<&IntegrationSettings>,
    update: SettingsUpdate,
    allowed: &[ipnet::IpNet],
) -> Result<(IntegrationSettings, Vec<String>), Vec<FieldError>> {
    let mut errors = Vec::new();
    // Which write-only values this request gives: only those may go to a new origin.
    let mut supplied_headers = std::collections::BTreeSet::new();
    let (mut secret_supplied, mut next_secret_supplied) = (false, false);
    let mut next = current
        .cloned()
        .unwrap_or_else(|| IntegrationSettings::new(tenant, ""));

    match update.webhook_url {
        Some(url) => next.webhook_url = url,
        None if current.is_none() => field(&mut errors, "webhook_url", "required"),
        None => {}
    }

    if let Some(headers) = update.headers {
        let mut kept = BTreeMap::new();
        for (name, value) in headers {
            let path = format!("headers.{name}");
            let value = match value {
                HeaderUpdate::Value(value) => {
                    supplied_headers.insert(name.clone());
                    value
                }
                HeaderUpdate::Keep { keep: true } => match next.headers.get(&name) {
                    Some(stored) => stored.clone(),
                    None => {
                        field(&mut errors, path, "no stored value to keep");
                        continue;
                    }
                },
                HeaderUpdate::Keep { keep: false } => {
                    field(&mut errors, path, "give a value or {\"keep\": true}");
                    continue;
                }
            };
            kept.insert(name, value);
        }
        next.headers = kept;
    }

    let secret_op = |errors: &mut Vec<FieldError>,
                     name: &str,
                     op: SecretOp|
     -> Option<SecretAction> {
        let chosen = [
            op.set.is_some(),
            op.clear.is_some(),
            op.keep.is_some(),
            op.rotate.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if chosen != 1
            || op.clear == Some(false)
            || op.keep == Some(false)
            || op.rotate == Some(false)
        {
            field(
                errors,
                name,
                "give exactly one of {\"set\": \"...\"}, {\"clear\": true}, {\"keep\": true}, {\"rotate\": true}",
            );
            return None;
        }
        if let Some(secret) = op.set {
            return Some(SecretAction::Set(secret));
        }
        if op.clear.is_some() {
            return Some(SecretAction::Clear);
        }
        if op.rotate.is_some() {
            return Some(SecretAction::Rotate);
        }
        Some(SecretAction::Keep)
    };
    if let Some(op) = update.signing_secret {
        match secret_op(&mut errors, "signing_secret", op) {
            Some(SecretAction::Set(secret)) => {
                next.signing_secret = Some(secret);
                next.next_signing_secret = None;
                secret_supplied = true;
            }
            Some(SecretAction::Clear) => {
                next.signing_secret = None;
                next.next_signing_secret = None;
            }
            Some(SecretAction::Rotate) => match next.next_signing_secret.take() {
                Some(secret) => next.signing_secret = Some(secret),
                None => field(
                    &mut errors,
                    "signing_secret",
                    "no next secret to rotate to: set next_signing_secret first",
                ),
            },
            Some(SecretAction::Keep) | None => {}
        }
    }
    if let Some(op) = update.next_signing_secret {
        match secret_op(&mut errors, "next_signing_secret", op) {
            Some(SecretAction::Set(secret)) => {
                next.next_signing_secret = Some(secret);
                next_secret_supplied = true;
            }
            Some(SecretAction::Clear) => next.next_signing_secret = None,
            Some(SecretAction::Rotate) => {
                field(
                    &mut errors,
                    "next_signing_secret",
                    "rotate applies to signing_secret",
                );
            }
            Some(SecretAction::Keep) | None => {}
        }
    }

    if let Some(schemes) = update.signature_schemes {
        next.signature_schemes = schemes;
    }
    if let Some(actions) = update.excluded_actions {
        next.excluded_actions = actions;
    }
    if let Some(n) = update.max_batch_events {
        next.max_batch_events = Some(n);
    }
    if let Some(n) = update.max_batch_bytes {
        next.max_batch_bytes = Some(n);
    }
    if let Some(ms) = update.linger_ms {
        next.linger_ms = Some(ms);
    }
    // The values, whatever the operations: the one check every source of settings goes through.
    // A field already refused above is not reported twice.
    if let Err(invalid) = next.check(allowed) {
        for error in invalid.fields {
            if !errors.iter().any(|e| e.field == error.field) {
                errors.push(error);
            }
        }
    }
    // A URL refused on its own has no origin to compare with.
    if let Some(current) = current
        && !errors.iter().any(|e| e.field == "webhook_url")
        && !same_origin(&current.webhook_url, &next.webhook_url)
    {
        const AGAIN: &str = "the webhook URL moves to another origin (scheme, host or port): give this value again, or remove it, so that a value stored for the old endpoint is never sent to the new one";
        for name in next.headers.keys() {
            if !supplied_headers.contains(name) {
                field(&mut errors, format!("headers.{name}"), AGAIN);
            }
        }
        if next.signing_secret.is_some() && !secret_supplied {
            field(&mut errors, "signing_secret", AGAIN);
        }
        if next.next_signing_secret.is_some() && !next_secret_supplied {
            field(&mut errors, "next_signing_secret", AGAIN);
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let fields = changed_fields(current, &next);
    Ok((next, fields))
}

/// What is wrong with the body's shape, without the submitted value: serde's "invalid type:
/// string \"...\", expected ..." quotes the value, which may be a secret sent where an operation
/// object was expected (`"signing_secret": "..."`). Field names (unknown, missing, duplicate)
/// are kept; they are the API's own words or the client's keys, not values.
pub(super) fn shape_error(err: &serde_json::Error) -> String {
    let text = err.to_string();
    if ["unknown field", "missing field", "duplicate field"]
        .iter()
        .any(|p| text.starts_with(p))
    {
        return text;
    }
    let at = format!("at line {} column {}", err.line(), err.column());
    match text.split_once(", expected ") {
        Some((_, expected)) => {
            let expected = expected.split(" at line ").next().unwrap_or(expected);
            format!("wrong type or value {at}: expected {expected}")
        }
        None => format!("not the expected shape {at}"),
    }
}

/// Whether two webhook URLs share scheme, host and port (the default port of the scheme when
/// none is written). Unparsable URLs are never the same origin.
fn same_origin(a: &str, b: &str) -> bool {
    match (url::Url::parse(a), url::Url::parse(b)) {
        (Ok(a), Ok(b)) => {
            a.scheme() == b.scheme()
                && a.host() == b.host()
                && a.port_or_known_default() == b.port_or_known_default()
        }
        _ => false,
    }
}

enum SecretAction {
    Set(String),
    Clear,
    Rotate,
    Keep,
}

/// The names of the fields that differ; secrets are compared, never shown.
fn changed_fields(
    before: Option<&IntegrationSettings>,
    after: &IntegrationSettings,
) -> Vec<String> {
    let Some(before) = before else {
        let mut fields = vec!["webhook_url".to_owned()];
        if after.signing_secret.is_some() {
            fields.push("signing_secret".into());
        }
        if !after.headers.is_empty() {
            fields.push("headers".into());
        }
        if after.signature_schemes != crate::settings::default_signature_schemes() {
            fields.push("signature_schemes".into());
        }
        if !after.excluded_actions.is_empty() {
            fields.push("excluded_actions".into());
        }
        return fields;
    };
    let mut fields = Vec::new();
    let mut differs = |name: &str, changed: bool| {
        if changed {
            fields.push(name.to_owned());
        }
    };
    differs("webhook_url", before.webhook_url != after.webhook_url);
    differs("headers", before.headers != after.headers);
    differs(
        "signing_secret",
        before.signing_secret != after.signing_secret,
    );
    differs(
        "next_signing_secret",
        before.next_signing_secret != after.next_signing_secret,
    );
    differs(
        "signature_schemes",
        before.signature_schemes != after.signature_schemes,
    );
    differs(
        "excluded_actions",
        before.excluded_actions != after.excluded_actions,
    );
    differs(
        "max_batch_events",
        before.max_batch_events != after.max_batch_events,
    );
    differs(
        "max_batch_bytes",
        before.max_batch_bytes != after.max_batch_bytes,
    );
    differs("linger_ms", before.linger_ms != after.linger_ms);
    fields
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(crate) fn update(json: &str) -> SettingsUpdate {
        serde_json::from_str(json).unwrap()
    }

    pub(crate) fn allowed() -> Vec<ipnet::IpNet> {
        vec!["127.0.0.1/32".parse().unwrap()]
    }

    #[test]
    fn every_invalid_field_is_reported_and_nothing_is_applied() {
        let errors = apply(
            "acme",
            None,
            update(
                r#"{"webhook_url": "http://example.com/hook",
                    "headers": {"Host": "x", "X-Evo-Delivery-Id": "x", "Bad Name": "x", "X-Ok": "a\r\nInjected: yes",
                                "Transfer-Encoding": "chunked", "Connection": "close", "TE": "trailers",
                                "Upgrade": "h2c", "Keep-Alive": "timeout=5", "Trailer": "X-Ok",
                                "Proxy-Authorization": "Basic eA==", "proxy-connection": "close"},
                    "signing_secret": {"set": "short"},
                    "excluded_actions": ["User login", ""],
                    "max_batch_events": 0, "max_batch_bytes": 10, "linger_ms": 3600000}"#,
            ),
            &allowed(),
        )
        .unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "webhook_url",
                "headers.Bad Name",
                "headers.Connection",
                "headers.Host",
                "headers.Keep-Alive",
                "headers.Proxy-Authorization",
                "headers.TE",
                "headers.Trailer",
                "headers.Transfer-Encoding",
                "headers.Upgrade",
                "headers.X-Evo-Delivery-Id",
                "headers.X-Ok",
                "headers.proxy-connection",
                "signing_secret",
                "excluded_actions[1]",
                "max_batch_events",
                "max_batch_bytes",
                "linger_ms"
            ]
        );
        assert!(errors.iter().all(|e| !e.message.contains("short")));
    }

    #[test]
    fn secrets_rotate_and_headers_can_be_kept_without_resending_them() {
        let (created, fields) = apply(
            "acme",
            None,
            update(
                r#"{"webhook_url": "http://127.0.0.1:9/hook", "headers": {"Authorization": "Splunk s3cr3t"},
                    "signing_secret": {"set": "first-secret-0123456789"}}"#,
            ),
            &allowed(),
        )
        .unwrap();
        assert_eq!(fields, ["webhook_url", "signing_secret", "headers"]);
        let (kept, fields) = apply(
            "acme",
            Some(&created),
            update(r#"{"headers": {"Authorization": {"keep": true}, "X-Source": "evo"}, "excluded_actions": ["User login"]}"#),
            &allowed(),
        )
        .unwrap();
        assert_eq!(kept.headers["Authorization"], "Splunk s3cr3t");
        assert_eq!(
            kept.signing_secret.as_deref(),
            Some("first-secret-0123456789")
        );
        assert_eq!(fields, ["headers", "excluded_actions"]);

        let (pending, _) = apply(
            "acme",
            Some(&kept),
            update(r#"{"next_signing_secret": {"set": "second-secret-0123456789"}}"#),
            &allowed(),
        )
        .unwrap();
        assert_eq!(
            pending.signing_secret.as_deref(),
            Some("first-secret-0123456789")
        );
        let (rotated, fields) = apply(
            "acme",
            Some(&pending),
            update(r#"{"signing_secret": {"rotate": true}}"#),
            &allowed(),
        )
        .unwrap();
        assert_eq!(
            rotated.signing_secret.as_deref(),
            Some("second-secret-0123456789")
        );
        assert_eq!(rotated.next_signing_secret, None);
        assert_eq!(fields, ["signing_secret", "next_signing_secret"]);
        let err = apply(
            "acme",
            Some(&rotated),
            update(r#"{"signing_secret": {"rotate": true}}"#),
            &allowed(),
        )
        .unwrap_err();
        assert_eq!(err[0].field, "signing_secret");
        let (cleared, _) = apply(
            "acme",
            Some(&rotated),
            update(r#"{"signing_secret": {"clear": true}}"#),
            &allowed(),
        )
        .unwrap();
        assert_eq!(cleared.signing_secret, None);
        let err = apply(
            "acme",
            Some(&cleared),
            update(r#"{"signing_secret": {"set": "a-long-enough-secret", "clear": true}}"#),
            &allowed(),
        )
        .unwrap_err();
        assert_eq!(err[0].field, "signing_secret");
        let err = apply(
            "acme",
            Some(&cleared),
            update(r#"{"headers": {"X-Gone": {"keep": true}}}"#),
            &allowed(),
        )
        .unwrap_err();
        assert_eq!(err[0].field, "headers.X-Gone");
    }
}

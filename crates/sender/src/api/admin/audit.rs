//! Changes to an integration are themselves audit events of the tenant: the SIEM learns that its
//! own configuration changed, who changed it and which fields, never the secrets' values.

use super::Principal;
use crate::spool::NewEvent;
use serde_json::json;
use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

/// What happened to the integration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    Created,
    Updated,
    Deleted,
}

/// The audit event of a change by `principal` from `from`, naming the `fields` that changed.
pub(crate) fn event(
    change: Change,
    principal: &Principal,
    from: Option<IpAddr>,
    tenant: &str,
    fields: &[String],
) -> NewEvent {
    let (event_type, action) = match change {
        Change::Created => ("create", "SIEM integration created"),
        Change::Updated => ("update", "SIEM integration updated"),
        Change::Deleted => ("delete", "SIEM integration deleted"),
    };
    let now = SystemTime::now();
    let ns = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
    let actor = if principal.label.is_empty() {
        format!("api-token:{}", principal.token_id)
    } else {
        format!("{} (api-token:{})", principal.label, principal.token_id)
    };
    let json = json!({
        "event_type": event_type,
        "table": "siem_integrations",
        "timestamp": evo_siem_protocol::format_generated_at(now),
        "data": {
            "uuid": uuid::Uuid::new_v4().to_string(),
            "action": action,
            "status": "Success",
            "actor": {"kind": "ApiToken", "name": actor},
            "origin": {"hostname": "evo-siem-admin-api", "ipaddr": from.map(|ip| ip.to_string()).unwrap_or_default()},
            "target": {"kind": "SiemIntegration", "name": tenant},
            "ts": ns,
            "created_at": ns,
            "changed_fields": fields,
        },
    });
    NewEvent {
        action: action.to_owned(),
        json: json.to_string(),
    }
}

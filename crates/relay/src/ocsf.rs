//! `format = "ocsf"`: Evo audit events mapped to classes of the Open Cybersecurity Schema
//! Framework, version [`OCSF_VERSION`], for SIEMs that normalize on OCSF (Amazon Security Lake,
//! Splunk's OCSF add-ons, and others).
//!
//! The class and activity come from the event's `data.action`, exactly (the table below, also
//! [`TABLE`]); any other action falls to the default class, **API Activity** (6003) with activity
//! **Other** (99) and the action as `activity_name`.
//!
//! | `data.action` | class (`class_uid`) | activity (`activity_id`) |
//! |---|---|---|
//! | `User login` | Authentication (3002) | Logon (1) |
//! | `User logout` | Authentication (3002) | Logoff (2) |
//! | `Token refreshed` | Authentication (3002) | Other (99) |
//! | `User invited`, `User created` | Account Change (3001) | Create (1) |
//! | `User enabled` | Account Change (3001) | Enable (2) |
//! | `Password changed` | Account Change (3001) | Password Change (3) |
//! | `Password reset` | Account Change (3001) | Password Reset (4) |
//! | `User disabled` | Account Change (3001) | Disable (5) |
//! | `User deleted` | Account Change (3001) | Delete (6) |
//! | `User locked` | Account Change (3001) | Lock (9) |
//! | `MFA enrolled` | Account Change (3001) | MFA Factor Enable (10) |
//! | `MFA removed` | Account Change (3001) | MFA Factor Disable (11) |
//! | `Role assigned` | User Access Management (3005) | Assign Privileges (1) |
//! | `Role revoked` | User Access Management (3005) | Revoke Privileges (2) |
//! | `API key created` | API Activity (6003) | Create (1) |
//! | `Record viewed`, `Report exported` | API Activity (6003) | Read (2) |
//! | `Record updated`, `SIEM integration updated` | API Activity (6003) | Update (3) |
//! | `API key revoked` | API Activity (6003) | Delete (4) |
//! | any other | API Activity (6003) | Other (99) |
//!
//! Every class gets the same base: `time` (`data.ts` in milliseconds), `severity_id` 1
//! (Informational), `status_id` 1 for `Success`, 2 for `Failure`, 99 otherwise (with `status`,
//! the original text), `metadata` (`version`, `product` Evo, `uid` = `data.uuid`,
//! `original_time` = `timestamp`, `logged_time` = `data.created_at` in milliseconds,
//! `event_code` = the action, `log_name` = `table`), `src_endpoint` from `data.origin` (`ip`
//! when it is an IP address, `hostname` when it is a host name, `name` otherwise), a `message`,
//! and **`raw_data`: the original event's JSON, exactly as received**, so nothing is lost.
//!
//! Users are OCSF `user` objects named after the entity (`type_id` 1 User for `kind: "User"`,
//! otherwise 99 Other with the kind as `type`). Authentication: `user` is the actor who logs in,
//! `service` is Evo. Account Change and User Access Management: `actor.user` acted on `user`
//! (the target); `privileges` is the event's `data.role` (or `data.privileges`) when present,
//! else the action. User Access Management has `actor` only with OCSF's host profile, so its
//! events declare `metadata.profiles = ["host"]`. API Activity: `actor.user`, `api.operation` = the action, and the target as
//! `resources[0]` (`type` = its kind, `name`).
//!
//! The tests validate every mapped event against the official JSON Schema of its class,
//! generated from the OCSF 1.3.0 export and vendored in `fixtures/ocsf/1.3.0/`, where no
//! property a class does not define is allowed.

use evo_siem_protocol::{Entity, Event};
use serde_json::{Map, Value, json};

/// The OCSF version the mapping targets (`metadata.version`).
pub const OCSF_VERSION: &str = "1.3.0";

/// The OCSF classes the mapping uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Authentication (3002), category Identity & Access Management.
    Authentication,
    /// Account Change (3001), category Identity & Access Management.
    AccountChange,
    /// User Access Management (3005), category Identity & Access Management.
    UserAccessManagement,
    /// API Activity (6003), category Application Activity: the default.
    ApiActivity,
}

impl Class {
    /// `class_uid`.
    pub fn uid(self) -> u32 {
        match self {
            Self::Authentication => 3002,
            Self::AccountChange => 3001,
            Self::UserAccessManagement => 3005,
            Self::ApiActivity => 6003,
        }
    }

    /// `class_name`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Authentication => "Authentication",
            Self::AccountChange => "Account Change",
            Self::UserAccessManagement => "User Access Management",
            Self::ApiActivity => "API Activity",
        }
    }

    /// The class's name in the OCSF schema (`authentication`, ...), as in the vendored
    /// schema files.
    pub fn schema_name(self) -> &'static str {
        match self {
            Self::Authentication => "authentication",
            Self::AccountChange => "account_change",
            Self::UserAccessManagement => "user_access",
            Self::ApiActivity => "api_activity",
        }
    }

    fn category(self) -> (u32, &'static str) {
        match self {
            Self::ApiActivity => (6, "Application Activity"),
            _ => (3, "Identity & Access Management"),
        }
    }
}

/// The mapping: `data.action` → class, `activity_id`, activity caption.
pub const TABLE: &[(&str, Class, u32, &str)] = &[
    ("User login", Class::Authentication, 1, "Logon"),
    ("User logout", Class::Authentication, 2, "Logoff"),
    ("Token refreshed", Class::Authentication, 99, "Other"),
    ("User invited", Class::AccountChange, 1, "Create"),
    ("User created", Class::AccountChange, 1, "Create"),
    ("User enabled", Class::AccountChange, 2, "Enable"),
    (
        "Password changed",
        Class::AccountChange,
        3,
        "Password Change",
    ),
    ("Password reset", Class::AccountChange, 4, "Password Reset"),
    ("User disabled", Class::AccountChange, 5, "Disable"),
    ("User deleted", Class::AccountChange, 6, "Delete"),
    ("User locked", Class::AccountChange, 9, "Lock"),
    (
        "MFA enrolled",
        Class::AccountChange,
        10,
        "MFA Factor Enable",
    ),
    (
        "MFA removed",
        Class::AccountChange,
        11,
        "MFA Factor Disable",
    ),
    (
        "Role assigned",
        Class::UserAccessManagement,
        1,
        "Assign Privileges",
    ),
    (
        "Role revoked",
        Class::UserAccessManagement,
        2,
        "Revoke Privileges",
    ),
    ("API key created", Class::ApiActivity, 1, "Create"),
    ("Record viewed", Class::ApiActivity, 2, "Read"),
    ("Report exported", Class::ApiActivity, 2, "Read"),
    ("Record updated", Class::ApiActivity, 3, "Update"),
    ("SIEM integration updated", Class::ApiActivity, 3, "Update"),
    ("API key revoked", Class::ApiActivity, 4, "Delete"),
];

/// The class and activity of an action: its [`TABLE`] row, or API Activity / Other.
pub fn classify(action: &str) -> (Class, u32, &'static str) {
    TABLE.iter().find(|(a, ..)| *a == action).map_or(
        (Class::ApiActivity, 99, "Other"),
        |&(_, class, id, name)| (class, id, name),
    )
}

fn user(entity: &Entity<'_>) -> Value {
    if entity.kind == "User" {
        json!({ "name": entity.name, "type": "User", "type_id": 1 })
    } else {
        json!({ "name": entity.name, "type": entity.kind, "type_id": 99 })
    }
}

/// RFC 1123 host name syntax, as OCSF's `hostname_t` requires.
fn is_hostname(name: &str) -> bool {
    !name.is_empty()
        && name.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

fn src_endpoint(event: &Event<'_>) -> Value {
    let origin = &event.data.origin;
    let mut endpoint = Map::new();
    if origin.ipaddr.parse::<std::net::IpAddr>().is_ok() {
        endpoint.insert("ip".into(), json!(origin.ipaddr));
    }
    if is_hostname(&origin.hostname) {
        endpoint.insert("hostname".into(), json!(origin.hostname));
    } else if !origin.hostname.is_empty() {
        endpoint.insert("name".into(), json!(origin.hostname));
    }
    if endpoint.is_empty() {
        endpoint.insert("name".into(), json!("unknown"));
    }
    Value::Object(endpoint)
}

/// `data.role` or `data.privileges` (a string or a list of strings), else the action.
fn privileges(event: &Event<'_>) -> Value {
    for field in ["role", "privileges"] {
        let Some(raw) = event.data.extra.get(field) else {
            continue;
        };
        match serde_json::from_str::<Value>(raw.get()) {
            Ok(Value::String(one)) => return json!([one]),
            Ok(Value::Array(many)) if !many.is_empty() && many.iter().all(Value::is_string) => {
                return Value::Array(many);
            }
            _ => {}
        }
    }
    json!([event.data.action])
}

/// The OCSF event of `event`; `raw` is its received JSON, kept as `raw_data`.
pub fn map(event: &Event<'_>, raw: &str) -> Value {
    let data = &event.data;
    let (class, activity_id, caption) = classify(&data.action);
    let activity_name: &str = if activity_id == 99 {
        &data.action
    } else {
        caption
    };
    let (category_uid, category_name) = class.category();
    let (status_id, status) = match &*data.status {
        "Success" => (1, "Success"),
        "Failure" => (2, "Failure"),
        other => (99, other),
    };
    let millis = |ns: i64| ns.div_euclid(1_000_000);
    let mut out = json!({
        "activity_id": activity_id,
        "activity_name": activity_name,
        "category_uid": category_uid,
        "category_name": category_name,
        "class_uid": class.uid(),
        "class_name": class.name(),
        "type_uid": u64::from(class.uid()) * 100 + u64::from(activity_id),
        "type_name": format!("{}: {activity_name}", class.name()),
        "severity_id": 1,
        "severity": "Informational",
        "status_id": status_id,
        "status": status,
        "time": millis(data.ts),
        "message": format!("{} by {} {}: {}", data.action, data.actor.kind, data.actor.name, data.status),
        "metadata": {
            "version": OCSF_VERSION,
            "product": { "name": "Evo", "vendor_name": "Evo" },
            "uid": data.uuid,
            "original_time": event.timestamp,
            "logged_time": millis(data.created_at),
            "event_code": data.action,
            "log_name": event.table,
        },
        "src_endpoint": src_endpoint(event),
        "raw_data": raw,
    });
    let fields = match class {
        Class::Authentication => json!({
            "user": user(&data.actor),
            "actor": { "user": user(&data.actor) },
            "service": { "name": "Evo" },
        }),
        Class::AccountChange => json!({
            "user": user(&data.target),
            "actor": { "user": user(&data.actor) },
        }),
        Class::UserAccessManagement => {
            // In 1.3.0 this class has `actor` only with the host profile, declared here.
            out["metadata"]["profiles"] = json!(["host"]);
            json!({
                "user": user(&data.target),
                "actor": { "user": user(&data.actor) },
                "privileges": privileges(event),
            })
        }
        Class::ApiActivity => json!({
            "actor": { "user": user(&data.actor) },
            "api": { "operation": data.action },
            "resources": [{ "type": data.target.kind, "name": data.target.name }],
        }),
    };
    if let (Value::Object(out), Value::Object(fields)) = (&mut out, fields) {
        out.extend(fields);
    }
    out
}

/// [`map`], as one line of JSON.
pub fn to_json(event: &Event<'_>, raw: &str) -> String {
    map(event, raw).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_follow_rfc_1123() {
        assert!(is_hostname("DESKTOP-ABC"));
        assert!(is_hostname("relay-1.example.com"));
        assert!(!is_hostname("my_host"));
        assert!(!is_hostname("-bad"));
        assert!(!is_hostname("a..b"));
        assert!(!is_hostname(""));
    }

    #[test]
    fn every_table_row_is_found_and_the_rest_is_the_default() {
        for &(action, class, id, _) in TABLE {
            assert_eq!(classify(action).0, class);
            assert_eq!(classify(action).1, id);
        }
        assert_eq!(classify("Something new"), (Class::ApiActivity, 99, "Other"));
        assert_eq!(classify("user login").1, 99, "exact, case-sensitive");
    }
}

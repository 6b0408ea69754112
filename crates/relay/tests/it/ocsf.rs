//! `format = "ocsf"`: every row of the mapping, and the default, validated against the official
//! JSON Schema of its OCSF 1.3.0 class (vendored in `fixtures/ocsf/1.3.0/`, strict: no property
//! a class does not define), event by event; and the format through the relay's outputs.

use crate::common::{deliver, relay_from_toml, uuid};
use crate::fakes::{EsState, elasticsearch};
use evo_siem_protocol::Event;
use evo_siem_relay::ocsf::{self, Class, TABLE};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::Path;

/// The four class schemas, compiled.
struct Schemas {
    schemas: boon::Schemas,
    by_class: HashMap<&'static str, boon::SchemaIndex>,
}

impl Schemas {
    fn load() -> Self {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/ocsf/1.3.0");
        let mut schemas = boon::Schemas::new();
        let mut compiler = boon::Compiler::new();
        let mut by_class = HashMap::new();
        for class in [
            Class::Authentication,
            Class::AccountChange,
            Class::UserAccessManagement,
            Class::ApiActivity,
        ] {
            let name = class.schema_name();
            let text = std::fs::read_to_string(dir.join(format!("{name}.json"))).unwrap();
            let schema: Value = serde_json::from_str(&text).unwrap();
            let id = schema["$id"].as_str().unwrap().to_owned();
            let profiles = if class == Class::UserAccessManagement {
                "?profiles=host"
            } else {
                ""
            };
            assert_eq!(
                id,
                format!("https://schema.ocsf.io/schema/1.3.0/classes/{name}{profiles}")
            );
            compiler.add_resource(&id, schema).unwrap();
            by_class.insert(name, compiler.compile(&id, &mut schemas).unwrap());
        }
        Self { schemas, by_class }
    }

    /// Validates `mapped` against the schema of its class (by `class_uid`).
    fn check(&self, mapped: &Value) -> Result<(), String> {
        let class = match mapped["class_uid"].as_u64() {
            Some(3002) => "authentication",
            Some(3001) => "account_change",
            Some(3005) => "user_access",
            Some(6003) => "api_activity",
            other => return Err(format!("unexpected class_uid {other:?}")),
        };
        self.schemas
            .validate(mapped, self.by_class[class])
            .map_err(|e| format!("{e:#}"))
    }
}

/// An event of `action`, with these actor and target kinds, status and origin.
fn event_text(
    action: &str,
    actor_kind: &str,
    target_kind: &str,
    status: &str,
    origin: (&str, &str),
) -> String {
    json!({
        "event_type": "create",
        "table": "events",
        "timestamp": "2024-01-23T08:53:20.123Z",
        "data": {
            "uuid": uuid(),
            "action": action,
            "status": status,
            "actor": {"kind": actor_kind, "name": "zoë@example.com"},
            "origin": {"hostname": origin.0, "ipaddr": origin.1},
            "target": {"kind": target_kind, "name": "ana@example.com"},
            "ts": 1_706_000_000_123_456_789_i64,
            "created_at": 1_706_000_000_223_456_789_i64,
            "geo": {"country": "PT"}
        },
        "tenant_hint": "acme"
    })
    .to_string()
}

fn mapped(text: &str) -> Value {
    let event = Event::from_json(text).unwrap();
    ocsf::map(&event, text)
}

/// The documented table, written out again: `data.action`, `class_uid`, `activity_id`, caption.
const EXPECTED: [(&str, u32, u32, &str); 21] = [
    ("User login", 3002, 1, "Logon"),
    ("User logout", 3002, 2, "Logoff"),
    ("Token refreshed", 3002, 99, "Token refreshed"),
    ("User invited", 3001, 1, "Create"),
    ("User created", 3001, 1, "Create"),
    ("User enabled", 3001, 2, "Enable"),
    ("Password changed", 3001, 3, "Password Change"),
    ("Password reset", 3001, 4, "Password Reset"),
    ("User disabled", 3001, 5, "Disable"),
    ("User deleted", 3001, 6, "Delete"),
    ("User locked", 3001, 9, "Lock"),
    ("MFA enrolled", 3001, 10, "MFA Factor Enable"),
    ("MFA removed", 3001, 11, "MFA Factor Disable"),
    ("Role assigned", 3005, 1, "Assign Privileges"),
    ("Role revoked", 3005, 2, "Revoke Privileges"),
    ("API key created", 6003, 1, "Create"),
    ("Record viewed", 6003, 2, "Read"),
    ("Report exported", 6003, 2, "Read"),
    ("Record updated", 6003, 3, "Update"),
    ("SIEM integration updated", 6003, 3, "Update"),
    ("API key revoked", 6003, 4, "Delete"),
];

#[test]
fn every_row_of_the_table_maps_to_a_valid_event_of_its_class() {
    let schemas = Schemas::load();
    assert_eq!(
        TABLE.len(),
        EXPECTED.len(),
        "every row of the code's table is checked"
    );
    for (action, class_uid, activity_id, activity_name) in EXPECTED {
        let (class, ..) = ocsf::classify(action);
        let target = if class == Class::ApiActivity {
            "Record"
        } else {
            "User"
        };
        let text = event_text(
            action,
            "User",
            target,
            "Success",
            ("DESKTOP-ABC", "192.0.2.10"),
        );
        let out = mapped(&text);
        if let Err(errors) = schemas.check(&out) {
            panic!("{action}: {errors}\n{out:#}");
        }
        assert_eq!(out["class_uid"], class_uid, "{action}");
        assert_eq!(out["class_name"], class.name(), "{action}");
        assert_eq!(out["activity_id"], activity_id, "{action}");
        assert_eq!(out["activity_name"], activity_name, "{action}");
        assert_eq!(
            out["type_uid"],
            u64::from(class_uid) * 100 + u64::from(activity_id)
        );
        assert_eq!(
            out["type_name"],
            format!("{}: {activity_name}", class.name())
        );
        assert_eq!(out["time"], 1_706_000_000_123_i64);
        assert_eq!(out["status_id"], 1);
        assert_eq!(out["raw_data"], text, "the original event, exactly");
        let original: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(out["metadata"]["uid"], original["data"]["uuid"]);
        assert_eq!(out["metadata"]["version"], "1.3.0");
        assert_eq!(out["metadata"]["logged_time"], 1_706_000_000_223_i64);
        assert_eq!(out["metadata"]["original_time"], "2024-01-23T08:53:20.123Z");
        assert_eq!(
            out["src_endpoint"],
            json!({"ip": "192.0.2.10", "hostname": "DESKTOP-ABC"})
        );
    }
}

#[test]
fn logins_logouts_and_account_changes_name_the_right_users() {
    let login = mapped(&event_text(
        "User login",
        "User",
        "User",
        "Failure",
        ("h", "2001:db8::1"),
    ));
    assert_eq!(login["class_uid"], 3002);
    assert_eq!(login["status_id"], 2);
    assert_eq!(login["status"], "Failure");
    assert_eq!(
        login["user"],
        json!({"name": "zoë@example.com", "type": "User", "type_id": 1})
    );
    assert_eq!(login["service"], json!({"name": "Evo"}));
    assert_eq!(login["src_endpoint"]["ip"], "2001:db8::1");

    let change = mapped(&event_text(
        "Password changed",
        "User",
        "User",
        "Success",
        ("h", "192.0.2.1"),
    ));
    assert_eq!(change["class_uid"], 3001);
    assert_eq!(change["activity_id"], 3);
    assert_eq!(
        change["user"]["name"], "ana@example.com",
        "the account changed"
    );
    assert_eq!(
        change["actor"]["user"]["name"], "zoë@example.com",
        "who changed it"
    );

    let mut role: Value = serde_json::from_str(&event_text(
        "Role assigned",
        "User",
        "User",
        "Success",
        ("h", "192.0.2.1"),
    ))
    .unwrap();
    role["data"]["role"] = json!("billing-admin");
    let role = mapped(&role.to_string());
    assert_eq!(role["class_uid"], 3005);
    assert_eq!(role["privileges"], json!(["billing-admin"]));
    Schemas::load().check(&role).unwrap();
}

#[test]
fn the_default_class_takes_any_other_action_and_odd_origins_stay_valid() {
    let schemas = Schemas::load();
    let cases = [
        (
            "Dashboard shared",
            "ApiKey",
            "Dashboard",
            "Success",
            ("my_host", "not-an-ip"),
        ),
        (
            "Webhook test sent",
            "User",
            "Integration",
            "Pending",
            ("", ""),
        ),
        (
            "API key created",
            "ApiKey",
            "ApiKey",
            "Success",
            ("relay-1.example.com", "::1"),
        ),
    ];
    for (action, actor, target, status, origin) in cases {
        let out = mapped(&event_text(action, actor, target, status, origin));
        if let Err(errors) = schemas.check(&out) {
            panic!("{action}: {errors}\n{out:#}");
        }
        assert_eq!(out["class_uid"], 6003);
        assert_eq!(out["api"]["operation"], action);
        assert_eq!(
            out["resources"][0],
            json!({"type": target, "name": "ana@example.com"})
        );
    }
    let default = mapped(&event_text(
        "Dashboard shared",
        "ApiKey",
        "Dashboard",
        "Pending",
        ("my_host", "x"),
    ));
    assert_eq!(default["activity_id"], 99);
    assert_eq!(default["activity_name"], "Dashboard shared");
    assert_eq!(default["status_id"], 99);
    assert_eq!(default["status"], "Pending");
    assert_eq!(
        default["actor"]["user"],
        json!({"name": "zoë@example.com", "type": "ApiKey", "type_id": 99})
    );
    assert_eq!(default["src_endpoint"], json!({"name": "my_host"}));
    let empty = mapped(&event_text(
        "Webhook test sent",
        "User",
        "Integration",
        "Success",
        ("", ""),
    ));
    assert_eq!(empty["src_endpoint"], json!({"name": "unknown"}));
}

#[test]
fn the_schemas_are_strict() {
    let schemas = Schemas::load();
    let good = mapped(&event_text(
        "User login",
        "User",
        "User",
        "Success",
        ("h", "192.0.2.1"),
    ));
    schemas.check(&good).unwrap();
    let mut extra = good.clone();
    extra["evo_tenant"] = json!("acme");
    assert!(
        schemas.check(&extra).is_err(),
        "an undefined property is refused"
    );
    let mut nested = good.clone();
    nested["user"]["kind"] = json!("User");
    assert!(schemas.check(&nested).is_err(), "at every level");
    let mut missing = good;
    missing.as_object_mut().unwrap().remove("user");
    assert!(
        schemas.check(&missing).is_err(),
        "a required property is required"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outputs_in_ocsf_format_write_the_mapping_and_raw_outputs_beside_them_the_original() {
    let schemas = Schemas::load();
    let dir = tempfile::tempdir().unwrap();
    let key = "ocsf-es-key";
    let (es_url, es) = elasticsearch(EsState {
        authorization: format!("ApiKey {key}"),
        ..EsState::default()
    })
    .await;
    let toml = format!(
        "[[output]]\ntype = \"file\"\nformat = \"ocsf\"\npath = \"{}\"\n\
         [[output]]\ntype = \"file\"\nname = \"raw\"\npath = \"{}\"\n\
         [[output]]\ntype = \"elasticsearch\"\nformat = \"ocsf\"\nurl = \"{es_url}\"\nindex = \"ocsf\"\napi_key_env = \"KEY\"\n",
        dir.path().join("ocsf.ndjson").display(),
        dir.path().join("raw.ndjson").display(),
    );
    let (relay, _) = relay_from_toml(dir.path(), &toml, &[("KEY", key)]).await;
    let batch = vec![
        event_text("User login", "User", "User", "Success", ("h", "192.0.2.1")),
        event_text(
            "Role assigned",
            "User",
            "User",
            "Success",
            ("h", "192.0.2.1"),
        ),
        event_text(
            "Record viewed",
            "ApiKey",
            "Record",
            "Success",
            ("h", "192.0.2.1"),
        ),
    ];
    assert_eq!(deliver(&relay.webhook_url(), &batch).await.0, 200);
    let ocsf_lines = std::fs::read_to_string(dir.path().join("ocsf.ndjson")).unwrap();
    let raw_lines = std::fs::read_to_string(dir.path().join("raw.ndjson")).unwrap();
    assert_eq!(raw_lines.lines().collect::<Vec<_>>(), batch);
    let classes: Vec<u64> = ocsf_lines
        .lines()
        .zip(&batch)
        .map(|(line, original)| {
            let out: Value = serde_json::from_str(line).unwrap();
            schemas.check(&out).unwrap();
            assert_eq!(out["raw_data"], *original);
            out["class_uid"].as_u64().unwrap()
        })
        .collect();
    assert_eq!(classes, [3002, 3005, 6003]);
    let es = es.lock().unwrap();
    for original in &batch {
        let id = serde_json::from_str::<Value>(original).unwrap()["data"]["uuid"]
            .as_str()
            .unwrap()
            .to_owned();
        let doc = &es.documents[&("ocsf".to_owned(), id)];
        schemas.check(doc).unwrap();
        assert_eq!(doc["raw_data"], *original);
    }
}

//! What the sender suite generates: event streams, integration settings and fault scripts.

use evo_siem_mock::faults::{Action, Rule, When};
use proptest::prelude::*;
use proptest::sample::{select, subsequence};
use serde_json::json;

/// The actions events are drawn from: ASCII and not, some of them excluded in a given case.
pub const ACTIONS: [&str; 8] = [
    "User login",
    "User logout",
    "Password changed",
    "API key created",
    "Role assigned",
    "Integration updated",
    "Connexion réussie",
    "ログイン",
];

/// One ingested event.
#[derive(Debug, Clone, PartialEq)]
pub struct GenEvent {
    /// `data.uuid`.
    pub uuid: String,
    /// `data.action`, exactly.
    pub action: String,
    /// The event as ingested.
    pub json: String,
}

/// One integration of a case: its settings, its event stream and the faults its SIEM injects.
#[derive(Clone, PartialEq)]
pub struct IntegrationCase {
    /// The tenant.
    pub tenant: String,
    /// The signing secret, or none for an unsigned integration.
    pub secret: Option<String>,
    /// Headers the sender must add to every delivery.
    pub headers: Vec<(String, String)>,
    /// Excluded actions (exact match).
    pub excluded: Vec<String>,
    /// Batch limit in events.
    pub max_batch_events: usize,
    /// Batch limit in bytes.
    pub max_batch_bytes: usize,
    /// How long the oldest event may wait for a batch to fill.
    pub linger_ms: u64,
    /// The events, in ingest order.
    pub events: Vec<GenEvent>,
    /// Events per ingest request.
    pub chunk: usize,
    /// The SIEM's fault script.
    pub faults: Vec<Rule>,
}

impl std::fmt::Debug for IntegrationCase {
    // The secret stays out of Debug output like every other secret in the workspace; the header
    // values are generated test values and help reproduce a failure.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IntegrationCase")
            .field("tenant", &self.tenant)
            .field("signed", &self.secret.is_some())
            .field("headers", &self.headers)
            .field("excluded", &self.excluded)
            .field("max_batch_events", &self.max_batch_events)
            .field("max_batch_bytes", &self.max_batch_bytes)
            .field("linger_ms", &self.linger_ms)
            .field("events", &self.events.len())
            .field(
                "actions",
                &self.events.iter().map(|e| &e.action).collect::<Vec<_>>(),
            )
            .field("chunk", &self.chunk)
            .field("faults", &self.faults)
            .finish()
    }
}

impl IntegrationCase {
    /// Whether the sender must drop `action` (exact match, nothing else).
    pub fn excludes(&self, action: &str) -> bool {
        self.excluded.iter().any(|e| e == action)
    }

    /// The events the SIEM must receive, in ingest order.
    pub fn expected(&self) -> impl Iterator<Item = &GenEvent> {
        self.events.iter().filter(|e| !self.excludes(&e.action))
    }
}

/// One run: a sender with these integrations, fed in chunks, maybe restarted.
#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    /// The integrations.
    pub integrations: Vec<IntegrationCase>,
    /// Restart the sender after this many ingest requests (after all of them when larger).
    pub restart_after: Option<usize>,
    /// Seed of the mock SIEMs' fault generators.
    pub fault_seed: u64,
}

/// A variant of `action` that is not the same string: case and whitespace changes, which an
/// exact filter must not treat as excluded.
fn variant(action: &str, kind: u8) -> String {
    match kind {
        0 => action.to_lowercase(),
        1 => action.to_uppercase(),
        2 => format!("{action} "),
        3 => format!(" {action}"),
        _ => action.replacen(' ', "  ", 1),
    }
}

/// An action: usually one of [`ACTIONS`], sometimes a near miss of one.
fn action() -> impl Strategy<Value = String> {
    (select(&ACTIONS[..]), prop::option::weighted(0.2, 0u8..5)).prop_map(|(a, v)| match v {
        Some(kind) => variant(a, kind),
        None => a.to_owned(),
    })
}

/// A realistic event with nanosecond values above 2^53, a non-ASCII actor and, sometimes,
/// fields the contract does not know (at the top and inside `data`).
pub(crate) fn event() -> impl Strategy<Value = GenEvent> {
    (
        action(),
        (1_i64 << 53)..=i64::MAX,
        select(
            &[
                "ana@example.com",
                "zoë@example.com",
                "李雷@example.cn",
                "o'brien@example.ie",
            ][..],
        ),
        any::<bool>(),
        any::<bool>(),
        any::<u128>(),
    )
        .prop_map(|(action, ts, actor, extra_top, extra_data, id)| {
            let uuid = uuid::Builder::from_random_bytes(id.to_le_bytes())
                .into_uuid()
                .to_string();
            let mut event = json!({
                "event_type": "create", "table": "events", "timestamp": "2024-01-15T10:30:00.000Z",
                "data": {
                    "uuid": uuid, "action": action, "status": "Success",
                    "actor": {"kind": "User", "name": actor},
                    "origin": {"hostname": "DESKTOP-ÆØÅ", "ipaddr": "192.0.2.1"},
                    "target": {"kind": "User", "name": "user@example.com"},
                    "ts": ts, "created_at": ts - 1,
                },
            });
            if extra_top {
                event["x_region"] = json!("eu-west-1");
            }
            if extra_data {
                event["data"]["x_custom"] = json!({"nested": [1, "é", null], "big": u64::MAX});
            }
            GenEvent {
                uuid,
                action,
                json: event.to_string(),
            }
        })
}

/// A status a SIEM answers when it wants the batch again later.
fn retryable_status() -> impl Strategy<Value = Action> {
    (
        select(&[408_u16, 429, 500, 502, 503, 504][..]),
        prop::option::of(Just(0_u64)),
    )
        .prop_map(|(status, retry_after)| Action::Status {
            status,
            retry_after,
        })
}

/// One fault rule. Every script ends: `first` and `nth` run out, windows close, and the suite
/// clears probabilities once ingest is over.
fn rule() -> impl Strategy<Value = Rule> {
    let transient = prop_oneof![
        retryable_status(),
        Just(Action::Drop),
        Just(Action::Reset),
        Just(Action::AcceptThenHang),
        (1_u64..=150).prop_map(Action::DelayMs),
    ];
    prop_oneof![
        ((1_u64..=3), retryable_status()).prop_map(|(n, action)| Rule {
            when: When::First(n),
            action
        }),
        ((1_u64..=8), transient).prop_map(|(n, action)| Rule {
            when: When::Nth(n),
            action
        }),
        (
            0.05_f64..0.3,
            prop_oneof![retryable_status(), Just(Action::Drop)]
        )
            .prop_map(|(p, action)| Rule {
                when: When::Probability(p),
                action
            }),
        ((0_u64..300), (50_u64..400)).prop_map(|(from_ms, len)| Rule {
            when: When::Window {
                from_ms,
                until_ms: from_ms + len
            },
            action: Action::Status {
                status: 503,
                retry_after: None
            }
        }),
    ]
}

fn integration(tenant: &'static str, max_events: usize) -> impl Strategy<Value = IntegrationCase> {
    (
        prop::option::weighted(0.8, "[A-Za-z0-9]{16,40}"),
        any::<bool>(),
        any::<bool>(),
        subsequence(&ACTIONS[..], 0..=3),
        1_usize..=40,
        4_096_usize..=65_536,
        0_u64..=30,
        prop::collection::vec(event(), 1..=max_events),
        1_usize..=40,
        prop::collection::vec(rule(), 0..=3),
    )
        .prop_map(
            move |(
                secret,
                auth,
                custom,
                excluded,
                max_batch_events,
                max_batch_bytes,
                linger_ms,
                events,
                chunk,
                faults,
            )| {
                let mut headers = Vec::new();
                if auth {
                    headers.push((
                        "Authorization".to_owned(),
                        format!("Splunk {}", uuid::Uuid::new_v4()),
                    ));
                }
                if custom {
                    headers.push(("X-Source-Tag".to_owned(), "evo-conformance".to_owned()));
                }
                IntegrationCase {
                    tenant: tenant.to_owned(),
                    secret,
                    headers,
                    excluded: excluded.into_iter().map(str::to_owned).collect(),
                    max_batch_events,
                    max_batch_bytes,
                    linger_ms,
                    events,
                    chunk,
                    faults,
                }
            },
        )
}

/// Cases of one or two integrations of up to `max_events` events each; `restarts` allows a
/// restart in the middle.
pub(super) fn case(max_events: usize, restarts: bool) -> impl Strategy<Value = Case> {
    let integrations = prop_oneof![
        integration("acme", max_events).prop_map(|a| vec![a]),
        (
            integration("acme", max_events),
            integration("globex", max_events)
        )
            .prop_map(|(a, b)| vec![a, b]),
    ];
    let restart = if restarts {
        prop::option::weighted(0.7, 0_usize..6).boxed()
    } else {
        Just(None).boxed()
    };
    (integrations, restart, any::<u64>()).prop_map(|(integrations, restart_after, fault_seed)| {
        Case {
            integrations,
            restart_after,
            fault_seed,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    /// Case and whitespace folded: a near miss folds to its action.
    fn fold(s: &str) -> String {
        s.to_lowercase()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn variants_are_near_misses_unless_the_script_has_no_case_or_no_space() {
        for action in ACTIONS {
            for kind in 0..5u8 {
                let v = variant(action, kind);
                // Only these leave the string as it is: case changes of a script without case
                // ("ログイン"), and doubling a space in an action without one.
                let caseless = action.to_lowercase() == action.to_uppercase();
                let unchanged = (caseless && kind <= 1) || (!action.contains(' ') && kind == 4);
                assert_eq!(v == action, unchanged, "{action:?}, kind {kind}: {v:?}");
                assert_eq!(
                    fold(&v),
                    fold(action),
                    "{v:?} is no near miss of {action:?}"
                );
            }
        }
    }

    #[test]
    fn the_stream_holds_near_misses_that_an_exact_filter_must_forward() {
        let mut runner = TestRunner::deterministic();
        let (mut exact, mut near) = (0, 0);
        for _ in 0..500 {
            let a = action().new_tree(&mut runner).unwrap().current();
            if ACTIONS.contains(&a.as_str()) {
                exact += 1;
            } else {
                assert!(ACTIONS.iter().any(|x| fold(x) == fold(&a)), "{a:?}");
                near += 1;
            }
        }
        // About one in five is a near miss (weighted 0.2).
        assert!(
            (50..=150).contains(&near),
            "{near} near misses, {exact} exact"
        );
    }

    #[test]
    fn events_hold_what_the_suite_promises() {
        let mut runner = TestRunner::deterministic();
        for _ in 0..64 {
            let e = event().new_tree(&mut runner).unwrap().current();
            let value: serde_json::Value = serde_json::from_str(&e.json).unwrap();
            assert_eq!(value["data"]["uuid"], e.uuid.as_str());
            assert_eq!(value["data"]["action"], e.action.as_str());
            assert!(value["data"]["ts"].as_i64().unwrap() >= 1 << 53);
        }
    }
}

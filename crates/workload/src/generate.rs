//! A seeded generator of realistic Evo audit events.
//!
//! Each tenant has its own population: a few dozen users of its own domain, some of them
//! administrators, and a couple of API keys; its own workstations and addresses (from the
//! documentation ranges, so nothing generated points at a real host). Actions follow a weighted
//! mix close to a real audit log: mostly logins and logouts and token refreshes, a few failed
//! logins, rare administrative changes. Timestamps advance with random gaps from a start time;
//! `ts` and `created_at` are nanoseconds since the epoch (far above 2^53, so any consumer that
//! reads them as doubles loses precision and is caught).
//!
//! ```
//! use evo_siem_workload::generate::Generator;
//! let start = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_790_000_000);
//! let events: Vec<_> = Generator::new(7, "acme", start).take(3).collect();
//! let again: Vec<_> = Generator::new(7, "acme", start).take(3).collect();
//! assert_eq!(events, again);
//! assert!(events[0].json.contains("\"uuid\""));
//! ```

use serde_json::json;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// An action name and how often it occurs relative to the others.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightedAction {
    /// The exact `data.action`.
    pub action: String,
    /// Relative frequency, at least 1.
    pub weight: u32,
}

impl WeightedAction {
    fn new(action: &str, weight: u32) -> Self {
        Self {
            action: action.to_owned(),
            weight,
        }
    }
}

/// The default mix: what a tenant's audit log looks like on an ordinary day.
pub fn default_actions() -> Vec<WeightedAction> {
    [
        ("User login", 300),
        ("User logout", 220),
        ("Token refreshed", 180),
        ("Record viewed", 120),
        ("Record updated", 60),
        ("Report exported", 20),
        ("Password changed", 8),
        ("MFA enrolled", 5),
        ("Role assigned", 4),
        ("User invited", 4),
        ("API key created", 2),
        ("API key revoked", 1),
        ("SIEM integration updated", 1),
    ]
    .into_iter()
    .map(|(action, weight)| WeightedAction::new(action, weight))
    .collect()
}

/// Why an actions file cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ActionsError {
    /// No action in the file.
    #[error("the actions file names no action")]
    Empty,
    /// A weight that is not a whole number from 1.
    #[error("line {line}: the weight must be a whole number from 1")]
    Weight {
        /// The line, from 1.
        line: usize,
    },
}

/// Parses an actions file: one action per line, optionally followed by a tab and a weight
/// (default 1). Blank lines and lines starting with `#` are skipped; the action is taken exactly
/// (no trimming of inner or trailing spaces other than the line end), because exclusion lists
/// match exactly.
pub fn parse_actions(text: &str) -> Result<Vec<WeightedAction>, ActionsError> {
    let mut actions = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let (action, weight) = match line.split_once('\t') {
            Some((action, weight)) => (
                action,
                weight
                    .trim()
                    .parse::<u32>()
                    .ok()
                    .filter(|w| *w >= 1)
                    .ok_or(ActionsError::Weight { line: i + 1 })?,
            ),
            None => (line, 1),
        };
        actions.push(WeightedAction::new(action, weight));
    }
    if actions.is_empty() {
        return Err(ActionsError::Empty);
    }
    Ok(actions)
}

/// One generated event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedEvent {
    /// `data.uuid`.
    pub uuid: String,
    /// `data.action`.
    pub action: String,
    /// The event as one line of JSON.
    pub json: String,
}

const FIRST_NAMES: [&str; 16] = [
    "ana", "bruno", "chen", "dara", "elif", "farid", "greta", "hiro", "ines", "jonas", "kemi",
    "lukas", "maya", "nils", "olga", "zoë",
];
const LAST_NAMES: [&str; 12] = [
    "silva", "novak", "li", "okafor", "yilmaz", "haddad", "berg", "sato", "costa", "meyer",
    "adeyemi", "núñez",
];

/// Audit events for one tenant, endlessly; take as many as needed.
#[derive(Debug, Clone)]
pub struct Generator {
    rng: fastrand::Rng,
    actions: Vec<WeightedAction>,
    total_weight: u64,
    users: Vec<String>,
    api_keys: Vec<String>,
    hosts: Vec<(String, String)>,
    clock_ns: i64,
}

impl Generator {
    /// A generator for `tenant`, seeded, with timestamps starting at `start`.
    pub fn new(seed: u64, tenant: &str, start: SystemTime) -> Self {
        // The tenant's name is mixed into the seed so that two tenants of one run differ.
        let mixed = tenant.bytes().fold(seed ^ 0x9e37_79b9_7f4a_7c15, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        let mut rng = fastrand::Rng::with_seed(mixed);
        let domain = format!("{}.example", tenant.to_lowercase());
        let users = (0..rng.usize(24..48))
            .map(|_| {
                format!(
                    "{}.{}@{domain}",
                    FIRST_NAMES[rng.usize(..FIRST_NAMES.len())],
                    LAST_NAMES[rng.usize(..LAST_NAMES.len())]
                )
            })
            .collect();
        let api_keys = (0..rng.usize(1..4))
            .map(|i| format!("{tenant}-automation-{}", i + 1))
            .collect();
        let hosts = (0..rng.usize(8..20))
            .map(|_| {
                let host = match rng.u8(..3) {
                    0 => format!("DESKTOP-{:05X}", rng.u32(..0x10_0000)),
                    1 => format!("LAPTOP-{:05X}", rng.u32(..0x10_0000)),
                    _ => format!("build-runner-{:02}", rng.u8(1..40)),
                };
                let ip = match rng.u8(..4) {
                    0 => format!("192.0.2.{}", rng.u8(1..255)),
                    1 => format!("198.51.100.{}", rng.u8(1..255)),
                    2 => format!("203.0.113.{}", rng.u8(1..255)),
                    _ => format!("2001:db8::{:x}", rng.u16(1..)),
                };
                (host, ip)
            })
            .collect();
        let clock_ns = start
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_nanos()
            .try_into()
            .unwrap_or(i64::MAX / 2);
        let actions = default_actions();
        Self {
            total_weight: actions.iter().map(|a| u64::from(a.weight)).sum(),
            actions,
            rng,
            users,
            api_keys,
            hosts,
            clock_ns,
        }
    }

    /// Uses `actions` instead of the default mix.
    pub fn with_actions(mut self, actions: Vec<WeightedAction>) -> Result<Self, ActionsError> {
        if actions.is_empty() {
            return Err(ActionsError::Empty);
        }
        self.total_weight = actions.iter().map(|a| u64::from(a.weight.max(1))).sum();
        self.actions = actions;
        Ok(self)
    }

    fn pick_action(&mut self) -> String {
        let mut ticket = self.rng.u64(..self.total_weight);
        for action in &self.actions {
            let weight = u64::from(action.weight.max(1));
            if ticket < weight {
                return action.action.clone();
            }
            ticket -= weight;
        }
        self.actions[self.actions.len() - 1].action.clone()
    }

    /// The next event.
    pub fn next_event(&mut self) -> GeneratedEvent {
        // Gaps of up to 50 ms: a busy tenant.
        self.clock_ns = self
            .clock_ns
            .saturating_add(self.rng.i64(1_000..50_000_000));
        let action = self.pick_action();
        let rng = &mut self.rng;
        let uuid = uuid::Builder::from_random_bytes(rng.u128(..).to_le_bytes())
            .into_uuid()
            .to_string();
        let automated = action.starts_with("Token") || action.starts_with("Record");
        let actor = if automated && rng.u8(..4) == 0 {
            json!({"kind": "ApiKey", "name": self.api_keys[rng.usize(..self.api_keys.len())]})
        } else {
            json!({"kind": "User", "name": self.users[rng.usize(..self.users.len())]})
        };
        let failed = action == "User login" && rng.u8(..100) < 6;
        let target = match action.as_str() {
            "Record viewed" | "Record updated" | "Report exported" => {
                json!({"kind": "Record", "name": format!("record-{}", rng.u32(1..100_000))})
            }
            "API key created" | "API key revoked" => {
                json!({"kind": "ApiKey", "name": self.api_keys[rng.usize(..self.api_keys.len())]})
            }
            "SIEM integration updated" => json!({"kind": "Integration", "name": "siem"}),
            "Role assigned" | "User invited" => {
                json!({"kind": "User", "name": self.users[rng.usize(..self.users.len())]})
            }
            _ => actor.clone(),
        };
        let (hostname, ipaddr) = &self.hosts[rng.usize(..self.hosts.len())];
        let ts = self.clock_ns;
        // The platform writes the row a little after the action happened.
        let created_at = ts.saturating_add(rng.i64(100_000..5_000_000));
        let timestamp = evo_siem_protocol::format_generated_at(
            UNIX_EPOCH + Duration::from_nanos(u64::try_from(ts).unwrap_or_default()),
        );
        let event = json!({
            "event_type": "create",
            "table": "events",
            "timestamp": timestamp,
            "data": {
                "uuid": uuid,
                "action": action,
                "status": if failed { "Failure" } else { "Success" },
                "actor": actor,
                "origin": {"hostname": hostname, "ipaddr": ipaddr},
                "target": target,
                "ts": ts,
                "created_at": created_at,
            },
        });
        GeneratedEvent {
            uuid,
            action,
            json: event.to_string(),
        }
    }
}

impl Iterator for Generator {
    type Item = GeneratedEvent;

    fn next(&mut self) -> Option<GeneratedEvent> {
        Some(self.next_event())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_790_000_000)
    }

    #[test]
    fn the_same_seed_gives_the_same_events_and_tenants_differ() {
        let a: Vec<_> = Generator::new(1, "acme", start()).take(50).collect();
        assert_eq!(
            a,
            Generator::new(1, "acme", start())
                .take(50)
                .collect::<Vec<_>>()
        );
        assert_ne!(
            a,
            Generator::new(2, "acme", start())
                .take(50)
                .collect::<Vec<_>>()
        );
        assert_ne!(
            a,
            Generator::new(1, "globex", start())
                .take(50)
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn events_are_valid_v1_events_with_big_nanoseconds_in_order() {
        let mut last = 0;
        for event in Generator::new(3, "acme", start()).take(2_000) {
            let value: serde_json::Value = serde_json::from_str(&event.json).unwrap();
            let data = &value["data"];
            assert_eq!(data["uuid"], event.uuid.as_str());
            assert!(uuid::Uuid::try_parse(&event.uuid).is_ok());
            assert_eq!(data["action"], event.action.as_str());
            let ts = data["ts"].as_i64().unwrap();
            assert!(ts > 1 << 53 && ts > last);
            assert!(data["created_at"].as_i64().unwrap() > ts);
            last = ts;
            assert!(value["timestamp"].as_str().unwrap().starts_with("2026-"));
        }
    }

    #[test]
    fn the_mix_follows_the_weights() {
        let events: Vec<_> = Generator::new(4, "acme", start()).take(20_000).collect();
        let count = |a: &str| events.iter().filter(|e| e.action == a).count();
        let logins = count("User login");
        // 300 of 925 weight: about 6,500 of 20,000.
        assert!((5_800..7_200).contains(&logins), "{logins}");
        assert!(count("SIEM integration updated") < 100);
        let failures = events
            .iter()
            .filter(|e| e.json.contains("\"Failure\""))
            .count();
        assert!(failures > 0 && failures < logins / 5, "{failures}");
    }

    #[test]
    fn an_actions_file_replaces_the_mix() {
        let actions = parse_actions("# mine\nDoor opened\t3\n\nDoor closed\n").unwrap();
        assert_eq!(
            actions,
            [
                WeightedAction::new("Door opened", 3),
                WeightedAction::new("Door closed", 1)
            ]
        );
        let events: Vec<_> = Generator::new(5, "acme", start())
            .with_actions(actions)
            .unwrap()
            .take(400)
            .collect();
        let opened = events.iter().filter(|e| e.action == "Door opened").count();
        assert!((240..360).contains(&opened), "{opened}");
        assert_eq!(parse_actions("# nothing\n"), Err(ActionsError::Empty));
        assert_eq!(
            parse_actions("A\t0\n"),
            Err(ActionsError::Weight { line: 1 })
        );
        assert_eq!(
            parse_actions("A\tmany\n"),
            Err(ActionsError::Weight { line: 1 })
        );
    }
}

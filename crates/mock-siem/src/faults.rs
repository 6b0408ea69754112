//! Fault injection: rules that make the mock SIEM misbehave on chosen requests.
//!
//! `POST /_mock/faults` takes a JSON list of rules, checked in order for every webhook request
//! (counted from 1); the first that matches acts:
//!
//! ```json
//! [{"when": {"first": 2}, "action": {"status": 503, "retry_after": 1}},
//!  {"when": {"nth": 5}, "action": "accept_then_hang"},
//!  {"when": {"probability": 0.1}, "action": {"delay_ms": 800}}]
//! ```
//!
//! Probabilities draw from a generator seeded by `seed` (default 0), so a run can be replayed.

use serde::Deserialize;

/// Which requests a rule applies to.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum When {
    /// Every request.
    Always,
    /// The first `n` requests.
    First(u64),
    /// Only the n-th request.
    Nth(u64),
    /// Each request with this probability.
    Probability(f64),
}

/// What the mock SIEM does instead of (or before) its normal answer. In JSON:
/// `{"status": 503, "retry_after": 1}`, `{"delay_ms": 800}` or `"accept_then_hang"`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(from = "ActionJson")]
pub enum Action {
    /// Answer this status without processing the batch, with an optional `Retry-After` in seconds.
    Status {
        /// The status.
        status: u16,
        /// `Retry-After`, in seconds.
        #[serde(default)]
        retry_after: Option<u64>,
    },
    /// Wait this long, then process normally.
    DelayMs(u64),
    /// Process and commit the batch, then never answer: the sender times out after the receiver
    /// committed, and must redeliver (the duplicate is counted).
    AcceptThenHang,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ActionJson {
    Status {
        status: u16,
        #[serde(default)]
        retry_after: Option<u64>,
    },
    Delay {
        delay_ms: u64,
    },
    Named(Named),
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum Named {
    AcceptThenHang,
}

impl From<ActionJson> for Action {
    fn from(json: ActionJson) -> Self {
        match json {
            ActionJson::Status {
                status,
                retry_after,
            } => Action::Status {
                status,
                retry_after,
            },
            ActionJson::Delay { delay_ms } => Action::DelayMs(delay_ms),
            ActionJson::Named(Named::AcceptThenHang) => Action::AcceptThenHang,
        }
    }
}

/// One rule.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Rule {
    /// Which requests.
    pub when: When,
    /// What to do.
    pub action: Action,
}

/// The rules in force, the request counter and the seeded generator.
#[derive(Debug)]
pub(crate) struct Faults {
    rules: Vec<Rule>,
    requests: u64,
    rng: fastrand::Rng,
}

impl Faults {
    pub(crate) fn new(seed: u64) -> Self {
        Self {
            rules: Vec::new(),
            requests: 0,
            rng: fastrand::Rng::with_seed(seed),
        }
    }

    pub(crate) fn set(&mut self, rules: Vec<Rule>) {
        self.rules = rules;
        self.requests = 0;
    }

    /// Counts a request and returns the action of the first rule that matches it.
    pub(crate) fn next(&mut self) -> Option<Action> {
        self.requests += 1;
        let n = self.requests;
        let rng = &mut self.rng;
        self.rules
            .iter()
            .find(|rule| match rule.when {
                When::Always => true,
                When::First(k) => n <= k,
                When::Nth(k) => n == k,
                When::Probability(p) => rng.f64() < p,
            })
            .map(|rule| rule.action.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_match_in_order_and_reset_the_count() {
        let rules: Vec<Rule> = serde_json::from_str(
            r#"[{"when": {"first": 2}, "action": {"status": 503, "retry_after": 1}},
                {"when": {"nth": 4}, "action": "accept_then_hang"}]"#,
        )
        .unwrap();
        let mut faults = Faults::new(0);
        faults.set(rules);
        let seen: Vec<Option<Action>> = (0..5).map(|_| faults.next()).collect();
        let unavailable = Some(Action::Status {
            status: 503,
            retry_after: Some(1),
        });
        assert_eq!(
            seen,
            [
                unavailable.clone(),
                unavailable,
                None,
                Some(Action::AcceptThenHang),
                None
            ]
        );
    }

    #[test]
    fn probabilities_are_reproducible_with_a_seed() {
        let rule = || {
            vec![Rule {
                when: When::Probability(0.5),
                action: Action::DelayMs(1),
            }]
        };
        let run = |seed| {
            let mut faults = Faults::new(seed);
            faults.set(rule());
            (0..64).map(|_| faults.next().is_some()).collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        let hits = run(7).iter().filter(|h| **h).count();
        assert!((16..48).contains(&hits), "{hits}");
    }
}

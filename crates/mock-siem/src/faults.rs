//! Fault injection: rules that make the mock SIEM misbehave on chosen requests.
//!
//! `POST /_mock/faults` takes a JSON list of rules, checked in order for every webhook request
//! (counted from 1 since the rules were set); the first that matches acts:
//!
//! ```json
//! [{"when": {"first": 2}, "action": {"status": 503, "retry_after": 1}},
//!  {"when": {"nth": 5}, "action": "accept_then_hang"},
//!  {"when": {"nth": 6}, "action": "drop"},
//!  {"when": {"window": {"from_ms": 2000, "until_ms": 4000}}, "action": "reset"},
//!  {"when": {"probability": 0.1}, "action": {"delay_ms": 800}},
//!  {"when": {"window": {"from_ms": 0, "until_ms": 3000}}, "action": {"clock_skew_s": -600}}]
//! ```
//!
//! Matches: `"always"`, `{"first": n}`, `{"nth": n}`, `{"probability": p}`, and
//! `{"window": {"from_ms", "until_ms"}}` (milliseconds since the rules were set).
//! Actions: `{"status": s, "retry_after": secs}` answers `s` without processing the batch;
//! `{"delay_ms": ms}` waits, then processes normally; `"drop"` closes the connection without an
//! answer; `"reset"` reads the first part of the body and resets the connection (TCP RST);
//! `"accept_then_hang"` processes and commits the batch and never answers;
//! `{"clock_skew_s": s}` processes normally with the receiver's clock `s` seconds off (ahead
//! when positive, behind when negative), so the replay window (`generated_at`,
//! `webhook-timestamp`) is judged against the skewed clock: past the tolerance (5 minutes),
//! every request is refused as stale (401 `timestamp_too_old` or `timestamp_too_new`), as a
//! receiver whose clock drifted
//! would refuse it.
//!
//! Probabilities draw from a generator seeded by `seed` (default 0), so a run can be replayed.

use serde::Deserialize;
use std::fmt;
use std::time::{Duration, Instant};

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
    /// Requests arriving in this window, counted from when the rules were set.
    Window {
        /// Start, in milliseconds (inclusive).
        from_ms: u64,
        /// End, in milliseconds (exclusive).
        until_ms: u64,
    },
}

/// What the mock SIEM does instead of (or before) its normal answer.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(from = "ActionJson")]
pub enum Action {
    /// Answer this status without processing the batch, with an optional `Retry-After` in seconds.
    Status {
        /// The status.
        status: u16,
        /// `Retry-After`, in seconds.
        retry_after: Option<u64>,
    },
    /// Wait this long, then process normally.
    DelayMs(u64),
    /// Close the connection without answering (the sender sees the connection end).
    Drop,
    /// Read the first part of the body, then reset the connection (TCP RST).
    Reset,
    /// Process and commit the batch, then never answer: the sender times out after the receiver
    /// committed, and must redeliver (the duplicate is counted).
    AcceptThenHang,
    /// Process normally, but with the receiver's clock this many seconds off (ahead when
    /// positive): the replay window is judged against the skewed clock, so past the tolerance
    /// every request is refused as stale (401).
    ClockSkew {
        /// Seconds the clock is ahead (negative: behind); never 0, at most [`MAX_CLOCK_SKEW_S`]
        /// either way.
        seconds: i64,
    },
}

/// The largest clock skew a rule may set, either way: one day.
pub const MAX_CLOCK_SKEW_S: i64 = 86_400;

impl Action {
    /// The receiver's clock under this action, when the true time is `now`: `now` itself for
    /// every action but [`Action::ClockSkew`].
    pub fn clock(&self, now: std::time::SystemTime) -> std::time::SystemTime {
        match *self {
            Action::ClockSkew { seconds } => {
                let skew = Duration::from_secs(seconds.unsigned_abs());
                let skewed = if seconds >= 0 {
                    now.checked_add(skew)
                } else {
                    now.checked_sub(skew)
                };
                skewed.unwrap_or(now)
            }
            _ => now,
        }
    }
}

impl Action {
    /// The name recorded in a delivery's verdict (`fault:<name>`).
    pub fn name(&self) -> String {
        match self {
            Action::Status { status, .. } => format!("status {status}"),
            Action::DelayMs(ms) => format!("delay {ms}ms"),
            Action::Drop => "drop".into(),
            Action::Reset => "reset".into(),
            Action::AcceptThenHang => "accept_then_hang".into(),
            Action::ClockSkew { seconds } => format!("clock skew {seconds:+}s"),
        }
    }
}

/// In words, as the page shows the rules in force: `the first 3 requests`, `request #5`.
impl fmt::Display for When {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            When::Always => f.write_str("every request"),
            When::First(1) => f.write_str("the first request"),
            When::First(n) => write!(f, "the first {n} requests"),
            When::Nth(n) => write!(f, "request #{n}"),
            When::Probability(p) => write!(f, "each request with probability {p}"),
            When::Window { from_ms, until_ms } => write!(
                f,
                "requests from {from_ms} ms to {until_ms} ms after the rules were set"
            ),
        }
    }
}

/// In words, as the page shows the rules in force: `answer 503 with Retry-After: 2`.
impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Status {
                status,
                retry_after: None,
            } => write!(f, "answer {status}"),
            Action::Status {
                status,
                retry_after: Some(seconds),
            } => write!(f, "answer {status} with Retry-After: {seconds}"),
            Action::DelayMs(ms) => write!(f, "wait {ms} ms, then process normally"),
            Action::Drop => f.write_str("close the connection without an answer"),
            Action::Reset => f.write_str("reset the connection mid-request"),
            Action::AcceptThenHang => f.write_str("accept the batch, then never answer"),
            Action::ClockSkew { seconds } if *seconds >= 0 => write!(
                f,
                "judge the replay window by a clock {seconds} s ahead, then process normally"
            ),
            Action::ClockSkew { seconds } => write!(
                f,
                "judge the replay window by a clock {} s behind, then process normally",
                seconds.unsigned_abs()
            ),
        }
    }
}

/// `<when>: <action>`, for example `the first 2 requests: answer 503`.
impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.when, self.action)
    }
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
    ClockSkew {
        clock_skew_s: i64,
    },
    Named(Named),
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum Named {
    Drop,
    Reset,
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
            ActionJson::ClockSkew { clock_skew_s } => Action::ClockSkew {
                seconds: clock_skew_s,
            },
            ActionJson::Named(Named::Drop) => Action::Drop,
            ActionJson::Named(Named::Reset) => Action::Reset,
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

/// Why a list of rules is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidRule {
    /// A probability outside [0, 1].
    #[error("rule {0}: a probability must be between 0 and 1")]
    Probability(usize),
    /// A status the mock cannot answer with.
    #[error("rule {0}: status must be between 100 and 599")]
    Status(usize),
    /// An empty window.
    #[error("rule {0}: the window's until_ms must be after from_ms")]
    Window(usize),
    /// A clock skew of 0 (no fault) or of more than [`MAX_CLOCK_SKEW_S`] either way.
    #[error("rule {0}: clock_skew_s must be from -86400 to 86400 seconds, and not 0")]
    ClockSkew(usize),
}

/// Checks every rule; the index in the error counts from 0.
pub fn validate(rules: &[Rule]) -> Result<(), InvalidRule> {
    for (i, rule) in rules.iter().enumerate() {
        match rule.when {
            When::Probability(p) if !(0.0..=1.0).contains(&p) => {
                return Err(InvalidRule::Probability(i));
            }
            When::Window { from_ms, until_ms } if until_ms <= from_ms => {
                return Err(InvalidRule::Window(i));
            }
            _ => {}
        }
        match rule.action {
            Action::Status { status, .. } if !(100..=599).contains(&status) => {
                return Err(InvalidRule::Status(i));
            }
            Action::ClockSkew { seconds }
                if seconds == 0 || seconds.unsigned_abs() > MAX_CLOCK_SKEW_S.unsigned_abs() =>
            {
                return Err(InvalidRule::ClockSkew(i));
            }
            _ => {}
        }
    }
    Ok(())
}

/// The rules in force, the request counter and the seeded generator.
#[derive(Debug)]
pub(crate) struct Faults {
    rules: Vec<Rule>,
    requests: u64,
    since: Instant,
    rng: fastrand::Rng,
}

impl Faults {
    pub(crate) fn new(seed: u64) -> Self {
        Self {
            rules: Vec::new(),
            requests: 0,
            since: Instant::now(),
            rng: fastrand::Rng::with_seed(seed),
        }
    }

    pub(crate) fn set(&mut self, rules: Vec<Rule>) {
        self.rules = rules;
        self.requests = 0;
        self.since = Instant::now();
    }

    /// The rules in force, in the order they are checked.
    pub(crate) fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The requests counted since the rules were set (what `first` and `nth` count).
    pub(crate) fn requests(&self) -> u64 {
        self.requests
    }

    /// Counts a request and returns the action of the first rule that matches it.
    pub(crate) fn next(&mut self) -> Option<Action> {
        self.next_at(Instant::now())
    }

    fn next_at(&mut self, now: Instant) -> Option<Action> {
        self.requests += 1;
        let n = self.requests;
        let elapsed = now.saturating_duration_since(self.since);
        let rng = &mut self.rng;
        self.rules
            .iter()
            .find(|rule| match rule.when {
                When::Always => true,
                When::First(k) => n <= k,
                When::Nth(k) => n == k,
                When::Probability(p) => rng.f64() < p,
                When::Window { from_ms, until_ms } => (Duration::from_millis(from_ms)
                    ..Duration::from_millis(until_ms))
                    .contains(&elapsed),
            })
            .map(|rule| rule.action.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(json: &str) -> Vec<Rule> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn rules_match_in_order_and_reset_the_count() {
        let mut faults = Faults::new(0);
        faults.set(rules(
            r#"[{"when": {"first": 2}, "action": {"status": 503, "retry_after": 1}},
                {"when": {"nth": 4}, "action": "accept_then_hang"},
                {"when": {"nth": 5}, "action": "drop"},
                {"when": {"nth": 6}, "action": "reset"}]"#,
        ));
        let seen: Vec<Option<Action>> = (0..7).map(|_| faults.next()).collect();
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
                Some(Action::Drop),
                Some(Action::Reset),
                None
            ]
        );
        faults.set(Vec::new());
        assert_eq!(faults.next(), None);
    }

    #[test]
    fn a_window_matches_only_inside_it() {
        let mut faults = Faults::new(0);
        faults.set(rules(
            r#"[{"when": {"window": {"from_ms": 100, "until_ms": 200}}, "action": {"status": 500}}]"#,
        ));
        let start = faults.since;
        let at = |ms| start + Duration::from_millis(ms);
        assert_eq!(faults.next_at(at(99)), None);
        assert!(faults.next_at(at(100)).is_some());
        assert!(faults.next_at(at(199)).is_some());
        assert_eq!(faults.next_at(at(200)), None);
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

    #[test]
    fn rules_read_as_words() {
        let shown: Vec<String> = rules(
            r#"[{"when": {"first": 2}, "action": {"status": 503, "retry_after": 1}},
                {"when": {"first": 1}, "action": {"status": 500}},
                {"when": {"nth": 4}, "action": "accept_then_hang"},
                {"when": "always", "action": "drop"},
                {"when": {"probability": 0.25}, "action": "reset"},
                {"when": {"window": {"from_ms": 10, "until_ms": 20}}, "action": {"delay_ms": 800}},
                {"when": {"nth": 2}, "action": {"clock_skew_s": 600}},
                {"when": "always", "action": {"clock_skew_s": -90}}]"#,
        )
        .iter()
        .map(Rule::to_string)
        .collect();
        assert_eq!(
            shown,
            [
                "the first 2 requests: answer 503 with Retry-After: 1",
                "the first request: answer 500",
                "request #4: accept the batch, then never answer",
                "every request: close the connection without an answer",
                "each request with probability 0.25: reset the connection mid-request",
                "requests from 10 ms to 20 ms after the rules were set: wait 800 ms, then process normally",
                "request #2: judge the replay window by a clock 600 s ahead, then process normally",
                "every request: judge the replay window by a clock 90 s behind, then process normally",
            ]
        );
    }

    #[test]
    fn nonsense_rules_are_refused() {
        assert_eq!(
            validate(&rules(
                r#"[{"when": "always", "action": "drop"}, {"when": {"probability": 1.5}, "action": "drop"}]"#
            )),
            Err(InvalidRule::Probability(1))
        );
        assert_eq!(
            validate(&rules(r#"[{"when": "always", "action": {"status": 42}}]"#)),
            Err(InvalidRule::Status(0))
        );
        assert_eq!(
            validate(&rules(
                r#"[{"when": {"window": {"from_ms": 5, "until_ms": 5}}, "action": "reset"}]"#
            )),
            Err(InvalidRule::Window(0))
        );
        for skew in ["0", "86401", "-86401", "-9223372036854775808"] {
            let json = format!(r#"[{{"when": "always", "action": {{"clock_skew_s": {skew}}}}}]"#);
            assert_eq!(
                validate(&rules(&json)),
                Err(InvalidRule::ClockSkew(0)),
                "{skew}"
            );
        }
        assert_eq!(
            validate(&rules(
                r#"[{"when": "always", "action": {"clock_skew_s": -86400}}]"#
            )),
            Ok(())
        );
    }

    #[test]
    fn a_clock_skew_moves_the_receivers_clock_only() {
        let now = std::time::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let skew = |seconds| Action::ClockSkew { seconds }.clock(now);
        assert_eq!(skew(600), now + Duration::from_secs(600));
        assert_eq!(skew(-600), now - Duration::from_secs(600));
        assert_eq!(Action::DelayMs(5).clock(now), now);
        assert_eq!(Action::ClockSkew { seconds: -5 }.name(), "clock skew -5s");
        // A skew past what the clock can hold leaves it as it is rather than panicking.
        assert_eq!(Action::ClockSkew { seconds: i64::MAX }.clock(now), now);
    }
}

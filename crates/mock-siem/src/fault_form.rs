//! The page's fault form: a form-urlencoded body becomes one [`Rule`], or a typed error that the
//! page shows with a 400.
//!
//! Fields: `action` (`status`, `drop`, `reset`, `accept_then_hang`, `delay`, `clock_skew`),
//! `count` (the next N requests; empty for every request), `status` and `retry_after` (for
//! `status`), `delay_ms` (for `delay`), `clock_skew_s` (for `clock_skew`: seconds, negative for
//! a clock behind), and `mode` (`replace` the rules in force, or `add` this one after them). A
//! browser sends every field of the form whatever the action, so the fields another action uses
//! are ignored.

use crate::faults::{self, Action, Rule, When};

/// Whether the form's rule replaces the rules in force or comes after them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// The rule becomes the only one.
    Replace,
    /// The rule is checked after the rules in force.
    Add,
}

/// A submitted fault form.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FaultForm {
    pub(crate) mode: Mode,
    pub(crate) rule: Rule,
}

/// Why a fault form is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FormError {
    /// No `action`, or one the form does not offer.
    #[error(
        "choose what to do: fail with a status, drop, reset, accept then hang, delay, or skew the clock"
    )]
    Action,
    /// A required field is empty.
    #[error("{0} is required for this fault")]
    Missing(&'static str),
    /// A field that is not a whole number in range.
    #[error("{field} must be a whole number from {min} to {max}")]
    Number {
        field: &'static str,
        min: u64,
        max: u64,
    },
    /// A field that is not a whole number, possibly negative, in range.
    #[error("{field} must be a whole number from {min} to {max}")]
    Signed {
        field: &'static str,
        min: i64,
        max: i64,
    },
    /// A `mode` other than `replace` or `add`.
    #[error("mode must be replace or add")]
    Mode,
    /// The rule the fields make is not one the mock can apply.
    #[error("{0}")]
    Rule(#[from] faults::InvalidRule),
}

/// The longest delay the form sets: ten minutes.
const MAX_DELAY_MS: u64 = 600_000;

/// Parses a form-urlencoded body. The first value of a repeated field counts.
pub(crate) fn parse(body: &[u8]) -> Result<FaultForm, FormError> {
    let pairs: Vec<(String, String)> = form_urlencoded::parse(body).into_owned().collect();
    let field = |name: &str| {
        pairs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    };
    let number = |name: &'static str, min: u64, max: u64| -> Result<Option<u64>, FormError> {
        field(name)
            .map(|v| {
                v.parse::<u64>()
                    .ok()
                    .filter(|n| (min..=max).contains(n))
                    .ok_or(FormError::Number {
                        field: name,
                        min,
                        max,
                    })
            })
            .transpose()
    };
    let action = match field("action").ok_or(FormError::Action)? {
        "status" => {
            let status = number("status", 100, 599)?.ok_or(FormError::Missing("status"))?;
            Action::Status {
                status: u16::try_from(status).map_err(|_| FormError::Missing("status"))?,
                retry_after: number("retry_after", 0, 86_400)?,
            }
        }
        "drop" => Action::Drop,
        "reset" => Action::Reset,
        "accept_then_hang" => Action::AcceptThenHang,
        "delay" => Action::DelayMs(
            number("delay_ms", 0, MAX_DELAY_MS)?.ok_or(FormError::Missing("delay_ms"))?,
        ),
        "clock_skew" => {
            let (min, max) = (-faults::MAX_CLOCK_SKEW_S, faults::MAX_CLOCK_SKEW_S);
            let seconds = field("clock_skew_s")
                .ok_or(FormError::Missing("clock_skew_s"))?
                .parse::<i64>()
                .ok()
                .filter(|n| (min..=max).contains(n))
                .ok_or(FormError::Signed {
                    field: "clock_skew_s",
                    min,
                    max,
                })?;
            Action::ClockSkew { seconds }
        }
        _ => return Err(FormError::Action),
    };
    let when = match number("count", 1, u64::from(u32::MAX))? {
        Some(n) => When::First(n),
        None => When::Always,
    };
    let mode = match field("mode") {
        None | Some("replace") => Mode::Replace,
        Some("add") => Mode::Add,
        Some(_) => return Err(FormError::Mode),
    };
    let rule = Rule { when, action };
    faults::validate(std::slice::from_ref(&rule))?;
    Ok(FaultForm { mode, rule })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_become_a_rule() {
        assert_eq!(
            parse(b"action=status&count=2&status=503&retry_after=1&delay_ms=&mode=add"),
            Ok(FaultForm {
                mode: Mode::Add,
                rule: Rule {
                    when: When::First(2),
                    action: Action::Status {
                        status: 503,
                        retry_after: Some(1)
                    }
                }
            })
        );
        // The fields of other actions are ignored, even when they are nonsense; no count means
        // every request.
        let form = parse(b"action=drop&count=&status=abc&delay_ms=x").unwrap();
        assert_eq!((form.mode, form.rule.when), (Mode::Replace, When::Always));
        assert_eq!(form.rule.action, Action::Drop);
        assert_eq!(
            parse(b"action=delay&delay_ms=+800+&count=1")
                .unwrap()
                .rule
                .action,
            Action::DelayMs(800)
        );
        assert_eq!(
            parse(b"action=accept_then_hang&count=3").unwrap().rule,
            Rule {
                when: When::First(3),
                action: Action::AcceptThenHang
            }
        );
        assert_eq!(parse(b"action=reset").unwrap().rule.action, Action::Reset);
        assert_eq!(
            parse(b"action=clock_skew&clock_skew_s=-600&count=")
                .unwrap()
                .rule,
            Rule {
                when: When::Always,
                action: Action::ClockSkew { seconds: -600 }
            }
        );
    }

    #[test]
    fn nonsense_is_refused_with_a_reason() {
        assert_eq!(parse(b""), Err(FormError::Action));
        assert_eq!(parse(b"action=%3Cb%3E"), Err(FormError::Action));
        assert_eq!(
            parse(b"action=status&status="),
            Err(FormError::Missing("status"))
        );
        let status = FormError::Number {
            field: "status",
            min: 100,
            max: 599,
        };
        assert_eq!(parse(b"action=status&status=42"), Err(status.clone()));
        assert_eq!(parse(b"action=status&status=5O3"), Err(status));
        assert_eq!(
            parse(b"action=drop&count=0").unwrap_err().to_string(),
            "count must be a whole number from 1 to 4294967295"
        );
        assert_eq!(parse(b"action=delay"), Err(FormError::Missing("delay_ms")));
        assert_eq!(
            parse(b"action=delay&delay_ms=-5"),
            Err(FormError::Number {
                field: "delay_ms",
                min: 0,
                max: MAX_DELAY_MS
            })
        );
        assert_eq!(parse(b"action=drop&mode=merge"), Err(FormError::Mode));
        assert_eq!(
            parse(b"action=clock_skew"),
            Err(FormError::Missing("clock_skew_s"))
        );
        let skew = FormError::Signed {
            field: "clock_skew_s",
            min: -86_400,
            max: 86_400,
        };
        assert_eq!(
            parse(b"action=clock_skew&clock_skew_s=1e3"),
            Err(skew.clone())
        );
        assert_eq!(parse(b"action=clock_skew&clock_skew_s=86401"), Err(skew));
        // In range, but no fault at all: the rule's own validation says so.
        assert_eq!(
            parse(b"action=clock_skew&clock_skew_s=0"),
            Err(FormError::Rule(faults::InvalidRule::ClockSkew(0)))
        );
    }
}

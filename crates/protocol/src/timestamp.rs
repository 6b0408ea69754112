//! `generated_at`: RFC 3339 formatting (UTC, milliseconds) and parsing.

use std::time::SystemTime;
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset, macros::format_description};

/// Formats `at` as the sender stamps `generated_at`: RFC 3339, UTC, milliseconds,
/// for example `2024-01-15T10:30:05.123Z`.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// let at = UNIX_EPOCH + Duration::from_millis(1_705_314_605_123);
/// assert_eq!(evo_siem_protocol::format_generated_at(at), "2024-01-15T10:30:05.123Z");
/// ```
pub fn format_generated_at(at: SystemTime) -> String {
    let format =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    OffsetDateTime::from(at)
        .to_offset(UtcOffset::UTC)
        .format(&format)
        .expect("a SystemTime always formats as RFC 3339")
}

/// Parses an RFC 3339 time with any offset and any number of fractional digits.
pub fn parse_rfc3339(text: &str) -> Option<SystemTime> {
    OffsetDateTime::parse(text, &Rfc3339)
        .ok()
        .map(SystemTime::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn formats_and_parses_back() {
        let at = UNIX_EPOCH + Duration::from_millis(1_705_314_605_123);
        let text = format_generated_at(at);
        assert_eq!(text, "2024-01-15T10:30:05.123Z");
        assert_eq!(parse_rfc3339(&text), Some(at));
        assert_eq!(parse_rfc3339("2024-01-15T11:30:05.123+01:00"), Some(at));
        assert_eq!(parse_rfc3339("2024-01-15 10:30:05"), None);
        assert_eq!(parse_rfc3339("yesterday"), None);
    }
}

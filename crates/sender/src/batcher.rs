//! When a batch closes: at `max_batch_events`, at `max_batch_bytes` of the whole body (envelope
//! included), or when its oldest event has waited `linger`, whichever comes first.
//!
//! [`plan`] is pure: given the sizes of the queued events, in order, and the age of the oldest,
//! it says how many to send now, how long to wait, or that the first event can never fit.

use std::time::Duration;

/// Bytes of `{"schema_version":"1","events":[`, `],"count":`, `,"generated_at":"…"}` with a
/// 24-character RFC 3339 time: everything in a body but the events, their commas and the count.
const ENVELOPE_BYTES: usize = 32 + 10 + 43;

/// The exact size of the body holding events of these sizes (see `evo_siem_protocol::encode_batch`).
pub fn body_size(event_sizes: &[usize]) -> usize {
    let n = event_sizes.len();
    ENVELOPE_BYTES + digits(n) + event_sizes.iter().sum::<usize>() + n.saturating_sub(1)
}

fn digits(n: usize) -> usize {
    n.checked_ilog10().map_or(1, |d| d as usize + 1)
}

/// A batch limit that makes no sense.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidLimits {
    /// `max_batch_events` must be at least 1.
    #[error("max_batch_events must be at least 1")]
    NoEvents,
    /// `max_batch_bytes` must leave room for the envelope and one small event.
    #[error("max_batch_bytes must be at least {min} bytes")]
    TooFewBytes {
        /// The smallest accepted value.
        min: usize,
    },
}

/// The three limits that close a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    max_events: usize,
    max_bytes: usize,
    linger: Duration,
}

impl Default for BatchLimits {
    /// 500 events, 1 MiB, 1 second.
    fn default() -> Self {
        Self {
            max_events: 500,
            max_bytes: 1024 * 1024,
            linger: Duration::from_secs(1),
        }
    }
}

impl BatchLimits {
    /// Checks and builds the limits.
    pub fn new(
        max_events: usize,
        max_bytes: usize,
        linger: Duration,
    ) -> Result<Self, InvalidLimits> {
        let min = body_size(&[64]);
        if max_events == 0 {
            return Err(InvalidLimits::NoEvents);
        }
        if max_bytes < min {
            return Err(InvalidLimits::TooFewBytes { min });
        }
        Ok(Self {
            max_events,
            max_bytes,
            linger,
        })
    }

    /// At most this many events in a batch.
    pub fn max_events(&self) -> usize {
        self.max_events
    }

    /// At most this many bytes in a body.
    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// How long the oldest queued event may wait for company.
    pub fn linger(&self) -> Duration {
        self.linger
    }
}

/// What to do with the queue now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// Send the first `n` queued events as one batch.
    Send(usize),
    /// Nothing is due: look again after this long (or when more events arrive).
    Wait(Duration),
    /// The first event alone exceeds `max_batch_bytes`: dead-letter it with that reason.
    TooLarge,
    /// The queue is empty.
    Idle,
}

/// Decides the next batch from the sizes of the queued events (in ingest order) and the age of
/// the oldest one.
pub fn plan(sizes: &[usize], oldest_age: Duration, limits: &BatchLimits) -> Plan {
    let Some(&first) = sizes.first() else {
        return Plan::Idle;
    };
    if body_size(&[first]) > limits.max_bytes {
        return Plan::TooLarge;
    }
    // The longest prefix within both limits.
    let mut bytes = ENVELOPE_BYTES + first;
    let mut n = 1;
    while n < sizes.len().min(limits.max_events) {
        let next = bytes + sizes[n] + 1;
        if next + digits(n + 1) > limits.max_bytes {
            return Plan::Send(n); // Full by bytes.
        }
        bytes = next;
        n += 1;
    }
    if n == limits.max_events || oldest_age >= limits.linger {
        Plan::Send(n)
    } else {
        Plan::Wait(limits.linger - oldest_age)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use evo_siem_protocol::encode_batch;
    use proptest::prelude::*;
    use serde_json::value::RawValue;

    fn event_of_size(size: usize) -> Box<RawValue> {
        let json = format!("{{\"p\":\"{}\"}}", "x".repeat(size - 8));
        RawValue::from_string(json).unwrap()
    }

    proptest! {
        #[test]
        fn body_size_is_exact(sizes in prop::collection::vec(8usize..300, 0..120)) {
            let events: Vec<Box<RawValue>> = sizes.iter().map(|&s| event_of_size(s)).collect();
            let refs: Vec<&RawValue> = events.iter().map(|e| &**e).collect();
            prop_assert_eq!(encode_batch(&refs, std::time::SystemTime::now()).len(), body_size(&sizes));
        }

        /// A batch never breaks a limit, and is as large as the limits allow.
        #[test]
        fn plans_respect_and_fill_the_limits(
            sizes in prop::collection::vec(8usize..2000, 1..200),
            max_events in 1usize..100,
            max_bytes in 200usize..20_000,
            age_ms in 0u64..2000,
        ) {
            let limits = BatchLimits::new(max_events, max_bytes, Duration::from_secs(1)).unwrap();
            match plan(&sizes, Duration::from_millis(age_ms), &limits) {
                Plan::Send(n) => {
                    prop_assert!(n >= 1 && n <= max_events && n <= sizes.len());
                    prop_assert!(body_size(&sizes[..n]) <= max_bytes);
                    let full = n == max_events || (n < sizes.len() && body_size(&sizes[..=n]) > max_bytes);
                    prop_assert!(full || age_ms >= 1000, "sent {} early", n);
                }
                Plan::Wait(d) => {
                    prop_assert!(age_ms < 1000 && d == Duration::from_millis(1000 - age_ms));
                    prop_assert!(sizes.len() < max_events && body_size(&sizes) <= max_bytes);
                }
                Plan::TooLarge => prop_assert!(body_size(&sizes[..1]) > max_bytes),
                Plan::Idle => prop_assert!(false, "the queue is not empty"),
            }
        }
    }

    #[test]
    fn limits_are_checked() {
        assert_eq!(
            BatchLimits::new(0, 1 << 20, Duration::ZERO),
            Err(InvalidLimits::NoEvents)
        );
        assert_eq!(
            BatchLimits::new(1, 10, Duration::ZERO),
            Err(InvalidLimits::TooFewBytes { min: 150 })
        );
        assert_eq!(
            plan(&[], Duration::ZERO, &BatchLimits::default()),
            Plan::Idle
        );
    }

    /// What an integration gets when its settings leave the limits out.
    #[test]
    fn the_defaults_are_500_events_1_mib_and_1_second() {
        let limits = BatchLimits::default();
        assert_eq!(limits.max_events(), 500);
        assert_eq!(limits.max_bytes(), 1024 * 1024);
        assert_eq!(limits.linger(), Duration::from_secs(1));
        let built = BatchLimits::new(7, 4096, Duration::from_millis(250)).unwrap();
        assert_eq!(
            (built.max_events(), built.max_bytes(), built.linger()),
            (7, 4096, Duration::from_millis(250))
        );
    }

    /// Both limits are inclusive, to the byte: a body of exactly `max_bytes` is sent, one byte
    /// more is not, and the count's extra digit at the tenth event is counted.
    #[test]
    fn limits_hold_to_the_byte() {
        let linger = Duration::from_secs(1);
        // The first event alone: exactly at the limit it is sent, one byte over it can never be.
        let limits = BatchLimits::new(500, body_size(&[200]), linger).unwrap();
        assert_eq!(plan(&[200, 8], linger, &limits), Plan::Send(1));
        assert_eq!(plan(&[201], linger, &limits), Plan::TooLarge);
        // Three events fill the body exactly: all three go, the fourth waits for the next batch.
        let limits = BatchLimits::new(500, body_size(&[100, 100, 100]), linger).unwrap();
        assert_eq!(
            plan(&[100, 100, 100, 100], Duration::ZERO, &limits),
            Plan::Send(3)
        );
        assert_eq!(plan(&[100, 100, 101], linger, &limits), Plan::Send(2));
        // Ten events need two digits for the count: one byte short of that, nine are sent.
        let ten = [100; 10];
        let limits = BatchLimits::new(500, body_size(&ten) - 1, linger).unwrap();
        assert_eq!(plan(&ten, linger, &limits), Plan::Send(9));
        let limits = BatchLimits::new(500, body_size(&ten), linger).unwrap();
        assert_eq!(plan(&ten, linger, &limits), Plan::Send(10));
    }
}

//! [`Backoff`]: capped exponential backoff with full jitter, a pacing floor, and how
//! `Retry-After` bends it.

use std::time::Duration;

/// The longest `Retry-After` honoured; a receiver asking for more is retried after this long, so
/// a typo on its side (a date in the next century) cannot park an integration forever.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60 * 60);

/// The default pacing floor: no answer makes the next attempt of the same batch sooner than
/// this. Each attempt re-encodes, re-signs and re-sends up to a whole batch body, so a receiver
/// answering `Retry-After: 0` (or a date in the past, or failing instantly) must not be able to
/// keep the sender in a tight loop.
pub const DEFAULT_RETRY_FLOOR: Duration = Duration::from_secs(1);

/// Backoff settings that make no sense.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidBackoff {
    /// The base delay is zero.
    #[error("the base delay must be greater than zero")]
    ZeroBase,
    /// The cap is below the base.
    #[error("the cap ({cap:?}) must not be below the base ({base:?})")]
    CapBelowBase {
        /// The base delay.
        base: Duration,
        /// The cap.
        cap: Duration,
    },
    /// The pacing floor is zero: that is the tight retry loop the floor exists to prevent.
    #[error("the retry floor must be greater than zero")]
    ZeroFloor,
}

/// Capped exponential backoff with full jitter and a pacing floor.
///
/// Before retry `n` (1 for the first retry):
///
/// - without `Retry-After`, wait `max(floor, r)` with `r` uniformly random in
///   `[0, ceiling(n)]` and `ceiling(n) = min(cap, base * 2^(n-1))`. Full jitter spreads the
///   retries of many batches after an outage, instead of sending them back in waves; the floor
///   stops it from ever drawing an (almost) immediate retry.
/// - with `Retry-After: d`, wait `max(min(d, MAX_RETRY_AFTER), floor, ceiling(n) / 2)`. The
///   receiver may slow the sender down (up to [`MAX_RETRY_AFTER`]) but never speed it up past
///   the backoff: `ceiling(n) / 2` is the lower bound of equal jitter and the mean of full
///   jitter, so a receiver answering `Retry-After: 0` again and again is paced like one that
///   gives no `Retry-After`, on average, and never faster than half of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    floor: Duration,
}

impl Default for Backoff {
    /// 1 second base, 10 minutes cap, 1 second floor.
    fn default() -> Self {
        Self {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(600),
            floor: DEFAULT_RETRY_FLOOR,
        }
    }
}

impl Backoff {
    /// Checks and builds the settings. The floor is the smaller of [`DEFAULT_RETRY_FLOOR`] and
    /// `base`: never zero, and a backoff tuned below a second (in tests) stays that fast. Use
    /// [`with_floor`](Self::with_floor) to set it; the service's configuration always does.
    pub fn new(base: Duration, cap: Duration) -> Result<Self, InvalidBackoff> {
        if base.is_zero() {
            return Err(InvalidBackoff::ZeroBase);
        }
        if cap < base {
            return Err(InvalidBackoff::CapBelowBase { base, cap });
        }
        Ok(Self {
            base,
            cap,
            floor: DEFAULT_RETRY_FLOOR.min(base),
        })
    }

    /// The same backoff with `floor` as the shortest wait before any retry. A floor above the
    /// cap is allowed: every wait is then the floor (or a longer `Retry-After`).
    pub fn with_floor(self, floor: Duration) -> Result<Self, InvalidBackoff> {
        if floor.is_zero() {
            return Err(InvalidBackoff::ZeroFloor);
        }
        Ok(Self { floor, ..self })
    }

    /// The shortest wait before any retry.
    pub fn floor(&self) -> Duration {
        self.floor
    }

    /// The ceiling of the random delay before retry `retry` (1-based).
    pub fn ceiling(&self, retry: u32) -> Duration {
        let exponent = retry.saturating_sub(1);
        if exponent >= 32 {
            return self.cap;
        }
        self.base
            .checked_mul(1u32 << exponent)
            .map_or(self.cap, |d| d.min(self.cap))
    }

    /// The shortest wait before retry `retry` (1-based) whatever the receiver answered: the
    /// floor, or half the [`ceiling`](Self::ceiling) when that is longer.
    pub fn lower_bound(&self, retry: u32) -> Duration {
        self.floor.max(self.ceiling(retry) / 2)
    }

    /// The delay before retry `retry` (1-based), as described on [`Backoff`]: the receiver's
    /// `Retry-After` when it gave one, capped at [`MAX_RETRY_AFTER`] and raised to
    /// [`lower_bound`](Self::lower_bound); otherwise a random point below the
    /// [`ceiling`](Self::ceiling), raised to the floor. `rng` is passed in so that tests are
    /// deterministic.
    pub fn delay(
        &self,
        retry: u32,
        retry_after: Option<Duration>,
        rng: &mut fastrand::Rng,
    ) -> Duration {
        if let Some(asked) = retry_after {
            return asked.min(MAX_RETRY_AFTER).max(self.lower_bound(retry));
        }
        let ceiling = self.ceiling(retry).as_nanos().min(u128::from(u64::MAX)) as u64;
        Duration::from_nanos(rng.u64(0..=ceiling)).max(self.floor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn settings_are_checked() {
        assert_eq!(
            Backoff::new(Duration::ZERO, Duration::from_secs(1)),
            Err(InvalidBackoff::ZeroBase)
        );
        let (base, cap) = (Duration::from_secs(2), Duration::from_secs(1));
        assert_eq!(
            Backoff::new(base, cap),
            Err(InvalidBackoff::CapBelowBase { base, cap })
        );
    }

    #[test]
    fn ceilings_double_then_cap() {
        let backoff = Backoff::default();
        let secs: Vec<u64> = (1..=12).map(|n| backoff.ceiling(n).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 600, 600]);
        assert_eq!(backoff.ceiling(u32::MAX), Duration::from_secs(600));
    }

    #[test]
    fn retry_after_is_honoured_and_clamped() {
        let mut rng = fastrand::Rng::with_seed(1);
        let backoff = Backoff::default();
        assert_eq!(
            backoff.delay(1, Some(Duration::from_secs(30)), &mut rng),
            Duration::from_secs(30)
        );
        assert_eq!(
            backoff.delay(1, Some(Duration::from_secs(86_400)), &mut rng),
            MAX_RETRY_AFTER
        );
    }

    /// The longest `Retry-After` honoured is one hour: asked for more, the sender waits an hour.
    #[test]
    fn a_retry_after_is_honoured_up_to_one_hour() {
        let mut rng = fastrand::Rng::with_seed(1);
        let backoff = Backoff::default();
        let hour = Duration::from_secs(3600);
        assert_eq!(backoff.delay(1, Some(hour), &mut rng), hour);
        assert_eq!(
            backoff.delay(1, Some(hour + Duration::from_secs(1)), &mut rng),
            hour
        );
        assert_eq!(backoff.delay(1, Some(hour * 24 * 365), &mut rng), hour);
    }

    #[test]
    fn an_immediate_retry_after_is_paced_by_the_floor_and_the_backoff() {
        let mut rng = fastrand::Rng::with_seed(1);
        let backoff = Backoff::default();
        // `Retry-After: 0` (or a past date, parsed as zero): the floor, then half the ceiling.
        let waits: Vec<u64> = (1..=8)
            .map(|n| backoff.delay(n, Some(Duration::ZERO), &mut rng).as_secs())
            .collect();
        assert_eq!(waits, [1, 1, 2, 4, 8, 16, 32, 64]);
        assert_eq!(
            backoff.delay(30, Some(Duration::ZERO), &mut rng),
            Duration::from_secs(300)
        );
    }

    #[test]
    fn the_floor_is_checked_and_defaults_to_at_most_a_second() {
        let tiny = Backoff::new(Duration::from_millis(10), Duration::from_millis(40)).unwrap();
        assert_eq!(tiny.floor(), Duration::from_millis(10));
        let slow = Backoff::new(Duration::from_secs(5), Duration::from_secs(60)).unwrap();
        assert_eq!(slow.floor(), DEFAULT_RETRY_FLOOR);
        assert_eq!(Backoff::default().floor(), DEFAULT_RETRY_FLOOR);
        assert_eq!(
            tiny.with_floor(Duration::ZERO),
            Err(InvalidBackoff::ZeroFloor)
        );
        // A floor above the cap: every wait is the floor.
        let floored = tiny.with_floor(Duration::from_secs(2)).unwrap();
        let mut rng = fastrand::Rng::with_seed(7);
        for n in 1..20 {
            assert_eq!(floored.delay(n, None, &mut rng), Duration::from_secs(2));
        }
    }

    proptest! {
        /// No answer makes a retry sooner than the floor; a `Retry-After` makes it no sooner than
        /// half the backoff's ceiling either, and no later than it asked (up to
        /// `MAX_RETRY_AFTER`) unless that bound is longer.
        #[test]
        fn no_delay_is_below_the_floor_or_the_backoff_bound(
            base_ms in 1u64..5_000,
            extra_ms in 0u64..1_000_000,
            floor_ms in 1u64..10_000,
            retry in 1u32..200,
            asked_ms in prop::option::of(prop_oneof![Just(0u64), 0u64..10_000_000]),
            seed in any::<u64>(),
        ) {
            let backoff = Backoff::new(Duration::from_millis(base_ms), Duration::from_millis(base_ms + extra_ms))
                .unwrap()
                .with_floor(Duration::from_millis(floor_ms))
                .unwrap();
            let mut rng = fastrand::Rng::with_seed(seed);
            let asked = asked_ms.map(Duration::from_millis);
            let delay = backoff.delay(retry, asked, &mut rng);
            prop_assert!(delay >= Duration::from_millis(floor_ms), "{delay:?}");
            match asked {
                Some(asked) => {
                    let bound = backoff.ceiling(retry) / 2;
                    prop_assert!(delay >= bound, "{delay:?} < {bound:?}");
                    prop_assert_eq!(delay, asked.min(MAX_RETRY_AFTER).max(backoff.lower_bound(retry)));
                }
                None => prop_assert!(delay <= backoff.ceiling(retry).max(backoff.floor())),
            }
        }


        /// Every delay stays between zero and the ceiling, which never exceeds the cap.
        #[test]
        fn delays_stay_within_bounds(base_ms in 1u64..5_000, extra_ms in 0u64..1_000_000, retry in 1u32..200, seed in any::<u64>()) {
            let backoff = Backoff::new(Duration::from_millis(base_ms), Duration::from_millis(base_ms + extra_ms)).unwrap();
            let mut rng = fastrand::Rng::with_seed(seed);
            let delay = backoff.delay(retry, None, &mut rng);
            prop_assert!(delay <= backoff.ceiling(retry));
            prop_assert!(backoff.ceiling(retry) <= Duration::from_millis(base_ms + extra_ms));
            prop_assert!(backoff.ceiling(retry) >= backoff.ceiling(retry.saturating_sub(1).max(1)));
        }
    }
}

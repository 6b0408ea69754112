//! [`Backoff`]: capped exponential backoff with full jitter, and how `Retry-After` bends it.

use std::time::Duration;

/// The longest `Retry-After` honoured; a receiver asking for more is retried after this long, so
/// a typo on its side (a date in the next century) cannot park an integration forever.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60 * 60);

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
}

/// Capped exponential backoff with full jitter: before retry `n` (1 for the first retry) wait a
/// uniformly random time in `[0, min(cap, base * 2^(n-1))]`. Full jitter spreads the retries of
/// many batches after an outage, instead of sending them back in waves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
}

impl Default for Backoff {
    /// 1 second base, 10 minutes cap.
    fn default() -> Self {
        Self {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(600),
        }
    }
}

impl Backoff {
    /// Checks and builds the settings.
    pub fn new(base: Duration, cap: Duration) -> Result<Self, InvalidBackoff> {
        if base.is_zero() {
            return Err(InvalidBackoff::ZeroBase);
        }
        if cap < base {
            return Err(InvalidBackoff::CapBelowBase { base, cap });
        }
        Ok(Self { base, cap })
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

    /// The delay before retry `retry`: the receiver's `Retry-After` when it gave one (capped at
    /// [`MAX_RETRY_AFTER`]), otherwise a random point below [`ceiling`](Self::ceiling). `rng`
    /// is passed in so that tests are deterministic.
    pub fn delay(
        &self,
        retry: u32,
        retry_after: Option<Duration>,
        rng: &mut fastrand::Rng,
    ) -> Duration {
        if let Some(asked) = retry_after {
            return asked.min(MAX_RETRY_AFTER);
        }
        let ceiling = self.ceiling(retry).as_nanos().min(u128::from(u64::MAX)) as u64;
        Duration::from_nanos(rng.u64(0..=ceiling))
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

    proptest! {
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

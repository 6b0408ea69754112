//! [`classify`]: the delivery semantics of DESIGN.md as one pure function.

use std::time::Duration;

/// How an attempt ended, as far as the retry policy cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptResult {
    /// The receiver answered with this status; `retry_after` is its parsed `Retry-After`.
    Status {
        /// The HTTP status code.
        status: u16,
        /// The `Retry-After` header, already parsed.
        retry_after: Option<Duration>,
    },
    /// No answer in time, a refused or reset connection, a TLS failure: the receiver may or may
    /// not have the batch, so it is sent again (receivers deduplicate).
    Transport,
}

/// What to do with the batch after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx: the batch's events may be removed from the spool.
    Delivered,
    /// Send the same batch again later, after at least `after` when the receiver asked for it.
    Retry {
        /// The receiver's `Retry-After`, if it gave one.
        after: Option<Duration>,
    },
    /// Split the batch in halves and send each (413 on a batch, or 400/422 on a batch: bisecting
    /// isolates the event the receiver refuses).
    Split,
    /// A single event the receiver refuses (400, 413 or 422): record it in the dead-letter store.
    DeadLetter,
    /// 401, 403, 404, 410, or a redirect: the integration is misconfigured. Pause it, keep its
    /// events queued, and probe again with backoff.
    Pause,
}

/// Classifies an attempt at delivering a batch of `batch_len` events.
///
/// | result | outcome |
/// |---|---|
/// | 2xx | `Delivered` |
/// | 408, 429, 5xx, other 4xx, transport errors | `Retry` (honouring `Retry-After`) |
/// | 413, 400, 422 | `Split` for several events, `DeadLetter` for one |
/// | 401, 403, 404, 410, 3xx (redirects are never followed) | `Pause` |
///
/// ```
/// use evo_siem_sender::retry::{AttemptResult, Outcome, classify};
/// let status = |status| AttemptResult::Status { status, retry_after: None };
/// assert_eq!(classify(status(204), 10), Outcome::Delivered);
/// assert_eq!(classify(status(413), 10), Outcome::Split);
/// assert_eq!(classify(status(422), 1), Outcome::DeadLetter);
/// assert_eq!(classify(status(410), 10), Outcome::Pause);
/// ```
pub fn classify(result: AttemptResult, batch_len: usize) -> Outcome {
    let AttemptResult::Status {
        status,
        retry_after,
    } = result
    else {
        return Outcome::Retry { after: None };
    };
    match status {
        200..=299 => Outcome::Delivered,
        400 | 413 | 422 if batch_len > 1 => Outcome::Split,
        400 | 413 | 422 => Outcome::DeadLetter,
        300..=399 | 401 | 403 | 404 | 410 => Outcome::Pause,
        // 408, 429, 5xx, and any other answer: the batch is fine, the receiver is not ready.
        _ => Outcome::Retry { after: retry_after },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_delivery_table() {
        let after = Some(Duration::from_secs(7));
        let cases: &[(u16, usize, Outcome)] = &[
            (200, 5, Outcome::Delivered),
            (202, 1, Outcome::Delivered),
            (408, 5, Outcome::Retry { after }),
            (429, 5, Outcome::Retry { after }),
            (500, 5, Outcome::Retry { after }),
            (503, 1, Outcome::Retry { after }),
            (418, 5, Outcome::Retry { after }),
            (413, 2, Outcome::Split),
            (413, 1, Outcome::DeadLetter),
            (400, 9, Outcome::Split),
            (400, 1, Outcome::DeadLetter),
            (422, 1, Outcome::DeadLetter),
            (401, 5, Outcome::Pause),
            (403, 5, Outcome::Pause),
            (404, 5, Outcome::Pause),
            (410, 5, Outcome::Pause),
            (301, 5, Outcome::Pause),
            (307, 5, Outcome::Pause),
        ];
        for &(status, len, expected) in cases {
            let result = AttemptResult::Status {
                status,
                retry_after: after,
            };
            assert_eq!(classify(result, len), expected, "{status} on {len} events");
        }
        assert_eq!(
            classify(AttemptResult::Transport, 3),
            Outcome::Retry { after: None }
        );
    }
}

//! What to do after an attempt ([`classify`]) and how long to wait before the next one
//! ([`Backoff`], [`parse_retry_after`]), kept apart as tower and vector do: the policy decides
//! whether to retry, the backoff decides when.

mod backoff;
mod classify;
mod retry_after;

pub use backoff::{Backoff, DEFAULT_RETRY_FLOOR, InvalidBackoff, MAX_RETRY_AFTER};
pub use classify::{AttemptResult, Outcome, classify};
pub use retry_after::parse_retry_after;

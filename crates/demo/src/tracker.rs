//! [`Tracker`]: what the feeder handed to the sender, and what of it reached the SIEM.

use evo_siem_mock::MockSiem;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub(crate) fn unix_ms(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// What was handed to the sender and what reached the SIEM.
#[derive(Debug, Default)]
pub(crate) struct Tracker {
    /// Events the SIEM must receive: uuid → (tenant, when handed to the sender, Unix ms).
    pub(crate) expected: HashMap<String, (usize, u64)>,
    /// Events of excluded actions, which must never arrive.
    pub(crate) excluded_uuids: HashSet<String>,
    /// The expected events in ingest order, for the age of the oldest undelivered one.
    pub(crate) order: VecDeque<(String, u64)>,
    pub(crate) arrived: HashSet<String>,
    /// Mock SIEM events already looked at.
    pub(crate) seen: usize,
    pub(crate) latencies: Vec<Duration>,
    pub(crate) ingested: [u64; 2],
    pub(crate) excluded: [u64; 2],
    pub(crate) delivered: [u64; 2],
    pub(crate) excluded_arrived: u64,
    pub(crate) unknown_arrived: u64,
    pub(crate) refused_requests: u64,
    /// Requests whose `excluded` count differs from the demo's own count.
    pub(crate) filter_mismatches: u64,
}

impl Tracker {
    /// Takes the SIEM's new arrivals into account.
    pub(crate) fn poll(&mut self, siem: &MockSiem) {
        for event in siem.events_from(self.seen) {
            self.seen += 1;
            match self.expected.get(&event.uuid) {
                Some(&(tenant, sent_ms)) => {
                    if self.arrived.insert(event.uuid) {
                        self.delivered[tenant] += 1;
                        self.latencies.push(Duration::from_millis(
                            event.received_at_ms.saturating_sub(sent_ms),
                        ));
                    }
                }
                None if self.excluded_uuids.contains(&event.uuid) => self.excluded_arrived += 1,
                None => self.unknown_arrived += 1,
            }
        }
        while self
            .order
            .front()
            .is_some_and(|(uuid, _)| self.arrived.contains(uuid))
        {
            self.order.pop_front();
        }
    }

    pub(crate) fn missing(&self) -> u64 {
        (self.expected.len() - self.arrived.len()) as u64
    }
}

pub(crate) fn lock(tracker: &Mutex<Tracker>) -> std::sync::MutexGuard<'_, Tracker> {
    tracker
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

//! [`SeenSet`]: a bounded set of UUIDs that forgets the oldest first, in about 26 bytes an entry.
//!
//! Seen UUIDs are only ever inserted and looked up, never promoted, so "least recently used" is
//! just "inserted first". That allows a ring of 16-byte keys in insertion order plus a
//! `hashbrown::HashTable` of 4-byte ring positions, with no allocation per entry. The `lru`
//! crate's `LruCache<Uuid, ()>` measured 84 bytes an entry at 1 M entries here (a 32-byte node
//! that glibc rounds to 48, plus a 16-byte table slot); its floor, 68 bytes even with a
//! size-class allocator, is above the 64-byte target.

use hashbrown::DefaultHashBuilder;
use hashbrown::HashTable;
use std::collections::VecDeque;
use std::hash::BuildHasher;
use std::time::Duration;
use tokio::time::Instant;
use uuid::Uuid;

/// A bounded, insertion-ordered set of UUIDs with a time-to-live.
///
/// Entries carry no timestamp: a short list of epochs records, for each stretch of insertions,
/// the sequence number it ended at and the time of its last insertion, and whole epochs are
/// dropped once that time is older than the TTL. An entry may so outlive its TTL by at most one
/// epoch (the TTL / 64).
pub(crate) struct SeenSet {
    /// Slot `seq % capacity` holds the UUID inserted with sequence number `seq`. It grows to
    /// `capacity` as entries arrive, so an idle receiver does not hold the whole bound.
    ring: Vec<Uuid>,
    capacity: usize,
    /// Sequence numbers `head..tail` are present.
    head: u64,
    tail: u64,
    index: HashTable<u32>,
    hasher: DefaultHashBuilder,
    /// `(end_seq, started, last_insert)` per epoch, oldest first.
    epochs: VecDeque<(u64, Instant, Instant)>,
    epoch_len: Duration,
}

impl SeenSet {
    /// A set holding at most `capacity` UUIDs (at least one).
    pub(crate) fn new(capacity: usize, ttl: Duration) -> Self {
        let capacity = capacity.clamp(1, u32::MAX as usize);
        Self {
            ring: Vec::new(),
            capacity,
            head: 0,
            tail: 0,
            index: HashTable::with_capacity(capacity),
            hasher: DefaultHashBuilder::default(),
            epochs: VecDeque::new(),
            epoch_len: (ttl / 64).max(Duration::from_millis(1)),
        }
    }

    pub(crate) fn len(&self) -> usize {
        (self.tail - self.head) as usize
    }

    fn slot(&self, seq: u64) -> u32 {
        (seq % self.capacity as u64) as u32
    }

    pub(crate) fn contains(&self, uuid: &Uuid) -> bool {
        let hash = self.hasher.hash_one(uuid);
        self.index
            .find(hash, |&slot| self.ring[slot as usize] == *uuid)
            .is_some()
    }

    /// Inserts `uuid` at `now` unless present, forgetting the oldest entry when full.
    pub(crate) fn insert(&mut self, uuid: Uuid, now: Instant) {
        if self.contains(&uuid) {
            return;
        }
        if self.len() == self.capacity {
            self.pop_oldest();
        }
        let slot = self.slot(self.tail);
        if self.ring.len() < self.capacity {
            if self.ring.len() == self.ring.capacity() {
                // Exact steps, so the ring never ends larger than `capacity`.
                let step = self
                    .ring
                    .len()
                    .clamp(1024, 1 << 20)
                    .min(self.capacity - self.ring.len());
                self.ring.reserve_exact(step);
            }
            self.ring.push(uuid);
        } else {
            self.ring[slot as usize] = uuid;
        }
        let (ring, hasher) = (&self.ring, &self.hasher);
        self.index.insert_unique(hasher.hash_one(uuid), slot, |&s| {
            hasher.hash_one(ring[s as usize])
        });
        self.tail += 1;
        match self.epochs.back_mut() {
            Some((end, started, last)) if now.duration_since(*started) < self.epoch_len => {
                *end = self.tail;
                *last = now;
            }
            _ => self.epochs.push_back((self.tail, now, now)),
        }
    }

    fn pop_oldest(&mut self) {
        let slot = self.slot(self.head);
        let hash = self.hasher.hash_one(self.ring[slot as usize]);
        if let Ok(entry) = self.index.find_entry(hash, |&s| s == slot) {
            entry.remove();
        }
        self.head += 1;
    }

    /// Forgets every entry whose epoch ended more than `ttl` before `now`.
    pub(crate) fn expire(&mut self, now: Instant, ttl: Duration) {
        while let Some(&(end, _, last)) = self.epochs.front() {
            if now.duration_since(last) < ttl {
                break;
            }
            while self.head < end {
                self.pop_oldest();
            }
            self.epochs.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::VecDeque;

    proptest! {
        /// Against a plain model: a FIFO of distinct UUIDs bounded by capacity.
        #[test]
        fn behaves_like_a_bounded_fifo(capacity in 1usize..20, inserts in prop::collection::vec(0u128..40, 0..200)) {
            let now = Instant::now();
            let mut set = SeenSet::new(capacity, Duration::from_secs(3600));
            let mut model: VecDeque<u128> = VecDeque::new();
            for key in inserts {
                set.insert(Uuid::from_u128(key), now);
                if !model.contains(&key) {
                    if model.len() == capacity {
                        model.pop_front();
                    }
                    model.push_back(key);
                }
                prop_assert_eq!(set.len(), model.len());
                for probe in 0u128..40 {
                    prop_assert_eq!(set.contains(&Uuid::from_u128(probe)), model.contains(&probe), "key {}", probe);
                }
            }
        }
    }
}

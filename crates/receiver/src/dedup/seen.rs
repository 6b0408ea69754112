//! [`SeenSet`]: a bounded set of UUIDs that forgets the oldest first, in about 28 bytes an entry.
//!
//! Seen UUIDs are only ever inserted and looked up, never promoted, so "least recently used" is
//! just "inserted first". That allows a ring of 16-byte keys in insertion order plus one
//! open-addressing table of 8-byte entries, with no allocation per entry. An entry packs a
//! 32-bit tag of the key's hash (which also gives its home bucket) with the key's ring position,
//! so a lookup of an absent key (the common case: fresh events) reads one cache line of the
//! table and never the ring, and forgetting the oldest key finds its entry from the ring
//! position alone. The `lru` crate's `LruCache<Uuid, ()>` measures about 84 bytes an entry at
//! 1 M entries here (a 32-byte node that glibc rounds to 48, plus its table); `benches/dedup.rs`
//! measures both side by side.

use std::collections::VecDeque;
use std::time::Duration;
use tokio::time::Instant;
use uuid::Uuid;

/// Table buckets per entry of capacity: a load of at most 2/3, so that linear probing stays
/// short (about five entries, under one cache line, for an absent key).
const BUCKETS_PER_ENTRY: (usize, usize) = (3, 2);

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
    /// Linear probing; `0` is an empty bucket, otherwise `tag << 32 | (slot + 1)`. Zeroed
    /// memory, so pages the set never reaches are never made resident.
    table: Vec<u64>,
    /// Per-set random keys of the hash, so that chosen UUIDs cannot pile up in one place.
    seeds: (u64, u64),
    /// `(end_seq, started, last_insert)` per epoch, oldest first.
    epochs: VecDeque<(u64, Instant, Instant)>,
    epoch_len: Duration,
}

impl SeenSet {
    /// A set holding at most `capacity` UUIDs (at least one).
    pub(crate) fn new(capacity: usize, ttl: Duration) -> Self {
        let capacity = capacity.clamp(1, u32::MAX as usize - 1);
        let (num, den) = BUCKETS_PER_ENTRY;
        let buckets = (capacity * num / den + 1).min(u32::MAX as usize);
        let seeds = Uuid::new_v4().as_u128();
        Self {
            ring: Vec::new(),
            capacity,
            head: 0,
            tail: 0,
            table: vec![0; buckets],
            seeds: (seeds as u64 | 1, (seeds >> 64) as u64),
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

    /// The 32-bit tag of `uuid`: a keyed, folded multiply of its two halves, then a
    /// multiply-xorshift finish.
    ///
    /// The finish matters for keys that differ only in a few low bits (sequential or
    /// time-ordered UUIDs from one generator): one half is then the same for all of them and the
    /// folded product moves by a fixed step, which for about one seed in a hundred puts the
    /// tags' top bits, where the home bucket comes from, in a few clumps (mean probe distances
    /// of 25 and more were seen). Mixing every bit of the product into the top ones spreads
    /// them whatever the seed.
    #[inline]
    fn tag(&self, uuid: &Uuid) -> u32 {
        let v = uuid.as_u128();
        let a = (v as u64) ^ self.seeds.0;
        let b = ((v >> 64) as u64) ^ self.seeds.1;
        let product = u128::from(a) * u128::from(b.rotate_left(23) | 1);
        let mut folded = (product as u64) ^ ((product >> 64) as u64);
        folded ^= folded >> 32;
        folded = folded.wrapping_mul(0xD6E8_FEB8_6659_FD93);
        folded ^= folded >> 32;
        (folded >> 32) as u32
    }

    /// The bucket where probing for `tag` starts: `tag` scaled to the table's length.
    #[inline]
    fn home(&self, tag: u32) -> usize {
        ((u64::from(tag) * self.table.len() as u64) >> 32) as usize
    }

    #[inline]
    fn next(&self, bucket: usize) -> usize {
        if bucket + 1 == self.table.len() {
            0
        } else {
            bucket + 1
        }
    }

    /// The bucket holding `uuid`, if present.
    #[inline]
    fn find(&self, uuid: &Uuid, tag: u32) -> Option<usize> {
        let mut bucket = self.home(tag);
        loop {
            let entry = self.table[bucket];
            if entry == 0 {
                return None;
            }
            if (entry >> 32) as u32 == tag && self.ring[(entry as u32 - 1) as usize] == *uuid {
                return Some(bucket);
            }
            bucket = self.next(bucket);
        }
    }

    /// Reads the home bucket of each of `uuids` and of the next `evictions` entries to be
    /// forgotten, before the lookups that need them: these loads do not depend on each other,
    /// so the CPU overlaps their cache misses instead of waiting for each in turn inside a
    /// probe loop (a prefetch by batch, without prefetch instructions).
    pub(crate) fn warm<'u>(&self, uuids: impl Iterator<Item = &'u Uuid>, evictions: usize) {
        let mut touched = 0u64;
        for uuid in uuids {
            touched ^= self.table[self.home(self.tag(uuid))];
        }
        let evictions = evictions.min(self.len()).min(self.ring.len());
        for seq in self.head..self.head + evictions as u64 {
            let oldest = &self.ring[self.slot(seq) as usize];
            touched ^= self.table[self.home(self.tag(oldest))];
        }
        std::hint::black_box(touched);
    }

    /// How many more entries fit before each insertion forgets the oldest.
    pub(crate) fn room(&self) -> usize {
        self.capacity - self.len()
    }

    pub(crate) fn contains(&self, uuid: &Uuid) -> bool {
        self.find(uuid, self.tag(uuid)).is_some()
    }

    /// Inserts `uuid` at `now` unless present, forgetting the oldest entry when full.
    pub(crate) fn insert(&mut self, uuid: Uuid, now: Instant) {
        let tag = self.tag(&uuid);
        if self.find(&uuid, tag).is_some() {
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
        let mut bucket = self.home(tag);
        while self.table[bucket] != 0 {
            bucket = self.next(bucket);
        }
        self.table[bucket] = (u64::from(tag) << 32) | u64::from(slot + 1);
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
        let tag = self.tag(&self.ring[slot as usize]);
        let mut bucket = self.home(tag);
        loop {
            let entry = self.table[bucket];
            if entry == 0 {
                break; // Not indexed: cannot happen, but nothing to remove then.
            }
            if entry as u32 == slot + 1 {
                self.remove_at(bucket);
                break;
            }
            bucket = self.next(bucket);
        }
        self.head += 1;
    }

    /// Empties `bucket` and shifts later entries of its run back, so that no lookup stops
    /// early at the hole (deletion without tombstones).
    fn remove_at(&mut self, bucket: usize) {
        let mut hole = bucket;
        let mut probe = bucket;
        loop {
            probe = self.next(probe);
            let entry = self.table[probe];
            if entry == 0 {
                break;
            }
            let home = self.home((entry >> 32) as u32);
            // The entry may fill the hole unless its home lies cyclically in (hole, probe].
            let stays = if hole <= probe {
                hole < home && home <= probe
            } else {
                hole < home || home <= probe
            };
            if !stays {
                self.table[hole] = entry;
                hole = probe;
            }
        }
        self.table[hole] = 0;
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

        /// Long runs of colliding buckets, wrapping around the table's end: random keys in a
        /// small table, every remembered key still found after each eviction, the table holding
        /// exactly one entry per remembered key.
        #[test]
        fn evictions_keep_every_run_reachable(capacity in 1usize..64, inserts in prop::collection::vec(any::<u128>(), 0..400)) {
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
                prop_assert_eq!(set.table.iter().filter(|e| **e != 0).count(), model.len());
                for key in &model {
                    prop_assert!(set.contains(&Uuid::from_u128(*key)));
                }
            }
        }
    }

    /// Two UUIDs with the same 32-bit tag (found by a birthday search among random ones) are
    /// still two UUIDs: a lookup compares the whole key, never the tag alone.
    #[test]
    fn keys_sharing_a_tag_are_told_apart() {
        let now = Instant::now();
        let mut set = SeenSet::new(1000, Duration::from_secs(3600));
        let mut by_tag = std::collections::HashMap::new();
        let (a, b) = std::iter::repeat_with(Uuid::new_v4)
            .find_map(|u| by_tag.insert(set.tag(&u), u).map(|earlier| (earlier, u)))
            .expect("a collision among random keys");
        assert_ne!(a, b);
        set.insert(a, now);
        assert!(set.contains(&a));
        assert!(!set.contains(&b), "a fresh UUID taken for a seen one");
        set.insert(b, now);
        assert!(set.contains(&a) && set.contains(&b));
        assert_eq!(set.len(), 2);
    }

    /// Keys spread over the table, also time-ordered ones that differ in a few low bits: the
    /// mean distance from a key's home bucket stays near linear probing's 1 at a load of 2/3
    /// (0.81-1.28 over 800 sets of each kind), so a lookup reads about one cache line however
    /// many keys the set holds. Every set has its own random seeds: before the tag's final mix,
    /// about one seed in a hundred clumped sequential keys (means of 25 and more), and this
    /// test, with its 16 sets, failed one run in six.
    #[test]
    fn keys_spread_over_the_table_so_probes_stay_short() {
        let now = Instant::now();
        let capacity = 3000;
        let base: u128 = 0x0193_7a1c_2b3d_7e4f_8a5b_0000_0000_0000; // a v7 UUID's shape
        for round in 0..8u128 {
            for sequential in [false, true] {
                let mut set = SeenSet::new(capacity, Duration::from_secs(3600));
                for i in 0..capacity as u128 {
                    let key = if sequential {
                        Uuid::from_u128(base + (round << 20) + i)
                    } else {
                        Uuid::new_v4()
                    };
                    set.insert(key, now);
                }
                let len = set.table.len();
                let total: usize = (0..len)
                    .filter(|&bucket| set.table[bucket] != 0)
                    .map(|bucket| {
                        let home = set.home((set.table[bucket] >> 32) as u32);
                        (bucket + len - home) % len
                    })
                    .sum();
                let mean = total as f64 / capacity as f64;
                assert!(
                    mean < 2.0,
                    "mean probe distance {mean:.1} (sequential keys: {sequential})"
                );
            }
        }
    }

    /// The ring of keys grows in steps as entries arrive and never past the capacity: the
    /// memory bound is the configured one (16 bytes a key in the ring).
    #[test]
    fn the_ring_grows_to_its_capacity_and_no_further() {
        let now = Instant::now();
        for capacity in [1, 7, 1024, 1500, 5000] {
            let mut set = SeenSet::new(capacity, Duration::from_secs(3600));
            for i in 0..capacity + 100 {
                set.insert(Uuid::from_u128(i as u128 + 1), now);
                assert!(set.ring.capacity() <= capacity, "capacity {capacity}");
            }
            assert_eq!(
                (set.len(), set.ring.len(), set.ring.capacity()),
                (capacity, capacity, capacity)
            );
        }
    }

    /// The TTL's bookkeeping stays small: insertions within one epoch (the TTL / 64) share its
    /// record, and a new record starts only once an epoch has passed, so a burst of a million
    /// events costs one record, not a million.
    #[test]
    fn insertions_within_an_epoch_share_one_record() {
        let now = Instant::now();
        let mut set = SeenSet::new(1000, Duration::from_secs(64));
        for key in 1..=1000u128 {
            set.insert(Uuid::from_u128(key), now + Duration::from_millis(999));
        }
        assert_eq!(set.epochs.len(), 1);
        set.insert(Uuid::from_u128(5000), now + Duration::from_secs(1));
        assert_eq!(set.epochs.len(), 1, "still inside the first epoch's second");
        set.insert(Uuid::from_u128(5001), now + Duration::from_millis(1999));
        assert_eq!(set.epochs.len(), 2);
    }
}

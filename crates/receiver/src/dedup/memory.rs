//! [`MemoryDedup`]: the default in-process store, a sharded, bounded LRU keyed by 16-byte UUIDs.

use super::seen::SeenSet;
use super::{ClaimOutcome, ClaimToken, DedupFuture, DedupStore};
use hashbrown::HashMap;
use hashbrown::hash_map::Entry;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;
use uuid::Uuid;

/// Up to this many UUIDs, a claim or commit sorts the batch by shard on the stack and holds all
/// the shards it touches at once, rather than sorting into buffers (four allocations).
const SMALL_BATCH: usize = 16;

/// Settings of a [`MemoryDedup`].
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct MemoryDedupConfig {
    /// How many seen UUIDs are remembered at most; the least recently seen are forgotten first.
    /// Default: 1,000,000.
    pub capacity: usize,
    /// How long a seen UUID is remembered. Keep it longer than the sender's retry horizon.
    /// Default: 24 hours.
    pub ttl: Duration,
    /// How long a claim holds without a commit or release. Default: 2 minutes.
    pub claim_ttl: Duration,
    /// Number of independently locked shards; rounded up to a power of two. Default: 16.
    pub shards: usize,
}

impl Default for MemoryDedupConfig {
    fn default() -> Self {
        Self {
            capacity: 1_000_000,
            ttl: Duration::from_secs(24 * 60 * 60),
            claim_ttl: Duration::from_secs(120),
            shards: 16,
        }
    }
}

impl MemoryDedupConfig {
    /// Sets [`capacity`](Self::capacity).
    #[must_use]
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity;
        self
    }

    /// Sets [`ttl`](Self::ttl).
    #[must_use]
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Sets [`claim_ttl`](Self::claim_ttl).
    #[must_use]
    pub fn claim_ttl(mut self, claim_ttl: Duration) -> Self {
        self.claim_ttl = claim_ttl;
        self
    }

    /// Sets [`shards`](Self::shards).
    #[must_use]
    pub fn shards(mut self, shards: usize) -> Self {
        self.shards = shards;
        self
    }
}

/// The default deduplication store: in memory, bounded, sharded so that cores do not contend.
///
/// Each shard holds a bounded set of seen UUIDs, keyed by their 16 bytes and forgotten oldest
/// first (about 28 bytes an entry, no allocation per entry), and a small map of the claims in
/// flight. A seen UUID is remembered for the TTL, or until the capacity pushes it out; it may
/// outlive the TTL by at most 1/64 of it. Time is `tokio::time::Instant`, so tests can pause and
/// advance it.
#[derive(Debug)]
pub struct MemoryDedup {
    shards: Box<[Mutex<Shard>]>,
    shard_bits: u32,
    ttl: Duration,
    claim_ttl: Duration,
}

struct Shard {
    seen: SeenSet,
    claims: HashMap<Uuid, (ClaimToken, Instant)>,
    next_claim_sweep: usize,
}

impl std::fmt::Debug for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shard")
            .field("seen", &self.seen.len())
            .field("claims", &self.claims.len())
            .finish_non_exhaustive()
    }
}

impl Default for MemoryDedup {
    fn default() -> Self {
        Self::new(MemoryDedupConfig::default())
    }
}

impl MemoryDedup {
    /// A store with the given settings. Capacity is split evenly across shards (at least one
    /// entry each).
    pub fn new(config: MemoryDedupConfig) -> Self {
        let shards = config.shards.max(1).next_power_of_two();
        let per_shard = config.capacity.div_ceil(shards).max(1);
        Self {
            shards: (0..shards)
                .map(|_| {
                    Mutex::new(Shard {
                        seen: SeenSet::new(per_shard, config.ttl),
                        claims: HashMap::new(),
                        next_claim_sweep: 64,
                    })
                })
                .collect(),
            shard_bits: shards.trailing_zeros(),
            ttl: config.ttl,
            claim_ttl: config.claim_ttl,
        }
    }

    /// The number of seen UUIDs currently remembered.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).seen.len()).sum()
    }

    /// Whether no UUID is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn shard_of(&self, uuid: &Uuid) -> usize {
        if self.shard_bits == 0 {
            return 0;
        }
        // UUIDs are mostly random bits; mixing both halves also spreads time-ordered (v7) ones.
        let v = uuid.as_u128();
        let mixed = ((v as u64) ^ ((v >> 64) as u64)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        (mixed >> (64 - self.shard_bits)) as usize
    }

    /// Calls `warm` and then `f` once per shard that `uuids` touch, with the shard locked and
    /// the positions (in `uuids`, ascending) of its keys: a batch takes each lock once instead
    /// of once per event.
    ///
    /// `warm` only reads (it touches the table where `f` will look), and for a small batch every
    /// shard's `warm` runs before any `f`, with all of the batch's shards locked: the cache
    /// misses of a few UUIDs in a large table then overlap, where locking one shard after the
    /// other would wait for each in turn (a locked instruction waits for earlier loads).
    fn by_shard(
        &self,
        uuids: &[Uuid],
        mut warm: impl FnMut(&Shard, &[u32]),
        mut f: impl FnMut(&mut Shard, &[u32]),
    ) {
        if self.shards.len() == 1 {
            let positions: Vec<u32> = (0..uuids.len() as u32).collect();
            if !uuids.is_empty() {
                let mut shard = lock(&self.shards[0]);
                warm(&shard, &positions);
                f(&mut shard, &positions);
            }
            return;
        }
        if uuids.len() <= SMALL_BATCH {
            self.by_shard_small(uuids, warm, f);
            return;
        }
        // A counting sort of positions by shard.
        let shard_of: Vec<u16> = uuids.iter().map(|u| self.shard_of(u) as u16).collect();
        let mut starts = vec![0u32; self.shards.len() + 1];
        for &s in &shard_of {
            starts[usize::from(s) + 1] += 1;
        }
        for i in 1..starts.len() {
            starts[i] += starts[i - 1];
        }
        let mut fill = starts.clone();
        let mut order = vec![0u32; uuids.len()];
        for (position, &s) in shard_of.iter().enumerate() {
            order[fill[usize::from(s)] as usize] = position as u32;
            fill[usize::from(s)] += 1;
        }
        for (index, shard) in self.shards.iter().enumerate() {
            let positions = &order[starts[index] as usize..starts[index + 1] as usize];
            if !positions.is_empty() {
                let mut shard = lock(shard);
                warm(&shard, positions);
                f(&mut shard, positions);
            }
        }
    }

    /// [`by_shard`](Self::by_shard) for at most [`SMALL_BATCH`] UUIDs, without allocating:
    /// positions sorted by shard on the stack, every shard touched locked at once, in ascending
    /// order (so two batches cannot deadlock; the other paths hold one shard at a time).
    fn by_shard_small(
        &self,
        uuids: &[Uuid],
        mut warm: impl FnMut(&Shard, &[u32]),
        mut f: impl FnMut(&mut Shard, &[u32]),
    ) {
        debug_assert!(uuids.len() <= SMALL_BATCH);
        // (shard, position) pairs sorted by shard, then position: an insertion sort of a few.
        let mut keyed = [(0usize, 0u32); SMALL_BATCH];
        for (position, uuid) in uuids.iter().enumerate() {
            let entry = (self.shard_of(uuid), position as u32);
            let mut at = position;
            while at > 0 && keyed[at - 1] > entry {
                keyed[at] = keyed[at - 1];
                at -= 1;
            }
            keyed[at] = entry;
        }
        let keyed = &keyed[..uuids.len()];
        let mut positions = [0u32; SMALL_BATCH];
        for (slot, &(_, position)) in positions.iter_mut().zip(keyed) {
            *slot = position;
        }
        // One group per shard: its range in `positions` and its guard.
        let mut groups: [Option<(usize, usize, std::sync::MutexGuard<'_, Shard>)>; SMALL_BATCH] =
            [const { None }; SMALL_BATCH];
        let mut count = 0;
        let mut start = 0;
        while start < keyed.len() {
            let shard = keyed[start].0;
            let end = start + keyed[start..].iter().take_while(|k| k.0 == shard).count();
            groups[count] = Some((start, end, lock(&self.shards[shard])));
            count += 1;
            start = end;
        }
        for (start, end, guard) in groups[..count].iter().flatten() {
            warm(guard, &positions[*start..*end]);
        }
        for (start, end, guard) in groups[..count].iter_mut().flatten() {
            f(guard, &positions[*start..*end]);
        }
    }

    /// Claims synchronously; the trait method wraps this.
    pub fn claim_now(&self, uuids: &[Uuid], token: ClaimToken) -> Vec<ClaimOutcome> {
        let now = Instant::now();
        let mut outcomes = vec![ClaimOutcome::Claimed; uuids.len()];
        let warm = |shard: &Shard, positions: &[u32]| {
            shard
                .seen
                .warm(positions.iter().map(|&p| &uuids[p as usize]), 0);
        };
        self.by_shard(uuids, warm, |shard, positions| {
            shard.seen.expire(now, self.ttl);
            for &p in positions {
                let uuid = &uuids[p as usize];
                outcomes[p as usize] = if shard.seen.contains(uuid) {
                    ClaimOutcome::Seen
                } else {
                    match shard.claims.entry(*uuid) {
                        // Earlier in this same batch: positions are visited in order.
                        Entry::Occupied(held) if held.get().0 == token => ClaimOutcome::Seen,
                        Entry::Occupied(held) if held.get().1 > now => ClaimOutcome::InFlight,
                        Entry::Occupied(mut held) => {
                            held.insert((token, now + self.claim_ttl));
                            ClaimOutcome::Claimed
                        }
                        Entry::Vacant(free) => {
                            free.insert((token, now + self.claim_ttl));
                            ClaimOutcome::Claimed
                        }
                    }
                };
            }
            shard.sweep_claims(now);
        });
        outcomes
    }

    /// Commits synchronously; the trait method wraps this.
    pub fn commit_now(&self, uuids: &[Uuid], token: ClaimToken) {
        let now = Instant::now();
        let warm = |shard: &Shard, positions: &[u32]| {
            let evictions = positions.len().saturating_sub(shard.seen.room());
            let keys = positions.iter().map(|&p| &uuids[p as usize]);
            shard.seen.warm(keys, evictions);
        };
        self.by_shard(uuids, warm, |shard, positions| {
            for &p in positions {
                let uuid = uuids[p as usize];
                shard.drop_claim(&uuid, token);
                shard.seen.insert(uuid, now);
            }
        });
    }

    /// Releases synchronously; the trait method calls this.
    pub fn release_now(&self, uuids: &[Uuid], token: ClaimToken) {
        self.by_shard(
            uuids,
            |_, _| {},
            |shard, positions| {
                for &p in positions {
                    shard.drop_claim(&uuids[p as usize], token);
                }
            },
        );
    }
}

/// A panic while a shard was locked cannot leave it inconsistent in a way that matters for
/// deduplication (each operation is one map update), so a poisoned lock is used as is.
fn lock(shard: &Mutex<Shard>) -> std::sync::MutexGuard<'_, Shard> {
    shard
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Shard {
    /// Removes `token`'s claim on `uuid`; a claim taken over by another delivery stays.
    fn drop_claim(&mut self, uuid: &Uuid, token: ClaimToken) {
        if let Some((owner, expires)) = self.claims.remove(uuid)
            && owner != token
        {
            self.claims.insert(*uuid, (owner, expires));
        }
    }

    /// Drops expired claims once the map has grown, so claims that were never released (a
    /// leaked guard) cannot accumulate.
    fn sweep_claims(&mut self, now: Instant) {
        if self.claims.len() >= self.next_claim_sweep {
            self.claims.retain(|_, (_, expires)| *expires > now);
            self.next_claim_sweep = (self.claims.len() * 2).max(64);
        }
    }
}

impl DedupStore for MemoryDedup {
    fn claim<'a>(
        &'a self,
        uuids: &'a [Uuid],
        token: ClaimToken,
    ) -> DedupFuture<'a, Vec<ClaimOutcome>> {
        let outcomes = self.claim_now(uuids, token);
        Box::pin(async move { Ok(outcomes) })
    }

    fn commit<'a>(&'a self, uuids: &'a [Uuid], token: ClaimToken) -> DedupFuture<'a, ()> {
        self.commit_now(uuids, token);
        Box::pin(async { Ok(()) })
    }

    fn release(&self, uuids: Vec<Uuid>, token: ClaimToken) {
        self.release_now(&uuids, token);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: u128) -> Vec<Uuid> {
        (1..=n).map(Uuid::from_u128).collect()
    }

    proptest::proptest! {
        /// Small batches (one lock per UUID), large ones (sorted by shard) and a single shard
        /// give the same outcomes for any sequence of claims, commits and releases, with UUIDs
        /// repeated within and across batches.
        #[test]
        fn sharding_paths_agree(steps in proptest::collection::vec(
            (proptest::collection::vec(0u128..48, 1..40), 0u8..3, 0u128..4), 1..24,
        )) {
            let sharded = MemoryDedup::default();
            let single = MemoryDedup::new(MemoryDedupConfig::default().shards(1));
            for (keys, op, token) in steps {
                let keys: Vec<Uuid> = keys.into_iter().map(Uuid::from_u128).collect();
                let token = ClaimToken(token);
                match op {
                    0 => proptest::prop_assert_eq!(
                        sharded.claim_now(&keys, token),
                        single.claim_now(&keys, token)
                    ),
                    1 => {
                        sharded.commit_now(&keys, token);
                        single.commit_now(&keys, token);
                    }
                    _ => {
                        sharded.release_now(&keys, token);
                        single.release_now(&keys, token);
                    }
                }
                proptest::prop_assert_eq!(sharded.len(), single.len());
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn claim_commit_release_cycle() {
        let store = MemoryDedup::default();
        let (a, b) = (ClaimToken(1), ClaimToken(2));
        let keys = ids(3);
        assert_eq!(store.claim_now(&keys, a), vec![ClaimOutcome::Claimed; 3]);
        assert_eq!(store.claim_now(&keys, b), vec![ClaimOutcome::InFlight; 3]);
        store.release_now(&keys[..1], a);
        store.commit_now(&keys[1..], a);
        assert_eq!(
            store.claim_now(&keys, b),
            vec![
                ClaimOutcome::Claimed,
                ClaimOutcome::Seen,
                ClaimOutcome::Seen
            ]
        );
        assert_eq!(store.len(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn release_by_another_token_is_ignored() {
        let store = MemoryDedup::default();
        let keys = ids(1);
        store.claim_now(&keys, ClaimToken(1));
        store.release_now(&keys, ClaimToken(2));
        assert_eq!(
            store.claim_now(&keys, ClaimToken(3)),
            vec![ClaimOutcome::InFlight]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn claims_expire() {
        let store =
            MemoryDedup::new(MemoryDedupConfig::default().claim_ttl(Duration::from_secs(10)));
        let keys = ids(1);
        store.claim_now(&keys, ClaimToken(1));
        tokio::time::advance(Duration::from_secs(11)).await;
        assert_eq!(
            store.claim_now(&keys, ClaimToken(2)),
            vec![ClaimOutcome::Claimed]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn seen_entries_expire_after_ttl_and_not_before() {
        let ttl = Duration::from_secs(640);
        let store = MemoryDedup::new(MemoryDedupConfig::default().ttl(ttl).shards(1));
        let first = ids(2);
        store.commit_now(&first, ClaimToken(1));
        tokio::time::advance(Duration::from_secs(320)).await;
        let later = vec![Uuid::from_u128(99)];
        store.commit_now(&later, ClaimToken(1));
        tokio::time::advance(Duration::from_secs(319)).await;
        assert_eq!(
            store.claim_now(&first, ClaimToken(2)),
            vec![ClaimOutcome::Seen; 2]
        );
        // Past the TTL plus one epoch (ttl / 64), the first entries are forgotten, the later kept.
        tokio::time::advance(Duration::from_secs(12)).await;
        assert_eq!(
            store.claim_now(&first, ClaimToken(2)),
            vec![ClaimOutcome::Claimed; 2]
        );
        assert_eq!(
            store.claim_now(&later, ClaimToken(2)),
            vec![ClaimOutcome::Seen]
        );
        assert_eq!(store.len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn capacity_bounds_memory_and_evicts_oldest() {
        let store = MemoryDedup::new(MemoryDedupConfig::default().capacity(100).shards(1));
        store.commit_now(&ids(150), ClaimToken(1));
        assert_eq!(store.len(), 100);
        assert_eq!(
            store.claim_now(&[Uuid::from_u128(1)], ClaimToken(2)),
            vec![ClaimOutcome::Claimed]
        );
        assert_eq!(
            store.claim_now(&[Uuid::from_u128(150)], ClaimToken(2)),
            vec![ClaimOutcome::Seen]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn expiry_stays_exact_after_capacity_evictions() {
        let ttl = Duration::from_secs(64);
        let store = MemoryDedup::new(MemoryDedupConfig::default().capacity(10).ttl(ttl).shards(1));
        store.commit_now(&ids(8), ClaimToken(1));
        tokio::time::advance(Duration::from_secs(30)).await;
        let newer: Vec<Uuid> = (100..108).map(Uuid::from_u128).collect();
        store.commit_now(&newer, ClaimToken(1));
        assert_eq!(store.len(), 10);
        tokio::time::advance(Duration::from_secs(40)).await;
        // The old epoch expired; only its two surviving entries go, the newer eight stay.
        assert_eq!(
            store.claim_now(&newer, ClaimToken(2)),
            vec![ClaimOutcome::Seen; 8]
        );
        assert_eq!(store.len(), 8);
    }

    #[tokio::test(start_paused = true)]
    async fn a_seen_uuid_is_remembered_for_the_ttl_exactly() {
        let ttl = Duration::from_secs(640);
        let store = MemoryDedup::new(MemoryDedupConfig::default().ttl(ttl));
        assert!(store.is_empty());
        let keys = ids(3);
        store.commit_now(&keys, ClaimToken(1));
        assert!(!store.is_empty());
        tokio::time::advance(ttl - Duration::from_millis(1)).await;
        assert_eq!(
            store.claim_now(&keys, ClaimToken(2)),
            vec![ClaimOutcome::Seen; 3]
        );
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(
            store.claim_now(&keys, ClaimToken(2)),
            vec![ClaimOutcome::Claimed; 3]
        );
        assert!(store.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_claim_holds_for_the_claim_ttl_exactly() {
        let claim_ttl = Duration::from_secs(10);
        let store = MemoryDedup::new(MemoryDedupConfig::default().claim_ttl(claim_ttl));
        let keys = ids(2);
        store.claim_now(&keys, ClaimToken(1));
        tokio::time::advance(claim_ttl - Duration::from_millis(1)).await;
        assert_eq!(
            store.claim_now(&keys, ClaimToken(2)),
            vec![ClaimOutcome::InFlight; 2]
        );
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(
            store.claim_now(&keys, ClaimToken(2)),
            vec![ClaimOutcome::Claimed; 2]
        );
        // Taken over: the first delivery's release no longer frees them.
        store.release_now(&keys, ClaimToken(1));
        assert_eq!(
            store.claim_now(&keys, ClaimToken(3)),
            vec![ClaimOutcome::InFlight; 2]
        );
    }

    /// Claims in flight stay in flight however many there are (the sweep of expired claims
    /// that runs once a shard holds 64 or more must keep the live ones), and claims never
    /// released are dropped once expired, so they cannot accumulate.
    #[tokio::test(start_paused = true)]
    async fn many_claims_stay_in_flight_and_leaked_ones_are_swept() {
        let claim_ttl = Duration::from_secs(10);
        let store = MemoryDedup::new(MemoryDedupConfig::default().claim_ttl(claim_ttl).shards(1));
        let claims = |store: &MemoryDedup| lock(&store.shards[0]).claims.len();
        let leaked: Vec<Uuid> = (1..=100).map(Uuid::from_u128).collect();
        assert_eq!(
            store.claim_now(&leaked, ClaimToken(1)),
            vec![ClaimOutcome::Claimed; 100]
        );
        assert_eq!(
            store.claim_now(&leaked, ClaimToken(2)),
            vec![ClaimOutcome::InFlight; 100]
        );
        assert_eq!(claims(&store), 100);
        tokio::time::advance(claim_ttl).await;
        // A hundred more: the map reaches twice its size after the last sweep, and the expired
        // hundred go.
        let live: Vec<Uuid> = (101..=200).map(Uuid::from_u128).collect();
        store.claim_now(&live, ClaimToken(3));
        assert_eq!(claims(&store), 100);
        assert_eq!(
            store.claim_now(&live, ClaimToken(4)),
            vec![ClaimOutcome::InFlight; 100]
        );
    }

    /// The capacity is shared by the shards: a sharded store holds about as many random UUIDs
    /// as its capacity, not the share of one shard.
    #[tokio::test(start_paused = true)]
    async fn the_capacity_is_spread_over_the_shards() {
        let store = MemoryDedup::new(MemoryDedupConfig::default().capacity(1600));
        assert_eq!(store.shards.len(), 16);
        let keys: Vec<Uuid> = (0..1600).map(|_| Uuid::new_v4()).collect();
        for chunk in keys.chunks(100) {
            store.commit_now(chunk, ClaimToken(1));
        }
        // 100 a shard; random keys fill the shards unevenly, so some are evicted early.
        assert!(store.len() > 1400, "{} remembered", store.len());
        assert!(store.len() <= 1600);
    }

    /// The debug output, which a `Receiver`'s includes, shows how full each shard is.
    #[tokio::test(start_paused = true)]
    async fn debug_output_counts_seen_uuids_and_claims() {
        let store = MemoryDedup::new(MemoryDedupConfig::default().shards(1));
        store.commit_now(&ids(3), ClaimToken(1));
        store.claim_now(&[Uuid::from_u128(9)], ClaimToken(2));
        let debug = format!("{store:?}");
        assert!(
            debug.contains("Shard { seen: 3, claims: 1, .. }"),
            "{debug}"
        );
    }
}

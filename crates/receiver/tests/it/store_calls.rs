//! What a `DedupStore` is asked, as a store author relies on it: a delivery claims its batch's
//! UUIDs once, then settles exactly the ones it claimed, once: commit after processing, release
//! when dropped unprocessed; a delivery with nothing fresh settles nothing.

use crate::common;
use evo_siem_receiver::dedup::{ClaimOutcome, ClaimToken, DedupFuture, DedupStore, MemoryDedup};
use evo_siem_receiver::{Delivered, Receiver};
use std::sync::{Arc, Mutex};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Call {
    Claim(Vec<Uuid>),
    Commit(Vec<Uuid>),
    Release(Vec<Uuid>),
}

/// A `MemoryDedup` that records every call.
#[derive(Debug, Default)]
struct Recording {
    inner: MemoryDedup,
    calls: Arc<Mutex<Vec<Call>>>,
}

impl DedupStore for Recording {
    fn claim<'a>(
        &'a self,
        uuids: &'a [Uuid],
        token: ClaimToken,
    ) -> DedupFuture<'a, Vec<ClaimOutcome>> {
        self.calls.lock().unwrap().push(Call::Claim(uuids.to_vec()));
        self.inner.claim(uuids, token)
    }

    fn commit<'a>(&'a self, uuids: &'a [Uuid], token: ClaimToken) -> DedupFuture<'a, ()> {
        self.calls
            .lock()
            .unwrap()
            .push(Call::Commit(uuids.to_vec()));
        self.inner.commit(uuids, token)
    }

    fn release(&self, uuids: Vec<Uuid>, token: ClaimToken) {
        self.calls
            .lock()
            .unwrap()
            .push(Call::Release(uuids.clone()));
        self.inner.release(uuids, token);
    }
}

fn recording() -> (Receiver, Arc<Mutex<Vec<Call>>>) {
    let store = Recording::default();
    let calls = Arc::clone(&store.calls);
    let receiver = Receiver::builder()
        .secret(common::SECRET)
        .dedup(store)
        .build()
        .unwrap();
    (receiver, calls)
}

fn take(calls: &Mutex<Vec<Call>>) -> Vec<Call> {
    std::mem::take(&mut *calls.lock().unwrap())
}

async fn deliver(receiver: &Receiver, ids: &[Uuid]) -> evo_siem_receiver::VerifiedBatch {
    let body = common::body(ids, common::now());
    receiver
        .accept(&common::signed_headers(&body), body.into(), common::now())
        .await
        .unwrap()
}

#[tokio::test]
async fn a_delivery_settles_exactly_what_it_claimed_once() {
    let (receiver, calls) = recording();
    let ids = common::uuids(3);

    // Fresh events, processed: claimed, then committed, and nothing released afterwards.
    let batch = deliver(&receiver, &ids).await;
    let delivered = batch.commit().await.unwrap();
    assert_eq!(
        delivered,
        Delivered {
            accepted: 3,
            duplicates: 0
        }
    );
    assert_eq!(
        take(&calls),
        [Call::Claim(ids.clone()), Call::Commit(ids.clone())]
    );

    // Two seen before, one new one twice: only the new one is committed.
    let new = common::uuids(1)[0];
    let mixed = [ids[0], new, ids[1], new];
    let batch = deliver(&receiver, &mixed).await;
    assert_eq!((batch.len(), batch.duplicates()), (4, 3));
    assert!(!batch.is_empty());
    // `raw_events` is an exact-size iterator: its length stays exact as it is consumed.
    let mut raw = batch.raw_events();
    assert_eq!(raw.len(), 1);
    assert_eq!(raw.next().map(|e| (e.uuid(), e.index())), Some((new, 1)));
    assert_eq!((raw.len(), raw.next()), (0, None));
    drop(raw);
    assert_eq!(batch.commit().await.unwrap().accepted, 1);
    assert_eq!(
        take(&calls),
        [Call::Claim(mixed.to_vec()), Call::Commit(vec![new])]
    );

    // Dropped unprocessed: the fresh ones are released, and only them.
    let other = common::uuids(2);
    let batch = deliver(&receiver, &[ids[2], other[0], other[1]]).await;
    drop(batch);
    assert_eq!(
        take(&calls),
        [
            Call::Claim(vec![ids[2], other[0], other[1]]),
            Call::Release(other.clone())
        ]
    );
}

#[tokio::test]
async fn a_delivery_of_duplicates_only_settles_nothing() {
    let (receiver, calls) = recording();
    let ids = common::uuids(2);
    let first = deliver(&receiver, &ids).await.commit().await.unwrap();
    assert_eq!(first.accepted, 2);
    take(&calls);

    let batch = deliver(&receiver, &ids).await;
    assert_eq!(batch.events().len(), 0);
    assert_eq!(batch.raw_events().len(), 0);
    assert_eq!(
        batch.commit().await.unwrap(),
        Delivered {
            accepted: 0,
            duplicates: 2
        }
    );
    drop(deliver(&receiver, &ids).await);
    assert_eq!(
        take(&calls),
        [Call::Claim(ids.clone()), Call::Claim(ids.clone())]
    );
}

/// Two receivers given the same store (`dedup_shared`) deduplicate together: an event one of
/// them committed is a duplicate for the other, and the store sees both.
#[tokio::test]
async fn receivers_sharing_a_store_deduplicate_together() {
    let store = Arc::new(Recording::default());
    let calls = Arc::clone(&store.calls);
    let shared: Arc<dyn DedupStore> = store;
    let build = || {
        Receiver::builder()
            .secret(common::SECRET)
            .dedup_shared(Arc::clone(&shared))
            .build()
            .unwrap()
    };
    let (a, b) = (build(), build());
    let ids = common::uuids(2);
    assert_eq!(deliver(&a, &ids).await.commit().await.unwrap().accepted, 2);
    let again = deliver(&b, &ids).await;
    assert_eq!((again.events().len(), again.duplicates()), (0, 2));
    assert_eq!(take(&calls).len(), 3); // claim and commit by a, claim by b
}

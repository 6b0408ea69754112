//! Deduplication through `Receiver::accept`: any interleaving of deliveries, duplicates, failures
//! and drops processes every event exactly once, unless its processing failed, in which case a
//! later delivery processes it.

use crate::common;
use evo_siem_receiver::{Receiver, Rejection, VerifiedBatch};
use proptest::prelude::*;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use uuid::Uuid;

/// One step of a scenario. Indexes are taken modulo the pool or the open deliveries.
#[derive(Debug, Clone)]
enum Step {
    /// A delivery of the events whose pool indexes are set in the mask starts and claims them.
    Deliver(u16),
    /// An open delivery finishes: the application succeeds (commit) or fails (drop).
    Finish { which: usize, success: bool },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (1u16..).prop_map(Step::Deliver),
        (any::<usize>(), prop::bool::weighted(0.7))
            .prop_map(|(which, success)| Step::Finish { which, success }),
    ]
}

const POOL: usize = 10;

fn deliver(
    rt: &tokio::runtime::Runtime,
    receiver: &Receiver,
    ids: &[Uuid],
) -> Result<VerifiedBatch, Rejection> {
    let body = common::body(ids, common::now());
    rt.block_on(receiver.accept(&common::signed_headers(&body), body.into(), common::now()))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn every_event_is_processed_exactly_once_unless_processing_failed(steps in prop::collection::vec(step(), 1..40)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        let receiver = common::receiver();
        let pool: Vec<Uuid> = common::uuids(POOL);
        let mut open: Vec<VerifiedBatch> = Vec::new();
        // Committed processings per UUID, and UUIDs some open delivery is processing now.
        let mut committed: HashMap<Uuid, usize> = HashMap::new();
        let mut processing: HashMap<Uuid, usize> = HashMap::new();

        for step in steps {
            match step {
                Step::Deliver(mask) => {
                    let ids: Vec<Uuid> = (0..POOL).filter(|i| mask & (1 << i) != 0).map(|i| pool[i]).collect();
                    if ids.is_empty() { continue; }
                    match deliver(&rt, &receiver, &ids) {
                        Ok(batch) => {
                            for event in batch.events() {
                                let uuid = Uuid::parse_str(&event.data.uuid).unwrap();
                                prop_assert_eq!(committed.get(&uuid), None, "handed out after commit");
                                let n = processing.entry(uuid).or_default();
                                *n += 1;
                                prop_assert_eq!(*n, 1, "two deliveries process {} at once", uuid);
                            }
                            open.push(batch);
                        }
                        // Some event is in another open delivery: the sender will retry.
                        Err(Rejection::InFlight) => {
                            prop_assert!(ids.iter().any(|u| processing.contains_key(u)));
                        }
                        Err(other) => prop_assert!(false, "unexpected rejection {other:?}"),
                    }
                }
                Step::Finish { which, success } => {
                    if open.is_empty() { continue; }
                    let batch = open.swap_remove(which % open.len());
                    let fresh: Vec<Uuid> = batch.events().map(|e| Uuid::parse_str(&e.data.uuid).unwrap()).collect();
                    for uuid in &fresh { processing.remove(uuid); }
                    if success {
                        let _delivered = rt.block_on(batch.commit()).unwrap();
                        for uuid in fresh { *committed.entry(uuid).or_default() += 1; }
                    } else {
                        drop(batch);
                    }
                }
            }
        }
        // The sender's retries: failures and in-flight rejections are redelivered until accepted.
        for batch in open.drain(..) { drop(batch); }
        let retry = deliver(&rt, &receiver, &pool).unwrap();
        let fresh: Vec<Uuid> = retry.events().map(|e| Uuid::parse_str(&e.data.uuid).unwrap()).collect();
        let _delivered = rt.block_on(retry.commit()).unwrap();
        for uuid in fresh { *committed.entry(uuid).or_default() += 1; }
        for uuid in &pool {
            prop_assert_eq!(committed.get(uuid), Some(&1), "{} processed {:?} times", uuid, committed.get(uuid));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_deliveries_of_the_same_events_process_each_once() {
    let receiver = common::receiver();
    let ids = common::uuids(50);
    let body = bytes::Bytes::from(common::body(&ids, std::time::SystemTime::now()));
    let headers = common::signed_headers(&body);
    let processed = Arc::new(AtomicUsize::new(0));

    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (receiver, body, headers, processed) = (
                receiver.clone(),
                body.clone(),
                headers.clone(),
                processed.clone(),
            );
            tokio::spawn(async move {
                // Like a sender: retry a 503 until the delivery is accepted.
                loop {
                    match receiver
                        .accept(&headers, body.clone(), std::time::SystemTime::now())
                        .await
                    {
                        Ok(batch) => {
                            processed.fetch_add(batch.events().len(), Ordering::SeqCst);
                            tokio::task::yield_now().await;
                            return batch.commit().await.unwrap();
                        }
                        Err(Rejection::InFlight) => tokio::task::yield_now().await,
                        Err(other) => panic!("unexpected rejection {other:?}"),
                    }
                }
            })
        })
        .collect();
    let mut accepted = 0;
    for task in tasks {
        accepted += task.await.unwrap().accepted;
    }
    assert_eq!(processed.load(Ordering::SeqCst), 50);
    assert_eq!(accepted, 50);
}

/// `raw_events` (no typed parse) and `events` (typed, built on first use) yield the same fresh
/// events, in the same order, with the same JSON text and UUIDs; the typed batch holds the
/// duplicates too.
#[tokio::test]
async fn raw_and_typed_events_are_the_same_fresh_events() {
    use crate::common::{body, now, receiver, signed_headers};
    let receiver = receiver();
    let ids: Vec<Uuid> = (0..6).map(|_| Uuid::new_v4()).collect();
    let first = body(&ids[..3], now());
    let batch = receiver
        .accept(&signed_headers(&first), first.into(), now())
        .await
        .unwrap();
    assert_eq!(batch.commit().await.unwrap().accepted, 3);
    // Three seen before, three fresh, one of them twice.
    let mut mixed: Vec<Uuid> = ids.clone();
    mixed.push(ids[4]);
    let second = body(&mixed, now());
    let batch = receiver
        .accept(&signed_headers(&second), second.into(), now())
        .await
        .unwrap();
    let raw: Vec<_> = batch.raw_events().collect();
    assert_eq!(
        raw.iter().map(|e| e.uuid()).collect::<Vec<_>>(),
        ids[3..].to_vec()
    );
    assert_eq!(
        raw.iter().map(|e| e.index()).collect::<Vec<_>>(),
        vec![3, 4, 5]
    );
    assert_eq!((batch.len(), batch.duplicates()), (7, 4));
    let typed: Vec<_> = batch.events().collect();
    assert_eq!(typed.len(), raw.len());
    for (raw, typed) in raw.iter().zip(&typed) {
        assert_eq!(Some(raw.raw_json()), typed.raw_json());
        assert_eq!(typed.data.uuid, raw.uuid().to_string());
        assert_eq!(&raw.parse().unwrap(), *typed);
        assert!(raw.raw_json().starts_with('{') && raw.raw_json().ends_with('}'));
    }
    assert_eq!(batch.batch().events.len(), 7);
    assert_eq!(batch.commit().await.unwrap().accepted, 3);
}

/// Event ids as the platform writes them (the product page's example is `"evt-abc123"`): any
/// printable-ASCII id is accepted and deduplicated by its exact text, a UUID by its 16 bytes
/// whatever its letter case; a receiver built for UUIDs only refuses the others.
#[tokio::test]
async fn ids_that_are_not_uuids_are_accepted_and_deduplicated() {
    use crate::common::{now, receiver, signed_headers};
    use evo_siem_protocol::{EventIds, encode_batch};
    let uuid = Uuid::new_v4();
    let with_ids = |ids: &[&str]| {
        let events: Vec<Box<serde_json::value::RawValue>> = ids
            .iter()
            .map(|id| {
                let mut event: serde_json::Value =
                    serde_json::from_str(common::event(uuid, "User login").get()).unwrap();
                event["data"]["uuid"] = (*id).into();
                serde_json::value::to_raw_value(&event).unwrap()
            })
            .collect();
        let refs: Vec<&serde_json::value::RawValue> = events.iter().map(|e| &**e).collect();
        encode_batch(&refs, now())
    };
    let upper = uuid.to_string().to_uppercase();
    let lower = uuid.to_string();
    let receiver = receiver();

    let first = with_ids(&["evt-abc123", "EVT-ABC123", &upper]);
    let batch = receiver
        .accept(&signed_headers(&first), first.into(), now())
        .await
        .unwrap();
    assert_eq!((batch.len(), batch.duplicates()), (3, 0));
    assert_eq!(batch.raw_events().nth(2).unwrap().uuid(), uuid);
    assert_eq!(batch.commit().await.unwrap().accepted, 3);

    // A redelivery: the same ids, the UUID now in lower case, beside one new id.
    let second = with_ids(&["evt-abc123", &lower, "evt-abc124"]);
    let batch = receiver
        .accept(&signed_headers(&second), second.clone().into(), now())
        .await
        .unwrap();
    let fresh: Vec<usize> = batch.raw_events().map(|e| e.index()).collect();
    assert_eq!((fresh, batch.duplicates()), (vec![2], 2));
    assert_eq!(batch.commit().await.unwrap().accepted, 1);

    let strict = Receiver::builder()
        .secret(common::SECRET)
        .event_ids(EventIds::UuidOnly)
        .build()
        .unwrap();
    let refused = strict
        .accept(&signed_headers(&second), second.into(), now())
        .await
        .unwrap_err();
    assert_eq!(
        (refused.status().as_u16(), refused.reason_code()),
        (400, "invalid_event_uuid")
    );
}

//! A custom `DedupStore` that answers a claim for fewer (or more) UUIDs than it was asked about:
//! the delivery is refused with 503 and the fault logged at ERROR, never a 2xx that skips events.

use crate::common;
use evo_siem_receiver::dedup::{ClaimOutcome, ClaimToken, DedupFuture, DedupStore, MemoryDedup};
use evo_siem_receiver::{Receiver, Rejection};
use std::io::Write;
use std::sync::{Arc, Mutex};
use uuid::Uuid;

/// A `MemoryDedup` whose claims come back with `drop` outcomes missing (or, negative, with
/// extra ones), as a buggy store might answer.
#[derive(Debug)]
struct Lossy {
    inner: MemoryDedup,
    drop: isize,
    released: Arc<Mutex<Vec<Uuid>>>,
}

impl DedupStore for Lossy {
    fn claim<'a>(
        &'a self,
        uuids: &'a [Uuid],
        token: ClaimToken,
    ) -> DedupFuture<'a, Vec<ClaimOutcome>> {
        Box::pin(async move {
            let mut outcomes = self.inner.claim(uuids, token).await?;
            if self.drop >= 0 {
                outcomes.truncate(outcomes.len().saturating_sub(self.drop.unsigned_abs()));
            } else {
                outcomes.extend((0..self.drop.unsigned_abs()).map(|_| ClaimOutcome::Claimed));
            }
            Ok(outcomes)
        })
    }

    fn commit<'a>(&'a self, uuids: &'a [Uuid], token: ClaimToken) -> DedupFuture<'a, ()> {
        self.inner.commit(uuids, token)
    }

    fn release(&self, uuids: Vec<Uuid>, token: ClaimToken) {
        self.released.lock().unwrap().extend(&uuids);
        self.inner.release(uuids, token);
    }
}

/// Collects what the subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_store_answering_for_fewer_or_more_uuids_gets_a_503_and_an_error_log() {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::ERROR)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    // Current-thread runtime: the whole accept runs on this thread, under this subscriber.
    let _guard = tracing::subscriber::set_default(subscriber);

    for drop in [1isize, 3, -2] {
        let released = Arc::new(Mutex::new(Vec::new()));
        let receiver = Receiver::builder()
            .secret(common::SECRET)
            .dedup(Lossy {
                inner: MemoryDedup::default(),
                drop,
                released: released.clone(),
            })
            .build()
            .unwrap();
        let uuids = common::uuids(3);
        let body = common::body(&uuids, common::now());
        let result = receiver
            .accept(&common::signed_headers(&body), body.into(), common::now())
            .await;
        let rejection = result.map(|b| b.events().len()).unwrap_err();
        assert_eq!(rejection.status(), http::StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(rejection.reason_code(), "dedup_store_inconsistent");
        assert_eq!(rejection.retry_after(), Some(1));
        let answered = (3 - drop) as usize;
        assert_eq!(
            rejection,
            Rejection::DedupInconsistent { asked: 3, answered }
        );
        // Whatever the delivery claimed is given back, so that the retry processes the events.
        let mut released = released.lock().unwrap().clone();
        released.sort();
        let mut expected = uuids.clone();
        expected.sort();
        assert_eq!(released, expected, "drop {drop}");
    }

    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert_eq!(logs.matches("ERROR").count(), 3, "{logs}");
    assert!(logs.contains("answered for 2 of 3"), "{logs}");
    assert!(logs.contains("dedup_store_inconsistent"), "{logs}");
}

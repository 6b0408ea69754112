//! Dead letters that scale (issue 12), on both backends: listed by pages with a cursor, counted
//! by the store, replayed in pages in the order they were refused, a dead letter whose id meets
//! an earlier one kept beside it; and, on SQLite, a replay of 200,000 during which another
//! tenant's appends keep completing promptly.

use crate::common::event_json;
use crate::spool::{Backend, Place, both_backends};
use evo_siem_sender::spool::{BacklogLimits, Hold, NewEvent, REPLAY_PAGE, Spool, replay_all};
use std::time::{Duration, Instant};

both_backends!(
    dead_letters_are_listed_by_pages_and_counted,
    a_paged_replay_keeps_the_refusal_order_and_its_bound,
    a_dead_letter_whose_id_meets_an_earlier_one_keeps_both_records,
);

fn event(n: usize) -> NewEvent {
    NewEvent {
        action: "Poison".into(),
        json: format!(r#"{{"n":{n}}}"#),
    }
}

/// The `n` of a stored event's JSON.
fn n_of(json: &str) -> usize {
    json[5..json.len() - 1].parse().unwrap()
}

/// Queues events `from..to` for `integration` and refuses each, in that order.
async fn refuse(spool: &dyn Spool, integration: &str, from: usize, to: usize) {
    spool
        .append(integration, (from..to).map(event).collect())
        .await
        .unwrap();
    let mut refused = 0;
    while refused < to - from {
        // On PostgreSQL the queue is read under a lease; thousands of refusals on a busy machine
        // can outlast one, so renew it as a worker would between batches.
        spool.keep_leases().await.unwrap();
        assert!(spool.holds(integration, Hold::Keep));
        let queued = spool.pending(integration, 100).await.unwrap();
        assert!(!queued.is_empty());
        for e in queued {
            spool
                .dead_letter(integration, e.id, "http 422".into())
                .await
                .unwrap();
            refused += 1;
        }
    }
}

async fn dead_letters_are_listed_by_pages_and_counted(backend: Backend) {
    let place = Place::new(backend).await;
    let spool = place.open(BacklogLimits::default()).await;
    refuse(&*spool, "acme", 0, 2500).await;
    refuse(&*spool, "globex", 0, 3).await;
    assert_eq!(spool.dead_letter_count("acme").await.unwrap(), 2500);
    assert_eq!(spool.dead_letter_count("globex").await.unwrap(), 3);
    assert_eq!(spool.dead_letter_count("initech").await.unwrap(), 0);

    // Three pages of 1,000, 1,000 and 500; each cursor is the last id of its page.
    let mut seen = Vec::new();
    let mut after = None;
    let mut sizes = Vec::new();
    loop {
        let page = spool.dead_letters("acme", after, 1000).await.unwrap();
        sizes.push(page.letters.len());
        if let Some(next) = page.next {
            assert_eq!(Some(next), page.letters.last().map(|l| l.id));
        }
        seen.extend(page.letters);
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(sizes, [1000, 1000, 500]);
    assert!(seen.windows(2).all(|w| w[0].id < w[1].id));
    assert_eq!(
        seen.iter().map(|l| n_of(&l.json)).collect::<Vec<_>>(),
        (0..2500).collect::<Vec<_>>()
    );
    // A page that ends exactly at the last letter says so.
    let last = spool
        .dead_letters("acme", Some(seen[1499].id), 1000)
        .await
        .unwrap();
    assert_eq!((last.letters.len(), last.next), (1000, None));
    // Past the end, and another integration's cursor, list nothing of acme's.
    let past = spool
        .dead_letters("acme", Some(seen[2499].id), 10)
        .await
        .unwrap();
    assert!(past.letters.is_empty() && past.next.is_none());
    let globex = spool.dead_letters("globex", None, 2).await.unwrap();
    assert_eq!(
        globex
            .letters
            .iter()
            .map(|l| n_of(&l.json))
            .collect::<Vec<_>>(),
        [0, 1]
    );
    let rest = spool.dead_letters("globex", globex.next, 2).await.unwrap();
    assert_eq!((rest.letters.len(), rest.next), (1, None));
}

async fn a_paged_replay_keeps_the_refusal_order_and_its_bound(backend: Backend) {
    let place = Place::new(backend).await;
    let spool = place.open(BacklogLimits::default()).await;
    // Refused out of ingest order: 3, 0, 4, 1, then 2 stays queued.
    spool
        .append("acme", (0..5).map(event).collect())
        .await
        .unwrap();
    let queued = spool.pending("acme", 5).await.unwrap();
    for i in [3, 0, 4, 1] {
        spool
            .dead_letter("acme", queued[i].id, "http 422".into())
            .await
            .unwrap();
    }
    // The first page of two fixes the bound; a letter refused after it is not replayed.
    let first = spool.replay_page("acme", None, 2).await.unwrap();
    assert_eq!(first.moved, 2);
    let through = first.through;
    spool.append("acme", vec![event(9)]).await.unwrap();
    let nine = spool.pending("acme", 10).await.unwrap().pop().unwrap();
    spool
        .dead_letter("acme", nine.id, "http 422".into())
        .await
        .unwrap();
    let second = spool.replay_page("acme", through, 2).await.unwrap();
    assert_eq!((second.moved, second.through), (2, through));
    let third = spool.replay_page("acme", through, 2).await.unwrap();
    assert_eq!(third.moved, 0);
    let queued = spool.pending("acme", 100).await.unwrap();
    assert_eq!(
        queued.iter().map(|e| n_of(&e.json)).collect::<Vec<_>>(),
        [2, 3, 0, 4, 1]
    );
    assert_eq!(spool.dead_letter_count("acme").await.unwrap(), 1);
    assert_eq!(spool.backlog("acme").await.unwrap().events, 5);

    // replay_all: pages of 2 over 7 letters, in refusal order, reporting its progress.
    refuse(&*spool, "globex", 0, 7).await;
    let mut progress = Vec::new();
    let moved = replay_all(&*spool, "globex", 2, |so_far| progress.push(so_far))
        .await
        .unwrap();
    assert_eq!((moved, progress), (7, vec![2, 4, 6, 7]));
    let queued = spool.pending("globex", 100).await.unwrap();
    assert_eq!(
        queued.iter().map(|e| n_of(&e.json)).collect::<Vec<_>>(),
        (0..7).collect::<Vec<_>>()
    );
    // A list of ids replays in refusal order whatever the order given.
    spool
        .ack("globex", queued.iter().map(|e| e.id).collect())
        .await
        .unwrap();
    refuse(&*spool, "globex", 10, 13).await;
    let ids: Vec<i64> = spool
        .dead_letters("globex", None, 10)
        .await
        .unwrap()
        .letters
        .iter()
        .map(|l| l.id)
        .collect();
    assert_eq!(
        spool
            .replay("globex", vec![ids[2], ids[0], ids[2], -1])
            .await
            .unwrap(),
        2
    );
    let queued = spool.pending("globex", 10).await.unwrap();
    assert_eq!(
        queued.iter().map(|e| n_of(&e.json)).collect::<Vec<_>>(),
        [10, 12]
    );
}

/// Regression (issue 12): PostgreSQL keyed dead letters by the event's queue id with
/// `ON CONFLICT DO NOTHING`, so an event whose id met an earlier dead letter's left the queue
/// without a record; SQLite's plain insert failed instead, and with it every request of the
/// writer's group, again at every try.
async fn a_dead_letter_whose_id_meets_an_earlier_one_keeps_both_records(backend: Backend) {
    let place = Place::new(backend).await;
    let spool = place.open(BacklogLimits::default()).await;
    spool.append("acme", vec![event(1)]).await.unwrap();
    let first = spool.pending("acme", 1).await.unwrap().remove(0);
    spool
        .dead_letter("acme", first.id, "http 422".into())
        .await
        .unwrap();
    place.restart_event_ids(first.id).await;
    spool.append("acme", vec![event(2)]).await.unwrap();
    let second = spool.pending("acme", 1).await.unwrap().remove(0);
    assert_eq!(second.id, first.id, "the ids were made to meet");
    spool
        .dead_letter("acme", second.id, "http 400".into())
        .await
        .unwrap();

    assert_eq!(spool.backlog("acme").await.unwrap().events, 0);
    assert_eq!(spool.dead_letter_count("acme").await.unwrap(), 2);
    let dead = spool.dead_letters("acme", None, 10).await.unwrap().letters;
    assert_eq!(
        dead.iter()
            .map(|l| (n_of(&l.json), l.event_id, l.reason.as_str()))
            .collect::<Vec<_>>(),
        [(1, first.id, "http 422"), (2, first.id, "http 400")]
    );
    assert_eq!(replay_all(&*spool, "acme", 10, |_| ()).await.unwrap(), 2);
    let queued = spool.pending("acme", 10).await.unwrap();
    assert_eq!(
        queued.iter().map(|e| n_of(&e.json)).collect::<Vec<_>>(),
        [1, 2]
    );
}

/// 200,000 dead letters replayed on SQLite while another tenant ingests: every page is its own
/// request to the single writer thread, so the appends get in between pages and none waits
/// long. Prints the figures (`--nocapture`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_of_200_000_on_sqlite_lets_other_tenants_ingest() {
    const LETTERS: usize = 200_000;
    let place = Place::new(Backend::Sqlite).await;
    let spool = place.open(BacklogLimits::default()).await;
    // Written straight to the file: 200,000 refusals through the API would take minutes of a
    // debug build for nothing this test is about.
    let Place::Sqlite(dir) = &place else {
        unreachable!()
    };
    let setup = Instant::now();
    {
        let mut conn = rusqlite::Connection::open(dir.path().join("spool.db")).unwrap();
        conn.busy_timeout(Duration::from_secs(10)).unwrap();
        let tx = conn.transaction().unwrap();
        {
            let mut insert = tx
                .prepare(
                    "INSERT INTO dead_letters (event_id, integration, json, reason, at_unix_ms)
                     VALUES (?1, 'acme', ?2, 'http 422', 1)",
                )
                .unwrap();
            for n in 0..LETTERS {
                insert
                    .execute(rusqlite::params![
                        n as i64 + 1,
                        event_json(n, "Poison").to_string()
                    ])
                    .unwrap();
            }
        }
        tx.commit().unwrap();
    }
    assert_eq!(
        spool.dead_letter_count("acme").await.unwrap(),
        LETTERS as u64
    );
    let setup = setup.elapsed();

    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let ingest = {
        let (spool, done) = (spool.clone(), done.clone());
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let events = (0..10)
                    .map(|n| NewEvent {
                        action: "User login".into(),
                        json: event_json(n, "User login").to_string(),
                    })
                    .collect();
                let started = Instant::now();
                spool.append("globex", events).await.unwrap();
                latencies.push(started.elapsed());
            }
            latencies
        })
    };
    let started = Instant::now();
    let replayed = replay_all(&*spool, "acme", REPLAY_PAGE, |_| ())
        .await
        .unwrap();
    let replay = started.elapsed();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut latencies = ingest.await.unwrap();
    latencies.sort();
    let worst = *latencies.last().unwrap();
    let p99 = latencies[latencies.len() * 99 / 100];
    eprintln!(
        "replay of {replayed} dead letters on SQLite: {replay:.2?} (setup {setup:.2?}); \
         {} appends of 10 events by another tenant meanwhile: worst {worst:.2?}, p99 {p99:.2?}, \
         median {:.2?}",
        latencies.len(),
        latencies[latencies.len() / 2],
    );
    assert_eq!(replayed, LETTERS as u64);
    assert!(latencies.len() > 10, "the appends ran during the replay");
    assert!(worst < Duration::from_secs(1), "an append waited {worst:?}");

    // Everything back at the end of the queue, in the order refused.
    assert_eq!(spool.dead_letter_count("acme").await.unwrap(), 0);
    assert_eq!(spool.backlog("acme").await.unwrap().events, LETTERS as u64);
    let head = spool.pending("acme", 3).await.unwrap();
    let seqs: Vec<u64> = head
        .iter()
        .map(|e| {
            serde_json::from_str::<serde_json::Value>(&e.json).unwrap()["data"]["seq"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(seqs, [0, 1, 2]);
    assert_eq!(head[0].action, "Poison");
}

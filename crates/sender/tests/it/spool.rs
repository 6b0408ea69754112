//! The spool contract, run against both backends: the embedded SQLite file and PostgreSQL (each
//! test on a database of its own). Order, acknowledgement, dead letters and replay, backlog
//! bounds, concurrent appends, and state that outlives the spool object.

use crate::common::ScratchDatabase;
use evo_siem_sender::spool::{
    Backlog, BacklogLimits, NewEvent, PostgresOptions, PostgresSpool, Spool, SpoolError,
    SqliteSpool, replay_all,
};
use std::sync::Arc;

fn event(label: &str) -> NewEvent {
    NewEvent {
        action: "User login".into(),
        json: format!(r#"{{"label":"{label}"}}"#),
    }
}

fn labels(events: &[evo_siem_sender::spool::SpooledEvent]) -> Vec<String> {
    events
        .iter()
        .map(|e| e.json[10..e.json.len() - 2].to_owned())
        .collect()
}

/// Where a test's spool lives; opening it again reaches the same state.
pub(crate) enum Place {
    Sqlite(tempfile::TempDir),
    Postgres(ScratchDatabase),
}

#[derive(Clone, Copy)]
pub(crate) enum Backend {
    Sqlite,
    Postgres,
}

impl Place {
    pub(crate) async fn new(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => Place::Sqlite(tempfile::tempdir().unwrap()),
            Backend::Postgres => Place::Postgres(ScratchDatabase::new().await),
        }
    }

    /// A spool on this place; on PostgreSQL it holds the lease of the integrations the tests
    /// use, as the delivery worker would before reading its queue.
    pub(crate) async fn open(&self, limits: BacklogLimits) -> Arc<dyn Spool> {
        let spool: Arc<dyn Spool> = match self {
            Place::Sqlite(dir) => {
                Arc::new(SqliteSpool::open(&dir.path().join("spool.db"), limits).unwrap())
            }
            Place::Postgres(db) => {
                let spool = PostgresSpool::connect(PostgresOptions::new(db.url.clone()), limits)
                    .await
                    .unwrap();
                for integration in ["acme", "globex"] {
                    assert!(spool.take_lease(integration).await.unwrap());
                }
                Arc::new(spool)
            }
        };
        spool
    }
}

impl Place {
    /// Makes the queue's next event id `next`, as a database restored without its sequence
    /// state would: the one way the queue's ids can meet ids it handed out before.
    pub(crate) async fn restart_event_ids(&self, next: i64) {
        match self {
            Place::Sqlite(dir) => {
                let conn = rusqlite::Connection::open(dir.path().join("spool.db")).unwrap();
                conn.busy_timeout(std::time::Duration::from_secs(10))
                    .unwrap();
                conn.execute(
                    "UPDATE sqlite_sequence SET seq = ?1 WHERE name = 'events'",
                    [next - 1],
                )
                .unwrap();
            }
            Place::Postgres(db) => {
                let (client, connection) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
                    .await
                    .unwrap();
                tokio::spawn(connection);
                client
                    .batch_execute(&format!(
                        "ALTER SEQUENCE spool_events_id_seq RESTART WITH {next}"
                    ))
                    .await
                    .unwrap();
            }
        }
    }
}

/// Runs each named test function against both backends.
macro_rules! both_backends_ {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Backend::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Backend::Postgres).await;
                }
            )*
        }
    };
}

/// [`both_backends_`], for the other test modules too.
pub(crate) use both_backends_ as both_backends;

both_backends!(
    events_come_back_in_ingest_order_per_integration_until_acked,
    dead_letters_leave_the_queue_with_their_reason,
    dead_letters_replay_to_the_end_of_the_queue_all_or_chosen,
    a_full_backlog_refuses_the_whole_request_and_stores_nothing,
    concurrent_appends_all_land,
    state_survives_a_reopen,
    the_backlog_summary_totals_everything_and_names_the_longest_waiting,
    a_bound_takes_a_request_that_meets_it_and_refuses_one_past_it,
    the_queued_integrations_are_those_with_events_waiting,
    a_dead_letter_leaves_the_backlog_and_its_replay_counts_it_back,
);

async fn events_come_back_in_ingest_order_per_integration_until_acked(backend: Backend) {
    let place = Place::new(backend).await;
    let spool = place.open(BacklogLimits::default()).await;
    spool
        .append("acme", vec![event("a1"), event("a2")])
        .await
        .unwrap();
    spool.append("globex", vec![event("g1")]).await.unwrap();
    spool.append("acme", vec![event("a3")]).await.unwrap();

    let pending = spool.pending("acme", 10).await.unwrap();
    assert_eq!(labels(&pending), ["a1", "a2", "a3"]);
    assert_eq!(labels(&spool.pending("globex", 10).await.unwrap()), ["g1"]);
    assert_eq!(
        labels(&spool.pending("acme", 2).await.unwrap()),
        ["a1", "a2"]
    );

    spool
        .ack("acme", vec![pending[0].id, pending[1].id])
        .await
        .unwrap();
    assert_eq!(labels(&spool.pending("acme", 10).await.unwrap()), ["a3"]);
    // Acknowledging another integration's ids removes nothing.
    spool.ack("globex", vec![pending[2].id]).await.unwrap();
    assert_eq!(labels(&spool.pending("acme", 10).await.unwrap()), ["a3"]);
    let a3 = &pending[2];
    assert_eq!(
        spool.backlog("acme").await.unwrap(),
        Backlog {
            events: 1,
            bytes: a3.json.len() as u64
        }
    );
}

async fn dead_letters_leave_the_queue_with_their_reason(backend: Backend) {
    let place = Place::new(backend).await;
    let spool = place.open(BacklogLimits::default()).await;
    spool
        .append("acme", vec![event("good"), event("poison")])
        .await
        .unwrap();
    let pending = spool.pending("acme", 10).await.unwrap();
    spool
        .dead_letter("acme", pending[1].id, "http 422".into())
        .await
        .unwrap();
    assert_eq!(labels(&spool.pending("acme", 10).await.unwrap()), ["good"]);
    let dead = spool.dead_letters("acme", None, 10).await.unwrap();
    assert_eq!(dead.next, None);
    let dead = dead.letters;
    assert_eq!(dead.len(), 1);
    assert_eq!(
        (
            dead[0].event_id,
            dead[0].json.as_str(),
            dead[0].reason.as_str()
        ),
        (pending[1].id, pending[1].json.as_str(), "http 422")
    );
    assert_eq!(spool.dead_letter_count("acme").await.unwrap(), 1);
    assert_eq!(spool.dead_letter_count("globex").await.unwrap(), 0);
    assert_eq!(spool.backlog("acme").await.unwrap().events, 1);
    assert!(dead[0].at.elapsed().unwrap() < std::time::Duration::from_secs(60));
}

async fn dead_letters_replay_to_the_end_of_the_queue_all_or_chosen(backend: Backend) {
    let place = Place::new(backend).await;
    let spool = place.open(BacklogLimits::default()).await;
    assert_eq!(spool.oldest("acme").await.unwrap(), None);
    let before = std::time::SystemTime::now() - std::time::Duration::from_millis(1);
    spool
        .append(
            "acme",
            vec![event("p1"), event("p2"), event("p3"), event("ok")],
        )
        .await
        .unwrap();
    let oldest = spool.oldest("acme").await.unwrap().unwrap();
    assert!(oldest >= before && oldest.elapsed().unwrap() < std::time::Duration::from_secs(60));
    let pending = spool.pending("acme", 10).await.unwrap();
    for event in &pending[..3] {
        spool
            .dead_letter("acme", event.id, "http 422".into())
            .await
            .unwrap();
    }
    let dead = spool.dead_letters("acme", None, 10).await.unwrap().letters;
    let ids: Vec<i64> = dead.iter().map(|d| d.id).collect();
    // Another integration's ids replay nothing.
    assert_eq!(spool.replay("globex", ids.clone()).await.unwrap(), 0);
    assert_eq!(replay_all(&*spool, "globex", 10, |_| ()).await.unwrap(), 0);
    assert_eq!(spool.replay("acme", vec![ids[1]]).await.unwrap(), 1);
    assert_eq!(
        labels(&spool.pending("acme", 10).await.unwrap()),
        ["ok", "p2"]
    );
    assert_eq!(replay_all(&*spool, "acme", 10, |_| ()).await.unwrap(), 2);
    let queued = spool.pending("acme", 10).await.unwrap();
    assert_eq!(labels(&queued), ["ok", "p2", "p1", "p3"]);
    let dead = spool.dead_letters("acme", None, 10).await.unwrap();
    assert!(dead.letters.is_empty() && dead.next.is_none());
    assert_eq!(spool.dead_letter_count("acme").await.unwrap(), 0);
    assert_eq!(spool.backlog("acme").await.unwrap().events, 4);
    // A replayed event's action is read back from its JSON for the exclusion check; these test
    // events have no `data.action`, so it is empty (a real event's is checked in admin.rs).
    assert_eq!(queued[0].action, "User login");
    assert_eq!(queued[1].action, "");
}

async fn a_full_backlog_refuses_the_whole_request_and_stores_nothing(backend: Backend) {
    let place = Place::new(backend).await;
    let limits = BacklogLimits {
        max_events: 3,
        max_bytes: 1 << 20,
    };
    let spool = place.open(limits).await;
    spool
        .append("acme", vec![event("1"), event("2")])
        .await
        .unwrap();
    let refused = spool.append("acme", vec![event("3"), event("4")]).await;
    assert!(
        matches!(
            refused,
            Err(SpoolError::Full {
                backlog_events: 2,
                ..
            })
        ),
        "{refused:?}"
    );
    assert_eq!(
        labels(&spool.pending("acme", 10).await.unwrap()),
        ["1", "2"]
    );
    // Another integration has its own bound.
    spool
        .append("globex", vec![event("g1"), event("g2"), event("g3")])
        .await
        .unwrap();
    // Room again once delivered.
    let ids = spool
        .pending("acme", 10)
        .await
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect();
    spool.ack("acme", ids).await.unwrap();
    spool
        .append("acme", vec![event("3"), event("4")])
        .await
        .unwrap();

    let bytes = BacklogLimits {
        max_events: 100,
        max_bytes: 20,
    }; // One 13-byte event fits, two do not.
    let place = Place::new(backend).await;
    let spool = place.open(bytes).await;
    spool.append("acme", vec![event("x")]).await.unwrap();
    assert!(matches!(
        spool.append("acme", vec![event("y")]).await,
        Err(SpoolError::Full { .. })
    ));
}

async fn concurrent_appends_all_land(backend: Backend) {
    let place = Place::new(backend).await;
    let spool = place.open(BacklogLimits::default()).await;
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let spool = spool.clone();
            tokio::spawn(async move { spool.append("acme", vec![event(&format!("{i}"))]).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let mut got = labels(&spool.pending("acme", 1000).await.unwrap());
    got.sort_by_key(|l| l.parse::<u32>().unwrap());
    assert_eq!(got, (0..200).map(|i| i.to_string()).collect::<Vec<_>>());
}

async fn state_survives_a_reopen(backend: Backend) {
    let place = Place::new(backend).await;
    {
        let spool = place.open(BacklogLimits::default()).await;
        spool
            .append("acme", vec![event("kept"), event("gone")])
            .await
            .unwrap();
        let pending = spool.pending("acme", 10).await.unwrap();
        spool.ack("acme", vec![pending[1].id]).await.unwrap();
        // A new spool object on PostgreSQL is a new instance: the old one leaves.
        spool.leave().await.unwrap();
    }
    let spool = place.open(BacklogLimits::default()).await;
    let pending = spool.pending("acme", 10).await.unwrap();
    assert_eq!(labels(&pending), ["kept"]);
    assert_eq!(
        spool.backlog("acme").await.unwrap(),
        Backlog {
            events: 1,
            bytes: pending[0].json.len() as u64
        }
    );
}

async fn the_backlog_summary_totals_everything_and_names_the_longest_waiting(backend: Backend) {
    let place = Place::new(backend).await;
    let spool = place.open(BacklogLimits::default()).await;
    assert_eq!(
        spool.backlog_summary(3).await.unwrap(),
        evo_siem_sender::spool::BacklogSummary::default()
    );
    // Queued in this order: c first, then a, b, d, c again; then c's first event is delivered,
    // so a's oldest event is now the oldest of all and c's the youngest.
    spool.append("c", vec![event("c1")]).await.unwrap();
    spool.append("a", vec![event("a1")]).await.unwrap();
    spool
        .append("b", vec![event("b1"), event("b2")])
        .await
        .unwrap();
    spool.append("d", vec![event("d1")]).await.unwrap();
    spool
        .append("c", vec![event("c2"), event("c3")])
        .await
        .unwrap();
    // On PostgreSQL, the keeper takes the leases of the queues with events.
    spool.keep_leases().await.unwrap();
    assert!(spool.holds("c", evo_siem_sender::spool::Hold::Keep));
    let c1 = spool.pending("c", 1).await.unwrap()[0].id;
    spool.ack("c", vec![c1]).await.unwrap();
    let mut expected_total = Backlog::default();
    for tenant in ["a", "b", "c", "d"] {
        let backlog = spool.backlog(tenant).await.unwrap();
        expected_total.events += backlog.events;
        expected_total.bytes += backlog.bytes;
    }

    let summary = spool.backlog_summary(2).await.unwrap();
    assert_eq!(summary.total, expected_total);
    assert_eq!(summary.total.events, 6);
    assert_eq!(summary.integrations, 4);
    let names: Vec<_> = summary
        .oldest
        .iter()
        .map(|w| w.integration.as_str())
        .collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(summary.oldest[1].backlog, spool.backlog("b").await.unwrap());
    assert_eq!(summary.oldest[0].since, spool.oldest("a").await.unwrap());
    assert!(summary.oldest[0].since.is_some());
    // None asked for: the totals still come back.
    let totals = spool.backlog_summary(0).await.unwrap();
    assert_eq!((totals.total, totals.integrations), (expected_total, 4));
    assert!(totals.oldest.is_empty());
    let all = spool.backlog_summary(10).await.unwrap().oldest;
    let names: Vec<_> = all.iter().map(|w| w.integration.as_str()).collect();
    assert_eq!(names, ["a", "b", "d", "c"]);
}

/// Each bound is inclusive: a request that brings the backlog exactly to it is taken, one that
/// would pass it is refused whole, also on an integration with nothing queued yet (no counters
/// row on PostgreSQL, so only the request's own size can refuse it).
async fn a_bound_takes_a_request_that_meets_it_and_refuses_one_past_it(backend: Backend) {
    // `event("x")` is 13 bytes, `event("xx")` 14.
    let place = Place::new(backend).await;
    let limits = BacklogLimits {
        max_events: 3,
        max_bytes: 1 << 20,
    };
    let spool = place.open(limits).await;
    let refused = spool
        .append("acme", vec![event("1"), event("2"), event("3"), event("4")])
        .await;
    assert!(
        matches!(
            refused,
            Err(SpoolError::Full {
                backlog_events: 0,
                backlog_bytes: 0,
                ..
            })
        ),
        "{refused:?}"
    );
    assert!(spool.pending("acme", 10).await.unwrap().is_empty());
    spool
        .append("acme", vec![event("1"), event("2"), event("3")])
        .await
        .unwrap();
    let refused = spool.append("acme", vec![event("4")]).await;
    assert!(
        matches!(
            refused,
            Err(SpoolError::Full {
                backlog_events: 3,
                ..
            })
        ),
        "{refused:?}"
    );
    assert_eq!(
        labels(&spool.pending("acme", 10).await.unwrap()),
        ["1", "2", "3"]
    );

    let place = Place::new(backend).await;
    let limits = BacklogLimits {
        max_events: 100,
        max_bytes: 39,
    };
    let spool = place.open(limits).await;
    // 40 bytes in one request on an empty integration.
    let refused = spool
        .append("acme", vec![event("x"), event("y"), event("zz")])
        .await;
    assert!(
        matches!(
            refused,
            Err(SpoolError::Full {
                backlog_events: 0,
                backlog_bytes: 0,
                ..
            })
        ),
        "{refused:?}"
    );
    assert!(spool.pending("acme", 10).await.unwrap().is_empty());
    // Exactly 39 bytes.
    spool
        .append("acme", vec![event("x"), event("y"), event("z")])
        .await
        .unwrap();
    assert_eq!(
        spool.backlog("acme").await.unwrap(),
        Backlog {
            events: 3,
            bytes: 39
        }
    );
    let refused = spool.append("acme", vec![event("w")]).await;
    assert!(
        matches!(
            refused,
            Err(SpoolError::Full {
                backlog_events: 3,
                backlog_bytes: 39,
                ..
            })
        ),
        "{refused:?}"
    );
}

/// The integrations the scheduler is told have work: those with events queued, not those whose
/// request was refused nor those whose events were all delivered.
async fn the_queued_integrations_are_those_with_events_waiting(backend: Backend) {
    let place = Place::new(backend).await;
    let limits = BacklogLimits {
        max_events: 2,
        max_bytes: 1 << 20,
    };
    let spool = place.open(limits).await;
    assert!(spool.queued().await.unwrap().is_empty());
    spool.append("acme", vec![event("a1")]).await.unwrap();
    spool.append("globex", vec![event("g1")]).await.unwrap();
    assert!(
        spool
            .append("initech", vec![event("1"), event("2"), event("3")])
            .await
            .is_err()
    );
    let mut queued = spool.queued().await.unwrap();
    queued.sort();
    assert_eq!(queued, ["acme", "globex"]);
    let ids = spool
        .pending("acme", 10)
        .await
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect();
    spool.ack("acme", ids).await.unwrap();
    assert_eq!(spool.queued().await.unwrap(), ["globex"]);
}

/// A dead letter leaves the backlog, events and bytes, and keeps the event; its replay puts the
/// same event back and counts it again in full.
async fn a_dead_letter_leaves_the_backlog_and_its_replay_counts_it_back(backend: Backend) {
    let place = Place::new(backend).await;
    let spool = place.open(BacklogLimits::default()).await;
    spool
        .append("acme", vec![event("kept"), event("refused")])
        .await
        .unwrap();
    let pending = spool.pending("acme", 10).await.unwrap();
    let (kept, refused) = (&pending[0], &pending[1]);
    spool
        .dead_letter("acme", refused.id, "http 422".into())
        .await
        .unwrap();
    assert_eq!(
        spool.backlog("acme").await.unwrap(),
        Backlog {
            events: 1,
            bytes: kept.json.len() as u64
        }
    );
    let letters = spool.dead_letters("acme", None, 10).await.unwrap().letters;
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].json, refused.json);
    assert_eq!(spool.replay("acme", vec![letters[0].id]).await.unwrap(), 1);
    let queued = spool.pending("acme", 10).await.unwrap();
    assert_eq!(labels(&queued), ["kept", "refused"]);
    assert_eq!(
        spool.backlog("acme").await.unwrap(),
        Backlog {
            events: 2,
            bytes: (kept.json.len() + refused.json.len()) as u64
        }
    );
    spool
        .dead_letter("acme", queued[1].id, "http 400".into())
        .await
        .unwrap();
    assert_eq!(replay_all(&*spool, "acme", 10, |_| ()).await.unwrap(), 1);
    assert_eq!(
        spool.backlog("acme").await.unwrap(),
        Backlog {
            events: 2,
            bytes: (kept.json.len() + refused.json.len()) as u64
        }
    );
    assert_eq!(spool.dead_letter_count("acme").await.unwrap(), 0);
}

/// On PostgreSQL, replays of one integration take turns, across instances: a replay waits while
/// another holds the integration's replay lock (the advisory lock `dead_letters.rs` takes, keyed
/// by `0x6576_6f72` and the integration's name), so two replays at once cannot interleave their
/// pages or stop short. Here a second connection holds that lock as a running replay would.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_waits_for_another_replay_of_the_same_integration() {
    let place = Place::new(Backend::Postgres).await;
    let Place::Postgres(db) = &place else {
        unreachable!("a PostgreSQL place")
    };
    let spool = place.open(BacklogLimits::default()).await;
    spool.append("acme", vec![event("refused")]).await.unwrap();
    let pending = spool.pending("acme", 10).await.unwrap();
    spool
        .dead_letter("acme", pending[0].id, "http 422".into())
        .await
        .unwrap();

    let (mut other, connection) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let running = other.transaction().await.unwrap();
    running
        .execute(
            "SELECT pg_advisory_xact_lock($1, hashtext($2))",
            &[&0x6576_6f72_i32, &"acme"],
        )
        .await
        .unwrap();
    let replay = tokio::spawn({
        let spool = spool.clone();
        async move { spool.replay_page("acme", None, 10).await }
    });
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(
        !replay.is_finished(),
        "a replay went ahead while another replay of the integration was running"
    );
    assert_eq!(spool.dead_letter_count("acme").await.unwrap(), 1);
    running.commit().await.unwrap();
    let page = tokio::time::timeout(std::time::Duration::from_secs(10), replay)
        .await
        .expect("the replay goes ahead once the other one ends")
        .unwrap()
        .unwrap();
    assert_eq!(page.moved, 1);
    assert_eq!(
        labels(&spool.pending("acme", 10).await.unwrap()),
        ["refused"]
    );
}

//! The SQLite spool's errors keep their sources: the driver's error on open and in the writer
//! thread's group transactions, the file system's error on creating the directory.

use super::SqliteSpool;
use crate::spool::{BacklogLimits, NewEvent, Spool, SpoolError};
use std::error::Error as _;
use std::time::Duration;

/// The driver's error behind a spool error, if that is what its source is.
fn sqlite_source(err: &SpoolError) -> Option<&rusqlite::Error> {
    err.source()?.downcast_ref::<rusqlite::Error>()
}

#[test]
fn a_spool_that_cannot_be_opened_keeps_the_drivers_error() {
    let dir = tempfile::tempdir().unwrap();
    // A directory where the database file should be: SQLite cannot open it.
    let err = SqliteSpool::open(dir.path(), BacklogLimits::default()).unwrap_err();
    assert!(matches!(err, SpoolError::Sqlite(_)), "{err:?}");
    let source = sqlite_source(&err).expect("the source is the driver's error");
    assert_eq!(
        source.sqlite_error_code(),
        Some(rusqlite::ErrorCode::CannotOpen),
        "{source:?}"
    );
    assert!(
        err.to_string().starts_with("spool storage error: "),
        "{err}"
    );

    // A file that is not a database.
    let path = dir.path().join("spool.db");
    std::fs::write(&path, vec![b'x'; 4096]).unwrap();
    let err = SqliteSpool::open(&path, BacklogLimits::default()).unwrap_err();
    let source = sqlite_source(&err).expect("the source is the driver's error");
    assert_eq!(
        source.sqlite_error_code(),
        Some(rusqlite::ErrorCode::NotADatabase),
        "{source:?}"
    );
}

#[test]
fn a_directory_that_cannot_be_created_keeps_the_io_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    // Its parent is a file: the directory cannot be created.
    let err = SqliteSpool::open(&file.join("spool.db"), BacklogLimits::default()).unwrap_err();
    assert!(matches!(err, SpoolError::Io(_)), "{err:?}");
    assert!(
        err.source()
            .and_then(|s| s.downcast_ref::<std::io::Error>())
            .is_some(),
        "{err:?}"
    );
}

/// A group transaction that fails answers the requests it had applied with the driver's error,
/// shared between them, not a text.
#[tokio::test]
async fn a_failed_group_transaction_answers_with_the_drivers_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spool.db");
    let spool = SqliteSpool::open(&path, BacklogLimits::default()).unwrap();
    let event = || NewEvent {
        action: "a".into(),
        json: "{}".into(),
    };
    // Another connection takes the write lock and drops a table in its transaction.
    let other = rusqlite::Connection::open(&path).unwrap();
    other
        .execute_batch("BEGIN EXCLUSIVE; DROP TABLE dead_letters;")
        .unwrap();
    // The writer waits for the lock (its busy timeout is 5 s) inside this append's group...
    let first = tokio::spawn({
        let spool = spool.clone();
        async move { spool.append("acme", vec![event()]).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    // ...so these two queue up, in this order, and are applied together once it is released:
    // the backlog is answered after the commit, the count fails on the dropped table, and the
    // group's transaction with it.
    let backlog = tokio::spawn({
        let spool = spool.clone();
        async move { spool.backlog("acme").await }
    });
    let count = tokio::spawn({
        let spool = spool.clone();
        async move { spool.dead_letter_count("acme").await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    other.execute_batch("COMMIT").unwrap();

    // (Had the writer not yet taken the append, it is in the same group and fails with it.)
    let _ = first.await.unwrap();
    let err = backlog.await.unwrap().unwrap_err();
    assert!(matches!(err, SpoolError::Sqlite(_)), "{err:?}");
    let source = sqlite_source(&err).expect("the source is the driver's error");
    assert!(source.to_string().contains("dead_letters"), "{source}");
    assert!(count.await.unwrap().is_err());
}

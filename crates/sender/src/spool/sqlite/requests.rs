//! The requests the spool's handle sends its writer thread, and how they are answered.
//!
//! Each request carries a oneshot channel for its answer. The writer answers a request once the
//! transaction that applied it has ended ([`Deferred`]): with its result after the commit, with
//! the error when the transaction failed. A group the writer could not start is refused at once
//! ([`fail`]).

use crate::spool::{
    Backlog, DeadLetterPage, NewEvent, ReplayPage, SpoolError, SpooledEvent, SqliteError,
};
use std::time::SystemTime;
use tokio::sync::oneshot;

/// Where the writer sends a request's answer.
pub(super) type Reply<T> = oneshot::Sender<Result<T, SpoolError>>;

/// A request to the writer thread, with the channel its answer goes back on.
pub(super) enum Op {
    Append {
        integration: String,
        events: Vec<NewEvent>,
        reply: Reply<()>,
    },
    Pending {
        integration: String,
        limit: usize,
        reply: Reply<Vec<SpooledEvent>>,
    },
    Ack {
        integration: String,
        ids: Vec<i64>,
        reply: Reply<()>,
    },
    DeadLetter {
        integration: String,
        id: i64,
        reason: String,
        reply: Reply<()>,
    },
    DeadLetters {
        integration: String,
        after: Option<i64>,
        limit: usize,
        reply: Reply<DeadLetterPage>,
    },
    DeadLetterCount {
        integration: String,
        reply: Reply<u64>,
    },
    Backlog {
        integration: String,
        reply: Reply<Backlog>,
    },
    Oldest {
        integration: String,
        reply: Reply<Option<SystemTime>>,
    },
    Queued {
        reply: Reply<Vec<String>>,
    },
    Replay {
        integration: String,
        ids: Vec<i64>,
        reply: Reply<u64>,
    },
    ReplayPage {
        integration: String,
        through: Option<i64>,
        limit: usize,
        reply: Reply<ReplayPage>,
    },
}

impl Op {
    /// The integration whose backlog the request may change.
    pub(super) fn integration(&self) -> Option<&str> {
        match self {
            Op::Append { integration, .. }
            | Op::Ack { integration, .. }
            | Op::DeadLetter { integration, .. }
            | Op::Replay { integration, .. }
            | Op::ReplayPage { integration, .. } => Some(integration),
            _ => None,
        }
    }
}

/// A reply to send once the transaction is committed.
pub(super) enum Deferred {
    Unit(Reply<()>),
    Events(Reply<Vec<SpooledEvent>>, Vec<SpooledEvent>),
    Dead(Reply<DeadLetterPage>, DeadLetterPage),
    Replayed(Reply<ReplayPage>, ReplayPage),
    Backlog(Reply<Backlog>, Backlog),
    Oldest(Reply<Option<SystemTime>>, Option<SystemTime>),
    Count(Reply<u64>, u64),
    Names(Reply<Vec<String>>, Vec<String>),
}

impl Deferred {
    pub(super) fn send(self, failure: Option<&SqliteError>) {
        let err = |e: &SqliteError| SpoolError::Sqlite(e.clone());
        // A caller that went away no longer needs its answer.
        let _ = match (self, failure) {
            (Deferred::Unit(r), None) => r.send(Ok(())).map_err(drop),
            (Deferred::Unit(r), Some(e)) => r.send(Err(err(e))).map_err(drop),
            (Deferred::Events(r, v), None) => r.send(Ok(v)).map_err(drop),
            (Deferred::Events(r, _), Some(e)) => r.send(Err(err(e))).map_err(drop),
            (Deferred::Dead(r, v), None) => r.send(Ok(v)).map_err(drop),
            (Deferred::Dead(r, _), Some(e)) => r.send(Err(err(e))).map_err(drop),
            (Deferred::Backlog(r, v), None) => r.send(Ok(v)).map_err(drop),
            (Deferred::Backlog(r, _), Some(e)) => r.send(Err(err(e))).map_err(drop),
            (Deferred::Oldest(r, v), None) => r.send(Ok(v)).map_err(drop),
            (Deferred::Oldest(r, _), Some(e)) => r.send(Err(err(e))).map_err(drop),
            (Deferred::Count(r, v), None) => r.send(Ok(v)).map_err(drop),
            (Deferred::Count(r, _), Some(e)) => r.send(Err(err(e))).map_err(drop),
            (Deferred::Replayed(r, v), None) => r.send(Ok(v)).map_err(drop),
            (Deferred::Replayed(r, _), Some(e)) => r.send(Err(err(e))).map_err(drop),
            (Deferred::Names(r, v), None) => r.send(Ok(v)).map_err(drop),
            (Deferred::Names(r, _), Some(e)) => r.send(Err(err(e))).map_err(drop),
        };
    }
}

/// Answers a request that could not be applied.
pub(super) fn fail(op: Op, failure: &SqliteError) {
    let err = || SpoolError::Sqlite(failure.clone());
    let _ = match op {
        Op::Append { reply, .. } | Op::Ack { reply, .. } | Op::DeadLetter { reply, .. } => {
            reply.send(Err(err())).map_err(drop)
        }
        Op::Pending { reply, .. } => reply.send(Err(err())).map_err(drop),
        Op::DeadLetters { reply, .. } => reply.send(Err(err())).map_err(drop),
        Op::Backlog { reply, .. } => reply.send(Err(err())).map_err(drop),
        Op::Oldest { reply, .. } => reply.send(Err(err())).map_err(drop),
        Op::DeadLetterCount { reply, .. } => reply.send(Err(err())).map_err(drop),
        Op::ReplayPage { reply, .. } => reply.send(Err(err())).map_err(drop),
        Op::Queued { reply } => reply.send(Err(err())).map_err(drop),
        Op::Replay { reply, .. } => reply.send(Err(err())).map_err(drop),
    };
}

//! Arrivals: how an instance hears at once that another instance queued events.
//!
//! An append announces its integration with `pg_notify` in its own transaction, so the notification
//! goes out on commit, never for events that were rolled back. Each instance keeps one `LISTEN`
//! connection (outside the pool: it stays open) and hands the names to the scheduler (see
//! `Spool::arrivals`), so that the holder of a lease need not poll for work.

use super::{PostgresSpool, db, describe};
use crate::spool::SpoolError;
use std::sync::Arc;
use std::time::Duration;
use tokio_postgres::NoTls;
use tokio_postgres_rustls::MakeRustlsConnect;

/// The connection settings of the `LISTEN` connection.
pub(super) struct ListenerConfig {
    /// The pool's connection settings.
    pub(super) config: tokio_postgres::Config,
    /// The pool's TLS connector, `None` for a plain connection.
    pub(super) tls: Option<MakeRustlsConnect>,
}

/// The channel on which appends announce the integration they queued events for.
const ARRIVALS: &str = "evo_siem_arrivals";

/// Announces, on commit, that `integration` has new events (see `Spool::arrivals`).
pub(super) async fn notify(
    tx: &deadpool_postgres::Transaction<'_>,
    integration: &str,
) -> Result<(), SpoolError> {
    tx.execute("SELECT pg_notify($1, $2)", &[&ARRIVALS, &integration])
        .await
        .map_err(db)?;
    Ok(())
}

impl PostgresSpool {
    /// Starts the `LISTEN` task and returns what it hears (see `Spool::arrivals`).
    pub(super) fn arrivals_now(&self) -> tokio::sync::mpsc::Receiver<String> {
        let (tx, rx) = tokio::sync::mpsc::channel(1024);
        tokio::spawn(listen(self.listener.clone(), tx));
        rx
    }
}

/// Keeps a `LISTEN` connection open and forwards each announced integration to `tx`, until the
/// receiver is dropped; reconnects after a failure. A notification that does not fit in `tx` is
/// dropped: the scheduler's periodic look at the queues finds its events anyway.
async fn listen(config: Arc<ListenerConfig>, tx: tokio::sync::mpsc::Sender<String>) {
    while !tx.is_closed() {
        let result = match &config.tls {
            Some(tls) => match config.config.connect(tls.clone()).await {
                Ok((client, connection)) => forward(client, connection, &tx).await,
                Err(err) => Err(err),
            },
            None => match config.config.connect(NoTls).await {
                Ok((client, connection)) => forward(client, connection, &tx).await,
                Err(err) => Err(err),
            },
        };
        if let Err(err) = result {
            tracing::warn!(error = %describe(&err), "the LISTEN connection failed; reconnecting");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Drives one `LISTEN` connection until it closes, the receiver is dropped, or it fails.
async fn forward<S, T>(
    client: tokio_postgres::Client,
    mut connection: tokio_postgres::Connection<S, T>,
    tx: &tokio::sync::mpsc::Sender<String>,
) -> Result<(), tokio_postgres::Error>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let statement = format!("LISTEN {ARRIVALS}");
    let listening = client.batch_execute(&statement);
    let mut listening = std::pin::pin!(listening);
    let mut listened = false;
    let mut check = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            done = &mut listening, if !listened => {
                done?;
                listened = true;
            }
            message = std::future::poll_fn(|cx| connection.poll_message(cx)) => match message {
                Some(Ok(tokio_postgres::AsyncMessage::Notification(n))) => {
                    let _ = tx.try_send(n.payload().to_owned());
                }
                Some(Ok(_)) => {}
                Some(Err(err)) => return Err(err),
                None => return Ok(()),
            },
            _ = check.tick() => if tx.is_closed() {
                return Ok(());
            },
        }
    }
}

//! The ingest and admin API's accept loop: HTTP/1.1 with a cap on open connections and a
//! deadline for every request head.
//!
//! `axum::serve` has neither: a thousand clients opening connections and sending nothing (or a
//! header a byte a second) would each keep a task and a descriptor forever. Here:
//!
//! - at most `max_connections` are open at once; the loop accepts the next one only when a slot
//!   is free, so excess connections wait in the kernel's accept backlog, costing the sender
//!   nothing (a client gives up there on its own connect timeout);
//! - hyper's header read timeout closes a connection whose request head has not fully arrived
//!   within `header_timeout` of the connection opening or of the previous response, which also
//!   makes it the idle keep-alive timeout (hyper starts it whenever it waits for a head);
//! - the body's pace is bounded per route, by `limits::guard`.
//!
//! Shutdown keeps the semantics of before: accepting stops, each connection finishes the
//! request in progress (idle ones close at once), and whatever is still open after
//! [`HTTP_GRACE`](super::HTTP_GRACE) is dropped.

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

/// The bounds the loop enforces.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ListenerOptions {
    pub(crate) max_connections: usize,
    pub(crate) header_timeout: Duration,
}

/// Resolves once `stop` is true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is not `Send`: dropped here, before any other await.
    let _ = stop.wait_for(|s| *s).await;
}

/// Serves `router` on `listener` until `shutdown` turns true, then lets requests in progress
/// finish for up to `grace`.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    options: ListenerOptions,
    shutdown: watch::Receiver<bool>,
    grace: Duration,
) {
    let slots = Arc::new(Semaphore::new(options.max_connections));
    let mut connections = JoinSet::new();
    let mut stop = shutdown.clone();
    loop {
        // A slot first, then the connection: while every slot is taken, nothing is accepted.
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            () = stopped(&mut stop) => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!(error = %err, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = stopped(&mut stop) => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let mut stop = shutdown.clone();
        connections.spawn(async move {
            let _slot = slot;
            let service = hyper::service::service_fn(move |mut request| {
                // The peer address goes into the audit events of admin changes.
                request.extensions_mut().insert(ConnectInfo(peer));
                let mut router = router.clone();
                async move { tower_service::Service::call(&mut router, request).await }
            });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(options.header_timeout)
                .keep_alive(true);
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            let result = tokio::select! {
                result = connection.as_mut() => result,
                () = stopped(&mut stop) => {
                    // Finish the request in progress, if any, then close.
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(err) = result {
                tracing::debug!(%peer, error = %err, "connection ended with an error");
            }
        });
    }
    drop(listener);
    let drained = tokio::time::timeout(grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        // Dropping the set aborts the connections: a client holding one cannot hold up the stop.
        tracing::warn!("ingest connections still open at shutdown; closing them");
    }
}

//! The HTTP/1.1 accept loop, with a kill switch per connection.
//!
//! `axum::serve` gives a handler no way to end its own connection without an answer, which the
//! `drop` and `reset` faults need. Here each connection gets a [`Kill`] in its requests'
//! extensions; a handler that fires it makes the connection task end the connection: in order
//! (FIN first, then what the client already sent is read, so that the close sends no RST) or,
//! for a reset, with `SO_LINGER` set to zero first so that the close sends an RST.

use axum::Router;
use hyper_util::rt::TokioIo;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinSet;

/// How a killed connection ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ending {
    /// An orderly close (FIN) with no response.
    Close,
    /// A reset (RST).
    Reset,
}

/// A connection's kill switch, found in each request's extensions.
#[derive(Debug, Default)]
pub(crate) struct Kill {
    notify: Notify,
    reset: std::sync::atomic::AtomicBool,
}

impl Kill {
    /// Ends the connection; the handler that calls this should then never return.
    pub(crate) fn fire(&self, ending: Ending) {
        self.reset
            .store(ending == Ending::Reset, std::sync::atomic::Ordering::SeqCst);
        self.notify.notify_one();
    }
}

/// Serves `router` on `listener` until the task is aborted; aborting it ends every connection.
pub(crate) async fn serve(listener: TcpListener, router: Router) {
    let mut connections = JoinSet::new();
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!(error = %err, "mock SIEM cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let router = router.clone();
        connections.spawn(async move {
            // A second descriptor of the same socket, so that its options can be changed after
            // hyper took the stream; the socket closes when both are dropped.
            let socket = stream.as_fd().try_clone_to_owned().ok();
            let kill = Arc::new(Kill::default());
            let handle = kill.clone();
            let service = hyper::service::service_fn(move |mut request| {
                request.extensions_mut().insert(handle.clone());
                let mut router = router.clone();
                async move { tower::Service::call(&mut router, request).await }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = connection => {}
                () = kill.notify.notified() => {
                    if let Some(socket) = &socket {
                        let socket = socket2::SockRef::from(socket);
                        if kill.reset.load(std::sync::atomic::Ordering::SeqCst) {
                            let _ = socket.set_linger(Some(Duration::ZERO));
                        } else {
                            close_in_order(&socket);
                        }
                    }
                }
            }
        });
    }
}

/// Sends the FIN at once, then reads what the client had already sent: closing a socket with
/// unread data sends an RST instead of the orderly end a `drop` fault promises (a body whose
/// last bytes came after hyper read the head would turn the close into a reset).
fn close_in_order(socket: &socket2::Socket) {
    use std::io::Read;
    let _ = socket.shutdown(std::net::Shutdown::Write);
    // The descriptor is non-blocking (tokio's), so this stops at the first empty read; bounded,
    // so that a client that never stops sending cannot hold the task here.
    let mut buf = [0u8; 16 * 1024];
    let mut left: usize = 1 << 20;
    let mut reader: &socket2::Socket = socket;
    while left > 0 {
        match reader.read(&mut buf) {
            Ok(n) if n > 0 => left = left.saturating_sub(n),
            _ => break,
        }
    }
}

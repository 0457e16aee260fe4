//! The HTTP/1.1 accept loop: hyper directly rather than `axum::serve`, which
//! sets no timer and so enforces no deadline on request headers. Every
//! connection gets TCP_NODELAY (terminal keystrokes are tiny writes that
//! must not wait for an ACK), its peer address for rate limits, and a
//! graceful shutdown that lets requests in flight finish; every request
//! goes through `registry::keep_alive::drain_unread`, so an early answer
//! never leaves a keep-alive client a dead connection.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tower::Service;

/// A client has this long to send a request's headers, and an idle
/// keep-alive connection this long to start the next request; slow or
/// silent connections are closed instead of held open.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Most bytes of a request head hyper buffers.
const MAX_HEAD_BYTES: usize = 64 * 1024;

pub async fn run(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // A handler that answers before reading the body must not leave a
    // keep-alive client a connection that closes under it.
    let app = app.layer(axum::middleware::from_fn(
        ::registry::keep_alive::drain_unread,
    ));
    let mut make_service = app.into_make_service_with_connect_info::<SocketAddr>();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_HEAD_BYTES);
    // Every connection holds a receiver: once all are dropped, all are done.
    let (stop, stopped) = tokio::sync::watch::channel(());
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(err) => {
                    // Out of file descriptors and the like: wait rather than spin.
                    tracing::warn!(error = %err, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        if let Err(err) = tcp.set_nodelay(true) {
            tracing::debug!(error = %err, "cannot set TCP_NODELAY");
        }
        let Ok(service) = make_service.call(peer).await;
        let connection = http
            .serve_connection(TokioIo::new(tcp), TowerToHyperService::new(service))
            .with_upgrades();
        let mut stopped = stopped.clone();
        tokio::spawn(async move {
            let mut connection = std::pin::pin!(connection);
            let ended = tokio::select! {
                ended = connection.as_mut() => ended,
                _ = stopped.changed() => {
                    // Finish the request in flight, take no new one.
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(err) = ended {
                tracing::debug!(%peer, error = %err, "connection ended");
            }
        });
    }
    drop(listener);
    drop(stopped);
    let _ = stop.send(());
    stop.closed().await;
    Ok(())
}

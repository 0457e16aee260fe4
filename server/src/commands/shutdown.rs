//! How the long-running commands learn to stop.

/// Resolves at the first SIGTERM or SIGINT.
pub(super) async fn on_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; stop the server with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received, finishing requests in flight"),
        _ = int.recv() => tracing::info!("SIGINT received, finishing requests in flight"),
    }
}

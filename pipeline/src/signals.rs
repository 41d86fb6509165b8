//! Graceful shutdown on SIGINT or SIGTERM, shared by the agent and the collector.

use tokio_util::sync::CancellationToken;

/// Cancels `shutdown` on the first SIGINT or SIGTERM; `doing` says what stopping involves.
pub async fn stop_on_signal(shutdown: CancellationToken, doing: &'static str) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; stop with SIGKILL");
        return;
    };
    let name = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    tracing::info!(signal = name, "stopping: {doing}");
    shutdown.cancel();
}

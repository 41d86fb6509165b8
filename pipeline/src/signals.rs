//! Signals shared by the agent and the collector: SIGINT or SIGTERM stops gracefully; SIGHUP
//! asks for a reload of the configuration where the process can reload, and is logged and
//! ignored otherwise, rather than killing the process without flushing as its default action
//! would.

use tokio_util::sync::CancellationToken;

/// What an operator reads when SIGHUP arrives.
pub const SIGHUP_IGNORED: &str = "SIGHUP: reload is not implemented yet; ignored";

/// Installs the handlers at once (call it inside the runtime) and returns the task that
/// cancels `shutdown` on the first SIGINT or SIGTERM; `doing` says what stopping involves.
/// Each SIGHUP is sent to `reload`; without one it is logged at warn level and ignored
/// (tokio's handlers stay installed for the life of the process, so a SIGHUP during the
/// shutdown is harmless too).
pub fn stop_on_signal(
    shutdown: CancellationToken,
    doing: &'static str,
    reload: Option<tokio::sync::mpsc::UnboundedSender<()>>,
) -> impl Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{SignalKind, signal};
    let handlers = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    );
    async move {
        let (Ok(mut term), Ok(mut int), Ok(mut hup)) = handlers else {
            tracing::error!("cannot install signal handlers; stop with SIGKILL");
            return;
        };
        let name = loop {
            tokio::select! {
                _ = term.recv() => break "SIGTERM",
                _ = int.recv() => break "SIGINT",
                _ = hup.recv() => match &reload {
                    Some(reload) if reload.send(()).is_ok() => {
                        tracing::info!(signal = "SIGHUP", action = "reload", "SIGHUP: reloading the configuration");
                    }
                    _ => tracing::warn!(signal = "SIGHUP", action = "ignored", "{SIGHUP_IGNORED}"),
                },
            }
        };
        tracing::info!(signal = name, "stopping: {doing}");
        shutdown.cancel();
    }
}

//! Stop signals: SIGTERM/SIGINT stop (drain, stop the owned Ollama), SIGUSR2 hands over (drain,
//! leave Ollama warm for the next openclawd), a second SIGTERM/SIGINT ends the drain at once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;

/// Waits for a stop signal (or another reason to stop), records whether it asks for a handover,
/// and starts the shutdown.
pub(super) async fn wait_for_stop(shutdown: CancellationToken, handover: Arc<AtomicBool>) {
    let (Ok(mut term), Ok(mut int), Ok(mut usr2)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::user_defined2()),
    ) else {
        tracing::error!("cannot install signal handlers; stop with SIGKILL");
        shutdown.cancelled().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
        _ = usr2.recv() => handover.store(true, Ordering::SeqCst),
        _ = shutdown.cancelled() => {},
    }
    shutdown.cancel();
}

/// A second SIGTERM/SIGINT during the drain ends it at once.
pub(super) async fn second_signal(shutdown: CancellationToken, hard_stop: CancellationToken) {
    // Installed only once stopping: a stream made earlier would still hold the first signal.
    shutdown.cancelled().await;
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return;
    };
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
    tracing::warn!("second stop signal: not waiting for in-flight requests");
    hard_stop.cancel();
}

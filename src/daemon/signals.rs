//! Stop signals: SIGTERM/SIGINT stop (drain, stop the owned Ollama), SIGUSR2 hands over (drain,
//! leave Ollama warm for the next openclawd), a second SIGTERM/SIGINT ends the drain at once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio_util::sync::CancellationToken;

/// The stop signals' streams. Installed while the app is built, before the gateway answers, so
/// a SIGTERM sent as soon as `/health` answers is never the default (fatal) action.
pub(super) struct StopSignals {
    term: Signal,
    int: Signal,
    usr2: Signal,
}

impl StopSignals {
    pub(super) fn install() -> std::io::Result<StopSignals> {
        Ok(StopSignals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            usr2: signal(SignalKind::user_defined2())?,
        })
    }
}

/// Waits for a stop signal (or another reason to stop), records whether it asks for a handover,
/// and starts the shutdown. `installed` are the streams made at build time (`None` when this
/// task was restarted: it installs its own).
pub(super) async fn wait_for_stop(
    installed: Option<StopSignals>,
    shutdown: CancellationToken,
    handover: Arc<AtomicBool>,
) {
    let signals = match installed {
        Some(s) => Ok(s),
        None => StopSignals::install(),
    };
    let Ok(mut s) = signals else {
        tracing::error!("cannot install signal handlers; stop with SIGKILL");
        shutdown.cancelled().await;
        return;
    };
    tokio::select! {
        _ = s.term.recv() => {},
        _ = s.int.recv() => {},
        _ = s.usr2.recv() => handover.store(true, Ordering::SeqCst),
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

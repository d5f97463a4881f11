//! The service manager's view while the daemon runs (systemd `sd_notify`): a one-line STATUS
//! computed from the daemon's state, WATCHDOG pings, and STOPPING at shutdown. The protocol
//! itself is `service::notify`.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::service::notify::{self as sd, enabled, status, stopping, watchdog_interval};
use crate::state::DaemonState;

/// How often the status line is recomputed when nothing else wakes the task.
const STATUS_EVERY: Duration = Duration::from_secs(5);

/// The one-line state: `listening on 127.0.0.1:18789 · Ollama running (owned, 0.16.1) ·
/// 3 models · config generation 2`.
pub fn status_line(state: &DaemonState) -> String {
    let ollama = state.ollama.borrow().clone();
    let management = match ollama.management {
        Some(crate::ollama::Management::Owned) => "owned",
        Some(crate::ollama::Management::Adopted) => "adopted",
        Some(crate::ollama::Management::Remote) => "remote",
        None => "unmanaged",
    };
    let version = ollama
        .server_version
        .as_deref()
        .map(|v| format!(", {v}"))
        .unwrap_or_default();
    let catalog = state.catalog.load();
    let available = catalog
        .models
        .iter()
        .filter(|m| m.unroutable.is_none())
        .count();
    let mut line = format!(
        "listening on {} · Ollama {} ({management}{version}) · {available} models · config generation {}",
        state.listen,
        ollama.state.as_str(),
        state.config.load().generation,
    );
    if state.config_error.load().is_some() {
        line.push_str(" · config error (see `openclawd status`)");
    }
    if ollama.version_mismatch.is_some() {
        line.push_str(" · Ollama version mismatch");
    }
    line
}

/// Keeps the manager informed while the daemon runs: status changes, watchdog pings, and
/// `STOPPING=1` as soon as shutdown begins. Returns at shutdown.
pub(super) async fn run(state: Arc<DaemonState>, shutdown: CancellationToken) {
    if !enabled() {
        return;
    }
    let watchdog_every = watchdog_interval();
    let mut ollama = state.ollama.clone();
    let mut last = String::new();
    let mut status_tick = tokio::time::interval(STATUS_EVERY);
    // A tick that cannot be served in time is late, not bunched up.
    status_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut watchdog_tick = watchdog_every.map(|every| {
        let mut t = tokio::time::interval(every);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t
    });
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => {
                stopping("stopping: draining requests");
                return;
            }
            // This task being polled on time is the runtime's health.
            _ = async {
                match watchdog_tick.as_mut() {
                    Some(t) => { t.tick().await; }
                    None => std::future::pending::<()>().await,
                }
            } => {
                sd::watchdog();
                continue;
            }
            _ = status_tick.tick() => {}
            Ok(()) = ollama.changed() => {}
        }
        let line = status_line(&state);
        if line != last {
            status(&line);
            last = line;
        }
    }
}

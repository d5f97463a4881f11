//! sd_notify(3) for `Type=notify` units (SPEC §8): `READY=1` once the gateway listens, a
//! one-line `STATUS=`, `WATCHDOG=1` at half of `WATCHDOG_USEC` while the runtime is healthy,
//! `RELOADING=1` (+ `MONOTONIC_USEC`) and `READY=1` around config swaps, `STOPPING=1` on
//! shutdown. Everything is a no-op without `NOTIFY_SOCKET`.

use std::sync::Arc;
use std::time::Duration;

use sd_notify::NotifyState;
use tokio_util::sync::CancellationToken;

use crate::state::DaemonState;

/// How often the status line is recomputed (sent only when it changed).
const STATUS_EVERY: Duration = Duration::from_secs(5);

/// True when a service manager listens (`NOTIFY_SOCKET` is set and not empty, as sd_notify(3)
/// reads it).
pub fn enabled() -> bool {
    std::env::var_os("NOTIFY_SOCKET").is_some_and(|s| !s.is_empty())
}

fn send(states: &[NotifyState<'_>]) {
    if !enabled() {
        return;
    }
    // `false`: keep NOTIFY_SOCKET; removing variables is not thread-safe.
    if let Err(e) = sd_notify::notify(false, states) {
        tracing::debug!("sd_notify failed: {e}");
    }
}

/// `READY=1` with a first status line. Call once the listener is bound: connections are
/// accepted (queued) from then on.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// `RELOADING=1` with `MONOTONIC_USEC` (required by systemd ≥ 253), before a config swap.
pub fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(&[NotifyState::Reloading, now]),
        Err(_) => send(&[NotifyState::Reloading]),
    }
}

/// `READY=1` after a config swap.
pub fn reloaded() {
    send(&[NotifyState::Ready]);
}

/// `STOPPING=1`.
pub fn stopping(status: &str) {
    send(&[NotifyState::Stopping, NotifyState::Status(status)]);
}

pub fn status(line: &str) {
    send(&[NotifyState::Status(line)]);
}

/// Half of `WATCHDOG_USEC` when the manager watches us (and `WATCHDOG_PID` is ours).
pub fn watchdog_interval() -> Option<Duration> {
    let mut usec = 0;
    if sd_notify::watchdog_enabled(false, &mut usec) && usec > 0 {
        Some(Duration::from_micros(usec / 2))
    } else {
        None
    }
}

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
pub async fn run(state: Arc<DaemonState>, shutdown: CancellationToken) {
    if !enabled() {
        return;
    }
    let watchdog = watchdog_interval();
    let mut ollama = state.ollama.clone();
    let mut last = String::new();
    let mut status_tick = tokio::time::interval(STATUS_EVERY);
    // A tick that cannot be served in time is late, not bunched up.
    status_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut watchdog_tick = watchdog.map(|every| {
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
                send(&[NotifyState::Watchdog]);
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

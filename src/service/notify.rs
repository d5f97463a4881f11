//! sd_notify(3) for `Type=notify` units (SPEC §8): `READY=1` once the gateway listens, a
//! one-line `STATUS=`, `WATCHDOG=1` at half of `WATCHDOG_USEC` while the runtime is healthy,
//! `RELOADING=1` (+ `MONOTONIC_USEC`) and `READY=1` around config swaps, `STOPPING=1` on
//! shutdown. Everything is a no-op without `NOTIFY_SOCKET`.

use std::time::Duration;

use sd_notify::NotifyState;

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

/// `WATCHDOG=1`: the daemon's loop is alive.
pub fn watchdog() {
    send(&[NotifyState::Watchdog]);
}

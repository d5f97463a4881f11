//! The sessions task: guard rounds at start, every interval, when a sessions file changes, and
//! afresh on every config change; each round's reports published as [`HousekeepingStatus`].

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, watch};
use tokio::time::{sleep_until, Instant};
use tokio_util::sync::CancellationToken;

use super::sessions::{Mode, SessionsError, SessionsGuard, StoreAction, StoreReport};
use super::{session_stores, HousekeepingStatus, SessionStore};

/// Runs the guard at start, on every `trigger` (file changes, wired by the caller) and every
/// `interval`, until `shutdown`. File work runs on the blocking pool. Each round replaces
/// `status.stores`; actions add to `sessions_cleared_total` (sessions removed) and set
/// `last_action`.
pub async fn run_sessions_guard<F>(
    guard: SessionsGuard,
    stores: F,
    interval: Duration,
    mut trigger: mpsc::Receiver<()>,
    status: watch::Sender<HousekeepingStatus>,
    shutdown: CancellationToken,
) where
    F: Fn() -> Vec<SessionStore>,
{
    let guard = Arc::new(guard);
    let mut trigger_open = true;
    loop {
        let list = stores();
        let round_guard = Arc::clone(&guard);
        let round = tokio::task::spawn_blocking(move || {
            list.into_iter()
                .map(|store| {
                    let result = round_guard.check(&store, Mode::Apply);
                    (store, result)
                })
                .collect::<Vec<_>>()
        })
        .await;
        match round {
            Ok(results) => publish(&status, results),
            Err(e) => tracing::error!("sessions guard round failed: {e}"),
        }

        let next = Instant::now() + interval;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                got = trigger.recv(), if trigger_open => match got {
                    Some(()) => {
                        // A burst of changes is one round.
                        while trigger.try_recv().is_ok() {}
                        break;
                    }
                    None => trigger_open = false,
                },
                _ = sleep_until(next) => break,
            }
        }
    }
}

fn publish(
    status: &watch::Sender<HousekeepingStatus>,
    results: Vec<(SessionStore, Result<StoreReport, SessionsError>)>,
) {
    let previous = status.borrow().stores.clone();
    let mut removed_total = 0u64;
    let mut sentences = Vec::new();
    let reports: Vec<StoreReport> = results
        .into_iter()
        .map(|(store, result)| {
            let before = previous.iter().find(|r| r.path == store.path);
            match result {
                Ok(report) => {
                    removed_total += report.sessions_removed() as u64;
                    // An invalid file is reported every round; tell a person once.
                    let repeated = before
                        .is_some_and(|b| b.action == report.action && b.backup == report.backup)
                        && matches!(report.action, Some(StoreAction::InvalidJson { .. }));
                    if let (Some(sentence), false) = (report.describe(), repeated) {
                        tracing::warn!("sessions guard: {sentence}");
                        sentences.push(sentence);
                    }
                    report
                }
                Err(e) => {
                    let message = e.to_string();
                    if before.and_then(|b| b.error.as_deref()) != Some(message.as_str()) {
                        tracing::warn!("sessions guard: {message}");
                    }
                    let mut report = StoreReport::new(&store);
                    report.error = Some(message);
                    report
                }
            }
        })
        .collect();
    status.send_modify(|s| {
        s.stores = reports;
        s.sessions_cleared_total += removed_total;
        if !sentences.is_empty() {
            let now = humantime::format_rfc3339_seconds(SystemTime::now());
            s.last_action = Some(format!("{now}: {}", sentences.join("; ")));
        }
    });
}

/// The sessions task: runs [`run_sessions_guard`] with the settings of the snapshot in force,
/// a round whenever a sessions file changes, and starts afresh (with a round) on every config
/// change, so edited `sessions` settings and store paths apply at once.
pub async fn run_sessions(
    mut config: tokio::sync::watch::Receiver<std::sync::Arc<crate::config::Snapshot>>,
    backups: std::path::PathBuf,
    status: tokio::sync::watch::Sender<HousekeepingStatus>,
    shutdown: tokio_util::sync::CancellationToken,
) {
    use std::time::Duration;

    use crate::watch::FileWatcher;

    let (trigger_tx, mut trigger_rx) = tokio::sync::mpsc::channel(4);
    let watcher = match FileWatcher::new(Duration::from_millis(500)) {
        Ok((w, mut changed)) => {
            let trigger = trigger_tx.clone();
            tokio::spawn(async move {
                while changed.recv().await.is_some() {
                    let _ = trigger.try_send(());
                }
            });
            Some(w)
        }
        Err(e) => {
            tracing::warn!("cannot watch sessions files ({e}); they are checked every interval");
            None
        }
    };
    loop {
        let snapshot = config.borrow_and_update().clone();
        let stores = session_stores(&snapshot);
        if let Some(w) = &watcher {
            w.set_files(stores.iter().map(|s| s.path.clone()).collect());
        }
        let guard = SessionsGuard::new(backups.clone(), snapshot.own.sessions.clone());
        let round = shutdown.child_token();
        let (inner_tx, inner_rx) = tokio::sync::mpsc::channel(4);
        let guard_run = run_sessions_guard(
            guard,
            move || stores.clone(),
            snapshot.own.sessions.interval,
            inner_rx,
            status.clone(),
            round.clone(),
        );
        tokio::pin!(guard_run);
        loop {
            tokio::select! {
                _ = &mut guard_run => return,
                Some(()) = trigger_rx.recv() => { let _ = inner_tx.try_send(()); }
                changed = config.changed() => {
                    if changed.is_err() { return }
                    round.cancel();
                    (&mut guard_run).await;
                    break;
                }
            }
        }
    }
}

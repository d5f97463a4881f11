//! Housekeeping (SPEC §6): [`PortReclaimer`] frees the gateway port from a stale openclawd or
//! OpenClaw gateway before binding; [`SessionsGuard`] keeps OpenClaw's `sessions.json` from
//! wedging agents ("Context overflow", oversized files).

mod port;
mod sessions;

use serde::{Deserialize, Serialize};

pub use port::{Holder, PortError, PortReclaimer, Reclaim};
pub use sessions::{
    run_sessions_guard, session_stores, Mode, SessionStore, SessionsError, SessionsGuard,
    StoreAction, StoreReport, WriteStep, BACKUPS_KEPT,
};

/// The `housekeeping` block of `/status`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HousekeepingStatus {
    /// Sessions removed from stores (overflowing, cleared or pruned entries) since start.
    pub sessions_cleared_total: u64,
    /// Stale holders stopped to free the gateway port since start.
    pub port_reclaims_total: u64,
    /// The latest thing housekeeping did, as a sentence with its UTC time.
    pub last_action: Option<String>,
    /// The latest round's report for every sessions store.
    pub stores: Vec<StoreReport>,
}

impl HousekeepingStatus {
    /// Counts a [`PortReclaimer::free_port`] result (`AlreadyFree` changes nothing).
    pub fn record_reclaim(&mut self, port: u16, reclaim: &Reclaim) {
        if let Reclaim::Reclaimed { pid, what, why } = reclaim {
            self.port_reclaims_total += 1;
            let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now());
            self.last_action = Some(format!(
                "{now}: stopped {what} (pid {pid}) holding port {port}: {why}"
            ));
        }
    }
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

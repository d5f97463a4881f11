//! Housekeeping (SPEC §6): [`PortReclaimer`] frees the gateway port from a stale openclawd or
//! OpenClaw gateway before binding; [`SessionsGuard`] keeps OpenClaw's `sessions.json` from
//! wedging agents ("Context overflow", oversized files).

mod port;
mod sessions;
mod store_lock;
mod task;

use serde::{Deserialize, Serialize};

pub use port::{Holder, PortError, PortReclaimer, Reclaim};
pub use sessions::{
    session_stores, Mode, SessionStore, SessionsError, SessionsGuard, StoreAction, StoreReport,
    WriteStep, BACKUPS_KEPT,
};
pub use task::{run_sessions, run_sessions_guard};

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

//! What the gateway's handlers share: the daemon's published state (read-only here), and what
//! the gateway itself owns — model cooldowns and the upstream HTTP clients.

use std::ops::Deref;
use std::sync::Arc;

use super::providers::Upstreams;
use super::router::Cooldowns;
use crate::state::DaemonState;

pub struct GatewayState {
    pub daemon: Arc<DaemonState>,
    pub cooldowns: Cooldowns,
    pub upstreams: Upstreams,
}

impl GatewayState {
    pub fn new(daemon: Arc<DaemonState>) -> Result<GatewayState, reqwest::Error> {
        let upstreams = Upstreams::new(daemon.metrics.clone())?;
        Ok(GatewayState {
            daemon,
            cooldowns: Cooldowns::default(),
            upstreams,
        })
    }
}

/// Handlers read the daemon's state through the gateway's (`state.config`, `state.catalog`).
impl Deref for GatewayState {
    type Target = DaemonState;

    fn deref(&self) -> &DaemonState {
        &self.daemon
    }
}

/// Ollama is back: its models should not wait out a cooldown from the outage. Runs until
/// `shutdown` or until the supervisor is gone.
pub async fn clear_cooldowns_on_recovery(
    state: Arc<GatewayState>,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let mut ollama = state.ollama.clone();
    let mut last_epoch = ollama.borrow_and_update().healthy_epoch;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            changed = ollama.changed() => if changed.is_err() { return },
        }
        let (epoch, base_url) = {
            let status = ollama.borrow_and_update();
            (status.healthy_epoch, status.base_url.clone())
        };
        if epoch == last_epoch {
            continue;
        }
        last_epoch = epoch;
        let catalog = state.catalog.load();
        let served_by_it = |provider: &str| {
            catalog
                .providers
                .get(provider)
                .is_some_and(|p| p.base_url.trim_end_matches('/') == base_url.trim_end_matches('/'))
        };
        state
            .cooldowns
            .clear_where(|r| catalog.get(r).is_some_and(|m| served_by_it(&m.provider)));
    }
}

//! What the gateway's handlers share: the current snapshot and catalogue (swapped atomically
//! by the daemon), cooldowns, metrics, upstream clients, and the other components' status.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::{ArcSwap, ArcSwapOption};
use tokio::sync::watch;

use super::metrics::Metrics;
use super::providers::Upstreams;
use super::requests::RequestLog;
use super::router::Cooldowns;
use crate::config::Snapshot;
use crate::discovery::{build_catalog, Catalog, Discovery};
use crate::housekeeping::HousekeepingStatus;
use crate::ollama::OllamaStatus;

pub struct GatewayState {
    pub started_at: SystemTime,
    pub listen: SocketAddr,
    pub config: ArcSwap<Snapshot>,
    /// The last reload's error (file:line and what to do); `None` when the config is good.
    pub config_error: ArcSwapOption<String>,
    pub catalog: ArcSwap<Catalog>,
    /// The last successful discovery, kept so a config swap can rebuild the catalogue at once.
    pub last_discovery: ArcSwapOption<Discovery>,
    pub cooldowns: Cooldowns,
    pub metrics: Arc<Metrics>,
    pub upstreams: Upstreams,
    pub ollama: watch::Receiver<OllamaStatus>,
    pub housekeeping: watch::Receiver<HousekeepingStatus>,
    /// The recent requests the monitoring page shows (no bodies, no keys).
    pub requests: Arc<RequestLog>,
    /// Cancelled when the daemon stops: long-lived responses (the page's `/events`) end so the
    /// drain does not wait for them.
    pub stopping: tokio_util::sync::CancellationToken,
}

impl GatewayState {
    /// Rebuilds the catalogue from the current snapshot and the last discovery.
    pub fn rebuild_catalog(&self, discovery_error: Option<String>) {
        let snapshot = self.config.load();
        let discovery = self.last_discovery.load_full();
        let catalog = build_catalog(
            &snapshot,
            discovery.as_deref(),
            discovery_error,
            Some(self.listen),
        );
        self.catalog.store(Arc::new(catalog));
    }

    /// Whether a model of `provider` is served by the supervised Ollama and it is down.
    pub fn local_ollama_down(&self, base_url: &str) -> Option<String> {
        let status = self.ollama.borrow();
        if status.base_url.trim_end_matches('/') != base_url.trim_end_matches('/') {
            return None;
        }
        (status.state != crate::ollama::OllamaState::Running)
            .then(|| format!("Ollama is not running (state {})", status.state.as_str()))
    }
}

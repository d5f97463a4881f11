//! [`DaemonState`]: what the daemon's components publish, gathered where the gateway, the
//! status report and the service manager read it. Each field has one writer: the reload loop
//! (`config`, `config_error`), discovery (`catalog`), the Ollama supervisor (`ollama`), the
//! sessions guard (`housekeeping`). Readers never write.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwapOption;
use tokio::sync::watch;

use crate::config::Published;
use crate::discovery::CatalogStore;
use crate::housekeeping::HousekeepingStatus;
use crate::metrics::Metrics;
use crate::ollama::{InFlight, OllamaState, OllamaStatus};

pub struct DaemonState {
    pub started_at: SystemTime,
    /// The address the gateway is bound to (a changed `gateway.port` applies after a restart).
    pub listen: SocketAddr,
    pub config: Published,
    /// The last reload's error (file:line and what to do); `None` when the config is good.
    pub config_error: ArcSwapOption<String>,
    pub catalog: Arc<CatalogStore>,
    pub metrics: Arc<Metrics>,
    pub ollama: watch::Receiver<OllamaStatus>,
    /// Requests open to the supervised Ollama: a restart openclawd decides waits for them.
    pub ollama_in_flight: InFlight,
    pub housekeeping: watch::Receiver<HousekeepingStatus>,
}

impl DaemonState {
    /// Rebuilds the catalogue from the current snapshot and the last discovery.
    pub fn rebuild_catalog(&self, discovery_error: Option<String>) {
        self.catalog.rebuild(&self.config.load(), discovery_error);
    }

    /// Whether `base_url` is the supervised Ollama's.
    pub fn is_supervised_ollama(&self, base_url: &str) -> bool {
        self.ollama.borrow().base_url.trim_end_matches('/') == base_url.trim_end_matches('/')
    }

    /// Why the supervised Ollama at `base_url` cannot answer now, if it is that one and down.
    pub fn local_ollama_down(&self, base_url: &str) -> Option<String> {
        let status = self.ollama.borrow();
        if status.base_url.trim_end_matches('/') != base_url.trim_end_matches('/') {
            return None;
        }
        (status.state != OllamaState::Running)
            .then(|| format!("Ollama is not running (state {})", status.state.as_str()))
    }
}

//! The discovery task: keeps the published [`Catalog`] current — at start, when the supervised
//! Ollama becomes healthy, at once on every config change (then again after a rediscovery), when
//! Ollama's models directory changes (a pull or rm), and every `discovery.interval`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::{ArcSwap, ArcSwapOption, Guard};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{build_catalog, catalog::discovery_enabled, discover, Catalog, Discovery};
use crate::config::Snapshot;
use crate::metrics::{Metrics, ResultLabels};
use crate::ollama::{OllamaState, OllamaStatus};
use crate::watch::FileWatcher;

/// The published catalogue, and the last successful discovery it was built from (kept so a
/// config change rebuilds the catalogue at once, without asking Ollama again).
pub struct CatalogStore {
    current: ArcSwap<Catalog>,
    last_discovery: ArcSwapOption<Discovery>,
    /// The gateway's own address: a provider pointing at it is not a real upstream.
    listen: Option<SocketAddr>,
}

impl CatalogStore {
    /// A store whose first catalogue comes from `snapshot` alone (before any discovery).
    pub fn new(snapshot: &Snapshot, listen: Option<SocketAddr>) -> CatalogStore {
        CatalogStore {
            current: ArcSwap::from_pointee(build_catalog(snapshot, None, None, listen)),
            last_discovery: ArcSwapOption::empty(),
            listen,
        }
    }

    pub fn load(&self) -> Guard<Arc<Catalog>> {
        self.current.load()
    }

    pub fn load_full(&self) -> Arc<Catalog> {
        self.current.load_full()
    }

    pub fn last_discovery(&self) -> Option<Arc<Discovery>> {
        self.last_discovery.load_full()
    }

    /// Rebuilds the catalogue from `snapshot` and the last successful discovery.
    pub fn rebuild(&self, snapshot: &Snapshot, discovery_error: Option<String>) {
        let discovery = self.last_discovery.load_full();
        let catalog = build_catalog(snapshot, discovery.as_deref(), discovery_error, self.listen);
        self.current.store(Arc::new(catalog));
    }

    fn record(&self, discovery: Discovery) {
        self.last_discovery.store(Some(Arc::new(discovery)));
    }
}

/// What the discovery task listens to and writes.
pub struct DiscoveryTask {
    pub config: watch::Receiver<Arc<Snapshot>>,
    pub ollama: watch::Receiver<OllamaStatus>,
    pub store: Arc<CatalogStore>,
    pub metrics: Arc<Metrics>,
}

/// Why a round runs.
enum Trigger {
    Start,
    ConfigChanged,
    OllamaHealthy,
    ModelsDirChanged,
    Interval,
}

impl DiscoveryTask {
    /// Runs until `shutdown`. A failed round keeps the last catalogue and says why.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let client = match reqwest::Client::builder().no_proxy().build() {
            Ok(c) => Some(c),
            Err(e) => {
                // The same builder would fail the same way: the catalogue still follows the
                // config, discovery says why it cannot run.
                tracing::error!("discovery disabled: cannot build an HTTP client: {e}");
                None
            }
        };
        let mut last_epoch = self.ollama.borrow().healthy_epoch;
        // Ollama's models directory: a pull or rm shows up without waiting for the interval.
        let (dir_watcher, mut dir_rx) = match FileWatcher::new(Duration::from_millis(500)) {
            Ok((w, rx)) => (Some(w), Some(rx)),
            Err(e) => {
                tracing::warn!("cannot watch Ollama's models directory ({e})");
                (None, None)
            }
        };
        let mut watched_dir: Option<PathBuf> = None;
        let mut trigger = Trigger::Start;
        self.config.mark_unchanged();
        loop {
            if !matches!(trigger, Trigger::Start) {
                let interval = self.config.borrow().own.discovery.interval;
                trigger = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    changed = self.config.changed() => match changed {
                        Ok(()) => Trigger::ConfigChanged,
                        Err(_) => return,
                    },
                    Some(()) = recv_or_pending(&mut dir_rx) => Trigger::ModelsDirChanged,
                    _ = tokio::time::sleep(interval) => Trigger::Interval,
                    changed = self.ollama.changed() => match changed {
                        Ok(()) => {
                            let epoch = self.ollama.borrow().healthy_epoch;
                            if epoch == last_epoch { continue }
                            last_epoch = epoch;
                            Trigger::OllamaHealthy
                        }
                        // The supervisor is gone; the daemon is stopping or failing over it.
                        Err(_) => return,
                    },
                };
            }
            let snapshot = self.config.borrow_and_update().clone();
            match trigger {
                // The new routing applies at once; the rediscovery below refines it.
                Trigger::ConfigChanged => {
                    let error = self.store.load().discovery_error.clone();
                    self.store.rebuild(&snapshot, error);
                }
                Trigger::ModelsDirChanged => {
                    tracing::info!("Ollama's models changed on disk; rediscovering")
                }
                Trigger::Start | Trigger::OllamaHealthy | Trigger::Interval => {}
            }
            trigger = Trigger::Interval;

            // Follow the models directory (re-pointed if OLLAMA_MODELS changed).
            let wanted = models_dir(&snapshot).filter(|d| d.is_dir() && snapshot.ollama.loopback);
            if let Some(w) = &dir_watcher {
                if watched_dir != wanted {
                    if let Some(old) = &watched_dir {
                        w.unwatch_tree(old);
                    }
                    if let Some(d) = &wanted {
                        w.watch_tree(d.clone());
                    }
                    watched_dir = wanted;
                }
            }
            let error = match &client {
                Some(client) => self.round(client, &snapshot).await,
                None => Some("Failed to discover Ollama models: no HTTP client".into()),
            };
            self.store.rebuild(&snapshot, error);
        }
    }

    /// One discovery round; the error to show, if any.
    async fn round(&self, client: &reqwest::Client, snapshot: &Snapshot) -> Option<String> {
        if !discovery_enabled(snapshot) {
            return None;
        }
        // While the supervised Ollama is (re)starting, asking it would only fail: wait for its
        // healthy epoch instead of reporting a failure.
        let starting = {
            let o = self.ollama.borrow();
            same_server(&o.base_url, &snapshot.ollama.base_url) && o.state != OllamaState::Running
        };
        if starting {
            let state = self.ollama.borrow().state;
            return Some(format!(
                "Failed to discover Ollama models: Ollama is {} at {}; discovery runs when it is up",
                state.as_str(),
                snapshot.ollama.base_url
            ));
        }
        let result = discover(
            client,
            &snapshot.ollama.base_url,
            &snapshot.ollama.host_port(),
            &snapshot.own.discovery,
        )
        .await;
        let outcome = if result.is_ok() { "ok" } else { "error" };
        self.metrics
            .discovery_runs
            .get_or_create(&ResultLabels {
                result: outcome.into(),
            })
            .inc();
        match result {
            Ok(d) => {
                if self.store.last_discovery().as_deref() != Some(&d) {
                    tracing::info!(models = d.models.len(), "discovered Ollama models");
                }
                self.store.record(d);
                None
            }
            Err(e) => {
                let msg = e.to_string();
                if self.store.load().discovery_error.as_deref() != Some(msg.as_str()) {
                    tracing::warn!("{msg}");
                }
                Some(msg)
            }
        }
    }
}

fn same_server(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}

async fn recv_or_pending(rx: &mut Option<tokio::sync::mpsc::Receiver<()>>) -> Option<()> {
    match rx.as_mut() {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Ollama's models directory: `OLLAMA_MODELS`, else `~/.ollama/models`.
fn models_dir(s: &Snapshot) -> Option<PathBuf> {
    if let Some(d) = s.env.get("OLLAMA_MODELS").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(d));
    }
    s.env
        .get("HOME")
        .map(|h| Path::new(h).join(".ollama").join("models"))
}

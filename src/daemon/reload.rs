//! The reload loop: config files change (or SIGHUP) → load and check everything → publish one
//! new snapshot. It does not know who listens: every subsystem subscribes to
//! [`crate::config::Published`] and derives its own settings. A failed load or a snapshot that
//! would lower security changes nothing but `config.error`.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;

use crate::config::{self, Overrides};
use crate::state::DaemonState;
use crate::watch::FileWatcher;

pub(super) async fn run(
    state: Arc<DaemonState>,
    overrides: Overrides,
    env: BTreeMap<String, String>,
    shutdown: CancellationToken,
) {
    let (watcher, mut changed) = match FileWatcher::new(crate::watch::DEFAULT_DEBOUNCE) {
        Ok((w, rx)) => {
            w.set_files(state.config.load().paths.watched_files());
            (Some(w), Some(rx))
        }
        Err(e) => {
            tracing::warn!("cannot watch the config files ({e}); edits apply on SIGHUP only");
            (None, None)
        }
    };
    let mut hup = signal(SignalKind::hangup()).ok();
    // An edit made between the load and the watch (the daemon starting, or this task being
    // restarted) was not seen by the watcher: look once.
    let mut edited_before_watching = {
        let current = state.config.load();
        edited_since(&current.paths.watched_files(), current.loaded_at)
    };
    loop {
        if std::mem::take(&mut edited_before_watching) {
            tracing::info!("the configuration changed while openclawd was starting; reloading");
        } else {
            tokio::select! {
            _ = shutdown.cancelled() => return,
            Some(()) = async { match changed.as_mut() { Some(rx) => rx.recv().await, None => std::future::pending().await } } => {},
            _ = async { match hup.as_mut() { Some(h) => { h.recv().await; }, None => std::future::pending::<()>().await } } => {
                tracing::info!("SIGHUP: reloading the configuration");
            }
            }
        }
        // Reading and parsing (up to the 16 MiB include budget) is blocking work.
        let prepared = {
            let (state, overrides, env) = (state.clone(), overrides.clone(), env.clone());
            tokio::task::spawn_blocking(move || prepare(&state, &overrides, &env)).await
        };
        let prepared = prepared.unwrap_or_else(|e| Err(format!("the config loader failed: {e}")));
        match prepared {
            Ok(next) => {
                let generation = next.generation;
                let files = next.paths.watched_files();
                crate::service::notify::reloading();
                state.config.publish(Arc::new(next));
                if state.config_error.swap(None).is_some() {
                    tracing::info!("configuration fixed; the error is cleared");
                }
                crate::service::notify::reloaded();
                tracing::info!(generation, "configuration reloaded");
                if let Some(w) = &watcher {
                    w.set_files(files);
                }
            }
            Err(msg) => {
                let same = state
                    .config_error
                    .load()
                    .as_deref()
                    .is_some_and(|old| *old == msg);
                if !same {
                    tracing::error!("config not reloaded, keeping the last good one: {msg}");
                    state.config_error.store(Some(Arc::new(msg)));
                }
            }
        }
    }
}

/// All the fallible work of a reload: load, then refuse what would lower security.
fn prepare(
    state: &DaemonState,
    overrides: &Overrides,
    env: &BTreeMap<String, String>,
) -> Result<config::Snapshot, String> {
    let mut next = config::load(overrides, env).map_err(|e| e.to_string())?;
    if let Some(why) = super::exposed_without_token(&next, state.listen) {
        return Err(format!(
            "{why} The previous token stays in force until this is fixed."
        ));
    }
    next.generation = state.config.load().generation + 1;
    for w in &next.warnings {
        tracing::warn!("{w}");
    }
    Ok(next)
}

/// Whether any of `files` was modified after `since`.
fn edited_since(files: &[std::path::PathBuf], since: std::time::SystemTime) -> bool {
    files.iter().any(|f| {
        std::fs::metadata(f)
            .and_then(|m| m.modified())
            .is_ok_and(|t| t > since)
    })
}

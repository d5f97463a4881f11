//! Upgrades: the installed binary is watched (and re-checked every 10 min); a server running
//! another version is restarted onto it — ours gracefully, an adopted one through its manager
//! or replaced by ours when it is a plain `ollama serve` — or the exact fix is reported.

use std::path::Path;

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::spawn::resolve_bin;
use super::stop::{adopted_gone, TaskDone};
use super::{AfterStop, Server, Supervisor, WaitCause};
use crate::ollama::managers::{self, Afterwards, Manager};
use crate::ollama::{process, version, Management};
use crate::procinfo::ProcessRef;
use crate::watch::{FileWatcher, DEFAULT_DEBOUNCE};
use nix::sys::signal::Signal;

/// Watches the binary (and its symlink target): package managers replace it by rename.
pub(super) fn watch_binary(bin: &Path) -> Option<(FileWatcher, mpsc::Receiver<()>)> {
    let path = resolve_bin(bin)?;
    let mut targets = vec![path.clone()];
    if let Ok(real) = std::fs::canonicalize(&path) {
        if real != path {
            targets.push(real);
        }
    }
    match FileWatcher::new(DEFAULT_DEBOUNCE) {
        Ok((watcher, changes)) => {
            watcher.set_files(targets);
            Some((watcher, changes))
        }
        Err(e) => {
            tracing::warn!(
                "cannot watch {} for Ollama upgrades: {e}; the version is still checked periodically",
                path.display()
            );
            None
        }
    }
}

impl Supervisor {
    /// Runs `<bin> --version`; true when the answer changed.
    pub(super) async fn refresh_binary_version(&mut self) -> bool {
        let before = self.binary_version.clone();
        match version::binary_version(&self.settings.bin).await {
            Ok(v) => self.binary_version = Some(v),
            Err(e) => {
                if before.is_some() || self.binary_version.is_none() {
                    tracing::warn!("{e}");
                }
                self.binary_version = None;
            }
        }
        let changed = before != self.binary_version;
        if changed {
            if let Some(v) = &self.binary_version {
                tracing::info!(
                    "installed Ollama binary {} is version {v}",
                    self.settings.bin.display()
                );
            }
        }
        changed
    }

    pub(super) async fn on_binary_changed(&mut self) {
        let changed = self.refresh_binary_version().await;
        if let Server::Waiting { due, cause } = &mut self.server {
            if changed && *cause != WaitCause::AdoptGrace {
                // Waiting to retry after failures: a new binary deserves an immediate try.
                self.restarts.reset_backoff();
                due.at = Instant::now();
            }
        }
        self.compare_versions();
    }

    pub(super) async fn check_versions(&mut self) {
        self.refresh_binary_version().await;
        self.compare_versions();
    }

    /// Acts on a server/binary version difference (exact string comparison, like Ollama).
    pub(super) fn compare_versions(&mut self) {
        let (Some(server), Some(binary)) = (self.running_version(), self.binary_version.clone())
        else {
            return;
        };
        if server == binary {
            if self.mismatch.take().is_some() {
                tracing::info!("Ollama server and binary versions agree again ({server})");
            }
            return;
        }
        let reason = format!("version mismatch: server {server}, binary {binary}");
        match &self.server {
            Server::Remote { .. } => {
                let advice = format!(
                    "the Ollama server at {} runs {server} while the local binary is {binary}: upgrade or restart Ollama on that host",
                    self.settings.address.base_url
                );
                self.report_mismatch(&reason, advice);
            }
            Server::Owned(_) => {
                if self.restarted_for_binary.as_deref() == Some(binary.as_str()) {
                    let advice = format!(
                        "{} reports version {binary} but the server it starts reports {server}: reinstall Ollama",
                        self.settings.bin.display()
                    );
                    return self.report_mismatch(&reason, advice);
                }
                self.restarted_for_binary = Some(binary);
                self.mismatch = None;
                self.graceful_restart(reason);
            }
            Server::Adopted { .. } => self.fix_adopted_mismatch(reason, binary, server),
            _ => {}
        }
    }

    /// An adopted local server runs an old version: restart it through whoever runs it, or
    /// replace a plain same-user `ollama serve` with ours; otherwise tell the user the command.
    fn fix_adopted_mismatch(&mut self, reason: String, binary: String, server_version: String) {
        let Server::Adopted { pid: adopted, .. } = &self.server else {
            return;
        };
        let pid = managers::serving_pid(self.settings.address.port).or(*adopted);
        let manager = pid.map(managers::identify).unwrap_or(Manager::Unknown);
        let afterwards = if self.settings.manage {
            Afterwards::OpenclawdStartsIt
        } else {
            Afterwards::UserStartsIt
        };
        let advice = manager.fix_command(pid, afterwards);
        let retried = self.restarted_for_binary.as_deref() == Some(binary.as_str());
        if retried || !self.settings.manage {
            return self.report_mismatch(&reason, advice);
        }
        self.restarted_for_binary = Some(binary);
        if let Some(argv) = manager.restart_argv() {
            if let Server::Adopted {
                manager_restarting, ..
            } = &mut self.server
            {
                *manager_restarting = true;
            }
            self.tasks.spawn(async move {
                let result = managers::run_restart(&argv).await;
                TaskDone::ManagerRestart {
                    argv,
                    result,
                    reason,
                    advice,
                }
            });
            return;
        }
        let Manager::Plain(pid) = manager else {
            return self.report_mismatch(&reason, advice);
        };
        // Pinned now: the process signalled is the one identified, or none.
        let server = match ProcessRef::inspect(pid) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!("{e}");
                return self.report_mismatch(&reason, advice);
            }
        };
        tracing::info!(
            "{reason}: replacing the adopted {} with our own Ollama",
            process::describe(pid)
        );
        if let Err(e) = server.signal(Signal::SIGTERM) {
            tracing::warn!("{e}");
            return self.report_mismatch(&reason, advice);
        }
        self.tasks.spawn(adopted_gone(server));
        self.probe = None;
        self.server = Server::Stopping {
            pid,
            management: Management::Adopted,
            then: AfterStop::ReplaceAdopted {
                reason,
                advice,
                version: Some(server_version),
            },
            record_dir: None,
        };
    }

    pub(super) fn report_mismatch(&mut self, reason: &str, command: String) {
        if self.mismatch.as_deref() != Some(command.as_str()) {
            tracing::warn!("{reason}; openclawd cannot restart this Ollama itself, run: {command}");
        }
        self.mismatch = Some(command);
    }
}

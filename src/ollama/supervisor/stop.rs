//! Stopping: graceful restarts (drain, then stop, then start), stops and kills run as tasks
//! beside the loop, shutdown and handover, and reconfiguration. Nothing here waits on the loop:
//! a drain, a stop grace or a manager command ends in a [`TaskDone`] event.

use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::{timeout, Instant};

use super::{AfterStop, Health, Owned, Server, Supervisor};
use crate::ollama::client::OllamaClient;
use crate::ollama::record;
use crate::ollama::signals;
use crate::ollama::{Management, ShutdownKind, SupervisorSettings};
use crate::procinfo::ProcessRef;

/// SIGTERM → SIGKILL grace for an owned server (and for a plain adopted one we replace).
pub(super) const STOP_GRACE: Duration = Duration::from_secs(10);

/// Work that ran beside the loop, reporting back.
pub(super) enum TaskDone {
    /// The requests in flight finished (`idle`), or the drain bound passed.
    Drained { idle: bool },
    /// A stop of `pid` ended: `gone` unless it outlived every signal.
    Stopped { pid: u32, gone: bool },
    /// A manager's restart command of an adopted server ended.
    ManagerRestart {
        argv: Vec<String>,
        result: Result<(), String>,
        reason: String,
        advice: String,
    },
}

impl Supervisor {
    /// A restart openclawd decided (an upgrade, a config change): `restarting` is published
    /// at once (the gateway holds new requests), the requests in flight to this server get
    /// up to `drain_timeout` to finish, then it is stopped and `then` follows.
    pub(super) fn drain_then(&mut self, owned: Owned, then: AfterStop) {
        let gauge = self.in_flight.clone();
        let limit = self.settings.drain_timeout;
        let busy = gauge.count();
        if busy > 0 {
            tracing::info!(
                "waiting up to {:.0} s for {busy} request(s) in flight to Ollama (pid {}) to finish",
                limit.as_secs_f64(),
                owned.pid()
            );
        }
        let drain = self.tasks.spawn(async move {
            TaskDone::Drained {
                idle: gauge.wait_idle(limit).await,
            }
        });
        self.server = Server::Draining { owned, then, drain };
    }

    /// Hands our server to a stop task (SIGTERM, `grace`, SIGKILL; SIGKILL at once for a zero
    /// grace); `then` follows its completion.
    pub(super) fn stop_owned(&mut self, owned: Owned, grace: Duration, then: AfterStop) {
        let pid = owned.pid();
        let record_dir = Some(owned.record_dir.clone());
        self.tasks.spawn(stop_task(owned, grace));
        self.probe = None;
        self.server = Server::Stopping {
            pid,
            management: Management::Owned,
            then,
            record_dir,
        };
    }

    pub(super) async fn on_task_done(&mut self, done: TaskDone) {
        match done {
            TaskDone::Drained { idle } => {
                if !matches!(self.server, Server::Draining { .. }) {
                    return; // it exited during its drain and was handled then
                }
                let Server::Draining { owned, then, .. } =
                    std::mem::replace(&mut self.server, Server::Deciding)
                else {
                    return;
                };
                if !idle {
                    tracing::warn!(
                        "{} request(s) to Ollama still in flight after {:.0} s; restarting it anyway",
                        self.in_flight.count(),
                        self.settings.drain_timeout.as_secs_f64()
                    );
                }
                self.stop_owned(owned, STOP_GRACE, then);
            }
            TaskDone::Stopped { pid, gone } => {
                if !matches!(self.server, Server::Stopping { pid: p, .. } if p == pid) {
                    return;
                }
                let Server::Stopping {
                    then, record_dir, ..
                } = std::mem::replace(&mut self.server, Server::Deciding)
                else {
                    return;
                };
                if let Some(dir) = record_dir {
                    let _ = record::remove(&dir);
                }
                self.after_stop(pid, gone, then).await;
            }
            TaskDone::ManagerRestart {
                argv,
                result,
                reason,
                advice,
            } => {
                let Server::Adopted {
                    health,
                    manager_restarting,
                    ..
                } = &mut self.server
                else {
                    return;
                };
                *manager_restarting = false;
                match result {
                    Ok(()) => {
                        tracing::info!(
                            "{reason}: restarted the adopted Ollama with `{}`",
                            argv.join(" ")
                        );
                        // A new server: its first answer is a new healthy epoch.
                        *health = Health::Unknown;
                        self.restarts.count_restart(Some(reason));
                        self.mismatch = None;
                        self.schedule_probe(Instant::now());
                    }
                    Err(e) => {
                        tracing::warn!("`{}` failed: {e}", argv.join(" "));
                        self.report_mismatch(&reason, advice);
                    }
                }
            }
        }
    }

    pub(super) async fn after_stop(&mut self, pid: u32, gone: bool, then: AfterStop) {
        match then {
            AfterStop::Respawn => self.spawn_owned(),
            AfterStop::Crashed(reason) => self.crashed(reason),
            AfterStop::Redecide => {
                if let Some(f) = self.log_follower.take() {
                    f.abort();
                }
                self.begin().await;
            }
            AfterStop::ReplaceAdopted {
                reason,
                advice,
                version,
            } => {
                if gone {
                    self.restarts.history.last_reason = Some(reason);
                    self.mismatch = None;
                    self.spawn_owned();
                } else {
                    self.report_mismatch(&reason, advice);
                    self.server = Server::Adopted {
                        pid: Some(pid),
                        health: version.map_or(Health::Unknown, Health::Up),
                        manager_restarting: false,
                    };
                }
            }
            AfterStop::Shutdown(done) => self.finish_shutdown(done),
        }
    }

    /// Restart our server onto the installed binary (not a crash: no backoff), gracefully.
    pub(super) fn graceful_restart(&mut self, reason: String) {
        let Server::Owned(owned) = std::mem::replace(&mut self.server, Server::Deciding) else {
            return;
        };
        tracing::info!("restarting Ollama: {reason}");
        self.restarts.history.last_reason = Some(reason);
        self.drain_then(owned, AfterStop::Respawn);
    }

    pub(super) fn on_shutdown(&mut self, kind: ShutdownKind, done: Option<oneshot::Sender<()>>) {
        if let Some(t) = self.preload_task.take() {
            t.abort();
        }
        let mut dones: Vec<_> = done.into_iter().collect();
        match (kind, std::mem::replace(&mut self.server, Server::Deciding)) {
            (
                _,
                Server::Stopping {
                    pid,
                    management,
                    then,
                    record_dir,
                },
            ) => {
                // A stop is under way: it finishes, then we are done.
                if let AfterStop::Shutdown(earlier) = then {
                    dones.extend(earlier);
                }
                self.server = Server::Stopping {
                    pid,
                    management,
                    then: AfterStop::Shutdown(dones),
                    record_dir,
                };
            }
            (kind, Server::Draining { owned, drain, .. }) => {
                drain.abort();
                self.server = Server::Owned(owned);
                self.on_shutdown(kind, None);
                if let Server::Stopping {
                    then: AfterStop::Shutdown(all),
                    ..
                } = &mut self.server
                {
                    all.extend(dones);
                } else {
                    for d in dones {
                        let _ = d.send(());
                    }
                }
            }
            (ShutdownKind::Stop, Server::Owned(owned)) => {
                self.stop_owned(owned, STOP_GRACE, AfterStop::Shutdown(dones));
            }
            (ShutdownKind::Handover, Server::Owned(mut owned)) => {
                tracing::info!(
                    "leaving our Ollama (pid {}) running for the next openclawd",
                    owned.pid()
                );
                // Dropping the `Child` leaves the process running (tokio reaps it if it exits
                // while we still live).
                if let Some(w) = owned.waiter.take() {
                    w.abort();
                }
                self.finish_shutdown(dones);
            }
            (kind, Server::Waiting { .. }) => {
                // After a crash the record names the dead server and keeps the history for
                // the next openclawd; a stop ends that.
                if kind == ShutdownKind::Stop {
                    let _ = record::remove(&self.settings.state_dir);
                }
                self.finish_shutdown(dones);
            }
            (_, _) => self.finish_shutdown(dones),
        }
    }

    fn finish_shutdown(&mut self, done: Vec<oneshot::Sender<()>>) {
        if let Some(f) = self.log_follower.take() {
            f.abort();
        }
        if let Some(t) = self.preload_task.take() {
            t.abort();
        }
        self.binary_watch = None;
        self.tasks.abort_all();
        self.probe = None;
        self.server = Server::Stopped;
        self.publish();
        for d in done {
            let _ = d.send(());
        }
    }

    pub(super) async fn reconfigure(&mut self, new: SupervisorSettings) {
        let old = self.settings.clone();
        if old == new {
            return;
        }
        if old.restart_backoff != new.restart_backoff {
            self.restarts.set_backoff(new.restart_backoff.clone());
        }
        if old.version_check_interval != new.version_check_interval {
            self.version_due = Instant::now() + new.version_check_interval;
        }
        let redecide = old.address != new.address
            || old.manage != new.manage
            || old.state_dir != new.state_dir;
        if redecide {
            tracing::info!(
                "Ollama settings changed (address {} → {}, manage {} → {}); re-deciding the mode",
                old.address.base_url,
                new.address.base_url,
                old.manage,
                new.manage
            );
            if old.address != new.address {
                match OllamaClient::new(&new.address) {
                    Ok(c) => self.client = c,
                    Err(e) => tracing::error!("{e}"),
                }
            }
            self.settings = new;
            match std::mem::replace(&mut self.server, Server::Deciding) {
                Server::Owned(owned) => self.drain_then(owned, AfterStop::Redecide),
                Server::Draining { owned, then, drain } => {
                    let then = redecide_unless_shutdown(then);
                    self.server = Server::Draining { owned, then, drain };
                }
                Server::Stopping {
                    pid,
                    management,
                    then,
                    record_dir,
                } => {
                    self.server = Server::Stopping {
                        pid,
                        management,
                        then: redecide_unless_shutdown(then),
                        record_dir,
                    };
                }
                Server::Stopped => self.server = Server::Stopped,
                _ => {
                    if let Some(f) = self.log_follower.take() {
                        f.abort();
                    }
                    self.begin().await;
                }
            }
            return;
        }
        let bin_changed = old.bin != new.bin;
        let preload_changed = old.preload != new.preload;
        self.settings = new;
        if bin_changed {
            self.binary_watch = super::versions::watch_binary(&self.settings.bin);
            self.restarted_for_binary = None;
            self.check_versions().await;
        }
        if preload_changed && self.running_version().is_some() {
            self.start_preload();
        }
    }
}

fn redecide_unless_shutdown(then: AfterStop) -> AfterStop {
    match then {
        AfterStop::Shutdown(done) => AfterStop::Shutdown(done),
        _ => AfterStop::Redecide,
    }
}

/// SIGTERM (or SIGKILL for a zero grace) the group of our server, wait, SIGKILL what is left.
/// Our child is reaped by its waiter; the exit is awaited so it is gone before we go on.
async fn stop_task(mut owned: Owned, grace: Duration) -> TaskDone {
    let pid = owned.pid();
    if grace > Duration::ZERO {
        tracing::info!("stopping our Ollama (pid {pid})");
    }
    let mut gone = signals::stop_server(&owned.process, grace).await;
    if let Some(exit) = owned.exit.take() {
        // Reaped, so the next spawn never races a zombie for the port.
        gone = timeout(signals::KILL_WAIT, exit).await.is_ok() || gone;
    }
    if !gone {
        tracing::error!(
            "Ollama (pid {pid}) outlived SIGKILL by {} s; it is left as it is",
            signals::KILL_WAIT.as_secs()
        );
    }
    TaskDone::Stopped { pid, gone }
}

/// Waits for an adopted server we SIGTERMed to go.
pub(super) async fn adopted_gone(server: ProcessRef) -> TaskDone {
    let gone = server.wait_gone(STOP_GRACE).await;
    TaskDone::Stopped {
        pid: server.pid(),
        gone,
    }
}

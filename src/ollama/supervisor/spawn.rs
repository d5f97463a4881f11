//! Starting our own `ollama serve`, and what happens when it ends: a crash (restart at once,
//! then with backoff), a start that failed, or a port someone else holds.

use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::process::Child;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::READY_PROBE_INTERVAL;
use super::{AfterStop, Due, Owned, Phase, Server, StartKind, Supervisor, WaitCause};
use crate::ollama::logfile::{self, MAX_LOG_BYTES};
use crate::ollama::process;
use crate::ollama::record::{self, OwnershipRecord};
use crate::ollama::signals;
use crate::procinfo::{IdentityError, ProcessRef, StartTime};

/// Hosts an owned server must never reach through a proxy.
const LOOPBACK_NO_PROXY: [&str; 3] = ["127.0.0.1", "localhost", "::1"];

/// Our server ended; for our child, how.
pub(super) struct Exit {
    status: Option<ExitStatus>,
}

impl Exit {
    /// A taken-back server (not our child) that is gone.
    pub(super) fn not_our_child() -> Exit {
        Exit { status: None }
    }
}

/// Owns the `Child` until it exits (and reaps it), then reports how it ended.
fn watch_exit(mut child: Child) -> (oneshot::Receiver<Exit>, JoinHandle<()>) {
    let (tx, rx) = oneshot::channel();
    let waiter = tokio::spawn(async move {
        let status = child.wait().await.ok();
        let _ = tx.send(Exit { status });
    });
    (rx, waiter)
}

impl Supervisor {
    pub(super) fn spawn_owned(&mut self) {
        let now = Instant::now();
        let log_path = logfile::log_path(&self.settings.state_dir);
        let (log, log_offset) = match logfile::open_for_child(&log_path, MAX_LOG_BYTES) {
            Ok(x) => x,
            Err(e) => {
                return self.spawn_failed(format!(
                    "cannot open {} for Ollama's output: {e}; check that the state directory is writable",
                    log_path.display()
                ))
            }
        };
        let log_err = match log.try_clone() {
            Ok(f) => f,
            Err(e) => {
                return self.spawn_failed(format!("cannot duplicate {}: {e}", log_path.display()))
            }
        };
        let no_proxy = merged_no_proxy();
        let mut cmd = tokio::process::Command::new(&self.settings.bin);
        cmd.arg("serve")
            .env("OLLAMA_HOST", self.settings.address.host_port())
            .env("NO_PROXY", &no_proxy)
            .env("no_proxy", &no_proxy)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err))
            .kill_on_drop(false);
        // SAFETY: setsid(2) is async-signal-safe and touches no memory of the parent. A session
        // of its own keeps Ollama out of our terminal's signals and gives its runners a session
        // id we can find and kill after a crash.
        unsafe {
            cmd.pre_exec(|| {
                nix::unistd::setsid()
                    .map(|_| ())
                    .map_err(std::io::Error::from)
            });
        }
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                return self.spawn_failed(format!(
                    "cannot start `{} serve`: {e}; install Ollama or set ollama.bin / OPENCLAWD_OLLAMA_BIN",
                    self.settings.bin.display()
                ))
            }
        };
        let Some(pid) = child.id() else {
            // Already reaped: it cannot have run; treat as a crash.
            let status = child.try_wait().ok().flatten();
            return self.crashed(format!("ollama serve {}", describe_exit(status)));
        };
        // Pinned before the waiter can reap it; `setsid` made it the leader of a new group.
        let server = match ProcessRef::child(pid, true) {
            Ok(p) => p,
            Err(IdentityError::Gone { .. }) => {
                let status = child.try_wait().ok().flatten();
                return self.crashed(format!(
                    "ollama serve (pid {pid}) {}",
                    describe_exit(status)
                ));
            }
            Err(e) => {
                // Ours, but nothing could prove it later: stop it while it is our child.
                let _ = child.start_kill();
                return self.spawn_failed(format!("cannot identify the started Ollama: {e}"));
            }
        };
        let start_time = server.start_time().clone();
        let (exit, waiter) = watch_exit(child);
        tracing::info!(
            "started `{} serve` (pid {pid}) on {}; its output goes to {}",
            self.settings.bin.display(),
            self.settings.address.host_port(),
            log_path.display()
        );
        let kind = match self.restarts.on_spawn(now) {
            None => StartKind::First,
            Some((attempt, looping)) => StartKind::Restart { attempt, looping },
        };
        self.server = Server::Owned(Owned {
            process: server,
            exit: Some(exit),
            waiter: Some(waiter),
            phase: Phase::Starting {
                deadline: now + self.settings.start_timeout,
                kind,
            },
            log_offset,
            record_dir: self.settings.state_dir.clone(),
        });
        self.probe = None;
        self.schedule_probe(now + READY_PROBE_INTERVAL);
        self.write_record(pid, start_time, self.binary_version.clone());
        self.ensure_log_follower();
    }

    /// `ollama.json` for a server of ours, with the restart history.
    pub(super) fn write_record(&self, pid: u32, start_time: StartTime, version: Option<String>) {
        let rec = OwnershipRecord {
            pid,
            start_time: Some(start_time),
            binary: self.settings.bin.clone(),
            version,
            address: self.settings.address.base_url.clone(),
            history: self.restarts.history.clone(),
        };
        if let Err(e) = record::write(&self.settings.state_dir, &rec) {
            tracing::warn!("{e}");
        }
    }

    /// Keeps the restart history in `ollama.json` while no server of ours runs (after a
    /// crash), so a crash of openclawd now loses none of it. The record still names the dead
    /// server, which proves nothing any more and is never signalled.
    fn save_history(&self) {
        if let Ok(Some(mut rec)) = record::read(&self.settings.state_dir) {
            rec.history = self.restarts.history.clone();
            if let Err(e) = record::write(&self.settings.state_dir, &rec) {
                tracing::warn!("{e}");
            }
        }
    }

    pub(super) fn ensure_log_follower(&mut self) {
        if self.log_follower.as_ref().map_or(true, |h| h.is_finished()) {
            self.log_follower = Some(logfile::follow(
                logfile::log_path(&self.settings.state_dir),
                MAX_LOG_BYTES,
            ));
        }
    }

    /// The executable could not be started (or its log opened): not a crash of Ollama.
    fn spawn_failed(&mut self, reason: String) {
        tracing::error!("{reason}");
        self.restarts.history.last_reason = Some(reason);
        self.wait_to_spawn(WaitCause::CannotStart);
    }

    fn wait_to_spawn(&mut self, cause: WaitCause) {
        let delay = self.restarts.retry_delay();
        self.server = Server::Waiting {
            due: Due::after(delay),
            cause,
        };
        self.probe = None;
        self.schedule_probe(Instant::now() + self.settings.probe_interval);
    }

    /// A server of ours died or hung: count it, restart (at once the first time in a row).
    pub(super) fn crashed(&mut self, reason: String) {
        let now = Instant::now();
        let r = self.restarts.on_crash(now, reason.clone());
        let when = if r.delay.is_zero() {
            format!("restarting now (attempt {})", r.attempt)
        } else {
            format!(
                "restarting in {:.1} s (attempt {})",
                r.delay.as_secs_f64(),
                r.attempt
            )
        };
        if r.looping {
            tracing::error!("Ollama is crash-looping ({reason}); {when}");
        } else {
            tracing::warn!("{reason}; {when}");
        }
        self.server = Server::Waiting {
            due: Due::after(r.delay),
            cause: WaitCause::Crashed {
                attempt: r.attempt,
                looping: r.looping,
            },
        };
        self.probe = None;
        self.save_history();
        if r.delay.is_zero() {
            self.spawn_owned();
        } else {
            self.schedule_probe(now + self.settings.probe_interval);
        }
    }

    /// SIGKILL a hung (or never ready) owned server with its group, then restart as after a
    /// crash. The kill and its wait run beside the loop.
    pub(super) fn kill_owned_and_restart(&mut self, reason: String) {
        let Server::Owned(o) = std::mem::replace(&mut self.server, Server::Deciding) else {
            return;
        };
        self.stop_owned(o, Duration::ZERO, AfterStop::Crashed(reason));
    }

    /// Our server ended on its own (or a taken-back one is gone).
    pub(super) async fn on_owned_exit(&mut self, exit: Exit) {
        let (owned, then) = match std::mem::replace(&mut self.server, Server::Deciding) {
            Server::Owned(o) => (o, None),
            Server::Draining { owned, then, drain } => {
                drain.abort();
                (owned, Some(then))
            }
            other => {
                self.server = other;
                return;
            }
        };
        let (pid, log_offset) = (owned.pid(), owned.log_offset);
        // Whatever is left of its group and session (runners) goes with it.
        signals::kill_leftovers(&owned.process);
        let status = exit.status;
        if let Some(then) = then {
            // It ended while finishing its requests before a restart: what was to follow the
            // stop follows now.
            tracing::warn!(
                "ollama serve (pid {pid}) {} before its planned restart",
                describe_exit(status)
            );
            let _ = record::remove(&owned.record_dir);
            return self.after_stop(pid, true, then).await;
        }
        let output = logfile::read_since(&logfile::log_path(&self.settings.state_dir), log_offset);
        if status.and_then(|s| s.code()) == Some(1) && output.contains("address already in use") {
            let _ = record::remove(&self.settings.state_dir);
            return self.on_port_conflict().await;
        }
        let last_error = output
            .lines()
            .rev()
            .find(|l| l.starts_with("Error:"))
            .map(|l| format!(" ({})", l.trim()))
            .unwrap_or_default();
        self.crashed(format!(
            "ollama serve (pid {pid}) {}{last_error}",
            describe_exit(status)
        ));
    }

    /// Our child could not bind: an Ollama won the race (adopt it), or another program holds the
    /// port (report it by name, never signal it, retry later).
    async fn on_port_conflict(&mut self) {
        if let Ok(v) = self.client.version().await {
            return self.adopt(v);
        }
        let port = self.settings.address.port;
        let holder = process::listener_on_port(port);
        let pids = holder.as_ref().map(|l| l.pids.clone()).unwrap_or_default();
        let who = if pids.is_empty() {
            match holder {
                Some(l) => format!("a process of uid {} openclawd cannot inspect", l.uid),
                None => "a program openclawd cannot identify".to_string(),
            }
        } else {
            pids.iter()
                .map(|p| process::describe(*p))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let is_ollama = pids
            .iter()
            .any(|p| process::cmdline(*p).is_some_and(|a| process::runs_ollama_serve(&a)));
        let reason = if is_ollama {
            format!(
                "port {} is held by an Ollama that does not answer yet ({who}); openclawd will use it once it answers",
                self.settings.address.host_port()
            )
        } else {
            format!(
                "port {} is held by another program ({who}) that is not Ollama; openclawd will not stop it: stop that program or point openclawd at another Ollama address",
                self.settings.address.host_port()
            )
        };
        tracing::error!("{reason}");
        self.restarts.history.last_reason = Some(reason);
        self.wait_to_spawn(WaitCause::CannotStart);
    }
}

pub(super) fn describe_exit(status: Option<ExitStatus>) -> String {
    use std::os::unix::process::ExitStatusExt;
    match status {
        Some(s) => match (s.code(), s.signal()) {
            (Some(code), _) => format!("exited with code {code}"),
            (None, Some(sig)) => match Signal::try_from(sig) {
                Ok(signal) => format!("was killed by signal {sig} ({signal})"),
                Err(_) => format!("was killed by signal {sig}"),
            },
            _ => "exited".to_string(),
        },
        None => "exited".to_string(),
    }
}

/// `NO_PROXY`/`no_proxy` for the child: what the environment has, plus the loopback names.
fn merged_no_proxy() -> String {
    let mut items: Vec<String> = Vec::new();
    for var in ["NO_PROXY", "no_proxy"] {
        if let Ok(v) = std::env::var(var) {
            for item in v.split(',').map(str::trim).filter(|i| !i.is_empty()) {
                if !items.iter().any(|x| x == item) {
                    items.push(item.to_string());
                }
            }
        }
    }
    for item in LOOPBACK_NO_PROXY {
        if !items.iter().any(|x| x == item) {
            items.push(item.to_string());
        }
    }
    items.join(",")
}

/// `bin` as a path: itself when it names a directory part, else its first hit on `PATH`.
pub(super) fn resolve_bin(bin: &Path) -> Option<std::path::PathBuf> {
    if bin.components().count() > 1 {
        return Some(bin.to_path_buf());
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(bin))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_proxy_covers_loopback_and_keeps_existing_entries() {
        let merged = merged_no_proxy();
        let items: Vec<&str> = merged.split(',').collect();
        for l in LOOPBACK_NO_PROXY {
            assert!(items.contains(&l), "{merged}");
        }
        let mut dedup = items.clone();
        dedup.sort();
        dedup.dedup();
        assert_eq!(dedup.len(), items.len(), "no duplicates: {merged}");
    }

    #[test]
    fn exits_are_described_for_people() {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            describe_exit(Some(ExitStatus::from_raw(1 << 8))),
            "exited with code 1"
        );
        assert_eq!(
            describe_exit(Some(ExitStatus::from_raw(9))),
            "was killed by signal 9 (SIGKILL)"
        );
    }
}

//! Deciding the mode (remote, ours taken back from `ollama.json`, adopted, or spawn), and what
//! probes say: a server that answers is `running` (a new healthy epoch on the transition), one
//! that stops answering is unreachable, hung, or gone.

use std::time::Duration;

use tokio::time::Instant;

use super::spawn::Exit;
use super::stop::STOP_GRACE;
use super::versions::watch_binary;
use super::{AfterStop, Due, Health, Owned, Phase, Server, StartKind, Supervisor, WaitCause};
use crate::ollama::client::ProbeError;
use crate::ollama::managers;
use crate::ollama::process;
use crate::ollama::record;
use crate::ollama::signals;
use crate::procinfo::IdentityError;

/// Failed probes in a row that make a running owned server "hung".
const HUNG_AFTER_FAILURES: u32 = 3;

impl Supervisor {
    /// Decides the mode: remote, owned (taken back from `ollama.json`), adopted, or spawn.
    pub(super) async fn begin(&mut self) {
        self.server = Server::Deciding;
        self.probe = None;
        self.probe_due = None;
        self.restarted_for_binary = None;
        self.binary_watch = watch_binary(&self.settings.bin);
        self.version_due = Instant::now() + self.settings.version_check_interval;
        self.refresh_binary_version().await;
        self.publish();

        if !self.settings.address.loopback {
            self.server = Server::Remote {
                health: Health::Unknown,
            };
            match self.client.version().await {
                Ok(v) => self.on_answer(v),
                Err(e) => self.mark_unreachable(&e),
            }
            self.schedule_next_probe();
            return;
        }
        if self.settings.manage && self.take_back_recorded().await {
            self.schedule_next_probe();
            return;
        }
        match self.client.version().await {
            Ok(v) => self.adopt(v),
            Err(_) if self.settings.manage => self.spawn_owned(),
            Err(e) => {
                tracing::info!(
                    "no Ollama answers at {} ({e}); ollama.manage is off, so openclawd waits for one",
                    self.settings.address.base_url
                );
                self.server = Server::Unmanaged;
            }
        }
        self.schedule_next_probe();
    }

    /// Takes back the server `ollama.json` names when it is provably the same process (pid and
    /// start time) and answers at our address. A record that cannot prove a process is
    /// reported and ignored; its process is never signalled. True when the mode is decided
    /// (taken back, or a stop of the recorded server is under way).
    async fn take_back_recorded(&mut self) -> bool {
        let state_dir = self.settings.state_dir.clone();
        let (rec, recorded) = match record::read_valid(&state_dir) {
            Ok(Some(r)) => r,
            Ok(None) => return false,
            Err(e) => {
                tracing::warn!("{e}");
                let _ = record::remove(&state_dir);
                return false;
            }
        };
        self.restarts.history = rec.history.clone();
        let server = match recorded.find() {
            Ok(server) => server,
            Err(e) => {
                match e {
                    IdentityError::Gone { pid } => {
                        // Its runners may have outlived it (SIGKILLed with openclawd down).
                        signals::kill_session_leftovers(
                            pid,
                            Some(&recorded.start_time),
                            Some(&rec.binary),
                        );
                        tracing::info!(
                            "the Ollama of {} (pid {pid}) is gone; starting fresh",
                            record::record_path(&state_dir).display()
                        );
                    }
                    e => tracing::warn!(
                        "{}: {e}; starting fresh",
                        record::record_path(&state_dir).display()
                    ),
                }
                let _ = record::remove(&state_dir);
                return false;
            }
        };
        let pid = server.pid();
        let owned = Owned {
            process: server,
            exit: None,
            waiter: None,
            phase: Phase::Starting {
                deadline: Instant::now() + self.settings.start_timeout,
                kind: StartKind::First,
            },
            log_offset: 0,
            record_dir: state_dir.clone(),
        };
        if rec.address != self.settings.address.base_url {
            tracing::info!(
                "stopping our Ollama (pid {pid}) serving {}: the address is now {}",
                rec.address,
                self.settings.address.base_url
            );
            self.stop_owned(owned, STOP_GRACE, AfterStop::Redecide);
            return true;
        }
        match self.client.version().await {
            Ok(v) => {
                tracing::info!(
                    "took back our Ollama (pid {pid}, version {v}) from {} without restarting it",
                    record::record_path(&state_dir).display()
                );
                self.restarts.started_once = true;
                self.server = Server::Owned(owned);
                self.ensure_log_follower();
                self.on_answer(v);
            }
            Err(e) => {
                tracing::warn!(
                    "our Ollama (pid {pid}) does not answer at {} ({e}); killing it to start a new one",
                    rec.address
                );
                self.stop_owned(owned, Duration::ZERO, AfterStop::Redecide);
            }
        }
        true
    }

    pub(super) fn adopt(&mut self, server_version: String) {
        let pid = managers::serving_pid(self.settings.address.port);
        tracing::info!(
            "adopted the Ollama already serving {} ({}, version {server_version}); openclawd will not stop it",
            self.settings.address.base_url,
            pid.map(process::describe).unwrap_or_else(|| "pid unknown".into())
        );
        self.server = Server::Adopted {
            pid,
            health: Health::Unknown,
            manager_restarting: false,
        };
        self.on_answer(server_version);
    }

    pub(super) async fn on_probe(&mut self, result: Result<String, ProbeError>) {
        match result {
            Ok(v) => self.on_answer(v),
            Err(e) => self.on_no_answer(e).await,
        }
        self.schedule_next_probe();
    }

    /// The server answered with its version.
    pub(super) fn on_answer(&mut self, version: String) {
        let was_running = self.running_version();
        let now = Instant::now();
        match &mut self.server {
            Server::Deciding | Server::Unmanaged | Server::Waiting { .. } => {
                return self.adopt(version)
            }
            Server::Remote { health }
            | Server::Adopted {
                health,
                manager_restarting: false,
                ..
            } => *health = Health::Up(version.clone()),
            Server::Owned(o) => {
                let (since, known) = match &o.phase {
                    Phase::Ready {
                        since, version: v, ..
                    } => (*since, *v == version),
                    Phase::Starting { .. } => (now, false),
                };
                o.phase = Phase::Ready {
                    version: version.clone(),
                    since,
                    failures: 0,
                };
                let (pid, start_time) = (o.pid(), o.process.start_time().clone());
                if !known {
                    self.write_record(pid, start_time, Some(version.clone()));
                }
                self.restarts.on_healthy(now.duration_since(since));
            }
            Server::Draining { owned, .. } => {
                if let Phase::Ready { failures, .. } = &mut owned.phase {
                    *failures = 0;
                }
                return;
            }
            // Being restarted by its manager, or stopping: an answer means nothing yet.
            Server::Adopted { .. } | Server::Stopping { .. } | Server::Stopped => return,
        }
        match was_running {
            None => {
                self.healthy_epoch += 1;
                self.restarts.started_once = true;
                let st = self.status();
                tracing::info!(
                    "Ollama is running at {} (version {version}, {})",
                    st.base_url,
                    management_name(st.management)
                );
                self.start_preload();
                self.compare_versions();
            }
            Some(before) if before != version => self.compare_versions(),
            Some(_) => {}
        }
    }

    async fn on_no_answer(&mut self, e: ProbeError) {
        let now = Instant::now();
        match &mut self.server {
            Server::Remote { .. } => self.mark_unreachable(&e),
            Server::Adopted {
                manager_restarting: true,
                ..
            } => {}
            Server::Adopted { pid, .. } => {
                let gone = matches!(e, ProbeError::Refused(_))
                    || pid.is_some_and(|p| !process::is_alive(p));
                if !gone {
                    // Hung, but not ours to restart.
                    return self.mark_unreachable(&e);
                }
                if self.settings.manage {
                    tracing::warn!(
                        "the adopted Ollama at {} stopped ({e}); giving its manager {:.1} s to bring it back before starting our own",
                        self.settings.address.base_url,
                        self.settings.adopt_grace.as_secs_f64()
                    );
                    self.restarts.history.last_reason =
                        Some(format!("the adopted Ollama stopped ({e})"));
                    self.server = Server::Waiting {
                        due: Due::after(self.settings.adopt_grace),
                        cause: WaitCause::AdoptGrace,
                    };
                } else {
                    tracing::warn!(
                        "the adopted Ollama at {} stopped ({e})",
                        self.settings.address.base_url
                    );
                    self.server = Server::Unmanaged;
                }
            }
            Server::Owned(o) => {
                if o.exit.is_none() && !o.process.is_same() {
                    // A taken-back server is not our child: its death shows here.
                    return self.on_owned_exit(Exit::not_our_child()).await;
                }
                let pid = o.pid();
                match &mut o.phase {
                    Phase::Starting { deadline, .. } => {
                        if now >= *deadline {
                            let reason = format!(
                                "ollama serve (pid {pid}) did not answer within {} s of starting ({e})",
                                self.settings.start_timeout.as_secs_f64()
                            );
                            self.kill_owned_and_restart(reason);
                        }
                    }
                    Phase::Ready { failures, .. } => {
                        *failures += 1;
                        if *failures >= HUNG_AFTER_FAILURES {
                            let reason = format!(
                                "ollama serve (pid {pid}) is hung: {failures} probes of /api/version in a row failed ({e})"
                            );
                            self.kill_owned_and_restart(reason);
                        }
                    }
                }
            }
            Server::Deciding
            | Server::Unmanaged
            | Server::Waiting { .. }
            | Server::Draining { .. }
            | Server::Stopping { .. }
            | Server::Stopped => {}
        }
    }

    fn mark_unreachable(&mut self, e: &ProbeError) {
        let (Server::Remote { health } | Server::Adopted { health, .. }) = &mut self.server else {
            return;
        };
        if !matches!(health, Health::Down(_)) {
            tracing::warn!(
                "Ollama at {} is unreachable: {e}",
                self.settings.address.base_url
            );
            *health = Health::Down(health.version().map(String::from));
        }
    }

    pub(super) fn start_preload(&mut self) {
        let Some(preload) = self.settings.preload.clone() else {
            return;
        };
        if let Some(t) = self.preload_task.take() {
            t.abort();
        }
        let client = self.client.clone();
        self.preload_task = Some(tokio::spawn(async move {
            match client.preload(&preload.model, &preload.keep_alive).await {
                Ok(()) => tracing::info!(
                    "preloaded {} (keep_alive {})",
                    preload.model,
                    preload.keep_alive
                ),
                Err(e) => tracing::warn!("preloading {} failed: {e}", preload.model),
            }
        }));
    }
}

fn management_name(m: Option<crate::ollama::Management>) -> &'static str {
    use crate::ollama::Management;
    match m {
        Some(Management::Owned) => "owned",
        Some(Management::Adopted) => "adopted",
        Some(Management::Remote) => "remote",
        None => "unmanaged",
    }
}

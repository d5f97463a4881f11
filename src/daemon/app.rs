//! [`App`]: the daemon's shared state and its supervised task tree.
//!
//! ```text
//! App::run ── TaskTree::supervise
//!   ├─ gateway          (stops the daemon)  accept loop, routes; drains on shutdown (a second
//!   │                                       stop signal ends the drain)
//!   ├─ signals          (stops the daemon)  SIGTERM/SIGINT → stop, SIGUSR2 → handover
//!   ├─ ollama-supervisor(stops the daemon)  watches the supervisor's task; its loss is fatal
//!   ├─ config-reload    (restarts)          files + SIGHUP → load → check → publish
//!   ├─ ollama-settings  (restarts)          config → SupervisorSettings → reconfigure
//!   ├─ discovery        (restarts)          config, Ollama epochs, models dir → catalogue
//!   ├─ sessions         (restarts)          config, sessions files → SessionsGuard rounds
//!   ├─ cooldowns        (restarts)          Ollama healthy again → its models' cooldowns cleared
//!   ├─ metrics          (restarts)          other components' counters → /metrics
//!   ├─ log-rotation     (restarts)          <state>/logs/openclawd.log at 10 MiB, when it is our stderr
//!   └─ sd-notify        (restarts)          STATUS, WATCHDOG for systemd (when it runs us)
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use arc_swap::ArcSwapOption;
use tokio::net::TcpListener;
use tokio::sync::{watch, Mutex};
use tokio_util::sync::CancellationToken;

use super::tasks::{OnEnd, TaskTree};
use super::{reload, signals, DRAIN};
use crate::config::{Overrides, Published, Snapshot};
use crate::discovery::{CatalogStore, DiscoveryTask};
use crate::gateway::{self, server, GatewayState};
use crate::housekeeping::{self, HousekeepingStatus};
use crate::metrics::Metrics;
use crate::ollama::{self, ShutdownKind, SupervisorHandle, SupervisorSettings};
use crate::state::DaemonState;

/// What [`App::build`] starts from: the first snapshot and the bound listener.
pub struct Start {
    pub snapshot: Snapshot,
    /// The config error when `snapshot` is the degraded stand-in for a broken config.
    pub config_error: Option<String>,
    pub listener: TcpListener,
    pub overrides: Overrides,
    /// The environment the config is read with, at start and on every reload.
    pub env: BTreeMap<String, String>,
    /// What housekeeping did before the bind (port reclaims).
    pub housekeeping: HousekeepingStatus,
    /// Write `<state>/openclawd/openclawd.pid` (not for in-process test harnesses).
    pub pid_file: bool,
}

pub struct App {
    pub state: Arc<DaemonState>,
    pub gateway: Arc<GatewayState>,
    pub shutdown: CancellationToken,
    tasks: TaskTree,
    supervisor: SupervisorHandle,
    handover: Arc<AtomicBool>,
    pid_file: Option<PathBuf>,
}

impl App {
    /// Creates the shared state and starts every task. Must run inside a tokio runtime.
    pub fn build(start: Start) -> anyhow::Result<App> {
        let listen = start
            .listener
            .local_addr()
            .context("reading the bound address")?;
        tracing::info!(%listen, "gateway listening");
        crate::service::notify::ready(&format!("listening on {listen}; starting Ollama"));
        let snapshot = start.snapshot;
        let state_dir = snapshot.paths.state_dir.clone();
        let pid_file = if start.pid_file {
            Some(write_pid_file(&state_dir)?)
        } else {
            None
        };

        let supervisor = ollama::spawn(SupervisorSettings::from_snapshot(&snapshot));
        let (housekeeping_tx, housekeeping_rx) = watch::channel(start.housekeeping);
        let metrics = Arc::new(Metrics::default());
        let catalog = Arc::new(CatalogStore::new(&snapshot, Some(listen)));
        let state = Arc::new(DaemonState {
            started_at: SystemTime::now(),
            listen,
            config: Published::new(snapshot),
            config_error: ArcSwapOption::from(start.config_error.map(Arc::new)),
            catalog,
            metrics,
            ollama: supervisor.status.clone(),
            ollama_in_flight: supervisor.in_flight(),
            housekeeping: housekeeping_rx,
        });
        let shutdown = CancellationToken::new();
        let gateway = Arc::new(
            GatewayState::new(state.clone(), shutdown.clone())
                .context("building the HTTP clients")?,
        );
        let handover = Arc::new(AtomicBool::new(false));
        let mut tasks = TaskTree::new(shutdown.clone());

        // The listener is served once: the gateway's loss stops the daemon, never restarts it.
        // A second stop signal during the drain ends the drain at once.
        let listener = Arc::new(Mutex::new(Some(start.listener)));
        tasks.spawn("gateway", OnEnd::StopDaemon, {
            let (gateway, shutdown) = (gateway.clone(), shutdown.clone());
            move || {
                let (listener, router) = (listener.clone(), server::router(gateway.clone()));
                let shutdown = shutdown.clone();
                async move {
                    let Some(listener) = listener.lock().await.take() else {
                        return;
                    };
                    let hard_stop = CancellationToken::new();
                    let serving =
                        server::serve(listener, router, shutdown.clone(), DRAIN, hard_stop.clone());
                    // The second signal only cancels `hard_stop`; the drain then ends itself.
                    let second = async move {
                        signals::second_signal(shutdown, hard_stop).await;
                        std::future::pending::<()>().await
                    };
                    tokio::select! {
                        _ = serving => {}
                        _ = second => {}
                    }
                }
            }
        });
        let installed = signals::StopSignals::install().context("installing signal handlers")?;
        let installed = std::sync::Mutex::new(Some(installed));
        tasks.spawn("signals", OnEnd::StopDaemon, {
            let (shutdown, handover) = (shutdown.clone(), handover.clone());
            move || {
                let first = installed.lock().ok().and_then(|mut s| s.take());
                signals::wait_for_stop(first, shutdown.clone(), handover.clone())
            }
        });
        tasks.spawn("ollama-supervisor", OnEnd::StopDaemon, {
            let (status, shutdown) = (supervisor.status.clone(), shutdown.clone());
            move || supervisor_alive(status.clone(), shutdown.clone())
        });
        tasks.spawn("config-reload", OnEnd::Restart, {
            let (state, shutdown) = (state.clone(), shutdown.clone());
            let (overrides, env) = (start.overrides.clone(), start.env.clone());
            move || {
                reload::run(
                    state.clone(),
                    overrides.clone(),
                    env.clone(),
                    shutdown.clone(),
                )
            }
        });
        tasks.spawn("ollama-settings", OnEnd::Restart, {
            let (state, supervisor, shutdown) =
                (state.clone(), supervisor.clone(), shutdown.clone());
            move || follow_ollama_settings(state.clone(), supervisor.clone(), shutdown.clone())
        });
        tasks.spawn("discovery", OnEnd::Restart, {
            let (state, shutdown) = (state.clone(), shutdown.clone());
            move || {
                let task = DiscoveryTask {
                    config: state.config.subscribe(),
                    ollama: state.ollama.clone(),
                    store: state.catalog.clone(),
                    metrics: state.metrics.clone(),
                };
                task.run(shutdown.clone())
            }
        });
        tasks.spawn("sessions", OnEnd::Restart, {
            let (state, shutdown) = (state.clone(), shutdown.clone());
            let backups = state_dir.join("openclawd").join("backups");
            move || {
                housekeeping::run_sessions(
                    state.config.subscribe(),
                    backups.clone(),
                    housekeeping_tx.clone(),
                    shutdown.clone(),
                )
            }
        });
        tasks.spawn("cooldowns", OnEnd::Restart, {
            let (gateway, shutdown) = (gateway.clone(), shutdown.clone());
            move || gateway::state::clear_cooldowns_on_recovery(gateway.clone(), shutdown.clone())
        });
        tasks.spawn("metrics", OnEnd::Restart, {
            let (state, shutdown) = (state.clone(), shutdown.clone());
            move || metrics_bridge(state.clone(), shutdown.clone())
        });
        tasks.spawn("log-rotation", OnEnd::Restart, {
            let shutdown = shutdown.clone();
            let path = crate::service::control::log_file(&state_dir);
            move || super::logrotate::run(path.clone(), shutdown.clone())
        });
        if crate::service::notify::enabled() {
            tasks.spawn("sd-notify", OnEnd::Restart, {
                let (state, shutdown) = (state.clone(), shutdown.clone());
                move || super::notify::run(state.clone(), shutdown.clone())
            });
        }

        Ok(App {
            state,
            gateway,
            shutdown,
            tasks,
            supervisor,
            handover,
            pid_file,
        })
    }

    /// The address the gateway serves.
    pub fn listen(&self) -> SocketAddr {
        self.state.listen
    }

    /// Runs until a stop signal (exit 0) or the loss of a task the daemon cannot work without
    /// (exit 1), then stops everything in order: drain the gateway, end the tasks, stop or hand
    /// over Ollama, remove the pid file.
    pub async fn run(mut self) -> ExitCode {
        let lost = self.tasks.supervise().await;
        self.shutdown.cancel();
        let handover = self.handover.load(Ordering::SeqCst) && lost.is_ok();
        if handover {
            // The next openclawd takes Ollama over while this one drains: stop supervising it
            // now (it keeps running and serving the requests still draining here).
            tracing::info!("handing over: leaving Ollama running for the next openclawd");
            self.supervisor.shutdown(ShutdownKind::Handover).await;
        }
        // The gateway drains for up to DRAIN; a little more for the rest to notice.
        self.tasks.stop(DRAIN + Duration::from_secs(2)).await;
        if !handover {
            tracing::info!("stopping");
            self.supervisor.shutdown(ShutdownKind::Stop).await;
        }
        if let Some(pid_file) = &self.pid_file {
            // After a handover the file names the new daemon: leave it.
            crate::service::control::remove_pid_file_if_own(pid_file);
        }
        match lost {
            Ok(()) => {
                tracing::info!("stopped");
                ExitCode::SUCCESS
            }
            Err(lost) => {
                tracing::error!(task = lost.name, "stopped: task {} {}", lost.name, lost.how);
                ExitCode::FAILURE
            }
        }
    }
}

/// `openclawd.pid` with our pid and start time (see `service::control::PidRecord`).
fn write_pid_file(state_dir: &std::path::Path) -> anyhow::Result<PathBuf> {
    crate::service::control::write_pid_file(state_dir).with_context(|| {
        format!(
            "writing {}",
            crate::service::control::pid_file(state_dir).display()
        )
    })
}

/// Returns when the supervisor's task is gone (its status channel closed) while the daemon
/// runs — which the task tree treats as fatal.
async fn supervisor_alive(
    mut status: watch::Receiver<ollama::OllamaStatus>,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            changed = status.changed() => if changed.is_err() { return },
        }
    }
}

/// The supervisor derives its settings from each published snapshot.
async fn follow_ollama_settings(
    state: Arc<DaemonState>,
    supervisor: SupervisorHandle,
    shutdown: CancellationToken,
) {
    let mut config = state.config.subscribe();
    config.mark_unchanged();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            changed = config.changed() => if changed.is_err() { return },
        }
        let snapshot = config.borrow_and_update().clone();
        supervisor.reconfigure(SupervisorSettings::from_snapshot(&snapshot));
    }
}

/// Mirrors other components' counters into `/metrics`.
async fn metrics_bridge(state: Arc<DaemonState>, shutdown: CancellationToken) {
    let mut ollama = state.ollama.clone();
    let mut hk = state.housekeeping.clone();
    loop {
        state
            .metrics
            .ollama_restarts
            .set(ollama.borrow_and_update().restarts as i64);
        {
            let h = hk.borrow_and_update();
            state
                .metrics
                .port_reclaims
                .set(h.port_reclaims_total as i64);
            state
                .metrics
                .sessions_cleared
                .set(h.sessions_cleared_total as i64);
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            Ok(()) = ollama.changed() => {},
            Ok(()) = hk.changed() => {},
            else => return,
        }
    }
}

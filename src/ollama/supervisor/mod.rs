//! The supervisor task: one event loop owning every decision about the Ollama server.
//!
//! The state is [`Server`]; each variant carries the data that means something in it, and
//! [`Supervisor::status`] computes the published [`OllamaStatus`] from it in one place.
//! Transitions live beside their subject: [`spawn`](self::spawn) (start ours, crashes),
//! [`adopt`] (deciding the mode, probes, running), [`stop`] (drains, stops, shutdown,
//! reconfigure), [`versions`] (upgrades and mismatches).
//!
//! Events: commands from the handle, the exit of our child (seen at once: a waiter task owns
//! the `Child`), probe results (a probe runs beside the loop, so an exit is never delayed by
//! it), binary changes, completions of the slow work spawned beside the loop (drains, stops,
//! manager commands — so Shutdown and Reconfigure are always answered), and timers.

mod adopt;
mod restarts;
mod spawn;
mod stop;
mod versions;

use std::future::{pending, Future};
use std::pin::Pin;
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::{AbortHandle, JoinHandle, JoinSet};
use tokio::time::{sleep_until, Instant};

use super::client::{OllamaClient, ProbeError};
use super::inflight::InFlight;
use super::{
    Command, Management, OllamaState, OllamaStatus, ShutdownKind, SupervisorHandle,
    SupervisorSettings,
};
use crate::procinfo::ProcessRef;
use crate::watch::FileWatcher;
use restarts::Restarts;
use spawn::Exit;
use stop::TaskDone;

/// Readiness probing after a spawn (and during an adopted server's grace): this period.
const READY_PROBE_INTERVAL: Duration = Duration::from_millis(250);

/// Starts the supervisor task.
pub fn spawn(settings: SupervisorSettings) -> SupervisorHandle {
    let (status_tx, status_rx) = watch::channel(OllamaStatus::initial(&settings));
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    let in_flight = InFlight::new();
    let gauge = in_flight.clone();
    tokio::spawn(async move {
        match OllamaClient::new(&settings.address) {
            Ok(client) => {
                Supervisor::new(settings, client, status_tx, gauge)
                    .run(cmd_rx)
                    .await
            }
            Err(e) => {
                tracing::error!("{e}");
                let mut st = OllamaStatus::initial(&settings);
                st.state = OllamaState::Unreachable;
                st.last_restart_reason = Some(e.to_string());
                status_tx.send_replace(st.clone());
                wait_for_shutdown(cmd_rx).await;
                st.state = OllamaState::Stopped;
                status_tx.send_replace(st);
            }
        }
    });
    SupervisorHandle {
        status: status_rx,
        cmds: cmd_tx,
        in_flight,
    }
}

async fn wait_for_shutdown(mut cmds: mpsc::UnboundedReceiver<Command>) {
    while let Some(cmd) = cmds.recv().await {
        if let Command::Shutdown(_, done) = cmd {
            let _ = done.send(());
            return;
        }
    }
}

type ProbeFuture = Pin<Box<dyn Future<Output = Result<String, ProbeError>> + Send>>;

/// What serves the address, as far as the supervisor knows.
enum Server {
    /// Deciding the mode (at start, after a reconfigure).
    Deciding,
    /// Local, `ollama.manage` off, nothing answers: wait for a server to appear.
    Unmanaged,
    /// Local, nothing of ours or anyone's: ours starts at `due` (a server that appears first
    /// is adopted).
    Waiting {
        due: Due,
        cause: WaitCause,
    },
    Remote {
        health: Health,
    },
    /// Someone else's server; `pid` when `/proc` tells who listens.
    Adopted {
        pid: Option<u32>,
        health: Health,
        /// Its manager's restart command runs (answered by [`TaskDone::ManagerRestart`]).
        manager_restarting: bool,
    },
    Owned(Owned),
    /// Ours, finishing the requests in flight before a restart openclawd decided.
    Draining {
        owned: Owned,
        then: AfterStop,
        drain: AbortHandle,
    },
    /// A task stops a server (answered by [`TaskDone::Stopped`]); `then` follows.
    Stopping {
        pid: u32,
        management: Management,
        then: AfterStop,
        /// The state directory whose `ollama.json` to remove once stopped (ours only).
        record_dir: Option<std::path::PathBuf>,
    },
    /// Shut down: the loop ends.
    Stopped,
}

/// A point in time, kept both ways: `Instant` for the timer, wall time for `status`.
#[derive(Debug, Clone, Copy)]
struct Due {
    at: Instant,
    wall: SystemTime,
}

impl Due {
    fn after(delay: Duration) -> Due {
        Due {
            at: Instant::now() + delay,
            wall: SystemTime::now() + delay,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WaitCause {
    /// Ours crashed, hung or never answered: restart `attempt` in a row.
    Crashed { attempt: u32, looping: bool },
    /// Ours could not be started (the binary, the log, the port): retry.
    CannotStart,
    /// The adopted server stopped; its manager may bring it back before ours starts.
    AdoptGrace,
}

/// What a probe last said of a server that is not ours.
#[derive(Debug, Clone)]
enum Health {
    Unknown,
    Up(String),
    /// Not answering; the version it last answered with.
    Down(Option<String>),
}

impl Health {
    fn version(&self) -> Option<&str> {
        match self {
            Health::Up(v) | Health::Down(Some(v)) => Some(v),
            _ => None,
        }
    }
}

/// An `ollama serve` of ours: spawned now, or taken back from a previous openclawd.
struct Owned {
    /// The server, proven: our child pinned before it could be reaped, or a taken-back server
    /// whose start time matched the record. Its pid is also its process group and session id
    /// (spawned with `setsid`).
    process: ProcessRef,
    /// Our child's exit: `None` for a taken-back server, which is not our child (its death
    /// is found by checking it with each probe).
    exit: Option<oneshot::Receiver<Exit>>,
    /// Owns the `Child` until it exits.
    waiter: Option<JoinHandle<()>>,
    phase: Phase,
    /// Length of `ollama.log` before the child wrote anything (to read why it failed).
    log_offset: u64,
    /// The state directory whose `ollama.json` names it.
    record_dir: std::path::PathBuf,
}

impl Owned {
    fn pid(&self) -> u32 {
        self.process.pid()
    }
}

enum Phase {
    /// Spawned or taken back, not answered yet.
    Starting { deadline: Instant, kind: StartKind },
    Ready {
        version: String,
        since: Instant,
        /// Failed probes in a row.
        failures: u32,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StartKind {
    First,
    /// A restart: `attempt` in a row after crashes (0 for one openclawd decided).
    Restart {
        attempt: u32,
        looping: bool,
    },
}

/// What follows a stop.
enum AfterStop {
    /// Start ours again (an upgrade).
    Respawn,
    /// A stop that replaces a crash: count it and restart with backoff.
    Crashed(String),
    /// Decide the mode again (new settings; a recorded server that had to go).
    Redecide,
    /// An adopted plain `ollama serve` is being replaced by ours; if it does not go, tell
    /// the user `advice`.
    ReplaceAdopted {
        reason: String,
        advice: String,
        version: Option<String>,
    },
    /// Shut down, then answer these.
    Shutdown(Vec<oneshot::Sender<()>>),
}

struct Supervisor {
    settings: SupervisorSettings,
    status_tx: watch::Sender<OllamaStatus>,
    client: OllamaClient,
    server: Server,
    restarts: Restarts,
    healthy_epoch: u64,
    binary_version: Option<String>,
    /// Server and binary versions differ and openclawd cannot fix it: what the user runs.
    mismatch: Option<String>,
    /// We already restarted onto this binary version once; a mismatch that survives is
    /// reported, not restarted again (no restart loop on a dev build reporting another version).
    restarted_for_binary: Option<String>,
    in_flight: InFlight,
    probe: Option<ProbeFuture>,
    probe_started: Instant,
    probe_due: Option<Instant>,
    version_due: Instant,
    binary_watch: Option<(FileWatcher, mpsc::Receiver<()>)>,
    /// Drains, stops and manager commands, each ending in a [`TaskDone`].
    tasks: JoinSet<TaskDone>,
    log_follower: Option<JoinHandle<()>>,
    preload_task: Option<JoinHandle<()>>,
}

impl Supervisor {
    fn new(
        settings: SupervisorSettings,
        client: OllamaClient,
        status_tx: watch::Sender<OllamaStatus>,
        in_flight: InFlight,
    ) -> Supervisor {
        let now = Instant::now();
        Supervisor {
            restarts: Restarts::new(settings.restart_backoff.clone()),
            version_due: now + settings.version_check_interval,
            settings,
            status_tx,
            client,
            server: Server::Deciding,
            healthy_epoch: 0,
            binary_version: None,
            mismatch: None,
            restarted_for_binary: None,
            in_flight,
            probe: None,
            probe_started: now,
            probe_due: None,
            binary_watch: None,
            tasks: JoinSet::new(),
            log_follower: None,
            preload_task: None,
        }
    }

    async fn run(mut self, mut cmds: mpsc::UnboundedReceiver<Command>) {
        self.begin().await;
        let mut handles_gone = false;
        loop {
            self.publish();
            if matches!(self.server, Server::Stopped) {
                return;
            }
            if self.probe.is_none() && self.probe_due.is_none() {
                // Always either a probe in flight or one due.
                self.probe_due = Some(Instant::now() + self.settings.probe_interval);
            }
            let wake = self.next_wakeup();
            tokio::select! {
                cmd = cmds.recv(), if !handles_gone => match cmd {
                    None => {
                        // Every handle dropped: keep the server (as after a crash of
                        // openclawd, the next one takes it back).
                        handles_gone = true;
                        self.on_shutdown(ShutdownKind::Handover, None);
                    }
                    Some(Command::Shutdown(kind, done)) => self.on_shutdown(kind, Some(done)),
                    Some(Command::Reconfigure(settings)) => self.reconfigure(*settings).await,
                    Some(Command::CheckVersion) => self.check_versions().await,
                },
                exit = owned_exit(&mut self.server) => self.on_owned_exit(exit).await,
                result = in_flight(&mut self.probe) => {
                    self.probe = None;
                    self.on_probe(result).await;
                }
                Some(()) = binary_changes(&mut self.binary_watch) => self.on_binary_changed().await,
                Some(done) = self.tasks.join_next() => match done {
                    Ok(done) => self.on_task_done(done).await,
                    Err(e) if e.is_cancelled() => {}
                    Err(e) => tracing::error!("a supervisor task failed: {e}"),
                },
                _ = sleep_until(wake) => self.on_timers().await,
            }
        }
    }

    /// The published status, computed from the state.
    fn status(&self) -> OllamaStatus {
        use OllamaState as S;
        let history = &self.restarts.history;
        let restarting = |attempt: u32, looping: bool| {
            let state = if looping { S::CrashLoop } else { S::Restarting };
            (state, (attempt > 0).then_some(attempt))
        };
        let mut next_restart_at = None;
        let (state, management, pid, server_version, attempt) = match &self.server {
            Server::Deciding => (S::Starting, None, None, None, None),
            Server::Unmanaged => (S::Unreachable, None, None, None, None),
            Server::Waiting { due, cause } => match cause {
                WaitCause::Crashed { attempt, looping } => {
                    next_restart_at = Some(super::rfc3339(due.wall));
                    let (state, attempt) = restarting(*attempt, *looping);
                    (state, Some(Management::Owned), None, None, attempt)
                }
                WaitCause::CannotStart | WaitCause::AdoptGrace => {
                    (S::Unreachable, None, None, None, None)
                }
            },
            Server::Remote { health } => (
                health_state(health),
                Some(Management::Remote),
                None,
                health.version().map(String::from),
                None,
            ),
            Server::Adopted {
                pid,
                health,
                manager_restarting,
            } => (
                if *manager_restarting {
                    S::Restarting
                } else {
                    health_state(health)
                },
                Some(Management::Adopted),
                *pid,
                health.version().map(String::from),
                None,
            ),
            Server::Owned(o) => {
                let (state, version, attempt) = match &o.phase {
                    Phase::Ready { version, .. } => (S::Running, Some(version.clone()), None),
                    Phase::Starting {
                        kind: StartKind::First,
                        ..
                    } => (S::Starting, None, None),
                    Phase::Starting {
                        kind: StartKind::Restart { attempt, looping },
                        ..
                    } => {
                        let (state, attempt) = restarting(*attempt, *looping);
                        (state, None, attempt)
                    }
                };
                (
                    state,
                    Some(Management::Owned),
                    Some(o.pid()),
                    version,
                    attempt,
                )
            }
            Server::Draining { owned, .. } => {
                let version = match &owned.phase {
                    Phase::Ready { version, .. } => Some(version.clone()),
                    Phase::Starting { .. } => None,
                };
                (
                    S::Restarting,
                    Some(Management::Owned),
                    Some(owned.pid()),
                    version,
                    None,
                )
            }
            Server::Stopping {
                pid,
                management,
                then,
                ..
            } => {
                let state = match then {
                    AfterStop::Shutdown(_) => S::Stopped,
                    AfterStop::Redecide => S::Starting,
                    _ => S::Restarting,
                };
                (state, Some(*management), Some(*pid), None, None)
            }
            Server::Stopped => (S::Stopped, None, None, None, None),
        };
        OllamaStatus {
            state,
            management,
            pid,
            base_url: self.settings.address.base_url.clone(),
            server_version,
            binary_version: self.binary_version.clone(),
            restarts: history.restarts,
            last_restart_reason: history.last_reason.clone(),
            last_restart_at: history.last_at.clone(),
            restart_attempt: attempt,
            next_restart_at,
            healthy_epoch: self.healthy_epoch,
            version_mismatch: self.mismatch.clone(),
        }
    }

    fn publish(&self) {
        let st = self.status();
        self.status_tx.send_if_modified(|s| {
            if *s == st {
                false
            } else {
                *s = st;
                true
            }
        });
    }

    /// The version of the server when the state is `running`.
    fn running_version(&self) -> Option<String> {
        match &self.server {
            Server::Remote {
                health: Health::Up(v),
            }
            | Server::Adopted {
                health: Health::Up(v),
                manager_restarting: false,
                ..
            }
            | Server::Owned(Owned {
                phase: Phase::Ready { version: v, .. },
                ..
            }) => Some(v.clone()),
            _ => None,
        }
    }

    fn next_wakeup(&self) -> Instant {
        let far = Instant::now() + Duration::from_secs(3600);
        let probe_due = if self.probe.is_some() {
            None
        } else {
            self.probe_due
        };
        let state_due = match &self.server {
            Server::Waiting { due, .. } => Some(due.at),
            Server::Owned(Owned {
                phase: Phase::Starting { deadline, .. },
                ..
            }) => Some(*deadline),
            _ => None,
        };
        [probe_due, state_due, Some(self.version_due)]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(far)
    }

    async fn on_timers(&mut self) {
        let now = Instant::now();
        if self.probe.is_none() && self.probe_due.is_some_and(|d| d <= now) {
            self.probe_due = None;
            self.probe_started = now;
            let client = self.client.clone();
            self.probe = Some(Box::pin(async move { client.version().await }));
        }
        if matches!(&self.server, Server::Waiting { due, .. } if due.at <= now) {
            self.spawn_owned();
        }
        if self.version_due <= now {
            self.version_due = now + self.settings.version_check_interval;
            self.check_versions().await;
        }
        if let Server::Owned(
            o @ Owned {
                phase: Phase::Starting { deadline, .. },
                ..
            },
        ) = &self.server
        {
            let pid = o.pid();
            if *deadline <= now && self.probe.is_none() {
                let reason = format!(
                    "ollama serve (pid {pid}) did not answer within {} s of starting",
                    self.settings.start_timeout.as_secs_f64()
                );
                self.kill_owned_and_restart(reason);
            }
        }
    }

    fn schedule_probe(&mut self, at: Instant) {
        self.probe_due = Some(at);
    }

    fn schedule_next_probe(&mut self) {
        let fast = matches!(
            &self.server,
            Server::Owned(Owned {
                phase: Phase::Starting { .. },
                ..
            }) | Server::Waiting {
                cause: WaitCause::AdoptGrace,
                ..
            }
        );
        let interval = if fast {
            READY_PROBE_INTERVAL
        } else {
            self.settings.probe_interval
        };
        let now = Instant::now();
        // A state change may already have asked for an earlier probe (a fresh spawn).
        let next = (self.probe_started + interval).max(now);
        if self.probe.is_none() {
            self.probe_due = Some(match self.probe_due {
                Some(d) if d < next => d,
                _ => next,
            });
        }
    }
}

fn health_state(health: &Health) -> OllamaState {
    match health {
        Health::Unknown => OllamaState::Starting,
        Health::Up(_) => OllamaState::Running,
        Health::Down(_) => OllamaState::Unreachable,
    }
}

async fn owned_exit(server: &mut Server) -> Exit {
    let exit = match server {
        Server::Owned(Owned { exit: Some(rx), .. })
        | Server::Draining {
            owned: Owned { exit: Some(rx), .. },
            ..
        } => rx,
        _ => return pending().await,
    };
    match exit.await {
        Ok(exit) => exit,
        // The waiter was aborted (handover): nothing more will come.
        Err(_) => pending().await,
    }
}

async fn in_flight(probe: &mut Option<ProbeFuture>) -> Result<String, ProbeError> {
    match probe {
        Some(f) => f.await,
        None => pending().await,
    }
}

async fn binary_changes(watch: &mut Option<(FileWatcher, mpsc::Receiver<()>)>) -> Option<()> {
    match watch {
        Some((_, changes)) => changes.recv().await,
        None => pending().await,
    }
}

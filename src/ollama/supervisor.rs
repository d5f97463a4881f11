//! The supervisor task: one event loop owning every decision about the Ollama server.
//!
//! Events: commands from the handle, the exit of our child (seen at once: a waiter task owns the
//! `Child`), probe results (a probe runs beside the loop, so an exit is never delayed by it),
//! binary-change notifications, and timers (probe, respawn, version check).

use std::collections::VecDeque;
use std::future::{pending, Future};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::signal::Signal;
use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::{sleep_until, timeout, Instant};

use super::client::{OllamaClient, ProbeError};
use super::logfile::{self, MAX_LOG_BYTES};
use super::process;
use super::record::{self, OwnershipRecord};
use super::version;
use super::{
    Command, Management, OllamaState, OllamaStatus, ShutdownKind, SupervisorHandle,
    SupervisorSettings,
};
use crate::backoff::Backoff;

/// Readiness probing after a spawn: first probe after this, then at this period.
const READY_PROBE_INTERVAL: Duration = Duration::from_millis(250);
/// Failed probes in a row that make a running owned server "hung".
const HUNG_AFTER_FAILURES: u32 = 3;
/// Healthy this long → the restart backoff starts over.
const HEALTHY_RESETS_BACKOFF: Duration = Duration::from_secs(60);
/// SIGTERM → SIGKILL grace for an owned server (and for a plain adopted one we replace).
const STOP_GRACE: Duration = Duration::from_secs(10);
/// After SIGKILL, how long to wait for the exit to be reaped.
const KILL_WAIT: Duration = Duration::from_secs(5);
/// Editors and package managers write in bursts: act once the binary has been quiet this long.
const BINARY_DEBOUNCE: Duration = Duration::from_millis(200);
/// `systemctl`/`launchctl` restart budget.
const MANAGER_TIMEOUT: Duration = Duration::from_secs(30);
/// Hosts an owned server must never reach through a proxy.
const LOOPBACK_NO_PROXY: [&str; 3] = ["127.0.0.1", "localhost", "::1"];

/// Crashes within a sliding window; `threshold` or more means a crash loop.
#[derive(Debug)]
pub(crate) struct CrashWindow {
    times: VecDeque<Instant>,
    window: Duration,
    threshold: usize,
}

impl CrashWindow {
    /// SPEC §3: 5 crashes in 5 minutes.
    pub(crate) fn new() -> CrashWindow {
        CrashWindow {
            times: VecDeque::new(),
            window: Duration::from_secs(300),
            threshold: 5,
        }
    }

    pub(crate) fn record(&mut self, now: Instant) {
        self.times.push_back(now);
        self.prune(now);
    }

    pub(crate) fn is_loop(&mut self, now: Instant) -> bool {
        self.prune(now);
        self.times.len() >= self.threshold
    }

    fn prune(&mut self, now: Instant) {
        while self
            .times
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.window)
        {
            self.times.pop_front();
        }
    }
}

/// Starts the supervisor task.
pub fn spawn(settings: SupervisorSettings) -> SupervisorHandle {
    let (status_tx, status_rx) = watch::channel(OllamaStatus::initial(&settings));
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        match OllamaClient::new(&settings.address) {
            Ok(client) => {
                Supervisor::new(settings, client, status_tx)
                    .run(cmd_rx)
                    .await
            }
            Err(e) => {
                tracing::error!("{e}");
                status_tx.send_modify(|s| {
                    s.state = OllamaState::Unreachable;
                    s.last_restart_reason = Some(e.to_string());
                });
                wait_for_shutdown(cmd_rx).await;
                status_tx.send_modify(|s| s.state = OllamaState::Stopped);
            }
        }
    });
    SupervisorHandle {
        status: status_rx,
        cmds: cmd_tx,
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
    /// Local, nothing of ours, nothing adopted: keep probing (adopt what appears) and spawn
    /// when `spawn_due` says so.
    Absent,
    Remote,
    /// Someone else's server; `pid` when `/proc` tells who listens.
    Adopted {
        pid: Option<u32>,
    },
    Owned(Owned),
}

/// An `ollama serve` of ours: spawned now, or taken back from a previous openclawd.
struct Owned {
    /// Also its process group and session id (spawned with `setsid`).
    pid: u32,
    start_time: Option<u64>,
    /// Our child's exit (`None` inside once consumed). `None` for a taken-back server: it is
    /// not our child, so its death is found by polling its pid with the probe.
    exit: Option<oneshot::Receiver<Option<ExitStatus>>>,
    /// Owns the `Child` and reaps it.
    waiter: Option<JoinHandle<()>>,
    /// Answered a probe since it was spawned or taken back.
    ready: bool,
    start_deadline: Instant,
    /// Length of `ollama.log` before the child wrote anything (to read why it failed).
    log_offset: u64,
}

/// Watches the binary's directory (package managers replace it by rename).
struct BinaryWatch {
    _watchers: Vec<RecommendedWatcher>,
    changes: mpsc::UnboundedReceiver<()>,
}

struct Supervisor {
    settings: SupervisorSettings,
    st: OllamaStatus,
    status_tx: watch::Sender<OllamaStatus>,
    client: OllamaClient,
    server: Server,
    backoff: Backoff,
    crashes: CrashWindow,
    /// A server of ours ran (or was adopted) before: the next spawn counts as a restart.
    started_once: bool,
    probe: Option<ProbeFuture>,
    probe_started: Instant,
    probe_due: Option<Instant>,
    probe_failures: u32,
    spawn_due: Option<Instant>,
    /// An adopted server vanished: probe fast while its manager may bring it back.
    in_adopt_grace: bool,
    version_due: Instant,
    binary_changed_due: Option<Instant>,
    binary_watch: Option<BinaryWatch>,
    healthy_since: Option<Instant>,
    /// We already restarted onto this binary version once; a mismatch that survives is
    /// reported, not restarted again (no restart loop on a dev build reporting another version).
    restarted_for_binary: Option<String>,
    log_follower: Option<JoinHandle<()>>,
    preload_task: Option<JoinHandle<()>>,
}

impl Supervisor {
    fn new(
        settings: SupervisorSettings,
        client: OllamaClient,
        status_tx: watch::Sender<OllamaStatus>,
    ) -> Supervisor {
        let now = Instant::now();
        Supervisor {
            st: OllamaStatus::initial(&settings),
            backoff: settings.restart_backoff.clone(),
            version_due: now + settings.version_check_interval,
            settings,
            status_tx,
            client,
            server: Server::Absent,
            crashes: CrashWindow::new(),
            started_once: false,
            probe: None,
            probe_started: now,
            probe_due: None,
            probe_failures: 0,
            spawn_due: None,
            in_adopt_grace: false,
            binary_changed_due: None,
            binary_watch: None,
            healthy_since: None,
            restarted_for_binary: None,
            log_follower: None,
            preload_task: None,
        }
    }

    async fn run(mut self, mut cmds: mpsc::UnboundedReceiver<Command>) {
        self.begin().await;
        loop {
            self.publish();
            if self.probe.is_none() && self.probe_due.is_none() {
                // Always either a probe in flight or one due.
                self.probe_due = Some(Instant::now() + self.settings.probe_interval);
            }
            let wake = self.next_wakeup();
            tokio::select! {
                cmd = cmds.recv() => match cmd {
                    None => {
                        // Every handle dropped: keep the server (as after a crash of
                        // openclawd, the next one takes it back).
                        self.shutdown(ShutdownKind::Handover).await;
                        return;
                    }
                    Some(Command::Shutdown(kind, done)) => {
                        self.shutdown(kind).await;
                        self.publish();
                        let _ = done.send(());
                        return;
                    }
                    Some(Command::Reconfigure(settings)) => self.reconfigure(*settings).await,
                    Some(Command::CheckVersion) => self.check_versions().await,
                },
                exit = owned_exit(&mut self.server) => self.on_owned_exit(exit).await,
                result = in_flight(&mut self.probe) => {
                    self.probe = None;
                    self.on_probe(result).await;
                }
                Some(()) = binary_changes(&mut self.binary_watch) => {
                    self.binary_changed_due = Some(Instant::now() + BINARY_DEBOUNCE);
                }
                _ = sleep_until(wake) => self.on_timers().await,
            }
        }
    }

    fn publish(&self) {
        self.status_tx.send_if_modified(|s| {
            if *s == self.st {
                false
            } else {
                *s = self.st.clone();
                true
            }
        });
    }

    fn next_wakeup(&self) -> Instant {
        let far = Instant::now() + Duration::from_secs(3600);
        let probe_due = if self.probe.is_some() {
            None
        } else {
            self.probe_due
        };
        let start_deadline = match &self.server {
            Server::Owned(o) if !o.ready => Some(o.start_deadline),
            _ => None,
        };
        [
            probe_due,
            self.spawn_due,
            self.binary_changed_due,
            start_deadline,
            Some(self.version_due),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(far)
    }

    // ---- start and mode decision -------------------------------------------------------

    /// Decides the mode: remote, owned (taken back from `ollama.json`), adopted, or spawn.
    async fn begin(&mut self) {
        self.st = OllamaStatus {
            restarts: self.st.restarts,
            healthy_epoch: self.st.healthy_epoch,
            last_restart_reason: self.st.last_restart_reason.take(),
            ..OllamaStatus::initial(&self.settings)
        };
        self.server = Server::Absent;
        self.probe = None;
        self.probe_failures = 0;
        self.spawn_due = None;
        self.in_adopt_grace = false;
        self.restarted_for_binary = None;
        self.binary_watch = watch_binary(&self.settings.bin);
        self.version_due = Instant::now() + self.settings.version_check_interval;
        self.refresh_binary_version().await;
        self.publish();

        if !self.settings.address.loopback {
            self.server = Server::Remote;
            self.st.management = Some(Management::Remote);
            let result = self.client.version().await;
            self.on_probe(result).await;
            return;
        }
        if self.settings.manage && self.take_back_recorded().await {
            return;
        }
        match self.client.version().await {
            Ok(v) => self.adopt(v).await,
            Err(_) if self.settings.manage => self.spawn_owned().await,
            Err(e) => {
                tracing::info!(
                    "no Ollama answers at {} ({e}); ollama.manage is off, so openclawd waits for one",
                    self.settings.address.base_url
                );
                self.st.state = OllamaState::Unreachable;
            }
        }
    }

    /// Takes back the server `ollama.json` names when it is the same process (pid and start
    /// time) and answers at our address. Cleans up after it otherwise. True when taken back.
    async fn take_back_recorded(&mut self) -> bool {
        let state_dir = self.settings.state_dir.clone();
        let rec = match record::read(&state_dir) {
            Ok(Some(r)) => r,
            Ok(None) => return false,
            Err(e) => {
                tracing::warn!("{e}");
                let _ = record::remove(&state_dir);
                return false;
            }
        };
        if !process::is_same_process(rec.pid, rec.start_time) {
            if !process::is_alive(rec.pid) {
                // Its runners may have outlived it (it was SIGKILLed with openclawd down).
                process::kill_group_and_session(rec.pid, rec.start_time);
            }
            tracing::info!(
                "the Ollama of {} (pid {}) is gone; starting fresh",
                record::record_path(&state_dir).display(),
                rec.pid
            );
            let _ = record::remove(&state_dir);
            return false;
        }
        if rec.address != self.settings.address.base_url {
            tracing::info!(
                "stopping our Ollama (pid {}) serving {}: the address is now {}",
                rec.pid,
                rec.address,
                self.settings.address.base_url
            );
            terminate_foreign_owned(rec.pid, rec.start_time).await;
            let _ = record::remove(&state_dir);
            return false;
        }
        match self.client.version().await {
            Ok(v) => {
                tracing::info!(
                    "took back our Ollama (pid {}, version {v}) from {} without restarting it",
                    rec.pid,
                    record::record_path(&state_dir).display()
                );
                let now = Instant::now();
                self.server = Server::Owned(Owned {
                    pid: rec.pid,
                    start_time: rec.start_time,
                    exit: None,
                    waiter: None,
                    ready: false,
                    start_deadline: now + self.settings.start_timeout,
                    log_offset: 0,
                });
                self.st.management = Some(Management::Owned);
                self.st.pid = Some(rec.pid);
                self.started_once = true;
                self.ensure_log_follower();
                self.on_probe(Ok(v)).await;
                true
            }
            Err(e) => {
                tracing::warn!(
                    "our Ollama (pid {}) does not answer at {} ({e}); killing it to start a new one",
                    rec.pid,
                    rec.address
                );
                process::kill_group_and_session(rec.pid, rec.start_time);
                wait_until_gone(rec.pid, rec.start_time, KILL_WAIT).await;
                let _ = record::remove(&state_dir);
                false
            }
        }
    }

    async fn adopt(&mut self, server_version: String) {
        let pid = listening_pid(self.settings.address.port);
        tracing::info!(
            "adopted the Ollama already serving {} ({}, version {server_version}); openclawd will not stop it",
            self.settings.address.base_url,
            pid.map(process::describe).unwrap_or_else(|| "pid unknown".into())
        );
        self.server = Server::Adopted { pid };
        self.st.management = Some(Management::Adopted);
        self.st.pid = pid;
        self.spawn_due = None;
        self.in_adopt_grace = false;
        self.probe_failures = 0;
        self.mark_running(server_version).await;
    }

    // ---- spawning --------------------------------------------------------------------

    async fn spawn_owned(&mut self) {
        self.spawn_due = None;
        self.in_adopt_grace = false;
        let now = Instant::now();
        let log_path = logfile::log_path(&self.settings.state_dir);
        let (log, log_offset) = match logfile::open_for_child(&log_path, MAX_LOG_BYTES) {
            Ok(x) => x,
            Err(e) => {
                let reason = format!(
                    "cannot open {} for Ollama's output: {e}; check that the state directory is writable",
                    log_path.display()
                );
                self.spawn_failed(reason);
                return;
            }
        };
        let log_err = match log.try_clone() {
            Ok(f) => f,
            Err(e) => {
                self.spawn_failed(format!("cannot duplicate {}: {e}", log_path.display()));
                return;
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
                let reason = format!(
                    "cannot start `{} serve`: {e}; install Ollama or set ollama.bin / OPENCLAWD_OLLAMA_BIN",
                    self.settings.bin.display()
                );
                self.spawn_failed(reason);
                return;
            }
        };
        let Some(pid) = child.id() else {
            // Already reaped: it cannot have run; treat as a crash.
            let status = child.try_wait().ok().flatten();
            self.crashed(format!("ollama serve {}", describe_exit(status)));
            return;
        };
        let start_time = process::start_time(pid);
        let (exit_tx, exit_rx) = oneshot::channel();
        let waiter = tokio::spawn(async move {
            let status = child.wait().await.ok();
            let _ = exit_tx.send(status);
        });
        tracing::info!(
            "started `{} serve` (pid {pid}) on {}; its output goes to {}",
            self.settings.bin.display(),
            self.settings.address.host_port(),
            log_path.display()
        );
        self.server = Server::Owned(Owned {
            pid,
            start_time,
            exit: Some(exit_rx),
            waiter: Some(waiter),
            ready: false,
            start_deadline: now + self.settings.start_timeout,
            log_offset,
        });
        if self.started_once {
            self.st.restarts += 1;
            self.st.state = if self.crashes.is_loop(now) {
                OllamaState::CrashLoop
            } else {
                OllamaState::Restarting
            };
        } else {
            self.st.state = OllamaState::Starting;
        }
        self.started_once = true;
        self.st.management = Some(Management::Owned);
        self.st.pid = Some(pid);
        self.st.server_version = None;
        self.probe = None;
        self.probe_failures = 0;
        self.healthy_since = None;
        self.schedule_probe(now + READY_PROBE_INTERVAL);
        self.write_record(pid, start_time, self.st.binary_version.clone());
        self.ensure_log_follower();
    }

    fn write_record(&self, pid: u32, start_time: Option<u64>, version: Option<String>) {
        let rec = OwnershipRecord {
            pid,
            start_time,
            binary: self.settings.bin.clone(),
            version,
            address: self.settings.address.base_url.clone(),
        };
        if let Err(e) = record::write(&self.settings.state_dir, &rec) {
            tracing::warn!("{e}");
        }
    }

    fn ensure_log_follower(&mut self) {
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
        let now = Instant::now();
        self.server = Server::Absent;
        self.st.state = OllamaState::Unreachable;
        self.st.management = None;
        self.st.pid = None;
        self.st.last_restart_reason = Some(reason);
        self.spawn_due = Some(now + self.backoff.next_delay());
        self.schedule_probe(now + self.settings.probe_interval);
    }

    /// A server of ours died or hung: count it, back off, respawn.
    fn crashed(&mut self, reason: String) {
        let now = Instant::now();
        self.crashes.record(now);
        let delay = self.backoff.next_delay();
        let looping = self.crashes.is_loop(now);
        if looping {
            tracing::error!(
                "Ollama is crash-looping ({reason}); restarting in {:.1} s",
                delay.as_secs_f64()
            );
        } else {
            tracing::warn!("{reason}; restarting in {:.1} s", delay.as_secs_f64());
        }
        self.server = Server::Absent;
        self.st.state = if looping {
            OllamaState::CrashLoop
        } else {
            OllamaState::Restarting
        };
        self.st.pid = None;
        self.st.server_version = None;
        self.st.last_restart_reason = Some(reason);
        self.healthy_since = None;
        self.probe = None;
        self.probe_failures = 0;
        self.spawn_due = Some(now + delay);
        self.schedule_probe(now + self.settings.probe_interval);
        let _ = record::remove(&self.settings.state_dir);
    }

    // ---- events -------------------------------------------------------------------------

    async fn on_owned_exit(&mut self, status: Option<ExitStatus>) {
        let Server::Owned(o) = &mut self.server else {
            return;
        };
        o.exit = None;
        let (pid, start_time, log_offset) = (o.pid, o.start_time, o.log_offset);
        // Whatever is left of its process group and session (runners) goes with it.
        process::kill_group_and_session(pid, start_time);
        let output = logfile::read_since(&logfile::log_path(&self.settings.state_dir), log_offset);
        if status.and_then(|s| s.code()) == Some(1) && output.contains("address already in use") {
            self.server = Server::Absent;
            self.st.pid = None;
            let _ = record::remove(&self.settings.state_dir);
            self.on_port_conflict().await;
            return;
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
            self.adopt(v).await;
            return;
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
        let now = Instant::now();
        self.st.state = OllamaState::Unreachable;
        self.st.management = None;
        self.st.last_restart_reason = Some(reason);
        self.spawn_due = Some(now + self.backoff.next_delay());
        self.schedule_probe(now + self.settings.probe_interval);
    }

    async fn on_probe(&mut self, result: Result<String, ProbeError>) {
        let now = Instant::now();
        match result {
            Ok(v) => {
                self.probe_failures = 0;
                match &mut self.server {
                    Server::Absent => {
                        self.adopt(v).await;
                    }
                    Server::Remote | Server::Adopted { .. } => self.mark_running(v).await,
                    Server::Owned(o) => {
                        let first = !o.ready;
                        o.ready = true;
                        let (pid, start_time) = (o.pid, o.start_time);
                        if first || self.st.server_version.as_deref() != Some(v.as_str()) {
                            self.write_record(pid, start_time, Some(v.clone()));
                        }
                        self.mark_running(v).await;
                    }
                }
                if self
                    .healthy_since
                    .is_some_and(|t| now.duration_since(t) >= HEALTHY_RESETS_BACKOFF)
                {
                    self.backoff.reset();
                }
            }
            Err(e) => {
                self.probe_failures += 1;
                self.on_probe_failure(e, now).await;
            }
        }
        self.schedule_next_probe();
    }

    async fn on_probe_failure(&mut self, e: ProbeError, now: Instant) {
        match &self.server {
            Server::Remote => self.mark_unreachable(&e),
            Server::Absent => {
                if !self.settings.manage {
                    self.mark_unreachable(&e);
                }
            }
            Server::Adopted { pid } => {
                let pid = *pid;
                let gone = matches!(e, ProbeError::Refused(_))
                    || pid.is_some_and(|p| !process::is_alive(p));
                if !gone {
                    // Hung, but not ours to restart.
                    self.mark_unreachable(&e);
                    return;
                }
                self.server = Server::Absent;
                self.st.state = OllamaState::Unreachable;
                self.st.pid = None;
                self.st.server_version = None;
                if self.settings.manage {
                    tracing::warn!(
                        "the adopted Ollama at {} stopped ({e}); giving its manager {:.1} s to bring it back before starting our own",
                        self.settings.address.base_url,
                        self.settings.adopt_grace.as_secs_f64()
                    );
                    self.st.last_restart_reason = Some(format!("the adopted Ollama stopped ({e})"));
                    self.in_adopt_grace = true;
                    self.spawn_due = Some(now + self.settings.adopt_grace);
                } else {
                    tracing::warn!(
                        "the adopted Ollama at {} stopped ({e})",
                        self.settings.address.base_url
                    );
                }
            }
            Server::Owned(o) => {
                let (pid, start_time, ready, deadline, ours) = (
                    o.pid,
                    o.start_time,
                    o.ready,
                    o.start_deadline,
                    o.exit.is_some(),
                );
                if !ours && !process::is_same_process(pid, start_time) {
                    // A taken-back server is not our child: its death shows here.
                    self.on_owned_exit(None).await;
                    return;
                }
                if !ready {
                    if now >= deadline {
                        self.kill_owned_and_restart(format!(
                            "ollama serve (pid {pid}) did not answer within {} s of starting ({e})",
                            self.settings.start_timeout.as_secs_f64()
                        ))
                        .await;
                    }
                } else if self.probe_failures >= HUNG_AFTER_FAILURES {
                    self.kill_owned_and_restart(format!(
                        "ollama serve (pid {pid}) is hung: {} probes of /api/version in a row failed ({e})",
                        self.probe_failures
                    ))
                    .await;
                }
            }
        }
    }

    fn mark_unreachable(&mut self, e: &ProbeError) {
        if self.st.state != OllamaState::Unreachable {
            tracing::warn!(
                "Ollama at {} is unreachable: {e}",
                self.settings.address.base_url
            );
        }
        self.st.state = OllamaState::Unreachable;
        self.healthy_since = None;
    }

    /// The server answered: `running`, a new healthy epoch on the transition, preload, and a
    /// version comparison.
    async fn mark_running(&mut self, server_version: String) {
        let version_changed = self.st.server_version.as_deref() != Some(server_version.as_str());
        self.st.server_version = Some(server_version);
        if self.st.state != OllamaState::Running {
            self.st.state = OllamaState::Running;
            self.st.healthy_epoch += 1;
            self.healthy_since = Some(Instant::now());
            self.started_once = true;
            tracing::info!(
                "Ollama is running at {} (version {}, {})",
                self.st.base_url,
                self.st.server_version.as_deref().unwrap_or("?"),
                management_name(self.st.management)
            );
            self.start_preload();
            self.compare_versions().await;
        } else if version_changed {
            self.compare_versions().await;
        }
    }

    fn start_preload(&mut self) {
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

    async fn on_timers(&mut self) {
        let now = Instant::now();
        if self.probe.is_none() && self.probe_due.is_some_and(|d| d <= now) {
            self.probe_due = None;
            self.probe_started = now;
            let client = self.client.clone();
            self.probe = Some(Box::pin(async move { client.version().await }));
        }
        if self.spawn_due.is_some_and(|d| d <= now) {
            self.spawn_owned().await;
        }
        if self.binary_changed_due.is_some_and(|d| d <= now) {
            self.binary_changed_due = None;
            self.on_binary_changed().await;
        }
        if self.version_due <= now {
            self.version_due = now + self.settings.version_check_interval;
            self.check_versions().await;
        }
        if let Server::Owned(o) = &self.server {
            if !o.ready && o.start_deadline <= now && self.probe.is_none() {
                let pid = o.pid;
                self.kill_owned_and_restart(format!(
                    "ollama serve (pid {pid}) did not answer within {} s of starting",
                    self.settings.start_timeout.as_secs_f64()
                ))
                .await;
            }
        }
    }

    fn schedule_probe(&mut self, at: Instant) {
        self.probe_due = Some(at);
    }

    fn schedule_next_probe(&mut self) {
        let fast = matches!(&self.server, Server::Owned(o) if !o.ready) || self.in_adopt_grace;
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

    // ---- stopping and restarting ------------------------------------------------------

    /// SIGKILL a hung (or never ready) owned server with its group, then restart with backoff.
    async fn kill_owned_and_restart(&mut self, reason: String) {
        let Server::Owned(mut o) = std::mem::replace(&mut self.server, Server::Absent) else {
            return;
        };
        process::kill_group_and_session(o.pid, o.start_time);
        wait_owned_gone(&mut o, KILL_WAIT).await;
        process::kill_group_and_session(o.pid, o.start_time);
        self.crashed(reason);
    }

    /// SIGTERM the owned group, wait up to 10 s, SIGKILL the group and what is left of its
    /// session, reap; remove `ollama.json`.
    async fn stop_owned(&mut self) {
        let Server::Owned(mut o) = std::mem::replace(&mut self.server, Server::Absent) else {
            return;
        };
        tracing::info!("stopping our Ollama (pid {})", o.pid);
        process::signal_group(o.pid, Signal::SIGTERM);
        if !wait_owned_gone(&mut o, STOP_GRACE).await {
            tracing::warn!(
                "Ollama (pid {}) did not stop within {} s of SIGTERM; killing it",
                o.pid,
                STOP_GRACE.as_secs()
            );
            process::kill_group_and_session(o.pid, o.start_time);
            wait_owned_gone(&mut o, KILL_WAIT).await;
        }
        process::kill_group_and_session(o.pid, o.start_time);
        if let Some(waiter) = o.waiter.take() {
            let _ = timeout(KILL_WAIT, waiter).await;
        }
        self.probe = None;
        self.st.pid = None;
        self.st.server_version = None;
        let _ = record::remove(&self.settings.state_dir);
    }

    /// Restart an owned server onto the installed binary (not a crash: no backoff).
    async fn graceful_restart(&mut self, reason: String) {
        tracing::info!("restarting Ollama: {reason}");
        self.st.last_restart_reason = Some(reason);
        self.st.state = OllamaState::Restarting;
        self.publish();
        self.stop_owned().await;
        self.spawn_owned().await;
    }

    async fn shutdown(&mut self, kind: ShutdownKind) {
        if let Some(t) = self.preload_task.take() {
            t.abort();
        }
        match kind {
            ShutdownKind::Stop => self.stop_owned().await,
            ShutdownKind::Handover => {
                if let Server::Owned(o) = &mut self.server {
                    tracing::info!(
                        "leaving our Ollama (pid {}) running for the next openclawd",
                        o.pid
                    );
                    // Dropping the `Child` leaves the process running (tokio reaps it if it
                    // exits while we still live).
                    if let Some(w) = o.waiter.take() {
                        w.abort();
                    }
                }
            }
        }
        if let Some(f) = self.log_follower.take() {
            f.abort();
        }
        self.binary_watch = None;
        self.st.state = OllamaState::Stopped;
    }

    async fn reconfigure(&mut self, new: SupervisorSettings) {
        let old = self.settings.clone();
        if old == new {
            return;
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
            self.stop_owned().await;
            if let Some(f) = self.log_follower.take() {
                f.abort();
            }
            match OllamaClient::new(&new.address) {
                Ok(c) => self.client = c,
                Err(e) => tracing::error!("{e}"),
            }
            self.backoff = new.restart_backoff.clone();
            self.settings = new;
            self.begin().await;
            return;
        }
        let bin_changed = old.bin != new.bin;
        let preload_changed = old.preload != new.preload;
        if old.restart_backoff != new.restart_backoff {
            self.backoff = new.restart_backoff.clone();
        }
        if old.version_check_interval != new.version_check_interval {
            self.version_due = Instant::now() + new.version_check_interval;
        }
        self.settings = new;
        if bin_changed {
            self.binary_watch = watch_binary(&self.settings.bin);
            self.restarted_for_binary = None;
            self.check_versions().await;
        }
        if preload_changed && self.st.state == OllamaState::Running {
            self.start_preload();
        }
    }

    // ---- versions ---------------------------------------------------------------------

    async fn refresh_binary_version(&mut self) -> bool {
        let before = self.st.binary_version.clone();
        match version::binary_version(&self.settings.bin).await {
            Ok(v) => self.st.binary_version = Some(v),
            Err(e) => {
                if before.is_some() || self.st.binary_version.is_none() {
                    tracing::warn!("{e}");
                }
                self.st.binary_version = None;
            }
        }
        let changed = before != self.st.binary_version;
        if changed {
            if let Some(v) = &self.st.binary_version {
                tracing::info!(
                    "installed Ollama binary {} is version {v}",
                    self.settings.bin.display()
                );
            }
        }
        changed
    }

    async fn on_binary_changed(&mut self) {
        let changed = self.refresh_binary_version().await;
        if changed && self.spawn_due.is_some() && !self.in_adopt_grace {
            // Waiting to retry after failures: a new binary deserves an immediate try.
            self.backoff.reset();
            self.spawn_due = Some(Instant::now());
        }
        self.compare_versions().await;
    }

    async fn check_versions(&mut self) {
        self.refresh_binary_version().await;
        self.compare_versions().await;
    }

    /// Acts on a server/binary version difference (exact string comparison, like Ollama).
    async fn compare_versions(&mut self) {
        if self.st.state != OllamaState::Running {
            return;
        }
        let (Some(server), Some(binary)) = (
            self.st.server_version.clone(),
            self.st.binary_version.clone(),
        ) else {
            return;
        };
        if server == binary {
            if self.st.version_mismatch.take().is_some() {
                tracing::info!("Ollama server and binary versions agree again ({server})");
            }
            return;
        }
        let reason = format!("version mismatch: server {server}, binary {binary}");
        match &self.server {
            Server::Absent => {}
            Server::Remote => {
                let advice = format!(
                    "the Ollama server at {} runs {server} while the local binary is {binary}: upgrade or restart Ollama on that host",
                    self.settings.address.base_url
                );
                if self.st.version_mismatch.as_deref() != Some(advice.as_str()) {
                    tracing::warn!("{advice}");
                }
                self.st.version_mismatch = Some(advice);
            }
            Server::Owned(_) => {
                if self.restarted_for_binary.as_deref() == Some(binary.as_str()) {
                    let advice = format!(
                        "{} reports version {binary} but the server it starts reports {server}: reinstall Ollama",
                        self.settings.bin.display()
                    );
                    if self.st.version_mismatch.as_deref() != Some(advice.as_str()) {
                        tracing::warn!("{advice}");
                    }
                    self.st.version_mismatch = Some(advice);
                    return;
                }
                self.restarted_for_binary = Some(binary);
                self.st.version_mismatch = None;
                self.graceful_restart(reason).await;
            }
            Server::Adopted { .. } => self.fix_adopted_mismatch(reason, binary).await,
        }
    }

    /// An adopted local server runs an old version: restart it through whoever runs it, or
    /// replace a plain same-user `ollama serve` with ours; otherwise tell the user the command.
    async fn fix_adopted_mismatch(&mut self, reason: String, binary: String) {
        let pid = listening_pid(self.settings.address.port).or(match self.server {
            Server::Adopted { pid } => pid,
            _ => None,
        });
        let manager = pid.map(identify_manager).unwrap_or(Manager::Unknown);
        let retried = self.restarted_for_binary.as_deref() == Some(binary.as_str());
        if retried || !self.settings.manage {
            self.report_mismatch(&reason, manager.user_command(pid));
            return;
        }
        match &manager {
            Manager::Systemd { .. } | Manager::Launchd { .. } => {
                let argv = manager.restart_argv();
                self.restarted_for_binary = Some(binary);
                match run_manager_command(&argv).await {
                    Ok(()) => {
                        tracing::info!(
                            "{reason}: restarted the adopted Ollama with `{}`",
                            argv.join(" ")
                        );
                        self.st.restarts += 1;
                        self.st.last_restart_reason = Some(reason);
                        self.st.version_mismatch = None;
                    }
                    Err(e) => {
                        tracing::warn!("`{}` failed: {e}", argv.join(" "));
                        self.report_mismatch(&reason, manager.user_command(pid));
                    }
                }
            }
            Manager::Plain(pid) => {
                let pid = *pid;
                let start_time = process::start_time(pid);
                tracing::info!(
                    "{reason}: replacing the adopted {} with our own Ollama",
                    process::describe(pid)
                );
                self.restarted_for_binary = Some(binary);
                if process::signal_pid(pid, Signal::SIGTERM).is_err()
                    || !wait_until_gone(pid, start_time, STOP_GRACE).await
                {
                    self.report_mismatch(&reason, manager.user_command(Some(pid)));
                    return;
                }
                self.server = Server::Absent;
                self.st.last_restart_reason = Some(reason);
                self.st.state = OllamaState::Restarting;
                self.st.version_mismatch = None;
                self.st.pid = None;
                self.st.server_version = None;
                self.spawn_owned().await;
            }
            Manager::Unknown => self.report_mismatch(&reason, manager.user_command(pid)),
        }
    }

    fn report_mismatch(&mut self, reason: &str, command: String) {
        if self.st.version_mismatch.as_deref() != Some(command.as_str()) {
            tracing::warn!("{reason}; openclawd cannot restart this Ollama itself, run: {command}");
        }
        self.st.version_mismatch = Some(command);
    }
}

/// Who runs an adopted server, and so how it can be restarted.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Manager {
    Systemd {
        unit: String,
        user: bool,
    },
    Launchd {
        label: String,
        uid: u32,
    },
    /// A same-user process running `ollama serve`: we may replace it.
    Plain(u32),
    Unknown,
}

impl Manager {
    fn restart_argv(&self) -> Vec<String> {
        match self {
            Manager::Systemd { unit, user } => {
                let mut argv = vec!["systemctl".to_string(), "--no-ask-password".to_string()];
                if *user {
                    argv.push("--user".into());
                }
                argv.extend(["restart".to_string(), unit.clone()]);
                argv
            }
            Manager::Launchd { label, uid } => vec![
                "launchctl".into(),
                "kickstart".into(),
                "-k".into(),
                format!("gui/{uid}/{label}"),
            ],
            Manager::Plain(_) | Manager::Unknown => Vec::new(),
        }
    }

    /// The exact command the user must run when openclawd could not.
    fn user_command(&self, pid: Option<u32>) -> String {
        match self {
            Manager::Systemd { unit, user: true } => format!("systemctl --user restart {unit}"),
            Manager::Systemd { unit, user: false } => format!("sudo systemctl restart {unit}"),
            Manager::Launchd { label, uid } => format!("launchctl kickstart -k gui/{uid}/{label}"),
            Manager::Plain(pid) => format!("kill {pid}"),
            Manager::Unknown => match pid {
                Some(pid) if process::is_same_user(pid) => format!("kill {pid}"),
                Some(pid) => format!("sudo kill {pid}"),
                None if cfg!(target_os = "macos") => {
                    "osascript -e 'tell app \"Ollama\" to quit' && open -a Ollama".to_string()
                }
                None => "restart the Ollama server so it runs the installed binary".to_string(),
            },
        }
    }
}

fn identify_manager(pid: u32) -> Manager {
    if let Some((unit, user)) = process::systemd_unit(pid) {
        return Manager::Systemd { unit, user };
    }
    let uid = nix::unistd::getuid().as_raw();
    if cfg!(target_os = "macos") && launchd_job_pid(uid, "homebrew.mxcl.ollama") == Some(pid) {
        return Manager::Launchd {
            label: "homebrew.mxcl.ollama".into(),
            uid,
        };
    }
    if process::is_same_user(pid)
        && process::cmdline(pid).is_some_and(|a| process::runs_ollama_serve(&a))
    {
        return Manager::Plain(pid);
    }
    Manager::Unknown
}

/// The pid of a launchd job (`launchctl print gui/<uid>/<label>` → `pid = N`).
fn launchd_job_pid(uid: u32, label: &str) -> Option<u32> {
    let out = std::process::Command::new("launchctl")
        .args(["print", &format!("gui/{uid}/{label}")])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.trim().strip_prefix("pid = ")?.trim().parse().ok())
}

async fn run_manager_command(argv: &[String]) -> Result<(), String> {
    let (prog, args) = argv.split_first().ok_or("no command")?;
    let child = tokio::process::Command::new(prog)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| e.to_string())?;
    let out = timeout(MANAGER_TIMEOUT, child.wait_with_output())
        .await
        .map_err(|_| format!("no answer within {} s", MANAGER_TIMEOUT.as_secs()))?
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{} ({})",
            describe_exit(Some(out.status)),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

// ---- helpers ---------------------------------------------------------------------------

async fn owned_exit(server: &mut Server) -> Option<ExitStatus> {
    match server {
        Server::Owned(Owned { exit: Some(rx), .. }) => rx.await.ok().flatten(),
        _ => pending().await,
    }
}

async fn in_flight(probe: &mut Option<ProbeFuture>) -> Result<String, ProbeError> {
    match probe {
        Some(f) => f.await,
        None => pending().await,
    }
}

async fn binary_changes(watch: &mut Option<BinaryWatch>) -> Option<()> {
    match watch {
        Some(w) => w.changes.recv().await,
        None => pending().await,
    }
}

/// Waits until an owned server is gone: its exit for our child, its pid otherwise.
async fn wait_owned_gone(o: &mut Owned, limit: Duration) -> bool {
    if let Some(rx) = o.exit.as_mut() {
        let gone = timeout(limit, rx).await.is_ok();
        if gone {
            o.exit = None;
        }
        gone
    } else {
        wait_until_gone(o.pid, o.start_time, limit).await
    }
}

/// Polls until `pid` (with that start time) is gone or a zombie.
async fn wait_until_gone(pid: u32, start_time: Option<u64>, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if !process::is_same_process(pid, start_time) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Stops an owned server that is not our child (taken from `ollama.json`).
async fn terminate_foreign_owned(pid: u32, start_time: Option<u64>) {
    process::signal_group(pid, Signal::SIGTERM);
    if !wait_until_gone(pid, start_time, STOP_GRACE).await {
        process::kill_group_and_session(pid, start_time);
        wait_until_gone(pid, start_time, KILL_WAIT).await;
    }
    process::kill_group_and_session(pid, start_time);
}

/// Stops the Ollama `ollama.json` names when no openclawd runs (`openclawd stop`): SIGTERM to
/// its group, 10 s grace, SIGKILL, then removes the record. Returns the pid it stopped, or
/// `None` when the record was absent or named a process that is gone (the record is removed).
pub async fn stop_recorded(state_dir: &Path) -> Result<Option<u32>, record::RecordError> {
    let Some(rec) = record::read(state_dir)? else {
        return Ok(None);
    };
    let stopped = if process::is_same_process(rec.pid, rec.start_time) {
        terminate_foreign_owned(rec.pid, rec.start_time).await;
        Some(rec.pid)
    } else {
        if !process::is_alive(rec.pid) {
            process::kill_group_and_session(rec.pid, rec.start_time);
        }
        None
    };
    record::remove(state_dir)?;
    Ok(stopped)
}

/// The process listening on `port`; of several sharing the socket, the one running
/// `ollama serve`.
fn listening_pid(port: u16) -> Option<u32> {
    let pids = process::listener_on_port(port)?.pids;
    pids.iter()
        .copied()
        .find(|p| process::cmdline(*p).is_some_and(|a| process::runs_ollama_serve(&a)))
        .or_else(|| pids.first().copied())
}

fn describe_exit(status: Option<ExitStatus>) -> String {
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

fn management_name(m: Option<Management>) -> &'static str {
    match m {
        Some(Management::Owned) => "owned",
        Some(Management::Adopted) => "adopted",
        Some(Management::Remote) => "remote",
        None => "unmanaged",
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
fn resolve_bin(bin: &Path) -> Option<PathBuf> {
    if bin.components().count() > 1 {
        return Some(bin.to_path_buf());
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(bin))
        .find(|p| p.is_file())
}

/// Watches the directory of the binary (and of its symlink target) for changes to that name.
fn watch_binary(bin: &Path) -> Option<BinaryWatch> {
    let path = resolve_bin(bin)?;
    let mut targets = vec![path.clone()];
    if let Ok(real) = std::fs::canonicalize(&path) {
        if real != path {
            targets.push(real);
        }
    }
    let (tx, changes) = mpsc::unbounded_channel();
    let mut watchers = Vec::new();
    for target in targets {
        let (Some(dir), Some(name)) = (target.parent(), target.file_name()) else {
            continue;
        };
        let name = name.to_os_string();
        let tx = tx.clone();
        let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            let Ok(event) = res else { return };
            if matches!(event.kind, EventKind::Access(_)) {
                return; // our own `--version` runs open it
            }
            if event
                .paths
                .iter()
                .any(|p| p.file_name() == Some(name.as_os_str()))
            {
                let _ = tx.send(());
            }
        });
        match watcher {
            Ok(mut w) => match w.watch(dir, RecursiveMode::NonRecursive) {
                Ok(()) => watchers.push(w),
                Err(e) => tracing::warn!(
                    "cannot watch {} for Ollama upgrades: {e}; the version is still checked periodically",
                    dir.display()
                ),
            },
            Err(e) => tracing::warn!("cannot watch for Ollama upgrades: {e}"),
        }
    }
    (!watchers.is_empty()).then_some(BinaryWatch {
        _watchers: watchers,
        changes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn five_crashes_within_five_minutes_is_a_crash_loop() {
        let mut w = CrashWindow::new();
        for _ in 0..4 {
            w.record(Instant::now());
            tokio::time::advance(Duration::from_secs(30)).await;
        }
        assert!(!w.is_loop(Instant::now()), "4 crashes are not a loop");
        w.record(Instant::now());
        assert!(w.is_loop(Instant::now()), "the 5th within 5 min is");
    }

    #[tokio::test(start_paused = true)]
    async fn crashes_older_than_the_window_fall_out() {
        let mut w = CrashWindow::new();
        for _ in 0..5 {
            w.record(Instant::now());
            tokio::time::advance(Duration::from_secs(10)).await;
        }
        assert!(w.is_loop(Instant::now()));
        // The first crash was 50 s ago; 4 min 10 s + later it is 5 min old.
        tokio::time::advance(Duration::from_secs(250)).await;
        assert!(
            !w.is_loop(Instant::now()),
            "the oldest crash left the window"
        );
        w.record(Instant::now());
        assert!(w.is_loop(Instant::now()), "a new crash makes 5 again");
    }

    #[tokio::test(start_paused = true)]
    async fn crashes_spread_wider_than_the_window_never_loop() {
        let mut w = CrashWindow::new();
        for _ in 0..20 {
            w.record(Instant::now());
            assert!(!w.is_loop(Instant::now()));
            // 76 s apart: at most 4 fit in any 5-minute window.
            tokio::time::advance(Duration::from_secs(76)).await;
        }
    }

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

    #[test]
    fn user_commands_name_the_manager() {
        let sys = Manager::Systemd {
            unit: "ollama.service".into(),
            user: false,
        };
        assert_eq!(
            sys.user_command(Some(1)),
            "sudo systemctl restart ollama.service"
        );
        assert_eq!(
            sys.restart_argv(),
            [
                "systemctl",
                "--no-ask-password",
                "restart",
                "ollama.service"
            ]
        );
        let user = Manager::Systemd {
            unit: "ollama.service".into(),
            user: true,
        };
        assert_eq!(
            user.user_command(None),
            "systemctl --user restart ollama.service"
        );
        let brew = Manager::Launchd {
            label: "homebrew.mxcl.ollama".into(),
            uid: 501,
        };
        assert_eq!(
            brew.user_command(None),
            "launchctl kickstart -k gui/501/homebrew.mxcl.ollama"
        );
        assert_eq!(Manager::Plain(77).user_command(Some(77)), "kill 77");
    }
}

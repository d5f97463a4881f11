//! PortReclaimer (SPEC §6): before the gateway binds, find whoever listens on the port and
//! decide. Only a process of the same user that is positively identified (another openclawd, an
//! OpenClaw gateway) is ever signalled; everything else is refused with a message that says
//! what holds the port and what to do.

use std::collections::BTreeSet;
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::future::select_ok;
use nix::sys::signal::Signal;
use serde::Serialize;
use tokio::time::{sleep, timeout, Instant};

use crate::config::ReclaimPolicy;
use crate::procinfo::{
    self as process, IdentityError, ListenerSocket, ProcessInfo, ProcessRef, SignalError,
};

const OPENCLAWD: &str = "openclawd";
const POLL: Duration = Duration::from_millis(50);
/// Rounds of find → classify → stop, for holders that reappear (a service manager restarting
/// a gateway) or vanish while we look.
const MAX_ROUNDS: usize = 3;
/// The most of a lock file that is read.
const LOCK_FILE_LIMIT: u64 = 64 * 1024;

/// Frees the gateway port from a stale openclawd or OpenClaw gateway.
#[derive(Debug, Clone)]
pub struct PortReclaimer {
    pub port: u16,
    /// `<state>`: holds `openclawd/openclawd.pid`.
    pub state_dir: PathBuf,
    /// `gateway.reclaim` from openclawd.json.
    pub policy: ReclaimPolicy,
    /// `--force`: stop a healthy OpenClaw gateway too.
    pub force: bool,
    /// `--takeover` (what `openclawd restart` does): hand over from a live openclawd.
    pub takeover: bool,
    /// How long `/health` may take before the holder counts as stale (2 s).
    pub health_timeout: Duration,
    /// Where OpenClaw gateway lock files (`gateway.*.lock`) live; see [`Self::default_lock_dirs`].
    pub lock_dirs: Vec<PathBuf>,
    /// How long a signalled process gets to exit before SIGKILL (5 s).
    pub exit_timeout: Duration,
    /// How long to wait for the port to be released after the holder exited (5 s).
    pub release_timeout: Duration,
}

/// What held the port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Holder {
    Openclawd,
    OpenclawGateway,
}

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Holder::Openclawd => "openclawd",
            Holder::OpenclawGateway => "an OpenClaw gateway",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Reclaim {
    /// Nothing listened on the port.
    AlreadyFree,
    /// `pid` was stopped and the port is free now.
    Reclaimed { pid: u32, what: Holder, why: String },
}

#[derive(Debug, thiserror::Error)]
pub enum PortError {
    #[error("openclawd is already running (pid {pid})")]
    AlreadyRunning { pid: u32 },
    #[error(
        "port {port} is held by a healthy OpenClaw gateway (pid {pid}, `{command}`): stop it with \
         {stop_hint}, or start openclawd with --force (or set gateway.reclaim: \"force\" in \
         openclawd.json) to stop it, or set gateway.port / --port to use another port"
    )]
    HealthyGateway {
        pid: u32,
        port: u16,
        command: String,
        stop_hint: String,
    },
    #[error(
        "port {port} is held by {what} (pid {pid}, `{command}`) and gateway.reclaim is \"never\": \
         stop it with {stop_hint}, or set gateway.port / --port"
    )]
    ReclaimDisabled {
        pid: u32,
        port: u16,
        what: Holder,
        command: String,
        stop_hint: String,
    },
    #[error(
        "port {port} is held by pid {pid} (`{command}`, user {owner}), which is neither openclawd \
         nor an OpenClaw gateway; openclawd does not stop other programs: stop it or set \
         gateway.port / --port"
    )]
    Foreign {
        pid: u32,
        port: u16,
        command: String,
        owner: String,
    },
    #[error(
        "port {port} is held by pid {pid} (`{command}`) of user {owner}, not by you; openclawd \
         never signals another user's process: ask its owner to stop it, or set gateway.port / \
         --port"
    )]
    OtherUser {
        pid: u32,
        port: u16,
        command: String,
        owner: String,
    },
    #[error(
        "port {port} is held by {holder}, which openclawd is not permitted to inspect; stop it \
         or set gateway.port / --port"
    )]
    Unidentified { port: u16, holder: String },
    #[error(
        "port {port} is still in use after stopping pid {pid}; check `ss -ltnp 'sport = :{port}'` \
         (or `lsof -iTCP:{port}`) and stop it, or set gateway.port / --port"
    )]
    StillBusy { port: u16, pid: u32 },
    #[error("port {port} is already held by this openclawd process")]
    HeldByThisProcess { port: u16 },
    #[error("cannot find out who listens on port {port}: {source}")]
    Inspect { port: u16, source: io::Error },
    #[error("cannot send {signal} to pid {pid}: {source}")]
    Signal {
        pid: u32,
        signal: &'static str,
        source: io::Error,
    },
}

/// A holder we decided to stop, pinned since it was classified.
struct Target {
    proc: ProcessRef,
    signal: Signal,
    what: Holder,
    why: String,
}

impl PortReclaimer {
    /// Defaults: no `--force`/`--takeover`, 2 s health timeout, 5 s to exit, 5 s to release,
    /// OpenClaw's lock dirs for this user.
    pub fn new(port: u16, state_dir: PathBuf, policy: ReclaimPolicy) -> PortReclaimer {
        PortReclaimer {
            port,
            lock_dirs: Self::default_lock_dirs(&state_dir),
            state_dir,
            policy,
            force: false,
            takeover: false,
            health_timeout: Duration::from_secs(2),
            exit_timeout: Duration::from_secs(5),
            release_timeout: Duration::from_secs(5),
        }
    }

    /// `$TMPDIR/openclaw-<uid>` (Node's `os.tmpdir()`, OpenClaw ≤ 2026.7), `/tmp/openclaw-<uid>`
    /// when `TMPDIR` points elsewhere, and `<state>/tmp/openclaw-<uid>` (OpenClaw ≥ 2026.8).
    pub fn default_lock_dirs(state_dir: &Path) -> Vec<PathBuf> {
        let leaf = format!("openclaw-{}", nix::unistd::getuid().as_raw());
        let tmp = std::env::var_os("TMPDIR")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/tmp"));
        let mut dirs = vec![tmp.join(&leaf)];
        let plain_tmp = Path::new("/tmp").join(&leaf);
        if !dirs.contains(&plain_tmp) {
            dirs.push(plain_tmp);
        }
        dirs.push(state_dir.join("tmp").join(&leaf));
        dirs
    }

    /// Makes sure nothing listens on the port, stopping a stale openclawd (SIGUSR2, the
    /// handover) or OpenClaw gateway (SIGTERM) if that is what holds it. Refuses — never
    /// signals — anything else.
    pub async fn free_port(&self) -> Result<Reclaim, PortError> {
        let mut reclaimed: Option<Reclaim> = None;
        for _ in 0..MAX_ROUNDS {
            let sockets = self.listeners().await?;
            if sockets.is_empty() {
                return Ok(reclaimed.unwrap_or(Reclaim::AlreadyFree));
            }
            let targets = self.classify_all(&sockets).await?;
            for target in &targets {
                self.stop(target).await?;
            }
            if let Some(first) = targets.first() {
                reclaimed = Some(Reclaim::Reclaimed {
                    pid: first.proc.pid(),
                    what: first.what,
                    why: first.why.clone(),
                });
            }
            let pids: BTreeSet<u32> = targets.iter().map(|t| t.proc.pid()).collect();
            self.wait_released(&pids).await?;
        }
        let sockets = self.listeners().await?;
        match sockets.iter().flat_map(|s| s.pids.iter()).next() {
            None if sockets.is_empty() => Ok(reclaimed.unwrap_or(Reclaim::AlreadyFree)),
            Some(&pid) => Err(PortError::StillBusy {
                port: self.port,
                pid,
            }),
            None => Err(PortError::Unidentified {
                port: self.port,
                holder: "a socket of no visible process".into(),
            }),
        }
    }

    async fn listeners(&self) -> Result<Vec<ListenerSocket>, PortError> {
        let port = self.port;
        tokio::task::spawn_blocking(move || process::find_listeners(port))
            .await
            .map_err(|e| PortError::Inspect {
                port,
                source: io::Error::other(e),
            })?
            .map_err(|source| PortError::Inspect { port, source })
    }

    /// Classifies every holder; one refusal refuses the whole reclaim (nothing is signalled).
    async fn classify_all(&self, sockets: &[ListenerSocket]) -> Result<Vec<Target>, PortError> {
        let mut seen = BTreeSet::new();
        let mut targets = Vec::new();
        for socket in sockets {
            if socket.pids.is_empty() {
                let holder = match socket.owner_uid {
                    Some(uid) => format!("a process of user {}", user_name(uid)),
                    None => "a process".into(),
                };
                return Err(PortError::Unidentified {
                    port: self.port,
                    holder,
                });
            }
            for &pid in &socket.pids {
                if !seen.insert(pid) {
                    continue;
                }
                let proc = match tokio::task::spawn_blocking(move || ProcessRef::inspect(pid)).await
                {
                    Ok(Ok(proc)) => proc,
                    // It exited while we looked: nothing to stop.
                    Ok(Err(IdentityError::Gone { .. })) => continue,
                    Ok(Err(_)) | Err(_) => {
                        return Err(PortError::Unidentified {
                            port: self.port,
                            holder: format!("pid {pid}"),
                        })
                    }
                };
                targets.push(self.classify(proc, socket.addr).await?);
            }
        }
        Ok(targets)
    }

    async fn classify(&self, proc: ProcessRef, addr: IpAddr) -> Result<Target, PortError> {
        let port = self.port;
        let info = proc.info().clone();
        if info.pid == std::process::id() {
            return Err(PortError::HeldByThisProcess { port });
        }
        if info.uid != nix::unistd::geteuid().as_raw() {
            return Err(PortError::OtherUser {
                pid: info.pid,
                port,
                command: info.command(),
                owner: user_name(info.uid),
            });
        }
        if self.is_openclawd(&proc) {
            let live = !info.exe_replaced && self.answers(addr, &["/health"]).await;
            if live && !self.takeover {
                return Err(PortError::AlreadyRunning { pid: info.pid });
            }
            let why = if info.exe_replaced {
                "its executable was replaced or deleted since it started (an upgrade)".to_string()
            } else if live {
                "handover requested (--takeover)".to_string()
            } else {
                format!(
                    "it did not answer /health within {}",
                    humantime::format_duration(self.health_timeout)
                )
            };
            return self.target(proc, Holder::Openclawd, Signal::SIGUSR2, why);
        }
        if let Some(evidence) = self.gateway_evidence(&info) {
            let healthy = !info.exe_replaced && self.answers(addr, &["/health", "/healthz"]).await;
            let why = if info.exe_replaced {
                format!("{evidence}; its executable was replaced or deleted since it started")
            } else if healthy {
                if !(self.force || self.policy == ReclaimPolicy::Force) {
                    return Err(PortError::HealthyGateway {
                        pid: info.pid,
                        port,
                        command: info.command(),
                        stop_hint: stop_hint(&info),
                    });
                }
                format!("{evidence}; healthy, but --force / gateway.reclaim \"force\" is set")
            } else {
                format!(
                    "{evidence}; it did not answer /health or /healthz within {}",
                    humantime::format_duration(self.health_timeout)
                )
            };
            return self.target(proc, Holder::OpenclawGateway, Signal::SIGTERM, why);
        }
        Err(PortError::Foreign {
            pid: info.pid,
            port,
            command: info.command(),
            owner: user_name(info.uid),
        })
    }

    fn target(
        &self,
        proc: ProcessRef,
        what: Holder,
        signal: Signal,
        why: String,
    ) -> Result<Target, PortError> {
        let info = proc.info();
        if self.policy == ReclaimPolicy::Never {
            return Err(PortError::ReclaimDisabled {
                pid: info.pid,
                port: self.port,
                what,
                command: info.command(),
                stop_hint: match what {
                    Holder::Openclawd => "`openclawd stop`".into(),
                    Holder::OpenclawGateway => stop_hint(info),
                },
            });
        }
        Ok(Target {
            proc,
            signal,
            what,
            why,
        })
    }

    /// Named `openclawd` (argv[0] or executable), or named by our pid file with its start time
    /// — provided the pid file is not older than the process.
    fn is_openclawd(&self, proc: &ProcessRef) -> bool {
        let info = proc.info();
        if info.argv0_name() == Some(OPENCLAWD) || info.exe_name() == Some(OPENCLAWD) {
            return true;
        }
        let Ok(Some(record)) = crate::service::control::read_record(&self.state_dir) else {
            return false;
        };
        if record.pid != info.pid || &record.start != proc.start_time() {
            return false;
        }
        let written = std::fs::metadata(crate::service::control::pid_file(&self.state_dir))
            .and_then(|m| m.modified())
            .ok();
        crate::service::control::pid_file_not_older(written, info.started_at)
    }

    /// Why we believe `info` is an OpenClaw gateway, if we do.
    fn gateway_evidence(&self, info: &ProcessInfo) -> Option<String> {
        if let Some(lock) = self.matching_lock(info) {
            return Some(format!("OpenClaw gateway lock {} names it", lock.display()));
        }
        let command = info.argv.join(" ").to_lowercase();
        (command.contains("openclaw") && command.contains("gateway"))
            .then(|| "its command line is an OpenClaw gateway's".to_string())
    }

    /// A `gateway.*.lock` naming this pid (and, on Linux, its exact start time), in a lock
    /// directory we may trust: ours and writable by nobody else. Lock files are opened without
    /// following symlinks or blocking (a FIFO there must not hang us), and only regular files
    /// are read.
    fn matching_lock(&self, info: &ProcessInfo) -> Option<PathBuf> {
        for dir in &self.lock_dirs {
            if !dir.exists() {
                continue;
            }
            if let Err(why) = crate::fsutil::check_private_dir(dir) {
                tracing::warn!("ignoring the OpenClaw lock directory: {why}");
                continue;
            }
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name();
                let name = name.to_string_lossy();
                if !(name.starts_with("gateway.") && name.ends_with(".lock")) {
                    continue;
                }
                let path = entry.path();
                let Ok(bytes) = crate::fsutil::read_regular_file(&path, LOCK_FILE_LIMIT) else {
                    continue;
                };
                let Ok(lock) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
                    continue;
                };
                if lock.get("pid").and_then(|p| p.as_u64()) != Some(u64::from(info.pid)) {
                    continue;
                }
                let start_matches = if cfg!(target_os = "linux") {
                    let recorded = lock.get("startTime").and_then(|s| s.as_u64());
                    recorded.is_some() && recorded == info.start_ticks
                } else {
                    true
                };
                if start_matches {
                    return Some(path);
                }
            }
        }
        None
    }

    /// Any of `paths` answers 2xx within the health timeout.
    async fn answers(&self, addr: IpAddr, paths: &[&str]) -> bool {
        let host = match addr {
            IpAddr::V4(a) if a.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(a) if a.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            other => other,
        };
        let base = SocketAddr::new(host, self.port);
        // Proxy variables must not capture a loopback probe.
        let Ok(client) = reqwest::Client::builder()
            .no_proxy()
            .timeout(self.health_timeout)
            .build()
        else {
            return false;
        };
        let probes = paths.iter().map(|path| {
            let request = client.get(format!("http://{base}{path}"));
            Box::pin(async move {
                match request.send().await {
                    Ok(resp) if resp.status().is_success() => Ok(()),
                    _ => Err(()),
                }
            })
        });
        matches!(
            timeout(self.health_timeout, select_ok(probes)).await,
            Ok(Ok(_))
        )
    }

    /// Signal, then wait up to `exit_timeout` for the holder to exit *or to let go of the
    /// port*: an openclawd handing over closes its listener at once and drains its streams for
    /// up to 10 s, and is never killed for that (SPEC §8). Only a holder that neither exits nor
    /// releases the port within the wait (stale) gets SIGKILL.
    async fn stop(&self, target: &Target) -> Result<(), PortError> {
        let proc = &target.proc;
        let info = proc.info();
        // Pinned at classification: a pid reused since then is never signalled.
        if !proc.is_same() {
            return Ok(());
        }
        tracing::warn!(
            pid = info.pid,
            port = self.port,
            command = %info.command(),
            "stopping {} (pid {}) to free port {} with {}: {}",
            target.what,
            info.pid,
            self.port,
            target.signal.as_str(),
            target.why
        );
        if let Some(unit) = &info.service {
            tracing::warn!(
                "pid {} runs in systemd unit {}, which may start it again; stop the unit to \
                 keep it from fighting over port {}",
                info.pid,
                unit.name,
                self.port
            );
        }
        if !signal(proc, target.signal)? {
            return Ok(());
        }
        if self.wait_exit_or_release(proc, self.exit_timeout).await? {
            return Ok(());
        }
        tracing::warn!(
            pid = info.pid,
            "pid {} neither exited nor let go of port {} within {} of {}; sending SIGKILL",
            info.pid,
            self.port,
            humantime::format_duration(self.exit_timeout),
            target.signal.as_str()
        );
        if signal(proc, Signal::SIGKILL)? {
            proc.wait_gone(self.exit_timeout).await;
        }
        Ok(())
    }

    /// `true` once `proc` has exited or no longer listens on the port (it is draining).
    async fn wait_exit_or_release(
        &self,
        proc: &ProcessRef,
        limit: Duration,
    ) -> Result<bool, PortError> {
        let deadline = Instant::now() + limit;
        loop {
            if !proc.is_same() {
                return Ok(true);
            }
            let sockets = self.listeners().await?;
            if !sockets.iter().any(|s| s.pids.contains(&proc.pid())) {
                tracing::info!(
                    pid = proc.pid(),
                    "pid {} let go of port {}; it may finish its requests",
                    proc.pid(),
                    self.port
                );
                return Ok(true);
            }
            if Instant::now() >= deadline {
                return Ok(false);
            }
            sleep(POLL).await;
        }
    }

    /// Waits until none of `stopped` listens any more. A different process listening by then
    /// is left to the next round to classify.
    async fn wait_released(&self, stopped: &BTreeSet<u32>) -> Result<(), PortError> {
        let deadline = Instant::now() + self.release_timeout;
        loop {
            let sockets = self.listeners().await?;
            let still = sockets
                .iter()
                .flat_map(|s| s.pids.iter())
                .find(|pid| stopped.contains(pid));
            match still {
                None if sockets.iter().all(|s| !s.pids.is_empty()) => return Ok(()),
                Some(&pid) if Instant::now() >= deadline => {
                    return Err(PortError::StillBusy {
                        port: self.port,
                        pid,
                    })
                }
                // Orphaned sockets with no visible holder: the next round refuses them.
                None if Instant::now() >= deadline => return Ok(()),
                _ => sleep(POLL).await,
            }
        }
    }
}

/// Sends `signal`; `Ok(false)` when the process had already exited.
fn signal(proc: &ProcessRef, signal: Signal) -> Result<bool, PortError> {
    match proc.signal(signal) {
        Ok(()) => Ok(true),
        Err(SignalError::Gone { .. }) => Ok(false),
        Err(SignalError::Os { source, .. }) => Err(PortError::Signal {
            pid: proc.pid(),
            signal: signal.as_str(),
            source,
        }),
        // Not a group signal: cannot happen here.
        Err(e @ SignalError::GroupUnproven { .. }) => Err(PortError::Signal {
            pid: proc.pid(),
            signal: signal.as_str(),
            source: io::Error::other(e.to_string()),
        }),
    }
}

/// How a person stops this gateway themselves.
fn stop_hint(info: &ProcessInfo) -> String {
    match &info.service {
        Some(unit) if unit.user => format!("`systemctl --user stop {}`", unit.name),
        Some(unit) => format!("`sudo systemctl stop {}`", unit.name),
        None if cfg!(target_os = "macos") => format!(
            "`openclaw gateway stop` (or `launchctl bootout gui/{}/ai.openclaw.gateway`)",
            info.uid
        ),
        None => "`openclaw gateway stop` (or Ctrl-C where `openclaw gateway` runs)".into(),
    }
}

fn user_name(uid: u32) -> String {
    match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
        Ok(Some(user)) => user.name,
        _ => format!("uid {uid}"),
    }
}

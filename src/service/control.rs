//! `openclawd start | stop | restart` without a service manager: a background `openclawd run`
//! in its own session, its output appended to `<state>/logs/openclawd.log`, found again by
//! the pid file the daemon writes once it listens (`<state>/openclawd/openclawd.pid`).
//!
//! The background process is a fresh `exec` of openclawd (fork + setsid + exec), not a fork of
//! the CLI: the CLI may already have run threads (HTTP probes), and a forked copy of a
//! multi-threaded process is not safe to keep running.

use std::ffi::OsString;
use std::fs::OpenOptions;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::ollama::process;

/// How long `start` waits for the new daemon to answer.
pub const START_WAIT: Duration = Duration::from_secs(60);
/// How long `stop` waits after SIGTERM: a 10 s drain, then up to 10 s for Ollama to stop.
pub const STOP_WAIT: Duration = Duration::from_secs(40);

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("cannot open the log file {}: {source}", path.display())]
    Log {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot start {}: {source}", exe.display())]
    Spawn {
        exe: PathBuf,
        source: std::io::Error,
    },
    #[error("openclawd exited during start-up ({status}); the end of {}:\n{tail}", log.display())]
    Exited {
        status: String,
        log: PathBuf,
        tail: String,
    },
    #[error("openclawd (pid {pid}) did not answer within {} s; see {}", START_WAIT.as_secs(), log.display())]
    NoAnswer { pid: u32, log: PathBuf },
}

/// `<state>/openclawd/openclawd.pid`, written by the daemon once it listens.
pub fn pid_file(state_dir: &Path) -> PathBuf {
    state_dir.join("openclawd").join("openclawd.pid")
}

/// `<state>/logs/openclawd.log`, the background daemon's output.
pub fn log_file(state_dir: &Path) -> PathBuf {
    state_dir.join("logs").join("openclawd.log")
}

/// The pid the pid file names, if any.
pub fn read_pid(state_dir: &Path) -> Option<u32> {
    std::fs::read_to_string(pid_file(state_dir))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Whether `pid` is a live openclawd (its command line says so where `/proc` can tell).
pub fn is_openclawd(pid: u32) -> bool {
    if !process::is_alive(pid) {
        return false;
    }
    match process::cmdline(pid) {
        Some(argv) => argv
            .first()
            .is_some_and(|a0| Path::new(a0).file_name().is_some_and(|n| n == "openclawd")),
        // No /proc (macOS): the pid file is removed on every clean exit; trust a live pid.
        None => !Path::new("/proc/self").exists(),
    }
}

/// The pid of the openclawd the pid file names, when it is alive.
pub fn running_pid(state_dir: &Path) -> Option<u32> {
    read_pid(state_dir).filter(|p| is_openclawd(*p))
}

/// Starts `<exe> <global args> run [--takeover]` in its own session, output appended to the
/// log file. Returns the child (not yet known to be healthy).
pub fn spawn_background(
    exe: &Path,
    global_args: &[OsString],
    takeover: bool,
    state_dir: &Path,
) -> Result<Child, ControlError> {
    let log = log_file(state_dir);
    let open = || {
        if let Some(dir) = log.parent() {
            std::fs::create_dir_all(dir)?;
        }
        OpenOptions::new().create(true).append(true).open(&log)
    };
    let out = open().map_err(|source| ControlError::Log {
        path: log.clone(),
        source,
    })?;
    let err = out.try_clone().map_err(|source| ControlError::Log {
        path: log.clone(),
        source,
    })?;
    let mut cmd = Command::new(exe);
    cmd.args(global_args).arg("run");
    if takeover {
        cmd.arg("--takeover");
    }
    cmd.stdin(Stdio::null()).stdout(out).stderr(err);
    // SAFETY: setsid(2) is async-signal-safe and touches no memory of the parent; this
    // closure runs between fork and exec, where only such calls are allowed.
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid()
                .map(|_| ())
                .map_err(std::io::Error::from)
        });
    }
    cmd.spawn().map_err(|source| ControlError::Spawn {
        exe: exe.to_path_buf(),
        source,
    })
}

fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exit code {c}"),
        (None, Some(s)) => format!("killed by signal {s}"),
        _ => "exited".into(),
    }
}

/// The last `lines` lines of a file.
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Waits until `answers()` reports the child's pid as the running daemon, or the child exits.
/// The log's length at spawn time lets an error show only this start's output.
pub fn wait_started(
    child: &mut Child,
    state_dir: &Path,
    log_len_before: u64,
    answers: impl Fn() -> Option<u32>,
) -> Result<u32, ControlError> {
    let pid = child.id();
    let log = log_file(state_dir);
    let deadline = Instant::now() + START_WAIT;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let text = std::fs::read(&log).unwrap_or_default();
            let start = (log_len_before as usize).min(text.len());
            let mine = String::from_utf8_lossy(&text[start..]);
            let lines: Vec<&str> = mine.lines().collect();
            return Err(ControlError::Exited {
                status: describe(status),
                log,
                tail: lines[lines.len().saturating_sub(15)..].join("\n"),
            });
        }
        if read_pid(state_dir) == Some(pid) && answers() == Some(pid) {
            return Ok(pid);
        }
        if Instant::now() >= deadline {
            return Err(ControlError::NoAnswer { pid, log });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// How a stop went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// Exited after SIGTERM (it stopped its Ollama itself).
    Gracefully,
    /// Needed SIGKILL after [`STOP_WAIT`].
    Killed,
    /// Was gone before we signalled.
    AlreadyGone,
}

/// SIGTERM, wait, SIGKILL if it must.
pub fn stop_pid(pid: u32, wait: Duration) -> Stopped {
    let start = process::start_time(pid);
    if process::signal_pid(pid, Signal::SIGTERM).is_err() {
        return Stopped::AlreadyGone;
    }
    if wait_gone(pid, start, wait) {
        return Stopped::Gracefully;
    }
    if process::is_same_process(pid, start) {
        let _ = process::signal_pid(pid, Signal::SIGKILL);
        wait_gone(pid, start, Duration::from_secs(5));
    }
    Stopped::Killed
}

/// Polls until `pid` (with that start time) is gone.
pub fn wait_gone(pid: u32, start_time: Option<u64>, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if !process::is_same_process(pid, start_time) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pid_file_naming_a_dead_or_foreign_process_is_not_a_running_daemon() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(running_pid(dir.path()), None);
        std::fs::create_dir_all(dir.path().join("openclawd")).unwrap();
        // This test process is alive but is not openclawd.
        std::fs::write(pid_file(dir.path()), format!("{}\n", std::process::id())).unwrap();
        assert_eq!(read_pid(dir.path()), Some(std::process::id()));
        if Path::new("/proc/self").exists() {
            assert_eq!(running_pid(dir.path()), None);
        }
        std::fs::write(pid_file(dir.path()), "999999999\n").unwrap();
        assert_eq!(running_pid(dir.path()), None);
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("log");
        std::fs::write(&f, "a\nb\nc\nd\n").unwrap();
        assert_eq!(tail(&f, 2), "c\nd");
        assert_eq!(tail(&f, 10), "a\nb\nc\nd");
    }
}

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
use std::time::{Duration, Instant, SystemTime};

use nix::sys::signal::Signal;

use crate::procinfo::{validate_pid, IdentityError, ProcessInfo, ProcessRef, StartTime};

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

/// Slack between a process's start time (whole seconds) and its pid file's mtime.
const PID_FILE_SLACK: Duration = Duration::from_secs(2);

/// What `openclawd.pid` records: the daemon's pid and start time.
///
/// The file is `<pid>\n` followed by `start=<start time>\n`: its first line is still the bare
/// pid older tools and scripts read (`head -n1`), the start time proves which process that pid
/// was. A file without the start time (an older openclawd's) is reported and ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PidRecord {
    pub pid: u32,
    pub start: StartTime,
}

impl PidRecord {
    /// This process.
    pub fn own() -> Result<PidRecord, IdentityError> {
        let me = ProcessRef::inspect(std::process::id())?;
        Ok(PidRecord {
            pid: me.pid(),
            start: me.start_time().clone(),
        })
    }

    pub fn render(&self) -> String {
        format!("{}\nstart={}\n", self.pid, self.start)
    }

    /// Parses a pid file; `Err` says what is wrong with it.
    pub fn parse(text: &str) -> Result<PidRecord, String> {
        let mut lines = text.lines();
        let first = lines.next().unwrap_or("").trim();
        let raw: i64 = first
            .parse()
            .map_err(|_| format!("its first line {first:?} is not a pid"))?;
        let pid = validate_pid(raw).map_err(|e| e.to_string())?;
        let start = lines
            .filter_map(|l| l.trim().strip_prefix("start="))
            .next()
            .ok_or_else(|| IdentityError::NoStartTime { pid }.to_string())?;
        let start = StartTime::parse(start)
            .ok_or_else(|| format!("its start time {start:?} is not valid"))?;
        Ok(PidRecord { pid, start })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PidFileError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is not a valid openclawd pid file ({why}); it is ignored and nothing is signalled", path.display())]
    Invalid { path: PathBuf, why: String },
    #[error("{} names pid {pid}: {source}", path.display())]
    Unproven {
        path: PathBuf,
        pid: u32,
        source: IdentityError,
    },
    #[error(
        "{} names pid {pid} (`{command}`), which is not an openclawd of yours started before the \
         file was written; it is ignored and nothing is signalled",
        path.display()
    )]
    NotOpenclawd {
        path: PathBuf,
        pid: u32,
        command: String,
    },
}

/// Reads the pid file; `Ok(None)` when there is none.
pub fn read_record(state_dir: &Path) -> Result<Option<PidRecord>, PidFileError> {
    let path = pid_file(state_dir);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(PidFileError::Read { path, source }),
    };
    PidRecord::parse(&text)
        .map(Some)
        .map_err(|why| PidFileError::Invalid { path, why })
}

/// Writes this process's pid file atomically; returns its path.
pub fn write_pid_file(state_dir: &Path) -> Result<PathBuf, std::io::Error> {
    let path = pid_file(state_dir);
    let record = PidRecord::own().map_err(std::io::Error::other)?;
    crate::fsutil::write_atomic(&path, record.render().as_bytes())?;
    Ok(path)
}

/// Removes the pid file at `path` if it still names this process: after a handover it names
/// the new daemon, whose file the old one must not remove on its way out.
pub fn remove_pid_file_if_own(path: &Path) {
    let names_us = std::fs::read_to_string(path)
        .ok()
        .and_then(|text| PidRecord::parse(&text).ok())
        .is_some_and(|r| r.pid == std::process::id());
    if names_us {
        let _ = std::fs::remove_file(path);
    }
}

/// The openclawd the pid file names, proven: the recorded start time matches the live process,
/// which runs as our user under the name `openclawd`, and started before the file was written.
/// `Ok(None)`: no pid file, or the process it names has exited (a stale file). `Err`: the file
/// is invalid or names something we cannot prove is ours — report it; nothing may be signalled.
pub fn running(state_dir: &Path) -> Result<Option<ProcessRef>, PidFileError> {
    let Some(record) = read_record(state_dir)? else {
        return Ok(None);
    };
    let path = pid_file(state_dir);
    let proc = match ProcessRef::recorded(i64::from(record.pid), Some(&record.start)) {
        Ok(p) => p,
        Err(e) if e.is_stale() => return Ok(None),
        Err(source) => {
            return Err(PidFileError::Unproven {
                path,
                pid: record.pid,
                source,
            })
        }
    };
    let written = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
    if is_openclawd(proc.info(), written) {
        Ok(Some(proc))
    } else {
        Err(PidFileError::NotOpenclawd {
            path,
            pid: record.pid,
            command: proc.info().command(),
        })
    }
}

/// A process of our user named `openclawd` (argv[0] or executable) whose pid file was written
/// after it started (a pid file older than the process names a pid since reused).
pub fn is_openclawd(info: &ProcessInfo, pid_file_written: Option<SystemTime>) -> bool {
    let named = info.argv0_name() == Some("openclawd") || info.exe_name() == Some("openclawd");
    let ours = info.uid == nix::unistd::getuid().as_raw();
    named && ours && pid_file_not_older(pid_file_written, info.started_at)
}

/// The pid file was written after the process started (else it names a reused pid).
pub fn pid_file_not_older(written: Option<SystemTime>, started: Option<SystemTime>) -> bool {
    match (written, started) {
        (Some(written), Some(started)) => written + PID_FILE_SLACK >= started,
        (None, _) => false,
        // macOS: no wall-clock start; the start time the file records already matched.
        (Some(_), None) => true,
    }
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
        let recorded = read_record(state_dir).ok().flatten().map(|r| r.pid);
        if recorded == Some(pid) && answers() == Some(pid) {
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
    /// Needed SIGKILL after the wait.
    Killed,
    /// Was gone before we signalled.
    AlreadyGone,
    /// Still running after SIGTERM and SIGKILL (e.g. stuck in the kernel).
    StillRunning,
}

/// SIGTERM, wait up to `wait`, SIGKILL if it must — all through the proven [`ProcessRef`].
pub async fn stop(proc: &ProcessRef, wait: Duration) -> Stopped {
    if proc.signal(Signal::SIGTERM).is_err() {
        return Stopped::AlreadyGone;
    }
    if proc.wait_gone(wait).await {
        return Stopped::Gracefully;
    }
    let _ = proc.signal(Signal::SIGKILL);
    if proc.wait_gone(Duration::from_secs(5)).await {
        Stopped::Killed
    } else {
        Stopped::StillRunning
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pid_file_naming_a_dead_or_foreign_process_is_not_a_running_daemon() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(running(dir.path()), Ok(None)));
        std::fs::create_dir_all(dir.path().join("openclawd")).unwrap();
        // This test process is alive, proven by its start time, but is not openclawd.
        let me = PidRecord::own().unwrap();
        std::fs::write(pid_file(dir.path()), me.render()).unwrap();
        assert_eq!(read_record(dir.path()).unwrap(), Some(me.clone()));
        assert!(matches!(
            running(dir.path()),
            Err(PidFileError::NotOpenclawd { .. })
        ));
        // A wrong start time: another process now holds the pid — stale, not ours.
        let wrong = PidRecord {
            pid: me.pid,
            start: StartTime::parse("1").unwrap(),
        };
        std::fs::write(pid_file(dir.path()), wrong.render()).unwrap();
        assert!(matches!(running(dir.path()), Ok(None)));
        std::fs::write(pid_file(dir.path()), "999999999\nstart=5\n").unwrap();
        assert!(matches!(running(dir.path()), Ok(None)));
    }

    #[test]
    fn pid_files_without_a_start_time_or_with_a_bad_pid_are_invalid() {
        for text in [
            "",
            "abc\n",
            "0\nstart=1\n",
            "1\nstart=1\n",
            "-1\nstart=1\n",
            "4294967295\nstart=1\n",
            "2147483648\nstart=1\n",
            "1234\n",
            "1234\nstart=\n",
        ] {
            assert!(PidRecord::parse(text).is_err(), "{text:?}");
        }
        let r = PidRecord::parse("1234\nstart=Mon Nov 30 04:08:09 2026\n").unwrap();
        assert_eq!(r.pid, 1234);
        assert_eq!(PidRecord::parse(&r.render()).unwrap(), r);
        // The first line stays the bare pid for `head -n1` readers.
        assert_eq!(r.render().lines().next(), Some("1234"));
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

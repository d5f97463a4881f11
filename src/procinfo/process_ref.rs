//! [`ProcessRef`]: one process, proven by pid *and* start time, and the only way openclawd
//! signals anything (SPEC §3 "Identity before any signal").
//!
//! A pid alone names whoever holds that number now; after a crash or a reboot that may be a
//! stranger's process. A `ProcessRef` is made only once the process's start time is known (and,
//! for a recorded process, equal to the one recorded), and every signal re-checks it:
//!
//! - Linux: a pidfd is opened *before* the start time is read and held until the `ProcessRef` is
//!   dropped; signals go through `pidfd_send_signal`, so they can never reach a later process
//!   that reuses the pid. Liveness is the pidfd's readiness (readable once the process exited).
//!   Kernels without pidfds (< 5.3) fall back to re-reading `/proc/<pid>/stat` before `kill`.
//! - macOS: the start time is `ps -o lstart=` (whole seconds), re-read before every `kill`.
//!
//! Unknown identity is an error, never "probably the same": a process whose start time cannot
//! be read is reported to the caller and not signalled.

use std::fmt;
use std::io;
use std::time::Duration;

use nix::sys::signal::Signal;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::ProcessInfo;

/// Smallest pid a record may name: 0 and 1 (init) are never ours, and `kill(0|-1, …)` would
/// reach a whole group or every process.
pub const MIN_PID: u32 = 2;
/// Largest pid a record may name (`pid_t` is an `i32`; anything above turns negative).
pub const MAX_PID: u32 = i32::MAX as u32;

const POLL: Duration = Duration::from_millis(50);

/// When a process started, in the platform's own terms: clock ticks after boot on Linux
/// (`/proc/<pid>/stat` field 22, the number OpenClaw's gateway lock records), the `ps -o lstart=`
/// text on macOS. Opaque otherwise: only compared for equality. Serialised as a string; a JSON
/// number (ticks, what older records hold) is accepted on input.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StartTime(String);

impl StartTime {
    /// Linux start ticks.
    pub fn from_ticks(ticks: u64) -> StartTime {
        StartTime(ticks.to_string())
    }

    /// A recorded start time: one non-empty line of at most 64 characters.
    pub fn parse(text: &str) -> Option<StartTime> {
        let text = text.trim();
        (!text.is_empty() && text.len() <= 64 && !text.contains(['\n', '\r', '\0']))
            .then(|| StartTime(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The Linux tick count, when this start time is one.
    pub fn ticks(&self) -> Option<u64> {
        self.0.parse().ok()
    }
}

impl fmt::Display for StartTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for StartTime {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for StartTime {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<StartTime, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Ticks(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Ticks(t) => Ok(StartTime::from_ticks(t)),
            Raw::Text(s) => StartTime::parse(&s)
                .ok_or_else(|| serde::de::Error::custom("an empty or multi-line start time")),
        }
    }
}

/// Why a process could not be proven to be the one meant. Nothing is signalled in any case.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("{0} is not a valid process id (expected {MIN_PID}..={MAX_PID})")]
    InvalidPid(i64),
    #[error(
        "no start time is recorded for pid {pid}, so it cannot be told from a process that \
         reused the pid; it is left alone"
    )]
    NoStartTime { pid: u32 },
    #[error("pid {pid} is not running")]
    Gone { pid: u32 },
    #[error(
        "pid {pid} is another process now (started at {actual}, the record says {recorded}): \
         the pid was reused; it is left alone"
    )]
    Reused {
        pid: u32,
        recorded: StartTime,
        actual: StartTime,
    },
    #[error("cannot tell which process pid {pid} is ({source}); it is left alone")]
    Unknown { pid: u32, source: io::Error },
}

impl IdentityError {
    /// The process named is not running (gone or replaced by another): a stale record, as
    /// opposed to one whose identity could not be checked.
    pub fn is_stale(&self) -> bool {
        matches!(
            self,
            IdentityError::Gone { .. } | IdentityError::Reused { .. }
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SignalError {
    #[error("pid {pid} has exited; {signal} was not sent")]
    Gone { pid: u32, signal: &'static str },
    #[error(
        "process group {pgid} is neither one openclawd created nor led by a proven process; \
         {signal} was not sent"
    )]
    GroupUnproven { pgid: u32, signal: &'static str },
    #[error("cannot send {signal} to pid {pid}: {source}")]
    Os {
        pid: u32,
        signal: &'static str,
        source: io::Error,
    },
}

/// Checks a pid read from a record or a lock file: `2..=i32::MAX`.
pub fn validate_pid(raw: i64) -> Result<u32, IdentityError> {
    u32::try_from(raw)
        .ok()
        .filter(|p| (MIN_PID..=MAX_PID).contains(p))
        .ok_or(IdentityError::InvalidPid(raw))
}

/// One process, pinned: its pid, its start time and (Linux) a pidfd. See the module docs.
#[derive(Debug)]
pub struct ProcessRef {
    pid: u32,
    start: StartTime,
    info: ProcessInfo,
    /// openclawd created this process's group (spawned it with `process_group(0)`).
    own_group: bool,
    /// It led its own process group when inspected (pgid == pid).
    leads_group: bool,
    #[cfg(target_os = "linux")]
    pidfd: Option<std::os::fd::OwnedFd>,
}

impl ProcessRef {
    /// Pins whatever process runs as `pid` now and reads what it is ([`Self::info`]). For a
    /// process found just now (a port's listener); a pid from a record goes through
    /// [`Self::recorded`] instead, so a reused pid is told apart.
    pub fn inspect(pid: u32) -> Result<ProcessRef, IdentityError> {
        let pid = validate_pid(i64::from(pid))?;
        #[cfg(target_os = "linux")]
        let pidfd = match super::linux::pidfd_open(pid) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {
                return Err(IdentityError::Gone { pid })
            }
            Err(source) => return Err(IdentityError::Unknown { pid, source }),
        };
        let info = match super::inspect(pid) {
            Ok(info) => info,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(IdentityError::Gone { pid })
            }
            Err(source) => return Err(IdentityError::Unknown { pid, source }),
        };
        let Some(start) = info.start.as_deref().and_then(StartTime::parse) else {
            return Err(IdentityError::Unknown {
                pid,
                source: io::Error::new(io::ErrorKind::InvalidData, "no start time"),
            });
        };
        let leads_group = info.pgid == Some(pid);
        let this = ProcessRef {
            pid,
            start,
            info,
            own_group: false,
            leads_group,
            #[cfg(target_os = "linux")]
            pidfd,
        };
        // What was read belongs to the pinned process only if it had not exited meanwhile.
        if !this.is_same() {
            return Err(IdentityError::Gone { pid });
        }
        Ok(this)
    }

    /// The process a record names (`openclawd.pid`, `ollama.json`): the pid must be valid,
    /// the start time recorded and equal to the running process's.
    pub fn recorded(pid: i64, start: Option<&StartTime>) -> Result<ProcessRef, IdentityError> {
        let pid = validate_pid(pid)?;
        let Some(recorded) = start else {
            return Err(IdentityError::NoStartTime { pid });
        };
        let this = ProcessRef::inspect(pid)?;
        if &this.start != recorded {
            return Err(IdentityError::Reused {
                pid,
                recorded: recorded.clone(),
                actual: this.start,
            });
        }
        Ok(this)
    }

    /// A child openclawd spawned itself, pinned before it can be reaped (so its pid cannot
    /// have been reused). `own_group`: it was spawned as the leader of a new process group
    /// (`process_group(0)`), which [`Self::signal_group`] may then signal.
    pub fn child(pid: u32, own_group: bool) -> Result<ProcessRef, IdentityError> {
        let mut this = ProcessRef::inspect(pid)?;
        this.own_group = own_group;
        Ok(this)
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn start_time(&self) -> &StartTime {
        &self.start
    }

    /// What the process was when pinned (uid, command line, executable, service unit).
    pub fn info(&self) -> &ProcessInfo {
        &self.info
    }

    /// Still running (not a zombie) and still the process pinned.
    pub fn is_same(&self) -> bool {
        #[cfg(target_os = "linux")]
        if let Some(fd) = &self.pidfd {
            return !super::linux::pidfd_exited(fd);
        }
        super::still_running(self.pid, Some(self.start.as_str()))
    }

    /// Sends `signal` to this process only. [`SignalError::Gone`] when it has exited (or its
    /// pid now belongs to another process, which is not signalled).
    pub fn signal(&self, signal: Signal) -> Result<(), SignalError> {
        let name = signal.as_str();
        let gone = || SignalError::Gone {
            pid: self.pid,
            signal: name,
        };
        #[cfg(target_os = "linux")]
        if let Some(fd) = &self.pidfd {
            return match super::linux::pidfd_send_signal(fd, signal as i32) {
                Ok(()) => Ok(()),
                Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Err(gone()),
                Err(source) => Err(SignalError::Os {
                    pid: self.pid,
                    signal: name,
                    source,
                }),
            };
        }
        // No pidfd: the narrowest window there is — re-check, then signal.
        if !self.is_same() {
            return Err(gone());
        }
        match nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid as i32), signal) {
            Ok(()) => Ok(()),
            Err(nix::errno::Errno::ESRCH) => Err(gone()),
            Err(e) => Err(SignalError::Os {
                pid: self.pid,
                signal: name,
                source: e.into(),
            }),
        }
    }

    /// Sends `signal` to the process group this process leads — only when openclawd created
    /// that group ([`Self::child`] with `own_group`) or the process was seen leading it.
    ///
    /// While the leader runs, its pid (= the group id) cannot be reused, so the group gets one
    /// `killpg` after the leader is re-checked. Once the leader has exited the group id proves
    /// nothing: each remaining member is then found, pinned and signalled on its own, and only
    /// members of the same user that started no earlier than the leader count. Returns how
    /// many processes were signalled (the group counts as one).
    pub fn signal_group(&self, signal: Signal) -> Result<usize, SignalError> {
        let name = signal.as_str();
        if !(self.own_group || self.leads_group) {
            return Err(SignalError::GroupUnproven {
                pgid: self.pid,
                signal: name,
            });
        }
        let mut sent = 0;
        if self.is_same() {
            match nix::sys::signal::killpg(nix::unistd::Pid::from_raw(self.pid as i32), signal) {
                Ok(()) => sent += 1,
                Err(nix::errno::Errno::ESRCH) => {}
                Err(e) => {
                    return Err(SignalError::Os {
                        pid: self.pid,
                        signal: name,
                        source: e.into(),
                    })
                }
            }
        }
        for member in super::group_members(self.pid) {
            if member == self.pid {
                continue;
            }
            let Ok(proc) = ProcessRef::inspect(member) else {
                continue;
            };
            let started_no_earlier = match (proc.start.ticks(), self.start.ticks()) {
                (Some(m), Some(leader)) => m >= leader,
                // macOS start times are whole-second dates: membership and uid must do.
                _ => true,
            };
            if proc.info.pgid == Some(self.pid)
                && proc.info.uid == self.info.uid
                && started_no_earlier
                && proc.signal(signal).is_ok()
            {
                sent += 1;
            }
        }
        Ok(sent)
    }

    /// Polls (on `tokio::time`) until the process has exited; `false` if it still runs after
    /// `limit`.
    pub async fn wait_gone(&self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if !self.is_same() {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    fn sleeper() -> std::process::Child {
        Command::new("sleep")
            .arg("30")
            .stdin(Stdio::null())
            .spawn()
            .expect("sleep")
    }

    #[test]
    fn records_with_bad_pids_or_no_start_time_are_refused() {
        for raw in [0, 1, -1, i64::from(i32::MAX) + 1, u32::MAX as i64 + 7] {
            assert!(
                matches!(
                    ProcessRef::recorded(raw, Some(&StartTime::from_ticks(1))),
                    Err(IdentityError::InvalidPid(_))
                ),
                "{raw}"
            );
        }
        let me = i64::from(std::process::id());
        assert!(matches!(
            ProcessRef::recorded(me, None),
            Err(IdentityError::NoStartTime { .. })
        ));
    }

    #[test]
    fn a_wrong_start_time_is_a_reused_pid_and_nothing_is_signalled() {
        let mut child = sleeper();
        let pid = child.id();
        let real = ProcessRef::inspect(pid).unwrap();
        let wrong = StartTime::parse("12345").unwrap();
        assert_ne!(real.start_time(), &wrong);
        assert!(matches!(
            ProcessRef::recorded(i64::from(pid), Some(&wrong)),
            Err(IdentityError::Reused { .. })
        ));
        // The right one is accepted and can signal.
        let proven = ProcessRef::recorded(i64::from(pid), Some(real.start_time())).unwrap();
        assert!(proven.is_same());
        proven.signal(Signal::SIGKILL).unwrap();
        child.wait().unwrap();
        // Exited and reaped: the pinned process is gone, and a signal says so.
        assert!(!proven.is_same());
        assert!(matches!(
            proven.signal(Signal::SIGTERM),
            Err(SignalError::Gone { .. })
        ));
    }

    #[tokio::test]
    async fn a_zombie_counts_as_gone() {
        let mut child = sleeper();
        let proc = ProcessRef::child(child.id(), false).unwrap();
        proc.signal(Signal::SIGKILL).unwrap();
        // Not reaped yet: a zombie.
        assert!(proc.wait_gone(Duration::from_secs(5)).await);
        child.wait().unwrap();
    }

    #[test]
    fn a_group_is_signalled_only_when_ours_or_led_by_the_process() {
        use std::os::unix::process::CommandExt;
        // Not a group leader (it is in our group): refused.
        let mut plain = sleeper();
        let p = ProcessRef::inspect(plain.id()).unwrap();
        assert!(matches!(
            p.signal_group(Signal::SIGKILL),
            Err(SignalError::GroupUnproven { .. })
        ));
        assert!(p.is_same(), "nothing was sent");
        p.signal(Signal::SIGKILL).unwrap();
        plain.wait().unwrap();

        // A group we created: the shell leader and its `sleep` child both go.
        let mut leader = Command::new("sh")
            .args(["-c", "sleep 30 & wait"])
            .process_group(0)
            .spawn()
            .unwrap();
        let group = ProcessRef::child(leader.id(), true).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let member = loop {
            if let Some(m) = super::super::group_members(group.pid())
                .into_iter()
                .find(|m| *m != group.pid())
            {
                break m;
            }
            assert!(std::time::Instant::now() < deadline, "no group member");
            std::thread::sleep(Duration::from_millis(20));
        };
        let member = ProcessRef::inspect(member).unwrap();
        assert!(group.signal_group(Signal::SIGKILL).unwrap() >= 1);
        leader.wait().unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while member.is_same() {
            assert!(
                std::time::Instant::now() < deadline,
                "group member survived"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn start_times_round_trip_and_accept_old_numeric_records() {
        let t: StartTime = serde_json::from_str("91234567").unwrap();
        assert_eq!(t.ticks(), Some(91234567));
        assert_eq!(serde_json::to_string(&t).unwrap(), "\"91234567\"");
        let mac: StartTime = serde_json::from_str("\"Mon Nov 30 04:08:09 2026\"").unwrap();
        assert_eq!(mac.ticks(), None);
        assert!(serde_json::from_str::<StartTime>("\"\"").is_err());
    }
}

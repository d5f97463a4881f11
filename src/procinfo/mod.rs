//! What the machine says about a process: who listens on a port, which user runs it, its
//! command line, start time and service unit. One platform-neutral set of functions, with the
//! Linux (`/proc`) and macOS (`lsof` + `ps`) back ends behind it. Used by the port reclaimer
//! and the Ollama supervisor alike.

use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// A listening TCP socket on the port in question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ListenerSocket {
    /// Local address it listens on (`0.0.0.0`/`::` for any).
    pub addr: IpAddr,
    /// Socket owner as the kernel reports it (Linux), even when its process is hidden from us.
    pub owner_uid: Option<u32>,
    /// Processes holding the socket; empty when none could be inspected.
    pub pids: Vec<u32>,
}

/// The systemd unit running a process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceUnit {
    pub name: String,
    /// Under the user's manager (`systemctl --user`) rather than the system one.
    pub user: bool,
}

/// What a process is, read once (see [`ProcessRef::info`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessInfo {
    pub pid: u32,
    /// Real user id.
    pub uid: u32,
    pub argv: Vec<String>,
    /// The executable (without the ` (deleted)` marker).
    pub exe: Option<PathBuf>,
    /// The executable was deleted or replaced since the process started (an upgrade).
    pub exe_replaced: bool,
    /// Opaque start marker compared before signalling, so a reused pid is never signalled.
    pub start: Option<String>,
    /// Linux: `/proc/<pid>/stat` field 22, what OpenClaw's gateway lock records.
    pub start_ticks: Option<u64>,
    pub started_at: Option<SystemTime>,
    /// Process group id, where the platform tells.
    pub pgid: Option<u32>,
    pub service: Option<ServiceUnit>,
}

impl ProcessInfo {
    /// The command line as one string, for messages.
    pub fn command(&self) -> String {
        if self.argv.is_empty() {
            self.exe
                .as_ref()
                .map(|e| e.display().to_string())
                .unwrap_or_else(|| "?".into())
        } else {
            self.argv.join(" ")
        }
    }

    pub fn argv0_name(&self) -> Option<&str> {
        self.argv
            .first()
            .and_then(|a| Path::new(a).file_name())
            .and_then(|n| n.to_str())
    }

    pub fn exe_name(&self) -> Option<&str> {
        self.exe
            .as_ref()
            .and_then(|e| e.file_name())
            .and_then(|n| n.to_str())
    }
}

/// The systemd unit a process runs in, from the text of `/proc/<pid>/cgroup` (v1 or v2).
pub(crate) fn service_unit(cgroup: &str) -> Option<ServiceUnit> {
    cgroup.lines().find_map(|line| {
        let path = line.rsplit_once(':')?.1;
        let name = path
            .split('/')
            .rfind(|seg| seg.ends_with(".service") && !seg.starts_with("user@"))?;
        Some(ServiceUnit {
            name: name.to_string(),
            user: path.contains("/user@"),
        })
    })
}

mod process_ref;
pub use process_ref::{validate_pid, IdentityError, ProcessRef, SignalError, StartTime};

#[cfg(target_os = "linux")]
pub(crate) use linux::{find_listeners, group_members, inspect, still_running};
#[cfg(target_os = "linux")]
pub(crate) mod linux;

#[cfg(all(unix, not(target_os = "linux")))]
pub(crate) use lsof::{find_listeners, group_members, inspect, still_running};

#[cfg(not(unix))]
pub(crate) fn find_listeners(_port: u16) -> io::Result<Vec<ListenerSocket>> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "finding the process on a port is not supported on this platform",
    ))
}
#[cfg(not(unix))]
pub(crate) fn inspect(_pid: u32) -> io::Result<ProcessInfo> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "unsupported platform",
    ))
}
#[cfg(not(unix))]
pub(crate) fn group_members(_pgid: u32) -> Vec<u32> {
    Vec::new()
}
#[cfg(not(unix))]
pub(crate) fn still_running(_pid: u32, _start: Option<&str>) -> bool {
    false
}

/// macOS (and other Unixes without `/proc/net/tcp`): `lsof` and `ps`. Compiled on every Unix
/// so it is type-checked on Linux too.
#[cfg(unix)]
#[cfg_attr(target_os = "linux", allow(dead_code))]
mod lsof {
    use super::*;
    use std::process::Command;

    pub(crate) fn find_listeners(port: u16) -> io::Result<Vec<ListenerSocket>> {
        let out = Command::new("lsof")
            .args(["-nP", &format!("-iTCP:{port}"), "-sTCP:LISTEN", "-t"])
            .output()
            .map_err(|e| io::Error::new(e.kind(), format!("cannot run lsof: {e}")))?;
        // lsof exits 1 with no output when nothing matches.
        let pids: Vec<u32> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect();
        if pids.is_empty() {
            return Ok(Vec::new());
        }
        Ok(vec![ListenerSocket {
            addr: IpAddr::V4(Ipv4Addr::LOCALHOST),
            owner_uid: None,
            pids,
        }])
    }

    /// `ps -o uid=,pgid=,stat=,lstart=,command=`: uid, process group, state, a five-word start
    /// date, then the command line. A zombie counts as gone.
    pub(crate) fn inspect(pid: u32) -> io::Result<ProcessInfo> {
        let out = Command::new("ps")
            .args([
                "-o",
                "uid=,pgid=,stat=,lstart=,command=",
                "-p",
                &pid.to_string(),
            ])
            .output()
            .map_err(|e| io::Error::new(e.kind(), format!("cannot run ps: {e}")))?;
        let text = String::from_utf8_lossy(&out.stdout);
        let words: Vec<&str> = text.split_whitespace().collect();
        if !out.status.success() || words.len() < 9 || words[2].starts_with('Z') {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("no process {pid}"),
            ));
        }
        let uid = words[0].parse::<u32>().map_err(|_| {
            io::Error::new(io::ErrorKind::InvalidData, format!("bad ps output: {text}"))
        })?;
        let argv: Vec<String> = words[8..].iter().map(|w| w.to_string()).collect();
        Ok(ProcessInfo {
            pid,
            uid,
            exe: argv.first().map(PathBuf::from),
            argv,
            exe_replaced: false,
            start: Some(words[3..8].join(" ")),
            start_ticks: None,
            started_at: None,
            pgid: words[1].parse().ok(),
            service: None,
        })
    }

    /// The pids in process group `pgid` (`ps -A -o pid=,pgid=`).
    pub(crate) fn group_members(pgid: u32) -> Vec<u32> {
        let Ok(out) = Command::new("ps").args(["-A", "-o", "pid=,pgid="]).output() else {
            return Vec::new();
        };
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| {
                let mut w = l.split_whitespace();
                let pid = w.next()?.parse::<u32>().ok()?;
                (w.next()?.parse::<u32>().ok()? == pgid).then_some(pid)
            })
            .collect()
    }

    pub(crate) fn still_running(pid: u32, start: Option<&str>) -> bool {
        match inspect(pid) {
            Ok(info) => start.map_or(true, |s| info.start.as_deref() == Some(s)),
            Err(_) => false,
        }
    }
}

//! Small, Linux-first helpers over `/proc`: liveness with zombie awareness, start times, process
//! sessions, the pid listening on a TCP port. Nothing here signals: that is
//! [`procinfo::ProcessRef`](crate::procinfo::ProcessRef)'s alone. On systems without `/proc`
//! every lookup answers "unknown" (`None` / empty) rather than failing.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// The fields of `/proc/<pid>/stat` the supervisor needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    /// One-letter state (`R`, `S`, `Z`, ...).
    pub state: char,
    pub ppid: u32,
    pub pgid: u32,
    pub session: u32,
    /// Clock ticks since boot (field 22): with the pid, identifies one process for good.
    pub start_time: u64,
}

/// `/proc/<pid>/stat` of `pid`, when the platform has `/proc`.
pub fn stat(pid: u32) -> Option<ProcStat> {
    #[cfg(target_os = "linux")]
    {
        crate::procinfo::linux::read_stat(pid)
            .ok()
            .map(|s| ProcStat {
                state: s.state,
                ppid: s.ppid,
                pgid: s.pgid,
                session: s.session,
                start_time: s.start_ticks,
            })
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = pid;
        None
    }
}

/// The process start time (field 22 of `/proc/<pid>/stat`), when `/proc` knows it.
pub fn start_time(pid: u32) -> Option<u64> {
    stat(pid).map(|s| s.start_time)
}

/// True while `pid` exists and is not a zombie. With `/proc` a zombie counts as gone (it holds
/// no sockets and runs nothing; its parent reaps it); without `/proc`, `procinfo` asks `ps`.
pub fn is_alive(pid: u32) -> bool {
    match stat(pid) {
        Some(s) => s.state != 'Z' && s.state != 'X',
        None if Path::new("/proc/self/stat").exists() => false,
        None => crate::procinfo::ProcessRef::inspect(pid).is_ok(),
    }
}

/// The command line of `pid`, one entry per argument.
pub fn cmdline(pid: u32) -> Option<Vec<String>> {
    let raw = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let args: Vec<String> = raw
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    (!args.is_empty()).then_some(args)
}

/// The owner uid of `pid`.
pub fn uid_of(pid: u32) -> Option<u32> {
    fs::metadata(format!("/proc/{pid}")).ok().map(|m| m.uid())
}

/// True when `pid` belongs to the user running openclawd.
pub fn is_same_user(pid: u32) -> bool {
    uid_of(pid) == Some(nix::unistd::getuid().as_raw())
}

/// An argument whose basename is `ollama` followed by `serve`: a terminal's `ollama serve`,
/// including an `ollama` shell script run by an interpreter (`/bin/sh /usr/bin/ollama serve`).
pub fn runs_ollama_serve(args: &[String]) -> bool {
    args.windows(2).any(|w| {
        Path::new(&w[0]).file_name().and_then(|n| n.to_str()) == Some("ollama") && w[1] == "serve"
    })
}

/// Every live process whose session id is `session` (the processes an `ollama serve` started
/// with `setsid` left behind, whatever process group they moved to), started at or after
/// `not_before` when given.
pub fn session_members(session: u32, not_before: Option<u64>) -> Vec<u32> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            stat(*pid).is_some_and(|s| {
                s.session == session
                    && s.state != 'Z'
                    && not_before.map_or(true, |t| s.start_time >= t)
            })
        })
        .collect()
}

/// Who listens on a TCP port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// Processes holding the socket (empty when `/proc/<pid>/fd` is not readable: another user).
    pub pids: Vec<u32>,
    /// The socket's owner.
    pub uid: u32,
}

/// The processes listening on `port` (any local address). `None` when nothing listens or the
/// platform cannot tell.
pub fn listener_on_port(port: u16) -> Option<Listener> {
    let sockets = crate::procinfo::find_listeners(port).ok()?;
    let uid = sockets.iter().find_map(|s| s.owner_uid);
    let mut pids: Vec<u32> = sockets.into_iter().flat_map(|s| s.pids).collect();
    if pids.is_empty() && uid.is_none() {
        return None;
    }
    pids.sort_unstable();
    pids.dedup();
    Some(Listener {
        pids,
        uid: uid.unwrap_or(u32::MAX),
    })
}

/// A one-line description of `pid` for messages: `pid 123 (python3 -m http.server 8000)`.
pub fn describe(pid: u32) -> String {
    match cmdline(pid) {
        Some(args) => format!("pid {pid} ({})", args.join(" ")),
        None => format!("pid {pid}"),
    }
}

/// The systemd unit running `pid`, from `/proc/<pid>/cgroup`: `(unit, user)` where `user` is
/// true for a unit of a user manager (`.../user@1000.service/.../ollama.service`).
pub fn systemd_unit(pid: u32) -> Option<(String, bool)> {
    parse_systemd_unit(&fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?)
}

pub fn parse_systemd_unit(cgroup: &str) -> Option<(String, bool)> {
    crate::procinfo::service_unit(cgroup)
        .filter(|u| u.name.contains("ollama"))
        .map(|u| (u.name, u.user))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_is_alive_and_has_a_start_time() {
        let me = std::process::id();
        assert!(is_alive(me));
        assert!(start_time(me).is_some());
    }

    #[test]
    fn listener_on_port_finds_this_process() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let found = listener_on_port(port).unwrap();
        assert!(found.pids.contains(&std::process::id()), "{found:?}");
    }

    #[test]
    fn ollama_serve_is_recognised_directly_and_through_an_interpreter() {
        let v = |s: &str| s.split(' ').map(String::from).collect::<Vec<_>>();
        assert!(runs_ollama_serve(&v("/usr/local/bin/ollama serve")));
        assert!(runs_ollama_serve(&v("/bin/sh /home/u/bin/ollama serve")));
        assert!(runs_ollama_serve(&v("ollama serve")));
        assert!(!runs_ollama_serve(&v("/usr/bin/ollama runner --port 1")));
        assert!(!runs_ollama_serve(&v("python3 -m http.server serve")));
        assert!(!runs_ollama_serve(&v("/opt/ollama-serve serve")));
    }

    #[test]
    fn systemd_units_are_read_from_cgroup_paths() {
        assert_eq!(
            parse_systemd_unit("0::/system.slice/ollama.service\n"),
            Some(("ollama.service".into(), false))
        );
        assert_eq!(
            parse_systemd_unit(
                "0::/user.slice/user-1000.slice/user@1000.service/app.slice/ollama.service\n"
            ),
            Some(("ollama.service".into(), true))
        );
        assert_eq!(
            parse_systemd_unit("1:name=systemd:/system.slice/ollama.service\n0::/\n"),
            Some(("ollama.service".into(), false))
        );
        assert_eq!(
            parse_systemd_unit("0::/user.slice/user-1000.slice/session-2.scope\n"),
            None
        );
    }
}

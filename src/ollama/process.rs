//! Small, Linux-first helpers over `/proc`: liveness with zombie awareness, start times, process
//! sessions, the pid listening on a TCP port, and group signalling. On systems without `/proc`
//! every lookup answers "unknown" (`None` / empty) rather than failing.

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;

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

/// Parses the text of `/proc/<pid>/stat`. The command name (field 2) may hold spaces and
/// parentheses, so fields are counted from the last `)`.
pub fn parse_stat(text: &str) -> Option<ProcStat> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state); field N is fields[N - 3].
    Some(ProcStat {
        state: fields.first()?.chars().next()?,
        ppid: fields.get(1)?.parse().ok()?,
        pgid: fields.get(2)?.parse().ok()?,
        session: fields.get(3)?.parse().ok()?,
        start_time: fields.get(19)?.parse().ok()?,
    })
}

pub fn stat(pid: u32) -> Option<ProcStat> {
    parse_stat(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// The process start time (field 22 of `/proc/<pid>/stat`), when `/proc` knows it.
pub fn start_time(pid: u32) -> Option<u64> {
    stat(pid).map(|s| s.start_time)
}

/// True while `pid` exists and is not a zombie. With `/proc` a zombie counts as gone (it holds
/// no sockets and runs nothing; its parent reaps it); without `/proc`, `kill(pid, 0)` decides.
pub fn is_alive(pid: u32) -> bool {
    match stat(pid) {
        Some(s) => s.state != 'Z' && s.state != 'X',
        None if Path::new("/proc/self/stat").exists() => false,
        None => kill(Pid::from_raw(pid as i32), None).is_ok(),
    }
}

/// True when `pid` is alive and, if both are known, started at `start_time` (not a reused pid).
pub fn is_same_process(pid: u32, start_time: Option<u64>) -> bool {
    if !is_alive(pid) {
        return false;
    }
    match (start_time, self::start_time(pid)) {
        (Some(want), Some(have)) => want == have,
        _ => true,
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

/// SIGKILLs the process group `pgid` and every process still in the session `pgid` (the
/// leader's runners), so nothing of an owned Ollama is left. Errors (already gone) are ignored.
pub fn kill_group_and_session(pgid: u32, not_before: Option<u64>) {
    signal_group(pgid, Signal::SIGKILL);
    for pid in session_members(pgid, not_before) {
        if is_same_user(pid) {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
        }
    }
}

/// Sends `signal` to the process group `pgid` (ignoring "no such group").
pub fn signal_group(pgid: u32, signal: Signal) {
    if pgid > 1 {
        let _ = killpg(Pid::from_raw(pgid as i32), signal);
    }
}

/// Sends `signal` to one process.
pub fn signal_pid(pid: u32, signal: Signal) -> Result<(), nix::Error> {
    if pid <= 1 {
        return Err(nix::Error::EPERM);
    }
    kill(Pid::from_raw(pid as i32), signal)
}

/// Socket inodes in LISTEN state on `port`, from a `/proc/net/tcp{,6}` table.
pub fn parse_listen_inodes(table: &str, port: u16) -> Vec<(u64, u32)> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let local = f.get(1)?;
            let port_hex = local.rsplit(':').next()?;
            let state = f.get(3)?;
            let uid: u32 = f.get(7)?.parse().ok()?;
            let inode: u64 = f.get(9)?.parse().ok()?;
            (u16::from_str_radix(port_hex, 16).ok()? == port && *state == "0A")
                .then_some((inode, uid))
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

/// The process listening on `port` (any local address), via `/proc/net/tcp{,6}` → socket inode
/// → `/proc/<pid>/fd`. `None` when nothing listens or `/proc` is not there.
pub fn listener_on_port(port: u16) -> Option<Listener> {
    let mut inodes = HashSet::new();
    let mut uid = None;
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        if let Ok(text) = fs::read_to_string(table) {
            for (inode, u) in parse_listen_inodes(&text, port) {
                inodes.insert(inode);
                uid.get_or_insert(u);
            }
        }
    }
    let uid = uid?;
    let mut pids = Vec::new();
    if let Ok(dir) = fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            let Ok(fds) = fs::read_dir(entry.path().join("fd")) else {
                continue;
            };
            let holds = fds.flatten().any(|fd| {
                fs::read_link(fd.path()).ok().is_some_and(|target| {
                    let t = target.to_string_lossy();
                    t.strip_prefix("socket:[")
                        .and_then(|r| r.strip_suffix(']'))
                        .and_then(|n| n.parse::<u64>().ok())
                        .is_some_and(|n| inodes.contains(&n))
                })
            });
            if holds {
                pids.push(pid);
            }
        }
    }
    pids.sort_unstable();
    Some(Listener { pids, uid })
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
    cgroup.lines().find_map(|line| {
        // `0::/system.slice/ollama.service` (v2) or `1:name=systemd:/system.slice/...` (v1).
        let path = line.splitn(3, ':').nth(2)?;
        let unit = path.rsplit('/').find(|c| c.ends_with(".service"))?;
        if !unit.contains("ollama") {
            return None;
        }
        let user = path
            .split('/')
            .any(|c| c.starts_with("user@") && c.ends_with(".service"));
        Some((unit.to_string(), user))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_last_parenthesis() {
        let text = "4242 (weird ) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 3 0 987654 1000 10";
        let s = parse_stat(text).unwrap();
        assert_eq!(s.state, 'S');
        assert_eq!(s.ppid, 1);
        assert_eq!(s.pgid, 4242);
        assert_eq!(s.session, 4242);
        assert_eq!(s.start_time, 987654);
    }

    #[test]
    fn own_process_is_alive_and_has_a_start_time() {
        let me = std::process::id();
        assert!(is_alive(me));
        assert!(is_same_process(me, start_time(me)));
        assert!(!is_same_process(me, start_time(me).map(|t| t + 1)));
    }

    #[test]
    fn listen_inodes_match_port_and_listen_state_only() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 0100007F:2CAA 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 55501 1 0 100 0 0 10 0\n\
   1: 0100007F:2CAA 0100007F:9C40 01 00000000:00000000 00:00000000 00000000  1000        0 55502 1 0 20 4 30 10 -1\n\
   2: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 55503 1 0 100 0 0 10 0\n";
        assert_eq!(parse_listen_inodes(table, 11434), vec![(55501, 1000)]);
        assert_eq!(parse_listen_inodes(table, 8080), vec![(55503, 0)]);
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

//! Linux: who listens on a TCP port, and what that process is, read from `/proc`.
//! Listening sockets come from `/proc/net/tcp{,6}` (state `0A`), their owners from the
//! `socket:[inode]` links under `/proc/<pid>/fd`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use super::{service_unit, ListenerSocket, ProcessInfo};

/// One LISTEN row of `/proc/net/tcp{,6}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SocketRow {
    pub addr: IpAddr,
    pub port: u16,
    pub uid: u32,
    pub inode: u64,
}

const TCP_LISTEN: &str = "0A";

/// Every listening socket on `port`, with the pids holding it (empty when no process we may
/// inspect holds it).
pub(crate) fn find_listeners(port: u16) -> io::Result<Vec<ListenerSocket>> {
    let mut rows = Vec::new();
    for (file, v6) in [("/proc/net/tcp", false), ("/proc/net/tcp6", true)] {
        match fs::read_to_string(file) {
            Ok(text) => rows.extend(
                parse_net_tcp(&text, v6)
                    .into_iter()
                    .filter(|r| r.port == port),
            ),
            // A kernel without IPv6 has no tcp6 table.
            Err(e) if v6 && e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let inodes: BTreeSet<u64> = rows.iter().map(|r| r.inode).collect();
    let owners = pids_holding(&inodes);
    Ok(rows
        .into_iter()
        .map(|row| ListenerSocket {
            addr: row.addr,
            owner_uid: Some(row.uid),
            pids: owners.get(&row.inode).cloned().unwrap_or_default(),
        })
        .collect())
}

/// Parses the LISTEN rows of a `/proc/net/tcp` (or `tcp6`) table.
pub(crate) fn parse_net_tcp(text: &str, v6: bool) -> Vec<SocketRow> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode ...
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 10 || fields[3] != TCP_LISTEN {
                return None;
            }
            let (addr_hex, port_hex) = fields[1].split_once(':')?;
            Some(SocketRow {
                addr: parse_hex_addr(addr_hex, v6)?,
                port: u16::from_str_radix(port_hex, 16).ok()?,
                uid: fields[7].parse().ok()?,
                inode: fields[9].parse().ok()?,
            })
        })
        .collect()
}

/// The kernel prints each 32-bit word of the address as a host-order integer.
fn parse_hex_addr(hex: &str, v6: bool) -> Option<IpAddr> {
    let word = |s: &str| u32::from_str_radix(s, 16).ok().map(u32::to_ne_bytes);
    if v6 {
        if hex.len() != 32 {
            return None;
        }
        let mut bytes = [0u8; 16];
        for (i, chunk) in bytes.chunks_mut(4).enumerate() {
            chunk.copy_from_slice(&word(hex.get(i * 8..i * 8 + 8)?)?);
        }
        Some(IpAddr::V6(Ipv6Addr::from(bytes)))
    } else {
        if hex.len() != 8 {
            return None;
        }
        Some(IpAddr::V4(Ipv4Addr::from(word(hex)?)))
    }
}

/// Which pids hold each socket inode. Processes whose fds we may not read are skipped.
fn pids_holding(inodes: &BTreeSet<u64>) -> BTreeMap<u64, Vec<u32>> {
    let mut owners: BTreeMap<u64, Vec<u32>> = BTreeMap::new();
    let Ok(procs) = fs::read_dir("/proc") else {
        return owners;
    };
    for entry in procs.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            let Ok(target) = fs::read_link(fd.path()) else {
                continue;
            };
            let Some(inode) = socket_inode(&target.to_string_lossy()) else {
                continue;
            };
            if inodes.contains(&inode) {
                let pids = owners.entry(inode).or_default();
                if !pids.contains(&pid) {
                    pids.push(pid);
                }
            }
        }
    }
    owners
}

fn socket_inode(link: &str) -> Option<u64> {
    link.strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// Fields of `/proc/<pid>/stat` that matter here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stat {
    pub state: char,
    pub ppid: u32,
    pub pgid: u32,
    pub session: u32,
    /// Field 22: start time in clock ticks after boot (what OpenClaw's lock records).
    pub start_ticks: u64,
}

/// Parses `/proc/<pid>/stat`. The command name (field 2) may contain spaces and `)`, so the
/// fields are counted from after the LAST `)`.
pub(crate) fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state); field 22 is index 19.
    Some(Stat {
        state: fields.first()?.chars().next()?,
        ppid: fields.get(1)?.parse().ok()?,
        pgid: fields.get(2)?.parse().ok()?,
        session: fields.get(3)?.parse().ok()?,
        start_ticks: fields.get(19)?.parse().ok()?,
    })
}

pub(crate) fn read_stat(pid: u32) -> io::Result<Stat> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse_stat(&text).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unreadable /proc/{pid}/stat"),
        )
    })
}

/// Everything `/proc` says about `pid` that classification needs.
/// A zombie counts as gone (`NotFound`): it runs nothing and holds no socket.
pub(crate) fn inspect(pid: u32) -> io::Result<ProcessInfo> {
    let base = PathBuf::from(format!("/proc/{pid}"));
    let stat = read_stat(pid)?;
    if matches!(stat.state, 'Z' | 'X') {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("pid {pid} has exited"),
        ));
    }
    let status = fs::read_to_string(base.join("status"))?;
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|s| s.parse::<u32>().ok())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("no Uid in /proc/{pid}/status"),
            )
        })?;
    let argv = fs::read(base.join("cmdline"))
        .map(|raw| {
            raw.split(|b| *b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect()
        })
        .unwrap_or_default();
    let (exe, exe_replaced) = match fs::read_link(base.join("exe")) {
        Ok(link) => {
            let text = link.to_string_lossy().into_owned();
            match text.strip_suffix(" (deleted)") {
                Some(original) => (Some(PathBuf::from(original)), true),
                None => (Some(link), false),
            }
        }
        Err(_) => (None, false),
    };
    let service = fs::read_to_string(base.join("cgroup"))
        .ok()
        .and_then(|text| service_unit(&text));
    Ok(ProcessInfo {
        pid,
        uid,
        argv,
        exe,
        exe_replaced,
        start: Some(stat.start_ticks.to_string()),
        start_ticks: Some(stat.start_ticks),
        started_at: started_at(stat.start_ticks),
        pgid: Some(stat.pgid),
        service,
    })
}

/// The process still exists (not a zombie) and is the same one (same start time).
pub(crate) fn still_running(pid: u32, start: Option<&str>) -> bool {
    match read_stat(pid) {
        Ok(stat) => {
            !matches!(stat.state, 'Z' | 'X')
                && start.map_or(true, |s| s == stat.start_ticks.to_string())
        }
        Err(_) => false,
    }
}

/// The live pids in process group `pgid`.
pub(crate) fn group_members(pgid: u32) -> Vec<u32> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            read_stat(*pid).is_ok_and(|s| s.pgid == pgid && !matches!(s.state, 'Z' | 'X'))
        })
        .collect()
}

/// Wall-clock start of a process: boot time + start ticks.
fn started_at(start_ticks: u64) -> Option<SystemTime> {
    let stat = fs::read_to_string("/proc/stat").ok()?;
    let btime: u64 = stat
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    // SAFETY: sysconf has no preconditions; it only reads a constant.
    let ticks_per_sec = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks_per_sec <= 0 {
        return None;
    }
    let after_boot = Duration::from_secs_f64(start_ticks as f64 / ticks_per_sec as f64);
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(btime) + after_boot)
}

/// A pidfd pins one process: signals sent through it can never reach a later process that
/// reuses the pid. `Ok(None)` when the kernel predates pidfds (< 5.3).
pub(crate) fn pidfd_open(pid: u32) -> io::Result<Option<OwnedFd>> {
    let pid = libc::pid_t::try_from(pid)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "pid out of range"))?;
    // SAFETY: plain syscall with integer arguments; a non-negative result is a new fd we own.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        let err = io::Error::last_os_error();
        return match err.raw_os_error() {
            Some(libc::ENOSYS) => Ok(None),
            _ => Err(err),
        };
    }
    let fd =
        RawFd::try_from(fd).map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad pidfd"))?;
    // SAFETY: the kernel just returned this fd and nothing else owns it.
    Ok(Some(unsafe { OwnedFd::from_raw_fd(fd) }))
}

/// The pidfd's process has exited (the fd polls readable from then on, zombie or reaped).
pub(crate) fn pidfd_exited(fd: &OwnedFd) -> bool {
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, zero timeout.
    let rc = unsafe { libc::poll(&mut pfd, 1, 0) };
    // An error here would be EINTR/ENOMEM: count it as still running (never "gone" by mistake
    // in a way that skips a wait), the next poll decides.
    rc > 0 && pfd.revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0
}

pub(crate) fn pidfd_send_signal(fd: &OwnedFd, signal: i32) -> io::Result<()> {
    // SAFETY: valid fd, a signal number, no siginfo, no flags.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            fd.as_raw_fd(),
            signal,
            std::ptr::null::<libc::siginfo_t>(),
            0u32,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::procinfo::ServiceUnit;

    #[test]
    fn net_tcp_listen_rows_are_decoded() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 424242 1 0000000000000000 100 0 0 10 0\n\
   1: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000  1000        0 0 1\n";
        let rows = parse_net_tcp(table, false);
        assert_eq!(
            rows,
            vec![SocketRow {
                addr: "127.0.0.1".parse().unwrap(),
                port: 8080,
                uid: 1000,
                inode: 424242
            }]
        );
    }

    #[test]
    fn net_tcp6_addresses_are_decoded() {
        let table = "header\n   0: 00000000000000000000000001000000:4965 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 77 1\n";
        let rows = parse_net_tcp(table, true);
        assert_eq!(rows[0].addr, "::1".parse::<IpAddr>().unwrap());
        assert_eq!(rows[0].port, 18789);
    }

    #[test]
    fn stat_fields_count_from_the_last_paren() {
        let text = "4242 (we ird) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 91234567 1000 10";
        assert_eq!(
            parse_stat(text),
            Some(Stat {
                state: 'S',
                ppid: 1,
                pgid: 4242,
                session: 4242,
                start_ticks: 91234567
            })
        );
    }

    #[test]
    fn cgroup_names_the_service_unit() {
        let user =
            "0::/user.slice/user-1000.slice/user@1000.service/app.slice/openclaw-gateway.service\n";
        assert_eq!(
            service_unit(user),
            Some(ServiceUnit {
                name: "openclaw-gateway.service".into(),
                user: true
            })
        );
        let system = "0::/system.slice/openclaw-gateway.service\n";
        assert!(!service_unit(system).unwrap().user);
        assert_eq!(
            service_unit("0::/user.slice/user-1000.slice/session-3.scope\n"),
            None
        );
    }
}

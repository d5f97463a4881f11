//! Every signal openclawd sends to an Ollama server goes through here, and only to a process
//! proven to be the one we mean: our own unreaped child, or a recorded pid whose start time
//! still matches. An unknown start time proves nothing: such a process is never signalled.

use std::path::Path;
use std::time::Duration;

use nix::sys::signal::Signal;

use super::process;

/// How an `ollama serve` of ours is known to be ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Leader {
    /// Our child, not reaped yet (alive or a zombie): its pid still names its process group
    /// and session, which we created with `setsid`.
    Unreaped,
    /// Taken back from `ollama.json`: ours while the live process has this start time.
    Recorded(u64),
}

/// True while `pid` is alive (not a zombie) and started at `start_time`.
pub(crate) fn proven(pid: u32, start_time: u64) -> bool {
    process::is_alive(pid) && process::start_time(pid) == Some(start_time)
}

impl Leader {
    /// Whether `pid` is still this leader.
    pub(crate) fn holds(self, pid: u32) -> bool {
        match self {
            Leader::Unreaped => true,
            Leader::Recorded(start_time) => proven(pid, start_time),
        }
    }
}

/// Signals the process group led by `pid` (the server and its runners), only while its
/// leader is proven ours. True when sent.
pub(crate) fn signal_group(pid: u32, leader: Leader, signal: Signal) -> bool {
    if pid < 2 || !leader.holds(pid) {
        return false;
    }
    process::signal_group(pid, signal);
    true
}

/// SIGKILLs, one by one, the same-user processes left in the session `session` (the runners
/// of a server that died), started no earlier than the leader when its start is known, and —
/// when the session is only known from a record — running the recorded executable. Never by
/// group: the leader may be gone.
pub(crate) fn kill_session_leftovers(session: u32, not_before: Option<u64>, exe: Option<&Path>) {
    if session < 2 {
        return;
    }
    let exe_name = exe.and_then(Path::file_name);
    for pid in process::session_members(session, not_before) {
        let runs_exe = exe_name.map_or(true, |name| {
            process::cmdline(pid)
                .and_then(|args| args.first().cloned())
                .is_some_and(|argv0| Path::new(&argv0).file_name() == Some(name))
        });
        if pid != session && runs_exe && process::is_same_user(pid) {
            let _ = process::signal_pid(pid, Signal::SIGKILL);
        }
    }
}

/// Everything of a server of ours: its group while the leader is ours, then the session's
/// leftovers.
pub(crate) fn kill_all(pid: u32, leader: Leader, start_time: Option<u64>) {
    signal_group(pid, leader, Signal::SIGKILL);
    kill_session_leftovers(pid, start_time, None);
}

/// Waits, polling every 50 ms for at most `limit`, until `pid` is no longer this leader
/// (gone, a zombie, or another process). True when it went.
pub(crate) async fn wait_gone(pid: u32, leader: Leader, limit: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if !leader.holds(pid) {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Stops a recorded server that is not our child: SIGTERM to its group, `grace`, SIGKILL,
/// then the session's leftovers — each step only while its leader is proven.
pub(crate) async fn terminate_recorded(pid: u32, start_time: u64, grace: Duration) {
    let leader = Leader::Recorded(start_time);
    signal_group(pid, leader, Signal::SIGTERM);
    if !wait_gone(pid, leader, grace).await {
        signal_group(pid, leader, Signal::SIGKILL);
        wait_gone(pid, leader, Duration::from_secs(5)).await;
    }
    kill_session_leftovers(pid, Some(start_time), None);
}

/// SIGTERMs one process (an adopted plain `ollama serve` we replace) when it still has the
/// start time read when it was chosen. True when sent.
pub(crate) fn terminate_one(pid: u32, start_time: u64) -> bool {
    pid >= 2 && proven(pid, start_time) && process::signal_pid(pid, Signal::SIGTERM).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn a_process_is_never_signalled_without_its_start_time() {
        let mut sleep = Command::new("sleep").arg("300").spawn().unwrap();
        let pid = sleep.id();
        let start = process::start_time(pid).unwrap();
        assert!(!terminate_one(pid, start + 1), "a wrong start time");
        assert!(!signal_group(
            pid,
            Leader::Recorded(start + 1),
            Signal::SIGKILL
        ));
        assert!(process::is_alive(pid));
        assert!(terminate_one(pid, start), "the right one");
        let status = sleep.wait().unwrap();
        assert!(!status.success());
    }
}

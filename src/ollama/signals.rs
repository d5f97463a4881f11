//! How openclawd stops an Ollama server of its own. Every signal goes through
//! [`procinfo::ProcessRef`](crate::procinfo::ProcessRef): a process proven by pid and start
//! time (a pidfd on Linux), a group signalled only while its leader is proven or member by
//! member once it is gone. An unknown start time proves nothing: such a process is never
//! signalled.

use std::path::Path;
use std::time::Duration;

use nix::sys::signal::Signal;

use super::process;
use crate::procinfo::{ProcessRef, StartTime};

/// After SIGKILL, how long to wait for the process to be gone.
pub(crate) const KILL_WAIT: Duration = Duration::from_secs(5);

/// Stops a server of ours: SIGTERM to its group (SIGKILL at once for a zero `grace`), up to
/// `grace`, then SIGKILL; what is left of its group and session goes with it. True when the
/// server itself went.
pub(crate) async fn stop_server(server: &ProcessRef, grace: Duration) -> bool {
    let pid = server.pid();
    let gone = if grace.is_zero() {
        let _ = server.signal_group(Signal::SIGKILL);
        server.wait_gone(KILL_WAIT).await
    } else {
        if let Err(e) = server.signal_group(Signal::SIGTERM) {
            tracing::debug!("{e}");
        }
        server.wait_gone(grace).await || {
            tracing::warn!(
                "Ollama (pid {pid}) did not stop within {} s of SIGTERM; killing it",
                grace.as_secs()
            );
            let _ = server.signal_group(Signal::SIGKILL);
            server.wait_gone(KILL_WAIT).await
        }
    };
    kill_leftovers(server);
    gone
}

/// SIGKILLs what is left of a server's group and session (its runners): each member proven
/// on its own once the leader is gone.
pub(crate) fn kill_leftovers(server: &ProcessRef) {
    let _ = server.signal_group(Signal::SIGKILL);
    kill_session_leftovers(server.pid(), Some(server.start_time()), None);
}

/// SIGKILLs, one by one, the same-user processes left in the session `session` (the runners
/// of a server that died: `ollama serve` runs in a session of its own), started no earlier
/// than the leader when its start is known, and — when the session is only known from a
/// record — running the recorded executable.
pub(crate) fn kill_session_leftovers(
    session: u32,
    leader_start: Option<&StartTime>,
    exe: Option<&Path>,
) {
    if session < 2 {
        return;
    }
    let me = nix::unistd::getuid().as_raw();
    let exe_name = exe.and_then(Path::file_name);
    let not_before = leader_start.and_then(StartTime::ticks);
    for pid in process::session_members(session, not_before) {
        if pid == session {
            continue;
        }
        let Ok(member) = ProcessRef::inspect(pid) else {
            continue;
        };
        let runs_exe = exe_name.map_or(true, |name| {
            member
                .info()
                .argv
                .first()
                .is_some_and(|argv0| Path::new(argv0).file_name() == Some(name))
        });
        if runs_exe && member.info().uid == me {
            let _ = member.signal(Signal::SIGKILL);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn a_session_is_cleaned_only_of_the_recorded_executable() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "sleep 300 & exec sleep 300"]);
        // SAFETY: setsid(2) is async-signal-safe.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
                nix::unistd::setsid()
                    .map(|_| ())
                    .map_err(std::io::Error::from)
            });
        }
        let mut leader = cmd.spawn().unwrap();
        let session = leader.id();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while process::session_members(session, None).len() < 2 {
            assert!(std::time::Instant::now() < deadline);
            std::thread::sleep(Duration::from_millis(20));
        }
        kill_session_leftovers(session, None, Some(Path::new("/usr/bin/ollama")));
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(
            process::session_members(session, None).len(),
            2,
            "not ollama"
        );
        kill_session_leftovers(session, None, Some(Path::new("/bin/sleep")));
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while process::session_members(session, None).len() > 1 {
            assert!(
                std::time::Instant::now() < deadline,
                "the other sleep survived"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = leader.kill();
        let _ = leader.wait();
    }
}

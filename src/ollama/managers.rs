//! Who runs a local Ollama server, and how it is restarted: a systemd unit, Homebrew's launchd
//! job, a plain same-user `ollama serve`, or something else. The supervisor (fixing an adopted
//! server's version) and `doctor` (advising the user) both ask here.

use std::process::Stdio;
use std::time::Duration;

use tokio::time::timeout;

use super::process;

/// Homebrew's launchd label for `brew services start ollama`.
pub const HOMEBREW_LABEL: &str = "homebrew.mxcl.ollama";
/// `systemctl`/`launchctl` restart budget.
pub const RESTART_TIMEOUT: Duration = Duration::from_secs(30);

/// Who runs a server, and so how it can be restarted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Manager {
    /// A systemd unit; `user` for one of the user's manager (`systemctl --user`).
    Systemd { unit: String, user: bool },
    /// A launchd job of the user's GUI domain (Homebrew's `homebrew.mxcl.ollama`).
    Launchd { label: String, uid: u32 },
    /// A same-user process running `ollama serve` (a terminal's): it may be replaced.
    Plain(u32),
    /// Anything else: another user's process, an app, or a pid nobody can tell.
    Unknown,
}

/// What happens once the running server is gone, which decides how the fix reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Afterwards {
    /// A running openclawd that manages the local Ollama starts the installed one itself.
    OpenclawdStartsIt,
    /// openclawd manages the local Ollama but is not running: `openclawd start`.
    OpenclawdStart,
    /// Nobody starts it: the user runs `ollama serve`.
    UserStartsIt,
}

/// Identifies the manager of `pid`.
pub fn identify(pid: u32) -> Manager {
    if let Some((unit, user)) = process::systemd_unit(pid) {
        return Manager::Systemd { unit, user };
    }
    let uid = nix::unistd::getuid().as_raw();
    if cfg!(target_os = "macos") && launchd_job_pid(uid, HOMEBREW_LABEL) == Some(pid) {
        return Manager::Launchd {
            label: HOMEBREW_LABEL.into(),
            uid,
        };
    }
    if process::is_same_user(pid)
        && process::cmdline(pid).is_some_and(|a| process::runs_ollama_serve(&a))
    {
        return Manager::Plain(pid);
    }
    Manager::Unknown
}

/// The process listening on `port`; of several sharing the socket, the one running
/// `ollama serve`.
pub fn serving_pid(port: u16) -> Option<u32> {
    let pids = process::listener_on_port(port)?.pids;
    pids.iter()
        .copied()
        .find(|p| process::cmdline(*p).is_some_and(|a| process::runs_ollama_serve(&a)))
        .or_else(|| pids.first().copied())
}

impl Manager {
    /// The command openclawd runs to restart the server through its manager, when it has one.
    pub fn restart_argv(&self) -> Option<Vec<String>> {
        match self {
            Manager::Systemd { unit, user } => {
                let mut argv = vec!["systemctl".to_string(), "--no-ask-password".to_string()];
                if *user {
                    argv.push("--user".into());
                }
                argv.extend(["restart".to_string(), unit.clone()]);
                Some(argv)
            }
            Manager::Launchd { label, uid } => Some(vec![
                "launchctl".into(),
                "kickstart".into(),
                "-k".into(),
                format!("gui/{uid}/{label}"),
            ]),
            Manager::Plain(_) | Manager::Unknown => None,
        }
    }

    /// The exact command a person runs to restart the server `pid` (when known) onto the
    /// installed binary.
    pub fn fix_command(&self, pid: Option<u32>, afterwards: Afterwards) -> String {
        let kill_then = |pid: u32| match afterwards {
            Afterwards::OpenclawdStartsIt => {
                format!("kill {pid} (openclawd then starts the installed Ollama)")
            }
            Afterwards::OpenclawdStart => format!("kill {pid} && openclawd start"),
            Afterwards::UserStartsIt => format!("kill {pid} && ollama serve"),
        };
        match self {
            Manager::Systemd { unit, user: true } => format!("systemctl --user restart {unit}"),
            Manager::Systemd { unit, user: false } => format!("sudo systemctl restart {unit}"),
            Manager::Launchd { label, uid } => format!("launchctl kickstart -k gui/{uid}/{label}"),
            Manager::Plain(pid) => kill_then(*pid),
            Manager::Unknown => match pid {
                Some(pid) if process::is_same_user(pid) => kill_then(pid),
                Some(pid) => format!("sudo kill {pid}, then start Ollama again"),
                None if cfg!(target_os = "macos") => {
                    "osascript -e 'tell app \"Ollama\" to quit' && open -a Ollama".to_string()
                }
                None => "restart the Ollama server so it runs the installed binary".to_string(),
            },
        }
    }
}

/// The pid of a launchd job (`launchctl print gui/<uid>/<label>` → `pid = N`).
fn launchd_job_pid(uid: u32, label: &str) -> Option<u32> {
    let out = std::process::Command::new("launchctl")
        .args(["print", &format!("gui/{uid}/{label}")])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.trim().strip_prefix("pid = ")?.trim().parse().ok())
}

/// Runs a manager's restart command (at most [`RESTART_TIMEOUT`]); the error says how it failed.
pub async fn run_restart(argv: &[String]) -> Result<(), String> {
    let (prog, args) = argv.split_first().ok_or("no command")?;
    let child = tokio::process::Command::new(prog)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| e.to_string())?;
    let out = timeout(RESTART_TIMEOUT, child.wait_with_output())
        .await
        .map_err(|_| format!("no answer within {} s", RESTART_TIMEOUT.as_secs()))?
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        return Ok(());
    }
    let how = match out.status.code() {
        Some(code) => format!("exited with code {code}"),
        None => "was killed by a signal".to_string(),
    };
    Err(format!(
        "{how} ({})",
        String::from_utf8_lossy(&out.stderr).trim()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_commands_name_the_manager() {
        let sys = Manager::Systemd {
            unit: "ollama.service".into(),
            user: false,
        };
        assert_eq!(
            sys.fix_command(Some(1), Afterwards::OpenclawdStartsIt),
            "sudo systemctl restart ollama.service"
        );
        assert_eq!(
            sys.restart_argv().unwrap(),
            [
                "systemctl",
                "--no-ask-password",
                "restart",
                "ollama.service"
            ]
        );
        let user = Manager::Systemd {
            unit: "ollama.service".into(),
            user: true,
        };
        assert_eq!(
            user.fix_command(None, Afterwards::UserStartsIt),
            "systemctl --user restart ollama.service"
        );
        assert_eq!(
            user.restart_argv().unwrap(),
            [
                "systemctl",
                "--no-ask-password",
                "--user",
                "restart",
                "ollama.service"
            ]
        );
        let brew = Manager::Launchd {
            label: HOMEBREW_LABEL.into(),
            uid: 501,
        };
        assert_eq!(
            brew.fix_command(None, Afterwards::OpenclawdStart),
            "launchctl kickstart -k gui/501/homebrew.mxcl.ollama"
        );
        assert_eq!(Manager::Plain(77).restart_argv(), None);
    }

    #[test]
    fn a_plain_server_is_killed_and_started_by_whoever_starts_it() {
        let plain = Manager::Plain(77);
        assert_eq!(
            plain.fix_command(Some(77), Afterwards::OpenclawdStartsIt),
            "kill 77 (openclawd then starts the installed Ollama)"
        );
        assert_eq!(
            plain.fix_command(Some(77), Afterwards::OpenclawdStart),
            "kill 77 && openclawd start"
        );
        assert_eq!(
            plain.fix_command(Some(77), Afterwards::UserStartsIt),
            "kill 77 && ollama serve"
        );
        // pid 1 belongs to root in any test environment openclawd runs in as a user.
        if nix::unistd::getuid().as_raw() != 0 {
            assert_eq!(
                Manager::Unknown.fix_command(Some(1), Afterwards::UserStartsIt),
                "sudo kill 1, then start Ollama again"
            );
        }
    }

    #[test]
    fn this_test_process_is_not_an_ollama_server() {
        assert_eq!(identify(std::process::id()), Manager::Unknown);
    }
}

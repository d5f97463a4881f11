//! The systemd unit (`systemd/openclawd.service`, rendered) and the `systemctl` commands that
//! load, start, stop and hand over the service. `systemctl` is looked up on `PATH`.

use std::path::{Path, PathBuf};

use super::{run_command, CommandError, COMMAND_TIMEOUT, START_TIMEOUT};

/// The unit's name.
pub const UNIT: &str = "openclawd.service";

/// The unit template: what `install` renders.
pub const TEMPLATE: &str = include_str!("../../systemd/openclawd.service");

/// The first systemd release that knows `RestartSteps=` and `RestartMaxDelaySec=`.
pub const RESTART_STEPS_SINCE: u32 = 254;

/// Where the unit goes: `$XDG_CONFIG_HOME/systemd/user` (default `~/.config`), or
/// `/etc/systemd/system` for `--system`.
pub fn unit_path(system: bool, home: &Path, xdg_config_home: Option<&Path>) -> PathBuf {
    if system {
        return PathBuf::from("/etc/systemd/system").join(UNIT);
    }
    let base = xdg_config_home
        .filter(|p| p.is_absolute())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| home.join(".config"));
    base.join("systemd").join("user").join(UNIT)
}

/// What the unit needs to know.
#[derive(Debug, Clone)]
pub struct UnitParams<'a> {
    pub exe: &'a Path,
    /// Arguments after the executable (`run`, maybe `--bind lan`).
    pub args: &'a [String],
    pub env_file: &'a Path,
    /// `User=` of a system unit.
    pub user: Option<&'a str>,
    pub system: bool,
    /// The installed systemd's version, when known: older ones do not get `RestartSteps=`.
    pub systemd_version: Option<u32>,
}

/// Escapes one `ExecStart=` word: `%` specifiers and `$` expansion are literal, and words with
/// blanks or quotes are double-quoted.
pub fn exec_word(word: &str) -> String {
    let escaped = word.replace('%', "%%").replace('$', "$$");
    if escaped.is_empty()
        || escaped
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, '"' | '\'' | '\\' | ';'))
    {
        format!("\"{}\"", escaped.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        escaped
    }
}

/// The executable an installed unit runs: the first word of its `ExecStart=`, unquoted and
/// unescaped as [`exec_word`] wrote it. `None` when the file is unreadable or has no
/// `ExecStart=`.
pub fn read_installed(unit_file: &Path) -> Option<PathBuf> {
    let text = std::fs::read_to_string(unit_file).ok()?;
    let line = text.lines().find_map(|l| l.strip_prefix("ExecStart="))?;
    let line = line.trim_start_matches(['-', '@', ':', '+', '!']);
    let word = match line.strip_prefix('"') {
        Some(quoted) => {
            let mut word = String::new();
            let mut chars = quoted.chars();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => word.push(chars.next()?),
                    '"' => break,
                    c => word.push(c),
                }
            }
            word
        }
        None => line.split_whitespace().next()?.to_string(),
    };
    Some(PathBuf::from(word.replace("%%", "%").replace("$$", "$")))
}

/// The unit file's text.
pub fn render(p: &UnitParams<'_>) -> String {
    let exec_start = std::iter::once(p.exe.to_string_lossy().into_owned())
        .chain(p.args.iter().cloned())
        .map(|w| exec_word(&w))
        .collect::<Vec<_>>()
        .join(" ");
    let env_file = p.env_file.to_string_lossy().replace('%', "%%");
    let user = if p.system {
        p.user.unwrap_or_default()
    } else {
        ""
    };
    let wanted_by = if p.system {
        "multi-user.target"
    } else {
        "default.target"
    };
    let steps = !matches!(p.systemd_version, Some(v) if v < RESTART_STEPS_SINCE);
    let mut out = String::new();
    for line in TEMPLATE.lines() {
        if !steps
            && (line.starts_with("RestartSteps=")
                || line.starts_with("RestartMaxDelaySec=")
                || line.starts_with("# systemd >= 254"))
        {
            continue;
        }
        let rendered = line
            .replace("{{EXEC_START}}", &exec_start)
            .replace("{{ENV_FILE}}", &env_file)
            .replace("{{USER}}", user)
            .replace("{{WANTED_BY}}", wanted_by);
        // A setting whose value rendered empty is left out.
        if line.contains("{{") && rendered.ends_with('=') {
            continue;
        }
        out.push_str(&rendered);
        out.push('\n');
    }
    out
}

/// `systemctl [--user] <args>`.
pub fn systemctl(system: bool, args: &[&str]) -> Vec<String> {
    let mut argv = vec!["systemctl".to_string()];
    if !system {
        argv.push("--user".into());
    }
    argv.extend(args.iter().map(|a| a.to_string()));
    argv
}

/// The version `systemctl --version` reports (`systemd 252 (252.38-1~deb12u1)`).
pub fn version() -> Option<u32> {
    let out = run_command(
        &["systemctl".to_string(), "--version".to_string()],
        COMMAND_TIMEOUT,
    )
    .ok()?;
    parse_version(&out)
}

pub fn parse_version(text: &str) -> Option<u32> {
    text.lines()
        .next()?
        .strip_prefix("systemd ")?
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// `is-active`: `Some(true)` active (or activating/reloading), `Some(false)` known and not
/// running, `None` when systemd does not answer.
pub fn is_active(system: bool) -> Option<bool> {
    let argv = systemctl(system, &["is-active", UNIT]);
    let stdout = match run_command(&argv, COMMAND_TIMEOUT) {
        Ok(out) => out,
        Err(CommandError::Failed { stdout, .. }) => stdout,
        Err(_) => return None,
    };
    match stdout.lines().next().map(str::trim) {
        Some("active" | "activating" | "reloading" | "refreshing") => Some(true),
        Some("inactive" | "failed" | "deactivating" | "maintenance") => Some(false),
        _ => None,
    }
}

/// The unit's main pid, when it runs.
pub fn main_pid(system: bool) -> Option<u32> {
    let argv = systemctl(system, &["show", "--property=MainPID", "--value", UNIT]);
    let out = run_command(&argv, COMMAND_TIMEOUT).ok()?;
    out.trim().parse().ok().filter(|p| *p != 0)
}

/// Runs `systemctl` with the time a start may need (it waits for `READY=1`).
pub fn run(system: bool, args: &[&str]) -> Result<String, CommandError> {
    run_command(&systemctl(system, args), START_TIMEOUT)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params<'a>(exe: &'a Path, env: &'a Path, args: &'a [String]) -> UnitParams<'a> {
        UnitParams {
            exe,
            args,
            env_file: env,
            user: None,
            system: false,
            systemd_version: Some(255),
        }
    }

    #[test]
    fn a_user_unit_is_type_notify_with_an_absolute_exec_start_and_the_env_file() {
        let args = vec!["run".to_string()];
        let unit = render(&params(
            Path::new("/usr/local/bin/openclawd"),
            Path::new("/home/u/.openclaw/openclawd/service.env"),
            &args,
        ));
        for line in [
            "Type=notify",
            "ExecStart=/usr/local/bin/openclawd run",
            "EnvironmentFile=/home/u/.openclaw/openclawd/service.env",
            "Restart=always",
            "RestartSteps=6",
            "RestartMaxDelaySec=60s",
            "KillMode=process",
            "TimeoutStopSec=30s",
            "WantedBy=default.target",
        ] {
            assert!(unit.lines().any(|l| l == line), "{line} missing:\n{unit}");
        }
        assert!(!unit.contains("User="), "a user unit names no user");
        assert!(!unit.contains("{{"), "unrendered placeholder:\n{unit}");
    }

    #[test]
    fn older_systemd_gets_no_restart_steps_and_a_system_unit_names_its_user() {
        let args = vec!["run".to_string()];
        let mut p = params(
            Path::new("/opt/open clawd/bin/openclawd"),
            Path::new("/srv/state/openclawd/service.env"),
            &args,
        );
        p.systemd_version = Some(252);
        p.system = true;
        p.user = Some("alice");
        let unit = render(&p);
        assert!(!unit.contains("RestartSteps"), "{unit}");
        assert!(!unit.contains("RestartMaxDelaySec"), "{unit}");
        assert!(unit.contains("\nUser=alice\n"));
        assert!(unit.contains("WantedBy=multi-user.target"));
        assert!(unit.contains("ExecStart=\"/opt/open clawd/bin/openclawd\" run"));
    }

    #[test]
    fn exec_words_escape_specifiers_and_expansion() {
        assert_eq!(exec_word("/a/b"), "/a/b");
        assert_eq!(exec_word("50%"), "50%%");
        assert_eq!(exec_word("$HOME"), "$$HOME");
        assert_eq!(exec_word("a \"b\""), "\"a \\\"b\\\"\"");
    }

    #[test]
    fn versions_parse_from_systemctl_output() {
        assert_eq!(
            parse_version("systemd 252 (252.38-1~deb12u1)\n+PAM +AUDIT"),
            Some(252)
        );
        assert_eq!(parse_version("systemd 256.7\n"), Some(256));
        assert_eq!(parse_version("garbage"), None);
    }

    #[test]
    fn the_user_unit_lives_under_xdg_config_home() {
        let home = Path::new("/home/u");
        assert_eq!(
            unit_path(false, home, None),
            PathBuf::from("/home/u/.config/systemd/user/openclawd.service")
        );
        assert_eq!(
            unit_path(false, home, Some(Path::new("/x/cfg"))),
            PathBuf::from("/x/cfg/systemd/user/openclawd.service")
        );
        assert_eq!(
            unit_path(true, home, None),
            PathBuf::from("/etc/systemd/system/openclawd.service")
        );
    }
}

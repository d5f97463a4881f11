//! The macOS LaunchAgent (`launchd/ai.openclaw.openclawd.plist`, rendered) and the `launchctl`
//! commands for it. The job runs `/bin/sh` only to source the 0600 environment file, then
//! `exec`s openclawd: launchd sees openclawd's own pid, and no secret sits in the plist.

use std::path::{Path, PathBuf};

use super::{run_command, CommandError, COMMAND_TIMEOUT};

pub const LABEL: &str = "ai.openclaw.openclawd";

/// The plist template: what `install` renders.
pub const TEMPLATE: &str = include_str!("../../launchd/ai.openclaw.openclawd.plist");

/// `~/Library/LaunchAgents/ai.openclaw.openclawd.plist`.
pub fn plist_path(home: &Path) -> PathBuf {
    home.join("Library")
        .join("LaunchAgents")
        .join(format!("{LABEL}.plist"))
}

/// `<state>/logs/openclawd.log` (SPEC §8).
pub fn log_path(state_dir: &Path) -> PathBuf {
    state_dir.join("logs").join("openclawd.log")
}

/// `gui/<uid>`.
pub fn domain(uid: u32) -> String {
    format!("gui/{uid}")
}

/// `gui/<uid>/ai.openclaw.openclawd`.
pub fn target(uid: u32) -> String {
    format!("gui/{uid}/{LABEL}")
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

pub struct PlistParams<'a> {
    pub exe: &'a Path,
    /// Arguments after `run`.
    pub extra_args: &'a [String],
    pub env_file: &'a Path,
    pub state_dir: &'a Path,
    pub log_file: &'a Path,
}

/// The plist's text.
pub fn render(p: &PlistParams<'_>) -> String {
    let mut out = String::new();
    for line in TEMPLATE.lines() {
        if line.trim() == "{{EXTRA_ARGS}}" {
            let indent = &line[..line.len() - line.trim_start().len()];
            for a in p.extra_args {
                out.push_str(&format!("{indent}<string>{}</string>\n", xml_escape(a)));
            }
            continue;
        }
        let rendered = line
            .replace("{{LABEL}}", LABEL)
            .replace("{{ENV_FILE}}", &xml_escape(&p.env_file.to_string_lossy()))
            .replace("{{EXE}}", &xml_escape(&p.exe.to_string_lossy()))
            .replace("{{STATE_DIR}}", &xml_escape(&p.state_dir.to_string_lossy()))
            .replace("{{LOG_FILE}}", &xml_escape(&p.log_file.to_string_lossy()));
        out.push_str(&rendered);
        out.push('\n');
    }
    out
}

/// The openclawd executable an installed plist runs: in `ProgramArguments`, the string after
/// the environment file (see the template). `None` when the file is unreadable or not shaped
/// like ours.
pub fn read_installed(plist: &Path) -> Option<PathBuf> {
    let text = std::fs::read_to_string(plist).ok()?;
    let strings: Vec<String> = text
        .split("<string>")
        .skip(1)
        .filter_map(|s| s.split("</string>").next())
        .map(|s| {
            s.replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&quot;", "\"")
                .replace("&apos;", "'")
                .replace("&amp;", "&")
        })
        .collect();
    let env_file = strings.iter().position(|s| s.ends_with("service.env"))?;
    strings.get(env_file + 1).map(PathBuf::from)
}

pub fn launchctl(args: &[&str]) -> Vec<String> {
    std::iter::once("launchctl")
        .chain(args.iter().copied())
        .map(String::from)
        .collect()
}

/// The job's pid (`launchctl print gui/<uid>/<label>` → `pid = N`), `Ok(None)` when loaded but
/// not running, `Err` when not loaded or launchctl does not answer.
pub fn job_pid(uid: u32) -> Result<Option<u32>, CommandError> {
    let out = run_command(&launchctl(&["print", &target(uid)]), COMMAND_TIMEOUT)?;
    Ok(out
        .lines()
        .find_map(|l| l.trim().strip_prefix("pid = ")?.trim().parse().ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plist_runs_openclawd_through_the_env_wrapper_with_logs_under_state() {
        let extra = vec!["--bind".to_string(), "lan".to_string()];
        let plist = render(&PlistParams {
            exe: Path::new("/opt/homebrew/bin/openclawd"),
            extra_args: &extra,
            env_file: Path::new("/Users/a/.openclaw/openclawd/service.env"),
            state_dir: Path::new("/Users/a/.openclaw"),
            log_file: &log_path(Path::new("/Users/a/.openclaw")),
        });
        for needle in [
            "<string>ai.openclaw.openclawd</string>",
            "<string>/opt/homebrew/bin/openclawd</string>",
            "<string>/Users/a/.openclaw/openclawd/service.env</string>",
            "<string>--bind</string>",
            "<string>lan</string>",
            "<key>RunAtLoad</key>\n\t<true/>",
            "<key>KeepAlive</key>\n\t<true/>",
            "<string>/Users/a/.openclaw/logs/openclawd.log</string>",
        ] {
            assert!(plist.contains(needle), "{needle} missing:\n{plist}");
        }
        assert!(!plist.contains("{{"), "{plist}");
        assert!(!plist.contains("EnvironmentVariables"));
    }

    #[test]
    fn paths_are_xml_escaped() {
        let plist = render(&PlistParams {
            exe: Path::new("/Users/a&b/bin/openclawd"),
            extra_args: &[],
            env_file: Path::new("/x/service.env"),
            state_dir: Path::new("/x"),
            log_file: Path::new("/x/logs/openclawd.log"),
        });
        assert!(plist.contains("/Users/a&amp;b/bin/openclawd"));
    }
}

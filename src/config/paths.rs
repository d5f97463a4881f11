//! Path resolution (SPEC §2 table): state dir, config file, agent dirs, own file, `ollama` binary.
//! Everything reads the injected environment map, never the process environment.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::error::ConfigError;
use super::types::Overrides;

/// A variable's value when set to something other than blanks, trimmed.
pub(crate) fn env_value<'a>(env: &'a BTreeMap<String, String>, name: &str) -> Option<&'a str> {
    env.get(name).map(|v| v.trim()).filter(|v| !v.is_empty())
}

/// The home directory paths are resolved against: `OPENCLAW_HOME` (as OpenClaw), `HOME`, else
/// the user database.
pub(crate) fn home_dir(env: &BTreeMap<String, String>) -> Option<PathBuf> {
    if let Some(h) = env_value(env, "OPENCLAW_HOME").or_else(|| env_value(env, "HOME")) {
        return Some(PathBuf::from(h));
    }
    nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map(|u| u.dir)
}

/// Expands a leading `~` (alone or followed by `/`) to `home`.
pub(crate) fn expand_tilde(path: &str, home: Option<&Path>) -> PathBuf {
    match (path.strip_prefix('~'), home) {
        (Some(""), Some(home)) => home.to_path_buf(),
        (Some(rest), Some(home)) if rest.starts_with('/') => {
            home.join(rest.trim_start_matches('/'))
        }
        _ => PathBuf::from(path),
    }
}

/// A user-supplied path: `~` expanded, made absolute against the working directory (the
/// watcher needs real parent directories).
pub(crate) fn user_path(path: &str, home: Option<&Path>) -> PathBuf {
    absolute(expand_tilde(path, home))
}

pub(crate) fn absolute(path: PathBuf) -> PathBuf {
    if path.is_absolute() {
        return path;
    }
    match std::env::current_dir() {
        Ok(cwd) => super::include::normalize(&cwd.join(path)),
        Err(_) => path,
    }
}

/// `--state-dir`, `OPENCLAW_STATE_DIR`, `~/.openclaw`.
pub(crate) fn state_dir(
    overrides: &Overrides,
    env: &BTreeMap<String, String>,
    home: Option<&Path>,
) -> Result<PathBuf, ConfigError> {
    if let Some(dir) = &overrides.state_dir {
        return Ok(user_path(&dir.to_string_lossy(), home));
    }
    if let Some(dir) = env_value(env, "OPENCLAW_STATE_DIR") {
        return Ok(user_path(dir, home));
    }
    let home = home.ok_or(ConfigError::NoHome)?;
    Ok(absolute(home.join(".openclaw")))
}

/// `--config`, `OPENCLAW_CONFIG_PATH`, `<state>/openclaw.json`.
pub(crate) fn config_file(
    overrides: &Overrides,
    env: &BTreeMap<String, String>,
    home: Option<&Path>,
    state_dir: &Path,
) -> PathBuf {
    if let Some(file) = &overrides.config {
        return user_path(&file.to_string_lossy(), home);
    }
    if let Some(file) = env_value(env, "OPENCLAW_CONFIG_PATH") {
        return user_path(file, home);
    }
    state_dir.join("openclaw.json")
}

/// `<state>/openclawd/openclawd.json`.
pub(crate) fn own_file(state_dir: &Path) -> PathBuf {
    state_dir.join("openclawd").join("openclawd.json")
}

/// The agent dir of `agent_id`: its `agentDir`, else (default agent only) `OPENCLAW_AGENT_DIR`
/// (or OpenClaw's older `PI_CODING_AGENT_DIR`), else `<state>/agents/<id>/agent`.
pub(crate) fn agent_dir(
    agent_id: &str,
    is_default: bool,
    configured: Option<&str>,
    env: &BTreeMap<String, String>,
    home: Option<&Path>,
    state_dir: &Path,
) -> PathBuf {
    if let Some(dir) = configured.map(str::trim).filter(|d| !d.is_empty()) {
        return user_path(dir, home);
    }
    if is_default {
        let env_dir =
            env_value(env, "OPENCLAW_AGENT_DIR").or_else(|| env_value(env, "PI_CODING_AGENT_DIR"));
        if let Some(dir) = env_dir {
            return user_path(dir, home);
        }
    }
    state_dir.join("agents").join(agent_id).join("agent")
}

/// `--ollama-bin`, `OPENCLAWD_OLLAMA_BIN`, own `ollama.bin`, `ollama` on `PATH`, else plain
/// `ollama`. A bare name (no `/`) is looked up on `PATH`.
pub(crate) fn ollama_bin(
    overrides: &Overrides,
    env: &BTreeMap<String, String>,
    own_bin: Option<&Path>,
    home: Option<&Path>,
) -> PathBuf {
    let chosen = overrides
        .ollama_bin
        .as_ref()
        .map(|p| p.to_string_lossy().into_owned())
        .or_else(|| env_value(env, "OPENCLAWD_OLLAMA_BIN").map(str::to_string))
        .or_else(|| own_bin.map(|p| p.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "ollama".to_string());
    if chosen.contains('/') {
        return user_path(&chosen, home);
    }
    search_path(&chosen, env).unwrap_or_else(|| PathBuf::from(chosen))
}

/// The first executable file named `name` in the `PATH` of `env`.
pub(crate) fn search_path(name: &str, env: &BTreeMap<String, String>) -> Option<PathBuf> {
    let path = env.get("PATH")?;
    path.split(':')
        .filter(|dir| !dir.is_empty())
        .map(|dir| Path::new(dir).join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

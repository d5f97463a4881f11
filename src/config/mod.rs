//! Configuration (SPEC §2): path resolution, OpenClaw's `openclaw.json` (JSON5, `${VAR}`,
//! `env.vars`, `$include`), `auth-profiles.json`, and openclawd's own `openclawd.json`,
//! parsed once into an immutable [`Snapshot`].
//!
//! Load order (OpenClaw's): read and parse the config, resolve `$include`, apply `env.vars` to
//! the variables the environment lacks, substitute `${VAR}`, then extract typed values.

mod address;
mod auth;
mod error;
mod extract;
mod include;
mod own;
mod parse;
mod paths;
mod published;
mod read;
mod subst;
mod syntax;
mod types;
mod typos;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

pub use address::parse_ollama_host;
pub use error::{ConfigError, SourcePos};
pub use published::Published;
pub use types::*;

use parse::Document;
use read::Reader;

/// Loads every file openclawd reads into a [`Snapshot`] (with `generation` 0; the watcher
/// numbers the snapshots it swaps in).
///
/// `env` is the environment to resolve against (the daemon passes `std::env::vars()`; tests
/// their own map). A missing `openclaw.json` is not an error: the defaults apply and a warning
/// says so.
pub fn load(
    overrides: &Overrides,
    env: &BTreeMap<String, String>,
) -> Result<Snapshot, ConfigError> {
    load_with(overrides, env, false)
}

/// The snapshot to serve with when the config files are broken at start: paths, gateway and
/// environment resolved as usual, everything the broken files would say left at its default.
/// Fails only on what no file can fix (bad command-line flags, no home directory).
pub fn degraded_snapshot(
    overrides: &Overrides,
    env: &BTreeMap<String, String>,
) -> Result<Snapshot, ConfigError> {
    load_with(overrides, env, true)
}

fn load_with(
    overrides: &Overrides,
    env: &BTreeMap<String, String>,
    degraded: bool,
) -> Result<Snapshot, ConfigError> {
    let home = paths::home_dir(env);
    let home = home.as_deref();
    let state_dir = paths::state_dir(overrides, env, home)?;
    let config_file = paths::config_file(overrides, env, home, &state_dir);
    let mut warnings = Vec::new();

    let root = if degraded {
        parse::Document::empty(&config_file)
    } else {
        read_config(&config_file, &mut warnings)?
    };
    let resolved = include::resolve(root)?;
    let mut config = resolved.value;
    let locator = resolved.locator;
    let r = Reader { locator: &locator };
    extract::check_root(&r, &config)?;
    typos::check(&config, &locator, &mut warnings);

    let env = subst::merge_env(env, subst::config_env_vars(&config));
    subst::substitute_tree(&mut config, &env, &locator)?;

    let ollama_base_url = extract::ollama_base_url(&r, &config)?;
    let ollama = extract::ollama_address(ollama_base_url.as_deref(), &env);
    let providers = extract::providers(&r, &config, &env, &ollama, &mut warnings)?;
    let model = extract::model_selection(&r, &config)?;
    let model_entries = extract::model_entries(&r, &config)?;
    let agent_entries = extract::agents(&r, &config, &mut warnings)?;
    let session_store = extract::session_store(&r, &config)?;
    let gw = extract::gateway(&r, &config, overrides, &env, &mut warnings)?;

    let agents: Vec<AgentConfig> = agent_entries
        .iter()
        .map(|a| AgentConfig {
            id: a.id.clone(),
            default: a.default,
            agent_dir: paths::agent_dir(
                &a.id,
                a.default,
                a.agent_dir.as_deref(),
                &env,
                home,
                &state_dir,
            ),
        })
        .collect();
    // The default agent first: its profiles win on an id clash.
    let mut auth_files: Vec<PathBuf> = Vec::new();
    for agent in agents
        .iter()
        .filter(|a| a.default)
        .chain(agents.iter().filter(|a| !a.default))
    {
        let file = agent.agent_dir.join("auth-profiles.json");
        if !auth_files.contains(&file) {
            auth_files.push(file);
        }
    }
    let mut auth_profiles = BTreeMap::new();
    for file in &auth_files {
        if let Err(e) = auth::load_auth_file(file, &mut auth_profiles, &mut warnings) {
            if !degraded {
                return Err(e);
            }
        }
    }

    let own_file = paths::own_file(&state_dir);
    let own = match own::load_own(&own_file, home) {
        Ok(own) => own,
        Err(_) if degraded => OwnSettings::default(),
        Err(e) => return Err(e),
    };
    let ollama_bin = paths::ollama_bin(overrides, &env, own.ollama.bin.as_deref(), home);

    let discovery_opt_in = paths::env_value(&env, "OLLAMA_API_KEY").is_some()
        || auth_profiles.values().any(|p| p.provider == "ollama");

    Ok(Snapshot {
        generation: 0,
        loaded_at: SystemTime::now(),
        paths: ResolvedPaths {
            state_dir,
            config_file,
            included_files: resolved.included_files,
            own_file,
            auth_files,
            ollama_bin,
        },
        providers,
        model,
        model_entries,
        agents,
        gateway: GatewayConfig {
            port: gw.port,
            bind: gw.bind,
            bind_addr: gw.bind_addr,
            token: gw.token,
        },
        session_store,
        auth_profiles,
        env,
        ollama,
        discovery_opt_in,
        own,
        warnings,
    })
}

/// Reads and parses `openclaw.json`; a missing file is an empty config plus a warning.
fn read_config(file: &Path, warnings: &mut Vec<String>) -> Result<Document, ConfigError> {
    match std::fs::read_to_string(file) {
        Ok(text) => parse::parse_document(file, text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            warnings.push(format!("no config at {}; using defaults", file.display()));
            Ok(Document::empty(file))
        }
        Err(source) => Err(ConfigError::Read {
            path: file.to_path_buf(),
            source,
        }),
    }
}

/// Every `sessions.json` openclawd guards: the `session.store` template (`{agentId}` and a
/// leading `~` expanded), else `<state>/agents/<id>/sessions/sessions.json`, for every
/// configured agent and every directory present under `<state>/agents/`.
pub fn session_stores(snapshot: &Snapshot) -> Vec<SessionStore> {
    let state_dir = &snapshot.paths.state_dir;
    let mut ids: Vec<String> = snapshot.agents.iter().map(|a| a.id.clone()).collect();
    if let Ok(entries) = std::fs::read_dir(state_dir.join("agents")) {
        let mut present: Vec<String> = entries
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|name| !name.starts_with('.'))
            .collect();
        present.sort();
        for id in present {
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
    }
    let home = paths::home_dir(&snapshot.env);
    let mut stores: Vec<SessionStore> = Vec::new();
    for agent_id in ids {
        let path = match &snapshot.session_store {
            Some(template) => {
                let expanded = template.replace("{agentId}", &agent_id);
                paths::user_path(&expanded, home.as_deref())
            }
            None => state_dir
                .join("agents")
                .join(&agent_id)
                .join("sessions")
                .join("sessions.json"),
        };
        // A template without `{agentId}` names one file shared by every agent.
        if stores.iter().any(|s| s.path == path) {
            continue;
        }
        stores.push(SessionStore { agent_id, path });
    }
    stores
}

//! `openclawd doctor`: the seeds' troubleshooting list, run instead of read. Each check says
//! what it found and, when something is wrong, the command that fixes it. Exit 1 when any
//! check fails.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::process::ExitCode;

use serde::Serialize;

use super::status::{daemon_endpoint, fetch_status, human_bytes, runtime};
use super::GlobalArgs;
use crate::config::{self, Snapshot};
use crate::discovery::{self, Discovery};
use crate::gateway::status::StatusReport;
use crate::housekeeping::{session_stores, Mode, SessionsGuard};
use crate::ollama::{self, client::OllamaClient, managers, process};
use crate::service::{self, env as service_env, launchd, systemd, ManagerKind, ServiceContext};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Ok,
    Warn,
    Fail,
    Skip,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub id: &'static str,
    pub title: &'static str,
    pub status: Level,
    pub detail: String,
    /// The command (or edit) that fixes it.
    pub fix: Option<String>,
}

fn check(id: &'static str, title: &'static str, status: Level, detail: impl Into<String>) -> Check {
    Check {
        id,
        title,
        status,
        detail: detail.into(),
        fix: None,
    }
}

impl Check {
    fn fix(mut self, fix: impl Into<String>) -> Check {
        self.fix = Some(fix.into());
        self
    }
}

/// What the checks share.
struct Scene {
    env: BTreeMap<String, String>,
    snapshot: Snapshot,
    /// `/status` of the running daemon.
    status: Option<StatusReport>,
    binary_version: Option<String>,
    server_version: Option<String>,
    discovery: Option<Result<Discovery, String>>,
}

fn install_ollama_command() -> &'static str {
    if cfg!(target_os = "macos") {
        "brew install ollama (or the app from https://ollama.com/download)"
    } else {
        "curl -fsSL https://ollama.com/install.sh | sh"
    }
}

fn mask_userinfo(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

fn check_config(
    overrides: &config::Overrides,
    env: &BTreeMap<String, String>,
) -> (Check, Option<Snapshot>) {
    match config::load(overrides, env) {
        Ok(s) => {
            let c = if s.paths.config_file.exists() {
                check(
                    "config",
                    "config parses",
                    Level::Ok,
                    format!(
                        "{}{} parses",
                        s.paths.config_file.display(),
                        match s.paths.included_files.len() {
                            0 => String::new(),
                            n => format!(" (with {n} included files)"),
                        }
                    ),
                )
            } else {
                check(
                    "config",
                    "config parses",
                    Level::Warn,
                    format!(
                        "no config at {}; defaults apply",
                        s.paths.config_file.display()
                    ),
                )
                .fix("set up OpenClaw (`openclaw onboard`), or pass --config")
            };
            (c, Some(s))
        }
        Err(e) => {
            let fix = match e.location() {
                Some((file, line, col)) => format!(
                    "edit {}:{line}:{col} as the message says; a running openclawd reloads it by itself",
                    file.display()
                ),
                None => match e.file() {
                    Some(f) => format!("fix {} as the message says", f.display()),
                    None => "fix the command line or environment as the message says".into(),
                },
            };
            (
                check("config", "config parses", Level::Fail, e.to_string()).fix(fix),
                None,
            )
        }
    }
}

fn check_daemon(scene: &Scene, installed: bool) -> Check {
    match &scene.status {
        Some(st) => check(
            "daemon",
            "openclawd running",
            Level::Ok,
            format!("pid {} listening on {}", st.daemon.pid, st.gateway.listen),
        ),
        None => check(
            "daemon",
            "openclawd running",
            Level::Warn,
            "openclawd is not running (nothing answers /status)",
        )
        .fix(if installed {
            "openclawd start (it goes through the installed service)"
        } else {
            "openclawd start, or `openclawd install` to run it as a service"
        }),
    }
}

fn manages_local(s: &Snapshot) -> bool {
    s.own.ollama.manage && s.ollama.loopback
}

fn check_binary(scene: &Scene) -> Check {
    let bin = &scene.snapshot.paths.ollama_bin;
    let needed = manages_local(&scene.snapshot);
    match &scene.binary_version {
        Some(v) => check(
            "ollama_binary",
            "Ollama binary",
            Level::Ok,
            format!("{} (version {v})", bin.display()),
        ),
        None => {
            let found = bin.is_file();
            let detail = if found {
                format!(
                    "{} does not report a version (`{} --version` failed)",
                    bin.display(),
                    bin.display()
                )
            } else if bin.components().count() > 1 {
                format!("{} does not exist", bin.display())
            } else {
                format!("no `{}` on PATH", bin.display())
            };
            check(
                "ollama_binary",
                "Ollama binary",
                if needed { Level::Fail } else { Level::Warn },
                detail,
            )
            .fix(format!(
                "install Ollama: {}; or point OPENCLAWD_OLLAMA_BIN (or --ollama-bin) at it",
                install_ollama_command()
            ))
        }
    }
}

fn check_server(scene: &Scene) -> Check {
    let s = &scene.snapshot;
    let base = &s.ollama.base_url;
    match &scene.server_version {
        Some(v) => check(
            "ollama_server",
            "Ollama server reachable",
            Level::Ok,
            format!("{base} answers (version {v})"),
        ),
        None if !s.ollama.loopback => check(
            "ollama_server",
            "Ollama server reachable",
            Level::Fail,
            format!("nothing answers at {base}"),
        )
        .fix("start Ollama on that host, or correct models.providers.ollama.baseUrl / OLLAMA_HOST"),
        None if scene.status.is_none() && s.own.ollama.manage => check(
            "ollama_server",
            "Ollama server reachable",
            Level::Warn,
            format!("nothing answers at {base}; openclawd starts Ollama when it runs"),
        )
        .fix("openclawd start"),
        None if s.own.ollama.manage => check(
            "ollama_server",
            "Ollama server reachable",
            Level::Fail,
            format!(
                "nothing answers at {base} although openclawd runs (Ollama state: {})",
                scene
                    .status
                    .as_ref()
                    .map_or("?", |st| st.ollama.status.state.as_str())
            ),
        )
        .fix(format!(
            "see `openclawd status` and {}",
            s.paths.state_dir.join("logs").join("ollama.log").display()
        )),
        None => check(
            "ollama_server",
            "Ollama server reachable",
            Level::Fail,
            format!(
                "nothing answers at {base} (ollama.manage is off, so openclawd does not start it)"
            ),
        )
        .fix("ollama serve"),
    }
}

/// The exact command that restarts the Ollama serving `port` on the installed binary.
fn restart_command(scene: &Scene) -> String {
    if let Some(cmd) = scene
        .status
        .as_ref()
        .and_then(|st| st.ollama.status.version_mismatch.as_deref())
    {
        return cmd.to_string();
    }
    let s = &scene.snapshot;
    if !s.ollama.loopback {
        return format!(
            "upgrade or restart Ollama on the host of {}",
            s.ollama.base_url
        );
    }
    let pid = managers::serving_pid(s.ollama.port);
    let recorded = ollama::record::read(&s.paths.state_dir).ok().flatten();
    match pid {
        Some(pid) if recorded.as_ref().is_some_and(|r| r.pid == pid) => {
            if scene.status.is_some() {
                "openclawd restart (openclawd restarts the Ollama it owns on the installed version)"
                    .into()
            } else {
                "openclawd start (it takes its Ollama back and restarts it on the installed version)".into()
            }
        }
        pid => {
            let afterwards = match (manages_local(s), scene.status.is_some()) {
                (true, true) => managers::Afterwards::OpenclawdStartsIt,
                (true, false) => managers::Afterwards::OpenclawdStart,
                (false, _) => managers::Afterwards::UserStartsIt,
            };
            pid.map(managers::identify)
                .unwrap_or(managers::Manager::Unknown)
                .fix_command(pid, afterwards)
        }
    }
}

fn check_version_match(scene: &Scene) -> Check {
    match (&scene.server_version, &scene.binary_version) {
        (Some(server), Some(binary)) if server == binary => check(
            "ollama_version",
            "Ollama client/server versions match",
            Level::Ok,
            format!("server and binary are both {server}"),
        ),
        (Some(server), Some(binary)) => check(
            "ollama_version",
            "Ollama client/server versions match",
            Level::Fail,
            format!(
                "the server runs {server} but the installed binary is {binary}: an old server is still running after an upgrade"
            ),
        )
        .fix(restart_command(scene)),
        _ => check(
            "ollama_version",
            "Ollama client/server versions match",
            Level::Skip,
            "needs both a running server and the binary",
        ),
    }
}

fn suggested_model(s: &Snapshot) -> String {
    s.model
        .primary
        .as_deref()
        .and_then(|p| p.strip_prefix("ollama/"))
        .unwrap_or("gpt-oss:20b")
        .to_string()
}

fn check_models(scene: &Scene) -> (Check, Check) {
    let title_m = "Ollama models installed";
    let title_t = "tools-capable models present";
    let Some(result) = &scene.discovery else {
        return (
            check(
                "models",
                title_m,
                Level::Skip,
                "needs a running Ollama server",
            ),
            check(
                "tools_models",
                title_t,
                Level::Skip,
                "needs a running Ollama server",
            ),
        );
    };
    let d = match result {
        Ok(d) => d,
        Err(e) => {
            return (
                check("models", title_m, Level::Fail, e.clone())
                    .fix("check that the server is Ollama and answers /api/tags"),
                check(
                    "tools_models",
                    title_t,
                    Level::Skip,
                    "model discovery failed",
                ),
            )
        }
    };
    let pull = format!("ollama pull {}", suggested_model(&scene.snapshot));
    let models = if d.models.is_empty() {
        check("models", title_m, Level::Fail, "Ollama has no models").fix(pull.clone())
    } else {
        let names: Vec<&str> = d.models.iter().map(|m| m.name.as_str()).collect();
        check(
            "models",
            title_m,
            Level::Ok,
            format!("{} installed: {}", names.len(), names.join(", ")),
        )
    };
    let tools: Vec<&str> = d
        .models
        .iter()
        .filter(|m| m.tools && m.not_chat.is_none())
        .map(|m| m.name.as_str())
        .collect();
    let tools_check = if d.models.is_empty() {
        check("tools_models", title_t, Level::Skip, "no models installed")
    } else if tools.is_empty() {
        check(
            "tools_models",
            title_t,
            Level::Fail,
            "no installed model supports tools; OpenClaw's agents need tool calls",
        )
        .fix(format!(
            "ollama pull qwen3-coder:30b (or another model with tools), or set discovery: {{ requireTools: false }} in {}",
            scene.snapshot.paths.own_file.display()
        ))
    } else {
        check("tools_models", title_t, Level::Ok, tools.join(", "))
    };
    (models, tools_check)
}

fn check_auth(scene: &Scene) -> Check {
    let s = &scene.snapshot;
    let title = "OLLAMA_API_KEY or ollama auth profile";
    if let Some(p) = s.auth_profiles.values().find(|p| p.provider == "ollama") {
        return check(
            "ollama_auth",
            title,
            Level::Ok,
            format!("auth profile {}", p.id),
        );
    }
    if s.env.get("OLLAMA_API_KEY").is_some_and(|v| !v.is_empty()) {
        return check("ollama_auth", title, Level::Ok, "OLLAMA_API_KEY is set");
    }
    if let Some(p) = s.providers.get("ollama") {
        if p.models_explicit || p.api_key.is_some() {
            return check(
                "ollama_auth",
                title,
                Level::Ok,
                "models.providers.ollama is configured explicitly",
            );
        }
    }
    check(
        "ollama_auth",
        title,
        Level::Fail,
        "neither OLLAMA_API_KEY nor an ollama:* auth profile is set, so OpenClaw (and openclawd) do not discover Ollama's models",
    )
    .fix("export OLLAMA_API_KEY=ollama-local (any value works for a local Ollama), then `openclawd install` to give it to the service")
}

/// Proxy variables in `vars` that would capture loopback traffic, with the fix.
fn proxy_problem(vars: &BTreeMap<String, String>) -> Option<(String, String)> {
    let no_proxy = vars
        .get("NO_PROXY")
        .filter(|v| !v.is_empty())
        .or_else(|| vars.get("no_proxy").filter(|v| !v.is_empty()));
    if no_proxy.is_some_and(|n| service_env::no_proxy_covers_loopback(n)) {
        return None;
    }
    let set: Vec<String> = service_env::HTTP_PROXY_VARS
        .iter()
        .filter_map(|k| {
            vars.get(*k)
                .filter(|v| !v.is_empty())
                .map(|v| format!("{k}={}", mask_userinfo(v)))
        })
        .collect();
    if set.is_empty() {
        return None;
    }
    let merged = service_env::with_loopback(no_proxy.map(String::as_str));
    Some((
        set.join(", "),
        format!("export NO_PROXY={merged} no_proxy={merged}"),
    ))
}

fn check_proxy(scene: &Scene, service_vars: Option<&BTreeMap<String, String>>) -> Check {
    let title = "no proxy captures loopback";
    if let Some((set, fix)) = proxy_problem(&scene.env) {
        return check(
            "proxy",
            title,
            Level::Fail,
            format!(
                "{set} is set and NO_PROXY does not exempt 127.0.0.1 and localhost: OpenClaw's requests to Ollama and to openclawd go to the proxy and fail (\"fetch failed\")"
            ),
        )
        .fix(fix);
    }
    if let Some((set, _)) = service_vars.and_then(proxy_problem) {
        return check(
            "proxy",
            title,
            Level::Fail,
            format!("the service environment has {set} without a loopback NO_PROXY"),
        )
        .fix("openclawd install (it rewrites the service environment with NO_PROXY=127.0.0.1,localhost,::1)");
    }
    check(
        "proxy",
        title,
        Level::Ok,
        "no proxy variable would capture 127.0.0.1",
    )
}

fn check_port(scene: &Scene) -> Check {
    let s = &scene.snapshot;
    let port = s.gateway.port;
    let title = "gateway port free or ours";
    let ours = scene.status.as_ref().and_then(|st| {
        st.gateway
            .listen
            .ends_with(&format!(":{port}"))
            .then_some(st.daemon.pid)
    });
    if let Some(pid) = ours {
        return check(
            "port",
            title,
            Level::Ok,
            format!("port {port} is openclawd's (pid {pid})"),
        );
    }
    let addr = SocketAddr::new(s.gateway.bind_addr, port);
    match TcpListener::bind(addr) {
        Ok(_) => check("port", title, Level::Ok, format!("port {port} is free")),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            let holder = process::listener_on_port(port);
            let pid = holder.as_ref().and_then(|l| l.pids.first().copied());
            let (who, fix) = match pid {
                Some(pid) => {
                    let desc = process::describe(pid);
                    let cmd = process::cmdline(pid)
                        .unwrap_or_default()
                        .join(" ")
                        .to_lowercase();
                    let fix = if cmd.contains("openclaw") && cmd.contains("gateway") {
                        "openclaw gateway stop (or `openclaw gateway run --port 18790` for OpenClaw's own gateway), or start openclawd with --force".to_string()
                    } else if cmd.contains("openclawd") {
                        "openclawd restart (it takes over from the old instance)".into()
                    } else {
                        format!("stop {desc} (`kill {pid}`), or set gateway.port / --port")
                    };
                    (desc, fix)
                }
                None => (
                    match holder {
                        Some(l) => format!("a process of uid {}", l.uid),
                        None => "another program".into(),
                    },
                    "stop it, or set gateway.port / --port".into(),
                ),
            };
            check(
                "port",
                title,
                Level::Fail,
                format!("port {port} is held by {who}"),
            )
            .fix(fix)
        }
        Err(e) => check(
            "port",
            title,
            Level::Warn,
            format!("cannot test {addr}: {e}"),
        ),
    }
}

fn check_sessions(scene: &Scene) -> Check {
    let s = &scene.snapshot;
    let title = "sessions files size";
    let guard = SessionsGuard::new(
        s.paths.state_dir.join("openclawd").join("backups"),
        s.own.sessions.clone(),
    );
    let mut problems = Vec::new();
    let mut seen = 0;
    let mut largest = 0;
    for store in session_stores(s) {
        match guard.check(&store, Mode::DryRun) {
            Ok(r) if !r.exists => {}
            Ok(r) => {
                seen += 1;
                largest = largest.max(r.size_bytes);
                if r.action.is_some() {
                    problems.push(format!(
                        "{}: {} of {} allowed, {} entries, {} overflowing{}",
                        r.path.display(),
                        human_bytes(r.size_bytes),
                        human_bytes(s.own.sessions.max_bytes),
                        r.entries,
                        r.overflowing.len(),
                        if r.overflowing.is_empty() {
                            String::new()
                        } else {
                            format!(" ({})", r.overflowing.join(", "))
                        }
                    ));
                }
            }
            Err(e) => problems.push(e.to_string()),
        }
    }
    if !problems.is_empty() {
        return check("sessions", title, Level::Fail, problems.join("; "))
            .fix("openclawd sessions --prune-now (a backup is made first)");
    }
    if seen == 0 {
        return check("sessions", title, Level::Ok, "no sessions.json yet");
    }
    check(
        "sessions",
        title,
        Level::Ok,
        format!(
            "{seen} sessions files, the largest {} of {} allowed",
            human_bytes(largest),
            human_bytes(s.own.sessions.max_bytes)
        ),
    )
}

fn check_service(global: &GlobalArgs, scene: &Scene) -> (Check, Option<BTreeMap<String, String>>) {
    let title = "service installed and loaded";
    let kind = ManagerKind::native();
    let overrides = global.overrides();
    let ctx = [false, true]
        .into_iter()
        .filter(|system| !*system || kind == ManagerKind::Systemd)
        .filter_map(|system| ServiceContext::new(kind, system, &overrides, &scene.env).ok())
        .find(|c| c.installed());
    let Some(ctx) = ctx else {
        return (
            check(
                "service",
                title,
                Level::Warn,
                format!("openclawd is not installed as a {} service", kind.name()),
            )
            .fix("openclawd install"),
            None,
        );
    };
    let file = ctx.service_file();
    let exe = match kind {
        ManagerKind::Systemd => systemd::read_installed(&file),
        ManagerKind::Launchd => launchd::read_installed(&file),
    };
    if let Some(exe) = exe {
        if !exe.is_file() {
            return (
                check(
                    "service",
                    title,
                    Level::Fail,
                    format!(
                        "{} runs {}, which no longer exists (moved by an upgrade?)",
                        file.display(),
                        exe.display()
                    ),
                )
                .fix("openclawd install (it rewrites the service with this executable's path)"),
                None,
            );
        }
    }
    let env_file = ctx.env_file();
    let service_vars = std::fs::read_to_string(&env_file)
        .ok()
        .map(|t| service_env::parse(&t));
    match std::fs::metadata(&env_file) {
        Err(_) => {
            return (
                check(
                    "service",
                    title,
                    Level::Fail,
                    format!("{} is missing", env_file.display()),
                )
                .fix("openclawd install"),
                service_vars,
            )
        }
        Ok(m) if m.permissions().mode() & 0o077 != 0 => {
            return (
                check(
                    "service",
                    title,
                    Level::Fail,
                    format!(
                        "{} is readable by others (mode {:04o}) and may hold API keys",
                        env_file.display(),
                        m.permissions().mode() & 0o777
                    ),
                )
                .fix(format!("chmod 600 {}", env_file.display())),
                service_vars,
            )
        }
        Ok(_) => {}
    }
    let (loaded, fix) = match kind {
        ManagerKind::Systemd => {
            let scope = if ctx.system { "" } else { "--user " };
            (
                systemd::is_active(ctx.system),
                format!("systemctl {scope}enable --now {}", systemd::UNIT),
            )
        }
        ManagerKind::Launchd => (
            match launchd::job_pid(ctx.uid) {
                Ok(_) => Some(true),
                Err(service::CommandError::Failed { .. }) => Some(false),
                Err(_) => None,
            },
            format!(
                "launchctl enable {} && launchctl bootstrap {} {}",
                launchd::target(ctx.uid),
                launchd::domain(ctx.uid),
                file.display()
            ),
        ),
    };
    let c = match loaded {
        Some(true) => check(
            "service",
            title,
            Level::Ok,
            format!(
                "{} is installed and {} runs it",
                file.display(),
                kind.name()
            ),
        ),
        Some(false) => check(
            "service",
            title,
            Level::Fail,
            format!("{} is installed but not running", file.display()),
        )
        .fix(fix),
        None => check(
            "service",
            title,
            Level::Warn,
            format!(
                "{} is installed but {} does not answer",
                file.display(),
                kind.name()
            ),
        )
        .fix(fix),
    };
    // The shell may have gained a key since install (notes/openclaw.md §5: services lose keys).
    let c = if c.status == Level::Ok {
        let (wanted, _) = service::service_env(&ctx, &overrides, &scene.env);
        let have = service_vars.clone().unwrap_or_default();
        let missing: Vec<&String> = wanted
            .vars
            .keys()
            .filter(|k| *k != "PATH" && !have.contains_key(*k))
            .collect();
        if missing.is_empty() {
            c
        } else {
            check(
                "service",
                title,
                Level::Warn,
                format!(
                    "the service environment lacks {} which this shell has",
                    missing
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
            .fix("openclawd install (then the service gets them)")
        }
    } else {
        c
    };
    (c, service_vars)
}

pub fn doctor(global: &GlobalArgs, json: bool) -> anyhow::Result<ExitCode> {
    let env: BTreeMap<String, String> = std::env::vars().collect();
    let overrides = global.overrides();
    let rt = runtime()?;

    let (config_check, snapshot) = check_config(&overrides, &env);
    let snapshot = match snapshot {
        Some(s) => s,
        None => config::degraded_snapshot(&overrides, &env).map_err(|e| anyhow::anyhow!("{e}"))?,
    };
    let (base, token, _) = daemon_endpoint(global);
    let status = rt.block_on(fetch_status(&base, token.as_deref())).report();
    let binary_version = rt
        .block_on(ollama::version::binary_version(&snapshot.paths.ollama_bin))
        .ok();
    let server_version = OllamaClient::new(&snapshot.ollama)
        .ok()
        .and_then(|c| rt.block_on(c.version()).ok());
    let discovery = server_version.as_ref().map(|_| {
        let client = reqwest::Client::builder()
            .no_proxy()
            .build()
            .map_err(|e| e.to_string())?;
        rt.block_on(discovery::discover(
            &client,
            &snapshot.ollama.base_url,
            &snapshot.ollama.host_port(),
            &snapshot.own.discovery,
        ))
        .map_err(|e| e.to_string())
    });
    let scene = Scene {
        env,
        snapshot,
        status,
        binary_version,
        server_version,
        discovery,
    };

    let (service_check, service_vars) = check_service(global, &scene);
    let installed = service_check.status != Level::Warn || service_vars.is_some();
    let (models, tools) = check_models(&scene);
    let checks = vec![
        config_check,
        check_daemon(&scene, installed),
        check_binary(&scene),
        check_server(&scene),
        check_version_match(&scene),
        models,
        tools,
        check_auth(&scene),
        check_proxy(&scene, service_vars.as_ref()),
        check_port(&scene),
        check_sessions(&scene),
        service_check,
    ];
    let failures = checks.iter().filter(|c| c.status == Level::Fail).count();
    let warnings = checks.iter().filter(|c| c.status == Level::Warn).count();
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "ok": failures == 0,
                "failures": failures,
                "warnings": warnings,
                "checks": checks,
            }))?
        );
    } else {
        print_checks(&checks, failures, warnings);
    }
    Ok(if failures == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn print_checks(checks: &[Check], failures: usize, warnings: usize) {
    let colour = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let paint = |code: &str, s: &str| {
        if colour {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    };
    for c in checks {
        let mark = match c.status {
            Level::Ok => paint("32", "✓"),
            Level::Warn => paint("33", "!"),
            Level::Fail => paint("31", "✗"),
            Level::Skip => paint("2", "-"),
        };
        println!("{mark} {}: {}", c.title, c.detail);
        if let Some(fix) = &c.fix {
            if c.status != Level::Ok && c.status != Level::Skip {
                println!("    fix: {fix}");
            }
        }
    }
    println!();
    match (failures, warnings) {
        (0, 0) => println!("Everything checks out."),
        (0, w) => println!("No failures; {w} warning(s)."),
        (f, w) => println!("{f} problem(s) to fix, {w} warning(s)."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn proxy_without_loopback_no_proxy_is_a_problem_with_a_merged_fix() {
        let vars: BTreeMap<String, String> = [
            (
                "http_proxy".to_string(),
                "http://u:p@proxy:3128".to_string(),
            ),
            ("NO_PROXY".to_string(), "corp.example".to_string()),
        ]
        .into();
        let (set, fix) = proxy_problem(&vars).unwrap();
        assert_eq!(set, "http_proxy=http://***@proxy:3128");
        assert!(
            fix.contains("NO_PROXY=corp.example,127.0.0.1,localhost,::1"),
            "{fix}"
        );
        let ok: BTreeMap<String, String> = [
            ("HTTP_PROXY".to_string(), "http://proxy:3128".to_string()),
            ("no_proxy".to_string(), "localhost,127.0.0.1".to_string()),
        ]
        .into();
        assert!(proxy_problem(&ok).is_none());
        assert!(proxy_problem(&BTreeMap::new()).is_none());
    }

    #[test]
    fn the_executable_is_read_back_from_what_install_writes() {
        let dir = tempfile::tempdir().unwrap();
        for exe in ["/usr/bin/openclawd", "/opt/my apps/50% \"off\"/$openclawd"] {
            let unit = systemd::render(&systemd::UnitParams {
                exe: Path::new(exe),
                args: &["run".to_string(), "--bind".to_string(), "lan".to_string()],
                env_file: Path::new("/x/openclawd/service.env"),
                user: None,
                system: false,
                systemd_version: Some(255),
            });
            let unit_file = dir.path().join("openclawd.service");
            std::fs::write(&unit_file, unit).unwrap();
            assert_eq!(
                systemd::read_installed(&unit_file).as_deref(),
                Some(Path::new(exe))
            );

            let plist = launchd::render(&launchd::PlistParams {
                exe: Path::new(exe),
                extra_args: &["--bind".to_string(), "lan".to_string()],
                env_file: Path::new("/x/openclawd/service.env"),
                state_dir: Path::new("/x"),
                log_file: Path::new("/x/logs/openclawd.log"),
            });
            let plist_file = dir.path().join("ai.openclaw.openclawd.plist");
            std::fs::write(&plist_file, plist).unwrap();
            assert_eq!(
                launchd::read_installed(&plist_file).as_deref(),
                Some(Path::new(exe))
            );
        }
        assert_eq!(systemd::read_installed(&dir.path().join("missing")), None);
    }
}

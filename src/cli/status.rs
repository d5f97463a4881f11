//! `status`, `models` and `sessions`: the commands a person runs to see what is going on.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::GlobalArgs;
use crate::config::{self, Snapshot};
use crate::discovery::{ModelSource, SkippedModel};
use crate::gateway::status::{ModelEntry, StatusReport};
use crate::ollama::{Management, OllamaState};

/// Exit codes of `status` (like `systemctl status`).
const EXIT_DEGRADED: u8 = 1;
pub(super) const EXIT_NOT_RUNNING: u8 = 3;

pub(super) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn env_map() -> std::collections::BTreeMap<String, String> {
    std::env::vars().collect()
}

/// Where the daemon listens and its token, from the same config the daemon reads.
pub(super) fn daemon_endpoint(global: &GlobalArgs) -> (String, Option<String>, Option<Snapshot>) {
    let env = env_map();
    match config::load(&global.overrides(), &env) {
        Ok(s) => {
            let ip = if s.gateway.bind_addr.is_unspecified() {
                "127.0.0.1".to_string()
            } else if s.gateway.bind_addr.is_ipv6() {
                format!("[{}]", s.gateway.bind_addr)
            } else {
                s.gateway.bind_addr.to_string()
            };
            (
                format!("http://{ip}:{}", s.gateway.port),
                s.gateway.token.clone(),
                Some(s),
            )
        }
        Err(_) => {
            let port = global
                .port
                .or_else(|| {
                    env.get("OPENCLAW_GATEWAY_PORT")
                        .and_then(|p| p.parse().ok())
                })
                .unwrap_or(18789);
            (
                format!("http://127.0.0.1:{port}"),
                env.get("OPENCLAW_GATEWAY_TOKEN").cloned(),
                None,
            )
        }
    }
}

/// What asking the daemon for `/status` gave.
pub(super) enum Fetched {
    /// Nothing answered: openclawd is not running there.
    NotRunning,
    /// Something answered but not with a report this openclawd reads (wrong token, another
    /// program, an incompatible version): the sentence says which.
    Unreadable(String),
    Running(Box<StatusReport>),
}

impl Fetched {
    /// The report, when the daemon answered with one.
    pub(super) fn report(self) -> Option<StatusReport> {
        match self {
            Fetched::Running(r) => Some(*r),
            _ => None,
        }
    }
}

pub(super) async fn fetch_status(base: &str, token: Option<&str>) -> Fetched {
    let Ok(client) = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(3))
        .build()
    else {
        return Fetched::NotRunning;
    };
    let url = format!("{base}/status");
    let mut rb = client.get(&url);
    if let Some(t) = token {
        rb = rb.bearer_auth(t);
    }
    let resp = match rb.send().await {
        Ok(r) => r,
        Err(e) if e.is_connect() => return Fetched::NotRunning,
        Err(e) if e.is_timeout() => {
            return Fetched::Unreadable(format!("{url} did not answer within 3 s"))
        }
        Err(e) => return Fetched::Unreadable(format!("{url}: {e}")),
    };
    let code = resp.status();
    if code == reqwest::StatusCode::UNAUTHORIZED {
        return Fetched::Unreadable(format!(
            "{url} refused the token: set OPENCLAW_GATEWAY_TOKEN (or gateway.auth.token) to the daemon's token"
        ));
    }
    if !code.is_success() {
        return Fetched::Unreadable(format!("{url} answered HTTP {}", code.as_u16()));
    }
    match resp.json::<StatusReport>().await {
        Ok(r) => Fetched::Running(Box::new(r)),
        Err(e) => Fetched::Unreadable(format!(
            "{url} answered, but not with a status this openclawd {} reads ({e}); is it another program or another version? `openclawd restart` runs this one",
            env!("CARGO_PKG_VERSION")
        )),
    }
}

pub(super) struct Paint {
    on: bool,
}

impl Paint {
    pub(super) fn new() -> Paint {
        Paint {
            on: std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
        }
    }
    fn c(&self, code: &str, s: &str) -> String {
        if self.on {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
    pub(super) fn green(&self, s: &str) -> String {
        self.c("32", s)
    }
    pub(super) fn red(&self, s: &str) -> String {
        self.c("31", s)
    }
    pub(super) fn yellow(&self, s: &str) -> String {
        self.c("33", s)
    }
    pub(super) fn bold(&self, s: &str) -> String {
        self.c("1", s)
    }
}

/// `4.7 KiB`, `10 MiB`, `13.3 GiB`: sizes a person reads.
pub(super) fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = UNITS[0];
    for u in &UNITS[1..] {
        if v < 1024.0 {
            break;
        }
        v /= 1024.0;
        unit = u;
    }
    if v.fract() < 0.05 || v >= 100.0 {
        format!("{v:.0} {unit}")
    } else {
        format!("{v:.1} {unit}")
    }
}

/// Seconds since the Unix epoch of an RFC 3339 time with any offset, as Ollama writes
/// `expires_at` (`2026-08-22T10:21:07.412093851-07:00`).
fn epoch_secs(rfc3339: &str) -> Option<i64> {
    let (date, rest) = rfc3339.split_once('T')?;
    let mut d = date.splitn(3, '-').map(|x| x.parse::<i64>().ok());
    let (y, mo, day) = (d.next()??, d.next()??, d.next()??);
    let time_end = rest.find(['Z', 'z', '+', '-']).unwrap_or(rest.len());
    let (time, zone) = rest.split_at(time_end);
    let time = time.split('.').next()?;
    let mut t = time.splitn(3, ':').map(|x| x.parse::<i64>().ok());
    let (h, mi, sec) = (t.next()??, t.next()??, t.next()??);
    let offset = match zone {
        "" | "Z" | "z" => 0,
        z => {
            let sign = if z.starts_with('-') { -1 } else { 1 };
            let (oh, om) = z[1..].split_once(':')?;
            sign * (oh.parse::<i64>().ok()? * 3600 + om.parse::<i64>().ok()? * 60)
        }
    };
    // Days from civil (H. Hinnant).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + mi * 60 + sec - offset)
}

/// When a loaded model unloads, relative to now: `unloads in 29m 12s`, `kept loaded`.
fn unloads(at: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    match epoch_secs(at) {
        // Ollama's keep_alive -1 is a date centuries away.
        Some(t) if t - now > 10 * 365 * 86_400 => "kept loaded".into(),
        Some(t) if t > now => format!(
            "unloads in {}",
            humantime::format_duration(Duration::from_secs((t - now) as u64))
        ),
        Some(_) => "unloading".into(),
        None => format!("until {at}"),
    }
}

/// The pid of an openclawd that runs (its pid file proves it) although nothing answered at the
/// configured address.
fn running_elsewhere(global: &GlobalArgs, snapshot: Option<&Snapshot>) -> Option<u32> {
    let state_dir = match snapshot {
        Some(s) => s.paths.state_dir.clone(),
        None => {
            config::degraded_snapshot(&global.overrides(), &env_map())
                .ok()?
                .paths
                .state_dir
        }
    };
    crate::service::control::running(&state_dir)
        .ok()
        .flatten()
        .map(|p| p.pid())
}

/// What `status` and the other commands do when the daemon is not there to ask.
fn not_running(base: &str, json: bool) -> ExitCode {
    if json {
        println!("{}", serde_json::json!({"running": false, "address": base}));
    } else {
        println!("openclawd is not running (nothing answered at {base}/status).");
        println!("Start it with `openclawd start` (or `openclawd run` in the foreground), or `openclawd install` it as a service.");
    }
    ExitCode::from(EXIT_NOT_RUNNING)
}

pub fn status(global: &GlobalArgs, json: bool) -> anyhow::Result<ExitCode> {
    let (base, token, snapshot) = daemon_endpoint(global);
    let st = match runtime()?.block_on(fetch_status(&base, token.as_deref())) {
        Fetched::Running(st) => st,
        Fetched::NotRunning => {
            if let Some(pid) = running_elsewhere(global, snapshot.as_ref()) {
                anyhow::bail!(
                    "openclawd (pid {pid}) is running but nothing answers at {base}/status: its \
                     listen address differs from the config's (a changed gateway.port or bind \
                     applies after `openclawd restart`)"
                );
            }
            return Ok(not_running(&base, json));
        }
        Fetched::Unreadable(why) => anyhow::bail!("{why}"),
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&st)?);
    } else {
        print_status(&st);
    }
    Ok(if st.health.healthy {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_DEGRADED)
    })
}

fn dash<T: std::fmt::Display>(v: &Option<T>) -> String {
    v.as_ref()
        .map(ToString::to_string)
        .unwrap_or_else(|| "-".into())
}

fn print_status(st: &StatusReport) {
    let p = Paint::new();
    let healthy = st.health.healthy;
    let dot = if healthy {
        p.green("●")
    } else {
        p.yellow("●")
    };
    println!(
        "{dot} {} {} — {} (pid {}, up {}) on {}",
        p.bold("openclawd"),
        st.daemon.version,
        if healthy {
            p.green("healthy")
        } else {
            p.yellow("degraded")
        },
        st.daemon.pid,
        humantime::format_duration(Duration::from_secs(st.daemon.uptime_secs)),
        st.gateway.listen,
    );
    // Each problem once, here; the lines below refer to it instead of repeating it.
    for problem in &st.health.problems {
        println!("  {} {}", p.yellow("!"), problem.message);
        println!("    fix: {}", problem.fix);
    }
    let o = &st.ollama.status;
    let ostate = o.state.as_str();
    let ostate_p = if o.state == OllamaState::Running {
        p.green(ostate)
    } else {
        p.red(ostate)
    };
    let management = match o.management {
        Some(Management::Owned) => "owned",
        Some(Management::Adopted) => "adopted",
        Some(Management::Remote) => "remote",
        None => "-",
    };
    println!(
        "  Ollama:   {ostate_p} · {management} · pid {} · {} · server {} · binary {} · {} restarts{}",
        dash(&o.pid),
        o.base_url,
        dash(&o.server_version),
        dash(&o.binary_version),
        o.restarts,
        match (&o.last_restart_reason, &o.last_restart_at) {
            (Some(r), Some(at)) => format!(" (last: {r}, at {at})"),
            (Some(r), None) => format!(" (last: {r})"),
            _ => String::new(),
        },
    );
    match &st.ollama.loaded {
        Some(loaded) if loaded.is_empty() => println!("  Loaded:   no model in memory"),
        Some(loaded) => {
            for (i, m) in loaded.iter().enumerate() {
                println!(
                    "  {} {} · {} · {}",
                    if i == 0 { "Loaded:  " } else { "         " },
                    m.name,
                    human_bytes(m.size),
                    unloads(&m.expires_at),
                );
            }
        }
        None => {}
    }
    let config_state = match (&st.config.error, st.config.warnings.len()) {
        (Some(_), _) => p.red("error (see above)"),
        (None, 0) => p.green("ok"),
        (None, n) => p.yellow(&format!(
            "{n} warning{} (see above)",
            if n == 1 { "" } else { "s" }
        )),
    };
    println!(
        "  Config:   {} · generation {} · {config_state}",
        st.config.path.display(),
        st.config.generation,
    );
    let mark = |r: &str| -> String {
        match st.model(r) {
            Some(m) if m.available => format!("{r} {}", p.green("✓")),
            Some(m) => {
                let why = if m.cooldown_until.is_some() {
                    "cooldown"
                } else if m.unroutable.is_some() {
                    "unroutable"
                } else if m.on_supervised_ollama {
                    "Ollama down"
                } else {
                    "unavailable"
                };
                format!("{r} {}", p.red(&format!("✗ {why}")))
            }
            None if st.skipped_models.iter().any(|s| s.model_ref == r) => {
                format!("{r} {}", p.red("✗ skipped"))
            }
            None => format!("{r} {}", p.red("✗ not in catalogue")),
        }
    };
    let chain: Vec<String> = st
        .routing
        .primary
        .iter()
        .chain(st.routing.fallbacks.iter())
        .map(|r| mark(r))
        .collect();
    println!(
        "  Routing:  {}",
        if chain.is_empty() {
            "(no agents.defaults.model configured)".into()
        } else {
            chain.join(" → ")
        }
    );
    println!(
        "  Models:   {} in catalogue{}",
        st.models.len(),
        match st.skipped_models.len() {
            0 => String::new(),
            n => format!(", {n} skipped"),
        }
    );
    for sk in &st.skipped_models {
        println!(
            "  Skipped:  {} — {} (fix: {})",
            sk.model_ref, sk.reason, sk.fix
        );
    }
    if let Some(err) = &st.discovery.error {
        println!("  Discovery: {}", p.red(err));
    }
    println!(
        "  Gateway:  {} requests · {} fallbacks",
        st.gateway.requests_total, st.gateway.fallbacks_total
    );
    println!(
        "  Housekeeping: {} sessions cleared · {} port reclaims · last: {}",
        st.housekeeping.sessions_cleared_total,
        st.housekeeping.port_reclaims_total,
        dash(&st.housekeeping.last_action),
    );
    match &st.logs.journal {
        Some(journal) => println!(
            "  Logs:     `{journal}` · Ollama: {} (`openclawd logs [--ollama] [-f]`)",
            st.logs.ollama.display()
        ),
        None => println!(
            "  Logs:     {} · Ollama: {} (`openclawd logs [--ollama] [-f]`)",
            st.logs.openclawd.display(),
            st.logs.ollama.display()
        ),
    }
}

/// `openclawd models --json`: the catalogue, from the running daemon or, when none runs, from
/// the config and one discovery.
#[derive(Debug, Serialize, Deserialize)]
pub struct ModelsReport {
    /// Where the list came from, as a phrase.
    pub source: String,
    pub models: Vec<ModelEntry>,
    pub skipped_models: Vec<SkippedModel>,
}

pub fn models(global: &GlobalArgs, json: bool) -> anyhow::Result<ExitCode> {
    let (base, token, snapshot) = daemon_endpoint(global);
    let rt = runtime()?;
    let report = match rt.block_on(fetch_status(&base, token.as_deref())) {
        Fetched::Running(st) => ModelsReport {
            source: "the running daemon".to_string(),
            models: st.models,
            skipped_models: st.skipped_models,
        },
        Fetched::Unreadable(why) => anyhow::bail!("{why}"),
        Fetched::NotRunning => {
            let snapshot = match snapshot {
                Some(s) => s,
                None => {
                    let env = env_map();
                    config::load(&global.overrides(), &env).map_err(|e| anyhow::anyhow!("{e}"))?
                }
            };
            let catalog = rt.block_on(crate::discovery::discover_once(&snapshot));
            let models = catalog
                .models
                .iter()
                .map(|m| {
                    let ollama = catalog.providers.get(&m.provider).is_some_and(|p| {
                        p.api == crate::config::Api::Ollama
                            && p.base_url.trim_end_matches('/')
                                == snapshot.ollama.base_url.trim_end_matches('/')
                    });
                    ModelEntry::of(m, m.unroutable.is_none(), None, ollama)
                })
                .collect();
            let mut source = "the config directly (openclawd is not running)".to_string();
            if let Some(e) = &catalog.discovery_error {
                source.push_str(&format!("; {e}"));
            }
            ModelsReport {
                source,
                models,
                skipped_models: catalog.skipped,
            }
        }
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("Models (from {}):", report.source);
    println!(
        "  {:<44} {:<10} {:<5} {:<9} {:>9} {:<9}",
        "REF", "SOURCE", "TOOLS", "REASONING", "CONTEXT", "AVAILABLE"
    );
    let yn = |b: Option<bool>| match b {
        Some(true) => "yes",
        Some(false) => "no",
        None => "-",
    };
    for m in &report.models {
        println!(
            "  {:<44} {:<10} {:<5} {:<9} {:>9} {:<9}",
            m.model_ref,
            match m.source {
                ModelSource::Discovered => "discovered",
                ModelSource::Configured => "configured",
            },
            yn(m.tools),
            yn(Some(m.reasoning)),
            dash(&m.context_window),
            yn(Some(m.available)),
        );
    }
    for sk in &report.skipped_models {
        println!(
            "  skipped {} — {} (fix: {})",
            sk.model_ref, sk.reason, sk.fix
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn sessions(
    global: &GlobalArgs,
    json: bool,
    prune_now: bool,
    dry_run: bool,
) -> anyhow::Result<ExitCode> {
    use crate::housekeeping::{session_stores, Mode, SessionsGuard};
    let env = env_map();
    let snapshot = config::load(&global.overrides(), &env).map_err(|e| anyhow::anyhow!("{e}"))?;
    let guard = SessionsGuard::new(
        snapshot.paths.state_dir.join("openclawd").join("backups"),
        snapshot.own.sessions.clone(),
    );
    // Without --prune-now this only reports: a dry run changes nothing.
    let mode = if prune_now && !dry_run {
        Mode::Apply
    } else {
        Mode::DryRun
    };
    let mut reports = Vec::new();
    let mut failed = false;
    for store in session_stores(&snapshot) {
        match guard.check(&store, mode) {
            Ok(r) => reports.push(r),
            Err(e) => {
                failed = true;
                eprintln!("{}: {e}", store.path.display());
            }
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&reports)?);
    } else {
        if reports.is_empty() {
            println!(
                "No sessions stores under {}.",
                snapshot.paths.state_dir.display()
            );
        }
        let limit = snapshot.own.sessions.max_bytes;
        for r in &reports {
            if !r.exists {
                println!(
                    "{} ({}): no sessions.json yet",
                    r.agent_id,
                    r.path.display()
                );
                continue;
            }
            println!(
                "{} ({}): {} of {} allowed, {} entries, {} overflowing{}",
                r.agent_id,
                r.path.display(),
                human_bytes(r.size_bytes),
                human_bytes(limit),
                r.entries,
                r.overflowing.len(),
                if r.overflowing.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", r.overflowing.join(", "))
                }
            );
            match (r.describe(), mode) {
                (Some(d), Mode::DryRun) => println!("  would: {d}"),
                (Some(d), Mode::Apply) => println!("  done: {d}"),
                (None, _) => {}
            }
        }
        if !prune_now && reports.iter().any(|r| r.action.is_some()) {
            println!("Run `openclawd sessions --prune-now` to apply (a backup is made first).");
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// How long `start`/`restart` wait for Ollama to leave `starting` before saying what it is.
const OLLAMA_SETTLE: Duration = Duration::from_secs(8);

/// The Ollama pid the running daemon reports (before a restart, to tell "kept warm" after).
pub(super) fn ollama_pid(global: &GlobalArgs, rt: &tokio::runtime::Runtime) -> Option<u32> {
    let (base, token, _) = daemon_endpoint(global);
    rt.block_on(fetch_status(&base, token.as_deref()))
        .report()?
        .ollama
        .status
        .pid
}

/// `; Ollama kept warm (pid 42, 0.32.15)` and the like, for `start`/`restart`: what the new
/// daemon reports once Ollama has left `starting` (or after a few seconds). `before` is the
/// Ollama pid before a restart.
pub(super) fn ollama_summary(
    global: &GlobalArgs,
    rt: &tokio::runtime::Runtime,
    before: Option<u32>,
) -> String {
    let (base, token, _) = daemon_endpoint(global);
    let deadline = std::time::Instant::now() + OLLAMA_SETTLE;
    let st = loop {
        let st = rt.block_on(fetch_status(&base, token.as_deref())).report();
        let settled = !matches!(&st, Some(s) if s.ollama.status.state == OllamaState::Starting);
        if settled || std::time::Instant::now() >= deadline {
            break st;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    st.map(|st| format!("; {}", ollama_sentence(&st, before)))
        .unwrap_or_default()
}

/// One sentence on Ollama's real state.
pub(super) fn ollama_sentence(st: &StatusReport, before: Option<u32>) -> String {
    let o = &st.ollama.status;
    let version = o
        .server_version
        .as_deref()
        .map(|v| format!(", {v}"))
        .unwrap_or_default();
    let pid = o
        .pid
        .map(|p| format!("pid {p}"))
        .unwrap_or_else(|| "no pid".into());
    match (o.state, o.management) {
        (OllamaState::Running, _) if o.pid.is_some() && o.pid == before => {
            format!("Ollama kept warm ({pid}{version})")
        }
        (OllamaState::Running, Some(Management::Owned)) => {
            format!("Ollama running, started by openclawd ({pid}{version})")
        }
        (OllamaState::Running, Some(Management::Adopted)) => {
            format!("Ollama running, adopted ({pid}{version})")
        }
        (OllamaState::Running, _) => format!("Ollama running at {}{version}", o.base_url),
        (OllamaState::Starting, _) => {
            format!("Ollama still starting ({pid}); `openclawd status` shows when it runs")
        }
        (state, _) => format!("Ollama {} — see `openclawd status`", state.as_str()),
    }
}

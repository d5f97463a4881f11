//! `status`, `models` and `sessions`: the commands a person runs to see what is going on.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use serde_json::Value;

use super::GlobalArgs;
use crate::config::{self, Snapshot};

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

pub(super) async fn fetch_status(base: &str, token: Option<&str>) -> Option<Value> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(3))
        .build()
        .ok()?;
    let mut rb = client.get(format!("{base}/status"));
    if let Some(t) = token {
        rb = rb.bearer_auth(t);
    }
    let resp = rb.send().await.ok()?;
    if !resp.status().is_success() {
        return None;
    }
    resp.json().await.ok()
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

fn s<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or("-")
}

fn n(v: &Value, ptr: &str) -> String {
    v.pointer(ptr)
        .map(|x| match x {
            Value::Null => "-".to_string(),
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .unwrap_or_else(|| "-".into())
}

/// What makes the daemon degraded, as sentences; empty when healthy.
pub fn degraded_reasons(st: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(err) = st.pointer("/config/error").and_then(Value::as_str) {
        out.push(format!("config error: {err}"));
    }
    let state = s(st, "/ollama/state");
    if state != "running" && state != "-" {
        out.push(format!("Ollama is {state}"));
    }
    if let Some(m) = st
        .pointer("/ollama/version_mismatch")
        .and_then(Value::as_str)
    {
        out.push(format!("Ollama version mismatch: {m}"));
    }
    let models = st.pointer("/models").and_then(Value::as_array);
    let primary = st.pointer("/routing/primary").and_then(Value::as_str);
    if let (Some(models), Some(primary)) = (models, primary) {
        let available = models.iter().any(|m| {
            m.get("ref").and_then(Value::as_str) == Some(primary)
                && m.get("available").and_then(Value::as_bool) == Some(true)
        });
        if !available {
            out.push(format!("primary model {primary} is not available"));
        }
    }
    out
}

pub fn status(global: &GlobalArgs, json: bool) -> anyhow::Result<ExitCode> {
    let (base, token, _) = daemon_endpoint(global);
    let st = runtime()?.block_on(fetch_status(&base, token.as_deref()));
    let Some(st) = st else {
        if json {
            println!("{}", serde_json::json!({"running": false, "address": base}));
        } else {
            println!("openclawd is not running (nothing answered at {base}/status).");
            println!("Start it with `openclawd run` (foreground) or install the service.");
        }
        return Ok(ExitCode::from(EXIT_NOT_RUNNING));
    };
    let reasons = degraded_reasons(&st);
    if json {
        println!("{}", serde_json::to_string_pretty(&st)?);
    } else {
        print_status(&st, &reasons);
    }
    Ok(if reasons.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_DEGRADED)
    })
}

fn print_status(st: &Value, reasons: &[String]) {
    let p = Paint::new();
    let dot = if reasons.is_empty() {
        p.green("●")
    } else {
        p.yellow("●")
    };
    let uptime = st
        .pointer("/daemon/uptime_secs")
        .and_then(Value::as_u64)
        .map(|u| humantime::format_duration(Duration::from_secs(u)).to_string())
        .unwrap_or_else(|| "-".into());
    println!(
        "{dot} {} {} — {} (pid {}, up {uptime}) on {}",
        p.bold("openclawd"),
        s(st, "/daemon/version"),
        if reasons.is_empty() {
            p.green("healthy")
        } else {
            p.yellow("degraded")
        },
        n(st, "/daemon/pid"),
        s(st, "/gateway/listen"),
    );
    for r in reasons {
        println!("  {} {r}", p.yellow("!"));
    }
    let ostate = s(st, "/ollama/state");
    let ostate_p = if ostate == "running" {
        p.green(ostate)
    } else {
        p.red(ostate)
    };
    println!(
        "  Ollama:   {ostate_p} · {} · pid {} · {} · server {} · binary {} · {} restarts{}",
        s(st, "/ollama/management"),
        n(st, "/ollama/pid"),
        s(st, "/ollama/base_url"),
        n(st, "/ollama/server_version"),
        n(st, "/ollama/binary_version"),
        n(st, "/ollama/restarts"),
        st.pointer("/ollama/last_restart_reason")
            .and_then(Value::as_str)
            .map(|r| format!(" (last: {r})"))
            .unwrap_or_default(),
    );
    let cerr = st.pointer("/config/error").and_then(Value::as_str);
    println!(
        "  Config:   {} · generation {} · {}",
        s(st, "/config/path"),
        n(st, "/config/generation"),
        match cerr {
            Some(e) => p.red(&format!("ERROR {e}")),
            None => p.green("ok"),
        }
    );
    let models = st
        .pointer("/models")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mark = |r: &str| -> String {
        match models
            .iter()
            .find(|m| m.get("ref").and_then(Value::as_str) == Some(r))
        {
            Some(m) if m.get("available").and_then(Value::as_bool) == Some(true) => {
                format!("{r} {}", p.green("✓"))
            }
            Some(m) => {
                let why = if m.get("cooldown_until").is_some_and(|c| !c.is_null()) {
                    "cooldown"
                } else if m.get("unroutable").is_some_and(|c| !c.is_null()) {
                    "unroutable"
                } else {
                    "unavailable"
                };
                format!("{r} {}", p.red(&format!("✗ {why}")))
            }
            None => format!("{r} {}", p.red("✗ not in catalogue")),
        }
    };
    let mut chain: Vec<String> = Vec::new();
    if let Some(pr) = st.pointer("/routing/primary").and_then(Value::as_str) {
        chain.push(mark(pr));
    }
    for f in st
        .pointer("/routing/fallbacks")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        chain.push(mark(f));
    }
    println!(
        "  Routing:  {}",
        if chain.is_empty() {
            "(no agents.defaults.model configured)".into()
        } else {
            chain.join(" → ")
        }
    );
    println!("  Models:   {} in catalogue", models.len());
    for sk in st
        .pointer("/skipped_models")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        println!(
            "  Skipped:  {} — {} (fix: {})",
            s(sk, "/ref"),
            s(sk, "/reason"),
            s(sk, "/fix")
        );
    }
    if let Some(err) = st.pointer("/discovery/error").and_then(Value::as_str) {
        println!("  Discovery: {}", p.red(err));
    }
    println!(
        "  Gateway:  {} requests · {} fallbacks",
        n(st, "/gateway/requests_total"),
        n(st, "/gateway/fallbacks_total")
    );
    println!(
        "  Housekeeping: {} sessions cleared · {} port reclaims · last: {}",
        n(st, "/housekeeping/sessions_cleared_total"),
        n(st, "/housekeeping/port_reclaims_total"),
        n(st, "/housekeeping/last_action"),
    );
}

pub fn models(global: &GlobalArgs, json: bool) -> anyhow::Result<ExitCode> {
    let (base, token, snapshot) = daemon_endpoint(global);
    let rt = runtime()?;
    let (models, skipped, source) = match rt.block_on(fetch_status(&base, token.as_deref())) {
        Some(st) => (
            st.get("models").cloned().unwrap_or(Value::Null),
            st.get("skipped_models").cloned().unwrap_or(Value::Null),
            "the running daemon".to_string(),
        ),
        None => {
            let snapshot = match snapshot {
                Some(s) => s,
                None => {
                    let env = env_map();
                    config::load(&global.overrides(), &env).map_err(|e| anyhow::anyhow!("{e}"))?
                }
            };
            let catalog = rt.block_on(crate::discovery::discover_once(&snapshot));
            let models: Vec<Value> = catalog
                .models
                .iter()
                .map(|m| {
                    serde_json::json!({
                        "ref": m.model_ref, "provider": m.provider, "id": m.id,
                        "source": m.source, "tools": m.config.tools,
                        "reasoning": m.config.reasoning,
                        "context_window": m.config.context_window,
                        "max_tokens": m.config.max_tokens,
                        "available": m.unroutable.is_none(),
                        "unroutable": m.unroutable,
                    })
                })
                .collect();
            let mut note = "the config directly (openclawd is not running)".to_string();
            if let Some(e) = &catalog.discovery_error {
                note.push_str(&format!("; {e}"));
            }
            (
                Value::Array(models),
                serde_json::to_value(&catalog.skipped)?,
                note,
            )
        }
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "source": source, "models": models, "skipped_models": skipped
            }))?
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!("Models (from {source}):");
    println!(
        "  {:<44} {:<10} {:<5} {:<9} {:>9} {:<9}",
        "REF", "SOURCE", "TOOLS", "REASONING", "CONTEXT", "AVAILABLE"
    );
    for m in models.as_array().into_iter().flatten() {
        let yn = |ptr: &str| match m.pointer(ptr).and_then(Value::as_bool) {
            Some(true) => "yes",
            Some(false) => "no",
            None => "-",
        };
        println!(
            "  {:<44} {:<10} {:<5} {:<9} {:>9} {:<9}",
            s(m, "/ref"),
            s(m, "/source"),
            yn("/tools"),
            yn("/reasoning"),
            n(m, "/context_window"),
            yn("/available"),
        );
    }
    for sk in skipped.as_array().into_iter().flatten() {
        println!(
            "  skipped {} — {} (fix: {})",
            s(sk, "/ref"),
            s(sk, "/reason"),
            s(sk, "/fix")
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
                "{} ({}): {} bytes of {} allowed, {} entries, {} overflowing{}",
                r.agent_id,
                r.path.display(),
                r.size_bytes,
                limit,
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

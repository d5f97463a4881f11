//! Scenario 6: the supervisor, timed from the outside through `/status`. Each iteration starts
//! a fresh openclawd that manages the `ollama` test double (so every SIGKILL meets the first
//! step of the restart backoff, as a real first crash would), then:
//! SIGKILL of `ollama serve` → `running` again with a new pid; a config edit → the new primary
//! visible in `/status`; an `ollama pull` (the double's catalogue grows and a manifest appears
//! in `OLLAMA_MODELS`) → the new model routable.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;
use tokio::time::Instant;

use crate::load;
use crate::procfs;
use crate::systems::{free_port, loopback, Proc};

#[derive(Debug, Default, Clone)]
pub struct SupervisorFigures {
    /// Spawn → `/status` says Ollama running and the primary routable (seconds).
    pub start: Vec<f64>,
    pub sigkill: Vec<f64>,
    pub config_edit: Vec<f64>,
    pub pull: Vec<f64>,
    pub errors: Vec<String>,
}

const WAIT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(10);

fn config(primary: &str) -> String {
    format!("{{ agents: {{ defaults: {{ model: {{ primary: '{primary}' }} }} }} }}\n")
}

fn write_atomic(path: &Path, text: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension("bench-tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

async fn status(addr: std::net::SocketAddr) -> Option<Value> {
    let (code, body) = load::get(addr, "/status", Duration::from_secs(2)).await?;
    (code == 200)
        .then(|| serde_json::from_slice(&body).ok())
        .flatten()
}

/// Polls `/status` until `cond`; the time it took from `since`.
async fn until(
    proc: &mut Proc,
    addr: std::net::SocketAddr,
    what: &str,
    since: Instant,
    cond: impl Fn(&Value) -> bool,
) -> anyhow::Result<f64> {
    let deadline = since + WAIT;
    let mut last = Value::Null;
    while Instant::now() < deadline {
        if let Some(st) = status(addr).await {
            if cond(&st) {
                return Ok(since.elapsed().as_secs_f64());
            }
            last = st;
        }
        if let Some(st) = proc.exited() {
            bail!(
                "openclawd exited ({st}) waiting for {what}:\n{}",
                proc.log_tail(15)
            );
        }
        tokio::time::sleep(POLL).await;
    }
    bail!(
        "timed out after {WAIT:?} waiting for {what}; last ollama status: {}",
        last["ollama"]
    )
}

fn model_available(st: &Value, r: &str) -> bool {
    st["models"]
        .as_array()
        .is_some_and(|ms| ms.iter().any(|m| m["ref"] == r && m["available"] == true))
}

fn running(st: &Value) -> bool {
    st["ollama"]["state"] == "running" && st["ollama"]["pid"].is_u64()
}

pub async fn run(openclawd: &Path, double: &Path, iterations: usize) -> SupervisorFigures {
    let mut f = SupervisorFigures::default();
    for i in 0..iterations {
        if let Err(e) = iteration(openclawd, double, &mut f).await {
            f.errors.push(format!("iteration {}: {e:#}", i + 1));
        }
    }
    f
}

async fn iteration(
    openclawd: &Path,
    double: &Path,
    f: &mut SupervisorFigures,
) -> anyhow::Result<()> {
    let home = tempfile::Builder::new()
        .prefix("openclawd-bench-super-")
        .tempdir()?;
    let state = home.path().join(".openclaw");
    let bin = home.path().join("bin");
    let library = home
        .path()
        .join("models/manifests/registry.ollama.ai/library");
    std::fs::create_dir_all(&state)?;
    std::fs::create_dir_all(&bin)?;
    std::fs::create_dir_all(&library)?;
    let wrapper = bin.join("ollama");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nOLLAMA_DOUBLE_VERSION=0.32.15 exec {} \"$@\"\n",
            double.display()
        ),
    )?;
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755))?;
    let control = home.path().join("ollama-control.json");
    let config_file = state.join("openclaw.json");
    write_atomic(&config_file, &config("ollama/llama3.2:3b"))?;

    let port = free_port()?;
    let ollama_port = free_port()?;
    let addr = loopback(port);
    let mut cmd = Command::new(openclawd);
    cmd.arg("run")
        .env_clear()
        .env("HOME", home.path())
        .env(
            "PATH",
            format!(
                "{}:{}",
                bin.display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .env("OPENCLAW_STATE_DIR", &state)
        .env("OPENCLAW_GATEWAY_PORT", port.to_string())
        .env("OLLAMA_HOST", format!("127.0.0.1:{ollama_port}"))
        .env("OLLAMA_DOUBLE_CONTROL", &control)
        .env("OLLAMA_MODELS", home.path().join("models"))
        // Opts into discovery, as a user with a local Ollama does.
        .env("OLLAMA_API_KEY", "ollama-local")
        .stdout(Stdio::null());
    let started = Instant::now();
    let mut proc = Proc::spawn(
        "openclawd (managing the ollama double)",
        cmd,
        &home.path().join("openclawd.log"),
    )?;
    let marker = format!("OLLAMA_DOUBLE_CONTROL={}", control.display());
    let result = timed_steps(
        &mut proc,
        addr,
        started,
        &config_file,
        &control,
        &library,
        f,
    )
    .await;
    proc.stop(Duration::from_secs(15));
    // The double's runner outlives a SIGKILLed server (as real Ollama's does): end every
    // process this iteration started, found by its unique control-file path.
    for pid in procfs::processes_with_env(&marker) {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
    result
}

async fn timed_steps(
    proc: &mut Proc,
    addr: std::net::SocketAddr,
    started: Instant,
    config_file: &Path,
    control: &Path,
    library: &Path,
    f: &mut SupervisorFigures,
) -> anyhow::Result<()> {
    let first = "ollama/llama3.2:3b";
    let t = until(
        proc,
        addr,
        "Ollama running and the primary routable",
        started,
        |st| running(st) && model_available(st, first),
    )
    .await?;
    f.start.push(t);

    // SIGKILL of ollama serve.
    let st = status(addr).await.ok_or_else(|| anyhow!("no /status"))?;
    let old_pid = st["ollama"]["pid"]
        .as_u64()
        .ok_or_else(|| anyhow!("no ollama pid in /status"))?;
    kill(Pid::from_raw(old_pid as i32), Signal::SIGKILL).context("SIGKILL ollama serve")?;
    let since = Instant::now();
    let t = until(
        proc,
        addr,
        "Ollama running again after SIGKILL",
        since,
        |st| running(st) && st["ollama"]["pid"].as_u64() != Some(old_pid),
    )
    .await?;
    f.sigkill.push(t);

    // A config edit that changes the primary.
    let second = "ollama/qwen3-coder:latest";
    write_atomic(config_file, &config(second))?;
    let since = Instant::now();
    let t = until(proc, addr, "the edited primary in /status", since, |st| {
        st["routing"]["primary"] == second
    })
    .await?;
    f.config_edit.push(t);

    // `ollama pull`: the server's catalogue grows, then the manifest lands on disk.
    let pulled = "bench-pulled:latest";
    write_atomic(
        control,
        &serde_json::json!({"models": [
            {"name": "qwen3-coder:latest"}, {"name": "gpt-oss:20b"}, {"name": "llama3.2:3b"},
            {"name": pulled, "capabilities": ["completion", "tools"], "context_length": 8192}
        ]})
        .to_string(),
    )?;
    let dir = library.join("bench-pulled");
    std::fs::create_dir_all(&dir)?;
    write_atomic(&dir.join("latest"), "{\"schemaVersion\":2}")?;
    let since = Instant::now();
    let want = format!("ollama/{pulled}");
    let t = until(proc, addr, "the pulled model routable", since, |st| {
        model_available(st, &want)
    })
    .await?;
    f.pull.push(t);
    Ok(())
}

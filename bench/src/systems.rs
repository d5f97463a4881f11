//! The processes under test: the mock upstream, openclawd (the real binary, temp HOME) and the
//! LiteLLM proxy. Each runs in its own process group and is stopped (SIGTERM, then SIGKILL of
//! the group) when dropped.

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::time::Instant;

use crate::load;

pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

pub fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A child process in its own group, stopped with its group on drop.
pub struct Proc {
    pub name: String,
    pub child: Child,
    pub log: PathBuf,
}

impl Proc {
    pub fn spawn(name: &str, mut cmd: Command, log: &Path) -> anyhow::Result<Proc> {
        let file =
            std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        cmd.stderr(file).stdin(Stdio::null()).process_group(0);
        // If the bench dies without stopping it, the child gets SIGTERM (openclawd then stops
        // its own Ollama). Children are spawned from runtime worker threads, which live as long
        // as the bench.
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {name} ({:?})", cmd.get_program()))?;
        Ok(Proc {
            name: name.to_string(),
            child,
            log: log.to_path_buf(),
        })
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// The last lines of its log, for error messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    pub fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(st)) => Some(st.to_string()),
            _ => None,
        }
    }

    /// SIGTERM to the group, up to `grace` to exit, then SIGKILL to the group.
    pub fn stop(&mut self, grace: Duration) {
        let pgid = Pid::from_raw(self.pid());
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = killpg(pgid, Signal::SIGTERM);
            let end = std::time::Instant::now() + grace;
            while std::time::Instant::now() < end {
                if self.child.try_wait().ok().flatten().is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        let _ = killpg(pgid, Signal::SIGKILL);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(5));
    }
}

/// Polls `path` on `addr` until it answers `want` or `limit` passes; checks `proc` is alive.
pub async fn wait_http(
    proc: &mut Proc,
    addr: SocketAddr,
    path: &str,
    want: u16,
    limit: Duration,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let deadline = started + limit;
    while Instant::now() < deadline {
        if let Some((code, _)) = load::get(addr, path, Duration::from_secs(2)).await {
            if code == want {
                return Ok(started.elapsed());
            }
        }
        if let Some(st) = proc.exited() {
            bail!(
                "{} exited ({st}) before {path} answered {want}; its log ends:\n{}",
                proc.name,
                proc.log_tail(15)
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bail!(
        "{} did not answer {want} on {path} within {limit:?}; its log ends:\n{}",
        proc.name,
        proc.log_tail(15)
    )
}

/// Starts `<bench exe> mock` and reads the address it bound.
pub fn spawn_mock(bench_exe: &Path, dir: &Path) -> anyhow::Result<(Proc, SocketAddr)> {
    let mut cmd = Command::new(bench_exe);
    cmd.args(["mock", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped());
    let mut p = Proc::spawn("mock upstream", cmd, &dir.join("mock.log"))?;
    let stdout = p
        .child
        .stdout
        .take()
        .ok_or_else(|| anyhow!("mock: no stdout"))?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let addr: SocketAddr = line
        .trim()
        .strip_prefix("listening on ")
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| {
            anyhow!(
                "mock printed {line:?} instead of its address; log:\n{}",
                p.log_tail(10)
            )
        })?;
    Ok((p, addr))
}

/// The key the Gemini double accepts and openclawd's `gemini` provider sends.
pub const GEMINI_KEY: &str = "bench-gemini-key";

/// Starts the `gemini-double` (tests/cloud-doubles) on a free loopback port, answering every
/// model with the mock's `fast` text (16 pieces of `tok `, one stream chunk each; its control
/// file, which it re-reads on every request, says so) and keeping no request log.
pub fn spawn_gemini(bin: &Path, dir: &Path) -> anyhow::Result<(Proc, SocketAddr)> {
    let control = dir.join("gemini-control.json");
    let pieces = vec![crate::mock::TOKEN; crate::mock::Shape::default().chunks as usize];
    std::fs::write(
        &control,
        serde_json::json!({ "reply_tokens": pieces }).to_string(),
    )?;
    let mut cmd = Command::new(bin);
    cmd.args(["--listen", "127.0.0.1:0"])
        .env_clear()
        .env("CLOUD_DOUBLE_KEY", GEMINI_KEY)
        .env("CLOUD_DOUBLE_CONTROL", &control)
        .stdout(Stdio::piped());
    let mut p = Proc::spawn("gemini double", cmd, &dir.join("gemini-double.log"))?;
    let stdout = p
        .child
        .stdout
        .take()
        .ok_or_else(|| anyhow!("gemini double: no stdout"))?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let addr: SocketAddr = line
        .trim()
        .strip_prefix("Listening on ")
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| {
            anyhow!(
                "the gemini double printed {line:?} instead of `Listening on ADDR`; log:\n{}",
                p.log_tail(10)
            )
        })?;
    Ok((p, addr))
}

/// Models every system knows (the mock reads its knobs from the id).
pub const FAST: &str = "fast";
/// 64 chunks paced 20 ms (the streaming shape).
pub const STREAM: &str = "n64-p20";
/// A short paced stream for time-to-first-token at concurrency 1.
pub const SHORT_STREAM: &str = "n8-p20";
/// 16 chunks paced 5 ms: the CI smoke's stream.
pub const SMOKE_STREAM: &str = "n16-p5";
pub const MODELS: [&str; 4] = [FAST, STREAM, SHORT_STREAM, SMOKE_STREAM];

/// The upstreams openclawd's config points at besides the mock.
#[derive(Debug, Clone, Copy, Default)]
pub struct Upstreams {
    /// nginx serving one fixed completion (issue 18's reference).
    pub nginx: Option<SocketAddr>,
    /// The Gemini double (scenario 8).
    pub gemini: Option<SocketAddr>,
}

/// openclawd (the real binary) with a temp HOME whose config points its providers at the mock:
/// `mock` (openai-completions), `ollama` (native API) and `dead` (a port that refuses, with
/// `dead_models` models, falling back to `mock/fast`); `nginx` and `gemini`
/// (`google-generative-ai`) when those run.
pub struct Openclawd {
    pub proc: Proc,
    pub addr: SocketAddr,
    /// Kept until openclawd is stopped (its HOME).
    pub _home: tempfile::TempDir,
}

pub fn openclaw_json(
    mock: SocketAddr,
    up: Upstreams,
    dead_port: u16,
    dead_models: usize,
) -> String {
    let models = |ids: &mut dyn Iterator<Item = String>| -> String {
        ids.map(|id| {
            format!("{{ id: '{id}', name: '{id}', contextWindow: 32768, maxTokens: 4096 }}")
        })
        .collect::<Vec<_>>()
        .join(", ")
    };
    let ours = models(&mut MODELS.iter().map(|m| m.to_string()));
    let dead = models(&mut (0..dead_models.max(1)).map(|i| format!("d{i}")));
    // The reference upstream (issue 18): nginx serving one fixed completion.
    let nginx = up
        .nginx
        .map(|n| {
            format!(
                "    nginx: {{ baseUrl: 'http://{n}/v1', api: 'openai-completions', apiKey: 'sk-bench-upstream', models: [ {} ] }},\n",
                models(&mut std::iter::once(FAST.to_string()))
            )
        })
        .unwrap_or_default();
    // The Gemini double: openclawd → `{base}/models/fast:generateContent`.
    let gemini = up
        .gemini
        .map(|g| {
            format!(
                "    gemini: {{ baseUrl: 'http://{g}/v1beta', api: 'google-generative-ai', apiKey: '{GEMINI_KEY}', models: [ {} ] }},\n",
                models(&mut std::iter::once(FAST.to_string()))
            )
        })
        .unwrap_or_default();
    format!(
        "{{
  models: {{ providers: {{
    mock: {{ baseUrl: 'http://{mock}/v1', api: 'openai-completions', apiKey: 'sk-bench-upstream', models: [ {ours} ] }},
    ollama: {{ baseUrl: 'http://{mock}', api: 'ollama', models: [ {ours} ] }},
    dead: {{ baseUrl: 'http://127.0.0.1:{dead_port}/v1', api: 'openai-completions', apiKey: 'sk-bench-upstream', models: [ {dead} ] }},
{nginx}{gemini}  }} }},
  agents: {{ defaults: {{ model: {{ primary: 'mock/{FAST}', fallbacks: ['mock/{FAST}'] }} }} }},
}}
"
    )
}

pub async fn spawn_openclawd(
    bin: &Path,
    mock: SocketAddr,
    up: Upstreams,
    dead_port: u16,
    dead_models: usize,
    extra_env: &[(String, String)],
) -> anyhow::Result<(Openclawd, Duration)> {
    let home = tempfile::Builder::new()
        .prefix("openclawd-bench-")
        .tempdir()?;
    let state = home.path().join(".openclaw");
    std::fs::create_dir_all(state.join("openclawd"))?;
    std::fs::write(
        state.join("openclaw.json"),
        openclaw_json(mock, up, dead_port, dead_models),
    )?;
    std::fs::write(
        state.join("openclawd").join("openclawd.json"),
        "{ ollama: { manage: false } }\n",
    )?;
    let port = free_port()?;
    let mut cmd = Command::new(bin);
    cmd.arg("run")
        .env_clear()
        .env("HOME", home.path())
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("OPENCLAW_STATE_DIR", &state)
        .env("OPENCLAW_GATEWAY_PORT", port.to_string())
        // The supervisor (manage: false) adopts the mock, which answers /api/version.
        .env("OLLAMA_HOST", mock.to_string())
        // Runtime knobs measured as variants (`bench cpu --variant name=bin,TOKIO_WORKER_THREADS=1`).
        .envs(extra_env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::null());
    let mut proc = Proc::spawn("openclawd", cmd, &home.path().join("openclawd.log"))?;
    let addr = loopback(port);
    let took = wait_http(&mut proc, addr, "/ready", 200, Duration::from_secs(60)).await?;
    Ok((
        Openclawd {
            proc,
            addr,
            _home: home,
        },
        took,
    ))
}

pub struct Litellm {
    pub proc: Proc,
    pub addr: SocketAddr,
}

pub const LITELLM_KEY: &str = "sk-bench-master";

/// Starts the LiteLLM proxy from `venv` with `template` (its `{{MOCK_BASE}}` replaced).
pub async fn spawn_litellm(
    venv: &Path,
    template: &Path,
    mock: SocketAddr,
    dir: &Path,
) -> anyhow::Result<(Litellm, Duration)> {
    let exe = venv.join("bin").join("litellm");
    if !exe.exists() {
        bail!(
            "LiteLLM is not installed at {} (run scripts/bench-litellm-install.sh; it needs PyPI)",
            exe.display()
        );
    }
    let text = std::fs::read_to_string(template)
        .with_context(|| format!("reading {}", template.display()))?
        .replace("{{MOCK_BASE}}", &format!("http://{mock}"));
    let cfg = dir.join("litellm-config.yaml");
    std::fs::write(&cfg, text)?;
    let port = free_port()?;
    let mut cmd = Command::new(&exe);
    cmd.arg("--config")
        .arg(&cfg)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .env_clear()
        .env("HOME", dir)
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        // No price-map download at start, no telemetry, quiet logs: its fastest configuration.
        .env("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        .env("LITELLM_LOG", "ERROR")
        .env("LITELLM_TELEMETRY", "False")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .current_dir(dir)
        .stdout(Stdio::null());
    let mut proc = Proc::spawn("LiteLLM", cmd, &dir.join("litellm.log"))?;
    let addr = loopback(port);
    let took = wait_http(
        &mut proc,
        addr,
        "/health/liveliness",
        200,
        Duration::from_secs(180),
    )
    .await?;
    Ok((Litellm { proc, addr }, took))
}

/// The first line a command prints (versions).
pub fn command_line(program: &Path, args: &[&str]) -> Option<String> {
    let mut out = Command::new(program)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let mut s = String::new();
    out.stdout.take()?.read_to_string(&mut s).ok()?;
    let _ = out.wait();
    s.lines().next().map(|l| l.trim().to_string())
}

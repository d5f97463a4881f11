//! `openclawd run`: the composer. Loads the first config, frees and binds the port, builds the
//! [`App`] — the shared state and the supervised task tree — and runs it until a stop signal or
//! the loss of a task it cannot work without. `daemon` wires the domains together and owns no
//! domain logic of its own; ARCHITECTURE.md draws the tree.

pub mod app;
mod logrotate;
mod notify;
mod reload;
mod signals;
pub mod tasks;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::config::{self, Overrides, Snapshot};
use crate::housekeeping::{HousekeepingStatus, PortReclaimer};

pub use app::App;

/// In-flight requests get this long to finish on shutdown (SPEC §3).
pub const DRAIN: Duration = Duration::from_secs(10);

/// How `openclawd run` writes its log on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

pub struct RunOptions {
    pub overrides: Overrides,
    pub log_format: LogFormat,
    pub force: bool,
    pub takeover: bool,
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colour only on a terminal: journald and log files get plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

pub fn run(opts: RunOptions) -> anyhow::Result<ExitCode> {
    init_tracing(opts.log_format);
    let rt = runtime().context("starting the async runtime")?;
    rt.block_on(run_daemon(opts))
}

/// The runtime shape (issue 18, BENCHMARKS.md §7): one worker thread. With two, a request
/// and its upstream connection often live on different workers, so each hop is a cross-thread
/// wake-up (2.7 context switches per request at concurrency 1 instead of the 2.0 floor) and
/// CPU per request at concurrency 64 is ~15 % higher. The gateway's work per request is tens
/// of µs; the model's is seconds, so one core is not the limit. `TOKIO_WORKER_THREADS`
/// still overrides it.
fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    let mut b = tokio::runtime::Builder::new_multi_thread();
    if std::env::var_os("TOKIO_WORKER_THREADS").is_none() {
        b.worker_threads(1);
    }
    b.enable_all().thread_name("openclawd").build()
}

pub(crate) fn process_env() -> BTreeMap<String, String> {
    std::env::vars().collect()
}

/// The first snapshot: the real one, or — when the config is broken at start — a degraded
/// one built from defaults, so a service manager does not crash-loop on a typo.
fn initial_snapshot(
    ov: &Overrides,
    env: &BTreeMap<String, String>,
) -> anyhow::Result<(Snapshot, Option<String>)> {
    match config::load(ov, env) {
        Ok(mut s) => {
            s.generation = 1;
            Ok((s, None))
        }
        Err(e) => {
            let msg = e.to_string();
            tracing::error!("{msg}");
            tracing::warn!(
                "starting degraded: /health answers, /ready says 503 until the config is fixed"
            );
            let s = config::degraded_snapshot(ov, env).map_err(|e| anyhow::anyhow!("{e}"))?;
            Ok((s, Some(msg)))
        }
    }
}

/// Why a listener on `addr` must not serve with this snapshot: anyone on the network could use
/// the models without a token. Checked at start and on every reload (a reload may never lower
/// security).
pub(crate) fn exposed_without_token(snapshot: &Snapshot, listen: SocketAddr) -> Option<String> {
    if snapshot.gateway.token.is_some() {
        return None;
    }
    let wanted = SocketAddr::new(snapshot.gateway.bind_addr, snapshot.gateway.port);
    [listen, wanted]
        .into_iter()
        .find(|a| !a.ip().is_loopback())
        .map(|addr| {
            format!(
                "refusing to listen on {addr} without a token: anyone on the network could use \
                 your models. Set gateway.auth.token in openclaw.json (or \
                 OPENCLAW_GATEWAY_TOKEN), or bind loopback (the default)."
            )
        })
}

async fn run_daemon(opts: RunOptions) -> anyhow::Result<ExitCode> {
    let env = process_env();
    let (snapshot, config_error) = initial_snapshot(&opts.overrides, &env)?;
    for w in &snapshot.warnings {
        tracing::warn!("{w}");
    }

    let addr = SocketAddr::new(snapshot.gateway.bind_addr, snapshot.gateway.port);
    if let Some(why) = exposed_without_token(&snapshot, addr) {
        anyhow::bail!("{why}");
    }

    let mut reclaimer = PortReclaimer::new(
        snapshot.gateway.port,
        snapshot.paths.state_dir.clone(),
        snapshot.own.gateway.reclaim,
    );
    reclaimer.force = opts.force;
    reclaimer.takeover = opts.takeover;
    let mut housekeeping = HousekeepingStatus::default();
    if snapshot.gateway.port != 0 {
        let reclaim = reclaimer
            .free_port()
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        housekeeping.record_reclaim(snapshot.gateway.port, &reclaim);
    }
    let listener = bind_with_retry(addr).await?;
    let app = App::build(app::Start {
        snapshot,
        config_error,
        listener,
        overrides: opts.overrides,
        env,
        housekeeping,
        pid_file: true,
    })?;
    Ok(app.run().await)
}

/// A reclaimed port can take a moment to become bindable.
async fn bind_with_retry(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match TcpListener::bind(addr).await {
            Ok(l) => return Ok(l),
            Err(e)
                if e.kind() == std::io::ErrorKind::AddrInUse
                    && tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => {
                return Err(anyhow::anyhow!(
                    "cannot listen on {addr}: {e}. Is another program using the port? Use --port \
                     or gateway.port to pick another."
                ))
            }
        }
    }
}

//! `openclawd run`: the supervisor task tree. Loads the config, frees and binds the port,
//! starts the Ollama supervisor, the config watcher, discovery and the sessions guard, serves
//! the gateway, and stops it all in order on a signal.
//!
//! ```text
//!  ConfigWatcher ──(swap Arc<Snapshot>)──► GatewayState ◄── discovery loop ◄── OllamaSupervisor
//!        │                                     ▲                 ▲ (healthy epoch)
//!        └──────── reconfigure ───────────────-┼─────────────────┘
//!  SessionsGuard ──► HousekeepingStatus ───────┘
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use arc_swap::{ArcSwap, ArcSwapOption};
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, watch, Notify};
use tokio_util::sync::CancellationToken;

use crate::config::{self, Overrides, Snapshot};
use crate::discovery::{self, build_catalog};
use crate::gateway::metrics::Metrics;
use crate::gateway::providers::Upstreams;
use crate::gateway::router::Cooldowns;
use crate::gateway::{server, GatewayState};
use crate::housekeeping::{self, HousekeepingStatus, PortReclaimer, SessionsGuard};
use crate::ollama::{self, ShutdownKind, SupervisorSettings};
use crate::watch::FileWatcher;

/// In-flight requests get this long to finish on shutdown (SPEC §3).
const DRAIN: Duration = Duration::from_secs(10);

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
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("openclawd")
        .build()
        .context("starting the async runtime")?;
    rt.block_on(run_daemon(opts))
}

fn process_env() -> BTreeMap<String, String> {
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

async fn run_daemon(opts: RunOptions) -> anyhow::Result<ExitCode> {
    let env = process_env();
    let (snapshot, config_error) = initial_snapshot(&opts.overrides, &env)?;
    for w in &snapshot.warnings {
        tracing::warn!("{w}");
    }

    let addr = SocketAddr::new(snapshot.gateway.bind_addr, snapshot.gateway.port);
    if !addr.ip().is_loopback() && snapshot.gateway.token.is_none() {
        anyhow::bail!(
            "refusing to listen on {addr} without a token: anyone on the network could use your \
             models. Set gateway.auth.token in openclaw.json (or OPENCLAW_GATEWAY_TOKEN), or bind \
             loopback (the default)."
        );
    }

    let mut reclaimer = PortReclaimer::new(
        snapshot.gateway.port,
        snapshot.paths.state_dir.clone(),
        snapshot.own.gateway.reclaim,
    );
    reclaimer.force = opts.force;
    reclaimer.takeover = opts.takeover;
    let mut housekeeping_status = HousekeepingStatus::default();
    if snapshot.gateway.port != 0 {
        let reclaim = reclaimer
            .free_port()
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        housekeeping_status.record_reclaim(snapshot.gateway.port, &reclaim);
    }
    let port_reclaims = housekeeping_status.port_reclaims_total;
    let listener = bind_with_retry(addr).await?;
    let listen = listener.local_addr().context("reading the bound address")?;
    tracing::info!(%listen, "gateway listening");
    crate::service::notify::ready(&format!("listening on {listen}; starting Ollama"));

    let state_dir = snapshot.paths.state_dir.clone();
    let pid_file = write_pid_file(&state_dir)?;

    let supervisor = ollama::spawn(SupervisorSettings::from_snapshot(&snapshot));
    let (hk_tx, hk_rx) = watch::channel(housekeeping_status);

    let metrics = Arc::new(Metrics::default());
    metrics.port_reclaims.set(port_reclaims as i64);
    let catalog = build_catalog(&snapshot, None, None, Some(listen));
    let shutdown = CancellationToken::new();
    let state = Arc::new(GatewayState {
        started_at: SystemTime::now(),
        listen,
        config: ArcSwap::from_pointee(snapshot),
        config_error: ArcSwapOption::from(config_error.map(Arc::new)),
        catalog: ArcSwap::from_pointee(catalog),
        last_discovery: ArcSwapOption::empty(),
        cooldowns: Cooldowns::default(),
        metrics: metrics.clone(),
        upstreams: Upstreams::new(metrics.clone()).context("building the HTTP clients")?,
        ollama: supervisor.status.clone(),
        housekeeping: hk_rx,
        requests: Default::default(),
        stopping: shutdown.clone(),
    });

    let rediscover = Arc::new(Notify::new());
    let (sessions_tx, sessions_rx) = mpsc::channel(4);

    tokio::spawn(config_reload_loop(
        state.clone(),
        opts.overrides.clone(),
        rediscover.clone(),
        supervisor.clone(),
        sessions_tx.clone(),
        shutdown.clone(),
    ));
    tokio::spawn(discovery_loop(
        state.clone(),
        rediscover.clone(),
        shutdown.clone(),
    ));
    {
        let s = state.clone();
        let guard = SessionsGuard::new(
            state_dir.join("openclawd").join("backups"),
            s.config.load().own.sessions.clone(),
        );
        let interval = s.config.load().own.sessions.interval;
        let stores_state = s.clone();
        tokio::spawn(housekeeping::run_sessions_guard(
            guard,
            move || housekeeping::session_stores(&stores_state.config.load()),
            interval,
            sessions_rx,
            hk_tx,
            shutdown.clone(),
        ));
    }
    tokio::spawn(metrics_bridge(state.clone(), shutdown.clone()));
    tokio::spawn(crate::service::notify::run(state.clone(), shutdown.clone()));

    let app = server::router(state.clone());
    let kind = tokio::spawn(wait_for_stop_signal(shutdown.clone()));
    let hard_stop = CancellationToken::new();
    tokio::spawn(second_signal(shutdown.clone(), hard_stop.clone()));
    server::serve(listener, app, shutdown.clone(), DRAIN, hard_stop).await;

    let kind = kind.await.unwrap_or(ShutdownKind::Stop);
    match kind {
        ShutdownKind::Handover => {
            tracing::info!("handing over: leaving Ollama running for the next openclawd")
        }
        ShutdownKind::Stop => tracing::info!("stopping"),
    }
    supervisor.shutdown(kind).await;
    let _ = std::fs::remove_file(&pid_file);
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
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

fn write_pid_file(state_dir: &Path) -> anyhow::Result<PathBuf> {
    let dir = state_dir.join("openclawd");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join("openclawd.pid");
    crate::fsutil::write_atomic(&path, format!("{}\n", std::process::id()).as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

async fn wait_for_stop_signal(shutdown: CancellationToken) -> ShutdownKind {
    let (Ok(mut term), Ok(mut int), Ok(mut usr2)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::user_defined2()),
    ) else {
        tracing::error!("cannot install signal handlers; stop with SIGKILL");
        std::future::pending::<()>().await;
        return ShutdownKind::Stop;
    };
    let kind = tokio::select! {
        _ = term.recv() => ShutdownKind::Stop,
        _ = int.recv() => ShutdownKind::Stop,
        _ = usr2.recv() => ShutdownKind::Handover,
        _ = shutdown.cancelled() => ShutdownKind::Stop,
    };
    shutdown.cancel();
    kind
}

/// A second SIGTERM/SIGINT during the drain ends it at once.
async fn second_signal(shutdown: CancellationToken, hard_stop: CancellationToken) {
    shutdown.cancelled().await;
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return;
    };
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
    tracing::warn!("second stop signal: not waiting for in-flight requests");
    hard_stop.cancel();
}

/// Reloads on file changes and SIGHUP: all fallible work first, then one atomic swap.
async fn config_reload_loop(
    state: Arc<GatewayState>,
    overrides: Overrides,
    rediscover: Arc<Notify>,
    supervisor: ollama::SupervisorHandle,
    sessions_trigger: mpsc::Sender<()>,
    shutdown: CancellationToken,
) {
    let (watcher, mut changed) = match FileWatcher::new(crate::watch::DEFAULT_DEBOUNCE) {
        Ok((w, rx)) => {
            w.set_files(state.config.load().paths.watched_files());
            (Some(w), Some(rx))
        }
        Err(e) => {
            tracing::warn!("cannot watch the config files ({e}); edits apply on SIGHUP only");
            (None, None)
        }
    };
    // sessions.json changes trigger a sessions guard round.
    let sessions_watcher = match FileWatcher::new(Duration::from_millis(500)) {
        Ok((w, mut rx)) => {
            w.set_files(session_files(&state.config.load()));
            let trigger = sessions_trigger.clone();
            tokio::spawn(async move {
                while rx.recv().await.is_some() {
                    let _ = trigger.try_send(());
                }
            });
            Some(w)
        }
        Err(e) => {
            tracing::warn!("cannot watch sessions files ({e}); they are checked every interval");
            None
        }
    };
    let mut hup = signal(SignalKind::hangup()).ok();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            Some(()) = async { match changed.as_mut() { Some(rx) => rx.recv().await, None => std::future::pending().await } } => {},
            _ = async { match hup.as_mut() { Some(h) => { h.recv().await; }, None => std::future::pending::<()>().await } } => {
                tracing::info!("SIGHUP: reloading the configuration");
            }
        }
        let env = process_env();
        match config::load(&overrides, &env) {
            Ok(mut next) => {
                let current = state.config.load_full();
                next.generation = current.generation + 1;
                for w in &next.warnings {
                    tracing::warn!("{w}");
                }
                let files = next.paths.watched_files();
                let settings = SupervisorSettings::from_snapshot(&next);
                let stores = session_files(&next);
                crate::service::notify::reloading();
                state.config.store(Arc::new(next));
                let discovery_error = state.catalog.load().discovery_error.clone();
                state.rebuild_catalog(discovery_error);
                if state.config_error.swap(None).is_some() {
                    tracing::info!("configuration fixed; the error is cleared");
                }
                crate::service::notify::reloaded();
                tracing::info!(
                    generation = current.generation + 1,
                    "configuration reloaded"
                );
                if let Some(w) = &watcher {
                    w.set_files(files);
                }
                if let Some(w) = &sessions_watcher {
                    w.set_files(stores);
                }
                supervisor.reconfigure(settings);
                rediscover.notify_one();
                let _ = sessions_trigger.try_send(());
            }
            Err(e) => {
                let msg = e.to_string();
                let same = state
                    .config_error
                    .load()
                    .as_deref()
                    .is_some_and(|old| *old == msg);
                if !same {
                    tracing::error!("config not reloaded, keeping the last good one: {msg}");
                    state.config_error.store(Some(Arc::new(msg)));
                }
            }
        }
    }
}

fn session_files(s: &Snapshot) -> Vec<PathBuf> {
    housekeeping::session_stores(s)
        .into_iter()
        .map(|st| st.path)
        .collect()
}

/// Ollama's models directory: `OLLAMA_MODELS`, else `~/.ollama/models`.
fn models_dir(s: &Snapshot) -> Option<PathBuf> {
    if let Some(d) = s.env.get("OLLAMA_MODELS").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(d));
    }
    s.env
        .get("HOME")
        .map(|h| Path::new(h).join(".ollama").join("models"))
}

/// Keeps the catalogue current: at start, when Ollama becomes healthy, after each config
/// swap, when the models directory changes, and every `discovery.interval`.
async fn discovery_loop(
    state: Arc<GatewayState>,
    rediscover: Arc<Notify>,
    shutdown: CancellationToken,
) {
    let client = match reqwest::Client::builder().no_proxy().build() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("discovery disabled: cannot build an HTTP client: {e}");
            return;
        }
    };
    let mut ollama = state.ollama.clone();
    let mut last_epoch = ollama.borrow().healthy_epoch;
    // Ollama's models directory: a pull or rm shows up without waiting for the interval.
    let (dir_watcher, mut dir_rx) = match FileWatcher::new(Duration::from_millis(500)) {
        Ok((w, rx)) => (Some(w), Some(rx)),
        Err(e) => {
            tracing::warn!("cannot watch Ollama's models directory ({e})");
            (None, None)
        }
    };
    let mut watched_dir: Option<PathBuf> = None;
    let mut first = true;
    loop {
        let snapshot = state.config.load_full();
        let interval = snapshot.own.discovery.interval;
        if !first {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = rediscover.notified() => {},
                Some(()) = async { match dir_rx.as_mut() { Some(rx) => rx.recv().await, None => std::future::pending().await } } => {
                    tracing::info!("Ollama's models changed on disk; rediscovering");
                }
                _ = tokio::time::sleep(interval) => {},
                Ok(()) = ollama.changed() => {
                    let epoch = ollama.borrow().healthy_epoch;
                    if epoch == last_epoch { continue }
                    last_epoch = epoch;
                    // Ollama is back: its models should not wait out a cooldown from the outage.
                    let cat = state.catalog.load();
                    state.cooldowns.clear_where(|r| cat.get(r).is_some_and(|m| m.provider == "ollama"));
                }
            }
        }
        first = false;
        let snapshot = state.config.load_full();
        // Follow the models directory (re-pointed if OLLAMA_MODELS changed).
        let wanted = models_dir(&snapshot).filter(|d| d.is_dir() && snapshot.ollama.loopback);
        if let Some(w) = &dir_watcher {
            if watched_dir != wanted {
                if let Some(old) = &watched_dir {
                    w.unwatch_tree(old);
                }
                if let Some(d) = &wanted {
                    w.watch_tree(d.clone());
                }
                watched_dir = wanted;
            }
        }
        let mut error = None;
        // While the supervised Ollama is (re)starting, asking it would only fail: wait for its
        // healthy epoch instead of reporting a failure.
        let waiting_for_ollama = {
            let o = state.ollama.borrow();
            o.base_url.trim_end_matches('/') == snapshot.ollama.base_url.trim_end_matches('/')
                && o.state != crate::ollama::OllamaState::Running
        };
        if waiting_for_ollama && discovery::catalog::discovery_enabled(&snapshot) {
            let o = state.ollama.borrow().state;
            error = Some(format!(
                "Failed to discover Ollama models: Ollama is {} at {}; discovery runs when it is up",
                o.as_str(),
                snapshot.ollama.base_url
            ));
        } else if discovery::catalog::discovery_enabled(&snapshot) {
            match discovery::discover(
                &client,
                &snapshot.ollama.base_url,
                &snapshot.ollama.host_port(),
                &snapshot.own.discovery,
            )
            .await
            {
                Ok(d) => {
                    state
                        .metrics
                        .discovery_runs
                        .get_or_create(&crate::gateway::metrics::ResultLabels {
                            result: "ok".into(),
                        })
                        .inc();
                    if state.last_discovery.load().as_deref() != Some(&d) {
                        tracing::info!(models = d.models.len(), "discovered Ollama models");
                    }
                    state.last_discovery.store(Some(Arc::new(d)));
                }
                Err(e) => {
                    state
                        .metrics
                        .discovery_runs
                        .get_or_create(&crate::gateway::metrics::ResultLabels {
                            result: "error".into(),
                        })
                        .inc();
                    let msg = e.to_string();
                    if state.catalog.load().discovery_error.as_deref() != Some(msg.as_str()) {
                        tracing::warn!("{msg}");
                    }
                    error = Some(msg);
                }
            }
        }
        state.rebuild_catalog(error);
    }
}

/// Mirrors other components' counters into `/metrics`.
async fn metrics_bridge(state: Arc<GatewayState>, shutdown: CancellationToken) {
    let mut ollama = state.ollama.clone();
    let mut hk = state.housekeeping.clone();
    loop {
        state
            .metrics
            .ollama_restarts
            .set(ollama.borrow().restarts as i64);
        {
            let h = hk.borrow();
            state
                .metrics
                .port_reclaims
                .set(h.port_reclaims_total as i64);
            state
                .metrics
                .sessions_cleared
                .set(h.sessions_cleared_total as i64);
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            Ok(()) = ollama.changed() => {},
            Ok(()) = hk.changed() => {},
            else => return,
        }
    }
}

//! `ollama serve`: bind, log like the Go server, spawn a runner child, answer HTTP, and die the
//! ways the real one dies (signal → exit 0, scripted crash → exit 2, broken stdout → SIGPIPE).

use crate::control::{Control, ControlSource, Model};
use crate::host::{self, OllamaHost};
use crate::log;
use crate::reply::{AccessLog, ResponseBody};
use crate::routes;
use crate::{fixtures, version};
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{oneshot, watch};
use tokio::time::{sleep, Instant};

/// How long a model stays loaded (`keep_alive`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepAlive {
    For(Duration),
    Forever,
}

/// A model the "scheduler" holds in memory, as `/api/ps` lists it.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub model: Model,
    pub context_length: u64,
    /// When the model unloads; `None` = never (keep_alive < 0).
    pub deadline: Option<Instant>,
    pub expires_at: SystemTime,
}

impl Loaded {
    fn expired(&self, now: Instant) -> bool {
        self.deadline.is_some_and(|d| d <= now)
    }
}

struct CrashCounter {
    /// The `crash_after_requests` value the count belongs to; a new value restarts the count.
    armed_with: Option<u64>,
    answered: u64,
}

enum CrashDecision {
    No,
    /// Answer this request, then die once its connection is done.
    AfterThis,
    /// Die without answering.
    Now,
}

pub struct State {
    pub version: String,
    pub control: ControlSource,
    request_log: Option<PathBuf>,
    loaded: Mutex<HashMap<String, Loaded>>,
    crash: Mutex<CrashCounter>,
    /// The listener is on a loopback address: the Host-header check applies.
    pub loopback: bool,
    pub hostname: String,
    pub origins: Vec<String>,
    pub models_dir: String,
    pub default_keep_alive: KeepAlive,
    pub context_length_env: u64,
}

/// One request as the handlers see it.
pub struct Req {
    pub method: String,
    pub path: String,
    pub host: String,
    pub origin: Option<String>,
    pub body: Bytes,
    pub control: Control,
    pub started: Instant,
}

impl State {
    fn log_request(&self, method: &str, path: &str, host: &str, body: &[u8]) {
        let Some(path_to_log) = &self.request_log else {
            return;
        };
        let body_value = if body.is_empty() {
            serde_json::Value::String(String::new())
        } else {
            serde_json::from_slice(body).unwrap_or_else(|_| {
                serde_json::Value::String(String::from_utf8_lossy(body).into_owned())
            })
        };
        #[derive(serde::Serialize)]
        struct Entry<'a> {
            method: &'a str,
            path: &'a str,
            host: &'a str,
            body: serde_json::Value,
        }
        let entry = Entry {
            method,
            path,
            host,
            body: body_value,
        };
        let mut line = serde_json::to_vec(&entry).unwrap_or_default();
        line.push(b'\n');
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path_to_log)
            .and_then(|mut f| f.write_all(&line));
        if let Err(e) = written {
            log::warn(
                "ollama-double: cannot write request log",
                &[
                    ("path", &path_to_log.display().to_string()),
                    ("error", &e.to_string()),
                ],
            );
        }
    }

    fn count_request(&self, control: &Control) -> CrashDecision {
        let mut c = self.crash.lock().unwrap_or_else(|p| p.into_inner());
        if c.armed_with != control.crash_after_requests {
            c.armed_with = control.crash_after_requests;
            c.answered = 0;
        }
        match control.crash_after_requests {
            None => CrashDecision::No,
            Some(0) => CrashDecision::Now,
            Some(n) => {
                c.answered += 1;
                if c.answered >= n {
                    CrashDecision::AfterThis
                } else {
                    CrashDecision::No
                }
            }
        }
    }

    /// Loaded models that have not expired yet (expired ones are unloaded on the way).
    pub fn loaded_models(&self) -> Vec<Loaded> {
        let mut map = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        map.retain(|_, l| !l.expired(now));
        map.values().cloned().collect()
    }

    pub fn is_loaded(&self, name: &str) -> bool {
        let map = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        map.get(name).is_some_and(|l| !l.expired(Instant::now()))
    }

    /// Marks `model` loaded until `keep_alive` from now; `For(0)` unloads it.
    pub fn set_loaded(&self, model: &Model, context_length: u64, keep_alive: KeepAlive) {
        let mut map = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        let (deadline, expires_at) = match keep_alive {
            KeepAlive::For(d) if d.is_zero() => {
                map.remove(&model.name);
                return;
            }
            KeepAlive::For(d) => (Some(Instant::now() + d), SystemTime::now() + d),
            // Go adds math.MaxInt64 ns: about year 2318.
            KeepAlive::Forever => (
                None,
                SystemTime::now() + Duration::from_nanos(i64::MAX as u64),
            ),
        };
        map.insert(
            model.name.clone(),
            Loaded {
                model: model.clone(),
                context_length,
                deadline,
                expires_at,
            },
        );
    }

    pub fn unload(&self, name: &str) {
        let mut map = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(name);
    }
}

fn crash_now(reason: &str) -> ! {
    log::stderr(
        format!(
            "panic: ollama-double: {reason}\n\ngoroutine 1 [running]:\nmain.main()\n\t/go/src/github.com/ollama/ollama/main.go:12 +0x1d\n"
        )
        .as_bytes(),
    );
    std::process::exit(2)
}

async fn handle(
    state: Arc<State>,
    peer: SocketAddr,
    crash_after_connection: Arc<AtomicBool>,
    req: Request<Incoming>,
) -> Result<Response<ResponseBody>, Infallible> {
    let started = Instant::now();
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let method = parts.method.as_str().to_string();
    let path = parts.uri.path().to_string();
    let host = parts
        .headers
        .get(hyper::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| parts.uri.authority().map(|a| a.to_string()))
        .unwrap_or_default();
    let control = state.control.current();
    state.log_request(&method, &path, &host, &body);

    let decision = state.count_request(&control);
    if let CrashDecision::Now = decision {
        crash_now("crash_after_requests=0: died on receiving a request");
    }
    if control.hang {
        std::future::pending::<()>().await;
    }

    let gin_path = match parts.uri.query() {
        Some(q) if !q.is_empty() => format!("{path}?{q}"),
        _ => path.clone(),
    };
    let request = Req {
        method: method.clone(),
        path,
        host,
        origin: parts
            .headers
            .get(hyper::header::ORIGIN)
            .and_then(|h| h.to_str().ok())
            .map(str::to_string),
        body,
        control,
        started,
    };
    let reply = routes::dispatch(&state, &request).await;

    let mut builder = Response::builder().status(reply.status);
    for (name, value) in &reply.headers {
        builder = builder.header(*name, value.as_str());
    }
    if let CrashDecision::AfterThis = decision {
        // Close this connection after the response so the process can die with the answer
        // fully delivered.
        builder = builder.header("Connection", "close");
        crash_after_connection.store(true, Ordering::SeqCst);
    }
    let access = AccessLog {
        started,
        status: reply.status,
        client_ip: peer.ip().to_canonical().to_string(),
        method,
        path: gin_path,
    };
    let body = ResponseBody::new(reply.payload, access);
    let response = match builder.body(body) {
        Ok(r) => r,
        Err(_) => {
            let access = AccessLog {
                started,
                status: 500,
                client_ip: peer.ip().to_canonical().to_string(),
                method: request.method.clone(),
                path: request.path.clone(),
            };
            let mut r = Response::new(ResponseBody::new(
                crate::reply::Payload::Full(Bytes::new()),
                access,
            ));
            *r.status_mut() = hyper::StatusCode::INTERNAL_SERVER_ERROR;
            r
        }
    };
    Ok(response)
}

async fn serve_connection(
    state: Arc<State>,
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    mut shutdown: watch::Receiver<bool>,
) {
    let crash_after = Arc::new(AtomicBool::new(false));
    let flag = crash_after.clone();
    let service =
        hyper::service::service_fn(move |req| handle(state.clone(), peer, flag.clone(), req));
    let connection = hyper::server::conn::http1::Builder::new()
        .title_case_headers(true)
        .serve_connection(TokioIo::new(stream), service);
    tokio::select! {
        _ = connection => {}
        // http.Server.Close: in-flight requests and streams are cut off, not drained.
        _ = shutdown.wait_for(|closing| *closing) => return,
    }
    if crash_after.load(Ordering::SeqCst) {
        crash_now("crash_after_requests reached");
    }
}

/// The runner child: `<this exe> runner`, same process group, no stdio of ours.
struct Runner {
    kill: Option<oneshot::Sender<()>>,
    done: oneshot::Receiver<()>,
}

fn spawn_runner() -> Option<Runner> {
    let exe = std::env::current_exe().ok()?;
    let mut child = tokio::process::Command::new(&exe)
        .arg("runner")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| {
            log::warn(
                "ollama-double: cannot start runner",
                &[("error", &e.to_string())],
            )
        })
        .ok()?;
    let pid = child.id().map(|p| p.to_string()).unwrap_or_default();
    log::info(
        "server.go:398",
        "starting runner",
        &[("cmd", &format!("{} runner", exe.display())), ("pid", &pid)],
    );
    let (kill_tx, kill_rx) = oneshot::channel::<()>();
    let (done_tx, done_rx) = oneshot::channel::<()>();
    tokio::spawn(async move {
        tokio::select! {
            _ = child.wait() => {}
            _ = kill_rx => {
                // Process.Kill (SIGKILL) and wait, as llm/llama_server.go stopProcess does.
                let _ = child.kill().await;
            }
        }
        let _ = done_tx.send(());
    });
    Some(Runner {
        kill: Some(kill_tx),
        done: done_rx,
    })
}

impl Runner {
    async fn stop(mut self) {
        if let Some(kill) = self.kill.take() {
            let _ = kill.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), self.done).await;
    }
}

fn env_u64(key: &str) -> u64 {
    host::env_var(key).parse().unwrap_or(0)
}

fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into our buffer.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return String::new();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

fn models_dir() -> String {
    let configured = host::env_var("OLLAMA_MODELS");
    if !configured.is_empty() {
        return configured;
    }
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".to_string());
    format!("{home}/.ollama/models")
}

/// `OLLAMA_KEEP_ALIVE`: a Go duration or integer seconds; invalid → 5m; negative → forever.
fn default_keep_alive() -> KeepAlive {
    let raw = host::env_var("OLLAMA_KEEP_ALIVE");
    if raw.is_empty() {
        return KeepAlive::For(Duration::from_secs(300));
    }
    if let Ok(secs) = raw.parse::<i64>() {
        return if secs < 0 {
            KeepAlive::Forever
        } else {
            KeepAlive::For(Duration::from_secs(secs as u64))
        };
    }
    match crate::engine::parse_go_duration(&raw) {
        Ok(ns) if ns < 0 => KeepAlive::Forever,
        Ok(ns) => KeepAlive::For(Duration::from_nanos(ns as u64)),
        Err(_) => KeepAlive::For(Duration::from_secs(300)),
    }
}

fn keep_alive_text(k: KeepAlive) -> String {
    match k {
        KeepAlive::Forever => "2562047h47m16.854775807s".to_string(),
        KeepAlive::For(d) => crate::timefmt::go_duration(d),
    }
}

/// The startup `server config` line, from the fixture with this process's values.
fn log_server_config(host: &OllamaHost, models_dir: &str, keep_alive: KeepAlive) {
    let fixture = String::from_utf8_lossy(fixtures::SERVE_STARTUP);
    let first = fixture.lines().next().unwrap_or("");
    let Some(msg_at) = first.find("msg=") else {
        return;
    };
    let context_length = env_u64("OLLAMA_CONTEXT_LENGTH");
    let rest = first[msg_at..]
        .replace(
            "OLLAMA_HOST:http://127.0.0.1:11434",
            &format!("OLLAMA_HOST:{}", host.url()),
        )
        .replace(
            "OLLAMA_MODELS:/usr/share/ollama/.ollama/models",
            &format!("OLLAMA_MODELS:{models_dir}"),
        )
        .replace(
            "OLLAMA_CONTEXT_LENGTH:0",
            &format!("OLLAMA_CONTEXT_LENGTH:{context_length}"),
        )
        .replace(
            "OLLAMA_KEEP_ALIVE:5m0s",
            &format!("OLLAMA_KEEP_ALIVE:{}", keep_alive_text(keep_alive)),
        );
    log::slog_raw("INFO", "routes.go:1951", &rest);
}

fn bind(host: &OllamaHost) -> Result<std::net::TcpListener, String> {
    let candidates = host::listen_candidates(host)?;
    let mut last = None;
    for addr in candidates {
        match std::net::TcpListener::bind(addr) {
            Ok(l) => return Ok(l),
            Err(e) => {
                // Only a missing address family moves on to the next candidate ([::] → 0.0.0.0).
                let try_next = matches!(
                    e.raw_os_error(),
                    Some(libc::EAFNOSUPPORT) | Some(libc::EADDRNOTAVAIL)
                ) && host.host.is_empty();
                last = Some((addr, e));
                if !try_next {
                    break;
                }
            }
        }
    }
    match last {
        Some((addr, e)) => Err(host::listen_error(host, Some(addr), &e)),
        None => Err(format!("listen tcp {}: no address", host.host_port())),
    }
}

pub fn run() -> i32 {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            log::stderr(format!("Error: {e}\n").as_bytes());
            return 1;
        }
    };
    runtime.block_on(serve())
}

async fn serve() -> i32 {
    let host = host::from_env();
    let std_listener = match bind(&host) {
        Ok(l) => l,
        Err(msg) => {
            log::stderr(format!("Error: {msg}\n").as_bytes());
            return 1;
        }
    };
    let listener = match std_listener
        .set_nonblocking(true)
        .and_then(|()| tokio::net::TcpListener::from_std(std_listener))
    {
        Ok(l) => l,
        Err(e) => {
            log::stderr(format!("Error: {e}\n").as_bytes());
            return 1;
        }
    };
    let local = match listener.local_addr() {
        Ok(a) => a,
        Err(e) => {
            log::stderr(format!("Error: {e}\n").as_bytes());
            return 1;
        }
    };

    // Like Go's signal.Notify: installed before the slow part of startup, acted on after it.
    let (shutdown_tx, mut shutdown_rx) = watch::channel(false);
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::spawn(async move {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
                let _ = shutdown_tx.send(true);
                // Later signals are swallowed: tokio keeps its handlers installed for good.
            });
        }
        _ => {
            log::stderr(b"Error: cannot install signal handlers\n");
            return 1;
        }
    }

    let version = version::own();
    let models_dir = models_dir();
    let keep_alive = default_keep_alive();
    if let Some(bad) = &host.invalid_port {
        log::slog(
            "WARN",
            "config.go:47",
            "invalid port, using default",
            &[("port", bad), ("default", &host.port)],
        );
    }
    log_server_config(&host, &models_dir, keep_alive);
    log::info("routes.go:1953", "Ollama cloud disabled: false", &[]);
    log::info("images.go:919", "total blobs: 0", &[]);
    log::info("images.go:926", "total unused blobs removed: 0", &[]);
    log::info(
        "routes.go:2008",
        &format!("Listening on {local} (version {version})"),
        &[],
    );
    let runner = spawn_runner();

    let origins = host::env_var("OLLAMA_ORIGINS")
        .split(',')
        .map(|o| o.trim().to_string())
        .filter(|o| !o.is_empty())
        .collect();
    let state = Arc::new(State {
        version,
        control: ControlSource::from_env(),
        request_log: std::env::var_os("OLLAMA_DOUBLE_LOG")
            .filter(|p| !p.is_empty())
            .map(PathBuf::from),
        loaded: Mutex::new(HashMap::new()),
        crash: Mutex::new(CrashCounter {
            armed_with: None,
            answered: 0,
        }),
        loopback: local.ip().to_canonical().is_loopback(),
        hostname: hostname(),
        origins,
        models_dir,
        default_keep_alive: keep_alive,
        context_length_env: env_u64("OLLAMA_CONTEXT_LENGTH"),
    });

    // GPU discovery: the port is bound, but HTTP is not served until it is over.
    log::info("runner.go:60", "discovering available GPUs...", &[]);
    let slow_start = env_u64("OLLAMA_DOUBLE_SLOW_START_MS");
    if slow_start > 0 {
        sleep(Duration::from_millis(slow_start)).await;
    }
    log::info(
        "types.go:50",
        "inference compute",
        &[
            ("id", "cpu"),
            ("library", "cpu"),
            ("compute", ""),
            ("name", "cpu"),
            ("description", "cpu"),
            ("libdirs", "ollama"),
            ("driver", ""),
            ("pci_id", ""),
            ("type", ""),
            ("total", "31.2 GiB"),
            ("available", "27.9 GiB"),
        ],
    );
    let default_ctx = if state.context_length_env > 0 {
        state.context_length_env
    } else {
        4096
    };
    log::info(
        "routes.go:2058",
        "vram-based default context",
        &[
            ("total_vram", "0 B"),
            ("default_num_ctx", &default_ctx.to_string()),
        ],
    );

    if !*shutdown_rx.borrow() {
        loop {
            tokio::select! {
                _ = shutdown_rx.changed() => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        // Go's net/http sets TCP_NODELAY on every connection; so does the double.
                        let _ = stream.set_nodelay(true);
                        tokio::spawn(serve_connection(
                            state.clone(),
                            stream,
                            peer,
                            shutdown_rx.clone(),
                        ));
                    }
                    // Out of descriptors and the like: back off briefly, as net/http does.
                    Err(_) => sleep(Duration::from_millis(5)).await,
                },
            }
        }
    }

    // http.Server.Close has dropped every connection (see serve_connection); then the
    // runners are killed and waited for, and the process exits 0.
    drop(listener);
    if let Some(runner) = runner {
        runner.stop().await;
    }
    std::process::exit(0)
}

/// `ollama runner`: stands in for a model runner; does nothing until killed.
pub fn run_runner() -> i32 {
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

//! Helpers shared by the reliability cases: configs, process inspection through `/proc`,
//! SSE reading, figures, and an async load generator.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::sse::sse_data;
use crate::common::TestEnv;

pub const CLOUD_KEY: &str = "sk-reliability-cloud-key-7f3a";

/// Prints one measured figure in a form RELIABILITY.md quotes (`--nocapture` shows it).
pub fn figure(name: &str, value: impl std::fmt::Display) {
    eprintln!("FIGURE {name}: {value}");
}

/// The Ollama provider block with the double's three models; `timeout_secs` sets the
/// provider's `timeoutSeconds` (the first-byte budget).
pub fn ollama_provider(env: &TestEnv, timeout_secs: Option<u64>) -> String {
    ollama_provider_at("ollama", env.ollama_port, timeout_secs)
}

pub fn ollama_provider_at(id: &str, port: u16, timeout_secs: Option<u64>) -> String {
    let timeout = timeout_secs
        .map(|t| format!("timeoutSeconds: {t}, "))
        .unwrap_or_default();
    format!(
        "'{id}': {{ baseUrl: 'http://127.0.0.1:{port}', api: 'ollama', {timeout}models: [
            {{ id: 'llama3.2:3b', name: 'Llama', contextWindow: 131072, maxTokens: 8192 }},
            {{ id: 'gpt-oss:20b', name: 'GPT-OSS', reasoning: true, contextWindow: 131072 }},
            {{ id: 'qwen3-coder:latest', name: 'Qwen', contextWindow: 8192 }} ] }}"
    )
}

/// An OpenAI-compatible provider at `base` (…/v1) with one model `m1`.
pub fn openai_provider(id: &str, base: &str) -> String {
    format!(
        "'{id}': {{ baseUrl: '{base}/v1', apiKey: '${{CLOUD_KEY}}', api: 'openai-completions', models: [ {{ id: 'm1', name: 'M1', contextWindow: 128000, maxTokens: 1000 }} ] }}"
    )
}

/// `openclaw.json` text with these providers, primary, fallbacks and `agents.defaults.models`.
pub fn config_text(
    providers: &[String],
    primary: &str,
    fallbacks: &[&str],
    models: &str,
) -> String {
    let fb: Vec<String> = fallbacks.iter().map(|f| format!("'{f}'")).collect();
    format!(
        "{{ models: {{ providers: {{ {} }} }},
           agents: {{ defaults: {{ model: {{ primary: '{primary}', fallbacks: [{}] }}, models: {{ {models} }} }} }} }}",
        providers.join(", "),
        fb.join(", ")
    )
}

/// Writes the config (and puts `CLOUD_KEY` in the daemon's environment).
pub fn write_config(
    env: &mut TestEnv,
    providers: &[String],
    primary: &str,
    fallbacks: &[&str],
    models: &str,
) {
    if !env.extra_env.iter().any(|(k, _)| k == "CLOUD_KEY") {
        env.extra_env.push(("CLOUD_KEY".into(), CLOUD_KEY.into()));
    }
    env.write_config(&config_text(providers, primary, fallbacks, models));
}

pub fn chat(model: &str, stream: bool) -> Value {
    json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "Why is the sky blue?"}]})
}

/// How an SSE body ended: `[DONE]`, an error event, or neither (silent truncation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEnd {
    Done,
    Error(String),
    Truncated,
}

pub fn stream_end(body: &str) -> StreamEnd {
    let events = sse_data(body);
    match events.last().map(String::as_str) {
        Some("[DONE]") => StreamEnd::Done,
        Some(last) => match serde_json::from_str::<Value>(last) {
            Ok(v) if v["error"]["message"].is_string() => {
                StreamEnd::Error(v["error"]["message"].as_str().unwrap_or("").to_string())
            }
            _ => StreamEnd::Truncated,
        },
        None => StreamEnd::Truncated,
    }
}

/// True for OpenAI's error shape `{"error":{"message":string,"type":string,...}}`.
pub fn is_openai_error(body: &str) -> bool {
    serde_json::from_str::<Value>(body).is_ok_and(|v| {
        v["error"]["message"].is_string()
            && v["error"]["type"].is_string()
            && v["error"].get("param").is_some()
            && v["error"].get("code").is_some()
    })
}

// ---- processes ------------------------------------------------------------------------------

/// `(state, ppid, pgid, session)` of a process, from `/proc/<pid>/stat`.
pub fn proc_stat(pid: u32) -> Option<(char, u32, u32, u32)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some((
        f.first()?.chars().next()?,
        f.get(1)?.parse().ok()?,
        f.get(2)?.parse().ok()?,
        f.get(3)?.parse().ok()?,
    ))
}

fn all_pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Live (non-zombie) processes whose session or process group is `id`: everything an owned
/// `ollama serve` (its own session, via `setsid`) started, runners included.
pub fn live_in_session_or_group(id: u32) -> Vec<u32> {
    all_pids()
        .into_iter()
        .filter(|p| {
            proc_stat(*p).is_some_and(|(state, _, pgid, sid)| {
                (sid == id || pgid == id) && state != 'Z' && state != 'X'
            })
        })
        .collect()
}

/// Children of `parent` that are zombies (exited, never reaped).
pub fn zombie_children(parent: u32) -> Vec<u32> {
    all_pids()
        .into_iter()
        .filter(|p| proc_stat(*p).is_some_and(|(state, ppid, _, _)| ppid == parent && state == 'Z'))
        .collect()
}

/// Resident set size of `pid` in KiB (`VmRSS`).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// Open file descriptors of `pid`.
pub fn fd_count(pid: u32) -> Option<usize> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()
        .map(|d| d.count())
}

pub fn wait_for(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return start.elapsed();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("timed out after {limit:?} waiting for: {what}");
}

// ---- raw HTTP -----------------------------------------------------------------------------

/// Sends raw bytes on a fresh connection and reads the whole answer (the server closes, or
/// `limit` passes). Returns (status, body) when an HTTP answer came back, `None` when the
/// connection was closed without one.
pub fn raw_request(port: u16, bytes: &[u8], limit: Duration) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(limit)).unwrap();
    // The server may answer (413) and close before it read everything we send. No
    // half-close: hyper takes a read EOF as the client leaving. `Connection: close` in the
    // request ends the answer.
    let _ = s.write_all(bytes);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    parse_response(&out)
}

/// Status and (de-chunked) body of one HTTP/1.1 response.
pub fn parse_response(raw: &[u8]) -> Option<(u16, String)> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked {
        let mut out = String::new();
        let mut rest = body;
        while let Some((size, after)) = rest.split_once("\r\n") {
            let n = usize::from_str_radix(size.trim(), 16).ok()?;
            if n == 0 {
                break;
            }
            out.push_str(after.get(..n)?);
            rest = after.get(n + 2..)?;
        }
        out
    } else {
        body.to_string()
    };
    Some((status, body))
}

/// A streaming chat opened with a blocking client: lines are read as they arrive.
pub struct OpenStream {
    pub reader: BufReader<reqwest::blocking::Response>,
    pub body: String,
}

impl OpenStream {
    pub fn open(base: &str, body: &Value) -> OpenStream {
        let client = reqwest::blocking::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(120))
            .build()
            .unwrap();
        let resp = client
            .post(format!("{base}/v1/chat/completions"))
            .json(body)
            .send()
            .expect("open a stream");
        assert_eq!(resp.status(), 200, "stream refused");
        OpenStream {
            reader: BufReader::new(resp),
            body: String::new(),
        }
    }

    /// Reads until one `data:` line arrived (the stream is really open).
    pub fn first_event(&mut self) {
        loop {
            let mut line = String::new();
            let n = self.reader.read_line(&mut line).unwrap_or(0);
            self.body.push_str(&line);
            if n == 0 || line.starts_with("data: ") {
                return;
            }
        }
    }

    /// Reads to the end (a read error counts as the end: the connection was cut).
    pub fn finish(mut self) -> (String, bool) {
        let mut rest = String::new();
        let cut = self.reader.read_to_string(&mut rest).is_err();
        self.body.push_str(&rest);
        (self.body, cut)
    }
}

// ---- load ---------------------------------------------------------------------------------

/// What a load run saw.
#[derive(Debug, Default, Clone)]
pub struct LoadResult {
    pub ok: usize,
    pub errors: usize,
    /// The first few failures, for the assertion message.
    pub samples: Vec<String>,
    pub elapsed: Duration,
}

impl LoadResult {
    pub fn rate(&self) -> f64 {
        (self.ok + self.errors) as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Sends `n` chat requests (`stream` or not) at `concurrency` through the gateway; a request
/// succeeds when it answers 200 with a complete answer (`[DONE]` for streams).
pub async fn load(
    client: &reqwest::Client,
    base: &str,
    model: &str,
    n: usize,
    stream: bool,
    concurrency: usize,
) -> LoadResult {
    use futures_util::StreamExt;
    let url = format!("{base}/v1/chat/completions");
    let body = chat(model, stream).to_string();
    let start = Instant::now();
    let outcomes: Vec<Result<(), String>> = futures_util::stream::iter(0..n)
        .map(|_| {
            let rb = client
                .post(&url)
                .header("content-type", "application/json")
                .body(body.clone());
            async move {
                let resp = rb.send().await.map_err(|e| format!("send: {e}"))?;
                let status = resp.status().as_u16();
                let text = resp.text().await.map_err(|e| format!("read: {e}"))?;
                if status != 200 {
                    return Err(format!("HTTP {status}: {text}"));
                }
                if stream {
                    match stream_end(&text) {
                        StreamEnd::Done => Ok(()),
                        other => Err(format!("stream ended {other:?}")),
                    }
                } else {
                    let v: Value =
                        serde_json::from_str(&text).map_err(|e| format!("not JSON: {e}"))?;
                    if v["choices"][0]["message"]["content"].is_string() {
                        Ok(())
                    } else {
                        Err(format!("no content: {text}"))
                    }
                }
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let mut r = LoadResult {
        elapsed: start.elapsed(),
        ..Default::default()
    };
    for o in outcomes {
        match o {
            Ok(()) => r.ok += 1,
            Err(e) => {
                r.errors += 1;
                if r.samples.len() < 5 {
                    r.samples.push(e);
                }
            }
        }
    }
    r
}

pub fn async_client(pool: usize) -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(pool)
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap()
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

// ---- extra upstreams ------------------------------------------------------------------------

/// A second `ollama serve` double on its own port with its own control file, started by hand
/// (not supervised by openclawd). Stopped with SIGTERM (so it takes its runner along) on drop.
pub struct ExtraDouble {
    pub port: u16,
    child: std::process::Child,
}

impl ExtraDouble {
    pub fn start(dir: &std::path::Path, name: &str, control: &Value) -> ExtraDouble {
        let port = crate::common::free_port();
        let control_path = dir.join(format!("{name}-control.json"));
        std::fs::write(&control_path, control.to_string()).unwrap();
        let child = std::process::Command::new(crate::common::double_bin())
            .arg("serve")
            .env("OLLAMA_HOST", format!("127.0.0.1:{port}"))
            .env("OLLAMA_DOUBLE_CONTROL", &control_path)
            .env("OLLAMA_MODELS", dir.join("models"))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn an extra ollama double");
        wait_for(Duration::from_secs(20), "the extra double listens", || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        ExtraDouble { port, child }
    }
}

impl Drop for ExtraDouble {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An OpenAI-compatible upstream that answers a stream's headers and one chunk, then goes
/// silent while holding the connection (for `hold`).
pub struct StallingSse {
    pub port: u16,
}

impl StallingSse {
    pub fn start(hold: Duration) -> StallingSse {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { return };
                std::thread::spawn(move || {
                    let mut buf = Vec::new();
                    let mut byte = [0u8; 1];
                    while !buf.ends_with(b"\r\n\r\n") {
                        if conn.read(&mut byte).unwrap_or(0) == 0 {
                            return;
                        }
                        buf.push(byte[0]);
                    }
                    let chunk = json!({"id":"chatcmpl-stall","object":"chat.completion.chunk","created":1,"model":"m1",
                        "choices":[{"index":0,"delta":{"role":"assistant","content":"first"},"finish_reason":null}]});
                    let body = format!("data: {chunk}\n\n");
                    let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";
                    let _ = conn.write_all(head.as_bytes());
                    let _ = conn.write_all(format!("{:x}\r\n{body}\r\n", body.len()).as_bytes());
                    let _ = conn.flush();
                    std::thread::sleep(hold);
                });
            }
        });
        StallingSse { port }
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// An upstream that answers 200 and then streams `body_start` followed by endless `filler`
/// bytes, never a line end (a broken or wrong server), until the client goes away or `limit`.
pub struct RunawayUpstream {
    pub port: u16,
}

impl RunawayUpstream {
    pub fn start(content_type: &'static str, body_start: &'static [u8], limit: Duration) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { return };
                std::thread::spawn(move || {
                    let mut buf = Vec::new();
                    let mut byte = [0u8; 1];
                    while !buf.ends_with(b"\r\n\r\n") {
                        if conn.read(&mut byte).unwrap_or(0) == 0 {
                            return;
                        }
                        buf.push(byte[0]);
                    }
                    let head = format!("HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\ntransfer-encoding: chunked\r\n\r\n");
                    let _ = conn.write_all(head.as_bytes());
                    let _ = conn.write_all(format!("{:x}\r\n", body_start.len()).as_bytes());
                    let _ = conn.write_all(body_start);
                    let _ = conn.write_all(b"\r\n");
                    let filler = vec![b'a'; 1 << 16];
                    let start = Instant::now();
                    while start.elapsed() < limit {
                        let mut chunk = format!("{:x}\r\n", filler.len()).into_bytes();
                        chunk.extend_from_slice(&filler);
                        chunk.extend_from_slice(b"\r\n");
                        if conn.write_all(&chunk).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        RunawayUpstream { port }
    }
}

//! Test harness: runs the built `ollama` binary as a real server on a free port and talks to
//! it with plain HTTP/1.1 over `std::net::TcpStream`.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_ollama");
pub const DEADLINE: Duration = Duration::from_secs(15);

pub fn fixture(path: &str) -> Vec<u8> {
    let full = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/ollama")
        .join(path);
    std::fs::read(&full).unwrap_or_else(|e| panic!("fixture {}: {e}", full.display()))
}

pub fn fixture_text(path: &str) -> String {
    String::from_utf8(fixture(path)).unwrap()
}

/// Polls `condition` until it holds or the deadline passes.
pub fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < DEADLINE {
        if condition() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("timed out waiting for: {what}");
}

/// A port nothing listens on (bound, then released).
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// The `ollama` command with a clean Ollama environment.
pub fn ollama_command() -> Command {
    let mut cmd = Command::new(BIN);
    for key in [
        "OLLAMA_HOST",
        "OLLAMA_DOUBLE_VERSION",
        "OLLAMA_DOUBLE_CONTROL",
        "OLLAMA_DOUBLE_LOG",
        "OLLAMA_DOUBLE_SLOW_START_MS",
        "OLLAMA_ORIGINS",
        "OLLAMA_KEEP_ALIVE",
        "OLLAMA_CONTEXT_LENGTH",
        "HTTP_PROXY",
        "http_proxy",
    ] {
        cmd.env_remove(key);
    }
    cmd
}

pub fn run_cli(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut cmd = ollama_command();
    cmd.args(args);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

pub fn pid_alive(pid: i32) -> bool {
    // A zombie still answers kill(0); look at its state too.
    // SAFETY: kill with signal 0 only checks for existence.
    if unsafe { libc::kill(pid, 0) } != 0 {
        return false;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rsplit(')')
                .next()
                .and_then(|s| s.split_whitespace().next());
            state != Some("Z")
        }
        Err(_) => false,
    }
}

pub fn signal(pid: i32, sig: i32) {
    // SAFETY: sending a signal to a process we started.
    unsafe {
        libc::kill(pid, sig);
    }
}

pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    /// NDJSON lines, parsed.
    pub fn lines(&self) -> Vec<serde_json::Value> {
        self.text()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line {l}: {e}")))
            .collect()
    }
}

fn decode_chunked(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(end) = body.windows(2).position(|w| w == b"\r\n") {
        let size =
            usize::from_str_radix(std::str::from_utf8(&body[..end]).unwrap().trim(), 16).unwrap();
        body = &body[end + 2..];
        if size == 0 {
            break;
        }
        out.extend_from_slice(&body[..size]);
        body = &body[size + 2..];
    }
    out
}

/// Writes one request; the connection is closed by the server after the response.
pub fn send(
    port: u16,
    method: &str,
    path: &str,
    body: Option<&[u8]>,
    headers: &[(&str, &str)],
) -> TcpStream {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        head.push_str(&format!("Host: 127.0.0.1:{port}\r\n"));
    }
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(b) = body {
        head.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            b.len()
        ));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    if let Some(b) = body {
        stream.write_all(b).unwrap();
    }
    stream
}

pub fn parse_response(raw: &[u8]) -> Response {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let rest = &raw[split + 4..];
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    let body = if chunked {
        decode_chunked(rest)
    } else {
        rest.to_vec()
    };
    Response {
        status,
        headers,
        body,
    }
}

pub fn read_all(mut stream: TcpStream) -> Vec<u8> {
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    raw
}

pub fn request(
    port: u16,
    method: &str,
    path: &str,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> Response {
    let stream = send(port, method, path, body.map(str::as_bytes), headers);
    parse_response(&read_all(stream))
}

/// A running `ollama serve` in its own process group (the runner shares it), killed with
/// the whole group when dropped.
pub struct Server {
    pub child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
    stderr: Arc<Mutex<String>>,
    stdout: Arc<Mutex<String>>,
}

#[derive(Default)]
pub struct ServerOptions<'a> {
    pub host: Option<String>,
    pub envs: Vec<(&'a str, String)>,
    pub control: Option<&'a str>,
}

fn pump(reader: impl Read + Send + 'static, into: Arc<Mutex<String>>) {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(reader);
        let mut line = String::new();
        while reader.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
            into.lock().unwrap().push_str(&line);
            line.clear();
        }
    });
}

impl Server {
    pub fn start() -> Server {
        Self::start_with(ServerOptions::default())
    }

    pub fn with_control(control: &str) -> Server {
        Self::start_with(ServerOptions {
            control: Some(control),
            ..Default::default()
        })
    }

    pub fn with_version(version: &str) -> Server {
        Self::start_with(ServerOptions {
            envs: vec![("OLLAMA_DOUBLE_VERSION", version.to_string())],
            ..Default::default()
        })
    }

    pub fn start_with(options: ServerOptions<'_>) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let control_path = dir.path().join("control.json");
        if let Some(c) = options.control {
            std::fs::write(&control_path, c).unwrap();
        }
        let mut cmd = ollama_command();
        cmd.arg("serve")
            .env(
                "OLLAMA_HOST",
                options.host.unwrap_or_else(|| "127.0.0.1:0".to_string()),
            )
            .env("OLLAMA_DOUBLE_CONTROL", &control_path)
            .env("OLLAMA_DOUBLE_LOG", dir.path().join("requests.ndjson"))
            .env("HOME", dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        for (k, v) in &options.envs {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        let stdout = Arc::new(Mutex::new(String::new()));
        pump(child.stderr.take().unwrap(), stderr.clone());
        pump(child.stdout.take().unwrap(), stdout.clone());
        let mut server = Server {
            child,
            port: 0,
            dir,
            stderr,
            stdout,
        };
        let line = server.wait_for_stderr("Listening on ");
        let port = line
            .split(" (version")
            .next()
            .and_then(|s| s.rsplit(':').next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in {line}"));
        server.port = port;
        server
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    pub fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    /// Waits for a stderr line containing `needle` and returns it.
    pub fn wait_for_stderr(&self, needle: &str) -> String {
        let mut found = String::new();
        eventually(&format!("stderr line with {needle:?}"), || {
            if let Some(l) = self.stderr().lines().find(|l| l.contains(needle)) {
                found = l.to_string();
                true
            } else {
                false
            }
        });
        found
    }

    pub fn runner_pid(&self) -> i32 {
        let line = self.wait_for_stderr("msg=\"starting runner\"");
        line.rsplit("pid=")
            .next()
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("no pid in {line}"))
    }

    /// Replaces the control file atomically.
    pub fn control(&self, json: &str) {
        let tmp = self.dir.path().join("control.json.tmp");
        std::fs::write(&tmp, json).unwrap();
        std::fs::rename(&tmp, self.control_path()).unwrap();
    }

    pub fn control_path(&self) -> PathBuf {
        self.dir.path().join("control.json")
    }

    pub fn logged_requests(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.dir.path().join("requests.ndjson"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    pub fn get(&self, path: &str) -> Response {
        request(self.port, "GET", path, None, &[])
    }

    pub fn post(&self, path: &str, body: &str) -> Response {
        request(self.port, "POST", path, Some(body), &[])
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Waits for the server process to exit.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let mut status = None;
        eventually("server exit", || {
            status = self.child.try_wait().unwrap();
            status.is_some()
        });
        status.unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // SAFETY: the group id is the server's pid (process_group(0)); it holds only our
        // server and its runner.
        unsafe {
            libc::killpg(self.child.id() as i32, libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

/// Top-level keys of a JSON object in document order.
pub fn keys_in_order(json: &str) -> Vec<String> {
    struct Keys(Vec<String>);
    impl<'de> serde::Deserialize<'de> for Keys {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> serde::de::Visitor<'de> for V {
                type Value = Keys;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("an object")
                }
                fn visit_map<A: serde::de::MapAccess<'de>>(
                    self,
                    mut map: A,
                ) -> Result<Keys, A::Error> {
                    let mut keys = Vec::new();
                    while let Some(k) = map.next_key::<String>()? {
                        map.next_value::<serde::de::IgnoredAny>()?;
                        keys.push(k);
                    }
                    Ok(Keys(keys))
                }
            }
            d.deserialize_map(V)
        }
    }
    serde_json::from_str::<Keys>(json).unwrap().0
}

/// Replaces the value of every `"key":` in raw JSON text with `0`, keeping everything else
/// byte for byte (for comparing streams up to timestamps, ids and measured metrics).
pub fn blank_values(text: &str, keys: &[&str]) -> String {
    let mut out = text.to_string();
    for key in keys {
        let needle = format!("\"{key}\":");
        let mut result = String::with_capacity(out.len());
        let mut rest = out.as_str();
        while let Some(at) = rest.find(&needle) {
            let value_start = at + needle.len();
            result.push_str(&rest[..value_start]);
            let value = &rest[value_start..];
            let len = if let Some(stripped) = value.strip_prefix('"') {
                let mut escaped = false;
                let mut end = stripped.len();
                for (i, c) in stripped.char_indices() {
                    match (escaped, c) {
                        (true, _) => escaped = false,
                        (false, '\\') => escaped = true,
                        (false, '"') => {
                            end = i;
                            break;
                        }
                        _ => {}
                    }
                }
                end + 2
            } else {
                value.find([',', '}', ']']).unwrap_or(value.len())
            };
            result.push('0');
            rest = &value[len..];
        }
        result.push_str(rest);
        out = result;
    }
    out
}

/// Keys whose values legitimately differ between runs.
pub const VOLATILE: &[&str] = &[
    "created_at",
    "created",
    "id",
    "total_duration",
    "load_duration",
    "prompt_eval_count",
    "prompt_eval_duration",
    "eval_count",
    "eval_duration",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
];

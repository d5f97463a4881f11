//! Integration harness: the real `openclawd` binary against the `ollama` test double, on free
//! loopback ports, with a temporary HOME. Waits are deadlines on observable state, never sleeps.
#![allow(dead_code)]

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod cloud;
pub mod python_sdk;
pub mod sse;
pub mod translate;

/// The entry for model `r` (`provider/model`) in a status document.
pub fn model_status(status: &Value, r: &str) -> Value {
    status["models"]
        .as_array()
        .and_then(|ms| ms.iter().find(|m| m["ref"] == r))
        .unwrap_or_else(|| panic!("no model {r} in the status: {status}"))
        .clone()
}

/// Proptest's settings for this suite: 64 cases in CI, `PROPTEST_CASES=N` for a longer local
/// round; no failure files written into the tree.
pub fn proptest_config() -> proptest::test_runner::Config {
    proptest::test_runner::Config {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(64),
        failure_persistence: None,
        ..proptest::test_runner::Config::default()
    }
}

/// A free loopback port for a server a test starts by number (the daemon, the double).
///
/// Taken below Linux's ephemeral range (32768+), where the OS hands out port-0 binds (the
/// cloud doubles, client sockets): a port released here can then not be grabbed by another
/// test's port-0 bind before the daemon binds it. The start is spread by pid so concurrent
/// test processes rarely meet.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    const LOW: u32 = 20000;
    const SPAN: u32 = 12000;
    let start = (std::process::id() * 97) % SPAN;
    for _ in 0..SPAN {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = (LOW + (start + n * 7) % SPAN) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port between {LOW} and {}", LOW + SPAN);
}

pub fn openclawd_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_openclawd"))
}

/// The double is built next to openclawd by `cargo test --workspace` / `cargo build --workspace`.
pub fn double_bin() -> PathBuf {
    let p = openclawd_bin().with_file_name("ollama");
    assert!(
        p.exists(),
        "the ollama test double is not built at {}: run `cargo build --workspace` first",
        p.display()
    );
    p
}

pub fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

/// One isolated machine: HOME, state dir, a bin dir with `ollama`, ports, control files.
pub struct TestEnv {
    pub home: tempfile::TempDir,
    pub state: PathBuf,
    pub bin_dir: PathBuf,
    pub control: PathBuf,
    pub request_log: PathBuf,
    pub ollama_port: u16,
    pub gateway_port: u16,
    pub extra_env: Vec<(String, String)>,
}

impl TestEnv {
    pub fn new() -> TestEnv {
        let home = tempfile::tempdir().expect("temp HOME");
        let state = home.path().join(".openclaw");
        let bin_dir = home.path().join("bin");
        std::fs::create_dir_all(&state).unwrap();
        std::fs::create_dir_all(&bin_dir).unwrap();
        let env = TestEnv {
            control: home.path().join("ollama-control.json"),
            request_log: home.path().join("ollama-requests.ndjson"),
            ollama_port: free_port(),
            gateway_port: free_port(),
            extra_env: Vec::new(),
            home,
            state,
            bin_dir,
        };
        env.install_ollama("0.32.15");
        env
    }

    pub fn ollama_path(&self) -> PathBuf {
        self.bin_dir.join("ollama")
    }

    /// "Installs" an Ollama of `version`: replaces the `ollama` script atomically, as a
    /// package manager replaces the binary.
    pub fn install_ollama(&self, version: &str) {
        let script = format!(
            "#!/bin/sh\nOLLAMA_DOUBLE_VERSION={version} exec {} \"$@\"\n",
            double_bin().display()
        );
        let tmp = self.bin_dir.join(".ollama.new");
        std::fs::write(&tmp, script).unwrap();
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::rename(&tmp, self.ollama_path()).unwrap();
    }

    pub fn config_path(&self) -> PathBuf {
        self.state.join("openclaw.json")
    }

    pub fn write_config(&self, text: &str) {
        let tmp = self.state.join(".openclaw.json.tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, self.config_path()).unwrap();
    }

    pub fn write_own_settings(&self, text: &str) {
        let dir = self.state.join("openclawd");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("openclawd.json"), text).unwrap();
    }

    pub fn write_control(&self, v: &Value) {
        let tmp = self.control.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec(v).unwrap()).unwrap();
        std::fs::rename(&tmp, &self.control).unwrap();
    }

    pub fn ollama_base(&self) -> String {
        format!("http://127.0.0.1:{}", self.ollama_port)
    }

    pub fn gateway_base(&self) -> String {
        format!("http://127.0.0.1:{}", self.gateway_port)
    }

    /// The environment every process of this test machine sees.
    pub fn envs(&self) -> Vec<(String, String)> {
        let path = format!(
            "{}:{}",
            self.bin_dir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut v = vec![
            ("HOME".into(), self.home.path().display().to_string()),
            ("PATH".into(), path),
            (
                "OPENCLAW_STATE_DIR".into(),
                self.state.display().to_string(),
            ),
            (
                "OLLAMA_HOST".into(),
                format!("127.0.0.1:{}", self.ollama_port),
            ),
            (
                "OPENCLAW_GATEWAY_PORT".into(),
                self.gateway_port.to_string(),
            ),
            (
                "OLLAMA_DOUBLE_CONTROL".into(),
                self.control.display().to_string(),
            ),
            (
                "OLLAMA_DOUBLE_LOG".into(),
                self.request_log.display().to_string(),
            ),
            (
                "OLLAMA_MODELS".into(),
                self.home.path().join("models").display().to_string(),
            ),
            ("RUST_LOG".into(), "info,openclawd=debug".into()),
        ];
        v.extend(self.extra_env.iter().cloned());
        v
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(openclawd_bin());
        c.args(args).env_clear();
        for (k, v) in self.envs() {
            c.env(k, v);
        }
        c
    }

    /// Starts `openclawd run` and waits until `/health` answers.
    pub fn start(&self) -> Daemon {
        self.start_with(&["run"])
    }

    pub fn start_with(&self, args: &[&str]) -> Daemon {
        let d = self.spawn_with(args);
        wait_for(
            Duration::from_secs(30),
            "openclawd's /health answers",
            || http_get(&format!("{}/health", d.base)).is_some_and(|(c, _)| c == 200),
        );
        d
    }

    /// Starts openclawd with `args` without waiting for anything.
    pub fn spawn_with(&self, args: &[&str]) -> Daemon {
        let log = self
            .home
            .path()
            .join(format!("openclawd-{}.log", free_port()));
        let child = self
            .command(args)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("spawn openclawd");
        Daemon {
            child,
            base: self.gateway_base(),
            log,
            state: self.state.clone(),
            token: self
                .extra_env
                .iter()
                .find(|(k, _)| k == "OPENCLAW_GATEWAY_TOKEN")
                .map(|(_, v)| v.clone()),
        }
    }

    /// Runs an openclawd CLI command to completion.
    pub fn cli(&self, args: &[&str]) -> (ExitStatus, String, String) {
        let out = self.command(args).output().expect("run openclawd");
        (
            out.status,
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Starts the double directly (a server openclawd will find already running).
    pub fn start_ollama_by_hand(&self) -> Child {
        let mut c = Command::new(self.ollama_path());
        c.arg("serve").env_clear();
        for (k, v) in self.envs() {
            c.env(k, v);
        }
        let child = c
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn ollama double");
        wait_for(
            Duration::from_secs(20),
            "hand-started ollama answers",
            || http_get(&format!("{}/api/version", self.ollama_base())).is_some(),
        );
        child
    }

    /// Requests the double received, as logged by it.
    pub fn ollama_requests(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.request_log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

/// Every live process (but this one) whose environment mentions `needle`: what a test
/// started, however deep (daemons, the doubles they spawned, their runners).
pub fn processes_with_env(needle: &str) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != std::process::id() && pid_alive(*pid as i32))
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .map(|env| String::from_utf8_lossy(&env).contains(needle))
                .unwrap_or(false)
        })
        .collect()
}

impl Drop for TestEnv {
    /// Nothing a test started outlives it, even when it failed half-way.
    fn drop(&mut self) {
        for pid in processes_with_env(&self.control.display().to_string()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

pub struct Daemon {
    pub child: Child,
    pub base: String,
    pub log: PathBuf,
    pub state: PathBuf,
    /// The gateway token, when the test set one.
    pub token: Option<String>,
}

impl Daemon {
    pub fn status(&self) -> Option<Value> {
        self.get("/status").and_then(|(code, body)| {
            (code == 200)
                .then(|| serde_json::from_str(&body).ok())
                .flatten()
        })
    }

    /// GET with the token (if any).
    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        let mut rb = client().get(format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            rb = rb.bearer_auth(t);
        }
        let r = rb.send().ok()?;
        let code = r.status().as_u16();
        Some((code, r.text().ok()?))
    }

    /// POSTs a chat request with the token (if any) and returns the whole response.
    pub fn chat(&self, body: &Value, headers: &[(&str, &str)]) -> reqwest::blocking::Response {
        let mut rb = client()
            .post(format!("{}/v1/chat/completions", self.base))
            .json(body);
        if let Some(t) = &self.token {
            rb = rb.bearer_auth(t);
        }
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        rb.send().expect("POST /v1/chat/completions")
    }

    /// Polls `/status` until `cond` holds; panics with the log and last status after `limit`.
    pub fn wait_until(&self, what: &str, limit: Duration, cond: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + limit;
        let mut last = None;
        while Instant::now() < deadline {
            if let Some(st) = self.status() {
                if cond(&st) {
                    return st;
                }
                last = Some(st);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "timed out waiting for: {what}\nlast status: {}\nlog:\n{}",
            last.map(|s| serde_json::to_string_pretty(&s).unwrap())
                .unwrap_or_default(),
            self.log_text()
        );
    }

    /// Waits until the status lists model `r` (`provider/model`) as available.
    pub fn wait_available(&self, r: &str) {
        self.wait_until(&format!("{r} available"), Duration::from_secs(30), |s| {
            s["models"]
                .as_array()
                .is_some_and(|ms| ms.iter().any(|m| m["ref"] == r && m["available"] == true))
        });
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), sig);
    }

    /// Waits for the process to exit; panics after `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            if Instant::now() > deadline {
                panic!(
                    "openclawd did not exit in {limit:?}\nlog:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Never leave an Ollama double behind: stop what openclawd recorded as its own.
        kill_recorded_ollama(&self.state);
    }
}

pub fn kill_recorded_ollama(state: &Path) {
    let rec = state.join("openclawd").join("ollama.json");
    if let Ok(text) = std::fs::read_to_string(rec) {
        if let Some(pid) = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v.get("pid").and_then(Value::as_i64))
        {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

pub fn wait_for(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("timed out after {limit:?} waiting for: {what}");
}

pub fn pid_alive(pid: i32) -> bool {
    // A zombie is dead for our purposes.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s
            .rsplit_once(')')
            .map(|(_, rest)| !rest.trim_start().starts_with('Z'))
            .unwrap_or(false),
        Err(_) => false,
    }
}

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("http client")
}

pub fn http_get(url: &str) -> Option<(u16, String)> {
    let r = client().get(url).send().ok()?;
    let code = r.status().as_u16();
    Some((code, r.text().ok()?))
}

pub fn http_post(url: &str, headers: &[(&str, &str)], body: &str) -> Option<(u16, String)> {
    let mut rb = client()
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string());
    for (k, v) in headers {
        rb = rb.header(*k, *v);
    }
    let r = rb.send().ok()?;
    let code = r.status().as_u16();
    Some((code, r.text().ok()?))
}

/// POSTs and returns the full response (status, headers, body).
/// POSTs the JSON `body` to the daemon's `path` with `headers`: the answer's status, its
/// `x-openclawd-model` and its body.
pub fn post_routed(
    d: &Daemon,
    path: &str,
    body: &serde_json::Value,
    headers: &[(&str, &str)],
) -> (u16, String, String) {
    let r = http_post_full(&format!("{}{path}", d.base), headers, &body.to_string());
    let status = r.status().as_u16();
    let model = r
        .headers()
        .get("x-openclawd-model")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    (status, model, r.text().unwrap())
}

pub fn http_post_full(
    url: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> reqwest::blocking::Response {
    let mut rb = client()
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string());
    for (k, v) in headers {
        rb = rb.header(*k, *v);
    }
    rb.send().expect("POST")
}

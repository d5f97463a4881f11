//! The Ollama supervisor against the `ollama` test double: real processes, real HTTP on free
//! loopback ports, temp state dirs. Every wait is a deadline on observable state.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use openclawd::backoff::{Backoff, Schedule};
use openclawd::config::OllamaAddress;
use openclawd::ollama::client::OllamaClient;
use openclawd::ollama::process::{is_alive, stat};
use openclawd::ollama::{
    record, spawn, stop_recorded, Management, OllamaState, OllamaStatus, Preload, ShutdownKind,
    SupervisorHandle, SupervisorSettings,
};

const WAIT: Duration = Duration::from_secs(30);
const V1: &str = "0.32.15";
const V2: &str = "0.33.0";

// ---- harness ----------------------------------------------------------------------------

mod common;
use common::free_port;

/// `<target>/debug/ollama`, built by `cargo build -p ollama-double`.
fn double_exe() -> PathBuf {
    // This test runs from `<target>/debug/deps/supervisor-<hash>`.
    let exe = std::env::current_exe().unwrap();
    let p = exe.parent().unwrap().parent().unwrap().join("ollama");
    assert!(
        p.exists(),
        "the ollama test double is not built at {}: run `cargo build -p ollama-double`",
        p.display()
    );
    p
}

/// One isolated machine: a bin dir holding an `ollama` wrapper script, a state dir, a control
/// file for the double, and a free port. Dropping it kills every process it started (found by
/// the control-file path in their environment), so a failed test leaves nothing behind.
struct Env {
    dir: tempfile::TempDir,
    port: u16,
}

impl Env {
    fn new() -> Env {
        let env = Env {
            dir: tempfile::tempdir().unwrap(),
            port: free_port(),
        };
        std::fs::create_dir_all(env.bin_dir()).unwrap();
        std::fs::create_dir_all(env.state()).unwrap();
        env.install(V1);
        env
    }

    fn bin_dir(&self) -> PathBuf {
        self.dir.path().join("bin")
    }
    fn bin(&self) -> PathBuf {
        self.bin_dir().join("ollama")
    }
    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }
    fn control_path(&self) -> PathBuf {
        self.dir.path().join("control.json")
    }

    /// "Installs" an Ollama of `version` by atomically replacing the wrapper script, as a
    /// package manager replaces the binary.
    fn install(&self, version: &str) {
        self.install_script(&format!(
            "#!/bin/sh\nOLLAMA_DOUBLE_VERSION={version} OLLAMA_DOUBLE_CONTROL={} OLLAMA_DOUBLE_LOG={} exec {} \"$@\"\n",
            self.control_path().display(),
            self.request_log_path().display(),
            double_exe().display()
        ));
    }

    fn install_script(&self, script: &str) {
        let tmp = self.bin_dir().join(".ollama.new");
        std::fs::write(&tmp, script).unwrap();
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::rename(&tmp, self.bin()).unwrap();
    }

    fn request_log_path(&self) -> PathBuf {
        self.dir.path().join("requests.ndjson")
    }

    /// The requests the double received: `{"method","path","host","body"}` each.
    fn requests(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.request_log_path())
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    fn control(&self, v: serde_json::Value) {
        let tmp = self.dir.path().join("control.tmp");
        std::fs::write(&tmp, v.to_string()).unwrap();
        std::fs::rename(&tmp, self.control_path()).unwrap();
    }

    fn address(&self) -> OllamaAddress {
        OllamaAddress {
            base_url: format!("http://127.0.0.1:{}", self.port),
            host: "127.0.0.1".into(),
            port: self.port,
            loopback: true,
        }
    }

    /// Short timings so scenarios take seconds.
    fn settings(&self) -> SupervisorSettings {
        let mut s = SupervisorSettings::new(self.address(), self.bin(), self.state());
        s.probe_interval = Duration::from_millis(200);
        s.adopt_grace = Duration::from_secs(1);
        s.start_timeout = Duration::from_secs(30);
        s.restart_backoff = Backoff::new(
            Schedule::Doubling {
                initial: Duration::from_millis(100),
                cap: Duration::from_secs(1),
            },
            0.1,
        );
        s
    }

    /// Starts `ollama serve` the way a user's terminal would (not ours).
    fn start_foreign_server(&self) -> Child {
        Command::new(self.bin())
            .arg("serve")
            .env("OLLAMA_HOST", format!("127.0.0.1:{}", self.port))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap()
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(self.state().join("logs/ollama.log")).unwrap_or_default()
    }

    /// Every live process started from this environment (its control path is in their env).
    fn processes(&self) -> Vec<u32> {
        common::processes_with_env(&self.control_path().display().to_string())
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        for pid in self.processes() {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
        }
    }
}

async fn wait_status(
    h: &SupervisorHandle,
    what: &str,
    pred: impl Fn(&OllamaStatus) -> bool,
) -> OllamaStatus {
    let mut rx = h.status.clone();
    let result = tokio::time::timeout(WAIT, rx.wait_for(|s| pred(s))).await;
    match result {
        Ok(Ok(s)) => s.clone(),
        _ => panic!("timed out waiting for {what}; status: {:#?}", h.current()),
    }
}

/// Checks that `pred` holds for the whole of `period` (for "never happens" claims).
async fn holds_throughout(
    h: &SupervisorHandle,
    period: Duration,
    pred: impl Fn(&OllamaStatus) -> bool,
) {
    let mut rx = h.status.clone();
    let end = tokio::time::Instant::now() + period;
    loop {
        assert!(pred(&rx.borrow_and_update()), "status: {:#?}", h.current());
        if tokio::time::timeout_at(end, rx.changed()).await.is_err() {
            return;
        }
    }
}

async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn answers(port: u16) -> Option<String> {
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let v: serde_json::Value = client
        .get(format!("http://127.0.0.1:{port}/api/version"))
        .timeout(Duration::from_secs(1))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    v["version"].as_str().map(str::to_string)
}

async fn wait_answers(port: u16) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(v) = answers(port).await {
            return v;
        }
        assert!(Instant::now() < deadline, "nothing answers on port {port}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The double's runner: the child of `server` running `<exe> runner`.
fn runner_of(server: u32) -> Option<u32> {
    std::fs::read_dir("/proc")
        .ok()?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .find(|pid| {
            stat(*pid).is_some_and(|s| s.ppid == server && s.state != 'Z')
                && std::fs::read(format!("/proc/{pid}/cmdline"))
                    .map(|c| String::from_utf8_lossy(&c).contains("runner"))
                    .unwrap_or(false)
        })
}

async fn wait_runner(server: u32) -> u32 {
    let mut found = None;
    wait_until("the runner of the server", || {
        found = runner_of(server);
        found.is_some()
    })
    .await;
    found.unwrap()
}

fn running_owned(s: &OllamaStatus) -> bool {
    s.state == OllamaState::Running && s.management == Some(Management::Owned)
}

/// Kills a server we started by hand together with its runner (same process group).
fn kill_with_group(child: &mut Child) {
    nix::sys::signal::killpg(Pid::from_raw(child.id() as i32), Signal::SIGKILL).unwrap();
    child.wait().unwrap();
}

fn sigkill(pid: u32) {
    kill(Pid::from_raw(pid as i32), Signal::SIGKILL).unwrap();
}

// ---- scenarios --------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawns_ollama_when_nothing_answers_and_stop_leaves_nothing() {
    let env = Env::new();
    let h = spawn(env.settings());

    let s = wait_status(&h, "owned and running", running_owned).await;
    let pid = s.pid.expect("an owned server has a pid");
    assert_eq!(s.server_version.as_deref(), Some(V1));
    assert_eq!(s.binary_version.as_deref(), Some(V1));
    assert_eq!(s.base_url, env.address().base_url);
    assert_eq!(s.healthy_epoch, 1);
    assert_eq!(s.restarts, 0);
    assert_eq!(s.version_mismatch, None);

    // Its own session and process group; its output goes to the log file.
    let st = stat(pid).unwrap();
    assert_eq!((st.pgid, st.session), (pid, pid));
    let fd1 = std::fs::read_link(format!("/proc/{pid}/fd/1")).unwrap();
    assert!(
        fd1.ends_with("logs/ollama.log"),
        "stdout is {}",
        fd1.display()
    );
    wait_until("the server's startup lines in ollama.log", || {
        env.log_text().contains("Listening on")
    })
    .await;

    // The ownership record names it.
    let rec = record::read(&env.state()).unwrap().expect("ollama.json");
    assert_eq!(rec.pid, pid);
    assert_eq!(rec.address, env.address().base_url);
    assert_eq!(rec.binary, env.bin());
    assert!(rec.start_time.is_some());

    let runner = wait_runner(pid).await;
    h.shutdown(ShutdownKind::Stop).await;
    assert_eq!(h.current().state, OllamaState::Stopped);
    assert!(!is_alive(pid), "server gone");
    wait_until("the runner gone", || !is_alive(runner)).await;
    assert_eq!(
        record::read(&env.state()).unwrap(),
        None,
        "ollama.json removed"
    );
    assert_eq!(env.processes(), Vec::<u32>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adopts_a_running_ollama_and_leaves_it_running_on_stop() {
    let env = Env::new();
    let mut theirs = env.start_foreign_server();
    wait_answers(env.port).await;

    let h = spawn(env.settings());
    let s = wait_status(&h, "adopted and running", |s| {
        s.state == OllamaState::Running
    })
    .await;
    assert_eq!(s.management, Some(Management::Adopted));
    assert_eq!(s.pid, Some(theirs.id()));
    assert_eq!(s.server_version.as_deref(), Some(V1));
    assert_eq!(
        record::read(&env.state()).unwrap(),
        None,
        "not ours: no record"
    );

    h.shutdown(ShutdownKind::Stop).await;
    assert!(
        theirs.try_wait().unwrap().is_none(),
        "the adopted server keeps running"
    );
    assert_eq!(answers(env.port).await.as_deref(), Some(V1));
    kill_with_group(&mut theirs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_is_restarted_and_its_orphaned_runner_killed() {
    let env = Env::new();
    let h = spawn(env.settings());
    let s = wait_status(&h, "owned and running", running_owned).await;
    let old = s.pid.unwrap();
    let old_runner = wait_runner(old).await;

    sigkill(old);
    let s = wait_status(&h, "running again under a new pid", |s| {
        running_owned(s) && s.pid != Some(old)
    })
    .await;
    assert!(s.restarts >= 1);
    assert_eq!(s.healthy_epoch, 2);
    let reason = s.last_restart_reason.unwrap();
    assert!(reason.contains("signal 9"), "{reason}");
    wait_until("the old runner gone", || !is_alive(old_runner)).await;
    assert_eq!(
        record::read(&env.state()).unwrap().unwrap().pid,
        s.pid.unwrap()
    );

    h.shutdown(ShutdownKind::Stop).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_server_is_killed_and_restarted() {
    let env = Env::new();
    let h = spawn(env.settings());
    let s = wait_status(&h, "owned and running", running_owned).await;
    let old = s.pid.unwrap();
    let old_runner = wait_runner(old).await;

    env.control(serde_json::json!({"hang": true}));
    let s = wait_status(&h, "a restart for a hang", |s| s.restarts >= 1).await;
    let reason = s.last_restart_reason.unwrap();
    assert!(reason.contains("hung"), "{reason}");
    assert!(!is_alive(old), "the hung server was killed");
    wait_until("the hung server's runner gone", || !is_alive(old_runner)).await;

    env.control(serde_json::json!({}));
    let s = wait_status(&h, "running again", running_owned).await;
    assert_ne!(s.pid, Some(old));
    h.shutdown(ShutdownKind::Stop).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgraded_binary_replaces_our_server_with_the_new_version() {
    let env = Env::new();
    let h = spawn(env.settings());
    let s = wait_status(&h, "owned and running", running_owned).await;
    let old = s.pid.unwrap();

    env.install(V2);
    let s = wait_status(&h, "the new version serving", |s| {
        running_owned(s) && s.server_version.as_deref() == Some(V2)
    })
    .await;
    assert_eq!(s.binary_version.as_deref(), Some(V2));
    assert_ne!(s.pid, Some(old));
    assert!(!is_alive(old));
    assert_eq!(s.restarts, 1);
    assert_eq!(
        s.last_restart_reason.as_deref(),
        Some("version mismatch: server 0.32.15, binary 0.33.0")
    );
    assert_eq!(s.version_mismatch, None);
    h.shutdown(ShutdownKind::Stop).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_replaces_an_adopted_terminal_ollama_with_ours() {
    let env = Env::new();
    let mut theirs = env.start_foreign_server();
    wait_answers(env.port).await;
    let h = spawn(env.settings());
    let s = wait_status(&h, "adopted", |s| s.state == OllamaState::Running).await;
    assert_eq!(s.management, Some(Management::Adopted));

    env.install(V2);
    let s = wait_status(&h, "our new version serving", |s| {
        running_owned(s) && s.server_version.as_deref() == Some(V2)
    })
    .await;
    assert_ne!(s.pid, Some(theirs.id()));
    assert!(s
        .last_restart_reason
        .unwrap()
        .contains("version mismatch: server 0.32.15, binary 0.33.0"));
    // The terminal's server got SIGTERM and exited.
    let status = theirs.wait().unwrap();
    assert_eq!(status.code(), Some(0), "a graceful exit: {status:?}");
    h.shutdown(ShutdownKind::Stop).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_held_by_another_program_is_reported_and_that_program_left_alone() {
    let env = Env::new();
    let mut squatter = Command::new("python3")
        .args([
            "-m",
            "http.server",
            &env.port.to_string(),
            "--bind",
            "127.0.0.1",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 to hold the port");
    wait_until("python to listen", || {
        std::net::TcpStream::connect(("127.0.0.1", env.port)).is_ok()
    })
    .await;

    let h = spawn(env.settings());
    let s = wait_status(&h, "a port conflict reported", |s| {
        s.state == OllamaState::Unreachable && s.last_restart_reason.is_some()
    })
    .await;
    let reason = s.last_restart_reason.unwrap();
    assert!(reason.contains("held by another program"), "{reason}");
    assert!(
        reason.contains(&format!("pid {}", squatter.id())),
        "{reason}"
    );
    assert!(reason.contains("http.server"), "{reason}");
    assert_eq!(s.management, None);
    // It keeps retrying, and still never touches the program.
    wait_status(&h, "a retry", |s| s.restarts >= 2).await;
    assert!(
        squatter.try_wait().unwrap().is_none(),
        "the program is still alive"
    );

    h.shutdown(ShutdownKind::Stop).await;
    squatter.kill().unwrap();
    squatter.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handover_leaves_the_server_warm_for_the_next_supervisor_to_take_back() {
    let env = Env::new();
    let first = spawn(env.settings());
    let s = wait_status(&first, "owned and running", running_owned).await;
    let pid = s.pid.unwrap();
    let runner = wait_runner(pid).await;

    first.shutdown(ShutdownKind::Handover).await;
    assert!(is_alive(pid), "handover leaves it running");
    assert_eq!(record::read(&env.state()).unwrap().unwrap().pid, pid);

    let second = spawn(env.settings());
    let s = wait_status(&second, "taken back", running_owned).await;
    assert_eq!(s.pid, Some(pid), "the same process, not a restart");
    assert_eq!(s.restarts, 0);
    assert_eq!(s.server_version.as_deref(), Some(V1));

    second.shutdown(ShutdownKind::Stop).await;
    wait_until("the taken-back server gone", || !is_alive(pid)).await;
    wait_until("its runner gone", || !is_alive(runner)).await;
    assert_eq!(record::read(&env.state()).unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_without_a_daemon_stops_the_recorded_server() {
    let env = Env::new();
    let first = spawn(env.settings());
    let pid = wait_status(&first, "owned", running_owned)
        .await
        .pid
        .unwrap();
    let runner = wait_runner(pid).await;
    first.shutdown(ShutdownKind::Handover).await;

    assert_eq!(stop_recorded(&env.state()).await.unwrap(), Some(pid));
    assert!(!is_alive(pid));
    wait_until("its runner gone", || !is_alive(runner)).await;
    assert_eq!(record::read(&env.state()).unwrap(), None);
    assert_eq!(stop_recorded(&env.state()).await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_back_server_that_dies_is_restarted() {
    let env = Env::new();
    let first = spawn(env.settings());
    let pid = wait_status(&first, "owned", running_owned)
        .await
        .pid
        .unwrap();
    first.shutdown(ShutdownKind::Handover).await;

    let second = spawn(env.settings());
    wait_status(&second, "taken back", |s| {
        running_owned(s) && s.pid == Some(pid)
    })
    .await;
    sigkill(pid);
    let s = wait_status(&second, "a new server", |s| {
        running_owned(s) && s.pid != Some(pid)
    })
    .await;
    assert_eq!(s.restarts, 1);
    second.shutdown(ShutdownKind::Stop).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_variables_pointing_at_a_dead_proxy_change_nothing() {
    // Proxy variables are process-wide: run the scenario in a child test process.
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "proxied_spawn_scenario",
            "--ignored",
            "--test-threads=1",
        ])
        .env("HTTP_PROXY", "http://127.0.0.1:1")
        .env("HTTPS_PROXY", "http://127.0.0.1:1")
        .env("ALL_PROXY", "http://127.0.0.1:1")
        .env("http_proxy", "http://127.0.0.1:1")
        .env("https_proxy", "http://127.0.0.1:1")
        .env("all_proxy", "http://127.0.0.1:1")
        .env("NO_PROXY", "example.internal")
        .env_remove("no_proxy")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by proxy_variables_pointing_at_a_dead_proxy_change_nothing with proxy variables set"]
async fn proxied_spawn_scenario() {
    let env = Env::new();
    let h = spawn(env.settings());
    let s = wait_status(&h, "owned and running despite proxies", running_owned).await;
    assert_eq!(s.binary_version.as_deref(), Some(V1));
    let pid = s.pid.unwrap();
    if std::env::var_os("HTTP_PROXY").is_some() {
        let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
        let environ = String::from_utf8_lossy(&environ);
        let vars: Vec<&str> = environ.split('\0').collect();
        assert!(
            vars.contains(&"NO_PROXY=example.internal,127.0.0.1,localhost,::1"),
            "{vars:?}"
        );
        assert!(
            vars.contains(&"no_proxy=example.internal,127.0.0.1,localhost,::1"),
            "{vars:?}"
        );
        assert!(vars.contains(&format!("OLLAMA_HOST=127.0.0.1:{}", env.port).as_str()));
    }
    h.shutdown(ShutdownKind::Stop).await;
    assert!(!is_alive(pid));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manage_false_never_spawns_but_uses_a_server_that_appears() {
    let env = Env::new();
    let mut settings = env.settings();
    settings.manage = false;
    let h = spawn(settings.clone());
    wait_status(&h, "unreachable", |s| s.state == OllamaState::Unreachable).await;
    holds_throughout(&h, settings.adopt_grace * 2, |s| {
        s.state == OllamaState::Unreachable && s.pid.is_none()
    })
    .await;
    assert_eq!(env.processes(), Vec::<u32>::new(), "nothing spawned");

    let mut theirs = env.start_foreign_server();
    let s = wait_status(&h, "the appearing server used", |s| {
        s.state == OllamaState::Running
    })
    .await;
    assert_eq!(s.management, Some(Management::Adopted));
    assert_eq!(s.pid, Some(theirs.id()));

    kill_with_group(&mut theirs);
    wait_status(&h, "unreachable again", |s| {
        s.state == OllamaState::Unreachable
    })
    .await;
    holds_throughout(&h, settings.adopt_grace * 2, |s| {
        s.state == OllamaState::Unreachable && s.management != Some(Management::Owned)
    })
    .await;
    assert_eq!(env.processes(), Vec::<u32>::new(), "still nothing spawned");
    assert!(!env.state().join("logs/ollama.log").exists());
    h.shutdown(ShutdownKind::Stop).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_adopted_server_that_dies_is_replaced_by_ours_after_the_grace_period() {
    let env = Env::new();
    let mut theirs = env.start_foreign_server();
    wait_answers(env.port).await;
    let h = spawn(env.settings());
    wait_status(&h, "adopted", |s| s.management == Some(Management::Adopted)).await;

    kill_with_group(&mut theirs);
    let s = wait_status(&h, "ours running", running_owned).await;
    assert_ne!(s.pid, Some(theirs.id()));
    assert_eq!(s.healthy_epoch, 2);
    h.shutdown(ShutdownKind::Stop).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_crashes_at_once_is_reported_as_a_crash_loop() {
    let env = Env::new();
    env.control(serde_json::json!({"crash_after_requests": 0}));
    let h = spawn(env.settings());
    let s = wait_status(&h, "crash_loop", |s| s.state == OllamaState::CrashLoop).await;
    assert!(s.restarts >= 4, "{s:?}");
    let reason = s.last_restart_reason.unwrap();
    assert!(reason.contains("exited with code 2"), "{reason}");
    // Still retrying: a fixed server comes back.
    env.control(serde_json::json!({}));
    wait_status(&h, "running once fixed", running_owned).await;
    h.shutdown(ShutdownKind::Stop).await;
    assert_eq!(env.processes(), Vec::<u32>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_server_is_probed_and_never_spawned_or_signalled() {
    let env = Env::new();
    let mut theirs = env.start_foreign_server();
    wait_answers(env.port).await;
    let mut settings = env.settings();
    // The double listens on loopback; the flag is what makes an address remote to openclawd.
    settings.address.loopback = false;
    let h = spawn(settings.clone());
    let s = wait_status(&h, "remote running", |s| s.state == OllamaState::Running).await;
    assert_eq!(s.management, Some(Management::Remote));

    env.install(V2);
    h.check_version_now();
    let s = wait_status(&h, "a reported mismatch", |s| s.version_mismatch.is_some()).await;
    assert!(s.version_mismatch.unwrap().contains("runs 0.32.15"));
    assert!(theirs.try_wait().unwrap().is_none(), "never signalled");

    kill_with_group(&mut theirs);
    wait_status(&h, "unreachable", |s| s.state == OllamaState::Unreachable).await;
    holds_throughout(&h, settings.adopt_grace * 2, |s| {
        s.state == OllamaState::Unreachable && s.management == Some(Management::Remote)
    })
    .await;
    assert_eq!(env.processes(), Vec::<u32>::new(), "nothing spawned");
    h.shutdown(ShutdownKind::Stop).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_address_moves_our_server() {
    let env = Env::new();
    let h = spawn(env.settings());
    let old = wait_status(&h, "owned", running_owned).await.pid.unwrap();

    let mut settings = env.settings();
    let port = free_port();
    settings.address = OllamaAddress {
        base_url: format!("http://127.0.0.1:{port}"),
        host: "127.0.0.1".into(),
        port,
        loopback: true,
    };
    h.reconfigure(settings);
    let s = wait_status(&h, "serving the new address", |s| {
        running_owned(s) && s.base_url.ends_with(&format!(":{port}"))
    })
    .await;
    assert_ne!(s.pid, Some(old));
    assert!(!is_alive(old));
    assert_eq!(wait_answers(port).await, V1);
    h.shutdown(ShutdownKind::Stop).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_primary_model_is_preloaded_once_ollama_is_healthy() {
    let env = Env::new();
    let mut settings = env.settings();
    settings.preload = Some(Preload {
        model: "llama3.2:3b".into(),
        keep_alive: "30m".into(),
    });
    let h = spawn(settings);
    wait_status(&h, "owned", running_owned).await;
    let mut preload = None;
    wait_until("a preload request", || {
        preload = env
            .requests()
            .into_iter()
            .find(|r| r["path"] == "/api/generate");
        preload.is_some()
    })
    .await;
    let preload = preload.unwrap();
    assert_eq!(preload["method"], "POST");
    assert_eq!(
        preload["body"],
        serde_json::json!({"model": "llama3.2:3b", "keep_alive": "30m"})
    );
    // What `ollama ps` shows: the preloaded model, read through the typed client.
    let client = OllamaClient::new(&env.address()).unwrap();
    let mut loaded = Vec::new();
    for _ in 0..40 {
        loaded = client.loaded_models().await.unwrap();
        if !loaded.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        loaded.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(),
        ["llama3.2:3b"],
        "{loaded:?}"
    );
    assert!(loaded[0].size > 0 && !loaded[0].expires_at.is_empty());
    // Every request carried the loopback Host Ollama accepts.
    let host = format!("127.0.0.1:{}", env.port);
    for r in env.requests() {
        assert_eq!(r["host"], host.as_str(), "{r}");
    }
    h.shutdown(ShutdownKind::Stop).await;
    let generates = env
        .requests()
        .iter()
        .filter(|r| r["path"] == "/api/generate")
        .count();
    assert_eq!(generates, 1, "one preload per healthy epoch");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_server_that_died_leaves_no_runner_and_is_replaced() {
    let env = Env::new();
    let first = spawn(env.settings());
    let old = wait_status(&first, "owned", running_owned)
        .await
        .pid
        .unwrap();
    let old_runner = wait_runner(old).await;
    first.shutdown(ShutdownKind::Handover).await;
    // openclawd is down and its Ollama dies hard: the runner is orphaned.
    sigkill(old);
    wait_until("the old server gone", || !is_alive(old)).await;
    assert!(is_alive(old_runner));

    let second = spawn(env.settings());
    let s = wait_status(&second, "a fresh server", running_owned).await;
    assert_ne!(s.pid, Some(old));
    wait_until("the orphaned runner gone", || !is_alive(old_runner)).await;
    assert_eq!(
        record::read(&env.state()).unwrap().unwrap().pid,
        s.pid.unwrap()
    );
    second.shutdown(ShutdownKind::Stop).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_crash_restarts_at_once_and_the_second_waits_its_backoff() {
    let env = Env::new();
    let mut settings = env.settings();
    settings.restart_backoff = Backoff::new(
        Schedule::Doubling {
            initial: Duration::from_secs(5),
            cap: Duration::from_secs(60),
        },
        0.0,
    );
    let h = spawn(settings);
    let first = wait_status(&h, "owned", running_owned).await.pid.unwrap();
    let killed = Instant::now();
    sigkill(first);
    let s = wait_status(&h, "a new server", |s| {
        running_owned(s) && s.pid != Some(first)
    })
    .await;
    // Under the 5 s the backoff would have waited: the first restart did not wait at all.
    assert!(
        killed.elapsed() < Duration::from_secs(3),
        "{:?}",
        killed.elapsed()
    );
    assert_eq!(s.restarts, 1);
    assert!(s.last_restart_at.is_some(), "{s:?}");
    assert_eq!(
        (s.restart_attempt, s.next_restart_at.as_deref()),
        (None, None)
    );

    // The second crash in a row waits: status says when, and which attempt.
    sigkill(s.pid.unwrap());
    let s = wait_status(&h, "a restart waiting", |s| {
        s.state == OllamaState::Restarting && s.next_restart_at.is_some()
    })
    .await;
    assert_eq!(s.restart_attempt, Some(2), "{s:?}");
    let wait = s.next_restart_in(std::time::SystemTime::now()).unwrap();
    assert!(
        wait > Duration::from_secs(3) && wait <= Duration::from_secs(5),
        "{wait:?}"
    );
    h.shutdown(ShutdownKind::Stop).await;
    assert_eq!(env.processes(), Vec::<u32>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_history_survives_a_handover() {
    let env = Env::new();
    let first = spawn(env.settings());
    let pid = wait_status(&first, "owned", running_owned)
        .await
        .pid
        .unwrap();
    sigkill(pid);
    let before = wait_status(&first, "restarted", |s| {
        running_owned(s) && s.pid != Some(pid)
    })
    .await;
    assert_eq!(before.restarts, 1);
    assert!(
        before
            .last_restart_reason
            .as_deref()
            .is_some_and(|r| r.contains("signal 9")),
        "{before:?}"
    );
    first.shutdown(ShutdownKind::Handover).await;
    let rec = record::read(&env.state()).unwrap().unwrap();
    assert_eq!(rec.history.restarts, 1);

    let second = spawn(env.settings());
    let taken = wait_status(&second, "taken back", |s| {
        running_owned(s) && s.pid == before.pid
    })
    .await;
    assert_eq!(taken.restarts, 1);
    assert_eq!(taken.last_restart_reason, before.last_restart_reason);
    assert_eq!(taken.last_restart_at, before.last_restart_at);

    sigkill(taken.pid.unwrap());
    let after = wait_status(&second, "restarted again", |s| {
        running_owned(s) && s.pid != taken.pid
    })
    .await;
    assert_eq!(after.restarts, 2);
    second.shutdown(ShutdownKind::Stop).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planned_restart_waits_for_the_request_in_flight() {
    let env = Env::new();
    let h = spawn(env.settings());
    let old = wait_status(&h, "owned", running_owned).await.pid.unwrap();
    let request = h.in_flight().enter();
    env.install(V2);
    // Restarting is published at once (the gateway holds new requests) ...
    wait_status(&h, "restarting", |s| s.state == OllamaState::Restarting).await;
    // ... while the old server keeps serving the request in flight.
    holds_throughout(&h, Duration::from_secs(2), |s| {
        s.state == OllamaState::Restarting && s.pid == Some(old)
    })
    .await;
    assert!(is_alive(old));
    assert_eq!(answers(env.port).await.as_deref(), Some(V1));

    drop(request);
    let s = wait_status(&h, "the new version serving", |s| {
        running_owned(s) && s.server_version.as_deref() == Some(V2)
    })
    .await;
    assert_ne!(s.pid, Some(old));
    assert!(!is_alive(old));
    h.shutdown(ShutdownKind::Stop).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planned_restart_stops_waiting_after_the_drain_bound() {
    let env = Env::new();
    let mut settings = env.settings();
    settings.drain_timeout = Duration::from_secs(2);
    let h = spawn(settings);
    wait_status(&h, "owned", running_owned).await;
    let _stuck = h.in_flight().enter();
    env.install(V2);
    wait_status(&h, "restarting", |s| s.state == OllamaState::Restarting).await;
    let waited = Instant::now();
    wait_status(&h, "the new version serving", |s| {
        running_owned(s) && s.server_version.as_deref() == Some(V2)
    })
    .await;
    assert!(
        waited.elapsed() >= Duration::from_millis(1500),
        "restarted before the drain bound: {:?}",
        waited.elapsed()
    );
    assert_eq!(
        h.in_flight().count(),
        1,
        "the stuck request is still counted"
    );
    h.shutdown(ShutdownKind::Stop).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_is_answered_during_a_planned_restart() {
    let env = Env::new();
    let h = spawn(env.settings());
    let old = wait_status(&h, "owned", running_owned).await.pid.unwrap();
    let _stuck = h.in_flight().enter();
    env.install(V2);
    wait_status(&h, "restarting", |s| s.state == OllamaState::Restarting).await;
    // The drain would wait 30 s: shutdown does not.
    let asked = Instant::now();
    h.shutdown(ShutdownKind::Stop).await;
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "{:?}",
        asked.elapsed()
    );
    assert!(!is_alive(old));
    assert_eq!(h.current().state, OllamaState::Stopped);
    assert_eq!(env.processes(), Vec::<u32>::new());
}

// ---- measurements -----------------------------------------------------------------------

fn summary(mut xs: Vec<Duration>) -> String {
    xs.sort();
    let median = (xs[xs.len() / 2] + xs[(xs.len() - 1) / 2]) / 2;
    format!(
        "median {:.0} ms, max {:.0} ms over {} runs",
        median.as_secs_f64() * 1000.0,
        xs.last().unwrap().as_secs_f64() * 1000.0,
        xs.len()
    )
}

/// `cargo test --test supervisor -- --ignored --nocapture measure_`: recovery times with the
/// production timings (probe every 2 s, restart backoff from 1 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a check: run with --ignored --nocapture"]
async fn measure_recovery_times() {
    let mut after_kill = Vec::new();
    let mut after_upgrade = Vec::new();
    for _ in 0..10 {
        let env = Env::new();
        let settings = SupervisorSettings::new(env.address(), env.bin(), env.state());
        let h = spawn(settings);
        let old = wait_status(&h, "owned", running_owned).await.pid.unwrap();
        let t = Instant::now();
        sigkill(old);
        wait_status(&h, "restarted", |s| running_owned(s) && s.pid != Some(old)).await;
        after_kill.push(t.elapsed());

        let t = Instant::now();
        env.install(V2);
        wait_status(&h, "upgraded", |s| {
            running_owned(s) && s.server_version.as_deref() == Some(V2)
        })
        .await;
        after_upgrade.push(t.elapsed());
        h.shutdown(ShutdownKind::Stop).await;
    }
    println!(
        "SIGKILL of the server → running again: {}",
        summary(after_kill)
    );
    println!(
        "binary replaced → new version serving: {}",
        summary(after_upgrade)
    );
}

//! Service integration end to end: `install`/`uninstall` (with and without a service manager
//! that answers), `start`/`stop`/`restart` with the pid file, sd_notify on a real
//! `NOTIFY_SOCKET`, `doctor` on seeded problems, and the upgrade handover.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use nix::sys::signal::Signal;
use serde_json::Value;

const SECRET: &str = "sk-ant-service-test-secret";

/// The fixture config (it references ${ANTHROPIC_API_KEY}, ${OPENROUTER_API_KEY} and
/// ${OPENCLAW_GATEWAY_TOKEN}) with those set in the environment.
fn fixture_env() -> TestEnv {
    let mut env = TestEnv::new();
    let text = std::fs::read_to_string(fixture("openclaw/openclaw.json5"))
        .unwrap()
        .replace("127.0.0.1:11434", &format!("127.0.0.1:{}", env.ollama_port));
    env.write_config(&text);
    env.extra_env.extend([
        ("ANTHROPIC_API_KEY".into(), SECRET.into()),
        ("OPENROUTER_API_KEY".into(), "sk-or-service-test".into()),
        ("OPENCLAW_GATEWAY_TOKEN".into(), "gw-service-token".into()),
        ("OLLAMA_API_KEY".into(), "ollama-local".into()),
    ]);
    env
}

fn unit_path(env: &TestEnv) -> PathBuf {
    env.home
        .path()
        .join(".config/systemd/user/openclawd.service")
}

fn env_file(env: &TestEnv) -> PathBuf {
    env.state.join("openclawd/service.env")
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn openclawd_abs() -> String {
    openclawd_bin().display().to_string()
}

/// A `systemctl` on PATH that records its arguments. `answering`: it succeeds like a live
/// systemd (the unit is active, no main pid); otherwise it fails like a machine without a
/// running systemd. `--version` always answers.
fn fake_systemctl(env: &TestEnv, answering: bool) -> PathBuf {
    let log = env.home.path().join("systemctl.log");
    let rest = if answering {
        "case \"$*\" in\n  *is-active*) echo active ;;\n  *show*) echo 0 ;;\nesac\nexit 0\n"
    } else {
        "echo 'Failed to connect to bus: No medium found' >&2\nexit 1\n"
    };
    let script = format!(
        "#!/bin/sh\necho \"$*\" >> '{}'\nif [ \"$1\" = --version ]; then echo 'systemd 255 (255.4-1)'; exit 0; fi\n{rest}",
        log.display()
    );
    let path = env.bin_dir.join("systemctl");
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    log
}

fn recorded_calls(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}

/// The text between `# <path…suffix> (mode …)` and the next blank-line-separated header.
fn section<'a>(out: &'a str, suffix: &str) -> &'a str {
    let start = out
        .find(&format!("{suffix} (mode"))
        .unwrap_or_else(|| panic!("no {suffix} section in:\n{out}"));
    let body = &out[start..];
    let body = &body[body.find('\n').unwrap() + 1..];
    let end = body.find("\n\n# ").unwrap_or(body.len());
    &body[..end]
}

/// A daemon started in the background by `openclawd start`/`restart`: killed (with its
/// Ollama) if the test ends early.
struct Background {
    pid: i32,
    state: PathBuf,
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid), Signal::SIGKILL);
        kill_recorded_ollama(&self.state);
    }
}

/// The pid on the pid file's first line (the second records its start time).
fn pid_file_pid(env: &TestEnv) -> Option<i32> {
    std::fs::read_to_string(env.state.join("openclawd/openclawd.pid"))
        .ok()?
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()
}

/// Whether a test's precondition (root, a user) holds. CI provides them all, so under
/// `CI=true` a missing one fails the test instead of letting it pass unchecked; elsewhere the
/// test says what it did not run.
fn precondition(holds: bool, what: &str) -> bool {
    if !holds {
        assert!(
            std::env::var("CI").map_or(true, |v| v != "true"),
            "CI=true but this test's precondition is missing: {what}"
        );
        eprintln!("not run here: {what}");
    }
    holds
}

fn status_of(env: &TestEnv) -> Option<Value> {
    let (code, body) = http_get(&format!("{}/status", env.gateway_base()))?;
    (code == 200).then(|| serde_json::from_str(&body).ok())?
}

fn wait_status(env: &TestEnv, what: &str, cond: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = None;
    while Instant::now() < deadline {
        if let Some(st) = status_of(env) {
            if cond(&st) {
                return st;
            }
            last = Some(st);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!(
        "timed out waiting for: {what}\nlast status: {last:?}\nbackground log:\n{}",
        std::fs::read_to_string(env.state.join("logs/openclawd.log")).unwrap_or_default()
    );
}

fn owned_ollama_running(st: &Value) -> bool {
    st["ollama"]["state"] == "running" && st["ollama"]["management"] == "owned"
}

// ---- install / uninstall ----------------------------------------------------------------

#[test]
fn install_dry_run_renders_a_notify_unit_and_a_plist_with_absolute_paths_and_no_secrets() {
    let env = fixture_env();
    fake_systemctl(&env, true);

    let (code, out, err) = env.cli(&["install", "--dry-run"]);
    assert!(code.success(), "{out}{err}");
    let unit = section(&out, "openclawd.service");
    let env_path = env_file(&env).display().to_string();
    for line in [
        "Type=notify".to_string(),
        format!("ExecStart={} run", openclawd_abs()),
        format!("EnvironmentFile={env_path}"),
        "Restart=always".into(),
        "RestartSteps=6".into(),
        "RestartMaxDelaySec=60s".into(),
        "KillMode=process".into(),
        "TimeoutStopSec=30s".into(),
        "WantedBy=default.target".into(),
    ] {
        assert!(unit.lines().any(|l| l == line), "{line} missing:\n{unit}");
    }
    systemd_analyze_verify(unit);
    // The env file shows which variables it carries, never their values.
    let shown_env = section(&out, "service.env");
    assert!(
        shown_env.contains("ANTHROPIC_API_KEY=<secret"),
        "{shown_env}"
    );
    assert!(shown_env.contains("OLLAMA_API_KEY=<secret"), "{shown_env}");
    assert!(shown_env.contains(&format!("OLLAMA_HOST='127.0.0.1:{}'", env.ollama_port)));
    for secret in [SECRET, "sk-or-service-test", "gw-service-token"] {
        assert!(!out.contains(secret), "{secret} printed:\n{out}");
    }
    assert!(out.contains("systemctl --user daemon-reload"));
    assert!(out.contains("systemctl --user enable --now openclawd.service"));
    // Nothing written, nothing but the version query run.
    assert!(!unit_path(&env).exists());
    assert!(!env_file(&env).exists());
    assert_eq!(
        recorded_calls(&env.home.path().join("systemctl.log")),
        vec!["--version"]
    );

    let (code, out, err) = env.cli(&["install", "--dry-run", "--manager", "launchd"]);
    assert!(code.success(), "{out}{err}");
    let plist_text = section(&out, "ai.openclaw.openclawd.plist");
    let plist = parse_plist(plist_text);
    assert_eq!(plist["Label"], "ai.openclaw.openclawd");
    let args: Vec<&str> = plist["ProgramArguments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(args[0], "/bin/sh");
    assert_eq!(args[3], env_path);
    assert_eq!(args[4], openclawd_abs());
    assert!(args
        .iter()
        .all(|a| !a.starts_with('/') || Path::new(a).is_absolute()));
    assert_eq!(plist["RunAtLoad"], true);
    assert_eq!(plist["KeepAlive"], true);
    let log = env.state.join("logs/openclawd.log").display().to_string();
    assert_eq!(plist["StandardOutPath"], log);
    assert_eq!(plist["StandardErrorPath"], log);
    assert!(plist.get("EnvironmentVariables").is_none());
    assert!(!plist_text.contains(SECRET));
    assert!(out.contains("launchctl enable gui/"));
    assert!(out.contains("launchctl bootstrap gui/"));
    assert!(!env.home.path().join("Library").exists());
}

/// systemd's own checker, where it is installed (it works without a running systemd).
fn systemd_analyze_verify(unit: &str) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("openclawd.service");
    std::fs::write(&file, unit).unwrap();
    match Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&file)
        .output()
    {
        Ok(out) => assert!(
            out.status.success(),
            "systemd-analyze verify rejects the unit: {}\n{unit}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => {
            precondition(
                false,
                &format!("systemd-analyze ({e}); unit not verified by systemd"),
            );
        }
    }
}

/// Parses a plist with Python's plistlib (a real plist parser) into JSON.
fn parse_plist(text: &str) -> Value {
    let mut child = Command::new("python3")
        .args([
            "-c",
            "import json, plistlib, sys; print(json.dumps(plistlib.loads(sys.stdin.buffer.read())))",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 to validate the plist");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "not a valid plist: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The sh wrapper the plist runs really sources the env file and execs openclawd.
#[test]
fn the_launchd_wrapper_gives_openclawd_the_env_file() {
    let env = fixture_env();
    let (_, out, _) = env.cli(&["install", "--dry-run", "--manager", "launchd"]);
    let plist = parse_plist(section(&out, "ai.openclaw.openclawd.plist"));
    let script = plist["ProgramArguments"][2].as_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let envf = dir.path().join("service.env");
    std::fs::write(&envf, "GREETING='it'\\''s here'\n").unwrap();
    let fake = dir.path().join("fake-openclawd");
    std::fs::write(&fake, "#!/bin/sh\necho \"$GREETING|$*\"\n").unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = Command::new("/bin/sh")
        .args(["-c", script])
        .arg(&envf)
        .arg(&fake)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "it's here|run\n");
}

#[test]
fn install_writes_files_with_private_env_and_uninstall_removes_them_when_systemd_does_not_answer() {
    let env = fixture_env();
    let calls = fake_systemctl(&env, false);

    let (code, out, err) = env.cli(&["install"]);
    assert_eq!(code.code(), Some(1), "{out}{err}");
    assert!(
        err.contains("systemctl --user daemon-reload")
            && err.contains("systemctl --user enable --now openclawd.service"),
        "the commands to run are named:\n{err}"
    );
    assert!(err.contains("Failed to connect to bus"), "{err}");

    let unit = std::fs::read_to_string(unit_path(&env)).unwrap();
    assert_eq!(mode(&unit_path(&env)), 0o644);
    assert!(unit.contains("Type=notify"));
    assert!(unit.contains(&format!("ExecStart={} run", openclawd_abs())));
    assert!(unit.contains(&format!("EnvironmentFile={}", env_file(&env).display())));
    assert_eq!(mode(&env_file(&env)), 0o600);
    let vars = std::fs::read_to_string(env_file(&env)).unwrap();
    assert!(
        vars.contains(&format!("ANTHROPIC_API_KEY='{SECRET}'")),
        "{vars}"
    );
    assert!(vars.contains("OPENROUTER_API_KEY='sk-or-service-test'"));
    assert!(vars.contains("OPENCLAW_GATEWAY_TOKEN='gw-service-token'"));
    assert!(vars.contains("OLLAMA_API_KEY='ollama-local'"));
    assert!(vars.contains(&format!("OPENCLAW_STATE_DIR='{}'", env.state.display())));
    assert!(vars.contains(&format!("PATH='{}:", env.bin_dir.display())));
    assert!(
        !vars.contains("\nHOME="),
        "only what openclawd and Ollama read"
    );
    for secret in [SECRET, "sk-or-service-test", "gw-service-token"] {
        assert!(!unit.contains(secret), "{secret} inline in the unit");
    }
    assert_eq!(
        recorded_calls(&calls),
        vec![
            "--version",
            "--user is-active openclawd.service",
            "--user daemon-reload"
        ]
    );

    let (code, out, err) = env.cli(&["uninstall"]);
    assert_eq!(code.code(), Some(1), "{out}{err}");
    assert!(
        err.contains("systemctl --user disable --now openclawd.service"),
        "{err}"
    );
    assert!(!unit_path(&env).exists());
    assert!(!env_file(&env).exists());
    assert!(out.contains("removed"), "{out}");
}

#[test]
fn with_an_answering_systemd_install_loads_the_unit_and_start_stop_restart_go_through_it() {
    let env = fixture_env();
    let calls = fake_systemctl(&env, true);

    let (code, out, err) = env.cli(&["install"]);
    assert!(code.success(), "{out}{err}");
    assert!(
        out.contains("loginctl enable-linger"),
        "linger hint:\n{out}"
    );
    let c = recorded_calls(&calls);
    let reload = c.iter().position(|l| l == "--user daemon-reload").unwrap();
    let enable = c
        .iter()
        .position(|l| l == "--user enable --now openclawd.service")
        .unwrap();
    assert!(reload < enable, "{c:?}");

    let (code, out, err) = env.cli(&["start"]);
    assert!(code.success(), "{out}{err}");
    assert!(out.contains("runs under systemd"), "says so:\n{out}");
    assert!(recorded_calls(&calls).contains(&"--user start openclawd.service".to_string()));
    let (code, out, _) = env.cli(&["stop"]);
    assert!(code.success());
    assert!(out.contains("runs under systemd"), "{out}");
    assert!(recorded_calls(&calls).contains(&"--user stop openclawd.service".to_string()));
    let (code, out, _) = env.cli(&["restart"]);
    assert!(code.success());
    assert!(out.contains("runs under systemd"), "{out}");
    assert!(recorded_calls(&calls).contains(&"--user restart openclawd.service".to_string()));
    assert!(pid_file_pid(&env).is_none(), "nothing ran outside systemd");

    let (code, out, err) = env.cli(&["uninstall"]);
    assert!(code.success(), "{out}{err}");
    let c = recorded_calls(&calls);
    assert!(c.contains(&"--user disable --now openclawd.service".to_string()));
    assert_eq!(c.last().unwrap(), "--user daemon-reload");
    assert!(!unit_path(&env).exists() && !env_file(&env).exists());
}

// ---- start / stop / restart ----------------------------------------------------------------

#[test]
fn start_backgrounds_the_daemon_with_a_pid_file_and_stop_ends_it_and_its_ollama() {
    let env = TestEnv::new();
    let (code, out, err) = env.cli(&["start"]);
    assert!(code.success(), "{out}{err}");
    let pid = pid_file_pid(&env).expect("pid file");
    let _guard = Background {
        pid,
        state: env.state.clone(),
    };
    assert!(out.contains(&format!("pid {pid}")), "{out}");
    assert!(pid_alive(pid), "the daemon outlives the `start` command");
    // Detached: its own session, not the test's.
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    assert_eq!(fields[3], pid.to_string(), "session leader: {stat}");

    let st = wait_status(&env, "owned Ollama running", owned_ollama_running);
    assert_eq!(st["daemon"]["pid"], pid);
    let ollama_pid = st["ollama"]["pid"].as_i64().unwrap() as i32;
    let (code, _, _) = env.cli(&["status"]);
    assert_ne!(code.code(), Some(3), "status sees the background daemon");
    assert!(
        std::fs::read_to_string(env.state.join("logs/openclawd.log"))
            .unwrap()
            .contains("gateway listening")
    );

    let (code, out, _) = env.cli(&["start"]);
    assert!(code.success());
    assert!(out.contains("already running"), "{out}");
    assert_eq!(pid_file_pid(&env), Some(pid));

    let (code, out, err) = env.cli(&["stop"]);
    assert!(code.success(), "{out}{err}");
    assert!(
        out.contains(&format!("stopped openclawd (pid {pid})")),
        "{out}"
    );
    assert!(!pid_alive(pid));
    wait_for(Duration::from_secs(10), "its Ollama exits", || {
        !pid_alive(ollama_pid)
    });
    assert!(pid_file_pid(&env).is_none());
    assert!(!env.state.join("openclawd/ollama.json").exists());
    let (code, _, _) = env.cli(&["status"]);
    assert_eq!(code.code(), Some(3));
}

#[test]
fn stop_without_a_daemon_still_stops_the_ollama_it_had_started() {
    let env = TestEnv::new();
    let mut d = env.start();
    let st = d.wait_until(
        "owned Ollama",
        Duration::from_secs(30),
        owned_ollama_running,
    );
    let ollama_pid = st["ollama"]["pid"].as_i64().unwrap() as i32;
    // A crash: the daemon is gone, its Ollama keeps running, recorded in ollama.json.
    d.signal(Signal::SIGKILL);
    d.wait_exit(Duration::from_secs(10));
    assert!(pid_alive(ollama_pid));

    let (code, out, err) = env.cli(&["stop"]);
    assert!(code.success(), "{out}{err}");
    assert!(
        out.contains(&format!(
            "stopped the Ollama it had started (pid {ollama_pid}"
        )),
        "{out}"
    );
    wait_for(Duration::from_secs(15), "the recorded Ollama exits", || {
        !pid_alive(ollama_pid)
    });
    assert!(!env.state.join("openclawd/ollama.json").exists());

    let (code, out, _) = env.cli(&["stop"]);
    assert!(code.success());
    assert!(out.contains("not running"), "{out}");
}

#[test]
fn upgrade_restart_hands_over_and_the_new_instance_keeps_the_same_warm_ollama() {
    let env = TestEnv::new();
    let mut a = env.start();
    let st = a.wait_until(
        "owned Ollama",
        Duration::from_secs(30),
        owned_ollama_running,
    );
    let ollama_pid = st["ollama"]["pid"].clone();
    assert_eq!(st["ollama"]["restarts"], 0);

    // `openclawd restart`: B starts with --takeover, A gets SIGUSR2 and hands over.
    let (code, out, err) = env.cli(&["restart"]);
    assert!(code.success(), "{out}{err}\nA's log:\n{}", a.log_text());
    let a_exit = a.wait_exit(Duration::from_secs(30));
    assert!(a_exit.success(), "A exits 0 after the handover: {a_exit:?}");
    assert!(a.log_text().contains("handing over"), "{}", a.log_text());
    let b = pid_file_pid(&env).expect("B's pid file");
    let _guard_b = Background {
        pid: b,
        state: env.state.clone(),
    };
    assert_ne!(b, a.pid());
    assert!(out.contains(&format!("handed over to pid {b}")), "{out}");
    let st = wait_status(&env, "B serves with the owned Ollama", |s| {
        s["daemon"]["pid"] == b && owned_ollama_running(s)
    });
    assert_eq!(
        st["ollama"]["pid"], ollama_pid,
        "the same Ollama, taken back"
    );
    assert_eq!(st["ollama"]["restarts"], 0, "not restarted");

    // Starting the new binary by hand with --takeover does the same.
    let c = env.start_with(&["run", "--takeover"]);
    let st = wait_status(&env, "C serves", |s| {
        s["daemon"]["pid"] == c.pid() && owned_ollama_running(s)
    });
    assert_eq!(st["ollama"]["pid"], ollama_pid);
    assert_eq!(st["ollama"]["restarts"], 0);
    wait_for(Duration::from_secs(30), "B exits", || !pid_alive(b));

    let (code, out, _) = env.cli(&["stop"]);
    assert!(code.success(), "{out}");
    let opid = ollama_pid.as_i64().unwrap() as i32;
    wait_for(
        Duration::from_secs(15),
        "Ollama stops with the last openclawd",
        || !pid_alive(opid),
    );
}

// ---- sd_notify ----------------------------------------------------------------------------

/// Receives datagrams on a socket the test binds, like systemd's notify socket.
struct NotifySocket {
    path: PathBuf,
    messages: Arc<Mutex<Vec<(String, bool)>>>,
}

impl NotifySocket {
    /// Records every message, and for each whether the gateway port accepted a connection at
    /// the moment it arrived.
    fn bind(dir: &Path, gateway_port: u16) -> NotifySocket {
        let path = dir.join("notify.sock");
        let sock = UnixDatagram::bind(&path).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let messages = Arc::new(Mutex::new(Vec::new()));
        let m = messages.clone();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 4096];
            loop {
                match sock.recv(&mut buf) {
                    Ok(n) => {
                        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                        let accepts = TcpStream::connect(("127.0.0.1", gateway_port)).is_ok();
                        m.lock().unwrap().push((text, accepts));
                    }
                    Err(e)
                        if e.kind() == std::io::ErrorKind::WouldBlock
                            || e.kind() == std::io::ErrorKind::TimedOut =>
                    {
                        if Arc::strong_count(&m) == 1 {
                            return;
                        }
                    }
                    Err(_) => return,
                }
            }
        });
        NotifySocket { path, messages }
    }

    fn all(&self) -> Vec<(String, bool)> {
        self.messages.lock().unwrap().clone()
    }

    fn wait_for(&self, what: &str, pred: impl Fn(&str) -> bool) -> (String, bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(m) = self.all().into_iter().find(|(t, _)| pred(t)) {
                return m;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("no {what} message; got {:?}", self.all());
    }
}

#[test]
fn ready_arrives_once_the_port_accepts_then_reloads_watchdog_and_stopping_follow() {
    let env = TestEnv::new();
    let notify = NotifySocket::bind(env.home.path(), env.gateway_port);

    // Like systemd: NOTIFY_SOCKET, and WATCHDOG_USEC with WATCHDOG_PID naming the service
    // (`exec` keeps the shell's pid).
    let log = env.home.path().join("openclawd-notify.log");
    let mut cmd = Command::new("/bin/sh");
    cmd.args(["-c", "WATCHDOG_PID=$$ exec \"$0\" run"])
        .arg(openclawd_bin())
        .env_clear();
    for (k, v) in env.envs() {
        cmd.env(k, v);
    }
    cmd.env("NOTIFY_SOCKET", &notify.path)
        .env("WATCHDOG_USEC", "400000")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    let mut d = Daemon {
        child: cmd.spawn().unwrap(),
        base: env.gateway_base(),
        log,
        state: env.state.clone(),
        token: None,
    };

    let (ready, accepted) = notify.wait_for("READY=1", |t| t.lines().any(|l| l == "READY=1"));
    assert!(
        accepted,
        "READY=1 came before the port accepted connections"
    );
    assert!(ready.contains("STATUS=listening on"), "{ready}");
    // Waiting for the owned Ollama also means it is recorded, so the harness can clean it up.
    d.wait_until("up", Duration::from_secs(30), owned_ollama_running);
    notify.wait_for("a STATUS= line with Ollama's state", |t| {
        t.contains("STATUS=listening on") && t.contains("Ollama running (owned, 0.32.15)")
    });

    let pings = || {
        notify
            .all()
            .iter()
            .filter(|(t, _)| t == "WATCHDOG=1\n")
            .count()
    };
    wait_for(Duration::from_secs(10), "two watchdog pings", || {
        pings() >= 2
    });

    env.write_config("{ agents: { defaults: { model: 'ollama/llama3.2:3b' } } }");
    let (reloading, _) = notify.wait_for("RELOADING=1", |t| t.contains("RELOADING=1"));
    let usec = reloading
        .lines()
        .find_map(|l| l.strip_prefix("MONOTONIC_USEC="))
        .expect("MONOTONIC_USEC with RELOADING=1");
    assert!(usec.parse::<u64>().unwrap() > 0);
    let idx = |pred: &dyn Fn(&str) -> bool| notify.all().iter().position(|(t, _)| pred(t));
    wait_for(Duration::from_secs(10), "READY=1 after the reload", || {
        let r = idx(&|t: &str| t.contains("RELOADING=1")).unwrap();
        notify.all()[r + 1..].iter().any(|(t, _)| t == "READY=1\n")
    });

    d.signal(Signal::SIGTERM);
    notify.wait_for("STOPPING=1", |t| t.lines().any(|l| l == "STOPPING=1"));
    assert!(d.wait_exit(Duration::from_secs(30)).success());
}

/// The same socket, with NOTIFY_SOCKET pointing at it and then without: the first run proves
/// the socket receives, so the silence of the second is the daemon's.
#[test]
fn without_notify_socket_nothing_is_sent_and_the_daemon_runs_as_usual() {
    let env = TestEnv::new();
    let notify = NotifySocket::bind(env.home.path(), env.gateway_port);
    let run = |socket: Option<&Path>| {
        let log = env.home.path().join(format!("notify-{}.log", free_port()));
        let mut cmd = Command::new(openclawd_bin());
        cmd.arg("run").env_clear();
        for (k, v) in env.envs() {
            cmd.env(k, v);
        }
        if let Some(p) = socket {
            cmd.env("NOTIFY_SOCKET", p);
        }
        let mut d = Daemon {
            child: cmd
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .unwrap(),
            base: env.gateway_base(),
            log,
            state: env.state.clone(),
            token: None,
        };
        d.wait_until("up", Duration::from_secs(30), owned_ollama_running);
        d.signal(Signal::SIGTERM);
        assert!(d.wait_exit(Duration::from_secs(30)).success());
        assert!(
            !d.log_text().contains("sd_notify failed"),
            "{}",
            d.log_text()
        );
    };
    run(Some(&notify.path));
    notify.wait_for("READY=1 from the run with NOTIFY_SOCKET", |t| {
        t.lines().any(|l| l == "READY=1")
    });
    notify.wait_for("STOPPING=1", |t| t.lines().any(|l| l == "STOPPING=1"));
    let before = notify.all().len();
    run(None);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        notify.all()[before..],
        [],
        "messages arrived without NOTIFY_SOCKET"
    );
}

// ---- doctor -------------------------------------------------------------------------------

fn doctor(env: &TestEnv) -> (i32, BTreeMap<String, Value>, String) {
    let (code, out, err) = env.cli(&["doctor", "--json"]);
    let report: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}{err}"));
    let checks = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["id"].as_str().unwrap().to_string(), c.clone()))
        .collect();
    let (_, human, _) = env.cli(&["doctor"]);
    (code.code().unwrap(), checks, human)
}

fn assert_fails(checks: &BTreeMap<String, Value>, id: &str, detail: &str, fix: &str) {
    let c = &checks[id];
    assert_eq!(c["status"], "fail", "{id}: {c}");
    assert!(
        c["detail"].as_str().unwrap().contains(detail),
        "{id} detail: {c}"
    );
    assert!(c["fix"].as_str().unwrap().contains(fix), "{id} fix: {c}");
}

#[test]
fn doctor_names_a_missing_ollama_binary_and_how_to_install_it() {
    let mut env = TestEnv::new();
    let missing = env.home.path().join("nowhere/ollama");
    env.extra_env
        .push(("OPENCLAWD_OLLAMA_BIN".into(), missing.display().to_string()));
    let (code, checks, human) = doctor(&env);
    assert_eq!(code, 1);
    assert_fails(
        &checks,
        "ollama_binary",
        &format!("{} does not exist", missing.display()),
        "install Ollama",
    );
    assert!(human.contains("✗ Ollama binary"), "{human}");
    assert!(human.contains("fix: install Ollama"), "{human}");
}

#[test]
fn doctor_names_a_proxy_that_would_capture_loopback_and_the_no_proxy_fix() {
    let mut env = TestEnv::new();
    env.extra_env.push((
        "HTTP_PROXY".into(),
        "http://user:pw@proxy.invalid:3128".into(),
    ));
    let (code, checks, _) = doctor(&env);
    assert_eq!(code, 1);
    assert_fails(
        &checks,
        "proxy",
        "HTTP_PROXY=http://***@proxy.invalid:3128",
        "NO_PROXY=127.0.0.1,localhost,::1",
    );
    assert!(
        !checks["proxy"].to_string().contains("pw@"),
        "credentials masked"
    );

    env.extra_env
        .push(("NO_PROXY".into(), "localhost,127.0.0.1,::1".into()));
    let (_, checks, _) = doctor(&env);
    assert_eq!(checks["proxy"]["status"], "ok");
}

#[test]
fn doctor_names_a_broken_config_with_file_and_line() {
    let env = TestEnv::new();
    env.write_config("{\n  agents: {\n    defaults: { model: \"ollama/x\" \n  },\n}\n");
    let (code, checks, _) = doctor(&env);
    assert_eq!(code, 1);
    let file = env.config_path().display().to_string();
    let c = &checks["config"];
    assert_eq!(c["status"], "fail", "{c}");
    let detail = c["detail"].as_str().unwrap();
    let at = format!("{file}:");
    assert!(detail.contains(&at), "{detail}");
    let after = &detail[detail.find(&at).unwrap() + at.len()..];
    assert!(
        after.starts_with(|ch: char| ch.is_ascii_digit()),
        "a line number: {detail}"
    );
    assert!(
        c["fix"]
            .as_str()
            .unwrap()
            .contains(&format!("edit {file}:")),
        "{c}"
    );
}

#[test]
fn doctor_names_a_client_server_version_mismatch_with_the_exact_restart_command() {
    let mut env = TestEnv::new();
    env.extra_env
        .push(("OLLAMA_API_KEY".into(), "ollama-local".into()));
    let mut server = env.start_ollama_by_hand();
    env.install_ollama("0.33.1");
    let (code, checks, _) = doctor(&env);
    // SIGTERM, not SIGKILL: the double then stops its runner too.
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(server.id() as i32),
        Signal::SIGTERM,
    );
    let _ = server.wait();
    assert_eq!(code, 1);
    assert_fails(
        &checks,
        "ollama_version",
        "the server runs 0.32.15 but the installed binary is 0.33.1",
        &format!("kill {} && openclawd start", server.id()),
    );
    assert_eq!(checks["ollama_server"]["status"], "ok");
    assert_eq!(checks["models"]["status"], "ok", "{}", checks["models"]);
    assert_eq!(checks["tools_models"]["status"], "ok");
    assert_eq!(checks["ollama_auth"]["status"], "ok");
}

#[test]
fn doctor_names_oversized_sessions_and_changes_nothing() {
    let env = TestEnv::new();
    env.write_own_settings("{ sessions: { maxBytes: 1000 } }");
    let path = env.state.join("agents/main/sessions/sessions.json");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let text = std::fs::read_to_string(fixture("openclaw/sessions.json"))
        .unwrap()
        .replace("\"totalTokens\": 40211", "\"totalTokens\": 131072");
    std::fs::write(&path, &text).unwrap();

    let (code, checks, human) = doctor(&env);
    assert_eq!(code, 1);
    assert_fails(
        &checks,
        "sessions",
        &format!(
            "{}: {:.1} KiB of 1000 B allowed",
            path.display(),
            text.len() as f64 / 1024.0
        ),
        "openclawd sessions --prune-now",
    );
    assert!(checks["sessions"]["detail"]
        .as_str()
        .unwrap()
        .contains("1 overflowing"));
    assert!(human.contains("✗ sessions files size"), "{human}");
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        text,
        "doctor only reads"
    );
}

#[test]
fn doctor_with_a_healthy_running_stack_reports_the_port_as_ours_and_the_service_state() {
    let mut env = TestEnv::new();
    env.extra_env
        .push(("OLLAMA_API_KEY".into(), "ollama-local".into()));
    let d = env.start();
    d.wait_until(
        "owned Ollama",
        Duration::from_secs(30),
        owned_ollama_running,
    );
    let (_, checks, _) = doctor(&env);
    for id in [
        "config",
        "daemon",
        "ollama_binary",
        "ollama_server",
        "ollama_version",
        "models",
        "tools_models",
        "ollama_auth",
        "proxy",
        "sessions",
    ] {
        assert!(
            checks[id]["status"] == "ok" || (id == "config" && checks[id]["status"] == "warn"),
            "{id}: {}",
            checks[id]
        );
    }
    assert_eq!(checks["port"]["status"], "ok");
    assert!(checks["port"]["detail"]
        .as_str()
        .unwrap()
        .contains(&format!("openclawd's (pid {})", d.pid())));
    assert_eq!(checks["service"]["status"], "warn");
    assert_eq!(checks["service"]["fix"], "openclawd install");
}

// ---- packaging ----------------------------------------------------------------------------

#[test]
fn man_pages_and_completions_come_from_the_clap_definitions() {
    let env = TestEnv::new();
    let (code, out, _) = env.cli(&["manpage"]);
    assert!(code.success());
    assert!(out.contains(".TH openclawd"), "{out}");
    assert!(out.contains("doctor"));
    let dir = env.home.path().join("man");
    let (code, _, err) = env.cli(&["manpage", "--dir", dir.to_str().unwrap()]);
    assert!(code.success(), "{err}");
    for page in ["openclawd.1", "openclawd-install.1", "openclawd-doctor.1"] {
        assert!(dir.join(page).exists(), "{page}");
    }
    let (code, out, _) = env.cli(&["completions", "bash"]);
    assert!(code.success());
    assert!(out.contains("install") && out.contains("doctor"));
}

/// Under systemd, `restart` is a handover too: SIGUSR2 to the unit's main process, then a
/// start. This `systemctl` plays systemd for openclawd.service: it reports the main pid from
/// the pid file, delivers the signal, and starts `openclawd run` like `ExecStart=` would.
#[test]
fn restart_under_systemd_hands_over_through_it_and_keeps_the_same_ollama() {
    let env = TestEnv::new();
    let calls = env.home.path().join("systemctl.log");
    let pid_file = env.state.join("openclawd/openclawd.pid");
    let script = format!(
        r#"#!/bin/sh
echo "$*" >> '{calls}'
case "$*" in
  *is-active*) echo active ;;
  *show*) head -n1 '{pid_file}' 2>/dev/null || echo 0 ;;
  *kill*SIGUSR2*) kill -USR2 "$(head -n1 '{pid_file}')" ;;
  *start*) '{exe}' run >> '{log}' 2>&1 < /dev/null & ;;
esac
exit 0
"#,
        calls = calls.display(),
        pid_file = pid_file.display(),
        exe = openclawd_abs(),
        log = env.home.path().join("unit.log").display(),
    );
    std::fs::write(env.bin_dir.join("systemctl"), script).unwrap();
    std::fs::set_permissions(
        env.bin_dir.join("systemctl"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    std::fs::create_dir_all(unit_path(&env).parent().unwrap()).unwrap();
    std::fs::write(unit_path(&env), "[Service]\nType=notify\n").unwrap();

    let mut a = env.start();
    let st = a.wait_until(
        "owned Ollama",
        Duration::from_secs(30),
        owned_ollama_running,
    );
    let ollama_pid = st["ollama"]["pid"].clone();

    let (code, out, err) = env.cli(&["restart"]);
    let b = pid_file_pid(&env);
    let _guard = b.map(|pid| Background {
        pid,
        state: env.state.clone(),
    });
    assert!(code.success(), "{out}{err}");
    assert!(out.contains("restarted through systemd"), "says so: {out}");
    assert!(a.wait_exit(Duration::from_secs(30)).success());
    let b = b.unwrap();
    assert_ne!(b, a.pid());
    let c = recorded_calls(&calls);
    let kill = c
        .iter()
        .position(|l| l == "--user kill --kill-whom=main --signal=SIGUSR2 openclawd.service")
        .unwrap_or_else(|| panic!("{c:?}"));
    let start = c
        .iter()
        .position(|l| l == "--user start openclawd.service")
        .unwrap();
    assert!(kill < start, "{c:?}");
    let st = wait_status(&env, "the new instance serves", |s| {
        s["daemon"]["pid"] == b && owned_ollama_running(s)
    });
    assert_eq!(st["ollama"]["pid"], ollama_pid, "the same warm Ollama");
    assert_eq!(st["ollama"]["restarts"], 0);
}

/// `sudo openclawd install --system`: a system unit that runs as the invoking user, with that
/// user's state directory (not root's).
#[test]
fn a_system_install_under_sudo_is_for_the_invoking_user() {
    if !precondition(
        nix::unistd::getuid().is_root(),
        "needs root to simulate sudo",
    ) {
        return;
    }
    let nobody = nix::unistd::User::from_name("nobody").ok().flatten();
    if !precondition(nobody.is_some(), "needs a user `nobody`") {
        return;
    }
    let nobody = nobody.unwrap();
    let mut env = TestEnv::new();
    env.extra_env.push(("SUDO_USER".into(), "nobody".into()));
    // OPENCLAW_STATE_DIR would win over the home directory: this case is about HOME.
    let (code, out, err) = {
        let mut c = Command::new(openclawd_bin());
        c.args(["install", "--dry-run", "--system"]).env_clear();
        for (k, v) in env.envs() {
            if k != "OPENCLAW_STATE_DIR" {
                c.env(k, v);
            }
        }
        let o = c.output().unwrap();
        (
            o.status,
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    assert!(code.success(), "{out}{err}");
    let unit = section(&out, "/etc/systemd/system/openclawd.service");
    assert!(unit.lines().any(|l| l == "User=nobody"), "{unit}");
    assert!(unit.lines().any(|l| l == "WantedBy=multi-user.target"));
    let env_file = nobody.dir.join(".openclaw/openclawd/service.env");
    assert!(
        unit.contains(&format!("EnvironmentFile={}", env_file.display())),
        "{unit}"
    );
    assert!(
        out.contains("\nsystemctl daemon-reload\n"),
        "no --user: {out}"
    );
}

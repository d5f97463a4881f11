//! `/status` is one type: what the daemon serves deserialises into the `StatusReport` the CLI
//! reads, field for field, whatever state the daemon is in; and `openclawd status` is never
//! falsely healthy: each degraded reason gives exit 1 and its own line, once.

mod common;

use std::time::Duration;

use common::*;
use openclawd::gateway::status::{ProblemKind, StatusReport};
use openclawd::ollama::OllamaState;
use serde_json::{json, Value};

/// The three models the double has installed, declared explicitly, the first one primary.
fn explicit_config(env: &TestEnv, primary: Option<&str>) -> String {
    let agents = primary
        .map(|p| format!(", agents: {{ defaults: {{ model: {{ primary: '{p}' }} }} }}"))
        .unwrap_or_default();
    format!(
        "{{ models: {{ providers: {{ ollama: {{ baseUrl: 'http://127.0.0.1:{}', api: 'ollama', models: [
            {{ id: 'llama3.2:3b', name: 'Llama', tools: true }},
            {{ id: 'qwen3-coder:latest', name: 'Qwen', tools: true }},
            {{ id: 'gpt-oss:20b', name: 'GPT-OSS', tools: true }} ] }} }} }}{agents} }}",
        env.ollama_port
    )
}

/// `/status` as served, and as the CLI's type; the type loses nothing of what was served.
fn round_trip(d: &Daemon) -> StatusReport {
    let (code, body) = d.get("/status").expect("/status answers");
    assert_eq!(code, 200, "{body}");
    let served: Value = serde_json::from_str(&body).unwrap();
    let typed: StatusReport = serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("/status does not deserialise into StatusReport: {e}\n{body}"));
    assert_eq!(
        serde_json::to_value(&typed).unwrap(),
        served,
        "StatusReport drops or changes what /status serves"
    );
    typed
}

fn kinds(st: &StatusReport) -> Vec<ProblemKind> {
    st.health.problems.iter().map(|p| p.kind).collect()
}

/// `openclawd status`: exit code and stdout.
fn status_cli(env: &TestEnv) -> (Option<i32>, String) {
    let (code, out, err) = env.cli(&["status"]);
    assert!(!err.contains("panicked"), "{err}");
    (code.code(), out)
}

fn ollama_state(s: &Value) -> &str {
    s["ollama"]["state"].as_str().unwrap_or("")
}

#[test]
fn a_healthy_daemon_round_trips_shows_loaded_models_and_log_paths_and_exits_zero() {
    let env = TestEnv::new();
    env.write_config(&explicit_config(&env, Some("ollama/llama3.2:3b")));
    let d = env.start();
    d.wait_until(
        "Ollama running and the primary available",
        Duration::from_secs(30),
        |s| {
            ollama_state(s) == "running"
                && s["models"].as_array().is_some_and(|ms| {
                    ms.iter()
                        .any(|m| m["ref"] == "ollama/llama3.2:3b" && m["available"] == true)
                })
        },
    );
    let resp = d.chat(
        &json!({"model": "default", "messages": [{"role": "user", "content": "hi"}]}),
        &[],
    );
    assert_eq!(resp.status().as_u16(), 200);
    d.wait_until("the model shows as loaded", Duration::from_secs(10), |s| {
        s["ollama"]["loaded"]
            .as_array()
            .is_some_and(|l| l.iter().any(|m| m["name"] == "llama3.2:3b"))
    });

    let st = round_trip(&d);
    assert!(st.health.healthy, "{:?}", st.health);
    assert_eq!(st.ollama.status.state, OllamaState::Running);
    assert_eq!(st.primary_ref(), Some("ollama/llama3.2:3b"));
    assert!(st.logs.openclawd.ends_with("logs/openclawd.log"));
    assert!(st.logs.ollama.ends_with("logs/ollama.log"));
    let loaded = st.ollama.loaded.as_ref().unwrap();
    let llama = loaded.iter().find(|m| m.name == "llama3.2:3b").unwrap();
    assert!(llama.size > 0 && !llama.expires_at.is_empty(), "{llama:?}");

    let (code, out) = status_cli(&env);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("healthy"), "{out}");
    let line = out
        .lines()
        .find(|l| l.contains("llama3.2:3b ·"))
        .unwrap_or_else(|| panic!("no loaded-model line in\n{out}"));
    assert!(
        line.contains("iB ·") && (line.contains("unloads in") || line.contains("kept loaded")),
        "{line}"
    );
    assert!(
        out.contains(&st.logs.openclawd.display().to_string()),
        "{out}"
    );
    assert!(out.contains(&st.logs.ollama.display().to_string()), "{out}");

    let (code, out, _) = env.cli(&["status", "--json"]);
    assert_eq!(code.code(), Some(0));
    let cli: StatusReport = serde_json::from_str(&out).unwrap();
    assert!(cli.health.healthy);
}

#[test]
fn while_ollama_starts_the_report_round_trips_and_status_says_starting() {
    let mut env = TestEnv::new();
    env.extra_env
        .push(("OLLAMA_DOUBLE_SLOW_START_MS".into(), "8000".into()));
    env.write_config(&explicit_config(&env, Some("ollama/llama3.2:3b")));
    let d = env.start();
    d.wait_until("Ollama starting", Duration::from_secs(10), |s| {
        ollama_state(s) == "starting"
    });
    let st = round_trip(&d);
    assert!(!st.health.healthy);
    assert_eq!(
        kinds(&st),
        [ProblemKind::OllamaNotRunning],
        "{:?}",
        st.health
    );
    let (code, out) = status_cli(&env);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("degraded"), "{out}");
    assert!(out.contains("! Ollama is starting at"), "{out}");
    // The primary waits for Ollama: said once, by the Ollama line.
    assert!(!out.contains("primary model"), "{out}");
}

#[test]
fn a_broken_config_round_trips_and_its_error_is_printed_once() {
    let env = TestEnv::new();
    env.write_config("{\n  agents: {\n    defaults: { model: \"ollama/x\" \n  },\n}\n");
    let d = env.start();
    d.wait_until("config error reported", Duration::from_secs(10), |s| {
        s["config"]["error"].is_string()
    });
    let st = round_trip(&d);
    let err = st.config.error.clone().unwrap();
    assert!(kinds(&st).contains(&ProblemKind::ConfigError));
    let (code, out) = status_cli(&env);
    assert_eq!(code, Some(1), "{out}");
    assert_eq!(out.matches(err.as_str()).count(), 1, "printed once:\n{out}");
    assert!(
        out.contains("Config:") && out.contains("error (see above)"),
        "{out}"
    );
}

#[test]
fn no_primary_an_unroutable_primary_and_a_config_warning_are_each_degraded_with_a_fix() {
    let env = TestEnv::new();
    env.write_config(&explicit_config(&env, None));
    let d = env.start();
    d.wait_until("Ollama running", Duration::from_secs(30), |s| {
        ollama_state(s) == "running"
    });
    let st = round_trip(&d);
    assert_eq!(kinds(&st), [ProblemKind::NoPrimary], "{:?}", st.health);
    let (code, out) = status_cli(&env);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("! no primary model"), "{out}");
    assert!(
        out.contains("fix: set agents.defaults.model.primary"),
        "{out}"
    );

    // A primary nothing provides.
    env.write_config(&explicit_config(&env, Some("ollama/nothere:1b")));
    d.wait_until("the new primary", Duration::from_secs(10), |s| {
        s["routing"]["primary"] == "ollama/nothere:1b"
    });
    let st = round_trip(&d);
    assert_eq!(
        kinds(&st),
        [ProblemKind::PrimaryUnavailable],
        "{:?}",
        st.health
    );
    let (code, out) = status_cli(&env);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("! primary model ollama/nothere:1b is not routable: not in the catalogue"),
        "{out}"
    );
    assert!(out.contains("fix: ollama pull nothere:1b"), "{out}");

    // A config warning: an empty auth-profiles.json (read at the next reload).
    let agent = env.state.join("agents/main/agent");
    std::fs::create_dir_all(&agent).unwrap();
    std::fs::write(agent.join("auth-profiles.json"), "").unwrap();
    env.write_config(&explicit_config(&env, Some("ollama/llama3.2:3b")));
    d.wait_until("the warning", Duration::from_secs(10), |s| {
        s["config"]["warnings"]
            .as_array()
            .is_some_and(|w| !w.is_empty())
    });
    let st = round_trip(&d);
    assert_eq!(kinds(&st), [ProblemKind::ConfigWarning], "{:?}", st.health);
    let (code, out) = status_cli(&env);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("! config warning: ") && out.contains("auth-profiles.json: empty file"),
        "{out}"
    );
}

#[test]
fn installed_models_ignored_without_discovery_are_counted() {
    // No config, no OLLAMA_API_KEY: discovery is not opted in, the double has three models.
    let env = TestEnv::new();
    let d = env.start();
    d.wait_until("the ignored models counted", Duration::from_secs(30), |s| {
        s["discovery"]["ignored_installed"].is_array()
    });
    let st = round_trip(&d);
    assert_eq!(
        st.discovery.ignored_installed.as_ref().map(Vec::len),
        Some(3)
    );
    assert!(kinds(&st).contains(&ProblemKind::ModelsIgnored));
    let (code, out) = status_cli(&env);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("! 3 installed Ollama models ignored")
            && out.contains("discovery is not opted in"),
        "{out}"
    );
    assert!(
        out.contains("fix: set OLLAMA_API_KEY=ollama-local"),
        "{out}"
    );
}

#[test]
fn a_crashing_ollama_and_an_unreachable_one_are_degraded() {
    let env = TestEnv::new();
    env.write_config(&explicit_config(&env, Some("ollama/llama3.2:3b")));
    env.write_control(&json!({"crash_after_requests": 0}));
    let d = env.start();
    // From the second crash in a row a restart waits: when, and which attempt, are said.
    d.wait_until("a restart waiting", Duration::from_secs(30), |s| {
        ollama_state(s) == "restarting" && s["ollama"]["next_restart_at"].is_string()
    });
    let st = round_trip(&d);
    let line = st
        .health
        .problems
        .iter()
        .find(|p| p.kind == ProblemKind::OllamaNotRunning)
        .map(|p| p.message.clone())
        .unwrap_or_else(|| panic!("{:?}", st.health));
    let attempt = st.ollama.status.restart_attempt.unwrap();
    assert!(
        line.starts_with("Ollama is restarting in ")
            && line.contains(&format!(" s (attempt {attempt}, ")),
        "{line}"
    );
    let (code, out) = status_cli(&env);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("! Ollama is restarting"), "{out}");
    // It keeps crashing: openclawd stops trying and says what to do.
    d.wait_until("crash_loop", Duration::from_secs(60), |s| {
        ollama_state(s) == "crash_loop"
    });
    let st = round_trip(&d);
    assert_eq!(st.ollama.status.state, OllamaState::CrashLoop);
    let (code, out) = status_cli(&env);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("! Ollama is in a crash loop ("), "{out}");
    assert!(out.contains("fix: see `openclawd logs --ollama`"), "{out}");
    drop(d);

    let env = TestEnv::new();
    env.write_own_settings("{ ollama: { manage: false } }");
    env.write_config(&explicit_config(&env, Some("ollama/llama3.2:3b")));
    let d = env.start();
    d.wait_until("Ollama unreachable", Duration::from_secs(30), |s| {
        ollama_state(s) == "unreachable"
    });
    round_trip(&d);
    let (code, out) = status_cli(&env);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("! Ollama is unreachable at http://127.0.0.1:"),
        "{out}"
    );
}

#[test]
fn a_changed_listen_address_is_a_pending_restart() {
    let env = TestEnv::new();
    env.write_config(&explicit_config(&env, Some("ollama/llama3.2:3b")));
    let d = env.start();
    d.wait_until("healthy", Duration::from_secs(30), |s| {
        s["health"]["healthy"] == true
    });
    // lan needs a token; the CLI reads it from the same config.
    let base = explicit_config(&env, Some("ollama/llama3.2:3b"));
    let with_bind = format!(
        "{}, gateway: {{ bind: 'lan', auth: {{ token: 'status-test-token' }} }} }}",
        base.trim_end().trim_end_matches('}')
    );
    env.write_config(&with_bind);
    wait_for(Duration::from_secs(10), "the pending restart", || {
        let (code, out) = status_cli(&env);
        code == Some(1) && out.contains("! restart pending")
    });
    let (_, out) = status_cli(&env);
    assert!(
        out.contains(&format!(
            "the config asks to listen on 0.0.0.0:{}, the gateway is bound to 127.0.0.1:{}",
            env.gateway_port, env.gateway_port
        )),
        "{out}"
    );
    assert!(out.contains("fix: openclawd restart"), "{out}");

    // Asked at another port than the one it is bound to: running, not "not running".
    let other = free_port().to_string();
    let (code, out, err) = env.cli(&["status", "--port", &other]);
    assert_eq!(code.code(), Some(1), "{out}{err}");
    assert!(
        err.contains(&format!(
            "openclawd (pid {}) is running but nothing answers at http://127.0.0.1:{other}/status",
            d.pid()
        )),
        "{err}"
    );
}

/// Runs `args` with stdout a pipe whose reader is already gone: the first write meets EPIPE.
fn run_into_closed_pipe(env: &TestEnv, args: &[&str]) -> (std::process::ExitStatus, String) {
    let (reader, writer) = nix::unistd::pipe().unwrap();
    drop(reader);
    let mut c = std::process::Command::new(openclawd_bin());
    c.args(args).env_clear().envs(env.envs());
    let out = c
        .stdout(std::process::Stdio::from(writer))
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `openclawd <args> | head -c1` in bash with pipefail: openclawd's own exit as the shell sees it.
fn piped_into_head(env: &TestEnv, args: &str) -> (Option<i32>, String) {
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            "set -o pipefail; '{}' {args} | head -c1 >/dev/null",
            openclawd_bin().display()
        ))
        .env_clear()
        .envs(env.envs())
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn every_printing_command_ends_quietly_when_its_reader_goes_away() {
    use std::os::unix::process::ExitStatusExt;
    let env = TestEnv::new();
    env.write_config(&explicit_config(&env, Some("ollama/llama3.2:3b")));
    let d = env.start();
    d.wait_until("Ollama running", Duration::from_secs(30), |s| {
        ollama_state(s) == "running"
    });
    let commands: [&[&str]; 6] = [
        &["completions", "bash"],
        &["doctor"],
        &["status"],
        &["models", "--json"],
        &["sessions", "--json"],
        &["status", "--json"],
    ];
    for args in commands {
        let (status, err) = run_into_closed_pipe(&env, args);
        assert!(
            status.code() == Some(0) || status.signal() == Some(libc::SIGPIPE),
            "{args:?} into a closed pipe: {status:?}\n{err}"
        );
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        let (code, err) = piped_into_head(&env, &args.join(" "));
        // 0 when it finished writing before head left, 141 (128 + SIGPIPE) otherwise; `status`
        // and `doctor` say degraded/failure with 1 when the stack is not perfect.
        assert!(
            matches!(code, Some(0) | Some(1) | Some(141)),
            "{args:?} | head -c1: {code:?}\n{err}"
        );
        assert!(!err.contains("panicked"), "{args:?} | head -c1: {err}");
    }
}

#[test]
fn start_and_restart_report_ollamas_real_state() {
    let env = TestEnv::new();
    env.write_config(&explicit_config(&env, Some("ollama/llama3.2:3b")));
    let (code, out, err) = env.cli(&["start"]);
    assert!(code.success(), "{out}{err}");
    assert!(
        out.contains("Ollama running, started by openclawd (pid "),
        "{out}"
    );
    let status = |env: &TestEnv| -> StatusReport {
        let (_, out, _) = env.cli(&["status", "--json"]);
        serde_json::from_str(&out).unwrap()
    };
    let ollama_pid = status(&env).ollama.status.pid.unwrap();

    let (code, out, _) = env.cli(&["start"]);
    assert!(code.success());
    assert!(
        out.contains("is already running (pid ") && out.contains("`openclawd restart`"),
        "{out}"
    );

    let (code, out, err) = env.cli(&["restart"]);
    assert!(code.success(), "{out}{err}");
    assert!(
        out.contains(&format!("Ollama kept warm (pid {ollama_pid}, 0.32.15)")),
        "{out}"
    );
    let (code, out, err) = env.cli(&["stop"]);
    assert!(code.success(), "{out}{err}");
}

#[test]
fn logs_prints_the_last_lines_of_each_log() {
    let env = TestEnv::new();
    let logs = env.state.join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let daemon_log: String = (1..=100).map(|i| format!("daemon line {i}\n")).collect();
    std::fs::write(logs.join("openclawd.log"), &daemon_log).unwrap();
    std::fs::write(
        logs.join("ollama.log"),
        "ollama one\nollama two\nollama three\n",
    )
    .unwrap();

    let (code, out, err) = env.cli(&["logs", "-n", "3"]);
    assert!(code.success(), "{out}{err}");
    assert_eq!(out, "daemon line 98\ndaemon line 99\ndaemon line 100\n");
    let (code, out, _) = env.cli(&["logs", "--ollama", "-n", "2"]);
    assert!(code.success());
    assert_eq!(out, "ollama two\nollama three\n");

    std::fs::remove_file(logs.join("ollama.log")).unwrap();
    let (code, out, err) = env.cli(&["logs", "--ollama"]);
    assert_eq!(code.code(), Some(1), "{out}");
    assert!(
        err.contains("no log yet at") && err.contains("logs/ollama.log"),
        "{err}"
    );
}

#[test]
fn logs_follow_prints_a_line_appended_after_it_started() {
    use std::io::{BufRead, BufReader, Write};
    let env = TestEnv::new();
    let logs = env.state.join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let path = logs.join("openclawd.log");
    std::fs::write(&path, "old line\nlast line before\n").unwrap();
    let mut child = std::process::Command::new(openclawd_bin())
        .args(["logs", "-f", "-n", "1"])
        .env_clear()
        .envs(env.envs())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line.unwrap_or_default()).is_err() {
                return;
            }
        }
    });
    let first = rx.recv_timeout(Duration::from_secs(10)).expect("the tail");
    assert_eq!(first, "last line before");
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    writeln!(f, "appended while following").unwrap();
    let next = rx
        .recv_timeout(Duration::from_secs(5))
        .expect("the appended line");
    assert_eq!(next, "appended while following");

    // Rotated (renamed away, a new file in its place): the new file is followed from its start.
    std::fs::rename(&path, logs.join("openclawd.log.1")).unwrap();
    std::fs::write(&path, "after rotation\n").unwrap();
    let next = rx
        .recv_timeout(Duration::from_secs(5))
        .expect("the rotated file's line");
    assert_eq!(next, "after rotation");
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn an_ollama_older_than_its_binary_is_a_version_mismatch_with_the_command_that_fixes_it() {
    let env = TestEnv::new();
    // Not openclawd's to restart: it can only say what to run.
    env.write_own_settings("{ ollama: { manage: false } }");
    env.write_config(&explicit_config(&env, Some("ollama/llama3.2:3b")));
    let mut server = env.start_ollama_by_hand();
    env.install_ollama("0.33.1");
    let d = env.start();
    d.wait_until("the mismatch", Duration::from_secs(30), |s| {
        s["ollama"]["version_mismatch"].is_string()
    });
    let st = round_trip(&d);
    assert!(kinds(&st).contains(&ProblemKind::OllamaVersionMismatch));
    let (code, out) = status_cli(&env);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains(
            "! Ollama version mismatch: the server runs 0.32.15 but the installed binary is 0.33.1"
        ),
        "{out}"
    );
    let fix = st.ollama.status.version_mismatch.clone().unwrap();
    assert!(out.contains(&format!("fix: {fix}")), "{out}");
    drop(d);
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(server.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = server.wait();
}

#[test]
fn a_typo_in_the_config_is_a_warning_with_file_line_and_the_suggestion() {
    let env = TestEnv::new();
    let config = explicit_config(&env, None);
    let config = format!(
        "{},\n agents: {{ defaults: {{ modle: {{ primary: 'ollama/llama3.2:3b' }} }} }} }}",
        config.trim_end().trim_end_matches('}')
    );
    env.write_config(&config);
    let d = env.start();
    d.wait_until("the typo warning", Duration::from_secs(20), |s| {
        s["config"]["warnings"]
            .as_array()
            .is_some_and(|w| !w.is_empty())
    });
    let st = round_trip(&d);
    assert!(
        kinds(&st).contains(&ProblemKind::ConfigWarning),
        "{:?}",
        st.health
    );
    // The typo also leaves no primary: said as its own line.
    assert!(
        kinds(&st).contains(&ProblemKind::NoPrimary),
        "{:?}",
        st.health
    );
    let (code, out) = status_cli(&env);
    assert_eq!(code, Some(1), "{out}");
    let path = env.config_path().display().to_string();
    let line = out
        .lines()
        .find(|l| l.contains("! config warning: "))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        line.contains(&format!("{path}:"))
            && line.contains("unknown key \"agents.defaults.modle\"")
            && line.contains("did you mean \"model\"?"),
        "{line}"
    );
}

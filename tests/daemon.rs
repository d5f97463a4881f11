//! `openclawd run` end to end: config loading, degraded start, status, reload, shutdown.

mod common;

use std::time::Duration;

use common::*;
use nix::sys::signal::Signal;
use serde_json::{json, Value};

/// The fixture openclaw.json, pointed at this test's Ollama port and with its secrets set.
fn fixture_env() -> TestEnv {
    let mut env = TestEnv::new();
    let text = std::fs::read_to_string(fixture("openclaw/openclaw.json5"))
        .unwrap()
        .replace("127.0.0.1:11434", &format!("127.0.0.1:{}", env.ollama_port));
    env.write_config(&text);
    let agent = env.state.join("agents/main/agent");
    std::fs::create_dir_all(&agent).unwrap();
    std::fs::copy(
        fixture("openclaw/auth-profiles.json"),
        agent.join("auth-profiles.json"),
    )
    .unwrap();
    env.extra_env.extend([
        ("ANTHROPIC_API_KEY".into(), "sk-ant-test-fixture".into()),
        ("OPENROUTER_API_KEY".into(), "sk-or-test-fixture".into()),
        ("OPENCLAW_GATEWAY_TOKEN".into(), "gw-test-token".into()),
    ]);
    env
}

#[test]
fn the_fixture_config_loads_and_health_and_status_answer() {
    let env = fixture_env();
    let d = env.start();
    let (code, body) = http_get(&format!("{}/health", d.base)).unwrap();
    assert_eq!(code, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"ok": true, "status": "live"})
    );

    let st = d.wait_until("config generation 1", Duration::from_secs(10), |s| {
        s["config"]["generation"] == 1
    });
    assert_eq!(st["config"]["error"], Value::Null);
    assert_eq!(
        st["config"]["path"],
        env.config_path().display().to_string()
    );
    assert_eq!(st["daemon"]["pid"], d.pid());
    assert_eq!(st["routing"]["primary"], "ollama/gpt-oss:20b");
    assert_eq!(
        st["routing"]["fallbacks"],
        json!([
            "ollama/qwen3-coder:30b",
            "anthropic/claude-sonnet-4-5",
            "openrouter/z-ai/glm-4.5-air"
        ])
    );
    let refs: Vec<&str> = st["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["ref"].as_str().unwrap())
        .collect();
    for r in [
        "ollama/gpt-oss:20b",
        "anthropic/claude-sonnet-4-5",
        "openrouter/z-ai/glm-4.5-air",
    ] {
        assert!(refs.contains(&r), "{r} missing from {refs:?}");
    }
    // Secrets never reach /status.
    let text = st.to_string();
    for secret in [
        "sk-ant-test-fixture",
        "sk-or-test-fixture",
        "gw-test-token",
        "FAKE-FIXTURE",
    ] {
        assert!(!text.contains(secret), "{secret} leaked into /status");
    }
}

#[test]
fn the_token_guards_every_route_but_health() {
    let env = fixture_env();
    let d = env.start();
    assert_eq!(http_get(&format!("{}/health", d.base)).unwrap().0, 200);
    let (code, body) = http_get(&format!("{}/status", d.base)).unwrap();
    assert_eq!(code, 401);
    let err: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(err["error"]["type"], "authentication_error");
    let (code, _) = http_post(
        &format!("{}/v1/chat/completions", d.base),
        &[("authorization", "Bearer wrong")],
        r#"{"messages":[{"role":"user","content":"hi"}]}"#,
    )
    .unwrap();
    assert_eq!(code, 401);
    assert_eq!(d.get("/status").unwrap().0, 200);
}

#[test]
fn a_broken_config_at_start_serves_degraded_and_names_file_and_line() {
    let env = TestEnv::new();
    env.write_config("{\n  agents: {\n    defaults: { model: \"ollama/x\" \n  },\n}\n");
    let d = env.start();
    let st = d.wait_until("config error reported", Duration::from_secs(10), |s| {
        s["config"]["error"].is_string()
    });
    let err = st["config"]["error"].as_str().unwrap();
    assert!(err.contains("openclaw.json:"), "no file:line in {err}");
    let (code, body) = d.get("/ready").unwrap();
    assert_eq!(code, 503, "{body}");
    assert_eq!(d.get("/health").unwrap().0, 200);
}

#[test]
fn sigterm_stops_cleanly_with_exit_zero() {
    let env = TestEnv::new();
    let mut d = env.start();
    d.signal(Signal::SIGTERM);
    let status = d.wait_exit(Duration::from_secs(30));
    assert!(status.success(), "exit status {status:?}\n{}", d.log_text());
    assert!(!env.state.join("openclawd/openclawd.pid").exists());
}

#[test]
fn status_exit_codes_say_not_running_healthy_or_degraded() {
    let env = TestEnv::new();
    let (code, out, _) = env.cli(&["status"]);
    assert_eq!(code.code(), Some(3), "{out}");
    assert!(out.contains("not running"));

    env.write_config("{ agents: { defaults: { model: 'ollama/x' } }, ");
    let d = env.start();
    d.wait_until("config error", Duration::from_secs(10), |s| {
        s["config"]["error"].is_string()
    });
    let (code, out, err) = env.cli(&["status"]);
    assert_eq!(code.code(), Some(1), "{out}{err}");
    assert!(out.contains("degraded"));
    let (code, out, _) = env.cli(&["status", "--json"]);
    assert_eq!(code.code(), Some(1));
    let st: Value = serde_json::from_str(&out).unwrap();
    assert!(st["config"]["error"].is_string());
}

#[test]
fn a_config_edit_swaps_routing_a_broken_edit_is_reported_and_the_fix_clears_it() {
    let env = TestEnv::new();
    let provider = format!(
        "models: {{ providers: {{ ollama: {{ baseUrl: 'http://127.0.0.1:{}', api: 'ollama', models: [{{ id: 'a:1', name: 'a' }}, {{ id: 'b:1', name: 'b' }}] }} }} }}",
        env.ollama_port
    );
    env.write_config(&format!(
        "{{ {provider}, agents: {{ defaults: {{ model: 'ollama/a:1' }} }} }}"
    ));
    let d = env.start();
    d.wait_until("primary a", Duration::from_secs(10), |s| {
        s["routing"]["primary"] == "ollama/a:1"
    });

    env.write_config(&format!(
        "{{ {provider}, agents: {{ defaults: {{ model: 'ollama/b:1' }} }} }}"
    ));
    let st = d.wait_until("primary b", Duration::from_secs(10), |s| {
        s["routing"]["primary"] == "ollama/b:1"
    });
    assert_eq!(st["config"]["generation"], 2);

    env.write_config(&format!(
        "{{ {provider},\n agents: {{ defaults: {{ model: 'ollama/a:1' }}\n"
    ));
    let st = d.wait_until("reload error", Duration::from_secs(10), |s| {
        s["config"]["error"].is_string()
    });
    assert_eq!(
        st["routing"]["primary"], "ollama/b:1",
        "the last good config stays in force"
    );
    assert!(st["config"]["error"]
        .as_str()
        .unwrap()
        .contains("openclaw.json:"));

    env.write_config(&format!(
        "{{ {provider}, agents: {{ defaults: {{ model: 'ollama/a:1' }} }} }}"
    ));
    let st = d.wait_until("fixed", Duration::from_secs(10), |s| {
        s["config"]["error"].is_null() && s["routing"]["primary"] == "ollama/a:1"
    });
    assert_eq!(st["config"]["generation"], 3);
}

fn recorded_ollama_pid(env: &TestEnv) -> Option<i32> {
    let text = std::fs::read_to_string(env.state.join("openclawd/ollama.json")).ok()?;
    serde_json::from_str::<Value>(&text).ok()?["pid"]
        .as_i64()
        .map(|p| p as i32)
}

#[test]
fn a_crashed_openclawd_leaves_ollama_warm_and_the_next_one_takes_it_back() {
    let env = TestEnv::new();
    let mut first = env.start();
    let st = first.wait_until("owned Ollama running", Duration::from_secs(30), |s| {
        s["ollama"]["state"] == "running" && s["ollama"]["management"] == "owned"
    });
    let ollama_pid = st["ollama"]["pid"].as_i64().unwrap() as i32;
    first.signal(Signal::SIGKILL);
    first.wait_exit(Duration::from_secs(10));
    // Not killing the Ollama on drop: this test checks it survived.
    std::mem::forget(first);
    assert!(pid_alive(ollama_pid), "Ollama died with openclawd");

    let mut second = env.start();
    let st = second.wait_until("Ollama taken back", Duration::from_secs(30), |s| {
        s["ollama"]["state"] == "running"
    });
    assert_eq!(st["ollama"]["management"], "owned");
    assert_eq!(
        st["ollama"]["pid"], ollama_pid,
        "taken back without a restart"
    );
    assert_eq!(st["ollama"]["restarts"], 0);

    second.signal(Signal::SIGTERM);
    assert!(second.wait_exit(Duration::from_secs(30)).success());
    wait_for(
        Duration::from_secs(15),
        "the owned Ollama stopped with openclawd",
        || !pid_alive(ollama_pid),
    );
}

#[test]
fn sigusr2_hands_over_leaving_ollama_running() {
    let env = TestEnv::new();
    let mut d = env.start();
    let st = d.wait_until("owned Ollama running", Duration::from_secs(30), |s| {
        s["ollama"]["state"] == "running"
    });
    let ollama_pid = st["ollama"]["pid"].as_i64().unwrap() as i32;
    d.signal(Signal::SIGUSR2);
    assert!(d.wait_exit(Duration::from_secs(30)).success());
    assert!(
        pid_alive(ollama_pid),
        "the handover must leave Ollama running"
    );
    assert_eq!(
        recorded_ollama_pid(&env),
        Some(ollama_pid),
        "ollama.json kept for the successor"
    );
    kill_recorded_ollama(&env.state);
}

#[test]
fn a_stale_openclaw_gateway_on_the_port_is_reclaimed_and_counted() {
    let env = TestEnv::new();
    // A process that looks like OpenClaw's gateway by its command line and answers nothing.
    let script = format!(
        "import socket,time\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\ns.bind(('127.0.0.1',{}))\ns.listen(1)\ntime.sleep(600)\n",
        env.gateway_port
    );
    let mut stale = std::process::Command::new("python3")
        .args(["-c", &script, "openclaw", "gateway"])
        .spawn()
        .unwrap();
    wait_for(Duration::from_secs(10), "the stale gateway listens", || {
        std::net::TcpStream::connect(("127.0.0.1", env.gateway_port)).is_ok()
    });
    let d = env.start();
    let st = d.wait_until("reclaim counted", Duration::from_secs(10), |s| {
        s["housekeeping"]["port_reclaims_total"] == 1
    });
    assert!(st["housekeeping"]["last_action"]
        .as_str()
        .unwrap()
        .contains("port"));
    let status = stale.wait().unwrap();
    assert!(!status.success(), "the stale gateway was stopped");
}

#[test]
fn an_unrelated_program_on_the_port_is_never_signalled() {
    let env = TestEnv::new();
    let listener = std::net::TcpListener::bind(("127.0.0.1", env.gateway_port)).unwrap();
    let (code, _out, err) = env.cli(&["run"]);
    assert!(!code.success());
    assert!(
        err.contains(&std::process::id().to_string()),
        "names the pid: {err}"
    );
    drop(listener);
}

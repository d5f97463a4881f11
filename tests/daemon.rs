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

//! The commands people type: `models`, `sessions`, `completions`, and the daemon's refusals.

mod common;

use std::time::Duration;

use common::*;
use nix::sys::signal::Signal;
use serde_json::{json, Value};

fn opted_in() -> TestEnv {
    let mut env = TestEnv::new();
    env.extra_env
        .push(("OLLAMA_API_KEY".into(), "ollama-local".into()));
    env
}

#[test]
fn models_asks_the_running_daemon_or_discovers_directly() {
    let env = opted_in();
    // Not running: it loads the config, discovers from Ollama directly, and says so.
    let _ollama = KillOnDrop(env.start_ollama_by_hand());
    let (code, out, err) = env.cli(&["models", "--json"]);
    assert!(code.success(), "{out}{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert!(v["source"].as_str().unwrap().contains("not running"));
    let refs: Vec<&str> = v["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["ref"].as_str().unwrap())
        .collect();
    assert!(refs.contains(&"ollama/gpt-oss:20b"), "{refs:?}");

    let d = env.start();
    d.wait_until("discovered", Duration::from_secs(30), |s| {
        s["models"].as_array().is_some_and(|m| !m.is_empty())
    });
    let (code, out, _) = env.cli(&["models", "--json"]);
    assert!(code.success());
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["source"], "the running daemon");
    let (code, out, _) = env.cli(&["models"]);
    assert!(code.success());
    assert!(
        out.contains("ollama/gpt-oss:20b") && out.contains("REASONING"),
        "{out}"
    );
}

struct KillOnDrop(std::process::Child);
impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.0.id() as i32),
            Signal::SIGTERM,
        );
        let _ = self.0.wait();
    }
}

fn sessions_file(env: &TestEnv) -> std::path::PathBuf {
    let dir = env.state.join("agents/main/sessions");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("sessions.json")
}

const OVERFLOWING: &str = r#"{
  "agent:main:main": { "sessionId": "a", "updatedAt": 2, "contextTokens": 1000, "totalTokens": 1200 },
  "agent:main:other": { "sessionId": "b", "updatedAt": 1, "contextTokens": 1000, "totalTokens": 10 }
}"#;

#[test]
fn sessions_reports_then_prunes_with_a_backup() {
    let env = TestEnv::new();
    let file = sessions_file(&env);
    std::fs::write(&file, OVERFLOWING).unwrap();

    let (code, out, err) = env.cli(&["sessions", "--json"]);
    assert!(code.success(), "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let main = v
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["agent_id"] == "main")
        .unwrap();
    assert_eq!(main["overflowing"], json!(["agent:main:main"]));
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        OVERFLOWING,
        "a report changes nothing"
    );

    let (code, out, _) = env.cli(&["sessions", "--prune-now", "--dry-run"]);
    assert!(code.success());
    assert!(out.contains("would"), "{out}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), OVERFLOWING);

    let (code, out, _) = env.cli(&["sessions", "--prune-now"]);
    assert!(code.success(), "{out}");
    let after: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert!(after.get("agent:main:main").is_none());
    assert_eq!(after["agent:main:other"]["sessionId"], "b");
    let backups: Vec<_> = std::fs::read_dir(env.state.join("openclawd/backups"))
        .unwrap()
        .collect();
    assert_eq!(backups.len(), 1);
    let backup = backups[0].as_ref().unwrap().path();
    assert_eq!(
        std::fs::read_to_string(backup).unwrap(),
        OVERFLOWING,
        "byte-identical backup"
    );
}

#[test]
fn the_running_daemon_clears_overflowing_sessions_and_says_so() {
    let env = TestEnv::new();
    let file = sessions_file(&env);
    std::fs::write(&file, "{}").unwrap();
    let d = env.start();
    // An agent hits "Context overflow" while the daemon runs.
    std::fs::write(&file, OVERFLOWING).unwrap();
    let st = d.wait_until("overflow cleared", Duration::from_secs(30), |s| {
        s["housekeeping"]["sessions_cleared_total"] == 1
    });
    assert!(st["housekeeping"]["last_action"]
        .as_str()
        .unwrap()
        .contains("agent:main:main"));
    let after: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert!(after.get("agent:main:other").is_some());
}

#[test]
fn completions_are_printed_for_each_shell() {
    let env = TestEnv::new();
    for shell in ["bash", "zsh", "fish"] {
        let (code, out, _) = env.cli(&["completions", shell]);
        assert!(code.success());
        assert!(out.contains("openclawd"), "{shell}");
    }
}

#[test]
fn a_non_loopback_bind_without_a_token_refuses_to_start() {
    let env = TestEnv::new();
    let (code, _, err) = env.cli(&["run", "--bind", "lan"]);
    assert!(!code.success());
    assert!(err.contains("token"), "{err}");
}

#[test]
fn sighup_forces_a_reload() {
    let env = TestEnv::new();
    env.write_config("{ agents: { defaults: { model: 'ollama/a' } } }");
    let d = env.start();
    d.wait_until("gen 1", Duration::from_secs(10), |s| {
        s["config"]["generation"] == 1
    });
    d.signal(Signal::SIGHUP);
    d.wait_until("gen 2 after SIGHUP", Duration::from_secs(10), |s| {
        s["config"]["generation"] == 2
    });
}

#[test]
fn metrics_count_requests_attempts_and_ollama() {
    let env = TestEnv::new();
    env.write_config(&format!(
        "{{ models: {{ providers: {{ ollama: {{ baseUrl: 'http://127.0.0.1:{}', api: 'ollama', models: [{{ id: 'llama3.2:3b', name: 'l', contextWindow: 8192 }}] }} }} }}, agents: {{ defaults: {{ model: 'ollama/llama3.2:3b' }} }} }}",
        env.ollama_port
    ));
    let d = env.start();
    d.wait_until("available", Duration::from_secs(30), |s| {
        s["models"][0]["available"] == true
    });
    for stream in [true, false] {
        let r = d.chat(
            &json!({"stream": stream, "messages": [{"role": "user", "content": "hi"}]}),
            &[],
        );
        assert_eq!(r.status(), 200);
        r.text().unwrap();
    }
    let (code, text) = d.get("/metrics").unwrap();
    assert_eq!(code, 200);
    for needle in [
        "openclawd_gateway_requests_total{model=\"ollama/llama3.2:3b\",status=\"200\"} 2",
        "openclawd_gateway_attempts_total{model=\"ollama/llama3.2:3b\",outcome=\"ok\"} 2",
        "openclawd_time_to_first_token_seconds_count{model=\"ollama/llama3.2:3b\"} 1",
        "openclawd_tokens_per_second_count{model=\"ollama/llama3.2:3b\"}",
        "openclawd_gateway_overhead_seconds_count 2",
        "openclawd_ollama_restarts 0",
    ] {
        assert!(text.contains(needle), "missing {needle} in\n{text}");
    }
}

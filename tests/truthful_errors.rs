//! Errors that name the real cause (SPEC §5, §7): a model that is skipped is not "does not
//! exist", an empty catalogue says why, a broken config is the answer when there is one, and a
//! failure during our own Ollama's restart says when to come back.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

fn chat(d: &Daemon, model: &str) -> (u16, Option<String>, String) {
    let resp = d.chat(
        &json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}),
        &[],
    );
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    (status, retry_after, resp.text().unwrap_or_default())
}

fn message(body: &str) -> String {
    serde_json::from_str::<Value>(body).unwrap()["error"]["message"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn a_model_skipped_for_lacking_tools_is_named_as_skipped_with_its_fix() {
    let mut env = TestEnv::new();
    env.extra_env
        .push(("OLLAMA_API_KEY".into(), "ollama-local".into()));
    env.write_control(&json!({"models": [
        {"name": "llama3.2:3b"},
        {"name": "gemma:2b", "family": "gemma", "capabilities": ["completion"], "context_length": 8192}
    ]}));
    let d = env.start();
    d.wait_until("gemma skipped", Duration::from_secs(30), |s| {
        s["skipped_models"]
            .as_array()
            .is_some_and(|m| m.iter().any(|m| m["ref"] == "ollama/gemma:2b"))
    });
    for asked in ["ollama/gemma:2b", "gemma:2b"] {
        let (status, _, body) = chat(&d, asked);
        assert_eq!(status, 404, "{body}");
        let msg = message(&body);
        assert!(!msg.contains("does not exist"), "{msg}");
        assert!(
            msg.contains("is installed but openclawd does not route to it"),
            "{msg}"
        );
        assert!(msg.contains("requireTools"), "the fix is named: {msg}");
    }
}

#[test]
fn default_with_installed_models_but_no_opt_in_says_discovery_is_off() {
    let env = TestEnv::new();
    env.write_control(&json!({"models": [{"name": "llama3.2:3b"}, {"name": "qwen3:8b"}]}));
    let d = env.start();
    d.wait_until("Ollama running", Duration::from_secs(30), |s| {
        s["ollama"]["state"] == "running"
    });
    let (status, _, body) = chat(&d, "default");
    assert_eq!(status, 404, "{body}");
    let msg = message(&body);
    assert!(msg.contains("discovery is opted in"), "{msg}");
    assert!(msg.contains("OLLAMA_API_KEY"), "{msg}");
}

#[test]
fn a_degraded_start_answers_503_with_the_config_error() {
    let env = TestEnv::new();
    env.write_config(
        "{ agents: { defaults: { model: { primary: 'ollama/llama3.2:3b' } } }\n  models: {} }",
    );
    let d = env.start();
    let (status, _, body) = chat(&d, "default");
    assert_eq!(status, 503, "{body}");
    let msg = message(&body);
    assert!(msg.contains("no valid configuration"), "{msg}");
    assert!(msg.contains("openclaw.json:"), "file and line named: {msg}");
    assert!(!msg.contains("no model requested"), "{msg}");
}

#[test]
fn a_failure_while_our_ollama_restarts_is_a_503_with_retry_after() {
    let env = TestEnv::new();
    // Never hold, and an Ollama that takes 3 s to come up: the request finds it starting.
    env.write_own_settings("{ gateway: { holdForOllama: 0 } }");
    let script = format!(
        "#!/bin/sh\nif [ \"$1\" = serve ]; then sleep 3; fi\nOLLAMA_DOUBLE_VERSION=0.32.15 exec {} \"$@\"\n",
        double_bin().display()
    );
    std::fs::write(env.ollama_path(), script).unwrap();
    env.write_config(&format!(
        "{{ models: {{ providers: {{ ollama: {{ baseUrl: 'http://127.0.0.1:{}', api: 'ollama', models: [ {{ id: 'llama3.2:3b', name: 'Llama' }} ] }} }} }},
           agents: {{ defaults: {{ model: {{ primary: 'ollama/llama3.2:3b' }} }} }} }}",
        env.ollama_port
    ));
    let d = env.start();
    let (status, retry_after, body) = chat(&d, "default");
    assert_eq!(status, 503, "{body}");
    assert_eq!(retry_after.as_deref(), Some("5"));
    assert!(message(&body).contains("restarting its Ollama"), "{body}");
}

//! A real client: the official `anthropic` Python SDK talks to the gateway's `/v1/messages`,
//! which routes to the `ollama` double. `.ci/run` installs the SDK into `target/peer-venv`; run
//! alone, this test installs it there itself.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

const GATEWAY_TOKEN: &str = "gw-anthropic-sdk-token";

/// The venv's python, with `package` importable (installed from PyPI if it is not yet).
fn python_with(package: &str, requirement: &str) -> PathBuf {
    if let Ok(p) = std::env::var("OPENCLAWD_TEST_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/peer-venv");
    let py = venv.join("bin/python");
    let importable = || {
        Command::new(&py)
            .args(["-c", &format!("import {package}")])
            .status()
            .is_ok_and(|s| s.success())
    };
    if !importable() {
        if !py.exists() {
            let st = Command::new("python3")
                .args(["-m", "venv"])
                .arg(&venv)
                .status()
                .unwrap();
            assert!(st.success(), "python3 -m venv failed");
        }
        let st = Command::new(venv.join("bin/pip"))
            .args([
                "install",
                "--quiet",
                "--disable-pip-version-check",
                requirement,
            ])
            .status()
            .unwrap();
        assert!(
            st.success(),
            "pip install {requirement} failed (PyPI reachable?)"
        );
    }
    py
}

const SCRIPT: &str = r#"
import json, sys
import anthropic
client = anthropic.Anthropic(base_url=sys.argv[1], api_key=sys.argv[2], max_retries=0)
out = {}
m = client.messages.create(model="ollama/llama3.2:3b", max_tokens=100, system="Be brief.",
    messages=[{"role": "user", "content": "Why is the sky blue?"}])
out["text"] = m.content[0].text
out["stop"] = m.stop_reason
out["id"] = m.id
out["output_tokens"] = m.usage.output_tokens

with client.messages.stream(model="default", max_tokens=100,
        messages=[{"role": "user", "content": "Why is the sky blue?"}]) as stream:
    parts = [t for t in stream.text_stream]
    final = stream.get_final_message()
out["stream_text"] = "".join(parts)
out["stream_final_text"] = final.content[0].text
out["stream_stop"] = final.stop_reason

# Claude Code's path: the beta namespace (`?beta=true`) and count_tokens.
b = client.beta.messages.create(model="default", max_tokens=50,
    messages=[{"role": "user", "content": "hi"}], betas=["interleaved-thinking-2025-05-14"])
out["beta_text"] = b.content[0].text
out["count"] = client.messages.count_tokens(model="default", system="You are a scientist",
    messages=[{"role": "user", "content": "Hello, Claude"}]).input_tokens

# A tool round trip: the model calls get_weather, the result goes back.
tools = [{"name": "get_weather", "description": "Current weather",
          "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]
ask = {"role": "user", "content": "Weather in Tokyo?"}
m = client.messages.create(model="default", max_tokens=100, tools=tools, messages=[ask])
use = [c for c in m.content if c.type == "tool_use"][0]
out["tool_stop"] = m.stop_reason
out["tool_name"] = use.name
out["tool_input"] = use.input
after = client.messages.create(model="default", max_tokens=100, messages=[ask,
    {"role": "assistant", "content": m.content},
    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "21C and sunny"}]}])
out["after_tool"] = after.content[0].text
with client.messages.stream(model="default", max_tokens=100, tools=tools, messages=[ask]) as stream:
    final = stream.get_final_message()
out["stream_tool_input"] = [c.input for c in final.content if c.type == "tool_use"]

try:
    client.messages.create(model="claude-9-opus", max_tokens=10, messages=[ask])
    out["not_found"] = None
except anthropic.NotFoundError as e:
    out["not_found"] = {"status": e.status_code, "type": e.body["error"]["type"], "message": e.body["error"]["message"]}
try:
    client.messages.create(model="default", max_tokens=10, messages=[ask], extra_body={"max_tokens": "ten"})
    out["bad_request"] = None
except anthropic.BadRequestError as e:
    out["bad_request"] = e.body["error"]["message"]
print(json.dumps(out))
"#;

#[test]
fn the_anthropic_python_sdk_talks_to_ollama_through_the_gateway() {
    let py = python_with("anthropic", "anthropic>=0.40,<1");
    let mut env = TestEnv::new();
    env.extra_env
        .push(("OPENCLAW_GATEWAY_TOKEN".into(), GATEWAY_TOKEN.into()));
    env.write_control(&json!({"tool_call": true}));
    env.write_config(&format!(
        "{{ models: {{ providers: {{ ollama: {{ baseUrl: 'http://127.0.0.1:{}', api: 'ollama',
             models: [{{ id: 'llama3.2:3b', name: 'Llama', contextWindow: 131072 }}] }} }} }},
           agents: {{ defaults: {{ model: 'ollama/llama3.2:3b' }} }} }}",
        env.ollama_port
    ));
    let d = env.start();
    d.wait_until("model available", Duration::from_secs(30), |s| {
        s["models"][0]["available"] == true
    });
    let script = env.home.path().join("anthropic_client.py");
    std::fs::write(&script, SCRIPT).unwrap();
    let out = Command::new(py)
        .arg(&script)
        .arg(&d.base)
        .arg(GATEWAY_TOKEN)
        .env("NO_PROXY", "127.0.0.1,localhost")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "SDK client failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        d.log_text()
    );
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(!got["text"].as_str().unwrap().is_empty());
    assert_eq!(got["stop"], "end_turn");
    assert!(got["id"].as_str().unwrap().starts_with("msg_"));
    assert!(got["output_tokens"].as_u64().unwrap() > 0);
    assert!(!got["stream_text"].as_str().unwrap().is_empty());
    assert_eq!(got["stream_text"], got["stream_final_text"]);
    assert_eq!(got["stream_stop"], "end_turn");
    assert!(!got["beta_text"].as_str().unwrap().is_empty());
    assert!(got["count"].as_u64().unwrap() > 0);
    assert_eq!(got["tool_stop"], "tool_use");
    assert_eq!(got["tool_name"], "get_weather");
    assert_eq!(got["tool_input"], json!({"city": "Tokyo"}));
    assert!(!got["after_tool"].as_str().unwrap().is_empty());
    assert_eq!(got["stream_tool_input"], json!([{"city": "Tokyo"}]));
    assert_eq!(got["not_found"]["status"], 404);
    assert_eq!(got["not_found"]["type"], "not_found_error");
    assert!(got["not_found"]["message"]
        .as_str()
        .unwrap()
        .contains("claude-9-opus"));
    assert!(got["bad_request"].as_str().unwrap().contains("max_tokens"));
    // The tool result reached the model as OpenAI-style tool turn, translated to Ollama's.
    let chats: Vec<Value> = env
        .ollama_requests()
        .into_iter()
        .filter(|r| r["path"] == "/api/chat")
        .collect();
    assert!(chats
        .iter()
        .any(|r| r["body"]["messages"].as_array().is_some_and(|ms| ms
            .iter()
            .any(|m| m["role"] == "tool" && m["content"] == "21C and sunny"))));
}

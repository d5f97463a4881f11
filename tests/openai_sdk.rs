//! A real client: the official `openai` Python SDK talks to the gateway, which talks to the
//! `ollama` double. `.ci/run` installs the SDK into `target/peer-venv`; run alone, this test
//! installs it there itself.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::Value;

fn python_with_openai() -> PathBuf {
    if let Ok(p) = std::env::var("OPENCLAWD_TEST_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/peer-venv");
    let py = venv.join("bin/python");
    let ok = |py: &PathBuf| {
        Command::new(py)
            .args(["-c", "import openai"])
            .status()
            .is_ok_and(|s| s.success())
    };
    if !ok(&py) {
        let st = Command::new("python3")
            .arg("-m")
            .arg("venv")
            .arg(&venv)
            .status()
            .unwrap();
        assert!(st.success(), "python3 -m venv failed");
        let st = Command::new(venv.join("bin/pip"))
            .args([
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "openai>=1.40,<4",
            ])
            .status()
            .unwrap();
        assert!(st.success(), "pip install openai failed (PyPI reachable?)");
    }
    py
}

const SCRIPT: &str = r#"
import json, sys
from openai import OpenAI
client = OpenAI(base_url=sys.argv[1], api_key="unused")
out = {}
r = client.chat.completions.create(model="default", messages=[{"role": "user", "content": "hi"}])
out["text"] = r.choices[0].message.content
out["finish"] = r.choices[0].finish_reason
parts = []
usage = None
stream = client.chat.completions.create(model="ollama/llama3.2:3b", stream=True,
    stream_options={"include_usage": True}, messages=[{"role": "user", "content": "hi"}])
for chunk in stream:
    if chunk.usage is not None:
        usage = chunk.usage.completion_tokens
    for c in chunk.choices:
        if c.delta.content:
            parts.append(c.delta.content)
out["stream_text"] = "".join(parts)
out["stream_usage"] = usage
out["models"] = [m.id for m in client.models.list()]
print(json.dumps(out))
"#;

#[test]
fn the_openai_python_sdk_chats_through_the_gateway_streaming_and_not() {
    let py = python_with_openai();
    let env = TestEnv::new();
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
    let script = env.home.path().join("client.py");
    std::fs::write(&script, SCRIPT).unwrap();
    let out = Command::new(py)
        .arg(&script)
        .arg(format!("{}/v1", d.base))
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
    assert_eq!(got["finish"], "stop");
    assert!(!got["stream_text"].as_str().unwrap().is_empty());
    assert!(got["stream_usage"].as_u64().unwrap() > 0);
    assert_eq!(got["models"][0], "ollama/llama3.2:3b");
}

//! Real clients: the official Python SDKs (`openai`, `anthropic`) run as scripts against a
//! gateway that routes to the `ollama` double. `.ci/run` installs them into `target/peer-venv`
//! (or `OPENCLAWD_TEST_PYTHON` names a python that has them); run alone, a test installs its
//! SDK there itself.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use super::{Daemon, TestEnv};

/// The venv's python, with `package` importable (installed from PyPI if it is not yet).
pub fn python_with(package: &str, requirement: &str) -> PathBuf {
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

/// A daemon whose only model, and default, is `ollama/llama3.2:3b` on the double; returned once
/// that model is available.
pub fn start_gateway_to_llama(env: &TestEnv) -> Daemon {
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
    d
}

/// Runs `script` (saved as `file_name` in the test's HOME) with `py` and `args`; it must succeed
/// and print one JSON object, which is returned.
pub fn run_client(
    py: PathBuf,
    env: &TestEnv,
    d: &Daemon,
    file_name: &str,
    script: &str,
    args: &[&str],
) -> Value {
    let path = env.home.path().join(file_name);
    std::fs::write(&path, script).unwrap();
    let out = Command::new(py)
        .arg(&path)
        .args(args)
        .env("NO_PROXY", "127.0.0.1,localhost")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "SDK client failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        d.log_text()
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Some `/api/chat` request the double received carried a `tool` turn with `content`.
pub fn ollama_received_tool_result(env: &TestEnv, content: &str) -> bool {
    env.ollama_requests()
        .into_iter()
        .filter(|r| r["path"] == "/api/chat")
        .any(|r| {
            r["body"]["messages"].as_array().is_some_and(|ms| {
                ms.iter()
                    .any(|m| m["role"] == "tool" && m["content"] == content)
            })
        })
}

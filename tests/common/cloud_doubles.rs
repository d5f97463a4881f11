//! The `gemini-double` and `responses-double` executables (tests/cloud-doubles), started on a
//! free loopback port with their own key, control file and request log; killed on drop. And the
//! config and requests the tests against them share.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use serde_json::{json, Value};

use crate::common::{Daemon, TestEnv};

pub struct CloudDouble {
    child: Child,
    /// The OpenClaw `api` this double speaks and the path its base URL ends in.
    api: &'static str,
    api_path: &'static str,
    pub port: u16,
    pub control: PathBuf,
    pub log: PathBuf,
    _dir: tempfile::TempDir,
}

impl CloudDouble {
    /// `gemini-double`: base URL `http://127.0.0.1:<port>/v1beta`.
    pub fn gemini(key: &str) -> CloudDouble {
        CloudDouble::start("gemini-double", "google-generative-ai", "/v1beta", key)
    }

    /// `responses-double`: base URL `http://127.0.0.1:<port>/v1`.
    pub fn responses(key: &str) -> CloudDouble {
        CloudDouble::start("responses-double", "openai-responses", "/v1", key)
    }

    fn start(bin: &str, api: &'static str, api_path: &'static str, key: &str) -> CloudDouble {
        let exe = PathBuf::from(env!("CARGO_BIN_EXE_openclawd")).with_file_name(bin);
        assert!(
            exe.exists(),
            "{} is not built: run `cargo build -p cloud-doubles` (or `cargo build --workspace`) first",
            exe.display()
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let control = dir.path().join("control.json");
        let log = dir.path().join("requests.ndjson");
        let mut child = Command::new(&exe)
            .env_clear()
            .env("CLOUD_DOUBLE_KEY", key)
            .env("CLOUD_DOUBLE_CONTROL", &control)
            .env("CLOUD_DOUBLE_LOG", &log)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", exe.display()));
        let mut line = String::new();
        let stdout = child.stdout.take().expect("stdout");
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the Listening line");
        let port = line
            .trim()
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("{bin} printed {line:?}, not `Listening on ADDR`"));
        CloudDouble {
            child,
            api,
            api_path,
            port,
            control,
            log,
            _dir: dir,
        }
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Replaces the control file atomically (it is re-read on every request).
    pub fn control(&self, v: &Value) {
        let tmp = self.control.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec(v).unwrap()).unwrap();
        std::fs::rename(&tmp, &self.control).unwrap();
    }

    /// The requests received so far, oldest first.
    pub fn requests(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

impl Drop for CloudDouble {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The OpenClaw provider entry `id` for `double`, with `key` and `models` (id, context window).
pub fn cloud_double_provider(
    id: &str,
    double: &CloudDouble,
    key: &str,
    models: &[(&str, u64)],
) -> String {
    let models: Vec<String> = models
        .iter()
        .map(|(m, ctx)| {
            format!("{{ id: '{m}', name: '{m}', contextWindow: {ctx}, maxTokens: 8192 }}")
        })
        .collect();
    format!(
        "'{id}': {{ baseUrl: '{}{}', apiKey: '{key}', api: '{}', models: [ {} ] }}",
        double.base(),
        double.api_path,
        double.api,
        models.join(", ")
    )
}

/// The provider entry `ollama` for the test's `ollama` double, with `llama3.2:3b`.
pub fn ollama_provider(env: &TestEnv) -> String {
    format!(
        "ollama: {{ baseUrl: 'http://127.0.0.1:{}', api: 'ollama', models: [
            {{ id: 'llama3.2:3b', name: 'Llama', contextWindow: 131072, maxTokens: 8192 }} ] }}",
        env.ollama_port
    )
}

/// Writes OpenClaw's config: `providers`, and the default model `primary` with `fallbacks`.
pub fn write_models_config(env: &TestEnv, providers: &[String], primary: &str, fallbacks: &[&str]) {
    let fb: Vec<String> = fallbacks.iter().map(|f| format!("'{f}'")).collect();
    env.write_config(&format!(
        "{{ models: {{ providers: {{ {} }} }},
           agents: {{ defaults: {{ model: {{ primary: '{primary}', fallbacks: [{}] }} }} }} }}",
        providers.join(", "),
        fb.join(", ")
    ));
}

/// A chat completion request for `model` with a system prompt, usage in the stream, and
/// sampling options.
pub fn chat(model: &str, stream: bool) -> Value {
    json!({"model": model, "stream": stream, "stream_options": {"include_usage": true},
        "max_tokens": 100, "temperature": 0.3,
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello."}]})
}

/// A gateway (a daemon that does not manage Ollama) whose only model, and default, is
/// `provider/model` on `double` with `key` and context window `ctx`; returned once that model
/// is available.
pub fn gateway_to_double(
    double: &CloudDouble,
    key: &str,
    provider: &str,
    model: &str,
    ctx: u64,
) -> (TestEnv, Daemon) {
    let env = TestEnv::new();
    env.write_own_settings("{ ollama: { manage: false } }");
    let model_ref = format!("{provider}/{model}");
    write_models_config(
        &env,
        &[cloud_double_provider(
            provider,
            double,
            key,
            &[(model, ctx)],
        )],
        &model_ref,
        &[],
    );
    let d = env.start();
    d.wait_available(&model_ref);
    (env, d)
}

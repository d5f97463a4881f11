//! Real CLI clients from npm, each driving one non-interactive prompt through openclawd to the
//! `ollama` double: Claude Code (`claude -p`, Anthropic Messages on `/v1/messages?beta=true`)
//! and Codex CLI (`codex exec`, OpenAI Responses on `/v1/responses`); and a model the gateway
//! does not know comes back to each as the gateway's 404 in its API's shape.
//!
//! They are `#[ignore]`d: each is a 100+ MB native binary that takes seconds to start, installed
//! from npm by `scripts/install-npm-clients.sh` into `target/npm-clients` (or named by
//! `OPENCLAWD_NPM_CLIENTS`, a prefix with `node_modules/.bin/{claude,codex}`). Run them with
//! `cargo test --test npm_clients -- --ignored --nocapture`; a client that is not installed is
//! skipped with a message saying how to install it.
//!
//! Each client runs with a temporary HOME, the gateway token as its API key, telemetry and
//! updates off, and `HTTPS_PROXY` pointing at a trap that forwards nothing: whatever it tries
//! beyond loopback is refused, and fails the test naming the host. A recording relay between
//! the client and the gateway shows what the client really sent and got (`--nocapture` prints
//! it; `OPENCLAWD_NPM_CLIENTS_DUMP=<dir>` keeps the bodies).

mod common;

#[path = "common/http_recorder.rs"]
mod http_recorder;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::python_sdk::start_gateway_to_llama;
use common::*;
use http_recorder::{Exchange, HttpRecorder, ProxyTrap};
use serde_json::{json, Value};

const GATEWAY_TOKEN: &str = "gw-npm-clients-token";
/// What the double answers, token by token; a client that prints it got the model's answer.
const REPLY: [&str; 6] = ["Hello", " from", " the", " ollama", " double", "."];
/// How long one client run may take (a cold start of the native binary on a busy machine).
const CLIENT_LIMIT: Duration = Duration::from_secs(180);

fn reply_text() -> String {
    REPLY.concat()
}

/// `node_modules/.bin/<bin>` of the npm prefix, or `None` (with the reason printed) when the
/// client is not installed.
fn npm_client(bin: &str, package: &str) -> Option<PathBuf> {
    let prefix = std::env::var_os("OPENCLAWD_NPM_CLIENTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/npm-clients"));
    let path = prefix.join("node_modules/.bin").join(bin);
    if path.exists() {
        Some(path)
    } else {
        eprintln!(
            "SKIPPED: {package} is not installed at {}; run scripts/install-npm-clients.sh",
            path.display()
        );
        None
    }
}

/// A gateway with the token set, routing everything to `ollama/llama3.2:3b` on the double,
/// which answers [`REPLY`].
fn gateway() -> (TestEnv, Daemon) {
    let mut env = TestEnv::new();
    env.extra_env
        .push(("OPENCLAW_GATEWAY_TOKEN".into(), GATEWAY_TOKEN.into()));
    env.write_control(&json!({ "reply_tokens": REPLY }));
    let d = start_gateway_to_llama(&env);
    (env, d)
}

/// Runs `cmd` with a clean environment: the test machine's HOME and PATH, no proxy for
/// loopback and the trap for everything else, plus `vars`. Killed after [`CLIENT_LIMIT`].
fn run_client(
    mut cmd: Command,
    env: &TestEnv,
    trap: &ProxyTrap,
    vars: &[(&str, String)],
) -> Output {
    cmd.env_clear()
        .env("HOME", env.home.path())
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("TERM", "dumb")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
        .env("HTTPS_PROXY", trap.url())
        .env("HTTP_PROXY", trap.url())
        .env("https_proxy", trap.url())
        .env("http_proxy", trap.url())
        .current_dir(env.home.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("start the client");
    let deadline = Instant::now() + CLIENT_LIMIT;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

/// Prints what crossed the relay and what tried to leave the machine (`--nocapture` shows it).
fn print_traffic(client: &str, exchanges: &[Exchange], trap: &ProxyTrap, env: &TestEnv) {
    eprintln!(
        "== {client}: {} request(s) through the gateway",
        exchanges.len()
    );
    for x in exchanges {
        let r = &x.request;
        let headers: Vec<String> = r
            .headers
            .iter()
            .map(|(k, v)| {
                let secret = ["authorization", "x-api-key"]
                    .iter()
                    .any(|s| k.eq_ignore_ascii_case(s));
                format!("{k}: {}", if secret { "<redacted>" } else { v })
            })
            .collect();
        let fields: Vec<String> = r
            .json()
            .and_then(|v| v.as_object().cloned())
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default();
        let (status, served_by) = x.response.as_ref().map_or(("-".into(), ""), |resp| {
            (
                resp.start.clone(),
                resp.header("x-openclawd-model").unwrap_or(""),
            )
        });
        eprintln!(
            "  {} ({} bytes) -> {status} [x-openclawd-model: {served_by}]\n    headers: {}\n    body fields: {}",
            r.start,
            r.body.len(),
            headers.join(" | "),
            fields.join(", ")
        );
    }
    eprintln!("  attempts to leave the machine: {:?}", trap.attempts());
    // OPENCLAWD_NPM_CLIENTS_DUMP=<dir> keeps every body, for looking at what a client sends.
    if let Some(dir) = std::env::var_os("OPENCLAWD_NPM_CLIENTS_DUMP").map(PathBuf::from) {
        std::fs::create_dir_all(&dir).unwrap();
        for (i, x) in exchanges.iter().enumerate() {
            std::fs::write(dir.join(format!("{client}-{i}-request")), &x.request.body).unwrap();
            if let Some(r) = &x.response {
                std::fs::write(dir.join(format!("{client}-{i}-response")), &r.body).unwrap();
            }
        }
        let upstream: Vec<Value> = env.ollama_requests();
        std::fs::write(
            dir.join(format!("{client}-ollama-requests.json")),
            serde_json::to_vec_pretty(&upstream).unwrap(),
        )
        .unwrap();
    }
    assert_eq!(
        trap.attempts(),
        Vec::<String>::new(),
        "{client} tried to leave the machine: switch that off in its settings here"
    );
}

/// The double's `/api/chat` requests whose user turns contain `text`.
fn chats_asking(env: &TestEnv, text: &str) -> usize {
    env.ollama_requests()
        .iter()
        .filter(|r| r["path"] == "/api/chat")
        .filter(|r| {
            r["body"]["messages"].as_array().is_some_and(|ms| {
                ms.iter().any(|m| {
                    m["role"] == "user" && m["content"].as_str().is_some_and(|c| c.contains(text))
                })
            })
        })
        .count()
}

/// The monitoring page's request ring (the `requests` event `/events` opens with).
fn request_ring(d: &Daemon) -> Vec<Value> {
    let mut feed = reqwest::blocking::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(format!("{}/events", d.base))
        .bearer_auth(GATEWAY_TOKEN)
        .send()
        .expect("GET /events");
    let mut text = String::new();
    let mut buf = [0u8; 65536];
    while !(text.contains("event: requests\ndata: ") && text.ends_with("\n\n")) {
        let n = std::io::Read::read(&mut feed, &mut buf).unwrap();
        assert!(n > 0, "the feed ended before its requests event");
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    let data = text
        .split("event: requests\ndata: ")
        .nth(1)
        .and_then(|t| t.split("\n\n").next())
        .unwrap();
    let snapshot: Value = serde_json::from_str(data).unwrap();
    snapshot["requests"].as_array().cloned().unwrap_or_default()
}

/// Waits until the ring holds a complete streamed answer to `model` by `model` (a request is
/// recorded when its stream ends, which may be just after the client has read the last byte).
fn ring_shows_streamed_answer(d: &Daemon, model: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ring = request_ring(d);
        if let Some(r) = ring.iter().find(|r| {
            r["asked"] == model
                && r["answered"] == model
                && r["status"] == 200
                && r["stream"] == true
                && r["outcome"].is_null()
        }) {
            return r.clone();
        }
        assert!(Instant::now() < deadline, "the request ring: {ring:#?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `claude -p <prompt> --model <model> --output-format json` against the gateway (through
/// `relay`), with the gateway token as its API key and everything non-essential off.
fn run_claude(
    claude: &Path,
    env: &TestEnv,
    relay: &HttpRecorder,
    trap: &ProxyTrap,
    model: &str,
    prompt: &str,
) -> Output {
    let mut cmd = Command::new(claude);
    cmd.args(["-p", prompt, "--output-format", "json", "--max-turns", "1"])
        .args(["--model", model]);
    run_client(
        cmd,
        env,
        trap,
        &[
            ("ANTHROPIC_BASE_URL", relay.base()),
            ("ANTHROPIC_API_KEY", GATEWAY_TOKEN.into()),
            // Background work (titles and the like) asks for the "small fast" model.
            ("ANTHROPIC_DEFAULT_HAIKU_MODEL", model.into()),
            ("ANTHROPIC_SMALL_FAST_MODEL", model.into()),
            ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1".into()),
            ("DISABLE_TELEMETRY", "1".into()),
            ("DISABLE_AUTOUPDATER", "1".into()),
            ("DISABLE_ERROR_REPORTING", "1".into()),
        ],
    )
}

/// `codex exec --json <prompt>` with a `$CODEX_HOME/config.toml` whose provider is the gateway
/// (through `relay`) on the Responses API, with `model`; no retries, and analytics, plugins and
/// apps (which reach github.com and chatgpt.com at startup) off.
fn run_codex(
    codex: &Path,
    env: &TestEnv,
    relay: &HttpRecorder,
    trap: &ProxyTrap,
    model: &str,
    prompt: &str,
) -> Output {
    // Codex reads model providers only from $CODEX_HOME/config.toml.
    let codex_home = env.home.path().join(".codex");
    std::fs::create_dir_all(&codex_home).unwrap();
    std::fs::write(
        codex_home.join("config.toml"),
        format!(
            r#"model = "{model}"
model_provider = "openclawd"
check_for_update_on_startup = false
# Codex's defaults otherwise: it offers OpenAI's web_search and its sub-agent tools (a
# `namespace` tool) beside its functions; openclawd leaves those out for a local model and says
# so in `x-openclawd-tools-dropped` (asserted below).

[analytics]
enabled = false

[features]
plugins = false
remote_plugin = false
apps = false

[model_providers.openclawd]
name = "openclawd"
base_url = "{}/v1"
env_key = "OPENCLAWD_GATEWAY_TOKEN"
wire_api = "responses"
request_max_retries = 0
stream_max_retries = 0
"#,
            relay.base()
        ),
    )
    .unwrap();
    let mut cmd = Command::new(codex);
    cmd.args(["exec", "--skip-git-repo-check", "--json", prompt]);
    run_client(
        cmd,
        env,
        trap,
        &[
            ("CODEX_HOME", codex_home.display().to_string()),
            ("OPENCLAWD_GATEWAY_TOKEN", GATEWAY_TOKEN.into()),
        ],
    )
}

fn explain(out: &Output, d: &Daemon) -> String {
    format!(
        "exit: {:?}\nstdout:\n{}\nstderr:\n{}\nopenclawd log:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        d.log_text()
    )
}

#[test]
#[ignore = "needs @anthropic-ai/claude-code from npm: scripts/install-npm-clients.sh"]
fn claude_code_answers_one_prompt_through_the_gateway() {
    let Some(claude) = npm_client("claude", "@anthropic-ai/claude-code") else {
        return;
    };
    let (env, d) = gateway();
    let relay = HttpRecorder::start(env.gateway_port);
    let trap = ProxyTrap::start();
    let prompt = "Say hi to the npm-clients test.";

    let out = run_claude(&claude, &env, &relay, &trap, "ollama/llama3.2:3b", prompt);
    let exchanges = relay.exchanges();
    print_traffic("claude", &exchanges, &trap, &env);
    assert!(
        out.status.success(),
        "claude -p failed\n{}",
        explain(&out, &d)
    );
    let result: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("claude's --output-format json: {e}\n{}", explain(&out, &d)));
    assert_eq!(result["is_error"], false, "{result}");
    assert_eq!(result["result"], reply_text(), "{result}");

    // It spoke Anthropic Messages, with the beta query, the token as x-api-key, streaming.
    let messages: Vec<&Exchange> = exchanges
        .iter()
        .filter(|x| x.request.target() == "/v1/messages?beta=true")
        .collect();
    assert!(
        !messages.is_empty(),
        "no /v1/messages?beta=true: {exchanges:#?}"
    );
    let main = messages
        .iter()
        .find(|x| {
            x.request
                .json()
                .is_some_and(|b| b["messages"].to_string().contains(prompt))
        })
        .expect("the prompt went to /v1/messages");
    assert_eq!(main.request.header("x-api-key"), Some(GATEWAY_TOKEN));
    assert_eq!(main.request.header("anthropic-version"), Some("2023-06-01"));
    let body = main.request.json().unwrap();
    assert_eq!(body["model"], "ollama/llama3.2:3b");
    assert_eq!(body["stream"], true);
    let resp = main.response.as_ref().expect("an answer");
    assert!(resp.start.contains(" 200 "), "{resp:?}");
    assert_eq!(resp.header("x-openclawd-model"), Some("ollama/llama3.2:3b"));
    // Every answer the gateway gave this client was a success.
    for x in &exchanges {
        let status = x.response.as_ref().map(|r| r.start.clone());
        assert!(
            status.as_deref().is_some_and(|s| s.contains(" 200 ")),
            "{} got {status:?}",
            x.request.start
        );
    }
    // And the prompt reached the model.
    assert!(
        chats_asking(&env, prompt) >= 1,
        "{:#?}",
        env.ollama_requests()
    );
    // The monitoring page's ring saw the answer.
    let record = ring_shows_streamed_answer(&d, "ollama/llama3.2:3b");
    assert_eq!(record["fallback"], false, "{record}");
}

#[test]
#[ignore = "needs @openai/codex from npm: scripts/install-npm-clients.sh"]
fn codex_answers_one_prompt_through_the_gateway() {
    let Some(codex) = npm_client("codex", "@openai/codex") else {
        return;
    };
    let (env, d) = gateway();
    let relay = HttpRecorder::start(env.gateway_port);
    let trap = ProxyTrap::start();
    let prompt = "Say hi to the npm-clients test.";

    let out = run_codex(&codex, &env, &relay, &trap, "ollama/llama3.2:3b", prompt);
    let exchanges = relay.exchanges();
    print_traffic("codex", &exchanges, &trap, &env);
    assert!(
        out.status.success(),
        "codex exec failed\n{}",
        explain(&out, &d)
    );
    // `--json`: one event per line; the agent's answer is an `agent_message` item.
    let stdout = String::from_utf8_lossy(&out.stdout);
    let answers: Vec<String> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["type"] == "item.completed" && e["item"]["type"] == "agent_message")
        .filter_map(|e| e["item"]["text"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(answers, [reply_text()], "{}", explain(&out, &d));

    let responses: Vec<&Exchange> = exchanges
        .iter()
        .filter(|x| x.request.target() == "/v1/responses")
        .collect();
    let main = responses
        .iter()
        .find(|x| {
            x.request
                .json()
                .is_some_and(|b| b["input"].to_string().contains(prompt))
        })
        .unwrap_or_else(|| panic!("the prompt went to /v1/responses: {exchanges:#?}"));
    assert_eq!(
        main.request.header("authorization"),
        Some(format!("Bearer {GATEWAY_TOKEN}").as_str())
    );
    let body = main.request.json().unwrap();
    assert_eq!(body["model"], "ollama/llama3.2:3b");
    assert_eq!(body["stream"], true);
    assert_eq!(body["store"], false);
    let resp = main.response.as_ref().expect("an answer");
    assert!(resp.start.contains(" 200 "), "{resp:?}");
    assert_eq!(resp.header("x-openclawd-model"), Some("ollama/llama3.2:3b"));
    // Codex's default web search and sub-agent tools: left out for the local model, and said.
    let dropped = resp.header("x-openclawd-tools-dropped").unwrap_or("");
    assert!(dropped.contains("web_search"), "{resp:?}");
    assert!(
        resp.body_text().contains("event: response.completed"),
        "{}",
        resp.body_text()
    );
    assert!(
        chats_asking(&env, prompt) >= 1,
        "{:#?}",
        env.ollama_requests()
    );
    // The monitoring page's ring saw the answer.
    let record = ring_shows_streamed_answer(&d, "ollama/llama3.2:3b");
    assert_eq!(record["fallback"], false, "{record}");
}

/// A model the gateway does not know: what each client shows the user must be the gateway's
/// own 404, in that API's shape, naming the model.
const UNKNOWN_MODEL: &str = "claude-9-nonexistent";

#[test]
#[ignore = "needs @anthropic-ai/claude-code from npm: scripts/install-npm-clients.sh"]
fn claude_code_shows_the_gateways_404_for_an_unknown_model() {
    let Some(claude) = npm_client("claude", "@anthropic-ai/claude-code") else {
        return;
    };
    let (env, d) = gateway();
    let relay = HttpRecorder::start(env.gateway_port);
    let trap = ProxyTrap::start();
    let out = run_claude(&claude, &env, &relay, &trap, UNKNOWN_MODEL, "hi");
    let exchanges = relay.exchanges();
    print_traffic("claude-404", &exchanges, &trap, &env);
    let x = exchanges
        .iter()
        .find(|x| x.request.target() == "/v1/messages?beta=true")
        .expect("claude asked /v1/messages");
    let resp = x.response.as_ref().expect("an answer");
    assert!(resp.start.contains(" 404 "), "{resp:?}");
    let body = resp.json().expect("a JSON error body");
    assert_eq!(body["type"], "error", "{body}");
    assert_eq!(body["error"]["type"], "not_found_error", "{body}");
    // Claude Code reports the failure as the API's 404 for that model (in its own words).
    let result: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("claude's --output-format json: {e}\n{}", explain(&out, &d)));
    eprintln!("claude said: {result}");
    assert_eq!(result["is_error"], true, "{result}");
    assert_eq!(result["api_error_status"], 404, "{result}");
    assert!(
        result["result"]
            .as_str()
            .is_some_and(|r| r.contains(UNKNOWN_MODEL)),
        "{result}"
    );
    assert_eq!(chats_asking(&env, "hi"), 0, "nothing reached the model");
}

#[test]
#[ignore = "needs @openai/codex from npm: scripts/install-npm-clients.sh"]
fn codex_shows_the_gateways_404_for_an_unknown_model() {
    let Some(codex) = npm_client("codex", "@openai/codex") else {
        return;
    };
    let (env, d) = gateway();
    let relay = HttpRecorder::start(env.gateway_port);
    let trap = ProxyTrap::start();
    let out = run_codex(&codex, &env, &relay, &trap, UNKNOWN_MODEL, "hi");
    let exchanges = relay.exchanges();
    print_traffic("codex-404", &exchanges, &trap, &env);
    let x = exchanges
        .iter()
        .find(|x| x.request.target() == "/v1/responses")
        .expect("codex asked /v1/responses");
    let resp = x.response.as_ref().expect("an answer");
    assert!(resp.start.contains(" 404 "), "{resp:?}");
    let body = resp.json().expect("a JSON error body");
    assert_eq!(body["error"]["code"], "model_not_found", "{body}");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("codex said: {said}");
    assert!(!out.status.success(), "{}", explain(&out, &d));
    assert!(said.contains(UNKNOWN_MODEL), "{}", explain(&out, &d));
}

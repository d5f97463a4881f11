//! `openclawd bench` end to end: the real daemon and gateway in front of the `ollama` double,
//! which is told how fast to be. The tolerances check the arithmetic (tokens over time, which
//! time), never the speed of this machine.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

const TOKEN_DELAY_MS: u64 = 40;
const FIRST_TOKEN_DELAY_MS: u64 = 150;
const LOAD_DURATION_MS: u64 = 300;
const REPLY_TOKENS: usize = 20;

/// Two installed models, one configured model Ollama does not have, a gateway token, no
/// preloading (so the warm-up pays the load), and a double with set delays.
fn bench_env() -> TestEnv {
    let mut env = TestEnv::new();
    env.extra_env
        .push(("OPENCLAW_GATEWAY_TOKEN".into(), "bench-token".into()));
    env.write_own_settings("{ ollama: { preload: false } }");
    env.write_config(&format!(
        "{{ models: {{ providers: {{ ollama: {{ baseUrl: 'http://127.0.0.1:{}', api: 'ollama', models: [
            {{ id: 'llama3.2:3b', name: 'Llama', tools: true, contextWindow: 131072 }},
            {{ id: 'qwen3-coder:latest', name: 'Qwen', tools: true, contextWindow: 32768 }},
            {{ id: 'ghost:7b', name: 'Not installed', tools: true, contextWindow: 8192 }} ] }} }} }},
           agents: {{ defaults: {{ model: {{ primary: 'ollama/llama3.2:3b' }} }} }} }}",
        env.ollama_port
    ));
    let tokens: Vec<String> = (0..REPLY_TOKENS).map(|i| format!("tok{i} ")).collect();
    env.write_control(&json!({
        "token_delay_ms": TOKEN_DELAY_MS,
        "first_token_delay_ms": FIRST_TOKEN_DELAY_MS,
        "load_duration_ms": LOAD_DURATION_MS,
        "reply_tokens": tokens,
    }));
    env
}

fn start_ready(env: &TestEnv) -> Daemon {
    let d = env.start();
    d.wait_until(
        "both installed models available",
        Duration::from_secs(30),
        |s| {
            ["ollama/llama3.2:3b", "ollama/qwen3-coder:latest"]
                .iter()
                .all(|r| {
                    s["models"].as_array().is_some_and(|ms| {
                        ms.iter().any(|m| m["ref"] == *r && m["available"] == true)
                    })
                })
        },
    );
    d
}

fn row<'a>(report: &'a Value, model: &str) -> &'a Value {
    report["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["model"] == model)
        .unwrap_or_else(|| panic!("no row for {model} in {report:#}"))
}

#[test]
fn bench_json_measures_what_the_double_was_told_and_reports_the_missing_model() {
    let env = bench_env();
    let _d = start_ready(&env);

    let (status, stdout, stderr) = env.cli(&["bench", "--json", "--runs", "3"]);
    assert!(status.success(), "exit {status:?}\n{stdout}\n{stderr}");
    let report: Value = serde_json::from_str(&stdout).expect("--json prints valid JSON");

    for key in [
        "gateway",
        "prompt",
        "runs",
        "max_tokens",
        "succeeded",
        "failed",
        "models",
        "fastest",
        "fastest_with_tools",
        "conclusion",
    ] {
        assert!(report.get(key).is_some(), "{key} missing: {report:#}");
    }
    assert_eq!(report["runs"], 3);
    assert_eq!(report["succeeded"], 2);
    assert_eq!(report["failed"], 1);
    let models = report["models"].as_array().unwrap();
    assert_eq!(models.len(), 3);
    for m in models {
        for key in [
            "model",
            "requested",
            "ok",
            "error",
            "provider",
            "context_window",
            "tools",
            "reasoning",
            "load_ms",
            "warmup_ms",
            "warmup_native",
            "ttft_ms",
            "tokens_per_second",
            "total_ms",
            "completion_tokens",
            "token_source",
            "runs_ok",
            "runs_failed",
            "runs",
        ] {
            assert!(m.get(key).is_some(), "{key} missing from {m:#}");
        }
    }

    // The double streams one token every TOKEN_DELAY_MS: the decode speed cannot be above
    // 1000/TOKEN_DELAY_MS (plus rounding), and only a wrong formula (e.g. counting the time to
    // the first token as decoding) would push it far below.
    let ceiling = 1000.0 / TOKEN_DELAY_MS as f64;
    for r in ["ollama/llama3.2:3b", "ollama/qwen3-coder:latest"] {
        let m = row(&report, r);
        assert_eq!(m["ok"], true, "{m:#}");
        assert_eq!(m["runs_ok"], 3);
        assert_eq!(m["runs_failed"], 0);
        assert_eq!(m["error"], Value::Null);
        assert_eq!(m["provider"], "ollama");
        assert_eq!(m["tools"], true);
        assert_eq!(m["token_source"], "usage");
        assert_eq!(m["completion_tokens"]["median"], REPLY_TOKENS as f64);
        let tps = &m["tokens_per_second"];
        for k in ["median", "min", "max"] {
            let v = tps[k].as_f64().unwrap();
            assert!(v <= ceiling * 1.2, "{r} {k} tok/s {v} > {ceiling}·1.2");
            assert!(v >= ceiling / 3.0, "{r} {k} tok/s {v} far below {ceiling}");
        }
        assert!(tps["min"].as_f64() <= tps["median"].as_f64());
        assert!(tps["median"].as_f64() <= tps["max"].as_f64());
        let ttft_min = m["ttft_ms"]["min"].as_f64().unwrap();
        assert!(
            ttft_min >= FIRST_TOKEN_DELAY_MS as f64,
            "{r} TTFT {ttft_min} ms < the double's {FIRST_TOKEN_DELAY_MS} ms"
        );
        let total_min = m["total_ms"]["min"].as_f64().unwrap();
        let least = (FIRST_TOKEN_DELAY_MS + TOKEN_DELAY_MS * REPLY_TOKENS as u64) as f64;
        assert!(total_min >= least, "{r} total {total_min} ms < {least} ms");
        // Nothing was preloaded: the warm-up paid the load, and Ollama said so.
        let load = m["load_ms"].as_f64().expect("Ollama's load_duration");
        assert!(load >= LOAD_DURATION_MS as f64, "{r} load {load} ms");
        assert!(m["warmup_ms"].as_f64().unwrap() >= load);
        let runs = m["runs"].as_array().unwrap();
        assert_eq!(runs.len(), 3);
        for run in runs {
            assert_eq!(run["ok"], true, "{run:#}");
            assert!(run["ttft_ms"].as_f64().unwrap() < run["total_ms"].as_f64().unwrap());
        }
    }

    // The model Ollama does not have: a failed row, with Ollama's reason, last.
    let ghost = &models[2];
    assert_eq!(ghost["model"], "ollama/ghost:7b");
    assert_eq!(ghost["ok"], false);
    assert_eq!(ghost["context_window"], 8192);
    let why = ghost["error"].as_str().unwrap();
    assert!(why.contains("not found"), "{why}");
    assert_eq!(ghost["tokens_per_second"], Value::Null);

    // Sorted by speed; the conclusion names the fastest model with tools.
    let first = models[0]["tokens_per_second"]["median"].as_f64().unwrap();
    let second = models[1]["tokens_per_second"]["median"].as_f64().unwrap();
    assert!(first >= second);
    assert_eq!(report["fastest_with_tools"], models[0]["model"]);
    let conclusion = report["conclusion"].as_str().unwrap();
    assert!(
        conclusion.starts_with(&format!(
            "Fastest model with tools: {}",
            models[0]["model"].as_str().unwrap()
        )),
        "{conclusion}"
    );

    // Every bench request was pinned to its model: the missing one was not answered by another.
    let chats: Vec<Value> = env
        .ollama_requests()
        .into_iter()
        .filter(|r| r["path"] == "/api/chat")
        .collect();
    let ghost_attempts = chats
        .iter()
        .filter(|r| r["body"]["model"] == "ghost:7b")
        .count();
    assert_eq!(
        ghost_attempts, 1,
        "one warm-up, no timed runs after it failed"
    );
    let for_model = |m: &str| chats.iter().filter(|r| r["body"]["model"] == m).count();
    assert_eq!(for_model("llama3.2:3b"), 4, "one warm-up and three runs");
    assert_eq!(for_model("qwen3-coder:latest"), 4);
}

#[test]
fn bench_table_shows_failed_rows_and_exits_non_zero_only_when_nothing_answered() {
    let env = bench_env();
    let _d = start_ready(&env);

    let (status, stdout, stderr) = env.cli(&[
        "bench",
        "--model",
        "ollama/llama3.2:3b",
        "--model",
        "ollama/ghost:7b",
        "--runs",
        "1",
    ]);
    assert!(status.success(), "exit {status:?}\n{stdout}\n{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with("MODEL"), "{stdout}");
    for column in [
        "CONTEXT",
        "TOOLS",
        "REASONING",
        "LOAD",
        "TTFT",
        "TOK/S",
        "TOTAL",
    ] {
        assert!(lines[0].contains(column), "{column} missing: {stdout}");
    }
    assert!(lines[1].starts_with("ollama/llama3.2:3b"), "{stdout}");
    assert!(lines[1].contains("131072") && lines[1].contains(" ms"));
    assert!(
        lines[2].starts_with("ollama/ghost:7b")
            && lines[2].contains("FAILED: ")
            && lines[2].contains("not found"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Fastest model with tools: ollama/llama3.2:3b at "),
        "{stdout}"
    );
    // Not a terminal: no progress bar, no colour.
    assert!(
        !stdout.contains('\x1b') && !stderr.contains('\x1b'),
        "{stderr}"
    );

    let (status, stdout, _) = env.cli(&["bench", "--model", "ollama/ghost:7b", "--runs", "1"]);
    assert_eq!(status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("No model answered"), "{stdout}");
}

#[test]
fn bench_without_a_running_daemon_says_so() {
    let env = TestEnv::new();
    let (status, stdout, stderr) = env.cli(&["bench", "--json"]);
    assert_eq!(status.code(), Some(3), "{stdout}{stderr}");
    let v: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["running"], false);
}

#[test]
fn metrics_show_per_model_ttft_and_tokens_per_second_after_a_streamed_request() {
    let env = bench_env();
    let d = start_ready(&env);

    let resp = d.chat(
        &json!({"model": "ollama/qwen3-coder:latest", "stream": true,
                "messages": [{"role": "user", "content": "hi"}]}),
        &[],
    );
    assert_eq!(resp.status(), 200);
    assert!(resp.text().unwrap().ends_with("data: [DONE]\n\n"));

    let (code, text) = d.get("/metrics").unwrap();
    assert_eq!(code, 200);
    let sample = |name: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(name) && l.contains("model=\"ollama/qwen3-coder:latest\""))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} for the model in\n{text}"))
    };
    assert_eq!(sample("openclawd_time_to_first_token_seconds_count"), 1.0);
    let ttft = sample("openclawd_time_to_first_token_seconds_sum");
    assert!(
        ttft >= (LOAD_DURATION_MS + FIRST_TOKEN_DELAY_MS) as f64 / 1000.0,
        "{ttft}"
    );
    assert_eq!(sample("openclawd_tokens_per_second_count"), 1.0);
    // Without `include_usage` the gateway counts chunks: one per token from Ollama.
    let rate = sample("openclawd_tokens_per_second_sum");
    let ceiling = 1000.0 / TOKEN_DELAY_MS as f64;
    assert!(rate <= ceiling * 1.2 && rate >= ceiling / 3.0, "{rate}");
}

#[test]
fn a_skipped_model_shows_as_skipped_with_its_reason_and_is_not_a_failure() {
    let mut env = TestEnv::new();
    env.extra_env
        .push(("OLLAMA_API_KEY".into(), "ollama-local".into()));
    env.write_own_settings("{ ollama: { preload: false } }");
    env.write_config("{ agents: { defaults: { model: { primary: 'ollama/llama3.2:3b' } } } }");
    env.write_control(&json!({
        "models": [
            {"name": "llama3.2:3b"},
            {"name": "gemma:2b", "capabilities": ["completion"]},
        ],
        "reply_tokens": ["a ", "b ", "c "],
    }));
    let d = env.start();
    d.wait_until("discovery skipped gemma", Duration::from_secs(30), |s| {
        s["skipped_models"]
            .as_array()
            .is_some_and(|sk| sk.iter().any(|m| m["ref"] == "ollama/gemma:2b"))
            && s["models"].as_array().is_some_and(|ms| {
                ms.iter()
                    .any(|m| m["ref"] == "ollama/llama3.2:3b" && m["available"] == true)
            })
    });

    let (status, stdout, stderr) = env.cli(&["bench", "--json", "--runs", "1"]);
    assert!(status.success(), "exit {status:?}\n{stdout}\n{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["succeeded"], 1);
    assert_eq!(report["failed"], 0, "a skipped model is not a failure");
    assert_eq!(report["skipped"], 1);
    let gemma = row(&report, "ollama/gemma:2b");
    assert_eq!(gemma["ok"], false);
    assert_eq!(gemma["error"], Value::Null);
    assert!(
        gemma["skipped"]
            .as_str()
            .is_some_and(|s| s.starts_with("no tools capability (fix: ")),
        "{gemma:#}"
    );
    // Never asked for: skipped models get no request.
    assert!(!env
        .ollama_requests()
        .iter()
        .any(|r| r["path"] == "/api/chat" && r["body"]["model"] == "gemma:2b"));

    let (status, stdout, _) = env.cli(&["bench", "--runs", "1"]);
    assert!(status.success(), "{stdout}");
    let line = stdout
        .lines()
        .find(|l| l.starts_with("ollama/gemma:2b"))
        .unwrap_or_else(|| panic!("no gemma row:\n{stdout}"));
    assert!(line.contains("skipped: no tools capability"), "{line}");
    assert!(!stdout.contains("FAILED"), "{stdout}");
    assert!(
        stdout.contains("1 of 1 models answered (1 skipped, not routable)"),
        "{stdout}"
    );

    // Named explicitly, by ref or bare id: still skipped, not sent.
    let (_, stdout, _) = env.cli(&["bench", "--model", "gemma:2b", "--runs", "1"]);
    assert!(stdout.contains("skipped: no tools capability"), "{stdout}");
}

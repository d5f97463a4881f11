//! The routing gateway end to end: real openclawd, the `ollama` double, loopback cloud doubles.

mod common;

use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

use common::cloud::{Behaviour, FakeCloud};
use common::sse::{chat_chunks, content_of, sse_data};
use common::*;
use serde_json::{json, Value};

const CLOUD_KEY: &str = "sk-cloud-test-key";

fn ollama_provider(env: &TestEnv) -> String {
    format!(
        "ollama: {{ baseUrl: 'http://127.0.0.1:{}', api: 'ollama', models: [
            {{ id: 'llama3.2:3b', name: 'Llama', contextWindow: 131072, maxTokens: 8192 }},
            {{ id: 'gpt-oss:20b', name: 'GPT-OSS', reasoning: true, contextWindow: 131072 }},
            {{ id: 'qwen3-coder:latest', name: 'Qwen', contextWindow: 8192 }} ] }}",
        env.ollama_port
    )
}

fn cloud_provider(id: &str, cloud: &FakeCloud, api: &str, ctx: u64) -> String {
    let base = if api == "anthropic-messages" {
        cloud.base()
    } else {
        format!("{}/v1", cloud.base())
    };
    format!(
        "'{id}': {{ baseUrl: '{base}', apiKey: '${{CLOUD_KEY}}', api: '{api}', models: [ {{ id: 'm1', name: 'M1', contextWindow: {ctx}, maxTokens: 1000 }} ] }}"
    )
}

fn write(env: &mut TestEnv, providers: &[String], primary: &str, fallbacks: &[&str], extra: &str) {
    env.extra_env.push(("CLOUD_KEY".into(), CLOUD_KEY.into()));
    let fb: Vec<String> = fallbacks.iter().map(|f| format!("'{f}'")).collect();
    env.write_config(&format!(
        "{{ models: {{ providers: {{ {} }} }},
           agents: {{ defaults: {{ model: {{ primary: '{primary}', fallbacks: [{}] }}, models: {{ {extra} }} }} }} }}",
        providers.join(", "),
        fb.join(", ")
    ));
}

fn chat(model: &str, stream: bool) -> Value {
    json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "Why is the sky blue?"}]})
}

#[test]
fn streaming_chat_reaches_ollama_natively_with_num_ctx_and_comes_back_as_openai_sse() {
    let mut env = TestEnv::new();
    let p = ollama_provider(&env);
    write(
        &mut env,
        &[p],
        "ollama/llama3.2:3b",
        &[],
        "'ollama/gpt-oss:20b': { params: { num_ctx: 4096 } }",
    );
    let d = env.start();
    d.wait_available("ollama/llama3.2:3b");

    let resp = d.chat(&chat("ollama/llama3.2:3b", true), &[]);
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    assert_eq!(resp.headers()["x-openclawd-model"], "ollama/llama3.2:3b");
    assert_eq!(resp.headers()["x-openclawd-attempts"], "1");
    assert!(resp.headers().get("x-openclawd-fallback").is_none());
    let events = sse_data(&resp.text().unwrap());
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    assert!(!content_of(&chat_chunks(&events)).is_empty());
    let first: Value = serde_json::from_str(&events[0]).unwrap();
    assert_eq!(first["object"], "chat.completion.chunk");

    // Non-streaming, and params.num_ctx winning over min(contextWindow, 32768).
    let resp = d.chat(&chat("ollama/gpt-oss:20b", false), &[]);
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert!(body["choices"][0]["message"]["content"].is_string());

    let chats: Vec<Value> = env
        .ollama_requests()
        .into_iter()
        .filter(|r| r["path"] == "/api/chat")
        .collect();
    let by_model = |m: &str| {
        chats
            .iter()
            .find(|r| r["body"]["model"] == m)
            .cloned()
            .unwrap()
    };
    assert_eq!(by_model("llama3.2:3b")["body"]["options"]["num_ctx"], 32768);
    assert_eq!(by_model("gpt-oss:20b")["body"]["options"]["num_ctx"], 4096);
}

#[test]
fn chunks_reach_the_client_as_they_are_produced() {
    let mut env = TestEnv::new();
    env.write_control(
        &json!({"token_delay_ms": 150, "reply_tokens": ["a", "b", "c", "d", "e", "f"]}),
    );
    let p = ollama_provider(&env);
    write(&mut env, &[p], "ollama/llama3.2:3b", &[], "");
    let d = env.start();
    d.wait_available("ollama/llama3.2:3b");
    let resp = d.chat(&chat("default", true), &[]);
    let mut arrivals = Vec::new();
    let start = Instant::now();
    for line in BufReader::new(resp).lines() {
        let line = line.unwrap();
        if line.starts_with("data: ") && line != "data: [DONE]" {
            arrivals.push(start.elapsed());
        }
    }
    assert!(arrivals.len() >= 6, "{arrivals:?}");
    // Produced 150 ms apart: a buffering gateway would deliver them together at the end.
    let spread = *arrivals.last().unwrap() - arrivals[0];
    assert!(
        spread >= Duration::from_millis(450),
        "chunks arrived bunched: {arrivals:?}"
    );
}

#[test]
fn local_ollama_down_falls_back_to_the_cloud_with_its_key() {
    let mut env = TestEnv::new();
    env.write_own_settings("{ ollama: { manage: false } }");
    let cloud = FakeCloud::openai(CLOUD_KEY);
    let providers = [
        ollama_provider(&env),
        cloud_provider("cloud", &cloud, "openai-completions", 128000),
    ];
    write(
        &mut env,
        &providers,
        "ollama/llama3.2:3b",
        &["cloud/m1"],
        "",
    );
    let d = env.start();
    d.wait_available("cloud/m1");

    for stream in [false, true] {
        let resp = d.chat(&chat("default", stream), &[]);
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["x-openclawd-model"], "cloud/m1");
        assert_eq!(resp.headers()["x-openclawd-fallback"], "true");
        let text = resp.text().unwrap();
        assert!(
            text.contains("from") && text.contains("the cloud"),
            "{text}"
        );
    }
    let got = cloud.received();
    assert_eq!(
        got[0].headers["authorization"],
        format!("Bearer {CLOUD_KEY}")
    );
    assert_eq!(
        got[0].body["model"], "m1",
        "the upstream sees its own model id"
    );
}

#[test]
fn a_failed_model_cools_down_and_a_bad_request_does_not_fall_over() {
    let mut env = TestEnv::new();
    env.write_own_settings("{ ollama: { manage: false } }");
    let a = FakeCloud::openai(CLOUD_KEY);
    let b = FakeCloud::openai(CLOUD_KEY);
    let providers = [
        cloud_provider("a", &a, "openai-completions", 128000),
        cloud_provider("b", &b, "openai-completions", 128000),
    ];
    write(&mut env, &providers, "a/m1", &["b/m1"], "");
    let d = env.start();
    d.wait_available("a/m1");
    a.set(Behaviour::Status(
        500,
        json!({"error":{"message":"boom","type":"api_error","param":null,"code":null}}).to_string(),
    ));
    let resp = d.chat(&chat("a/m1", false), &[]);
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-openclawd-model"], "b/m1");
    // a is cooling down now: the next request skips it without trying it.
    let before = a.received().len();
    let resp = d.chat(&chat("a/m1", false), &[]);
    assert_eq!(resp.headers()["x-openclawd-model"], "b/m1");
    assert_eq!(resp.headers()["x-openclawd-attempts"], "1");
    assert_eq!(a.received().len(), before, "a cooling-down model was tried");
    // Pinned to a: no fallback, and the 502 says why.
    let resp = d.chat(&chat("a/m1", false), &[("x-openclawd-no-fallback", "1")]);
    assert_eq!(resp.status(), 502);
    assert!(resp.text().unwrap().contains("cooldown"));

    // A malformed request is the client's fault: relayed as is, no fallback.
    let mut env2 = TestEnv::new();
    env2.write_own_settings("{ ollama: { manage: false } }");
    let a2 = FakeCloud::openai(CLOUD_KEY);
    let b2 = FakeCloud::openai(CLOUD_KEY);
    let providers = [
        cloud_provider("a", &a2, "openai-completions", 128000),
        cloud_provider("b", &b2, "openai-completions", 128000),
    ];
    write(&mut env2, &providers, "a/m1", &["b/m1"], "");
    a2.set(Behaviour::Status(400, json!({"error":{"message":"bad temperature","type":"invalid_request_error","param":"temperature","code":null}}).to_string()));
    let d2 = env2.start();
    d2.wait_available("a/m1");
    let resp = d2.chat(&chat("a/m1", false), &[]);
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().unwrap();
    assert_eq!(body["error"]["message"], "bad temperature");
    assert!(b2.received().is_empty(), "a 400 must not fall over");
}

#[test]
fn every_failover_class_is_classified_on_a_fresh_gateway() {
    for code in [500u16, 503, 429, 408, 404, 401, 403] {
        let mut env = TestEnv::new();
        env.write_own_settings("{ ollama: { manage: false } }");
        let a = FakeCloud::openai(CLOUD_KEY);
        let b = FakeCloud::openai(CLOUD_KEY);
        let providers = [
            cloud_provider("a", &a, "openai-completions", 128000),
            cloud_provider("b", &b, "openai-completions", 128000),
        ];
        write(&mut env, &providers, "a/m1", &["b/m1"], "");
        a.set(Behaviour::Status(code, json!({"error":{"message":format!("failure {code}"),"type":"x","param":null,"code":null}}).to_string()));
        let d = env.start();
        d.wait_available("a/m1");
        let resp = d.chat(&chat("a/m1", true), &[]);
        assert_eq!(resp.status(), 200, "HTTP {code} should fall over");
        assert_eq!(resp.headers()["x-openclawd-model"], "b/m1", "HTTP {code}");
        assert_eq!(resp.headers()["x-openclawd-attempts"], "2");
        let st = d.status().unwrap();
        let a_entry = model_status(&st, "a/m1");
        assert!(
            a_entry["cooldown_until"].is_string(),
            "a/m1 should cool down after {code}"
        );
    }
}

#[test]
fn a_context_overflow_falls_over_to_a_larger_window_only() {
    let mut env = TestEnv::new();
    env.write_own_settings("{ ollama: { manage: false } }");
    let small = FakeCloud::openai(CLOUD_KEY);
    let same = FakeCloud::openai(CLOUD_KEY);
    let big = FakeCloud::openai(CLOUD_KEY);
    small.set(Behaviour::Status(400, json!({"error":{"message":"This model's maximum context length is 8192 tokens","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}).to_string()));
    let providers = [
        cloud_provider("small", &small, "openai-completions", 8192),
        cloud_provider("same", &same, "openai-completions", 8192),
        cloud_provider("big", &big, "openai-completions", 200000),
    ];
    write(&mut env, &providers, "small/m1", &["same/m1", "big/m1"], "");
    let d = env.start();
    d.wait_available("small/m1");
    let resp = d.chat(&chat("default", false), &[]);
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-openclawd-model"], "big/m1");
    assert!(
        same.received().is_empty(),
        "a model with no larger window was tried"
    );
}

#[test]
fn after_the_first_byte_an_upstream_failure_ends_the_stream_with_an_error_event() {
    let mut env = TestEnv::new();
    env.write_own_settings("{ ollama: { manage: false } }");
    let a = FakeCloud::openai(CLOUD_KEY);
    let b = FakeCloud::openai(CLOUD_KEY);
    a.set(Behaviour::CutMidStream);
    let providers = [
        cloud_provider("a", &a, "openai-completions", 128000),
        cloud_provider("b", &b, "openai-completions", 128000),
    ];
    write(&mut env, &providers, "a/m1", &["b/m1"], "");
    let d = env.start();
    d.wait_available("a/m1");
    let resp = d.chat(&chat("default", true), &[]);
    assert_eq!(resp.status(), 200);
    let events = sse_data(&resp.text().unwrap());
    assert_cut_stream(&events, "from the cloud");
    assert!(
        b.received().is_empty(),
        "no second model after the first byte"
    );

    // The same through the native Ollama path: an error line after two of four pieces.
    let mut env = TestEnv::new();
    env.write_control(&json!({
        "midstream_error_after": 2,
        "reply_tokens": ["Blue ", "light ", "scatters ", "most."],
    }));
    let p = ollama_provider(&env);
    write(&mut env, &[p], "ollama/llama3.2:3b", &[], "");
    let d = env.start();
    d.wait_available("ollama/llama3.2:3b");
    let resp = d.chat(&chat("default", true), &[]);
    assert_eq!(resp.status(), 200);
    let events = sse_data(&resp.text().unwrap());
    assert_cut_stream(&events, "Blue light ");
}

/// A stream cut after its first bytes: the content produced before the cut arrives intact, in
/// chunks that parse, then one OpenAI error event ends it — no `[DONE]`, nothing after.
fn assert_cut_stream(events: &[String], content_before: &str) {
    let (last, before) = events.split_last().expect("some events");
    let last: Value = serde_json::from_str(last)
        .unwrap_or_else(|e| panic!("the last event is not JSON ({e}): {events:?}"));
    assert!(last["error"]["message"].is_string(), "{events:?}");
    assert!(
        !events.iter().any(|e| e == "[DONE]"),
        "a cut stream claims to be complete: {events:?}"
    );
    for e in before {
        let chunk: Value = serde_json::from_str(e)
            .unwrap_or_else(|err| panic!("an event before the error does not parse ({err}): {e}"));
        assert_eq!(chunk["object"], "chat.completion.chunk", "{e}");
        assert!(chunk.get("error").is_none(), "two error events: {events:?}");
    }
    assert_eq!(
        content_of(&chat_chunks(before)),
        content_before,
        "{events:?}"
    );
}

#[test]
fn anthropic_is_translated_both_ways_streaming_included() {
    let mut env = TestEnv::new();
    env.write_own_settings("{ ollama: { manage: false } }");
    let claude = FakeCloud::anthropic(CLOUD_KEY);
    let providers = [cloud_provider(
        "anthropic",
        &claude,
        "anthropic-messages",
        200000,
    )];
    write(&mut env, &providers, "anthropic/m1", &[], "");
    let d = env.start();
    d.wait_available("anthropic/m1");

    let req = json!({"model": "anthropic/m1", "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi"}]});
    let resp = d.chat(&req, &[]);
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().unwrap();
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "Hello from Claude"
    );
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert_eq!(body["usage"]["completion_tokens"], 4);

    let mut sreq = req.clone();
    sreq["stream"] = json!(true);
    sreq["stream_options"] = json!({"include_usage": true});
    let events = sse_data(&d.chat(&sreq, &[]).text().unwrap());
    assert_eq!(content_of(&chat_chunks(&events)), "Hello from Claude");
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let usage = events
        .iter()
        .filter_map(|e| serde_json::from_str::<Value>(e).ok())
        .find(|v| v["usage"].is_object())
        .expect("a usage chunk");
    assert_eq!(usage["usage"]["prompt_tokens"], 12);

    let sent = &claude.received()[0];
    assert_eq!(sent.body["system"], "Be brief.");
    assert_eq!(
        sent.body["max_tokens"], 1000,
        "max_tokens from the model's maxTokens"
    );
    assert_eq!(sent.headers["x-api-key"], CLOUD_KEY);
}

#[test]
fn the_real_openclaw_request_replays_to_every_provider_kind() {
    let mut env = TestEnv::new();
    let openai = FakeCloud::openai(CLOUD_KEY);
    let claude = FakeCloud::anthropic(CLOUD_KEY);
    let providers = [
        ollama_provider(&env),
        cloud_provider("oai", &openai, "openai-completions", 200000),
        cloud_provider("claude", &claude, "anthropic-messages", 200000),
    ];
    write(&mut env, &providers, "ollama/llama3.2:3b", &[], "");
    let d = env.start();
    d.wait_available("ollama/llama3.2:3b");
    let mut req: Value = serde_json::from_slice(
        &std::fs::read(fixture("openclaw/upstream-chat-request.json")).unwrap(),
    )
    .unwrap();
    for model in ["ollama/llama3.2:3b", "oai/m1", "claude/m1"] {
        req["model"] = json!(model);
        let resp = d.chat(&req, &[("x-openclawd-no-fallback", "1")]);
        assert_eq!(resp.status(), 200, "{model}");
        let events = sse_data(&resp.text().unwrap());
        assert_eq!(
            events.last().map(String::as_str),
            Some("[DONE]"),
            "{model}: {events:?}"
        );
    }
    let tools = req["tools"].as_array().unwrap().len();
    assert_eq!(
        openai.received()[0].body["tools"].as_array().unwrap().len(),
        tools
    );
    assert_eq!(
        claude.received()[0].body["tools"].as_array().unwrap().len(),
        tools
    );
    let ollama_chat = env
        .ollama_requests()
        .into_iter()
        .find(|r| r["path"] == "/api/chat")
        .unwrap();
    assert_eq!(
        ollama_chat["body"]["tools"].as_array().unwrap().len(),
        tools
    );
}

#[test]
fn errors_are_openai_shaped_400_404_413_502() {
    let mut env = TestEnv::new();
    env.write_own_settings("{ ollama: { manage: false }, gateway: { maxBodyBytes: 4096 } }");
    let dead = free_port();
    let providers = [format!(
        "dead: {{ baseUrl: 'http://127.0.0.1:{dead}/v1', apiKey: 'x', api: 'openai-completions', models: [{{ id: 'm1', name: 'm' }}] }}"
    )];
    write(
        &mut env,
        &providers,
        "dead/m1",
        &[],
        "'dead/m1': { alias: 'dm' }",
    );
    let d = env.start();
    let url = format!("{}/v1/chat/completions", d.base);

    let (code, body) = http_post(&url, &[], "{not json").unwrap();
    assert_eq!(code, 400);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["error"]["type"],
        "invalid_request_error"
    );
    let (code, _) = http_post(&url, &[], r#"{"model":"dm"}"#).unwrap();
    assert_eq!(code, 400, "missing messages");

    let (code, body) = http_post(
        &url,
        &[],
        r#"{"model":"nope","messages":[{"role":"user","content":"x"}]}"#,
    )
    .unwrap();
    assert_eq!(code, 404);
    let msg = serde_json::from_str::<Value>(&body).unwrap()["error"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(msg.contains("dead/m1") && msg.contains("dm"), "{msg}");

    let big = format!(
        r#"{{"messages":[{{"role":"user","content":"{}"}}]}}"#,
        "x".repeat(8000)
    );
    let (code, body) = http_post(&url, &[], &big).unwrap();
    assert_eq!(code, 413);
    assert!(serde_json::from_str::<Value>(&body).unwrap()["error"]["message"].is_string());

    let (code, body) = http_post(
        &url,
        &[],
        r#"{"model":"dm","messages":[{"role":"user","content":"x"}]}"#,
    )
    .unwrap();
    assert_eq!(code, 502);
    let msg = serde_json::from_str::<Value>(&body).unwrap()["error"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(msg.contains("dead/m1") && msg.contains("connect"), "{msg}");

    let (code, body) = d.get("/v1/models").unwrap();
    assert_eq!(code, 200);
    let ids: Vec<String> = serde_json::from_str::<Value>(&body).unwrap()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, vec!["dead/m1", "dm"]);
    let (code, _) = d.get("/v1/models/dead/m1").unwrap();
    assert_eq!(code, 200);
    let (code, _) = d.get("/v1/models/nope").unwrap();
    assert_eq!(code, 404);
}

//! Fields the IR does not model ("same-API extras"), end to end: the real openclawd, the `ollama`
//! double and the loopback cloud doubles. A `/v1/messages` request's `metadata`, `top_k`,
//! `service_tier` (and its `anthropic-beta` flags) reach an anthropic-messages provider; a
//! `/v1/responses` request's `metadata`, `truncation`, `include` and `parallel_tool_calls`
//! reach an openai-responses provider; every other provider answers as before without them;
//! the fields openclawd sets (model, stream, max tokens, messages/input) stay openclawd's.

mod common;

#[path = "common/cloud_doubles.rs"]
mod cloud_doubles;

use std::time::Duration;

use cloud_doubles::CloudDouble;
use common::cloud::FakeCloud;
use common::*;
use serde_json::{json, Value};

const CLOUD_KEY: &str = "sk-cloud-test-key";

/// One daemon with `ollama/llama3.2:3b`, `oa/m1` (openai-completions), `an/m1`
/// (anthropic-messages) and `rs/gpt-5` (openai-responses).
struct Setup {
    _env: TestEnv,
    daemon: Daemon,
    openai: FakeCloud,
    anthropic: FakeCloud,
    responses: CloudDouble,
}

fn setup() -> Setup {
    let env = TestEnv::new();
    let openai = FakeCloud::openai(CLOUD_KEY);
    let anthropic = FakeCloud::anthropic(CLOUD_KEY);
    let responses = CloudDouble::responses(CLOUD_KEY);
    let model = |id: &str| {
        format!(
            "models: [ {{ id: '{id}', name: '{id}', contextWindow: 100000, maxTokens: 1000 }} ]"
        )
    };
    env.write_config(&format!(
        "{{ models: {{ providers: {{
            ollama: {{ baseUrl: 'http://127.0.0.1:{}', api: 'ollama', models: [
                {{ id: 'llama3.2:3b', name: 'Llama', contextWindow: 131072, maxTokens: 8192 }} ] }},
            oa: {{ baseUrl: '{}/v1', apiKey: '{CLOUD_KEY}', api: 'openai-completions', {} }},
            an: {{ baseUrl: '{}', apiKey: '{CLOUD_KEY}', api: 'anthropic-messages', {} }},
            rs: {{ baseUrl: '{}/v1', apiKey: '{CLOUD_KEY}', api: 'openai-responses', {} }} }} }},
           agents: {{ defaults: {{ model: {{ primary: 'ollama/llama3.2:3b', fallbacks: [] }} }} }} }}",
        env.ollama_port,
        openai.base(),
        model("m1"),
        anthropic.base(),
        model("m1"),
        responses.base(),
        model("gpt-5"),
    ));
    let daemon = env.start();
    daemon.wait_until("every model available", Duration::from_secs(30), |s| {
        s["models"].as_array().is_some_and(|ms| {
            ["ollama/llama3.2:3b", "oa/m1", "an/m1", "rs/gpt-5"]
                .iter()
                .all(|r| ms.iter().any(|m| m["ref"] == *r && m["available"] == true))
        })
    });
    Setup {
        _env: env,
        daemon,
        openai,
        anthropic,
        responses,
    }
}

/// POSTs `body` to `path`; the answer's status, `x-openclawd-model` and body.
fn post(d: &Daemon, path: &str, body: &Value, headers: &[(&str, &str)]) -> (u16, String, String) {
    let r = http_post_full(&format!("{}{path}", d.base), headers, &body.to_string());
    let status = r.status().as_u16();
    let model = r
        .headers()
        .get("x-openclawd-model")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    (status, model, r.text().unwrap())
}

/// A Messages request carrying fields the IR does not model.
fn messages_with_extras(model: &str, stream: bool) -> Value {
    json!({"model": model, "max_tokens": 256, "stream": stream,
        "system": "Be brief.",
        "messages": [{"role": "user", "content": "Why is the sky blue?"}],
        "metadata": {"user_id": "user-42"}, "top_k": 7, "service_tier": "auto"})
}

/// A Responses request carrying fields the IR does not model.
fn responses_with_extras(model: &str, stream: bool) -> Value {
    json!({"model": model, "stream": stream, "store": false, "instructions": "Be brief.",
        "input": [{"type": "message", "role": "user",
            "content": [{"type": "input_text", "text": "Why is the sky blue?"}]}],
        "max_output_tokens": 200, "metadata": {"run": "r-7"}, "truncation": "auto",
        "include": ["reasoning.encrypted_content"], "parallel_tool_calls": false})
}

#[test]
fn messages_extras_reach_an_anthropic_messages_provider_and_openclawd_keeps_its_own_fields() {
    let s = setup();
    for stream in [false, true] {
        let (status, model, body) = post(
            &s.daemon,
            "/v1/messages",
            &messages_with_extras("an/m1", stream),
            &[("anthropic-beta", "context-management-2025-06-27")],
        );
        assert_eq!(status, 200, "stream {stream}: {body}");
        assert_eq!(model, "an/m1");
        assert!(body.contains("from Claude"), "{body}");

        let got = s
            .anthropic
            .received()
            .pop()
            .expect("the provider was called");
        let sent = &got.body;
        assert_eq!(sent["metadata"], json!({"user_id": "user-42"}), "{sent}");
        assert_eq!(sent["top_k"], 7, "{sent}");
        assert_eq!(sent["service_tier"], "auto", "{sent}");
        assert_eq!(
            got.headers
                .get("anthropic-beta")
                .and_then(|v| v.to_str().ok()),
            Some("context-management-2025-06-27")
        );
        // openclawd's own fields: the provider's model id (not the client's ref), the stream
        // flag, the cap and the conversation as translated.
        assert_eq!(sent["model"], "m1", "{sent}");
        assert_eq!(sent["stream"], stream, "{sent}");
        assert_eq!(sent["max_tokens"], 256, "{sent}");
        assert_eq!(sent["system"], "Be brief.", "{sent}");
        assert_eq!(sent["messages"][0]["role"], "user", "{sent}");
    }
}

#[test]
fn messages_extras_are_ignored_by_providers_that_speak_another_api() {
    let s = setup();
    for model in ["ollama/llama3.2:3b", "oa/m1", "rs/gpt-5"] {
        for stream in [false, true] {
            let (status, answered, body) = post(
                &s.daemon,
                "/v1/messages",
                &messages_with_extras(model, stream),
                &[("anthropic-beta", "context-management-2025-06-27")],
            );
            assert_eq!(status, 200, "{model} stream {stream}: {body}");
            assert_eq!(answered, model);
        }
    }
    let sent = &s.openai.received().pop().expect("oa was called").body;
    for field in ["metadata", "top_k", "service_tier"] {
        assert!(sent.get(field).is_none(), "{field} reached oa: {sent}");
    }
    let sent = &s.responses.requests().pop().expect("rs was called")["body"];
    for field in ["metadata", "top_k", "service_tier"] {
        assert!(sent.get(field).is_none(), "{field} reached rs: {sent}");
    }
    assert!(s.anthropic.received().is_empty());
}

#[test]
fn responses_extras_reach_an_openai_responses_provider_and_openclawd_keeps_its_own_fields() {
    let s = setup();
    for stream in [false, true] {
        let (status, model, body) = post(
            &s.daemon,
            "/v1/responses",
            &responses_with_extras("rs/gpt-5", stream),
            &[],
        );
        assert_eq!(status, 200, "stream {stream}: {body}");
        assert_eq!(model, "rs/gpt-5");

        let logged = s
            .responses
            .requests()
            .pop()
            .expect("the provider was called");
        let sent = &logged["body"];
        assert_eq!(sent["metadata"], json!({"run": "r-7"}), "{sent}");
        assert_eq!(sent["truncation"], "auto", "{sent}");
        assert_eq!(sent["include"], json!(["reasoning.encrypted_content"]));
        assert_eq!(sent["parallel_tool_calls"], false, "{sent}");
        assert_eq!(sent["model"], "gpt-5", "{sent}");
        assert_eq!(sent["stream"], stream, "{sent}");
        assert_eq!(sent["store"], false, "{sent}");
        assert_eq!(sent["max_output_tokens"], 200, "{sent}");
        assert_eq!(sent["instructions"], "Be brief.", "{sent}");
    }
}

#[test]
fn responses_extras_are_ignored_by_providers_that_speak_another_api() {
    let s = setup();
    for model in ["ollama/llama3.2:3b", "oa/m1", "an/m1"] {
        for stream in [false, true] {
            let (status, answered, body) = post(
                &s.daemon,
                "/v1/responses",
                &responses_with_extras(model, stream),
                &[],
            );
            assert_eq!(status, 200, "{model} stream {stream}: {body}");
            assert_eq!(answered, model);
        }
    }
    let sent = &s.anthropic.received().pop().expect("an was called").body;
    for field in ["metadata", "truncation", "include", "parallel_tool_calls"] {
        assert!(sent.get(field).is_none(), "{field} reached an: {sent}");
    }
    assert!(s
        .anthropic
        .received()
        .iter()
        .all(|r| r.headers.get("anthropic-beta").is_none()));
    let sent = &s.openai.received().pop().expect("oa was called").body;
    for field in ["metadata", "truncation", "include"] {
        assert!(sent.get(field).is_none(), "{field} reached oa: {sent}");
    }
    assert!(s.responses.requests().is_empty());
}

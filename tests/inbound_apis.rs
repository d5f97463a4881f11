//! Inbound Anthropic Messages and OpenAI Responses end to end: the real openclawd, the `ollama`
//! double and the loopback cloud doubles (openai-completions, anthropic-messages), each API
//! against each provider kind, streaming and not; errors in each API's shape; typed validation.

mod common;

use std::time::Duration;

use common::cloud::{Behaviour, FakeCloud};
use common::*;
use serde_json::{json, Value};

const CLOUD_KEY: &str = "sk-cloud-test-key";
const GATEWAY_TOKEN: &str = "gw-secret-token";

/// One daemon with all three provider kinds: `ollama/llama3.2:3b`, `oa/m1`
/// (openai-completions) and `an/m1` (anthropic-messages).
struct Setup {
    env: TestEnv,
    daemon: Daemon,
    openai: FakeCloud,
    anthropic: FakeCloud,
}

fn setup(primary: &str, fallbacks: &[&str]) -> Setup {
    let mut env = TestEnv::new();
    let openai = FakeCloud::openai(CLOUD_KEY);
    let anthropic = FakeCloud::anthropic(CLOUD_KEY);
    env.extra_env.push(("CLOUD_KEY".into(), CLOUD_KEY.into()));
    env.extra_env
        .push(("OPENCLAW_GATEWAY_TOKEN".into(), GATEWAY_TOKEN.into()));
    let fb: Vec<String> = fallbacks.iter().map(|f| format!("'{f}'")).collect();
    env.write_config(&format!(
        "{{ models: {{ providers: {{
            ollama: {{ baseUrl: 'http://127.0.0.1:{}', api: 'ollama', models: [
                {{ id: 'llama3.2:3b', name: 'Llama', contextWindow: 131072, maxTokens: 8192 }} ] }},
            oa: {{ baseUrl: '{}/v1', apiKey: '${{CLOUD_KEY}}', api: 'openai-completions',
                models: [ {{ id: 'm1', name: 'M1', contextWindow: 100000, maxTokens: 1000 }} ] }},
            an: {{ baseUrl: '{}', apiKey: '${{CLOUD_KEY}}', api: 'anthropic-messages',
                models: [ {{ id: 'm1', name: 'M1', contextWindow: 100000, maxTokens: 1000 }} ] }} }} }},
           agents: {{ defaults: {{ model: {{ primary: '{primary}', fallbacks: [{}] }} }} }} }}",
        env.ollama_port,
        openai.base(),
        anthropic.base(),
        fb.join(", ")
    ));
    let daemon = env.start();
    daemon.wait_until("ollama model available", Duration::from_secs(30), |s| {
        s["models"].as_array().is_some_and(|ms| {
            ms.iter()
                .any(|m| m["ref"] == "ollama/llama3.2:3b" && m["available"] == true)
        })
    });
    Setup {
        env,
        daemon,
        openai,
        anthropic,
    }
}

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// `(event line, data)` of each SSE event; every event must have both, and the data's
    /// `type` must equal the event name.
    fn events(&self) -> Vec<(String, Value)> {
        self.body
            .split("\n\n")
            .filter(|e| !e.trim().is_empty())
            .map(|e| {
                let name = e
                    .lines()
                    .find_map(|l| l.strip_prefix("event: "))
                    .unwrap_or_else(|| panic!("event without an event: line: {e:?}"));
                let data = e
                    .lines()
                    .find_map(|l| l.strip_prefix("data: "))
                    .unwrap_or_else(|| panic!("event without data: {e:?}"));
                let data: Value = serde_json::from_str(data).unwrap();
                assert_eq!(data["type"], name, "type equals the event name");
                (name.to_string(), data)
            })
            .collect()
    }
}

fn post(d: &Daemon, path: &str, body: &Value, headers: &[(&str, &str)]) -> Answer {
    let auth = format!("Bearer {GATEWAY_TOKEN}");
    let mut all: Vec<(&str, &str)> = vec![("authorization", &auth)];
    all.extend_from_slice(headers);
    let r = http_post_full(&format!("{}{path}", d.base), &all, &body.to_string());
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    Answer {
        status,
        headers,
        body: r.text().unwrap(),
    }
}

fn messages_body(model: &str, stream: bool) -> Value {
    json!({"model": model, "max_tokens": 256, "stream": stream,
        "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": "Why is the sky blue?"}],
        "metadata": {"user_id": "u1"}})
}

fn responses_body(model: &str, stream: bool) -> Value {
    json!({"model": model, "stream": stream, "store": false, "instructions": "Be brief.",
        "input": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Why is the sky blue?"}]}]})
}

fn check_messages(a: &Answer, model: &str, stream: bool) -> String {
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.header("x-openclawd-model"), model);
    if !stream {
        let b = a.json();
        assert_eq!(b["type"], "message");
        assert_eq!(b["role"], "assistant");
        assert!(b["id"].as_str().unwrap().starts_with("msg_"));
        assert_eq!(b["stop_reason"], "end_turn");
        assert!(b["usage"]["output_tokens"].as_u64().is_some());
        return b["content"][0]["text"].as_str().unwrap().to_string();
    }
    assert!(a.header("content-type").starts_with("text/event-stream"));
    let events = a.events();
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names[0], "message_start");
    assert_eq!(names[1], "content_block_start");
    assert!(names.contains(&"ping"));
    assert_eq!(
        &names[names.len() - 3..],
        ["content_block_stop", "message_delta", "message_stop"]
    );
    assert_eq!(events[0].1["message"]["stop_reason"], Value::Null);
    assert!(
        events[0].1["message"]["usage"]["input_tokens"]
            .as_u64()
            .unwrap()
            > 0,
        "an estimate before the real count"
    );
    let delta = &events[names.len() - 2].1;
    assert_eq!(delta["delta"]["stop_reason"], "end_turn");
    events
        .iter()
        .filter(|(n, d)| n == "content_block_delta" && d["delta"]["type"] == "text_delta")
        .map(|(_, d)| d["delta"]["text"].as_str().unwrap().to_string())
        .collect()
}

fn check_responses(a: &Answer, model: &str, stream: bool) -> String {
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.header("x-openclawd-model"), model);
    if !stream {
        let b = a.json();
        assert_eq!(b["object"], "response");
        assert_eq!(b["status"], "completed");
        assert!(b["id"].as_str().unwrap().starts_with("resp_"));
        assert_eq!(b["output"][0]["type"], "message");
        assert!(b["usage"]["total_tokens"].as_u64().is_some());
        return b["output"][0]["content"][0]["text"]
            .as_str()
            .unwrap()
            .to_string();
    }
    let events = a.events();
    for (i, (_, d)) in events.iter().enumerate() {
        assert_eq!(
            d["sequence_number"], i as u64,
            "sequence_number counts from 0"
        );
    }
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        &names[..3],
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added"
        ]
    );
    assert_eq!(names.last(), Some(&"response.completed"));
    assert!(names.contains(&"response.output_item.done"));
    let text: String = events
        .iter()
        .filter(|(n, _)| n == "response.output_text.delta")
        .map(|(_, d)| d["delta"].as_str().unwrap().to_string())
        .collect();
    let completed = &events.last().unwrap().1["response"];
    assert_eq!(completed["status"], "completed");
    assert_eq!(completed["output"][0]["content"][0]["text"], text.as_str());
    text
}

#[test]
fn each_inbound_api_answers_through_each_provider_kind_streaming_and_not() {
    let s = setup("ollama/llama3.2:3b", &[]);
    let d = &s.daemon;
    for model in ["ollama/llama3.2:3b", "oa/m1", "an/m1"] {
        for stream in [false, true] {
            let a = post(
                d,
                "/v1/messages?beta=true",
                &messages_body(model, stream),
                &[],
            );
            let text = check_messages(&a, model, stream);
            assert!(!text.is_empty(), "{model} stream={stream}: {}", a.body);
            let a = post(d, "/v1/responses", &responses_body(model, stream), &[]);
            let text = check_responses(&a, model, stream);
            assert!(!text.is_empty(), "{model} stream={stream}: {}", a.body);
        }
    }
    // The cloud doubles' words came through the translators untouched.
    let a = post(d, "/v1/messages", &messages_body("an/m1", true), &[]);
    assert_eq!(check_messages(&a, "an/m1", true), "Hello from Claude");
    let a = post(d, "/v1/responses", &responses_body("oa/m1", false), &[]);
    assert_eq!(check_responses(&a, "oa/m1", false), "from the cloud");
    // The upstreams saw the system prompt and the cap.
    let sent = s.anthropic.received().last().unwrap().body.clone();
    assert_eq!(sent["system"], "Be brief.");
    let sent = s.openai.received().last().unwrap().body.clone();
    assert_eq!(
        sent["messages"][0],
        json!({"role": "system", "content": "Be brief."})
    );
    let sent = s.env.ollama_requests();
    assert!(sent
        .iter()
        .any(|r| r["body"]["options"]["num_predict"] == 256));
}

#[test]
fn failover_cooldowns_and_headers_work_as_for_chat_completions() {
    let s = setup("an/m1", &["ollama/llama3.2:3b"]);
    s.anthropic.set(Behaviour::Status(
        529,
        json!({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}})
            .to_string(),
    ));
    let d = &s.daemon;
    let a = post(d, "/v1/messages", &messages_body("default", false), &[]);
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.header("x-openclawd-model"), "ollama/llama3.2:3b");
    assert_eq!(a.header("x-openclawd-attempts"), "2");
    assert_eq!(a.header("x-openclawd-fallback"), "true");
    // The failed model cools down: the next request does not try it.
    let before = s.anthropic.received().len();
    let a = post(d, "/v1/responses", &responses_body("default", true), &[]);
    check_responses(&a, "ollama/llama3.2:3b", true);
    assert_eq!(s.anthropic.received().len(), before, "in cooldown: skipped");
    // Pinned: no fallback, and the failure is reported in each API's shape.
    let pinned = [("x-openclawd-no-fallback", "1")];
    let a = post(d, "/v1/messages", &messages_body("an/m1", false), &pinned);
    assert_eq!(a.status, 502, "{}", a.body);
    assert_eq!(a.json()["type"], "error");
    assert_eq!(a.json()["error"]["type"], "api_error");
}

#[test]
fn errors_come_in_each_apis_shape_with_its_status_codes() {
    let s = setup("ollama/llama3.2:3b", &[]);
    let d = &s.daemon;
    // Unknown model: 404 in Anthropic's shape (the SDK raises NotFoundError on it).
    let a = post(
        d,
        "/v1/messages",
        &messages_body("claude-9-opus", false),
        &[],
    );
    assert_eq!(a.status, 404);
    let b = a.json();
    assert_eq!(b["type"], "error");
    assert_eq!(b["error"]["type"], "not_found_error");
    assert!(b["error"]["message"]
        .as_str()
        .unwrap()
        .contains("claude-9-opus"));
    assert!(b["request_id"].as_str().unwrap().starts_with("req_"));
    // …and in OpenAI's on /v1/responses.
    let a = post(d, "/v1/responses", &responses_body("gpt-9", false), &[]);
    assert_eq!(a.status, 404);
    assert!(a.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("gpt-9"));
    // Stored state is refused, saying why.
    let mut body = responses_body("default", false);
    body["previous_response_id"] = json!("resp_123");
    let a = post(d, "/v1/responses", &body, &[]);
    assert_eq!(a.status, 400);
    assert_eq!(a.json()["error"]["param"], "previous_response_id");
    assert!(a.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("does not store"));
    let mut body = responses_body("default", false);
    body["store"] = json!(true);
    let a = post(d, "/v1/responses", &body, &[]);
    assert_eq!(a.status, 400);
    assert_eq!(a.json()["error"]["param"], "store");
    // Gateway token: x-api-key works as well as Bearer; a wrong one is Anthropic's 401.
    let url = format!("{}/v1/messages", d.base);
    let body = messages_body("default", false).to_string();
    let r = http_post_full(&url, &[("x-api-key", GATEWAY_TOKEN)], &body);
    assert_eq!(r.status().as_u16(), 200);
    let r = http_post_full(&url, &[("x-api-key", "wrong")], &body);
    assert_eq!(r.status().as_u16(), 401);
    let b: Value = r.json().unwrap();
    assert_eq!(b["error"]["type"], "authentication_error");
    // count_tokens: an estimate, with `?beta=true`.
    let a = post(
        d,
        "/v1/messages/count_tokens?beta=true",
        &json!({"model": "claude-sonnet-4-5", "system": "You are a scientist",
            "messages": [{"role": "user", "content": "Hello, Claude"}]}),
        &[],
    );
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(a.json()["input_tokens"].as_u64().unwrap() > 0);
    assert_eq!(a.header("x-openclawd-token-count"), "estimate");
}

#[test]
fn each_mistyped_field_is_a_400_naming_it_in_each_api() {
    let s = setup("ollama/llama3.2:3b", &[]);
    let d = &s.daemon;
    let cases: &[(&str, Value, &str, Value)] = &[
        (
            "/v1/chat/completions",
            json!({"model": "default", "messages": [{"role": "user", "content": "hi"}]}),
            "stream",
            json!("yes"),
        ),
        (
            "/v1/chat/completions",
            json!({"model": "default", "messages": [{"role": "user", "content": "hi"}]}),
            "max_tokens",
            json!("ten"),
        ),
        (
            "/v1/chat/completions",
            json!({"model": "default", "messages": [{"role": "user", "content": "hi"}]}),
            "temperature",
            json!("hot"),
        ),
        (
            "/v1/messages",
            messages_body("default", false),
            "max_tokens",
            json!("ten"),
        ),
        (
            "/v1/messages",
            messages_body("default", false),
            "stream",
            json!("yes"),
        ),
        (
            "/v1/messages",
            messages_body("default", false),
            "messages",
            json!({}),
        ),
        (
            "/v1/messages",
            messages_body("default", false),
            "stop_sequences",
            json!("END"),
        ),
        (
            "/v1/responses",
            responses_body("default", false),
            "max_output_tokens",
            json!("ten"),
        ),
        (
            "/v1/responses",
            responses_body("default", false),
            "stream",
            json!("yes"),
        ),
        (
            "/v1/responses",
            responses_body("default", false),
            "input",
            json!(5),
        ),
        (
            "/v1/responses",
            responses_body("default", false),
            "tools",
            json!("f"),
        ),
    ];
    for (path, base, field, value) in cases {
        let mut body = base.clone();
        body[*field] = value.clone();
        let a = post(d, path, &body, &[]);
        assert_eq!(a.status, 400, "{path} {field}: {}", a.body);
        let b = a.json();
        if *path == "/v1/messages" {
            assert_eq!(b["type"], "error");
            assert_eq!(b["error"]["type"], "invalid_request_error");
            assert!(
                b["error"]["message"].as_str().unwrap().contains(field),
                "{b}"
            );
        } else {
            assert_eq!(b["error"]["param"], *field, "{path}: {b}");
        }
    }
    // Nested fields are named with their path.
    let a = post(
        d,
        "/v1/chat/completions",
        &json!({"messages": [{"role": "user", "content": 5}]}),
        &[],
    );
    assert_eq!(a.json()["error"]["param"], "messages[0].content");
    let a = post(
        d,
        "/v1/responses",
        &json!({"input": [{"type": "function_call_output", "call_id": 7, "output": "x"}]}),
        &[],
    );
    assert_eq!(a.json()["error"]["param"], "input[0].call_id");
    assert!(
        s.env
            .ollama_requests()
            .iter()
            .all(|r| r["path"] != "/api/chat"),
        "nothing reached the model"
    );
}

#[test]
fn a_tool_round_trip_through_each_api_on_ollama() {
    let s = setup("ollama/llama3.2:3b", &[]);
    s.env.write_control(&json!({"tool_call": true}));
    let d = &s.daemon;
    let tool_schema =
        json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]});
    for stream in [false, true] {
        // Anthropic: the model calls the tool…
        let body = json!({"model": "default", "max_tokens": 100, "stream": stream,
            "tools": [{"name": "get_weather", "description": "Weather", "input_schema": tool_schema}],
            "messages": [{"role": "user", "content": "Weather in Tokyo?"}]});
        let a = post(d, "/v1/messages", &body, &[]);
        assert_eq!(a.status, 200, "{}", a.body);
        let (id, input) = if stream {
            let events = a.events();
            let start = events
                .iter()
                .find(|(_, d)| d["content_block"]["type"] == "tool_use")
                .expect("a tool_use block");
            let json_text: String = events
                .iter()
                .filter(|(_, d)| d["delta"]["type"] == "input_json_delta")
                .map(|(_, d)| d["delta"]["partial_json"].as_str().unwrap().to_string())
                .collect();
            let stop = events.iter().find(|(n, _)| n == "message_delta").unwrap();
            assert_eq!(stop.1["delta"]["stop_reason"], "tool_use");
            (
                start.1["content_block"]["id"].as_str().unwrap().to_string(),
                serde_json::from_str::<Value>(&json_text).unwrap(),
            )
        } else {
            let b = a.json();
            assert_eq!(b["stop_reason"], "tool_use");
            let block = b["content"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["type"] == "tool_use")
                .unwrap()
                .clone();
            (
                block["id"].as_str().unwrap().to_string(),
                block["input"].clone(),
            )
        };
        assert_eq!(input, json!({"city": "Tokyo"}));
        // …and the result goes back as a tool message with the call's id.
        let body = json!({"model": "default", "max_tokens": 100, "stream": stream,
            "messages": [{"role": "user", "content": "Weather in Tokyo?"},
                {"role": "assistant", "content": [{"type": "tool_use", "id": id, "name": "get_weather", "input": input}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": id, "content": "21C"}]}]});
        let a = post(d, "/v1/messages", &body, &[]);
        assert_eq!(a.status, 200, "{}", a.body);
        let last = s.env.ollama_requests().last().unwrap()["body"]["messages"].clone();
        assert_eq!(last[2]["role"], "tool");
        assert_eq!(last[2]["content"], "21C");
        assert_eq!(
            last[1]["tool_calls"][0]["function"]["arguments"],
            json!({"city": "Tokyo"})
        );

        // Responses: function_call item, then function_call_output.
        let body = json!({"model": "default", "stream": stream, "input": "Weather in Tokyo?",
            "tools": [{"type": "function", "name": "get_weather", "parameters": tool_schema}]});
        let a = post(d, "/v1/responses", &body, &[]);
        assert_eq!(a.status, 200, "{}", a.body);
        let response = if stream {
            let events = a.events();
            assert!(events
                .iter()
                .any(|(n, _)| n == "response.function_call_arguments.delta"));
            let done = events
                .iter()
                .find(|(n, d)| {
                    n == "response.output_item.done" && d["item"]["type"] == "function_call"
                })
                .expect("the call's output_item.done");
            assert_eq!(done.1["item"]["status"], "completed");
            events.last().unwrap().1["response"].clone()
        } else {
            a.json()
        };
        let call = response["output"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["type"] == "function_call")
            .unwrap()
            .clone();
        assert_eq!(call["name"], "get_weather");
        let args: Value = serde_json::from_str(call["arguments"].as_str().unwrap()).unwrap();
        assert_eq!(args, json!({"city": "Tokyo"}));
        let body = json!({"model": "default", "stream": stream, "input": [
            {"role": "user", "content": "Weather in Tokyo?"},
            call,
            {"type": "function_call_output", "call_id": call["call_id"], "output": "21C"}]});
        let a = post(d, "/v1/responses", &body, &[]);
        assert_eq!(a.status, 200, "{}", a.body);
        let last = s.env.ollama_requests().last().unwrap()["body"]["messages"].clone();
        assert_eq!(last[2]["role"], "tool");
        assert_eq!(last[2]["content"], "21C");
    }
}

#[test]
fn a_model_failing_mid_answer_ends_each_stream_with_that_apis_error_event() {
    let s = setup("ollama/llama3.2:3b", &[]);
    s.env.write_control(&json!({"midstream_error_after": 2}));
    let d = &s.daemon;
    let a = post(d, "/v1/messages", &messages_body("default", true), &[]);
    assert_eq!(a.status, 200, "{}", a.body);
    let events = a.events();
    let (name, data) = events.last().unwrap();
    assert_eq!(name, "error", "{}", a.body);
    assert_eq!(data["error"]["type"], "api_error");
    assert!(!data["error"]["message"].as_str().unwrap().is_empty());
    assert!(events.iter().all(|(n, _)| n != "message_stop"));

    let a = post(d, "/v1/responses", &responses_body("default", true), &[]);
    assert_eq!(a.status, 200, "{}", a.body);
    let events = a.events();
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        &names[names.len() - 2..],
        ["error", "response.failed"],
        "{}",
        a.body
    );
    let failed = &events.last().unwrap().1["response"];
    assert_eq!(failed["status"], "failed");
    assert!(!failed["error"]["message"].as_str().unwrap().is_empty());
    assert!(!names.contains(&"response.completed"));
}

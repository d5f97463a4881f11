//! What the second round of issue 16 closed, end to end: the real openclawd, the `ollama`
//! double, the Anthropic fake and the loopback Gemini and Responses doubles.
//! * reasoning settings reach each provider in its own words (Anthropic `thinking`, Gemini
//!   `thinkingConfig`, Ollama `think`), and signed thinking in history goes back to Anthropic
//!   unchanged and to nobody else;
//! * server tools are refused when nothing in the chain can run them, and forwarded when
//!   something can;
//! * `/v1/responses` echoes the request's fields;
//! * Gemini's thought signatures survive the round trip through every inbound API.

mod common;

#[path = "common/cloud_doubles.rs"]
mod cloud_doubles;

use std::time::Duration;

use cloud_doubles::CloudDouble;
use common::cloud::{FakeCloud, CLAUDE_SIGNATURE};
use common::*;
use serde_json::{json, Value};

const CLOUD_KEY: &str = "sk-cloud-test-key";

/// One daemon with `ollama/llama3.2:3b` (primary, falling back to `an/m1`; no thinking),
/// `ollama/gpt-oss:20b` (a thinking model), and the reasoning models `an/m1`
/// (anthropic-messages), `gm/gemini-3-flash` (google-generative-ai) and `rs/gpt-5`
/// (openai-responses).
struct Setup {
    env: TestEnv,
    daemon: Daemon,
    openai: FakeCloud,
    anthropic: FakeCloud,
    gemini: CloudDouble,
    responses: CloudDouble,
}

fn setup() -> Setup {
    let env = TestEnv::new();
    let openai = FakeCloud::openai(CLOUD_KEY);
    let anthropic = FakeCloud::anthropic(CLOUD_KEY);
    let gemini = CloudDouble::gemini(CLOUD_KEY);
    let responses = CloudDouble::responses(CLOUD_KEY);
    let model = |id: &str| {
        format!(
            "models: [ {{ id: '{id}', name: '{id}', reasoning: true, contextWindow: 100000, maxTokens: 1000 }} ]"
        )
    };
    env.write_config(&format!(
        "{{ models: {{ providers: {{
            ollama: {{ baseUrl: 'http://127.0.0.1:{}', api: 'ollama', models: [
                {{ id: 'llama3.2:3b', name: 'Llama', contextWindow: 131072, maxTokens: 8192 }},
                {{ id: 'gpt-oss:20b', name: 'gpt-oss', reasoning: true, contextWindow: 131072, maxTokens: 8192 }} ] }},
            oa: {{ baseUrl: '{}/v1', apiKey: '{CLOUD_KEY}', api: 'openai-completions', models: [
                {{ id: 'gpt-4o', name: 'gpt-4o', contextWindow: 100000, maxTokens: 1000 }},
                {{ id: 'o3', name: 'o3', reasoning: true, contextWindow: 100000, maxTokens: 1000 }} ] }},
            an: {{ baseUrl: '{}', apiKey: '{CLOUD_KEY}', api: 'anthropic-messages', {} }},
            gm: {{ baseUrl: '{}/v1beta', apiKey: '{CLOUD_KEY}', api: 'google-generative-ai', {} }},
            rs: {{ baseUrl: '{}/v1', apiKey: '{CLOUD_KEY}', api: 'openai-responses', {} }} }} }},
           agents: {{ defaults: {{ model: {{ primary: 'ollama/llama3.2:3b', fallbacks: ['an/m1'] }} }} }} }}",
        env.ollama_port,
        openai.base(),
        anthropic.base(),
        model("m1"),
        gemini.base(),
        model("gemini-3-flash"),
        responses.base(),
        model("gpt-5"),
    ));
    let daemon = env.start();
    daemon.wait_until("every model available", Duration::from_secs(30), |s| {
        s["models"].as_array().is_some_and(|ms| {
            [
                "ollama/llama3.2:3b",
                "ollama/gpt-oss:20b",
                "oa/gpt-4o",
                "oa/o3",
                "an/m1",
                "gm/gemini-3-flash",
                "rs/gpt-5",
            ]
            .iter()
            .all(|r| ms.iter().any(|m| m["ref"] == *r && m["available"] == true))
        })
    });
    Setup {
        env,
        daemon,
        openai,
        anthropic,
        gemini,
        responses,
    }
}

/// POSTs `body` to `path`; the answer's status, `x-openclawd-model` and body.
fn post(d: &Daemon, path: &str, body: &Value, headers: &[(&str, &str)]) -> (u16, String, String) {
    post_routed(d, path, body, headers)
}

const PINNED: &[(&str, &str)] = &[("x-openclawd-no-fallback", "true")];

fn last_gemini_body(s: &Setup) -> Value {
    s.gemini.requests().pop().expect("gemini was called")["body"].clone()
}

fn last_ollama_body(s: &Setup) -> Value {
    let all = s.env.ollama_requests();
    all.into_iter()
        .rev()
        .find(|r| r["path"] == "/api/chat")
        .expect("ollama was asked to chat")["body"]
        .clone()
}

#[test]
fn reasoning_settings_reach_each_provider_in_its_own_words() {
    let s = setup();
    let d = &s.daemon;
    let messages = |model: &str, stream: bool| {
        json!({"model": model, "max_tokens": 8000, "stream": stream,
            "thinking": {"type": "enabled", "budget_tokens": 3000},
            "messages": [{"role": "user", "content": "Why is the sky blue?"}]})
    };
    for stream in [false, true] {
        // Anthropic: the client's own setting, exact; the signed thinking comes back.
        let (status, model, body) = post(d, "/v1/messages", &messages("an/m1", stream), PINNED);
        assert_eq!((status, model.as_str()), (200, "an/m1"), "{body}");
        let sent = s.anthropic.received().pop().unwrap().body;
        assert_eq!(
            sent["thinking"],
            json!({"type": "enabled", "budget_tokens": 3000})
        );
        assert!(body.contains(CLAUDE_SIGNATURE), "stream {stream}: {body}");
        if stream {
            assert!(body.contains("signature_delta"), "{body}");
        }

        // Gemini: the budget as an effort (3000 → low → 1024), thoughts included.
        let (status, _, body) = post(
            d,
            "/v1/messages",
            &messages("gm/gemini-3-flash", stream),
            PINNED,
        );
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            last_gemini_body(&s)["generationConfig"]["thinkingConfig"],
            json!({"thinkingBudget": 1024, "includeThoughts": true})
        );

        // Ollama: `think` at that effort, for a thinking model; a model without thinking
        // (which Ollama would refuse `think`) answers without.
        let (status, _, body) = post(
            d,
            "/v1/messages",
            &messages("ollama/gpt-oss:20b", stream),
            PINNED,
        );
        assert_eq!(status, 200, "{body}");
        assert_eq!(last_ollama_body(&s)["think"], "low");
        let (status, _, body) = post(
            d,
            "/v1/messages",
            &messages("ollama/llama3.2:3b", stream),
            PINNED,
        );
        assert_eq!(status, 200, "{body}");
        assert!(last_ollama_body(&s).get("think").is_none());
    }

    // Responses' effort and chat completions' reasoning_effort become an Anthropic budget.
    let (status, _, body) = post(
        d,
        "/v1/responses",
        &json!({"model": "an/m1", "input": "hi", "max_output_tokens": 40000,
            "reasoning": {"effort": "high"}}),
        PINNED,
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        s.anthropic.received().pop().unwrap().body["thinking"],
        json!({"type": "enabled", "budget_tokens": 16384})
    );
    let r = d.chat(
        &json!({"model": "an/m1", "max_tokens": 20000, "reasoning_effort": "medium",
            "messages": [{"role": "user", "content": "hi"}]}),
        PINNED,
    );
    assert_eq!(r.status().as_u16(), 200);
    let answer: Value = r.json().unwrap();
    assert_eq!(
        answer["choices"][0]["message"]["thinking_blocks"][0]["signature"],
        CLAUDE_SIGNATURE
    );
    assert_eq!(
        s.anthropic.received().pop().unwrap().body["thinking"],
        json!({"type": "enabled", "budget_tokens": 8192})
    );
    // An OpenAI-compatible model gets `reasoning_effort` only when it is a reasoning model
    // (OpenAI refuses it otherwise).
    for (model, effort) in [("oa/o3", json!("medium")), ("oa/gpt-4o", Value::Null)] {
        let (status, _, body) = post(
            d,
            "/v1/messages",
            &json!({"model": model, "max_tokens": 8000,
                "thinking": {"type": "enabled", "budget_tokens": 5000},
                "messages": [{"role": "user", "content": "hi"}]}),
            PINNED,
        );
        assert_eq!(status, 200, "{body}");
        let sent = s.openai.received().pop().unwrap().body;
        assert_eq!(sent["reasoning_effort"], effort, "{model}: {sent}");
    }
    // `disabled` is an effort of none everywhere.
    let (status, _, body) = post(
        d,
        "/v1/messages",
        &json!({"model": "ollama/gpt-oss:20b", "max_tokens": 100, "thinking": {"type": "disabled"},
            "messages": [{"role": "user", "content": "hi"}]}),
        PINNED,
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(last_ollama_body(&s)["think"], false);
    // Elsewhere off is said only where every model takes it: Anthropic gets `disabled`; Gemini
    // (Pro models refuse a zero budget) and OpenAI (the o-series refuse `none`) keep their
    // model's default.
    for model in ["an/m1", "gm/gemini-3-flash", "oa/o3", "rs/gpt-5"] {
        let (status, _, body) = post(
            d,
            "/v1/messages",
            &json!({"model": model, "max_tokens": 100, "thinking": {"type": "disabled"},
                "messages": [{"role": "user", "content": "hi"}]}),
            PINNED,
        );
        assert_eq!(status, 200, "{model}: {body}");
    }
    assert_eq!(
        s.anthropic.received().pop().unwrap().body["thinking"],
        json!({"type": "disabled"})
    );
    assert!(last_gemini_body(&s)
        .pointer("/generationConfig/thinkingConfig")
        .is_none());
    assert!(s.openai.received().pop().unwrap().body["reasoning_effort"].is_null());
    assert!(s.responses.requests().pop().unwrap()["body"]["reasoning"].is_null());
}

#[test]
fn signed_thinking_in_history_goes_back_to_anthropic_unchanged_and_to_no_one_else() {
    let s = setup();
    let thinking = json!({"type": "thinking", "thinking": "The user wants the weather; use the tool.",
        "signature": CLAUDE_SIGNATURE});
    let request = |model: &str| {
        json!({"model": model, "max_tokens": 8000,
            "thinking": {"type": "enabled", "budget_tokens": 2000},
            "tools": [{"name": "get_weather", "input_schema": {"type": "object",
                "properties": {"city": {"type": "string"}}}}],
            "messages": [
                {"role": "user", "content": "Weather in Paris?"},
                {"role": "assistant", "content": [thinking.clone(),
                    {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "21C"}]}]})
    };
    let (status, _, body) = post(&s.daemon, "/v1/messages", &request("an/m1"), PINNED);
    assert_eq!(status, 200, "{body}");
    let sent = s.anthropic.received().pop().unwrap().body;
    assert_eq!(sent["messages"][1]["content"][0], thinking, "{sent}");
    assert_eq!(sent["messages"][1]["content"][1]["type"], "tool_use");

    // A chat completions client returns the `thinking_blocks` it was given the same way.
    let r = s.daemon.chat(
        &json!({"model": "an/m1", "max_tokens": 8000, "reasoning_effort": "low",
            "messages": [
                {"role": "user", "content": "Weather in Paris?"},
                {"role": "assistant", "content": null, "thinking_blocks": [thinking.clone()],
                    "tool_calls": [{"id": "toolu_1", "type": "function",
                        "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
                {"role": "tool", "tool_call_id": "toolu_1", "content": "21C"}]}),
        PINNED,
    );
    assert_eq!(r.status().as_u16(), 200);
    let sent = s.anthropic.received().pop().unwrap().body;
    assert_eq!(sent["messages"][1]["content"][0], thinking, "{sent}");

    for model in ["ollama/llama3.2:3b", "gm/gemini-3-flash", "rs/gpt-5"] {
        let (status, _, body) = post(&s.daemon, "/v1/messages", &request(model), PINNED);
        assert_eq!(status, 200, "{model}: {body}");
    }
    for (who, sent) in [
        ("ollama", last_ollama_body(&s)),
        ("gemini", last_gemini_body(&s)),
        (
            "responses",
            s.responses.requests().pop().unwrap()["body"].clone(),
        ),
    ] {
        let text = sent.to_string();
        assert!(
            !text.contains("use the tool") && !text.contains(CLAUDE_SIGNATURE),
            "{who} got the thinking: {text}"
        );
    }
}

#[test]
fn server_tools_are_refused_or_left_out_unless_the_chain_can_run_them() {
    let s = setup();
    let d = &s.daemon;
    let messages = json!({"model": "ollama/llama3.2:3b", "max_tokens": 100,
        "messages": [{"role": "user", "content": "Any news today?"}],
        "tools": [{"type": "web_search_20250305", "name": "web_search", "max_uses": 3}]});
    // Pinned to Ollama: nothing can search.
    let (status, _, body) = post(d, "/v1/messages", &messages, PINNED);
    assert_eq!(status, 400, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "invalid_request_error");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("web_search_20250305") && message.contains("only function tools"),
        "{message}"
    );
    assert!(s.anthropic.received().is_empty());

    // The chain falls back to an Anthropic model: Ollama is passed over (not cooled down) and
    // the tool reaches Anthropic as sent.
    let (status, model, body) = post(d, "/v1/messages", &messages, &[]);
    assert_eq!((status, model.as_str()), (200, "an/m1"), "{body}");
    let sent = s.anthropic.received().pop().unwrap().body;
    assert_eq!(
        sent["tools"],
        json!([{"type": "web_search_20250305", "name": "web_search", "max_uses": 3}])
    );
    let (status, model, _) = post(
        d,
        "/v1/messages",
        &json!({"model": "ollama/llama3.2:3b", "max_tokens": 100,
            "messages": [{"role": "user", "content": "hi"}]}),
        &[],
    );
    assert_eq!((status, model.as_str()), (200, "ollama/llama3.2:3b"));

    // Responses, the server tool the only tool: refused in OpenAI's shape.
    let only_search = json!({"model": "ollama/llama3.2:3b", "input": "Any news today?",
        "tools": [{"type": "web_search"}]});
    let (status, _, body) = post(d, "/v1/responses", &only_search, &[]);
    assert_eq!(status, 400, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"]["type"], "invalid_request_error");
    assert_eq!(v["error"]["param"], "tools");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("web_search"),
        "{body}"
    );
    // Beside function tools (an agent's toolbox, as Codex sends on every request): left out
    // for a model that cannot run it, and the answer says so.
    let responses = |model: &str| {
        json!({"model": model, "input": "Any news today?",
            "tools": [{"type": "web_search"}, {"type": "namespace", "name": "multi_agent_v1", "tools": []},
                      {"type": "function", "name": "f", "parameters": {"type": "object"}}]})
    };
    let r = http_post_full(
        &format!("{}/v1/responses", d.base),
        PINNED,
        &responses("ollama/llama3.2:3b").to_string(),
    );
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(
        r.headers()["x-openclawd-tools-dropped"].to_str().unwrap(),
        "web_search, namespace"
    );
    let sent = last_ollama_body(&s);
    let names: Vec<&str> = sent["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["function"]["name"].as_str())
        .collect();
    assert_eq!(names, ["f"], "{sent}");
    // Forwarded as sent to a Responses provider, nothing dropped.
    let (status, model, body) = post(d, "/v1/responses", &responses("rs/gpt-5"), &[]);
    assert_eq!((status, model.as_str()), (200, "rs/gpt-5"), "{body}");
    let sent = &s.responses.requests().pop().unwrap()["body"];
    let types: Vec<&str> = sent["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["type"].as_str())
        .collect();
    assert_eq!(types, ["function", "web_search", "namespace"], "{sent}");
}

#[test]
fn responses_echo_the_fields_the_request_sent() {
    let s = setup();
    let request = |stream: bool| {
        json!({"model": "ollama/llama3.2:3b", "stream": stream, "store": false, "input": "hi",
            "metadata": {"run": "r-7"}, "truncation": "auto", "parallel_tool_calls": false,
            "tool_choice": "none", "user": "u-1", "text": {"verbosity": "low"}})
    };
    let check = |obj: &Value| {
        assert_eq!(obj["metadata"], json!({"run": "r-7"}), "{obj}");
        assert_eq!(obj["truncation"], "auto");
        assert_eq!(obj["parallel_tool_calls"], false);
        assert_eq!(obj["tool_choice"], "none");
        assert_eq!(obj["user"], "u-1");
        assert_eq!(obj["text"]["verbosity"], "low");
    };
    let (status, _, body) = post(&s.daemon, "/v1/responses", &request(false), &[]);
    assert_eq!(status, 200, "{body}");
    check(&serde_json::from_str(&body).unwrap());
    let (status, _, body) = post(&s.daemon, "/v1/responses", &request(true), &[]);
    assert_eq!(status, 200, "{body}");
    let events: Vec<Value> = body
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str(d).ok())
        .collect();
    let created = events
        .iter()
        .find(|e| e["type"] == "response.created")
        .unwrap();
    check(&created["response"]);
    let completed = events
        .iter()
        .find(|e| e["type"] == "response.completed")
        .unwrap();
    check(&completed["response"]);
}

/// A chat completions `get_weather` tool.
fn weather_tool_chat() -> Value {
    json!([{"type": "function", "function": {"name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}])
}

#[test]
fn gemini_thought_signatures_survive_the_round_trip_through_every_inbound_api() {
    let s = setup();
    let d = &s.daemon;
    s.gemini
        .control(&json!({"tool_call": {"name": "get_weather", "args": {"city": "Tokyo"}}}));
    let model = "gm/gemini-3-flash";

    // Chat completions: where Google's OpenAI-compatible endpoint puts it.
    let r = d.chat(
        &json!({"model": model, "tools": weather_tool_chat(),
            "messages": [{"role": "user", "content": "Weather in Tokyo?"}]}),
        &[],
    );
    assert_eq!(r.status().as_u16(), 200);
    let answer: Value = r.json().unwrap();
    let call = answer["choices"][0]["message"]["tool_calls"][0].clone();
    let signature = call["extra_content"]["google"]["thought_signature"]
        .as_str()
        .expect("the call carries its signature")
        .to_owned();
    assert_ne!(signature, "skip_thought_signature_validator");
    let r = d.chat(
        &json!({"model": model, "tools": weather_tool_chat(), "messages": [
            {"role": "user", "content": "Weather in Tokyo?"},
            {"role": "assistant", "content": null, "tool_calls": [call.clone()]},
            {"role": "tool", "tool_call_id": call["id"], "content": "22C"}]}),
        &[],
    );
    assert_eq!(r.status().as_u16(), 200, "{}", r.text().unwrap());
    assert_eq!(
        last_gemini_body(&s)["contents"][1]["parts"][0]["thoughtSignature"],
        signature.as_str()
    );

    // Anthropic Messages: inside the tool_use id, which every client sends back.
    let tools = json!([{"name": "get_weather", "input_schema": {"type": "object",
        "properties": {"city": {"type": "string"}}}}]);
    for stream in [false, true] {
        let (status, _, body) = post(
            d,
            "/v1/messages",
            &json!({"model": model, "max_tokens": 200, "stream": stream, "tools": tools,
                "messages": [{"role": "user", "content": "Weather in Tokyo?"}]}),
            &[],
        );
        assert_eq!(status, 200, "{body}");
        let id = body
            .split('"')
            .find(|p| p.starts_with("call_") && p.contains("__thought__"))
            .unwrap_or_else(|| panic!("no signed tool id: {body}"))
            .to_owned();
        let (status, _, body) = post(
            d,
            "/v1/messages",
            &json!({"model": model, "max_tokens": 200, "tools": tools, "messages": [
                {"role": "user", "content": "Weather in Tokyo?"},
                {"role": "assistant", "content": [{"type": "tool_use", "id": id, "name": "get_weather", "input": {"city": "Tokyo"}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": id, "content": "22C"}]}]}),
            &[],
        );
        assert_eq!(status, 200, "{body}");
        let sent = last_gemini_body(&s);
        assert_eq!(
            sent["contents"][1]["parts"][0]["thoughtSignature"],
            signature.as_str(),
            "stream {stream}: {sent}"
        );
    }

    // Responses: inside the call_id, which Codex keeps with the call and its output.
    let (status, _, body) = post(
        d,
        "/v1/responses",
        &json!({"model": model, "input": "Weather in Tokyo?",
            "tools": [{"type": "function", "name": "get_weather", "parameters": {"type": "object",
                "properties": {"city": {"type": "string"}}}}]}),
        &[],
    );
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    let item = v["output"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["type"] == "function_call")
        .unwrap_or_else(|| panic!("no call: {body}"))
        .clone();
    let (status, _, body) = post(
        d,
        "/v1/responses",
        &json!({"model": model, "input": [
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Weather in Tokyo?"}]},
            {"type": "function_call", "call_id": item["call_id"], "name": "get_weather", "arguments": item["arguments"]},
            {"type": "function_call_output", "call_id": item["call_id"], "output": "22C"}]}),
        &[],
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        last_gemini_body(&s)["contents"][1]["parts"][0]["thoughtSignature"],
        signature.as_str()
    );
}

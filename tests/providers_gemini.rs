//! `api: "google-generative-ai"` end to end: the real openclawd against `gemini-double`
//! (tests/cloud-doubles), every inbound API the gateway has, streaming and not; failover on
//! Gemini's error bodies; and the Gemini stream translator's chunking invariance and properties.

mod common;

#[path = "common/cloud_doubles.rs"]
mod cloud_doubles;

use cloud_doubles::{
    chat, cloud_double_provider, gateway_to_double, ollama_provider, write_models_config,
    CloudDouble,
};
use common::sse::{chat_chunks, content_of, sse_data};
use common::*;
use serde_json::{json, Value};

const KEY: &str = "gemini-test-key";

/// One gateway with a Gemini provider answering `google/gemini-2.5-flash` (a daemon that does
/// not manage Ollama).
fn gateway_with_gemini(double: &CloudDouble) -> (TestEnv, Daemon) {
    gateway_to_double(double, KEY, "google", "gemini-2.5-flash", 1048576)
}

#[test]
fn chat_completions_reach_gemini_and_come_back_streaming_and_whole() {
    let gemini = CloudDouble::gemini(KEY);
    let (_env, d) = gateway_with_gemini(&gemini);

    let resp = d.chat(&chat("google/gemini-2.5-flash", false), &[]);
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["x-openclawd-model"],
        "google/gemini-2.5-flash"
    );
    let body: Value = resp.json().unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "google/gemini-2.5-flash");
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "Hello from Gemini"
    );
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert_eq!(body["usage"]["completion_tokens"], 3);

    let resp = d.chat(&chat("google/gemini-2.5-flash", true), &[]);
    assert_eq!(resp.status(), 200);
    let events = sse_data(&resp.text().unwrap());
    assert_eq!(
        events.last().map(String::as_str),
        Some("[DONE]"),
        "{events:?}"
    );
    let c = chat_chunks(&events);
    assert_eq!(content_of(&c), "Hello from Gemini");
    assert_eq!(c[0]["choices"][0]["delta"]["role"], "assistant");
    let finish: Vec<&Value> = c
        .iter()
        .filter(|v| v["choices"][0]["finish_reason"].is_string())
        .collect();
    assert_eq!(finish.len(), 1);
    assert_eq!(finish[0]["choices"][0]["finish_reason"], "stop");
    let usage = &c.last().unwrap()["usage"];
    assert_eq!(
        usage["completion_tokens"], 3,
        "the last cumulative usageMetadata: {usage}"
    );

    let got = gemini.requests();
    assert_eq!(got.len(), 2);
    assert_eq!(
        got[0]["path"],
        "/v1beta/models/gemini-2.5-flash:generateContent"
    );
    assert_eq!(
        got[1]["path"],
        "/v1beta/models/gemini-2.5-flash:streamGenerateContent"
    );
    assert_eq!(got[1]["query"], "alt=sse");
    for r in &got {
        assert_eq!(r["headers"]["x-goog-api-key"], KEY);
        assert_eq!(
            r["body"]["systemInstruction"],
            json!({"parts": [{"text": "Be brief."}]})
        );
        assert_eq!(
            r["body"]["contents"],
            json!([{"role": "user", "parts": [{"text": "Say hello."}]}])
        );
        assert_eq!(
            r["body"]["generationConfig"],
            json!({"maxOutputTokens": 100, "temperature": 0.3})
        );
    }
}

#[test]
fn a_tool_round_trip_through_gemini() {
    let gemini = CloudDouble::gemini(KEY);
    gemini.control(&json!({"tool_call": true}));
    // Gemini 3 wants each replayed call's thoughtSignature, which chat history cannot carry.
    let (_env, d) = gateway_to_double(&gemini, KEY, "google", "gemini-3-flash-preview", 1048576);
    // Claude Code style schemas: Gemini refuses `$schema` and `additionalProperties`.
    let tools = json!([{"type": "function", "function": {"name": "get_weather", "description": "Weather",
        "parameters": {"$schema": "http://json-schema.org/draft-07/schema#", "type": "object",
            "additionalProperties": false, "properties": {"location": {"type": "string"}}, "required": ["location"]}}}]);
    let mut messages = vec![json!({"role": "user", "content": "Weather in Tokyo?"})];
    for stream in [true, false] {
        let req = json!({"model": "google/gemini-3-flash-preview", "stream": stream, "messages": messages, "tools": tools});
        let resp = d.chat(&req, &[]);
        assert_eq!(resp.status(), 200);
        let (id, name, args, finish) = if stream {
            let c = chat_chunks(&sse_data(&resp.text().unwrap()));
            let call = c
                .iter()
                .find_map(|v| v["choices"][0]["delta"]["tool_calls"].get(0).cloned())
                .expect("a tool call delta");
            let finish = c
                .iter()
                .find_map(|v| v["choices"][0]["finish_reason"].as_str().map(str::to_owned));
            (
                call["id"].clone(),
                call["function"]["name"].clone(),
                call["function"]["arguments"].clone(),
                finish,
            )
        } else {
            let v: Value = resp.json().unwrap();
            let call = v["choices"][0]["message"]["tool_calls"][0].clone();
            let finish = v["choices"][0]["finish_reason"].as_str().map(str::to_owned);
            (
                call["id"].clone(),
                call["function"]["name"].clone(),
                call["function"]["arguments"].clone(),
                finish,
            )
        };
        assert_eq!(
            finish.as_deref(),
            Some("tool_calls"),
            "Gemini's STOP with a functionCall"
        );
        assert_eq!(name, "get_weather");
        assert_eq!(args, "{\"location\":\"Tokyo\"}");
        assert!(id.as_str().unwrap().starts_with("call_"));
        if !stream {
            messages.push(json!({"role": "assistant", "content": null, "tool_calls": [
                {"id": id, "type": "function", "function": {"name": name, "arguments": args}}]}));
            messages.push(
                json!({"role": "tool", "tool_call_id": id, "content": "{\"temperature\":22}"}),
            );
        }
    }
    // The answer to the tool result.
    let req =
        json!({"model": "google/gemini-3-flash-preview", "messages": messages, "tools": tools});
    let v: Value = d.chat(&req, &[]).json().unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], "Hello from Gemini");
    let last = gemini.requests().pop().unwrap();
    assert_eq!(
        last["body"]["contents"][2],
        json!({"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {"temperature": 22}}}]})
    );
    assert_eq!(
        last["body"]["contents"][1]["parts"][0]["thoughtSignature"],
        "skip_thought_signature_validator"
    );
    assert_eq!(
        last["body"]["tools"][0]["functionDeclarations"][0]["parameters"],
        json!({"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]})
    );
}

#[test]
fn the_real_openclaw_request_replays_through_gemini() {
    let gemini = CloudDouble::gemini(KEY);
    let (_env, d) = gateway_with_gemini(&gemini);
    let mut req: Value = serde_json::from_slice(
        &std::fs::read(fixture("openclaw/upstream-chat-request.json")).unwrap(),
    )
    .unwrap();
    req["model"] = json!("google/gemini-2.5-flash");
    let resp = d.chat(&req, &[("x-openclawd-no-fallback", "1")]);
    let status = resp.status();
    let text = resp.text().unwrap();
    assert_eq!(status, 200, "{text}");
    let events = sse_data(&text);
    assert_eq!(
        events.last().map(String::as_str),
        Some("[DONE]"),
        "{events:?}"
    );
    let sent = &gemini.requests()[0]["body"];
    let tools = req["tools"].as_array().unwrap().len();
    assert_eq!(
        sent["tools"][0]["functionDeclarations"]
            .as_array()
            .unwrap()
            .len(),
        tools
    );
    assert_eq!(sent["generationConfig"]["maxOutputTokens"], 1024);
    assert!(
        sent["systemInstruction"]["parts"][0]["text"]
            .as_str()
            .unwrap()
            .len()
            > 1000
    );
}

#[test]
fn local_ollama_down_falls_back_to_gemini() {
    let gemini = CloudDouble::gemini(KEY);
    let env = TestEnv::new();
    env.write_own_settings("{ ollama: { manage: false } }");
    write_models_config(
        &env,
        &[
            ollama_provider(&env),
            cloud_double_provider("google", &gemini, KEY, &[("gemini-2.5-flash", 1048576)]),
        ],
        "ollama/llama3.2:3b",
        &["google/gemini-2.5-flash"],
    );
    let d = env.start();
    d.wait_available("google/gemini-2.5-flash");
    for stream in [false, true] {
        let resp = d.chat(&chat("default", stream), &[]);
        assert_eq!(resp.status(), 200);
        assert_eq!(
            resp.headers()["x-openclawd-model"],
            "google/gemini-2.5-flash"
        );
        assert_eq!(resp.headers()["x-openclawd-fallback"], "true");
        let text = resp.text().unwrap();
        assert!(text.contains("Hello") && text.contains(" Gemini"), "{text}");
    }
}

#[test]
fn gemini_errors_drive_failover_as_their_bodies_say() {
    let bad = CloudDouble::gemini(KEY);
    let good = CloudDouble::gemini(KEY);
    let env = TestEnv::new();
    env.write_own_settings("{ ollama: { manage: false } }");
    write_models_config(
        &env,
        &[
            // A wrong key: Gemini answers 400 INVALID_ARGUMENT (API_KEY_INVALID).
            cloud_double_provider(
                "wrongkey",
                &bad,
                "not-the-key",
                &[("m1", 1048576), ("m2", 1048576)],
            ),
            cloud_double_provider("small", &good, KEY, &[("small", 8192)]),
            cloud_double_provider("big", &good, KEY, &[("big", 2000000)]),
        ],
        "wrongkey/m1",
        &["wrongkey/m2", "small/small", "big/big"],
    );
    let d = env.start();
    d.wait_available("big/big");

    // Auth: the whole provider cools down, so m2 is not even tried.
    let resp = d.chat(&chat("default", false), &[]);
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-openclawd-model"], "small/small");
    assert_eq!(resp.headers()["x-openclawd-attempts"], "2");
    assert_eq!(bad.requests().len(), 1);

    // Token limit (400 INVALID_ARGUMENT): only a model with a larger window is worth trying.
    good.control(&json!({"input_token_limit": 5}));
    let resp = d.chat(
        &json!({"model": "small/small", "messages": [{"role": "user", "content": "hi"}]}),
        &[],
    );
    assert_eq!(resp.status(), 502, "the larger model is over the limit too");
    let text = resp.text().unwrap();
    assert!(
        text.contains("exceeds the maximum number of tokens allowed"),
        "{text}"
    );
    assert!(text.contains("context_length"), "{text}");

    // Any other 400 is the request's fault: relayed in OpenAI's shape, no fallback.
    good.control(&json!({"fail": {"status": 400, "body": {"error": {"code": 400, "message": "Please use a valid role: user, model.", "status": "INVALID_ARGUMENT"}}}}));
    let d2_req = json!({"model": "big/big", "messages": [{"role": "user", "content": "hi"}]});
    let resp = d.chat(&d2_req, &[]);
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let v: Value = resp.json().unwrap();
    assert_eq!(
        v["error"]["message"],
        "Please use a valid role: user, model."
    );
    assert_eq!(v["error"]["type"], "invalid_request_error");

    // Rate limit (429 RESOURCE_EXHAUSTED): falls over.
    good.control(&json!({"fail": "rate_limit"}));
    let resp = d.chat(&chat("big/big", true), &[]);
    assert_eq!(resp.status(), 502);
    let text = resp.text().unwrap();
    assert!(
        text.contains("RESOURCE_EXHAUSTED") && text.contains("rate_limited"),
        "{text}"
    );
}

#[test]
fn a_gemini_stream_cut_after_the_first_byte_ends_with_an_error_event() {
    let gemini = CloudDouble::gemini(KEY);
    gemini.control(&json!({"cut_after": 2}));
    let (_env, d) = gateway_with_gemini(&gemini);
    let events = sse_data(&d.chat(&chat("default", true), &[]).text().unwrap());
    let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert!(last["error"]["message"].is_string(), "{events:?}");
    assert!(!events.iter().any(|e| e == "[DONE]"));
    assert_eq!(
        content_of(&chat_chunks(&events[..events.len() - 1])),
        "Hello from"
    );

    // An error object inside the stream ends it the same way.
    gemini.control(&json!({"stream_error_after": 1}));
    let events = sse_data(&d.chat(&chat("default", true), &[]).text().unwrap());
    let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert!(
        last["error"]["message"]
            .as_str()
            .unwrap()
            .contains("INTERNAL"),
        "{events:?}"
    );
}

#[test]
fn gemini_api_key_is_the_default_key_variable() {
    let gemini = CloudDouble::gemini(KEY);
    let mut env = TestEnv::new();
    env.write_own_settings("{ ollama: { manage: false } }");
    env.extra_env.push(("GEMINI_API_KEY".into(), KEY.into()));
    env.write_config(&format!(
        "{{ models: {{ providers: {{ google: {{ baseUrl: '{}/v1beta', api: 'google-generative-ai',
            models: [ {{ id: 'gemini-2.5-flash', name: 'Flash', contextWindow: 1048576 }} ] }} }} }},
           agents: {{ defaults: {{ model: 'google/gemini-2.5-flash' }} }} }}",
        gemini.base()
    ));
    let d = env.start();
    d.wait_available("google/gemini-2.5-flash");
    let resp = d.chat(&chat("default", false), &[]);
    assert_eq!(resp.status(), 200);
    assert_eq!(gemini.requests()[0]["headers"]["x-goog-api-key"], KEY);
}

// ---------------------------------------------------------------------------------------------
// The stream translator alone: chunking invariance and properties.

mod translator {
    use openclawd::gateway::wire::gemini::GeminiStreamTranslator;
    use openclawd::gateway::wire::openai::ChunkWriter;
    use openclawd::gateway::wire::TranslateEvent;
    use proptest::prelude::*;

    use crate::common::proptest_config;
    use crate::common::translate::{
        assert_same_output_at_every_split, assert_well_formed_chat_sse, translate,
    };

    fn run(pieces: &[&[u8]]) -> Vec<String> {
        let translator = GeminiStreamTranslator::with_writer(
            ChunkWriter::with_id("chatcmpl-1".into(), 1, "google/gemini"),
            true,
        );
        translate(translator, pieces)
            .iter()
            .map(|e| match e {
                TranslateEvent::Sse(b) => normalize(&String::from_utf8_lossy(b)),
                TranslateEvent::UpstreamError(m) => format!("ERROR {m}"),
            })
            .collect()
    }

    /// Tool call ids are invented per call (Gemini sends none).
    fn normalize(s: &str) -> String {
        let mut out = String::new();
        let mut rest = s;
        while let Some(at) = rest.find("\"call_") {
            out.push_str(&rest[..at + 6]);
            rest = rest[at + 6..].trim_start_matches(|c: char| c.is_ascii_alphanumeric());
            out.push('X');
        }
        out.push_str(rest);
        out
    }

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(super::fixture(&format!("gemini/{name}"))).unwrap()
    }

    /// A function call stream: `function-call-response.json` as one `data:` chunk.
    fn function_call_stream() -> Vec<u8> {
        let v: serde_json::Value =
            serde_json::from_slice(&fixture("function-call-response.json")).unwrap();
        format!("data: {v}\r\n\r\n").into_bytes()
    }

    #[test]
    fn every_split_point_of_the_fixture_streams_gives_the_same_output() {
        for (name, input) in [
            ("stream.sse", fixture("stream.sse")),
            (
                "stream-single-chunk.sse",
                fixture("stream-single-chunk.sse"),
            ),
            ("function-call-response.json", function_call_stream()),
        ] {
            let whole = run(&[&input]);
            assert!(
                whole.last().is_some_and(|l| l == "data: [DONE]\n\n"),
                "{name}: {whole:?}"
            );
            assert_same_output_at_every_split(run, &input, &whole, name);
        }
    }

    #[test]
    fn the_fixture_stream_keeps_its_text_and_last_usage() {
        let out = run(&[&fixture("stream.sse")]);
        let text: String = out
            .iter()
            .filter_map(|e| e.strip_prefix("data: "))
            .filter_map(|e| serde_json::from_str::<serde_json::Value>(e.trim_end()).ok())
            .filter_map(|v| {
                v["choices"][0]["delta"]["content"]
                    .as_str()
                    .map(str::to_owned)
            })
            .collect();
        assert_eq!(text, "今日の東京の天気は曇りで、気温は22度です。\n");
        let usage = out.iter().rev().nth(1).unwrap();
        assert!(
            usage.contains("\"prompt_tokens\":138,\"completion_tokens\":15"),
            "{usage}"
        );
    }

    proptest! {
        #![proptest_config(proptest_config())]

        #[test]
        fn arbitrary_bytes_never_panic_and_do_not_depend_on_chunking(
            data in proptest::collection::vec(any::<u8>(), 0..400),
            cut in 0usize..400,
        ) {
            let whole = run(&[&data]);
            assert_well_formed_chat_sse(&whole);
            let at = cut.min(data.len());
            prop_assert_eq!(run(&[&data[..at], &data[at..]]), whole);
        }

        #[test]
        fn generated_text_streams_keep_every_token(
            tokens in proptest::collection::vec("[a-zA-Z0-9 東京é]{0,6}", 1..8),
            crlf in any::<bool>(),
            cut in 0usize..2000,
        ) {
            let end = if crlf { "\r\n\r\n" } else { "\n\n" };
            let n = tokens.len();
            let mut input = String::new();
            for (i, t) in tokens.iter().enumerate() {
                let finish = if i + 1 == n { ",\"finishReason\": \"STOP\"" } else { "" };
                input.push_str(&format!(
                    "data: {{\"candidates\": [{{\"content\": {{\"parts\": [{{\"text\": {}}}],\"role\": \"model\"}}{finish},\"index\": 0}}],\"usageMetadata\": {{\"promptTokenCount\": 3,\"candidatesTokenCount\": {},\"totalTokenCount\": {}}}}}{end}",
                    serde_json::Value::from(t.as_str()), i + 1, i + 4));
            }
            let bytes = input.as_bytes();
            let whole = run(&[bytes]);
            assert_well_formed_chat_sse(&whole);
            let text: String = whole.iter()
                .filter_map(|e| e.strip_prefix("data: "))
                .filter_map(|e| serde_json::from_str::<serde_json::Value>(e.trim_end()).ok())
                .filter_map(|v| v["choices"][0]["delta"]["content"].as_str().map(str::to_owned))
                .collect();
            prop_assert_eq!(text, tokens.concat());
            prop_assert_eq!(whole.last().map(String::as_str), Some("data: [DONE]\n\n"));
            let at = cut % (bytes.len() + 1);
            prop_assert_eq!(run(&[&bytes[..at], &bytes[at..]]), whole);
        }
    }
}

#[test]
fn a_redirecting_base_url_is_reported_and_the_key_goes_nowhere() {
    use std::io::{BufRead, BufReader, Write};
    let gemini = CloudDouble::gemini(KEY);
    // A server that redirects every request to the real double.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let target = format!(
        "{}/v1beta/models/gemini-2.5-flash:generateContent",
        gemini.base()
    );
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            let mut length = 0usize;
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
                line.clear();
            }
            let mut body = vec![0; length];
            let _ = std::io::Read::read_exact(&mut reader, &mut body);
            let mut stream = stream;
            let _ = write!(
                stream,
                "HTTP/1.1 307 Temporary Redirect\r\nLocation: {target}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
        }
    });
    let env = TestEnv::new();
    env.write_own_settings("{ ollama: { manage: false } }");
    env.write_config(&format!(
        "{{ models: {{ providers: {{ google: {{ baseUrl: 'http://127.0.0.1:{port}/v1beta', apiKey: '{KEY}',
            api: 'google-generative-ai', models: [ {{ id: 'gemini-2.5-flash', name: 'Flash' }} ] }} }} }},
           agents: {{ defaults: {{ model: 'google/gemini-2.5-flash' }} }} }}"
    ));
    let d = env.start();
    d.wait_available("google/gemini-2.5-flash");
    let resp = d.chat(&chat("default", false), &[]);
    assert_eq!(resp.status(), 502);
    let text = resp.text().unwrap();
    assert!(
        text.contains("does not follow an upstream's redirects"),
        "{text}"
    );
    assert!(
        gemini.requests().is_empty(),
        "the key was not sent to the redirect target"
    );
}

#[path = "common/inbound.rs"]
mod inbound;

#[test]
fn anthropic_messages_and_responses_clients_reach_gemini() {
    let gemini = CloudDouble::gemini(KEY);
    let (_env, d) = gateway_with_gemini(&gemini);
    inbound::messages_answer(&d, "google/gemini-2.5-flash", "Hello from Gemini");
    inbound::responses_answer(&d, "google/gemini-2.5-flash", "Hello from Gemini");
    // Claude Code's tools carry `$schema`/`additionalProperties`: a tool_use comes back.
    gemini.control(&json!({"tool_call": true}));
    let body = json!({"model": "google/gemini-2.5-flash", "max_tokens": 256,
        "messages": [{"role": "user", "content": "Weather in Tokyo?"}],
        "tools": [{"name": "get_weather", "description": "Weather", "input_schema": {
            "$schema": "http://json-schema.org/draft-07/schema#", "type": "object", "additionalProperties": false,
            "properties": {"location": {"type": "string"}}, "required": ["location"]}}]});
    let r = http_post_full(&format!("{}/v1/messages", d.base), &[], &body.to_string());
    assert_eq!(r.status(), 200);
    let v: Value = r.json().unwrap();
    assert_eq!(v["stop_reason"], "tool_use", "{v}");
    let block = v["content"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["type"] == "tool_use")
        .unwrap()
        .clone();
    assert_eq!(block["name"], "get_weather");
    assert_eq!(block["input"], json!({"location": "Tokyo"}));
}

//! `api: "openai-responses"` end to end: the real openclawd against `responses-double`
//! (tests/cloud-doubles), every inbound API the gateway has, streaming and not; failover on
//! OpenAI's error bodies; and the Responses stream translator's chunking invariance and
//! properties.

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

const KEY: &str = "sk-responses-test-key";

/// One gateway with a Responses provider answering `openai/gpt-5` (a daemon that does not
/// manage Ollama).
fn gateway_with_responses(double: &CloudDouble) -> (TestEnv, Daemon) {
    gateway_to_double(double, KEY, "openai", "gpt-5", 400000)
}

#[test]
fn chat_completions_reach_the_responses_api_and_come_back_streaming_and_whole() {
    let api = CloudDouble::responses(KEY);
    api.control(&json!({"reasoning_tokens": 12}));
    let (_env, d) = gateway_with_responses(&api);

    let resp = d.chat(&chat("openai/gpt-5", false), &[]);
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-openclawd-model"], "openai/gpt-5");
    let body: Value = resp.json().unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "openai/gpt-5");
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "Hello from Responses"
    );
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        body["usage"]["completion_tokens"], 15,
        "output tokens include reasoning"
    );

    let resp = d.chat(&chat("openai/gpt-5", true), &[]);
    assert_eq!(resp.status(), 200);
    let events = sse_data(&resp.text().unwrap());
    assert_eq!(
        events.last().map(String::as_str),
        Some("[DONE]"),
        "{events:?}"
    );
    let c = chat_chunks(&events);
    assert_eq!(content_of(&c), "Hello from Responses");
    assert_eq!(c[0]["choices"][0]["delta"]["role"], "assistant");
    let finish: Vec<&Value> = c
        .iter()
        .filter(|v| v["choices"][0]["finish_reason"].is_string())
        .collect();
    assert_eq!(finish.len(), 1);
    assert_eq!(finish[0]["choices"][0]["finish_reason"], "stop");
    assert_eq!(c.last().unwrap()["usage"]["completion_tokens"], 15);

    let got = api.requests();
    assert_eq!(got.len(), 2);
    for (r, stream) in got.iter().zip([false, true]) {
        assert_eq!(r["path"], "/v1/responses");
        assert_eq!(r["headers"]["authorization"], format!("Bearer {KEY}"));
        assert_eq!(r["body"]["model"], "gpt-5");
        assert_eq!(r["body"]["instructions"], "Be brief.");
        assert_eq!(
            r["body"]["input"],
            json!([{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Say hello."}]}])
        );
        assert_eq!(r["body"]["max_output_tokens"], 100);
        assert_eq!(r["body"]["store"], false, "nothing is left stored upstream");
        assert_eq!(r["body"]["stream"], stream);
    }

    // A one-token probe is not refused (the API's minimum is 16).
    let mut req = chat("openai/gpt-5", false);
    req["max_tokens"] = json!(1);
    let resp = d.chat(&req, &[]);
    assert_eq!(resp.status(), 200);
    assert_eq!(
        api.requests().last().unwrap()["body"]["max_output_tokens"],
        16
    );

    // `max_output_tokens` cut the answer: `incomplete` is `length`.
    api.control(&json!({"reply_tokens": vec!["a"; 40]}));
    let mut req = chat("openai/gpt-5", true);
    req["max_tokens"] = json!(20);
    let c = chat_chunks(&sse_data(&d.chat(&req, &[]).text().unwrap()));
    let reason = c
        .iter()
        .find_map(|v| v["choices"][0]["finish_reason"].as_str());
    assert_eq!(reason, Some("length"));
}

#[test]
fn a_function_call_round_trip_through_the_responses_api() {
    let api = CloudDouble::responses(KEY);
    api.control(&json!({"tool_call": true, "reasoning_tokens": 5}));
    let (_env, d) = gateway_with_responses(&api);
    let tools = json!([{"type": "function", "function": {"name": "get_weather", "description": "Weather",
        "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}}}]);
    let mut messages = vec![json!({"role": "user", "content": "Weather in New York City?"})];
    for stream in [true, false] {
        let req = json!({"model": "openai/gpt-5", "stream": stream, "messages": messages, "tools": tools});
        let resp = d.chat(&req, &[]);
        assert_eq!(resp.status(), 200);
        let (id, name, args, finish) = if stream {
            let c = chat_chunks(&sse_data(&resp.text().unwrap()));
            let deltas: Vec<Value> = c
                .iter()
                .filter_map(|v| v["choices"][0]["delta"]["tool_calls"].get(0).cloned())
                .collect();
            assert!(deltas.len() > 2, "arguments arrive in pieces: {deltas:?}");
            let args: String = deltas
                .iter()
                .filter_map(|d| d["function"]["arguments"].as_str())
                .collect();
            let finish = c
                .iter()
                .find_map(|v| v["choices"][0]["finish_reason"].as_str().map(str::to_owned));
            (
                deltas[0]["id"].clone(),
                deltas[0]["function"]["name"].clone(),
                Value::from(args),
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
        assert_eq!(finish.as_deref(), Some("tool_calls"));
        assert_eq!(name, "get_weather");
        assert_eq!(args, "{ \"location\": \"New York City, USA\" }");
        assert!(
            id.as_str().unwrap().starts_with("call_"),
            "the call_id is the chat id"
        );
        if !stream {
            messages.push(json!({"role": "assistant", "content": null, "tool_calls": [
                {"id": id, "type": "function", "function": {"name": name, "arguments": args}}]}));
            messages.push(json!({"role": "tool", "tool_call_id": id, "content": "\"Sunny\""}));
        }
    }
    let req = json!({"model": "openai/gpt-5", "messages": messages, "tools": tools});
    let v: Value = d.chat(&req, &[]).json().unwrap();
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "Hello from Responses"
    );
    let last = api.requests().pop().unwrap();
    let input = last["body"]["input"].as_array().unwrap().clone();
    assert_eq!(input[1]["type"], "function_call");
    assert_eq!(input[2]["type"], "function_call_output");
    assert_eq!(input[2]["call_id"], input[1]["call_id"]);
    assert_eq!(input[2]["output"], "\"Sunny\"");
    assert_eq!(
        last["body"]["tools"][0],
        json!({"type": "function", "name": "get_weather", "description": "Weather",
            "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}})
    );
}

#[test]
fn the_real_openclaw_request_replays_through_the_responses_api() {
    let api = CloudDouble::responses(KEY);
    let (_env, d) = gateway_with_responses(&api);
    let mut req: Value = serde_json::from_slice(
        &std::fs::read(fixture("openclaw/upstream-chat-request.json")).unwrap(),
    )
    .unwrap();
    req["model"] = json!("openai/gpt-5");
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
    let usage = chat_chunks(&events).last().unwrap()["usage"].clone();
    assert!(usage["prompt_tokens"].as_u64().unwrap() > 10000, "{usage}");
    let sent = &api.requests()[0]["body"];
    assert_eq!(
        sent["tools"].as_array().unwrap().len(),
        req["tools"].as_array().unwrap().len()
    );
    assert_eq!(sent["max_output_tokens"], 1024);
    assert!(sent["instructions"].as_str().unwrap().len() > 1000);
}

#[test]
fn local_ollama_down_falls_back_to_the_responses_api() {
    let api = CloudDouble::responses(KEY);
    let env = TestEnv::new();
    env.write_own_settings("{ ollama: { manage: false } }");
    write_models_config(
        &env,
        &[
            ollama_provider(&env),
            cloud_double_provider("openai", &api, KEY, &[("gpt-5", 400000)]),
        ],
        "ollama/llama3.2:3b",
        &["openai/gpt-5"],
    );
    let d = env.start();
    d.wait_available("openai/gpt-5");
    for stream in [false, true] {
        let resp = d.chat(&chat("default", stream), &[]);
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["x-openclawd-model"], "openai/gpt-5");
        assert_eq!(resp.headers()["x-openclawd-fallback"], "true");
        let text = resp.text().unwrap();
        assert!(
            text.contains("Hello") && text.contains(" Responses"),
            "{text}"
        );
    }
}

#[test]
fn responses_errors_drive_failover() {
    let bad = CloudDouble::responses(KEY);
    let good = CloudDouble::responses(KEY);
    let env = TestEnv::new();
    env.write_own_settings("{ ollama: { manage: false } }");
    write_models_config(
        &env,
        &[
            cloud_double_provider(
                "wrongkey",
                &bad,
                "sk-not-the-key",
                &[("m1", 400000), ("m2", 400000)],
            ),
            cloud_double_provider("good", &good, KEY, &[("small", 8192), ("big", 1000000)]),
        ],
        "wrongkey/m1",
        &["wrongkey/m2", "good/small", "good/big"],
    );
    let d = env.start();
    d.wait_available("good/big");

    // 401 invalid_api_key: the whole provider cools down.
    let resp = d.chat(&chat("default", false), &[]);
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-openclawd-model"], "good/small");
    assert_eq!(resp.headers()["x-openclawd-attempts"], "2");
    assert_eq!(bad.requests().len(), 1);

    // A failed stream (`event: error` + `response.failed`) before the first token falls over,
    // and context_length_exceeded only to a larger window.
    good.control(&json!({"stream_error": "context_length_exceeded"}));
    let resp = d.chat(&chat("good/small", true), &[]);
    assert_eq!(resp.status(), 502);
    let text = resp.text().unwrap();
    assert!(text.contains("context_length"), "{text}");
    assert_eq!(good.requests().len(), 3, "small, then big (larger window)");

    // A request the API refuses is relayed as it is, without fallback.
    good.control(&json!({"fail": {"status": 400, "body": {"error": {"message": "Invalid 'input[0].content[0].text': string too long.", "type": "invalid_request_error", "param": "input[0].content[0].text", "code": "string_above_max_length"}}}}));
    let resp = d.chat(
        &json!({"model": "good/big", "messages": [{"role": "user", "content": "hi"}]}),
        &[],
    );
    assert_eq!(resp.status(), 400);
    let v: Value = resp.json().unwrap();
    assert_eq!(v["error"]["code"], "string_above_max_length");

    // 429 with retry-after: falls over, the model cools down at least that long.
    good.control(&json!({"fail": "rate_limit", "retry_after": "120"}));
    let resp = d.chat(&chat("good/big", false), &[]);
    assert_eq!(resp.status(), 502);
    let text = resp.text().unwrap();
    assert!(text.contains("rate_limited"), "{text}");
    let status = d.status().unwrap();
    let big = model_status(&status, "good/big");
    assert!(big.to_string().contains("cool"), "{big}");
}

#[test]
fn a_responses_stream_cut_after_the_first_byte_ends_with_an_error_event() {
    let api = CloudDouble::responses(KEY);
    api.control(&json!({"cut_after": 6}));
    let (_env, d) = gateway_with_responses(&api);
    let events = sse_data(&d.chat(&chat("default", true), &[]).text().unwrap());
    let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert!(
        last["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{events:?}"
    );
    assert!(!events.iter().any(|e| e == "[DONE]"));
    assert_eq!(
        content_of(&chat_chunks(&events[..events.len() - 1])),
        "Hello from"
    );
}

// ---------------------------------------------------------------------------------------------
// The stream translator alone: chunking invariance and properties.

mod translator {
    use openclawd::gateway::wire::openai::ChunkWriter;
    use openclawd::gateway::wire::responses_out::ResponsesStreamTranslator;
    use openclawd::gateway::wire::TranslateEvent;
    use proptest::prelude::*;

    use crate::common::proptest_config;
    use crate::common::translate::{
        assert_same_output_at_every_split, assert_well_formed_chat_sse, translate,
    };

    fn run(pieces: &[&[u8]]) -> Vec<String> {
        let translator = ResponsesStreamTranslator::with_writer(
            ChunkWriter::with_id("chatcmpl-1".into(), 1, "openai/gpt-5"),
            true,
        );
        translate(translator, pieces)
            .iter()
            .map(|e| match e {
                TranslateEvent::Sse(b) => String::from_utf8_lossy(b).into_owned(),
                TranslateEvent::UpstreamError(m) => format!("ERROR {m}"),
            })
            .collect()
    }

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(super::fixture(&format!("openai-responses/{name}"))).unwrap()
    }

    #[test]
    fn every_split_point_of_the_fixture_streams_gives_the_same_output() {
        for name in ["stream.sse", "stream-function-call.sse", "stream-error.sse"] {
            let input = fixture(name);
            let whole = run(&[&input]);
            let last = whole.last().map(String::as_str).unwrap_or("");
            assert!(
                last == "data: [DONE]\n\n" || last.starts_with("ERROR "),
                "{name}: {whole:?}"
            );
            assert_same_output_at_every_split(run, &input, &whole, name);
        }
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
        fn generated_streams_keep_every_token_and_argument_piece(
            tokens in proptest::collection::vec("[a-zA-Z0-9 東京é\"]{0,6}", 1..8),
            args in proptest::collection::vec("[a-z{}\":, ]{1,5}", 0..5),
            cut in 0usize..4000,
        ) {
            let mut events = vec![
                serde_json::json!({"type": "response.created", "response": {"id": "resp_1", "status": "in_progress", "output": []}}),
            ];
            for t in &tokens {
                events.push(serde_json::json!({"type": "response.output_text.delta", "item_id": "msg_1", "output_index": 0, "content_index": 0, "delta": t}));
            }
            if !args.is_empty() {
                events.push(serde_json::json!({"type": "response.output_item.added", "output_index": 1, "item": {"id": "fc_1", "type": "function_call", "arguments": "", "call_id": "call_1", "name": "f"}}));
                for a in &args {
                    events.push(serde_json::json!({"type": "response.function_call_arguments.delta", "item_id": "fc_1", "output_index": 1, "delta": a}));
                }
            }
            events.push(serde_json::json!({"type": "response.completed", "response": {"id": "resp_1", "status": "completed", "output": [], "usage": {"input_tokens": 3, "output_tokens": 4, "total_tokens": 7}}}));
            let mut input = String::new();
            for (seq, mut e) in events.into_iter().enumerate() {
                e["sequence_number"] = seq.into();
                input.push_str(&format!("event: {}\ndata: {e}\n\n", e["type"].as_str().unwrap()));
            }
            let bytes = input.as_bytes();
            let whole = run(&[bytes]);
            assert_well_formed_chat_sse(&whole);
            let payloads: Vec<serde_json::Value> = whole.iter()
                .filter_map(|e| e.strip_prefix("data: "))
                .filter_map(|e| serde_json::from_str(e.trim_end()).ok())
                .collect();
            let text: String = payloads.iter()
                .filter_map(|v| v["choices"][0]["delta"]["content"].as_str()).collect();
            prop_assert_eq!(text, tokens.concat());
            let arguments: String = payloads.iter()
                .filter_map(|v| v["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str()).collect();
            prop_assert_eq!(arguments, args.concat());
            let finish = payloads.iter().find_map(|v| v["choices"][0]["finish_reason"].as_str());
            prop_assert_eq!(finish, Some(if args.is_empty() { "stop" } else { "tool_calls" }));
            let at = cut % (bytes.len() + 1);
            prop_assert_eq!(run(&[&bytes[..at], &bytes[at..]]), whole);
        }
    }
}

#[path = "common/inbound.rs"]
mod inbound;

#[test]
fn anthropic_messages_and_responses_clients_reach_the_responses_api() {
    let api = CloudDouble::responses(KEY);
    let (_env, d) = gateway_with_responses(&api);
    inbound::messages_answer(&d, "openai/gpt-5", "Hello from Responses");
    inbound::responses_answer(&d, "openai/gpt-5", "Hello from Responses");
    // Claude Code's start-up probe asks for one token.
    let body = json!({"model": "openai/gpt-5", "max_tokens": 1,
        "messages": [{"role": "user", "content": "quota"}]});
    let r = http_post_full(&format!("{}/v1/messages", d.base), &[], &body.to_string());
    assert_eq!(r.status(), 200, "{}", r.text().unwrap_or_default());
}

//! Wire translation against real captures: Ollama's native NDJSON streams must come out as what
//! Ollama's own OpenAI layer writes for the same answer, OpenClaw's real request must translate
//! for every provider kind, and the framers must not care how the bytes were chunked.

use std::path::PathBuf;

use bytes::Bytes;
use openclawd::gateway::wire::anthropic::{self, AnthropicStreamTranslator};
use openclawd::gateway::wire::ndjson::NdjsonSplitter;
use openclawd::gateway::wire::ollama::{self, OllamaStreamTranslator};
use openclawd::gateway::wire::openai::{self, ChunkWriter};
use openclawd::gateway::wire::sse::{SseEvent, SseParser};
use openclawd::gateway::wire::TranslateEvent;
use serde_json::{json, Map, Value};

fn fixture(path: &str) -> Vec<u8> {
    let full: PathBuf = [env!("CARGO_MANIFEST_DIR"), "tests", "fixtures", path]
        .iter()
        .collect();
    std::fs::read(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

const NDJSON_FIXTURES: &[&str] = &[
    "ollama/chat-stream.ndjson",
    "ollama/chat-stream-thinking.ndjson",
    "ollama/chat-stream-tools.ndjson",
    "ollama/errors/chat-midstream-error.ndjson",
    "ollama/generate-stream.ndjson",
];

const SSE_FIXTURES: &[&str] = &[
    "ollama/v1-chat-stream.sse",
    "ollama/v1-chat-stream-thinking.sse",
    "ollama/v1-chat-stream-tools.sse",
    "ollama/v1-chat-stream-legacy.sse",
];

/// Chunk sizes that walk every split point of small inputs and a spread of sizes for big ones,
/// without a property-testing crate: all sizes 1..=64, then a deterministic pseudo-random mix.
fn chunkings(len: usize) -> Vec<Vec<usize>> {
    let mut plans: Vec<Vec<usize>> = (1..=64).map(|size| vec![size]).collect();
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    for _ in 0..32 {
        let mut plan = Vec::new();
        let mut covered = 0;
        while covered < len {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let size = 1 + (seed >> 33) as usize % 97;
            plan.push(size);
            covered += size;
        }
        plans.push(plan);
    }
    plans
}

/// Split `input` by `plan` (the last size repeats).
fn pieces<'a>(input: &'a [u8], plan: &[usize]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut rest = input;
    let mut i = 0;
    while !rest.is_empty() {
        let size = plan[i.min(plan.len() - 1)].min(rest.len());
        out.push(&rest[..size]);
        rest = &rest[size..];
        i += 1;
    }
    out
}

fn split_lines(chunks: &[&[u8]]) -> Vec<Bytes> {
    let mut splitter = NdjsonSplitter::new();
    let mut lines: Vec<Bytes> = chunks.iter().flat_map(|c| splitter.push(c)).collect();
    lines.extend(splitter.finish());
    lines
}

fn parse_sse(chunks: &[&[u8]]) -> Vec<SseEvent> {
    let mut parser = SseParser::new();
    let mut events: Vec<SseEvent> = chunks.iter().flat_map(|c| parser.push(c)).collect();
    events.extend(parser.finish());
    events
}

/// What the gateway does with an Ollama stream: split lines, translate, and at EOF finish.
fn translate_ollama(
    ndjson: &[u8],
    model_ref: &str,
    include_usage: bool,
    plan: &[usize],
) -> Vec<TranslateEvent> {
    let writer = ChunkWriter::with_id("chatcmpl-test".into(), 1_787_418_967, model_ref);
    let mut translator = OllamaStreamTranslator::with_writer(writer, include_usage);
    let mut splitter = NdjsonSplitter::new();
    let mut out = Vec::new();
    for piece in pieces(ndjson, plan) {
        for line in splitter.push(piece) {
            out.extend(translator.feed(&line));
        }
    }
    if let Some(line) = splitter.finish() {
        out.extend(translator.feed(&line));
    }
    out.extend(translator.finish());
    out
}

/// The JSON of each `data:` payload (`[DONE]` as the string "[DONE]").
fn payloads(events: &[SseEvent]) -> Vec<Value> {
    events
        .iter()
        .map(|e| {
            if e.data == "[DONE]" {
                Value::from("[DONE]")
            } else {
                serde_json::from_str(&e.data).unwrap()
            }
        })
        .collect()
}

/// The translated stream as the client would parse it; an upstream error becomes
/// `{"upstream_error": message}`.
fn client_view(events: &[TranslateEvent]) -> Vec<Value> {
    let mut out = Vec::new();
    for event in events {
        match event {
            TranslateEvent::Sse(bytes) => {
                assert!(bytes.starts_with(b"data: ") && bytes.ends_with(b"\n\n"));
                out.extend(payloads(&parse_sse(&[bytes])));
            }
            TranslateEvent::UpstreamError(message) => out.push(json!({"upstream_error": message})),
        }
    }
    out
}

/// Drop what legitimately differs between Ollama's layer and the gateway.
fn without_ids(mut chunks: Vec<Value>) -> Vec<Value> {
    for chunk in &mut chunks {
        if let Some(obj) = chunk.as_object_mut() {
            obj.remove("id");
            obj.remove("created");
            obj.remove("system_fingerprint");
        }
    }
    chunks
}

fn concat(chunks: &[Value], field: &str) -> String {
    chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"][field].as_str())
        .collect()
}

fn assert_matches_ollama_v1(ndjson: &str, sse: &str, model: &str, include_usage: bool) {
    let ours = client_view(&translate_ollama(
        &fixture(ndjson),
        model,
        include_usage,
        &[usize::MAX],
    ));
    let theirs = payloads(&parse_sse(&[&fixture(sse)]));

    // Field by field, the parts a client reads.
    assert_eq!(
        concat(&ours, "content"),
        concat(&theirs, "content"),
        "content"
    );
    assert_eq!(
        concat(&ours, "reasoning"),
        concat(&theirs, "reasoning"),
        "reasoning"
    );
    let finish = |chunks: &[Value]| -> Vec<Value> {
        chunks
            .iter()
            .map(|c| c["choices"][0]["finish_reason"].clone())
            .filter(|f| !f.is_null())
            .collect()
    };
    assert_eq!(finish(&ours), finish(&theirs), "finish_reason");
    let usage = |chunks: &[Value]| -> Vec<Value> {
        chunks
            .iter()
            .map(|c| c["usage"].clone())
            .filter(|u| !u.is_null())
            .collect()
    };
    assert_eq!(usage(&ours), usage(&theirs), "usage");
    let tool_calls = |chunks: &[Value]| -> Vec<Value> {
        chunks
            .iter()
            .flat_map(|c| {
                c["choices"][0]["delta"]["tool_calls"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .collect()
    };
    assert_eq!(tool_calls(&ours), tool_calls(&theirs), "tool_calls");

    // And the whole stream, chunk for chunk, once ids and timestamps are set aside.
    assert_eq!(without_ids(ours.clone()), without_ids(theirs));

    // One id and one created for the whole answer, and no fingerprint.
    for chunk in ours.iter().filter(|c| c.is_object()) {
        assert_eq!(chunk["id"], json!("chatcmpl-test"));
        assert_eq!(chunk["created"], json!(1_787_418_967));
        assert!(chunk.get("system_fingerprint").is_none());
    }
}

#[test]
fn plain_stream_matches_ollamas_own_openai_stream_with_usage() {
    assert_matches_ollama_v1(
        "ollama/chat-stream.ndjson",
        "ollama/v1-chat-stream.sse",
        "llama3.2:3b",
        true,
    );
}

#[test]
fn thinking_stream_matches_ollamas_own_openai_stream() {
    assert_matches_ollama_v1(
        "ollama/chat-stream-thinking.ndjson",
        "ollama/v1-chat-stream-thinking.sse",
        "gpt-oss:20b",
        false,
    );
}

#[test]
fn tool_call_stream_matches_ollamas_own_openai_stream() {
    assert_matches_ollama_v1(
        "ollama/chat-stream-tools.ndjson",
        "ollama/v1-chat-stream-tools.sse",
        "qwen3-coder:latest",
        false,
    );
}

#[test]
fn usage_chunk_is_only_sent_when_asked_for() {
    let chunks = client_view(&translate_ollama(
        &fixture("ollama/chat-stream.ndjson"),
        "ollama/llama3.2:3b",
        false,
        &[usize::MAX],
    ));
    assert!(chunks.iter().all(|c| c.get("usage").is_none()));
    assert_eq!(chunks.last(), Some(&json!("[DONE]")));
    assert_eq!(chunks[0]["model"], json!("ollama/llama3.2:3b"));
}

#[test]
fn native_metrics_of_the_final_line_are_exposed() {
    let mut translator = OllamaStreamTranslator::new("ollama/gpt-oss:20b", false);
    let mut splitter = NdjsonSplitter::new();
    for line in splitter.push(&fixture("ollama/chat-stream-thinking.ndjson")) {
        translator.feed(&line);
    }
    let metrics = translator.metrics().expect("final line seen");
    assert_eq!(
        metrics.load_duration.map(|d| d.as_nanos()),
        Some(1_204_518_833)
    );
    assert_eq!(
        metrics.eval_duration.map(|d| d.as_nanos()),
        Some(611_289_004)
    );
    assert_eq!(metrics.prompt_eval_count, Some(68));
    assert_eq!(metrics.eval_count, Some(41));
    assert_eq!(translator.usage().map(|u| u.total_tokens()), Some(109));
}

#[test]
fn midstream_error_stops_translation_with_the_upstream_message() {
    let events = translate_ollama(
        &fixture("ollama/errors/chat-midstream-error.ndjson"),
        "ollama/llama3.2:3b",
        true,
        &[usize::MAX],
    );
    let view = client_view(&events);
    assert_eq!(view.len(), 4);
    assert_eq!(concat(&view[..3], "content"), "The sky is");
    assert_eq!(view[0]["choices"][0]["delta"]["role"], json!("assistant"));
    assert_eq!(
        view[3],
        json!({"upstream_error": "llama-server process has terminated: signal: segmentation fault (core dumped)"})
    );
    // No finish chunk, no [DONE]: the gateway ends the stream with an error event instead.
    let TranslateEvent::UpstreamError(message) = &events[3] else {
        panic!("expected an upstream error, got {:?}", events[3]);
    };
    let closing = openai::sse_error_event(message, openai::API_ERROR);
    assert_eq!(
        payloads(&parse_sse(&[&closing])),
        vec![
            json!({"error": {"message": message, "type": "api_error", "param": null, "code": null}})
        ]
    );
}

#[test]
fn ollama_error_fixtures_yield_their_messages() {
    for (file, message) in [
        (
            "ollama/errors/404-model-not-found-chat.json",
            "model 'llama9:70b' not found",
        ),
        (
            "ollama/errors/503-server-busy.json",
            "server busy, please try again.  maximum pending requests exceeded",
        ),
        (
            "ollama/errors/v1-404-model-not-found.json",
            "model 'llama9:70b' not found",
        ),
        ("ollama/errors/404-page-not-found.txt", "404 page not found"),
        (
            "ollama/errors/500-runner-crashed.json",
            "llama-server process has terminated: signal: killed",
        ),
    ] {
        assert_eq!(ollama::error_message(&fixture(file)), message, "{file}");
    }
}

#[test]
fn non_stream_ollama_answers_match_ollamas_own_completion() {
    let native: Value = serde_json::from_slice(&fixture("ollama/chat-nonstream.json")).unwrap();
    let ours = ollama::chat_response(&native, "llama3.2:3b");
    let theirs: Value = serde_json::from_slice(&fixture("ollama/v1-chat-completion.json")).unwrap();
    assert_eq!(ours["choices"], theirs["choices"]);
    assert_eq!(ours["usage"], theirs["usage"]);
    assert_eq!(ours["object"], theirs["object"]);
    assert!(ours["id"].as_str().unwrap().starts_with("chatcmpl-"));

    // The tool-call variant, built from the streamed fixture's content merged as Ollama does.
    let native_tools = json!({"model":"qwen3-coder:latest","message":{"role":"assistant","content":"",
        "tool_calls":[{"id":"call_7x2k9qfa","function":{"index":0,"name":"get_weather","arguments":{"city":"Tokyo"}}}]},
        "done":true,"done_reason":"stop","prompt_eval_count":211,"eval_count":24});
    let ours = ollama::chat_response(&native_tools, "qwen3-coder:latest");
    let theirs: Value =
        serde_json::from_slice(&fixture("ollama/v1-chat-completion-tools.json")).unwrap();
    assert_eq!(ours["choices"], theirs["choices"]);
    assert_eq!(ours["usage"], theirs["usage"]);
}

#[test]
fn ndjson_fixtures_split_the_same_however_chunked() {
    for file in NDJSON_FIXTURES {
        let input = fixture(file);
        let whole = split_lines(&[&input]);
        assert_eq!(
            whole.len(),
            input.iter().filter(|&&b| b == b'\n').count(),
            "{file}"
        );
        for plan in chunkings(input.len()) {
            assert_eq!(
                split_lines(&pieces(&input, &plan)),
                whole,
                "{file} {plan:?}"
            );
        }
        // Every single split point into two pieces.
        for at in 0..=input.len() {
            assert_eq!(
                split_lines(&[&input[..at], &input[at..]]),
                whole,
                "{file} at {at}"
            );
        }
        // Without the final newline, the last line still comes out.
        assert_eq!(
            split_lines(&[&input[..input.len() - 1]]),
            whole,
            "{file} unterminated"
        );
    }
}

#[test]
fn sse_fixtures_parse_the_same_however_chunked_and_whatever_line_ends() {
    for file in SSE_FIXTURES {
        let input = fixture(file);
        let whole = parse_sse(&[&input]);
        assert_eq!(
            whole.len(),
            input.windows(2).filter(|w| w == b"\n\n").count(),
            "{file}"
        );
        assert!(whole.iter().all(|e| e.event.is_none()));
        let one_by_one: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(parse_sse(&one_by_one), whole, "{file} byte by byte");
        for plan in chunkings(input.len()) {
            assert_eq!(parse_sse(&pieces(&input, &plan)), whole, "{file} {plan:?}");
        }
        for at in 0..=input.len() {
            assert_eq!(
                parse_sse(&[&input[..at], &input[at..]]),
                whole,
                "{file} at {at}"
            );
        }
        let crlf = String::from_utf8(input.clone())
            .unwrap()
            .replace('\n', "\r\n")
            .into_bytes();
        let crlf_one_by_one: Vec<&[u8]> = crlf.chunks(1).collect();
        assert_eq!(
            parse_sse(&crlf_one_by_one),
            whole,
            "{file} CRLF byte by byte"
        );
        for at in 0..=crlf.len() {
            assert_eq!(
                parse_sse(&[&crlf[..at], &crlf[at..]]),
                whole,
                "{file} CRLF at {at}"
            );
        }
    }
}

#[test]
fn translation_does_not_depend_on_chunking() {
    for (file, usage) in [
        ("ollama/chat-stream.ndjson", true),
        ("ollama/chat-stream-thinking.ndjson", false),
        ("ollama/chat-stream-tools.ndjson", false),
        ("ollama/errors/chat-midstream-error.ndjson", true),
    ] {
        let input = fixture(file);
        let whole = translate_ollama(&input, "m", usage, &[usize::MAX]);
        for plan in chunkings(input.len()) {
            // Tool calls keep Ollama's ids, so the output is byte-identical.
            assert_eq!(
                translate_ollama(&input, "m", usage, &plan),
                whole,
                "{file} {plan:?}"
            );
        }
    }
}

fn openclaw_request() -> Value {
    serde_json::from_slice(&fixture("openclaw/upstream-chat-request.json")).unwrap()
}

#[test]
fn openclaw_request_passes_the_gateways_own_checks() {
    let body = fixture("openclaw/upstream-chat-request.json");
    let req = openai::parse_chat_request(&body).unwrap();
    assert_eq!(openai::model(&req), Some("ollama/llama3.2:3b"));
    assert!(openai::is_stream(&req));
    assert!(openai::include_usage(&req));
    assert_eq!(openai::max_output_tokens(&req), Some(1024));
}

#[test]
fn openclaw_request_becomes_an_ollama_native_chat() {
    let req = openclaw_request();
    let params: Map<String, Value> = json!({"keep_alive": "30m"}).as_object().unwrap().clone();
    let body = ollama::chat_request(&req, "llama3.2:3b", Some(32768), &params).unwrap();

    assert_eq!(body["model"], json!("llama3.2:3b"));
    assert_eq!(body["stream"], json!(true));
    assert_eq!(body["keep_alive"], json!("30m"));
    assert_eq!(
        body["options"],
        json!({"num_ctx": 32768, "num_predict": 1024})
    );
    assert!(body.get("think").is_none() && body.get("format").is_none());

    // All 12 tools, unchanged (Ollama accepts OpenAI's tool shape).
    assert_eq!(body["tools"], req["tools"]);
    assert_eq!(body["tools"].as_array().unwrap().len(), 12);

    let messages = body["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 3);
    assert_eq!(messages[0]["role"], json!("system"));
    assert_eq!(messages[0]["content"], req["messages"][0]["content"]);
    assert!(messages[0]["content"].as_str().unwrap().len() > 40_000);
    assert_eq!(
        messages[1],
        json!({"role": "user", "content": req["messages"][1]["content"]})
    );
    // Content parts are joined into Ollama's single content string.
    assert_eq!(messages[2]["role"], json!("user"));
    assert_eq!(
        messages[2]["content"],
        req["messages"][2]["content"][0]["text"]
    );
}

#[test]
fn openclaw_request_becomes_an_anthropic_messages_call() {
    let req = openclaw_request();
    let body = anthropic::messages_request(&req, "claude-sonnet-4-5", 8192, &[], true).unwrap();

    assert_eq!(body["model"], json!("claude-sonnet-4-5"));
    assert_eq!(body["max_tokens"], json!(1024));
    assert_eq!(body["stream"], json!(true));
    assert_eq!(body["system"], req["messages"][0]["content"]);
    assert_eq!(body["tool_choice"], json!({"type": "auto"}));

    // The two consecutive user messages are one user turn, in order.
    let messages = body["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["role"], json!("user"));
    assert_eq!(
        messages[0]["content"],
        json!([
            {"type": "text", "text": req["messages"][1]["content"]},
            {"type": "text", "text": req["messages"][2]["content"][0]["text"]},
        ])
    );

    let tools = body["tools"].as_array().unwrap();
    assert_eq!(tools.len(), 12);
    for (ours, theirs) in tools.iter().zip(req["tools"].as_array().unwrap()) {
        assert_eq!(ours["name"], theirs["function"]["name"]);
        assert_eq!(ours["description"], theirs["function"]["description"]);
        assert_eq!(ours["input_schema"], theirs["function"]["parameters"]);
    }
}

/// A realistic Anthropic stream: extended thinking, text, a tool call whose input arrives in
/// fragments, keep-alive pings, prompt-cache usage.
const ANTHROPIC_STREAM: &str = r#"event: message_start
data: {"type":"message_start","message":{"id":"msg_01XFDUDYJgAACzvnptvVoYEL","type":"message","role":"assistant","content":[],"model":"claude-sonnet-4-5-20250929","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":472,"cache_creation_input_tokens":0,"cache_read_input_tokens":1200,"output_tokens":2}}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":"","signature":""}}

event: ping
data: {"type": "ping"}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"The user wants the weather in Tokyo."}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":" I should call get_weather."}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds"}}

event: content_block_stop
data: {"type":"content_block_stop","index":0}

event: content_block_start
data: {"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"Let me check"}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":" the weather \u2014 one moment."}}

event: content_block_stop
data: {"type":"content_block_stop","index":1}

event: content_block_start
data: {"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"toolu_01T1x1fJ34qAmk2tNTrN7Up6","name":"get_weather","input":{}}}

event: content_block_delta
data: {"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":""}}

event: content_block_delta
data: {"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"{\"city\": \"To"}}

event: ping
data: {"type": "ping"}

event: content_block_delta
data: {"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"kyo\", \"unit\": \"celsius\"}"}}

event: content_block_stop
data: {"type":"content_block_stop","index":2}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":89}}

event: message_stop
data: {"type":"message_stop"}

"#;

fn translate_anthropic(stream: &[u8], include_usage: bool, plan: &[usize]) -> Vec<TranslateEvent> {
    let writer = ChunkWriter::with_id("chatcmpl-test".into(), 1_787_418_967, "anthropic/claude");
    let mut translator = AnthropicStreamTranslator::with_writer(writer, include_usage);
    let mut parser = SseParser::new();
    let mut out = Vec::new();
    for piece in pieces(stream, plan) {
        for event in parser.push(piece) {
            out.extend(translator.feed(&event));
        }
    }
    if let Some(event) = parser.finish() {
        out.extend(translator.feed(&event));
    }
    out.extend(translator.finish());
    out
}

#[test]
fn anthropic_stream_becomes_openai_chunks() {
    let chunks = client_view(&translate_anthropic(
        ANTHROPIC_STREAM.as_bytes(),
        true,
        &[usize::MAX],
    ));
    let deltas: Vec<Value> = chunks
        .iter()
        .map(|c| {
            if c.is_string() {
                return c.clone();
            }
            assert_eq!(c["object"], json!("chat.completion.chunk"));
            assert_eq!(c["model"], json!("anthropic/claude"));
            if let Some(usage) = c.get("usage") {
                assert_eq!(c["choices"], json!([]));
                return json!({"usage": usage});
            }
            let choice = &c["choices"][0];
            json!({"delta": choice["delta"], "finish_reason": choice["finish_reason"]})
        })
        .collect();
    assert_eq!(
        deltas,
        vec![
            json!({"delta": {"role": "assistant", "content": ""}, "finish_reason": null}),
            json!({"delta": {"reasoning": "The user wants the weather in Tokyo."}, "finish_reason": null}),
            json!({"delta": {"reasoning": " I should call get_weather."}, "finish_reason": null}),
            // The thinking block's signature, which a client must send back with it.
            json!({"delta": {"thinking_blocks": [{"type": "thinking", "thinking": "",
                "signature": "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds"}]}, "finish_reason": null}),
            json!({"delta": {"content": "Let me check"}, "finish_reason": null}),
            json!({"delta": {"content": " the weather — one moment."}, "finish_reason": null}),
            json!({"delta": {"tool_calls": [{"id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "index": 0, "type": "function",
                "function": {"name": "get_weather", "arguments": ""}}]}, "finish_reason": null}),
            json!({"delta": {"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\": \"To"}}]}, "finish_reason": null}),
            json!({"delta": {"tool_calls": [{"index": 0, "function": {"arguments": "kyo\", \"unit\": \"celsius\"}"}}]}, "finish_reason": null}),
            json!({"delta": {}, "finish_reason": "tool_calls"}),
            json!({"usage": {"prompt_tokens": 1672, "completion_tokens": 89, "total_tokens": 1761,
                "prompt_tokens_details": {"cached_tokens": 1200}}}),
            json!("[DONE]"),
        ]
    );
    // The argument fragments add up to the tool's input.
    let arguments: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str())
        .collect();
    assert_eq!(
        serde_json::from_str::<Value>(&arguments).unwrap(),
        json!({"city": "Tokyo", "unit": "celsius"})
    );
}

#[test]
fn anthropic_translation_does_not_depend_on_chunking() {
    let input = ANTHROPIC_STREAM.as_bytes();
    let whole = translate_anthropic(input, true, &[usize::MAX]);
    let crlf = ANTHROPIC_STREAM.replace('\n', "\r\n");
    for plan in chunkings(input.len()) {
        assert_eq!(translate_anthropic(input, true, &plan), whole, "{plan:?}");
        assert_eq!(
            translate_anthropic(crlf.as_bytes(), true, &plan),
            whole,
            "CRLF {plan:?}"
        );
    }
}

#[test]
fn anthropic_error_event_and_truncation_are_upstream_errors() {
    let stream = r#"event: message_start
data: {"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","content":[],"model":"claude","usage":{"input_tokens":10,"output_tokens":1}}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hel"}}

event: error
data: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}

"#;
    let view = client_view(&translate_anthropic(stream.as_bytes(), true, &[usize::MAX]));
    assert_eq!(concat(&view, "content"), "Hel");
    assert_eq!(view.last(), Some(&json!({"upstream_error": "Overloaded"})));
    assert!(!view.contains(&json!("[DONE]")));

    // Cut off after the text: the translator reports it at EOF.
    let cut = &stream[..stream.find("event: error").unwrap()];
    let view = client_view(&translate_anthropic(cut.as_bytes(), true, &[usize::MAX]));
    assert_eq!(
        view.last(),
        Some(&json!({"upstream_error": "Anthropic ended the stream before message_stop"}))
    );
}

#[test]
fn anthropic_plain_answer_without_usage_ends_with_stop() {
    let stream = concat!(
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":3,\"output_tokens\":1}}}\n\n",
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi!\"}}\n\n",
        "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"max_tokens\"},\"usage\":{\"output_tokens\":2}}\n\n",
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
    );
    let view = client_view(&translate_anthropic(
        stream.as_bytes(),
        false,
        &[usize::MAX],
    ));
    assert_eq!(concat(&view, "content"), "Hi!");
    assert_eq!(
        view[view.len() - 2]["choices"][0]["finish_reason"],
        json!("length")
    );
    assert!(view.iter().all(|c| c.get("usage").is_none()));
    assert_eq!(view.last(), Some(&json!("[DONE]")));
}

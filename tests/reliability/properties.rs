//! A short proptest round of the fuzz targets' properties (fuzz/ runs them for real):
//! the NDJSON→SSE and Anthropic SSE translators, and the inbound relays (OpenAI stream →
//! Anthropic Messages / Responses events), do not depend on how the upstream's bytes were
//! chunked, keep every token, end exactly once (`[DONE]`, a terminal event, or an error), never
//! panic on garbage; the inbound request parsers never panic and name the mistyped field;
//! the config loader never panics and substitutes `${VAR}` exactly once, `$${VAR}` as a
//! literal.

use std::collections::BTreeMap;

use openclawd::config::{self, Overrides};
use openclawd::gateway::wire::anthropic::AnthropicStreamTranslator;
use openclawd::gateway::wire::anthropic_in::{self, MessagesStreamWriter};
use openclawd::gateway::wire::chat_in;
use openclawd::gateway::wire::ollama::OllamaStreamTranslator;
use openclawd::gateway::wire::openai::ChunkWriter;
use openclawd::gateway::wire::openai::{Delta, FunctionDelta, ToolCallDelta};
use openclawd::gateway::wire::responses_in::{self, ResponsesStreamWriter};
use openclawd::gateway::wire::sse::SseParser;
use openclawd::gateway::wire::{TranslateEvent, Usage, WireError};
use proptest::prelude::*;
use serde_json::{json, Value};

use crate::common::proptest_config;
use crate::common::translate::{self, relay, translate};

/// Splits `data` at the given cut points (taken modulo its length).
fn split<'a>(data: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    if data.is_empty() {
        return vec![data];
    }
    let mut points: Vec<usize> = cuts.iter().map(|c| c % data.len()).collect();
    points.push(0);
    points.push(data.len());
    points.sort_unstable();
    points.dedup();
    points.windows(2).map(|w| &data[w[0]..w[1]]).collect()
}

/// The `data:` payloads, checking each event is well formed; `[DONE]` at most once, last;
/// nothing after an error. Returns (payloads, error).
fn client_view(events: &[TranslateEvent]) -> (Vec<Value>, bool, Option<String>) {
    let mut payloads = Vec::new();
    let mut done = false;
    let mut error = None;
    for e in events {
        assert!(error.is_none(), "an event after an error: {e:?}");
        match e {
            TranslateEvent::Sse(b) => {
                assert!(!done, "an event after [DONE]");
                let text = std::str::from_utf8(b).unwrap();
                let payload = text
                    .strip_prefix("data: ")
                    .and_then(|t| t.strip_suffix("\n\n"))
                    .unwrap_or_else(|| panic!("malformed event {text:?}"));
                assert!(!payload.contains('\n'));
                if payload == "[DONE]" {
                    done = true;
                } else {
                    let v: Value = serde_json::from_str(payload).unwrap();
                    assert_eq!(v["object"], "chat.completion.chunk");
                    payloads.push(v);
                }
            }
            TranslateEvent::UpstreamError(m) => error = Some(m.clone()),
        }
    }
    (payloads, done, error)
}

fn content(payloads: &[Value]) -> String {
    payloads
        .iter()
        .filter_map(|v| v["choices"][0]["delta"]["content"].as_str())
        .collect()
}

fn finish_reason(payloads: &[Value]) -> Option<String> {
    payloads
        .iter()
        .rev()
        .find_map(|v| v["choices"][0]["finish_reason"].as_str())
        .map(str::to_string)
}

// ---- Ollama NDJSON → SSE ------------------------------------------------------------------

fn ollama_run(pieces: &[&[u8]]) -> Vec<TranslateEvent> {
    let translator = OllamaStreamTranslator::with_writer(
        ChunkWriter::with_id("chatcmpl-prop".into(), 1, "ollama/m"),
        true,
    );
    translate(translator, pieces)
}

fn ollama_stream(tokens: &[String], thinking: &[String], done: Option<bool>) -> Vec<u8> {
    let mut out = Vec::new();
    for t in thinking {
        out.extend(serde_json::to_vec(&json!({"model":"m","message":{"role":"assistant","content":"","thinking":t},"done":false})).unwrap());
        out.push(b'\n');
    }
    for t in tokens {
        out.extend(
            serde_json::to_vec(
                &json!({"model":"m","message":{"role":"assistant","content":t},"done":false}),
            )
            .unwrap(),
        );
        out.push(b'\n');
    }
    if let Some(truncated) = done {
        let reason = if truncated { "length" } else { "stop" };
        out.extend(serde_json::to_vec(&json!({"model":"m","message":{"role":"assistant","content":""},"done":true,"done_reason":reason,
            "prompt_eval_count":7,"eval_count":tokens.len(),"eval_duration":1000})).unwrap());
        out.push(b'\n');
    }
    out
}

proptest! {
    #![proptest_config(proptest_config())]

    #[test]
    fn ollama_ndjson_translation_is_chunking_independent_and_keeps_every_token(
        tokens in proptest::collection::vec(any::<String>(), 0..12),
        thinking in proptest::collection::vec("[a-z \\n]{1,8}", 0..3),
        done in proptest::option::of(any::<bool>()),
        cuts in proptest::collection::vec(any::<usize>(), 0..40),
    ) {
        let bytes = ollama_stream(&tokens, &thinking, done);
        let whole = ollama_run(&[&bytes]);
        let chunked = ollama_run(&split(&bytes, &cuts));
        prop_assert_eq!(&whole, &chunked);
        let (payloads, saw_done, error) = client_view(&whole);
        prop_assert_eq!(content(&payloads), tokens.concat());
        match done {
            Some(truncated) => {
                prop_assert!(saw_done && error.is_none());
                let want = if truncated { "length" } else { "stop" };
                prop_assert_eq!(finish_reason(&payloads), Some(want.to_string()));
                // include_usage: the last chunk before [DONE] carries the counts.
                let last = payloads.last().unwrap();
                prop_assert_eq!(last["usage"]["completion_tokens"].as_u64(), Some(tokens.len() as u64));
            }
            None => prop_assert!(!saw_done && error.is_some(), "a stream cut short must end in an error"),
        }
    }

    #[test]
    fn ollama_ndjson_translation_survives_any_bytes(
        bytes in proptest::collection::vec(any::<u8>(), 0..2048),
        cuts in proptest::collection::vec(any::<usize>(), 0..20),
    ) {
        let whole = ollama_run(&[&bytes]);
        client_view(&whole);
        prop_assert_eq!(whole, ollama_run(&split(&bytes, &cuts)));
    }
}

// ---- Anthropic SSE → OpenAI SSE -----------------------------------------------------------

fn anthropic_run(pieces: &[&[u8]]) -> Vec<TranslateEvent> {
    let translator = AnthropicStreamTranslator::with_writer(
        ChunkWriter::with_id("chatcmpl-prop".into(), 1, "anthropic/m"),
        false,
    );
    translate(translator, pieces)
}

fn anthropic_stream(texts: &[String], stop: &str, complete: bool, eol: &str) -> Vec<u8> {
    let mut events = vec![
        (
            "message_start",
            json!({"type":"message_start","message":{"id":"msg","type":"message","role":"assistant","content":[],"usage":{"input_tokens":3,"output_tokens":1}}}),
        ),
        (
            "content_block_start",
            json!({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}),
        ),
        ("ping", json!({"type":"ping"})),
    ];
    for t in texts {
        events.push((
            "content_block_delta",
            json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":t}}),
        ));
    }
    events.push((
        "content_block_stop",
        json!({"type":"content_block_stop","index":0}),
    ));
    if complete {
        events.push(("message_delta", json!({"type":"message_delta","delta":{"stop_reason":stop,"stop_sequence":null},"usage":{"output_tokens":9}})));
        events.push(("message_stop", json!({"type":"message_stop"})));
    }
    let mut out = String::new();
    for (name, data) in events {
        out.push_str(&format!("event: {name}{eol}data: {data}{eol}{eol}"));
    }
    out.into_bytes()
}

proptest! {
    #![proptest_config(proptest_config())]

    #[test]
    fn anthropic_sse_translation_is_chunking_independent_and_keeps_every_token(
        texts in proptest::collection::vec(any::<String>(), 0..12),
        stop in prop_oneof![Just("end_turn"), Just("max_tokens"), Just("stop_sequence"), Just("refusal")],
        complete in any::<bool>(),
        eol in prop_oneof![Just("\n"), Just("\r\n"), Just("\r")],
        cuts in proptest::collection::vec(any::<usize>(), 0..40),
    ) {
        let bytes = anthropic_stream(&texts, stop, complete, eol);
        let whole = anthropic_run(&[&bytes]);
        prop_assert_eq!(&whole, &anthropic_run(&split(&bytes, &cuts)));
        let (payloads, saw_done, error) = client_view(&whole);
        prop_assert_eq!(content(&payloads), texts.concat());
        if complete {
            prop_assert!(saw_done && error.is_none());
            let want = match stop { "max_tokens" => "length", "refusal" => "content_filter", _ => "stop" };
            prop_assert_eq!(finish_reason(&payloads), Some(want.to_string()));
        } else {
            prop_assert!(!saw_done && error.is_some(), "a stream cut short must end in an error");
        }
    }

    #[test]
    fn anthropic_sse_translation_survives_any_bytes(
        bytes in proptest::collection::vec(any::<u8>(), 0..2048),
        cuts in proptest::collection::vec(any::<usize>(), 0..20),
    ) {
        let whole = anthropic_run(&[&bytes]);
        client_view(&whole);
        prop_assert_eq!(whole, anthropic_run(&split(&bytes, &cuts)));
    }
}

// ---- inbound relays: OpenAI stream → Anthropic Messages / Responses events ------------------

fn anthropic_writer() -> MessagesStreamWriter {
    MessagesStreamWriter::new("msg_prop".into(), "ollama/m".into())
}

fn responses_writer() -> ResponsesStreamWriter {
    translate::responses_writer("resp_prop")
}

/// The events a client parses: each has an `event:` line equal to its data's `type`.
fn named_events(bytes: &[u8]) -> Vec<(String, Value)> {
    let mut parser = SseParser::new();
    let mut events = parser.push(bytes);
    events.extend(parser.finish());
    events
        .into_iter()
        .map(|e| {
            let name = e.event.expect("every event has an event: line");
            let data: Value = serde_json::from_str(&e.data).expect("data is JSON");
            assert_eq!(data["type"], name.as_str());
            (name, data)
        })
        .collect()
}

/// Anthropic's order: `message_start` first; blocks opened before their deltas and closed once;
/// the stream ends with `message_stop` or an `error`, and nothing follows either.
/// Returns the text of the `text_delta`s and whether it ended well.
fn check_anthropic(bytes: &[u8]) -> (String, bool) {
    let events = named_events(bytes);
    let mut text = String::new();
    let mut open: Option<u64> = None;
    let mut ended = None;
    for (i, (name, data)) in events.iter().enumerate() {
        assert!(ended.is_none(), "an event after the end: {name}");
        match name.as_str() {
            "message_start" => assert_eq!(i, 0),
            "content_block_start" => {
                assert!(open.is_none(), "a block opened inside another");
                open = data["index"].as_u64();
            }
            "content_block_delta" => {
                if data["delta"]["type"] == "text_delta" {
                    assert_eq!(data["index"].as_u64(), open, "a delta outside its block");
                    text.push_str(data["delta"]["text"].as_str().unwrap());
                }
            }
            "content_block_stop" => {
                assert_eq!(data["index"].as_u64(), open);
                open = None;
            }
            "message_delta" => assert!(open.is_none()),
            "message_stop" => ended = Some(true),
            "error" => ended = Some(false),
            "ping" => {}
            other => panic!("unexpected event {other}"),
        }
    }
    (text, ended.unwrap_or(events.is_empty()))
}

/// Responses: `sequence_number` 0, 1, 2…; `response.created` first; exactly one terminal event,
/// last. Returns the text of the `output_text.delta`s and the terminal event's name.
fn check_responses(bytes: &[u8]) -> (String, Option<String>) {
    let events = named_events(bytes);
    let mut text = String::new();
    let mut terminal = None;
    for (i, (name, data)) in events.iter().enumerate() {
        assert_eq!(data["sequence_number"], i as u64);
        assert!(terminal.is_none(), "an event after {terminal:?}: {name}");
        if i == 0 {
            assert_eq!(name, "response.created");
        }
        match name.as_str() {
            "response.output_text.delta" => text.push_str(data["delta"].as_str().unwrap()),
            "response.completed" | "response.incomplete" | "response.failed" => {
                terminal = Some(name.clone())
            }
            _ => {}
        }
    }
    (text, terminal)
}

fn openai_stream(tokens: &[String], args: &[String], finish: Option<&str>, usage: bool) -> Vec<u8> {
    let w = ChunkWriter::with_id("chatcmpl-prop".into(), 1, "m");
    let mut out = Vec::new();
    for t in tokens {
        out.extend_from_slice(&w.delta(
            &Delta {
                content: Some(t),
                ..Delta::default()
            },
            None,
        ));
    }
    for (i, a) in args.iter().enumerate() {
        let call = [ToolCallDelta {
            id: (i == 0).then_some("call_1"),
            index: 0,
            kind: (i == 0).then_some("function"),
            function: FunctionDelta {
                name: (i == 0).then_some("f"),
                arguments: a,
            },
            thought_signature: None,
        }];
        out.extend_from_slice(&w.delta(
            &Delta {
                tool_calls: Some(&call),
                ..Delta::default()
            },
            None,
        ));
    }
    if let Some(reason) = finish {
        out.extend_from_slice(&w.finish(reason));
        if usage {
            out.extend_from_slice(&w.usage(&Usage {
                prompt_tokens: 5,
                completion_tokens: tokens.len() as u64,
                cached_tokens: 0,
            }));
        }
        out.extend_from_slice(b"data: [DONE]\n\n");
    }
    out
}

/// One API's request parser, reduced to whether it accepts a body.
type ParseFn = fn(&[u8]) -> Result<(), WireError>;

/// Any JSON value, a few levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        (-1e6f64..1e6).prop_map(Value::from),
        "[a-z ]{0,6}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            proptest::collection::btree_map("[a-z_]{1,6}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(proptest_config())]

    #[test]
    fn inbound_relays_are_chunking_independent_and_keep_every_token(
        tokens in proptest::collection::vec(any::<String>(), 0..10),
        args in proptest::collection::vec(any::<String>(), 0..4),
        finish in prop_oneof![Just(Some("stop")), Just(Some("length")), Just(Some("tool_calls")), Just(None)],
        usage in any::<bool>(),
        cuts in proptest::collection::vec(any::<usize>(), 0..40),
    ) {
        let bytes = openai_stream(&tokens, &args, finish, usage);
        let pieces = split(&bytes, &cuts);
        let whole = relay(anthropic_writer(), &[&bytes]);
        prop_assert_eq!(&whole, &relay(anthropic_writer(), &pieces));
        let (text, ok) = check_anthropic(&whole);
        prop_assert_eq!(&text, &tokens.concat());
        prop_assert_eq!(ok, finish.is_some(), "a stream cut short ends in an error event");

        let whole = relay(responses_writer(), &[&bytes]);
        prop_assert_eq!(&whole, &relay(responses_writer(), &pieces));
        let (text, terminal) = check_responses(&whole);
        prop_assert_eq!(&text, &tokens.concat());
        let want = match finish {
            None => "response.failed",
            Some("length") => "response.incomplete",
            Some(_) => "response.completed",
        };
        prop_assert_eq!(terminal.as_deref(), Some(want));
    }

    #[test]
    fn inbound_relays_survive_any_bytes(
        bytes in proptest::collection::vec(any::<u8>(), 0..2048),
        cuts in proptest::collection::vec(any::<usize>(), 0..20),
    ) {
        let pieces = split(&bytes, &cuts);
        let whole = relay(anthropic_writer(), &[&bytes]);
        check_anthropic(&whole);
        prop_assert_eq!(whole, relay(anthropic_writer(), &pieces));
        let whole = relay(responses_writer(), &[&bytes]);
        check_responses(&whole);
        prop_assert_eq!(whole, relay(responses_writer(), &pieces));
    }

    #[test]
    fn inbound_request_parsers_never_panic_on_any_bytes(
        bytes in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        if let Ok(req) = anthropic_in::parse(&bytes) {
            let _ = req.to_ir();
        }
        if let Ok(req) = anthropic_in::parse_count(&bytes) {
            let _ = req.estimate();
        }
        if let Ok(req) = responses_in::parse(&bytes) {
            let _ = req.to_ir();
        }
        if let Ok(v) = serde_json::from_slice::<Value>(&bytes) {
            let _ = chat_in::validate(&v);
        }
    }

    #[test]
    fn a_mistyped_top_level_field_is_refused_naming_it(
        which in 0usize..3,
        field in prop_oneof![
            Just("model"), Just("max_tokens"), Just("messages"), Just("stream"), Just("temperature"),
            Just("top_p"), Just("tools"), Just("tool_choice"), Just("system"), Just("stop_sequences"),
            Just("input"), Just("instructions"), Just("max_output_tokens"), Just("stop"),
            Just("max_completion_tokens"),
        ],
        value in json_value(),
    ) {
        let (mut body, parse): (Value, ParseFn) = match which {
            0 => (
                json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}),
                |b| anthropic_in::parse(b).map(|_| ()),
            ),
            1 => (json!({"model": "m", "input": "hi"}), |b| responses_in::parse(b).map(|_| ())),
            _ => (
                json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}),
                |b| chat_in::validate(&serde_json::from_slice(b).unwrap()),
            ),
        };
        body[field] = value;
        if let Err(WireError::BadRequest { param, message }) = parse(body.to_string().as_bytes()) {
            let param = param.unwrap_or_default();
            prop_assert!(param.starts_with(field), "{field}: param {param:?} ({message})");
        }
    }
}

// ---- config loader ------------------------------------------------------------------------

fn load_text(text: &str, vars: &[(&str, &str)]) -> Result<config::Snapshot, config::ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("openclaw.json");
    std::fs::write(&file, text).unwrap();
    let mut env: BTreeMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    env.insert("HOME".into(), dir.path().display().to_string());
    config::load(
        &Overrides {
            state_dir: Some(dir.path().to_path_buf()),
            config: Some(file),
            ..Default::default()
        },
        &env,
    )
}

#[derive(Debug, Clone)]
enum Piece {
    Literal(String),
    Var(usize),
    Escaped(usize),
}

const VARS: [(&str, &str); 3] = [("KEY_A", "alpha"), ("B2", "${KEY_A}"), ("_C", "$$x}")];

proptest! {
    #![proptest_config(proptest_config())]

    #[test]
    fn the_config_loader_never_panics_on_any_text(text in any::<String>()) {
        if let Err(e) = load_text(&text, &[]) {
            prop_assert!(!e.to_string().is_empty());
        }
    }

    #[test]
    fn the_config_loader_never_panics_on_json5_shaped_text(
        text in "[{}\\[\\]:,'\"a-zA-Z0-9 $_\\n/*.\\-+]{0,200}",
    ) {
        let wrapped = format!("{{ models: {{ providers: {{ x: {text} }} }} }}");
        let _ = load_text(&wrapped, &[]);
        let _ = load_text(&text, &[]);
    }

    #[test]
    fn substitution_replaces_each_reference_once_and_keeps_escapes_literal(
        pieces in proptest::collection::vec(prop_oneof![
            "[a-zA-Z0-9 {}:/._-]{1,6}".prop_map(Piece::Literal),
            (0..VARS.len()).prop_map(Piece::Var),
            (0..VARS.len()).prop_map(Piece::Escaped),
        ], 1..8),
    ) {
        let mut raw = String::new();
        let mut expected = String::new();
        for p in &pieces {
            match p {
                Piece::Literal(s) => { raw.push_str(s); expected.push_str(s); }
                Piece::Var(i) => { raw.push_str(&format!("${{{}}}", VARS[*i].0)); expected.push_str(VARS[*i].1); }
                Piece::Escaped(i) => { raw.push_str(&format!("$${{{}}}", VARS[*i].0)); expected.push_str(&format!("${{{}}}", VARS[*i].0)); }
            }
        }
        let text = format!(
            "{{ models: {{ providers: {{ x: {{ baseUrl: 'http://127.0.0.1:1/v1', api: 'openai-completions', headers: {{ 'X-Sub': {} }}, models: [{{ id: 'm', name: 'M' }}] }} }} }} }}",
            serde_json::to_string(&raw).unwrap()
        );
        let snapshot = load_text(&text, &VARS).map_err(|e| TestCaseError::fail(e.to_string()))?;
        // A header value is kept verbatim after substitution (an apiKey would be trimmed).
        prop_assert_eq!(snapshot.providers["x"].headers.get("X-Sub"), Some(&expected));
    }
}

/// Found by fuzz/ (ollama_ndjson, anthropic_sse): an upstream error with an empty message
/// became an SSE error event with an empty message.
#[test]
fn an_upstream_error_without_a_message_still_says_something() {
    let (_, _, error) = client_view(&ollama_run(&[b"{\"error\":\"\"}\n"]));
    assert!(error.is_some_and(|m| !m.trim().is_empty()));
    let (_, _, error) = client_view(&anthropic_run(&[
        b"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"\"}}\n\n",
    ]));
    assert!(error.is_some_and(|m| !m.trim().is_empty()));
}

//! A short proptest round of the fuzz targets' properties (fuzz/ runs them for real):
//! the NDJSON→SSE and Anthropic SSE translators do not depend on how the upstream's bytes were
//! chunked, keep every token, end exactly once (`[DONE]` or an error), never panic on garbage;
//! the config loader never panics and substitutes `${VAR}` exactly once, `$${VAR}` as a
//! literal.

use std::collections::BTreeMap;

use openclawd::config::{self, Overrides};
use openclawd::gateway::wire::anthropic::AnthropicStreamTranslator;
use openclawd::gateway::wire::ndjson::NdjsonSplitter;
use openclawd::gateway::wire::ollama::OllamaStreamTranslator;
use openclawd::gateway::wire::openai::ChunkWriter;
use openclawd::gateway::wire::sse::SseParser;
use openclawd::gateway::wire::TranslateEvent;
use proptest::prelude::*;
use serde_json::{json, Value};

/// 64 cases in CI; `PROPTEST_CASES=N` for a longer local round.
fn config() -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(64),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

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
    let mut lines = NdjsonSplitter::new();
    let mut t = OllamaStreamTranslator::with_writer(
        ChunkWriter::with_id("chatcmpl-prop".into(), 1, "ollama/m"),
        true,
    );
    let mut out = Vec::new();
    for piece in pieces {
        for line in lines.push(piece) {
            out.extend(t.feed(&line));
        }
    }
    if let Some(line) = lines.finish() {
        out.extend(t.feed(&line));
    }
    out.extend(t.finish());
    out
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
    #![proptest_config(config())]

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
    let mut parser = SseParser::new();
    let mut t = AnthropicStreamTranslator::with_writer(
        ChunkWriter::with_id("chatcmpl-prop".into(), 1, "anthropic/m"),
        false,
    );
    let mut out = Vec::new();
    for piece in pieces {
        for event in parser.push(piece) {
            out.extend(t.feed(&event));
        }
    }
    if let Some(event) = parser.finish() {
        out.extend(t.feed(&event));
    }
    out.extend(t.finish());
    out
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
    #![proptest_config(config())]

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
    #![proptest_config(config())]

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

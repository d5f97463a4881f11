//! Upstream bytes through a stream translator or an inbound relay, as the gateway drives them:
//! the upstream's framing (SSE events or NDJSON lines) cut from arbitrarily chunked bytes, each
//! frame fed to the translator, then the framing's unterminated tail and the translator's
//! finish. Shared by the translator tests and the fuzz targets (fuzz/fuzz_targets), which
//! include it by `#[path]`.
#![allow(dead_code)]

use bytes::Bytes;
use openclawd::gateway::wire::anthropic::AnthropicStreamTranslator;
use openclawd::gateway::wire::gemini::GeminiStreamTranslator;
use openclawd::gateway::wire::ndjson::NdjsonSplitter;
use openclawd::gateway::wire::ollama::OllamaStreamTranslator;
use openclawd::gateway::wire::relay::{EventWriter, Relay};
use openclawd::gateway::wire::responses_in::{Echo, ResponsesStreamWriter};
use openclawd::gateway::wire::responses_out::ResponsesStreamTranslator;
use openclawd::gateway::wire::sse::{SseEvent, SseParser};
use openclawd::gateway::wire::TranslateEvent;

/// How an upstream's bytes are cut into the frames its translator reads.
pub trait Framing {
    type Frame;
    fn new() -> Self;
    fn push(&mut self, chunk: &[u8]) -> Vec<Self::Frame>;
    fn finish(&mut self) -> Option<Self::Frame>;
}

impl Framing for SseParser {
    type Frame = SseEvent;
    fn new() -> SseParser {
        SseParser::new()
    }
    fn push(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        SseParser::push(self, chunk)
    }
    fn finish(&mut self) -> Option<SseEvent> {
        SseParser::finish(self)
    }
}

impl Framing for NdjsonSplitter {
    type Frame = Bytes;
    fn new() -> NdjsonSplitter {
        NdjsonSplitter::new()
    }
    fn push(&mut self, chunk: &[u8]) -> Vec<Bytes> {
        NdjsonSplitter::push(self, chunk)
    }
    fn finish(&mut self) -> Option<Bytes> {
        NdjsonSplitter::finish(self)
    }
}

/// A translator from one upstream's stream to OpenAI chat SSE.
pub trait StreamTranslator {
    type Framing: Framing;
    fn feed(&mut self, frame: &<Self::Framing as Framing>::Frame) -> Vec<TranslateEvent>;
    fn finish(&mut self) -> Vec<TranslateEvent>;
}

macro_rules! stream_translator {
    ($translator:ty, $framing:ty) => {
        impl StreamTranslator for $translator {
            type Framing = $framing;
            fn feed(&mut self, frame: &<$framing as Framing>::Frame) -> Vec<TranslateEvent> {
                <$translator>::feed(self, frame)
            }
            fn finish(&mut self) -> Vec<TranslateEvent> {
                <$translator>::finish(self)
            }
        }
    };
}

stream_translator!(OllamaStreamTranslator, NdjsonSplitter);
stream_translator!(AnthropicStreamTranslator, SseParser);
stream_translator!(GeminiStreamTranslator, SseParser);
stream_translator!(ResponsesStreamTranslator, SseParser);

/// Everything `translator` emits for the upstream bytes arriving as `pieces`.
pub fn translate<T: StreamTranslator>(mut translator: T, pieces: &[&[u8]]) -> Vec<TranslateEvent> {
    let mut framing = T::Framing::new();
    let mut out = Vec::new();
    for piece in pieces {
        for frame in framing.push(piece) {
            out.extend(translator.feed(&frame));
        }
    }
    if let Some(frame) = framing.finish() {
        out.extend(translator.feed(&frame));
    }
    out.extend(translator.finish());
    out
}

/// Everything an inbound relay writes to its client for the OpenAI chat stream arriving as
/// `pieces`.
pub fn relay<W: EventWriter>(writer: W, pieces: &[&[u8]]) -> Vec<u8> {
    let mut relay = Relay::new(writer);
    let mut out = Vec::new();
    for piece in pieces {
        out.extend(relay.push(piece));
    }
    out.extend(relay.finish());
    out
}

/// A Responses stream writer for response `id` of `ollama/m`, echoing no request options.
pub fn responses_writer(id: &str) -> ResponsesStreamWriter {
    ResponsesStreamWriter::new(Echo {
        id: id.into(),
        created_at: 1,
        model: "ollama/m".into(),
        instructions: None,
        max_output_tokens: None,
        temperature: None,
        top_p: None,
        tools: Vec::new(),
        effort: None,
        summary: None,
        tool_choice: serde_json::json!("auto"),
        parallel_tool_calls: true,
        fields: serde_json::Map::new(),
    })
}

/// A translator's output rendered one string per event (`data: …\n\n`, or `ERROR message`) is
/// well formed: every event is one `data:` line with a chunk or `[DONE]`; `[DONE]` comes once
/// and last; nothing follows an error; the run ends with one of the two.
pub fn assert_well_formed_chat_sse(out: &[String]) {
    let mut ended = false;
    for e in out {
        assert!(!ended, "output after the end: {out:?}");
        if e.starts_with("ERROR ") {
            ended = true;
            continue;
        }
        let payload = e
            .strip_prefix("data: ")
            .and_then(|p| p.strip_suffix("\n\n"))
            .unwrap();
        assert!(!payload.contains('\n'));
        if payload == "[DONE]" {
            ended = true;
        } else {
            let v: serde_json::Value = serde_json::from_str(payload).unwrap();
            assert_eq!(v["object"], "chat.completion.chunk");
        }
    }
    assert!(ended, "every run ends with [DONE] or an error: {out:?}");
}

/// `run` gives `whole` for `input` split at every point, and fed one byte at a time.
pub fn assert_same_output_at_every_split<R: PartialEq + std::fmt::Debug>(
    run: impl Fn(&[&[u8]]) -> R,
    input: &[u8],
    whole: &R,
    name: &str,
) {
    for at in 0..=input.len() {
        assert_eq!(
            &run(&[&input[..at], &input[at..]]),
            whole,
            "{name}: split at {at}"
        );
    }
    let bytes: Vec<&[u8]> = input.chunks(1).collect();
    assert_eq!(&run(&bytes), whole, "{name}: one byte at a time");
}

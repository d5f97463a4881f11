//! Gemini's `alt=sse` stream → OpenAI SSE: `SseParser` feeding `GeminiStreamTranslator`, as
//! the gateway drives them. Arbitrary bytes in arbitrary chunks
//! must never panic, must only ever produce well-formed SSE, and must not depend on where the
//! chunks were split.
#![no_main]

use libfuzzer_sys::fuzz_target;
use openclawd::gateway::wire::gemini::GeminiStreamTranslator;
use openclawd::gateway::wire::openai::ChunkWriter;
use openclawd::gateway::wire::sse::SseParser;
use openclawd::gateway::wire::TranslateEvent;

#[path = "common.rs"]
mod common;

fn run(pieces: &[&[u8]], include_usage: bool) -> Vec<TranslateEvent> {
    let mut parser = SseParser::new();
    let mut t = GeminiStreamTranslator::with_writer(
        ChunkWriter::with_id("chatcmpl-fuzz".into(), 1, "google/m"),
        include_usage,
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

fuzz_target!(|data: &[u8]| {
    let include_usage = data.first().is_some_and(|b| b & 1 == 1);
    let whole = run(&[data], include_usage);
    common::check(&whole);
    let split = run(&common::chunks(data), include_usage);
    common::check(&split);
    assert_eq!(
        common::render(&whole),
        common::render(&split),
        "chunking changed the output"
    );
});

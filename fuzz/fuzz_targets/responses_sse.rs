//! OpenAI's Responses SSE stream → OpenAI chat SSE: `SseParser` feeding
//! `ResponsesStreamTranslator`, as the gateway drives them. Arbitrary bytes in arbitrary chunks
//! must never panic, must only ever produce well-formed SSE, and must not depend on where the
//! chunks were split.
#![no_main]

use libfuzzer_sys::fuzz_target;
use openclawd::gateway::wire::openai::ChunkWriter;
use openclawd::gateway::wire::responses_out::ResponsesStreamTranslator;

#[path = "common.rs"]
mod common;
#[path = "../../tests/common/translate.rs"]
mod translate;

fuzz_target!(|data: &[u8]| {
    common::check_chunking_invariance(data, |pieces, include_usage| {
        let translator = ResponsesStreamTranslator::with_writer(
            ChunkWriter::with_id("chatcmpl-fuzz".into(), 1, "openai/m"),
            include_usage,
        );
        translate::translate(translator, pieces)
    });
});

//! An OpenAI chat completion stream → Anthropic Messages events and Responses events
//! (`wire::relay::Relay` with each inbound writer), as `/v1/messages` and `/v1/responses` drive
//! them. Arbitrary bytes in arbitrary chunks must never panic, must only produce named SSE
//! events whose data is JSON of that `type`, and must not depend on where the chunks were split.
#![no_main]

use libfuzzer_sys::fuzz_target;
use openclawd::gateway::wire::anthropic_in::MessagesStreamWriter;
use openclawd::gateway::wire::responses_in::ResponsesStreamWriter;
use openclawd::gateway::wire::sse::SseParser;

#[path = "common.rs"]
mod common;
#[path = "../../tests/common/translate.rs"]
mod translate;

fn anthropic() -> MessagesStreamWriter {
    MessagesStreamWriter::new("msg_fuzz".into(), "ollama/m".into())
}

fn responses() -> ResponsesStreamWriter {
    translate::responses_writer("resp_fuzz")
}

/// Every event has an `event:` line equal to its JSON data's `type`; the stream has exactly one
/// end (`message_stop`, `response.completed`/`.incomplete`/`.failed`, or an error), last.
fn check(bytes: &[u8], ends: &[&str]) {
    let mut parser = SseParser::new();
    let mut events = parser.push(bytes);
    events.extend(parser.finish());
    let mut ended = false;
    for e in events {
        assert!(!ended, "an event after the end: {e:?}");
        let name = e.event.expect("an event: line");
        let data: serde_json::Value = serde_json::from_str(&e.data).expect("JSON data");
        assert_eq!(data["type"], name.as_str());
        ended =
            ends.contains(&name.as_str()) || name == "error" && !ends.contains(&"response.failed");
    }
    assert!(ended || bytes.is_empty(), "the stream has no end");
}

fuzz_target!(|data: &[u8]| {
    let pieces = common::chunks(data);
    let whole = translate::relay(anthropic(), &[data]);
    check(&whole, &["message_stop"]);
    assert_eq!(
        whole,
        translate::relay(anthropic(), &pieces),
        "chunking changed the output"
    );
    let whole = translate::relay(responses(), &[data]);
    check(
        &whole,
        &[
            "response.completed",
            "response.incomplete",
            "response.failed",
        ],
    );
    assert_eq!(
        whole,
        translate::relay(responses(), &pieces),
        "chunking changed the output"
    );
});

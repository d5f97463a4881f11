//! Every inbound API the gateway has, asked once streaming and once not, for one model: what a
//! provider test needs to show its translations compose with each inbound translator.
#![allow(dead_code)]

use serde_json::{json, Value};

use super::Daemon;

/// `(event line, data)` of each SSE event of an Anthropic or Responses stream; every event
/// needs both (the Anthropic SDK dispatches on the `event:` line) and `data.type` equals it.
pub fn named_events(body: &str) -> Vec<(String, Value)> {
    body.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let name = e
                .lines()
                .find_map(|l| l.strip_prefix("event: "))
                .unwrap_or_else(|| panic!("an event without an event: line: {e:?}"));
            let data = e
                .lines()
                .find_map(|l| l.strip_prefix("data: "))
                .unwrap_or_else(|| panic!("an event without data: {e:?}"));
            let data: Value = serde_json::from_str(data).unwrap();
            assert_eq!(data["type"], name, "type equals the event name");
            (name.to_string(), data)
        })
        .collect()
}

fn post(d: &Daemon, path: &str, body: &Value) -> (u16, String, String) {
    super::post_routed(d, path, body, &[])
}

/// `POST /v1/messages` (Anthropic) for `model`, whole and streamed: each answers `text` with
/// `end_turn`, the stream in Anthropic's exact event order.
pub fn messages_answer(d: &Daemon, model: &str, text: &str) {
    let body = |stream: bool| {
        json!({"model": model, "max_tokens": 256, "stream": stream,
            "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
            "messages": [{"role": "user", "content": "Say hello."}]})
    };
    let (status, answered, whole) = post(d, "/v1/messages", &body(false));
    assert_eq!(status, 200, "{whole}");
    assert_eq!(answered, model);
    let v: Value = serde_json::from_str(&whole).unwrap();
    assert_eq!(v["type"], "message");
    assert_eq!(v["content"][0]["text"], text, "{whole}");
    assert_eq!(v["stop_reason"], "end_turn");

    let (status, answered, streamed) = post(d, "/v1/messages", &body(true));
    assert_eq!(status, 200, "{streamed}");
    assert_eq!(answered, model);
    let events = named_events(&streamed);
    let names: Vec<&str> = events
        .iter()
        .map(|(n, _)| n.as_str())
        .filter(|n| *n != "ping")
        .collect();
    assert_eq!(names.first(), Some(&"message_start"), "{names:?}");
    assert_eq!(
        names[names.len() - 2..],
        ["message_delta", "message_stop"],
        "{names:?}"
    );
    let got: String = events
        .iter()
        .filter(|(n, _)| n == "content_block_delta")
        .filter_map(|(_, d)| d["delta"]["text"].as_str())
        .collect();
    assert_eq!(got, text);
    let delta = &events.iter().find(|(n, _)| n == "message_delta").unwrap().1;
    assert_eq!(delta["delta"]["stop_reason"], "end_turn");
}

/// `POST /v1/responses` (OpenAI Responses) for `model`, whole and streamed: each answers
/// `text`, the stream with `sequence_number`s ending in `response.completed`.
pub fn responses_answer(d: &Daemon, model: &str, text: &str) {
    let body = |stream: bool| {
        json!({"model": model, "stream": stream, "store": false, "instructions": "Be brief.",
            "input": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Say hello."}]}]})
    };
    let (status, answered, whole) = post(d, "/v1/responses", &body(false));
    assert_eq!(status, 200, "{whole}");
    assert_eq!(answered, model);
    let v: Value = serde_json::from_str(&whole).unwrap();
    assert_eq!(v["object"], "response");
    assert_eq!(v["status"], "completed");
    let out: String = v["output"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["type"] == "message")
        .flat_map(|i| i["content"].as_array().cloned().unwrap_or_default())
        .filter_map(|c| c["text"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(out, text, "{whole}");

    let (status, answered, streamed) = post(d, "/v1/responses", &body(true));
    assert_eq!(status, 200, "{streamed}");
    assert_eq!(answered, model);
    let events = named_events(&streamed);
    for (i, (_, data)) in events.iter().enumerate() {
        assert_eq!(data["sequence_number"], i, "{events:?}");
    }
    assert_eq!(
        events.first().map(|(n, _)| n.as_str()),
        Some("response.created")
    );
    assert_eq!(
        events.last().map(|(n, _)| n.as_str()),
        Some("response.completed")
    );
    let got: String = events
        .iter()
        .filter(|(n, _)| n == "response.output_text.delta")
        .filter_map(|(_, d)| d["delta"].as_str())
        .collect();
    assert_eq!(got, text);
}

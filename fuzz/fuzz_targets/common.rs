//! Checks shared by the stream targets: what a translator writes to a client.
#![allow(dead_code)]

use openclawd::gateway::wire::TranslateEvent;

/// Chunk sizes 1..=17 taken from the input itself, so the fuzzer also explores splits.
pub fn chunks(data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut i = 0;
    let mut k = 0;
    while i < data.len() {
        let size = 1 + (data[k % data.len()] as usize % 17);
        let end = (i + size).min(data.len());
        out.push(&data[i..end]);
        i = end;
        k += 1;
    }
    out
}

/// Tool call ids the translators invent when the upstream sends none are random.
fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("\"call_") {
        out.push_str(&rest[..at + 6]);
        let tail = &rest[at + 6..];
        let n = tail
            .bytes()
            .take_while(|b| b.is_ascii_alphanumeric())
            .count();
        if n == 24 {
            out.push('X');
            rest = &tail[n..];
        } else {
            rest = tail;
        }
    }
    out.push_str(rest);
    out
}

/// The client-visible form of a run, for comparing chunkings.
pub fn render(events: &[TranslateEvent]) -> Vec<String> {
    events
        .iter()
        .map(|e| match e {
            TranslateEvent::Sse(b) => normalize(&String::from_utf8_lossy(b)),
            TranslateEvent::UpstreamError(m) => format!("ERROR {m}"),
        })
        .collect()
}

/// Every event is one well-formed SSE `data:` event holding a chunk object or `[DONE]`;
/// `[DONE]` comes once, last; nothing follows an error.
pub fn check(events: &[TranslateEvent]) {
    let mut done = false;
    let mut failed = false;
    for e in events {
        assert!(!failed, "an event after an upstream error: {e:?}");
        match e {
            TranslateEvent::Sse(bytes) => {
                assert!(!done, "an event after [DONE]");
                let text = std::str::from_utf8(bytes).expect("SSE is UTF-8");
                let payload = text
                    .strip_prefix("data: ")
                    .and_then(|t| t.strip_suffix("\n\n"))
                    .unwrap_or_else(|| panic!("not one data event: {text:?}"));
                assert!(
                    !payload.contains('\n'),
                    "a newline inside one event: {text:?}"
                );
                if payload == "[DONE]" {
                    done = true;
                    continue;
                }
                let v: serde_json::Value =
                    serde_json::from_str(payload).unwrap_or_else(|e| panic!("{e}: {payload}"));
                assert_eq!(v["object"], "chat.completion.chunk", "{payload}");
                assert!(v["choices"].is_array(), "{payload}");
            }
            TranslateEvent::UpstreamError(message) => {
                assert!(!done, "an error after [DONE]");
                assert!(!message.is_empty());
                failed = true;
            }
        }
    }
}

/// The stream targets' property: a run over `data` whole and a run over `data` in chunks both
/// write only well-formed SSE, and the same SSE. `run` translates the given pieces, with or
/// without a usage chunk (chosen by the input's first byte).
pub fn check_chunking_invariance(data: &[u8], run: impl Fn(&[&[u8]], bool) -> Vec<TranslateEvent>) {
    let include_usage = data.first().is_some_and(|b| b & 1 == 1);
    let whole = run(&[data], include_usage);
    check(&whole);
    let split = run(&chunks(data), include_usage);
    check(&split);
    assert_eq!(
        render(&whole),
        render(&split),
        "chunking changed the output"
    );
}

//! Wire samples from `tests/fixtures/ollama/`, compiled in so the binary stands alone.

macro_rules! fixture {
    ($path:literal) => {
        include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../fixtures/ollama/",
            $path
        ))
    };
}

pub const TAGS: &[u8] = fixture!("tags.json");
pub const SHOW_GPT_OSS: &[u8] = fixture!("show-gpt-oss-20b.json");
pub const SHOW_QWEN3_CODER: &[u8] = fixture!("show-qwen3-coder-latest.json");
pub const SHOW_LLAMA32: &[u8] = fixture!("show-llama3.2-3b.json");
pub const CHAT_STREAM: &[u8] = fixture!("chat-stream.ndjson");
pub const CHAT_STREAM_THINKING: &[u8] = fixture!("chat-stream-thinking.ndjson");
pub const CHAT_STREAM_TOOLS: &[u8] = fixture!("chat-stream-tools.ndjson");
pub const MIDSTREAM_ERROR: &[u8] = fixture!("errors/chat-midstream-error.ndjson");
pub const RUNNER_CRASHED: &[u8] = fixture!("errors/500-runner-crashed.json");
pub const SERVER_BUSY: &[u8] = fixture!("errors/503-server-busy.json");
pub const REQUEST_CANCELED: &[u8] = fixture!("errors/499-request-canceled.json");
pub const SERVE_STARTUP: &[u8] = fixture!("cli/serve-startup.stderr.log");
pub const CLIENT_NO_SERVER: &[u8] = fixture!("cli/client-no-server-linux.stderr.txt");

/// The `/api/show` fixture body for a default-catalogue model, by display name.
pub fn show_body(name: &str) -> Option<&'static [u8]> {
    match name {
        "gpt-oss:20b" => Some(SHOW_GPT_OSS),
        "qwen3-coder:latest" => Some(SHOW_QWEN3_CODER),
        "llama3.2:3b" => Some(SHOW_LLAMA32),
        _ => None,
    }
}

/// Field `path` (a JSON pointer) of every NDJSON line of `fixture`, as strings.
fn ndjson_strings(fixture: &[u8], pointer: &str) -> Vec<String> {
    String::from_utf8_lossy(fixture)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|v| v.get("done") == Some(&serde_json::Value::Bool(false)))
        .filter_map(|v| {
            v.pointer(pointer)
                .and_then(|s| s.as_str())
                .map(str::to_string)
        })
        .filter(|s| !s.is_empty())
        .collect()
}

/// The reply streamed by default: the content tokens of `chat-stream.ndjson`.
pub fn default_reply_tokens() -> Vec<String> {
    ndjson_strings(CHAT_STREAM, "/message/content")
}

/// The reasoning streamed by thinking models: the thinking tokens of
/// `chat-stream-thinking.ndjson`.
pub fn default_thinking_tokens() -> Vec<String> {
    ndjson_strings(CHAT_STREAM_THINKING, "/message/thinking")
}

/// The error text of the mid-stream fixture (`llama-server process has terminated: ...`).
pub fn midstream_error_text() -> String {
    String::from_utf8_lossy(MIDSTREAM_ERROR)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find_map(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
        .unwrap_or_else(|| "llama-server process has terminated: signal: killed".to_string())
}

/// `(name, arguments)` of the tool call in `chat-stream-tools.ndjson`.
pub fn fixture_tool_call() -> (String, serde_json::Value) {
    let first = String::from_utf8_lossy(CHAT_STREAM_TOOLS)
        .lines()
        .next()
        .and_then(|l| serde_json::from_str::<serde_json::Value>(l).ok());
    let function = first
        .as_ref()
        .and_then(|v| v.pointer("/message/tool_calls/0/function"));
    let name = function
        .and_then(|f| f.get("name"))
        .and_then(|n| n.as_str())
        .unwrap_or("get_weather")
        .to_string();
    let args = function
        .and_then(|f| f.get("arguments"))
        .cloned()
        .unwrap_or_else(|| serde_json::json!({"city": "Tokyo"}));
    (name, args)
}

/// The `error` string of a `{"error":"..."}` fixture.
pub fn error_text(fixture: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(fixture)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
        .unwrap_or_default()
}

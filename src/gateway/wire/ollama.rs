//! OpenAI chat completions ⇄ Ollama's native `/api/chat` (notes/ollama.md §1.7, §1.9).
//!
//! The gateway talks to discovered Ollama models natively so it can send `options.num_ctx`
//! (SPEC §4). What the client gets back is what Ollama's own `/v1` layer (≥ 0.32.6) would have
//! written, except that `model` is the ref the gateway reports, ids are OpenAI-style and there is
//! no `system_fingerprint`.

use std::borrow::Cow;
use std::collections::HashMap;
use std::time::Duration;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};

use super::openai::{
    self, arguments_object, content_parts, parse_data_url, ChunkWriter, Delta, FunctionDelta, Part,
    ToolCallDelta,
};
use super::sse::SSE_DONE;
use super::{TranslateEvent, Usage, WireError};

/// Keys of Ollama's `options` that `params` in the config may set directly.
const OPTION_KEYS: &[&str] = &[
    "num_keep",
    "seed",
    "num_predict",
    "top_k",
    "top_p",
    "min_p",
    "typical_p",
    "repeat_last_n",
    "temperature",
    "repeat_penalty",
    "presence_penalty",
    "frequency_penalty",
    "stop",
    "num_ctx",
    "num_batch",
    "num_gpu",
    "main_gpu",
    "use_mmap",
    "num_thread",
];

/// Sampling fields of an OpenAI request that map 1:1 onto Ollama options (`top_k`, `min_p` and
/// `repeat_penalty` are not OpenAI's, but clients that know Ollama send them).
const REQUEST_OPTION_KEYS: &[&str] = &[
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "seed",
    "frequency_penalty",
    "presence_penalty",
    "repeat_penalty",
];

/// The body of `POST /api/chat` for an OpenAI chat request.
///
/// * `model_id`: Ollama's model name (the ref without `ollama/`).
/// * `num_ctx`: the context size to ask for (SPEC §4: `params.num_ctx`, else
///   `min(contextWindow, 32768)`); wins over everything else.
/// * `params`: `agents.defaults.models[ref].params`; Ollama option names (and `maxTokens`,
///   `topP`, `topK`) become `options`, `keep_alive`/`keepAlive` and `think` go top-level. The
///   request's own values win.
pub fn chat_request(
    req: &Value,
    model_id: &str,
    num_ctx: Option<u64>,
    params: &Map<String, Value>,
) -> Result<Value, WireError> {
    let mut body = Map::new();
    body.insert("model".into(), model_id.into());
    body.insert("messages".into(), Value::Array(messages(req)?));

    let tool_choice = req.get("tool_choice");
    if let Some(tools) = req.get("tools").and_then(Value::as_array) {
        // Ollama has no tool_choice: "none" withholds the tools; naming one offers only it.
        let tools: Vec<Value> = match tool_choice {
            Some(Value::String(choice)) if choice == "none" => Vec::new(),
            Some(Value::Object(choice)) => {
                match choice.get("function").and_then(|f| f.get("name")) {
                    Some(name) => tools
                        .iter()
                        .filter(|t| t.get("function").and_then(|f| f.get("name")) == Some(name))
                        .cloned()
                        .collect(),
                    None => tools.clone(),
                }
            }
            _ => tools.clone(),
        };
        if !tools.is_empty() {
            body.insert("tools".into(), Value::Array(tools));
        }
    }

    body.insert("stream".into(), openai::is_stream(req).into());

    let mut options = Map::new();
    let mut keep_alive = None;
    let mut think = None;
    for (key, value) in params {
        match key.as_str() {
            "keep_alive" | "keepAlive" => keep_alive = Some(value.clone()),
            "think" => think = Some(value.clone()),
            "maxTokens" | "max_tokens" => {
                options.insert("num_predict".into(), value.clone());
            }
            "topP" => {
                options.insert("top_p".into(), value.clone());
            }
            "topK" => {
                options.insert("top_k".into(), value.clone());
            }
            key if OPTION_KEYS.contains(&key) => {
                options.insert(key.into(), value.clone());
            }
            _ => {} // OpenClaw-side params (e.g. cacheRetention, streaming)
        }
    }
    for key in REQUEST_OPTION_KEYS {
        if let Some(value) = req.get(*key).filter(|v| !v.is_null()) {
            options.insert((*key).into(), value.clone());
        }
    }
    match req.get("stop") {
        Some(Value::String(stop)) => {
            options.insert("stop".into(), json!([stop]));
        }
        Some(stop @ Value::Array(_)) => {
            options.insert("stop".into(), stop.clone());
        }
        _ => {}
    }
    if let Some(max) = openai::max_output_tokens(req) {
        options.insert("num_predict".into(), max.into());
    }
    if let Some(num_ctx) = num_ctx {
        options.insert("num_ctx".into(), num_ctx.into());
    }
    if !options.is_empty() {
        body.insert("options".into(), Value::Object(options));
    }

    if let Some(format) = response_format(req)? {
        body.insert("format".into(), format);
    }
    if let Some(value) = req.get("think").filter(|v| v.is_boolean() || v.is_string()) {
        think = Some(value.clone());
    } else if let Some(effort) = reasoning_effort(req) {
        think = Some(think_from_effort(effort)?);
    }
    if let Some(think) = think {
        body.insert("think".into(), think);
    }
    if let Some(value) = req.get("keep_alive").filter(|v| !v.is_null()) {
        keep_alive = Some(value.clone());
    }
    if let Some(keep_alive) = keep_alive {
        body.insert("keep_alive".into(), keep_alive);
    }
    Ok(Value::Object(body))
}

fn messages(req: &Value) -> Result<Vec<Value>, WireError> {
    let Some(messages) = req.get("messages").and_then(Value::as_array) else {
        return Err(WireError::bad_request(
            "Missing required parameter: 'messages'.",
            Some("messages".into()),
        ));
    };
    // Ollama wants the tool's name on a tool result; OpenAI only sends the call id.
    let mut tool_names: HashMap<&str, &str> = HashMap::new();
    let mut out = Vec::with_capacity(messages.len());
    for (i, message) in messages.iter().enumerate() {
        let param = format!("messages[{i}]");
        let role = message.get("role").and_then(Value::as_str).unwrap_or("");
        let (content, images) =
            text_and_images(message.get("content"), &format!("{param}.content"))?;
        let mut native = Map::new();
        match role {
            "system" | "developer" => {
                native.insert("role".into(), "system".into());
            }
            "user" => {
                native.insert("role".into(), "user".into());
            }
            "assistant" => {
                native.insert("role".into(), "assistant".into());
                if let Some(thinking) = ["reasoning", "reasoning_content", "thinking"]
                    .iter()
                    .find_map(|k| message.get(*k).and_then(Value::as_str))
                    .filter(|t| !t.is_empty())
                {
                    native.insert("thinking".into(), thinking.into());
                }
                if let Some(calls) = message.get("tool_calls").and_then(Value::as_array) {
                    let mut native_calls = Vec::with_capacity(calls.len());
                    for (j, call) in calls.iter().enumerate() {
                        let call_param = format!("{param}.tool_calls[{j}]");
                        let function = call.get("function");
                        let name = function
                            .and_then(|f| f.get("name"))
                            .and_then(Value::as_str)
                            .ok_or_else(|| {
                                WireError::bad_request(
                                    format!(
                                        "Missing required parameter: '{call_param}.function.name'."
                                    ),
                                    Some(format!("{call_param}.function.name")),
                                )
                            })?;
                        let arguments = arguments_object(
                            function.and_then(|f| f.get("arguments")),
                            &format!("{call_param}.function.arguments"),
                        )?;
                        let mut native_call = Map::new();
                        if let Some(id) = call.get("id").and_then(Value::as_str) {
                            tool_names.insert(id, name);
                            native_call.insert("id".into(), id.into());
                        }
                        native_call.insert(
                            "function".into(),
                            json!({"name": name, "arguments": arguments}),
                        );
                        native_calls.push(Value::Object(native_call));
                    }
                    if !native_calls.is_empty() {
                        native.insert("tool_calls".into(), Value::Array(native_calls));
                    }
                }
            }
            "tool" | "function" => {
                native.insert("role".into(), "tool".into());
                let call_id = message.get("tool_call_id").and_then(Value::as_str);
                let name = call_id
                    .and_then(|id| tool_names.get(id).copied())
                    .or_else(|| message.get("name").and_then(Value::as_str));
                if let Some(name) = name {
                    native.insert("tool_name".into(), name.into());
                }
                if let Some(id) = call_id {
                    native.insert("tool_call_id".into(), id.into());
                }
            }
            other => {
                return Err(WireError::bad_request(
                    format!(
                        "Invalid value for '{param}.role': '{other}'. Supported values are: 'system', 'developer', 'user', 'assistant' and 'tool'."
                    ),
                    Some(format!("{param}.role")),
                ))
            }
        }
        native.insert("content".into(), content.into());
        if !images.is_empty() {
            native.insert("images".into(), images.into());
        }
        out.push(Value::Object(native));
    }
    Ok(out)
}

/// A message's text (parts joined with `\n`) and its images as bare base64.
fn text_and_images(
    content: Option<&Value>,
    param: &str,
) -> Result<(String, Vec<String>), WireError> {
    let parts = content_parts(content, param)?;
    let mut text = String::new();
    let mut images = Vec::new();
    for (i, part) in parts.into_iter().enumerate() {
        match part {
            Part::Text(t) => {
                if !text.is_empty() {
                    text.push('\n');
                }
                text.push_str(t);
            }
            Part::Image(url) => match parse_data_url(url) {
                Some((_, data)) => images.push(data.to_owned()),
                None => {
                    return Err(WireError::bad_request(
                        format!(
                            "'{param}[{i}].image_url.url' must be a base64 data: URL (data:image/png;base64,…); Ollama cannot fetch image links."
                        ),
                        Some(format!("{param}[{i}].image_url.url")),
                    ))
                }
            },
        }
    }
    Ok((text, images))
}

fn response_format(req: &Value) -> Result<Option<Value>, WireError> {
    let Some(format) = req.get("response_format").filter(|f| !f.is_null()) else {
        return Ok(None);
    };
    match format.get("type").and_then(Value::as_str) {
        Some("json_object") => Ok(Some("json".into())),
        Some("json_schema") => match format.get("json_schema").and_then(|s| s.get("schema")) {
            Some(schema) => Ok(Some(schema.clone())),
            None => Err(WireError::bad_request(
                "Missing required parameter: 'response_format.json_schema.schema'.",
                Some("response_format.json_schema.schema".into()),
            )),
        },
        Some("text") | None => Ok(None),
        Some(other) => Err(WireError::bad_request(
            format!(
                "Invalid value for 'response_format.type': '{other}'. Supported values are: 'text', 'json_object' and 'json_schema'."
            ),
            Some("response_format.type".into()),
        )),
    }
}

/// `reasoning_effort`, or `reasoning.effort` (both spellings are in use).
fn reasoning_effort(req: &Value) -> Option<&str> {
    req.get("reasoning_effort")
        .and_then(Value::as_str)
        .or_else(|| {
            req.get("reasoning")
                .and_then(|r| r.get("effort"))
                .and_then(Value::as_str)
        })
}

/// Ollama's own mapping (openai/openai.go): none → false, minimal → low, xhigh/ultra → max.
fn think_from_effort(effort: &str) -> Result<Value, WireError> {
    match effort {
        "none" => Ok(false.into()),
        "minimal" => Ok("low".into()),
        "low" | "medium" | "high" | "max" => Ok(effort.into()),
        "xhigh" | "ultra" => Ok("max".into()),
        other => Err(WireError::bad_request(
            format!(
                "invalid reasoning value: \"{other}\" (must be \"minimal\", \"low\", \"medium\", \"high\", \"xhigh\", \"ultra\", \"max\", or \"none\")"
            ),
            Some("reasoning_effort".into()),
        )),
    }
}

/// Timings and counts Ollama reports on its final line (for benchmarks and `/metrics`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OllamaMetrics {
    pub total_duration: Option<Duration>,
    /// Time spent loading the model (large on a cold start).
    pub load_duration: Option<Duration>,
    pub prompt_eval_count: Option<u64>,
    pub prompt_eval_duration: Option<Duration>,
    pub eval_count: Option<u64>,
    pub eval_duration: Option<Duration>,
}

impl OllamaMetrics {
    /// From a final chunk or a `stream:false` response.
    pub fn from_response(resp: &Value) -> OllamaMetrics {
        let count = |key: &str| resp.get(key).and_then(Value::as_u64);
        let nanos = |key: &str| count(key).map(Duration::from_nanos);
        OllamaMetrics {
            total_duration: nanos("total_duration"),
            load_duration: nanos("load_duration"),
            prompt_eval_count: count("prompt_eval_count"),
            prompt_eval_duration: nanos("prompt_eval_duration"),
            eval_count: count("eval_count"),
            eval_duration: nanos("eval_duration"),
        }
    }

    pub fn usage(&self) -> Usage {
        Usage {
            prompt_tokens: self.prompt_eval_count.unwrap_or(0),
            completion_tokens: self.eval_count.unwrap_or(0),
            cached_tokens: 0,
        }
    }
}

#[derive(Deserialize)]
struct NativeChunk<'a> {
    #[serde(default)]
    error: Option<Value>,
    #[serde(borrow, default)]
    message: Option<NativeMessage<'a>>,
    #[serde(default)]
    done: bool,
    #[serde(borrow, default)]
    done_reason: Option<Cow<'a, str>>,
    total_duration: Option<u64>,
    load_duration: Option<u64>,
    prompt_eval_count: Option<u64>,
    prompt_eval_duration: Option<u64>,
    eval_count: Option<u64>,
    eval_duration: Option<u64>,
}

#[derive(Deserialize)]
struct NativeMessage<'a> {
    #[serde(borrow, default)]
    content: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    thinking: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    tool_calls: Option<Vec<NativeToolCall<'a>>>,
}

#[derive(Deserialize)]
struct NativeToolCall<'a> {
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    function: NativeFunction<'a>,
}

#[derive(Deserialize)]
struct NativeFunction<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(borrow, default)]
    arguments: Option<&'a RawValue>,
}

/// Ollama sends arguments as an object; OpenAI wants the JSON text.
fn arguments_text(raw: Option<&RawValue>) -> Cow<'_, str> {
    match raw.map(RawValue::get) {
        None | Some("null") => Cow::Borrowed("{}"),
        Some(text) if text.starts_with('"') => serde_json::from_str::<String>(text)
            .map(Cow::Owned)
            .unwrap_or(Cow::Borrowed(text)),
        Some(text) => Cow::Borrowed(text),
    }
}

fn error_text(error: &Value) -> String {
    let text = match error {
        Value::String(message) => message.clone(),
        other => other
            .get("message")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| other.to_string()),
    };
    // An error event must tell the client something.
    if text.trim().is_empty() {
        "Ollama reported an error without a message".to_string()
    } else {
        text
    }
}

/// Turns Ollama's NDJSON stream into OpenAI `chat.completion.chunk` events, one line at a time.
#[derive(Debug)]
pub struct OllamaStreamTranslator {
    chunks: ChunkWriter,
    include_usage: bool,
    role_sent: bool,
    tool_calls_seen: usize,
    finished: bool,
    metrics: Option<OllamaMetrics>,
}

impl OllamaStreamTranslator {
    /// `model_ref`: the ref the gateway reports as `model`; `include_usage`: the request's
    /// `stream_options.include_usage`.
    pub fn new(model_ref: &str, include_usage: bool) -> OllamaStreamTranslator {
        OllamaStreamTranslator::with_writer(ChunkWriter::new(model_ref), include_usage)
    }

    /// With a given id/created (tests, or to share them with a previous attempt).
    pub fn with_writer(chunks: ChunkWriter, include_usage: bool) -> OllamaStreamTranslator {
        OllamaStreamTranslator {
            chunks,
            include_usage,
            role_sent: false,
            tool_calls_seen: 0,
            finished: false,
            metrics: None,
        }
    }

    /// Translate one NDJSON line (without its newline).
    pub fn feed(&mut self, line: &[u8]) -> Vec<TranslateEvent> {
        let mut out = Vec::new();
        if self.finished {
            return out;
        }
        let chunk: NativeChunk<'_> = match serde_json::from_slice(line) {
            Ok(chunk) => chunk,
            Err(err) => {
                self.finished = true;
                let shown = String::from_utf8_lossy(&line[..line.len().min(200)]).into_owned();
                out.push(TranslateEvent::UpstreamError(format!(
                    "Ollama sent a stream line that is not a chat chunk ({err}): {shown}"
                )));
                return out;
            }
        };
        if let Some(error) = &chunk.error {
            self.finished = true;
            out.push(TranslateEvent::UpstreamError(error_text(error)));
            return out;
        }
        if let Some(message) = &chunk.message {
            self.message(message, &mut out);
        }
        if chunk.done {
            self.finished = true;
            let metrics = OllamaMetrics {
                total_duration: chunk.total_duration.map(Duration::from_nanos),
                load_duration: chunk.load_duration.map(Duration::from_nanos),
                prompt_eval_count: chunk.prompt_eval_count,
                prompt_eval_duration: chunk.prompt_eval_duration.map(Duration::from_nanos),
                eval_count: chunk.eval_count,
                eval_duration: chunk.eval_duration.map(Duration::from_nanos),
            };
            self.metrics = Some(metrics);
            if !self.role_sent {
                // An empty answer still gets its opening chunk.
                self.push_delta(Some(""), None, None, &mut out);
            }
            let finish_reason = match chunk.done_reason.as_deref() {
                Some("length") => "length",
                _ if self.tool_calls_seen > 0 => "tool_calls",
                _ => "stop",
            };
            out.push(TranslateEvent::Sse(self.chunks.finish(finish_reason)));
            if self.include_usage {
                out.push(TranslateEvent::Sse(self.chunks.usage(&metrics.usage())));
            }
            out.push(TranslateEvent::Sse(SSE_DONE));
        }
        out
    }

    /// The upstream closed the connection. If it did so before its final line, that is a
    /// failure the client must hear about.
    pub fn finish(&mut self) -> Vec<TranslateEvent> {
        if self.finished {
            return Vec::new();
        }
        self.finished = true;
        vec![TranslateEvent::UpstreamError(
            "Ollama ended the stream without a final response".into(),
        )]
    }

    /// Whether the final line (or an error) was seen.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Ollama's timings and counts from the final line, once it was seen.
    pub fn metrics(&self) -> Option<&OllamaMetrics> {
        self.metrics.as_ref()
    }

    /// Token usage from the final line, once it was seen.
    pub fn usage(&self) -> Option<Usage> {
        self.metrics.as_ref().map(OllamaMetrics::usage)
    }

    fn message(&mut self, message: &NativeMessage<'_>, out: &mut Vec<TranslateEvent>) {
        let content = message.content.as_deref().unwrap_or("");
        if let Some(thinking) = message.thinking.as_deref().filter(|t| !t.is_empty()) {
            // Ollama's layer splits a chunk with both into reasoning first, then content.
            self.push_delta(Some(""), Some(thinking), None, out);
        }
        let calls = message.tool_calls.as_deref().unwrap_or(&[]);
        if calls.is_empty() {
            if !content.is_empty() {
                self.push_delta(Some(content), None, None, out);
            }
            return;
        }
        let ids: Vec<Cow<'_, str>> = calls
            .iter()
            .map(|call| match call.id.as_deref() {
                Some(id) if !id.is_empty() => Cow::Borrowed(id),
                _ => Cow::Owned(openai::new_call_id()),
            })
            .collect();
        let arguments: Vec<Cow<'_, str>> = calls
            .iter()
            .map(|call| arguments_text(call.function.arguments))
            .collect();
        let deltas: Vec<ToolCallDelta<'_>> = calls
            .iter()
            .enumerate()
            .map(|(i, call)| ToolCallDelta {
                id: Some(&ids[i]),
                index: self.tool_calls_seen + i,
                kind: Some("function"),
                function: FunctionDelta {
                    name: Some(&call.function.name),
                    arguments: &arguments[i],
                },
                thought_signature: None,
            })
            .collect();
        self.push_delta(Some(content), None, Some(&deltas), out);
        self.tool_calls_seen += calls.len();
    }

    fn push_delta(
        &mut self,
        content: Option<&str>,
        reasoning: Option<&str>,
        tool_calls: Option<&[ToolCallDelta<'_>]>,
        out: &mut Vec<TranslateEvent>,
    ) {
        let role = (!self.role_sent).then_some("assistant");
        self.role_sent = true;
        let delta = Delta {
            role,
            content,
            reasoning,
            tool_calls,
            thinking_signature: None,
        };
        out.push(TranslateEvent::Sse(self.chunks.delta(&delta, None)));
    }
}

/// A `stream:false` answer of `/api/chat` as an OpenAI `chat.completion`.
pub fn chat_response(resp: &Value, model_ref: &str) -> Value {
    let message = resp.get("message");
    let text = |key: &str| {
        message
            .and_then(|m| m.get(key))
            .and_then(Value::as_str)
            .unwrap_or("")
    };
    let mut out = Map::new();
    out.insert("role".into(), "assistant".into());
    out.insert("content".into(), text("content").into());
    if !text("thinking").is_empty() {
        out.insert("reasoning".into(), text("thinking").into());
    }
    let calls: Vec<Value> = message
        .and_then(|m| m.get("tool_calls"))
        .and_then(Value::as_array)
        .map(|calls| {
            calls
                .iter()
                .enumerate()
                .map(|(i, call)| {
                    let function = call.get("function");
                    let arguments = match function.and_then(|f| f.get("arguments")) {
                        None | Some(Value::Null) => "{}".to_owned(),
                        Some(Value::String(text)) => text.clone(),
                        Some(other) => other.to_string(),
                    };
                    json!({
                        "id": call.get("id").and_then(Value::as_str).filter(|id| !id.is_empty())
                            .map_or_else(openai::new_call_id, str::to_owned),
                        "index": i,
                        "type": "function",
                        "function": {
                            "name": function.and_then(|f| f.get("name")).and_then(Value::as_str).unwrap_or(""),
                            "arguments": arguments,
                        },
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let finish_reason = match resp.get("done_reason").and_then(Value::as_str) {
        Some("length") => "length",
        _ if !calls.is_empty() => "tool_calls",
        _ => "stop",
    };
    if !calls.is_empty() {
        out.insert("tool_calls".into(), Value::Array(calls));
    }
    let usage = OllamaMetrics::from_response(resp).usage();
    openai::completion(model_ref, out, finish_reason, &usage)
}

/// The message of an Ollama error body: `{"error":"…"}` (native), `{"error":{"message":…}}`
/// (its OpenAI layer), or the text itself (`404 page not found`).
pub fn error_message(body: &[u8]) -> String {
    if let Ok(value) = serde_json::from_slice::<Value>(body) {
        if let Some(error) = value.get("error") {
            return error_text(error);
        }
    }
    plain_text_message(body)
}

/// A non-JSON error body, trimmed and capped so it fits in a log line and an error message.
pub(crate) fn plain_text_message(body: &[u8]) -> String {
    const MAX: usize = 1000;
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return "empty response body".into();
    }
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// The top-level field of a non-streamed `chat.completion` in which the gateway reports an Ollama
/// upstream's native timings: `"openclawd": {"load_duration_ms": 2310.5, "prompt_eval_ms": ..,
/// "eval_ms": .., "eval_count": .., "total_duration_ms": ..}` (only the ones Ollama reported).
/// OpenAI clients ignore unknown fields.
pub const EXTENSION_KEY: &str = "openclawd";

/// Ollama's native timings as the [`EXTENSION_KEY`] object, in milliseconds; `None` when Ollama
/// reported none of them.
pub fn native_timings(m: &OllamaMetrics) -> Option<Value> {
    let mut out = Map::new();
    let mut ms = |key: &str, d: Option<Duration>| {
        if let Some(d) = d {
            // Microsecond precision: Ollama's nanoseconds would only be noise here.
            let ms = (d.as_secs_f64() * 1_000_000.0).round() / 1000.0;
            out.insert(key.into(), Value::from(ms));
        }
    };
    ms("load_duration_ms", m.load_duration);
    ms("prompt_eval_ms", m.prompt_eval_duration);
    ms("eval_ms", m.eval_duration);
    ms("total_duration_ms", m.total_duration);
    if let Some(n) = m.eval_count {
        out.insert("eval_count".into(), n.into());
    }
    (!out.is_empty()).then_some(Value::Object(out))
}

/// Adds [`native_timings`] to a `chat.completion` body.
pub fn add_native_timings(completion: &mut Value, m: &OllamaMetrics) {
    if let (Some(obj), Some(timings)) = (completion.as_object_mut(), native_timings(m)) {
        obj.insert(EXTENSION_KEY.into(), timings);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sse_json(events: &[TranslateEvent]) -> Vec<Value> {
        events
            .iter()
            .map(|e| match e {
                TranslateEvent::Sse(bytes) => {
                    let text = std::str::from_utf8(bytes).unwrap();
                    let data = text
                        .strip_prefix("data: ")
                        .unwrap()
                        .strip_suffix("\n\n")
                        .unwrap();
                    if data == "[DONE]" {
                        Value::from("[DONE]")
                    } else {
                        serde_json::from_str(data).unwrap()
                    }
                }
                TranslateEvent::UpstreamError(m) => json!({"upstream_error": m}),
            })
            .collect()
    }

    #[test]
    fn openai_conversation_with_tool_round_trip_becomes_native_messages() {
        let req = json!({
            "model": "ollama/qwen3-coder:latest",
            "messages": [
                {"role": "developer", "content": "Be brief."},
                {"role": "user", "content": [
                    {"type": "text", "text": "Weather here?"},
                    {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ"}},
                    {"type": "text", "text": "And in Tokyo?"}
                ]},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_abc", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Tokyo\"}"}}
                ]},
                {"role": "tool", "tool_call_id": "call_abc", "content": "{\"temp\":21}"}
            ],
            "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}],
            "stream": true,
            "temperature": 0.2,
            "stop": "END",
            "max_tokens": 200,
            "reasoning_effort": "minimal",
            "response_format": {"type": "json_object"}
        });
        let params = json!({"num_ctx": 8192, "temperature": 0.9, "top_k": 20, "keep_alive": "30m", "cacheRetention": "short"});
        let body = chat_request(
            &req,
            "qwen3-coder:latest",
            Some(32768),
            params.as_object().unwrap(),
        )
        .unwrap();
        assert_eq!(
            body,
            json!({
                "model": "qwen3-coder:latest",
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "Weather here?\nAnd in Tokyo?", "images": ["/9j/4AAQ"]},
                    {"role": "assistant", "content": "", "tool_calls": [
                        {"id": "call_abc", "function": {"name": "get_weather", "arguments": {"city": "Tokyo"}}}
                    ]},
                    {"role": "tool", "content": "{\"temp\":21}", "tool_name": "get_weather", "tool_call_id": "call_abc"}
                ],
                "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}],
                "stream": true,
                "options": {"num_ctx": 32768, "temperature": 0.2, "top_k": 20, "stop": ["END"], "num_predict": 200},
                "format": "json",
                "think": "low",
                "keep_alive": "30m"
            })
        );
    }

    #[test]
    fn request_edge_cases() {
        let empty = Map::new();
        let base = |extra: Value| {
            let mut req = json!({"messages": [{"role": "user", "content": "hi"}]});
            req.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            req
        };
        // stream defaults to false (OpenAI's default, not Ollama's); no options when none apply.
        let body = chat_request(&base(json!({})), "m", None, &empty).unwrap();
        assert_eq!(body["stream"], json!(false));
        assert!(body.get("options").is_none());
        // tool_choice none withholds tools; a named choice offers only that tool.
        let tools = json!([{"type":"function","function":{"name":"a"}},{"type":"function","function":{"name":"b"}}]);
        let body = chat_request(
            &base(json!({"tools": tools, "tool_choice": "none"})),
            "m",
            None,
            &empty,
        )
        .unwrap();
        assert!(body.get("tools").is_none());
        let body = chat_request(
            &base(
                json!({"tools": tools, "tool_choice": {"type":"function","function":{"name":"b"}}}),
            ),
            "m",
            None,
            &empty,
        )
        .unwrap();
        assert_eq!(
            body["tools"],
            json!([{"type":"function","function":{"name":"b"}}])
        );
        // json_schema passes the schema; explicit think wins over reasoning_effort.
        let body = chat_request(
            &base(json!({"response_format": {"type":"json_schema","json_schema":{"name":"x","schema":{"type":"object"}}},
                "think": false, "reasoning_effort": "high"})),
            "m",
            None,
            &empty,
        )
        .unwrap();
        assert_eq!(body["format"], json!({"type":"object"}));
        assert_eq!(body["think"], json!(false));
        assert_eq!(
            chat_request(
                &base(json!({"reasoning_effort": "xhigh"})),
                "m",
                None,
                &empty
            )
            .unwrap()["think"],
            json!("max")
        );
        // Errors name the field.
        let err = |req: Value| match chat_request(&req, "m", None, &empty).unwrap_err() {
            WireError::BadRequest { param, .. } => param.unwrap_or_default(),
        };
        assert_eq!(
            err(base(json!({"reasoning_effort": "extreme"}))),
            "reasoning_effort"
        );
        assert_eq!(
            err(
                json!({"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"https://x/y.png"}}]}]})
            ),
            "messages[0].content[0].image_url.url"
        );
        assert_eq!(
            err(
                json!({"messages":[{"role":"assistant","tool_calls":[{"id":"c","function":{"name":"f","arguments":"{oops"}}]}]})
            ),
            "messages[0].tool_calls[0].function.arguments"
        );
        assert_eq!(
            err(json!({"messages":[{"role":"robot","content":"hi"}]})),
            "messages[0].role"
        );
    }

    #[test]
    fn chunk_with_thinking_and_content_is_split_reasoning_first() {
        let writer = ChunkWriter::with_id("chatcmpl-1".into(), 1, "m");
        let mut t = OllamaStreamTranslator::with_writer(writer, false);
        let out = sse_json(&t.feed(
            br#"{"model":"m","message":{"role":"assistant","content":"Hi","thinking":"hmm"},"done":false}"#,
        ));
        assert_eq!(
            out.iter()
                .map(|c| c["choices"][0]["delta"].clone())
                .collect::<Vec<_>>(),
            vec![
                json!({"role":"assistant","content":"","reasoning":"hmm"}),
                json!({"content":"Hi"})
            ]
        );
    }

    #[test]
    fn done_reason_length_and_empty_answers() {
        let mut t = OllamaStreamTranslator::new("ollama/m", true);
        let out = sse_json(&t.feed(
            br#"{"model":"m","message":{"role":"assistant","content":""},"done":true,"done_reason":"length","prompt_eval_count":5,"eval_count":7,"load_duration":1000}"#,
        ));
        assert_eq!(out.len(), 4);
        assert_eq!(
            out[0]["choices"][0]["delta"],
            json!({"role":"assistant","content":""})
        );
        assert_eq!(out[1]["choices"][0]["finish_reason"], json!("length"));
        assert_eq!(
            out[2]["usage"],
            json!({"prompt_tokens":5,"completion_tokens":7,"total_tokens":12})
        );
        assert_eq!(out[3], json!("[DONE]"));
        assert_eq!(
            t.metrics().unwrap().load_duration,
            Some(Duration::from_micros(1))
        );
        assert!(t.feed(br#"{"error":"late"}"#).is_empty());
    }

    #[test]
    fn truncated_streams_and_garbage_are_upstream_errors() {
        let mut t = OllamaStreamTranslator::new("m", false);
        assert_eq!(
            t.feed(br#"{"model":"m","message":{"role":"assistant","content":"a"},"done":false}"#)
                .len(),
            1
        );
        assert!(matches!(
            t.finish().as_slice(),
            [TranslateEvent::UpstreamError(m)] if m.contains("without a final response")
        ));
        let mut t = OllamaStreamTranslator::new("m", false);
        assert!(matches!(
            t.feed(b"<html>").as_slice(),
            [TranslateEvent::UpstreamError(m)] if m.contains("not a chat chunk")
        ));
        assert!(t.finish().is_empty());
    }

    #[test]
    fn tool_calls_without_ids_get_fresh_ones_and_running_indexes() {
        let mut t = OllamaStreamTranslator::new("m", false);
        let mut out = sse_json(&t.feed(
            br#"{"message":{"role":"assistant","content":"","tool_calls":[{"function":{"index":0,"name":"a","arguments":{}}}]},"done":false}"#,
        ));
        out.extend(sse_json(&t.feed(
            br#"{"message":{"role":"assistant","content":"","tool_calls":[{"function":{"index":0,"name":"b","arguments":{"x":[1,2]}}}]},"done":true,"done_reason":"stop"}"#,
        )));
        let first = &out[0]["choices"][0]["delta"]["tool_calls"][0];
        assert!(first["id"].as_str().unwrap().starts_with("call_"));
        assert_eq!(first["index"], json!(0));
        assert_eq!(first["function"]["arguments"], json!("{}"));
        let second = &out[1]["choices"][0]["delta"]["tool_calls"][0];
        assert_eq!(second["index"], json!(1));
        assert_eq!(second["function"]["arguments"], json!("{\"x\":[1,2]}"));
        assert_eq!(out[2]["choices"][0]["finish_reason"], json!("tool_calls"));
    }

    #[test]
    fn error_bodies_of_every_shape() {
        assert_eq!(
            error_message(br#"{"error":"model 'llama9:70b' not found"}"#),
            "model 'llama9:70b' not found"
        );
        assert_eq!(
            error_message(br#"{"error":{"message":"model is required","type":"invalid_request_error","param":null,"code":null}}"#),
            "model is required"
        );
        assert_eq!(error_message(b"404 page not found\n"), "404 page not found");
        assert_eq!(error_message(b""), "empty response body");
    }
}

//! OpenAI chat completions ⇄ Anthropic Messages, both ways, streaming included (SPEC §5).

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::openai::{
    self, arguments_object, content_parts, parse_data_url, ChunkWriter, Delta, FunctionDelta, Part,
    ToolCallDelta,
};
use super::sse::{SseEvent, SSE_DONE};
use super::{TranslateEvent, Usage, WireError};

/// The body of `POST /v1/messages` for an OpenAI chat request.
///
/// System and developer messages become the top-level `system`; tool results become user
/// `tool_result` blocks; consecutive turns of one role are merged (Anthropic wants strict
/// alternation); `max_tokens` (required by Anthropic) is the request's
/// `max_completion_tokens`/`max_tokens`, else `default_max_tokens`. `signed_thinking[k]` are
/// the signed `thinking` / `redacted_thinking` blocks of the k-th assistant message, which open
/// that turn unchanged (Anthropic checks them when tools are used with thinking); for a
/// `reasoning` model, a reasoning effort becomes a thinking budget ([`thinking_for_effort`]) —
/// a model not configured as one would refuse `thinking`, so it answers without.
pub fn messages_request(
    req: &Value,
    model_id: &str,
    default_max_tokens: u64,
    signed_thinking: &[Vec<Value>],
    reasoning_model: bool,
) -> Result<Value, WireError> {
    let Some(messages) = req.get("messages").and_then(Value::as_array) else {
        return Err(WireError::bad_request(
            "Missing required parameter: 'messages'.",
            Some("messages".into()),
        ));
    };
    let mut system: Vec<&str> = Vec::new();
    let mut turns: Vec<(&'static str, Vec<Value>)> = Vec::new();
    let mut assistant_messages = 0usize;
    for (i, message) in messages.iter().enumerate() {
        let param = format!("messages[{i}]");
        let content_param = format!("{param}.content");
        let role = message.get("role").and_then(Value::as_str).unwrap_or("");
        match role {
            "system" | "developer" => {
                for part in content_parts(message.get("content"), &content_param)? {
                    match part {
                        Part::Text(text) if !text.trim().is_empty() => system.push(text),
                        Part::Text(_) => {}
                        Part::Image(_) => {
                            return Err(WireError::bad_request(
                                format!("'{content_param}' has an image; Anthropic system prompts take text only. Send images in a user message."),
                                Some(content_param),
                            ))
                        }
                    }
                }
            }
            "user" => {
                let blocks = content_blocks(message.get("content"), &content_param)?;
                push_turn(&mut turns, "user", blocks);
            }
            "assistant" => {
                // From a Messages client (`signed_thinking`), or a chat completions client
                // returning the `thinking_blocks` it was given.
                let mut blocks: Vec<Value> = match signed_thinking.get(assistant_messages) {
                    Some(blocks) if !blocks.is_empty() => blocks.clone(),
                    _ => signed_blocks(message.get("thinking_blocks")),
                };
                assistant_messages += 1;
                blocks.extend(content_blocks(message.get("content"), &content_param)?);
                if let Some(calls) = message.get("tool_calls").and_then(Value::as_array) {
                    for (j, call) in calls.iter().enumerate() {
                        blocks.push(tool_use_block(call, &format!("{param}.tool_calls[{j}]"))?);
                    }
                }
                push_turn(&mut turns, "assistant", blocks);
            }
            "tool" => {
                let Some(call_id) = message.get("tool_call_id").and_then(Value::as_str) else {
                    return Err(WireError::bad_request(
                        format!("Missing required parameter: '{param}.tool_call_id'."),
                        Some(format!("{param}.tool_call_id")),
                    ));
                };
                let mut result = Map::new();
                result.insert("type".into(), "tool_result".into());
                result.insert("tool_use_id".into(), tool_id(call_id).into());
                match message.get("content") {
                    Some(Value::String(text)) if !text.is_empty() => {
                        result.insert("content".into(), text.as_str().into());
                    }
                    Some(Value::Array(_)) => {
                        let blocks = content_blocks(message.get("content"), &content_param)?;
                        if !blocks.is_empty() {
                            result.insert("content".into(), Value::Array(blocks));
                        }
                    }
                    _ => {}
                }
                push_turn(&mut turns, "user", vec![Value::Object(result)]);
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
    }
    if turns.is_empty() {
        return Err(WireError::bad_request(
            "'messages' has no user or assistant content; Anthropic models need at least one non-empty user message.",
            Some("messages".into()),
        ));
    }

    let mut body = Map::new();
    body.insert("model".into(), model_id.into());
    body.insert(
        "max_tokens".into(),
        openai::max_output_tokens(req)
            .unwrap_or(default_max_tokens)
            .into(),
    );
    if !system.is_empty() {
        body.insert("system".into(), system.join("\n\n").into());
    }
    let messages: Vec<Value> = turns
        .into_iter()
        .map(|(role, mut blocks)| {
            if role == "user" {
                // Tool results must open the turn that answers the tool calls.
                blocks
                    .sort_by_key(|b| b.get("type").and_then(Value::as_str) != Some("tool_result"));
            }
            json!({"role": role, "content": blocks})
        })
        .collect();
    body.insert("messages".into(), Value::Array(messages));

    let tools: Vec<Value> = req
        .get("tools")
        .and_then(Value::as_array)
        .map(|tools| tools.iter().filter_map(tool_definition).collect())
        .unwrap_or_default();
    if !tools.is_empty() {
        if let Some(choice) = tool_choice(req) {
            body.insert("tool_choice".into(), choice);
        }
        body.insert("tools".into(), Value::Array(tools));
    }

    let max_tokens = body.get("max_tokens").and_then(Value::as_u64).unwrap_or(0);
    let forced_tool = body
        .get("tool_choice")
        .and_then(|c| c.get("type"))
        .and_then(Value::as_str)
        .is_some_and(|t| t == "any" || t == "tool");
    let thinking = reasoning_effort(req)
        .filter(|_| reasoning_model)
        .and_then(|effort| thinking_for_effort(effort, max_tokens, forced_tool));
    let thinking_on = thinking.as_ref().is_some_and(|t| t["type"] == "enabled");
    if let Some(thinking) = thinking {
        body.insert("thinking".into(), thinking);
    }
    // With thinking on, Anthropic refuses a temperature other than 1, any top_k and a top_p
    // below 0.95: the client asked for thinking, so the sampling knobs give way.
    if !thinking_on {
        if let Some(temperature) = req.get("temperature").and_then(Value::as_f64) {
            // OpenAI's range is 0–2, Anthropic's 0–1.
            body.insert("temperature".into(), temperature.clamp(0.0, 1.0).into());
        }
        for key in ["top_p", "top_k"] {
            if let Some(value) = req.get(key).filter(|v| v.is_number()) {
                body.insert(key.into(), value.clone());
            }
        }
    }
    let stops: Vec<&str> = match req.get("stop") {
        Some(Value::String(stop)) => vec![stop.as_str()],
        Some(Value::Array(stops)) => stops.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let stops: Vec<&str> = stops.into_iter().filter(|s| !s.trim().is_empty()).collect();
    if !stops.is_empty() {
        body.insert("stop_sequences".into(), stops.into());
    }
    if let Some(user) = req.get("user").and_then(Value::as_str) {
        body.insert("metadata".into(), json!({"user_id": user}));
    }
    if openai::is_stream(req) {
        body.insert("stream".into(), true.into());
    }
    Ok(Value::Object(body))
}

/// The signed `thinking` and `redacted_thinking` blocks of a chat completions assistant
/// message's `thinking_blocks` (unsigned ones are not Anthropic's to check: left out).
fn signed_blocks(blocks: Option<&Value>) -> Vec<Value> {
    let field = |b: &Value, key: &str| b.get(key).and_then(Value::as_str).map(str::to_owned);
    blocks
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|b| match field(b, "type").as_deref() {
            Some("thinking") => {
                let signature = field(b, "signature").filter(|s| !s.is_empty())?;
                let thinking = field(b, "thinking").unwrap_or_default();
                Some(json!({"type": "thinking", "thinking": thinking, "signature": signature}))
            }
            Some("redacted_thinking") => {
                let data = field(b, "data").filter(|d| !d.is_empty())?;
                Some(json!({"type": "redacted_thinking", "data": data}))
            }
            _ => None,
        })
        .collect()
}

/// `reasoning_effort`, or `reasoning.effort` (both spellings are in use).
fn reasoning_effort(req: &Value) -> Option<&str> {
    req.get("reasoning_effort")
        .or_else(|| req.pointer("/reasoning/effort"))
        .and_then(Value::as_str)
}

/// Anthropic's `thinking` for an OpenAI reasoning effort: `none` turns it off; the others
/// become a budget (the inverse of the effort `/v1/messages` reads from a budget). Anthropic
/// wants at least 1024 and less than `max_tokens`; the budget takes at most half of
/// `max_tokens` so an answer still fits. No thinking when that leaves under 1024, or when the
/// tool choice forces a tool (Anthropic refuses thinking with a forced tool); unknown efforts
/// send nothing.
pub fn thinking_for_effort(effort: &str, max_tokens: u64, forced_tool: bool) -> Option<Value> {
    let wanted: u64 = match effort {
        "none" => return Some(json!({"type": "disabled"})),
        "minimal" => 1024,
        "low" => 2048,
        "medium" => 8192,
        "high" | "xhigh" | "max" => 16384,
        _ => return None,
    };
    let budget = wanted.min(max_tokens / 2);
    if budget < 1024 || forced_tool {
        return None;
    }
    Some(json!({"type": "enabled", "budget_tokens": budget}))
}

/// Appends to the last turn when it has the same role; empty turns are dropped.
fn push_turn(turns: &mut Vec<(&'static str, Vec<Value>)>, role: &'static str, blocks: Vec<Value>) {
    if blocks.is_empty() {
        return;
    }
    match turns.last_mut() {
        Some((last_role, last_blocks)) if *last_role == role => last_blocks.extend(blocks),
        _ => turns.push((role, blocks)),
    }
}

/// Text and image blocks of an OpenAI `content`. Whitespace-only text is dropped (Anthropic
/// refuses it).
fn content_blocks(content: Option<&Value>, param: &str) -> Result<Vec<Value>, WireError> {
    content_parts(content, param)?
        .into_iter()
        .filter(|part| !matches!(part, Part::Text(t) if t.trim().is_empty()))
        .map(|part| {
            Ok(match part {
                Part::Text(text) => json!({"type": "text", "text": text}),
                Part::Image(url) => match parse_data_url(url) {
                    Some((media_type, data)) => json!({"type": "image", "source": {
                        "type": "base64", "media_type": media_type, "data": data}}),
                    None if url.starts_with("https://") || url.starts_with("http://") => {
                        json!({"type": "image", "source": {"type": "url", "url": url}})
                    }
                    None => {
                        return Err(WireError::bad_request(
                            format!("An image in '{param}' is neither a base64 data: URL nor an http(s) URL."),
                            Some(param.to_owned()),
                        ))
                    }
                },
            })
        })
        .collect()
}

fn tool_use_block(call: &Value, param: &str) -> Result<Value, WireError> {
    let function = call.get("function");
    let name = function
        .and_then(|f| f.get("name"))
        .and_then(Value::as_str)
        .ok_or_else(|| {
            WireError::bad_request(
                format!("Missing required parameter: '{param}.function.name'."),
                Some(format!("{param}.function.name")),
            )
        })?;
    let id = call.get("id").and_then(Value::as_str).ok_or_else(|| {
        WireError::bad_request(
            format!("Missing required parameter: '{param}.id'."),
            Some(format!("{param}.id")),
        )
    })?;
    let input = arguments_object(
        function.and_then(|f| f.get("arguments")),
        &format!("{param}.function.arguments"),
    )?;
    Ok(json!({"type": "tool_use", "id": tool_id(id), "name": name, "input": input}))
}

/// Anthropic tool ids must match `^[a-zA-Z0-9_-]+$`; other providers' ids may not.
fn tool_id(id: &str) -> Cow<'_, str> {
    let valid = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    if !id.is_empty() && id.chars().all(valid) {
        Cow::Borrowed(id)
    } else if id.is_empty() {
        Cow::Borrowed("call_")
    } else {
        Cow::Owned(id.chars().map(|c| if valid(c) { c } else { '_' }).collect())
    }
}

fn tool_definition(tool: &Value) -> Option<Value> {
    if tool
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("function")
        != "function"
    {
        return None;
    }
    let function = tool.get("function")?;
    let name = function.get("name")?.as_str()?;
    let mut out = Map::new();
    out.insert("name".into(), name.into());
    if let Some(description) = function.get("description").and_then(Value::as_str) {
        out.insert("description".into(), description.into());
    }
    let schema = match function.get("parameters") {
        Some(Value::Object(schema)) if schema.contains_key("type") => Value::Object(schema.clone()),
        Some(Value::Object(schema)) => {
            let mut schema = schema.clone();
            schema.insert("type".into(), "object".into());
            Value::Object(schema)
        }
        _ => json!({"type": "object", "properties": {}}),
    };
    out.insert("input_schema".into(), schema);
    Some(Value::Object(out))
}

/// `tool_choice` and `parallel_tool_calls` → Anthropic's `tool_choice`.
fn tool_choice(req: &Value) -> Option<Value> {
    let mut choice = match req.get("tool_choice") {
        Some(Value::String(choice)) => match choice.as_str() {
            "none" => json!({"type": "none"}),
            "required" => json!({"type": "any"}),
            _ => json!({"type": "auto"}),
        },
        Some(Value::Object(choice)) => {
            match choice
                .get("function")
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str)
            {
                Some(name) => json!({"type": "tool", "name": name}),
                None => json!({"type": "auto"}),
            }
        }
        _ => {
            if req.get("parallel_tool_calls") != Some(&Value::Bool(false)) {
                return None;
            }
            json!({"type": "auto"})
        }
    };
    if req.get("parallel_tool_calls") == Some(&Value::Bool(false)) && choice["type"] != "none" {
        if let Some(obj) = choice.as_object_mut() {
            obj.insert("disable_parallel_tool_use".into(), true.into());
        }
    }
    Some(choice)
}

/// Anthropic's `stop_reason` as OpenAI's `finish_reason`.
pub fn finish_reason(stop_reason: Option<&str>) -> &'static str {
    match stop_reason {
        Some("max_tokens") | Some("model_context_window_exceeded") => "length",
        Some("tool_use") => "tool_calls",
        Some("refusal") => "content_filter",
        _ => "stop", // end_turn, stop_sequence, pause_turn
    }
}

#[derive(Deserialize, Default, Clone, Copy)]
struct WireUsage {
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    cache_creation_input_tokens: Option<u64>,
    cache_read_input_tokens: Option<u64>,
}

impl WireUsage {
    /// Fold into `usage`: Anthropic's `input_tokens` excludes cache reads and writes, OpenAI's
    /// `prompt_tokens` includes them.
    fn apply(&self, usage: &mut Usage, input: &mut [u64; 3]) {
        if let Some(n) = self.input_tokens {
            input[0] = n;
        }
        if let Some(n) = self.cache_creation_input_tokens {
            input[1] = n;
        }
        if let Some(n) = self.cache_read_input_tokens {
            input[2] = n;
        }
        usage.prompt_tokens = input.iter().fold(0u64, |a, n| a.saturating_add(*n));
        usage.cached_tokens = input[2];
        if let Some(n) = self.output_tokens {
            usage.completion_tokens = n;
        }
    }
}

#[derive(Deserialize)]
struct StreamEvent<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Cow<'a, str>,
    #[serde(default)]
    index: Option<u64>,
    #[serde(borrow, default)]
    delta: Option<EventDelta<'a>>,
    #[serde(borrow, default)]
    content_block: Option<EventBlock<'a>>,
    #[serde(default)]
    message: Option<StartMessage>,
    #[serde(default)]
    usage: Option<WireUsage>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize)]
struct EventDelta<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    thinking: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    partial_json: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    signature: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    stop_reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct EventBlock<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Cow<'a, str>,
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    thinking: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct StartMessage {
    #[serde(default)]
    usage: Option<WireUsage>,
}

fn error_text(error: &Value) -> String {
    let message = error.get("message").and_then(Value::as_str);
    let kind = error.get("type").and_then(Value::as_str);
    match (message, kind) {
        (Some(message), _) if !message.trim().is_empty() => message.to_owned(),
        (_, Some(kind)) if !kind.trim().is_empty() => kind.to_owned(),
        // An error event must tell the client something.
        _ => format!("Anthropic reported an error without a message: {error}"),
    }
}

/// Turns Anthropic's SSE stream into OpenAI `chat.completion.chunk` events, one event at a
/// time.
#[derive(Debug)]
pub struct AnthropicStreamTranslator {
    chunks: ChunkWriter,
    include_usage: bool,
    role_sent: bool,
    finish_sent: bool,
    finished: bool,
    /// (content block index, tool call index) of each `tool_use` block so far.
    tool_blocks: Vec<(u64, usize)>,
    stop_reason: Option<String>,
    usage: Usage,
    /// input, cache creation, cache read.
    input: [u64; 3],
}

impl AnthropicStreamTranslator {
    /// `model_ref`: the ref the gateway reports as `model`; `include_usage`: the request's
    /// `stream_options.include_usage`.
    pub fn new(model_ref: &str, include_usage: bool) -> AnthropicStreamTranslator {
        AnthropicStreamTranslator::with_writer(ChunkWriter::new(model_ref), include_usage)
    }

    pub fn with_writer(chunks: ChunkWriter, include_usage: bool) -> AnthropicStreamTranslator {
        AnthropicStreamTranslator {
            chunks,
            include_usage,
            role_sent: false,
            finish_sent: false,
            finished: false,
            tool_blocks: Vec::new(),
            stop_reason: None,
            usage: Usage::default(),
            input: [0; 3],
        }
    }

    /// Translate one SSE event.
    pub fn feed(&mut self, event: &SseEvent) -> Vec<TranslateEvent> {
        let mut out = Vec::new();
        if self.finished {
            return out;
        }
        let parsed: StreamEvent<'_> = match serde_json::from_str(&event.data) {
            Ok(parsed) => parsed,
            Err(err) => {
                self.finished = true;
                let shown: String = event.data.chars().take(200).collect();
                out.push(TranslateEvent::UpstreamError(format!(
                    "Anthropic sent a stream event that is not JSON ({err}): {shown}"
                )));
                return out;
            }
        };
        let kind = if parsed.kind.is_empty() {
            event.event.as_deref().unwrap_or("")
        } else {
            &parsed.kind
        };
        match kind {
            "message_start" => {
                if let Some(usage) = parsed.message.as_ref().and_then(|m| m.usage) {
                    usage.apply(&mut self.usage, &mut self.input);
                }
                if !self.role_sent {
                    self.push_delta(Some(""), None, None, &mut out);
                }
            }
            "content_block_start" => {
                let Some(block) = &parsed.content_block else {
                    return out;
                };
                match &*block.kind {
                    "text" => {
                        if let Some(text) = block.text.as_deref().filter(|t| !t.is_empty()) {
                            self.push_delta(Some(text), None, None, &mut out);
                        }
                    }
                    "thinking" => {
                        if let Some(text) = block.thinking.as_deref().filter(|t| !t.is_empty()) {
                            self.push_delta(None, Some(text), None, &mut out);
                        }
                    }
                    "tool_use" => {
                        let tool_index = self.tool_blocks.len();
                        self.tool_blocks
                            .push((parsed.index.unwrap_or(u64::MAX), tool_index));
                        let call = ToolCallDelta {
                            id: Some(block.id.as_deref().unwrap_or("")),
                            index: tool_index,
                            kind: Some("function"),
                            function: FunctionDelta {
                                name: Some(block.name.as_deref().unwrap_or("")),
                                arguments: "",
                            },
                            thought_signature: None,
                        };
                        self.push_delta(None, None, Some(std::slice::from_ref(&call)), &mut out);
                    }
                    _ => {} // redacted_thinking, server tools: nothing OpenAI can carry
                }
            }
            "content_block_delta" => {
                let Some(delta) = &parsed.delta else {
                    return out;
                };
                match delta.kind.as_deref() {
                    Some("text_delta") => {
                        if let Some(text) = delta.text.as_deref().filter(|t| !t.is_empty()) {
                            self.push_delta(Some(text), None, None, &mut out);
                        }
                    }
                    Some("thinking_delta") => {
                        if let Some(text) = delta.thinking.as_deref().filter(|t| !t.is_empty()) {
                            self.push_delta(None, Some(text), None, &mut out);
                        }
                    }
                    Some("input_json_delta") => {
                        let tool_index = self
                            .tool_blocks
                            .iter()
                            .find(|(block, _)| Some(*block) == parsed.index)
                            .map(|(_, tool)| *tool);
                        let fragment = delta.partial_json.as_deref().unwrap_or("");
                        if let (Some(index), false) = (tool_index, fragment.is_empty()) {
                            let call = ToolCallDelta {
                                id: None,
                                index,
                                kind: None,
                                function: FunctionDelta {
                                    name: None,
                                    arguments: fragment,
                                },
                                thought_signature: None,
                            };
                            self.push_delta(
                                None,
                                None,
                                Some(std::slice::from_ref(&call)),
                                &mut out,
                            );
                        }
                    }
                    // The thinking block's signature, which the client must send back with it:
                    // carried on as chat completions' `thinking_blocks`.
                    Some("signature_delta") => {
                        if let Some(sig) = delta.signature.as_deref().filter(|s| !s.is_empty()) {
                            self.push_signature(sig, &mut out);
                        }
                    }
                    _ => {} // citations_delta
                }
            }
            "message_delta" => {
                if let Some(usage) = parsed.usage {
                    usage.apply(&mut self.usage, &mut self.input);
                }
                if let Some(reason) = parsed.delta.as_ref().and_then(|d| d.stop_reason.as_deref()) {
                    self.stop_reason = Some(reason.to_owned());
                    self.push_finish(&mut out);
                }
            }
            "message_stop" => {
                self.push_finish(&mut out);
                if self.include_usage {
                    out.push(TranslateEvent::Sse(self.chunks.usage(&self.usage)));
                }
                out.push(TranslateEvent::Sse(SSE_DONE));
                self.finished = true;
            }
            "error" => {
                self.finished = true;
                let message = parsed
                    .error
                    .as_ref()
                    .map(error_text)
                    .unwrap_or_else(|| event.data.clone());
                out.push(TranslateEvent::UpstreamError(message));
            }
            _ => {} // ping, content_block_stop, and event types added later
        }
        out
    }

    /// The upstream closed the connection; before `message_stop` that is a failure.
    pub fn finish(&mut self) -> Vec<TranslateEvent> {
        if self.finished {
            return Vec::new();
        }
        self.finished = true;
        vec![TranslateEvent::UpstreamError(
            "Anthropic ended the stream before message_stop".into(),
        )]
    }

    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Token usage so far (complete after `message_delta`).
    pub fn usage(&self) -> Usage {
        self.usage
    }

    /// Anthropic's `stop_reason`, once `message_delta` carried it.
    pub fn stop_reason(&self) -> Option<&str> {
        self.stop_reason.as_deref()
    }

    fn push_finish(&mut self, out: &mut Vec<TranslateEvent>) {
        if self.finish_sent {
            return;
        }
        if !self.role_sent {
            self.push_delta(Some(""), None, None, out);
        }
        self.finish_sent = true;
        let reason = finish_reason(self.stop_reason.as_deref());
        out.push(TranslateEvent::Sse(self.chunks.finish(reason)));
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

    fn push_signature(&mut self, signature: &str, out: &mut Vec<TranslateEvent>) {
        let role = (!self.role_sent).then_some("assistant");
        self.role_sent = true;
        let delta = Delta {
            role,
            thinking_signature: Some(signature),
            ..Delta::default()
        };
        out.push(TranslateEvent::Sse(self.chunks.delta(&delta, None)));
    }
}

/// A non-streamed Anthropic `message` as an OpenAI `chat.completion`.
pub fn messages_response(resp: &Value, model_ref: &str) -> Value {
    let mut text = String::new();
    let mut thinking = String::new();
    let mut signed: Vec<Value> = Vec::new();
    let mut calls = Vec::new();
    for block in resp
        .get("content")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
    {
        let field = |key: &str| block.get(key).and_then(Value::as_str).unwrap_or("");
        match field("type") {
            "text" => text.push_str(field("text")),
            "thinking" => {
                thinking.push_str(field("thinking"));
                if !field("signature").is_empty() {
                    signed.push(json!({"type": "thinking", "thinking": field("thinking"),
                        "signature": field("signature")}));
                }
            }
            "tool_use" => {
                let arguments = block
                    .get("input")
                    .map_or_else(|| "{}".to_owned(), Value::to_string);
                calls.push(json!({
                    "id": field("id"),
                    "index": calls.len(),
                    "type": "function",
                    "function": {"name": field("name"), "arguments": arguments},
                }));
            }
            _ => {}
        }
    }
    let mut message = Map::new();
    message.insert("role".into(), "assistant".into());
    message.insert("content".into(), text.into());
    if !thinking.is_empty() {
        message.insert("reasoning".into(), thinking.into());
    }
    if !signed.is_empty() {
        message.insert("thinking_blocks".into(), Value::Array(signed));
    }
    if !calls.is_empty() {
        message.insert("tool_calls".into(), Value::Array(calls));
    }
    let mut usage = Usage::default();
    if let Some(wire) = resp
        .get("usage")
        .and_then(|u| WireUsage::deserialize(u).ok())
    {
        wire.apply(&mut usage, &mut [0; 3]);
    }
    let reason = finish_reason(resp.get("stop_reason").and_then(Value::as_str));
    openai::completion(model_ref, message, reason, &usage)
}

/// The message of an Anthropic error body `{"type":"error","error":{"type","message"}}`, or
/// the text itself.
pub fn error_message(body: &[u8]) -> String {
    match serde_json::from_slice::<Value>(body)
        .ok()
        .as_ref()
        .and_then(|v| v.get("error"))
    {
        Some(error @ Value::Object(_)) => error_text(error),
        Some(Value::String(message)) => message.clone(),
        _ => super::ollama::plain_text_message(body),
    }
}

/// `error.type` of an Anthropic error body (`overloaded_error`, `rate_limit_error`, …).
pub fn error_type(body: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    Some(value.get("error")?.get("type")?.as_str()?.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_round_trip_and_merging() {
        let req = json!({
            "model": "anthropic/claude",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Weather in Tokyo and Paris?"},
                {"role": "user", "content": [{"type": "text", "text": "Also Rome."},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}}]},
                {"role": "assistant", "content": "Checking.", "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Tokyo\"}"}},
                    {"id": "call.2", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}
                ]},
                {"role": "tool", "tool_call_id": "call_1", "content": "21C"},
                {"role": "tool", "tool_call_id": "call.2", "content": [{"type": "text", "text": "18C"}]},
                {"role": "developer", "content": "Answer in French."}
            ],
            "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
            "tool_choice": "required",
            "parallel_tool_calls": false,
            "temperature": 1.5,
            "stop": ["END", " "],
            "max_tokens": 300,
            "stream": true
        });
        let body = messages_request(&req, "claude-x", 4096, &[], true).unwrap();
        assert_eq!(
            body,
            json!({
                "model": "claude-x",
                "max_tokens": 300,
                "system": "Be brief.\n\nAnswer in French.",
                "messages": [
                    {"role": "user", "content": [
                        {"type": "text", "text": "Weather in Tokyo and Paris?"},
                        {"type": "text", "text": "Also Rome."},
                        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBO"}}
                    ]},
                    {"role": "assistant", "content": [
                        {"type": "text", "text": "Checking."},
                        {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Tokyo"}},
                        {"type": "tool_use", "id": "call_2", "name": "get_weather", "input": {"city": "Paris"}}
                    ]},
                    {"role": "user", "content": [
                        {"type": "tool_result", "tool_use_id": "call_1", "content": "21C"},
                        {"type": "tool_result", "tool_use_id": "call_2", "content": [{"type": "text", "text": "18C"}]}
                    ]}
                ],
                "tools": [{"name": "get_weather", "description": "Weather",
                    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}],
                "tool_choice": {"type": "any", "disable_parallel_tool_use": true},
                "temperature": 1.0,
                "stop_sequences": ["END"],
                "stream": true
            })
        );
    }

    #[test]
    fn tool_choice_variants() {
        let with = |choice: Value| {
            let req = json!({"messages": [{"role": "user", "content": "hi"}],
                "tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": choice});
            messages_request(&req, "m", 10, &[], true).unwrap()["tool_choice"].clone()
        };
        assert_eq!(with(json!("auto")), json!({"type": "auto"}));
        assert_eq!(with(json!("none")), json!({"type": "none"}));
        assert_eq!(
            with(json!({"type": "function", "function": {"name": "f"}})),
            json!({"type": "tool", "name": "f"})
        );
        assert_eq!(with(Value::Null), Value::Null);
        // No tools, no tool_choice; default max_tokens; stream absent when not streaming.
        let body = messages_request(
            &json!({"messages": [{"role": "user", "content": "hi"}], "tool_choice": "auto"}),
            "m",
            10,
            &[],
            true,
        )
        .unwrap();
        assert!(body.get("tool_choice").is_none() && body.get("stream").is_none());
        assert_eq!(body["max_tokens"], json!(10));
        assert_eq!(body["tools"], Value::Null, "no tools key without tools");
    }

    #[test]
    fn system_only_conversation_is_refused() {
        let err = messages_request(
            &json!({"messages": [{"role": "system", "content": "x"}]}),
            "m",
            10,
            &[],
            true,
        )
        .unwrap_err();
        assert_eq!(err.status(), 400);
    }

    #[test]
    fn non_stream_response_becomes_chat_completion() {
        let resp = json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
            "content": [
                {"type": "thinking", "thinking": "Tokyo weather.", "signature": "sig"},
                {"type": "text", "text": "Let me check."},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Tokyo"}}
            ],
            "stop_reason": "tool_use", "stop_sequence": null,
            "usage": {"input_tokens": 100, "cache_read_input_tokens": 50, "output_tokens": 20}});
        let out = messages_response(&resp, "anthropic/claude-x");
        assert_eq!(out["object"], json!("chat.completion"));
        assert_eq!(out["model"], json!("anthropic/claude-x"));
        assert_eq!(
            out["choices"][0],
            json!({"index": 0, "finish_reason": "tool_calls", "message": {
                "role": "assistant", "content": "Let me check.", "reasoning": "Tokyo weather.",
                "thinking_blocks": [{"type": "thinking", "thinking": "Tokyo weather.", "signature": "sig"}],
                "tool_calls": [{"id": "toolu_1", "index": 0, "type": "function",
                    "function": {"name": "get_weather", "arguments": "{\"city\":\"Tokyo\"}"}}]}})
        );
        assert_eq!(
            out["usage"],
            json!({"prompt_tokens": 150, "completion_tokens": 20, "total_tokens": 170,
                "prompt_tokens_details": {"cached_tokens": 50}})
        );
    }

    #[test]
    fn error_bodies() {
        let body = br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},"request_id":"req_1"}"#;
        assert_eq!(error_message(body), "Overloaded");
        assert_eq!(error_type(body).as_deref(), Some("overloaded_error"));
        assert_eq!(
            error_message(b"upstream connect error"),
            "upstream connect error"
        );
    }

    #[test]
    fn stop_reasons() {
        assert_eq!(finish_reason(Some("end_turn")), "stop");
        assert_eq!(finish_reason(Some("stop_sequence")), "stop");
        assert_eq!(finish_reason(Some("max_tokens")), "length");
        assert_eq!(finish_reason(Some("tool_use")), "tool_calls");
        assert_eq!(finish_reason(None), "stop");
    }

    #[test]
    fn a_reasoning_effort_becomes_a_thinking_budget_within_max_tokens() {
        let req = |extra: Value| {
            let mut r = json!({"messages": [{"role": "user", "content": "hi"}],
                "temperature": 0.2, "top_p": 0.5, "max_tokens": 20000});
            for (k, v) in extra.as_object().unwrap() {
                r[k] = v.clone();
            }
            messages_request(&r, "claude-x", 4096, &[], true).unwrap()
        };
        let body = req(json!({"reasoning_effort": "medium"}));
        assert_eq!(
            body["thinking"],
            json!({"type": "enabled", "budget_tokens": 8192})
        );
        // Anthropic refuses these with thinking on.
        assert!(body.get("temperature").is_none() && body.get("top_p").is_none());
        // Responses' spelling, capped at half of max_tokens.
        let body = req(json!({"reasoning": {"effort": "high"}, "max_tokens": 6000}));
        assert_eq!(body["thinking"]["budget_tokens"], 3000);
        assert_eq!(
            req(json!({"reasoning_effort": "none"}))["thinking"],
            json!({"type": "disabled"})
        );
        // Too small a cap, or a forced tool: no thinking, sampling kept.
        let body = req(json!({"reasoning_effort": "low", "max_tokens": 1500}));
        assert!(body.get("thinking").is_none());
        assert_eq!(body["temperature"], 0.2);
        let body = req(json!({"reasoning_effort": "low", "tool_choice": "required",
            "tools": [{"type": "function", "function": {"name": "f"}}]}));
        assert!(body.get("thinking").is_none());
        assert!(req(json!({})).get("thinking").is_none());
        // A model not configured as a reasoning model is not asked to think.
        let r = json!({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 20000,
            "reasoning_effort": "high", "temperature": 0.2});
        let body = messages_request(&r, "claude-x", 4096, &[], false).unwrap();
        assert!(body.get("thinking").is_none());
        assert_eq!(body["temperature"], 0.2);
    }

    #[test]
    fn signed_thinking_opens_its_assistant_turn_unchanged() {
        let req = json!({"messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "toolu_1", "type": "function",
                "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
            {"role": "tool", "tool_call_id": "toolu_1", "content": "21C"},
            {"role": "assistant", "content": "It is 21C."},
            {"role": "user", "content": "Thanks"}]});
        let first = vec![
            json!({"type": "thinking", "thinking": "Use the tool.", "signature": "EqQBCg=="}),
            json!({"type": "redacted_thinking", "data": "EmwKAhgB"}),
        ];
        let body =
            messages_request(&req, "claude-x", 4096, &[first.clone(), vec![]], true).unwrap();
        let content = body["messages"][1]["content"].as_array().unwrap();
        assert_eq!(content[..2], first[..]);
        assert_eq!(content[2]["type"], "tool_use");
        assert_eq!(
            body["messages"][3]["content"],
            json!([{"type": "text", "text": "It is 21C."}])
        );

        // A chat completions client returning the `thinking_blocks` it was given.
        let mut chat = req.clone();
        chat["messages"][1]["thinking_blocks"] = json!([
            {"type": "thinking", "thinking": "Use the tool.", "signature": "EqQBCg=="},
            {"type": "thinking", "thinking": "unsigned", "signature": ""}]);
        let body = messages_request(&chat, "claude-x", 4096, &[], true).unwrap();
        let content = body["messages"][1]["content"].as_array().unwrap();
        assert_eq!(content[0], first[0]);
        assert_eq!(content[1]["type"], "tool_use");
    }

    #[test]
    fn thinking_signatures_reach_the_chat_completion() {
        let mut t = AnthropicStreamTranslator::with_writer(
            ChunkWriter::with_id("c".into(), 1, "an/m"),
            false,
        );
        let ev = |data: Value| SseEvent {
            event: data["type"].as_str().map(str::to_owned),
            data: data.to_string(),
        };
        let mut out = Vec::new();
        for data in [
            json!({"type":"message_start","message":{"usage":{"input_tokens":3,"output_tokens":1}}}),
            json!({"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":"","signature":""}}),
            json!({"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"Hmm."}}),
            json!({"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"EqQBCg=="}}),
        ] {
            out.extend(t.feed(&ev(data)));
        }
        let last = match out.last() {
            Some(TranslateEvent::Sse(b)) => String::from_utf8(b.to_vec()).unwrap(),
            other => panic!("{other:?}"),
        };
        let chunk: Value = serde_json::from_str(last.trim().trim_start_matches("data: ")).unwrap();
        assert_eq!(
            chunk["choices"][0]["delta"]["thinking_blocks"],
            json!([{"type": "thinking", "thinking": "", "signature": "EqQBCg=="}])
        );
        let whole = messages_response(
            &json!({"content": [{"type": "thinking", "thinking": "Hmm.", "signature": "EqQBCg=="},
                {"type": "text", "text": "Hi"}], "stop_reason": "end_turn"}),
            "an/m",
        );
        assert_eq!(
            whole["choices"][0]["message"]["thinking_blocks"],
            json!([{"type": "thinking", "thinking": "Hmm.", "signature": "EqQBCg=="}])
        );
    }
}

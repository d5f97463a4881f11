//! OpenAI chat completions ⇄ OpenAI Responses (`POST {base}/responses`), for providers whose
//! `api` is `openai-responses` (SPEC §5, `shared/notes/protocols.md` §2 and §4).
//!
//! Requests are sent stateless (`store: false`), so nothing of a conversation stays with the
//! provider; history travels in `input` every time, as Codex does.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::openai::{self, content_parts, ChunkWriter, Delta, FunctionDelta, Part, ToolCallDelta};
use super::sse::{SseEvent, SSE_DONE};
use super::{TranslateEvent, Usage, WireError};

// ---------------------------------------------------------------------------------------------
// Request

#[derive(Debug, Serialize, PartialEq)]
pub struct ResponsesRequest {
    pub model: String,
    pub input: Vec<InputItem>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<FunctionTool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parallel_tool_calls: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<Reasoning>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    pub store: bool,
    pub stream: bool,
}

#[derive(Debug, Serialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum InputItem {
    Message {
        role: String,
        content: Vec<ContentPart>,
    },
    FunctionCall {
        call_id: String,
        name: String,
        arguments: String,
    },
    FunctionCallOutput {
        call_id: String,
        output: String,
    },
}

#[derive(Debug, Serialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentPart {
    InputText {
        text: String,
    },
    InputImage {
        image_url: String,
        detail: String,
    },
    OutputText {
        text: String,
        annotations: Vec<Value>,
    },
}

#[derive(Debug, Serialize, PartialEq)]
pub struct FunctionTool {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub parameters: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct Reasoning {
    pub effort: String,
}

/// The smallest `max_output_tokens` the Responses API takes.
pub const MIN_OUTPUT_TOKENS: u64 = 16;

/// The Responses request for an OpenAI chat request, to `model_id`, streaming or not.
pub fn responses_request(
    req: &Value,
    model_id: &str,
    stream: bool,
) -> Result<ResponsesRequest, WireError> {
    let Some(messages) = req.get("messages").and_then(Value::as_array) else {
        return Err(WireError::bad_request(
            "Missing required parameter: 'messages'.",
            Some("messages".into()),
        ));
    };
    let mut input = Vec::new();
    let mut instructions: Vec<String> = Vec::new();
    let mut leading = true;
    for (i, message) in messages.iter().enumerate() {
        let param = format!("messages[{i}]");
        let content_param = format!("{param}.content");
        let role = message.get("role").and_then(Value::as_str).unwrap_or("");
        if !matches!(role, "system" | "developer") {
            leading = false;
        }
        match role {
            "system" | "developer" => {
                let text = texts(message.get("content"), &content_param)?;
                if text.trim().is_empty() {
                } else if leading {
                    // The opening system prompt is what `instructions` is for.
                    instructions.push(text);
                } else {
                    input.push(InputItem::Message {
                        role: role.to_owned(),
                        content: vec![ContentPart::InputText { text }],
                    });
                }
            }
            "user" => {
                let content: Vec<ContentPart> = content_parts(message.get("content"), &content_param)?
                    .into_iter()
                    .filter(|p| !matches!(p, Part::Text(t) if t.is_empty()))
                    .map(|p| match p {
                        Part::Text(t) => ContentPart::InputText { text: t.to_owned() },
                        Part::Image(url) => ContentPart::InputImage {
                            image_url: url.to_owned(),
                            detail: "auto".into(),
                        },
                    })
                    .collect();
                if !content.is_empty() {
                    input.push(InputItem::Message {
                        role: "user".into(),
                        content,
                    });
                }
            }
            "assistant" => {
                let text = texts(message.get("content"), &content_param)?;
                if !text.is_empty() {
                    input.push(InputItem::Message {
                        role: "assistant".into(),
                        content: vec![ContentPart::OutputText {
                            text,
                            annotations: Vec::new(),
                        }],
                    });
                }
                for (j, call) in message
                    .get("tool_calls")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .enumerate()
                {
                    let call_param = format!("{param}.tool_calls[{j}]");
                    let field = |path: &str| {
                        call.pointer(path).and_then(Value::as_str).ok_or_else(|| {
                            let name = format!("{call_param}{}", path.replace('/', "."));
                            WireError::bad_request(
                                format!("Missing required parameter: '{name}'."),
                                Some(name),
                            )
                        })
                    };
                    let arguments = match call.pointer("/function/arguments") {
                        Some(Value::String(s)) => s.clone(),
                        Some(v @ Value::Object(_)) => v.to_string(),
                        _ => "{}".to_owned(),
                    };
                    input.push(InputItem::FunctionCall {
                        call_id: field("/id")?.to_owned(),
                        name: field("/function/name")?.to_owned(),
                        arguments,
                    });
                }
            }
            "tool" => {
                let Some(call_id) = message.get("tool_call_id").and_then(Value::as_str) else {
                    return Err(WireError::bad_request(
                        format!("Missing required parameter: '{param}.tool_call_id'."),
                        Some(format!("{param}.tool_call_id")),
                    ));
                };
                input.push(InputItem::FunctionCallOutput {
                    call_id: call_id.to_owned(),
                    output: texts(message.get("content"), &content_param)?,
                });
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
    if input.is_empty() {
        return Err(WireError::bad_request(
            "'messages' has no user or assistant content; send at least one non-empty user message.",
            Some("messages".into()),
        ));
    }
    let tools: Vec<FunctionTool> = req
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(function_tool)
        .collect();
    let tool_choice = if tools.is_empty() {
        None
    } else {
        match req.get("tool_choice") {
            Some(Value::String(s)) => Some(Value::String(s.clone())),
            Some(Value::Object(o)) => o
                .get("function")
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str)
                .map(|name| json!({"type": "function", "name": name})),
            _ => None,
        }
    };
    let effort = req
        .get("reasoning_effort")
        .or_else(|| req.pointer("/reasoning/effort"))
        .and_then(Value::as_str)
        .map(|e| Reasoning {
            effort: e.to_owned(),
        });
    let text = match req.get("response_format") {
        Some(f) if f.get("type").and_then(Value::as_str) == Some("json_schema") => {
            let schema = f.get("json_schema").cloned().unwrap_or_default();
            let mut format = Map::new();
            format.insert("type".into(), "json_schema".into());
            for key in ["name", "schema", "strict", "description"] {
                if let Some(v) = schema.get(key) {
                    format.insert(key.into(), v.clone());
                }
            }
            Some(json!({ "format": format }))
        }
        Some(f) if f.get("type").and_then(Value::as_str) == Some("json_object") => {
            Some(json!({"format": {"type": "json_object"}}))
        }
        _ => None,
    };
    Ok(ResponsesRequest {
        model: model_id.to_owned(),
        input,
        instructions: (!instructions.is_empty()).then(|| instructions.join("\n\n")),
        tools,
        tool_choice,
        parallel_tool_calls: req.get("parallel_tool_calls").and_then(Value::as_bool),
        // The Responses API refuses caps below 16 (`integer_below_min_value`); clients probe
        // with `max_tokens: 1` (Claude Code does at start-up), which must not become a failure.
        max_output_tokens: openai::max_output_tokens(req).map(|n| n.max(MIN_OUTPUT_TOKENS)),
        temperature: req.get("temperature").and_then(Value::as_f64),
        top_p: req.get("top_p").and_then(Value::as_f64),
        reasoning: effort,
        text,
        user: req.get("user").and_then(Value::as_str).map(str::to_owned),
        store: false,
        stream,
    })
}

/// The text of `content`, parts joined; images are refused where only text fits.
fn texts(content: Option<&Value>, param: &str) -> Result<String, WireError> {
    let mut out = String::new();
    for part in content_parts(content, param)? {
        match part {
            Part::Text(t) => out.push_str(t),
            Part::Image(_) => {
                return Err(WireError::bad_request(
                    format!("'{param}' has an image where the Responses API takes text only. Send images in a user message."),
                    Some(param.to_owned()),
                ))
            }
        }
    }
    Ok(out)
}

fn function_tool(tool: &Value) -> Option<FunctionTool> {
    if tool
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("function")
        != "function"
    {
        return None;
    }
    let function = tool.get("function")?;
    Some(FunctionTool {
        kind: "function",
        name: function.get("name")?.as_str()?.to_owned(),
        description: function
            .get("description")
            .and_then(Value::as_str)
            .map(str::to_owned),
        parameters: function
            .get("parameters")
            .filter(|p| p.is_object())
            .cloned()
            .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
        strict: function.get("strict").and_then(Value::as_bool),
    })
}

// ---------------------------------------------------------------------------------------------
// Response

/// The response object (whole, or inside `response.*` stream events).
#[derive(Debug, Deserialize, Default)]
pub struct ResponseObject {
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub output: Vec<OutputItem>,
    #[serde(default)]
    pub usage: Option<WireUsage>,
    #[serde(default)]
    pub error: Option<Value>,
    #[serde(default)]
    pub incomplete_details: Option<IncompleteDetails>,
}

#[derive(Debug, Deserialize, Default)]
pub struct IncompleteDetails {
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Debug, Deserialize, Default, Clone)]
pub struct OutputItem {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub content: Vec<OutputContent>,
    #[serde(default)]
    pub summary: Vec<OutputContent>,
    #[serde(default)]
    pub call_id: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub arguments: Option<String>,
}

#[derive(Debug, Deserialize, Default, Clone)]
pub struct OutputContent {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub refusal: Option<String>,
}

#[derive(Debug, Deserialize, Default, Clone, Copy)]
pub struct WireUsage {
    #[serde(default)]
    pub input_tokens: u64,
    #[serde(default)]
    pub output_tokens: u64,
    #[serde(default)]
    pub input_tokens_details: Option<InputDetails>,
}

#[derive(Debug, Deserialize, Default, Clone, Copy)]
pub struct InputDetails {
    #[serde(default)]
    pub cached_tokens: u64,
}

impl WireUsage {
    fn usage(&self) -> Usage {
        Usage {
            prompt_tokens: self.input_tokens,
            completion_tokens: self.output_tokens,
            cached_tokens: self.input_tokens_details.map_or(0, |d| d.cached_tokens),
        }
    }
}

/// `finish_reason` for a final response status, or the failure it reports.
fn finish_reason(resp: &ResponseObject, has_calls: bool) -> Result<&'static str, String> {
    match resp.status.as_deref() {
        Some("failed" | "cancelled") => {
            Err(resp.error.as_ref().map(error_text).unwrap_or_else(|| {
                format!(
                    "the response {}",
                    resp.status.as_deref().unwrap_or("failed")
                )
            }))
        }
        Some("incomplete") => Ok(
            match resp
                .incomplete_details
                .as_ref()
                .and_then(|d| d.reason.as_deref())
            {
                Some("content_filter") => "content_filter",
                _ => "length",
            },
        ),
        _ if has_calls => Ok("tool_calls"),
        _ => Ok("stop"),
    }
}

/// A non-streamed response object as an OpenAI `chat.completion`; `Err` for a failed response.
pub fn chat_completion(resp: &ResponseObject, model_ref: &str) -> Result<Value, String> {
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut calls = Vec::new();
    for item in &resp.output {
        match item.kind.as_str() {
            "message" => {
                for c in &item.content {
                    if let Some(t) = c.text.as_deref().or(c.refusal.as_deref()) {
                        text.push_str(t);
                    }
                }
            }
            "reasoning" => {
                for s in &item.summary {
                    reasoning.push_str(s.text.as_deref().unwrap_or(""));
                }
            }
            "function_call" => calls.push(json!({
                "id": item.call_id.clone().unwrap_or_else(openai::new_call_id),
                "index": calls.len(),
                "type": "function",
                "function": {"name": item.name.as_deref().unwrap_or(""),
                             "arguments": item.arguments.as_deref().unwrap_or("{}")},
            })),
            _ => {}
        }
    }
    let reason = finish_reason(resp, !calls.is_empty())?;
    let mut message = Map::new();
    message.insert("role".into(), "assistant".into());
    message.insert("content".into(), text.into());
    if !reasoning.is_empty() {
        message.insert("reasoning".into(), reasoning.into());
    }
    if !calls.is_empty() {
        message.insert("tool_calls".into(), Value::Array(calls));
    }
    let usage = resp.usage.map(|u| u.usage()).unwrap_or_default();
    Ok(openai::completion(model_ref, message, reason, &usage))
}

fn error_text(error: &Value) -> String {
    let message = error
        .get("message")
        .and_then(Value::as_str)
        .filter(|m| !m.trim().is_empty());
    let code = error
        .get("code")
        .or_else(|| error.get("type"))
        .and_then(Value::as_str);
    match (message, code) {
        (Some(m), Some(c)) => format!("{m} ({c})"),
        (Some(m), None) => m.to_owned(),
        (None, Some(c)) => c.to_owned(),
        (None, None) => format!("the Responses API reported an error without a message: {error}"),
    }
}

/// One stream event's payload (only what the translator reads).
#[derive(Deserialize)]
struct StreamEvent {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    delta: Option<String>,
    #[serde(default)]
    item_id: Option<String>,
    #[serde(default)]
    output_index: Option<u64>,
    #[serde(default)]
    item: Option<OutputItem>,
    #[serde(default)]
    response: Option<ResponseObject>,
    /// `error` events: nested in real streams, flat in the SDK type.
    #[serde(default)]
    error: Option<Value>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    code: Option<String>,
}

/// Turns a Responses SSE stream into OpenAI `chat.completion.chunk` events, one event at a
/// time. Dispatches on the payload's `type` (as Codex does), falling back to the `event:` line.
#[derive(Debug)]
pub struct ResponsesStreamTranslator {
    chunks: ChunkWriter,
    include_usage: bool,
    role_sent: bool,
    finished: bool,
    /// Function-call item id (or output index) → (tool call index, argument bytes sent).
    calls: HashMap<String, (usize, usize)>,
}

impl ResponsesStreamTranslator {
    pub fn new(model_ref: &str, include_usage: bool) -> ResponsesStreamTranslator {
        ResponsesStreamTranslator::with_writer(ChunkWriter::new(model_ref), include_usage)
    }

    pub fn with_writer(chunks: ChunkWriter, include_usage: bool) -> ResponsesStreamTranslator {
        ResponsesStreamTranslator {
            chunks,
            include_usage,
            role_sent: false,
            finished: false,
            calls: HashMap::new(),
        }
    }

    fn call_key(item_id: Option<&str>, output_index: Option<u64>) -> String {
        match (item_id, output_index) {
            (Some(id), _) if !id.is_empty() => id.to_owned(),
            (_, Some(i)) => format!("#{i}"),
            _ => String::new(),
        }
    }

    /// Translate one SSE event.
    pub fn feed(&mut self, event: &SseEvent) -> Vec<TranslateEvent> {
        let mut out = Vec::new();
        if self.finished {
            return out;
        }
        let parsed: StreamEvent = match serde_json::from_str(&event.data) {
            Ok(p) => p,
            Err(err) => {
                self.finished = true;
                let shown: String = event.data.chars().take(200).collect();
                out.push(TranslateEvent::UpstreamError(format!(
                    "the Responses API sent a stream event that is not JSON ({err}): {shown}"
                )));
                return out;
            }
        };
        let kind = if parsed.kind.is_empty() {
            event.event.as_deref().unwrap_or("")
        } else {
            parsed.kind.as_str()
        };
        match kind {
            "response.output_text.delta" | "response.refusal.delta" => {
                if let Some(d) = parsed.delta.as_deref().filter(|d| !d.is_empty()) {
                    self.push_delta(Some(d), None, None, &mut out);
                }
            }
            "response.reasoning_summary_text.delta" | "response.reasoning_text.delta" => {
                if let Some(d) = parsed.delta.as_deref().filter(|d| !d.is_empty()) {
                    self.push_delta(None, Some(d), None, &mut out);
                }
            }
            "response.output_item.added" => {
                if let Some(item) = parsed.item.as_ref().filter(|i| i.kind == "function_call") {
                    let key = Self::call_key(item.id.as_deref(), parsed.output_index);
                    self.start_call(key, item, &mut out);
                }
            }
            "response.function_call_arguments.delta" => {
                let key = Self::call_key(parsed.item_id.as_deref(), parsed.output_index);
                if let (Some(&(index, sent)), Some(d)) = (
                    self.calls.get(&key),
                    parsed.delta.as_deref().filter(|d| !d.is_empty()),
                ) {
                    self.calls
                        .insert(key, (index, sent.saturating_add(d.len())));
                    self.push_arguments(index, d, &mut out);
                }
            }
            "response.output_item.done" => {
                // Codex reads whole items from here: arguments no delta carried are sent now.
                if let Some(item) = parsed.item.as_ref().filter(|i| i.kind == "function_call") {
                    let key = Self::call_key(item.id.as_deref(), parsed.output_index);
                    if !self.calls.contains_key(&key) {
                        self.start_call(key.clone(), item, &mut out);
                    }
                    let args = item.arguments.as_deref().unwrap_or("");
                    if let Some(&(index, sent)) = self.calls.get(&key) {
                        if let Some(rest) = args.get(sent..).filter(|r| !r.is_empty()) {
                            self.push_arguments(index, rest, &mut out);
                        }
                        self.calls.insert(key, (index, args.len().max(sent)));
                    }
                }
            }
            "response.completed" | "response.incomplete" | "response.failed" => {
                let resp = parsed.response.unwrap_or_default();
                match finish_reason(&resp, !self.calls.is_empty()) {
                    Ok(reason) => {
                        let usage = resp.usage.map(|u| u.usage()).unwrap_or_default();
                        self.push_finish(reason, &usage, &mut out);
                    }
                    Err(message) => {
                        self.finished = true;
                        out.push(TranslateEvent::UpstreamError(message));
                    }
                }
            }
            "error" => {
                self.finished = true;
                let message = match (&parsed.error, &parsed.message) {
                    (Some(e), _) => error_text(e),
                    (None, Some(m)) => match &parsed.code {
                        Some(c) => format!("{m} ({c})"),
                        None => m.clone(),
                    },
                    (None, None) => event.data.clone(),
                };
                out.push(TranslateEvent::UpstreamError(message));
            }
            // `created`/`in_progress` write nothing: a `response.failed` right after them (how
            // context_length_exceeded arrives) must still be able to fall over to the next
            // model. The role goes out with the first content instead.
            _ => {} // created, content_part.*, output_text.done, reasoning items, new types
        }
        out
    }

    /// The upstream closed; before a terminal event that is a failure (Codex retries it too).
    pub fn finish(&mut self) -> Vec<TranslateEvent> {
        if self.finished {
            return Vec::new();
        }
        self.finished = true;
        vec![TranslateEvent::UpstreamError(
            "the Responses stream closed before response.completed".into(),
        )]
    }

    pub fn is_finished(&self) -> bool {
        self.finished
    }

    fn start_call(&mut self, key: String, item: &OutputItem, out: &mut Vec<TranslateEvent>) {
        let index = self.calls.len();
        let id = item.call_id.clone().unwrap_or_else(openai::new_call_id);
        let args = item.arguments.as_deref().unwrap_or("");
        self.calls.insert(key, (index, args.len()));
        let delta = ToolCallDelta {
            id: Some(&id),
            index,
            kind: Some("function"),
            function: FunctionDelta {
                name: Some(item.name.as_deref().unwrap_or("")),
                arguments: args,
            },
            thought_signature: None,
        };
        self.push_delta(None, None, Some(std::slice::from_ref(&delta)), out);
    }

    fn push_arguments(&mut self, index: usize, fragment: &str, out: &mut Vec<TranslateEvent>) {
        let delta = ToolCallDelta {
            id: None,
            index,
            kind: None,
            function: FunctionDelta {
                name: None,
                arguments: fragment,
            },
            thought_signature: None,
        };
        self.push_delta(None, None, Some(std::slice::from_ref(&delta)), out);
    }

    fn push_finish(&mut self, reason: &str, usage: &Usage, out: &mut Vec<TranslateEvent>) {
        if !self.role_sent {
            self.push_delta(Some(""), None, None, out);
        }
        out.push(TranslateEvent::Sse(self.chunks.finish(reason)));
        if self.include_usage {
            out.push(TranslateEvent::Sse(self.chunks.usage(usage)));
        }
        out.push(TranslateEvent::Sse(SSE_DONE));
        self.finished = true;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::wire::sse::SseParser;

    fn fixture(name: &str) -> String {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/openai-responses")
            .join(name);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    fn run(sse: &str) -> Vec<TranslateEvent> {
        let mut parser = SseParser::new();
        let mut t = ResponsesStreamTranslator::with_writer(
            ChunkWriter::with_id("chatcmpl-1".into(), 1, "oai/gpt-5"),
            true,
        );
        let mut out = Vec::new();
        for ev in parser.push(sse.as_bytes()) {
            out.extend(t.feed(&ev));
        }
        out.extend(parser.finish().map(|ev| t.feed(&ev)).unwrap_or_default());
        out.extend(t.finish());
        out
    }

    fn payloads(events: &[TranslateEvent]) -> Vec<Value> {
        events
            .iter()
            .filter_map(|e| match e {
                TranslateEvent::Sse(b) => std::str::from_utf8(b)
                    .ok()?
                    .strip_prefix("data: ")?
                    .trim_end()
                    .parse::<Value>()
                    .ok(),
                TranslateEvent::UpstreamError(_) => None,
            })
            .collect()
    }

    #[test]
    fn chat_request_becomes_a_stateless_responses_request() {
        let req = json!({
            "messages": [
                {"role": "system", "content": "You report weather."},
                {"role": "user", "content": "Weather in New York City?"},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_5dp", "type": "function", "function": {"name": "get_weather", "arguments": "{ \"location\": \"New York City, USA\" }"}}]},
                {"role": "tool", "tool_call_id": "call_5dp", "content": "\"Sunny\""}
            ],
            "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather",
                "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "additionalProperties": false}, "strict": false}}],
            "tool_choice": "auto", "max_tokens": 500, "reasoning_effort": "medium"
        });
        let body = serde_json::to_value(responses_request(&req, "gpt-5", true).unwrap()).unwrap();
        assert_eq!(
            body,
            json!({
                "model": "gpt-5",
                "instructions": "You report weather.",
                "input": [
                    {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Weather in New York City?"}]},
                    {"type": "function_call", "call_id": "call_5dp", "name": "get_weather", "arguments": "{ \"location\": \"New York City, USA\" }"},
                    {"type": "function_call_output", "call_id": "call_5dp", "output": "\"Sunny\""}
                ],
                "tools": [{"type": "function", "name": "get_weather", "description": "Weather",
                    "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "additionalProperties": false}, "strict": false}],
                "tool_choice": "auto",
                "max_output_tokens": 500,
                "reasoning": {"effort": "medium"},
                "store": false,
                "stream": true
            })
        );
    }

    #[test]
    fn fixture_text_stream_becomes_chat_chunks() {
        let events = run(&fixture("stream.sse"));
        let p = payloads(&events);
        let text: String = p
            .iter()
            .filter_map(|v| v["choices"][0]["delta"]["content"].as_str())
            .collect();
        assert!(
            text.starts_with("Current weather in New York City"),
            "{text}"
        );
        assert_eq!(p[0]["choices"][0]["delta"]["role"], "assistant");
        let finish = p
            .iter()
            .find(|v| v["choices"][0]["finish_reason"].is_string())
            .unwrap();
        assert_eq!(finish["choices"][0]["finish_reason"], "stop");
        assert!(p.last().unwrap()["usage"]["total_tokens"].as_u64().unwrap() > 0);
        assert_eq!(events.last(), Some(&TranslateEvent::Sse(SSE_DONE)));
    }

    #[test]
    fn fixture_function_call_stream_becomes_tool_call_deltas() {
        let events = run(&fixture("stream-function-call.sse"));
        let p = payloads(&events);
        let calls: Vec<&Value> = p
            .iter()
            .filter_map(|v| v["choices"][0]["delta"]["tool_calls"].get(0))
            .collect();
        assert_eq!(calls[0]["id"], "call_5dp5Uj0Loqn1YcyIpqSq6sLX");
        assert_eq!(calls[0]["function"]["name"], "get_weather");
        let args: String = calls
            .iter()
            .filter_map(|c| c["function"]["arguments"].as_str())
            .collect();
        assert_eq!(args, "{ \"location\": \"New York City, USA\" }");
        let finish = p
            .iter()
            .find(|v| v["choices"][0]["finish_reason"].is_string())
            .unwrap();
        assert_eq!(finish["choices"][0]["finish_reason"], "tool_calls");
    }

    #[test]
    fn fixture_error_stream_is_an_upstream_error() {
        let events = run(&fixture("stream-error.sse"));
        match events.last() {
            Some(TranslateEvent::UpstreamError(m)) => {
                assert!(
                    m.contains("exceeded your current quota") && m.contains("insufficient_quota"),
                    "{m}"
                )
            }
            other => panic!("{other:?}"),
        }
        // A stream that just stops is a failure too.
        let cut: String = fixture("stream.sse")
            .lines()
            .take(12)
            .collect::<Vec<_>>()
            .join("\n");
        assert!(matches!(
            run(&cut).last(),
            Some(TranslateEvent::UpstreamError(_))
        ));
    }

    #[test]
    fn fixture_response_becomes_a_chat_completion() {
        let resp: ResponseObject = serde_json::from_str(&fixture("response.json")).unwrap();
        let out = chat_completion(&resp, "oai/gpt-4o-mini").unwrap();
        assert_eq!(out["choices"][0]["finish_reason"], "stop");
        assert!(!out["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .is_empty());
        assert_eq!(out["usage"]["prompt_tokens"], 14);
        assert_eq!(out["usage"]["completion_tokens"], 50);
    }
}

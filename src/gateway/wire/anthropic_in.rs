//! Inbound Anthropic Messages (`POST /v1/messages`, `/v1/messages/count_tokens`): the typed
//! request, its translation into the IR, and the answer written the way Anthropic writes it
//! (a `message` body, or the exact event sequence `message_start`, `content_block_start`/
//! `_delta`/`_stop`, `message_delta`, `message_stop`, with `ping`, each with its `event:` line).

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::ir::{
    signed_call_id, split_call_id, ChatRequest, ChatResponse, ImageSource, Message, Part,
    Reasoning, Role, SameApiExtras, Sampling, StopReason, StreamEvent, Tool, ToolChoice,
};
use super::typed::{self, Count};
use super::{Usage, WireError};

/// `POST /v1/messages` body (`MessageCreateParams`). Fields the IR does not model (`top_k`,
/// `metadata`, and in `extra` `service_tier`, `container`, `mcp_servers`, …) go only to a
/// provider that speaks Messages itself.
#[derive(Debug, Deserialize)]
pub struct MessagesRequest {
    pub model: String,
    pub max_tokens: Count,
    pub messages: Vec<InMessage>,
    #[serde(default)]
    pub system: Option<System>,
    #[serde(default)]
    pub tools: Option<Vec<InTool>>,
    #[serde(default)]
    pub tool_choice: Option<InToolChoice>,
    #[serde(default)]
    pub stop_sequences: Option<Vec<String>>,
    #[serde(default)]
    pub temperature: Option<f64>,
    #[serde(default)]
    pub top_p: Option<f64>,
    #[serde(default)]
    pub top_k: Option<Count>,
    #[serde(default)]
    pub stream: Option<bool>,
    #[serde(default)]
    pub metadata: Option<Metadata>,
    #[serde(default)]
    pub thinking: Option<ThinkingParam>,
    /// Every field not named above, as sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `POST /v1/messages/count_tokens` body: the create body without `max_tokens` and sampling.
#[derive(Debug, Deserialize)]
pub struct CountTokensRequest {
    pub model: String,
    pub messages: Vec<InMessage>,
    #[serde(default)]
    pub system: Option<System>,
    #[serde(default)]
    pub tools: Option<Vec<InTool>>,
}

#[derive(Debug, Deserialize, Serialize)]
pub struct Metadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Thinking {
    Enabled { budget_tokens: Count },
    Disabled,
    Adaptive,
}

/// `thinking`, checked, and as sent (for an Anthropic provider, which gets it unchanged —
/// `display` and what comes next included).
#[derive(Debug)]
pub struct ThinkingParam {
    pub mode: Thinking,
    pub raw: Value,
}

impl<'de> Deserialize<'de> for ThinkingParam {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<ThinkingParam, D::Error> {
        let raw = Value::deserialize(d)?;
        let mode = Thinking::deserialize(&raw).map_err(serde::de::Error::custom)?;
        Ok(ThinkingParam { mode, raw })
    }
}

#[derive(Debug)]
pub enum System {
    Text(String),
    Blocks(Vec<TextBlock>),
}

#[derive(Debug, Deserialize)]
pub struct TextBlock {
    pub text: String,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum InRole {
    User,
    Assistant,
    /// Accepted by the current SDK type for a beta feature; treated as system text.
    System,
}

#[derive(Debug, Deserialize)]
pub struct InMessage {
    pub role: InRole,
    pub content: InContent,
}

#[derive(Debug)]
pub enum InContent {
    Text(String),
    Blocks(Vec<InBlock>),
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum InBlock {
    Text {
        text: String,
    },
    Image {
        source: InImageSource,
    },
    ToolUse {
        id: String,
        name: String,
        input: Value,
    },
    ToolResult {
        tool_use_id: String,
        #[serde(default)]
        content: Option<ToolResultContent>,
        #[serde(default)]
        is_error: Option<bool>,
    },
    Thinking {
        thinking: String,
        #[serde(default)]
        signature: Option<String>,
    },
    RedactedThinking {
        #[serde(default)]
        data: Option<String>,
    },
    /// `document`, server-tool blocks and what comes next.
    #[serde(other)]
    Other,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum InImageSource {
    Base64 { media_type: String, data: String },
    Url { url: String },
}

#[derive(Debug)]
pub enum ToolResultContent {
    Text(String),
    Blocks(Vec<InBlock>),
}

#[derive(Debug, Deserialize)]
pub struct InTool {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    /// Custom tools have one; server tools (`web_search_20250305`, …) have a dated `type`.
    #[serde(default)]
    pub input_schema: Option<Value>,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// The tool's other fields (`max_uses`, `allowed_domains`, `cache_control`, …).
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

impl InTool {
    fn is_server_tool(&self) -> bool {
        self.kind.as_deref().is_some_and(|k| k != "custom")
    }

    /// The tool as the client sent it.
    fn raw(&self) -> Value {
        let mut out = self.rest.clone();
        out.insert("name".into(), self.name.as_str().into());
        if let Some(kind) = &self.kind {
            out.insert("type".into(), kind.as_str().into());
        }
        if let Some(d) = &self.description {
            out.insert("description".into(), d.as_str().into());
        }
        if let Some(schema) = &self.input_schema {
            out.insert("input_schema".into(), schema.clone());
        }
        Value::Object(out)
    }
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum InToolChoice {
    Auto {},
    Any {},
    None {},
    Tool { name: String },
}

/// Parses and checks a `/v1/messages` body.
pub fn parse(body: &[u8]) -> Result<MessagesRequest, WireError> {
    let req: MessagesRequest = typed::from_slice(body)?;
    if req.messages.is_empty() {
        return Err(WireError::bad_request(
            "messages: at least one message is required",
            Some("messages".into()),
        ));
    }
    Ok(req)
}

/// Parses and checks a `/v1/messages/count_tokens` body.
pub fn parse_count(body: &[u8]) -> Result<CountTokensRequest, WireError> {
    typed::from_slice(body)
}

fn system_texts(system: &Option<System>) -> Vec<String> {
    match system {
        None => Vec::new(),
        Some(System::Text(t)) if t.is_empty() => Vec::new(),
        Some(System::Text(t)) => vec![t.clone()],
        Some(System::Blocks(blocks)) => blocks
            .iter()
            .map(|b| b.text.clone())
            .filter(|t| !t.is_empty())
            .collect(),
    }
}

fn block_to_part(block: &InBlock, param: &str) -> Result<Option<Part>, WireError> {
    Ok(match block {
        InBlock::Text { text } => Some(Part::Text { text: text.clone() }),
        InBlock::Image { source } => Some(Part::Image {
            source: match source {
                InImageSource::Base64 { media_type, data } => ImageSource::Base64 {
                    media_type: media_type.clone(),
                    data: data.clone(),
                },
                InImageSource::Url { url } => ImageSource::Url { url: url.clone() },
            },
        }),
        InBlock::ToolUse { id, name, input } => {
            if !input.is_object() {
                return Err(WireError::bad_request(
                    format!("{param}.input: Input should be an object"),
                    Some(format!("{param}.input")),
                ));
            }
            let (id, thought_signature) = split_call_id(id);
            Some(Part::ToolCall {
                id,
                name: name.clone(),
                arguments: input.to_string(),
                thought_signature,
            })
        }
        InBlock::ToolResult {
            tool_use_id,
            content,
            is_error,
        } => {
            let content = match content {
                None => String::new(),
                Some(ToolResultContent::Text(t)) => t.clone(),
                Some(ToolResultContent::Blocks(blocks)) => {
                    let mut text = String::new();
                    for b in blocks {
                        if let InBlock::Text { text: t } = b {
                            if !text.is_empty() {
                                text.push('\n');
                            }
                            text.push_str(t);
                        }
                    }
                    text
                }
            };
            Some(Part::ToolResult {
                call_id: split_call_id(tool_use_id).0,
                content,
                is_error: is_error.unwrap_or(false),
            })
        }
        InBlock::Thinking {
            thinking,
            signature,
        } => Some(Part::Reasoning {
            text: thinking.clone(),
            signature: signature.clone(),
        }),
        // Opaque to every other model; dropping it loses nothing they could read (an
        // Anthropic provider gets it through `SameApiExtras`).
        InBlock::RedactedThinking { .. } => None,
        InBlock::Other => {
            return Err(WireError::bad_request(
                format!("{param}: this content block type cannot be forwarded by openclawd; send text, image, tool_use, tool_result or thinking blocks."),
                Some(format!("{param}.type")),
            ))
        }
    })
}

/// A signed `thinking` or a `redacted_thinking` block as sent, for an Anthropic provider.
fn signed_block(block: &InBlock) -> Option<Value> {
    match block {
        InBlock::Thinking {
            thinking,
            signature: Some(signature),
        } if !signature.is_empty() => {
            Some(json!({"type": "thinking", "thinking": thinking, "signature": signature}))
        }
        InBlock::RedactedThinking { data: Some(data) } => {
            Some(json!({"type": "redacted_thinking", "data": data}))
        }
        _ => None,
    }
}

/// The messages in the IR, and the signed thinking blocks of each IR message (by position).
fn messages_to_ir(
    messages: &[InMessage],
    system: &mut Vec<String>,
) -> Result<(Vec<Message>, Vec<Vec<Value>>), WireError> {
    let mut out: Vec<Message> = Vec::new();
    let mut signed: Vec<Vec<Value>> = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let param = format!("messages.{i}.content");
        let mut signed_here: Vec<Value> = Vec::new();
        let parts: Vec<Part> = match &m.content {
            InContent::Text(t) => vec![Part::Text { text: t.clone() }],
            InContent::Blocks(blocks) => {
                let mut parts = Vec::new();
                for (j, b) in blocks.iter().enumerate() {
                    if m.role == InRole::Assistant {
                        signed_here.extend(signed_block(b));
                    }
                    if let Some(p) = block_to_part(b, &format!("{param}.{j}"))? {
                        parts.push(p);
                    }
                }
                parts
            }
        };
        let role = match m.role {
            InRole::User => Role::User,
            InRole::Assistant => Role::Assistant,
            InRole::System => {
                system.extend(parts.into_iter().filter_map(|p| match p {
                    Part::Text { text } => Some(text),
                    _ => None,
                }));
                continue;
            }
        };
        // The API merges consecutive turns of one role; so do we.
        match (out.last_mut(), signed.last_mut()) {
            (Some(last), Some(last_signed)) if last.role == role => {
                last.parts.extend(parts);
                last_signed.extend(signed_here);
            }
            _ => {
                out.push(Message { role, parts });
                signed.push(signed_here);
            }
        }
    }
    Ok((out, signed))
}

/// Custom tools in the IR. Server tools (`web_search_20250305`, `bash_20250124`, …) run on
/// Anthropic's side: they are not IR tools but same-API extras (see [`MessagesRequest::to_ir`]).
fn tools_to_ir(tools: &Option<Vec<InTool>>) -> Result<Vec<Tool>, WireError> {
    let mut out = Vec::new();
    for (i, t) in tools.iter().flatten().enumerate() {
        if t.is_server_tool() {
            continue;
        }
        let Some(schema) = &t.input_schema else {
            return Err(WireError::bad_request(
                format!("tools.{i}.input_schema: Field required"),
                Some(format!("tools.{i}.input_schema")),
            ));
        };
        out.push(Tool {
            name: t.name.clone(),
            description: t.description.clone(),
            parameters: schema.clone(),
        });
    }
    Ok(out)
}

impl MessagesRequest {
    /// What an `anthropic-messages` provider gets beyond the IR: the fields not modelled here,
    /// and those modelled but not in the IR.
    fn same_api_extras(&self) -> Map<String, Value> {
        let mut extras = self.extra.clone();
        if let Some(top_k) = self.top_k {
            extras.insert("top_k".into(), top_k.0.into());
        }
        if let Some(metadata) = &self.metadata {
            if let Ok(value) = serde_json::to_value(metadata) {
                extras.insert("metadata".into(), value);
            }
        }
        if let Some(thinking) = &self.thinking {
            extras.insert("thinking".into(), thinking.raw.clone());
        }
        extras
    }

    /// The request in the IR.
    pub fn to_ir(&self) -> Result<ChatRequest, WireError> {
        let mut system = system_texts(&self.system);
        let (messages, signed) = messages_to_ir(&self.messages, &mut system)?;
        let signed_thinking: Vec<Vec<Value>> = messages
            .iter()
            .zip(signed)
            .filter(|(m, _)| m.role == Role::Assistant)
            .map(|(_, blocks)| blocks)
            .collect();
        // Server tools run only on Anthropic's side: they go to an Anthropic provider as sent,
        // and `api` refuses the request when the chain has none (a model that was never
        // offered the tool must not look as if it had been).
        let server_tools: Vec<Value> = self
            .tools
            .iter()
            .flatten()
            .filter(|t| t.is_server_tool())
            .map(InTool::raw)
            .collect();
        Ok(ChatRequest {
            model: Some(self.model.clone()).filter(|m| !m.is_empty()),
            system,
            messages,
            tools: tools_to_ir(&self.tools)?,
            tool_choice: self.tool_choice.as_ref().map(|c| match c {
                InToolChoice::Auto {} => ToolChoice::Auto,
                InToolChoice::Any {} => ToolChoice::Required,
                InToolChoice::None {} => ToolChoice::None,
                InToolChoice::Tool { name } => ToolChoice::Function(name.clone()),
            }),
            sampling: Sampling {
                max_tokens: Some(self.max_tokens.0),
                temperature: self.temperature,
                top_p: self.top_p,
                stop: self.stop_sequences.clone().unwrap_or_default(),
            },
            reasoning: match self.thinking.as_ref().map(|t| &t.mode) {
                Some(Thinking::Enabled { budget_tokens }) => Some(Reasoning {
                    effort: Some(effort_for_budget(budget_tokens.0).into()),
                    budget_tokens: Some(budget_tokens.0),
                }),
                // Off is an effort every provider has a word for (Ollama `think: false`, a
                // zero Gemini budget, `reasoning_effort: "none"`).
                Some(Thinking::Disabled) => Some(Reasoning {
                    effort: Some("none".into()),
                    budget_tokens: Some(0),
                }),
                // The model decides: other providers' default is the same thing.
                Some(Thinking::Adaptive) | None => None,
            },
            stream: self.stream.unwrap_or(false),
            extras: SameApiExtras::AnthropicMessages {
                fields: self.same_api_extras(),
                beta: None,
                signed_thinking,
                server_tools,
            },
        })
    }
}

/// An OpenAI-style effort for an Anthropic thinking budget (≥1024 by Anthropic's rules).
fn effort_for_budget(budget: u64) -> &'static str {
    match budget {
        0..=4095 => "low",
        4096..=16383 => "medium",
        _ => "high",
    }
}

impl CountTokensRequest {
    /// An *estimate* of the prompt's input tokens (see [`estimate_input_tokens`]).
    pub fn estimate(&self) -> Result<u64, WireError> {
        let mut system = system_texts(&self.system);
        let (messages, _) = messages_to_ir(&self.messages, &mut system)?;
        Ok(estimate_input_tokens(
            &system,
            &messages,
            &tools_to_ir(&self.tools)?,
        ))
    }
}

/// An *estimate* of a prompt's input tokens: about four characters of text (system, messages,
/// tool definitions) per token, plus a few per turn and a flat cost per image. openclawd does
/// not have each model's tokenizer; clients use this for context accounting, where a close
/// estimate is what they would fall back to anyway.
pub fn estimate_input_tokens(system: &[String], messages: &[Message], tools: &[Tool]) -> u64 {
    let mut chars: usize = system.iter().map(String::len).sum();
    let mut extra: u64 = 0;
    for m in messages {
        extra += 4;
        for p in &m.parts {
            match p {
                Part::Text { text } | Part::Reasoning { text, .. } => chars += text.len(),
                Part::ToolCall {
                    name, arguments, ..
                } => chars += name.len() + arguments.len(),
                Part::ToolResult { content, .. } => chars += content.len(),
                Part::Image { .. } => extra += 1600,
            }
        }
    }
    for t in tools {
        chars += t.name.len()
            + t.description.as_ref().map_or(0, String::len)
            + t.parameters.to_string().len();
    }
    (chars as u64).div_ceil(4) + extra
}

/// Anthropic's `stop_reason` for an IR stop.
pub fn stop_reason(stop: StopReason) -> &'static str {
    match stop {
        StopReason::Stop => "end_turn",
        StopReason::Length => "max_tokens",
        StopReason::ToolCalls => "tool_use",
        StopReason::ContentFilter => "refusal",
    }
}

fn usage_value(u: &Usage) -> Value {
    // `input_tokens` excludes cache reads in Anthropic's accounting.
    json!({
        "input_tokens": u.prompt_tokens.saturating_sub(u.cached_tokens),
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": u.cached_tokens,
        "output_tokens": u.completion_tokens,
    })
}

/// A fresh message id, `msg_` and 24 random alphanumerics.
pub fn new_message_id() -> String {
    format!(
        "msg_{}",
        super::openai::new_call_id().trim_start_matches("call_")
    )
}

fn tool_input(arguments: &str) -> Value {
    match serde_json::from_str::<Value>(arguments) {
        Ok(v @ Value::Object(_)) => v,
        // A model that wrote broken JSON: keep its text where the client can see it.
        _ if arguments.trim().is_empty() => json!({}),
        _ => json!({ "_raw_arguments": arguments }),
    }
}

/// A whole answer as Anthropic's `message` body.
pub fn message_body(resp: &ChatResponse, id: &str, model: &str) -> Value {
    let content: Vec<Value> = resp
        .parts
        .iter()
        .filter_map(|p| match p {
            Part::Text { text } => Some(json!({"type": "text", "text": text})),
            Part::Reasoning { text, signature } => Some(
                json!({"type": "thinking", "thinking": text, "signature": signature.as_deref().unwrap_or("")}),
            ),
            Part::ToolCall {
                id,
                name,
                arguments,
                thought_signature,
            } => Some(json!({"type": "tool_use", "id": signed_call_id(id, thought_signature.as_deref()),
                "name": name, "input": tool_input(arguments)})),
            Part::Image { .. } | Part::ToolResult { .. } => None,
        })
        .collect();
    json!({
        "id": id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason(resp.stop),
        "stop_sequence": null,
        "usage": usage_value(&resp.usage),
    })
}

/// One SSE event as Anthropic frames it: `event: <name>\ndata: <json>\n\n`.
fn push_event(out: &mut Vec<u8>, name: &str, data: &Value) {
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\ndata: ");
    // Straight into the buffer: `Value`'s `Display` goes through `fmt` and a String.
    let _ = serde_json::to_writer(&mut *out, data);
    out.extend_from_slice(b"\n\n");
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Block {
    Text,
    Thinking,
    /// IR tool-call index.
    Tool(usize),
}

/// Writes IR events as Anthropic's stream.
#[derive(Debug)]
pub struct MessagesStreamWriter {
    id: String,
    model: String,
    started: bool,
    ended: bool,
    open: Option<(usize, Block)>,
    next_index: usize,
    /// IR tool index → content block index.
    tools: Vec<(usize, usize)>,
    usage: Usage,
    /// `message_start`'s `input_tokens`: the upstream's count only arrives at the end, so the
    /// estimate stands in; `message_delta` carries the real one.
    input_estimate: u64,
}

impl MessagesStreamWriter {
    pub fn new(id: String, model: String) -> MessagesStreamWriter {
        MessagesStreamWriter {
            id,
            model,
            started: false,
            ended: false,
            open: None,
            next_index: 0,
            tools: Vec::new(),
            usage: Usage::default(),
            input_estimate: 0,
        }
    }

    /// Reports `tokens` (an estimate of the prompt) as `message_start`'s `input_tokens`.
    pub fn with_input_estimate(mut self, tokens: u64) -> MessagesStreamWriter {
        self.input_estimate = tokens;
        self
    }

    fn start(&mut self, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        push_event(
            out,
            "message_start",
            &json!({"type": "message_start", "message": {"id": self.id, "type": "message",
                "role": "assistant", "model": self.model, "content": [], "stop_reason": null,
                "stop_sequence": null, "usage": {"input_tokens": self.input_estimate, "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0, "output_tokens": 1}}}),
        );
    }

    fn close(&mut self, out: &mut Vec<u8>) {
        if let Some((index, _)) = self.open.take() {
            push_event(
                out,
                "content_block_stop",
                &json!({"type": "content_block_stop", "index": index}),
            );
        }
    }

    /// Makes `kind` the open block (closing another), opening it with `content_block`.
    fn open(&mut self, kind: Block, content_block: Value, out: &mut Vec<u8>) -> usize {
        if let Some((index, open)) = self.open {
            if open == kind {
                return index;
            }
        }
        self.close(out);
        let index = self.next_index;
        self.next_index += 1;
        self.open = Some((index, kind));
        push_event(
            out,
            "content_block_start",
            &json!({"type": "content_block_start", "index": index, "content_block": content_block}),
        );
        if index == 0 {
            push_event(out, "ping", &json!({"type": "ping"}));
        }
        index
    }

    /// Appends the bytes for `event` to `out`.
    pub fn write(&mut self, event: &StreamEvent, out: &mut Vec<u8>) {
        if self.ended {
            return;
        }
        if !matches!(event, StreamEvent::Error { .. }) {
            self.start(out);
        }
        match event {
            StreamEvent::Start { .. } => {}
            StreamEvent::TextDelta { text } => {
                let index = self.open(Block::Text, json!({"type": "text", "text": ""}), out);
                push_event(
                    out,
                    "content_block_delta",
                    &json!({"type": "content_block_delta", "index": index,
                        "delta": {"type": "text_delta", "text": text}}),
                );
            }
            StreamEvent::ReasoningDelta { text } => {
                let index = self.open(
                    Block::Thinking,
                    json!({"type": "thinking", "thinking": "", "signature": ""}),
                    out,
                );
                push_event(
                    out,
                    "content_block_delta",
                    &json!({"type": "content_block_delta", "index": index,
                        "delta": {"type": "thinking_delta", "thinking": text}}),
                );
            }
            StreamEvent::ReasoningSignature { signature } => {
                // Sent once, just before its thinking block stops (as Anthropic does).
                let index = self.open(
                    Block::Thinking,
                    json!({"type": "thinking", "thinking": "", "signature": ""}),
                    out,
                );
                push_event(
                    out,
                    "content_block_delta",
                    &json!({"type": "content_block_delta", "index": index,
                        "delta": {"type": "signature_delta", "signature": signature}}),
                );
                self.close(out);
            }
            StreamEvent::ToolCallStart {
                index,
                id,
                name,
                thought_signature,
            } => {
                let id = signed_call_id(id, thought_signature.as_deref());
                let block = self.open(
                    Block::Tool(*index),
                    json!({"type": "tool_use", "id": id, "name": name, "input": {}}),
                    out,
                );
                self.tools.push((*index, block));
                push_event(
                    out,
                    "content_block_delta",
                    &json!({"type": "content_block_delta", "index": block,
                        "delta": {"type": "input_json_delta", "partial_json": ""}}),
                );
            }
            StreamEvent::ToolCallArgs { index, fragment } => {
                if let Some(&(_, block)) = self.tools.iter().find(|(i, _)| i == index) {
                    push_event(
                        out,
                        "content_block_delta",
                        &json!({"type": "content_block_delta", "index": block,
                            "delta": {"type": "input_json_delta", "partial_json": fragment}}),
                    );
                }
            }
            StreamEvent::Usage(u) => self.usage = *u,
            StreamEvent::Stop { reason } => {
                self.close(out);
                self.ended = true;
                let mut usage = usage_value(&self.usage);
                if let Some(obj) = usage.as_object_mut() {
                    obj.remove("cache_creation_input_tokens");
                }
                push_event(
                    out,
                    "message_delta",
                    &json!({"type": "message_delta",
                        "delta": {"stop_reason": stop_reason(*reason), "stop_sequence": null},
                        "usage": usage}),
                );
                push_event(out, "message_stop", &json!({"type": "message_stop"}));
            }
            StreamEvent::Error { message } => {
                self.ended = true;
                push_event(
                    out,
                    "error",
                    &json!({"type": "error", "error": {"type": "api_error", "message": message}}),
                );
            }
        }
    }
}

/// `{"input_tokens": n}`, the count_tokens answer.
pub fn count_body(input_tokens: u64) -> Value {
    let mut m = Map::new();
    m.insert("input_tokens".into(), input_tokens.into());
    Value::Object(m)
}

typed::string_or_seq!(
    System,
    Text,
    Blocks,
    TextBlock,
    "a string or an array of text blocks"
);
typed::string_or_seq!(
    InContent,
    Text,
    Blocks,
    InBlock,
    "a string or an array of content blocks"
);
typed::string_or_seq!(
    ToolResultContent,
    Text,
    Blocks,
    InBlock,
    "a string or an array of text/image blocks"
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::wire::sse::SseParser;

    const FIXTURE_REQUEST: &str =
        include_str!("../../../tests/fixtures/anthropic/messages-request.json");

    #[test]
    fn the_recorded_tool_loop_request_becomes_the_ir() {
        let req = parse(FIXTURE_REQUEST.as_bytes()).unwrap();
        let ir = req.to_ir().unwrap();
        assert_eq!(ir.messages.len(), 3);
        assert!(matches!(
            ir.messages[1].parts.last(),
            Some(Part::ToolCall { .. })
        ));
        assert!(matches!(ir.messages[2].parts[0], Part::ToolResult { .. }));
        assert_eq!(ir.tools.len(), 1);
        let openai = ir.to_openai();
        assert_eq!(openai["messages"][2]["role"], "tool");
    }

    #[test]
    fn fields_the_ir_does_not_model_are_kept_for_a_messages_provider() {
        let req = parse(
            br#"{"model":"m","max_tokens":10,"messages":[{"role":"user","content":"hi"}],
                "top_k":5,"metadata":{"user_id":"u1"},"service_tier":"auto",
                "container":"c_1","mcp_servers":[{"type":"url","url":"https://x","name":"x"}]}"#,
        )
        .unwrap();
        let ir = req.to_ir().unwrap();
        assert_eq!(
            ir.extras,
            SameApiExtras::AnthropicMessages {
                fields: json!({"top_k": 5, "metadata": {"user_id": "u1"}, "service_tier": "auto",
                    "container": "c_1",
                    "mcp_servers": [{"type": "url", "url": "https://x", "name": "x"}]})
                .as_object()
                .cloned()
                .unwrap(),
                beta: None,
                signed_thinking: vec![],
                server_tools: vec![],
            }
        );
        assert_eq!(ir.sampling.max_tokens, Some(10));
    }

    fn param(body: &str) -> Option<String> {
        match parse(body.as_bytes()).unwrap_err() {
            WireError::BadRequest { param, .. } => param,
        }
    }

    #[test]
    fn each_mistyped_field_is_a_400_naming_it() {
        let ok = r#"{"model":"m","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}"#;
        assert!(parse(ok.as_bytes()).is_ok());
        let with = |field: &str, value: &str| {
            let mut v: Value = serde_json::from_str(ok).unwrap();
            v[field] = serde_json::from_str(value).unwrap();
            v.to_string()
        };
        for (field, value) in [
            ("model", "5"),
            ("max_tokens", "\"ten\""),
            ("messages", "\"hi\""),
            ("system", "5"),
            ("tools", "{}"),
            ("tool_choice", "\"auto\""),
            ("stop_sequences", "\"END\""),
            ("temperature", "\"hot\""),
            ("top_p", "true"),
            ("top_k", "-1"),
            ("stream", "\"yes\""),
            ("metadata", "\"x\""),
            ("thinking", "true"),
        ] {
            assert_eq!(
                param(&with(field, value)).as_deref(),
                Some(field),
                "{field}: {value}"
            );
        }
        assert_eq!(
            param(r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#).as_deref(),
            Some("max_tokens")
        );
        assert_eq!(
            param(r#"{"model":"m","max_tokens":1,"messages":[{"role":"user","content":5}]}"#)
                .as_deref(),
            Some("messages[0].content")
        );
        assert_eq!(
            param(r#"{"model":"m","max_tokens":1,"messages":[{"role":"robot","content":"x"}]}"#)
                .as_deref(),
            Some("messages[0].role")
        );
    }

    fn stream_of(events: &[StreamEvent]) -> Vec<(String, Value)> {
        let mut w = MessagesStreamWriter::new("msg_1".into(), "ollama/m".into());
        let mut bytes = Vec::new();
        for e in events {
            w.write(e, &mut bytes);
        }
        let mut p = SseParser::new();
        p.push(&bytes)
            .into_iter()
            .map(|e| {
                let data: Value = serde_json::from_str(&e.data).unwrap();
                let name = e.event.expect("every event has an event: line");
                assert_eq!(data["type"], name.as_str());
                (name, data)
            })
            .collect()
    }

    #[test]
    fn a_text_then_tool_answer_streams_in_anthropics_exact_order() {
        let events = stream_of(&[
            StreamEvent::Start {
                id: String::new(),
                model: String::new(),
            },
            StreamEvent::TextDelta { text: "Let".into() },
            StreamEvent::TextDelta { text: " me".into() },
            StreamEvent::ToolCallStart {
                index: 0,
                id: "call_1".into(),
                name: "get_weather".into(),
                thought_signature: None,
            },
            StreamEvent::ToolCallArgs {
                index: 0,
                fragment: "{\"city\":\"Paris\"}".into(),
            },
            StreamEvent::Usage(Usage {
                prompt_tokens: 20,
                completion_tokens: 9,
                cached_tokens: 0,
            }),
            StreamEvent::Stop {
                reason: StopReason::ToolCalls,
            },
        ]);
        let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "message_start",
                "content_block_start",
                "ping",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        assert_eq!(events[6].1["content_block"]["type"], "tool_use");
        assert_eq!(events[6].1["index"], 1);
        assert_eq!(
            events[8].1["delta"],
            json!({"type": "input_json_delta", "partial_json": "{\"city\":\"Paris\"}"})
        );
        assert_eq!(events[10].1["delta"]["stop_reason"], "tool_use");
        assert_eq!(events[10].1["usage"]["output_tokens"], 9);
    }

    #[test]
    fn a_failure_mid_stream_is_an_error_event_and_nothing_after() {
        let events = stream_of(&[
            StreamEvent::TextDelta { text: "Hi".into() },
            StreamEvent::Error {
                message: "runner crashed".into(),
            },
            StreamEvent::Stop {
                reason: StopReason::Stop,
            },
        ]);
        let (name, data) = events.last().unwrap();
        assert_eq!(name, "error");
        assert_eq!(data["error"]["message"], "runner crashed");
    }

    #[test]
    fn server_tools_are_left_out_and_custom_tools_kept() {
        let req = parse(
            br#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"hi"}],
            "tools":[{"type":"web_search_20250305","name":"web_search","max_uses":5},
                     {"name":"Read","input_schema":{"type":"object"}},
                     {"type":"custom","name":"Edit","input_schema":{"type":"object"}}]}"#,
        )
        .unwrap();
        let names: Vec<String> = req
            .to_ir()
            .unwrap()
            .tools
            .into_iter()
            .map(|t| t.name)
            .collect();
        assert_eq!(names, ["Read", "Edit"]);
    }

    #[test]
    fn count_tokens_is_an_estimate_close_to_the_documented_example() {
        let req = parse_count(
            br#"{"model":"claude-sonnet-4-5","system":"You are a scientist","messages":[{"role":"user","content":"Hello, Claude"}]}"#,
        )
        .unwrap();
        let n = req.estimate().unwrap();
        // Anthropic's tokenizer says 14 for this; ours is an estimate.
        assert!((5..=20).contains(&n), "{n}");
    }

    fn ir_of(body: Value) -> ChatRequest {
        parse(body.to_string().as_bytes()).unwrap().to_ir().unwrap()
    }

    #[test]
    fn thinking_reaches_the_ir_and_goes_unchanged_to_a_messages_provider() {
        let base = |thinking: Value| {
            json!({"model": "m", "max_tokens": 20000, "thinking": thinking,
                "messages": [{"role": "user", "content": "hi"}]})
        };
        let ir = ir_of(base(json!({"type": "enabled", "budget_tokens": 10000})));
        assert_eq!(
            ir.reasoning,
            Some(Reasoning {
                effort: Some("medium".into()),
                budget_tokens: Some(10000)
            })
        );
        assert_eq!(ir.to_openai()["reasoning_effort"], "medium");
        let mut body = Map::new();
        body.insert(
            "thinking".into(),
            json!({"type": "enabled", "budget_tokens": 8192}),
        );
        ir.extras.add_to_anthropic_messages(&mut body);
        assert_eq!(
            body["thinking"],
            json!({"type": "enabled", "budget_tokens": 10000}),
            "the client's own setting, exact"
        );

        let ir = ir_of(base(json!({"type": "disabled"})));
        assert_eq!(ir.to_openai()["reasoning_effort"], "none");
        let ir = ir_of(base(json!({"type": "adaptive", "display": "summarized"})));
        assert_eq!(ir.reasoning, None);
        let mut body = Map::new();
        ir.extras.add_to_anthropic_messages(&mut body);
        assert_eq!(
            body["thinking"],
            json!({"type": "adaptive", "display": "summarized"})
        );
        assert_eq!(
            param(
                r#"{"model":"m","max_tokens":10,"messages":[{"role":"user","content":"hi"}],"thinking":{"type":"enabled"}}"#
            ),
            Some("thinking.budget_tokens".into())
        );
    }

    #[test]
    fn signed_thinking_is_kept_for_a_messages_provider_and_left_out_for_others() {
        let ir = ir_of(json!({"model": "m", "max_tokens": 100, "messages": [
            {"role": "user", "content": "Weather?"},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "Use the tool.", "signature": "EqQBCg=="},
                {"type": "redacted_thinking", "data": "EmwKAhgB"},
                {"type": "tool_use", "id": "toolu_1", "name": "w", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "21C"}]},
            {"role": "assistant", "content": [{"type": "thinking", "thinking": "unsigned", "signature": ""},
                {"type": "text", "text": "21C."}]},
            {"role": "user", "content": "ok"}]}));
        assert_eq!(
            ir.extras.anthropic_signed_thinking(),
            &[
                vec![
                    json!({"type": "thinking", "thinking": "Use the tool.", "signature": "EqQBCg=="}),
                    json!({"type": "redacted_thinking", "data": "EmwKAhgB"})
                ],
                vec![]
            ]
        );
        let openai = ir.to_openai().to_string();
        assert!(
            !openai.contains("Use the tool.") && !openai.contains("unsigned"),
            "{openai}"
        );
    }

    #[test]
    fn server_tools_are_not_ir_tools_but_go_to_a_messages_provider_as_sent() {
        let ir = ir_of(json!({"model": "m", "max_tokens": 100,
            "messages": [{"role": "user", "content": "news?"}],
            "tools": [{"name": "get_weather", "input_schema": {"type": "object"}},
                {"type": "web_search_20250305", "name": "web_search", "max_uses": 5}]}));
        assert_eq!(ir.tools.len(), 1);
        assert_eq!(ir.extras.server_tool_types(), ["web_search_20250305"]);
        let mut body = Map::new();
        body.insert("tools".into(), json!([{"name": "get_weather"}]));
        ir.extras.add_to_anthropic_messages(&mut body);
        assert_eq!(
            body["tools"],
            json!([{"name": "get_weather"},
                {"type": "web_search_20250305", "name": "web_search", "max_uses": 5}])
        );
    }

    #[test]
    fn a_signature_streams_as_a_signature_delta_and_a_gemini_one_rides_in_the_tool_id() {
        let mut w = MessagesStreamWriter::new("msg_1".into(), "an/m".into());
        let mut out = Vec::new();
        for e in [
            StreamEvent::Start {
                id: String::new(),
                model: String::new(),
            },
            StreamEvent::ReasoningDelta {
                text: "Hmm.".into(),
            },
            StreamEvent::ReasoningSignature {
                signature: "EqQBCg==".into(),
            },
            StreamEvent::ToolCallStart {
                index: 0,
                id: "call_1".into(),
                name: "w".into(),
                thought_signature: Some("CikB+/8=".into()),
            },
            StreamEvent::Stop {
                reason: StopReason::ToolCalls,
            },
        ] {
            w.write(&e, &mut out);
        }
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains(r#""delta":{"signature":"EqQBCg==","type":"signature_delta"}"#)
                || text.contains(r#""delta":{"type":"signature_delta","signature":"EqQBCg=="}"#),
            "{text}"
        );
        let id = signed_call_id("call_1", Some("CikB+/8="));
        assert!(text.contains(&id), "{text}");
        // The client sends it back: the IR has the plain id and the signature again.
        let ir = ir_of(json!({"model": "m", "max_tokens": 100, "messages": [
            {"role": "user", "content": "w?"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": id, "name": "w", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": id, "content": "ok"}]}]}));
        assert_eq!(
            ir.messages[1].parts[0],
            Part::ToolCall {
                id: "call_1".into(),
                name: "w".into(),
                arguments: "{}".into(),
                thought_signature: Some("CikB+/8=".into())
            }
        );
        assert!(
            matches!(&ir.messages[2].parts[0], Part::ToolResult { call_id, .. } if call_id == "call_1")
        );
    }
}

//! The gateway's one internal representation of a chat: a request ([`ChatRequest`]), a whole
//! answer ([`ChatResponse`]) and a streamed answer ([`StreamEvent`]s).
//!
//! Each inbound API is one translator into [`ChatRequest`] and one out of [`StreamEvent`] /
//! [`ChatResponse`]; each provider is one translator out to its wire and one back into events.
//! OpenAI chat completions is the exception on both ends: when the client and the provider both
//! speak it, the request is forwarded as sent (zero-copy), never through this type.
//!
//! Conventions:
//! * tool-call arguments are a JSON *text* (as OpenAI and Responses carry them); translators to
//!   wires that want an object (Anthropic, Gemini, Ollama) parse it there;
//! * tool results live in the `user` turn that answers the call (as Anthropic and Gemini put
//!   them); OpenAI's separate `tool` messages are split out by [`ChatRequest::to_openai`];
//! * a stream is `Start`, then any number of deltas (`Text`, `Reasoning` and its
//!   `ReasoningSignature`, `ToolCallStart` followed by its `ToolCallArgs`), then `Usage` (if
//!   known) and `Stop`; or `Error` at any point, after which nothing follows;
//! * earlier reasoning is never sent to a provider in the chat body: signed Anthropic thinking
//!   reaches an Anthropic provider through [`SameApiExtras`], and is dropped for the others;
//! * signatures cross chat completions where others carry them there: Anthropic's as
//!   `thinking_blocks`, Gemini's on the tool call as `extra_content.google.thought_signature`
//!   (Google's own OpenAI-compatible place); Anthropic and Responses clients get Gemini's inside
//!   the tool call id ([`signed_call_id`]), which they always send back.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::openai::{ChunkWriter, Delta, FunctionDelta, ToolCallDelta};
use super::sse::{SseEvent, SSE_DONE};
use super::{TranslateEvent, Usage};

/// One chat request, whatever API it came in through.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    /// The model asked for; `None` (or empty) means the configured primary.
    pub model: Option<String>,
    /// System / developer instructions, in order. Wires with one system string join them with
    /// a blank line.
    #[serde(default)]
    pub system: Vec<String>,
    pub messages: Vec<Message>,
    #[serde(default)]
    pub tools: Vec<Tool>,
    pub tool_choice: Option<ToolChoice>,
    #[serde(default)]
    pub sampling: Sampling,
    /// How hard a reasoning model should think, if the client said.
    pub reasoning: Option<Reasoning>,
    pub stream: bool,
    /// What the client sent that this type does not model, for a provider that speaks the
    /// client's API itself.
    #[serde(skip)]
    pub extras: SameApiExtras,
}

/// The fields of an inbound request that the IR does not model (Anthropic's `metadata`,
/// `top_k`, `service_tier`; Responses' `truncation`, `text`, `include`, …), tagged with the API
/// they belong to. Only a provider speaking that same API can read them: it adds them to its
/// body ([`SameApiExtras::merge_into`]); every other provider ignores them.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum SameApiExtras {
    /// Chat completions (forwarded as sent, unknown fields included) or nothing to add.
    #[default]
    None,
    /// From `POST /v1/messages`, for `anthropic-messages` providers; `beta` is the client's
    /// `anthropic-beta` header, which some of the fields need (`context_management`, …).
    AnthropicMessages {
        fields: Map<String, Value>,
        beta: Option<String>,
        /// The signed `thinking` and `redacted_thinking` blocks of each assistant message of
        /// the IR, in order, as sent: valid only for an Anthropic model, which wants them back
        /// unchanged.
        signed_thinking: Vec<Vec<Value>>,
        /// Server tools (`web_search_20250305`, `bash_20250124`, …) as sent: only Anthropic
        /// runs them.
        server_tools: Vec<Value>,
    },
    /// From `POST /v1/responses`, for `openai-responses` providers; `server_tools` are the
    /// built-in tools (`web_search`, `file_search`, …) only OpenAI runs.
    OpenAiResponses {
        fields: Map<String, Value>,
        server_tools: Vec<Value>,
    },
}

impl SameApiExtras {
    /// Adds the client's extras to an `anthropic-messages` body, if the client spoke Messages:
    /// its fields (never replacing openclawd's), its server tools after the function tools,
    /// and its own `thinking`, which replaces the one openclawd derived from it (the same
    /// setting, but exact: budget, `adaptive`, `display`).
    pub fn add_to_anthropic_messages(&self, body: &mut Map<String, Value>) {
        if let SameApiExtras::AnthropicMessages {
            fields,
            server_tools,
            ..
        } = self
        {
            if let Some(thinking) = fields.get("thinking") {
                body.insert("thinking".into(), thinking.clone());
            }
            add_missing(fields, body);
            add_tools(server_tools, body);
        }
    }

    /// The signed thinking blocks of each assistant message, for an `anthropic-messages`
    /// provider (empty unless the client spoke Messages).
    pub fn anthropic_signed_thinking(&self) -> &[Vec<Value>] {
        match self {
            SameApiExtras::AnthropicMessages {
                signed_thinking, ..
            } => signed_thinking,
            _ => &[],
        }
    }

    /// The `type`s of the server tools the client offered: tools only a provider speaking the
    /// client's own API can run.
    pub fn server_tool_types(&self) -> Vec<&str> {
        let tools = match self {
            SameApiExtras::AnthropicMessages { server_tools, .. }
            | SameApiExtras::OpenAiResponses { server_tools, .. } => server_tools,
            SameApiExtras::None => return Vec::new(),
        };
        tools
            .iter()
            .map(|t| t.get("type").and_then(Value::as_str).unwrap_or("?"))
            .collect()
    }

    /// Leaves the server tools out (no model of the chain could run them).
    pub fn drop_server_tools(&mut self) {
        if let SameApiExtras::AnthropicMessages { server_tools, .. }
        | SameApiExtras::OpenAiResponses { server_tools, .. } = self
        {
            server_tools.clear();
        }
    }

    /// The client's `anthropic-beta` flags, if it spoke Messages and sent any.
    pub fn anthropic_beta(&self) -> Option<&str> {
        match self {
            SameApiExtras::AnthropicMessages { beta, .. } => beta.as_deref(),
            _ => None,
        }
    }

    /// Adds the client's extras to an `openai-responses` body, if the client spoke Responses:
    /// its fields (never replacing openclawd's), its built-in tools after the function tools,
    /// and its own `reasoning`, which replaces the one openclawd wrote from its effort (the
    /// same setting, with `summary`).
    pub fn add_to_openai_responses(&self, body: &mut Map<String, Value>) {
        if let SameApiExtras::OpenAiResponses {
            fields,
            server_tools,
        } = self
        {
            if let Some(reasoning) = fields.get("reasoning") {
                body.insert("reasoning".into(), reasoning.clone());
            }
            add_missing(fields, body);
            add_tools(server_tools, body);
        }
    }
}

/// Appends `tools` to `body.tools` (created if absent).
fn add_tools(tools: &[Value], body: &mut Map<String, Value>) {
    if tools.is_empty() {
        return;
    }
    let entry = body
        .entry("tools")
        .or_insert_with(|| Value::Array(Vec::new()));
    if let Value::Array(list) = entry {
        list.extend(tools.iter().cloned());
    }
}

/// Adds `fields` to `body`, never replacing one the body already has: what openclawd sets
/// (model, stream, messages/input, max tokens, …) always wins over the client's extras.
fn add_missing(fields: &Map<String, Value>, body: &mut Map<String, Value>) {
    for (name, value) in fields {
        if !body.contains_key(name) {
            body.insert(name.clone(), value.clone());
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    User,
    Assistant,
}

/// One turn of the conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub role: Role,
    pub parts: Vec<Part>,
}

/// One piece of a turn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Part {
    Text {
        text: String,
    },
    Image {
        source: ImageSource,
    },
    /// The assistant asked for a tool. `arguments` is a JSON text (`"{}"` when empty).
    /// `thought_signature` is Gemini's, which its thinking models require back on the call it
    /// came with (Gemini 3 refuses the next turn without it).
    ToolCall {
        id: String,
        name: String,
        arguments: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        thought_signature: Option<String>,
    },
    /// The answer to the tool call `call_id`, in the following user turn.
    ToolResult {
        call_id: String,
        content: String,
        #[serde(default)]
        is_error: bool,
    },
    /// The model's visible reasoning; `signature` is Anthropic's, to be sent back unchanged.
    Reasoning {
        text: String,
        signature: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ImageSource {
    /// An `https:` URL or a `data:` URL.
    Url {
        url: String,
    },
    Base64 {
        media_type: String,
        data: String,
    },
}

impl ImageSource {
    /// The image as one URL (a `data:` URL for inline bytes), as OpenAI and Responses take it.
    pub fn to_url(&self) -> String {
        match self {
            ImageSource::Url { url } => url.clone(),
            ImageSource::Base64 { media_type, data } => format!("data:{media_type};base64,{data}"),
        }
    }

    /// `Base64` for a base64 `data:` URL, else `Url`.
    pub fn from_url(url: &str) -> ImageSource {
        match super::openai::parse_data_url(url) {
            Some((media_type, data)) => ImageSource::Base64 {
                media_type: media_type.to_owned(),
                data: data.to_owned(),
            },
            None => ImageSource::Url {
                url: url.to_owned(),
            },
        }
    }
}

/// A function the model may call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tool {
    pub name: String,
    pub description: Option<String>,
    /// JSON Schema of the arguments object (as the client sent it).
    pub parameters: Value,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", content = "name", rename_all = "snake_case")]
pub enum ToolChoice {
    Auto,
    None,
    /// Some tool must be called (Anthropic `any`, OpenAI `required`).
    Required,
    /// This tool must be called.
    Function(String),
}

/// Sampling options every wire has.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Sampling {
    pub max_tokens: Option<u64>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    #[serde(default)]
    pub stop: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reasoning {
    /// `minimal` … `high` as OpenAI spells it, when the client gave an effort.
    pub effort: Option<String>,
    /// A token budget, when the client gave one (Anthropic `thinking.budget_tokens`).
    pub budget_tokens: Option<u64>,
}

/// Why the answer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// A natural end or a stop sequence.
    Stop,
    /// The token cap (or the context window) was reached.
    Length,
    /// The model called tools and waits for their results.
    ToolCalls,
    /// The answer was withheld or cut by a safety filter.
    ContentFilter,
}

impl StopReason {
    /// From OpenAI's `finish_reason` (unknown values count as `stop`).
    pub fn from_openai(finish_reason: &str) -> StopReason {
        match finish_reason {
            "length" => StopReason::Length,
            "tool_calls" | "function_call" => StopReason::ToolCalls,
            "content_filter" => StopReason::ContentFilter,
            _ => StopReason::Stop,
        }
    }

    pub fn to_openai(self) -> &'static str {
        match self {
            StopReason::Stop => "stop",
            StopReason::Length => "length",
            StopReason::ToolCalls => "tool_calls",
            StopReason::ContentFilter => "content_filter",
        }
    }
}

/// One whole (non-streamed) answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatResponse {
    /// The upstream's id for the answer (may be empty); inbound translators mint their own.
    pub id: String,
    /// The model that answered, as the gateway reports it (its model ref).
    pub model: String,
    /// `Reasoning`, `Text` and `ToolCall` parts, in order.
    pub parts: Vec<Part>,
    pub stop: StopReason,
    pub usage: Usage,
}

/// One piece of a streamed answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StreamEvent {
    /// First event: the answer's id (may be empty) and the model that answers.
    Start {
        id: String,
        model: String,
    },
    TextDelta {
        text: String,
    },
    ReasoningDelta {
        text: String,
    },
    /// The signature of the reasoning just streamed (Anthropic's `signature_delta`), which the
    /// client must send back unchanged with that reasoning.
    ReasoningSignature {
        signature: String,
    },
    /// A new tool call; `index` counts tool calls from 0 within this answer.
    ToolCallStart {
        index: usize,
        id: String,
        name: String,
        /// Gemini's `thoughtSignature` of this call, if it has one.
        thought_signature: Option<String>,
    },
    /// More of tool call `index`'s arguments (a fragment of a JSON text).
    ToolCallArgs {
        index: usize,
        fragment: String,
    },
    /// Token counts so far (the last one wins).
    Usage(Usage),
    /// The answer is complete.
    Stop {
        reason: StopReason,
    },
    /// The upstream failed mid-answer; nothing follows.
    Error {
        message: String,
    },
}

// ---------------------------------------------------------------------------------------------
// OpenAI chat completions ⇄ IR
// ---------------------------------------------------------------------------------------------

impl ChatRequest {
    /// This request as an OpenAI chat completions body (what the existing providers take).
    /// Streams ask for usage (`stream_options.include_usage`) so inbound APIs that report it can.
    pub fn to_openai(&self) -> Value {
        let mut messages: Vec<Value> = Vec::new();
        if !self.system.is_empty() {
            messages.push(json!({"role": "system", "content": self.system.join("\n\n")}));
        }
        for message in &self.messages {
            match message.role {
                Role::User => user_to_openai(&message.parts, &mut messages),
                Role::Assistant => messages.push(assistant_to_openai(&message.parts)),
            }
        }
        let mut out = Map::new();
        if let Some(model) = &self.model {
            out.insert("model".into(), model.as_str().into());
        }
        out.insert("messages".into(), Value::Array(messages));
        if !self.tools.is_empty() {
            let tools = self
                .tools
                .iter()
                .map(|t| {
                    let mut function = Map::new();
                    function.insert("name".into(), t.name.as_str().into());
                    if let Some(d) = &t.description {
                        function.insert("description".into(), d.as_str().into());
                    }
                    function.insert("parameters".into(), t.parameters.clone());
                    json!({"type": "function", "function": function})
                })
                .collect();
            out.insert("tools".into(), Value::Array(tools));
        }
        if let Some(choice) = &self.tool_choice {
            let v = match choice {
                ToolChoice::Auto => json!("auto"),
                ToolChoice::None => json!("none"),
                ToolChoice::Required => json!("required"),
                ToolChoice::Function(name) => {
                    json!({"type": "function", "function": {"name": name}})
                }
            };
            out.insert("tool_choice".into(), v);
        }
        let s = &self.sampling;
        if let Some(n) = s.max_tokens {
            out.insert("max_tokens".into(), n.into());
        }
        if let Some(t) = s.temperature {
            out.insert("temperature".into(), t.into());
        }
        if let Some(p) = s.top_p {
            out.insert("top_p".into(), p.into());
        }
        if !s.stop.is_empty() {
            out.insert("stop".into(), s.stop.clone().into());
        }
        if let Some(effort) = self.reasoning.as_ref().and_then(|r| r.effort.as_deref()) {
            out.insert("reasoning_effort".into(), effort.into());
        }
        out.insert("stream".into(), self.stream.into());
        if self.stream {
            out.insert("stream_options".into(), json!({"include_usage": true}));
        }
        Value::Object(out)
    }
}

fn user_to_openai(parts: &[Part], out: &mut Vec<Value>) {
    let mut content: Vec<Value> = Vec::new();
    let flush = |content: &mut Vec<Value>, out: &mut Vec<Value>| {
        if content.is_empty() {
            return;
        }
        let only_text = content.len() == 1 && content[0]["type"] == "text";
        let value = if only_text {
            content[0]["text"].clone()
        } else {
            Value::Array(std::mem::take(content))
        };
        content.clear();
        out.push(json!({"role": "user", "content": value}));
    };
    for part in parts {
        match part {
            Part::Text { text } => content.push(json!({"type": "text", "text": text})),
            Part::Image { source } => {
                content.push(json!({"type": "image_url", "image_url": {"url": source.to_url()}}))
            }
            Part::ToolResult {
                call_id,
                content: result,
                ..
            } => {
                flush(&mut content, out);
                out.push(json!({"role": "tool", "tool_call_id": call_id, "content": result}));
            }
            // Only assistants call tools; a client that puts one in a user turn gets it as
            // text rather than silently lost.
            Part::ToolCall {
                name, arguments, ..
            } => content
                .push(json!({"type": "text", "text": format!("[tool call {name}({arguments})]")})),
            // Reasoning is the model's own, not something the user said: never sent as text.
            Part::Reasoning { .. } => {}
        }
    }
    flush(&mut content, out);
}

fn assistant_to_openai(parts: &[Part]) -> Value {
    let mut text = String::new();
    let mut calls: Vec<Value> = Vec::new();
    for part in parts {
        match part {
            Part::Text { text: t } => text.push_str(t),
            // Earlier reasoning is dropped, not sent: a signed Anthropic thinking block is
            // valid only for an Anthropic model, which gets it through `SameApiExtras`; other
            // models have no field for it (and some, DeepSeek's, refuse `reasoning_content` in
            // history), and as text it would read as something the assistant said.
            Part::Reasoning { .. } => {}
            Part::ToolCall {
                id,
                name,
                arguments,
                thought_signature,
            } => calls.push(tool_call_value(
                id,
                name,
                arguments,
                thought_signature.as_deref(),
            )),
            Part::Image { .. } | Part::ToolResult { .. } => {}
        }
    }
    let mut m = Map::new();
    m.insert("role".into(), "assistant".into());
    m.insert(
        "content".into(),
        if text.is_empty() && !calls.is_empty() {
            Value::Null
        } else {
            text.into()
        },
    );
    if !calls.is_empty() {
        m.insert("tool_calls".into(), Value::Array(calls));
    }
    Value::Object(m)
}

/// One chat completions tool call. A Gemini thought signature rides where Google's own
/// OpenAI-compatible endpoint puts it (`extra_content.google.thought_signature`), so a chat
/// completions client sees and returns it as it would with Google directly.
pub fn tool_call_value(
    id: &str,
    name: &str,
    arguments: &str,
    thought_signature: Option<&str>,
) -> Value {
    let mut call = json!({"id": id, "type": "function",
        "function": {"name": name, "arguments": arguments}});
    if let (Some(sig), Some(obj)) = (thought_signature, call.as_object_mut()) {
        obj.insert(
            "extra_content".into(),
            json!({"google": {"thought_signature": sig}}),
        );
    }
    call
}

/// Between a tool call id and the Gemini thought signature it carries (see [`signed_call_id`]).
const SIGNATURE_IN_ID: &str = "__thought__";

/// A tool call id that carries Gemini's thought signature, for clients whose API has no other
/// place for it that they are sure to send back (Anthropic Messages, Responses): every client
/// returns a call's id unchanged, with the call and with its result. The signature is written
/// base64url without padding, so the id stays within Anthropic's `[a-zA-Z0-9_-]`.
pub fn signed_call_id(id: &str, thought_signature: Option<&str>) -> String {
    match thought_signature {
        None => id.to_owned(),
        Some(sig) => {
            let url: String = sig
                .chars()
                .filter(|&c| c != '=')
                .map(|c| match c {
                    '+' => '-',
                    '/' => '_',
                    c => c,
                })
                .collect();
            format!("{id}{SIGNATURE_IN_ID}{url}")
        }
    }
}

/// The id and the Gemini thought signature (standard base64, padded) of an id written by
/// [`signed_call_id`]; other ids are returned as they are.
pub fn split_call_id(id: &str) -> (String, Option<String>) {
    match id.split_once(SIGNATURE_IN_ID) {
        Some((base, url)) if !url.is_empty() => {
            let mut sig: String = url
                .chars()
                .map(|c| match c {
                    '-' => '+',
                    '_' => '/',
                    c => c,
                })
                .collect();
            while sig.len() % 4 != 0 {
                sig.push('=');
            }
            (base.to_owned(), Some(sig))
        }
        _ => (id.to_owned(), None),
    }
}

/// `extra_content` of a chat completions tool call (Google's OpenAI-compatible extension).
#[derive(Deserialize, Default, Debug)]
pub struct ExtraContent {
    #[serde(default)]
    pub google: Option<GoogleExtra>,
}

#[derive(Deserialize, Default, Debug)]
pub struct GoogleExtra {
    #[serde(default)]
    pub thought_signature: Option<String>,
}

impl ExtraContent {
    pub fn thought_signature(extra: Option<ExtraContent>) -> Option<String> {
        extra
            .and_then(|e| e.google)
            .and_then(|g| g.thought_signature)
            .filter(|s| !s.is_empty())
    }
}

/// A reasoning block with its signature in chat completions (`thinking_blocks`, as LiteLLM
/// and others carry Anthropic's signed thinking over that API).
#[derive(Deserialize, Debug)]
struct ThinkingBlockBody {
    #[serde(default)]
    signature: Option<String>,
}

/// `chat.completion` as the gateway's providers return it (typed view; unknown fields ignored).
#[derive(Deserialize)]
struct CompletionBody {
    #[serde(default)]
    id: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    choices: Vec<CompletionChoice>,
    usage: Option<UsageBody>,
}

#[derive(Deserialize)]
struct CompletionChoice {
    #[serde(default)]
    message: CompletionMessage,
    finish_reason: Option<String>,
}

#[derive(Deserialize, Default)]
struct CompletionMessage {
    content: Option<String>,
    #[serde(alias = "reasoning_content")]
    reasoning: Option<String>,
    #[serde(default)]
    tool_calls: Vec<CompletionToolCall>,
    #[serde(default)]
    thinking_blocks: Vec<ThinkingBlockBody>,
}

#[derive(Deserialize)]
struct CompletionToolCall {
    #[serde(default)]
    id: String,
    function: CompletionFunction,
    #[serde(default)]
    extra_content: Option<ExtraContent>,
}

#[derive(Deserialize)]
struct CompletionFunction {
    #[serde(default)]
    name: String,
    #[serde(default)]
    arguments: Value,
}

#[derive(Deserialize, Default, Clone, Copy)]
struct UsageBody {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
    prompt_tokens_details: Option<CachedBody>,
}

#[derive(Deserialize, Default, Clone, Copy)]
struct CachedBody {
    #[serde(default)]
    cached_tokens: u64,
}

impl From<UsageBody> for Usage {
    fn from(u: UsageBody) -> Usage {
        Usage {
            prompt_tokens: u.prompt_tokens,
            completion_tokens: u.completion_tokens,
            cached_tokens: u.prompt_tokens_details.map_or(0, |d| d.cached_tokens),
        }
    }
}

fn arguments_text(arguments: Value) -> String {
    match arguments {
        Value::String(s) if s.trim().is_empty() => "{}".into(),
        Value::String(s) => s,
        Value::Null => "{}".into(),
        other => other.to_string(),
    }
}

impl ChatResponse {
    /// Reads an OpenAI `chat.completion` body. `Err` says why it is not one.
    pub fn from_openai(body: &[u8]) -> Result<ChatResponse, String> {
        let parsed: CompletionBody = serde_json::from_slice(body)
            .map_err(|e| format!("the answer is not a chat completion: {e}"))?;
        let choice = parsed
            .choices
            .into_iter()
            .next()
            .ok_or_else(|| "the answer has no choices".to_string())?;
        let mut parts = Vec::new();
        let signature = choice
            .message
            .thinking_blocks
            .into_iter()
            .find_map(|b| b.signature)
            .filter(|s| !s.is_empty());
        if let Some(r) = choice.message.reasoning.filter(|r| !r.is_empty()) {
            parts.push(Part::Reasoning { text: r, signature });
        } else if let Some(signature) = signature {
            // Signed reasoning the upstream did not show: the signature still goes back.
            parts.push(Part::Reasoning {
                text: String::new(),
                signature: Some(signature),
            });
        }
        if let Some(t) = choice.message.content.filter(|t| !t.is_empty()) {
            parts.push(Part::Text { text: t });
        }
        for call in choice.message.tool_calls {
            parts.push(Part::ToolCall {
                id: call.id,
                name: call.function.name,
                arguments: arguments_text(call.function.arguments),
                thought_signature: ExtraContent::thought_signature(call.extra_content),
            });
        }
        let has_calls = parts.iter().any(|p| matches!(p, Part::ToolCall { .. }));
        let stop = match choice.finish_reason.as_deref() {
            Some(r) => StopReason::from_openai(r),
            None if has_calls => StopReason::ToolCalls,
            None => StopReason::Stop,
        };
        Ok(ChatResponse {
            id: parsed.id,
            model: parsed.model,
            parts,
            stop,
            usage: parsed.usage.map(Usage::from).unwrap_or_default(),
        })
    }

    /// This answer as an OpenAI `chat.completion` body, reported as `model_ref`.
    pub fn to_openai(&self, model_ref: &str) -> Value {
        let mut message = Map::new();
        message.insert("role".into(), "assistant".into());
        let text: String = self
            .parts
            .iter()
            .filter_map(|p| match p {
                Part::Text { text } => Some(text.as_str()),
                _ => None,
            })
            .collect();
        let reasoning: String = self
            .parts
            .iter()
            .filter_map(|p| match p {
                Part::Reasoning { text, .. } => Some(text.as_str()),
                _ => None,
            })
            .collect();
        let calls: Vec<Value> = self
            .parts
            .iter()
            .filter_map(|p| match p {
                Part::ToolCall {
                    id,
                    name,
                    arguments,
                    thought_signature,
                } => Some(tool_call_value(
                    id,
                    name,
                    arguments,
                    thought_signature.as_deref(),
                )),
                _ => None,
            })
            .collect();
        message.insert("content".into(), text.into());
        if !reasoning.is_empty() {
            message.insert("reasoning".into(), reasoning.into());
        }
        let signed: Vec<Value> = self
            .parts
            .iter()
            .filter_map(|p| match p {
                Part::Reasoning {
                    text,
                    signature: Some(sig),
                } => Some(json!({"type": "thinking", "thinking": text, "signature": sig})),
                _ => None,
            })
            .collect();
        if !signed.is_empty() {
            message.insert("thinking_blocks".into(), Value::Array(signed));
        }
        if !calls.is_empty() {
            message.insert("tool_calls".into(), Value::Array(calls));
        }
        super::openai::completion(model_ref, message, self.stop.to_openai(), &self.usage)
    }

    /// Collects a complete event stream into one answer (`Err` with the message of an `Error`
    /// event, or when the stream has no `Stop`).
    pub fn from_events(
        events: impl IntoIterator<Item = StreamEvent>,
    ) -> Result<ChatResponse, String> {
        let mut out = ChatResponse {
            id: String::new(),
            model: String::new(),
            parts: Vec::new(),
            stop: StopReason::Stop,
            usage: Usage::default(),
        };
        let mut stopped = false;
        // Tool call `index` → position in `parts`.
        let mut calls: Vec<usize> = Vec::new();
        for event in events {
            match event {
                StreamEvent::Start { id, model } => {
                    out.id = id;
                    out.model = model;
                }
                StreamEvent::TextDelta { text } => match out.parts.last_mut() {
                    Some(Part::Text { text: t }) => t.push_str(&text),
                    _ => out.parts.push(Part::Text { text }),
                },
                StreamEvent::ReasoningDelta { text } => match out.parts.last_mut() {
                    Some(Part::Reasoning { text: t, .. }) => t.push_str(&text),
                    _ => out.parts.push(Part::Reasoning {
                        text,
                        signature: None,
                    }),
                },
                StreamEvent::ReasoningSignature { signature } => match out.parts.last_mut() {
                    Some(Part::Reasoning { signature: s, .. }) => *s = Some(signature),
                    _ => out.parts.push(Part::Reasoning {
                        text: String::new(),
                        signature: Some(signature),
                    }),
                },
                StreamEvent::ToolCallStart {
                    index,
                    id,
                    name,
                    thought_signature,
                } => {
                    if calls.len() <= index {
                        calls.resize(index + 1, usize::MAX);
                    }
                    calls[index] = out.parts.len();
                    out.parts.push(Part::ToolCall {
                        id,
                        name,
                        arguments: String::new(),
                        thought_signature,
                    });
                }
                StreamEvent::ToolCallArgs { index, fragment } => {
                    if let Some(Part::ToolCall { arguments, .. }) =
                        calls.get(index).and_then(|&at| out.parts.get_mut(at))
                    {
                        arguments.push_str(&fragment);
                    }
                }
                StreamEvent::Usage(u) => out.usage = u,
                StreamEvent::Stop { reason } => {
                    out.stop = reason;
                    stopped = true;
                }
                StreamEvent::Error { message } => return Err(message),
            }
        }
        for part in &mut out.parts {
            if let Part::ToolCall { arguments, .. } = part {
                if arguments.trim().is_empty() {
                    *arguments = "{}".into();
                }
            }
        }
        if !stopped {
            return Err("the answer ended before it was complete".into());
        }
        Ok(out)
    }
}

/// `chat.completion.chunk` (typed view; unknown fields ignored).
#[derive(Deserialize)]
struct ChunkBody {
    #[serde(default)]
    id: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    choices: Vec<ChunkChoice>,
    usage: Option<UsageBody>,
    error: Option<ChunkError>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ChunkError {
    Object {
        #[serde(default)]
        message: String,
    },
    Text(String),
}

#[derive(Deserialize)]
struct ChunkChoice {
    #[serde(default)]
    delta: ChunkDelta,
    finish_reason: Option<String>,
}

#[derive(Deserialize, Default)]
struct ChunkDelta {
    content: Option<String>,
    reasoning: Option<String>,
    reasoning_content: Option<String>,
    #[serde(default)]
    tool_calls: Vec<ChunkToolCall>,
    #[serde(default)]
    thinking_blocks: Vec<ThinkingBlockBody>,
}

#[derive(Deserialize)]
struct ChunkToolCall {
    #[serde(default)]
    index: usize,
    id: Option<String>,
    #[serde(default)]
    function: ChunkFunction,
    #[serde(default)]
    extra_content: Option<ExtraContent>,
}

#[derive(Deserialize, Default)]
struct ChunkFunction {
    name: Option<String>,
    arguments: Option<String>,
}

/// Reads an OpenAI chat completion stream (SSE events) into [`StreamEvent`]s. Used by inbound
/// APIs other than chat completions to read what the chain's providers answer.
///
/// The `Stop` event is held back until the stream ends (`[DONE]` or close) so that the usage
/// chunk, which OpenAI sends after the finish chunk, comes before it.
#[derive(Debug, Default)]
pub struct OpenAiChunkDecoder {
    started: bool,
    stop: Option<StopReason>,
    usage: Option<Usage>,
    done: bool,
    failed: bool,
    /// Upstream tool-call index → our index, in order of first appearance.
    calls: Vec<usize>,
}

impl OpenAiChunkDecoder {
    pub fn new() -> OpenAiChunkDecoder {
        OpenAiChunkDecoder::default()
    }

    /// One SSE event of the stream.
    pub fn feed(&mut self, event: &SseEvent) -> Vec<StreamEvent> {
        let mut out = Vec::new();
        if self.done || self.failed {
            return out;
        }
        let data = event.data.trim();
        if data.is_empty() {
            return out;
        }
        if data == "[DONE]" {
            self.done = true;
            self.end(&mut out);
            return out;
        }
        let chunk: ChunkBody = match serde_json::from_str(data) {
            Ok(c) => c,
            Err(e) => {
                self.failed = true;
                out.push(StreamEvent::Error {
                    message: format!(
                        "the upstream sent an event that is not a chat completion chunk: {e}"
                    ),
                });
                return out;
            }
        };
        if let Some(err) = chunk.error {
            self.failed = true;
            let message = match err {
                ChunkError::Object { message } | ChunkError::Text(message) => message,
            };
            out.push(StreamEvent::Error { message });
            return out;
        }
        if !self.started {
            self.started = true;
            out.push(StreamEvent::Start {
                id: chunk.id.clone(),
                model: chunk.model.clone(),
            });
        }
        for choice in chunk.choices.into_iter().take(1) {
            let d = choice.delta;
            if let Some(r) = d
                .reasoning
                .or(d.reasoning_content)
                .filter(|r| !r.is_empty())
            {
                out.push(StreamEvent::ReasoningDelta { text: r });
            }
            for signature in d.thinking_blocks.into_iter().filter_map(|b| b.signature) {
                if !signature.is_empty() {
                    out.push(StreamEvent::ReasoningSignature { signature });
                }
            }
            if let Some(t) = d.content.filter(|t| !t.is_empty()) {
                out.push(StreamEvent::TextDelta { text: t });
            }
            for call in d.tool_calls {
                let known = self.calls.iter().position(|&c| c == call.index);
                let index = match known {
                    Some(i) => i,
                    None => {
                        self.calls.push(call.index);
                        let index = self.calls.len() - 1;
                        out.push(StreamEvent::ToolCallStart {
                            index,
                            id: call.id.clone().unwrap_or_default(),
                            name: call.function.name.clone().unwrap_or_default(),
                            thought_signature: ExtraContent::thought_signature(call.extra_content),
                        });
                        index
                    }
                };
                if let Some(a) = call.function.arguments.filter(|a| !a.is_empty()) {
                    out.push(StreamEvent::ToolCallArgs { index, fragment: a });
                }
            }
            if let Some(r) = choice.finish_reason {
                self.stop = Some(StopReason::from_openai(&r));
            }
        }
        if let Some(u) = chunk.usage {
            self.usage = Some(u.into());
        }
        out
    }

    /// The stream closed. Without `[DONE]` or a finish reason the answer is incomplete: `Error`.
    pub fn finish(&mut self) -> Vec<StreamEvent> {
        let mut out = Vec::new();
        if self.failed || self.done {
            return out;
        }
        self.done = true;
        if self.stop.is_none() {
            self.failed = true;
            out.push(StreamEvent::Error {
                message: "the upstream stream ended before the answer was complete".into(),
            });
            return out;
        }
        self.end(&mut out);
        out
    }

    fn end(&mut self, out: &mut Vec<StreamEvent>) {
        if !self.started {
            self.started = true;
            out.push(StreamEvent::Start {
                id: String::new(),
                model: String::new(),
            });
        }
        if let Some(u) = self.usage.take() {
            out.push(StreamEvent::Usage(u));
        }
        let reason = self.stop.unwrap_or(if self.calls.is_empty() {
            StopReason::Stop
        } else {
            StopReason::ToolCalls
        });
        out.push(StreamEvent::Stop { reason });
    }
}

/// Writes [`StreamEvent`]s as an OpenAI chat completion stream (for providers that translate
/// into the IR and answer a chat completions client).
#[derive(Debug)]
pub struct OpenAiChunkEncoder {
    chunks: ChunkWriter,
    include_usage: bool,
    sent_role: bool,
    usage: Option<Usage>,
    ended: bool,
}

impl OpenAiChunkEncoder {
    pub fn new(chunks: ChunkWriter, include_usage: bool) -> OpenAiChunkEncoder {
        OpenAiChunkEncoder {
            chunks,
            include_usage,
            sent_role: false,
            usage: None,
            ended: false,
        }
    }

    pub fn encode(&mut self, event: &StreamEvent) -> Vec<TranslateEvent> {
        let mut out = Vec::new();
        if self.ended {
            return out;
        }
        let role = (!self.sent_role).then_some("assistant");
        let delta = |d: Delta<'_>, out: &mut Vec<TranslateEvent>, sent_role: &mut bool| {
            *sent_role = true;
            out.push(TranslateEvent::Sse(self.chunks.delta(&d, None)));
        };
        match event {
            StreamEvent::Start { .. } => {}
            StreamEvent::TextDelta { text } => delta(
                Delta {
                    role,
                    content: Some(text),
                    ..Delta::default()
                },
                &mut out,
                &mut self.sent_role,
            ),
            StreamEvent::ReasoningDelta { text } => delta(
                Delta {
                    role,
                    reasoning: Some(text),
                    ..Delta::default()
                },
                &mut out,
                &mut self.sent_role,
            ),
            StreamEvent::ReasoningSignature { signature } => delta(
                Delta {
                    role,
                    thinking_signature: Some(signature),
                    ..Delta::default()
                },
                &mut out,
                &mut self.sent_role,
            ),
            StreamEvent::ToolCallStart {
                index,
                id,
                name,
                thought_signature,
            } => {
                let calls = [ToolCallDelta {
                    id: Some(id),
                    index: *index,
                    kind: Some("function"),
                    function: FunctionDelta {
                        name: Some(name),
                        arguments: "",
                    },
                    thought_signature: thought_signature.as_deref(),
                }];
                delta(
                    Delta {
                        role,
                        tool_calls: Some(&calls),
                        ..Delta::default()
                    },
                    &mut out,
                    &mut self.sent_role,
                );
            }
            StreamEvent::ToolCallArgs { index, fragment } => {
                let calls = [ToolCallDelta {
                    id: None,
                    index: *index,
                    kind: None,
                    function: FunctionDelta {
                        name: None,
                        arguments: fragment,
                    },
                    thought_signature: None,
                }];
                delta(
                    Delta {
                        role,
                        tool_calls: Some(&calls),
                        ..Delta::default()
                    },
                    &mut out,
                    &mut self.sent_role,
                );
            }
            StreamEvent::Usage(u) => self.usage = Some(*u),
            StreamEvent::Stop { reason } => {
                self.ended = true;
                out.push(TranslateEvent::Sse(self.chunks.finish(reason.to_openai())));
                if self.include_usage {
                    let usage = self.usage.unwrap_or_default();
                    out.push(TranslateEvent::Sse(self.chunks.usage(&usage)));
                }
                out.push(TranslateEvent::Sse(SSE_DONE));
            }
            StreamEvent::Error { message } => {
                self.ended = true;
                out.push(TranslateEvent::UpstreamError(message.clone()));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::wire::sse::SseParser;

    fn decode(stream: &[u8]) -> Vec<StreamEvent> {
        let mut parser = SseParser::new();
        let mut dec = OpenAiChunkDecoder::new();
        let mut out = Vec::new();
        for ev in parser.push(stream) {
            out.extend(dec.feed(&ev));
        }
        if let Some(ev) = parser.finish() {
            out.extend(dec.feed(&ev));
        }
        out.extend(dec.finish());
        out
    }

    const TOOL_STREAM: &[u8] = b"data: {\"id\":\"c1\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Let me\"},\"finish_reason\":null}]}\n\n\
data: {\"id\":\"c1\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"arguments\":\"\"}}]},\"finish_reason\":null}]}\n\n\
data: {\"id\":\"c1\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"city\\\":\"}}]},\"finish_reason\":null}]}\n\n\
data: {\"id\":\"c1\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"\\\"Paris\\\"}\"}}]},\"finish_reason\":null}]}\n\n\
data: {\"id\":\"c1\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n\
data: {\"id\":\"c1\",\"model\":\"m\",\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":7,\"total_tokens\":19}}\n\n\
data: [DONE]\n\n";

    #[test]
    fn an_openai_tool_stream_becomes_typed_events_with_usage_before_stop() {
        let events = decode(TOOL_STREAM);
        assert_eq!(
            events,
            vec![
                StreamEvent::Start {
                    id: "c1".into(),
                    model: "m".into()
                },
                StreamEvent::TextDelta {
                    text: "Let me".into()
                },
                StreamEvent::ToolCallStart {
                    index: 0,
                    id: "call_1".into(),
                    name: "get_weather".into(),
                    thought_signature: None,
                },
                StreamEvent::ToolCallArgs {
                    index: 0,
                    fragment: "{\"city\":".into()
                },
                StreamEvent::ToolCallArgs {
                    index: 0,
                    fragment: "\"Paris\"}".into()
                },
                StreamEvent::Usage(Usage {
                    prompt_tokens: 12,
                    completion_tokens: 7,
                    cached_tokens: 0
                }),
                StreamEvent::Stop {
                    reason: StopReason::ToolCalls
                },
            ]
        );
        let whole = ChatResponse::from_events(events).unwrap();
        assert_eq!(
            whole.parts[1],
            Part::ToolCall {
                id: "call_1".into(),
                name: "get_weather".into(),
                arguments: "{\"city\":\"Paris\"}".into(),
                thought_signature: None,
            }
        );
    }

    #[test]
    fn the_decoder_gives_the_same_events_at_every_split_point() {
        let whole = decode(TOOL_STREAM);
        for split in 0..=TOOL_STREAM.len() {
            let mut parser = SseParser::new();
            let mut dec = OpenAiChunkDecoder::new();
            let mut out = Vec::new();
            for part in [&TOOL_STREAM[..split], &TOOL_STREAM[split..]] {
                for ev in parser.push(part) {
                    out.extend(dec.feed(&ev));
                }
            }
            if let Some(ev) = parser.finish() {
                out.extend(dec.feed(&ev));
            }
            out.extend(dec.finish());
            assert_eq!(out, whole, "split at {split}");
        }
    }

    #[test]
    fn a_truncated_or_failed_stream_ends_in_an_error_event() {
        let truncated = decode(b"data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\n");
        assert!(matches!(truncated.last(), Some(StreamEvent::Error { .. })));
        let failed = decode(
            b"data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\ndata: {\"error\":{\"message\":\"runner crashed\",\"type\":\"api_error\"}}\n\n",
        );
        assert_eq!(
            failed.last(),
            Some(&StreamEvent::Error {
                message: "runner crashed".into()
            })
        );
    }

    #[test]
    fn a_request_becomes_openai_messages_with_tool_turns_split_out() {
        let req = ChatRequest {
            model: Some("ollama/llama3.2:3b".into()),
            system: vec!["Be brief.".into(), "Use tools.".into()],
            messages: vec![
                Message {
                    role: Role::User,
                    parts: vec![Part::Text {
                        text: "Weather in Paris?".into(),
                    }],
                },
                Message {
                    role: Role::Assistant,
                    parts: vec![Part::ToolCall {
                        id: "call_1".into(),
                        name: "get_weather".into(),
                        arguments: "{\"city\":\"Paris\"}".into(),
                        thought_signature: None,
                    }],
                },
                Message {
                    role: Role::User,
                    parts: vec![
                        Part::ToolResult {
                            call_id: "call_1".into(),
                            content: "21C".into(),
                            is_error: false,
                        },
                        Part::Text {
                            text: "And tomorrow?".into(),
                        },
                    ],
                },
            ],
            tools: vec![Tool {
                name: "get_weather".into(),
                description: None,
                parameters: json!({"type": "object"}),
            }],
            tool_choice: Some(ToolChoice::Function("get_weather".into())),
            sampling: Sampling {
                max_tokens: Some(64),
                temperature: None,
                top_p: Some(0.9),
                stop: vec!["END".into()],
            },
            reasoning: None,
            stream: true,
            extras: SameApiExtras::None,
        };
        assert_eq!(
            req.to_openai(),
            json!({
                "model": "ollama/llama3.2:3b",
                "messages": [
                    {"role": "system", "content": "Be brief.\n\nUse tools."},
                    {"role": "user", "content": "Weather in Paris?"},
                    {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
                        "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
                    {"role": "tool", "tool_call_id": "call_1", "content": "21C"},
                    {"role": "user", "content": "And tomorrow?"}
                ],
                "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}],
                "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
                "max_tokens": 64, "top_p": 0.9, "stop": ["END"],
                "stream": true, "stream_options": {"include_usage": true}
            })
        );
    }

    #[test]
    fn extras_reach_only_their_own_api_and_never_replace_what_openclawd_set() {
        let fields = |v: Value| v.as_object().cloned().unwrap();
        let extras = SameApiExtras::AnthropicMessages {
            fields: fields(
                json!({"top_k": 5, "metadata": {"user_id": "u1"}, "model": "evil", "stream": true}),
            ),
            beta: None,
            signed_thinking: Vec::new(),
            server_tools: Vec::new(),
        };
        let mut body = fields(json!({"model": "claude-x", "stream": false, "max_tokens": 9}));
        extras.add_to_anthropic_messages(&mut body);
        assert_eq!(
            Value::Object(body),
            json!({"model": "claude-x", "stream": false, "max_tokens": 9,
                "top_k": 5, "metadata": {"user_id": "u1"}})
        );
        let mut other = fields(json!({"model": "gpt-x"}));
        extras.add_to_openai_responses(&mut other);
        SameApiExtras::None.add_to_anthropic_messages(&mut other);
        assert_eq!(Value::Object(other), json!({"model": "gpt-x"}));
    }

    #[test]
    fn events_encode_back_into_the_openai_stream_they_came_from() {
        let events = decode(TOOL_STREAM);
        let mut enc = OpenAiChunkEncoder::new(ChunkWriter::with_id("c1".into(), 1, "m"), true);
        let bytes: Vec<u8> = events
            .iter()
            .flat_map(|e| enc.encode(e))
            .flat_map(|t| match t {
                TranslateEvent::Sse(b) => b.to_vec(),
                TranslateEvent::UpstreamError(m) => panic!("{m}"),
            })
            .collect();
        let again = decode(&bytes);
        assert_eq!(again, events);
    }

    #[test]
    fn a_completion_body_becomes_a_response_and_back() {
        let body = br#"{"id":"chatcmpl-1","object":"chat.completion","model":"m","choices":[{"index":0,
            "message":{"role":"assistant","content":"","tool_calls":[{"id":"call_9","type":"function",
            "function":{"name":"f","arguments":""}}]},"finish_reason":"tool_calls"}],
            "usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}"#;
        let r = ChatResponse::from_openai(body).unwrap();
        assert_eq!(r.stop, StopReason::ToolCalls);
        assert_eq!(
            r.parts,
            vec![Part::ToolCall {
                id: "call_9".into(),
                name: "f".into(),
                arguments: "{}".into(),
                thought_signature: None,
            }]
        );
        assert_eq!(r.usage.total_tokens(), 5);
        let back = r.to_openai("ollama/m");
        assert_eq!(back["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(back["model"], "ollama/m");
        assert!(ChatResponse::from_openai(b"{\"choices\":[]}").is_err());
    }

    #[test]
    fn earlier_reasoning_is_never_sent_as_text_and_gemini_signatures_ride_on_their_calls() {
        let req = ChatRequest {
            messages: vec![
                Message {
                    role: Role::User,
                    parts: vec![
                        Part::Text {
                            text: "Weather?".into(),
                        },
                        Part::Reasoning {
                            text: "stray thought".into(),
                            signature: None,
                        },
                    ],
                },
                Message {
                    role: Role::Assistant,
                    parts: vec![
                        Part::Reasoning {
                            text: "The user wants weather.".into(),
                            signature: Some("sig-claude".into()),
                        },
                        Part::ToolCall {
                            id: "call_1".into(),
                            name: "get_weather".into(),
                            arguments: "{}".into(),
                            thought_signature: Some("CikB+/x=".into()),
                        },
                    ],
                },
            ],
            ..ChatRequest::default()
        };
        let body = req.to_openai();
        let text = body.to_string();
        assert!(!text.contains("stray thought"), "{text}");
        assert!(!text.contains("The user wants weather."), "{text}");
        assert!(!text.contains("sig-claude"), "{text}");
        assert_eq!(body["messages"][0]["content"], "Weather?");
        assert_eq!(
            body["messages"][1]["tool_calls"][0]["extra_content"],
            json!({"google": {"thought_signature": "CikB+/x="}})
        );
    }

    #[test]
    fn signatures_in_an_openai_answer_become_ir_signatures() {
        let stream: &[u8] = b"data: {\"id\":\"c1\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"reasoning\":\"Hmm\"},\"finish_reason\":null}]}\n\n\
data: {\"id\":\"c1\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"thinking_blocks\":[{\"type\":\"thinking\",\"thinking\":\"\",\"signature\":\"sig-1\"}]},\"finish_reason\":null}]}\n\n\
data: {\"id\":\"c1\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"},\"extra_content\":{\"google\":{\"thought_signature\":\"CikB\"}}}]},\"finish_reason\":null}]}\n\n\
data: {\"id\":\"c1\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n\
data: [DONE]\n\n";
        let events = decode(stream);
        assert!(events.contains(&StreamEvent::ReasoningSignature {
            signature: "sig-1".into()
        }));
        assert!(events.contains(&StreamEvent::ToolCallStart {
            index: 0,
            id: "call_1".into(),
            name: "f".into(),
            thought_signature: Some("CikB".into())
        }));
        let whole = ChatResponse::from_events(events.clone()).unwrap();
        assert_eq!(
            whole.parts,
            vec![
                Part::Reasoning {
                    text: "Hmm".into(),
                    signature: Some("sig-1".into())
                },
                Part::ToolCall {
                    id: "call_1".into(),
                    name: "f".into(),
                    arguments: "{}".into(),
                    thought_signature: Some("CikB".into())
                }
            ]
        );
        // Through the chat completions encoder and back: nothing lost.
        let mut enc = OpenAiChunkEncoder::new(ChunkWriter::with_id("c1".into(), 1, "m"), false);
        let bytes: Vec<u8> = events
            .iter()
            .flat_map(|e| enc.encode(e))
            .flat_map(|t| match t {
                TranslateEvent::Sse(b) => b.to_vec(),
                TranslateEvent::UpstreamError(m) => panic!("{m}"),
            })
            .collect();
        assert_eq!(decode(&bytes), events);
        // A whole answer too.
        let body = whole.to_openai("google/m");
        let again = ChatResponse::from_openai(body.to_string().as_bytes()).unwrap();
        assert_eq!(again.parts, whole.parts);
    }

    #[test]
    fn a_call_id_carries_a_gemini_signature_for_clients_without_a_place_for_it() {
        let sig = "+/++Afv/vgH7/74BBw==";
        let id = signed_call_id("call_abc", Some(sig));
        assert!(
            id.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'),
            "{id}"
        );
        assert_eq!(split_call_id(&id), ("call_abc".into(), Some(sig.into())));
        assert_eq!(split_call_id("toolu_01"), ("toolu_01".into(), None));
        assert_eq!(signed_call_id("call_x", None), "call_x");
    }
}

//! Inbound OpenAI Responses (`POST /v1/responses`, stateless): the typed request, its
//! translation into the IR, and the answer as a `response` object or as the event stream
//! (`response.created` … `response.output_item.done` … `response.completed`, each event with
//! its `event:` line and a `sequence_number` from 0).
//!
//! Nothing is stored: `previous_response_id` and `store: true` are refused with a 400 that says
//! so, since a later request could not find what it refers to.

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::ir::{
    signed_call_id, split_call_id, ChatRequest, ChatResponse, ImageSource, Message, Part,
    Reasoning, Role, SameApiExtras, Sampling, StopReason, StreamEvent, Tool, ToolChoice,
};
use super::typed::{self, Count};
use super::{Usage, WireError};

/// `POST /v1/responses` body (`ResponseCreateParams`). Other fields (`include`, `metadata`,
/// `text`, `truncation`, …) are kept in `extra`, for a provider that speaks Responses itself.
#[derive(Debug, Deserialize)]
pub struct ResponsesRequest {
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub input: Option<Input>,
    #[serde(default)]
    pub instructions: Option<String>,
    #[serde(default)]
    pub tools: Option<Vec<InTool>>,
    #[serde(default)]
    pub tool_choice: Option<InToolChoice>,
    #[serde(default)]
    pub parallel_tool_calls: Option<bool>,
    #[serde(default)]
    pub max_output_tokens: Option<Count>,
    #[serde(default)]
    pub temperature: Option<f64>,
    #[serde(default)]
    pub top_p: Option<f64>,
    #[serde(default)]
    pub reasoning: Option<InReasoning>,
    #[serde(default)]
    pub stream: Option<bool>,
    #[serde(default)]
    pub store: Option<bool>,
    #[serde(default)]
    pub previous_response_id: Option<String>,
    #[serde(default)]
    pub conversation: Option<Value>,
    /// Every field not named above, as sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug)]
pub enum Input {
    Text(String),
    Items(Vec<InputItem>),
}

/// One input item. One flat struct (rather than a tagged enum) so a mistyped field is named
/// precisely (`input[2].call_id`); `type` decides which fields must be present.
#[derive(Debug, Deserialize)]
pub struct InputItem {
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub role: Option<String>,
    #[serde(default)]
    pub content: Option<ItemContent>,
    #[serde(default)]
    pub call_id: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub arguments: Option<String>,
    #[serde(default)]
    pub output: Option<ItemContent>,
}

#[derive(Debug)]
pub enum ItemContent {
    Text(String),
    Parts(Vec<ContentPart>),
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentPart {
    InputText {
        text: String,
    },
    OutputText {
        text: String,
    },
    Refusal {
        refusal: String,
    },
    InputImage {
        #[serde(default)]
        image_url: Option<String>,
    },
    SummaryText {
        text: String,
    },
    ReasoningText {
        text: String,
    },
    #[serde(other)]
    Other,
}

#[derive(Debug, Deserialize)]
pub struct InTool {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub parameters: Option<Value>,
    #[serde(default)]
    pub strict: Option<bool>,
    /// The tool's other fields (a built-in tool's `filters`, `vector_store_ids`, …).
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

impl InTool {
    /// The tool as the client sent it.
    fn raw(&self) -> Value {
        let mut out = self.rest.clone();
        out.insert("type".into(), self.kind.as_str().into());
        for (key, value) in [
            ("name", self.name.as_ref().map(|n| Value::from(n.as_str()))),
            (
                "description",
                self.description.as_ref().map(|d| Value::from(d.as_str())),
            ),
            ("parameters", self.parameters.clone()),
            ("strict", self.strict.map(Value::from)),
        ] {
            if let Some(value) = value {
                out.insert(key.into(), value);
            }
        }
        Value::Object(out)
    }
}

#[derive(Debug, Deserialize)]
#[serde(
    untagged,
    expecting = "\"none\", \"auto\", \"required\" or {\"type\":\"function\",\"name\":…}"
)]
pub enum InToolChoice {
    Mode(String),
    Function {
        name: String,
    },
    /// `allowed_tools`, built-in tool choices, …: treated as `auto`.
    Other(serde_json::Map<String, Value>),
}

#[derive(Debug, Deserialize)]
pub struct InReasoning {
    #[serde(default)]
    pub effort: Option<String>,
    #[serde(default)]
    pub summary: Option<String>,
}

/// Parses and checks a `/v1/responses` body.
pub fn parse(body: &[u8]) -> Result<ResponsesRequest, WireError> {
    let req: ResponsesRequest = typed::from_slice(body)?;
    if req.previous_response_id.is_some() {
        return Err(WireError::bad_request(
            "openclawd does not store responses, so previous_response_id cannot be resolved; send the whole conversation in `input` (with `store: false`).",
            Some("previous_response_id".into()),
        ));
    }
    if req.conversation.as_ref().is_some_and(|c| !c.is_null()) {
        return Err(WireError::bad_request(
            "openclawd does not store conversations; send the whole conversation in `input` (with `store: false`).",
            Some("conversation".into()),
        ));
    }
    if req.store == Some(true) {
        return Err(WireError::bad_request(
            "openclawd does not store responses; send `store: false` and the whole conversation in `input` each time.",
            Some("store".into()),
        ));
    }
    Ok(req)
}

fn content_parts(content: &ItemContent, param: &str) -> Result<Vec<Part>, WireError> {
    match content {
        ItemContent::Text(t) => Ok(vec![Part::Text { text: t.clone() }]),
        ItemContent::Parts(parts) => parts
            .iter()
            .enumerate()
            .map(|(i, p)| match p {
                ContentPart::InputText { text }
                | ContentPart::OutputText { text }
                | ContentPart::SummaryText { text }
                | ContentPart::ReasoningText { text }
                | ContentPart::Refusal { refusal: text } => Ok(Part::Text { text: text.clone() }),
                ContentPart::InputImage {
                    image_url: Some(url),
                } => Ok(Part::Image {
                    source: ImageSource::from_url(url),
                }),
                ContentPart::InputImage { image_url: None } => Err(WireError::bad_request(
                    format!("'{param}[{i}].image_url' is required: openclawd cannot resolve file ids."),
                    Some(format!("{param}[{i}].image_url")),
                )),
                ContentPart::Other => Err(WireError::bad_request(
                    format!("The content part '{param}[{i}]' cannot be forwarded by openclawd; send input_text or input_image parts."),
                    Some(format!("{param}[{i}].type")),
                )),
            })
            .collect(),
    }
}

fn text_of(parts: Vec<Part>) -> String {
    parts
        .into_iter()
        .filter_map(|p| match p {
            Part::Text { text } => Some(text),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn push_turn(messages: &mut Vec<Message>, role: Role, parts: Vec<Part>) {
    if parts.is_empty() {
        return;
    }
    match messages.last_mut() {
        Some(last) if last.role == role => last.parts.extend(parts),
        _ => messages.push(Message { role, parts }),
    }
}

fn required(value: &Option<String>, param: String) -> Result<&str, WireError> {
    value.as_deref().ok_or_else(|| {
        WireError::bad_request(
            format!("Missing required parameter: '{param}'."),
            Some(param),
        )
    })
}

impl ResponsesRequest {
    /// What an `openai-responses` provider gets beyond the IR: the fields not modelled here,
    /// and those modelled but not in the IR.
    fn same_api_extras(&self) -> Map<String, Value> {
        let mut extras = self.extra.clone();
        if let Some(parallel) = self.parallel_tool_calls {
            extras.insert("parallel_tool_calls".into(), parallel.into());
        }
        // The whole setting (with `summary`, which the IR does not model) for a Responses
        // provider; others get the effort.
        if let Some(reasoning) = &self.reasoning {
            let mut r = Map::new();
            if let Some(effort) = &reasoning.effort {
                r.insert("effort".into(), effort.as_str().into());
            }
            if let Some(summary) = &reasoning.summary {
                r.insert("summary".into(), summary.as_str().into());
            }
            extras.insert("reasoning".into(), Value::Object(r));
        }
        extras
    }

    /// The request in the IR.
    pub fn to_ir(&self) -> Result<ChatRequest, WireError> {
        let mut system: Vec<String> = self
            .instructions
            .iter()
            .filter(|s| !s.is_empty())
            .cloned()
            .collect();
        let mut messages: Vec<Message> = Vec::new();
        match &self.input {
            None => {}
            Some(Input::Text(t)) => push_turn(
                &mut messages,
                Role::User,
                vec![Part::Text { text: t.clone() }],
            ),
            Some(Input::Items(items)) => {
                for (i, item) in items.iter().enumerate() {
                    let param = format!("input[{i}]");
                    let kind = item.kind.as_deref().unwrap_or("message");
                    match kind {
                        "message" => {
                            let role = required(&item.role, format!("{param}.role"))?;
                            let parts = match &item.content {
                                Some(c) => content_parts(c, &format!("{param}.content"))?,
                                None => Vec::new(),
                            };
                            match role {
                                "system" | "developer" => system.push(text_of(parts)),
                                "user" => push_turn(&mut messages, Role::User, parts),
                                "assistant" => push_turn(&mut messages, Role::Assistant, parts),
                                other => {
                                    return Err(WireError::bad_request(
                                        format!("Invalid value for '{param}.role': '{other}' is not one of user, assistant, system, developer."),
                                        Some(format!("{param}.role")),
                                    ))
                                }
                            }
                        }
                        "function_call" => {
                            let call_id = required(&item.call_id, format!("{param}.call_id"))?;
                            let name = required(&item.name, format!("{param}.name"))?;
                            let arguments = item
                                .arguments
                                .clone()
                                .filter(|a| !a.trim().is_empty())
                                .unwrap_or_else(|| "{}".into());
                            push_turn(
                                &mut messages,
                                Role::Assistant,
                                vec![{
                                    let (id, thought_signature) = split_call_id(call_id);
                                    Part::ToolCall {
                                        id,
                                        name: name.to_owned(),
                                        arguments,
                                        thought_signature,
                                    }
                                }],
                            );
                        }
                        "function_call_output" => {
                            let call_id = required(&item.call_id, format!("{param}.call_id"))?;
                            let content = match &item.output {
                                Some(o) => text_of(content_parts(o, &format!("{param}.output"))?),
                                None => {
                                    return Err(WireError::bad_request(
                                        format!("Missing required parameter: '{param}.output'."),
                                        Some(format!("{param}.output")),
                                    ))
                                }
                            };
                            push_turn(
                                &mut messages,
                                Role::User,
                                vec![Part::ToolResult {
                                    call_id: split_call_id(call_id).0,
                                    content,
                                    is_error: false,
                                }],
                            );
                        }
                        // Encrypted reasoning only its own model can read; others do without.
                        "reasoning" | "item_reference" => {}
                        other => {
                            return Err(WireError::bad_request(
                                format!("Input items of type '{other}' cannot be forwarded by openclawd; send message, function_call and function_call_output items."),
                                Some(format!("{param}.type")),
                            ))
                        }
                    }
                }
            }
        }
        if messages.is_empty() {
            return Err(WireError::bad_request(
                "Missing required parameter: 'input'. Send a string or at least one user message.",
                Some("input".into()),
            ));
        }
        let mut tools = Vec::new();
        // Built-in tools (web_search, file_search, local_shell, custom grammars, …) run on
        // OpenAI's side or need a client contract only OpenAI's models have: they go to an
        // openai-responses provider as sent, and `api` refuses the request when the chain has
        // none (a model that was never offered the tool must not look as if it had been).
        let mut server_tools = Vec::new();
        for (i, t) in self.tools.iter().flatten().enumerate() {
            if t.kind != "function" {
                server_tools.push(t.raw());
                continue;
            }
            tools.push(Tool {
                name: required(&t.name, format!("tools[{i}].name"))?.to_owned(),
                description: t.description.clone(),
                parameters: t
                    .parameters
                    .clone()
                    .filter(|p| !p.is_null())
                    .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
            });
        }
        Ok(ChatRequest {
            model: self.model.clone().filter(|m| !m.is_empty()),
            system,
            messages,
            tools,
            tool_choice: self.tool_choice.as_ref().map(|c| match c {
                InToolChoice::Mode(m) => match m.as_str() {
                    "none" => ToolChoice::None,
                    "required" => ToolChoice::Required,
                    _ => ToolChoice::Auto,
                },
                InToolChoice::Function { name } => ToolChoice::Function(name.clone()),
                InToolChoice::Other(_) => ToolChoice::Auto,
            }),
            sampling: Sampling {
                max_tokens: self.max_output_tokens.map(|c| c.0),
                temperature: self.temperature,
                top_p: self.top_p,
                stop: Vec::new(),
            },
            reasoning: self
                .reasoning
                .as_ref()
                .and_then(|r| r.effort.clone())
                .map(|effort| Reasoning {
                    effort: Some(effort),
                    budget_tokens: None,
                }),
            stream: self.stream.unwrap_or(false),
            extras: SameApiExtras::OpenAiResponses {
                fields: self.same_api_extras(),
                server_tools,
            },
        })
    }
}

fn random_suffix() -> String {
    super::openai::new_call_id()
        .trim_start_matches("call_")
        .to_owned()
}

/// The value of a field the request left out.
type DefaultValue = fn() -> Value;

/// Request fields the response object repeats that openclawd does not model, with the value
/// OpenAI reports when the request leaves them out (`response.json` fixture).
const ECHOED_WITH_DEFAULTS: &[(&str, DefaultValue)] = &[
    ("background", || Value::Bool(false)),
    ("max_tool_calls", || Value::Null),
    ("prompt_cache_key", || Value::Null),
    ("safety_identifier", || Value::Null),
    ("service_tier", || Value::from("default")),
    (
        "text",
        || json!({"format": {"type": "text"}, "verbosity": "medium"}),
    ),
    ("top_logprobs", || Value::from(0)),
    ("truncation", || Value::from("disabled")),
    ("user", || Value::Null),
    ("metadata", || json!({})),
];

/// What the response object echoes from the request: the values the client sent, OpenAI's
/// defaults for those it left out.
#[derive(Debug, Clone)]
pub struct Echo {
    pub id: String,
    pub created_at: u64,
    pub model: String,
    pub instructions: Option<String>,
    pub max_output_tokens: Option<u64>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub tools: Vec<Value>,
    pub effort: Option<String>,
    pub summary: Option<String>,
    pub tool_choice: Value,
    pub parallel_tool_calls: bool,
    /// [`ECHOED_WITH_DEFAULTS`], as sent or defaulted.
    pub fields: Map<String, Value>,
}

impl Echo {
    pub fn new(req: &ResponsesRequest, model: &str) -> Echo {
        let mut fields = Map::new();
        for (name, default) in ECHOED_WITH_DEFAULTS {
            let value = req
                .extra
                .get(*name)
                .filter(|v| !v.is_null())
                .cloned()
                .unwrap_or_else(default);
            fields.insert((*name).into(), value);
        }
        // `text` as sent, with the format OpenAI fills in when only `verbosity` is given.
        if let Some(Value::Object(text)) = fields.get_mut("text") {
            text.entry("format")
                .or_insert_with(|| json!({"type": "text"}));
        }
        Echo {
            id: format!("resp_{}", random_suffix()),
            created_at: super::openai::unix_now(),
            model: model.to_owned(),
            instructions: req.instructions.clone(),
            max_output_tokens: req.max_output_tokens.map(|c| c.0),
            temperature: req.temperature,
            top_p: req.top_p,
            tools: req
                .tools
                .iter()
                .flatten()
                .map(|t| {
                    let mut raw = t.raw();
                    if let (Value::Object(obj), "function") = (&mut raw, t.kind.as_str()) {
                        obj.entry("description").or_insert(Value::Null);
                        obj.entry("parameters").or_insert(Value::Null);
                        obj.entry("strict").or_insert(Value::Bool(false));
                    }
                    raw
                })
                .collect(),
            effort: req.reasoning.as_ref().and_then(|r| r.effort.clone()),
            summary: req.reasoning.as_ref().and_then(|r| r.summary.clone()),
            tool_choice: match &req.tool_choice {
                None => Value::from("auto"),
                Some(InToolChoice::Mode(m)) => Value::from(m.as_str()),
                Some(InToolChoice::Function { name }) => {
                    json!({"type": "function", "name": name})
                }
                Some(InToolChoice::Other(obj)) => Value::Object(obj.clone()),
            },
            parallel_tool_calls: req.parallel_tool_calls.unwrap_or(true),
            fields,
        }
    }

    fn field(&self, name: &str) -> Value {
        self.fields.get(name).cloned().unwrap_or(Value::Null)
    }

    /// The id of output item `index`: `<prefix>_` + the response's own suffix + the index,
    /// unique per answer and the same however the stream was chunked.
    fn item_id(&self, prefix: &str, index: usize) -> String {
        let suffix = self.id.strip_prefix("resp_").unwrap_or(&self.id);
        format!("{prefix}_{suffix}{index:02}")
    }

    /// The `response` object with `status`, `output` and `usage`.
    fn object(&self, status: &str, output: &[Value], usage: Option<&Usage>) -> Value {
        let incomplete = (status == "incomplete").then(|| json!({"reason": "max_output_tokens"}));
        json!({
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "background": self.field("background"),
            "error": null,
            "incomplete_details": incomplete,
            "instructions": self.instructions,
            "max_output_tokens": self.max_output_tokens,
            "max_tool_calls": self.field("max_tool_calls"),
            "model": self.model,
            "output": output,
            "parallel_tool_calls": self.parallel_tool_calls,
            "previous_response_id": null,
            "prompt_cache_key": self.field("prompt_cache_key"),
            "reasoning": {"effort": self.effort, "summary": self.summary},
            "safety_identifier": self.field("safety_identifier"),
            "service_tier": self.field("service_tier"),
            // Nothing is stored, whatever OpenAI's default: `store: true` is refused.
            "store": false,
            "temperature": self.temperature,
            "text": self.field("text"),
            "tool_choice": self.tool_choice,
            "tools": self.tools,
            "top_logprobs": self.field("top_logprobs"),
            "top_p": self.top_p,
            "truncation": self.field("truncation"),
            "usage": usage.map(usage_value),
            "user": self.field("user"),
            "metadata": self.field("metadata"),
        })
    }
}

fn usage_value(u: &Usage) -> Value {
    json!({
        "input_tokens": u.prompt_tokens,
        "input_tokens_details": {"cached_tokens": u.cached_tokens},
        "output_tokens": u.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": u.total_tokens(),
    })
}

fn status_for(stop: StopReason) -> &'static str {
    match stop {
        StopReason::Length => "incomplete",
        _ => "completed",
    }
}

fn message_item(id: &str, text: &str, status: &str) -> Value {
    json!({"id": id, "type": "message", "status": status, "role": "assistant",
        "content": [{"type": "output_text", "annotations": [], "logprobs": [], "text": text}]})
}

fn reasoning_item(id: &str, text: &str) -> Value {
    json!({"id": id, "type": "reasoning", "summary": [],
        "content": [{"type": "reasoning_text", "text": text}]})
}

fn call_item(id: &str, call_id: &str, name: &str, arguments: &str, status: &str) -> Value {
    json!({"id": id, "type": "function_call", "status": status, "arguments": arguments,
        "call_id": call_id, "name": name})
}

/// A whole answer as a `response` object.
pub fn response_body(resp: &ChatResponse, echo: &Echo) -> Value {
    let output: Vec<Value> = resp
        .parts
        .iter()
        .filter(|p| !matches!(p, Part::Image { .. } | Part::ToolResult { .. }))
        .enumerate()
        .filter_map(|(index, p)| match p {
            Part::Text { text } => {
                Some(message_item(&echo.item_id("msg", index), text, "completed"))
            }
            Part::Reasoning { text, .. } => Some(reasoning_item(&echo.item_id("rs", index), text)),
            Part::ToolCall {
                id,
                name,
                arguments,
                thought_signature,
            } => Some(call_item(
                &echo.item_id("fc", index),
                &signed_call_id(id, thought_signature.as_deref()),
                name,
                arguments,
                "completed",
            )),
            Part::Image { .. } | Part::ToolResult { .. } => None,
        })
        .collect();
    echo.object(status_for(resp.stop), &output, Some(&resp.usage))
}

#[derive(Debug)]
enum Item {
    Message {
        id: String,
        text: String,
    },
    Reasoning {
        id: String,
        text: String,
    },
    Call {
        ir_index: usize,
        id: String,
        call_id: String,
        name: String,
        arguments: String,
    },
}

/// Writes IR events as the Responses event stream.
#[derive(Debug)]
pub struct ResponsesStreamWriter {
    echo: Echo,
    seq: u64,
    started: bool,
    ended: bool,
    /// The item being written (its output index is `done.len()`).
    open: Option<Item>,
    /// Finished items, as `output` will list them.
    done: Vec<Value>,
    /// Calls that finished before more of their arguments came (rare; kept, not lost).
    usage: Option<Usage>,
}

impl ResponsesStreamWriter {
    pub fn new(echo: Echo) -> ResponsesStreamWriter {
        ResponsesStreamWriter {
            echo,
            seq: 0,
            started: false,
            ended: false,
            open: None,
            done: Vec::new(),
            usage: None,
        }
    }

    fn event(&mut self, out: &mut Vec<u8>, name: &str, mut data: Value) {
        if let Some(obj) = data.as_object_mut() {
            let mut ordered = serde_json::Map::new();
            ordered.insert("type".into(), name.into());
            ordered.insert("sequence_number".into(), self.seq.into());
            for (k, v) in std::mem::take(obj) {
                ordered.insert(k, v);
            }
            *obj = ordered;
        }
        self.seq += 1;
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"\ndata: ");
        let _ = serde_json::to_writer(&mut *out, &data);
        out.extend_from_slice(b"\n\n");
    }

    fn start(&mut self, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        let obj = self.echo.object("in_progress", &[], None);
        self.event(out, "response.created", json!({"response": obj}));
        let obj = self.echo.object("in_progress", &[], None);
        self.event(out, "response.in_progress", json!({"response": obj}));
    }

    fn close(&mut self, out: &mut Vec<u8>) {
        let Some(item) = self.open.take() else {
            return;
        };
        let index = self.done.len();
        let finished = match item {
            Item::Message { id, text } => {
                self.event(
                    out,
                    "response.output_text.done",
                    json!({"item_id": id, "output_index": index, "content_index": 0, "text": text, "logprobs": []}),
                );
                self.event(
                    out,
                    "response.content_part.done",
                    json!({"item_id": id, "output_index": index, "content_index": 0,
                        "part": {"type": "output_text", "annotations": [], "logprobs": [], "text": text}}),
                );
                message_item(&id, &text, "completed")
            }
            Item::Reasoning { id, text } => {
                self.event(
                    out,
                    "response.reasoning_text.done",
                    json!({"item_id": id, "output_index": index, "content_index": 0, "text": text}),
                );
                reasoning_item(&id, &text)
            }
            Item::Call {
                id,
                call_id,
                name,
                arguments,
                ..
            } => {
                let arguments = if arguments.trim().is_empty() {
                    "{}".to_owned()
                } else {
                    arguments
                };
                self.event(
                    out,
                    "response.function_call_arguments.done",
                    json!({"item_id": id, "output_index": index, "name": name, "arguments": arguments}),
                );
                call_item(&id, &call_id, &name, &arguments, "completed")
            }
        };
        self.event(
            out,
            "response.output_item.done",
            json!({"output_index": index, "item": finished}),
        );
        self.done.push(finished);
    }

    /// Appends the bytes for `event` to `out`.
    pub fn write(&mut self, event: &StreamEvent, out: &mut Vec<u8>) {
        if self.ended {
            return;
        }
        self.start(out);
        let index = self.done.len();
        match event {
            StreamEvent::Start { .. } => {}
            StreamEvent::TextDelta { text } => {
                if !matches!(self.open, Some(Item::Message { .. })) {
                    self.close(out);
                    let index = self.done.len();
                    let id = self.echo.item_id("msg", index);
                    self.event(
                        out,
                        "response.output_item.added",
                        json!({"output_index": index, "item": {"id": id, "type": "message",
                            "status": "in_progress", "content": [], "role": "assistant"}}),
                    );
                    self.event(
                        out,
                        "response.content_part.added",
                        json!({"item_id": id, "output_index": index, "content_index": 0,
                            "part": {"type": "output_text", "annotations": [], "logprobs": [], "text": ""}}),
                    );
                    self.open = Some(Item::Message {
                        id,
                        text: String::new(),
                    });
                }
                let index = self.done.len();
                if let Some(Item::Message { id, text: all }) = &mut self.open {
                    all.push_str(text);
                    let id = id.clone();
                    self.event(
                        out,
                        "response.output_text.delta",
                        json!({"item_id": id, "output_index": index, "content_index": 0, "delta": text, "logprobs": []}),
                    );
                }
            }
            StreamEvent::ReasoningDelta { text } => {
                if !matches!(self.open, Some(Item::Reasoning { .. })) {
                    self.close(out);
                    let index = self.done.len();
                    let id = self.echo.item_id("rs", index);
                    self.event(
                        out,
                        "response.output_item.added",
                        json!({"output_index": index, "item": {"id": id, "type": "reasoning", "summary": []}}),
                    );
                    self.open = Some(Item::Reasoning {
                        id,
                        text: String::new(),
                    });
                }
                let index = self.done.len();
                if let Some(Item::Reasoning { id, text: all }) = &mut self.open {
                    all.push_str(text);
                    let id = id.clone();
                    self.event(
                        out,
                        "response.reasoning_text.delta",
                        json!({"item_id": id, "output_index": index, "content_index": 0, "delta": text}),
                    );
                }
            }
            // Anthropic's signature has no place in a Responses stream.
            StreamEvent::ReasoningSignature { .. } => {}
            StreamEvent::ToolCallStart {
                index: ir_index,
                id: call_id,
                name,
                thought_signature,
            } => {
                let call_id = &signed_call_id(call_id, thought_signature.as_deref());
                self.close(out);
                let index = self.done.len();
                let id = self.echo.item_id("fc", index);
                self.event(
                    out,
                    "response.output_item.added",
                    json!({"output_index": index, "item": call_item(&id, call_id, name, "", "in_progress")}),
                );
                self.open = Some(Item::Call {
                    ir_index: *ir_index,
                    id,
                    call_id: call_id.clone(),
                    name: name.clone(),
                    arguments: String::new(),
                });
            }
            StreamEvent::ToolCallArgs {
                index: ir_index,
                fragment,
            } => {
                if let Some(Item::Call {
                    ir_index: open,
                    id,
                    arguments,
                    ..
                }) = &mut self.open
                {
                    if open == ir_index {
                        arguments.push_str(fragment);
                        let id = id.clone();
                        self.event(
                            out,
                            "response.function_call_arguments.delta",
                            json!({"item_id": id, "output_index": index, "delta": fragment}),
                        );
                    }
                }
            }
            StreamEvent::Usage(u) => self.usage = Some(*u),
            StreamEvent::Stop { reason } => {
                self.close(out);
                self.ended = true;
                let status = status_for(*reason);
                let obj = self.echo.object(status, &self.done, self.usage.as_ref());
                let name = if status == "incomplete" {
                    "response.incomplete"
                } else {
                    "response.completed"
                };
                self.event(out, name, json!({"response": obj}));
            }
            StreamEvent::Error { message } => {
                self.ended = true;
                self.event(
                    out,
                    "error",
                    json!({"error": {"type": "server_error", "code": "server_error", "message": message, "param": null}}),
                );
                let mut obj = self.echo.object("failed", &self.done, self.usage.as_ref());
                obj["error"] = json!({"code": "server_error", "message": message});
                self.event(out, "response.failed", json!({"response": obj}));
            }
        }
    }
}

typed::string_or_seq!(
    Input,
    Text,
    Items,
    InputItem,
    "a string or an array of input items"
);
typed::string_or_seq!(
    ItemContent,
    Text,
    Parts,
    ContentPart,
    "a string or an array of content parts"
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::wire::sse::SseParser;

    const FIXTURE_REQUEST: &str =
        include_str!("../../../tests/fixtures/openai-responses/request.json");

    #[test]
    fn the_recorded_function_call_loop_becomes_the_ir() {
        let mut v: Value = serde_json::from_str(FIXTURE_REQUEST).unwrap();
        v["store"] = json!(false);
        let req = parse(v.to_string().as_bytes()).unwrap();
        let ir = req.to_ir().unwrap();
        assert_eq!(
            ir.system,
            vec!["You are a helpful assistant that reports weather updates.".to_string()]
        );
        assert_eq!(ir.messages.len(), 3);
        assert_eq!(
            ir.messages[1].parts,
            vec![Part::ToolCall {
                id: "call_5dp5Uj0Loqn1YcyIpqSq6sLX".into(),
                name: "get_weather".into(),
                arguments: "{ \"location\": \"New York City, USA\" }".into(),
                thought_signature: None,
            }]
        );
        assert!(
            matches!(&ir.messages[2].parts[0], Part::ToolResult { content, .. } if content == "\"Sunny\"")
        );
        assert!(ir.stream);
    }

    #[test]
    fn fields_the_ir_does_not_model_are_kept_for_a_responses_provider() {
        let req = parse(
            json!({"model": "m", "input": "hi", "store": false, "metadata": {"run": "7"},
                "truncation": "auto", "text": {"format": {"type": "json_object"}},
                "include": ["reasoning.encrypted_content"], "parallel_tool_calls": false,
                "max_output_tokens": 64})
            .to_string()
            .as_bytes(),
        )
        .unwrap();
        let ir = req.to_ir().unwrap();
        assert_eq!(
            ir.extras,
            SameApiExtras::OpenAiResponses {
                fields: json!({"metadata": {"run": "7"}, "truncation": "auto",
                    "text": {"format": {"type": "json_object"}},
                    "include": ["reasoning.encrypted_content"], "parallel_tool_calls": false})
                .as_object()
                .cloned()
                .unwrap(),
                server_tools: vec![],
            }
        );
        assert_eq!(ir.sampling.max_tokens, Some(64));
    }

    fn param(body: Value) -> Option<String> {
        match parse(body.to_string().as_bytes()).unwrap_err() {
            WireError::BadRequest { param, .. } => param,
        }
    }

    #[test]
    fn stored_state_is_refused_and_each_mistyped_field_is_named() {
        assert_eq!(
            param(json!({"input": "hi", "previous_response_id": "resp_1"})).as_deref(),
            Some("previous_response_id")
        );
        assert_eq!(
            param(json!({"input": "hi", "store": true})).as_deref(),
            Some("store")
        );
        for (field, value) in [
            ("model", json!(1)),
            ("input", json!(5)),
            ("instructions", json!([])),
            ("tools", json!("f")),
            ("tool_choice", json!(3)),
            ("max_output_tokens", json!("ten")),
            ("temperature", json!("hot")),
            ("top_p", json!({})),
            ("reasoning", json!("high")),
            ("stream", json!("yes")),
            ("store", json!("no")),
            ("parallel_tool_calls", json!(1)),
        ] {
            let mut body = json!({"model": "m", "input": "hi"});
            body[field] = value;
            assert_eq!(param(body).as_deref(), Some(field), "{field}");
        }
        assert_eq!(
            param(
                json!({"input": [{"type": "function_call_output", "call_id": 5, "output": "x"}]})
            )
            .as_deref(),
            Some("input[0].call_id")
        );
    }

    #[test]
    fn a_tool_answer_streams_with_sequence_numbers_and_completed_items() {
        let echo = Echo {
            id: "resp_1".into(),
            created_at: 1,
            model: "ollama/m".into(),
            instructions: None,
            max_output_tokens: None,
            temperature: None,
            top_p: None,
            tools: Vec::new(),
            effort: None,
            summary: None,
            tool_choice: json!("auto"),
            parallel_tool_calls: true,
            fields: Map::new(),
        };
        let mut w = ResponsesStreamWriter::new(echo);
        let mut bytes = Vec::new();
        for e in [
            StreamEvent::TextDelta { text: "Hi".into() },
            StreamEvent::ToolCallStart {
                index: 0,
                id: "call_1".into(),
                name: "f".into(),
                thought_signature: None,
            },
            StreamEvent::ToolCallArgs {
                index: 0,
                fragment: "{\"a\":".into(),
            },
            StreamEvent::ToolCallArgs {
                index: 0,
                fragment: "1}".into(),
            },
            StreamEvent::Stop {
                reason: StopReason::ToolCalls,
            },
        ] {
            w.write(&e, &mut bytes);
        }
        let events: Vec<(String, Value)> = SseParser::new()
            .push(&bytes)
            .into_iter()
            .map(|e| (e.event.unwrap(), serde_json::from_str(&e.data).unwrap()))
            .collect();
        for (i, (name, data)) in events.iter().enumerate() {
            assert_eq!(data["sequence_number"], i as u64);
            assert_eq!(data["type"], name.as_str());
        }
        let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.delta",
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.output_item.added",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.done",
                "response.output_item.done",
                "response.completed"
            ]
        );
        let completed = &events.last().unwrap().1["response"];
        assert_eq!(completed["output"][1]["arguments"], "{\"a\":1}");
        assert_eq!(completed["output"][1]["call_id"], "call_1");
        assert_eq!(completed["status"], "completed");
    }

    #[test]
    fn the_response_object_echoes_what_the_request_sent_and_defaults_only_the_rest() {
        let req = parse(
            br#"{"model":"m","input":"hi","store":false,"metadata":{"run":"r-7"},
                "truncation":"auto","parallel_tool_calls":false,"tool_choice":"required",
                "text":{"verbosity":"low"},"user":"u-1","prompt_cache_key":"k",
                "service_tier":"flex","top_logprobs":2,"max_tool_calls":3,
                "reasoning":{"effort":"low","summary":"auto"},
                "tools":[{"type":"function","name":"f","parameters":{"type":"object"}}]}"#,
        )
        .unwrap();
        let echo = Echo::new(&req, "ollama/m");
        let resp = ChatResponse {
            id: String::new(),
            model: String::new(),
            parts: vec![Part::Text { text: "ok".into() }],
            stop: StopReason::Stop,
            usage: Usage::default(),
        };
        let body = response_body(&resp, &echo);
        assert_eq!(body["metadata"], json!({"run": "r-7"}));
        assert_eq!(body["truncation"], "auto");
        assert_eq!(body["parallel_tool_calls"], false);
        assert_eq!(body["tool_choice"], "required");
        assert_eq!(
            body["text"],
            json!({"verbosity": "low", "format": {"type": "text"}})
        );
        assert_eq!(body["user"], "u-1");
        assert_eq!(body["prompt_cache_key"], "k");
        assert_eq!(body["service_tier"], "flex");
        assert_eq!(body["top_logprobs"], 2);
        assert_eq!(body["max_tool_calls"], 3);
        assert_eq!(
            body["reasoning"],
            json!({"effort": "low", "summary": "auto"})
        );
        assert_eq!(body["tools"][0]["name"], "f");

        // Absent: OpenAI's defaults, as in the captured response.
        let bare = Echo::new(&parse(br#"{"model":"m","input":"hi"}"#).unwrap(), "m");
        let body = response_body(&resp, &bare);
        for (key, value) in [
            ("metadata", json!({})),
            ("truncation", json!("disabled")),
            ("parallel_tool_calls", json!(true)),
            ("tool_choice", json!("auto")),
            (
                "text",
                json!({"format": {"type": "text"}, "verbosity": "medium"}),
            ),
            ("user", Value::Null),
            ("service_tier", json!("default")),
            ("top_logprobs", json!(0)),
            ("background", json!(false)),
        ] {
            assert_eq!(body[key], value, "{key}");
        }
    }

    #[test]
    fn built_in_tools_are_not_ir_tools_but_go_to_a_responses_provider_as_sent() {
        let req = parse(
            br#"{"model":"m","input":"news?","reasoning":{"effort":"low","summary":"auto"},
                "tools":[{"type":"function","name":"f"},
                {"type":"web_search","search_context_size":"low"},{"type":"file_search","vector_store_ids":["vs_1"]}]}"#,
        )
        .unwrap();
        let ir = req.to_ir().unwrap();
        assert_eq!(ir.tools.len(), 1);
        assert_eq!(ir.extras.server_tool_types(), ["web_search", "file_search"]);
        let mut body = Map::new();
        body.insert("reasoning".into(), json!({"effort": "low"}));
        ir.extras.add_to_openai_responses(&mut body);
        assert_eq!(
            body["reasoning"],
            json!({"effort": "low", "summary": "auto"})
        );
        assert_eq!(
            body["tools"],
            json!([{"type": "web_search", "search_context_size": "low"},
                {"type": "file_search", "vector_store_ids": ["vs_1"]}])
        );
    }
}

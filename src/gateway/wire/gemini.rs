//! OpenAI chat completions ⇄ Google Gemini `generateContent`, both ways, streaming included
//! (SPEC §5, `shared/notes/protocols.md` §3–4).
//!
//! Gemini has no tool call ids: ids are invented (`call_…`) on the way in, and on the way out a
//! tool result finds its function's name through the id of the call it answers. Function
//! parameters are JSON Schema in OpenAI's format but Gemini takes an OpenAPI subset and refuses
//! the rest (`$schema`, `additionalProperties`, …), so schemas are narrowed to that subset.

use std::collections::HashMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::openai::{
    self, arguments_object, content_parts, parse_data_url, ChunkWriter, Delta, FunctionDelta, Part,
    ToolCallDelta,
};
use super::sse::{SseEvent, SSE_DONE};
use super::{TranslateEvent, Usage, WireError};

// ---------------------------------------------------------------------------------------------
// Request

/// The body of `generateContent` / `streamGenerateContent`.
#[derive(Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GenerateRequest {
    pub contents: Vec<Content>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system_instruction: Option<Content>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<Tool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_config: Option<ToolConfig>,
    #[serde(skip_serializing_if = "GenerationConfig::is_empty")]
    pub generation_config: GenerationConfig,
}

#[derive(Debug, Serialize, Deserialize, PartialEq, Default)]
pub struct Content {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default)]
    pub parts: Vec<WirePart>,
}

/// One part. Exactly one data field is set; `thought`/`thoughtSignature` qualify it.
#[derive(Debug, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct WirePart {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inline_data: Option<InlineData>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function_call: Option<FunctionCall>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function_response: Option<FunctionResponse>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thought: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thought_signature: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct InlineData {
    pub mime_type: String,
    pub data: String,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct FunctionCall {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub args: Option<Value>,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct FunctionResponse {
    pub name: String,
    pub response: Value,
}

#[derive(Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Tool {
    pub function_declarations: Vec<FunctionDeclaration>,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct FunctionDeclaration {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Value>,
}

#[derive(Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ToolConfig {
    pub function_calling_config: FunctionCallingConfig,
}

#[derive(Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FunctionCallingConfig {
    pub mode: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allowed_function_names: Vec<String>,
}

#[derive(Debug, Serialize, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct GenerationConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_k: Option<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stop_sequences: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub presence_penalty: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frequency_penalty: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_mime_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thinking_config: Option<ThinkingConfig>,
}

/// `generationConfig.thinkingConfig`.
#[derive(Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ThinkingConfig {
    pub thinking_budget: u64,
    /// Thought summaries come back as reasoning, which the client asked for by giving an effort.
    pub include_thoughts: bool,
}

/// An OpenAI reasoning effort as a Gemini thinking budget: Google's own OpenAI-compatible
/// mapping (low → 1024, medium → 8192, high → 24576; `none` see below). `thinkingBudget` rather
/// than Gemini 3's `thinkingLevel`, because 2.5 models refuse the level and 3 models still
/// take the budget. Unknown efforts send nothing (the model's default).
fn thinking_config(req: &Value) -> Option<ThinkingConfig> {
    let effort = req
        .get("reasoning_effort")
        .or_else(|| req.pointer("/reasoning/effort"))
        .and_then(Value::as_str)?;
    let budget = match effort {
        // Off has no safe word here: a zero budget turns thinking off on Flash models, but
        // 2.5 Pro and 3 Pro refuse it ("Budget 0 is invalid. This model only works in
        // thinking mode."), so the model's default stands.
        "none" => return None,
        "minimal" => 512,
        "low" => 1024,
        "medium" => 8192,
        "high" | "xhigh" | "max" => 24576,
        _ => return None,
    };
    Some(ThinkingConfig {
        thinking_budget: budget,
        include_thoughts: budget > 0,
    })
}

impl GenerationConfig {
    fn is_empty(&self) -> bool {
        *self == GenerationConfig::default()
    }
}

/// The Gemini request for an OpenAI chat request.
///
/// System and developer messages become `systemInstruction`; `assistant` turns become `model`
/// turns with `functionCall` parts; tool results become `functionResponse` parts of one user
/// turn (named after the call they answer); consecutive turns of one role are merged.
pub fn generate_request(req: &Value) -> Result<GenerateRequest, WireError> {
    let Some(messages) = req.get("messages").and_then(Value::as_array) else {
        return Err(WireError::bad_request(
            "Missing required parameter: 'messages'.",
            Some("messages".into()),
        ));
    };
    let mut system: Vec<WirePart> = Vec::new();
    let mut contents: Vec<Content> = Vec::new();
    // tool call id → function name, for the results that answer them.
    let mut call_names: HashMap<&str, &str> = HashMap::new();
    for (i, message) in messages.iter().enumerate() {
        let param = format!("messages[{i}]");
        let content_param = format!("{param}.content");
        let role = message.get("role").and_then(Value::as_str).unwrap_or("");
        match role {
            "system" | "developer" => {
                for part in content_parts(message.get("content"), &content_param)? {
                    match part {
                        Part::Text(text) if !text.trim().is_empty() => system.push(text_part(text)),
                        Part::Text(_) => {}
                        Part::Image(_) => {
                            return Err(WireError::bad_request(
                                format!("'{content_param}' has an image; Gemini system instructions take text only. Send images in a user message."),
                                Some(content_param),
                            ))
                        }
                    }
                }
            }
            "user" => {
                let parts = user_parts(message.get("content"), &content_param)?;
                push_turn(&mut contents, "user", parts);
            }
            "assistant" => {
                let mut parts: Vec<WirePart> = content_parts(message.get("content"), &content_param)?
                    .into_iter()
                    .filter_map(|p| match p {
                        Part::Text(t) if !t.is_empty() => Some(text_part(t)),
                        _ => None,
                    })
                    .collect();
                for (j, call) in message
                    .get("tool_calls")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .enumerate()
                {
                    let call_param = format!("{param}.tool_calls[{j}]");
                    let function = call.get("function");
                    let name = function
                        .and_then(|f| f.get("name"))
                        .and_then(Value::as_str)
                        .ok_or_else(|| {
                            WireError::bad_request(
                                format!("Missing required parameter: '{call_param}.function.name'."),
                                Some(format!("{call_param}.function.name")),
                            )
                        })?;
                    if let Some(id) = call.get("id").and_then(Value::as_str) {
                        call_names.insert(id, name);
                    }
                    let args = arguments_object(
                        function.and_then(|f| f.get("arguments")),
                        &format!("{call_param}.function.arguments"),
                    )?;
                    // The signature the call came with (Google's OpenAI-compatible place for
                    // it), else the documented stand-in for a call whose signature is unknown.
                    let signature = call
                        .pointer("/extra_content/google/thought_signature")
                        .and_then(Value::as_str)
                        .filter(|s| !s.is_empty())
                        .unwrap_or(SKIP_THOUGHT_SIGNATURE);
                    parts.push(WirePart {
                        function_call: Some(FunctionCall {
                            name: name.to_owned(),
                            args: Some(args),
                        }),
                        thought_signature: Some(signature.to_owned()),
                        ..WirePart::default()
                    });
                }
                push_turn(&mut contents, "model", parts);
            }
            "tool" => {
                let call_id = message.get("tool_call_id").and_then(Value::as_str);
                let name = message
                    .get("name")
                    .and_then(Value::as_str)
                    .or_else(|| call_id.and_then(|id| call_names.get(id).copied()))
                    .ok_or_else(|| {
                        WireError::bad_request(
                            format!("'{param}' answers tool call {:?}, which no earlier assistant message made; Gemini needs the function's name for each result.", call_id.unwrap_or("")),
                            Some(format!("{param}.tool_call_id")),
                        )
                    })?;
                let text: String = content_parts(message.get("content"), &content_param)?
                    .into_iter()
                    .filter_map(|p| match p {
                        Part::Text(t) => Some(t),
                        Part::Image(_) => None,
                    })
                    .collect::<Vec<_>>()
                    .join("\n");
                push_turn(
                    &mut contents,
                    "user",
                    vec![WirePart {
                        function_response: Some(FunctionResponse {
                            name: name.to_owned(),
                            response: result_object(&text),
                        }),
                        ..WirePart::default()
                    }],
                );
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
    if contents.is_empty() {
        return Err(WireError::bad_request(
            "'messages' has no user or assistant content; Gemini models need at least one non-empty user message.",
            Some("messages".into()),
        ));
    }

    let declarations: Vec<FunctionDeclaration> = req
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(function_declaration)
        .collect();
    let tool_config = if declarations.is_empty() {
        None
    } else {
        tool_config(req)
    };
    let tools = if declarations.is_empty() {
        Vec::new()
    } else {
        vec![Tool {
            function_declarations: declarations,
        }]
    };

    let number = |key: &str| req.get(key).and_then(Value::as_f64);
    let stop_sequences: Vec<String> = match req.get("stop") {
        Some(Value::String(stop)) => vec![stop.clone()],
        Some(Value::Array(stops)) => stops
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    };
    let json_mode = matches!(
        req.pointer("/response_format/type").and_then(Value::as_str),
        Some("json_object" | "json_schema")
    );
    let generation_config = GenerationConfig {
        max_output_tokens: openai::max_output_tokens(req),
        temperature: number("temperature"),
        top_p: number("top_p"),
        top_k: req.get("top_k").and_then(openai::as_count),
        stop_sequences: stop_sequences
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect(),
        seed: req.get("seed").and_then(Value::as_i64),
        presence_penalty: number("presence_penalty"),
        frequency_penalty: number("frequency_penalty"),
        response_mime_type: json_mode.then_some("application/json"),
        thinking_config: thinking_config(req),
    };
    Ok(GenerateRequest {
        contents,
        system_instruction: (!system.is_empty()).then_some(Content {
            role: None,
            parts: system,
        }),
        tools,
        tool_config,
        generation_config,
    })
}

/// Gemini 3 refuses a replayed `functionCall` without the `thoughtSignature` it came with
/// ("Function call is missing a thought_signature"). Calls that come back with theirs
/// (`extra_content.google.thought_signature`) send it; for the others (a trace from another
/// model, or a client that dropped it) history says so with the value Google documents for
/// calls whose signature is unknown.
pub const SKIP_THOUGHT_SIGNATURE: &str = "skip_thought_signature_validator";

fn text_part(text: &str) -> WirePart {
    WirePart {
        text: Some(text.to_owned()),
        ..WirePart::default()
    }
}

/// A tool's output as the object `functionResponse.response` must be: a JSON object as is,
/// anything else under `result`.
fn result_object(text: &str) -> Value {
    match serde_json::from_str::<Value>(text) {
        Ok(v @ Value::Object(_)) => v,
        _ => json!({ "result": text }),
    }
}

fn user_parts(content: Option<&Value>, param: &str) -> Result<Vec<WirePart>, WireError> {
    content_parts(content, param)?
        .into_iter()
        .filter(|p| !matches!(p, Part::Text(t) if t.is_empty()))
        .map(|part| match part {
            Part::Text(text) => Ok(text_part(text)),
            Part::Image(url) => match parse_data_url(url) {
                Some((mime_type, data)) => Ok(WirePart {
                    inline_data: Some(InlineData {
                        mime_type: mime_type.to_owned(),
                        data: data.to_owned(),
                    }),
                    ..WirePart::default()
                }),
                None => Err(WireError::bad_request(
                    format!("An image in '{param}' is not a base64 data: URL; Gemini takes images inline only. Send the image as data:<type>;base64,…"),
                    Some(param.to_owned()),
                )),
            },
        })
        .collect()
}

/// Appends to the last turn when it has the same role; empty turns are dropped.
fn push_turn(contents: &mut Vec<Content>, role: &str, parts: Vec<WirePart>) {
    if parts.is_empty() {
        return;
    }
    match contents.last_mut() {
        Some(last) if last.role.as_deref() == Some(role) => last.parts.extend(parts),
        _ => contents.push(Content {
            role: Some(role.to_owned()),
            parts,
        }),
    }
}

fn function_declaration(tool: &Value) -> Option<FunctionDeclaration> {
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
    let parameters = function
        .get("parameters")
        .map(gemini_schema)
        // An object without properties is refused ("properties: should be non-empty for
        // OBJECT type"); a function without parameters says the same thing.
        .filter(|s| {
            s.get("type").and_then(Value::as_str) != Some("object")
                || s.get("properties")
                    .and_then(Value::as_object)
                    .is_some_and(|p| !p.is_empty())
        });
    Some(FunctionDeclaration {
        name: name.to_owned(),
        description: function
            .get("description")
            .and_then(Value::as_str)
            .map(str::to_owned),
        parameters,
    })
}

/// Keywords of Gemini's `Schema` (the OpenAPI 3 subset `parameters` accepts).
const SCHEMA_KEYWORDS: &[&str] = &[
    "type",
    "format",
    "title",
    "description",
    "nullable",
    "enum",
    "maxItems",
    "minItems",
    "properties",
    "required",
    "minProperties",
    "maxProperties",
    "minLength",
    "maxLength",
    "pattern",
    "example",
    "anyOf",
    "propertyOrdering",
    "default",
    "items",
    "minimum",
    "maximum",
];

/// A JSON Schema narrowed to what Gemini accepts: unknown keywords (`$schema`,
/// `additionalProperties`, `patternProperties`, …) dropped at every depth, `const` as a
/// one-value `enum`, `type: [T, "null"]` as `type: T` + `nullable`, non-string enum values
/// dropped, `required` limited to the properties that exist.
pub fn gemini_schema(schema: &Value) -> Value {
    let Some(obj) = schema.as_object() else {
        return json!({});
    };
    let mut out = Map::new();
    for (key, value) in obj {
        match key.as_str() {
            "properties" => {
                let props: Map<String, Value> = value
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, v)| (k.clone(), gemini_schema(v)))
                    .collect();
                out.insert(key.clone(), Value::Object(props));
            }
            "items" => {
                out.insert(key.clone(), gemini_schema(value));
            }
            "anyOf" | "oneOf" => {
                let alts: Vec<Value> = value
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(gemini_schema)
                    .collect();
                out.insert("anyOf".into(), Value::Array(alts));
            }
            "type" => match value {
                Value::String(_) => {
                    out.insert(key.clone(), value.clone());
                }
                Value::Array(types) => {
                    let mut concrete = types
                        .iter()
                        .filter_map(Value::as_str)
                        .filter(|t| *t != "null");
                    if let Some(first) = concrete.next() {
                        out.insert(key.clone(), first.into());
                    }
                    if types.iter().any(|t| t == "null") {
                        out.insert("nullable".into(), true.into());
                    }
                }
                _ => {}
            },
            "enum" => {
                let values: Vec<Value> = value
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|v| v.is_string())
                    .cloned()
                    .collect();
                if !values.is_empty() {
                    out.insert(key.clone(), Value::Array(values));
                }
            }
            "const" if value.is_string() => {
                out.insert("enum".into(), Value::Array(vec![value.clone()]));
            }
            "const" => {}
            k if SCHEMA_KEYWORDS.contains(&k) => {
                out.insert(key.clone(), value.clone());
            }
            _ => {}
        }
    }
    if let (Some(Value::Array(required)), Some(Value::Object(props))) =
        (out.get("required"), out.get("properties"))
    {
        let kept: Vec<Value> = required
            .iter()
            .filter(|r| r.as_str().is_some_and(|r| props.contains_key(r)))
            .cloned()
            .collect();
        out.insert("required".into(), Value::Array(kept));
    }
    Value::Object(out)
}

fn tool_config(req: &Value) -> Option<ToolConfig> {
    let (mode, names) = match req.get("tool_choice") {
        Some(Value::String(choice)) => match choice.as_str() {
            "none" => ("NONE", Vec::new()),
            "required" => ("ANY", Vec::new()),
            _ => return None,
        },
        Some(Value::Object(choice)) => {
            let name = choice
                .get("function")
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str)?;
            ("ANY", vec![name.to_owned()])
        }
        _ => return None,
    };
    Some(ToolConfig {
        function_calling_config: FunctionCallingConfig {
            mode,
            allowed_function_names: names,
        },
    })
}

// ---------------------------------------------------------------------------------------------
// Response

/// A `GenerateContentResponse` (whole, or one stream chunk).
#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct GenerateResponse {
    #[serde(default)]
    pub candidates: Vec<Candidate>,
    #[serde(default)]
    pub usage_metadata: Option<UsageMetadata>,
    #[serde(default)]
    pub prompt_feedback: Option<PromptFeedback>,
    /// An error object inside a stream (python-genai treats it as the stream's failure).
    #[serde(default)]
    pub error: Option<Value>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Candidate {
    #[serde(default)]
    pub content: Option<Content>,
    #[serde(default)]
    pub finish_reason: Option<String>,
}

#[derive(Debug, Deserialize, Default, Clone, Copy)]
#[serde(rename_all = "camelCase")]
pub struct UsageMetadata {
    #[serde(default)]
    pub prompt_token_count: u64,
    #[serde(default)]
    pub candidates_token_count: u64,
    #[serde(default)]
    pub thoughts_token_count: u64,
    #[serde(default)]
    pub tool_use_prompt_token_count: u64,
    #[serde(default)]
    pub cached_content_token_count: u64,
}

impl UsageMetadata {
    pub fn usage(&self) -> Usage {
        Usage {
            prompt_tokens: self
                .prompt_token_count
                .saturating_add(self.tool_use_prompt_token_count),
            completion_tokens: self
                .candidates_token_count
                .saturating_add(self.thoughts_token_count),
            cached_tokens: self.cached_content_token_count,
        }
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct PromptFeedback {
    #[serde(default)]
    pub block_reason: Option<String>,
}

/// How an answer ended, in OpenAI's terms, or why it is a failure.
fn finish_reason(reason: Option<&str>, has_calls: bool) -> Result<&'static str, String> {
    match reason {
        Some("MAX_TOKENS") => Ok("length"),
        Some(
            "SAFETY"
            | "RECITATION"
            | "BLOCKLIST"
            | "PROHIBITED_CONTENT"
            | "SPII"
            | "IMAGE_SAFETY"
            | "IMAGE_PROHIBITED_CONTENT"
            | "IMAGE_RECITATION"
            | "LANGUAGE",
        ) => Ok("content_filter"),
        Some(
            bad @ ("MALFORMED_FUNCTION_CALL" | "UNEXPECTED_TOOL_CALL" | "TOO_MANY_TOOL_CALLS"),
        ) => Err(format!("Gemini ended the answer with finishReason {bad}")),
        // A function call ends with STOP: tool calls are told by their parts.
        _ if has_calls => Ok("tool_calls"),
        _ => Ok("stop"),
    }
}

/// A non-streamed Gemini answer as an OpenAI `chat.completion`; `Err` when it is a failure
/// (an error object, a malformed function call).
pub fn generate_response(resp: &GenerateResponse, model_ref: &str) -> Result<Value, String> {
    if let Some(error) = &resp.error {
        return Err(error_text(error));
    }
    let mut text = String::new();
    let mut thinking = String::new();
    let mut calls = Vec::new();
    let candidate = resp.candidates.first();
    for part in candidate
        .and_then(|c| c.content.as_ref())
        .map(|c| c.parts.as_slice())
        .unwrap_or(&[])
    {
        if let Some(t) = &part.text {
            if part.thought == Some(true) {
                thinking.push_str(t);
            } else {
                text.push_str(t);
            }
        }
        if let Some(call) = &part.function_call {
            let mut value = super::ir::tool_call_value(
                &openai::new_call_id(),
                &call.name,
                &arguments_text(call.args.as_ref()),
                part.thought_signature.as_deref(),
            );
            if let Some(obj) = value.as_object_mut() {
                obj.insert("index".into(), calls.len().into());
            }
            calls.push(value);
        }
    }
    let reason = match candidate {
        None if resp
            .prompt_feedback
            .as_ref()
            .is_some_and(|f| f.block_reason.is_some()) =>
        {
            "content_filter"
        }
        None => return Err("Gemini answered without a candidate".into()),
        Some(c) => finish_reason(c.finish_reason.as_deref(), !calls.is_empty())?,
    };
    let mut message = Map::new();
    message.insert("role".into(), "assistant".into());
    message.insert("content".into(), text.into());
    if !thinking.is_empty() {
        message.insert("reasoning".into(), thinking.into());
    }
    if !calls.is_empty() {
        message.insert("tool_calls".into(), Value::Array(calls));
    }
    let usage = resp.usage_metadata.map(|u| u.usage()).unwrap_or_default();
    Ok(openai::completion(model_ref, message, reason, &usage))
}

fn arguments_text(args: Option<&Value>) -> String {
    match args {
        Some(v @ Value::Object(_)) => v.to_string(),
        _ => "{}".to_owned(),
    }
}

/// Turns Gemini's `alt=sse` stream into OpenAI `chat.completion.chunk` events, one event at a
/// time. Usage is cumulative on every chunk (the last is kept); the chunk with `finishReason`
/// ends the answer.
#[derive(Debug)]
pub struct GeminiStreamTranslator {
    chunks: ChunkWriter,
    include_usage: bool,
    role_sent: bool,
    finished: bool,
    tool_calls: usize,
    usage: Usage,
}

impl GeminiStreamTranslator {
    pub fn new(model_ref: &str, include_usage: bool) -> GeminiStreamTranslator {
        GeminiStreamTranslator::with_writer(ChunkWriter::new(model_ref), include_usage)
    }

    pub fn with_writer(chunks: ChunkWriter, include_usage: bool) -> GeminiStreamTranslator {
        GeminiStreamTranslator {
            chunks,
            include_usage,
            role_sent: false,
            finished: false,
            tool_calls: 0,
            usage: Usage::default(),
        }
    }

    /// Translate one SSE event (one `GenerateContentResponse`).
    pub fn feed(&mut self, event: &SseEvent) -> Vec<TranslateEvent> {
        let mut out = Vec::new();
        if self.finished {
            return out;
        }
        let chunk: GenerateResponse = match serde_json::from_str(&event.data) {
            Ok(chunk) => chunk,
            Err(err) => {
                self.finished = true;
                let shown: String = event.data.chars().take(200).collect();
                out.push(TranslateEvent::UpstreamError(format!(
                    "Gemini sent a stream chunk that is not a GenerateContentResponse ({err}): {shown}"
                )));
                return out;
            }
        };
        if let Some(error) = &chunk.error {
            self.finished = true;
            out.push(TranslateEvent::UpstreamError(error_text(error)));
            return out;
        }
        if let Some(usage) = chunk.usage_metadata {
            self.usage = usage.usage();
        }
        let candidate = chunk.candidates.first();
        for part in candidate
            .and_then(|c| c.content.as_ref())
            .map(|c| c.parts.as_slice())
            .unwrap_or(&[])
        {
            if let Some(text) = part.text.as_deref().filter(|t| !t.is_empty()) {
                if part.thought == Some(true) {
                    self.push_delta(None, Some(text), None, &mut out);
                } else {
                    self.push_delta(Some(text), None, None, &mut out);
                }
            }
            if let Some(call) = &part.function_call {
                let id = openai::new_call_id();
                let arguments = arguments_text(call.args.as_ref());
                let delta = ToolCallDelta {
                    id: Some(&id),
                    index: self.tool_calls,
                    kind: Some("function"),
                    function: FunctionDelta {
                        name: Some(&call.name),
                        arguments: &arguments,
                    },
                    thought_signature: part.thought_signature.as_deref(),
                };
                self.tool_calls += 1;
                self.push_delta(None, None, Some(std::slice::from_ref(&delta)), &mut out);
            }
        }
        let reason = match candidate {
            Some(c) => c.finish_reason.as_deref(),
            // A blocked prompt: no candidates, a block reason.
            None => chunk
                .prompt_feedback
                .as_ref()
                .and_then(|f| f.block_reason.as_deref())
                .map(|_| "SAFETY"),
        };
        if let Some(reason) = reason {
            match finish_reason(Some(reason), self.tool_calls > 0) {
                Ok(reason) => self.push_finish(reason, &mut out),
                Err(message) => {
                    self.finished = true;
                    out.push(TranslateEvent::UpstreamError(message));
                }
            }
        }
        out
    }

    /// The upstream closed; before a `finishReason` that is a failure.
    pub fn finish(&mut self) -> Vec<TranslateEvent> {
        if self.finished {
            return Vec::new();
        }
        self.finished = true;
        vec![TranslateEvent::UpstreamError(
            "Gemini ended the stream before a finishReason".into(),
        )]
    }

    pub fn is_finished(&self) -> bool {
        self.finished
    }

    pub fn usage(&self) -> Usage {
        self.usage
    }

    fn push_finish(&mut self, reason: &str, out: &mut Vec<TranslateEvent>) {
        if !self.role_sent {
            self.push_delta(Some(""), None, None, out);
        }
        out.push(TranslateEvent::Sse(self.chunks.finish(reason)));
        if self.include_usage {
            out.push(TranslateEvent::Sse(self.chunks.usage(&self.usage)));
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

// ---------------------------------------------------------------------------------------------
// Errors

/// A Gemini error body `{"error":{"code","message","status","details"}}`, read for failover.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct GeminiError {
    pub message: String,
    /// `INVALID_ARGUMENT`, `RESOURCE_EXHAUSTED`, …
    pub status: Option<String>,
    /// `ErrorInfo.reason`, e.g. `API_KEY_INVALID`.
    pub reason: Option<String>,
    /// `RetryInfo.retryDelay` (Gemini sends no `Retry-After` header).
    pub retry_delay: Option<Duration>,
}

impl GeminiError {
    /// A wrong key: Gemini says so with 400 `INVALID_ARGUMENT` (`API_KEY_INVALID`).
    pub fn is_bad_key(&self) -> bool {
        self.reason.as_deref() == Some("API_KEY_INVALID")
            || self.message.starts_with("API key not valid")
            || self.message.starts_with("API key expired")
    }

    /// `The input token count (N) exceeds the maximum number of tokens allowed (M).`
    pub fn is_token_limit(&self) -> bool {
        let lower = self.message.to_ascii_lowercase();
        (lower.contains("input token count") && lower.contains("exceeds the maximum"))
            || super::is_context_overflow(&self.message)
    }
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorObject,
}

#[derive(Deserialize)]
struct ErrorObject {
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    details: Vec<Value>,
}

/// Reads a Gemini error body (or an array holding one, as the non-SSE stream method answers);
/// anything else is quoted as text.
pub fn parse_error(body: &[u8]) -> GeminiError {
    let parsed = serde_json::from_slice::<ErrorBody>(body).ok().or_else(|| {
        serde_json::from_slice::<Vec<ErrorBody>>(body)
            .ok()
            .and_then(|v| v.into_iter().next())
    });
    let Some(ErrorBody { error }) = parsed else {
        return GeminiError {
            message: super::ollama::plain_text_message(body),
            ..GeminiError::default()
        };
    };
    let mut out = GeminiError {
        message: error
            .message
            .filter(|m| !m.trim().is_empty())
            .or_else(|| error.status.clone())
            .unwrap_or_else(|| "Gemini reported an error without a message".into()),
        status: error.status,
        ..GeminiError::default()
    };
    for detail in &error.details {
        match detail.get("@type").and_then(Value::as_str) {
            Some(t) if t.ends_with("google.rpc.ErrorInfo") => {
                out.reason = detail
                    .get("reason")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
            }
            Some(t) if t.ends_with("google.rpc.RetryInfo") => {
                out.retry_delay = detail
                    .get("retryDelay")
                    .and_then(Value::as_str)
                    .and_then(|d| super::parse_delay_seconds(d.strip_suffix('s').unwrap_or(d)));
            }
            _ => {}
        }
    }
    out
}

/// The message of a Gemini error body, or the text itself.
pub fn error_message(body: &[u8]) -> String {
    parse_error(body).message
}

fn error_text(error: &Value) -> String {
    let message = error.get("message").and_then(Value::as_str);
    let status = error.get("status").and_then(Value::as_str);
    match (message, status) {
        (Some(m), Some(s)) if !m.trim().is_empty() => format!("{m} ({s})"),
        (Some(m), None) if !m.trim().is_empty() => m.to_owned(),
        (_, Some(s)) => s.to_owned(),
        _ => format!("Gemini reported an error without a message: {error}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/gemini")
            .join(name);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    #[test]
    fn chat_request_becomes_gemini_request() {
        let req = json!({
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "Weather in Tokyo?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}}]},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "getWeather", "arguments": "{\"location\":\"Tokyo\"}"}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "{\"temperature\":22}"},
                {"role": "tool", "tool_call_id": "call_1", "content": "cloudy"}
            ],
            "tools": [{"type": "function", "function": {"name": "getWeather", "description": "Weather",
                "parameters": {"$schema": "http://json-schema.org/draft-07/schema#", "type": "object",
                    "additionalProperties": false,
                    "properties": {"location": {"type": "string"}, "unit": {"type": ["string", "null"], "const": "c"},
                        "tags": {"type": "array", "items": {"type": "string", "additionalProperties": false}},
                        "extra": {"type": "object", "patternProperties": {"^x": {"type": "string"}}}},
                    "required": ["location", "gone"]}}}],
            "tool_choice": {"type": "function", "function": {"name": "getWeather"}},
            "max_completion_tokens": 100, "temperature": 0.2, "top_p": 0.9, "stop": ["END"]
        });
        let body = serde_json::to_value(generate_request(&req).unwrap()).unwrap();
        assert_eq!(
            body,
            json!({
                "systemInstruction": {"parts": [{"text": "Be brief."}]},
                "contents": [
                    {"role": "user", "parts": [{"text": "Weather in Tokyo?"}, {"inlineData": {"mimeType": "image/png", "data": "iVBO"}}]},
                    {"role": "model", "parts": [{"functionCall": {"name": "getWeather", "args": {"location": "Tokyo"}},
                        "thoughtSignature": "skip_thought_signature_validator"}]},
                    {"role": "user", "parts": [
                        {"functionResponse": {"name": "getWeather", "response": {"temperature": 22}}},
                        {"functionResponse": {"name": "getWeather", "response": {"result": "cloudy"}}}]}
                ],
                "tools": [{"functionDeclarations": [{"name": "getWeather", "description": "Weather",
                    "parameters": {"type": "object",
                        "properties": {"location": {"type": "string"}, "unit": {"type": "string", "nullable": true, "enum": ["c"]},
                            "tags": {"type": "array", "items": {"type": "string"}},
                            "extra": {"type": "object"}},
                        "required": ["location"]}}]}],
                "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["getWeather"]}},
                "generationConfig": {"maxOutputTokens": 100, "temperature": 0.2, "topP": 0.9, "stopSequences": ["END"]}
            })
        );
    }

    #[test]
    fn untranslatable_requests_are_bad_requests() {
        let orphan = json!({"messages": [{"role": "user", "content": "hi"},
            {"role": "tool", "tool_call_id": "call_9", "content": "x"}]});
        assert_eq!(generate_request(&orphan).unwrap_err().status(), 400);
        let url_image = json!({"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]}]});
        assert!(generate_request(&url_image).is_err());
        let system_only = json!({"messages": [{"role": "system", "content": "x"}]});
        assert!(generate_request(&system_only).is_err());
        let empty_params = json!({"messages": [{"role": "user", "content": "hi"}],
            "tools": [{"type": "function", "function": {"name": "now", "parameters": {"type": "object", "properties": {}}}}]});
        let body = serde_json::to_value(generate_request(&empty_params).unwrap()).unwrap();
        assert_eq!(
            body["tools"],
            json!([{"functionDeclarations": [{"name": "now"}]}])
        );
    }

    #[test]
    fn fixture_responses_become_chat_completions() {
        let text: GenerateResponse =
            serde_json::from_str(&fixture("generate-response.json")).unwrap();
        let out = generate_response(&text, "google/gemini").unwrap();
        assert_eq!(out["choices"][0]["message"]["content"], "Hello!");
        assert_eq!(out["choices"][0]["finish_reason"], "stop");
        assert_eq!(
            out["usage"],
            json!({"prompt_tokens": 3, "completion_tokens": 19, "total_tokens": 22})
        );
        let call: GenerateResponse =
            serde_json::from_str(&fixture("function-call-response.json")).unwrap();
        let out = generate_response(&call, "google/gemini").unwrap();
        assert_eq!(out["choices"][0]["finish_reason"], "tool_calls");
        let tc = &out["choices"][0]["message"]["tool_calls"][0];
        assert_eq!(tc["function"]["name"], "getWeather");
        assert_eq!(tc["function"]["arguments"], "{\"location\":\"Tokyo\"}");
        assert!(tc["id"].as_str().unwrap().starts_with("call_"));
    }

    #[test]
    fn error_bodies_are_classified() {
        let quota = parse_error(fixture("error-429.json").as_bytes());
        assert_eq!(quota.status.as_deref(), Some("RESOURCE_EXHAUSTED"));
        assert_eq!(quota.retry_delay, Some(Duration::from_secs(10)));
        let tokens = parse_error(fixture("error-400-token-limit.json").as_bytes());
        assert!(tokens.is_token_limit() && !tokens.is_bad_key());
        let key = parse_error(br#"{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID"}]}}"#);
        assert!(key.is_bad_key() && !key.is_token_limit());
        assert_eq!(
            parse_error(b"<html>oops</html>").message,
            "<html>oops</html>"
        );
    }

    /// The fixture's signature, as the fixture's function-call answer carries it.
    fn fixture_signature() -> String {
        let call: Value = serde_json::from_str(&fixture("function-call-response.json")).unwrap();
        call["candidates"][0]["content"]["parts"][0]["thoughtSignature"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    #[test]
    fn a_thought_signature_goes_to_the_client_and_back_to_gemini_on_its_call() {
        let sig = fixture_signature();
        let call: GenerateResponse =
            serde_json::from_str(&fixture("function-call-response.json")).unwrap();
        let out = generate_response(&call, "google/gemini").unwrap();
        let tc = &out["choices"][0]["message"]["tool_calls"][0];
        assert_eq!(tc["extra_content"]["google"]["thought_signature"], sig);

        let mut stream = GeminiStreamTranslator::with_writer(
            ChunkWriter::with_id("c".into(), 1, "google/gemini"),
            false,
        );
        let data = serde_json::to_string(
            &serde_json::from_str::<Value>(&fixture("function-call-response.json")).unwrap(),
        )
        .unwrap();
        let out = stream.feed(&SseEvent { event: None, data });
        let first = match &out[0] {
            TranslateEvent::Sse(b) => String::from_utf8(b.to_vec()).unwrap(),
            other => panic!("{other:?}"),
        };
        let chunk: Value = serde_json::from_str(first.trim().trim_start_matches("data: ")).unwrap();
        assert_eq!(
            chunk["choices"][0]["delta"]["tool_calls"][0]["extra_content"]["google"]
                ["thought_signature"],
            sig
        );

        // The next turn, as a chat completions client (or the IR) sends it back.
        let req = json!({"messages": [
            {"role": "user", "content": "Weather in Tokyo?"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "getWeather", "arguments": "{}"},
                 "extra_content": {"google": {"thought_signature": sig}}},
                {"id": "call_2", "type": "function", "function": {"name": "getWeather", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "22C"},
            {"role": "tool", "tool_call_id": "call_2", "content": "23C"}]});
        let body = serde_json::to_value(generate_request(&req).unwrap()).unwrap();
        let parts = &body["contents"][1]["parts"];
        assert_eq!(parts[0]["thoughtSignature"], sig);
        assert_eq!(parts[1]["thoughtSignature"], SKIP_THOUGHT_SIGNATURE);
    }

    #[test]
    fn a_reasoning_effort_becomes_a_thinking_budget() {
        let body = |effort: &str| {
            let req = json!({"messages": [{"role": "user", "content": "hi"}], "reasoning_effort": effort});
            serde_json::to_value(generate_request(&req).unwrap()).unwrap()["generationConfig"]
                .clone()
        };
        assert_eq!(
            body("medium")["thinkingConfig"],
            json!({"thinkingBudget": 8192, "includeThoughts": true})
        );
        assert_eq!(body("none"), Value::Null, "off: the model's default");
        assert_eq!(body("high")["thinkingConfig"]["thinkingBudget"], 24576);
        assert_eq!(body("weird"), Value::Null, "unknown effort: nothing sent");
        let req = json!({"messages": [{"role": "user", "content": "hi"}], "reasoning": {"effort": "low"}});
        let body = serde_json::to_value(generate_request(&req).unwrap()).unwrap();
        assert_eq!(
            body["generationConfig"]["thinkingConfig"]["thinkingBudget"],
            1024
        );
    }
}

//! Google's Generative Language API v1beta: `POST /v1beta/models/{model}:generateContent` and
//! `:streamGenerateContent` (`?alt=sse` → SSE with CRLF terminators, without → one JSON array).
//! Shapes from `shared/fixtures/gemini` and `shared/notes/protocols.md` §3.

use std::sync::Mutex;
use std::time::Duration;

use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use axum::Router;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::{estimate_tokens, pretty, python_style, random_id, respond, stream_body, Piece};

/// The control file's keys (all optional; unknown keys make the file invalid).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Control {
    /// Model ids that exist; absent: every id exists.
    pub models: Option<Vec<String>>,
    /// The answer's text, one stream chunk each. Default `["Hello", " from", " Gemini"]`.
    pub reply_tokens: Option<Vec<String>>,
    /// `thoughtsTokenCount` reported (thinking is billed but not shown).
    pub thoughts_tokens: u64,
    /// Answer tool requests with a `functionCall` (`true`: the first declared function with
    /// `{"location":"Tokyo"}`; or `{"name","args"}`), unless the last turn is a function response.
    pub tool_call: Option<ToolCall>,
    /// Pause before each stream chunk.
    pub token_delay_ms: u64,
    /// Answer every request with a fault (see README.md).
    pub fail: Option<Fail>,
    /// Requests estimated above this many tokens get the real token-limit 400.
    pub input_token_limit: Option<u64>,
    /// Stream this many chunks, then drop the connection.
    pub cut_after: Option<usize>,
    /// Stream this many chunks, then a `data: {"error":…}` event (500 INTERNAL) and the end.
    pub stream_error_after: Option<usize>,
    /// `finishReason` of the last chunk instead of `STOP` (e.g. `SAFETY`).
    pub finish_reason: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ToolCall {
    Enabled(bool),
    Call { name: String, args: Value },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Fail {
    /// `rate_limit` (429 RESOURCE_EXHAUSTED), `server_error` (500 INTERNAL), `overloaded`
    /// (503 UNAVAILABLE), `permission_denied` (403).
    Named(String),
    Raw {
        status: u16,
        body: Value,
    },
}

static LAST: Mutex<Option<Control>> = Mutex::new(None);

/// The signature of the fixture's function call (`function-call-response.json`), sent with
/// every scripted call as Gemini 2.5 does.
const THOUGHT_SIGNATURE: &str = "CikBcsjafFK168IbtVtoxVV0Tsn8O+eU45rzJahzwuKGmMbdMdfpmNpgBwplAXLI2nyA/pIFcnZwFm+7WFmLyMd8R4DXwsjqaeAAfCKo5G1xIkbAlJp8VevnIWRZ9SyMmiiqmY6linicJ5dg3rVLHM9wwSQ8FEvAxgO3Ave1rRlh";

pub fn router() -> Router {
    Router::new().fallback(handle)
}

async fn handle(method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    crate::log_request(&method, &uri, &headers, &body);
    let control = crate::control(&LAST);
    let path = uri.path();
    let Some(rest) = path.strip_prefix("/v1beta/models/") else {
        return not_found_page(path);
    };
    let Some((model, action)) = rest.rsplit_once(':') else {
        return not_found_page(path);
    };
    let streaming = match action {
        "generateContent" => false,
        "streamGenerateContent" => true,
        _ => return error(404, "NOT_FOUND", "Method not found.", None),
    };
    if method != Method::POST {
        return not_found_page(path);
    }
    let query_key = uri.query().and_then(|q| {
        q.split('&')
            .find_map(|kv| kv.strip_prefix("key="))
            .map(str::to_owned)
    });
    let key = headers
        .get("x-goog-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or(query_key);
    match key {
        None => {
            return error(
                403,
                "PERMISSION_DENIED",
                "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.",
                None,
            )
        }
        Some(k) if k != crate::expected_key() => return invalid_key(),
        Some(_) => {}
    }
    let sse = uri
        .query()
        .is_some_and(|q| q.split('&').any(|kv| kv == "alt=sse"));

    if let Some(fail) = &control.fail {
        return failure(fail);
    }
    if let Some(models) = &control.models {
        if !models.iter().any(|m| m == model) {
            return error(
                404,
                "NOT_FOUND",
                &format!("models/{model} is not found for API version v1beta, or is not supported for generateContent. Call ListModels to see the list of available models and their supported methods."),
                None,
            );
        }
    }
    let req: Value = match serde_json::from_slice(&body) {
        Ok(v @ Value::Object(_)) => v,
        Ok(_) | Err(_) => {
            return error(
                400,
                "INVALID_ARGUMENT",
                "Invalid JSON payload received. Unexpected token.",
                None,
            )
        }
    };
    if let Err(violations) = validate(&req) {
        return bad_request(violations);
    }
    if let Some(message) = missing_signature(model, &req) {
        return error(400, "INVALID_ARGUMENT", &message, None);
    }
    let prompt_tokens = estimate_tokens(body.len());
    if let Some(limit) = control.input_token_limit {
        if prompt_tokens > limit {
            return error(
                400,
                "INVALID_ARGUMENT",
                &format!("The input token count ({prompt_tokens}) exceeds the maximum number of tokens allowed ({limit})."),
                None,
            );
        }
    }
    let answer = Answer::plan(&control, &req, model, prompt_tokens);
    if streaming {
        answer.stream(&control, sse)
    } else {
        respond(
            200,
            "application/json; charset=UTF-8",
            pretty(&answer.whole()),
        )
    }
}

/// What the model answers: text pieces or one function call.
struct Answer {
    model: String,
    response_id: String,
    prompt_tokens: u64,
    thoughts_tokens: u64,
    pieces: Vec<Value>,
    finish_reason: String,
    finish_message: Option<&'static str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Chunk {
    candidates: Vec<Candidate>,
    usage_metadata: UsageMetadata,
    model_version: String,
    response_id: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Candidate {
    content: Content,
    #[serde(skip_serializing_if = "Option::is_none")]
    finish_reason: Option<String>,
    index: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    finish_message: Option<&'static str>,
}

#[derive(Serialize)]
struct Content {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    parts: Vec<Value>,
    role: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UsageMetadata {
    prompt_token_count: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    candidates_token_count: Option<u64>,
    total_token_count: u64,
    prompt_tokens_details: Vec<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    thoughts_token_count: Option<u64>,
}

impl Answer {
    fn plan(control: &Control, req: &Value, model: &str, prompt_tokens: u64) -> Answer {
        let declared: Vec<&str> = req
            .get("tools")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|t| {
                t.get("functionDeclarations")
                    .or_else(|| t.get("function_declarations"))
            })
            .filter_map(Value::as_array)
            .flatten()
            .filter_map(|d| d.get("name").and_then(Value::as_str))
            .collect();
        let last_is_result = req
            .get("contents")
            .and_then(Value::as_array)
            .and_then(|c| c.last())
            .and_then(|c| c.get("parts"))
            .and_then(Value::as_array)
            .is_some_and(|parts| {
                parts.iter().any(|p| {
                    p.get("functionResponse")
                        .or_else(|| p.get("function_response"))
                        .is_some()
                })
            });
        let mode_none = req
            .pointer("/toolConfig/functionCallingConfig/mode")
            .and_then(Value::as_str)
            == Some("NONE");
        let call = match (&control.tool_call, declared.first()) {
            _ if last_is_result || mode_none => None,
            (Some(ToolCall::Enabled(true)), Some(first)) => {
                Some(((*first).to_owned(), json!({"location": "Tokyo"})))
            }
            (Some(ToolCall::Call { name, args }), Some(_)) => Some((name.clone(), args.clone())),
            _ => None,
        };
        let mut answer = Answer {
            model: model.to_owned(),
            response_id: random_id(22),
            prompt_tokens,
            thoughts_tokens: control.thoughts_tokens,
            pieces: Vec::new(),
            finish_reason: control
                .finish_reason
                .clone()
                .unwrap_or_else(|| "STOP".into()),
            finish_message: None,
        };
        if let Some((name, args)) = call {
            // A function call ends with STOP, like text: detect it by its part.
            answer.pieces.push(json!({"functionCall": {"name": name, "args": args}, "thoughtSignature": THOUGHT_SIGNATURE}));
            answer.finish_message = Some("Model generated function call(s).");
            return answer;
        }
        let mut tokens = control
            .reply_tokens
            .clone()
            .unwrap_or_else(|| vec!["Hello".into(), " from".into(), " Gemini".into()]);
        let max = req
            .pointer("/generationConfig/maxOutputTokens")
            .or_else(|| req.pointer("/generation_config/max_output_tokens"))
            .and_then(Value::as_u64);
        if let Some(max) = max {
            if (max as usize) < tokens.len() {
                tokens.truncate(max as usize);
                answer.finish_reason = "MAX_TOKENS".into();
            }
        }
        answer.pieces = tokens.into_iter().map(|t| json!({"text": t})).collect();
        answer
    }

    fn chunk(&self, parts: Vec<Value>, candidates_tokens: u64, last: bool) -> Chunk {
        let thoughts = (self.thoughts_tokens > 0).then_some(self.thoughts_tokens);
        Chunk {
            candidates: vec![Candidate {
                content: Content {
                    parts,
                    role: "model",
                },
                finish_reason: last.then(|| self.finish_reason.clone()),
                index: 0,
                finish_message: if last { self.finish_message } else { None },
            }],
            usage_metadata: UsageMetadata {
                prompt_token_count: self.prompt_tokens,
                candidates_token_count: (candidates_tokens > 0).then_some(candidates_tokens),
                total_token_count: self.prompt_tokens + candidates_tokens + self.thoughts_tokens,
                prompt_tokens_details: vec![
                    json!({"modality": "TEXT", "tokenCount": self.prompt_tokens}),
                ],
                thoughts_token_count: thoughts,
            },
            model_version: self.model.clone(),
            response_id: self.response_id.clone(),
        }
    }

    fn whole(&self) -> Chunk {
        let tokens = self.pieces.len() as u64;
        let parts = if self.pieces.iter().all(|p| p.get("text").is_some()) {
            let text: String = self
                .pieces
                .iter()
                .filter_map(|p| p["text"].as_str())
                .collect();
            if text.is_empty() {
                Vec::new()
            } else {
                vec![json!({"text": text})]
            }
        } else {
            self.pieces.clone()
        };
        self.chunk(parts, tokens, true)
    }

    /// One chunk per piece, usage cumulative on each, `finishReason` on the last. An empty
    /// answer is one chunk with `{"role":"model"}` content.
    fn chunks(&self) -> Vec<Chunk> {
        if self.pieces.is_empty() {
            return vec![self.chunk(Vec::new(), 0, true)];
        }
        let n = self.pieces.len();
        self.pieces
            .iter()
            .enumerate()
            .map(|(i, p)| self.chunk(vec![p.clone()], i as u64 + 1, i + 1 == n))
            .collect()
    }

    fn stream(&self, control: &Control, sse: bool) -> Response {
        let chunks = self.chunks();
        if !sse {
            return respond(200, "application/json; charset=UTF-8", pretty(&chunks));
        }
        let delay = Duration::from_millis(control.token_delay_ms);
        let mut pieces = Vec::new();
        for (i, chunk) in chunks.iter().enumerate() {
            if control.cut_after == Some(i) {
                pieces.push(Piece::Cut);
                return respond(200, "text/event-stream", stream_body(pieces));
            }
            if control.stream_error_after == Some(i) {
                let err = json!({"error": {"code": 500, "message": "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting", "status": "INTERNAL"}});
                pieces.push(Piece::Bytes(Bytes::from(format!(
                    "data: {}\r\n\r\n",
                    python_style(&err)
                ))));
                return respond(200, "text/event-stream", stream_body(pieces));
            }
            if !delay.is_zero() {
                pieces.push(Piece::Sleep(delay));
            }
            pieces.push(Piece::Bytes(Bytes::from(format!(
                "data: {}\r\n\r\n",
                python_style(chunk)
            ))));
        }
        if control.cut_after.is_some_and(|n| n >= chunks.len()) {
            pieces.push(Piece::Cut);
        }
        respond(200, "text/event-stream", stream_body(pieces))
    }
}

/// `{"error":{"code","message","status","details"?}}`, 2-space indented.
fn error(code: u16, status: &str, message: &str, details: Option<Value>) -> Response {
    let mut e = Map::new();
    e.insert("code".into(), code.into());
    e.insert("message".into(), message.into());
    e.insert("status".into(), status.into());
    if let Some(d) = details {
        e.insert("details".into(), d);
    }
    // `code, message, status, details` in this order, as Google writes it.
    #[derive(Serialize)]
    struct Body {
        error: Ordered,
    }
    #[derive(Serialize)]
    struct Ordered {
        code: u16,
        message: String,
        status: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        details: Option<Value>,
    }
    let body = Body {
        error: Ordered {
            code,
            message: message.to_owned(),
            status: status.to_owned(),
            details: e.remove("details"),
        },
    };
    respond(code, "application/json; charset=UTF-8", pretty(&body))
}

fn invalid_key() -> Response {
    let message = "API key not valid. Please pass a valid API key.";
    error(
        400,
        "INVALID_ARGUMENT",
        message,
        Some(json!([
            {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
             "domain": "googleapis.com", "metadata": {"service": "generativelanguage.googleapis.com"}},
            {"@type": "type.googleapis.com/google.rpc.LocalizedMessage", "locale": "en-US", "message": message}
        ])),
    )
}

fn failure(fail: &Fail) -> Response {
    match fail {
        Fail::Raw { status, body } => {
            let text = match body {
                Value::String(s) => s.clone(),
                other => pretty(other),
            };
            respond(*status, "application/json; charset=UTF-8", text)
        }
        Fail::Named(name) => match name.as_str() {
            "rate_limit" => error(
                429,
                "RESOURCE_EXHAUSTED",
                "You exceeded your current quota, please check your plan and billing details. For more information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits. To monitor your current usage, head to: https://ai.dev/rate-limit. \n* Quota exceeded for metric: generativelanguage.googleapis.com/generate_content_free_tier_requests, limit: 5, model: gemini-3-flash\nPlease retry in 10.158753737s.",
                Some(json!([
                    {"@type": "type.googleapis.com/google.rpc.Help", "links": [{"description": "Learn more about Gemini API quotas", "url": "https://ai.google.dev/gemini-api/docs/rate-limits"}]},
                    {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [{"quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests", "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier", "quotaDimensions": {"location": "global", "model": "gemini-3-flash"}}]},
                    {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "10s"}
                ])),
            ),
            "overloaded" => error(503, "UNAVAILABLE", "The model is overloaded. Please try again later.", None),
            "permission_denied" => error(403, "PERMISSION_DENIED", "The caller does not have permission", None),
            _ => error(
                500,
                "INTERNAL",
                "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting",
                None,
            ),
        },
    }
}

fn not_found_page(path: &str) -> Response {
    respond(
        404,
        "text/html; charset=UTF-8",
        format!("<!DOCTYPE html>\n<html lang=en>\n  <meta charset=utf-8>\n  <title>Error 404 (Not Found)!!1</title>\n  <p><b>404.</b> <ins>That’s an error.</ins>\n  <p>The requested URL <code>{path}</code> was not found on this server.  <ins>That’s all we know.</ins>\n"),
    )
}

/// Gemini 3 models refuse a `functionCall` of the current turn (since the last user text)
/// replayed without its `thoughtSignature`, or with one they did not issue ("Corrupted thought
/// signature."). The documented stand-in `skip_thought_signature_validator` passes.
fn missing_signature(model: &str, req: &Value) -> Option<String> {
    if !model.starts_with("gemini-3") {
        return None;
    }
    let contents = req.get("contents").and_then(Value::as_array)?;
    let start = contents
        .iter()
        .rposition(|c| {
            c["role"] == "user"
                && c["parts"]
                    .as_array()
                    .is_some_and(|p| p.iter().any(|p| p.get("text").is_some()))
        })
        .unwrap_or(0);
    for (i, turn) in contents.iter().enumerate().skip(start) {
        for part in turn["parts"].as_array().into_iter().flatten() {
            let Some(call) = part.get("functionCall") else {
                continue;
            };
            if let Some(sig) = part.get("thoughtSignature") {
                let ours = sig == THOUGHT_SIGNATURE || sig == "skip_thought_signature_validator";
                if !ours {
                    return Some("Corrupted thought signature.".to_owned());
                }
                continue;
            }
            return Some(format!(
                "Function call is missing a thought_signature in functionCall parts. This is required for tools to work correctly, and missing thought_signature may lead to degraded model performance. Additional data, function call `default_api:{}` , position {}. Please refer to https://ai.google.dev/gemini-api/docs/thought-signatures for more details.",
                call["name"].as_str().unwrap_or(""),
                i + 1
            ));
        }
    }
    None
}

/// A (field, description) the API reports for a malformed request.
type Violation = (String, String);

fn bad_request(violations: Vec<Violation>) -> Response {
    let message: Vec<&str> = violations.iter().map(|(_, d)| d.as_str()).collect();
    let fields: Vec<Value> = violations
        .iter()
        .map(|(f, d)| json!({"field": f, "description": d}))
        .collect();
    error(
        400,
        "INVALID_ARGUMENT",
        &message.join("\n"),
        Some(
            json!([{"@type": "type.googleapis.com/google.rpc.BadRequest", "fieldViolations": fields}]),
        ),
    )
}

fn unknown(name: &str, at: &str) -> Violation {
    let description = if at.is_empty() {
        format!("Invalid JSON payload received. Unknown name \"{name}\": Cannot find field.")
    } else {
        format!(
            "Invalid JSON payload received. Unknown name \"{name}\" at '{at}': Cannot find field."
        )
    };
    (at.to_owned(), description)
}

/// `maxOutputTokens` → `max_output_tokens` (paths in Google's messages are snake_case).
fn snake(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

const TOP_LEVEL: &[&str] = &[
    "model",
    "contents",
    "system_instruction",
    "tools",
    "tool_config",
    "generation_config",
    "safety_settings",
    "cached_content",
    "labels",
];
const GENERATION_CONFIG: &[&str] = &[
    "temperature",
    "top_p",
    "top_k",
    "candidate_count",
    "max_output_tokens",
    "stop_sequences",
    "presence_penalty",
    "frequency_penalty",
    "seed",
    "response_mime_type",
    "response_schema",
    "response_json_schema",
    "response_modalities",
    "response_logprobs",
    "logprobs",
    "thinking_config",
    "media_resolution",
    "speech_config",
    "enable_enhanced_civic_answers",
    "image_config",
];
const PART_DATA: &[&str] = &[
    "text",
    "inline_data",
    "file_data",
    "function_call",
    "function_response",
    "executable_code",
    "code_execution_result",
];
const PART_OTHER: &[&str] = &[
    "thought",
    "thought_signature",
    "video_metadata",
    "part_metadata",
    "media_resolution",
];
/// `Schema` of the v1beta API: the OpenAPI subset `parameters` accepts.
const SCHEMA: &[&str] = &[
    "type",
    "format",
    "title",
    "description",
    "nullable",
    "enum",
    "max_items",
    "min_items",
    "properties",
    "required",
    "min_properties",
    "max_properties",
    "min_length",
    "max_length",
    "pattern",
    "example",
    "any_of",
    "property_ordering",
    "default",
    "items",
    "minimum",
    "maximum",
];
const TYPES: &[&str] = &[
    "TYPE_UNSPECIFIED",
    "STRING",
    "NUMBER",
    "INTEGER",
    "BOOLEAN",
    "ARRAY",
    "OBJECT",
    "NULL",
];

/// The checks the real API makes that a translator can get wrong.
fn validate(req: &Value) -> Result<(), Vec<Violation>> {
    let mut v = Vec::new();
    let obj = req.as_object().cloned().unwrap_or_default();
    for k in obj.keys() {
        if !TOP_LEVEL.contains(&snake(k).as_str()) {
            v.push(unknown(k, ""));
        }
    }
    let get = |camel: &str| obj.get(camel).or_else(|| obj.get(&snake(camel)));
    if let Some(cfg) = get("generationConfig") {
        match cfg.as_object() {
            Some(cfg) => {
                for k in cfg.keys() {
                    if !GENERATION_CONFIG.contains(&snake(k).as_str()) {
                        v.push(unknown(k, "generation_config"));
                    }
                }
                for (k, val) in cfg {
                    let numeric = ["max_output_tokens", "temperature", "top_p", "top_k"];
                    if numeric.contains(&snake(k).as_str()) && !val.is_number() {
                        v.push((
                            format!("generation_config.{}", snake(k)),
                            format!("Invalid value at 'generation_config.{}' (TYPE_{}), {val}", snake(k), if snake(k).contains("tokens") || k == "topK" { "INT32" } else { "FLOAT" }),
                        ));
                    }
                }
            }
            None => v.push(("generation_config".into(), "Invalid JSON payload received. Unknown name \"generationConfig\": Proto field is not repeating, cannot start list.".into())),
        }
    }
    if let Some(si) = get("systemInstruction") {
        content(si, "system_instruction", false, &mut v);
    }
    let contents = get("contents").and_then(Value::as_array);
    match contents {
        None => v.push((
            "contents".into(),
            "* GenerateContentRequest.contents: contents is not specified\n".into(),
        )),
        Some(c) if c.is_empty() => v.push((
            "contents".into(),
            "* GenerateContentRequest.contents: contents is not specified\n".into(),
        )),
        Some(c) => {
            for (i, turn) in c.iter().enumerate() {
                let role = turn.get("role").and_then(Value::as_str);
                match role {
                    Some("user" | "model") => {}
                    None if c.len() == 1 => {}
                    _ => {
                        v.push((
                            format!("contents[{i}].role"),
                            "Please use a valid role: user, model.".into(),
                        ));
                        continue;
                    }
                }
                content(turn, &format!("contents[{i}]"), true, &mut v);
            }
        }
    }
    if let Some(tools) = get("tools") {
        for (i, tool) in tools.as_array().into_iter().flatten().enumerate() {
            let at = format!("tools[{i}]");
            let Some(tool) = tool.as_object() else {
                continue;
            };
            for (k, val) in tool {
                match snake(k).as_str() {
                    "function_declarations" => {
                        for (j, decl) in val.as_array().into_iter().flatten().enumerate() {
                            let at = format!("{at}.function_declarations[{j}]");
                            if decl
                                .get("name")
                                .and_then(Value::as_str)
                                .is_none_or(str::is_empty)
                            {
                                v.push((format!("{at}.name"), format!("* GenerateContentRequest.{at}.name: [FIELD_INVALID] Invalid function name. Must start with a letter or an underscore. Must be alphameric (a-z, A-Z, 0-9), underscores (_), dots (.), colons (:), or dashes (-), with a maximum length of 64.\n")));
                            }
                            for (k, val) in decl.as_object().into_iter().flatten() {
                                match snake(k).as_str() {
                                    "name"
                                    | "description"
                                    | "behavior"
                                    | "parameters_json_schema"
                                    | "response"
                                    | "response_json_schema" => {}
                                    "parameters" => {
                                        schema(val, &format!("{at}.parameters"), &mut v)
                                    }
                                    _ => v.push(unknown(k, &at)),
                                }
                            }
                        }
                    }
                    "google_search"
                    | "code_execution"
                    | "url_context"
                    | "google_search_retrieval"
                    | "computer_use"
                    | "file_search"
                    | "google_maps" => {}
                    _ => v.push(unknown(k, &at)),
                }
            }
        }
    }
    if v.is_empty() {
        Ok(())
    } else {
        Err(v)
    }
}

fn content(turn: &Value, at: &str, need_parts: bool, v: &mut Vec<Violation>) {
    for k in turn.as_object().into_iter().flatten().map(|(k, _)| k) {
        if !["role", "parts"].contains(&k.as_str()) {
            v.push(unknown(k, at));
        }
    }
    let parts = turn.get("parts").and_then(Value::as_array);
    let Some(parts) = parts.filter(|p| !p.is_empty()) else {
        if need_parts {
            v.push((
                format!("{at}.parts"),
                format!("* GenerateContentRequest.{at}.parts: contents.parts must not be empty.\n"),
            ));
        }
        return;
    };
    for (j, part) in parts.iter().enumerate() {
        let at = format!("{at}.parts[{j}]");
        let Some(part) = part.as_object() else {
            v.push((at.clone(), format!("Invalid value at '{at}' (type.googleapis.com/google.ai.generativelanguage.v1beta.Part), {part}")));
            continue;
        };
        let mut data = 0;
        for (k, val) in part {
            let s = snake(k);
            if PART_DATA.contains(&s.as_str()) {
                data += 1;
            } else if !PART_OTHER.contains(&s.as_str()) {
                v.push(unknown(k, &at));
            }
            match s.as_str() {
                "text" if !val.is_string() => v.push((
                    format!("{at}.text"),
                    format!("Invalid value at '{at}.text' (TYPE_STRING), {val}"),
                )),
                "function_call" => {
                    if let Some(args) = val.get("args").filter(|a| !a.is_object()) {
                        v.push((format!("{at}.function_call.args"), format!("Invalid value at '{at}.function_call.args' (type.googleapis.com/google.protobuf.Struct), {args}")));
                    }
                }
                "function_response" => {
                    if val
                        .get("name")
                        .and_then(Value::as_str)
                        .is_none_or(str::is_empty)
                    {
                        v.push((format!("{at}.function_response.name"), format!("* GenerateContentRequest.{at}.function_response.name: Name cannot be empty.\n")));
                    }
                    match val.get("response") {
                        Some(Value::Object(_)) => {}
                        Some(other) => v.push((format!("{at}.function_response.response"), format!("Invalid value at '{at}.function_response.response' (type.googleapis.com/google.protobuf.Struct), {other}"))),
                        None => v.push((format!("{at}.function_response.response"), format!("* GenerateContentRequest.{at}.function_response.response: Response cannot be empty.\n"))),
                    }
                }
                _ => {}
            }
        }
        if data != 1 {
            v.push((format!("{at}.data"), format!("* GenerateContentRequest.{at}.data: required oneof field 'data' must have one initialized field\n")));
        }
    }
}

fn schema(s: &Value, at: &str, v: &mut Vec<Violation>) {
    let Some(obj) = s.as_object() else {
        v.push((at.to_owned(), format!("Invalid value at '{at}' (type.googleapis.com/google.ai.generativelanguage.v1beta.Schema), {s}")));
        return;
    };
    for (k, val) in obj {
        let name = snake(k);
        if !SCHEMA.contains(&name.as_str()) {
            v.push(unknown(k, at));
            continue;
        }
        match name.as_str() {
            "type" => match val {
                Value::String(t) if TYPES.contains(&t.to_ascii_uppercase().as_str()) => {}
                Value::Array(_) => v.push((format!("{at}.type"), format!("Invalid JSON payload received. Unknown name \"type\" at '{at}': Proto field is not repeating, cannot start list."))),
                other => v.push((format!("{at}.type"), format!("Invalid value at '{at}.type' (type.googleapis.com/google.ai.generativelanguage.v1beta.Type), {other}"))),
            },
            "properties" => {
                for (i, (_, p)) in val.as_object().into_iter().flatten().enumerate() {
                    schema(p, &format!("{at}.properties[{i}].value"), v);
                }
            }
            "items" => schema(val, &format!("{at}.items"), v),
            "any_of" => {
                for (i, p) in val.as_array().into_iter().flatten().enumerate() {
                    schema(p, &format!("{at}.any_of[{i}]"), v);
                }
            }
            "enum" => {
                if let Some(bad) = val.as_array().into_iter().flatten().find(|e| !e.is_string()) {
                    v.push((format!("{at}.enum"), format!("Invalid value at '{at}.enum' (TYPE_STRING), {bad}")));
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_schema_keywords_are_refused_like_the_real_api() {
        let req = json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}],
            "tools": [{"functionDeclarations": [{"name": "f", "parameters": {"$schema": "x", "type": "object",
                "additionalProperties": false, "properties": {"a": {"type": "string"}}}}]}]});
        let v = validate(&req).unwrap_err();
        let text: Vec<&str> = v.iter().map(|(_, d)| d.as_str()).collect();
        assert!(text.contains(&"Invalid JSON payload received. Unknown name \"additionalProperties\" at 'tools[0].function_declarations[0].parameters': Cannot find field."), "{text:?}");
        assert!(text.iter().any(|t| t.contains("\"$schema\"")), "{text:?}");
    }

    #[test]
    fn a_function_call_round_trip_in_the_fixture_shape_is_valid() {
        // `shared/fixtures/gemini/generate-request.json`, abridged.
        let req = json!({
            "systemInstruction": {"parts": [{"text": "You are a weather assistant."}]},
            "contents": [
                {"role": "user", "parts": [{"text": "What is the weather in Tokyo?"}]},
                {"role": "model", "parts": [{"functionCall": {"name": "getWeather", "args": {"location": "Tokyo"}}, "thoughtSignature": THOUGHT_SIGNATURE}]},
                {"role": "user", "parts": [{"functionResponse": {"name": "getWeather", "response": {"temperature": 22}}}]}
            ],
            "tools": [{"functionDeclarations": [{"name": "getWeather", "description": "Weather",
                "parameters": {"type": "OBJECT", "properties": {"location": {"type": "STRING"},
                    "unit": {"type": "STRING", "enum": ["celsius", "fahrenheit"]}}, "required": ["location"]}}]}],
            "toolConfig": {"functionCallingConfig": {"mode": "AUTO"}},
            "generationConfig": {"temperature": 0.7, "maxOutputTokens": 1024, "thinkingConfig": {"thinkingBudget": 0}}
        });
        assert_eq!(validate(&req), Ok(()));
        let mut bad = req.clone();
        bad["contents"][0]["role"] = json!("assistant");
        assert_eq!(
            validate(&bad).unwrap_err()[0].1,
            "Please use a valid role: user, model."
        );
        let mut bad = req;
        bad["contents"][2]["parts"][0]["functionResponse"]["response"] = json!("22C");
        assert!(validate(&bad).is_err());
    }

    #[test]
    fn stream_chunks_use_python_spacing() {
        let v = json!({"a": [1, {"b": "c"}]});
        assert_eq!(python_style(&v), "{\"a\": [1,{\"b\": \"c\"}]}");
    }
}

//! OpenAI's Responses API: `POST /v1/responses`, Bearer key, stateless (nothing is stored).
//! Shapes from `shared/fixtures/openai-responses` and `shared/notes/protocols.md` §2.

use std::sync::Mutex;
use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, Method, Uri};
use axum::response::Response;
use axum::Router;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::{estimate_tokens, pretty, random_id, respond, stream_body, Piece};

/// The control file's keys (all optional; unknown keys make the file invalid).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Control {
    /// Model ids that exist; absent: every id exists.
    pub models: Option<Vec<String>>,
    /// The answer's text, one `output_text.delta` each. Default `["Hello", " from", " Responses"]`.
    pub reply_tokens: Option<Vec<String>>,
    /// `reasoning_tokens` reported; above 0 a `reasoning` item comes first.
    pub reasoning_tokens: u64,
    /// Answer tool requests with a `function_call` item (`true`: the first function tool with
    /// `{ "location": "New York City, USA" }`; or `{"name","arguments"}`), unless the input
    /// ends with a `function_call_output`.
    pub tool_call: Option<ToolCall>,
    /// Pause before each stream event.
    pub token_delay_ms: u64,
    /// Answer every request with a fault (see README.md).
    pub fail: Option<Fail>,
    /// `retry-after` header (seconds, as text) on a scripted 429.
    pub retry_after: Option<String>,
    /// Requests estimated above this many tokens get `context_length_exceeded`.
    pub input_token_limit: Option<u64>,
    /// Stream this many events, then drop the connection (no terminal event).
    pub cut_after: Option<usize>,
    /// After `response.created`/`in_progress`: `event: error` with this code, then
    /// `response.failed` (HTTP status 200, as in `stream-error.sse`).
    pub stream_error: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ToolCall {
    Enabled(bool),
    Call { name: String, arguments: Value },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Fail {
    /// `rate_limit` (429 rate_limit_exceeded), `insufficient_quota` (429), `server_error` (500),
    /// `overloaded` (503).
    Named(String),
    Raw {
        status: u16,
        body: Value,
    },
}

static LAST: Mutex<Option<Control>> = Mutex::new(None);

pub fn router() -> Router {
    Router::new().fallback(handle)
}

fn error(
    status: u16,
    message: &str,
    kind: &str,
    param: Option<&str>,
    code: Option<&str>,
) -> Response {
    #[derive(Serialize)]
    struct Body<'a> {
        error: Inner<'a>,
    }
    #[derive(Serialize)]
    struct Inner<'a> {
        message: &'a str,
        #[serde(rename = "type")]
        kind: &'a str,
        param: Option<&'a str>,
        code: Option<&'a str>,
    }
    let body = Body {
        error: Inner {
            message,
            kind,
            param,
            code,
        },
    };
    respond(status, "application/json", pretty(&body))
}

fn invalid(message: &str, param: Option<&str>, code: Option<&str>) -> Response {
    error(400, message, "invalid_request_error", param, code)
}

async fn handle(method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    crate::log_request(&method, &uri, &headers, &body);
    let control = crate::control(&LAST);
    if uri.path() != "/v1/responses" || method != Method::POST {
        return error(
            404,
            &format!("Invalid URL ({} {})", method, uri.path()),
            "invalid_request_error",
            None,
            None,
        );
    }
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
    match auth.and_then(|a| a.strip_prefix("Bearer ")) {
        None => return error(401, "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (i.e. Authorization: Bearer YOUR_KEY). You can obtain an API key from https://platform.openai.com/account/api-keys.", "invalid_request_error", None, None),
        Some(k) if k != crate::expected_key() => {
            return error(401, &format!("Incorrect API key provided: {}. You can find your API key at https://platform.openai.com/account/api-keys.", mask(k)), "invalid_request_error", None, Some("invalid_api_key"))
        }
        Some(_) => {}
    }
    if let Some(fail) = &control.fail {
        return failure(fail, control.retry_after.as_deref());
    }
    let req: Value = match serde_json::from_slice(&body) {
        Ok(v @ Value::Object(_)) => v,
        _ => return invalid("We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON. If you have trouble figuring out how to fix this, please contact us through our help center at help.openai.com.)", None, None),
    };
    if let Err(resp) = validate(&req) {
        return resp;
    }
    let model = req["model"].as_str().unwrap_or_default().to_owned();
    if let Some(models) = &control.models {
        if !models.contains(&model) {
            return error(
                404,
                &format!("The model `{model}` does not exist or you do not have access to it."),
                "invalid_request_error",
                None,
                Some("model_not_found"),
            );
        }
    }
    let input_tokens = estimate_tokens(body.len());
    if control
        .input_token_limit
        .is_some_and(|limit| input_tokens > limit)
    {
        return invalid("Your input exceeds the context window of this model. Please adjust your input and try again.", Some("input"), Some("context_length_exceeded"));
    }
    let answer = Answer::plan(&control, &req, input_tokens);
    if req.get("stream").and_then(Value::as_bool) == Some(true) {
        answer.stream(&control, &req)
    } else {
        respond(
            200,
            "application/json",
            pretty(&answer.response(&req, answer.final_status(), answer.output_items(true))),
        )
    }
}

/// `sk-abc…wxyz` as OpenAI shows a wrong key: the ends kept, the middle starred.
fn mask(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    if chars.len() <= 8 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..3].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}{}{tail}", "*".repeat(chars.len() - 7))
}

fn failure(fail: &Fail, retry_after: Option<&str>) -> Response {
    let mut resp = match fail {
        Fail::Raw { status, body } => {
            let text = match body {
                Value::String(s) => s.clone(),
                other => pretty(other),
            };
            respond(*status, "application/json", text)
        }
        Fail::Named(name) => match name.as_str() {
            "rate_limit" => error(429, "Rate limit reached for gpt-5 in organization org-double on tokens per min (TPM): Limit 30000, Used 30000, Requested 1000. Please try again in 2s. Visit https://platform.openai.com/account/rate-limits to learn more.", "tokens", None, Some("rate_limit_exceeded")),
            "insufficient_quota" => error(429, "You exceeded your current quota, please check your plan and billing details. For more information on this error, read the docs: https://platform.openai.com/docs/guides/error-codes/api-errors.", "insufficient_quota", None, Some("insufficient_quota")),
            "overloaded" => error(503, "The server is overloaded or not ready yet.", "server_error", None, None),
            _ => error(500, "The server had an error while processing your request. Sorry about that!", "server_error", None, None),
        },
    };
    if let Some(v) = retry_after.and_then(|r| HeaderValue::from_str(r).ok()) {
        resp.headers_mut().insert("retry-after", v);
    }
    resp
}

const TOP_LEVEL: &[&str] = &[
    "model",
    "input",
    "instructions",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "max_tool_calls",
    "max_output_tokens",
    "temperature",
    "top_p",
    "top_logprobs",
    "reasoning",
    "text",
    "stream",
    "stream_options",
    "store",
    "previous_response_id",
    "conversation",
    "include",
    "metadata",
    "prompt_cache_key",
    "prompt_cache_retention",
    "safety_identifier",
    "service_tier",
    "truncation",
    "background",
    "user",
    "prompt",
    "context_management",
];

/// The checks the real API makes that a translator can get wrong, with its messages.
#[allow(clippy::result_large_err)]
fn validate(req: &Value) -> Result<(), Response> {
    let obj = req.as_object().cloned().unwrap_or_default();
    for k in obj.keys() {
        if !TOP_LEVEL.contains(&k.as_str()) {
            return Err(invalid(
                &format!("Unknown parameter: '{k}'."),
                Some(k),
                Some("unknown_parameter"),
            ));
        }
    }
    if !obj.get("model").is_some_and(Value::is_string) {
        return Err(invalid(
            "Missing required parameter: 'model'.",
            Some("model"),
            Some("missing_required_parameter"),
        ));
    }
    if let Some(id) = obj.get("previous_response_id").and_then(Value::as_str) {
        return Err(invalid(
            &format!("Previous response with id '{id}' not found."),
            Some("previous_response_id"),
            Some("previous_response_not_found"),
        ));
    }
    if let Some(n) = obj.get("max_output_tokens").filter(|v| !v.is_null()) {
        match n.as_i64() {
            Some(n) if n >= 16 => {}
            Some(n) => return Err(invalid(&format!("Invalid 'max_output_tokens': integer below minimum value. Expected a value >= 16, but got {n} instead."), Some("max_output_tokens"), Some("integer_below_min_value"))),
            None => return Err(invalid(&format!("Invalid type for 'max_output_tokens': expected an integer, but got {} instead.", kind(n)), Some("max_output_tokens"), Some("invalid_type"))),
        }
    }
    for key in ["temperature", "top_p"] {
        if let Some(v) = obj.get(key).filter(|v| !v.is_null() && !v.is_number()) {
            return Err(invalid(
                &format!(
                    "Invalid type for '{key}': expected a decimal, but got {} instead.",
                    kind(v)
                ),
                Some(key),
                Some("invalid_type"),
            ));
        }
    }
    for (i, tool) in obj
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        if tool.get("type").and_then(Value::as_str) != Some("function") {
            continue;
        }
        if tool.get("function").is_some() {
            return Err(invalid(
                &format!("Unknown parameter: 'tools[{i}].function'."),
                Some(&format!("tools[{i}].function")),
                Some("unknown_parameter"),
            ));
        }
        if !tool.get("name").is_some_and(Value::is_string) {
            return Err(invalid(
                &format!("Missing required parameter: 'tools[{i}].name'."),
                Some(&format!("tools[{i}].name")),
                Some("missing_required_parameter"),
            ));
        }
    }
    let items = match obj.get("input") {
        None | Some(Value::String(_)) => return Ok(()),
        Some(Value::Array(items)) => items,
        Some(other) => return Err(invalid(&format!("Invalid type for 'input': expected one of a string or array of input items, but got {} instead.", kind(other)), Some("input"), Some("invalid_type"))),
    };
    let mut calls: Vec<&str> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let kind_of = item
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("message");
        match kind_of {
            "message" => {
                let role = item.get("role").and_then(Value::as_str).unwrap_or("");
                if !["user", "assistant", "system", "developer"].contains(&role) {
                    return Err(invalid(&format!("Invalid value: '{role}'. Supported values are: 'assistant', 'system', 'developer', and 'user'."), Some(&format!("input[{i}].role")), Some("invalid_value")));
                }
                if let Some(parts) = item.get("content").and_then(Value::as_array) {
                    for (j, part) in parts.iter().enumerate() {
                        let t = part.get("type").and_then(Value::as_str).unwrap_or("");
                        let ok = if role == "assistant" {
                            ["output_text", "refusal"].contains(&t)
                        } else {
                            ["input_text", "input_image", "input_file"].contains(&t)
                        };
                        if !ok {
                            return Err(invalid(&format!("Invalid value: '{t}'. Supported values are: 'input_text', 'input_image', 'output_text', 'refusal', 'input_file', 'computer_screenshot', and 'summary_text'."), Some(&format!("input[{i}].content[{j}]")), Some("invalid_value")));
                        }
                    }
                } else if !item.get("content").is_some_and(Value::is_string) {
                    return Err(invalid(
                        &format!("Missing required parameter: 'input[{i}].content'."),
                        Some(&format!("input[{i}].content")),
                        Some("missing_required_parameter"),
                    ));
                }
            }
            "function_call" => {
                for key in ["call_id", "name", "arguments"] {
                    if !item.get(key).is_some_and(Value::is_string) {
                        return Err(invalid(
                            &format!("Missing required parameter: 'input[{i}].{key}'."),
                            Some(&format!("input[{i}].{key}")),
                            Some("missing_required_parameter"),
                        ));
                    }
                }
                calls.push(item["call_id"].as_str().unwrap_or_default());
            }
            "function_call_output" => {
                let id = item.get("call_id").and_then(Value::as_str).unwrap_or("");
                if !calls.contains(&id) {
                    return Err(invalid(
                        &format!("No tool call found for function call output with call_id {id}."),
                        Some("input"),
                        None,
                    ));
                }
                if item
                    .get("output")
                    .is_none_or(|o| !o.is_string() && !o.is_array())
                {
                    return Err(invalid(
                        &format!("Missing required parameter: 'input[{i}].output'."),
                        Some(&format!("input[{i}].output")),
                        Some("missing_required_parameter"),
                    ));
                }
            }
            "reasoning"
            | "item_reference"
            | "custom_tool_call"
            | "custom_tool_call_output"
            | "local_shell_call"
            | "local_shell_call_output"
            | "web_search_call"
            | "compaction" => {}
            other => {
                return Err(invalid(
                    &format!("Invalid value: '{other}'."),
                    Some(&format!("input[{i}].type")),
                    Some("invalid_value"),
                ))
            }
        }
    }
    Ok(())
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

struct Answer {
    id: String,
    created_at: u64,
    message_id: String,
    reasoning_id: String,
    call: Option<(String, String, String, String)>, // (fc id, call id, name, arguments)
    tokens: Vec<String>,
    truncated: bool,
    input_tokens: u64,
    reasoning_tokens: u64,
    encrypted_reasoning: bool,
}

/// The response object with every key, in the API's order.
#[derive(Serialize)]
struct ResponseObject {
    id: String,
    object: &'static str,
    created_at: u64,
    status: &'static str,
    background: bool,
    error: Option<Value>,
    incomplete_details: Option<Value>,
    instructions: Value,
    max_output_tokens: Value,
    max_tool_calls: Value,
    model: Value,
    output: Vec<Value>,
    parallel_tool_calls: bool,
    previous_response_id: Option<String>,
    prompt_cache_key: Value,
    reasoning: Value,
    safety_identifier: Value,
    service_tier: &'static str,
    store: bool,
    temperature: Value,
    text: Value,
    tool_choice: Value,
    tools: Value,
    top_logprobs: u32,
    top_p: Value,
    truncation: &'static str,
    usage: Option<Value>,
    user: Value,
    metadata: Value,
}

impl Answer {
    fn plan(control: &Control, req: &Value, input_tokens: u64) -> Answer {
        let first_tool = req
            .get("tools")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|t| t["type"] == "function")
            .and_then(|t| t["name"].as_str());
        let ends_with_output = req
            .get("input")
            .and_then(Value::as_array)
            .and_then(|i| i.last())
            .is_some_and(|i| i["type"] == "function_call_output");
        let none = req.get("tool_choice") == Some(&json!("none"));
        let call = match (&control.tool_call, first_tool) {
            _ if ends_with_output || none => None,
            (Some(ToolCall::Enabled(true)), Some(name)) => Some((
                name.to_owned(),
                "{ \"location\": \"New York City, USA\" }".to_owned(),
            )),
            (Some(ToolCall::Call { name, arguments }), Some(_)) => Some((
                name.clone(),
                arguments
                    .as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| arguments.to_string()),
            )),
            _ => None,
        };
        let mut tokens = control
            .reply_tokens
            .clone()
            .unwrap_or_else(|| vec!["Hello".into(), " from".into(), " Responses".into()]);
        let mut truncated = false;
        if let Some(max) = req.get("max_output_tokens").and_then(Value::as_u64) {
            let room = max.saturating_sub(control.reasoning_tokens) as usize;
            if room < tokens.len() {
                tokens.truncate(room);
                truncated = true;
            }
        }
        let suffix = random_id(40).to_ascii_lowercase();
        Answer {
            id: format!("resp_{suffix}"),
            created_at: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            message_id: format!("msg_{}", random_id(40).to_ascii_lowercase()),
            reasoning_id: format!("rs_{}", random_id(40).to_ascii_lowercase()),
            call: call.map(|(name, args)| {
                (
                    format!("fc_{}", random_id(40).to_ascii_lowercase()),
                    format!("call_{}", random_id(24)),
                    name,
                    args,
                )
            }),
            tokens,
            truncated,
            input_tokens,
            reasoning_tokens: control.reasoning_tokens,
            encrypted_reasoning: req
                .get("include")
                .and_then(Value::as_array)
                .is_some_and(|i| i.iter().any(|x| x == "reasoning.encrypted_content")),
        }
    }

    fn final_status(&self) -> &'static str {
        if self.truncated && self.call.is_none() {
            "incomplete"
        } else {
            "completed"
        }
    }

    fn reasoning_item(&self) -> Value {
        let mut item = json!({"id": self.reasoning_id, "type": "reasoning", "summary": []});
        if self.encrypted_reasoning {
            item["encrypted_content"] = json!(format!("gAAAAAB{}", random_id(120)));
        }
        item
    }

    fn text(&self) -> String {
        self.tokens.concat()
    }

    fn message_item(&self, done: bool) -> Value {
        let content = if done {
            json!([{"type": "output_text", "annotations": [], "logprobs": [], "text": self.text()}])
        } else {
            json!([])
        };
        json!({"id": self.message_id, "type": "message", "status": if done { if self.truncated { "incomplete" } else { "completed" } } else { "in_progress" }, "content": content, "role": "assistant"})
    }

    fn call_item(&self, done: bool) -> Option<Value> {
        let (id, call_id, name, args) = self.call.as_ref()?;
        Some(
            json!({"id": id, "type": "function_call", "status": if done { "completed" } else { "in_progress" },
            "arguments": if done { args.as_str() } else { "" }, "call_id": call_id, "name": name}),
        )
    }

    fn output_items(&self, done: bool) -> Vec<Value> {
        let mut out = Vec::new();
        if self.reasoning_tokens > 0 {
            out.push(self.reasoning_item());
        }
        match self.call_item(done) {
            Some(call) => out.push(call),
            None => out.push(self.message_item(done)),
        }
        out
    }

    fn usage(&self) -> Value {
        let output = if self.call.is_some() {
            20
        } else {
            self.tokens.len() as u64
        } + self.reasoning_tokens;
        json!({"input_tokens": self.input_tokens, "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": output, "output_tokens_details": {"reasoning_tokens": self.reasoning_tokens},
            "total_tokens": self.input_tokens + output})
    }

    fn response(&self, req: &Value, status: &'static str, output: Vec<Value>) -> ResponseObject {
        let field = |k: &str| req.get(k).cloned().unwrap_or(Value::Null);
        let finished = status != "in_progress";
        ResponseObject {
            id: self.id.clone(),
            object: "response",
            created_at: self.created_at,
            status,
            background: false,
            error: None,
            incomplete_details: (status == "incomplete")
                .then(|| json!({"reason": "max_output_tokens"})),
            instructions: field("instructions"),
            max_output_tokens: field("max_output_tokens"),
            max_tool_calls: field("max_tool_calls"),
            model: field("model"),
            output,
            parallel_tool_calls: req
                .get("parallel_tool_calls")
                .and_then(Value::as_bool)
                .unwrap_or(true),
            previous_response_id: None,
            prompt_cache_key: field("prompt_cache_key"),
            reasoning: json!({"effort": req.pointer("/reasoning/effort").cloned().unwrap_or(Value::Null), "summary": req.pointer("/reasoning/summary").cloned().unwrap_or(Value::Null)}),
            safety_identifier: Value::Null,
            service_tier: "default",
            store: req.get("store").and_then(Value::as_bool).unwrap_or(true),
            temperature: req.get("temperature").cloned().unwrap_or(json!(1.0)),
            text: json!({"format": {"type": "text"}, "verbosity": "medium"}),
            tool_choice: req.get("tool_choice").cloned().unwrap_or(json!("auto")),
            tools: req.get("tools").cloned().unwrap_or(json!([])),
            top_logprobs: 0,
            top_p: req.get("top_p").cloned().unwrap_or(json!(1.0)),
            truncation: "disabled",
            usage: finished.then(|| self.usage()),
            user: Value::Null,
            metadata: json!({}),
        }
    }

    /// The event sequence of `stream.sse` / `stream-function-call.sse`.
    fn events(&self, control: &Control, req: &Value) -> Vec<(String, Value)> {
        let obfuscate =
            req.pointer("/stream_options/include_obfuscation") != Some(&Value::Bool(false));
        let mut ev: Vec<(String, Value)> = Vec::new();
        let initial = serde_json::to_value(self.response(req, "in_progress", Vec::new()))
            .unwrap_or(Value::Null);
        ev.push(("response.created".into(), json!({"response": initial})));
        ev.push(("response.in_progress".into(), json!({"response": initial})));
        if let Some(code) = &control.stream_error {
            let message = match code.as_str() {
                "context_length_exceeded" => "Your input exceeds the context window of this model. Please adjust your input and try again.".to_owned(),
                "rate_limit_exceeded" => "Rate limit reached for gpt-5 on tokens per min (TPM). Please try again in 2s.".to_owned(),
                "insufficient_quota" => "You exceeded your current quota, please check your plan and billing details. For more information on this error, read the docs: https://platform.openai.com/docs/guides/error-codes/api-errors.".to_owned(),
                other => format!("The model failed ({other})."),
            };
            ev.push((
                "error".into(),
                json!({"error": {"type": code, "code": code, "message": message, "param": null}}),
            ));
            let mut failed = initial.clone();
            failed["status"] = json!("failed");
            failed["error"] = json!({"code": code, "message": message});
            ev.push(("response.failed".into(), json!({"response": failed})));
            return ev;
        }
        let mut index = 0;
        if self.reasoning_tokens > 0 {
            ev.push((
                "response.output_item.added".into(),
                json!({"output_index": 0, "item": self.reasoning_item()}),
            ));
            ev.push((
                "response.output_item.done".into(),
                json!({"output_index": 0, "item": self.reasoning_item()}),
            ));
            index = 1;
        }
        let pad = |s: &str| {
            let mut v = json!({"delta": s});
            if obfuscate {
                v["obfuscation"] = json!(random_id(16 - s.len().min(12)));
            }
            v
        };
        if let (Some((fc_id, _, _, args)), Some(added), Some(done)) =
            (&self.call, self.call_item(false), self.call_item(true))
        {
            ev.push((
                "response.output_item.added".into(),
                json!({"output_index": index, "item": added}),
            ));
            let chars: Vec<char> = args.chars().collect();
            for piece in chars.chunks(4) {
                let s: String = piece.iter().collect();
                let mut d = pad(&s);
                d["item_id"] = json!(fc_id);
                d["output_index"] = json!(index);
                ev.push(("response.function_call_arguments.delta".into(), d));
            }
            ev.push((
                "response.function_call_arguments.done".into(),
                json!({"item_id": fc_id, "output_index": index, "arguments": args}),
            ));
            ev.push((
                "response.output_item.done".into(),
                json!({"output_index": index, "item": done}),
            ));
        } else {
            let at = json!({"item_id": self.message_id, "output_index": index, "content_index": 0});
            let with = |mut v: Value| {
                if let (Some(o), Some(a)) = (v.as_object_mut(), at.as_object()) {
                    for (k, x) in a {
                        o.insert(k.clone(), x.clone());
                    }
                }
                v
            };
            ev.push((
                "response.output_item.added".into(),
                json!({"output_index": index, "item": self.message_item(false)}),
            ));
            ev.push(("response.content_part.added".into(), with(json!({"part": {"type": "output_text", "annotations": [], "logprobs": [], "text": ""}}))));
            for t in &self.tokens {
                let mut d = with(pad(t));
                d["logprobs"] = json!([]);
                ev.push(("response.output_text.delta".into(), d));
            }
            ev.push((
                "response.output_text.done".into(),
                with(json!({"text": self.text(), "logprobs": []})),
            ));
            ev.push(("response.content_part.done".into(), with(json!({"part": {"type": "output_text", "annotations": [], "logprobs": [], "text": self.text()}}))));
            ev.push((
                "response.output_item.done".into(),
                json!({"output_index": index, "item": self.message_item(true)}),
            ));
        }
        let status = self.final_status();
        let terminal = if status == "incomplete" {
            "response.incomplete"
        } else {
            "response.completed"
        };
        let done = serde_json::to_value(self.response(req, status, self.output_items(true)))
            .unwrap_or(Value::Null);
        ev.push((terminal.into(), json!({"response": done})));
        ev
    }

    fn stream(&self, control: &Control, req: &Value) -> Response {
        let delay = Duration::from_millis(control.token_delay_ms);
        let mut pieces = Vec::new();
        for (seq, (name, mut data)) in self.events(control, req).into_iter().enumerate() {
            if control.cut_after == Some(seq) {
                pieces.push(Piece::Cut);
                break;
            }
            // `type` and `sequence_number` first, as the API writes them.
            let mut ordered = format!(
                "{{\"type\":{},\"sequence_number\":{seq}",
                Value::from(name.as_str())
            );
            if let Some(obj) = data.as_object_mut() {
                for (k, v) in obj.iter() {
                    ordered.push_str(&format!(",{}:{}", Value::from(k.as_str()), v));
                }
            }
            ordered.push('}');
            if !delay.is_zero() {
                pieces.push(Piece::Sleep(delay));
            }
            pieces.push(Piece::Bytes(Bytes::from(format!(
                "event: {name}\ndata: {ordered}\n\n"
            ))));
        }
        respond(200, "text/event-stream; charset=utf-8", stream_body(pieces))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fixture_request_passes_and_chat_shapes_do_not() {
        let req = json!({"model": "gpt-5", "instructions": "Be brief.", "input": [
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Weather?"}]},
            {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "gAAA"},
            {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "get_weather", "arguments": "{}", "status": "completed"},
            {"type": "function_call_output", "call_id": "call_1", "output": "\"Sunny\""}],
            "tools": [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}, "strict": false}],
            "store": false, "stream": true});
        assert!(validate(&req).is_ok());
        let mut nested = req.clone();
        nested["tools"][0] = json!({"type": "function", "function": {"name": "get_weather"}});
        assert!(validate(&nested).is_err());
        let mut orphan = req;
        orphan["input"].as_array_mut().unwrap().remove(2);
        assert!(validate(&orphan).is_err());
    }

    #[test]
    fn keys_are_masked() {
        assert_eq!(mask("sk-wrong-key-1234"), "sk-**********1234");
    }
}

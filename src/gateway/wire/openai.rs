//! OpenAI chat completions, the gateway's inbound dialect: reading requests, and writing
//! `chat.completion.chunk` events, `chat.completion` bodies and errors.
//!
//! The inbound request stays a `serde_json::Value` so that pass-through providers get exactly
//! what the client sent; this module only reads the few fields the gateway needs.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use rand::distributions::Alphanumeric;
use rand::Rng;
use serde::Serialize;
use serde_json::{json, Map, Value};

use super::{Usage, WireError};

/// `type` of an error caused by the request (400).
pub const INVALID_REQUEST_ERROR: &str = "invalid_request_error";
/// `type` of an unknown model (404).
pub const NOT_FOUND_ERROR: &str = "not_found_error";
/// `type` of a failure on our side or upstream (5xx, and mid-stream failures).
pub const API_ERROR: &str = "api_error";

/// The error `type` OpenAI (and Ollama's OpenAI layer) uses for an HTTP status.
pub fn error_type_for_status(status: u16) -> &'static str {
    match status {
        400 | 413 | 422 => INVALID_REQUEST_ERROR,
        401 => "authentication_error",
        403 => "permission_error",
        404 => NOT_FOUND_ERROR,
        429 => "rate_limit_error",
        _ => API_ERROR,
    }
}

/// `{"error":{"message","type","param","code"}}` as a value.
pub fn error_value(message: &str, kind: &str, param: Option<&str>, code: Option<&str>) -> Value {
    json!({"error": {"message": message, "type": kind, "param": param, "code": code}})
}

/// `{"error":{"message","type","param","code"}}` as a response body.
pub fn error_body(message: &str, kind: &str, param: Option<&str>, code: Option<&str>) -> Bytes {
    Bytes::from(error_value(message, kind, param, code).to_string())
}

/// The SSE event that ends a stream whose upstream failed after the first byte:
/// `data: {"error":{"message","type","param":null,"code":null}}`. Nothing follows it (no
/// `[DONE]`), so clients see the stream as failed rather than complete.
pub fn sse_error_event(message: &str, kind: &str) -> Bytes {
    super::sse::sse_data(&error_value(message, kind, None, None).to_string())
}

/// Parse an inbound body and check it is a chat request ([`validate_chat_request`]).
pub fn parse_chat_request(body: &[u8]) -> Result<Value, WireError> {
    let req: Value = serde_json::from_slice(body).map_err(|err| {
        WireError::bad_request(
            format!(
                "The request body is not valid JSON ({err}). Send a JSON object with `model` and `messages`."
            ),
            None,
        )
    })?;
    validate_chat_request(&req)?;
    Ok(req)
}

/// The checks the gateway makes itself before routing: an object with a non-empty `messages`
/// array of objects that each have a string `role`.
pub fn validate_chat_request(req: &Value) -> Result<(), WireError> {
    let Some(req) = req.as_object() else {
        return Err(WireError::bad_request(
            format!(
                "The request body must be a JSON object, not {}.",
                json_kind(req)
            ),
            None,
        ));
    };
    let messages = match req.get("messages") {
        None | Some(Value::Null) => {
            return Err(WireError::bad_request(
                "Missing required parameter: 'messages'. Send the conversation as an array of {\"role\",\"content\"} objects.",
                Some("messages".into()),
            ))
        }
        Some(Value::Array(messages)) => messages,
        Some(other) => {
            return Err(WireError::bad_request(
                format!(
                    "Invalid type for 'messages': expected an array, but got {} instead.",
                    json_kind(other)
                ),
                Some("messages".into()),
            ))
        }
    };
    if messages.is_empty() {
        return Err(WireError::bad_request(
            "[] is too short - 'messages'. Send at least one message.",
            Some("messages".into()),
        ));
    }
    for (i, message) in messages.iter().enumerate() {
        let Some(message) = message.as_object() else {
            return Err(WireError::bad_request(
                format!(
                    "Invalid type for 'messages[{i}]': expected an object, but got {} instead.",
                    json_kind(message)
                ),
                Some(format!("messages[{i}]")),
            ));
        };
        if !message.get("role").is_some_and(Value::is_string) {
            return Err(WireError::bad_request(
                format!("Missing required parameter: 'messages[{i}].role'."),
                Some(format!("messages[{i}].role")),
            ));
        }
    }
    if let Some(model) = req.get("model") {
        if !model.is_string() && !model.is_null() {
            return Err(WireError::bad_request(
                format!(
                    "Invalid type for 'model': expected a string, but got {} instead.",
                    json_kind(model)
                ),
                Some("model".into()),
            ));
        }
    }
    // Sampling fields are forwarded as Ollama options, and Ollama answers a mistyped option
    // with a 500, which would look like a server failure and cool the model down for every
    // client. Refuse them here, as OpenAI does.
    for key in NUMERIC_FIELDS {
        match req.get(*key) {
            None | Some(Value::Null) | Some(Value::Number(_)) => {}
            Some(other) => {
                return Err(WireError::bad_request(
                    format!(
                        "Invalid type for '{key}': expected a number, but got {} instead.",
                        json_kind(other)
                    ),
                    Some((*key).into()),
                ))
            }
        }
    }
    match req.get("stop") {
        None | Some(Value::Null) | Some(Value::String(_)) => {}
        Some(Value::Array(stops)) if stops.iter().all(Value::is_string) => {}
        Some(other) => {
            return Err(WireError::bad_request(
                format!(
                    "Invalid type for 'stop': expected a string or an array of strings, but got {} instead.",
                    json_kind(other)
                ),
                Some("stop".into()),
            ))
        }
    }
    Ok(())
}

/// Request fields that must be numbers (or null) when present.
const NUMERIC_FIELDS: &[&str] = &[
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "seed",
    "frequency_penalty",
    "presence_penalty",
    "repeat_penalty",
];

/// `model` as sent (absent or empty means "the primary").
pub fn model(req: &Value) -> Option<&str> {
    req.get("model")
        .and_then(Value::as_str)
        .filter(|m| !m.is_empty())
}

/// `stream` (OpenAI's default is `false`).
pub fn is_stream(req: &Value) -> bool {
    req.get("stream").and_then(Value::as_bool).unwrap_or(false)
}

/// `stream_options.include_usage`.
pub fn include_usage(req: &Value) -> bool {
    req.get("stream_options")
        .and_then(|o| o.get("include_usage"))
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// The answer's token cap: `max_completion_tokens` (current), else `max_tokens` (deprecated).
pub fn max_output_tokens(req: &Value) -> Option<u64> {
    ["max_completion_tokens", "max_tokens"]
        .iter()
        .find_map(|key| req.get(*key).and_then(as_count))
}

/// A non-negative integer, also when a client wrote it as `1024.0`.
pub(crate) fn as_count(value: &Value) -> Option<u64> {
    value.as_u64().or_else(|| {
        value
            .as_f64()
            .filter(|f| *f >= 0.0 && f.fract() == 0.0 && *f <= u64::MAX as f64)
            .map(|f| f as u64)
    })
}

pub(crate) fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A fresh completion id, `chatcmpl-` and 24 random alphanumerics.
pub fn new_completion_id() -> String {
    format!("chatcmpl-{}", random_alphanumeric(24))
}

/// A fresh tool call id, `call_` and 24 random alphanumerics (for upstreams that send none).
pub fn new_call_id() -> String {
    format!("call_{}", random_alphanumeric(24))
}

fn random_alphanumeric(len: usize) -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `delta` of a chunk. Absent fields are left out.
#[derive(Debug, Default, Serialize)]
pub struct Delta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<&'a str>,
    /// Thinking text, under the name Ollama's OpenAI layer uses.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<&'a [ToolCallDelta<'a>]>,
    /// The signature of the reasoning just sent (Anthropic's), as `thinking_blocks` — the
    /// name LiteLLM and others give Anthropic's signed thinking over chat completions.
    #[serde(
        rename = "thinking_blocks",
        skip_serializing_if = "Option::is_none",
        serialize_with = "signature_block"
    )]
    pub thinking_signature: Option<&'a str>,
}

fn signature_block<S: serde::Serializer>(sig: &Option<&str>, s: S) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct Block<'a> {
        #[serde(rename = "type")]
        kind: &'a str,
        thinking: &'a str,
        signature: &'a str,
    }
    let blocks: Vec<Block<'_>> = sig
        .iter()
        .map(|signature| Block {
            kind: "thinking",
            thinking: "",
            signature,
        })
        .collect();
    blocks.serialize(s)
}

/// Gemini's thought signature where Google's OpenAI-compatible endpoint puts it:
/// `extra_content.google.thought_signature`.
fn google_extra<S: serde::Serializer>(sig: &Option<&str>, s: S) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct Google<'a> {
        thought_signature: &'a str,
    }
    #[derive(Serialize)]
    struct Extra<'a> {
        google: Google<'a>,
    }
    match sig {
        Some(thought_signature) => Extra {
            google: Google { thought_signature },
        }
        .serialize(s),
        None => s.serialize_none(),
    }
}

/// One entry of `delta.tool_calls`: the first carries `id`, `type` and `function.name`; later
/// ones with the same `index` append to `function.arguments`.
#[derive(Debug, Serialize)]
pub struct ToolCallDelta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<&'a str>,
    pub index: usize,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<&'a str>,
    pub function: FunctionDelta<'a>,
    /// Gemini's thought signature of this call (on its first delta only).
    #[serde(
        rename = "extra_content",
        skip_serializing_if = "Option::is_none",
        serialize_with = "google_extra"
    )]
    pub thought_signature: Option<&'a str>,
}

#[derive(Debug, Serialize)]
pub struct FunctionDelta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<&'a str>,
    /// A JSON text (or a fragment of one), never an object.
    pub arguments: &'a str,
}

#[derive(Serialize)]
struct UsageBody {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    prompt_tokens_details: Option<CachedTokens>,
}

#[derive(Serialize)]
struct CachedTokens {
    cached_tokens: u64,
}

impl From<&Usage> for UsageBody {
    fn from(usage: &Usage) -> UsageBody {
        UsageBody {
            prompt_tokens: usage.prompt_tokens,
            completion_tokens: usage.completion_tokens,
            total_tokens: usage.total_tokens(),
            prompt_tokens_details: (usage.cached_tokens > 0).then_some(CachedTokens {
                cached_tokens: usage.cached_tokens,
            }),
        }
    }
}

/// `usage` of a response body.
pub fn usage_value(usage: &Usage) -> Value {
    serde_json::to_value(UsageBody::from(usage)).unwrap_or(Value::Null)
}

/// Writes the `chat.completion.chunk` events of one answer: same `id`, `created` and `model`
/// on every chunk, one choice (index 0), no `system_fingerprint`. Each call returns one
/// complete SSE event (`data: …\n\n`).
#[derive(Debug, Clone)]
pub struct ChunkWriter {
    id: String,
    created: u64,
    /// `{"id":…,"object":"chat.completion.chunk","created":…,"model":…` (no closing brace),
    /// rendered once.
    head: String,
}

impl ChunkWriter {
    /// A new answer: a random id, `created` now; `model_ref` is the ref the gateway reports.
    pub fn new(model_ref: &str) -> ChunkWriter {
        ChunkWriter::with_id(new_completion_id(), unix_now(), model_ref)
    }

    pub fn with_id(id: String, created: u64, model_ref: &str) -> ChunkWriter {
        let head = format!(
            "{{\"id\":{},\"object\":\"chat.completion.chunk\",\"created\":{created},\"model\":{}",
            Value::from(id.as_str()),
            Value::from(model_ref)
        );
        ChunkWriter { id, created, head }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn created(&self) -> u64 {
        self.created
    }

    /// A chunk with `delta` and `finish_reason` (null when `None`).
    pub fn delta(&self, delta: &Delta<'_>, finish_reason: Option<&str>) -> Bytes {
        let text_len = delta.content.map_or(0, str::len) + delta.reasoning.map_or(0, str::len);
        let mut out = Vec::with_capacity(self.head.len() + 96 + text_len + text_len / 8);
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(self.head.as_bytes());
        out.extend_from_slice(b",\"choices\":[{\"index\":0,\"delta\":");
        write_json(&mut out, delta);
        out.extend_from_slice(b",\"finish_reason\":");
        write_json(&mut out, &finish_reason);
        out.extend_from_slice(b"}]}\n\n");
        Bytes::from(out)
    }

    /// The finish chunk: `"delta":{}` and `finish_reason`.
    pub fn finish(&self, finish_reason: &str) -> Bytes {
        self.delta(&Delta::default(), Some(finish_reason))
    }

    /// The usage chunk sent after the finish chunk when `stream_options.include_usage`:
    /// `"choices":[]` and `usage`.
    pub fn usage(&self, usage: &Usage) -> Bytes {
        let mut out = Vec::with_capacity(self.head.len() + 128);
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(self.head.as_bytes());
        out.extend_from_slice(b",\"choices\":[],\"usage\":");
        write_json(&mut out, &UsageBody::from(usage));
        out.extend_from_slice(b"}\n\n");
        Bytes::from(out)
    }
}

fn write_json<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    // Writing to a Vec cannot fail, and these types (strings, numbers, options, structs of
    // them) always serialize; `null` keeps the JSON well-formed should that ever change.
    if serde_json::to_writer(&mut *out, value).is_err() {
        out.extend_from_slice(b"null");
    }
}

/// A non-streamed answer: `{"id","object":"chat.completion","created","model","choices":[{
/// "index":0,"message","finish_reason"}],"usage"}`.
pub fn completion(
    model_ref: &str,
    message: Map<String, Value>,
    finish_reason: &str,
    usage: &Usage,
) -> Value {
    json!({
        "id": new_completion_id(),
        "object": "chat.completion",
        "created": unix_now(),
        "model": model_ref,
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
        "usage": usage_value(usage),
    })
}

/// One piece of a message's `content`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Part<'a> {
    Text(&'a str),
    /// `image_url.url` (or a bare string `image_url`).
    Image(&'a str),
}

/// The pieces of `content`: a string, null/absent (nothing), or an array of parts (`text`,
/// `image_url`; `refusal` counts as text). Anything else is a 400 naming `param`.
pub(crate) fn content_parts<'a>(
    content: Option<&'a Value>,
    param: &str,
) -> Result<Vec<Part<'a>>, WireError> {
    match content {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(text)) => Ok(vec![Part::Text(text)]),
        Some(Value::Array(parts)) => parts
            .iter()
            .enumerate()
            .map(|(i, part)| content_part(part, &format!("{param}[{i}]")))
            .collect(),
        Some(other) => Err(WireError::bad_request(
            format!(
                "Invalid type for '{param}': expected a string or an array of content parts, but got {} instead.",
                json_kind(other)
            ),
            Some(param.to_owned()),
        )),
    }
}

fn content_part<'a>(part: &'a Value, param: &str) -> Result<Part<'a>, WireError> {
    if let Value::String(text) = part {
        return Ok(Part::Text(text));
    }
    let kind = part.get("type").and_then(Value::as_str).unwrap_or("");
    match kind {
        "text" | "input_text" | "refusal" => part
            .get(kind.strip_prefix("input_").unwrap_or(kind))
            .or_else(|| part.get("text"))
            .and_then(Value::as_str)
            .map(Part::Text)
            .ok_or_else(|| {
                WireError::bad_request(
                    format!("Missing required parameter: '{param}.text'."),
                    Some(format!("{param}.text")),
                )
            }),
        "image_url" => {
            let url = match part.get("image_url") {
                Some(Value::String(url)) => Some(url.as_str()),
                Some(obj) => obj.get("url").and_then(Value::as_str),
                None => None,
            };
            url.map(Part::Image).ok_or_else(|| {
                WireError::bad_request(
                    format!("Missing required parameter: '{param}.image_url.url'."),
                    Some(format!("{param}.image_url.url")),
                )
            })
        }
        other => Err(WireError::bad_request(
            format!(
                "Content part type '{other}' in '{param}' cannot be forwarded to this model; send text or image_url parts."
            ),
            Some(format!("{param}.type")),
        )),
    }
}

/// A `data:` URL split into its media type and base64 payload. Non-base64 data URLs are
/// refused (models want base64).
pub(crate) fn parse_data_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("data:")?;
    let (meta, data) = rest.split_once(',')?;
    let media_type = meta.strip_suffix(";base64")?;
    Some((media_type, data))
}

/// A tool call's `function.arguments` (a JSON text in OpenAI's wire format) as the object
/// Ollama and Anthropic want. An empty string is `{}`; an object is also accepted as is.
pub(crate) fn arguments_object(arguments: Option<&Value>, param: &str) -> Result<Value, WireError> {
    let parsed = match arguments {
        None | Some(Value::Null) => return Ok(Value::Object(Map::new())),
        Some(Value::Object(_)) => return Ok(arguments.cloned().unwrap_or_default()),
        Some(Value::String(text)) if text.trim().is_empty() => {
            return Ok(Value::Object(Map::new()))
        }
        Some(Value::String(text)) => serde_json::from_str::<Value>(text),
        Some(other) => {
            return Err(WireError::bad_request(
                format!(
                    "Invalid type for '{param}': expected a JSON string, but got {} instead.",
                    json_kind(other)
                ),
                Some(param.to_owned()),
            ))
        }
    };
    match parsed {
        Ok(value @ Value::Object(_)) => Ok(value),
        Ok(other) => Err(WireError::bad_request(
            format!(
                "'{param}' must encode a JSON object, but it encodes {}.",
                json_kind(&other)
            ),
            Some(param.to_owned()),
        )),
        Err(err) => Err(WireError::bad_request(
            format!(
                "'{param}' is not valid JSON ({err}); tool call arguments must be a JSON object."
            ),
            Some(param.to_owned()),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data_json(event: &Bytes) -> Value {
        let text = std::str::from_utf8(event).unwrap();
        let json = text
            .strip_prefix("data: ")
            .unwrap()
            .strip_suffix("\n\n")
            .unwrap();
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn request_fields_are_read() {
        let req = json!({"model":"ollama/llama3.2:3b","messages":[{"role":"user","content":"hi"}],
            "stream":true,"stream_options":{"include_usage":true},"max_tokens":50,"max_completion_tokens":1024});
        validate_chat_request(&req).unwrap();
        assert_eq!(model(&req), Some("ollama/llama3.2:3b"));
        assert!(is_stream(&req));
        assert!(include_usage(&req));
        assert_eq!(max_output_tokens(&req), Some(1024));
        let bare = json!({"messages":[{"role":"user","content":"hi"}],"max_tokens":64.0});
        assert_eq!(model(&bare), None);
        assert!(!is_stream(&bare));
        assert!(!include_usage(&bare));
        assert_eq!(max_output_tokens(&bare), Some(64));
    }

    #[test]
    fn mistyped_sampling_fields_are_refused_before_they_reach_an_upstream() {
        let with = |key: &str, value: Value| {
            let mut req = json!({"messages":[{"role":"user","content":"hi"}]});
            req[key] = value;
            validate_chat_request(&req)
        };
        for key in NUMERIC_FIELDS {
            assert!(with(key, json!(0.5)).is_ok());
            assert!(with(key, Value::Null).is_ok());
            let err = with(key, json!("0.5")).unwrap_err();
            assert_eq!(
                err,
                WireError::bad_request(
                    format!(
                        "Invalid type for '{key}': expected a number, but got a string instead."
                    ),
                    Some((*key).into())
                )
            );
        }
        assert!(with("stop", json!("\n")).is_ok());
        assert!(with("stop", json!(["a", "b"])).is_ok());
        assert!(with("stop", json!([null])).is_err());
        assert!(with("stop", json!(5)).is_err());
    }

    #[test]
    fn malformed_requests_are_bad_requests_naming_the_field() {
        let param = |body: &[u8]| match parse_chat_request(body).unwrap_err() {
            WireError::BadRequest { param, .. } => param,
        };
        assert_eq!(param(b"{not json"), None);
        assert_eq!(param(b"[1]"), None);
        assert_eq!(param(b"{\"model\":\"x\"}").as_deref(), Some("messages"));
        assert_eq!(param(b"{\"messages\":\"hi\"}").as_deref(), Some("messages"));
        assert_eq!(param(b"{\"messages\":[]}").as_deref(), Some("messages"));
        assert_eq!(
            param(b"{\"messages\":[\"hi\"]}").as_deref(),
            Some("messages[0]")
        );
        assert_eq!(
            param(b"{\"messages\":[{\"content\":\"hi\"}]}").as_deref(),
            Some("messages[0].role")
        );
        assert_eq!(
            param(b"{\"model\":1,\"messages\":[{\"role\":\"user\"}]}").as_deref(),
            Some("model")
        );
    }

    #[test]
    fn chunks_share_id_created_and_model_and_omit_fingerprint() {
        let writer = ChunkWriter::with_id("chatcmpl-1".into(), 1787418967, "ollama/llama3.2:3b");
        let first = data_json(&writer.delta(
            &Delta {
                role: Some("assistant"),
                content: Some("The \"sky\""),
                ..Delta::default()
            },
            None,
        ));
        assert_eq!(
            first,
            json!({"id":"chatcmpl-1","object":"chat.completion.chunk","created":1787418967,
                "model":"ollama/llama3.2:3b","choices":[{"index":0,"delta":{"role":"assistant","content":"The \"sky\""},"finish_reason":null}]})
        );
        assert_eq!(
            data_json(&writer.finish("stop"))["choices"],
            json!([{"index":0,"delta":{},"finish_reason":"stop"}])
        );
        let usage = data_json(&writer.usage(&Usage {
            prompt_tokens: 31,
            completion_tokens: 23,
            cached_tokens: 0,
        }));
        assert_eq!(usage["choices"], json!([]));
        assert_eq!(
            usage["usage"],
            json!({"prompt_tokens":31,"completion_tokens":23,"total_tokens":54})
        );
        assert!(usage.get("system_fingerprint").is_none());
    }

    #[test]
    fn generated_ids_have_the_openai_prefixes() {
        let id = new_completion_id();
        assert!(id.starts_with("chatcmpl-") && id.len() == 33, "{id}");
        assert_ne!(id, new_completion_id());
        assert!(new_call_id().starts_with("call_"));
    }

    #[test]
    fn sse_error_event_is_an_openai_error_in_a_data_event() {
        let event = sse_error_event("runner crashed", API_ERROR);
        assert_eq!(
            data_json(&event),
            json!({"error":{"message":"runner crashed","type":"api_error","param":null,"code":null}})
        );
    }

    #[test]
    fn content_parts_and_data_urls() {
        let content = json!([{"type":"text","text":"look"},{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBO"}}]);
        let parts = content_parts(Some(&content), "messages[0].content").unwrap();
        assert_eq!(
            parts,
            vec![
                Part::Text("look"),
                Part::Image("data:image/png;base64,iVBO")
            ]
        );
        assert_eq!(
            parse_data_url("data:image/png;base64,iVBO"),
            Some(("image/png", "iVBO"))
        );
        assert_eq!(parse_data_url("https://example.com/a.png"), None);
        let audio = json!([{"type":"input_audio","input_audio":{}}]);
        assert!(content_parts(Some(&audio), "messages[0].content").is_err());
    }

    #[test]
    fn tool_arguments_become_objects() {
        let p = "messages[1].tool_calls[0].function.arguments";
        assert_eq!(
            arguments_object(Some(&json!("{\"city\":\"Tokyo\"}")), p).unwrap(),
            json!({"city":"Tokyo"})
        );
        assert_eq!(arguments_object(Some(&json!("")), p).unwrap(), json!({}));
        assert_eq!(
            arguments_object(Some(&json!({"a":1})), p).unwrap(),
            json!({"a":1})
        );
        assert!(arguments_object(Some(&json!("[1]")), p).is_err());
        assert!(arguments_object(Some(&json!("{broken")), p).is_err());
    }
}

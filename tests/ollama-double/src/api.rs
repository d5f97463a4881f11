//! The native API: `/api/tags`, `/api/show`, `/api/ps`, `/api/chat`, `/api/generate`.

use crate::control::{self, catalogue, find, Model, TagsShape};
use crate::engine::{self, Metrics, Piece, Run, StreamEvent};
use crate::gojson::{self, field, DecodeFailure, GoType};
use crate::reply::{self, Reply};
use crate::server::{KeepAlive, Req, State};
use crate::timefmt;
use crate::version;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;

/// `api.ModelDetails`.
#[derive(Serialize)]
pub struct Details<'a> {
    parent_model: &'a str,
    format: &'a str,
    family: &'a str,
    families: &'a [String],
    parameter_size: &'a str,
    quantization_level: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    context_length: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    embedding_length: Option<u64>,
}

fn details(m: &Model, with_lengths: bool) -> Details<'_> {
    Details {
        parent_model: "",
        format: &m.format,
        family: &m.family,
        families: &m.families,
        parameter_size: &m.parameter_size,
        quantization_level: &m.quantization_level,
        context_length: m.context_length.filter(|_| with_lengths),
        embedding_length: m.embedding_length.filter(|_| with_lengths),
    }
}

/// `{"models":[...]}` (a struct, so field order survives serialization).
#[derive(Serialize)]
struct ModelList<T: Serialize> {
    models: Vec<T>,
}

/// Reads a native request body like `c.ShouldBindJSON` plus Ollama's error mapping.
pub fn parse_native(
    body: &[u8],
    struct_name: &str,
    fields: &[(&str, GoType)],
) -> Result<Value, Reply> {
    let value = match gojson::decode_first(body) {
        Ok(v) => v,
        Err(DecodeFailure::Eof) => return Err(Reply::gin_error(400, "missing request body")),
        Err(DecodeFailure::Syntax(m)) => return Err(Reply::gin_error(400, &m)),
    };
    gojson::check_fields(&value, struct_name, fields).map_err(|m| Reply::gin_error(400, &m))?;
    Ok(value)
}

pub fn str_field<'a>(v: &'a Value, name: &str) -> &'a str {
    field(v, name).and_then(Value::as_str).unwrap_or("")
}

pub fn array_field<'a>(v: &'a Value, name: &str) -> &'a [Value] {
    field(v, name)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

pub fn option_i64(v: &Value, name: &str) -> Option<i64> {
    field(v, "options")
        .and_then(|o| field(o, name))
        .and_then(|n| n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)))
}

/// `think`: absent, a bool, or a level string (`low`/`medium`/`high`/`max`).
pub fn parse_think(v: Option<&Value>) -> Result<Option<bool>, String> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(Value::String(s)) => match s.as_str() {
            "high" | "medium" | "low" | "max" => Ok(Some(true)),
            "true" => Ok(Some(true)),
            "false" => Ok(Some(false)),
            _ => Err(format!(
                "invalid think value: {} (must be \"high\", \"medium\", \"low\", true, or false)",
                gojson::go_quote(s)
            )),
        },
        Some(_) => Err("think must be a boolean or string".to_string()),
    }
}

fn tags_shape(state: &State, req: &Req) -> TagsShape {
    req.control
        .tags_shape
        .unwrap_or(if version::has_rich_tags(&state.version) {
            TagsShape::Current
        } else {
            TagsShape::Legacy
        })
}

#[derive(Serialize)]
struct ListModel<'a> {
    name: &'a str,
    model: &'a str,
    modified_at: &'a str,
    size: u64,
    digest: &'a str,
    details: Details<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    capabilities: Option<&'a [String]>,
}

pub fn tags(state: &State, req: &Req) -> Reply {
    let cat = catalogue(&req.control);
    let rich = tags_shape(state, req) == TagsShape::Current;
    let models: Vec<ListModel<'_>> = cat
        .iter()
        .map(|m| ListModel {
            name: &m.name,
            model: &m.name,
            modified_at: &m.modified_at,
            size: m.size,
            digest: &m.digest,
            details: details(m, rich),
            capabilities: (rich && !m.capabilities.is_empty()).then_some(m.capabilities.as_slice()),
        })
        .collect();
    Reply::gin_json(200, &ModelList { models })
}

#[derive(Serialize)]
struct Tensor {
    name: &'static str,
    #[serde(rename = "type")]
    kind: &'static str,
    shape: Vec<u64>,
}

#[derive(Serialize)]
struct ShowResponse<'a> {
    modelfile: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    parameters: String,
    template: String,
    details: Details<'a>,
    model_info: BTreeMap<String, Value>,
    tensors: Vec<Tensor>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    capabilities: &'a [String],
    modified_at: &'a str,
}

/// "8.0B" → 8_000_000_000.
fn parameter_count(size: &str) -> u64 {
    let (number, scale) = match size.chars().last() {
        Some('B') => (&size[..size.len() - 1], 1e9),
        Some('M') => (&size[..size.len() - 1], 1e6),
        Some('K') => (&size[..size.len() - 1], 1e3),
        _ => (size, 1.0),
    };
    number
        .parse::<f64>()
        .map(|n| (n * scale) as u64)
        .unwrap_or(0)
}

fn template_for(m: &Model) -> String {
    let mut t = String::from("{{- if .System }}<|system|>\n{{ .System }}\n{{ end }}");
    if m.has("tools") {
        t.push_str("{{- if .Tools }}<|tools|>\n{{ range .Tools }}{{ . }}\n{{ end }}{{ end }}");
    }
    t.push_str("{{- range .Messages }}<|{{ .Role }}|>\n{{ .Content }}\n{{ end }}<|assistant|>\n");
    if m.has("thinking") {
        t.push_str("{{- if .Think }}<think>{{ end }}");
    }
    t
}

/// A Go-faithful `/api/show` body for a catalogue model without a fixture.
fn synthesized_show(state: &State, m: &Model) -> Vec<u8> {
    let family = m.family.as_str();
    let mut info: BTreeMap<String, Value> = BTreeMap::new();
    info.insert("general.architecture".into(), Value::from(family));
    let basename = control::parse_name(&m.name)
        .map(|n| n.model)
        .unwrap_or_else(|| m.name.clone());
    info.insert("general.basename".into(), Value::from(basename));
    info.insert("general.file_type".into(), Value::from(15));
    info.insert(
        "general.parameter_count".into(),
        Value::from(parameter_count(&m.parameter_size)),
    );
    info.insert("general.quantization_version".into(), Value::from(2));
    info.insert(format!("{family}.attention.head_count"), Value::from(32));
    info.insert(format!("{family}.attention.head_count_kv"), Value::from(8));
    info.insert(format!("{family}.block_count"), Value::from(32));
    if let Some(ctx) = m.context_length {
        let key = m
            .model_info_key
            .clone()
            .unwrap_or_else(|| format!("{family}.context_length"));
        info.insert(key, Value::from(ctx));
    }
    if let Some(e) = m.embedding_length {
        info.insert(format!("{family}.embedding_length"), Value::from(e));
    }
    if m.has("embedding") && !m.has("completion") {
        info.insert(format!("{family}.pooling_type"), Value::from(1));
    }
    info.insert("tokenizer.ggml.model".into(), Value::from("gpt2"));
    // Arrays over 1024 entries are null unless verbose (fs/ggml/gguf.go).
    info.insert("tokenizer.ggml.merges".into(), Value::Null);
    info.insert("tokenizer.ggml.token_type".into(), Value::Null);
    info.insert("tokenizer.ggml.tokens".into(), Value::Null);

    let template = template_for(m);
    let mut modelfile = format!(
        "# Modelfile generated by \"ollama show\"\n# To build a new Modelfile based on this, replace FROM with:\n# FROM {}\n\nFROM {}/blobs/sha256-{}\nTEMPLATE \"\"\"{}\"\"\"\n",
        m.name, state.models_dir, m.digest, template
    );
    let mut parameters = String::new();
    if let Some(n) = m.num_ctx_param {
        modelfile.push_str(&format!("PARAMETER num_ctx {n}\n"));
        parameters = format!("{:<30} {n}", "num_ctx");
    }
    let embedding = m.embedding_length.unwrap_or(4096);
    let body = ShowResponse {
        modelfile,
        parameters,
        template,
        details: details(m, false),
        model_info: info,
        tensors: vec![
            Tensor {
                name: "token_embd.weight",
                kind: "Q4_K",
                shape: vec![embedding, 32_000],
            },
            Tensor {
                name: "output_norm.weight",
                kind: "F32",
                shape: vec![embedding],
            },
        ],
        capabilities: &m.capabilities,
        modified_at: &m.modified_at,
    };
    gojson::marshal(&body)
}

pub fn show(state: &State, req: &Req) -> Reply {
    let body = match parse_native(
        &req.body,
        "api.ShowRequest",
        &[
            ("model", GoType::String),
            ("name", GoType::String),
            ("system", GoType::String),
            ("template", GoType::String),
            ("verbose", GoType::Bool),
            ("options", GoType::Object("map[string]interface {}")),
        ],
    ) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let mut requested = str_field(&body, "model");
    if requested.is_empty() {
        requested = str_field(&body, "name");
    }
    if requested.is_empty() {
        return Reply::gin_error(400, "model is required");
    }
    let Some(name) = control::parse_name(requested) else {
        return Reply::gin_error(400, "invalid model name");
    };
    let cat = catalogue(&req.control);
    let Some(m) = find(&cat, requested) else {
        let shown = if version::show_normalizes_names(&state.version) {
            name.display()
        } else {
            requested.to_string()
        };
        return Reply::gin_error(404, &format!("model '{shown}' not found"));
    };
    match m.fixture_show {
        Some(bytes) => Reply::bytes(200, Some(reply::GIN_JSON), bytes),
        None => Reply::bytes(200, Some(reply::GIN_JSON), synthesized_show(state, m)),
    }
}

#[derive(Serialize)]
struct PsModel<'a> {
    name: &'a str,
    model: &'a str,
    size: u64,
    digest: &'a str,
    details: Details<'a>,
    expires_at: String,
    size_vram: u64,
    context_length: u64,
}

pub fn ps(state: &State) -> Reply {
    let mut loaded = state.loaded_models();
    // Longest remaining time first.
    loaded.sort_by_key(|l| std::cmp::Reverse(l.expires_at));
    let models: Vec<PsModel<'_>> = loaded
        .iter()
        .map(|l| PsModel {
            name: &l.model.name,
            model: &l.model.name,
            size: l.model.size,
            digest: &l.model.digest,
            details: details(&l.model, false),
            expires_at: timefmt::local(l.expires_at).rfc3339_nano(),
            size_vram: l.model.size,
            context_length: l.context_length,
        })
        .collect();
    Reply::gin_json(200, &ModelList { models })
}

/// `api.ToolCall`.
#[derive(Serialize)]
struct ToolCallOut<'a> {
    id: &'a str,
    function: ToolFunctionOut<'a>,
}

#[derive(Serialize)]
struct ToolFunctionOut<'a> {
    index: usize,
    name: &'a str,
    arguments: &'a Value,
}

/// `api.Message` as the server sends it.
#[derive(Serialize)]
struct MessageOut<'a> {
    role: &'static str,
    content: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    thinking: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<ToolCallOut<'a>>,
}

/// `api.ChatResponse`.
#[derive(Serialize)]
struct ChatChunk<'a> {
    model: &'a str,
    created_at: String,
    message: MessageOut<'a>,
    done: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    done_reason: Option<&'a str>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    metrics: Option<&'a Metrics>,
}

fn empty_message<'a>() -> MessageOut<'a> {
    MessageOut {
        role: "assistant",
        content: String::new(),
        thinking: None,
        tool_calls: Vec::new(),
    }
}

fn tool_calls_out(pieces: &[Piece]) -> Vec<ToolCallOut<'_>> {
    pieces
        .iter()
        .filter_map(|p| match p {
            Piece::ToolCall {
                id,
                name,
                arguments,
            } => Some((id, name, arguments)),
            _ => None,
        })
        .enumerate()
        .map(|(index, (id, name, arguments))| ToolCallOut {
            id,
            function: ToolFunctionOut {
                index,
                name,
                arguments,
            },
        })
        .collect()
}

fn chat_piece_message(piece: &Piece) -> MessageOut<'_> {
    match piece {
        Piece::Thinking(t) => MessageOut {
            thinking: Some(t.clone()),
            ..empty_message()
        },
        Piece::Content(c) => MessageOut {
            content: c.clone(),
            ..empty_message()
        },
        Piece::ToolCall { .. } => MessageOut {
            tool_calls: tool_calls_out(std::slice::from_ref(piece)),
            ..empty_message()
        },
    }
}

fn load_reply_chat(model_echo: &str, reason: &str) -> Reply {
    Reply::gin_json(
        200,
        &ChatChunk {
            model: model_echo,
            created_at: engine::now_rfc3339(),
            message: empty_message(),
            done: true,
            done_reason: Some(reason),
            metrics: None,
        },
    )
}

/// The runner failed before the first byte: `streamResponse` writes a plain JSON error.
fn pre_stream_error(message: &str) -> Reply {
    Reply::bytes(
        500,
        Some(reply::V1_JSON),
        gojson::marshal(&serde_json::json!({ "error": message })),
    )
}

const CHAT_FIELDS: &[(&str, GoType)] = &[
    ("model", GoType::String),
    ("messages", GoType::Array("[]api.Message")),
    ("tools", GoType::Array("api.Tools")),
    ("stream", GoType::Bool),
    ("options", GoType::Object("map[string]interface {}")),
    ("format", GoType::Any),
];

/// Validation shared by native and OpenAI chat; `Err` carries (status, message).
pub struct ChatRequest<'a> {
    pub model: Model,
    pub model_echo: &'a str,
    pub keep_alive: KeepAlive,
    pub thinking: bool,
    pub tools: bool,
    pub messages: &'a [Value],
    pub context_length: u64,
    pub num_predict: Option<i64>,
}

pub fn validate_chat<'a>(
    state: &State,
    req: &Req,
    body: &'a Value,
    think: Option<bool>,
) -> Result<ChatRequest<'a>, (u16, String)> {
    let keep_alive = engine::keep_alive_from(field(body, "keep_alive"), state.default_keep_alive)
        .map_err(|m| (400, m))?;
    let model_echo = str_field(body, "model");
    if model_echo.is_empty() {
        return Err((400, "model is required".to_string()));
    }
    let cat = catalogue(&req.control);
    let model = find(&cat, model_echo)
        .cloned()
        .ok_or_else(|| (404, format!("model '{model_echo}' not found")))?;
    let messages = array_field(body, "messages");
    let tools = !array_field(body, "tools").is_empty();
    let unloading = messages.is_empty() && keep_alive == KeepAlive::For(Default::default());
    if !unloading {
        if !model.has("completion") {
            return Err((
                400,
                format!("{} does not support chat", gojson::go_quote(model_echo)),
            ));
        }
        if tools && !model.has("tools") {
            return Err((400, format!("{} does not support tools", model.full_name())));
        }
        if think == Some(true) && !model.has("thinking") {
            return Err((
                400,
                format!("{} does not support thinking", gojson::go_quote(model_echo)),
            ));
        }
    }
    let thinking = model.has("thinking") && think != Some(false);
    let requested_ctx = option_i64(body, "num_ctx")
        .filter(|n| *n > 0)
        .map(|n| n as u64);
    let context_length = engine::effective_context(state, &model, requested_ctx);
    Ok(ChatRequest {
        model,
        model_echo,
        keep_alive,
        thinking,
        tools,
        messages,
        context_length,
        num_predict: option_i64(body, "num_predict"),
    })
}

/// Prompt size of a chat: template overhead + messages + tool schemas.
pub fn chat_prompt_tokens(body: &Value) -> u64 {
    let messages: u64 = array_field(body, "messages")
        .iter()
        .map(|m| {
            let content = match field(m, "content") {
                Some(Value::String(s)) => s.len(),
                Some(other) => other.to_string().len(),
                None => 0,
            };
            4 + engine::tokens_of(content)
        })
        .sum();
    let tools = field(body, "tools")
        .map(|t| engine::tokens_of(t.to_string().len()))
        .unwrap_or(0);
    10 + messages + tools
}

pub async fn chat(state: &Arc<State>, req: &Req) -> Reply {
    let body = match parse_native(&req.body, "api.ChatRequest", CHAT_FIELDS) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let think = match parse_think(field(&body, "think")) {
        Ok(t) => t,
        Err(m) => return Reply::gin_error(400, &m),
    };
    let chat = match validate_chat(state, req, &body, think) {
        Ok(c) => c,
        Err((status, m)) => return Reply::gin_error(status, &m),
    };
    if chat.messages.is_empty() {
        if chat.keep_alive == KeepAlive::For(Default::default()) {
            state.unload(&chat.model.name);
            return load_reply_chat(chat.model_echo, "unload");
        }
        engine::prepare(
            state,
            &req.control,
            &chat.model,
            chat.context_length,
            chat.keep_alive,
            req.started,
        )
        .await;
        return load_reply_chat(chat.model_echo, "load");
    }
    let plan = engine::plan(
        &req.control,
        &chat.model,
        chat.thinking,
        chat.tools,
        chat_prompt_tokens(&body),
        chat.num_predict,
    );
    let timing = engine::prepare(
        state,
        &req.control,
        &chat.model,
        chat.context_length,
        chat.keep_alive,
        req.started,
    )
    .await;
    let run = Run::new(
        state.clone(),
        &req.control,
        chat.model.clone(),
        chat.context_length,
        chat.keep_alive,
        plan,
        timing,
    );
    let stream = field(&body, "stream")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    let model_echo = chat.model_echo.to_string();
    if !stream {
        return match run.until_done().await {
            Err(e) => Reply::gin_error(500, &e),
            Ok((plan, metrics)) => {
                let mut message = empty_message();
                let mut thinking = String::new();
                for p in &plan.pieces {
                    match p {
                        Piece::Thinking(t) => thinking.push_str(t),
                        Piece::Content(c) => message.content.push_str(c),
                        Piece::ToolCall { .. } => {}
                    }
                }
                message.thinking = (!thinking.is_empty()).then_some(thinking);
                message.tool_calls = tool_calls_out(&plan.pieces);
                Reply::gin_json(
                    200,
                    &ChatChunk {
                        model: &model_echo,
                        created_at: engine::now_rfc3339(),
                        message,
                        done: true,
                        done_reason: Some(plan.done_reason),
                        metrics: Some(&metrics),
                    },
                )
            }
        };
    }
    if run.midstream_error_after == Some(0) {
        state.unload(&chat.model.name);
        return pre_stream_error(&crate::fixtures::midstream_error_text());
    }
    let rx = run.stream(move |event| match event {
        StreamEvent::Piece { piece, .. } => gojson::encode_line(&ChatChunk {
            model: &model_echo,
            created_at: engine::now_rfc3339(),
            message: chat_piece_message(piece),
            done: false,
            done_reason: None,
            metrics: None,
        }),
        StreamEvent::Done { metrics, reason } => gojson::encode_line(&ChatChunk {
            model: &model_echo,
            created_at: engine::now_rfc3339(),
            message: empty_message(),
            done: true,
            done_reason: Some(reason),
            metrics: Some(metrics),
        }),
        StreamEvent::Error(e) => gojson::encode_line(&serde_json::json!({ "error": e })),
    });
    Reply::stream(reply::NDJSON, rx)
}

/// `api.GenerateResponse`.
#[derive(Serialize)]
struct GenerateChunk<'a> {
    model: &'a str,
    created_at: String,
    response: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    thinking: &'a str,
    done: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    done_reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    context: Option<Vec<u64>>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    metrics: Option<&'a Metrics>,
}

/// Token ids of prompt + reply (the deprecated `context` field).
fn context_tokens(count: u64) -> Vec<u64> {
    (0..count).map(|i| 128_000 + (i * 7919) % 20_000).collect()
}

const GENERATE_FIELDS: &[(&str, GoType)] = &[
    ("model", GoType::String),
    ("prompt", GoType::String),
    ("suffix", GoType::String),
    ("system", GoType::String),
    ("template", GoType::String),
    ("stream", GoType::Bool),
    ("raw", GoType::Bool),
    ("images", GoType::Array("[]api.ImageData")),
    ("options", GoType::Object("map[string]interface {}")),
    ("format", GoType::Any),
];

pub async fn generate(state: &Arc<State>, req: &Req) -> Reply {
    let body = match parse_native(&req.body, "api.GenerateRequest", GENERATE_FIELDS) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let think = match parse_think(field(&body, "think")) {
        Ok(t) => t,
        Err(m) => return Reply::gin_error(400, &m),
    };
    let keep_alive =
        match engine::keep_alive_from(field(&body, "keep_alive"), state.default_keep_alive) {
            Ok(k) => k,
            Err(m) => return Reply::gin_error(400, &m),
        };
    let model_echo = str_field(&body, "model").to_string();
    let cat = catalogue(&req.control);
    let Some(model) = find(&cat, &model_echo).cloned() else {
        return Reply::gin_error(404, &format!("model '{model_echo}' not found"));
    };
    let prompt = str_field(&body, "prompt");
    let has_images = !array_field(&body, "images").is_empty();
    let load_reply = |reason: &str| {
        Reply::gin_json(
            200,
            &GenerateChunk {
                model: &model_echo,
                created_at: engine::now_rfc3339(),
                response: "",
                thinking: "",
                done: true,
                done_reason: Some(reason),
                context: None,
                metrics: None,
            },
        )
    };
    if prompt.is_empty() && !has_images && keep_alive == KeepAlive::For(Default::default()) {
        state.unload(&model.name);
        return load_reply("unload");
    }
    if !model.has("completion") {
        return Reply::gin_error(
            400,
            &format!(
                "{} does not support generate",
                gojson::go_quote(&model_echo)
            ),
        );
    }
    if think == Some(true) && !model.has("thinking") {
        return Reply::gin_error(
            400,
            &format!(
                "{} does not support thinking",
                gojson::go_quote(&model_echo)
            ),
        );
    }
    let requested_ctx = option_i64(&body, "num_ctx")
        .filter(|n| *n > 0)
        .map(|n| n as u64);
    let context_length = engine::effective_context(state, &model, requested_ctx);
    if prompt.is_empty() && !has_images {
        engine::prepare(
            state,
            &req.control,
            &model,
            context_length,
            keep_alive,
            req.started,
        )
        .await;
        return load_reply("load");
    }
    let thinking = model.has("thinking") && think != Some(false);
    let prompt_tokens = 10 + engine::tokens_of(prompt.len() + str_field(&body, "system").len());
    let plan = engine::plan(
        &req.control,
        &model,
        thinking,
        false,
        prompt_tokens,
        option_i64(&body, "num_predict"),
    );
    let timing = engine::prepare(
        state,
        &req.control,
        &model,
        context_length,
        keep_alive,
        req.started,
    )
    .await;
    let run = Run::new(
        state.clone(),
        &req.control,
        model.clone(),
        context_length,
        keep_alive,
        plan,
        timing,
    );
    let raw = field(&body, "raw")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let stream = field(&body, "stream")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    if !stream {
        return match run.until_done().await {
            Err(e) => Reply::gin_error(500, &e),
            Ok((plan, metrics)) => {
                let mut response = String::new();
                let mut thinking = String::new();
                for p in &plan.pieces {
                    match p {
                        Piece::Thinking(t) => thinking.push_str(t),
                        Piece::Content(c) => response.push_str(c),
                        Piece::ToolCall { .. } => {}
                    }
                }
                Reply::gin_json(
                    200,
                    &GenerateChunk {
                        model: &model_echo,
                        created_at: engine::now_rfc3339(),
                        response: &response,
                        thinking: &thinking,
                        done: true,
                        done_reason: Some(plan.done_reason),
                        context: (!raw).then(|| {
                            context_tokens(metrics.prompt_eval_count + metrics.eval_count)
                        }),
                        metrics: Some(&metrics),
                    },
                )
            }
        };
    }
    if run.midstream_error_after == Some(0) {
        state.unload(&model.name);
        return pre_stream_error(&crate::fixtures::midstream_error_text());
    }
    let rx = run.stream(move |event| match event {
        StreamEvent::Piece { piece, .. } => {
            let (response, thinking) = match piece {
                Piece::Thinking(t) => ("", t.as_str()),
                Piece::Content(c) => (c.as_str(), ""),
                Piece::ToolCall { .. } => ("", ""),
            };
            gojson::encode_line(&GenerateChunk {
                model: &model_echo,
                created_at: engine::now_rfc3339(),
                response,
                thinking,
                done: false,
                done_reason: None,
                context: None,
                metrics: None,
            })
        }
        StreamEvent::Done { metrics, reason } => gojson::encode_line(&GenerateChunk {
            model: &model_echo,
            created_at: engine::now_rfc3339(),
            response: "",
            thinking: "",
            done: true,
            done_reason: Some(reason),
            context: (!raw).then(|| context_tokens(metrics.prompt_eval_count + metrics.eval_count)),
            metrics: Some(metrics),
        }),
        StreamEvent::Error(e) => gojson::encode_line(&serde_json::json!({ "error": e })),
    });
    Reply::stream(reply::NDJSON, rx)
}

//! The OpenAI-compatible layer: `/v1/chat/completions`, `/v1/models`, `/v1/models/:model`.
//!
//! Streams use the ≥0.32.6 wire format (role only in the first delta, a dedicated finish chunk
//! with `"delta":{}`, one `created` for all chunks) or, for older versions, the legacy one.

use crate::api::{array_field, chat_prompt_tokens, str_field, validate_chat};
use crate::control::{self, catalogue, find};
use crate::engine::{self, Piece, Run, StreamEvent};
use crate::gojson::{self, field, DecodeFailure, GoType};
use crate::reply::{self, Reply};
use crate::server::{Req, State};
use crate::timefmt;
use crate::version;
use rand::Rng;
use serde::Serialize;
use serde_json::Value;
use std::sync::Arc;
use std::time::SystemTime;

#[derive(Serialize)]
struct ToolCall {
    id: String,
    index: usize,
    #[serde(rename = "type")]
    kind: &'static str,
    function: Function,
}

#[derive(Serialize)]
struct Function {
    name: String,
    arguments: String,
}

#[derive(Serialize, Default)]
struct Delta {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<ToolCall>,
}

#[derive(Serialize)]
struct ChunkChoice {
    index: usize,
    delta: Delta,
    finish_reason: Option<String>,
}

#[derive(Serialize, Clone, Copy)]
struct Usage {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
}

#[derive(Serialize)]
struct Chunk<'a> {
    id: &'a str,
    object: &'static str,
    created: i64,
    model: &'a str,
    system_fingerprint: &'static str,
    choices: Vec<ChunkChoice>,
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Usage>,
}

#[derive(Serialize)]
struct Message {
    role: &'static str,
    content: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    reasoning: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<ToolCall>,
}

#[derive(Serialize)]
struct CompletionChoice {
    index: usize,
    message: Message,
    finish_reason: String,
}

#[derive(Serialize)]
struct Completion<'a> {
    id: &'a str,
    object: &'static str,
    created: i64,
    model: &'a str,
    system_fingerprint: &'static str,
    choices: Vec<CompletionChoice>,
    usage: Usage,
}

fn tool_call(index: usize, piece: &Piece) -> Option<ToolCall> {
    match piece {
        Piece::ToolCall {
            id,
            name,
            arguments,
        } => Some(ToolCall {
            id: id.clone(),
            index,
            kind: "function",
            function: Function {
                name: name.clone(),
                arguments: String::from_utf8_lossy(&gojson::marshal(arguments)).into_owned(),
            },
        }),
        _ => None,
    }
}

fn sse(value: &impl Serialize) -> Vec<u8> {
    let mut out = b"data: ".to_vec();
    out.extend_from_slice(&gojson::marshal(value));
    out.extend_from_slice(b"\n\n");
    out
}

fn now_unix() -> i64 {
    timefmt::unix_seconds(SystemTime::now())
}

/// `reasoning_effort` / `reasoning.effort` → think (None = not given).
fn reasoning(body: &Value) -> Result<Option<bool>, String> {
    let effort = field(body, "reasoning_effort")
        .and_then(Value::as_str)
        .or_else(|| {
            field(body, "reasoning")
                .and_then(|r| field(r, "effort"))
                .and_then(Value::as_str)
        });
    match effort {
        None => Ok(None),
        Some("none") => Ok(Some(false)),
        Some("minimal" | "low" | "medium" | "high" | "max" | "xhigh" | "ultra") => Ok(Some(true)),
        Some(other) => Err(format!(
            "invalid reasoning value: {} (must be \"minimal\", \"low\", \"medium\", \"high\", \"xhigh\", \"ultra\", \"max\", or \"none\")",
            gojson::go_quote(other)
        )),
    }
}

pub async fn chat_completions(state: &Arc<State>, req: &Req) -> Reply {
    let body = match gojson::decode_first(&req.body) {
        Ok(v) => v,
        Err(DecodeFailure::Eof) => return Reply::v1_error(400, "EOF"),
        Err(DecodeFailure::Syntax(m)) => return Reply::v1_error(400, &m),
    };
    if let Err(m) = gojson::check_fields(
        &body,
        "openai.ChatCompletionRequest",
        &[
            ("model", GoType::String),
            ("messages", GoType::Array("[]openai.Message")),
            ("stream", GoType::Bool),
            ("stream_options", GoType::Object("openai.StreamOptions")),
            ("tools", GoType::Array("[]api.Tool")),
        ],
    ) {
        return Reply::v1_error(400, &m);
    }
    if array_field(&body, "messages").is_empty() {
        return Reply::v1_error(400, "[] is too short - 'messages'");
    }
    let think = match reasoning(&body) {
        Ok(t) => t,
        Err(m) => return Reply::v1_error(400, &m),
    };
    let chat = match validate_chat(state, req, &body, think) {
        Ok(c) => c,
        Err((status, m)) => return Reply::v1_error(status, &m),
    };
    let num_predict = field(&body, "max_tokens")
        .and_then(Value::as_i64)
        .or(chat.num_predict);
    let plan = engine::plan(
        &req.control,
        &chat.model,
        chat.thinking,
        chat.tools,
        chat_prompt_tokens(&body),
        num_predict,
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
    let id = format!("chatcmpl-{}", rand::thread_rng().gen_range(0..999));
    let model_echo = str_field(&body, "model").to_string();
    let stream = field(&body, "stream")
        .and_then(Value::as_bool)
        .unwrap_or(false);

    if !stream {
        return match run.until_done().await {
            Err(e) => Reply::v1_error(500, &e),
            Ok((plan, metrics)) => {
                let mut message = Message {
                    role: "assistant",
                    content: String::new(),
                    reasoning: String::new(),
                    tool_calls: Vec::new(),
                };
                for p in &plan.pieces {
                    match p {
                        Piece::Thinking(t) => message.reasoning.push_str(t),
                        Piece::Content(c) => message.content.push_str(c),
                        Piece::ToolCall { .. } => {
                            if let Some(tc) = tool_call(message.tool_calls.len(), p) {
                                message.tool_calls.push(tc);
                            }
                        }
                    }
                }
                let finish = if plan.done_reason == "stop" && !message.tool_calls.is_empty() {
                    "tool_calls"
                } else {
                    plan.done_reason
                };
                Reply::v1_json(
                    200,
                    &Completion {
                        id: &id,
                        object: "chat.completion",
                        created: now_unix(),
                        model: &model_echo,
                        system_fingerprint: "fp_ollama",
                        choices: vec![CompletionChoice {
                            index: 0,
                            message,
                            finish_reason: finish.to_string(),
                        }],
                        usage: Usage {
                            prompt_tokens: metrics.prompt_eval_count,
                            completion_tokens: metrics.eval_count,
                            total_tokens: metrics.prompt_eval_count + metrics.eval_count,
                        },
                    },
                )
            }
        };
    }

    if run.midstream_error_after == Some(0) {
        state.unload(&chat.model.name);
        return Reply::v1_error(500, &crate::fixtures::midstream_error_text());
    }
    let include_usage = field(&body, "stream_options")
        .and_then(|o| field(o, "include_usage"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let current = version::has_current_sse(&state.version);
    let created = now_unix();
    let mut tool_calls_sent = 0usize;
    let rx = run.stream(move |event| {
        let chunk = |choices: Vec<ChunkChoice>, usage: Option<Usage>| Chunk {
            id: &id,
            object: "chat.completion.chunk",
            // The legacy format stamped every chunk with its own time.
            created: if current { created } else { now_unix() },
            model: &model_echo,
            system_fingerprint: "fp_ollama",
            choices,
            usage,
        };
        match event {
            StreamEvent::Piece { piece, index } => {
                let role = (!current || index == 0).then_some("assistant");
                let mut delta = Delta {
                    role,
                    ..Delta::default()
                };
                match piece {
                    Piece::Thinking(t) => {
                        delta.content = Some(String::new());
                        delta.reasoning = Some(t.clone());
                    }
                    Piece::Content(c) => delta.content = Some(c.clone()),
                    Piece::ToolCall { .. } => {
                        delta.content = Some(String::new());
                        delta.tool_calls.extend(tool_call(tool_calls_sent, piece));
                        tool_calls_sent += 1;
                    }
                }
                sse(&chunk(
                    vec![ChunkChoice {
                        index: 0,
                        delta,
                        finish_reason: None,
                    }],
                    None,
                ))
            }
            StreamEvent::Done { metrics, reason } => {
                let finish = if reason == "stop" && tool_calls_sent > 0 {
                    "tool_calls"
                } else {
                    reason
                };
                let delta = if current {
                    Delta::default()
                } else {
                    Delta {
                        role: Some("assistant"),
                        content: Some(String::new()),
                        ..Delta::default()
                    }
                };
                let mut out = sse(&chunk(
                    vec![ChunkChoice {
                        index: 0,
                        delta,
                        finish_reason: Some(finish.to_string()),
                    }],
                    None,
                ));
                if include_usage {
                    let usage = Usage {
                        prompt_tokens: metrics.prompt_eval_count,
                        completion_tokens: metrics.eval_count,
                        total_tokens: metrics.prompt_eval_count + metrics.eval_count,
                    };
                    out.extend(sse(&chunk(Vec::new(), Some(usage))));
                }
                out.extend_from_slice(b"data: [DONE]\n\n");
                out
            }
            // The runner died mid-stream: the stream just ends, no finish chunk, no [DONE].
            StreamEvent::Error(_) => Vec::new(),
        }
    });
    Reply::stream(reply::SSE, rx)
}

#[derive(Serialize)]
struct ListResponse<'a> {
    object: &'static str,
    data: Option<Vec<ModelEntry<'a>>>,
}

#[derive(Serialize)]
struct ModelEntry<'a> {
    id: &'a str,
    object: &'static str,
    created: i64,
    owned_by: String,
}

fn owner(name: &str) -> String {
    control::parse_name(name)
        .map(|n| n.namespace)
        .unwrap_or_else(|| "library".to_string())
}

pub fn models(_state: &State, req: &Req) -> Reply {
    let cat = catalogue(&req.control);
    if cat.is_empty() {
        // `var data []Model` is never initialized: null, not [].
        return Reply::v1_json(
            200,
            &ListResponse {
                object: "list",
                data: None,
            },
        );
    }
    let data: Vec<ModelEntry<'_>> = cat
        .iter()
        .map(|m| ModelEntry {
            id: &m.name,
            object: "model",
            created: timefmt::parse_rfc3339_unix(&m.modified_at).unwrap_or(0),
            owned_by: owner(&m.name),
        })
        .collect();
    Reply::v1_json(
        200,
        &ListResponse {
            object: "list",
            data: Some(data),
        },
    )
}

pub fn model(state: &State, req: &Req, requested: &str) -> Reply {
    let cat = catalogue(&req.control);
    match find(&cat, requested) {
        Some(m) => Reply::v1_json(
            200,
            &ModelEntry {
                id: requested,
                object: "model",
                created: timefmt::parse_rfc3339_unix(&m.modified_at).unwrap_or(0),
                owned_by: owner(&m.name),
            },
        ),
        None => {
            let shown = match control::parse_name(requested) {
                Some(n) if version::show_normalizes_names(&state.version) => n.display(),
                _ => requested.to_string(),
            };
            Reply::v1_error(404, &format!("model '{shown}' not found"))
        }
    }
}

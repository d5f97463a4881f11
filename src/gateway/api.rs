//! The inbound APIs other than chat completions: Anthropic Messages (`/v1/messages`,
//! `/v1/messages/count_tokens`) and OpenAI Responses (`/v1/responses`).
//!
//! Each is one translator into the IR ([`wire::anthropic_in`], [`wire::responses_in`]) and one
//! out of its events; the chain walk in between is the one chat completions uses
//! ([`chat::walk`]), so fallbacks, cooldowns, metrics and `x-openclawd-*` headers behave the
//! same whatever the client speaks.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::time::Instant;

use super::chat::{self, Routed};
use super::error::{Dialect, GatewayError};
use super::providers::Answer;
use super::requests::RequestTrace;
use super::router::chain_for;
use super::state::GatewayState;
use super::wire::chat_body::ChatBody;
use super::wire::ir::{ChatRequest, ChatResponse, OpenAiChunkDecoder, SameApiExtras};
use super::wire::relay::{EventWriter, Relay};
use super::wire::sse::SseParser;
use super::wire::{anthropic_in, responses_in, SseStream};
use crate::config::Api;

/// An OpenAI chat completion stream (what the chain answers) rewritten by `writer`, event by
/// event as it arrives: one write per upstream chunk, nothing buffered beyond a partial event.
pub fn translate_stream<W: EventWriter + Send + 'static>(
    upstream: SseStream,
    writer: W,
) -> SseStream {
    let state = (upstream, Relay::new(writer), false);
    Box::pin(futures_util::stream::unfold(
        state,
        |(mut upstream, mut relay, mut ended)| async move {
            loop {
                if ended {
                    return None;
                }
                let out = match upstream.next().await {
                    Some(chunk) => relay.push(&chunk),
                    None => {
                        ended = true;
                        relay.finish()
                    }
                };
                if !out.is_empty() {
                    return Some((Bytes::from(out), (upstream, relay, ended)));
                }
            }
        },
    ))
}

/// Runs `ir` through the chain. The answer is the chain's (OpenAI chat completions).
async fn route(
    state: &GatewayState,
    headers: &HeaderMap,
    ir: &ChatRequest,
    trace: &mut RequestTrace,
) -> Result<Routed, GatewayError> {
    let req = ChatBody::from_value(ir.to_openai());
    chat::walk(
        state,
        headers,
        &req,
        &ir.extras,
        ir.model.as_deref(),
        ir.stream,
        trace.started,
        trace,
    )
    .await
}

/// A server tool (Anthropic's `web_search_20250305`, Responses' `web_search`, …) runs only on
/// the side of the client's own API; a vendor-defined tool (`bash_20250124`, `local_shell`,
/// Codex's `namespace`, …) has no schema another model could read. With a model of that API in
/// the chain the tool goes to it and the walk passes over the others
/// (`FailureClass::Unsupported`). With none:
/// * the request also offers function tools (an agent's toolbox: Codex sends `web_search` and
///   `namespace` beside its own functions on every request): the server tools are left out and
///   the answer says so in `x-openclawd-tools-dropped` — refusing would make the agent unusable
///   with local models;
/// * they are the only tools: they are the point of the request, and answering without them
///   would let the user believe they had been used — refused, in the client's error shape.
///
/// Returns the types left out (`None`: nothing was).
fn check_server_tools(
    state: &GatewayState,
    headers: &HeaderMap,
    ir: &ChatRequest,
) -> Result<Option<String>, GatewayError> {
    let types = ir.extras.server_tool_types();
    let Some(tool) = types.first() else {
        return Ok(None);
    };
    let (api, vendor) = match &ir.extras {
        SameApiExtras::AnthropicMessages { .. } => (Api::AnthropicMessages, "Anthropic"),
        SameApiExtras::OpenAiResponses { .. } => (Api::OpenAiResponses, "OpenAI"),
        SameApiExtras::None => return Ok(None),
    };
    let pinned = chat::is_pinned(headers);
    let catalog = state.catalog.load_full();
    // An unknown model is the walk's to report, in its words.
    let Ok(chain) = chain_for(&catalog, ir.model.as_deref(), pinned) else {
        return Ok(None);
    };
    let runs_it = chain.refs.iter().any(|r| {
        catalog
            .get(r)
            .and_then(|m| catalog.providers.get(&m.provider))
            .is_some_and(|p| p.api == api)
    });
    if runs_it {
        return Ok(None);
    }
    if !ir.tools.is_empty() {
        let dropped = types.join(", ");
        tracing::info!(
            tools = %dropped,
            "left out {vendor}'s own tools: no {} model in the chain ({})",
            api.as_str(),
            chain.refs.join(", ")
        );
        return Ok(Some(dropped));
    }
    Err(GatewayError::BadRequest {
        message: format!(
            "The tool of type {tool} is one of {vendor}'s own tools (run by {vendor}, or defined by {vendor} without a schema), which only an {} provider can offer, and no model in this request's chain ({}) is served by one: openclawd routes only function tools to other providers. Remove the tool from the request, or add an {} model to the chain.",
            api.as_str(),
            chain.refs.join(", "),
            api.as_str()
        ),
        param: Some("tools".into()),
    })
}

/// `x-openclawd-tools-dropped`: the server tools left out of this request (see
/// [`check_server_tools`]).
fn say_dropped(mut resp: Response, dropped: Option<String>) -> Response {
    if let Some(v) = dropped.and_then(|d| HeaderValue::try_from(d).ok()) {
        resp.headers_mut().insert("x-openclawd-tools-dropped", v);
    }
    resp
}

/// A non-streamed chain answer in the IR; a body that is not a chat completion is a 502.
async fn whole(answer: Answer) -> Result<ChatResponse, GatewayError> {
    match answer {
        Answer::Json { body, .. } => ChatResponse::from_openai(&body).map_err(|why| {
            GatewayError::AllAttemptsFailed(format!("the model's answer could not be read: {why}"))
        }),
        // Providers stream only when asked to; read it whole should one do so anyway.
        Answer::Stream(mut s) => {
            let mut parser = SseParser::new();
            let mut decoder = OpenAiChunkDecoder::new();
            let mut events = Vec::new();
            while let Some(chunk) = s.next().await {
                for ev in parser.push(&chunk) {
                    events.extend(decoder.feed(&ev));
                }
            }
            if let Some(ev) = parser.finish() {
                events.extend(decoder.feed(&ev));
            }
            events.extend(decoder.finish());
            ChatResponse::from_events(events).map_err(GatewayError::AllAttemptsFailed)
        }
    }
}

fn json_response(body: String) -> Response {
    let mut r = (StatusCode::OK, body).into_response();
    r.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn fail(state: &GatewayState, e: GatewayError, dialect: Dialect) -> Response {
    chat::record_failure(state, &e);
    e.render(dialect)
}

/// `POST /v1/messages` (Anthropic Messages). The query (`?beta=true`) is ignored.
pub async fn messages(
    State(state): State<Arc<GatewayState>>,
    chat::Inbound { headers, body }: chat::Inbound,
) -> Response {
    let mut trace = RequestTrace::begin(Instant::now());
    let resp = answer_messages(&state, &headers, &body, &mut trace).await;
    chat::finish_trace(&state, trace, &resp);
    resp
}

async fn answer_messages(
    state: &Arc<GatewayState>,
    headers: &HeaderMap,
    body: &Bytes,
    trace: &mut RequestTrace,
) -> Response {
    let mut ir = match anthropic_in::parse(body).and_then(|r| r.to_ir()) {
        Ok(ir) => ir,
        Err(e) => return fail(state, e.into(), Dialect::Anthropic),
    };
    // Fields such as `context_management` are refused by Anthropic without their beta flag:
    // the flags travel with the fields, to an anthropic-messages provider only.
    if let SameApiExtras::AnthropicMessages { beta, .. } = &mut ir.extras {
        *beta = anthropic_beta(headers);
    }
    let dropped = match check_server_tools(state, headers, &ir) {
        Ok(dropped) => dropped,
        Err(e) => return fail(state, e, Dialect::Anthropic),
    };
    if dropped.is_some() {
        ir.extras.drop_server_tools();
    }
    let Routed { answer, route: r } = match route(state, headers, &ir, trace).await {
        Ok(routed) => routed,
        Err(e) => return fail(state, e, Dialect::Anthropic),
    };
    let id = anthropic_in::new_message_id();
    let resp = match answer {
        Answer::Stream(s) if ir.stream => {
            let estimate = anthropic_in::estimate_input_tokens(&ir.system, &ir.messages, &ir.tools);
            let writer = anthropic_in::MessagesStreamWriter::new(id, r.model_ref.clone())
                .with_input_estimate(estimate);
            chat::event_stream(
                translate_stream(s, writer),
                HeaderValue::from_static("text/event-stream; charset=utf-8"),
            )
        }
        answer => match whole(answer).await {
            Ok(resp) => {
                json_response(anthropic_in::message_body(&resp, &id, &r.model_ref).to_string())
            }
            Err(e) => return fail(state, e, Dialect::Anthropic),
        },
    };
    say_dropped(r.add_headers(resp), dropped)
}

/// The client's `anthropic-beta` flags, comma-joined (the header may be repeated).
fn anthropic_beta(headers: &HeaderMap) -> Option<String> {
    let flags: Vec<&str> = headers
        .get_all("anthropic-beta")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect();
    (!flags.is_empty()).then(|| flags.join(","))
}

/// `POST /v1/messages/count_tokens`: an estimate (see
/// [`anthropic_in::CountTokensRequest::estimate`]); no model is called.
pub async fn count_tokens(State(state): State<Arc<GatewayState>>, body: Bytes) -> Response {
    match anthropic_in::parse_count(&body).and_then(|r| r.estimate()) {
        Ok(n) => {
            let mut resp = json_response(anthropic_in::count_body(n).to_string());
            // Said on the wire too: the count is not from the model's tokenizer.
            resp.headers_mut().insert(
                "x-openclawd-token-count",
                HeaderValue::from_static("estimate"),
            );
            resp
        }
        Err(e) => fail(&state, e.into(), Dialect::Anthropic),
    }
}

/// `POST /v1/responses` (OpenAI Responses, stateless).
pub async fn responses(
    State(state): State<Arc<GatewayState>>,
    chat::Inbound { headers, body }: chat::Inbound,
) -> Response {
    let mut trace = RequestTrace::begin(Instant::now());
    let resp = answer_responses(&state, &headers, &body, &mut trace).await;
    chat::finish_trace(&state, trace, &resp);
    resp
}

async fn answer_responses(
    state: &Arc<GatewayState>,
    headers: &HeaderMap,
    body: &Bytes,
    trace: &mut RequestTrace,
) -> Response {
    let parsed = match responses_in::parse(body) {
        Ok(p) => p,
        Err(e) => return fail(state, e.into(), Dialect::Responses),
    };
    let mut ir = match parsed.to_ir() {
        Ok(ir) => ir,
        Err(e) => return fail(state, e.into(), Dialect::Responses),
    };
    let dropped = match check_server_tools(state, headers, &ir) {
        Ok(dropped) => dropped,
        Err(e) => return fail(state, e, Dialect::Responses),
    };
    if dropped.is_some() {
        ir.extras.drop_server_tools();
    }
    let Routed { answer, route: r } = match route(state, headers, &ir, trace).await {
        Ok(routed) => routed,
        Err(e) => return fail(state, e, Dialect::Responses),
    };
    let echo = responses_in::Echo::new(&parsed, &r.model_ref);
    let resp = match answer {
        Answer::Stream(s) if ir.stream => {
            let writer = responses_in::ResponsesStreamWriter::new(echo);
            chat::event_stream(
                translate_stream(s, writer),
                HeaderValue::from_static("text/event-stream; charset=utf-8"),
            )
        }
        answer => match whole(answer).await {
            Ok(resp) => {
                let body = responses_in::response_body(&resp, &echo);
                json_response(serde_json::to_string_pretty(&body).unwrap_or_default())
            }
            Err(e) => return fail(state, e, Dialect::Responses),
        },
    };
    say_dropped(r.add_headers(resp), dropped)
}

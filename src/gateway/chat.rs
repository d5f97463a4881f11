//! `POST /v1/chat/completions`, and the chain walk every inbound API shares: resolve the
//! chain, try each model until one answers, and relay its answer (streamed as it arrives, or
//! whole). The walk speaks OpenAI chat completions to the providers; other inbound APIs
//! (`super::api`) translate into it through the IR and back out of its answer.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use tokio::time::Instant;

use super::error::GatewayError;
use super::hold::{self, HoldBudget, OllamaReadiness};
use super::providers::{Answer, FailureClass, Target};
use super::requests::RequestTrace;
use super::router::chain_for;
use super::state::GatewayState;
use super::wire;
use super::wire::chat_body::ChatBody;
use super::wire::ir::SameApiExtras;
use crate::config::{Api, ProviderConfig};

/// First-byte budgets (SPEC §5): local Ollama may be cold-loading a 20 GB model.
const LOCAL_OLLAMA_FIRST_BYTE: Duration = Duration::from_secs(300);
const CLOUD_FIRST_BYTE: Duration = Duration::from_secs(60);

// Header names as constants: a `&str` name is parsed on every insert.
const X_OPENCLAWD_MODEL: HeaderName = HeaderName::from_static("x-openclawd-model");
const X_OPENCLAWD_ATTEMPTS: HeaderName = HeaderName::from_static("x-openclawd-attempts");
const X_OPENCLAWD_FALLBACK: HeaderName = HeaderName::from_static("x-openclawd-fallback");
const X_OPENCLAWD_NO_FALLBACK: HeaderName = HeaderName::from_static("x-openclawd-no-fallback");
const X_ACCEL_BUFFERING: HeaderName = HeaderName::from_static("x-accel-buffering");

static NO_PARAMS: std::sync::LazyLock<serde_json::Map<String, serde_json::Value>> =
    std::sync::LazyLock::new(serde_json::Map::new);

pub async fn chat_completions(
    State(state): State<Arc<GatewayState>>,
    Inbound { headers, body }: Inbound,
) -> Response {
    let started = Instant::now();
    let mut trace = RequestTrace::begin(started);
    let routed = match ChatBody::from_client(body) {
        Ok((req, head)) => {
            // Sent as is to every provider, so nothing is set aside for a same-API one.
            let extras = SameApiExtras::None;
            walk(
                &state,
                &headers,
                &req,
                &extras,
                head.model.as_deref(),
                head.stream,
                started,
                &mut trace,
            )
            .await
        }
        Err(e) => Err(e.into()),
    };
    let resp = match routed {
        Ok(Routed { answer, route }) => route.add_headers(respond(answer)),
        Err(e) => {
            record_failure(&state, &e);
            e.into_response()
        }
    };
    finish_trace(&state, trace, &resp);
    resp
}

/// A request's headers and body, moved out of it (axum's `HeaderMap` extractor copies them).
pub(super) struct Inbound {
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl<S: Send + Sync> axum::extract::FromRequest<S> for Inbound {
    type Rejection = Response;

    async fn from_request(req: axum::extract::Request, _: &S) -> Result<Self, Self::Rejection> {
        let (parts, body) = req.into_parts();
        // `server::admit` has read the body within the limit already: this takes it as is.
        match axum::body::to_bytes(body, usize::MAX).await {
            Ok(body) => Ok(Inbound {
                headers: parts.headers,
                body,
            }),
            Err(e) => Err(GatewayError::bad_request(format!(
                "could not read the request body: {e}"
            ))
            .render(super::error::Dialect::for_path(parts.uri.path()))),
        }
    }
}

/// Logs a request in the ring (`/events`, the page) — unless its answer is a stream, which is
/// logged when the stream ends.
pub(super) fn finish_trace(state: &GatewayState, trace: RequestTrace, resp: &Response) {
    if !trace.streaming {
        state
            .requests
            .record(trace.finished(resp.status().as_u16()));
    }
}

/// Counts a request no model answered (or that was refused before routing).
pub(super) fn record_failure(state: &GatewayState, e: &GatewayError) {
    state
        .metrics
        .record_request("none", e.status().as_u16(), false);
}

struct Attempted {
    model_ref: String,
    outcome: String,
}

/// A request some model of the chain answered.
pub(super) struct Routed {
    /// OpenAI chat completions: a `chat.completion` body or a `chat.completion.chunk` stream.
    pub answer: Answer,
    pub route: Route,
}

/// Which model answered, after how many attempts.
pub(super) struct Route {
    pub model_ref: String,
    pub tried: usize,
    pub fell_back: bool,
}

impl Route {
    /// `x-openclawd-model`, `x-openclawd-attempts` and `x-openclawd-fallback`.
    pub fn add_headers(&self, mut resp: Response) -> Response {
        let h = resp.headers_mut();
        if let Ok(v) = HeaderValue::from_str(&self.model_ref) {
            h.insert(X_OPENCLAWD_MODEL, v);
        }
        h.insert(X_OPENCLAWD_ATTEMPTS, HeaderValue::from(self.tried));
        if self.fell_back {
            h.insert(X_OPENCLAWD_FALLBACK, HeaderValue::from_static("true"));
        }
        resp
    }
}

/// Walks the fallback chain for `req` (an OpenAI chat completions body, already validated):
/// cooldowns, skips, failover by failure class, metrics. `x-openclawd-no-fallback` pins the
/// request to the model asked for. `extras` go to a provider that speaks the client's API.
#[allow(clippy::too_many_arguments)]
pub(super) async fn walk(
    state: &GatewayState,
    headers: &HeaderMap,
    req: &ChatBody,
    extras: &SameApiExtras,
    requested: Option<&str>,
    stream: bool,
    started: Instant,
    trace: &mut RequestTrace,
) -> Result<Routed, GatewayError> {
    trace.set_asked(requested);
    let pinned = is_pinned(headers);

    // One consistent view for the whole request, even if a reload swaps mid-way.
    let snapshot = state.config.load_full();
    let catalog = state.catalog.load_full();
    // Started on defaults because openclaw.json is broken: that is the answer, not a routing one.
    if snapshot.generation == 0 {
        if let Some(error) = state.config_error.load_full() {
            return Err(GatewayError::NotReady(format!(
                "openclawd has no valid configuration, so it routes nothing yet: {error} \
                 (the file is reloaded as soon as it is saved)"
            )));
        }
    }
    let chain = chain_for(&catalog, requested, pinned)?;

    let mut hold = HoldBudget::new(snapshot.own.gateway.hold_for_ollama);
    // Some model was passed over only because our own Ollama is still (re)starting.
    let mut ollama_restarting = false;
    let mut attempts: Vec<Attempted> = Vec::new();
    let mut tried = 0usize;
    // After a context-length failure only a model with a larger window is worth trying.
    let mut need_context_above: Option<u64> = None;
    for (position, model_ref) in chain.refs.iter().enumerate() {
        let skip = |why: String| Attempted {
            model_ref: model_ref.clone(),
            outcome: format!("skipped: {why}"),
        };
        let Some(model) = catalog.get(model_ref) else {
            attempts.push(skip(
                "not in the catalogue (not configured, or not discovered yet)".into(),
            ));
            continue;
        };
        if let Some(why) = &model.unroutable {
            attempts.push(skip(why.clone()));
            continue;
        }
        let Some(provider) = catalog.providers.get(&model.provider) else {
            attempts.push(skip(format!(
                "provider {} is not configured",
                model.provider
            )));
            continue;
        };
        if let Some(left) = state.cooldowns.remaining(model_ref) {
            attempts.push(skip(format!(
                "in cooldown for {}s after a failure",
                left.as_secs().max(1)
            )));
            continue;
        }
        if provider.api == Api::Ollama {
            // Our own Ollama restarting is held for, not failed over (SPEC §5 Transitions).
            let readiness =
                hold::wait_for_ollama(&state.ollama, &provider.base_url, &mut hold, &state.metrics)
                    .await;
            match readiness {
                OllamaReadiness::Ready => {}
                OllamaReadiness::Down(why) => {
                    attempts.push(skip(why));
                    continue;
                }
                OllamaReadiness::Restarting(why) => {
                    ollama_restarting = true;
                    attempts.push(skip(why));
                    continue;
                }
            }
        }
        if let Some(min) = need_context_above {
            if model.config.context_window.unwrap_or(0) <= min {
                attempts.push(skip(format!("context window not larger than {min}")));
                continue;
            }
        }

        let local = catalog.is_local(&model.provider);
        let target = Target {
            model,
            provider,
            api_key: catalog.api_keys.get(&provider.id).cloned(),
            params: snapshot
                .model_entries
                .get(model_ref)
                .map_or(&NO_PARAMS, |e| &e.params),
            first_byte_timeout: first_byte_timeout(provider, local),
            local,
        };
        tried += 1;
        trace.attempts = tried as u32;
        // Counted while open, so a restart openclawd decides waits for this answer to end.
        let in_flight = (provider.api == Api::Ollama
            && state.is_supervised_ollama(&provider.base_url))
        .then(|| state.ollama_in_flight.enter());
        let mut upstream_started = Instant::now();
        let mut result = state.upstreams.call(&target, req, extras, stream).await;
        // Refused by our own Ollama that still looks up: it has most likely just died and the
        // supervisor is about to restart it. Hold for that once, then ask the same model again.
        if let Err(e) = &result {
            if e.class == FailureClass::Connect && provider.api == Api::Ollama {
                let after = hold::wait_after_refusal(
                    &state.ollama,
                    &provider.base_url,
                    &mut hold,
                    &state.metrics,
                )
                .await;
                if after == OllamaReadiness::Ready {
                    upstream_started = Instant::now();
                    result = state.upstreams.call(&target, req, extras, stream).await;
                }
            }
        }
        match result {
            Ok(answer) => {
                let upstream_wait = upstream_started.elapsed();
                state.cooldowns.succeed(model_ref);
                state.metrics.record_attempt(model_ref, "ok");
                let m = &state.metrics;
                m.model(&m.upstream_latency, model_ref, upstream_wait.as_secs_f64());
                let fell_back = position > 0;
                m.record_request(model_ref, 200, fell_back);
                let overhead = started.elapsed().saturating_sub(upstream_wait);
                m.overhead.observe(overhead.as_secs_f64());
                trace.answered = Some(model_ref.clone());
                trace.fallback = fell_back;
                // TTFT and tokens/s are measured on the way out, as the client receives them.
                let answer = match answer {
                    Answer::Stream(s) => {
                        trace.streaming = true;
                        let (log, trace) = (state.requests.clone(), trace.clone());
                        Answer::Stream(super::measure::metered_then(
                            s,
                            started,
                            state.metrics.clone(),
                            model_ref.clone(),
                            Some(Box::new(move |timing| {
                                log.record(trace.stream_ended(timing))
                            })),
                        ))
                    }
                    whole => whole,
                };
                let answer = match (answer, in_flight) {
                    (Answer::Stream(s), Some(guard)) => {
                        Answer::Stream(Box::pin(futures_util::StreamExt::map(s, move |chunk| {
                            let _counted = &guard;
                            chunk
                        })))
                    }
                    (answer, _) => answer,
                };
                if fell_back {
                    tracing::info!(model = %model_ref, attempts = tried, "answered by a fallback");
                }
                return Ok(Routed {
                    answer,
                    route: Route {
                        model_ref: model_ref.clone(),
                        tried,
                        fell_back,
                    },
                });
            }
            Err(e) => {
                state.metrics.record_attempt(model_ref, e.class.label());
                tracing::warn!(model = %model_ref, class = e.class.label(), "attempt failed: {}", e.message);
                if !e.class.falls_over() {
                    if let Some((status, content_type, body)) = e.relay {
                        return Err(GatewayError::Upstream {
                            status,
                            content_type,
                            body,
                        });
                    }
                    return Err(GatewayError::bad_request(e.message));
                }
                match e.class {
                    FailureClass::ContextLength => {
                        need_context_above = Some(model.config.context_window.unwrap_or(0));
                    }
                    FailureClass::Auth => {
                        // The credential is bad for every model of this provider.
                        for m in catalog
                            .models
                            .iter()
                            .filter(|m| m.provider == model.provider)
                        {
                            state.cooldowns.fail(&m.model_ref, e.retry_after);
                        }
                    }
                    // Our own Ollama refusing connections is the supervisor's to fix, and
                    // the next request holds for its restart: a cooldown would instead send
                    // every request to the fallback until it expired.
                    FailureClass::Connect if in_flight.is_some() => {}
                    // Not the model's fault: this request needs another API.
                    FailureClass::Unsupported => {}
                    _ => {
                        state.cooldowns.fail(model_ref, e.retry_after);
                    }
                }
                attempts.push(Attempted {
                    model_ref: model_ref.clone(),
                    outcome: format!("{} ({})", e.message, e.class.label()),
                });
            }
        }
    }
    let listed: Vec<String> = attempts
        .iter()
        .map(|a| format!("{}: {}", a.model_ref, a.outcome))
        .collect();
    let message = format!(
        "All models failed ({}): {}",
        attempts.len(),
        listed.join(" | ")
    );
    if ollama_restarting {
        return Err(GatewayError::OllamaRestarting {
            message: format!(
                "{message}. openclawd is restarting its Ollama; try again in a few seconds."
            ),
            retry_after_secs: 5,
        });
    }
    Err(GatewayError::AllAttemptsFailed(message))
}

/// `x-openclawd-no-fallback: 1|true|yes`: only the model asked for may answer.
pub(super) fn is_pinned(headers: &HeaderMap) -> bool {
    headers
        .get(X_OPENCLAWD_NO_FALLBACK)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| matches!(v.trim(), "1" | "true" | "yes"))
}

fn respond(answer: Answer) -> Response {
    match answer {
        Answer::Json { body, content_type } => {
            let mut r = (StatusCode::OK, body).into_response();
            r.headers_mut()
                .insert(axum::http::header::CONTENT_TYPE, content_type);
            r
        }
        Answer::Stream(s) => event_stream(s, HeaderValue::from_static("text/event-stream")),
    }
}

/// A streamed 200 with `content_type`, unbuffered by proxies in front of us.
pub(super) fn event_stream(s: wire::SseStream, content_type: HeaderValue) -> Response {
    let body = Body::from_stream(futures_util::StreamExt::map(
        s,
        Ok::<_, std::convert::Infallible>,
    ));
    let mut r = (StatusCode::OK, body).into_response();
    let h = r.headers_mut();
    h.insert(axum::http::header::CONTENT_TYPE, content_type);
    h.insert(
        axum::http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache"),
    );
    // Tells nginx-style proxies in front of us not to buffer the stream.
    h.insert(X_ACCEL_BUFFERING, HeaderValue::from_static("no"));
    r
}

fn first_byte_timeout(provider: &ProviderConfig, local: bool) -> Duration {
    if let Some(t) = provider.timeout {
        return t;
    }
    if provider.api == Api::Ollama && local {
        LOCAL_OLLAMA_FIRST_BYTE
    } else {
        CLOUD_FIRST_BYTE
    }
}

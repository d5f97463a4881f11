//! `POST /v1/chat/completions`: resolve the chain, try each model until one answers, and
//! relay its answer (streamed as it arrives, or whole).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::Value;
use tokio::time::Instant;

use super::error::GatewayError;
use super::hold::{self, HoldBudget, OllamaReadiness};
use super::providers::{Answer, FailureClass, Target};
use super::router::chain_for;
use super::state::GatewayState;
use super::wire;
use crate::config::{Api, ProviderConfig, Snapshot};

/// First-byte budgets (SPEC §5): local Ollama may be cold-loading a 20 GB model.
const LOCAL_OLLAMA_FIRST_BYTE: Duration = Duration::from_secs(300);
const CLOUD_FIRST_BYTE: Duration = Duration::from_secs(60);

pub async fn chat_completions(
    State(state): State<Arc<GatewayState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    match run_chain(&state, &headers, &body, started).await {
        Ok(resp) => resp,
        Err(e) => {
            state
                .metrics
                .record_request("none", e.status().as_u16(), false);
            e.into_response()
        }
    }
}

struct Attempted {
    model_ref: String,
    outcome: String,
}

async fn run_chain(
    state: &GatewayState,
    headers: &HeaderMap,
    body: &Bytes,
    started: Instant,
) -> Result<Response, GatewayError> {
    let req = parse_request(body)?;
    let stream = req.get("stream").and_then(Value::as_bool).unwrap_or(false);
    let requested = req.get("model").and_then(Value::as_str);
    let pinned = headers
        .get("x-openclawd-no-fallback")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| matches!(v.trim(), "1" | "true" | "yes"));

    // One consistent view for the whole request, even if a reload swaps mid-way.
    let snapshot = state.config.load_full();
    let catalog = state.catalog.load_full();
    let chain = chain_for(&catalog, requested, pinned)?;

    let mut hold = HoldBudget::new(snapshot.own.gateway.hold_for_ollama);
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
            if let OllamaReadiness::Down(why) = readiness {
                attempts.push(skip(why));
                continue;
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
            api_key: resolve_api_key(&snapshot, provider),
            params: snapshot
                .model_entries
                .get(model_ref)
                .map(|e| e.params.clone())
                .unwrap_or_default(),
            first_byte_timeout: first_byte_timeout(provider, local),
            local,
        };
        tried += 1;
        let mut upstream_started = Instant::now();
        let mut result = state.upstreams.call(&target, &req, stream).await;
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
                    result = state.upstreams.call(&target, &req, stream).await;
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
                // TTFT and tokens/s are measured on the way out, as the client receives them.
                let answer = match answer {
                    Answer::Stream(s) => Answer::Stream(super::measure::metered(
                        s,
                        started,
                        state.metrics.clone(),
                        model_ref.clone(),
                    )),
                    whole => whole,
                };
                if fell_back {
                    tracing::info!(model = %model_ref, attempts = tried, "answered by a fallback");
                }
                return Ok(respond(answer, model_ref, tried, fell_back));
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
    Err(GatewayError::AllAttemptsFailed(format!(
        "All models failed ({}): {}",
        attempts.len(),
        listed.join(" | ")
    )))
}

fn parse_request(body: &Bytes) -> Result<Value, GatewayError> {
    if body.is_empty() {
        return Err(GatewayError::bad_request(
            "The request body is empty; send a JSON object with `model` and `messages`.",
        ));
    }
    let req: Value = serde_json::from_slice(body).map_err(|e| {
        GatewayError::bad_request(format!(
            "We could not parse the JSON body of your request: {e}."
        ))
    })?;
    wire::openai::validate_chat_request(&req).map_err(|e| match e {
        wire::WireError::BadRequest { message, param } => {
            GatewayError::BadRequest { message, param }
        }
    })?;
    Ok(req)
}

fn respond(answer: Answer, model_ref: &str, tried: usize, fell_back: bool) -> Response {
    let mut resp = match answer {
        Answer::Json { body, content_type } => {
            let mut r = (StatusCode::OK, body).into_response();
            r.headers_mut()
                .insert(axum::http::header::CONTENT_TYPE, content_type);
            r
        }
        Answer::Stream(s) => {
            let body = Body::from_stream(futures_util::StreamExt::map(
                s,
                Ok::<_, std::convert::Infallible>,
            ));
            let mut r = (StatusCode::OK, body).into_response();
            let h = r.headers_mut();
            h.insert(
                axum::http::header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream"),
            );
            h.insert(
                axum::http::header::CACHE_CONTROL,
                HeaderValue::from_static("no-cache"),
            );
            // Tells nginx-style proxies in front of us not to buffer the stream.
            h.insert("x-accel-buffering", HeaderValue::from_static("no"));
            r
        }
    };
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(model_ref) {
        h.insert("x-openclawd-model", v);
    }
    h.insert("x-openclawd-attempts", HeaderValue::from(tried));
    if fell_back {
        h.insert("x-openclawd-fallback", HeaderValue::from_static("true"));
    }
    resp
}

/// API keys in OpenClaw's order: auth profile, provider env var, `apiKey` in config.
pub fn resolve_api_key(snapshot: &Snapshot, provider: &ProviderConfig) -> Option<String> {
    let id = &provider.id;
    let default_profile = format!("{id}:default");
    let profile = snapshot
        .auth_profiles
        .get(&default_profile)
        .or_else(|| snapshot.auth_profiles.values().find(|p| &p.provider == id));
    if let Some(p) = profile {
        return Some(p.credential.secret().to_string());
    }
    let var = format!("{}_API_KEY", id.to_ascii_uppercase().replace('-', "_"));
    // Google's key has its own name in OpenClaw (and Google's SDKs): GEMINI_API_KEY.
    let google = (provider.api == Api::GoogleGenerativeAi).then_some("GEMINI_API_KEY");
    for var in std::iter::once(var.as_str()).chain(google) {
        if let Some(v) = snapshot.env.get(var).filter(|v| !v.is_empty()) {
            return Some(v.clone());
        }
    }
    provider.api_key.clone().filter(|k| !k.is_empty())
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

//! `anthropic-messages`: OpenAI chat ⇄ Anthropic Messages, both ways, streaming included.

use axum::http::HeaderValue;
use bytes::Bytes;
use serde_json::Value;

use super::translate::{drive, SseEventTranslator, SseTranslated};
use super::{read_json, send, Answer, AttemptError, ErrorDialect, Target, Upstreams};
use crate::gateway::wire::anthropic::{self as wire, AnthropicStreamTranslator};
use crate::gateway::wire::ir::SameApiExtras;
use crate::gateway::wire::openai::{self as oai};
use crate::gateway::wire::sse::SseEvent;
use crate::gateway::wire::TranslateEvent;

const ANTHROPIC_VERSION: &str = "2023-06-01";
/// Used when neither the request nor the model config says how long an answer may be.
const FALLBACK_MAX_TOKENS: u64 = 4096;

impl SseEventTranslator for AnthropicStreamTranslator {
    const UPSTREAM: &'static str = "Anthropic";

    fn feed(&mut self, event: &SseEvent) -> Vec<TranslateEvent> {
        AnthropicStreamTranslator::feed(self, event)
    }

    fn finish(&mut self) -> Vec<TranslateEvent> {
        AnthropicStreamTranslator::finish(self)
    }
}

fn messages_url(base: &str) -> String {
    if base.ends_with("/v1") {
        format!("{base}/messages")
    } else {
        format!("{base}/v1/messages")
    }
}

pub async fn call(
    up: &Upstreams,
    target: &Target<'_>,
    req: &Value,
    extras: &SameApiExtras,
    stream: bool,
) -> Result<Answer, AttemptError> {
    let default_max = target
        .model
        .config
        .max_tokens
        .unwrap_or(FALLBACK_MAX_TOKENS);
    let mut body = wire::messages_request(
        req,
        &target.model.id,
        default_max,
        extras.anthropic_signed_thinking(),
        target.model.config.reasoning,
    )
    .map_err(AttemptError::untranslatable)?;
    if let Some(obj) = body.as_object_mut() {
        obj.insert("stream".into(), Value::Bool(stream));
        extras.add_to_anthropic_messages(obj);
    }
    let mut rb = up
        .client(target)
        .post(messages_url(&target.provider.base_url))
        .header("anthropic-version", ANTHROPIC_VERSION)
        .json(&body);
    if let Some(key) = &target.api_key {
        rb = rb.header("x-api-key", key);
    }
    // The client's beta flags, unless the provider's config sets its own.
    let configured_beta = target
        .provider
        .headers
        .keys()
        .any(|k| k.eq_ignore_ascii_case("anthropic-beta"));
    if let Some(beta) = extras.anthropic_beta().filter(|_| !configured_beta) {
        rb = rb.header("anthropic-beta", beta);
    }
    for (k, v) in &target.provider.headers {
        rb = rb.header(k, v);
    }
    let budget = target.first_byte_timeout;
    let resp = send(rb, budget, ErrorDialect::Translated(wire::error_message)).await?;
    if !stream {
        let value = read_json(resp, budget).await?;
        let out = wire::messages_response(&value, &target.model.model_ref);
        return Ok(Answer::Json {
            body: serde_json::to_vec(&out)
                .map(Bytes::from)
                .unwrap_or_default(),
            content_type: HeaderValue::from_static("application/json"),
        });
    }
    let translator = SseTranslated::new(AnthropicStreamTranslator::new(
        &target.model.model_ref,
        oai::include_usage(req),
    ));
    let s = drive(resp.bytes_stream(), translator, budget).await?;
    Ok(Answer::Stream(s))
}

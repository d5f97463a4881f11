//! `openai-responses`: OpenAI chat ⇄ OpenAI Responses (`{baseUrl}/responses`), both ways,
//! streaming included. Errors are OpenAI-shaped, so they classify and relay as chat's do.

use axum::http::HeaderValue;
use bytes::Bytes;
use serde_json::Value;

use super::translate::{drive, SseEventTranslator, SseTranslated};
use super::{read_body, send, Answer, AttemptError, ErrorDialect, FailureClass, Target, Upstreams};
use crate::gateway::wire::ir::SameApiExtras;
use crate::gateway::wire::openai as oai;
use crate::gateway::wire::responses_out::{
    self as wire, ResponseObject, ResponsesStreamTranslator,
};
use crate::gateway::wire::sse::SseEvent;
use crate::gateway::wire::{is_context_overflow, TranslateEvent};

impl SseEventTranslator for ResponsesStreamTranslator {
    const UPSTREAM: &'static str = "the Responses API";

    fn feed(&mut self, event: &SseEvent) -> Vec<TranslateEvent> {
        ResponsesStreamTranslator::feed(self, event)
    }

    fn finish(&mut self) -> Vec<TranslateEvent> {
        ResponsesStreamTranslator::finish(self)
    }
}

fn failure(message: String) -> AttemptError {
    let class = if is_context_overflow(&message) {
        FailureClass::ContextLength
    } else {
        FailureClass::ServerError
    };
    AttemptError::new(class, message)
}

/// The body to send: openclawd's request, plus the client's extras when it spoke Responses.
fn with_extras(
    body: &wire::ResponsesRequest,
    extras: &SameApiExtras,
) -> Result<Value, serde_json::Error> {
    let mut value = serde_json::to_value(body)?;
    if let Some(obj) = value.as_object_mut() {
        extras.add_to_openai_responses(obj);
    }
    Ok(value)
}

pub async fn call(
    up: &Upstreams,
    target: &Target<'_>,
    req: &Value,
    extras: &SameApiExtras,
    stream: bool,
) -> Result<Answer, AttemptError> {
    let mut body = wire::responses_request(req, &target.model.id, stream)
        .map_err(AttemptError::untranslatable)?;
    // Anthropic's `thinking: disabled` arrives as effort `none`, which only some OpenAI models
    // take (gpt-5.1 does, gpt-5 and the o-series refuse it): off is left to the model's
    // default rather than risk a 400. A client that wrote `none` itself gets it sent.
    if matches!(extras, SameApiExtras::AnthropicMessages { .. })
        && body.reasoning.as_ref().is_some_and(|r| r.effort == "none")
    {
        body.reasoning = None;
    }
    // An effort translated from Anthropic's `thinking` goes only to a model configured as a
    // reasoning model (OpenAI refuses `reasoning` for the others); a chat completions or
    // Responses client's own setting is sent as written.
    if matches!(extras, SameApiExtras::AnthropicMessages { .. }) && !target.model.config.reasoning {
        body.reasoning = None;
    }
    let body = with_extras(&body, extras).map_err(|e| {
        AttemptError::new(
            FailureClass::ClientError,
            format!("the request could not be written for the Responses API: {e}"),
        )
    })?;
    let mut rb = up
        .client(target)
        .post(format!("{}/responses", target.provider.base_url))
        .json(&body);
    if let Some(key) = &target.api_key {
        rb = rb.bearer_auth(key);
    }
    for (k, v) in &target.provider.headers {
        rb = rb.header(k, v);
    }
    let budget = target.first_byte_timeout;
    let resp = send(rb, budget, ErrorDialect::OpenAi).await?;
    if !stream {
        let bytes = read_body(resp, budget).await?;
        let answer: ResponseObject = serde_json::from_slice(&bytes).map_err(|e| {
            AttemptError::new(
                FailureClass::ServerError,
                format!("the Responses API answered something that is not a response object: {e}"),
            )
        })?;
        let out = wire::chat_completion(&answer, &target.model.model_ref).map_err(failure)?;
        return Ok(Answer::Json {
            body: serde_json::to_vec(&out)
                .map(Bytes::from)
                .unwrap_or_default(),
            content_type: HeaderValue::from_static("application/json"),
        });
    }
    let translator = SseTranslated::new(ResponsesStreamTranslator::new(
        &target.model.model_ref,
        oai::include_usage(req),
    ));
    let s = drive(resp.bytes_stream(), translator, budget).await?;
    Ok(Answer::Stream(s))
}

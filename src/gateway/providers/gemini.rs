//! `google-generative-ai`: OpenAI chat ⇄ Gemini `generateContent`, both ways, streaming
//! included. Gemini's error bodies decide failover: a wrong key is a 400 there.

use axum::http::{HeaderValue, StatusCode};
use bytes::Bytes;
use serde_json::Value;

use super::translate::{drive, SseEventTranslator, SseTranslated};
use super::{read_body, send, Answer, AttemptError, ErrorDialect, FailureClass, Target, Upstreams};
use crate::gateway::wire::gemini::{self as wire, GeminiStreamTranslator, GenerateResponse};
use crate::gateway::wire::openai as oai;
use crate::gateway::wire::sse::SseEvent;
use crate::gateway::wire::{is_context_overflow, TranslateEvent};

impl SseEventTranslator for GeminiStreamTranslator {
    const UPSTREAM: &'static str = "Gemini";

    fn feed(&mut self, event: &SseEvent) -> Vec<TranslateEvent> {
        GeminiStreamTranslator::feed(self, event)
    }

    fn finish(&mut self) -> Vec<TranslateEvent> {
        GeminiStreamTranslator::finish(self)
    }
}

/// `{base}/models/{id}:generateContent`, or the SSE stream method.
fn method_url(base: &str, model_id: &str, stream: bool) -> String {
    let id = model_id.strip_prefix("models/").unwrap_or(model_id);
    if stream {
        format!("{base}/models/{id}:streamGenerateContent?alt=sse")
    } else {
        format!("{base}/models/{id}:generateContent")
    }
}

pub async fn call(
    up: &Upstreams,
    target: &Target<'_>,
    req: &Value,
    stream: bool,
) -> Result<Answer, AttemptError> {
    let mut body = wire::generate_request(req).map_err(AttemptError::untranslatable)?;
    // Only a model configured as a reasoning model takes a thinking budget; others (2.0 Flash,
    // …) refuse `thinkingConfig`, so they answer without.
    if !target.model.config.reasoning {
        body.generation_config.thinking_config = None;
    }
    let mut rb = up
        .client(target)
        .post(method_url(
            &target.provider.base_url,
            &target.model.id,
            stream,
        ))
        .json(&body);
    if let Some(key) = &target.api_key {
        rb = rb.header("x-goog-api-key", key);
    }
    for (k, v) in &target.provider.headers {
        rb = rb.header(k, v);
    }
    let budget = target.first_byte_timeout;
    let resp = send(rb, budget, ErrorDialect::Classified(classify)).await?;
    if !stream {
        let bytes = read_body(resp, budget).await?;
        let answer: GenerateResponse = serde_json::from_slice(&bytes).map_err(|e| {
            AttemptError::new(
                FailureClass::ServerError,
                format!("Gemini answered something that is not a GenerateContentResponse: {e}"),
            )
        })?;
        let out = wire::generate_response(&answer, &target.model.model_ref).map_err(|m| {
            let class = if is_context_overflow(&m) {
                FailureClass::ContextLength
            } else {
                FailureClass::ServerError
            };
            AttemptError::new(class, m)
        })?;
        return Ok(Answer::Json {
            body: serde_json::to_vec(&out)
                .map(Bytes::from)
                .unwrap_or_default(),
            content_type: HeaderValue::from_static("application/json"),
        });
    }
    let translator = SseTranslated::new(GeminiStreamTranslator::new(
        &target.model.model_ref,
        oai::include_usage(req),
    ));
    let s = drive(resp.bytes_stream(), translator, budget).await?;
    Ok(Answer::Stream(s))
}

/// Classifies a Gemini error answer for the chain (protocols.md §3.5).
fn classify(status: StatusCode, headers: &reqwest::header::HeaderMap, body: Bytes) -> AttemptError {
    if status.is_redirection() {
        return super::classify_status(status, headers, body, String::new());
    }
    let error = wire::parse_error(&body);
    let code = status.as_u16();
    let class = match code {
        // Gemini answers a wrong key with 400 INVALID_ARGUMENT (API_KEY_INVALID), not 401.
        400 if error.is_bad_key() => FailureClass::Auth,
        400 if error.is_token_limit() => FailureClass::ContextLength,
        401 | 403 => FailureClass::Auth,
        404 => FailureClass::ModelNotFound,
        408 | 504 => FailureClass::Timeout,
        413 => FailureClass::ContextLength,
        429 => FailureClass::RateLimited,
        500..=599 => FailureClass::ServerError,
        _ => FailureClass::ClientError,
    };
    let status_name = error.status.as_deref().unwrap_or("");
    let mut message = format!("HTTP {code} {status_name}: {}", error.message);
    if class == FailureClass::Auth {
        message.push_str(" (check GEMINI_API_KEY or the provider's apiKey)");
    }
    let relay = (class == FailureClass::ClientError).then(|| {
        let kind = oai::error_type_for_status(code);
        (
            status,
            Some(HeaderValue::from_static("application/json")),
            oai::error_body(&error.message, kind, None, error.status.as_deref()),
        )
    });
    AttemptError {
        class,
        message,
        // Gemini puts the wait in RetryInfo, not in a header.
        retry_after: error
            .retry_delay
            .map(|d| d.min(super::MAX_RETRY_AFTER))
            .or_else(|| super::retry_after(headers)),
        relay,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::providers::translate::StreamTranslate;

    fn class_of(status: u16, body: &str) -> (FailureClass, Option<std::time::Duration>) {
        let e = classify(
            StatusCode::from_u16(status).unwrap(),
            &reqwest::header::HeaderMap::new(),
            Bytes::from(body.to_owned()),
        );
        (e.class, e.retry_after)
    }

    #[test]
    fn gemini_errors_are_classified_for_failover() {
        let bad_key = r#"{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID","domain":"googleapis.com"}]}}"#;
        assert_eq!(class_of(400, bad_key).0, FailureClass::Auth);
        let tokens = r#"{"error":{"code":400,"message":"The input token count (3475108) exceeds the maximum number of tokens allowed (1048576).","status":"INVALID_ARGUMENT"}}"#;
        assert_eq!(class_of(400, tokens).0, FailureClass::ContextLength);
        let role = r#"{"error":{"code":400,"message":"Please use a valid role: user, model.","status":"INVALID_ARGUMENT"}}"#;
        assert_eq!(class_of(400, role).0, FailureClass::ClientError);
        let quota = r#"{"error":{"code":429,"message":"You exceeded your current quota","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"58s"}]}}"#;
        assert_eq!(
            class_of(429, quota),
            (
                FailureClass::RateLimited,
                Some(std::time::Duration::from_secs(58))
            )
        );
        assert_eq!(class_of(404, "{}").0, FailureClass::ModelNotFound);
        assert_eq!(class_of(503, "overloaded").0, FailureClass::ServerError);
    }

    #[test]
    fn relayed_errors_are_openai_shaped() {
        let e = classify(
            StatusCode::BAD_REQUEST,
            &reqwest::header::HeaderMap::new(),
            Bytes::from_static(br#"{"error":{"code":400,"message":"Please use a valid role: user, model.","status":"INVALID_ARGUMENT"}}"#),
        );
        let (status, _, body) = e.relay.unwrap();
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v["error"]["message"],
            "Please use a valid role: user, model."
        );
        assert_eq!(v["error"]["type"], "invalid_request_error");
    }

    #[test]
    fn an_event_that_never_ends_is_capped() {
        let mut stream = SseTranslated::new(GeminiStreamTranslator::new("google/m", false));
        assert!(stream.push(b"data: {\"candidates\": [").is_empty());
        let block = vec![b'x'; 1 << 20];
        let mut out = Vec::new();
        for _ in 0..=(crate::gateway::providers::MAX_UNFRAMED_BYTES >> 20) {
            out = stream.push(&block);
            if !out.is_empty() {
                break;
            }
        }
        assert!(
            matches!(out.last(), Some(TranslateEvent::UpstreamError(m)) if m.contains("without ending an event")),
            "{out:?}"
        );
    }

    #[test]
    fn urls() {
        assert_eq!(
            method_url("https://generativelanguage.googleapis.com/v1beta", "models/gemini-2.5-flash", true),
            "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
        );
    }
}

//! `ollama`: Ollama's native `/api/chat` (NDJSON), so `num_ctx` can be sent (SPEC §4).

use std::sync::Arc;

use axum::http::{HeaderValue, StatusCode};
use bytes::Bytes;
use serde_json::Value;

use super::translate::{drive, StreamTranslate};
use super::{classify_status, Answer, AttemptError, FailureClass, Target, Upstreams};
use crate::gateway::metrics::Metrics;
use crate::gateway::wire::ndjson::NdjsonSplitter;
use crate::gateway::wire::ollama::{self as wire, OllamaStreamTranslator};
use crate::gateway::wire::openai::{self as oai};
use crate::gateway::wire::TranslateEvent;

/// Ollama's default context is tiny (4096 on most machines); never ask for more than this
/// unless the user says so with `params.num_ctx` (a 128k KV cache can take tens of GB).
const NUM_CTX_CAP: u64 = 32768;

pub fn num_ctx(target: &Target<'_>) -> Option<u64> {
    target
        .params
        .get("num_ctx")
        .and_then(Value::as_u64)
        .or_else(|| {
            target
                .model
                .config
                .context_window
                .map(|c| c.min(NUM_CTX_CAP))
        })
}

/// Decode speed from Ollama's own counters: `eval_count` tokens in `eval_duration`.
pub fn decode_rate(m: &wire::OllamaMetrics) -> Option<f64> {
    let secs = m.eval_duration?.as_secs_f64();
    let n = m.eval_count?;
    (secs > 0.0 && n > 0).then(|| n as f64 / secs)
}

struct OllamaStream {
    lines: NdjsonSplitter,
    translator: OllamaStreamTranslator,
    metrics: Arc<Metrics>,
    model_ref: String,
}

impl StreamTranslate for OllamaStream {
    fn push(&mut self, chunk: &[u8]) -> Vec<TranslateEvent> {
        let mut out = Vec::new();
        for line in self.lines.push(chunk) {
            out.extend(self.translator.feed(&line));
        }
        out
    }

    fn finish(&mut self) -> Vec<TranslateEvent> {
        let mut out = Vec::new();
        if let Some(line) = self.lines.finish() {
            out.extend(self.translator.feed(&line));
        }
        out.extend(self.translator.finish());
        out
    }

    fn completed(&mut self) {
        if let Some(m) = self.translator.metrics() {
            if let Some(tps) = decode_rate(m) {
                self.metrics
                    .model(&self.metrics.tokens_per_second, &self.model_ref, tps);
            }
        }
    }
}

pub async fn call(
    up: &Upstreams,
    target: &Target<'_>,
    req: &Value,
    stream: bool,
) -> Result<Answer, AttemptError> {
    let mut body = wire::chat_request(req, &target.model.id, num_ctx(target), &target.params)
        .map_err(|e| AttemptError {
            class: FailureClass::ClientError,
            message: e.to_string(),
            retry_after: None,
            relay: Some((
                StatusCode::BAD_REQUEST,
                Some(HeaderValue::from_static("application/json")),
                e.to_openai_body(),
            )),
        })?;
    if let Some(obj) = body.as_object_mut() {
        obj.insert("stream".into(), Value::Bool(stream));
    }
    let url = format!("{}/api/chat", target.provider.base_url);
    let send = up.client(target).post(url).json(&body).send();
    let resp = match tokio::time::timeout(target.first_byte_timeout, send).await {
        Err(_) => {
            return Err(AttemptError::new(
                FailureClass::Timeout,
                format!(
                    "Ollama did not answer within {:?}",
                    target.first_byte_timeout
                ),
            ))
        }
        Ok(Err(e)) => return Err(AttemptError::from_reqwest(&e, "Ollama request failed")),
        Ok(Ok(r)) => r,
    };
    let status = resp.status();
    if !status.is_success() {
        let headers = resp.headers().clone();
        let raw = super::read_error_body(resp).await;
        let message = wire::error_message(&raw);
        let mut err = classify_status(status, &headers, Bytes::new(), message.clone());
        if let Some(relay) = err.relay.as_mut() {
            // Clients speak OpenAI: relay Ollama's error in OpenAI's shape.
            relay.1 = Some(HeaderValue::from_static("application/json"));
            relay.2 = oai::error_body(&message, oai::INVALID_REQUEST_ERROR, None, None);
        }
        return Err(err);
    }
    if !stream {
        let bytes = tokio::time::timeout(
            target.first_byte_timeout,
            super::read_answer(resp, "reading Ollama's answer"),
        )
        .await
        .map_err(|_| {
            AttemptError::new(FailureClass::Timeout, "Ollama's answer did not complete")
        })??;
        let value: Value = serde_json::from_slice(&bytes).map_err(|e| {
            AttemptError::new(
                FailureClass::ServerError,
                format!("Ollama answered something that is not JSON: {e}"),
            )
        })?;
        if let Some(tps) = decode_rate(&wire::OllamaMetrics::from_response(&value)) {
            up.metrics
                .model(&up.metrics.tokens_per_second, &target.model.model_ref, tps);
        }
        let out = wire::chat_response(&value, &target.model.model_ref);
        return Ok(Answer::Json {
            body: Bytes::from(out.to_string()),
            content_type: HeaderValue::from_static("application/json"),
        });
    }
    let translator = OllamaStream {
        lines: NdjsonSplitter::new(),
        translator: OllamaStreamTranslator::new(&target.model.model_ref, oai::include_usage(req)),
        metrics: up.metrics.clone(),
        model_ref: target.model.model_ref.clone(),
    };
    let s = drive(resp.bytes_stream(), translator, target.first_byte_timeout).await?;
    Ok(Answer::Stream(s))
}

//! `ollama`: Ollama's native `/api/chat` (NDJSON), so `num_ctx` can be sent (SPEC §4).

use axum::http::{HeaderMap, HeaderValue};
use bytes::Bytes;
use serde_json::Value;

use super::translate::{drive, StreamTranslate};
use super::{read_json, send, Answer, AttemptError, ErrorDialect, Target, Upstreams};
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

struct OllamaStream {
    lines: NdjsonSplitter,
    translator: OllamaStreamTranslator,
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
}

/// One attempt at an Ollama model; `translated`: `req` was built from another inbound API.
pub async fn call(
    up: &Upstreams,
    target: &Target<'_>,
    req: &Value,
    translated: bool,
    stream: bool,
) -> Result<Answer, AttemptError> {
    let mut body = wire::chat_request(req, &target.model.id, num_ctx(target), target.params)
        .map_err(AttemptError::untranslatable)?;
    if let Some(obj) = body.as_object_mut() {
        obj.insert("stream".into(), Value::Bool(stream));
        // Ollama refuses `think` for a model without the thinking capability ("does not
        // support thinking"). One translated from another API's reasoning setting (Claude
        // Code's `thinking`, Codex's `reasoning`, sent on every request) goes only to a model
        // configured or discovered as reasoning; a chat completions client's own
        // `think` / `reasoning_effort` goes as sent, as Ollama's OpenAI layer would take it.
        if translated && !target.model.config.reasoning {
            obj.remove("think");
        }
    }
    let body = serde_json::to_vec(&body)
        .map(Bytes::from)
        .unwrap_or_default();
    let out = up.post_json(target, "/api/chat", HeaderMap::new(), body)?;
    let budget = target.first_byte_timeout;
    let resp = send(out, budget, ErrorDialect::Translated(wire::error_message)).await?;
    if !stream {
        let value = read_json(resp, budget).await?;
        let mut out = wire::chat_response(&value, &target.model.model_ref);
        // `openclawd.load_duration_ms` & co.: what `openclawd bench` reports as load time.
        wire::add_native_timings(&mut out, &wire::OllamaMetrics::from_response(&value));
        return Ok(Answer::Json {
            body: serde_json::to_vec(&out)
                .map(Bytes::from)
                .unwrap_or_default(),
            content_type: HeaderValue::from_static("application/json"),
        });
    }
    let translator = OllamaStream {
        lines: NdjsonSplitter::new(),
        translator: OllamaStreamTranslator::new(&target.model.model_ref, oai::include_usage(req)),
    };
    let s = drive(resp.bytes_stream(), translator, budget).await?;
    Ok(Answer::Stream(s))
}

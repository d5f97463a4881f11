//! Wire formats spoken by the gateway, and the translations between them (SPEC §5).
//!
//! Everything here is pure: bytes and JSON in, bytes and JSON out, no I/O. The gateway's HTTP
//! layer feeds upstream bytes through the framers ([`sse::SseParser`],
//! [`ndjson::NdjsonSplitter`]) and the translators ([`ollama::OllamaStreamTranslator`],
//! [`anthropic::AnthropicStreamTranslator`]) and writes what comes out to the client unchanged.
//!
//! Inbound: OpenAI chat completions ([`openai`], typed view in [`chat_in`]), Anthropic Messages
//! ([`anthropic_in`]) and OpenAI Responses ([`responses_in`]), the latter two through the
//! internal representation ([`ir`]). Outbound: OpenAI (pass-through, no translation), Ollama's
//! native `/api/chat` ([`ollama`]), Anthropic Messages ([`anthropic`]), Gemini
//! `generateContent` ([`gemini`]) or OpenAI Responses ([`responses_out`]).

pub mod anthropic;
pub mod anthropic_in;
pub mod chat_body;
pub mod chat_in;
pub mod gemini;
pub mod ir;
pub mod ndjson;
pub mod ollama;
pub mod openai;
pub mod relay;
pub mod responses_in;
pub mod responses_out;
pub mod sse;
pub mod typed;

use std::pin::Pin;

use bytes::Bytes;
use futures_util::Stream;

/// A response body on its way to the client: SSE (or JSON) bytes, each chunk written as it comes.
pub type SseStream = Pin<Box<dyn Stream<Item = Bytes> + Send>>;

/// A request the gateway cannot translate: answered with 400 in OpenAI's error shape and never
/// retried on another model (it would fail the same way).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("{message}")]
    BadRequest {
        /// For people: what is wrong and how to fix it.
        message: String,
        /// The offending field in OpenAI's dotted form, e.g. `messages[2].content`.
        param: Option<String>,
    },
}

impl WireError {
    pub fn bad_request(message: impl Into<String>, param: Option<String>) -> WireError {
        WireError::BadRequest {
            message: message.into(),
            param,
        }
    }

    /// HTTP status to answer with.
    pub fn status(&self) -> u16 {
        match self {
            WireError::BadRequest { .. } => 400,
        }
    }

    /// The body `{"error":{"message","type","param","code"}}` for this error.
    pub fn to_openai_body(&self) -> Bytes {
        match self {
            WireError::BadRequest { message, param } => openai::error_body(
                message,
                openai::INVALID_REQUEST_ERROR,
                param.as_deref(),
                None,
            ),
        }
    }
}

/// What a stream translator asks the gateway to do with one piece of upstream output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TranslateEvent {
    /// Write these bytes (one complete SSE event) to the client and flush.
    Sse(Bytes),
    /// The upstream failed mid-stream. If nothing was written to the client yet the gateway may
    /// still fall over to the next model; otherwise it ends the stream with
    /// [`openai::sse_error_event`] and writes nothing after it. The translator ignores all
    /// further input.
    UpstreamError(String),
}

/// Token counts of one answer, in OpenAI's terms.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Usage {
    /// Every input token, cached or not.
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Input tokens served from a prompt cache (Anthropic `cache_read_input_tokens`).
    pub cached_tokens: u64,
}

impl Usage {
    pub fn total_tokens(&self) -> u64 {
        self.prompt_tokens.saturating_add(self.completion_tokens)
    }
}

/// Whether an upstream error message says the prompt did not fit the model's context window,
/// which the gateway treats as a reason to fall over to a model with a larger one (SPEC §5).
pub fn is_context_overflow(message: &str) -> bool {
    let lower = message.to_ascii_lowercase();
    [
        // OpenAI and most OpenAI-compatible servers (vLLM, llama.cpp, LM Studio).
        "context_length_exceeded",
        "maximum context length",
        "context length exceeded",
        "exceed context window",
        "context window exceeded",
        // Anthropic: `prompt is too long: 210000 tokens > 200000 maximum`.
        "prompt is too long",
        // Ollama with `truncate: false`: `input length exceeds the context length`.
        "exceeds the context",
    ]
    .iter()
    .any(|needle| lower.contains(needle))
}

/// The longest wait a server may ask for (`Retry-After`, Gemini's `retryDelay`): beyond it the
/// cooldown ladder decides, and no deadline computed from it can overflow.
pub const MAX_RETRY_DELAY: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// `"10"`, `"10.158753737"` (seconds) as a duration, capped at [`MAX_RETRY_DELAY`]; `None` for
/// anything else (negative, NaN, not a number, an HTTP date).
pub fn parse_delay_seconds(text: &str) -> Option<std::time::Duration> {
    let secs: f64 = text.trim().parse().ok()?;
    if !secs.is_finite() || secs < 0.0 {
        return None;
    }
    Some(
        std::time::Duration::try_from_secs_f64(secs)
            .map_or(MAX_RETRY_DELAY, |d| d.min(MAX_RETRY_DELAY)),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn delays_are_parsed_with_checked_arithmetic() {
        use std::time::Duration;
        assert_eq!(parse_delay_seconds("10"), Some(Duration::from_secs(10)));
        assert_eq!(
            parse_delay_seconds("58.93"),
            Some(Duration::from_secs_f64(58.93))
        );
        assert_eq!(parse_delay_seconds("-1"), None);
        assert_eq!(parse_delay_seconds("NaN"), None);
        assert_eq!(parse_delay_seconds("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(
            parse_delay_seconds("18446744073709551615"),
            Some(MAX_RETRY_DELAY)
        );
        assert_eq!(parse_delay_seconds("1e300"), Some(MAX_RETRY_DELAY));
    }

    use super::*;

    #[test]
    fn context_overflow_messages_of_each_provider_are_recognised() {
        assert!(is_context_overflow(
            "This model's maximum context length is 8192 tokens. However, your messages resulted in 9000 tokens."
        ));
        assert!(is_context_overflow(
            "prompt is too long: 210000 tokens > 200000 maximum"
        ));
        assert!(is_context_overflow(
            "input length exceeds the context length"
        ));
        assert!(!is_context_overflow("model 'llama9:70b' not found"));
    }

    #[test]
    fn bad_request_renders_openai_error_body() {
        let err = WireError::bad_request("`messages` is required", Some("messages".into()));
        assert_eq!(err.status(), 400);
        let body: serde_json::Value = serde_json::from_slice(&err.to_openai_body()).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"error":{"message":"`messages` is required","type":"invalid_request_error","param":"messages","code":null}})
        );
    }
}

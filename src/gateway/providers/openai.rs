//! `openai-completions`: pass-through. The request's `model` is rewritten to the upstream id;
//! the answer's bytes are forwarded untouched.

use axum::http::{header, HeaderMap, HeaderName, HeaderValue};
use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::Value;

use super::{
    excerpt, read_body, send, Answer, AttemptError, ErrorDialect, FailureClass, SseStream, Target,
    Upstreams,
};
use crate::gateway::wire::chat_body::ChatBody;
use crate::gateway::wire::openai::sse_error_event;

pub async fn call(
    up: &Upstreams,
    target: &Target<'_>,
    req: &ChatBody,
    stream: bool,
) -> Result<Answer, AttemptError> {
    let mut headers = HeaderMap::new();
    if let Some(key) = &target.api_key {
        if let Ok(v) = HeaderValue::try_from(format!("Bearer {key}")) {
            headers.insert(header::AUTHORIZATION, v);
        }
    }
    for (k, v) in &target.provider.headers {
        let (Ok(name), Ok(value)) = (HeaderName::try_from(k), HeaderValue::try_from(v)) else {
            return Err(AttemptError::new(
                FailureClass::Connect,
                format!(
                    "the header {k:?} of provider {} is not a valid HTTP header; fix its \
                     `headers` in openclaw.json",
                    target.provider.id
                ),
            ));
        };
        headers.append(name, value);
    }
    let body = req.with_model(&target.model.id);
    let out = up.post_json(target, "/chat/completions", headers, body)?;
    let budget = target.first_byte_timeout;
    let resp = send(out, budget, ErrorDialect::OpenAi).await?;
    let content_type = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| HeaderValue::from_bytes(v.as_bytes()).ok())
        .unwrap_or(HeaderValue::from_static("application/json"));
    if !stream {
        let body = read_body(resp, budget).await?;
        return Ok(Answer::Json { body, content_type });
    }
    let mut upstream = resp.bytes_stream();
    let first = match tokio::time::timeout(target.first_byte_timeout, upstream.next()).await {
        Err(_) => {
            return Err(AttemptError::new(
                FailureClass::Timeout,
                format!("no first byte within {:?}", target.first_byte_timeout),
            ))
        }
        Ok(None) => {
            return Err(AttemptError::new(
                FailureClass::ServerError,
                "stream ended before its first byte",
            ))
        }
        Ok(Some(Err(e))) => return Err(AttemptError::from_upstream(&e, "stream failed")),
        Ok(Some(Ok(b))) => b,
    };
    Ok(Answer::Stream(passthrough(first, upstream, budget)))
}

/// Forwards upstream chunks, whole events only; an upstream failure, a silence longer than
/// `idle`, or an end without `[DONE]` becomes an SSE error event so the client never mistakes a
/// truncated answer for a complete one, nor waits forever on a stalled one. Bytes after the
/// last blank line are held until their event is complete: a stream cut mid-event ends with the
/// events that were whole, then the error event — never half an event glued to it. A chunk that
/// ends on an event boundary (the usual case) is forwarded as is, without a copy.
fn passthrough(
    first: Bytes,
    upstream: impl futures_util::Stream<Item = Result<Bytes, super::UpstreamError>> + Send + 'static,
    idle: std::time::Duration,
) -> SseStream {
    let relay = Relay {
        first: Some(first),
        upstream: Box::pin(upstream),
        framer: EventFramer::default(),
        ended: false,
    };
    Box::pin(futures_util::stream::unfold(
        relay,
        move |mut relay| async move {
            let out = relay.next(idle).await?;
            Some((out, relay))
        },
    ))
}

struct Relay<S> {
    first: Option<Bytes>,
    upstream: std::pin::Pin<Box<S>>,
    framer: EventFramer,
    ended: bool,
}

impl<S: futures_util::Stream<Item = Result<Bytes, super::UpstreamError>>> Relay<S> {
    async fn next(&mut self, idle: std::time::Duration) -> Option<Bytes> {
        loop {
            if self.ended {
                return None;
            }
            let chunk = match self.first.take() {
                Some(b) => b,
                None => {
                    let Ok(next) = tokio::time::timeout(idle, self.upstream.next()).await else {
                        return self.fail(&super::stalled_message(idle));
                    };
                    match next {
                        Some(Ok(b)) => b,
                        Some(Err(e)) => return self.fail(&format!("upstream stream failed: {e}")),
                        None if self.framer.saw_done() => {
                            self.ended = true;
                            // A last event without its blank line is still whole enough.
                            return self.framer.take_rest();
                        }
                        None => return self.fail("upstream stream ended without [DONE]"),
                    }
                }
            };
            match self.framer.push(chunk) {
                Ok(Some(events)) => return Some(events),
                Ok(None) => continue,
                Err(held) => {
                    return self.fail(&format!(
                        "upstream sent an event of over {} MiB without ending it",
                        held >> 20
                    ))
                }
            }
        }
    }

    fn fail(&mut self, message: &str) -> Option<Bytes> {
        self.ended = true;
        Some(sse_error_event(message, "api_error"))
    }
}

/// Splits a byte stream at SSE event boundaries (a blank line: `\n\n` or `\r\n\r\n`).
#[derive(Default)]
struct EventFramer {
    /// Bytes after the last boundary, not forwarded yet.
    held: bytes::BytesMut,
    /// The last bytes forwarded, to tell a complete stream (`[DONE]`) from a truncated one.
    tail: Vec<u8>,
}

impl EventFramer {
    /// The whole events `chunk` completes (`None`: none yet), or `Err(held bytes)` when an
    /// unterminated event outgrows [`super::MAX_UNFRAMED_BYTES`].
    fn push(&mut self, chunk: Bytes) -> Result<Option<Bytes>, usize> {
        let whole = if self.held.is_empty() {
            match last_boundary(&chunk) {
                Some(end) if end == chunk.len() => chunk,
                Some(end) => {
                    self.held.extend_from_slice(&chunk[end..]);
                    chunk.slice(..end)
                }
                None => {
                    self.held.extend_from_slice(&chunk);
                    Bytes::new()
                }
            }
        } else {
            // Only the new bytes (and the 3 before them) can hold a new boundary.
            let from = self.held.len().saturating_sub(3);
            self.held.extend_from_slice(&chunk);
            match last_boundary(&self.held[from..]) {
                Some(end) => self.held.split_to(from + end).freeze(),
                None => Bytes::new(),
            }
        };
        if self.held.len() > super::MAX_UNFRAMED_BYTES {
            return Err(self.held.len());
        }
        if whole.is_empty() {
            return Ok(None);
        }
        self.remember(&whole);
        Ok(Some(whole))
    }

    fn remember(&mut self, b: &[u8]) {
        let keep = b.len().min(32);
        self.tail.extend_from_slice(&b[b.len() - keep..]);
        let excess = self.tail.len().saturating_sub(32);
        self.tail.drain(..excess);
    }

    fn saw_done(&self) -> bool {
        let mut seen = self.tail.clone();
        seen.extend_from_slice(&self.held);
        seen.windows(6).any(|w| w == b"[DONE]")
    }

    fn take_rest(&mut self) -> Option<Bytes> {
        (!self.held.is_empty()).then(|| self.held.split().freeze())
    }
}

/// The end (exclusive) of the last event boundary in `b`.
fn last_boundary(b: &[u8]) -> Option<usize> {
    let lf = b.windows(2).rposition(|w| w == b"\n\n").map(|i| i + 2);
    let crlf = b.windows(3).rposition(|w| w == b"\n\r\n").map(|i| i + 3);
    lf.max(crlf)
}

/// `error.message` of an OpenAI error body, else the body itself.
pub fn openai_error_message(body: &Bytes) -> String {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| {
            v.pointer("/error/message")
                .and_then(Value::as_str)
                .map(str::to_string)
                .or_else(|| v.get("error").and_then(Value::as_str).map(str::to_string))
        })
        .unwrap_or_else(|| excerpt(body))
}

#[cfg(test)]
mod framer_tests {
    use super::*;

    fn feed(chunks: &[&[u8]]) -> (Vec<u8>, Vec<u8>) {
        let mut f = EventFramer::default();
        let mut out = Vec::new();
        for c in chunks {
            if let Ok(Some(b)) = f.push(Bytes::copy_from_slice(c)) {
                out.extend_from_slice(&b);
            }
        }
        (out, f.held.to_vec())
    }

    #[test]
    fn whole_events_pass_and_a_half_event_is_held() {
        let (out, held) = feed(&[b"data: {\"a\":1}\n\ndata: {\"b\"", b":2}\n\ndata: {\"c"]);
        assert_eq!(out, b"data: {\"a\":1}\n\ndata: {\"b\":2}\n\n");
        assert_eq!(held, b"data: {\"c");
    }

    #[test]
    fn every_split_point_forwards_the_same_events() {
        let stream: &[u8] =
            b"data: {\"x\":\"1\"}\r\n\r\ndata: {\"x\":\"2\"}\n\n: ping\n\ndata: [DONE]\n\n";
        for cut in 0..stream.len() {
            let (out, held) = feed(&[&stream[..cut], &stream[cut..]]);
            assert_eq!(out, stream, "cut at {cut}");
            assert!(held.is_empty());
        }
    }

    #[test]
    fn a_runaway_event_is_refused_past_the_cap() {
        let mut f = EventFramer::default();
        let big = Bytes::from(vec![
            b'a';
            crate::gateway::providers::MAX_UNFRAMED_BYTES + 1
        ]);
        assert!(f.push(big).is_err());
    }
}
